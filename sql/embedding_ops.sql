-- Distances, operators, arithmetic, comparison, aggregates, exact top-k.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS lookalike;
RESET client_min_messages;
\set VERBOSITY sqlstate
SET extra_float_digits = 0;

SELECT l2_distance('[0,0]', '[3,4]'::embedding), '[0,0]'::embedding <-> '[3,4]';
SELECT l2_squared_distance('[0,0]', '[3,4]'::embedding);
SELECT inner_product('[1,2,3]', '[4,5,6]'::embedding), '[1,2,3]'::embedding <#> '[4,5,6]';
SELECT cosine_distance('[1,0]', '[0,1]'::embedding), '[1,2]'::embedding <=> '[2,4]', '[1,1]'::embedding <=> '[-1,-1]';
SELECT round(cosine_similarity('[1,2,3]', '[4,5,6]'::embedding)::numeric, 6);
SELECT norm('[3,4]'), l2_normalize('[3,4]'), l2_normalize('[0,0]');
SELECT '[1,2]'::embedding + '[3,4]', '[1,2]'::embedding - '[3,4]', '[1,2]'::embedding * '[3,4]';
-- mixed dimensions: 22000
SELECT '[1,2]'::embedding <=> '[1,2,3]';
SELECT '[1,2]'::embedding <-> '[1,2,3]';
SELECT '[1,2]'::embedding + '[1,2,3]';
-- overflow: 22003
SELECT '[3e38]'::embedding + '[3e38]';
SELECT '[1e30]'::embedding * '[1e30]';
SELECT sum(e) FROM (VALUES ('[3e38]'::embedding), ('[3e38]')) v(e);

-- zero vector under cosine: NaN (documented); never aborts an ORDER BY, sorts last
SELECT '[0,0]'::embedding <=> '[1,2]', cosine_similarity('[0,0]', '[1,2]');
CREATE TABLE items (id int, e embedding(2));
INSERT INTO items VALUES (1, '[1,0]'), (2, '[0,1]'), (3, '[0,0]'), (4, NULL), (5, '[1,1]'), (6, '[-1,0]');
SELECT id, round((e <=> '[1,0.1]')::numeric, 4) AS d FROM items ORDER BY e <=> '[1,0.1]', id;
SELECT id FROM items ORDER BY e <=> '[1,0.1]' LIMIT 3;
SELECT id FROM items ORDER BY e <-> '[1,0.1]' LIMIT 3;
SELECT id FROM items ORDER BY e <#> '[1,0.1]' LIMIT 3;
-- query vector of the wrong dimension
SELECT id FROM items ORDER BY e <=> '[1,0,0]' LIMIT 3;

-- comparison, btree, DISTINCT, GROUP BY
SELECT '[1,2]'::embedding = '[1,2]', '[1,2]'::embedding < '[1,3]', '[1,2]'::embedding < '[1,2,0]', '[2]'::embedding > '[1,9]';
SELECT e, count(*) FROM (VALUES ('[1,2]'::embedding), ('[1,2]'), ('[0,5]')) v(e) GROUP BY e ORDER BY e;
CREATE UNIQUE INDEX ON items (e);
INSERT INTO items VALUES (7, '[1,0]');

-- aggregates: centroid and sum, NULLs skipped, empty input gives NULL
SELECT avg(e), sum(e) FROM items;
SELECT avg(e) IS NULL AS empty FROM items WHERE false;
SELECT avg(e) FROM (VALUES ('[1,2]'::embedding), ('[1,2,3]')) v(e);
-- parallel aggregation (combine function)
CREATE TABLE many AS SELECT i AS id, ARRAY[i % 10, 1, -1]::embedding AS e FROM generate_series(1, 20000) i;
ANALYZE many;
SET parallel_setup_cost = 0; SET parallel_tuple_cost = 0; SET min_parallel_table_scan_size = 0;
SET max_parallel_workers_per_gather = 2;
EXPLAIN (COSTS OFF) SELECT avg(e) FROM many;
SELECT avg(e), sum(e) FROM many;
SELECT (SELECT array_agg(id) FROM (SELECT id FROM many ORDER BY e <-> '[3,1,-1]', id LIMIT 3) s);
RESET max_parallel_workers_per_gather; RESET parallel_setup_cost; RESET parallel_tuple_cost; RESET min_parallel_table_scan_size;

-- every kernel gives the same answers
SET lookalike.simd = portable;
SELECT lookalike_simd();
SELECT id FROM items ORDER BY e <=> '[1,0.1]' LIMIT 4;
CREATE TABLE big AS SELECT i AS id, (SELECT array_agg(sin(i * 7 + j)) FROM generate_series(1, 1280) j)::embedding AS e FROM generate_series(1, 200) i;
CREATE TABLE ref AS SELECT id, e <=> (SELECT e FROM big WHERE id = 1) c,
  e <-> (SELECT e FROM big WHERE id = 1) l, e <#> (SELECT e FROM big WHERE id = 1) ip FROM big;
RESET lookalike.simd;
-- float rounding differs between instruction sets only in the last bits
SELECT count(*) AS differing FROM big JOIN ref USING (id)
  WHERE abs((e <=> (SELECT e FROM big WHERE id = 1)) - c) > 1e-6
     OR abs((e <-> (SELECT e FROM big WHERE id = 1)) - l) > 1e-5 * (1 + abs(l))
     OR abs((e <#> (SELECT e FROM big WHERE id = 1)) - ip) > 1e-5 * (1 + abs(ip));
SET lookalike.simd = bogus;

-- values stay inline: a 1280-d embedding is not moved to the TOAST table
CREATE TABLE wide (id int, e embedding(1280));
INSERT INTO wide SELECT id, e FROM big;
SELECT pg_relation_size(reltoastrelid) AS toast_bytes FROM pg_class WHERE relname = 'wide';
DROP TABLE items, many, big, ref, wide;
