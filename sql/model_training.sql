-- lookalike.train_model(): every refused call (each leaves nothing registered), then one tiny
-- training run (16 training-pool images at 32 x 32, one epoch) whose model is stored in the
-- database and used by image_embedding(). The TAP test test/tap/070_training.pl covers the
-- loss, pg_dump/restore, progress from another session and cancellation.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS lookalike;
\getenv shared SHARED
\set features :shared/models/mobilenet_v2-imagenet-features.pt
\set logits :shared/models/mobilenet_v2-imagenet-logits.pt
\set VERBOSITY sqlstate
SELECT name, dims FROM lookalike.register_model('mnv2_32', :'features', input_size => 32);
SELECT name, dims FROM lookalike.register_model('mnv2_logits_32', :'logits', input_size => 32);
CREATE TABLE train_items AS
SELECT id, article, colour,
       pg_read_binary_file(:'shared' || '/data/fashion-train/images/' || id || '.jpg') AS image
  FROM (VALUES (1534,'Tshirts','Black'),(1536,'Tshirts','Black'),(1570,'Tshirts','Black'),
               (1575,'Tshirts','White'),(1588,'Tshirts','White'),(1595,'Tshirts','Black'),
               (1612,'Tshirts','White'),(1613,'Tshirts','White'),(4664,'Watches','White'),
               (4700,'Watches','White'),(5062,'Watches','Black'),(5071,'Watches','Black'),
               (5072,'Watches','Black'),(8095,'Watches','Black'),(8098,'Watches','Black'),
               (8099,'Watches','Black')) AS v(id, article, colour);
\set q 'SELECT image, article, colour FROM public.train_items ORDER BY id'

-- ---- refused calls -------------------------------------------------------------------------
-- unknown base model, a name already taken, NULL arguments, options out of range
SELECT lookalike.train_model('t', 'no_such_model', :'q');
SELECT lookalike.train_model('mnv2_32', 'mnv2_32', :'q');
SELECT lookalike.train_model('t', 'mnv2_32', NULL);
SELECT lookalike.train_model('t', 'mnv2_32', :'q', epochs => 0);
SELECT lookalike.train_model('t', 'mnv2_32', :'q', embedding_dims => 1);
SELECT lookalike.train_model('t', 'mnv2_32', :'q', batch_size => 1);
SELECT lookalike.train_model('t', 'mnv2_32', :'q', learning_rate => 0);
SELECT lookalike.train_model('t', 'mnv2_32', :'q', trainable_blocks => 19);
SELECT lookalike.train_model('t', 'mnv2_32', :'q', augmented_views => 8);
SELECT lookalike.train_model('t', 'mnv2_32', :'q', augmented_views => -1);
SELECT lookalike.train_model('t', 'mnv2_32', :'q', augmented_views => NULL);
SELECT lookalike.train_model('t', 'mnv2_32', :'q', margin => 1);
SELECT lookalike.train_model('t', 'mnv2_32', :'q', margin => -0.1);
SELECT lookalike.train_model('t', 'mnv2_32', :'q', pooled_blocks => 0);
SELECT lookalike.train_model('t', 'mnv2_32', :'q', trainable_blocks => 2, pooled_blocks => 4);
SELECT lookalike.train_model('t', 'mnv2_32', :'q', proxies_per_class => 0);
SELECT lookalike.train_model('t', 'mnv2_32', :'q', proxies_per_class => 17);
SELECT lookalike.train_model('t', 'mnv2_32', :'q', proxies_per_class => NULL);
SELECT lookalike.train_model('t', 'mnv2_32', :'q', ensemble_members => 0);
SELECT lookalike.train_model('t', 'mnv2_32', :'q', ensemble_members => 9);
SELECT lookalike.train_model('t', 'mnv2_32', :'q', ensemble_members => NULL);
-- embedding_dims is the whole model's: a multiple of the members, at least 2 each
SELECT lookalike.train_model('t', 'mnv2_32', :'q', ensemble_members => 3);
SELECT lookalike.train_model('t', 'mnv2_32', :'q', embedding_dims => 2, ensemble_members => 2);
-- label_weights: one per label column of the query (here two), each in [0, 100], at least one
-- positive, no NULLs, one dimension
SELECT lookalike.train_model('t', 'mnv2_32', :'q', label_weights => '{1}');
SELECT lookalike.train_model('t', 'mnv2_32', :'q', label_weights => '{1,1,1}');
SELECT lookalike.train_model('t', 'mnv2_32', :'q', label_weights => '{1,-1}');
SELECT lookalike.train_model('t', 'mnv2_32', :'q', label_weights => '{1,NaN}');
SELECT lookalike.train_model('t', 'mnv2_32', :'q', label_weights => '{1,101}');
SELECT lookalike.train_model('t', 'mnv2_32', :'q', label_weights => '{0,0}');
SELECT lookalike.train_model('t', 'mnv2_32', :'q', label_weights => '{1,NULL}');
SELECT lookalike.train_model('t', 'mnv2_32', :'q', label_weights => '{{1,1}}');
SELECT lookalike.train_model('t', 'mnv2_32', :'q', label_weights => '{}');
SELECT lookalike.train_model('t', 'mnv2_32', :'q', bn_neck => NULL);
-- the logits model's output is not its pooled features: only a head can be trained on it
SELECT lookalike.train_model('t', 'mnv2_logits_32', :'q', trainable_blocks => 2);
-- the query: not (bytea, labels...), no rows, only NULL images, a single class, NULL-only
-- labels, an undecodable image, a query error
SELECT lookalike.train_model('t', 'mnv2_32', 'SELECT article, image FROM public.train_items');
SELECT lookalike.train_model('t', 'mnv2_32', 'SELECT image FROM public.train_items');
SELECT lookalike.train_model('t', 'mnv2_32', 'SELECT image, article FROM public.train_items WHERE false');
SELECT lookalike.train_model('t', 'mnv2_32', 'SELECT NULL::bytea, article FROM public.train_items');
SELECT lookalike.train_model('t', 'mnv2_32', 'SELECT image, ''same'' FROM public.train_items');
SELECT lookalike.train_model('t', 'mnv2_32', 'SELECT image, article, NULL::text FROM public.train_items');
SELECT lookalike.train_model('t', 'mnv2_32',
    'SELECT image, article FROM public.train_items UNION ALL SELECT ''\x0102''::bytea, ''x''');
SELECT lookalike.train_model('t', 'mnv2_32', 'SELECT image, no_such_column FROM public.train_items');
-- search_path: the training query runs as the caller (neither function is SECURITY DEFINER)
-- with train_model's pinned path (pg_catalog, pg_temp): an unqualified table is not found (42P01)
-- whatever the session's path
SELECT proname, prosecdef, proconfig FROM pg_proc
 WHERE oid IN ('lookalike.train_model'::regproc, 'lookalike._train_model'::regproc) ORDER BY 1;
SET search_path = public;
SELECT lookalike.train_model('t', 'mnv2_32', 'SELECT image, article FROM train_items');
RESET search_path;
-- the base model is read with a pinned path, even by a direct call of _train_model: a session
-- path whose text = is always true does not turn an unknown base model into a registered one
CREATE SCHEMA train_shadow;
CREATE FUNCTION train_shadow.always(text, text) RETURNS boolean LANGUAGE sql AS 'SELECT true';
CREATE OPERATOR train_shadow.= (LEFTARG = text, RIGHTARG = text, FUNCTION = train_shadow.always);
SET search_path = train_shadow, pg_catalog, public;
SELECT lookalike._train_model('t', 'no_such_model', :'q', 1, 16, 2, 8, 0.01, 0.001, 1, 0, 0, 1, 1, 1);  -- 42704
RESET search_path;
DROP SCHEMA train_shadow CASCADE;
SELECT count(*) AS models, (SELECT count(*) FROM lookalike.model_data) AS stored
  FROM lookalike.models;
-- only superusers train (a trained model is code that runs in the server)
CREATE ROLE lookalike_train_user;
GRANT SELECT ON train_items TO lookalike_train_user;
SET ROLE lookalike_train_user;
SELECT lookalike.train_model('t', 'mnv2_32', :'q');
SELECT lookalike._train_model('t', 'mnv2_32', :'q', 1, 16, 2, 8, 0.01, 0.001, 1, 0, 0, 1, 1, 1);
SELECT count(*) AS running FROM lookalike.training_progress;
RESET ROLE;
DROP OWNED BY lookalike_train_user;
DROP ROLE lookalike_train_user;

-- ---- a tiny run: 16 images, NULL images skipped, NULL labels ignored -----------------------
INSERT INTO train_items VALUES (1, 'Tshirts', NULL, pg_read_binary_file(:'shared' || '/data/fashion-train/images/1534.jpg')),
                               (2, 'Watches', 'Black', NULL);
SELECT name, path, input_size, dims, description
  FROM lookalike.train_model('tiny', 'mnv2_32', :'q', epochs => 1, embedding_dims => 16,
                             trainable_blocks => 2, batch_size => 8, learning_rate => 0.01);
SELECT base_model, training->'rows' AS rows, training->'images' AS images,
       training->'null_images' AS null_images, training->'null_labels' AS null_labels,
       training->'labels' AS labels, jsonb_array_length(training->'history') AS epochs,
       m.sha256 = encode(sha256(torchscript), 'hex') AS sha256_ok
  FROM lookalike.model_data d JOIN lookalike.models m USING (name);
-- the stored model embeds like any other, and differently from its base
SELECT dims(image_embedding(image, 'tiny')) AS dims,
       round(norm(image_embedding(image, 'tiny'))::numeric, 4) AS norm
  FROM public.train_items WHERE id = 1534;
SELECT count(*) AS embedded FROM image_embeddings('SELECT id, image FROM public.train_items', 'tiny');
-- a stored model whose bytes changed is refused (XX001), then works again once restored
UPDATE lookalike.model_data SET torchscript = torchscript || '\x00'::bytea WHERE name = 'tiny';
\c
\set VERBOSITY sqlstate
SELECT image_embedding(image, 'tiny') IS NOT NULL FROM public.train_items WHERE id = 1534;
UPDATE lookalike.model_data SET torchscript = substr(torchscript, 1, length(torchscript) - 1)
 WHERE name = 'tiny';
\c
\set VERBOSITY sqlstate
SELECT image_embedding(image, 'tiny') IS NOT NULL AS ok FROM public.train_items WHERE id = 1534;
-- a stored model can be the base of another training run (head only)
SET client_min_messages = warning;
SELECT name, dims FROM lookalike.train_model('tiny2', 'tiny', :'q', epochs => 1,
    embedding_dims => 8, trainable_blocks => 0, batch_size => 8);
-- a model trained from a base registered with resize => 'pad' is padded as its base was
SELECT name, resize FROM lookalike.register_model('mnv2_32_pad', :'features', input_size => 32, resize => 'pad');
SELECT name, resize FROM lookalike.train_model('tiny_pad', 'mnv2_32_pad', :'q', epochs => 1,
    embedding_dims => 8, trainable_blocks => 0, batch_size => 8, augmented_views => 2, margin => 0.2);
-- two randomly cropped views of each image were cached besides the image
SELECT training->'augmented_views' AS views, training->'margin' AS margin, training->'images' AS images,
       (training->>'cached_bytes')::bigint - 8 * (training->>'images')::bigint
         = 3 * (training->>'images')::bigint * 1280 * 2 AS three_1280d_float16_views_cached
  FROM lookalike.model_data WHERE name = 'tiny_pad';
SELECT dims(image_embedding(image, 'tiny_pad')) AS dims FROM public.train_items WHERE id = 1534;
SELECT lookalike.unregister_model('tiny_pad');
-- a model trained from a base with a non-square input (24 x 32) inherits it
SELECT name, input_size, input_width FROM lookalike.register_model('mnv2_32_narrow', :'features',
    input_size => 32, resize => 'pad', input_width => 24);
SELECT name, input_size, input_width, resize FROM lookalike.train_model('tiny_narrow', 'mnv2_32_narrow', :'q',
    epochs => 1, embedding_dims => 8, trainable_blocks => 2, batch_size => 8, pooled_blocks => 3);
SELECT dims(image_embedding(image, 'tiny_narrow')) AS dims FROM public.train_items WHERE id = 1534;
SELECT lookalike.unregister_model('tiny_narrow');
SELECT lookalike.unregister_model('mnv2_32_narrow');
-- the embedding projected from the pooled outputs of the last three blocks (16, 17, 18:
-- 160 + 320 + 1280 channels)
SELECT name, dims FROM lookalike.train_model('tiny_pooled', 'mnv2_32', :'q', epochs => 1,
    embedding_dims => 8, trainable_blocks => 2, batch_size => 8, pooled_blocks => 3);
SELECT training->'pooled_blocks' AS pooled_blocks FROM lookalike.model_data WHERE name = 'tiny_pooled';
SELECT dims(image_embedding(image, 'tiny_pooled')) AS dims FROM public.train_items WHERE id = 1534;
-- three proxies per class: recorded, and another model than one proxy per class
SELECT name, dims FROM lookalike.train_model('tiny_proxies', 'mnv2_32', :'q', epochs => 1,
    embedding_dims => 8, trainable_blocks => 2, batch_size => 8, pooled_blocks => 3,
    proxies_per_class => 3);
SELECT p.training->'proxies_per_class' AS proxies, d.training->'proxies_per_class' AS default_proxies,
       p.torchscript <> d.torchscript AS another_model,
       p.training->'history'->0->'loss' <> d.training->'history'->0->'loss' AS another_loss
  FROM lookalike.model_data p, lookalike.model_data d
 WHERE p.name = 'tiny_proxies' AND d.name = 'tiny_pooled';
SELECT dims(image_embedding(image, 'tiny_proxies')) AS dims FROM public.train_items WHERE id = 1534;
-- label weights: recorded (NULL when not given); weights of 1 are the unweighted run, and a
-- smaller weight of the colour column trains another model with another loss
SELECT name FROM lookalike.train_model('tiny_w1', 'mnv2_32', :'q', epochs => 1,
    embedding_dims => 8, trainable_blocks => 2, batch_size => 8, pooled_blocks => 3,
    label_weights => '{1,1}');
SELECT name FROM lookalike.train_model('tiny_w', 'mnv2_32', :'q', epochs => 1,
    embedding_dims => 8, trainable_blocks => 2, batch_size => 8, pooled_blocks => 3,
    label_weights => '{1,0.5}');
SELECT w.training->'label_weights' AS weights, w1.training->'label_weights' AS ones,
       d.training->'label_weights' AS default_weights,
       w1.training->'history'->0->'loss' = d.training->'history'->0->'loss' AS ones_same_loss,
       (w.training->'history'->0->>'loss')::float8 < (d.training->'history'->0->>'loss')::float8
         AS smaller_loss
  FROM lookalike.model_data w, lookalike.model_data w1, lookalike.model_data d
 WHERE w.name = 'tiny_w' AND w1.name = 'tiny_w1' AND d.name = 'tiny_pooled';
SELECT image_embedding(image, 'tiny_w1') <-> image_embedding(image, 'tiny_pooled') = 0 AS ones_same_embedding,
       image_embedding(image, 'tiny_w') <-> image_embedding(image, 'tiny_pooled') > 0 AS another_embedding
  FROM public.train_items WHERE id = 1534;
SELECT lookalike.unregister_model('tiny_w');
SELECT lookalike.unregister_model('tiny_w1');
-- bn_neck: recorded (false by default); another model, whose embeddings have unit length (the
-- normalisation is folded into the saved projection)
SELECT name FROM lookalike.train_model('tiny_bn', 'mnv2_32', :'q', epochs => 1,
    embedding_dims => 8, trainable_blocks => 2, batch_size => 8, pooled_blocks => 3,
    bn_neck => true);
SELECT b.training->'bn_neck' AS bn_neck, d.training->'bn_neck' AS default_bn_neck,
       b.torchscript <> d.torchscript AS another_model
  FROM lookalike.model_data b, lookalike.model_data d
 WHERE b.name = 'tiny_bn' AND d.name = 'tiny_pooled';
SELECT dims(e) AS dims, round(norm(e)::numeric, 4) AS length,
       e <-> image_embedding(image, 'tiny_pooled') > 0 AS another_embedding
  FROM (SELECT image, image_embedding(image, 'tiny_bn') AS e
          FROM public.train_items WHERE id = 1534) x;
SELECT lookalike.unregister_model('tiny_bn');
-- an ensemble of two members (4 dimensions each): recorded, one unit-length embedding of 8
SELECT name, dims FROM lookalike.train_model('tiny_ensemble', 'mnv2_32', :'q', epochs => 1,
    embedding_dims => 8, trainable_blocks => 2, batch_size => 8, pooled_blocks => 3,
    ensemble_members => 2);
SELECT training->'ensemble_members' AS members,
       jsonb_array_length(training->'history') AS epochs
  FROM lookalike.model_data WHERE name = 'tiny_ensemble';
SELECT dims(e) AS dims, round(norm(e)::numeric, 4) AS length
  FROM (SELECT image_embedding(image, 'tiny_ensemble') AS e FROM public.train_items WHERE id = 1534) x;
SELECT lookalike.unregister_model('tiny_ensemble');
SELECT lookalike.unregister_model('tiny_proxies');
SELECT lookalike.unregister_model('tiny_pooled');
SELECT lookalike.unregister_model('mnv2_32_pad');
-- unregistering removes the stored TorchScript too
SELECT lookalike.unregister_model('tiny2');
SELECT lookalike.unregister_model('tiny');
SELECT count(*) AS stored FROM lookalike.model_data;
SELECT lookalike.unregister_model('mnv2_32');
SELECT lookalike.unregister_model('mnv2_logits_32');
DROP TABLE train_items;
