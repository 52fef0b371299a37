-- Hardening regressions (issue 9): internal functions are not callable by ordinary roles, no
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
  AND p.oid NOT IN (SELECT typreceive FROM pg_type);  -- embedding_recv: the type's own I/O
SELECT count(*) > 8 AS found_internal_functions FROM internal_functions;
SELECT fn AS executable_by_public FROM internal_functions
WHERE has_function_privilege('regress_lookalike_hard', fn, 'EXECUTE') ORDER BY 1::text;

-- ---- 2. the projection fit takes the extension's own type only -----------------------------
-- Before the fix, this (run by any role) read 1,000 floats out of each 12-byte bytea value.
SET ROLE regress_lookalike_hard;
SELECT dims_in, length(data) FROM lookalike._fit_projection($$SELECT CASE WHEN g%2=0 THEN '\xe8030000000080400000a040'::bytea ELSE '\xe80300000000c0400000e040'::bytea END FROM generate_series(1,20) g$$, 'bytea'::regtype, 1, 0, NULL);  -- 42883
SELECT lookalike.fit_projection('hard', $$SELECT CASE WHEN g%2=0 THEN '\xe8030000000080400000a040'::bytea ELSE '\xe80300000000c0400000e040'::bytea END FROM generate_series(1,20) g$$);  -- 42804
-- a domain over embedding is not the extension's type either
RESET ROLE;
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

DROP ROLE regress_lookalike_hard;
