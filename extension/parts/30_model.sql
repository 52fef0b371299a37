-- ============================================================================================
-- CNN embeddings with LibTorch: the model registry, image_embedding(), image_embeddings()
-- (src/model/, lookalike_model.so)
-- ============================================================================================

CREATE TABLE lookalike.models (
    name text PRIMARY KEY CHECK (name <> ''),
    path text CHECK (path LIKE '/%'),
    sha256 text NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    input_size integer NOT NULL CHECK (input_size BETWEEN 8 AND 1024),
    mean real[] NOT NULL CHECK (cardinality(mean) = 3 AND array_ndims(mean) = 1),
    std real[] NOT NULL CHECK (cardinality(std) = 3 AND array_ndims(std) = 1 AND 0 < ALL (std)),
    dims integer NOT NULL CHECK (dims BETWEEN 1 AND 16000),
    description text,
    registered_at timestamptz NOT NULL DEFAULT now(),
    registered_by name NOT NULL DEFAULT current_user,
    resize text NOT NULL DEFAULT 'stretch' CHECK (resize IN ('stretch', 'pad')),
    input_width integer CHECK (input_width BETWEEN 8 AND 1024)
);
COMMENT ON TABLE lookalike.models IS
    'TorchScript image encoders that image_embedding() can run; write it only through lookalike.register_model() and lookalike.unregister_model()';
COMMENT ON COLUMN lookalike.models.name IS 'the name image_embedding() and lookalike.default_model use';
COMMENT ON COLUMN lookalike.models.path IS 'absolute path of the TorchScript file, read by the server; NULL for a model stored in the database (lookalike.model_data, e.g. trained by lookalike.train_model())';
COMMENT ON COLUMN lookalike.models.sha256 IS 'sha256 of the file (or of the stored TorchScript) at registration; checked whenever a backend loads it';
COMMENT ON COLUMN lookalike.models.input_size IS 'the input''s height: images are resized to input_width x input_size pixels, input_size x input_size if input_width is NULL (bilinear; see resize)';
COMMENT ON COLUMN lookalike.models.mean IS 'per-channel (R, G, B) mean subtracted from pixel/255';
COMMENT ON COLUMN lookalike.models.std IS 'per-channel (R, G, B) standard deviation dividing pixel/255 - mean';
COMMENT ON COLUMN lookalike.models.dims IS 'output dimension, measured by a forward pass at registration';
COMMENT ON COLUMN lookalike.models.description IS 'free text';
COMMENT ON COLUMN lookalike.models.registered_at IS 'when the model was registered';
COMMENT ON COLUMN lookalike.models.registered_by IS 'the superuser who registered it';
COMMENT ON COLUMN lookalike.models.resize IS 'how an image becomes the input (input_width x input_size pixels): ''stretch'' resizes it to that box, ''pad'' keeps its aspect ratio (the largest size that fits the box) and fills the rest with white, the background of catalogue photographs';
COMMENT ON COLUMN lookalike.models.input_width IS 'the input''s width in pixels; NULL: input_size (a square). A box of the catalogue photographs'' shape (e.g. 168 x 224 for 3:4 portraits) spends no computation on padding';
-- pg_dump keeps the registrations (the table belongs to the extension).
SELECT pg_catalog.pg_extension_config_dump('lookalike.models', '');
REVOKE ALL ON lookalike.models FROM PUBLIC;
GRANT SELECT ON lookalike.models TO PUBLIC;

CREATE FUNCTION lookalike._probe_model(path text, input_size integer, mean real[], std real[],
                                       input_width integer, OUT sha256 text, OUT dims integer, OUT canonical_path text)
    AS '$libdir/lookalike_model', 'lookalike_probe_model' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION lookalike._probe_model(text, integer, real[], real[], integer) IS
    'internal (superusers): loads a TorchScript file (a regular file of at most lookalike.max_model_bytes), returns its sha256, output dimension and canonical path';
REVOKE ALL ON FUNCTION lookalike._probe_model(text, integer, real[], real[], integer) FROM PUBLIC;

CREATE FUNCTION lookalike.register_model(
    name text, path text, input_size integer DEFAULT 224,
    mean real[] DEFAULT '{0.485,0.456,0.406}', std real[] DEFAULT '{0.229,0.224,0.225}',
    description text DEFAULT NULL, resize text DEFAULT 'stretch', input_width integer DEFAULT NULL)
RETURNS lookalike.models
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    probe record;
    result lookalike.models;
BEGIN
    IF NOT (SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user) THEN
        RAISE EXCEPTION 'only superusers may register models'
            USING ERRCODE = '42501', DETAIL = 'A TorchScript file is code that runs inside the server.';
    END IF;
    IF name IS NULL OR name = '' OR path IS NULL OR input_size IS NULL OR mean IS NULL OR std IS NULL
       OR resize IS NULL THEN
        RAISE EXCEPTION 'name, path, input_size, mean, std and resize must not be null or empty'
            USING ERRCODE = '22023';
    END IF;
    IF resize NOT IN ('stretch', 'pad') THEN
        RAISE EXCEPTION 'resize must be ''stretch'' or ''pad'', not "%"', resize USING ERRCODE = '22023';
    END IF;
    IF EXISTS (SELECT 1 FROM lookalike.models m WHERE m.name = register_model.name) THEN
        RAISE EXCEPTION 'model "%" is already registered', name
            USING ERRCODE = '42710', HINT = 'Unregister it first with lookalike.unregister_model().';
    END IF;
    probe := lookalike._probe_model(path, input_size, mean, std, input_width);
    INSERT INTO lookalike.models (name, path, sha256, input_size, mean, std, dims, description, resize,
                                  input_width)
        VALUES (name, probe.canonical_path, probe.sha256, input_size, mean, std, probe.dims, description,
                resize, input_width)
        RETURNING * INTO result;
    RETURN result;
END
$$;
COMMENT ON FUNCTION lookalike.register_model(text, text, integer, real[], real[], text, text, integer) IS
    'superusers: registers a TorchScript image encoder (records its sha256, measures its output dimension); resize ''stretch'' (default) or ''pad'' (keep the aspect ratio, fill with white); input_width NULL (default: a square input) or the input''s width';
REVOKE ALL ON FUNCTION lookalike.register_model(text, text, integer, real[], real[], text, text, integer) FROM PUBLIC;

CREATE FUNCTION lookalike.unregister_model(name text) RETURNS void
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF NOT (SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user) THEN
        RAISE EXCEPTION 'only superusers may unregister models' USING ERRCODE = '42501';
    END IF;
    DELETE FROM lookalike.models m WHERE m.name = unregister_model.name;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'model "%" is not registered', name USING ERRCODE = '42704';
    END IF;
    DELETE FROM lookalike.model_data d WHERE d.name = unregister_model.name;
END
$$;
COMMENT ON FUNCTION lookalike.unregister_model(text) IS
    'superusers: removes a model from the registry, with its stored TorchScript if it has one (embeddings already stored are kept)';
REVOKE ALL ON FUNCTION lookalike.unregister_model(text) FROM PUBLIC;

-- STABLE: the result depends on the registry (a catalog table) and on settings.
-- PARALLEL RESTRICTED: it would be correct in a parallel worker, but every worker would load
-- LibTorch and the model (about a second each) and run its own thread pool; use
-- image_embeddings() to embed many images.
CREATE FUNCTION image_embedding(image bytea, model text DEFAULT NULL) RETURNS embedding
    AS '$libdir/lookalike_model', 'image_embedding' LANGUAGE C STABLE CALLED ON NULL INPUT
    PARALLEL RESTRICTED;
COMMENT ON FUNCTION image_embedding(bytea, text) IS
    'L2-normalised CNN embedding of an image (JPEG, PNG, WebP, BMP) with a registered model; NULL model: lookalike.default_model';

CREATE FUNCTION image_embeddings(query text, model text DEFAULT NULL, on_error text DEFAULT 'error')
    RETURNS TABLE (id bigint, embedding embedding)
    AS '$libdir/lookalike_model', 'image_embeddings' LANGUAGE C VOLATILE CALLED ON NULL INPUT
    PARALLEL UNSAFE ROWS 1000;
COMMENT ON FUNCTION image_embeddings(text, text, text) IS
    'embeds every image of a query returning (id, image bytea) in batches of lookalike.batch_size; progress NOTICEs every lookalike.progress_interval; on_error ''error'' stops at an undecodable image (naming its row), ''null'' returns that row with a NULL embedding and a WARNING';
