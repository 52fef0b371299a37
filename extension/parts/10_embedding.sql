-- ============================================================================================
-- The embedding type (src/vector/)
-- ============================================================================================

CREATE TYPE embedding;

CREATE FUNCTION embedding_in(cstring, oid, integer) RETURNS embedding
    AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION embedding_out(embedding) RETURNS cstring
    AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION embedding_typmod_in(cstring[]) RETURNS integer
    AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION embedding_typmod_out(integer) RETURNS cstring
    AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION embedding_recv(internal, oid, integer) RETURNS embedding
    AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION embedding_send(embedding) RETURNS bytea
    AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

-- STORAGE = main: values stay inline in the heap row (up to a page), so a 512-d or 1280-d
-- embedding is read straight from the buffer, never fetched from a TOAST table.
CREATE TYPE embedding (
    INPUT = embedding_in,
    OUTPUT = embedding_out,
    TYPMOD_IN = embedding_typmod_in,
    TYPMOD_OUT = embedding_typmod_out,
    RECEIVE = embedding_recv,
    SEND = embedding_send,
    STORAGE = main,
    ALIGNMENT = int4
);
COMMENT ON TYPE embedding IS
    'dense float4 vector, e.g. an image feature; text form [1,2.5,3] (as pgvector); embedding(n) fixes n dimensions';

COMMENT ON FUNCTION embedding_in(cstring, oid, integer) IS 'text input of embedding';
COMMENT ON FUNCTION embedding_out(embedding) IS 'text output of embedding';
COMMENT ON FUNCTION embedding_typmod_in(cstring[]) IS 'parses the dimension modifier of embedding(n)';
COMMENT ON FUNCTION embedding_typmod_out(integer) IS 'prints the dimension modifier of embedding(n)';
COMMENT ON FUNCTION embedding_recv(internal, oid, integer) IS 'binary input of embedding (int16 dim, int16 0, float4 values)';
COMMENT ON FUNCTION embedding_send(embedding) IS 'binary output of embedding (int16 dim, int16 0, float4 values)';

-- ---- casts ---------------------------------------------------------------------------------

CREATE FUNCTION embedding(embedding, integer, boolean) RETURNS embedding
    AS 'MODULE_PATHNAME', 'embedding_coerce' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION array_to_embedding(integer[], integer, boolean) RETURNS embedding
    AS 'MODULE_PATHNAME', 'array_to_embedding' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION array_to_embedding(real[], integer, boolean) RETURNS embedding
    AS 'MODULE_PATHNAME', 'array_to_embedding' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION array_to_embedding(double precision[], integer, boolean) RETURNS embedding
    AS 'MODULE_PATHNAME', 'array_to_embedding' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION array_to_embedding(numeric[], integer, boolean) RETURNS embedding
    AS 'MODULE_PATHNAME', 'array_to_embedding' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION embedding_to_float4(embedding, integer, boolean) RETURNS real[]
    AS 'MODULE_PATHNAME', 'embedding_to_float4' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

CREATE CAST (embedding AS embedding) WITH FUNCTION embedding(embedding, integer, boolean) AS IMPLICIT;
CREATE CAST (integer[] AS embedding) WITH FUNCTION array_to_embedding(integer[], integer, boolean) AS ASSIGNMENT;
CREATE CAST (real[] AS embedding) WITH FUNCTION array_to_embedding(real[], integer, boolean) AS ASSIGNMENT;
CREATE CAST (double precision[] AS embedding) WITH FUNCTION array_to_embedding(double precision[], integer, boolean) AS ASSIGNMENT;
CREATE CAST (numeric[] AS embedding) WITH FUNCTION array_to_embedding(numeric[], integer, boolean) AS ASSIGNMENT;
CREATE CAST (embedding AS real[]) WITH FUNCTION embedding_to_float4(embedding, integer, boolean) AS IMPLICIT;

COMMENT ON FUNCTION embedding(embedding, integer, boolean) IS 'checks an embedding against the dimension of embedding(n)';
COMMENT ON FUNCTION array_to_embedding(integer[], integer, boolean) IS 'cast integer[] to embedding';
COMMENT ON FUNCTION array_to_embedding(real[], integer, boolean) IS 'cast real[] to embedding';
COMMENT ON FUNCTION array_to_embedding(double precision[], integer, boolean) IS 'cast double precision[] to embedding (values must fit in real)';
COMMENT ON FUNCTION array_to_embedding(numeric[], integer, boolean) IS 'cast numeric[] to embedding (values must fit in real)';
COMMENT ON FUNCTION embedding_to_float4(embedding, integer, boolean) IS 'cast embedding to real[]';
COMMENT ON CAST (embedding AS embedding) IS 'applies the dimension modifier of embedding(n)';
COMMENT ON CAST (integer[] AS embedding) IS 'integer array to embedding';
COMMENT ON CAST (real[] AS embedding) IS 'real array to embedding';
COMMENT ON CAST (double precision[] AS embedding) IS 'double precision array to embedding';
COMMENT ON CAST (numeric[] AS embedding) IS 'numeric array to embedding';
COMMENT ON CAST (embedding AS real[]) IS 'embedding to real array';

-- ---- distances, properties, arithmetic -----------------------------------------------------

-- Planner support of the three distance operators' functions: the planner calls it while it
-- simplifies expressions, which loads lookalike.so (and its exact top-k scan) before scans are
-- planned. It answers no request.
CREATE FUNCTION embedding_distance_support(internal) RETURNS internal
    AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
REVOKE EXECUTE ON FUNCTION embedding_distance_support(internal) FROM PUBLIC;
COMMENT ON FUNCTION embedding_distance_support(internal) IS 'planner support of <=>, <-> and <#>: loads lookalike.so at plan time so that the exact top-k scan is offered from the first query of a session';
CREATE FUNCTION l2_distance(embedding, embedding) RETURNS double precision
    AS 'MODULE_PATHNAME', 'embedding_l2_distance' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE
    SUPPORT embedding_distance_support;
CREATE FUNCTION l2_squared_distance(embedding, embedding) RETURNS double precision
    AS 'MODULE_PATHNAME', 'embedding_l2_squared_distance' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION inner_product(embedding, embedding) RETURNS double precision
    AS 'MODULE_PATHNAME', 'embedding_inner_product' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION negative_inner_product(embedding, embedding) RETURNS double precision
    AS 'MODULE_PATHNAME', 'embedding_negative_inner_product' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE
    SUPPORT embedding_distance_support;
CREATE FUNCTION cosine_distance(embedding, embedding) RETURNS double precision
    AS 'MODULE_PATHNAME', 'embedding_cosine_distance' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE
    SUPPORT embedding_distance_support;
CREATE FUNCTION cosine_similarity(embedding, embedding) RETURNS double precision
    AS 'MODULE_PATHNAME', 'embedding_cosine_similarity' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION dims(embedding) RETURNS integer
    AS 'MODULE_PATHNAME', 'embedding_dims' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION norm(embedding) RETURNS double precision
    AS 'MODULE_PATHNAME', 'embedding_norm' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION l2_normalize(embedding) RETURNS embedding
    AS 'MODULE_PATHNAME', 'embedding_l2_normalize' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION embedding_add(embedding, embedding) RETURNS embedding
    AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION embedding_sub(embedding, embedding) RETURNS embedding
    AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION embedding_mul(embedding, embedding) RETURNS embedding
    AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION lookalike_simd() RETURNS text
    AS 'MODULE_PATHNAME' LANGUAGE C STABLE STRICT PARALLEL SAFE;

COMMENT ON FUNCTION l2_distance(embedding, embedding) IS 'Euclidean distance (operator <->)';
COMMENT ON FUNCTION l2_squared_distance(embedding, embedding) IS 'squared Euclidean distance';
COMMENT ON FUNCTION inner_product(embedding, embedding) IS 'inner product (dot product)';
COMMENT ON FUNCTION negative_inner_product(embedding, embedding) IS 'negative inner product (operator <#>): smaller is more similar';
COMMENT ON FUNCTION cosine_distance(embedding, embedding) IS '1 - cosine similarity (operator <=>), in [0,2]; NaN if either vector is zero (sorts last)';
COMMENT ON FUNCTION cosine_similarity(embedding, embedding) IS 'cosine of the angle between two embeddings, in [-1,1]; NaN if either vector is zero';
COMMENT ON FUNCTION dims(embedding) IS 'number of dimensions';
COMMENT ON FUNCTION norm(embedding) IS 'Euclidean norm';
COMMENT ON FUNCTION l2_normalize(embedding) IS 'scales to unit Euclidean norm (a zero vector stays zero)';
COMMENT ON FUNCTION embedding_add(embedding, embedding) IS 'element-wise sum (operator +)';
COMMENT ON FUNCTION embedding_sub(embedding, embedding) IS 'element-wise difference (operator -)';
COMMENT ON FUNCTION embedding_mul(embedding, embedding) IS 'element-wise product (operator *)';
COMMENT ON FUNCTION lookalike_simd() IS 'instruction set the distance kernels use in this backend (avx512f, avx2 or portable)';

CREATE OPERATOR <-> (LEFTARG = embedding, RIGHTARG = embedding, FUNCTION = l2_distance, COMMUTATOR = '<->');
CREATE OPERATOR <#> (LEFTARG = embedding, RIGHTARG = embedding, FUNCTION = negative_inner_product, COMMUTATOR = '<#>');
CREATE OPERATOR <=> (LEFTARG = embedding, RIGHTARG = embedding, FUNCTION = cosine_distance, COMMUTATOR = '<=>');
CREATE OPERATOR + (LEFTARG = embedding, RIGHTARG = embedding, FUNCTION = embedding_add, COMMUTATOR = +);
CREATE OPERATOR - (LEFTARG = embedding, RIGHTARG = embedding, FUNCTION = embedding_sub);
CREATE OPERATOR * (LEFTARG = embedding, RIGHTARG = embedding, FUNCTION = embedding_mul, COMMUTATOR = *);

COMMENT ON OPERATOR <->(embedding, embedding) IS 'Euclidean distance';
COMMENT ON OPERATOR <#>(embedding, embedding) IS 'negative inner product';
COMMENT ON OPERATOR <=>(embedding, embedding) IS 'cosine distance';
COMMENT ON OPERATOR +(embedding, embedding) IS 'element-wise sum';
COMMENT ON OPERATOR -(embedding, embedding) IS 'element-wise difference';
COMMENT ON OPERATOR *(embedding, embedding) IS 'element-wise product';

-- ---- comparison and the btree operator class -----------------------------------------------

CREATE FUNCTION embedding_lt(embedding, embedding) RETURNS boolean
    AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION embedding_le(embedding, embedding) RETURNS boolean
    AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION embedding_eq(embedding, embedding) RETURNS boolean
    AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION embedding_ne(embedding, embedding) RETURNS boolean
    AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION embedding_ge(embedding, embedding) RETURNS boolean
    AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION embedding_gt(embedding, embedding) RETURNS boolean
    AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION embedding_cmp(embedding, embedding) RETURNS integer
    AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

COMMENT ON FUNCTION embedding_lt(embedding, embedding) IS 'less than (component-wise order)';
COMMENT ON FUNCTION embedding_le(embedding, embedding) IS 'less than or equal (component-wise order)';
COMMENT ON FUNCTION embedding_eq(embedding, embedding) IS 'equal';
COMMENT ON FUNCTION embedding_ne(embedding, embedding) IS 'not equal';
COMMENT ON FUNCTION embedding_ge(embedding, embedding) IS 'greater than or equal (component-wise order)';
COMMENT ON FUNCTION embedding_gt(embedding, embedding) IS 'greater than (component-wise order)';
COMMENT ON FUNCTION embedding_cmp(embedding, embedding) IS 'btree comparison support';

CREATE OPERATOR < (LEFTARG = embedding, RIGHTARG = embedding, FUNCTION = embedding_lt,
    COMMUTATOR = >, NEGATOR = >=, RESTRICT = scalarltsel, JOIN = scalarltjoinsel);
CREATE OPERATOR <= (LEFTARG = embedding, RIGHTARG = embedding, FUNCTION = embedding_le,
    COMMUTATOR = >=, NEGATOR = >, RESTRICT = scalarlesel, JOIN = scalarlejoinsel);
CREATE OPERATOR = (LEFTARG = embedding, RIGHTARG = embedding, FUNCTION = embedding_eq,
    COMMUTATOR = =, NEGATOR = <>, RESTRICT = eqsel, JOIN = eqjoinsel);
CREATE OPERATOR <> (LEFTARG = embedding, RIGHTARG = embedding, FUNCTION = embedding_ne,
    COMMUTATOR = <>, NEGATOR = =, RESTRICT = neqsel, JOIN = neqjoinsel);
CREATE OPERATOR >= (LEFTARG = embedding, RIGHTARG = embedding, FUNCTION = embedding_ge,
    COMMUTATOR = <=, NEGATOR = <, RESTRICT = scalargesel, JOIN = scalargejoinsel);
CREATE OPERATOR > (LEFTARG = embedding, RIGHTARG = embedding, FUNCTION = embedding_gt,
    COMMUTATOR = <, NEGATOR = <=, RESTRICT = scalargtsel, JOIN = scalargtjoinsel);

COMMENT ON OPERATOR <(embedding, embedding) IS 'less than';
COMMENT ON OPERATOR <=(embedding, embedding) IS 'less than or equal';
COMMENT ON OPERATOR =(embedding, embedding) IS 'equal';
COMMENT ON OPERATOR <>(embedding, embedding) IS 'not equal';
COMMENT ON OPERATOR >=(embedding, embedding) IS 'greater than or equal';
COMMENT ON OPERATOR >(embedding, embedding) IS 'greater than';

CREATE OPERATOR CLASS embedding_btree_ops DEFAULT FOR TYPE embedding USING btree AS
    OPERATOR 1 <, OPERATOR 2 <=, OPERATOR 3 =, OPERATOR 4 >=, OPERATOR 5 >,
    FUNCTION 1 embedding_cmp(embedding, embedding);
COMMENT ON OPERATOR CLASS embedding_btree_ops USING btree IS 'equality and component-wise order of embeddings';

-- ---- aggregates: centroids -----------------------------------------------------------------

CREATE FUNCTION embedding_accum(double precision[], embedding) RETURNS double precision[]
    AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION embedding_combine(double precision[], double precision[]) RETURNS double precision[]
    AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION embedding_avg(double precision[]) RETURNS embedding
    AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION embedding_sum(double precision[]) RETURNS embedding
    AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

COMMENT ON FUNCTION embedding_accum(double precision[], embedding) IS 'avg/sum transition: adds one embedding to {count, sums...}';
COMMENT ON FUNCTION embedding_combine(double precision[], double precision[]) IS 'avg/sum combine function (parallel aggregation)';
COMMENT ON FUNCTION embedding_avg(double precision[]) IS 'avg final function: the centroid';
COMMENT ON FUNCTION embedding_sum(double precision[]) IS 'sum final function';
-- Aggregate support functions are internal: only the aggregates call them (PostgreSQL checks
-- the aggregate owner's right to call them, not the caller's), and they refuse to run outside
-- an aggregate.
REVOKE EXECUTE ON FUNCTION embedding_accum(double precision[], embedding),
    embedding_combine(double precision[], double precision[]), embedding_avg(double precision[]),
    embedding_sum(double precision[]) FROM PUBLIC;

CREATE AGGREGATE avg(embedding) (
    SFUNC = embedding_accum, STYPE = double precision[], FINALFUNC = embedding_avg,
    COMBINEFUNC = embedding_combine, INITCOND = '{0}', PARALLEL = SAFE);
CREATE AGGREGATE sum(embedding) (
    SFUNC = embedding_accum, STYPE = double precision[], FINALFUNC = embedding_sum,
    COMBINEFUNC = embedding_combine, INITCOND = '{0}', PARALLEL = SAFE);

COMMENT ON AGGREGATE avg(embedding) IS 'element-wise mean: the centroid of a group of embeddings';
COMMENT ON AGGREGATE sum(embedding) IS 'element-wise sum of embeddings';

-- ---- functions of embeddings ----------------------------------------------------------------
-- Fusion (fuse_pg.cpp), exact batch k-NN (topk_pg.cpp, used by the evaluation) and applying a
-- projection of lookalike.projections (project_pg.cpp; fitting is lookalike_model.so's,
-- 35_projection.sql).

CREATE FUNCTION fused_embedding(a embedding, b embedding, weight_a double precision DEFAULT 0.5)
    RETURNS embedding
    AS 'MODULE_PATHNAME', 'embedding_fused' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION fused_embedding(embedding, embedding, double precision) IS
    'concatenation of sqrt(w) a/|a| and sqrt(1-w) b/|b| (w = weight_a in [0,1]): a unit vector whose cosine similarity to another fused vector is w cos(a) + (1-w) cos(b), so ORDER BY fused <=> q ranks by the weighted sum of both similarities';

CREATE FUNCTION exact_knn(query_ids bigint[], queries embedding[], ids bigint[],
                          vectors embedding[], k integer, metric text DEFAULT 'cosine',
                          exclude_self boolean DEFAULT true)
    RETURNS TABLE (query_id bigint, rank integer, id bigint, distance double precision)
    AS 'MODULE_PATHNAME', 'embedding_exact_knn' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE ROWS 1000;
COMMENT ON FUNCTION exact_knn(bigint[], embedding[], bigint[], embedding[], integer, text, boolean) IS
    'exact k nearest neighbours of every query among the vectors, ranked by (distance, id); metric cosine (<=>), l2 (<->) or inner_product (<#>); exclude_self skips a vector whose id equals the query id';

-- STABLE: reads lookalike.projections (once per statement).
CREATE FUNCTION project(e embedding, projection text) RETURNS embedding
    AS 'MODULE_PATHNAME', 'embedding_project' LANGUAGE C STABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION project(embedding, text) IS
    'applies a projection of lookalike.projections: W (e - mean), e.g. a PCA whitening fitted by lookalike.fit_projection()';
