-- The lookalike_hnsw index: plans, exact results on tiny sets, NULLs, zero vectors, options,
-- TRUNCATE, REINDEX, bad input.
SET enable_seqscan = off;
CREATE TABLE items (id int PRIMARY KEY, cat int, e embedding(3));
INSERT INTO items SELECT i, i % 7, ARRAY[sin(i), cos(i * 1.3), sin(i * 0.7) + 0.5]::real[]
  FROM generate_series(1, 300) i;
INSERT INTO items VALUES (1001, 0, NULL), (1002, 0, '[0,0,0]');

CREATE INDEX items_l2 ON items USING lookalike_hnsw (e embedding_l2_ops);
CREATE INDEX items_ip ON items USING lookalike_hnsw (e embedding_ip_ops) WITH (m = 4, ef_construction = 8);
CREATE INDEX items_cos ON items USING lookalike_hnsw (e embedding_cosine_ops);

EXPLAIN (COSTS OFF) SELECT id FROM items ORDER BY e <-> '[0.1,0.2,0.3]' LIMIT 5;
EXPLAIN (COSTS OFF) SELECT id FROM items ORDER BY e <#> '[0.1,0.2,0.3]' LIMIT 5;
EXPLAIN (COSTS OFF) SELECT id FROM items ORDER BY e <=> '[0.1,0.2,0.3]' LIMIT 5;
-- No ORDER BY on a distance: the index is never used.
EXPLAIN (COSTS OFF) SELECT id FROM items WHERE id < 3;

-- Index results equal the exact scan (the executor re-ranks with the exact distance).
CREATE FUNCTION top_ids(q text, op text, k int, use_index bool) RETURNS int[] LANGUAGE plpgsql AS $$
DECLARE r int[];
BEGIN
  EXECUTE format('SET LOCAL enable_indexscan = %s', use_index);
  EXECUTE format('SET LOCAL enable_seqscan = %s', NOT use_index);
  EXECUTE format('SELECT array_agg(id) FROM (SELECT id FROM items ORDER BY e %s %L::embedding, id LIMIT %s) s', op, q, k) INTO r;
  RETURN r;
END $$;
SELECT op, q, top_ids(q, op, 10, true) = top_ids(q, op, 10, false) AS same
  FROM unnest(ARRAY['<->', '<#>', '<=>']) op,
       unnest(ARRAY['[0.1,0.2,0.3]', '[-1,0.5,2]', '[0.9,-0.9,0.1]']) q
  ORDER BY 1, 2;
SELECT id, round((e <-> '[0.5,0.5,0.5]')::numeric, 4) AS d FROM items ORDER BY e <-> '[0.5,0.5,0.5]' LIMIT 3;

-- NULLs are not indexed; the zero vector is not in the cosine index.
SELECT count(*) FROM (SELECT id FROM items ORDER BY e <-> '[1,1,1]') s;
SELECT count(*) FROM (SELECT id FROM items ORDER BY e <=> '[1,1,1]') s;
SELECT bool_or(id = 1002) AS zero_found FROM (SELECT id FROM items ORDER BY e <=> '[1,1,1]') s;
-- A zero query with cosine (NaN for every row): every indexed row, in no particular order.
SELECT count(*) FROM (SELECT id FROM items ORDER BY e <=> '[0,0,0]' LIMIT 1000) s;
-- A NULL query (a parameter, so the planner cannot fold it): every indexed row.
PREPARE nullq(embedding) AS SELECT count(*) FROM (SELECT id FROM items ORDER BY e <-> $1 LIMIT 1000) s;
SET plan_cache_mode = force_generic_plan;
EXPLAIN (COSTS OFF) EXECUTE nullq(NULL);
EXECUTE nullq(NULL);
RESET plan_cache_mode;
DEALLOCATE nullq;

-- Filtered search keeps going past ef_search until LIMIT rows match.
SET lookalike.ef_search = 5;
SELECT count(*) FROM (SELECT id FROM items WHERE cat = 3 ORDER BY e <-> '[0.1,0.2,0.3]' LIMIT 20) s;
SELECT count(*) FROM (SELECT id FROM items WHERE id % 50 = 0 ORDER BY e <=> '[0.1,0.2,0.3]' LIMIT 6) s;
RESET lookalike.ef_search;

-- Inserts, updates and deletes after the build.
INSERT INTO items SELECT i, i % 7, ARRAY[cos(i), sin(i * 1.1), cos(i * 0.3)]::real[] FROM generate_series(301, 400) i;
UPDATE items SET e = '[5,5,5]' WHERE id = 7;
DELETE FROM items WHERE id % 4 = 0;
SELECT id FROM items ORDER BY e <-> '[5,5,5]' LIMIT 1;
VACUUM items;
SELECT op, q, top_ids(q, op, 10, true) = top_ids(q, op, 10, false) AS same
  FROM unnest(ARRAY['<->', '<#>', '<=>']) op,
       unnest(ARRAY['[0.1,0.2,0.3]', '[-1,0.5,2]']) q
  ORDER BY 1, 2;
SELECT count(*) FROM (SELECT id FROM items ORDER BY e <-> '[1,1,1]') s;

-- TRUNCATE and REINDEX.
TRUNCATE items;
SELECT count(*) FROM (SELECT id FROM items ORDER BY e <-> '[1,1,1]') s;
INSERT INTO items VALUES (1, 1, '[1,0,0]'), (2, 1, '[0,1,0]'), (3, 1, '[0.9,0.1,0]');
SELECT id FROM items ORDER BY e <-> '[1,0,0]' LIMIT 2;
REINDEX INDEX items_l2;
SELECT id FROM items ORDER BY e <-> '[1,0,0]' LIMIT 2;

-- Bad input and options.
SELECT id FROM items ORDER BY e <-> '[1,0]' LIMIT 1;
CREATE INDEX ON items USING lookalike_hnsw (e embedding_l2_ops) WITH (m = 1);
CREATE INDEX ON items USING lookalike_hnsw (e embedding_l2_ops) WITH (m = 101);
CREATE INDEX ON items USING lookalike_hnsw (e embedding_l2_ops) WITH (ef_construction = 1001);
CREATE INDEX ON items USING lookalike_hnsw (e embedding_l2_ops) WITH (m = 16, ef_construction = 20);
CREATE INDEX ON items USING lookalike_hnsw (e embedding_l2_ops) WITH (foo = 1);
CREATE TABLE anydim (e embedding);
INSERT INTO anydim VALUES ('[1,2]'), ('[1,2,3]');
CREATE INDEX ON anydim USING lookalike_hnsw (e embedding_l2_ops);
TRUNCATE anydim;
CREATE INDEX anydim_idx ON anydim USING lookalike_hnsw (e embedding_l2_ops);
INSERT INTO anydim VALUES ('[1,2]');
INSERT INTO anydim VALUES ('[1,2,3]');
SELECT e FROM anydim ORDER BY e <-> '[1,1]' LIMIT 1;
CREATE TABLE wide (e embedding(8000));
CREATE INDEX ON wide USING lookalike_hnsw (e embedding_l2_ops);
SET lookalike.ef_search = 0;
SET lookalike.ef_search = 1001;
SHOW lookalike.ef_search;
SHOW lookalike.max_scan_tuples;

-- Unlogged tables (init fork).
CREATE UNLOGGED TABLE ul (e embedding(2));
CREATE INDEX ON ul USING lookalike_hnsw (e embedding_cosine_ops);
INSERT INTO ul VALUES ('[1,0]'), ('[0,1]');
SELECT e FROM ul ORDER BY e <=> '[1,0.1]' LIMIT 1;

DROP TABLE items, anydim, wide, ul;
DROP FUNCTION top_ids;
