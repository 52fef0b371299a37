-- The style-retrieval study on the fashion catalogue, inside PostgreSQL (docs/demo.md).
-- Run after lookalike-load has filled fashion.products. Defines the style groups, the
-- evaluation (lookalike.create_evaluation) and its three methods; demo/features.sql computes the
-- features, then SELECT * FROM lookalike.refresh_evaluation('fashion') evaluates.
\set ON_ERROR_STOP on
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS lookalike;

-- Style groups: (articleType, baseColour, usage) over the products that have an image, groups of
-- 4..20 products. 'NA' is an ordinary value. On the shared set: 697 groups, 6,217 products.
CREATE OR REPLACE VIEW fashion.style_groups AS
SELECT format('%s | %s | %s', article_type, base_colour, usage) AS group_key,
       article_type, base_colour, usage, count(*)::int AS products,
       array_agg(id ORDER BY id) AS ids
FROM fashion.products
WHERE image IS NOT NULL
GROUP BY article_type, base_colour, usage
HAVING count(*) BETWEEN 4 AND 20;
COMMENT ON VIEW fashion.style_groups IS
    'style groups of the study: (articleType, baseColour, usage) over products with an image, groups of 4..20';

-- The evaluation: the same grouping, seeds 1..20, k = 5.
SELECT lookalike.create_evaluation(
    target_schema => 'fashion', items => 'fashion.products', id_column => 'id',
    group_expression => $$format('%s | %s | %s', article_type, base_colour, usage)$$,
    filter => 'image IS NOT NULL', min_group_size => 4, max_group_size => 20, seeds => 20, k => 5);

-- Features, one row per product with an image (demo/features.sql fills it).
CREATE TABLE IF NOT EXISTS fashion.features (
    id integer PRIMARY KEY REFERENCES fashion.products (id) ON DELETE CASCADE,
    image_md5 text,         -- md5 of the image the features were computed from
    histogram embedding,    -- color_histogram(image): RGB 8x8x8, the study's baseline
    cnn embedding,          -- image_embedding(image): MobileNetV2 ImageNet features (1280-d)
    foreground embedding,   -- foreground_color_histogram(image): colour of the product's own pixels
    fused embedding         -- fused_embedding(project(cnn, 'fashion_cnn_whitening'), foreground, 0.6)
);
COMMENT ON TABLE fashion.features IS 'image features of the products that have an image (demo/features.sql)';
-- learned: image_embedding(image, <model trained by lookalike.train_model() on TRAIN_DIR only>)
ALTER TABLE fashion.features ADD COLUMN IF NOT EXISTS learned embedding;
-- learned_fused: fused_embedding(learned, foreground, 0.9)
ALTER TABLE fashion.features ADD COLUMN IF NOT EXISTS learned_fused embedding;
-- (Earlier demos kept the catalogue mean here; the whitening projection now holds it.)
DROP TABLE IF EXISTS fashion.feature_means;

SELECT lookalike.add_evaluation_method('fashion', 'histogram',
    'SELECT id, histogram FROM fashion.features', 'cosine',
    'color_histogram(image, 8): 8x8x8 RGB histogram of the whole frame');
SELECT lookalike.add_evaluation_method('fashion', 'cnn',
    'SELECT id, cnn FROM fashion.features', 'cosine',
    'image_embedding(image): MobileNetV2 ImageNet features, the default model');
SELECT lookalike.add_evaluation_method('fashion', 'fused',
    'SELECT id, fused FROM fashion.features', 'cosine',
    '0.6 x cosine of the mildly PCA-whitened CNN embedding (project(), fitted on the catalogue) + 0.4 x cosine of foreground_color_histogram (fused_embedding)');

SELECT lookalike.add_evaluation_method('fashion', 'learned',
    'SELECT id, learned FROM fashion.features', 'cosine',
    'image_embedding(image, learned model): MobileNetV2 with its last TRAIN_BLOCKS blocks and an embedding head trained in the database (lookalike.train_model; scripts/demo.sh names the options, lookalike.model_data.training records them) on the training pool TRAIN_DIR only, labels articleType, baseColour, usage');
SELECT lookalike.add_evaluation_method('fashion', 'learned_fused',
    'SELECT id, learned_fused FROM fashion.features', 'cosine',
    '0.9 x cosine of the learned embedding + 0.1 x cosine of foreground_color_histogram (fused_embedding); the weight chosen on held-out groups of the training pool (demo/training_validation.sql)');

-- Drill-down by article type: which kinds of product each method finds or misses.
CREATE OR REPLACE VIEW fashion.retrieval_article_types AS
SELECT q.method, p.article_type, count(*)::int AS queries,
       avg(q.precision_at_k) AS precision_at_k, avg(q.recall_at_k) AS recall_at_k,
       avg(q.hit_at_k) AS hit_at_k
FROM fashion.retrieval_queries q JOIN fashion.products p ON p.id = q.query_id
GROUP BY q.method, p.article_type;
COMMENT ON VIEW fashion.retrieval_article_types IS
    'drill-down per article type: mean P@k, R@k, Hit@k of the queries of that type over all seeds';

-- The study's Table 1 beside ours.
CREATE TABLE IF NOT EXISTS fashion.study_reference (
    method text PRIMARY KEY, study_method text NOT NULL,
    precision_at_k float8 NOT NULL, recall_at_k float8 NOT NULL, hit_at_k float8 NOT NULL);
COMMENT ON TABLE fashion.study_reference IS
    'figures the study reported (its own random split, ResNet-18): the row each of our methods is compared with';
INSERT INTO fashion.study_reference VALUES
    ('histogram', 'colour histogram baseline', 0.0993, 0.0516, 0.3305),
    ('cnn', 'ResNet-18 pipeline', 0.2154, 0.1175, 0.5993),
    ('fused', 'ResNet-18 pipeline', 0.2154, 0.1175, 0.5993),
    ('learned', 'ResNet-18 pipeline', 0.2154, 0.1175, 0.5993),
    ('learned_fused', 'ResNet-18 pipeline', 0.2154, 0.1175, 0.5993)
ON CONFLICT (method) DO UPDATE SET study_method = excluded.study_method,
    precision_at_k = excluded.precision_at_k, recall_at_k = excluded.recall_at_k,
    hit_at_k = excluded.hit_at_k;

CREATE OR REPLACE VIEW fashion.table1 AS
SELECT s.method, s.seeds, s.precision_at_k, s.recall_at_k, s.hit_at_k,
       r.study_method, r.precision_at_k AS study_precision, r.recall_at_k AS study_recall,
       r.hit_at_k AS study_hit,
       s.precision_at_k - r.precision_at_k AS precision_diff,
       s.recall_at_k - r.recall_at_k AS recall_diff, s.hit_at_k - r.hit_at_k AS hit_diff
FROM fashion.retrieval_summary s LEFT JOIN fashion.study_reference r USING (method);
COMMENT ON VIEW fashion.table1 IS
    'our retrieval_summary beside the study''s reported figures, with the differences';
