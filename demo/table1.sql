-- The study's Table 1 beside ours (fashion.table1), and our reproduction of the reference
-- implementation's figures (shared/reference/README.md: seeds 1..20, k = 5).
\pset footer off
\echo 'Table 1: Precision@5, Recall@5, Hit@5, mean of seeds 1..20 (ours) against the study''s reported figures'
SELECT method, round(precision_at_k::numeric, 4) AS "P@5", round(recall_at_k::numeric, 4) AS "R@5",
       round(hit_at_k::numeric, 4) AS "Hit@5", study_method AS "study",
       study_precision AS "study P@5", study_recall AS "study R@5", study_hit AS "study Hit@5",
       to_char(precision_diff, 'SG0.0000') AS "ΔP@5", to_char(recall_diff, 'SG0.0000') AS "ΔR@5",
       to_char(hit_diff, 'SG0.0000') AS "ΔHit@5"
FROM fashion.table1
ORDER BY array_position(ARRAY['histogram', 'cnn', 'fused', 'learned', 'learned_fused'], method);
-- The reference's figures hold for the shared benchmark set only (697 groups, 6,217 products).
SELECT count(*) = 697 AND sum(products) = 6217 AS is_benchmark_set FROM fashion.style_groups \gset
\if :is_benchmark_set
\echo 'Reproduction of shared/reference (study_reference.py, MobileNetV2 for cnn):'
SELECT s.method, round(s.precision_at_k::numeric, 4) AS "P@5", ref.p AS "ref P@5",
       round(s.recall_at_k::numeric, 4) AS "R@5", ref.r AS "ref R@5",
       round(s.hit_at_k::numeric, 4) AS "Hit@5", ref.h AS "ref Hit@5",
       CASE WHEN abs(s.precision_at_k - ref.p) <= ref.tol AND abs(s.recall_at_k - ref.r) <= ref.tol
                 AND abs(s.hit_at_k - ref.h) <= ref.tol THEN 'yes (±' || ref.tol || ')'
            ELSE 'NO (±' || ref.tol || ')' END AS "within tolerance"
FROM fashion.retrieval_summary s
JOIN (VALUES ('histogram', 0.0841, 0.0578, 0.2965, 0.002),
             ('cnn', 0.2055, 0.1498, 0.5803, 0.005)) AS ref(method, p, r, h, tol) USING (method)
ORDER BY array_position(ARRAY['histogram', 'cnn'], s.method);
\else
\echo 'Reproduction of shared/reference: not applicable, this catalogue is not the shared benchmark set (697 style groups, 6,217 products).'
\endif
