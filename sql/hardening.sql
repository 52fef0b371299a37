-- Hardening regressions: internal functions are not callable by ordinary roles, no
-- function trusts a type or a length that a caller supplies, and values are size-checked before
-- they are read.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS lookalike;
RESET client_min_messages;
\set VERBOSITY sqlstate
CREATE ROLE regress_lookalike_hard;

-- ---- 1. no internal function is executable by PUBLIC ---------------------------------------
-- Internal: a name starting with '_', an aggregate's support function, a function taking
-- `internal` (index and planner support).
CREATE TEMP VIEW internal_functions AS
SELECT p.oid::regprocedure AS fn
FROM pg_proc p JOIN pg_depend d ON d.classid = 'pg_proc'::regclass AND d.objid = p.oid
JOIN pg_extension e ON d.refclassid = 'pg_extension'::regclass AND d.refobjid = e.oid
WHERE e.extname = 'lookalike' AND d.deptype = 'e' AND p.prokind = 'f'
  AND (p.proname LIKE '\_%'
       OR p.oid IN (SELECT aggtransfn FROM pg_aggregate UNION SELECT aggfinalfn FROM pg_aggregate
                    UNION SELECT aggcombinefn FROM pg_aggregate)
       OR 'internal'::regtype = ANY (p.proargtypes::oid[]))
  AND p.oid NOT IN (SELECT typreceive FROM pg_type)   -- embedding_recv: the type's own I/O
  -- helpers of the evaluation functions, which run with the caller's rights and so need them;
  -- they only act on the caller's own objects (comments on its evaluation tables)
  AND p.proname <> '_comment_evaluation';
SELECT count(*) > 8 AS found_internal_functions FROM internal_functions;
SELECT fn AS executable_by_public FROM internal_functions
WHERE has_function_privilege('regress_lookalike_hard', fn, 'EXECUTE') ORDER BY 1::text;

-- ---- 2. the projection fit takes the extension's own type only -----------------------------
-- Before the fix, this (run by any role) read 1,000 floats out of each 12-byte bytea value.
SET ROLE regress_lookalike_hard;
SELECT dims_in, length(data) FROM lookalike._fit_projection($$SELECT CASE WHEN g%2=0 THEN '\xe8030000000080400000a040'::bytea ELSE '\xe80300000000c0400000e040'::bytea END FROM generate_series(1,20) g$$, 'bytea'::regtype, 1, 0, NULL);  -- 42883
SELECT lookalike.fit_projection('hard', $$SELECT CASE WHEN g%2=0 THEN '\xe8030000000080400000a040'::bytea ELSE '\xe80300000000c0400000e040'::bytea END FROM generate_series(1,20) g$$);  -- 42804
-- a database still at release 0.1.0 calls the same C symbol through its _fit_projection: it
-- now refuses any type but the extension's embedding
RESET ROLE;
CREATE FUNCTION legacy_fit(query text, embedding_type regtype, epsilon double precision,
                           power double precision, components integer, OUT data bytea,
                           OUT dims_in integer, OUT dims_out integer, OUT rows bigint,
                           OUT variance_kept double precision)
    AS '$libdir/lookalike_model', 'lookalike_fit_projection' LANGUAGE C VOLATILE;
SET ROLE regress_lookalike_hard;
SELECT dims_in, length(data) FROM legacy_fit($$SELECT CASE WHEN g%2=0 THEN '\xe8030000000080400000a040'::bytea ELSE '\xe80300000000c0400000e040'::bytea END FROM generate_series(1,20) g$$, 'bytea'::regtype, 1, 0, NULL);  -- 42804
SELECT dims_in, length(data) FROM legacy_fit($$SELECT CASE WHEN g%2=0 THEN '\xe8030000000080400000a040'::bytea ELSE '\xe80300000000c0400000e040'::bytea END FROM generate_series(1,20) g$$, 'embedding'::regtype, 1, 0, NULL);  -- 42804
SELECT dims_in, dims_out, rows FROM legacy_fit($$SELECT '[1,2]'::embedding UNION ALL SELECT '[2,1]'$$, 'embedding'::regtype, 1, 0, NULL);
RESET ROLE;
DROP FUNCTION legacy_fit;
-- a domain over embedding is not the extension's type either
CREATE DOMAIN hard_embedding AS embedding;
SET ROLE regress_lookalike_hard;
SELECT lookalike.fit_projection('hard', $$SELECT '[1,2]'::hard_embedding FROM generate_series(1,3)$$);  -- 42804
SELECT count(*) FROM lookalike.projections WHERE name = 'hard';
RESET ROLE;
DROP DOMAIN hard_embedding;

-- ---- 3. values are size-checked against their header before they are read -----------------
-- A superuser can forge an embedding from bytes (a binary-coercible cast); every reader refuses
-- a value whose length does not match its header instead of reading past its end.
CREATE CAST (bytea AS embedding) WITHOUT FUNCTION;
SELECT dims('\xe8030000000080400000a040'::bytea::embedding);                 -- XX001
SELECT '\xe8030000000080400000a040'::bytea::embedding::text;                 -- XX001
SELECT '[1,2,3]'::embedding <=> '\xe8030000000080400000a040'::bytea::embedding;  -- XX001
SELECT avg(e) FROM (VALUES ('\xe8030000000080400000a040'::bytea::embedding)) v(e);  -- XX001
SELECT dims('\x0000000000000000'::bytea::embedding);                         -- XX001 0 dims
SELECT dims('\x010000000000803f'::bytea::embedding);                         -- a valid one: 1
DROP CAST (bytea AS embedding);

-- ---- 4. aggregate support functions only run inside an aggregate ---------------------------
-- Called directly they built values that could not be read back ([nan,1], 0-d, 20,000-d).
SELECT embedding_sum('{1,NaN,1}'::float8[]);                         -- 0A000
SELECT embedding_sum(array_fill(1::float8, array[65537]));           -- 0A000
SELECT embedding_avg(array_fill(1::float8, array[20001]));           -- 0A000
SELECT embedding_avg('{-1,1,2}');                                    -- 0A000
SELECT embedding_accum('{0}', '[1,2]');                              -- 0A000
SELECT embedding_combine('{1,1}', '{1,1}');                          -- 0A000
SET ROLE regress_lookalike_hard;
SELECT embedding_sum('{1,1}'::float8[]);                             -- 42501
RESET ROLE;
-- through the aggregates all is as before
SELECT avg(e), sum(e) FROM (VALUES ('[1,2]'::embedding), ('[3,4]')) v(e);
SELECT avg(e) OVER (ORDER BY i) FROM (VALUES (1, '[1,2]'::embedding), (2, '[3,4]')) v(i, e);

-- ---- 6. malformed text is 22P02, underflow 22003, a zero-size image header 22P03 ----------
SELECT '[+-1]'::embedding;                                           -- 22P02 (was [-1])
SELECT '[1e-46]'::embedding;                                         -- 22003 (was [0])
SELECT '1e-46'::real;                                                -- 22003: the same rule
SELECT '[1e-40]'::embedding = array[1e-40::real]::embedding AS subnormal_kept;
SELECT '[nanx]'::embedding;                                          -- 22P02 (was 22000)
SELECT '[infx]'::embedding;                                          -- 22P02
SELECT '[infinity1]'::embedding;                                     -- 22P02
SELECT '[]x'::embedding;                                             -- 22P02
SELECT '[]]'::embedding;                                             -- 22P02
SELECT '[]'::embedding;                                              -- 22000 empty
SELECT '[nan]'::embedding;                                           -- 22000 NaN
-- PNG signature and an IHDR of width 0, height 1
SELECT * FROM image_info('\x89504e470d0a1a0a0000000d494844520000000000000001'::bytea);  -- 22P03
-- BMP of height 0
SELECT * FROM image_info('\x424d000000000000000000000000280000000100000000000000'::bytea);  -- 22P03
SELECT * FROM image_info('\x89504e470d0a1a0a0000000d494844520000000200000003'::bytea);  -- 2 x 3

-- ---- 9. every SQL or PL/pgSQL function of the extension pins its search_path --------------
SELECT p.oid::regprocedure AS unpinned
FROM pg_proc p JOIN pg_depend d ON d.classid = 'pg_proc'::regclass AND d.objid = p.oid
JOIN pg_extension e ON d.refclassid = 'pg_extension'::regclass AND d.refobjid = e.oid
JOIN pg_language l ON l.oid = p.prolang
WHERE e.extname = 'lookalike' AND d.deptype = 'e' AND l.lanname IN ('sql', 'plpgsql')
  AND NOT EXISTS (SELECT 1 FROM unnest(p.proconfig) c WHERE c LIKE 'search\_path=%')
  -- a procedure that COMMITs between batches (lookalike.embed_table) cannot have a SET clause
  -- (PostgreSQL's rule): it schema-qualifies its references instead
  AND p.prokind <> 'p'
ORDER BY 1::text;
-- a session search_path that puts its own text = operator before pg_catalog's does not reach
-- drop_projection (unpinned, its DELETE ... WHERE p.name = name removed every projection)
CREATE TABLE hard_points (e embedding);
INSERT INTO hard_points VALUES ('[1,2]'), ('[2,1]'), ('[3,3]');
SELECT name FROM lookalike.fit_projection('hard_keep', 'SELECT e FROM hard_points');
CREATE SCHEMA hard_shadow;
CREATE FUNCTION hard_shadow.always(text, text) RETURNS boolean LANGUAGE sql AS 'SELECT true';
CREATE OPERATOR hard_shadow.= (LEFTARG = text, RIGHTARG = text, FUNCTION = hard_shadow.always);
SET search_path = hard_shadow, pg_catalog, public;
SELECT lookalike.drop_projection('no_such_projection');             -- 42704
RESET search_path;
SELECT name FROM lookalike.projections WHERE name = 'hard_keep';     -- still there
SELECT lookalike.drop_projection('hard_keep');
DROP SCHEMA hard_shadow CASCADE;
DROP TABLE hard_points;
-- the btree comparison operators order values of different dimensions (no error)
SELECT '[1,2]'::embedding < '[1,2,3]'::embedding AS shorter_first,
       '[1,3]'::embedding > '[1,2,3]'::embedding AS component_first,
       '[1,2]'::embedding = '[1,2,0]'::embedding AS equal;

-- ---- 3, 4, 8. resource caps are superuser settings -----------------------------------------
SET ROLE regress_lookalike_hard;
SET lookalike.max_fit_dims = 16000;                                  -- 42501
SET lookalike.max_batch_size = 1024;                                 -- 42501
SET lookalike.max_model_bytes = '1GB';                               -- 42501
SET lookalike.batch_size = 1024;                                     -- allowed, capped at use
RESET lookalike.batch_size;
RESET ROLE;
SET lookalike.max_fit_dims = 2;
SELECT lookalike.fit_projection('hard', $$SELECT '[1,2,3]'::embedding UNION ALL SELECT '[3,2,1]'$$);  -- 54000
RESET lookalike.max_fit_dims;
-- model files: a device is refused at once (before: read until out of memory; a FIFO, which
-- blocked forever, is refused too: unit test ModelLoad.RefusesNonRegularAndOversizedFiles)
SELECT lookalike.register_model('hard', '/dev/zero');                -- 58030
SELECT count(*) FROM lookalike.models WHERE name = 'hard';

DROP ROLE regress_lookalike_hard;
