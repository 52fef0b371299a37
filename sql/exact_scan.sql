-- The exact top-k scan (lookalike.exact_scan): the planner's choice for
-- ORDER BY <embedding column> <=>|<->|<#> <query> LIMIT k over one table, with exactly the rows of
-- PostgreSQL's own plan (every distance computed, then a sort), which lookalike.exact_scan = off
-- gives.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS lookalike;
RESET client_min_messages;
CREATE TABLE ex (id int PRIMARY KEY, cat int, e embedding(3));
INSERT INTO ex SELECT i, i % 4, ARRAY[sin(i), cos(i * 1.7), (i % 13) - 6]::real[]::embedding
  FROM generate_series(1, 2000) i;
INSERT INTO ex VALUES (2001, 1, NULL), (2002, 1, '[0,0,0]');
ANALYZE ex;

-- 1. A new session whose first query has no embedding constant (the query is a sub-select) gets
--    the scan: the distance functions' planner support function loads lookalike.so in time.
\c
EXPLAIN (COSTS OFF) SELECT id FROM ex ORDER BY e <=> (SELECT e FROM ex WHERE id = 1) LIMIT 3;

-- 2. Shapes that get it: any of the three operators, either operand order, a WHERE clause, OFFSET.
EXPLAIN (COSTS OFF) SELECT id, e <-> '[1,2,3]' AS d FROM ex WHERE cat = 2 ORDER BY e <-> '[1,2,3]' LIMIT 5;
EXPLAIN (COSTS OFF) SELECT id FROM ex ORDER BY '[1,2,3]' <#> e LIMIT 5 OFFSET 2;

-- 3. Shapes that do not: no LIMIT, descending, a second sort key, a join, FOR UPDATE, WITH TIES,
--    a distance between two columns, the setting off, and enable_seqscan off (the scan reads the
--    whole table, as a sequential scan does).
EXPLAIN (COSTS OFF) SELECT id FROM ex ORDER BY e <=> '[1,2,3]';
EXPLAIN (COSTS OFF) SELECT id FROM ex ORDER BY e <=> '[1,2,3]' DESC LIMIT 5;
EXPLAIN (COSTS OFF) SELECT id FROM ex ORDER BY e <=> '[1,2,3]', id LIMIT 5;
EXPLAIN (COSTS OFF) SELECT a.id FROM ex a JOIN ex b USING (id) ORDER BY a.e <=> '[1,2,3]' LIMIT 5;
EXPLAIN (COSTS OFF) SELECT id FROM ex ORDER BY e <=> '[1,2,3]' LIMIT 5 FOR UPDATE;
EXPLAIN (COSTS OFF) SELECT id FROM ex ORDER BY e <=> '[1,2,3]' FETCH FIRST 5 ROWS WITH TIES;
EXPLAIN (COSTS OFF) SELECT id FROM ex ORDER BY e <=> l2_normalize(e) LIMIT 5;
SET lookalike.exact_scan = off;
EXPLAIN (COSTS OFF) SELECT id FROM ex ORDER BY e <=> '[1,2,3]' LIMIT 5;
RESET lookalike.exact_scan;
SET enable_seqscan = off;
EXPLAIN (COSTS OFF) SELECT id FROM ex ORDER BY e <=> '[1,2,3]' LIMIT 5;
RESET enable_seqscan;

-- 4. The same rows as PostgreSQL's plan, for every operator, several queries, k from 1 to all
--    rows (the zero vector's NaN after every number, NULL last), with and without a WHERE
--    clause. (Not compared: the zero vector as query under <=> and <#>, where every distance is
--    NaN or 0 and any k rows are a correct answer.)
--    Compared: the distances of the rows returned, in order (rows at exactly equal distances
--    may come in either order, in both plans).
CREATE FUNCTION topk(q embedding, op text, k int, flt text) RETURNS float8[] LANGUAGE plpgsql AS $$
DECLARE r float8[];
BEGIN
  EXECUTE format('SELECT array_agg(d) FROM (SELECT e %s $1 AS d FROM ex WHERE %s ORDER BY e %s $1 LIMIT %s) s',
                 op, flt, op, k) INTO r USING q;
  RETURN r;
END $$;
CREATE TABLE cases AS
SELECT q.id AS qid, q.e AS q, op, k, flt FROM ex q,
  (VALUES ('<=>'), ('<->'), ('<#>')) o(op), (VALUES (1), (5), (37), (2002)) kk(k),
  (VALUES ('true'), ('cat = 1'), ('id % 7 <> 3')) f(flt)
WHERE q.id IN (1, 77, 500, 1999, 2002) AND NOT (q.id = 2002 AND op IN ('<=>', '<#>'));
SET lookalike.exact_scan = on;
CREATE TABLE got AS SELECT qid, op, k, flt, topk(q, op, k, flt) AS r FROM cases;
SET lookalike.exact_scan = off;
SELECT count(*) AS cases, count(*) FILTER (WHERE g.r IS NOT DISTINCT FROM topk(c.q, c.op, c.k, c.flt)) AS same
FROM cases c JOIN got g USING (qid, op, k, flt);
RESET lookalike.exact_scan;
-- A NULL query (every distance NULL) or a zero one under cosine (every distance NaN): any k rows
-- are a correct answer.
SELECT count(*) FROM (SELECT id FROM ex ORDER BY e <=> NULL::embedding LIMIT 4) s;
SELECT count(*), bool_and(d = 'NaN') FROM (SELECT e <=> '[0,0,0]' d FROM ex ORDER BY e <=> '[0,0,0]' LIMIT 4) s;
-- The last rows under cosine: numbers, then the zero vector (NaN), then NULL.
SELECT id, e <=> '[1,1,1]' AS d FROM ex ORDER BY e <=> '[1,1,1]' LIMIT 2 OFFSET 2000;

-- 5. Mixed dimensions: the operator's error (22000), from the first row measured.
\set VERBOSITY sqlstate
SELECT id FROM ex ORDER BY e <=> '[1,2]' LIMIT 1;
SELECT id FROM ex WHERE id = 5 ORDER BY e <-> '[1,2,3,4]' LIMIT 1;
\set VERBOSITY default

-- 6. Re-scans: a correlated sub-select runs the scan once per outer row with a new query.
EXPLAIN (COSTS OFF)
SELECT q.id, (SELECT array_agg(id) FROM (SELECT id FROM ex x ORDER BY x.e <-> q.e LIMIT 3) s)
FROM ex q WHERE q.id <= 3;
SELECT q.id, (SELECT array_agg(id) FROM (SELECT id FROM ex x ORDER BY x.e <-> q.e LIMIT 3) s) AS near
FROM ex q WHERE q.id <= 3 ORDER BY q.id;
SET lookalike.exact_scan = off;
SELECT q.id, (SELECT array_agg(id) FROM (SELECT id FROM ex x ORDER BY x.e <-> q.e LIMIT 3) s) AS near
FROM ex q WHERE q.id <= 3 ORDER BY q.id;
RESET lookalike.exact_scan;

-- 7. Visibility: rows deleted in this transaction are not returned; after ROLLBACK they are.
BEGIN;
DELETE FROM ex WHERE id IN (SELECT id FROM ex ORDER BY e <-> '[0,1,0]' LIMIT 2);
SELECT array_agg(id) FROM (SELECT id FROM ex ORDER BY e <-> '[0,1,0]' LIMIT 3) s;
ROLLBACK;
SELECT array_agg(id) FROM (SELECT id FROM ex ORDER BY e <-> '[0,1,0]' LIMIT 3) s;

-- 8. A scrollable cursor (the planner puts a Material node above the scan) and a prepared
--    statement with the query and k as parameters.
BEGIN;
DECLARE c SCROLL CURSOR FOR SELECT id FROM ex ORDER BY e <-> '[0,1,0]' LIMIT 3;
FETCH ALL FROM c;
FETCH BACKWARD 2 FROM c;
COMMIT;
PREPARE p(embedding, int) AS SELECT array_agg(id) FROM (SELECT id FROM ex ORDER BY e <-> $1 LIMIT $2) s;
EXECUTE p('[0,1,0]', 3);
DEALLOCATE p;

-- 9. Values stored out of line (TOAST) and compressed values are read like any other.
CREATE TABLE wide (id int, e embedding);
ALTER TABLE wide ALTER COLUMN e SET STORAGE EXTERNAL;
INSERT INTO wide SELECT i, (SELECT array_agg(sin(i * j))::real[]::embedding FROM generate_series(1, 700) j)
  FROM generate_series(1, 40) i;
CREATE TABLE packed (id int, e embedding);
INSERT INTO packed SELECT i, (SELECT array_agg((j % 3) * i + i * i / 10.0)::real[]::embedding FROM generate_series(1, 3000) j)
  FROM generate_series(1, 6) i;
SELECT (SELECT pg_relation_size(reltoastrelid) > 0 FROM pg_class WHERE oid = 'wide'::regclass) AS out_of_line,
       (SELECT count(*) FROM packed WHERE pg_column_size(e) < 4 * dims(e)) AS compressed;
SELECT array_agg(id) FROM (SELECT id FROM wide ORDER BY e <=> (SELECT e FROM wide WHERE id = 7) LIMIT 4) s;
SELECT array_agg(id) FROM (SELECT id FROM packed ORDER BY e <-> (SELECT e FROM packed WHERE id = 4) LIMIT 3) s;
SET lookalike.exact_scan = off;
SELECT array_agg(id) FROM (SELECT id FROM wide ORDER BY e <=> (SELECT e FROM wide WHERE id = 7) LIMIT 4) s;
SELECT array_agg(id) FROM (SELECT id FROM packed ORDER BY e <-> (SELECT e FROM packed WHERE id = 4) LIMIT 3) s;
RESET lookalike.exact_scan;

-- 10. Parallel: each participant keeps its own k best, Gather Merge merges them.
SET parallel_setup_cost = 0;
SET parallel_tuple_cost = 0;
SET min_parallel_table_scan_size = 0;
SET max_parallel_workers_per_gather = 2;
SET parallel_leader_participation = off;
EXPLAIN (COSTS OFF) SELECT id FROM ex ORDER BY e <=> '[1,2,3]' LIMIT 5;
SELECT count(*) AS cases, count(*) FILTER (WHERE g.r IS NOT DISTINCT FROM topk(c.q, c.op, c.k, c.flt)) AS same
FROM cases c JOIN got g USING (qid, op, k, flt) WHERE c.k <= 37;
RESET parallel_leader_participation;
RESET max_parallel_workers_per_gather;
RESET min_parallel_table_scan_size;
RESET parallel_tuple_cost;
RESET parallel_setup_cost;

-- 11. A cancel stops it (57014): the scan checks for interrupts on every row.
\set VERBOSITY sqlstate
SET statement_timeout = '200ms';
SELECT count(*) FROM generate_series(1, 10000000) g,
  LATERAL (SELECT id FROM ex ORDER BY e <-> ARRAY[g, 0, 0]::real[]::embedding LIMIT 1) s;
RESET statement_timeout;
\set VERBOSITY default

-- 12. JIT-compiled WHERE clause and target list: the same rows. (The scan evaluates the WHERE
--     clause on the table's own slot type, so it compiles it for a slot type that is not fixed.)
SET jit = on;
SET jit_above_cost = 0;
SET jit_inline_above_cost = 0;
SET jit_optimize_above_cost = 0;
EXPLAIN (COSTS OFF) SELECT id, cat, round((e <-> '[0,1,0]')::numeric, 6) AS d FROM ex
WHERE cat = 1 AND id % 5 <> 0 ORDER BY e <-> '[0,1,0]' LIMIT 4;
SELECT id, cat, round((e <-> '[0,1,0]')::numeric, 6) AS d FROM ex
WHERE cat = 1 AND id % 5 <> 0 ORDER BY e <-> '[0,1,0]' LIMIT 4;
SET lookalike.exact_scan = off;
SELECT id, cat, round((e <-> '[0,1,0]')::numeric, 6) AS d FROM ex
WHERE cat = 1 AND id % 5 <> 0 ORDER BY e <-> '[0,1,0]' LIMIT 4;
RESET lookalike.exact_scan;
RESET jit_optimize_above_cost;
RESET jit_inline_above_cost;
RESET jit_above_cost;
RESET jit;

DROP TABLE ex, cases, got, wide, packed;
DROP FUNCTION topk;
