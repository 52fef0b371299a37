-- Choosing lookalike.train_model()'s options on the training pool only (docs/training.md,
-- "Method selection"): whole style groups of the pool are held out, a model is trained on the
-- rest, and the held-out images are evaluated like the study (lookalike.create_evaluation,
-- seeds 1..10, k = 5). The evaluation set (FASHION_DIR) is never read.
--
-- Run after `make demo` (which loads the pool into fashion_train.products), one variant per run:
--   psql "<demo dsn>" -v blocks=0 -v epochs=4 -f demo/training_validation.sql
--   psql "<demo dsn>" -v blocks=2 -v epochs=1 -f demo/training_validation.sql
-- psql variables: blocks (trainable_blocks, default 0), epochs (default 4), per_group (at most
-- that many training images per style group, as scripts/demo.sh; default 30; 0: all), threads
-- (lookalike.threads, default 1: faster than 2 while the other core is busy), lr and base_lr
-- (learning_rate and base_learning_rate, defaults 0.001 and 0.0003 as train_model's; another
-- value is added to the variant's name, e.g. b6_e2_g30_blr0.001), extra (more label columns of
-- fashion_train.products trained as auxiliary classifiers, e.g. -v extra=gender,season: variant
-- b6_e2_g30_x_gender_season; the style groups stay article type, colour and usage). The variant
-- `imagenet` (the base model, no training) is always evaluated. Each run prints the summary of
-- every variant evaluated so far (train_val.retrieval_summary). resize (the base registered
-- again with register_model(resize => ...), e.g. pad; portrait: resize => 'pad',
-- input_width => 168, the 3:4 box of the 60 x 80 images), views (augmented_views), dims
-- (embedding_dims), margin: train_model's options, added to the variant's name when not the
-- default. split (default 1): another split of the pool (other held-out groups and training
-- images, salted by the number) in schema train_val_s<split>, models val_s<split>_<variant>;
-- differences of about 0.01 need several splits (docs/training.md). seed (default 1):
-- train_model's seed, added to the variant's name as _s<seed> when not 1. pooled (default 1):
-- pooled_blocks, added as _p<pooled>. proxies (default 1): proxies_per_class, added as
-- _pc<proxies>. members (default 1): ensemble_members, added as _en<members>. batch (default
-- 32, the demo's): batch_size, added as _bs<batch>. weights (default none): label_weights as a
-- comma list for article type, colour, usage (and the extra columns), e.g. 1,1,0.5, added as
-- _w<weights> with underscores. bn_neck (default false): train_model's bn_neck, added as _bn.
-- held (default 60): how many of the pool's 188 groups of 4 or more images are held out; another
-- number makes another split (schema train_val..._h<held>, models val_..._h<held>_<variant>),
-- whose gallery holds more neighbouring groups and whose training fewer. tag: a word added to
-- the name (_<tag>), to keep apart variants that differ by the code they were trained with.
\set ON_ERROR_STOP on
\if :{?blocks}
\else
\set blocks 0
\endif
\if :{?epochs}
\else
\set epochs 4
\endif
\if :{?per_group}
\else
\set per_group 30
\endif
\if :{?threads}
\else
\set threads 1
\endif
\if :{?lr}
\else
\set lr 0.001
\endif
\if :{?base_lr}
\else
\set base_lr 0.0003
\endif
\if :{?extra}
\else
\set extra ''
\endif
\if :{?batch}
\else
\set batch 32
\endif
\if :{?weights}
\else
\set weights ''
\endif
\if :{?resize}
\else
\set resize stretch
\endif
\if :{?views}
\else
\set views 0
\endif
\if :{?dims}
\else
\set dims 256
\endif
\if :{?margin}
\else
\set margin 0
\endif
\if :{?split}
\else
\set split 1
\endif
\if :{?seed}
\else
\set seed 1
\endif
\if :{?held}
\else
\set held 60
\endif
\if :{?tag}
\else
\set tag ''
\endif
\if :{?pooled}
\else
\set pooled 1
\endif
\if :{?proxies}
\else
\set proxies 1
\endif
\if :{?bn_neck}
\else
\set bn_neck false
\endif
\if :{?members}
\else
\set members 1
\endif
SELECT CASE WHEN :'lr'::float8 <> 0.001 THEN '_lr' || :'lr' ELSE '' END
    || CASE WHEN :'base_lr'::float8 <> 0.0003 THEN '_blr' || :'base_lr' ELSE '' END
    || CASE WHEN :'extra' <> '' THEN '_x_' || replace(:'extra', ',', '_') ELSE '' END
    || CASE WHEN :'resize' <> 'stretch' THEN '_' || :'resize' ELSE '' END
    || CASE WHEN :views <> 0 THEN '_v' || :views ELSE '' END
    || CASE WHEN :dims <> 256 THEN '_d' || :dims ELSE '' END
    || CASE WHEN :'margin'::float8 <> 0 THEN '_m' || :'margin' ELSE '' END
    || CASE WHEN :pooled <> 1 THEN '_p' || :pooled ELSE '' END
    || CASE WHEN :proxies <> 1 THEN '_pc' || :proxies ELSE '' END
    || CASE WHEN :members <> 1 THEN '_en' || :members ELSE '' END
    || CASE WHEN :batch <> 32 THEN '_bs' || :batch ELSE '' END
    || CASE WHEN :'weights' <> '' THEN '_w' || replace(:'weights', ',', '_') ELSE '' END
    || CASE WHEN :bn_neck THEN '_bn' ELSE '' END
    || CASE WHEN :seed <> 1 THEN '_s' || :seed ELSE '' END
    || CASE WHEN :'tag' <> '' THEN '_' || :'tag' ELSE '' END AS rates,
       CASE WHEN :'resize' = 'stretch' THEN 'mobilenet_v2' ELSE 'mobilenet_v2_' || :'resize' END AS base,
       CASE WHEN :'weights' <> '' THEN format(', label_weights => %L', '{' || :'weights' || '}')
            ELSE '' END AS weights_arg,
       (SELECT coalesce(string_agg(', p.' || quote_ident(trim(c)), ''), '')
          FROM unnest(string_to_array(nullif(:'extra', ''), ',')) AS c) AS extra_columns,
       CASE WHEN :split = 1 THEN 'train_val' ELSE 'train_val_s' || :split END
    || CASE WHEN :held <> 60 THEN '_h' || :held ELSE '' END AS schema,
       CASE WHEN :split = 1 THEN '' ELSE :split::text END AS salt,
       CASE WHEN :split = 1 THEN 'val_' ELSE 'val_s' || :split || '_' END
    || CASE WHEN :held <> 60 THEN 'h' || :held || '_' ELSE '' END AS prefix \gset
\set variant b :blocks _e :epochs _g :per_group :rates
SET client_min_messages = warning;
SET lookalike.threads = :threads;
CREATE SCHEMA IF NOT EXISTS :"schema";

-- The split, fixed (md5 of a salted group key): 60 (:held) of the pool's groups of 4 or more
-- images are held out, each subsampled to 4..12 images (the evaluated catalogue's groups have
-- 4..20, 8.9 on average); 10 % of the 1..3-image groups are held out whole as distractors.
-- Training uses only the other groups, at most :per_group images each (the demo's sampling: md5
-- of the id).
CREATE TABLE IF NOT EXISTS :"schema".split AS
WITH p AS (
    SELECT id, format('%s | %s | %s', article_type, base_colour, usage) AS group_key
      FROM fashion_train.products WHERE image IS NOT NULL),
g AS (SELECT group_key, count(*) AS n FROM p GROUP BY group_key),
pick AS (
    SELECT group_key, n,
           CASE WHEN n >= 4
                THEN row_number() OVER (PARTITION BY n >= 4 ORDER BY md5('lookalike-val' || :'salt' || '|' || group_key)) <= :held
                ELSE get_byte(decode(md5('lookalike-val' || :'salt' || '|' || group_key), 'hex'), 0) % 10 = 0 END AS held_out,
           4 + get_byte(decode(md5('lookalike-size' || :'salt' || '|' || group_key), 'hex'), 0) % 9 AS val_size
      FROM g)
SELECT p.id, p.group_key, pick.n, pick.held_out,
       row_number() OVER (PARTITION BY p.group_key ORDER BY md5(p.id::text)) AS r,
       pick.val_size
  FROM p JOIN pick USING (group_key);
CREATE OR REPLACE VIEW :"schema".items AS
SELECT id, group_key FROM :"schema".split WHERE held_out AND (n < 4 OR r <= val_size);
SELECT count(*) FILTER (WHERE held_out AND n >= 4 AND r <= val_size) AS query_images,
       count(DISTINCT group_key) FILTER (WHERE held_out AND n >= 4) AS query_groups,
       count(*) FILTER (WHERE held_out AND n < 4) AS distractors,
       count(*) FILTER (WHERE NOT held_out AND (:per_group = 0 OR r <= :per_group)) AS training_images
  FROM :"schema".split;

SELECT to_regclass(:'schema' || '.retrieval_config') IS NULL AS new_evaluation \gset
\if :new_evaluation
SELECT lookalike.create_evaluation(target_schema => :'schema', items => :'schema' || '.items',
    id_column => 'id', group_expression => 'group_key', min_group_size => 4,
    max_group_size => 20, seeds => 10, k => 5);
CREATE TABLE :"schema".features (id integer PRIMARY KEY, imagenet embedding);
INSERT INTO :"schema".features (id) SELECT id FROM :"schema".items;
UPDATE :"schema".features f SET imagenet = e.embedding
  FROM image_embeddings('SELECT i.id, p.image FROM ' || :'schema' || '.items i JOIN fashion_train.products p USING (id)',
                        'mobilenet_v2') AS e
 WHERE e.id = f.id;
SELECT lookalike.add_evaluation_method(:'schema', 'imagenet',
    'SELECT id, imagenet FROM ' || :'schema' || '.features', 'cosine', 'the base model, no training');
SELECT method, queries, round(seconds::numeric, 1) AS seconds
  FROM lookalike.refresh_evaluation(:'schema', 'imagenet');
\endif

-- the variant: train on the other groups, embed the held-out images, evaluate
-- the base model with another resize: the same file, registered again
SELECT lookalike.register_model(:'base', m.path, m.input_size, m.mean, m.std,
                                'the demo''s model, resize ' || :'resize',
                                CASE WHEN :'resize' = 'portrait' THEN 'pad' ELSE :'resize' END,
                                CASE WHEN :'resize' = 'portrait' THEN 168 END)
  FROM lookalike.models m
 WHERE m.name = 'mobilenet_v2' AND NOT EXISTS (SELECT 1 FROM lookalike.models WHERE name = :'base');
SELECT NOT EXISTS (SELECT 1 FROM lookalike.models WHERE name = :'prefix' || :'variant') AS train \gset
\if :train
\timing on
SELECT name, dims FROM lookalike.train_model(:'prefix' || :'variant', :'base',
    format('SELECT p.image, p.article_type, p.base_colour, p.usage%s FROM fashion_train.products p
              JOIN ' || :'schema' || '.split s USING (id) WHERE NOT s.held_out AND (%s = 0 OR s.r <= %2$s) ORDER BY p.id',
           :'extra_columns', :per_group),
    epochs => :epochs, trainable_blocks => :blocks, embedding_dims => :dims, batch_size => :batch,
    learning_rate => :lr, base_learning_rate => :base_lr, seed => :seed, augmented_views => :views,
    margin => :margin, pooled_blocks => :pooled, proxies_per_class => :proxies,
    ensemble_members => :members, bn_neck => :bn_neck :weights_arg);
\timing off
\endif
SELECT :'prefix' || :'variant' AS model,
       training->'images' AS images, round((training->>'seconds')::numeric) AS seconds,
       round((training->>'cache_seconds')::numeric) AS cache_seconds,
       (SELECT string_agg(round((e->>'loss')::numeric, 3)::text, ' ') FROM jsonb_array_elements(training->'history') e) AS losses
  FROM lookalike.model_data WHERE name = :'prefix' || :'variant';
ALTER TABLE :"schema".features ADD COLUMN IF NOT EXISTS :"variant" embedding;
UPDATE :"schema".features f SET :"variant" = e.embedding
  FROM image_embeddings('SELECT i.id, p.image FROM ' || :'schema' || '.items i JOIN fashion_train.products p USING (id)',
                        :'prefix' || :'variant') AS e
 WHERE e.id = f.id AND f.:"variant" IS NULL;
SELECT lookalike.add_evaluation_method(:'schema', :'variant',
    format('SELECT id, %I FROM ' || :'schema' || '.features', :'variant'), 'cosine',
    format('train_model(trainable_blocks => %s, epochs => %s, embedding_dims => %s, learning_rate => %s, base_learning_rate => %s, augmented_views => %s, margin => %s, pooled_blocks => %s, proxies_per_class => %s, ensemble_members => %s, bn_neck => %s%s) from %s, at most %s images per training group',
           :blocks, :epochs, :dims, :lr, :base_lr, :views, :margin, :pooled, :proxies, :members, :bn_neck, :'weights_arg', :'base', :per_group))
 WHERE NOT EXISTS (SELECT 1 FROM :"schema".retrieval_methods WHERE method = :'variant');
SELECT method, queries, round(seconds::numeric, 1) AS seconds
  FROM lookalike.refresh_evaluation(:'schema', :'variant');
-- fusions of the variant with the foreground colour descriptor (the demo's fused method uses
-- 0.6 x CNN + 0.4 x colour): weights 0.5 .. 0.9 on the learned embedding
ALTER TABLE :"schema".features ADD COLUMN IF NOT EXISTS foreground embedding;
UPDATE :"schema".features f SET foreground = foreground_color_histogram(p.image)
  FROM fashion_train.products p WHERE p.id = f.id AND f.foreground IS NULL;
SELECT lookalike.add_evaluation_method(:'schema', :'variant' || '+colour' || w,
    format('SELECT id, fused_embedding(l2_normalize(%I), foreground, %s) FROM ' || :'schema' || '.features', :'variant', w),
    'cosine', format('%s x cosine of the variant + %s x cosine of foreground_color_histogram', w, 1 - w))
  FROM unnest(ARRAY[0.5, 0.6, 0.7, 0.8, 0.9]) AS w
 WHERE NOT EXISTS (SELECT 1 FROM :"schema".retrieval_methods m WHERE m.method = :'variant' || '+colour' || w);
SELECT r.method, r.queries
  FROM unnest(ARRAY[0.5, 0.6, 0.7, 0.8, 0.9]) AS w,
       lookalike.refresh_evaluation(:'schema', :'variant' || '+colour' || w) AS r;
SELECT method, seeds, round(precision_at_k::numeric, 4) AS p_at_5,
       round(recall_at_k::numeric, 4) AS r_at_5, round(hit_at_k::numeric, 4) AS hit_at_5
  FROM :"schema".retrieval_summary ORDER BY method;
