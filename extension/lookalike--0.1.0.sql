-- lookalike 0.1.0 install script, assembled by the Makefile from extension/parts/*.sql.
-- complain if the script is sourced in psql rather than through CREATE EXTENSION
\echo Use "CREATE EXTENSION lookalike" to load this file. \quit
-- ============================================================================================
-- The embedding type (src/vector/)
-- ============================================================================================

CREATE TYPE embedding;

CREATE FUNCTION embedding_in(cstring, oid, integer) RETURNS embedding
    AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION embedding_out(embedding) RETURNS cstring
    AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION embedding_typmod_in(cstring[]) RETURNS integer
    AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION embedding_typmod_out(integer) RETURNS cstring
    AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION embedding_recv(internal, oid, integer) RETURNS embedding
    AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION embedding_send(embedding) RETURNS bytea
    AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

-- STORAGE = main: values stay inline in the heap row (up to a page), so a 512-d or 1280-d
-- embedding is read straight from the buffer, never fetched from a TOAST table.
CREATE TYPE embedding (
    INPUT = embedding_in,
    OUTPUT = embedding_out,
    TYPMOD_IN = embedding_typmod_in,
    TYPMOD_OUT = embedding_typmod_out,
    RECEIVE = embedding_recv,
    SEND = embedding_send,
    STORAGE = main,
    ALIGNMENT = int4
);
COMMENT ON TYPE embedding IS
    'dense float4 vector, e.g. an image feature; text form [1,2.5,3] (as pgvector); embedding(n) fixes n dimensions';

COMMENT ON FUNCTION embedding_in(cstring, oid, integer) IS 'text input of embedding';
COMMENT ON FUNCTION embedding_out(embedding) IS 'text output of embedding';
COMMENT ON FUNCTION embedding_typmod_in(cstring[]) IS 'parses the dimension modifier of embedding(n)';
COMMENT ON FUNCTION embedding_typmod_out(integer) IS 'prints the dimension modifier of embedding(n)';
COMMENT ON FUNCTION embedding_recv(internal, oid, integer) IS 'binary input of embedding (int16 dim, int16 0, float4 values)';
COMMENT ON FUNCTION embedding_send(embedding) IS 'binary output of embedding (int16 dim, int16 0, float4 values)';

-- ---- casts ---------------------------------------------------------------------------------

CREATE FUNCTION embedding(embedding, integer, boolean) RETURNS embedding
    AS 'MODULE_PATHNAME', 'embedding_coerce' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION array_to_embedding(integer[], integer, boolean) RETURNS embedding
    AS 'MODULE_PATHNAME', 'array_to_embedding' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION array_to_embedding(real[], integer, boolean) RETURNS embedding
    AS 'MODULE_PATHNAME', 'array_to_embedding' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION array_to_embedding(double precision[], integer, boolean) RETURNS embedding
    AS 'MODULE_PATHNAME', 'array_to_embedding' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION array_to_embedding(numeric[], integer, boolean) RETURNS embedding
    AS 'MODULE_PATHNAME', 'array_to_embedding' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION embedding_to_float4(embedding, integer, boolean) RETURNS real[]
    AS 'MODULE_PATHNAME', 'embedding_to_float4' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

CREATE CAST (embedding AS embedding) WITH FUNCTION embedding(embedding, integer, boolean) AS IMPLICIT;
CREATE CAST (integer[] AS embedding) WITH FUNCTION array_to_embedding(integer[], integer, boolean) AS ASSIGNMENT;
CREATE CAST (real[] AS embedding) WITH FUNCTION array_to_embedding(real[], integer, boolean) AS ASSIGNMENT;
CREATE CAST (double precision[] AS embedding) WITH FUNCTION array_to_embedding(double precision[], integer, boolean) AS ASSIGNMENT;
CREATE CAST (numeric[] AS embedding) WITH FUNCTION array_to_embedding(numeric[], integer, boolean) AS ASSIGNMENT;
CREATE CAST (embedding AS real[]) WITH FUNCTION embedding_to_float4(embedding, integer, boolean) AS IMPLICIT;

COMMENT ON FUNCTION embedding(embedding, integer, boolean) IS 'checks an embedding against the dimension of embedding(n)';
COMMENT ON FUNCTION array_to_embedding(integer[], integer, boolean) IS 'cast integer[] to embedding';
COMMENT ON FUNCTION array_to_embedding(real[], integer, boolean) IS 'cast real[] to embedding';
COMMENT ON FUNCTION array_to_embedding(double precision[], integer, boolean) IS 'cast double precision[] to embedding (values must fit in real)';
COMMENT ON FUNCTION array_to_embedding(numeric[], integer, boolean) IS 'cast numeric[] to embedding (values must fit in real)';
COMMENT ON FUNCTION embedding_to_float4(embedding, integer, boolean) IS 'cast embedding to real[]';
COMMENT ON CAST (embedding AS embedding) IS 'applies the dimension modifier of embedding(n)';
COMMENT ON CAST (integer[] AS embedding) IS 'integer array to embedding';
COMMENT ON CAST (real[] AS embedding) IS 'real array to embedding';
COMMENT ON CAST (double precision[] AS embedding) IS 'double precision array to embedding';
COMMENT ON CAST (numeric[] AS embedding) IS 'numeric array to embedding';
COMMENT ON CAST (embedding AS real[]) IS 'embedding to real array';

-- ---- distances, properties, arithmetic -----------------------------------------------------

-- Planner support of the three distance operators' functions: the planner calls it while it
-- simplifies expressions, which loads lookalike.so (and its exact top-k scan) before scans are
-- planned. It answers no request.
CREATE FUNCTION embedding_distance_support(internal) RETURNS internal
    AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION embedding_distance_support(internal) IS 'planner support of <=>, <-> and <#>: loads lookalike.so at plan time so that the exact top-k scan is offered from the first query of a session';
CREATE FUNCTION l2_distance(embedding, embedding) RETURNS double precision
    AS 'MODULE_PATHNAME', 'embedding_l2_distance' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE
    SUPPORT embedding_distance_support;
CREATE FUNCTION l2_squared_distance(embedding, embedding) RETURNS double precision
    AS 'MODULE_PATHNAME', 'embedding_l2_squared_distance' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION inner_product(embedding, embedding) RETURNS double precision
    AS 'MODULE_PATHNAME', 'embedding_inner_product' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION negative_inner_product(embedding, embedding) RETURNS double precision
    AS 'MODULE_PATHNAME', 'embedding_negative_inner_product' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE
    SUPPORT embedding_distance_support;
CREATE FUNCTION cosine_distance(embedding, embedding) RETURNS double precision
    AS 'MODULE_PATHNAME', 'embedding_cosine_distance' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE
    SUPPORT embedding_distance_support;
CREATE FUNCTION cosine_similarity(embedding, embedding) RETURNS double precision
    AS 'MODULE_PATHNAME', 'embedding_cosine_similarity' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION dims(embedding) RETURNS integer
    AS 'MODULE_PATHNAME', 'embedding_dims' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION norm(embedding) RETURNS double precision
    AS 'MODULE_PATHNAME', 'embedding_norm' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION l2_normalize(embedding) RETURNS embedding
    AS 'MODULE_PATHNAME', 'embedding_l2_normalize' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION embedding_add(embedding, embedding) RETURNS embedding
    AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION embedding_sub(embedding, embedding) RETURNS embedding
    AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION embedding_mul(embedding, embedding) RETURNS embedding
    AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION lookalike_simd() RETURNS text
    AS 'MODULE_PATHNAME' LANGUAGE C STABLE STRICT PARALLEL SAFE;

COMMENT ON FUNCTION l2_distance(embedding, embedding) IS 'Euclidean distance (operator <->)';
COMMENT ON FUNCTION l2_squared_distance(embedding, embedding) IS 'squared Euclidean distance';
COMMENT ON FUNCTION inner_product(embedding, embedding) IS 'inner product (dot product)';
COMMENT ON FUNCTION negative_inner_product(embedding, embedding) IS 'negative inner product (operator <#>): smaller is more similar';
COMMENT ON FUNCTION cosine_distance(embedding, embedding) IS '1 - cosine similarity (operator <=>), in [0,2]; NaN if either vector is zero (sorts last)';
COMMENT ON FUNCTION cosine_similarity(embedding, embedding) IS 'cosine of the angle between two embeddings, in [-1,1]; NaN if either vector is zero';
COMMENT ON FUNCTION dims(embedding) IS 'number of dimensions';
COMMENT ON FUNCTION norm(embedding) IS 'Euclidean norm';
COMMENT ON FUNCTION l2_normalize(embedding) IS 'scales to unit Euclidean norm (a zero vector stays zero)';
COMMENT ON FUNCTION embedding_add(embedding, embedding) IS 'element-wise sum (operator +)';
COMMENT ON FUNCTION embedding_sub(embedding, embedding) IS 'element-wise difference (operator -)';
COMMENT ON FUNCTION embedding_mul(embedding, embedding) IS 'element-wise product (operator *)';
COMMENT ON FUNCTION lookalike_simd() IS 'instruction set the distance kernels use in this backend (avx512f, avx2 or portable)';

CREATE OPERATOR <-> (LEFTARG = embedding, RIGHTARG = embedding, FUNCTION = l2_distance, COMMUTATOR = '<->');
CREATE OPERATOR <#> (LEFTARG = embedding, RIGHTARG = embedding, FUNCTION = negative_inner_product, COMMUTATOR = '<#>');
CREATE OPERATOR <=> (LEFTARG = embedding, RIGHTARG = embedding, FUNCTION = cosine_distance, COMMUTATOR = '<=>');
CREATE OPERATOR + (LEFTARG = embedding, RIGHTARG = embedding, FUNCTION = embedding_add, COMMUTATOR = +);
CREATE OPERATOR - (LEFTARG = embedding, RIGHTARG = embedding, FUNCTION = embedding_sub);
CREATE OPERATOR * (LEFTARG = embedding, RIGHTARG = embedding, FUNCTION = embedding_mul, COMMUTATOR = *);

COMMENT ON OPERATOR <->(embedding, embedding) IS 'Euclidean distance';
COMMENT ON OPERATOR <#>(embedding, embedding) IS 'negative inner product';
COMMENT ON OPERATOR <=>(embedding, embedding) IS 'cosine distance';
COMMENT ON OPERATOR +(embedding, embedding) IS 'element-wise sum';
COMMENT ON OPERATOR -(embedding, embedding) IS 'element-wise difference';
COMMENT ON OPERATOR *(embedding, embedding) IS 'element-wise product';

-- ---- comparison and the btree operator class -----------------------------------------------

CREATE FUNCTION embedding_lt(embedding, embedding) RETURNS boolean
    AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION embedding_le(embedding, embedding) RETURNS boolean
    AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION embedding_eq(embedding, embedding) RETURNS boolean
    AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION embedding_ne(embedding, embedding) RETURNS boolean
    AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION embedding_ge(embedding, embedding) RETURNS boolean
    AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION embedding_gt(embedding, embedding) RETURNS boolean
    AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION embedding_cmp(embedding, embedding) RETURNS integer
    AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

COMMENT ON FUNCTION embedding_lt(embedding, embedding) IS 'less than (component-wise order)';
COMMENT ON FUNCTION embedding_le(embedding, embedding) IS 'less than or equal (component-wise order)';
COMMENT ON FUNCTION embedding_eq(embedding, embedding) IS 'equal';
COMMENT ON FUNCTION embedding_ne(embedding, embedding) IS 'not equal';
COMMENT ON FUNCTION embedding_ge(embedding, embedding) IS 'greater than or equal (component-wise order)';
COMMENT ON FUNCTION embedding_gt(embedding, embedding) IS 'greater than (component-wise order)';
COMMENT ON FUNCTION embedding_cmp(embedding, embedding) IS 'btree comparison support';

CREATE OPERATOR < (LEFTARG = embedding, RIGHTARG = embedding, FUNCTION = embedding_lt,
    COMMUTATOR = >, NEGATOR = >=, RESTRICT = scalarltsel, JOIN = scalarltjoinsel);
CREATE OPERATOR <= (LEFTARG = embedding, RIGHTARG = embedding, FUNCTION = embedding_le,
    COMMUTATOR = >=, NEGATOR = >, RESTRICT = scalarlesel, JOIN = scalarlejoinsel);
CREATE OPERATOR = (LEFTARG = embedding, RIGHTARG = embedding, FUNCTION = embedding_eq,
    COMMUTATOR = =, NEGATOR = <>, RESTRICT = eqsel, JOIN = eqjoinsel);
CREATE OPERATOR <> (LEFTARG = embedding, RIGHTARG = embedding, FUNCTION = embedding_ne,
    COMMUTATOR = <>, NEGATOR = =, RESTRICT = neqsel, JOIN = neqjoinsel);
CREATE OPERATOR >= (LEFTARG = embedding, RIGHTARG = embedding, FUNCTION = embedding_ge,
    COMMUTATOR = <=, NEGATOR = <, RESTRICT = scalargesel, JOIN = scalargejoinsel);
CREATE OPERATOR > (LEFTARG = embedding, RIGHTARG = embedding, FUNCTION = embedding_gt,
    COMMUTATOR = <, NEGATOR = <=, RESTRICT = scalargtsel, JOIN = scalargtjoinsel);

COMMENT ON OPERATOR <(embedding, embedding) IS 'less than';
COMMENT ON OPERATOR <=(embedding, embedding) IS 'less than or equal';
COMMENT ON OPERATOR =(embedding, embedding) IS 'equal';
COMMENT ON OPERATOR <>(embedding, embedding) IS 'not equal';
COMMENT ON OPERATOR >=(embedding, embedding) IS 'greater than or equal';
COMMENT ON OPERATOR >(embedding, embedding) IS 'greater than';

CREATE OPERATOR CLASS embedding_btree_ops DEFAULT FOR TYPE embedding USING btree AS
    OPERATOR 1 <, OPERATOR 2 <=, OPERATOR 3 =, OPERATOR 4 >=, OPERATOR 5 >,
    FUNCTION 1 embedding_cmp(embedding, embedding);
COMMENT ON OPERATOR CLASS embedding_btree_ops USING btree IS 'equality and component-wise order of embeddings';

-- ---- aggregates: centroids -----------------------------------------------------------------

CREATE FUNCTION embedding_accum(double precision[], embedding) RETURNS double precision[]
    AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION embedding_combine(double precision[], double precision[]) RETURNS double precision[]
    AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION embedding_avg(double precision[]) RETURNS embedding
    AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION embedding_sum(double precision[]) RETURNS embedding
    AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

COMMENT ON FUNCTION embedding_accum(double precision[], embedding) IS 'avg/sum transition: adds one embedding to {count, sums...}';
COMMENT ON FUNCTION embedding_combine(double precision[], double precision[]) IS 'avg/sum combine function (parallel aggregation)';
COMMENT ON FUNCTION embedding_avg(double precision[]) IS 'avg final function: the centroid';
COMMENT ON FUNCTION embedding_sum(double precision[]) IS 'sum final function';

CREATE AGGREGATE avg(embedding) (
    SFUNC = embedding_accum, STYPE = double precision[], FINALFUNC = embedding_avg,
    COMBINEFUNC = embedding_combine, INITCOND = '{0}', PARALLEL = SAFE);
CREATE AGGREGATE sum(embedding) (
    SFUNC = embedding_accum, STYPE = double precision[], FINALFUNC = embedding_sum,
    COMBINEFUNC = embedding_combine, INITCOND = '{0}', PARALLEL = SAFE);

COMMENT ON AGGREGATE avg(embedding) IS 'element-wise mean: the centroid of a group of embeddings';
COMMENT ON AGGREGATE sum(embedding) IS 'element-wise sum of embeddings';
-- ============================================================================================
-- Image functions: decoding and the colour histogram (src/image/, lookalike_image.so)
-- ============================================================================================

CREATE FUNCTION color_histogram(image bytea, bins integer DEFAULT 8) RETURNS embedding
    AS '$libdir/lookalike_image', 'color_histogram' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION color_histogram(bytea, integer) IS
    'RGB colour histogram of a JPEG/PNG/WebP/BMP image: resized to 224x224 (bilinear), bins^3 components (index (b*bins+g)*bins+r), divided by their sum';

CREATE FUNCTION image_info(image bytea, OUT format text, OUT width bigint, OUT height bigint)
    AS '$libdir/lookalike_image', 'image_info' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION image_info(bytea) IS
    'format (JPEG, PNG, WebP or BMP) and pixel size read from an image''s header, without decoding it';
-- ============================================================================================
-- Foreground colour (src/image/foreground.cpp): the colour of the product's own pixels
-- ============================================================================================

CREATE FUNCTION foreground_color_histogram(image bytea, hue_bins integer DEFAULT 12,
                                           white_tolerance integer DEFAULT 20)
    RETURNS embedding
    AS '$libdir/lookalike_image', 'foreground_color_histogram'
    LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION foreground_color_histogram(bytea, integer, integer) IS
    'colour descriptor of a product photo without its background: near-white regions touching the border are masked, the rest goes into an HSV histogram (hue_bins x 3 x 3 chromatic + 4 grey bins), square-rooted to unit norm; compare with <=>';

CREATE FUNCTION fused_embedding(a embedding, b embedding, weight_a double precision DEFAULT 0.5)
    RETURNS embedding
    AS 'MODULE_PATHNAME', 'embedding_fused' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION fused_embedding(embedding, embedding, double precision) IS
    'concatenation of sqrt(w) a/|a| and sqrt(1-w) b/|b| (w = weight_a in [0,1]): a unit vector whose cosine similarity to another fused vector is w cos(a) + (1-w) cos(b), so ORDER BY fused <=> q ranks by the weighted sum of both similarities';
-- ============================================================================================
-- CNN embeddings with LibTorch: the model registry, image_embedding(), image_embeddings()
-- (src/model/, lookalike_model.so)
-- ============================================================================================

CREATE SCHEMA lookalike;
COMMENT ON SCHEMA lookalike IS 'lookalike''s catalog: the model registry';
GRANT USAGE ON SCHEMA lookalike TO PUBLIC;

CREATE TABLE lookalike.models (
    name text PRIMARY KEY CHECK (name <> ''),
    path text NOT NULL CHECK (path LIKE '/%'),
    sha256 text NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    input_size integer NOT NULL CHECK (input_size BETWEEN 8 AND 1024),
    mean real[] NOT NULL CHECK (cardinality(mean) = 3 AND array_ndims(mean) = 1),
    std real[] NOT NULL CHECK (cardinality(std) = 3 AND array_ndims(std) = 1 AND 0 < ALL (std)),
    dims integer NOT NULL CHECK (dims BETWEEN 1 AND 16000),
    description text,
    registered_at timestamptz NOT NULL DEFAULT now(),
    registered_by name NOT NULL DEFAULT current_user
);
COMMENT ON TABLE lookalike.models IS
    'TorchScript image encoders that image_embedding() can run; write it only through lookalike.register_model() and lookalike.unregister_model()';
COMMENT ON COLUMN lookalike.models.name IS 'the name image_embedding() and lookalike.default_model use';
COMMENT ON COLUMN lookalike.models.path IS 'absolute path of the TorchScript file, read by the server';
COMMENT ON COLUMN lookalike.models.sha256 IS 'sha256 of the file at registration; checked whenever a backend loads it';
COMMENT ON COLUMN lookalike.models.input_size IS 'images are resized to input_size x input_size (bilinear)';
COMMENT ON COLUMN lookalike.models.mean IS 'per-channel (R, G, B) mean subtracted from pixel/255';
COMMENT ON COLUMN lookalike.models.std IS 'per-channel (R, G, B) standard deviation dividing pixel/255 - mean';
COMMENT ON COLUMN lookalike.models.dims IS 'output dimension, measured by a forward pass at registration';
COMMENT ON COLUMN lookalike.models.description IS 'free text';
COMMENT ON COLUMN lookalike.models.registered_at IS 'when the model was registered';
COMMENT ON COLUMN lookalike.models.registered_by IS 'the superuser who registered it';
-- pg_dump keeps the registrations (the table belongs to the extension).
SELECT pg_catalog.pg_extension_config_dump('lookalike.models', '');
REVOKE ALL ON lookalike.models FROM PUBLIC;
GRANT SELECT ON lookalike.models TO PUBLIC;

CREATE FUNCTION lookalike._probe_model(path text, input_size integer, mean real[], std real[],
                                       OUT sha256 text, OUT dims integer)
    AS '$libdir/lookalike_model', 'lookalike_probe_model' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION lookalike._probe_model(text, integer, real[], real[]) IS
    'internal (superusers): loads a TorchScript file, returns its sha256 and output dimension';
REVOKE ALL ON FUNCTION lookalike._probe_model(text, integer, real[], real[]) FROM PUBLIC;

CREATE FUNCTION lookalike.register_model(
    name text, path text, input_size integer DEFAULT 224,
    mean real[] DEFAULT '{0.485,0.456,0.406}', std real[] DEFAULT '{0.229,0.224,0.225}',
    description text DEFAULT NULL)
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
    IF name IS NULL OR name = '' OR path IS NULL OR input_size IS NULL OR mean IS NULL OR std IS NULL THEN
        RAISE EXCEPTION 'name, path, input_size, mean and std must not be null or empty'
            USING ERRCODE = '22023';
    END IF;
    IF EXISTS (SELECT 1 FROM lookalike.models m WHERE m.name = register_model.name) THEN
        RAISE EXCEPTION 'model "%" is already registered', name
            USING ERRCODE = '42710', HINT = 'Unregister it first with lookalike.unregister_model().';
    END IF;
    probe := lookalike._probe_model(path, input_size, mean, std);
    INSERT INTO lookalike.models (name, path, sha256, input_size, mean, std, dims, description)
        VALUES (name, path, probe.sha256, input_size, mean, std, probe.dims, description)
        RETURNING * INTO result;
    RETURN result;
END
$$;
COMMENT ON FUNCTION lookalike.register_model(text, text, integer, real[], real[], text) IS
    'superusers: registers a TorchScript image encoder (records its sha256, measures its output dimension)';
REVOKE ALL ON FUNCTION lookalike.register_model(text, text, integer, real[], real[], text) FROM PUBLIC;

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
END
$$;
COMMENT ON FUNCTION lookalike.unregister_model(text) IS
    'superusers: removes a model from the registry (embeddings already stored are kept)';
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
-- ============================================================================================
-- Linear projections of embeddings (PCA, whitening): lookalike.projections, fit_projection(),
-- project() (src/vector/projection*.cpp applies them in lookalike.so; src/model/whitening.cpp
-- fits them with LibTorch in lookalike_model.so)
-- ============================================================================================

CREATE TABLE lookalike.projections (
    name text PRIMARY KEY CHECK (name <> ''),
    method text NOT NULL CHECK (method IN ('pca_whitening')),
    dims_in integer NOT NULL CHECK (dims_in BETWEEN 1 AND 16000),
    dims_out integer NOT NULL CHECK (dims_out BETWEEN 1 AND 16000),
    epsilon double precision NOT NULL,
    power double precision NOT NULL,
    rows bigint NOT NULL,
    variance_kept double precision NOT NULL,
    source text NOT NULL,
    data bytea NOT NULL,
    fitted_at timestamptz NOT NULL DEFAULT now(),
    owner name NOT NULL DEFAULT current_user
);
COMMENT ON TABLE lookalike.projections IS
    'linear projections y = W (x - mean) of embeddings, applied by project(); write it through lookalike.fit_projection() and lookalike.drop_projection(); every role reads all rows and changes only its own';
COMMENT ON COLUMN lookalike.projections.name IS 'the name project() takes';
COMMENT ON COLUMN lookalike.projections.method IS 'how it was fitted: pca_whitening (PCA, eigenvalues shrunk by epsilon and raised to -power)';
COMMENT ON COLUMN lookalike.projections.dims_in IS 'dimension of the embeddings it takes';
COMMENT ON COLUMN lookalike.projections.dims_out IS 'dimension of the embeddings it returns (the number of principal components kept)';
COMMENT ON COLUMN lookalike.projections.epsilon IS 'shrinkage: each eigenvalue l becomes l + epsilon * mean(eigenvalues)';
COMMENT ON COLUMN lookalike.projections.power IS 'component i is scaled by (l_i + epsilon * mean)^(-power): 0 rotation only, 0.5 full whitening';
COMMENT ON COLUMN lookalike.projections.rows IS 'number of (non-null) vectors it was fitted on';
COMMENT ON COLUMN lookalike.projections.variance_kept IS 'share of the total variance in the kept components (1 when all are kept)';
COMMENT ON COLUMN lookalike.projections.source IS 'the query it was fitted on';
COMMENT ON COLUMN lookalike.projections.data IS 'mean and matrix in lookalike''s binary projection format (src/vector/projection.hpp)';
COMMENT ON COLUMN lookalike.projections.fitted_at IS 'when it was fitted';
COMMENT ON COLUMN lookalike.projections.owner IS 'the role that fitted it; only that role (or a superuser) may refit or drop it';
SELECT pg_catalog.pg_extension_config_dump('lookalike.projections', '');
ALTER TABLE lookalike.projections ENABLE ROW LEVEL SECURITY;
CREATE POLICY projections_read ON lookalike.projections FOR SELECT USING (true);
CREATE POLICY projections_insert ON lookalike.projections FOR INSERT
    WITH CHECK (owner = current_user);
CREATE POLICY projections_update ON lookalike.projections FOR UPDATE
    USING (owner = current_user) WITH CHECK (owner = current_user);
CREATE POLICY projections_delete ON lookalike.projections FOR DELETE USING (owner = current_user);
GRANT SELECT, INSERT, UPDATE, DELETE ON lookalike.projections TO PUBLIC;

CREATE FUNCTION lookalike._fit_projection(query text, embedding_type regtype,
                                          epsilon double precision, power double precision,
                                          components integer,
                                          OUT data bytea, OUT dims_in integer,
                                          OUT dims_out integer, OUT rows bigint,
                                          OUT variance_kept double precision)
    AS '$libdir/lookalike_model', 'lookalike_fit_projection'
    LANGUAGE C VOLATILE CALLED ON NULL INPUT PARALLEL UNSAFE;
COMMENT ON FUNCTION lookalike._fit_projection(text, regtype, double precision, double precision, integer) IS
    'internal: fits a PCA whitening to the vectors a query returns; use lookalike.fit_projection()';

CREATE FUNCTION lookalike.fit_projection(name text, query text,
                                         epsilon double precision DEFAULT 1,
                                         power double precision DEFAULT 0.25,
                                         components integer DEFAULT NULL)
RETURNS lookalike.projections
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
AS $$
DECLARE
    fit record;
    result lookalike.projections;
BEGIN
    IF name IS NULL OR name = '' THEN
        RAISE EXCEPTION 'projection name must not be null or empty' USING ERRCODE = '22023';
    END IF;
    IF EXISTS (SELECT 1 FROM lookalike.projections p
               WHERE p.name = fit_projection.name AND p.owner <> current_user)
       AND NOT (SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user) THEN
        RAISE EXCEPTION 'projection "%" belongs to another role', name USING ERRCODE = '42501';
    END IF;
    fit := lookalike._fit_projection(query, '@extschema@.embedding'::regtype, epsilon, power,
                                     components);
    INSERT INTO lookalike.projections AS p
           (name, method, dims_in, dims_out, epsilon, power, rows, variance_kept, source, data)
    VALUES (name, 'pca_whitening', fit.dims_in, fit.dims_out, epsilon, power, fit.rows,
            fit.variance_kept, query, fit.data)
    ON CONFLICT ON CONSTRAINT projections_pkey DO UPDATE
        SET method = excluded.method, dims_in = excluded.dims_in, dims_out = excluded.dims_out,
            epsilon = excluded.epsilon, power = excluded.power, rows = excluded.rows,
            variance_kept = excluded.variance_kept, source = excluded.source,
            data = excluded.data, fitted_at = now()
    RETURNING * INTO result;
    RETURN result;
END
$$;
COMMENT ON FUNCTION lookalike.fit_projection(text, text, double precision, double precision, integer) IS
    'fits (or refits) the named projection to the vectors a query returns (one embedding column, nulls skipped): PCA, eigenvalues shrunk by epsilon * their mean and scaled by ^(-power); components keeps the largest ones (null: all). No labels involved';

CREATE FUNCTION lookalike.drop_projection(name text) RETURNS void
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
AS $$
BEGIN
    DELETE FROM lookalike.projections p WHERE p.name = drop_projection.name;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'projection "%" does not exist (or belongs to another role)', name
            USING ERRCODE = '42704';
    END IF;
END
$$;
COMMENT ON FUNCTION lookalike.drop_projection(text) IS
    'removes a projection of the current role (superusers: any); vectors already projected are kept';

-- STABLE: reads lookalike.projections (once per statement).
CREATE FUNCTION project(e embedding, projection text) RETURNS embedding
    AS 'MODULE_PATHNAME', 'embedding_project' LANGUAGE C STABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION project(embedding, text) IS
    'applies a projection of lookalike.projections: W (e - mean), e.g. a PCA whitening fitted by lookalike.fit_projection()';
-- ============================================================================================
-- The approximate nearest-neighbour index: access method lookalike_hnsw (src/index/)
-- ============================================================================================

CREATE FUNCTION lookalike_hnsw_handler(internal) RETURNS index_am_handler
    AS 'MODULE_PATHNAME' LANGUAGE C;
COMMENT ON FUNCTION lookalike_hnsw_handler(internal) IS 'handler of the lookalike_hnsw index access method';

CREATE ACCESS METHOD lookalike_hnsw TYPE INDEX HANDLER lookalike_hnsw_handler;
COMMENT ON ACCESS METHOD lookalike_hnsw IS
    'approximate nearest-neighbour index (HNSW graph over int8 codes, exact re-rank) for ORDER BY embedding <op> constant LIMIT k';

CREATE FUNCTION lookalike_hnsw_metric_l2(internal) RETURNS integer
    AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION lookalike_hnsw_metric_ip(internal) RETURNS integer
    AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION lookalike_hnsw_metric_cosine(internal) RETURNS integer
    AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION lookalike_hnsw_metric_l2(internal) IS 'lookalike_hnsw support function: Euclidean metric';
COMMENT ON FUNCTION lookalike_hnsw_metric_ip(internal) IS 'lookalike_hnsw support function: inner-product metric';
COMMENT ON FUNCTION lookalike_hnsw_metric_cosine(internal) IS 'lookalike_hnsw support function: cosine metric (vectors normalised)';

CREATE OPERATOR CLASS embedding_l2_ops FOR TYPE embedding USING lookalike_hnsw AS
    OPERATOR 1 <-> (embedding, embedding) FOR ORDER BY float_ops,
    FUNCTION 1 lookalike_hnsw_metric_l2(internal);
CREATE OPERATOR CLASS embedding_ip_ops FOR TYPE embedding USING lookalike_hnsw AS
    OPERATOR 1 <#> (embedding, embedding) FOR ORDER BY float_ops,
    FUNCTION 1 lookalike_hnsw_metric_ip(internal);
CREATE OPERATOR CLASS embedding_cosine_ops FOR TYPE embedding USING lookalike_hnsw AS
    OPERATOR 1 <=> (embedding, embedding) FOR ORDER BY float_ops,
    FUNCTION 1 lookalike_hnsw_metric_cosine(internal);
COMMENT ON OPERATOR CLASS embedding_l2_ops USING lookalike_hnsw IS 'lookalike_hnsw index for ORDER BY embedding <-> constant (Euclidean distance)';
COMMENT ON OPERATOR CLASS embedding_ip_ops USING lookalike_hnsw IS 'lookalike_hnsw index for ORDER BY embedding <#> constant (negative inner product)';
COMMENT ON OPERATOR CLASS embedding_cosine_ops USING lookalike_hnsw IS 'lookalike_hnsw index for ORDER BY embedding <=> constant (cosine distance; zero vectors are not indexed)';
-- ============================================================================================
-- Retrieval evaluation (docs/evaluation.md): exact batch k-NN, and a generic style-group
-- evaluation (Precision@k, Recall@k, Hit@k over seeded query/gallery splits) that any product
-- table can use. lookalike.create_evaluation() creates the evaluation's tables and BI views in
-- a schema of the user's choice; lookalike.refresh_evaluation() is the one call that
-- recomputes them.
-- ============================================================================================

CREATE FUNCTION exact_knn(query_ids bigint[], queries embedding[], ids bigint[],
                          vectors embedding[], k integer, metric text DEFAULT 'cosine',
                          exclude_self boolean DEFAULT true)
    RETURNS TABLE (query_id bigint, rank integer, id bigint, distance double precision)
    AS 'MODULE_PATHNAME', 'embedding_exact_knn' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE ROWS 1000;
COMMENT ON FUNCTION exact_knn(bigint[], embedding[], bigint[], embedding[], integer, text, boolean) IS
    'exact k nearest neighbours of every query among the vectors, ranked by (distance, id); metric cosine (<=>), l2 (<->) or inner_product (<#>); exclude_self skips a vector whose id equals the query id';

CREATE SCHEMA IF NOT EXISTS lookalike;
COMMENT ON SCHEMA lookalike IS 'lookalike''s functions that are not operators on embeddings (evaluation, model registry)';

CREATE FUNCTION lookalike.drop_temp_table(name) RETURNS void LANGUAGE plpgsql VOLATILE AS $fn$
BEGIN
    IF to_regclass('pg_temp.' || quote_ident($1)) IS NOT NULL THEN
        EXECUTE format('DROP TABLE pg_temp.%I', $1);
    END IF;
END
$fn$;
COMMENT ON FUNCTION lookalike.drop_temp_table(name) IS
    'internal: drops a temporary table of this session if it exists, without a notice';

-- ---- defining an evaluation ----------------------------------------------------------------

CREATE FUNCTION lookalike.create_evaluation(
    target_schema name, items text, id_column name, group_expression text,
    filter text DEFAULT NULL, min_group_size integer DEFAULT 4, max_group_size integer DEFAULT 20,
    seeds integer DEFAULT 20, k integer DEFAULT 5)
RETURNS void LANGUAGE plpgsql VOLATILE AS $fn$
DECLARE
    s text := quote_ident(target_schema);
BEGIN
    IF items IS NULL OR id_column IS NULL OR group_expression IS NULL OR target_schema IS NULL THEN
        RAISE EXCEPTION 'target_schema, items, id_column and group_expression must not be null'
            USING ERRCODE = '22004';
    END IF;
    IF min_group_size IS NULL OR min_group_size < 2 THEN
        RAISE EXCEPTION 'min_group_size must be at least 2 (a query needs a relevant gallery item)'
            USING ERRCODE = '22023';
    END IF;
    IF max_group_size IS NULL OR max_group_size < min_group_size THEN
        RAISE EXCEPTION 'max_group_size must be at least min_group_size' USING ERRCODE = '22023';
    END IF;
    IF seeds IS NULL OR seeds < 1 OR k IS NULL OR k < 1 THEN
        RAISE EXCEPTION 'seeds and k must be at least 1' USING ERRCODE = '22023';
    END IF;
    IF to_regnamespace(s) IS NULL THEN
        EXECUTE format('CREATE SCHEMA %s', s);
    END IF;

    EXECUTE format($$CREATE TABLE IF NOT EXISTS %1$s.retrieval_config (
        one_row boolean PRIMARY KEY DEFAULT true CHECK (one_row),
        items text NOT NULL, id_column name NOT NULL, group_expression text NOT NULL,
        filter text, min_group_size integer NOT NULL, max_group_size integer NOT NULL,
        seeds integer NOT NULL, k integer NOT NULL)$$, s);
    EXECUTE format($$COMMENT ON TABLE %1$s.retrieval_config IS
        'definition of this schema''s retrieval evaluation (lookalike.create_evaluation)'$$, s);
    EXECUTE format($$INSERT INTO %1$s.retrieval_config
        VALUES (true, %2$L, %3$L, %4$L, %5$L, %6$s, %7$s, %8$s, %9$s)
        ON CONFLICT (one_row) DO UPDATE SET items = excluded.items,
            id_column = excluded.id_column, group_expression = excluded.group_expression,
            filter = excluded.filter, min_group_size = excluded.min_group_size,
            max_group_size = excluded.max_group_size, seeds = excluded.seeds, k = excluded.k$$,
        s, items, id_column, group_expression, filter, min_group_size, max_group_size, seeds, k);

    EXECUTE format($$CREATE TABLE IF NOT EXISTS %1$s.retrieval_methods (
        method text PRIMARY KEY, features text NOT NULL,
        metric text NOT NULL DEFAULT 'cosine' CHECK (metric IN ('cosine', 'l2', 'inner_product')),
        description text)$$, s);
    EXECUTE format($$COMMENT ON TABLE %1$s.retrieval_methods IS
        'methods under evaluation: a query returning (id, embedding) and the distance used (lookalike.add_evaluation_method)'$$, s);

    EXECUTE format($$CREATE TABLE IF NOT EXISTS %1$s.retrieval_members (
        id bigint PRIMARY KEY, group_key text NOT NULL, group_size integer NOT NULL)$$, s);
    EXECUTE format($$COMMENT ON TABLE %1$s.retrieval_members IS
        'items of the evaluated groups (group size within the configured bounds); filled by lookalike.refresh_evaluation'$$, s);

    EXECUTE format($$CREATE TABLE IF NOT EXISTS %1$s.retrieval_results (
        method text NOT NULL, seed integer NOT NULL, query_id bigint NOT NULL,
        group_key text NOT NULL, group_size integer NOT NULL, k integer NOT NULL,
        ranked_ids bigint[] NOT NULL, distances double precision[] NOT NULL,
        relevant integer NOT NULL, PRIMARY KEY (method, seed, query_id))$$, s);
    EXECUTE format($$COMMENT ON TABLE %1$s.retrieval_results IS
        'per method, seed and query: the top-k gallery ids (ranked by distance, then id), their distances and how many share the query''s group; filled by lookalike.refresh_evaluation'$$, s);

    EXECUTE format($$CREATE OR REPLACE VIEW %1$s.retrieval_splits AS
        SELECT sd.seed, m.id, m.group_key, m.group_size,
               m.id = first_value(m.id) OVER (PARTITION BY sd.seed, m.group_key
                   ORDER BY md5(sd.seed || ':' || m.id) COLLATE "C", m.id) AS is_query
        FROM %1$s.retrieval_members m
        CROSS JOIN generate_series(1, (SELECT seeds FROM %1$s.retrieval_config)) AS sd(seed)$$, s);
    EXECUTE format($$COMMENT ON VIEW %1$s.retrieval_splits IS
        'the protocol''s split for each seed: in every group the member whose md5(seed || '':'' || id) sorts first is the query, all other members form the gallery'$$, s);

    EXECUTE format($$CREATE OR REPLACE VIEW %1$s.retrieval_queries AS
        SELECT method, k, seed, query_id, group_key, group_size, ranked_ids, distances, relevant,
               relevant::float8 / k AS precision_at_k,
               relevant::float8 / (group_size - 1) AS recall_at_k,
               (relevant > 0)::int::float8 AS hit_at_k
        FROM %1$s.retrieval_results$$, s);
    EXECUTE format($$COMMENT ON VIEW %1$s.retrieval_queries IS
        'drill-down: one row per method, seed and query with its top-k ids and its P@k, R@k, Hit@k'$$, s);

    EXECUTE format($$CREATE OR REPLACE VIEW %1$s.retrieval_metrics AS
        SELECT method, k, seed, count(*)::int AS queries,
               avg(precision_at_k) AS precision_at_k, avg(recall_at_k) AS recall_at_k,
               avg(hit_at_k) AS hit_at_k
        FROM %1$s.retrieval_queries GROUP BY method, k, seed$$, s);
    EXECUTE format($$COMMENT ON VIEW %1$s.retrieval_metrics IS
        'one row per method and seed: mean P@k, R@k and Hit@k over that split''s queries'$$, s);

    EXECUTE format($$CREATE OR REPLACE VIEW %1$s.retrieval_summary AS
        SELECT method, k, count(*)::int AS seeds,
               avg(precision_at_k) AS precision_at_k, avg(recall_at_k) AS recall_at_k,
               avg(hit_at_k) AS hit_at_k,
               coalesce(stddev_pop(precision_at_k), 0) AS precision_sd,
               coalesce(stddev_pop(recall_at_k), 0) AS recall_sd,
               coalesce(stddev_pop(hit_at_k), 0) AS hit_sd
        FROM %1$s.retrieval_metrics GROUP BY method, k$$, s);
    EXECUTE format($$COMMENT ON VIEW %1$s.retrieval_summary IS
        'one row per method: mean over seeds of P@k, R@k, Hit@k and their population standard deviation over seeds'$$, s);

    EXECUTE format($$CREATE OR REPLACE VIEW %1$s.retrieval_groups AS
        SELECT method, k, group_key, group_size, count(*)::int AS queries,
               avg(precision_at_k) AS precision_at_k, avg(recall_at_k) AS recall_at_k,
               avg(hit_at_k) AS hit_at_k
        FROM %1$s.retrieval_queries GROUP BY method, k, group_key, group_size$$, s);
    EXECUTE format($$COMMENT ON VIEW %1$s.retrieval_groups IS
        'drill-down per group: mean P@k, R@k, Hit@k of the group''s queries over all seeds'$$, s);

    -- A new definition makes earlier members and results stale.
    EXECUTE format('TRUNCATE %1$s.retrieval_members, %1$s.retrieval_results', s);
END
$fn$;
COMMENT ON FUNCTION lookalike.create_evaluation(name, text, name, text, text, integer, integer, integer, integer) IS
    'defines a retrieval evaluation in target_schema over items (a table, view or parenthesized query): items whose group_expression is equal form a group, groups of min..max items are kept; creates retrieval_config, _methods, _members, _results and the views retrieval_splits, _queries, _metrics, _summary, _groups';

CREATE FUNCTION lookalike.add_evaluation_method(
    target_schema name, method text, features text, metric text DEFAULT 'cosine',
    description text DEFAULT NULL)
RETURNS void LANGUAGE plpgsql VOLATILE AS $fn$
BEGIN
    IF method IS NULL OR features IS NULL OR metric IS NULL THEN
        RAISE EXCEPTION 'method, features and metric must not be null' USING ERRCODE = '22004';
    END IF;
    IF metric NOT IN ('cosine', 'l2', 'inner_product') THEN
        RAISE EXCEPTION 'unknown metric "%"', metric
            USING ERRCODE = '22023', HINT = 'Use cosine (<=>), l2 (<->) or inner_product (<#>).';
    END IF;
    IF to_regclass(format('%I.retrieval_methods', target_schema)) IS NULL THEN
        RAISE EXCEPTION 'schema "%" has no evaluation', target_schema
            USING ERRCODE = '55000', HINT = 'Call lookalike.create_evaluation() first.';
    END IF;
    EXECUTE format($$INSERT INTO %I.retrieval_methods VALUES (%L, %L, %L, %L)
        ON CONFLICT (method) DO UPDATE SET features = excluded.features,
            metric = excluded.metric, description = excluded.description$$,
        target_schema, method, features, metric, description);
    EXECUTE format('DELETE FROM %I.retrieval_results WHERE method = %L', target_schema, method);
END
$fn$;
COMMENT ON FUNCTION lookalike.add_evaluation_method(name, text, text, text, text) IS
    'adds or replaces a method of the evaluation in target_schema: features is a query whose first two columns are (id, embedding); metric cosine, l2 or inner_product';

CREATE FUNCTION lookalike.refresh_evaluation(
    target_schema name, only_method text DEFAULT NULL, extra_candidates integer DEFAULT 64)
RETURNS TABLE (method text, queries integer, seconds double precision)
LANGUAGE plpgsql VOLATILE AS $fn$
DECLARE
    s text := quote_ident(target_schema);
    cfg record;
    m record;
    t0 timestamptz;
    n bigint;
    missing bigint;
    deficient record;
BEGIN
    IF to_regclass(format('%I.retrieval_config', target_schema)) IS NULL THEN
        RAISE EXCEPTION 'schema "%" has no evaluation', target_schema
            USING ERRCODE = '55000', HINT = 'Call lookalike.create_evaluation() first.';
    END IF;
    IF extra_candidates IS NULL OR extra_candidates < 0 THEN
        RAISE EXCEPTION 'extra_candidates must be at least 0' USING ERRCODE = '22023';
    END IF;
    EXECUTE format('SELECT * FROM %s.retrieval_config', s) INTO cfg;

    IF only_method IS NOT NULL THEN
        EXECUTE format('SELECT count(*) FROM %s.retrieval_methods WHERE method = $1', s)
            USING only_method INTO n;
        IF n = 0 THEN
            RAISE EXCEPTION 'no method "%" in the evaluation of schema "%"', only_method, target_schema
                USING ERRCODE = '22023';
        END IF;
    END IF;

    -- The members: every item whose group has min..max items. If they changed since the last
    -- refresh, every method's results are stale.
    PERFORM lookalike.drop_temp_table('lookalike_eval_members');
    EXECUTE format($$CREATE TEMP TABLE lookalike_eval_members AS
        SELECT id, group_key, group_size FROM (
            SELECT id, group_key, count(*) OVER (PARTITION BY group_key)::int AS group_size
            FROM (SELECT (%1$I)::bigint AS id, (%2$s)::text AS group_key
                  FROM %3$s AS items WHERE %4$s) AS keyed
            WHERE group_key IS NOT NULL) AS sized
        WHERE group_size BETWEEN %5$s AND %6$s$$,
        cfg.id_column, cfg.group_expression, cfg.items, coalesce(cfg.filter, 'true'),
        cfg.min_group_size, cfg.max_group_size);
    EXECUTE format($$SELECT count(*) FROM (
        (SELECT * FROM pg_temp.lookalike_eval_members EXCEPT ALL SELECT * FROM %1$s.retrieval_members)
        UNION ALL
        (SELECT * FROM %1$s.retrieval_members EXCEPT ALL SELECT * FROM pg_temp.lookalike_eval_members)) d$$, s)
        INTO n;
    IF n > 0 THEN
        EXECUTE format('TRUNCATE %1$s.retrieval_members, %1$s.retrieval_results', s);
        EXECUTE format('INSERT INTO %s.retrieval_members SELECT * FROM pg_temp.lookalike_eval_members', s);
        EXECUTE format('ANALYZE %s.retrieval_members', s);
    END IF;
    PERFORM lookalike.drop_temp_table('lookalike_eval_members');

    -- The queries of every seed.
    PERFORM lookalike.drop_temp_table('lookalike_eval_queries');
    EXECUTE format($$CREATE TEMP TABLE lookalike_eval_queries AS
        SELECT seed, id, group_key, group_size FROM %s.retrieval_splits WHERE is_query$$, s);
    CREATE INDEX ON pg_temp.lookalike_eval_queries (seed, id);
    ANALYZE pg_temp.lookalike_eval_queries;

    FOR m IN EXECUTE format('SELECT * FROM %s.retrieval_methods WHERE $1 IS NULL OR method = $1 ORDER BY method', s)
        USING only_method
    LOOP
        t0 := clock_timestamp();
        EXECUTE format('DELETE FROM %s.retrieval_results WHERE method = $1', s) USING m.method;
        PERFORM lookalike.drop_temp_table('lookalike_eval_features');
        EXECUTE format($$CREATE TEMP TABLE lookalike_eval_features AS
            SELECT mb.id, f.feature FROM %1$s.retrieval_members mb
            LEFT JOIN (SELECT (f0.fid)::bigint AS id, (f0.feature)::embedding AS feature
                       FROM (%2$s) AS f0(fid, feature)) AS f ON f.id = mb.id$$,
            s, m.features);
        SELECT count(*) FILTER (WHERE feature IS NULL), count(*) - count(DISTINCT id)
            INTO missing, n FROM pg_temp.lookalike_eval_features;
        IF missing > 0 THEN
            RAISE EXCEPTION 'method "%": % of the evaluated items have no feature', m.method, missing
                USING ERRCODE = '22004',
                      HINT = 'The features query must return a non-null embedding for every member of retrieval_members.';
        END IF;
        IF n > 0 THEN
            RAISE EXCEPTION 'method "%": the features query returns % duplicate ids', m.method, n
                USING ERRCODE = '21000';
        END IF;

        -- Each item that is a query in some seed, against every member: the k + extra_candidates
        -- nearest (the query itself excluded). A seed's gallery leaves out that seed's other
        -- queries, so its top k is the first k of this list that are not queries of the seed.
        PERFORM lookalike.drop_temp_table('lookalike_eval_neighbours');
        CREATE TEMP TABLE lookalike_eval_neighbours AS
        SELECT nb.* FROM
            (SELECT array_agg(f.id ORDER BY f.id) AS qi, array_agg(f.feature ORDER BY f.id) AS qv
             FROM pg_temp.lookalike_eval_features f
             WHERE f.id IN (SELECT q.id FROM pg_temp.lookalike_eval_queries q)) AS qa,
            (SELECT array_agg(f.id ORDER BY f.id) AS vi, array_agg(f.feature ORDER BY f.id) AS vv
             FROM pg_temp.lookalike_eval_features f) AS va,
            LATERAL exact_knn(qa.qi, qa.qv, va.vi, va.vv, cfg.k + extra_candidates, m.metric, true) AS nb;
        CREATE INDEX ON pg_temp.lookalike_eval_neighbours (query_id, rank);
        ANALYZE pg_temp.lookalike_eval_neighbours;

        EXECUTE format($$INSERT INTO %1$s.retrieval_results
            SELECT $1, q.seed, q.id, q.group_key, q.group_size, $2,
                   coalesce(t.ids, '{}'), coalesce(t.dists, '{}'), coalesce(t.rel, 0)
            FROM pg_temp.lookalike_eval_queries q
            CROSS JOIN LATERAL (
                SELECT array_agg(top.id ORDER BY top.rank) AS ids,
                       array_agg(top.distance ORDER BY top.rank) AS dists,
                       count(*) FILTER (WHERE mb.group_key = q.group_key)::int AS rel
                FROM (SELECT nb.id, nb.rank, nb.distance FROM pg_temp.lookalike_eval_neighbours nb
                      WHERE nb.query_id = q.id
                        AND NOT EXISTS (SELECT 1 FROM pg_temp.lookalike_eval_queries o
                                        WHERE o.seed = q.seed AND o.id = nb.id)
                      ORDER BY nb.rank LIMIT $2) AS top
                JOIN %1$s.retrieval_members mb ON mb.id = top.id) AS t$$, s)
            USING m.method, cfg.k;

        -- Where the candidate list ran out before k gallery items (many of a seed's queries
        -- among a query's nearest), rank that seed's whole gallery for it instead.
        FOR deficient IN EXECUTE format($$
            SELECT r.seed, array_agg(r.query_id ORDER BY r.query_id) AS qids
            FROM %1$s.retrieval_results r
            WHERE r.method = $1 AND cardinality(r.ranked_ids) < $2
              AND (SELECT count(*) FROM pg_temp.lookalike_eval_neighbours nb
                   WHERE nb.query_id = r.query_id) >= $2 + $3
            GROUP BY r.seed$$, s) USING m.method, cfg.k, extra_candidates
        LOOP
            EXECUTE format($$UPDATE %1$s.retrieval_results r
                SET ranked_ids = t.ids, distances = t.dists, relevant = t.rel
                FROM (SELECT nb.query_id,
                             array_agg(nb.id ORDER BY nb.rank) AS ids,
                             array_agg(nb.distance ORDER BY nb.rank) AS dists,
                             count(*) FILTER (WHERE mb.group_key = mq.group_key)::int AS rel
                      FROM (SELECT array_agg(f.id ORDER BY f.id) AS qi,
                                   array_agg(f.feature ORDER BY f.id) AS qv
                            FROM pg_temp.lookalike_eval_features f WHERE f.id = ANY ($3)) AS qa,
                           (SELECT array_agg(f.id ORDER BY f.id) AS vi,
                                   array_agg(f.feature ORDER BY f.id) AS vv
                            FROM pg_temp.lookalike_eval_features f
                            WHERE NOT EXISTS (SELECT 1 FROM pg_temp.lookalike_eval_queries o
                                              WHERE o.seed = $2 AND o.id = f.id)) AS va,
                           LATERAL exact_knn(qa.qi, qa.qv, va.vi, va.vv, $4, $5, true) AS nb
                      JOIN %1$s.retrieval_members mb ON mb.id = nb.id
                      JOIN %1$s.retrieval_members mq ON mq.id = nb.query_id
                      GROUP BY nb.query_id) AS t
                WHERE r.method = $1 AND r.seed = $2 AND r.query_id = t.query_id$$, s)
                USING m.method, deficient.seed, deficient.qids, cfg.k, m.metric;
        END LOOP;

        method := m.method;
        EXECUTE format('SELECT count(*) FROM %s.retrieval_results WHERE method = $1', s)
            USING m.method INTO queries;
        seconds := round(extract(epoch FROM clock_timestamp() - t0)::numeric, 3)::float8;
        RETURN NEXT;
    END LOOP;
    PERFORM lookalike.drop_temp_table('lookalike_eval_queries');
    PERFORM lookalike.drop_temp_table('lookalike_eval_features');
    PERFORM lookalike.drop_temp_table('lookalike_eval_neighbours');
    EXECUTE format('ANALYZE %s.retrieval_results', s);
END
$fn$;
COMMENT ON FUNCTION lookalike.refresh_evaluation(name, text, integer) IS
    'recomputes the evaluation in target_schema: its members, and every method''s results (or only_method''s; all methods'' if the members changed); exact top-k per seed, query and method; returns the queries evaluated and the time taken per method';
