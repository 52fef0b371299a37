-- lookalike_pgvector 0.2.0: direct casts between lookalike's `embedding` and pgvector's
-- `vector` (docs/pgvector.md). CREATE EXTENSION lookalike_pgvector CASCADE installs lookalike
-- and pgvector first when they are missing. The cast functions are in lookalike.so
-- (src/interop/pgvector_pg.cpp); `vector` is found through the schemas of the required
-- extensions, which PostgreSQL puts on the search_path while this script runs.
\echo Use "CREATE EXTENSION lookalike_pgvector CASCADE" to load this file. \quit

CREATE FUNCTION embedding(vector, integer, boolean) RETURNS embedding
    AS '$libdir/lookalike', 'lookalike_embedding_from_pgvector'
    LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION embedding(vector, integer, boolean) IS
    'cast vector -> embedding(n): copies the value (same layout) after checking its dimensions against n, its reserved field and that every component is finite';

CREATE FUNCTION vector(embedding, integer, boolean) RETURNS vector
    AS '$libdir/lookalike', 'lookalike_embedding_to_pgvector'
    LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION vector(embedding, integer, boolean) IS
    'cast embedding -> vector(n): copies the value (same layout) after checking its dimensions against n, its reserved field and that every component is finite';

-- ASSIGNMENT: INSERT INTO a vector column from an embedding (and the reverse), UPDATE ... SET,
-- and ALTER TABLE ... ALTER COLUMN ... TYPE with USING v::embedding(n). Not IMPLICIT: an
-- expression mixing both types must say which one it means (operators like <=> exist for both).
CREATE CAST (vector AS embedding) WITH FUNCTION embedding(vector, integer, boolean) AS ASSIGNMENT;
COMMENT ON CAST (vector AS embedding) IS 'pgvector vector -> lookalike embedding (lookalike_pgvector)';
CREATE CAST (embedding AS vector) WITH FUNCTION vector(embedding, integer, boolean) AS ASSIGNMENT;
COMMENT ON CAST (embedding AS vector) IS 'lookalike embedding -> pgvector vector (lookalike_pgvector)';
