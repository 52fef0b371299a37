-- ============================================================================================
-- Training image encoders inside the database: lookalike.train_model(), lookalike.model_data,
-- lookalike.training_progress (src/model/training*.cpp, lookalike_model.so; docs/training.md)
-- ============================================================================================

CREATE TABLE lookalike.model_data (
    name text PRIMARY KEY CHECK (name <> ''),
    torchscript bytea NOT NULL,
    base_model text NOT NULL,
    training jsonb NOT NULL
);
COMMENT ON TABLE lookalike.model_data IS
    'TorchScript of the models stored in the database (trained by lookalike.train_model()); the registration itself is the row of lookalike.models with the same name and a NULL path';
COMMENT ON COLUMN lookalike.model_data.name IS 'the model''s name in lookalike.models';
COMMENT ON COLUMN lookalike.model_data.torchscript IS 'the TorchScript archive; its sha256 is lookalike.models.sha256, checked whenever a backend loads it';
COMMENT ON COLUMN lookalike.model_data.base_model IS 'the model training started from';
COMMENT ON COLUMN lookalike.model_data.training IS 'how it was trained: options, label columns and classes, images, per-epoch loss and time, threads, cache size';
SELECT pg_catalog.pg_extension_config_dump('lookalike.model_data', '');
REVOKE ALL ON lookalike.model_data FROM PUBLIC;
GRANT SELECT ON lookalike.model_data TO PUBLIC;

CREATE FUNCTION lookalike._train_model(name text, base_model text, training_query text,
                                       epochs integer, embedding_dims integer,
                                       trainable_blocks integer, batch_size integer,
                                       learning_rate double precision,
                                       base_learning_rate double precision, seed integer,
                                       augmented_views integer, margin double precision,
                                       pooled_blocks integer, proxies_per_class integer,
                                       ensemble_members integer,
                                       label_weights double precision[] DEFAULT NULL,
                                       bn_neck boolean DEFAULT false,
                                       OUT torchscript bytea, OUT sha256 text, OUT dims integer,
                                       OUT training jsonb)
    AS '$libdir/lookalike_model', 'lookalike_train_model'
    LANGUAGE C VOLATILE CALLED ON NULL INPUT PARALLEL UNSAFE;
COMMENT ON FUNCTION lookalike._train_model(text, text, text, integer, integer, integer, integer, double precision, double precision, integer, integer, double precision, integer, integer, integer, double precision[], boolean) IS
    'internal (superusers): trains an encoder from a registered model and a query of (image, labels...); returns the TorchScript; use lookalike.train_model()';
REVOKE ALL ON FUNCTION lookalike._train_model(text, text, text, integer, integer, integer, integer, double precision, double precision, integer, integer, double precision, integer, integer, integer, double precision[], boolean) FROM PUBLIC;

CREATE FUNCTION lookalike.train_model(
    name text, base_model text, training_query text,
    epochs integer DEFAULT 2, embedding_dims integer DEFAULT 256,
    trainable_blocks integer DEFAULT 6, batch_size integer DEFAULT 32,
    learning_rate double precision DEFAULT 0.001,
    base_learning_rate double precision DEFAULT 0.0003,
    seed integer DEFAULT 1, description text DEFAULT NULL, augmented_views integer DEFAULT 0,
    margin double precision DEFAULT 0, pooled_blocks integer DEFAULT 1,
    proxies_per_class integer DEFAULT 1, ensemble_members integer DEFAULT 1,
    label_weights double precision[] DEFAULT NULL, bn_neck boolean DEFAULT false)
RETURNS lookalike.models
-- The training query runs with this pinned search_path too: it must schema-qualify its tables.
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    base lookalike.models;
    t record;
    result lookalike.models;
BEGIN
    IF NOT (SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user) THEN
        RAISE EXCEPTION 'only superusers may train models'
            USING ERRCODE = '42501', DETAIL = 'A trained model is TorchScript that runs inside the server.';
    END IF;
    IF name IS NULL OR name = '' OR base_model IS NULL OR training_query IS NULL OR epochs IS NULL
       OR embedding_dims IS NULL OR trainable_blocks IS NULL OR batch_size IS NULL
       OR learning_rate IS NULL OR base_learning_rate IS NULL OR seed IS NULL
       OR augmented_views IS NULL OR margin IS NULL OR pooled_blocks IS NULL
       OR proxies_per_class IS NULL OR ensemble_members IS NULL OR bn_neck IS NULL THEN
        RAISE EXCEPTION 'arguments of train_model must not be null (nor name empty)'
            USING ERRCODE = '22023';
    END IF;
    IF EXISTS (SELECT 1 FROM lookalike.models m WHERE m.name = train_model.name) THEN
        RAISE EXCEPTION 'model "%" is already registered', name
            USING ERRCODE = '42710', HINT = 'Unregister it first with lookalike.unregister_model().';
    END IF;
    SELECT * INTO base FROM lookalike.models m WHERE m.name = train_model.base_model;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'base model "%" is not registered', base_model USING ERRCODE = '42704';
    END IF;
    t := lookalike._train_model(name, base_model, training_query, epochs, embedding_dims,
                                trainable_blocks, batch_size, learning_rate, base_learning_rate,
                                seed, augmented_views, margin, pooled_blocks,
                                proxies_per_class, ensemble_members, label_weights, bn_neck);
    INSERT INTO lookalike.model_data (name, torchscript, base_model, training)
        VALUES (name, t.torchscript, base_model, t.training);
    INSERT INTO lookalike.models (name, path, sha256, input_size, mean, std, dims, description, resize,
                                  input_width)
        VALUES (name, NULL, t.sha256, base.input_size, base.mean, base.std, t.dims,
                coalesce(description, 'trained from ' || base_model || ' by lookalike.train_model()'),
                base.resize, base.input_width)
        RETURNING * INTO result;
    RETURN result;
END
$$;
COMMENT ON FUNCTION lookalike.train_model(text, text, text, integer, integer, integer, integer, double precision, double precision, integer, text, integer, double precision, integer, integer, integer, double precision[], boolean) IS
    'superusers: trains an image encoder from a registered model on a query of (image bytea, label columns...) and registers it, stored in the database';
REVOKE ALL ON FUNCTION lookalike.train_model(text, text, text, integer, integer, integer, integer, double precision, double precision, integer, text, integer, double precision, integer, integer, integer, double precision[], boolean) FROM PUBLIC;

CREATE FUNCTION lookalike._training_progress_files() RETURNS SETOF text
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
    SELECT pg_read_file('pg_stat_tmp/' || f, 0, 8192, true)
      FROM pg_ls_dir('pg_stat_tmp', true, false) AS f
     WHERE f ~ '^lookalike_training\.[0-9]+$'
$$;
COMMENT ON FUNCTION lookalike._training_progress_files() IS
    'internal: the progress files (pg_stat_tmp/lookalike_training.<pid>) of running train_model() calls';
REVOKE ALL ON FUNCTION lookalike._training_progress_files() FROM PUBLIC;

CREATE VIEW lookalike.training_progress AS
SELECT (j->>'pid')::integer AS pid,
       j->>'model' AS model,
       j->>'phase' AS phase,
       (j->>'epoch')::integer AS epoch,
       (j->>'epochs')::integer AS epochs,
       (j->>'done')::bigint AS done,
       (j->>'total')::bigint AS total,
       (j->>'loss')::double precision AS loss,
       (j->>'seconds')::double precision AS seconds
  FROM (SELECT f::jsonb AS j FROM lookalike._training_progress_files() AS f
         WHERE f IS NOT NULL AND f <> '') AS files
 WHERE EXISTS (SELECT 1 FROM pg_catalog.pg_stat_activity a WHERE a.pid = (j->>'pid')::integer);
COMMENT ON VIEW lookalike.training_progress IS
    'one row per running lookalike.train_model() call, readable from any session of a superuser: phase (reading, caching, training, saving), epoch of epochs, done of total (images while caching, steps while training), last epoch''s loss, seconds since the start';
