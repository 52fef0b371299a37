-- ============================================================================================
-- Linear projections of embeddings (PCA, whitening): lookalike.projections and fitting them,
-- fit_projection() (src/model/whitening.cpp, with LibTorch in lookalike_model.so). Applying one,
-- project(), is src/vector/'s (lookalike.so), declared in 10_embedding.sql.
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

-- One C function (lookalike_model.so) checks the name and the owner, runs the query as the
-- calling role, fits and stores the row: there is no internal helper that a role could call with
-- a type of its choosing. The statements it runs are schema-qualified; the caller's query runs
-- with the caller's search_path.
CREATE FUNCTION lookalike.fit_projection(name text, query text,
                                         epsilon double precision DEFAULT 1,
                                         power double precision DEFAULT 0.25,
                                         components integer DEFAULT NULL)
RETURNS lookalike.projections
    AS '$libdir/lookalike_model', 'lookalike_fit_and_store_projection'
    LANGUAGE C VOLATILE CALLED ON NULL INPUT PARALLEL UNSAFE;
COMMENT ON FUNCTION lookalike.fit_projection(text, text, double precision, double precision, integer) IS
    'fits (or refits) the named projection to the vectors a query returns (one embedding column, nulls skipped): PCA, eigenvalues shrunk by epsilon * their mean and scaled by ^(-power); components keeps the largest ones (null: all). No labels involved';

CREATE FUNCTION lookalike.drop_projection(name text) RETURNS void
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp
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
