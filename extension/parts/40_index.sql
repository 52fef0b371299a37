-- ============================================================================================
-- The approximate nearest-neighbour index: access method lookalike_hnsw (src/index/)
-- ============================================================================================

CREATE FUNCTION lookalike_hnsw_handler(internal) RETURNS index_am_handler
    AS 'MODULE_PATHNAME' LANGUAGE C;
COMMENT ON FUNCTION lookalike_hnsw_handler(internal) IS 'handler of the lookalike_hnsw index access method';

CREATE ACCESS METHOD lookalike_hnsw TYPE INDEX HANDLER lookalike_hnsw_handler;
COMMENT ON ACCESS METHOD lookalike_hnsw IS
    'approximate nearest-neighbour index (HNSW graph over int8 codes, exact re-rank) for ORDER BY embedding <op> constant LIMIT k';

CREATE FUNCTION lookalike_hnsw_metric_l2(internal) RETURNS integer
    AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION lookalike_hnsw_metric_ip(internal) RETURNS integer
    AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION lookalike_hnsw_metric_cosine(internal) RETURNS integer
    AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION lookalike_hnsw_metric_l2(internal) IS 'lookalike_hnsw support function: Euclidean metric';
COMMENT ON FUNCTION lookalike_hnsw_metric_ip(internal) IS 'lookalike_hnsw support function: inner-product metric';
COMMENT ON FUNCTION lookalike_hnsw_metric_cosine(internal) IS 'lookalike_hnsw support function: cosine metric (vectors normalised)';
-- Internal: the access method calls them (and its handler) without a privilege check.
REVOKE EXECUTE ON FUNCTION lookalike_hnsw_handler(internal), lookalike_hnsw_metric_l2(internal),
    lookalike_hnsw_metric_ip(internal), lookalike_hnsw_metric_cosine(internal) FROM PUBLIC;

CREATE OPERATOR CLASS embedding_l2_ops FOR TYPE embedding USING lookalike_hnsw AS
    OPERATOR 1 <-> (embedding, embedding) FOR ORDER BY float_ops,
    FUNCTION 1 lookalike_hnsw_metric_l2(internal);
CREATE OPERATOR CLASS embedding_ip_ops FOR TYPE embedding USING lookalike_hnsw AS
    OPERATOR 1 <#> (embedding, embedding) FOR ORDER BY float_ops,
    FUNCTION 1 lookalike_hnsw_metric_ip(internal);
CREATE OPERATOR CLASS embedding_cosine_ops FOR TYPE embedding USING lookalike_hnsw AS
    OPERATOR 1 <=> (embedding, embedding) FOR ORDER BY float_ops,
    FUNCTION 1 lookalike_hnsw_metric_cosine(internal);
COMMENT ON OPERATOR CLASS embedding_l2_ops USING lookalike_hnsw IS 'lookalike_hnsw index for ORDER BY embedding <-> constant (Euclidean distance)';
COMMENT ON OPERATOR CLASS embedding_ip_ops USING lookalike_hnsw IS 'lookalike_hnsw index for ORDER BY embedding <#> constant (negative inner product)';
COMMENT ON OPERATOR CLASS embedding_cosine_ops USING lookalike_hnsw IS 'lookalike_hnsw index for ORDER BY embedding <=> constant (cosine distance; zero vectors are not indexed)';
