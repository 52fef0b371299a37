-- Top-k per partition (lookalike.partition_topk, src/scaleout/): ORDER BY <embedding column>
-- <op> <query> LIMIT k on a partitioned table is planned as each partition's own k best (exact
-- top-k scan, index scan + Limit, or bounded sort), appended, sorted, limited; the answer is a
-- plain table's with the same rows. Foreign partitions (postgres_fdw) are tested by
-- test/tap/050_scaleout.pl, which starts shard servers.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS lookalike;
RESET client_min_messages;
-- Partitions of every kind: range, a sub-partitioned one (hash), one whose columns are in another
-- order with a dropped column, and the default partition.
CREATE TABLE pt (id int, cat int, e embedding(3)) PARTITION BY RANGE (id);
CREATE TABLE pt_a PARTITION OF pt FOR VALUES FROM (MINVALUE) TO (600);
CREATE TABLE pt_b PARTITION OF pt FOR VALUES FROM (600) TO (1400) PARTITION BY HASH (id);
CREATE TABLE pt_b0 PARTITION OF pt_b FOR VALUES WITH (MODULUS 2, REMAINDER 0);
CREATE TABLE pt_b1 (cat int, junk text, e embedding(3), id int);
ALTER TABLE pt_b1 DROP COLUMN junk;
ALTER TABLE pt_b ATTACH PARTITION pt_b1 FOR VALUES WITH (MODULUS 2, REMAINDER 1);
CREATE TABLE pt_c PARTITION OF pt FOR VALUES FROM (1400) TO (1800);
CREATE TABLE pt_d PARTITION OF pt DEFAULT;
CREATE TABLE flat (id int, cat int, e embedding(3));
INSERT INTO pt SELECT i, i % 4, ARRAY[sin(i), cos(i * 1.7), (i % 13) - 6]::real[]::embedding
  FROM generate_series(1, 2000) i;
-- NULL and the zero vector (NaN under cosine) in two partitions each.
INSERT INTO pt VALUES (5, 1, NULL), (2001, 1, NULL), (7, 1, '[0,0,0]'), (2002, 1, '[0,0,0]');
INSERT INTO flat SELECT * FROM pt;
-- An index on one partition: it may serve that partition's k best.
CREATE INDEX pt_c_e ON pt_c USING lookalike_hnsw (e embedding_l2_ops);
ANALYZE pt, flat;

-- 1. The plan: each partition's k best (exact top-k scan; the index for pt_c where cheaper),
--    one Append, a top-k sort, the LIMIT. Partitions excluded by the WHERE clause are not read.
EXPLAIN (COSTS OFF) SELECT id FROM pt ORDER BY e <-> '[1,0,0]' LIMIT 5;
EXPLAIN (COSTS OFF) SELECT id FROM pt WHERE id >= 1400 AND cat = 2 ORDER BY e <=> '[1,0,0]' LIMIT 5;
-- With enable_seqscan = off (no exact top-k scan): the index on pt_c, a bounded sort elsewhere.
SET enable_seqscan = off;
EXPLAIN (COSTS OFF) SELECT id FROM pt WHERE id >= 1400 ORDER BY e <-> '[1,0,0]' LIMIT 5;
RESET enable_seqscan;
-- Without the setting: PostgreSQL's Merge Append over the partitions.
SET lookalike.partition_topk = off;
EXPLAIN (COSTS OFF) SELECT id FROM pt ORDER BY e <-> '[1,0,0]' LIMIT 5;
RESET lookalike.partition_topk;
-- Shapes left to PostgreSQL: no LIMIT, descending order, a second sort key.
EXPLAIN (COSTS OFF) SELECT id FROM pt WHERE id < 10 ORDER BY e <-> '[1,0,0]';
EXPLAIN (COSTS OFF) SELECT id FROM pt WHERE id < 10 ORDER BY e <-> '[1,0,0]' DESC LIMIT 5;
EXPLAIN (COSTS OFF) SELECT id FROM pt WHERE id < 10 ORDER BY e <-> '[1,0,0]', id LIMIT 5;

-- 2. The same distances, in the same order, as the plain table: the three operators, k = 1, 5,
--    50 and all rows (NaN after every number, NULL last), with and without a WHERE clause, with
--    OFFSET. (Rows at exactly equal distances may come in either order, as in any sort.)
CREATE FUNCTION topk(tbl text, q embedding, op text, k int, flt text, off int) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE r text;
BEGIN
  EXECUTE format('SELECT array_agg(d)::text FROM (SELECT e %s $1 AS d FROM %s WHERE %s ORDER BY e %s $1 LIMIT %s OFFSET %s) s',
                 op, tbl, flt, op, k, off) INTO r USING q;
  RETURN r;
END $$;
CREATE TABLE cases AS
SELECT q.id AS qid, q.e AS q, op, k, flt, off FROM flat q,
  (VALUES ('<=>'), ('<->'), ('<#>')) o(op), (VALUES (1), (5), (50), (2004)) kk(k),
  (VALUES ('true'), ('cat = 1'), ('id % 7 <> 3 AND id > 300')) f(flt), (VALUES (0), (3)) o2(off)
WHERE q.id IN (1, 777, 1999);
SELECT count(*) AS cases,
       count(*) FILTER (WHERE topk('pt', q, op, k, flt, off) IS NOT DISTINCT FROM topk('flat', q, op, k, flt, off)) AS same
FROM cases;
-- The same ids where no two distances are equal (k = 5, cosine).
SELECT (SELECT array_agg(id) FROM (SELECT id FROM pt ORDER BY e <=> '[0.3,-0.2,0.9]' LIMIT 5) s) =
       (SELECT array_agg(id) FROM (SELECT id FROM flat ORDER BY e <=> '[0.3,-0.2,0.9]' LIMIT 5) s) AS same_ids;
-- The last rows under cosine: numbers, then NaN, then NULL (as on the plain table).
SELECT d FROM (SELECT e <=> '[1,0,0]' AS d FROM pt ORDER BY e <=> '[1,0,0]' LIMIT 2004) s OFFSET 1998;

-- 3. The query vector: a parameter (generic plan), a sub-select, an inline function call. A
--    function call is computed once per query (an initplan), not once per partition.
PREPARE q1(embedding) AS SELECT id FROM pt WHERE cat = 3 ORDER BY e <#> $1 LIMIT 4;
PREPARE q2(embedding) AS SELECT id FROM flat WHERE cat = 3 ORDER BY e <#> $1 LIMIT 4;
SET plan_cache_mode = force_generic_plan;
EXPLAIN (COSTS OFF) EXECUTE q1('[1,2,3]');
EXECUTE q1('[1,2,3]');
EXECUTE q2('[1,2,3]');
RESET plan_cache_mode;
CREATE FUNCTION query_of(i int) RETURNS embedding STABLE LANGUAGE plpgsql AS $$
BEGIN
  RAISE NOTICE 'query_of(%)', i;
  RETURN (SELECT e FROM flat WHERE id = i);
END $$;
EXPLAIN (COSTS OFF) SELECT id FROM pt ORDER BY e <=> query_of(42) LIMIT 3;
SELECT id FROM pt ORDER BY e <=> query_of(42) LIMIT 3;
SELECT id FROM pt ORDER BY e <=> (SELECT e FROM flat WHERE id = 42) LIMIT 3;
SELECT id FROM flat ORDER BY e <=> (SELECT e FROM flat WHERE id = 42) LIMIT 3;
-- Also inside a sub-select of the statement.
SELECT count(*) FROM (SELECT id FROM pt ORDER BY e <-> query_of(43) LIMIT 7) s;

-- 4. Rows inserted through the parent afterwards are found.
INSERT INTO pt VALUES (3000, 0, '[10,10,10]');
SELECT id FROM pt ORDER BY e <-> '[10,10,10.5]' LIMIT 1;

DROP TABLE pt, flat, cases;
DROP FUNCTION topk(text, embedding, text, int, text, int), query_of(int);
