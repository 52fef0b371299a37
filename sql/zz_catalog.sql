-- Catalogue hygiene over every object of the extension (runs last: it sees every feature).
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS lookalike;
RESET client_min_messages;

CREATE TEMP VIEW members AS
SELECT d.classid::regclass AS catalog, d.objid, pg_describe_object(d.classid, d.objid, 0) AS object
FROM pg_depend d JOIN pg_extension e ON d.refobjid = e.oid AND d.refclassid = 'pg_extension'::regclass
WHERE e.extname = 'lookalike' AND d.deptype = 'e';

-- 1. Every object carries a COMMENT (operator families created implicitly by CREATE OPERATOR
--    CLASS share their class's name and are exempt).
SELECT object AS missing_comment FROM members m
WHERE obj_description(m.objid, m.catalog::text) IS NULL
  AND NOT (m.catalog = 'pg_opfamily'::regclass AND EXISTS (
        SELECT 1 FROM pg_opclass c JOIN pg_opfamily f ON f.oid = m.objid
        WHERE c.opcfamily = f.oid AND c.opcname = f.opfname))
  AND NOT (m.catalog = 'pg_class'::regclass AND EXISTS (  -- sequences owned by a table column
        SELECT 1 FROM pg_class c WHERE c.oid = m.objid AND c.relkind = 'S'))
ORDER BY 1;

-- 2. Names that pgvector (0.8) owns: no clash. Types, access methods, operator classes and
--    functions whose signatures carry no embedding argument must not use them.
CREATE TEMP TABLE pgvector_names (kind text, name text);
INSERT INTO pgvector_names VALUES
  ('type', 'vector'), ('type', 'halfvec'), ('type', 'sparsevec'),
  ('am', 'hnsw'), ('am', 'ivfflat'),
  ('opclass', 'vector_ops'), ('opclass', 'vector_l2_ops'), ('opclass', 'vector_ip_ops'),
  ('opclass', 'vector_cosine_ops'), ('opclass', 'vector_l1_ops'), ('opclass', 'bit_hamming_ops'),
  ('opclass', 'bit_jaccard_ops'), ('opclass', 'halfvec_ops'), ('opclass', 'halfvec_l2_ops'),
  ('opclass', 'halfvec_ip_ops'), ('opclass', 'halfvec_cosine_ops'), ('opclass', 'halfvec_l1_ops'),
  ('opclass', 'sparsevec_ops'), ('opclass', 'sparsevec_l2_ops'), ('opclass', 'sparsevec_ip_ops'),
  ('opclass', 'sparsevec_cosine_ops'), ('opclass', 'sparsevec_l1_ops'),
  ('function', 'hnswhandler'), ('function', 'ivfflathandler'), ('function', 'vector_typmod_in'),
  ('function', 'halfvec_typmod_in'), ('function', 'sparsevec_typmod_in'),
  ('function', 'vector_avg'), ('function', 'vector_combine'), ('function', 'halfvec_avg'),
  ('function', 'halfvec_combine'), ('function', 'hamming_distance'), ('function', 'jaccard_distance'),
  ('function', 'binary_quantize'), ('function', 'subvector'), ('function', 'array_to_vector'),
  ('function', 'array_to_halfvec'), ('function', 'array_to_sparsevec'),
  ('function', 'hnsw_bit_support'), ('function', 'hnsw_halfvec_support'),
  ('function', 'hnsw_sparsevec_support'), ('function', 'ivfflat_bit_support'),
  ('function', 'ivfflat_halfvec_support');
SELECT t.typname AS clashing_type FROM pg_type t JOIN members m ON m.objid = t.oid AND m.catalog = 'pg_type'::regclass
  JOIN pgvector_names p ON p.kind = 'type' AND p.name = t.typname;
SELECT a.amname AS clashing_am FROM pg_am a JOIN members m ON m.objid = a.oid AND m.catalog = 'pg_am'::regclass
  JOIN pgvector_names p ON p.kind = 'am' AND p.name = a.amname;
SELECT o.opcname AS clashing_opclass FROM pg_opclass o JOIN members m ON m.objid = o.oid AND m.catalog = 'pg_opclass'::regclass
  JOIN pgvector_names p ON p.kind = 'opclass' AND p.name = o.opcname;
SELECT f.oid::regprocedure AS clashing_function FROM pg_proc f JOIN members m ON m.objid = f.oid AND m.catalog = 'pg_proc'::regclass
  JOIN pgvector_names p ON p.kind = 'function' AND p.name = f.proname
  WHERE NOT 'embedding'::regtype = ANY (f.proargtypes::oid[]);
-- and the check itself can fail: the list does match pgvector's own spelling of our overloads
SELECT count(*) > 0 AS overloads_share_pgvector_names FROM pg_proc f JOIN members m ON m.objid = f.oid
  WHERE f.proname IN ('l2_distance', 'inner_product', 'cosine_distance', 'l2_normalize');

-- 3. The C functions of lookalike.so (type, operators, aggregates) are IMMUTABLE, STRICT and
--    PARALLEL SAFE (not: index handlers, lookalike_simd() which reads a setting, and project()
--    which reads lookalike.projections: STABLE, checked on its own below).
SELECT f.oid::regprocedure AS not_immutable_strict_safe FROM pg_proc f JOIN members m ON m.objid = f.oid
WHERE f.probin = '$libdir/lookalike' AND f.prorettype <> 'index_am_handler'::regtype
  AND f.proname NOT IN ('lookalike_simd', 'project')
  AND NOT (f.provolatile = 'i' AND f.proisstrict AND f.proparallel = 's')
ORDER BY 1;
SELECT f.oid::regprocedure, f.provolatile, f.proisstrict, f.proparallel FROM pg_proc f
WHERE f.oid = 'project(embedding, text)'::regprocedure;
