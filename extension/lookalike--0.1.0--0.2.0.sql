-- lookalike 0.1.0 -> 0.2.0: run by ALTER EXTENSION lookalike UPDATE (TO '0.2.0').
-- Policy (docs/upgrading.md): every change to extension/parts/*.sql made for 0.2.0 is mirrored
-- here, so that an upgraded database and a fresh 0.2.0 install have the same catalogue
-- (test/tap/090_upgrade.pl compares them) and keep their data.
-- complain if the script is sourced in psql rather than through ALTER EXTENSION
\echo Use "ALTER EXTENSION lookalike UPDATE TO '0.2.0'" to load this file. \quit
-- Scale-out (src/scaleout/, docs/scale-out.md): top-k per partition over local and postgres_fdw
-- partitions. The coordinator wraps the query vector of a top-k query on foreign tables in this
-- function, which postgres_fdw ships with the ORDER BY: each shard then searches with the
-- coordinator's lookalike.ef_search and lookalike.max_scan_tuples.
CREATE FUNCTION with_search_settings(query embedding, ef_search integer, max_scan_tuples integer)
    RETURNS embedding
    AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION with_search_settings(embedding, integer, integer) IS 'returns the query unchanged; sets lookalike.ef_search and lookalike.max_scan_tuples for the rest of the transaction where they differ (shipped to shards by the partition top-k plan, see docs/scale-out.md)';

-- ---- evaluation: refresh_evaluation never blocks readers (computes aside, swaps
-- rows in with DELETE/INSERT, no TRUNCATE), keeps the rows of methods not refreshed, warns when
-- no group qualifies; every column of an evaluation's tables and views gets a comment
-- (lookalike._comment_evaluation, applied by create_evaluation and, for evaluations created by
-- 0.1.0, by the next refresh).
CREATE FUNCTION lookalike._comment_evaluation(target_schema name) RETURNS void
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, @extschema@, pg_temp AS $fn$
DECLARE
    c record;
BEGIN
    FOR c IN SELECT * FROM (VALUES
        ('retrieval_config', 'one_row', 'always true: the table holds one row'),
        ('retrieval_config', 'items', 'the table, view or parenthesized query of the items evaluated'),
        ('retrieval_config', 'id_column', 'the column of items that identifies an item (cast to bigint)'),
        ('retrieval_config', 'group_expression', 'SQL expression over items; items with equal values form a group (relevant to each other)'),
        ('retrieval_config', 'filter', 'SQL condition over items restricting what is evaluated (NULL: every item)'),
        ('retrieval_config', 'min_group_size', 'groups with fewer items are left out'),
        ('retrieval_config', 'max_group_size', 'groups with more items are left out'),
        ('retrieval_config', 'seeds', 'number of query/gallery splits (seeds 1..seeds)'),
        ('retrieval_config', 'k', 'length of each ranked list: metrics are P@k, R@k, Hit@k'),
        ('retrieval_methods', 'method', 'name of the method'),
        ('retrieval_methods', 'features', 'query returning (id, embedding) for every evaluated item'),
        ('retrieval_methods', 'metric', 'distance used to rank: cosine (<=>), l2 (<->) or inner_product (<#>)'),
        ('retrieval_methods', 'description', 'free text'),
        ('retrieval_members', 'id', 'item id'),
        ('retrieval_members', 'group_key', 'the item''s group (group_expression as text)'),
        ('retrieval_members', 'group_size', 'number of evaluated items in the group'),
        ('retrieval_results', 'method', 'the method ranked'),
        ('retrieval_results', 'seed', 'the split (1..seeds)'),
        ('retrieval_results', 'query_id', 'the query item of its group in this seed'),
        ('retrieval_results', 'group_key', 'the query''s group'),
        ('retrieval_results', 'group_size', 'size of the query''s group (the query included)'),
        ('retrieval_results', 'k', 'length of the ranked list'),
        ('retrieval_results', 'ranked_ids', 'the k nearest gallery items, nearest first (ties by id)'),
        ('retrieval_results', 'distances', 'their distances to the query, in the same order'),
        ('retrieval_results', 'relevant', 'how many of the ranked items share the query''s group'),
        ('retrieval_splits', 'seed', 'the split (1..seeds)'),
        ('retrieval_splits', 'id', 'item id'),
        ('retrieval_splits', 'group_key', 'the item''s group'),
        ('retrieval_splits', 'group_size', 'number of evaluated items in the group'),
        ('retrieval_splits', 'is_query', 'true for the group''s query in this seed, false for gallery items'),
        ('retrieval_queries', 'method', 'the method ranked'),
        ('retrieval_queries', 'k', 'length of the ranked list'),
        ('retrieval_queries', 'seed', 'the split (1..seeds)'),
        ('retrieval_queries', 'query_id', 'the query item'),
        ('retrieval_queries', 'group_key', 'the query''s group'),
        ('retrieval_queries', 'group_size', 'size of the query''s group (the query included)'),
        ('retrieval_queries', 'ranked_ids', 'the k nearest gallery items, nearest first'),
        ('retrieval_queries', 'distances', 'their distances to the query'),
        ('retrieval_queries', 'relevant', 'how many of the ranked items share the query''s group'),
        ('retrieval_queries', 'precision_at_k', 'P@k: relevant / k'),
        ('retrieval_queries', 'recall_at_k', 'R@k: relevant / (group_size - 1), the share of the group''s other items found'),
        ('retrieval_queries', 'hit_at_k', 'Hit@k: 1 if at least one ranked item is relevant, else 0'),
        ('retrieval_metrics', 'method', 'the method'),
        ('retrieval_metrics', 'k', 'length of the ranked lists'),
        ('retrieval_metrics', 'seed', 'the split'),
        ('retrieval_metrics', 'queries', 'number of queries (one per group) in this split'),
        ('retrieval_metrics', 'precision_at_k', 'mean P@k over the split''s queries'),
        ('retrieval_metrics', 'recall_at_k', 'mean R@k over the split''s queries'),
        ('retrieval_metrics', 'hit_at_k', 'mean Hit@k over the split''s queries'),
        ('retrieval_summary', 'method', 'the method'),
        ('retrieval_summary', 'k', 'length of the ranked lists'),
        ('retrieval_summary', 'seeds', 'number of splits averaged'),
        ('retrieval_summary', 'precision_at_k', 'P@k: mean over seeds of the mean over queries'),
        ('retrieval_summary', 'recall_at_k', 'R@k: mean over seeds of the mean over queries'),
        ('retrieval_summary', 'hit_at_k', 'Hit@k: mean over seeds of the mean over queries'),
        ('retrieval_summary', 'precision_sd', 'population standard deviation of P@k over seeds'),
        ('retrieval_summary', 'recall_sd', 'population standard deviation of R@k over seeds'),
        ('retrieval_summary', 'hit_sd', 'population standard deviation of Hit@k over seeds'),
        ('retrieval_groups', 'method', 'the method'),
        ('retrieval_groups', 'k', 'length of the ranked lists'),
        ('retrieval_groups', 'group_key', 'the group'),
        ('retrieval_groups', 'group_size', 'number of evaluated items in the group'),
        ('retrieval_groups', 'queries', 'number of (seed, query) pairs of the group'),
        ('retrieval_groups', 'precision_at_k', 'mean P@k of the group''s queries over all seeds'),
        ('retrieval_groups', 'recall_at_k', 'mean R@k of the group''s queries over all seeds'),
        ('retrieval_groups', 'hit_at_k', 'mean Hit@k of the group''s queries over all seeds')
    ) AS v(rel, col, description)
    LOOP
        -- Only columns that exist (a view of an older release may lack one).
        IF EXISTS (SELECT 1 FROM pg_catalog.pg_attribute a
                   WHERE a.attrelid = to_regclass(format('%I.%I', target_schema, c.rel))
                     AND a.attname = c.col AND NOT a.attisdropped) THEN
            EXECUTE format('COMMENT ON COLUMN %I.%I.%I IS %L', target_schema, c.rel, c.col, c.description);
        END IF;
    END LOOP;
END
$fn$;
COMMENT ON FUNCTION lookalike._comment_evaluation(name) IS
    'internal: puts a description on every column of an evaluation''s tables and views (for BI tools)';

CREATE OR REPLACE FUNCTION lookalike.create_evaluation(
    target_schema name, items text, id_column name, group_expression text,
    filter text DEFAULT NULL, min_group_size integer DEFAULT 4, max_group_size integer DEFAULT 20,
    seeds integer DEFAULT 20, k integer DEFAULT 5)
RETURNS void LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, @extschema@, pg_temp AS $fn$
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

    PERFORM lookalike._comment_evaluation(target_schema);
    -- A new definition makes earlier members and results stale. DELETE, not TRUNCATE: readers
    -- of the views keep seeing the old rows until this transaction commits, and never wait.
    EXECUTE format('DELETE FROM %1$s.retrieval_members', s);
    EXECUTE format('DELETE FROM %1$s.retrieval_results', s);
END
$fn$;

CREATE OR REPLACE FUNCTION lookalike.refresh_evaluation(
    target_schema name, only_method text DEFAULT NULL, extra_candidates integer DEFAULT 64)
RETURNS TABLE (method text, queries integer, seconds double precision)
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, @extschema@, pg_temp AS $fn$
DECLARE
    s text := quote_ident(target_schema);
    cfg record;
    m record;
    t0 timestamptz;
    n bigint;
    missing bigint;
    deficient record;
    stale text;
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

    -- Readers never wait for a refresh: every result is computed aside in temporary tables,
    -- and the evaluation's own tables only see DELETE/INSERT of rows (no TRUNCATE, no lock
    -- stronger than ROW EXCLUSIVE), so SELECTs on the views go on reading the rows of the last
    -- committed refresh until this one commits.

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
        EXECUTE format('DELETE FROM %s.retrieval_members', s);
        EXECUTE format('INSERT INTO %s.retrieval_members SELECT * FROM pg_temp.lookalike_eval_members', s);
        EXECUTE format('ANALYZE %s.retrieval_members', s);
        -- Methods not refreshed now keep their rows (computed for the previous members).
        EXECUTE format('SELECT string_agg(DISTINCT method, '', '' ORDER BY method) FROM %s.retrieval_results
                        WHERE $1 IS NOT NULL AND method <> $1', s)
            USING only_method INTO stale;
        IF stale IS NOT NULL THEN
            RAISE WARNING 'the members of the evaluation in schema "%" changed: the results of % were computed for the previous members',
                target_schema, stale
                USING HINT = 'Refresh them too (lookalike.refresh_evaluation with only_method NULL refreshes every method).';
        END IF;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_temp.lookalike_eval_members) THEN
        RAISE WARNING 'no group of the evaluation in schema "%" qualifies: none has between % and % items', target_schema,
            cfg.min_group_size, cfg.max_group_size
            USING DETAIL = 'There is nothing to evaluate; every method refreshed now has no results.',
                  HINT = 'Check items, filter and group_expression, or the group size bounds (lookalike.create_evaluation).';
    END IF;
    PERFORM lookalike.drop_temp_table('lookalike_eval_members');

    -- Evaluations created by an older release get the column descriptions (owner only).
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_attribute a
               WHERE a.attrelid = to_regclass(format('%I.retrieval_summary', target_schema))
                 AND a.attnum > 0 AND pg_catalog.col_description(a.attrelid, a.attnum) IS NULL) THEN
        BEGIN
            PERFORM lookalike._comment_evaluation(target_schema);
        EXCEPTION WHEN insufficient_privilege THEN
            NULL;
        END;
    END IF;

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
        PERFORM lookalike.drop_temp_table('lookalike_eval_results');
        EXECUTE format('CREATE TEMP TABLE lookalike_eval_results (LIKE %s.retrieval_results)', s);
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

        EXECUTE format($$INSERT INTO pg_temp.lookalike_eval_results
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
            FROM pg_temp.lookalike_eval_results r
            WHERE r.method = $1 AND cardinality(r.ranked_ids) < $2
              AND (SELECT count(*) FROM pg_temp.lookalike_eval_neighbours nb
                   WHERE nb.query_id = r.query_id) >= $2 + $3
            GROUP BY r.seed$$, s) USING m.method, cfg.k, extra_candidates
        LOOP
            EXECUTE format($$UPDATE pg_temp.lookalike_eval_results r
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

        -- The swap: the method's rows replaced in one statement pair, in this transaction.
        EXECUTE format('DELETE FROM %s.retrieval_results WHERE method = $1', s) USING m.method;
        EXECUTE format('INSERT INTO %s.retrieval_results SELECT * FROM pg_temp.lookalike_eval_results', s);
        method := m.method;
        SELECT count(*) INTO queries FROM pg_temp.lookalike_eval_results;
        seconds := round(extract(epoch FROM clock_timestamp() - t0)::numeric, 3)::float8;
        RETURN NEXT;
    END LOOP;
    PERFORM lookalike.drop_temp_table('lookalike_eval_queries');
    PERFORM lookalike.drop_temp_table('lookalike_eval_features');
    PERFORM lookalike.drop_temp_table('lookalike_eval_neighbours');
    PERFORM lookalike.drop_temp_table('lookalike_eval_results');
    EXECUTE format('ANALYZE %s.retrieval_results', s);
END
$fn$;
COMMENT ON FUNCTION lookalike.refresh_evaluation(name, text, integer) IS
    'recomputes the evaluation in target_schema: its members, and every method''s results (or only_method''s: the others keep theirs, with a WARNING if the members changed); exact top-k per seed, query and method, computed aside and swapped in, so readers never wait; WARNING when no group qualifies; returns the queries evaluated and the time taken per method';

-- ---- resumable bulk embedding: extension/parts/31_embed_table.sql as a whole ------
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
-- ---- hardening --------------------------------------------------------------------------------
-- fit_projection is one C function that takes only the extension's own embedding type; the
-- internal lookalike._fit_projection, which trusted a type its caller named, is gone.
DROP FUNCTION lookalike._fit_projection(text, regtype, double precision, double precision, integer);
CREATE OR REPLACE FUNCTION lookalike.fit_projection(name text, query text,
                                         epsilon double precision DEFAULT 1,
                                         power double precision DEFAULT 0.25,
                                         components integer DEFAULT NULL)
RETURNS lookalike.projections
    AS '$libdir/lookalike_model', 'lookalike_fit_and_store_projection'
    LANGUAGE C VOLATILE CALLED ON NULL INPUT PARALLEL UNSAFE;
-- Internal functions are not executable by PUBLIC.
REVOKE EXECUTE ON FUNCTION embedding_accum(double precision[], embedding),
    embedding_combine(double precision[], double precision[]), embedding_avg(double precision[]),
    embedding_sum(double precision[]) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION embedding_distance_support(internal) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION lookalike_hnsw_handler(internal), lookalike_hnsw_metric_l2(internal),
    lookalike_hnsw_metric_ip(internal), lookalike_hnsw_metric_cosine(internal) FROM PUBLIC;

-- Every PL/pgSQL function pins its search_path (the evaluation functions and their helpers:
-- pg_catalog, then the extension schema for the embedding operators and exact_knn, then
-- pg_temp; drop_projection: pg_catalog, pg_temp).
CREATE OR REPLACE FUNCTION lookalike.drop_temp_table(name) RETURNS void LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, @extschema@, pg_temp AS $fn$
BEGIN
    IF to_regclass('pg_temp.' || quote_ident($1)) IS NOT NULL THEN
        EXECUTE format('DROP TABLE pg_temp.%I', $1);
    END IF;
END
$fn$;
CREATE OR REPLACE FUNCTION lookalike.add_evaluation_method(
    target_schema name, method text, features text, metric text DEFAULT 'cosine',
    description text DEFAULT NULL)
RETURNS void LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, @extschema@, pg_temp AS $fn$
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
CREATE OR REPLACE FUNCTION lookalike.drop_projection(name text) RETURNS void
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

-- ---- training image encoders in the database (docs/training.md) -----------------------------------
-- Models stored in the database have no path.
ALTER TABLE lookalike.models ALTER COLUMN path DROP NOT NULL;
COMMENT ON COLUMN lookalike.models.path IS 'absolute path of the TorchScript file, read by the server; NULL for a model stored in the database (lookalike.model_data, e.g. trained by lookalike.train_model())';
COMMENT ON COLUMN lookalike.models.sha256 IS 'sha256 of the file (or of the stored TorchScript) at registration; checked whenever a backend loads it';
-- How an image is resized to the model's input: 'stretch' (0.1.0's only way) or 'pad'.
ALTER TABLE lookalike.models ADD COLUMN resize text NOT NULL DEFAULT 'stretch' CHECK (resize IN ('stretch', 'pad'));
COMMENT ON COLUMN lookalike.models.resize IS 'how an image becomes the input (input_width x input_size pixels): ''stretch'' resizes it to that box, ''pad'' keeps its aspect ratio (the largest size that fits the box) and fills the rest with white, the background of catalogue photographs';
ALTER TABLE lookalike.models ADD COLUMN input_width integer CHECK (input_width BETWEEN 8 AND 1024);
COMMENT ON COLUMN lookalike.models.input_width IS 'the input''s width in pixels; NULL: input_size (a square). A box of the catalogue photographs'' shape (e.g. 168 x 224 for 3:4 portraits) spends no computation on padding';
COMMENT ON COLUMN lookalike.models.input_size IS 'the input''s height: images are resized to input_width x input_size pixels, input_size x input_size if input_width is NULL (bilinear; see resize)';
CREATE OR REPLACE FUNCTION lookalike.unregister_model(name text) RETURNS void
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

-- ---- model files: _probe_model refuses anything but a regular file of at
-- most lookalike.max_model_bytes and returns the canonical path, which register_model stores.
DROP FUNCTION lookalike._probe_model(text, integer, real[], real[]);
CREATE FUNCTION lookalike._probe_model(path text, input_size integer, mean real[], std real[],
                                       input_width integer, OUT sha256 text, OUT dims integer,
                                       OUT canonical_path text)
    AS '$libdir/lookalike_model', 'lookalike_probe_model' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION lookalike._probe_model(text, integer, real[], real[], integer) IS
    'internal (superusers): loads a TorchScript file (a regular file of at most lookalike.max_model_bytes), returns its sha256, output dimension and canonical path';
REVOKE ALL ON FUNCTION lookalike._probe_model(text, integer, real[], real[], integer) FROM PUBLIC;

-- register_model also gained resize and input_width (the columns added above): a new signature
DROP FUNCTION lookalike.register_model(text, text, integer, real[], real[], text);
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
