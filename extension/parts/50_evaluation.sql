-- ============================================================================================
-- Retrieval evaluation (docs/evaluation.md), in SQL and PL/pgSQL over exact_knn()
-- (10_embedding.sql): a generic style-group evaluation (Precision@k, Recall@k, Hit@k over
-- seeded query/gallery splits) that any product table can use. lookalike.create_evaluation()
-- creates the evaluation's tables and BI views in a schema of the user's choice;
-- lookalike.refresh_evaluation() is the one call that recomputes them.
-- ============================================================================================

CREATE FUNCTION lookalike.drop_temp_table(name) RETURNS void LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, @extschema@, pg_temp AS $fn$
BEGIN
    IF to_regclass('pg_temp.' || quote_ident($1)) IS NOT NULL THEN
        EXECUTE format('DROP TABLE pg_temp.%I', $1);
    END IF;
END
$fn$;
COMMENT ON FUNCTION lookalike.drop_temp_table(name) IS
    'internal: drops a temporary table of this session if it exists, without a notice';

-- Descriptions of every table, view and column of an evaluation, for BI tools (they show
-- pg_description). create_evaluation() applies them; refresh_evaluation() applies them to an
-- evaluation created by an older release that lacks them.
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

-- ---- defining an evaluation ----------------------------------------------------------------

CREATE FUNCTION lookalike.create_evaluation(
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
COMMENT ON FUNCTION lookalike.create_evaluation(name, text, name, text, text, integer, integer, integer, integer) IS
    'defines a retrieval evaluation in target_schema over items (a table, view or parenthesized query): items whose group_expression is equal form a group, groups of min..max items are kept; creates retrieval_config, _methods, _members, _results and the views retrieval_splits, _queries, _metrics, _summary, _groups';

CREATE FUNCTION lookalike.add_evaluation_method(
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
COMMENT ON FUNCTION lookalike.add_evaluation_method(name, text, text, text, text) IS
    'adds or replaces a method of the evaluation in target_schema: features is a query whose first two columns are (id, embedding); metric cosine, l2 or inner_product';

CREATE FUNCTION lookalike.refresh_evaluation(
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
