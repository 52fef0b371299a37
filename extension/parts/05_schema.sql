-- ============================================================================================
-- The lookalike schema: the catalog tables (models, projections, embedding jobs) and the
-- functions that are not operators on embeddings; the parts below put their objects there
-- ============================================================================================

CREATE SCHEMA lookalike;
COMMENT ON SCHEMA lookalike IS 'lookalike''s functions that are not operators on embeddings (evaluation, model registry)';
GRANT USAGE ON SCHEMA lookalike TO PUBLIC;
