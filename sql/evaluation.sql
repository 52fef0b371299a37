-- exact_knn() and the generic retrieval evaluation (lookalike.create_evaluation,
-- add_evaluation_method, refresh_evaluation and the retrieval_* views) on small hand-made data
-- whose metrics are known exactly.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS lookalike;
RESET client_min_messages;
SET extra_float_digits = 0;

-- ---- exact_knn ---------------------------------------------------------------------------------
-- cosine: query 1 = [1,0]; vectors 1..4; self (id 1) excluded; tie between 2 and 3 broken by id
SELECT * FROM exact_knn(ARRAY[1, 4]::bigint[], ARRAY['[1,0]', '[0,1]']::embedding[],
                        ARRAY[1, 3, 2, 4]::bigint[],
                        ARRAY['[1,0]', '[1,1]', '[2,2]', '[0,1]']::embedding[], 2);
-- l2 and inner product, self kept
SELECT * FROM exact_knn(ARRAY[7]::bigint[], ARRAY['[0,0]']::embedding[], ARRAY[7, 8, 9]::bigint[],
                        ARRAY['[0,0]', '[3,4]', '[1,0]']::embedding[], 5, 'l2', false);
SELECT * FROM exact_knn(ARRAY[7]::bigint[], ARRAY['[1,1]']::embedding[], ARRAY[8, 9]::bigint[],
                        ARRAY['[3,4]', '[1,0]']::embedding[], 1, 'inner_product');
-- a zero vector has no cosine: NaN, ranked last
SELECT * FROM exact_knn(ARRAY[1]::bigint[], ARRAY['[1,0]']::embedding[], ARRAY[2, 3]::bigint[],
                        ARRAY['[0,0]', '[0,1]']::embedding[], 2);
-- empty input: no rows
SELECT count(*) FROM exact_knn('{}', '{}', ARRAY[1]::bigint[], ARRAY['[1]']::embedding[], 1);
\set VERBOSITY sqlstate
SELECT * FROM exact_knn(ARRAY[1]::bigint[], ARRAY['[1,0]']::embedding[], ARRAY[2]::bigint[], ARRAY['[1,0]']::embedding[], 0);
SELECT * FROM exact_knn(ARRAY[1]::bigint[], ARRAY['[1,0]']::embedding[], ARRAY[2]::bigint[], ARRAY['[1,0]']::embedding[], 1, 'hamming');
SELECT * FROM exact_knn(ARRAY[1, 2]::bigint[], ARRAY['[1,0]']::embedding[], ARRAY[2]::bigint[], ARRAY['[1,0]']::embedding[], 1);
SELECT * FROM exact_knn(ARRAY[1]::bigint[], ARRAY['[1,0]']::embedding[], ARRAY[2, 3]::bigint[], ARRAY['[1,0]', NULL]::embedding[], 1);
SELECT * FROM exact_knn(ARRAY[1]::bigint[], ARRAY['[1,0]']::embedding[], ARRAY[2]::bigint[], ARRAY['[1,0,0]']::embedding[], 1);
\set VERBOSITY default

-- ---- a catalogue with known answers ------------------------------------------------------------
-- Groups by colour: red (3 items), blue (2), green (2), black (1: too small), white (4: too
-- large with max_group_size 3: items 14..17 have images, item 13 has none and is filtered out).
CREATE SCHEMA shop;
CREATE TABLE shop.items (sku integer PRIMARY KEY, colour text, has_image boolean,
                         oracle embedding, flat embedding);
INSERT INTO shop.items VALUES
  (1, 'red',   true, '[1,0,0]', '[1,1]'), (2, 'red',  true, '[1,0,0]', '[1,1]'),
  (3, 'red',   true, '[1,0,0]', '[1,1]'),
  (4, 'blue',  true, '[0,1,0]', '[1,1]'), (5, 'blue', true, '[0,1,0]', '[1,1]'),
  (6, 'green', true, '[0,0,1]', '[1,1]'), (7, 'green', true, '[0,0,1]', '[1,1]'),
  (8, 'black', true, '[1,1,1]', '[1,1]'),
  (13, 'white', false, NULL, NULL),
  (14, 'white', true, '[1,1,0]', '[1,1]'), (15, 'white', true, '[1,1,0]', '[1,1]'),
  (16, 'white', true, '[1,1,0]', '[1,1]'), (17, 'white', true, '[1,1,0]', '[1,1]');

SELECT lookalike.create_evaluation('shop', 'shop.items', 'sku', 'colour', filter => 'has_image',
                                   min_group_size => 2, max_group_size => 3, seeds => 3, k => 2);
-- oracle: identical vectors within a group, orthogonal across groups. With k = 2 a red query
-- finds its 2 mates (P 1, R 1), a blue or green query its 1 mate and one other (P 0.5, R 1).
SELECT lookalike.add_evaluation_method('shop', 'oracle', 'SELECT sku, oracle FROM shop.items');
-- flat: every vector equal, so the ranking is by id: the 2 smallest gallery ids.
SELECT lookalike.add_evaluation_method('shop', 'flat', 'SELECT sku, flat FROM shop.items', 'l2',
                                       'all distances equal');
SELECT method, queries FROM lookalike.refresh_evaluation('shop');
SELECT id, group_key, group_size FROM shop.retrieval_members ORDER BY id;
-- the split: per seed and group, the member whose md5('<seed>:<id>') sorts first
SELECT seed, group_key, id, md5(seed || ':' || id) FROM shop.retrieval_splits WHERE is_query ORDER BY seed, group_key;
SELECT seed, group_key, string_agg(id::text, ',' ORDER BY md5(seed || ':' || id)) AS ids_by_md5
FROM shop.retrieval_splits GROUP BY seed, group_key ORDER BY seed, group_key;
SELECT method, seed, query_id, ranked_ids, relevant, precision_at_k, recall_at_k, hit_at_k
FROM shop.retrieval_queries ORDER BY method, seed, query_id;
SELECT method, k, seed, queries, round(precision_at_k::numeric, 4) AS p, round(recall_at_k::numeric, 4) AS r,
       round(hit_at_k::numeric, 4) AS h
FROM shop.retrieval_metrics ORDER BY method, seed;
SELECT method, k, seeds, round(precision_at_k::numeric, 4) AS p, round(recall_at_k::numeric, 4) AS r,
       round(hit_at_k::numeric, 4) AS h, round(precision_sd::numeric, 4) AS p_sd,
       round(recall_sd::numeric, 4) AS r_sd, round(hit_sd::numeric, 4) AS h_sd
FROM shop.retrieval_summary ORDER BY method;
SELECT method, group_key, group_size, queries, round(precision_at_k::numeric, 4) AS p
FROM shop.retrieval_groups ORDER BY method, group_key;
-- the oracle's figures follow from the group sizes alone
SELECT bool_and(abs(precision_at_k - (1.0 + 0.5 + 0.5) / 3) < 1e-12 AND recall_at_k = 1 AND hit_at_k = 1)
FROM shop.retrieval_metrics WHERE method = 'oracle';

-- idempotent: refreshing again gives the same rows
CREATE TEMP TABLE before AS SELECT * FROM shop.retrieval_results;
SELECT method, queries FROM lookalike.refresh_evaluation('shop', 'flat');
SELECT count(*) FROM (SELECT * FROM before EXCEPT SELECT * FROM shop.retrieval_results) d;

-- ---- random vectors: the results equal a brute-force ORDER BY ... LIMIT k per seed and query ----
CREATE TABLE shop.random_items AS
SELECT i AS id, (i % 9) AS grp,
       (SELECT array_agg(round((random() * 2 - 1)::numeric, 2)::float8 ORDER BY d)
        FROM generate_series(1, 4) d WHERE i > 0)::embedding AS e
FROM (SELECT setseed(0.42)) s, generate_series(1, 60) i;
SELECT lookalike.create_evaluation('rnd', 'shop.random_items', 'id', 'grp', seeds => 4, k => 3,
                                   min_group_size => 2, max_group_size => 7);
SELECT lookalike.add_evaluation_method('rnd', 'cos', 'SELECT id, e FROM shop.random_items');
SELECT lookalike.add_evaluation_method('rnd', 'l2', 'SELECT id, e FROM shop.random_items', 'l2');
SELECT method, queries FROM lookalike.refresh_evaluation('rnd');
CREATE TEMP VIEW brute AS
SELECT m.method, s.seed, s.id AS query_id,
       ARRAY(SELECT g.id FROM rnd.retrieval_splits g JOIN shop.random_items gi ON gi.id = g.id
             WHERE g.seed = s.seed AND NOT g.is_query
             ORDER BY CASE m.method WHEN 'cos' THEN gi.e <=> qi.e ELSE gi.e <-> qi.e END, g.id
             LIMIT 3) AS ids
FROM rnd.retrieval_splits s JOIN shop.random_items qi ON qi.id = s.id
CROSS JOIN (VALUES ('cos'), ('l2')) m(method)
WHERE s.is_query;
SELECT count(*) AS results, count(*) FILTER (WHERE r.ranked_ids = b.ids) AS equal_to_brute_force
FROM rnd.retrieval_results r JOIN brute b USING (method, seed, query_id);
-- with no extra candidates most lists run short and the per-seed fallback ranks the gallery
SELECT method, queries FROM lookalike.refresh_evaluation('rnd', extra_candidates => 0);
SELECT count(*) AS results, count(*) FILTER (WHERE r.ranked_ids = b.ids) AS equal_to_brute_force
FROM rnd.retrieval_results r JOIN brute b USING (method, seed, query_id);
SELECT count(*) FROM rnd.retrieval_metrics;

-- ---- errors ------------------------------------------------------------------------------------
\set VERBOSITY sqlstate
SELECT lookalike.create_evaluation('x', 'shop.items', 'sku', 'colour', min_group_size => 1);
SELECT lookalike.create_evaluation('x', 'shop.items', 'sku', 'colour', max_group_size => 3);
SELECT lookalike.create_evaluation('x', 'shop.items', 'sku', 'colour', k => 0);
SELECT lookalike.create_evaluation('x', NULL, 'sku', 'colour');
SELECT lookalike.add_evaluation_method('nosuch', 'm', 'SELECT 1, ''[1]''::embedding');
SELECT lookalike.add_evaluation_method('shop', 'm', 'SELECT 1', 'manhattan');
SELECT * FROM lookalike.refresh_evaluation('nosuch');
SELECT * FROM lookalike.refresh_evaluation('shop', 'nosuch');
SELECT * FROM lookalike.refresh_evaluation('shop', extra_candidates => -1);
-- a method whose features miss some members
SELECT lookalike.add_evaluation_method('shop', 'partial', 'SELECT sku, oracle FROM shop.items WHERE sku <> 2');
SELECT * FROM lookalike.refresh_evaluation('shop', 'partial');
SELECT lookalike.add_evaluation_method('shop', 'partial', 'SELECT sku, oracle FROM shop.items UNION ALL SELECT 1, ''[1,0,0]''');
SELECT * FROM lookalike.refresh_evaluation('shop', 'partial');
\set VERBOSITY default
-- the earlier results are intact after the failed refreshes
SELECT method, count(*) FROM shop.retrieval_results GROUP BY method ORDER BY method;
