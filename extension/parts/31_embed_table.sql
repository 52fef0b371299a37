-- ============================================================================================
-- Resumable bulk embedding: lookalike.embed_table() fills an embedding column in committed
-- batches (image_embeddings() per batch), so a cancel or a crash loses at most one batch and a
-- second CALL carries on; lookalike.embedding_jobs / lookalike.embedding_progress show the
-- progress to every session (docs/model.md).
-- ============================================================================================

CREATE TABLE lookalike.embedding_jobs (
    job_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    relation regclass NOT NULL,
    embedding_column name NOT NULL,
    model text,
    pid integer NOT NULL DEFAULT pg_catalog.pg_backend_pid(),
    state text NOT NULL DEFAULT 'running' CHECK (state IN ('running', 'done')),
    rows_total bigint NOT NULL,
    rows_done bigint NOT NULL DEFAULT 0,
    rows_failed bigint NOT NULL DEFAULT 0,
    batches integer NOT NULL DEFAULT 0,
    last_id bigint,
    started_at timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
    updated_at timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
    run_by name NOT NULL DEFAULT current_user
);
COMMENT ON TABLE lookalike.embedding_jobs IS
    'one row per CALL lookalike.embed_table(), updated and committed after every batch, so other sessions see the progress; read lookalike.embedding_progress';
COMMENT ON COLUMN lookalike.embedding_jobs.job_id IS 'job number';
COMMENT ON COLUMN lookalike.embedding_jobs.relation IS 'the table whose embedding column is filled';
COMMENT ON COLUMN lookalike.embedding_jobs.embedding_column IS 'the column filled';
COMMENT ON COLUMN lookalike.embedding_jobs.model IS 'the model (NULL: lookalike.default_model)';
COMMENT ON COLUMN lookalike.embedding_jobs.pid IS 'the backend running the job';
COMMENT ON COLUMN lookalike.embedding_jobs.state IS 'running or done (a running job whose backend is gone was interrupted: see embedding_progress)';
COMMENT ON COLUMN lookalike.embedding_jobs.rows_total IS 'rows to embed when the job started';
COMMENT ON COLUMN lookalike.embedding_jobs.rows_done IS 'rows embedded and committed';
COMMENT ON COLUMN lookalike.embedding_jobs.rows_failed IS 'rows whose image could not be embedded (on_error => ''null''; their embedding stays NULL)';
COMMENT ON COLUMN lookalike.embedding_jobs.batches IS 'batches committed';
COMMENT ON COLUMN lookalike.embedding_jobs.last_id IS 'id of the last row of the last committed batch';
COMMENT ON COLUMN lookalike.embedding_jobs.started_at IS 'when the job started';
COMMENT ON COLUMN lookalike.embedding_jobs.updated_at IS 'when the last batch was committed';
COMMENT ON COLUMN lookalike.embedding_jobs.run_by IS 'the role that ran the job';
ALTER TABLE lookalike.embedding_jobs ENABLE ROW LEVEL SECURITY;
CREATE POLICY embedding_jobs_read ON lookalike.embedding_jobs FOR SELECT USING (true);
CREATE POLICY embedding_jobs_insert ON lookalike.embedding_jobs FOR INSERT WITH CHECK (run_by = current_user);
CREATE POLICY embedding_jobs_update ON lookalike.embedding_jobs FOR UPDATE
    USING (run_by = current_user) WITH CHECK (run_by = current_user);
CREATE POLICY embedding_jobs_delete ON lookalike.embedding_jobs FOR DELETE USING (run_by = current_user);
GRANT SELECT, INSERT, UPDATE, DELETE ON lookalike.embedding_jobs TO PUBLIC;

CREATE VIEW lookalike.embedding_progress AS
SELECT j.job_id, j.relation, j.embedding_column, j.model,
       CASE WHEN j.state = 'done' THEN 'done'
            WHEN EXISTS (SELECT 1 FROM pg_catalog.pg_stat_activity a
                         WHERE a.pid = j.pid AND a.backend_start <= j.started_at) THEN 'running'
            ELSE 'interrupted' END AS state,
       j.rows_done, j.rows_total, j.rows_failed,
       round(100.0 * j.rows_done / greatest(j.rows_total, 1), 1) AS percent,
       round((j.rows_done / greatest(extract(epoch FROM j.updated_at - j.started_at), 0.001))::numeric, 1)
           AS images_per_second,
       CASE WHEN j.state = 'running' AND j.rows_done > 0 AND j.rows_total > j.rows_done
            THEN (j.updated_at - j.started_at) * ((j.rows_total - j.rows_done)::float8 / j.rows_done) END
           AS time_left,
       j.batches, j.last_id, j.pid, j.started_at, j.updated_at, j.run_by
FROM lookalike.embedding_jobs j;
COMMENT ON VIEW lookalike.embedding_progress IS
    'progress of lookalike.embed_table() jobs, readable from any session while they run';
COMMENT ON COLUMN lookalike.embedding_progress.job_id IS 'job number';
COMMENT ON COLUMN lookalike.embedding_progress.relation IS 'the table whose embedding column is filled';
COMMENT ON COLUMN lookalike.embedding_progress.embedding_column IS 'the column filled';
COMMENT ON COLUMN lookalike.embedding_progress.model IS 'the model (NULL: lookalike.default_model)';
COMMENT ON COLUMN lookalike.embedding_progress.state IS 'running, done, or interrupted (cancelled, crashed or disconnected: CALL embed_table again to carry on)';
COMMENT ON COLUMN lookalike.embedding_progress.rows_done IS 'rows embedded and committed';
COMMENT ON COLUMN lookalike.embedding_progress.rows_total IS 'rows to embed when the job started';
COMMENT ON COLUMN lookalike.embedding_progress.rows_failed IS 'rows whose image could not be embedded';
COMMENT ON COLUMN lookalike.embedding_progress.percent IS '100 * rows_done / rows_total';
COMMENT ON COLUMN lookalike.embedding_progress.images_per_second IS 'rows_done per second since the start, up to the last committed batch';
COMMENT ON COLUMN lookalike.embedding_progress.time_left IS 'estimated time to finish at the rate so far (running jobs)';
COMMENT ON COLUMN lookalike.embedding_progress.batches IS 'batches committed';
COMMENT ON COLUMN lookalike.embedding_progress.last_id IS 'id of the last row of the last committed batch';
COMMENT ON COLUMN lookalike.embedding_progress.pid IS 'the backend running the job';
COMMENT ON COLUMN lookalike.embedding_progress.started_at IS 'when the job started';
COMMENT ON COLUMN lookalike.embedding_progress.updated_at IS 'when the last batch was committed';
COMMENT ON COLUMN lookalike.embedding_progress.run_by IS 'the role that ran the job';
GRANT SELECT ON lookalike.embedding_progress TO PUBLIC;

CREATE PROCEDURE lookalike.embed_table(
    target regclass, id_column name, image_column name, embedding_column name,
    model text DEFAULT NULL, hash_column name DEFAULT NULL, batch_rows integer DEFAULT 256,
    on_error text DEFAULT 'error')
LANGUAGE plpgsql AS $fn$
DECLARE
    todo text;      -- the condition of a row that needs embedding
    hash_set text := '';
    job bigint;
    total bigint;
    ids bigint[];
    last bigint := NULL;
    n_done bigint;
    n_failed bigint;
BEGIN
    IF target IS NULL OR id_column IS NULL OR image_column IS NULL OR embedding_column IS NULL THEN
        RAISE EXCEPTION 'target, id_column, image_column and embedding_column must not be null'
            USING ERRCODE = '22004';
    END IF;
    IF batch_rows IS NULL OR batch_rows < 1 OR batch_rows > 100000 THEN
        RAISE EXCEPTION 'batch_rows must be between 1 and 100000' USING ERRCODE = '22023';
    END IF;
    IF on_error IS NULL OR on_error NOT IN ('error', 'null') THEN
        RAISE EXCEPTION 'on_error must be ''error'' or ''null''' USING ERRCODE = '22023';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_attribute a
                   WHERE a.attrelid = target AND a.attname = id_column AND NOT a.attisdropped
                     AND a.atttypid IN ('smallint'::regtype, 'integer'::regtype, 'bigint'::regtype)) THEN
        RAISE EXCEPTION 'column "%" of % is not an integer id column', id_column, target
            USING ERRCODE = '42804';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_attribute a
                   WHERE a.attrelid = target AND a.attname = embedding_column AND NOT a.attisdropped
                     AND a.atttypid = '@extschema@.embedding'::regtype) THEN
        RAISE EXCEPTION 'column "%" of % is not an embedding column', embedding_column, target
            USING ERRCODE = '42804';
    END IF;
    todo := format('%I IS NULL', embedding_column);
    IF hash_column IS NOT NULL THEN
        -- The md5 of the image the embedding was computed from: a changed image is embedded anew.
        todo := format('(%s OR %I IS DISTINCT FROM pg_catalog.md5(%I))', todo, hash_column, image_column);
        hash_set := format(', %I = pg_catalog.md5(t.%I)', hash_column, image_column);
    END IF;
    todo := format('%s AND %I IS NOT NULL', todo, image_column);

    EXECUTE format('SELECT count(*) FROM %s WHERE %s', target, todo) INTO total;
    INSERT INTO lookalike.embedding_jobs (relation, embedding_column, model, rows_total)
        VALUES (target, embedding_column, model, total) RETURNING job_id INTO job;
    COMMIT;

    LOOP
        -- The next batch in id order: rows that still need an embedding, after the last batch
        -- (a row that failed with on_error => 'null' is not picked again in this run).
        EXECUTE format('SELECT array_agg(id ORDER BY id) FROM (SELECT (%I)::bigint AS id FROM %s
                        WHERE %s AND ($1 IS NULL OR %I > $1) ORDER BY %I LIMIT $2) s',
                       id_column, target, todo, id_column, id_column)
            INTO ids USING last, batch_rows;
        EXIT WHEN ids IS NULL;
        EXECUTE format($q$WITH e AS (
                SELECT * FROM @extschema@.image_embeddings(%L, %L, %L))
            UPDATE %s AS t SET %I = e.embedding %s FROM e WHERE t.%I = e.id$q$,
            format('SELECT %I, %I FROM %s WHERE %I = ANY (%L::bigint[])',
                   id_column, image_column, target, id_column, ids),
            model, on_error, target, embedding_column, hash_set, id_column);
        EXECUTE format('SELECT count(*) FILTER (WHERE %I IS NOT NULL), count(*) FILTER (WHERE %I IS NULL)
                        FROM %s WHERE %I = ANY ($1)', embedding_column, embedding_column, target, id_column)
            INTO n_done, n_failed USING ids;
        last := ids[cardinality(ids)];
        UPDATE lookalike.embedding_jobs
           SET rows_done = rows_done + n_done, rows_failed = rows_failed + n_failed,
               batches = batches + 1, last_id = last, updated_at = pg_catalog.clock_timestamp()
         WHERE job_id = job;
        COMMIT;
    END LOOP;
    UPDATE lookalike.embedding_jobs SET state = 'done', updated_at = pg_catalog.clock_timestamp()
     WHERE job_id = job;
    COMMIT;
END
$fn$;
COMMENT ON PROCEDURE lookalike.embed_table(regclass, name, name, name, text, name, integer, text) IS
    'fills embedding_column of target with image_embedding(image_column) in committed batches of batch_rows rows (only rows whose embedding is NULL or, with hash_column, whose image''s md5 differs from hash_column, which it sets); a cancel or crash loses at most one batch and a new CALL carries on; progress in lookalike.embedding_progress. CALL it outside a transaction block';
