-- Evaluates every method whose features are complete (docs/demo.md): one call of
-- lookalike.refresh_evaluation per method; the others are listed as skipped.
\set ON_ERROR_STOP on
WITH ready AS MATERIALIZED (
    SELECT m.method,
           NOT EXISTS (SELECT 1 FROM fashion.features f
                       WHERE CASE m.method WHEN 'histogram' THEN f.histogram WHEN 'cnn' THEN f.cnn
                                           WHEN 'fused' THEN f.fused WHEN 'learned' THEN f.learned
                    WHEN 'learned_fused' THEN f.learned_fused END IS NULL)
           AND EXISTS (SELECT 1 FROM fashion.features) AS complete
    FROM fashion.retrieval_methods m)
SELECT method, 'skipped: features missing' AS status FROM ready WHERE NOT complete
ORDER BY method;
DELETE FROM fashion.retrieval_results r
WHERE NOT EXISTS (SELECT 1 FROM fashion.features f)
   OR EXISTS (SELECT 1 FROM fashion.features f
              WHERE CASE r.method WHEN 'histogram' THEN f.histogram WHEN 'cnn' THEN f.cnn
                                  WHEN 'fused' THEN f.fused WHEN 'learned' THEN f.learned
                    WHEN 'learned_fused' THEN f.learned_fused END IS NULL);
SELECT r.method, r.queries, r.seconds
FROM (SELECT m.method FROM fashion.retrieval_methods m
      WHERE NOT EXISTS (SELECT 1 FROM fashion.features f
                        WHERE CASE m.method WHEN 'histogram' THEN f.histogram WHEN 'cnn' THEN f.cnn
                                            WHEN 'fused' THEN f.fused WHEN 'learned' THEN f.learned
                    WHEN 'learned_fused' THEN f.learned_fused END IS NULL)
        AND EXISTS (SELECT 1 FROM fashion.features)
      ORDER BY m.method OFFSET 0) AS m
CROSS JOIN LATERAL lookalike.refresh_evaluation('fashion', m.method) AS r;
