-- The model registry, image_embedding() and image_embeddings() with the shared MobileNetV2 files
-- and TorchScript files generated for the test (test/fixtures/make_models.py). Every failure is
-- followed by a valid call in the same backend.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS lookalike;
RESET client_min_messages;
\getenv shared SHARED
\getenv root LOOKALIKE_ROOT
\set features :shared/models/mobilenet_v2-imagenet-features.pt
\set logits :shared/models/mobilenet_v2-imagenet-logits.pt
\set img1 :shared/data/fashion/images/1530.jpg
\set img2 :shared/data/fashion/images/1550.jpg
\set fixtures `mktemp -d /tmp/lookalike_model_test_XXXXXX`
\set made `/usr/bin/python3 :'root'/test/fixtures/make_models.py :'fixtures'`
SELECT :'made' AS fixtures_made;
\set VERBOSITY sqlstate
SET lookalike.progress_interval = 0;  -- no timing-dependent notices

-- ---- registry -----------------------------------------------------------------------------
SELECT name, dims, input_size, mean, std, sha256, description
  FROM lookalike.register_model('mobilenet_v2', :'features', description => 'MobileNetV2 ImageNet features');
SELECT name, dims FROM lookalike.register_model('mobilenet_v2_logits', :'logits');
SELECT name, dims FROM lookalike.register_model('resnet18_random', :'fixtures' || '/resnet18-random.pt');
SELECT name, path = :'features' AS path_ok, dims FROM lookalike.models ORDER BY name;
-- duplicate name, missing file, relative path, corrupt file, outputs that are not vectors,
-- bad normalisation
SELECT lookalike.register_model('mobilenet_v2', :'features');
SELECT lookalike.register_model('missing', :'fixtures' || '/no-such-file.pt');
SELECT lookalike.register_model('relative', 'models/x.pt');
SELECT lookalike.register_model('corrupt', :'fixtures' || '/corrupt.pt');
SELECT lookalike.register_model('image', :'fixtures' || '/image.pt');
SELECT lookalike.register_model('pair', :'fixtures' || '/pair.pt');
SELECT lookalike.register_model('zero_std', :'features', std => '{0.2,0,0.2}');
SELECT lookalike.register_model('two_means', :'features', mean => '{0.2,0.2}');
SELECT lookalike.register_model('tiny', :'features', input_size => 4);
SELECT lookalike.unregister_model('never_registered');
-- a path is stored canonical: "." and ".." resolved (and symbolic links)
SELECT path = :'features' AS canonical
  FROM lookalike.register_model('dotted', :'shared' || '/models/./../models/mobilenet_v2-imagenet-features.pt');
SELECT lookalike.unregister_model('dotted');
-- resize: 'stretch' (the default) or 'pad' (keep the aspect ratio, fill with white); the
-- fashion images are 60 x 80, so padding them gives another embedding
SELECT lookalike.register_model('crop', :'features', resize => 'crop');
SELECT lookalike.register_model('no_resize', :'features', resize => NULL);
SELECT name, resize FROM lookalike.register_model('mobilenet_v2_pad', :'features', resize => 'pad');
SELECT name, resize FROM lookalike.models WHERE name IN ('mobilenet_v2', 'mobilenet_v2_pad') ORDER BY name;
SELECT (image_embedding(pg_read_binary_file(:'img1'), 'mobilenet_v2')
        <=> image_embedding(pg_read_binary_file(:'img1'), 'mobilenet_v2_pad')) > 0.01 AS pad_differs;
-- input_width: a box of the images' own shape (3:4, 168 x 224 for the 60 x 80 fashion
-- images), which pads nothing; another input than the square padded one, the same output size
SELECT lookalike.register_model('too_narrow', :'features', input_width => 4);
SELECT lookalike.register_model('zero_width', :'features', input_width => 0);
SELECT name, input_size, input_width, resize, dims
  FROM lookalike.register_model('mobilenet_v2_portrait', :'features', resize => 'pad', input_width => 168);
SELECT dims(image_embedding(pg_read_binary_file(:'img1'), 'mobilenet_v2_portrait')) AS dims,
       (image_embedding(pg_read_binary_file(:'img1'), 'mobilenet_v2_portrait')
        <=> image_embedding(pg_read_binary_file(:'img1'), 'mobilenet_v2_pad')) > 0.001 AS differs_from_square;
SELECT lookalike.unregister_model('mobilenet_v2_portrait');
SELECT lookalike.unregister_model('mobilenet_v2_pad');
SELECT count(*) AS registered FROM lookalike.models;
-- only superusers register or unregister (a TorchScript file is code)
CREATE ROLE lookalike_model_user;
CREATE TABLE model_user_image AS SELECT pg_read_binary_file(:'img1') AS image;
GRANT SELECT ON model_user_image TO lookalike_model_user;
SET ROLE lookalike_model_user;
SELECT lookalike.register_model('mine', :'features');
SELECT lookalike._probe_model(:'features', 224, '{0.5,0.5,0.5}', '{0.5,0.5,0.5}', NULL);
SELECT lookalike.unregister_model('mobilenet_v2');
DELETE FROM lookalike.models;
SELECT name FROM lookalike.models ORDER BY name;  -- everyone may read the registry
-- ... but anyone may embed with a registered model
SELECT dims(image_embedding(image, 'mobilenet_v2')) AS dims_as_user FROM model_user_image;
RESET ROLE;
DROP TABLE model_user_image;
DROP ROLE lookalike_model_user;

-- ---- image_embedding ----------------------------------------------------------------------
SELECT dims(e), round(norm(e)::numeric, 5) AS norm
  FROM image_embedding(pg_read_binary_file(:'img1'), 'mobilenet_v2') e;
-- the default model: unset, then set
SELECT image_embedding(pg_read_binary_file(:'img1'));
SET lookalike.default_model = 'mobilenet_v2';
SELECT image_embedding(pg_read_binary_file(:'img1')) = image_embedding(pg_read_binary_file(:'img1'), 'mobilenet_v2') AS default_is_used;
-- different images, different embeddings; NULL image gives NULL
SELECT round((image_embedding(pg_read_binary_file(:'img1')) <=> image_embedding(pg_read_binary_file(:'img2')))::numeric, 2) > 0 AS differ;
SELECT image_embedding(NULL) IS NULL AS null_in_null_out;
-- bad input, each followed by a valid call
SELECT image_embedding('', 'mobilenet_v2');
SELECT dims(image_embedding(pg_read_binary_file(:'img1')));
SELECT image_embedding('\x48656c6c6f2c20776f726c64', 'mobilenet_v2');  -- text, not an image
SELECT dims(image_embedding(pg_read_binary_file(:'img1')));
SELECT image_embedding(substring(pg_read_binary_file(:'img1') from 1 for 400));  -- truncated JPEG
SELECT dims(image_embedding(pg_read_binary_file(:'img1')));
SELECT image_embedding(overlay(pg_read_binary_file(:'img1') placing '\x0000' from 5));  -- corrupt
SELECT dims(image_embedding(pg_read_binary_file(:'img1')));
-- a PNG header announcing 100000 x 100000 pixels: refused before decoding
SELECT image_embedding('\x89504e470d0a1a0a0000000d49484452000186a0000186a008020000000000000000'::bytea);
SELECT dims(image_embedding(pg_read_binary_file(:'img1')));
SELECT image_embedding(pg_read_binary_file(:'img1'), 'no_such_model');
SELECT dims(image_embedding(pg_read_binary_file(:'img1')));
-- ResNet-18 (random weights, exported by scripts/export_torchvision_model.py): 512-d, unit norm
SELECT dims(e), abs(norm(e) - 1) < 1e-5 AS unit_norm
  FROM image_embedding(pg_read_binary_file(:'img2'), 'resnet18_random') e;

-- ---- the model file changes after registration ---------------------------------------------
\set changed :fixtures/changed.pt
\set copied `cp :'features' :'fixtures'/changed.pt && chmod 644 :'fixtures'/changed.pt && echo copied`
SELECT name, dims FROM lookalike.register_model('changing', :'changed');
SELECT dims(image_embedding(pg_read_binary_file(:'img1'), 'changing'));
\set replaced `cp :'logits' :'fixtures'/changed.pt && echo replaced`
\c
\set VERBOSITY sqlstate
SET lookalike.default_model = 'mobilenet_v2';
SET lookalike.progress_interval = 0;
SELECT image_embedding(pg_read_binary_file(:'img1'), 'changing');  -- a new backend checks the sha256
SELECT dims(image_embedding(pg_read_binary_file(:'img1'), 'mobilenet_v2'));
\set VERBOSITY terse
SELECT image_embedding(pg_read_binary_file(:'img1'), 'changing') IS NULL;
\set VERBOSITY sqlstate
\set removed `rm :'fixtures'/changed.pt && echo removed`
SELECT image_embedding(pg_read_binary_file(:'img1'), 'changing');
SELECT lookalike.unregister_model('changing');
SELECT dims(image_embedding(pg_read_binary_file(:'img1'), 'mobilenet_v2'));

-- ---- image_embeddings: a whole table in one statement ---------------------------------------
CREATE TABLE model_images AS
  SELECT id, pg_read_binary_file(:'shared' || '/data/fashion/images/' || id || '.jpg') AS image
    FROM (SELECT split_part(l, ',', 1)::bigint AS id
            FROM regexp_split_to_table(pg_read_file(:'shared' || '/data/fashion/subset.csv'), E'\n') WITH ORDINALITY AS t(l, n)
           WHERE n > 1 AND l <> '' ORDER BY n LIMIT 40) s;
INSERT INTO model_images VALUES (-1, NULL), (NULL, pg_read_binary_file(:'img1'));
SET lookalike.batch_size = 7;
CREATE TABLE model_embeddings AS
  SELECT * FROM image_embeddings('SELECT id, image FROM model_images', 'mobilenet_v2');
SELECT count(*) AS rows, count(embedding) AS embedded, count(id) AS ids,
       min(dims(embedding)) AS dims, max(abs(norm(embedding) - 1)) < 1e-5 AS unit_norm
  FROM model_embeddings;
-- the same vectors as image_embedding(), one image at a time
SELECT max(e.embedding <-> image_embedding(i.image, 'mobilenet_v2')) < 1e-4 AS same_as_single
  FROM model_embeddings e JOIN model_images i USING (id);
-- integer ids and the default model
SELECT count(*) FROM image_embeddings('SELECT id::int, image FROM model_images WHERE id > 0');
-- a bad image names its row; the backend stays usable
INSERT INTO model_images VALUES (123456, '\x00010203');
SELECT count(*) FROM image_embeddings('SELECT id, image FROM model_images');
\set VERBOSITY default
SELECT count(*) FROM image_embeddings('SELECT id, image FROM model_images');
\set VERBOSITY sqlstate
-- on_error => 'null': the bad row comes back with a NULL embedding and a WARNING naming it; the
-- other rows of its batch are embedded as usual
\set VERBOSITY default
SELECT count(*) AS rows, count(embedding) AS embedded,
       bool_and(embedding IS NULL) FILTER (WHERE id = 123456) AS bad_is_null
  FROM image_embeddings('SELECT id, image FROM model_images', on_error => 'null');
\set VERBOSITY sqlstate
SELECT count(*) FROM image_embeddings('SELECT id, image FROM model_images', on_error => 'skip');
DELETE FROM model_images WHERE id = 123456;
SELECT count(*) FROM image_embeddings('SELECT id, image FROM model_images WHERE id > 0');
-- wrong query shapes
SELECT * FROM image_embeddings('SELECT image FROM model_images');
SELECT * FROM image_embeddings('SELECT id::text, image FROM model_images');
SELECT * FROM image_embeddings('SELECT nonsense');
SELECT * FROM image_embeddings('DELETE FROM model_images');
SELECT * FROM image_embeddings(NULL);
SELECT count(*) FROM model_images;
-- settings are range-checked
SET lookalike.batch_size = 0;
SET lookalike.threads = 0;
RESET lookalike.batch_size;

-- ---- cancellation: a statement timeout stops a long run within one small batch --------------
SET lookalike.batch_size = 2;
CREATE TEMP TABLE model_t0 AS SELECT clock_timestamp() AS t0;
SET statement_timeout = '400ms';
SELECT count(*) FROM image_embeddings(
  'SELECT id, image FROM model_images, generate_series(1, 100) WHERE id > 0', 'mobilenet_v2');
RESET statement_timeout;
SELECT clock_timestamp() - t0 < interval '3 s' AS cancelled_within_3s FROM model_t0;
RESET lookalike.batch_size;
SELECT dims(image_embedding(pg_read_binary_file(:'img1'), 'mobilenet_v2'));

-- ---- the whole preprocessing chain: ImageNet class 414 (backpack) in the top 5 -------------
-- for at least 40 of the 95 Backpacks images (the reference preprocessing gets 43).
CREATE TABLE model_backpacks AS
  SELECT id, pg_read_binary_file(f) AS image
    FROM (SELECT split_part(l, ',', 1)::bigint AS id,
                 :'shared' || '/data/fashion/images/' || split_part(l, ',', 1) || '.jpg' AS f
            FROM regexp_split_to_table(pg_read_file(:'shared' || '/data/fashion/styles.csv'), E'\n') AS l
           WHERE split_part(l, ',', 5) = 'Backpacks') s
   WHERE (pg_stat_file(f, true)).size IS NOT NULL;
SET lookalike.threads = 2;
SELECT count(*) AS images, count(*) FILTER (WHERE rank < 5) >= 40 AS at_least_40_in_top5
  FROM (SELECT id, (SELECT count(*) FROM unnest(embedding::real[]) AS v
                     WHERE v > (embedding::real[])[415]) AS rank
          FROM image_embeddings('SELECT id, image FROM model_backpacks', 'mobilenet_v2_logits')) s;

-- ---- the catalog is read with pg_catalog's operators, whatever the search_path --------------
-- A session's own = (text, text) that is always true, searched before pg_catalog, must not make
-- an unknown name match a registered model, a stored model or a projection.
CREATE SCHEMA hijack;
CREATE FUNCTION hijack.always(text, text) RETURNS boolean LANGUAGE sql IMMUTABLE AS 'SELECT true';
CREATE OPERATOR hijack.= (LEFTARG = text, RIGHTARG = text, FUNCTION = hijack.always);
SET search_path = hijack, pg_catalog, public;
SELECT 'x' = 'y' AS hijacked_equals;
SELECT image_embedding(pg_read_binary_file(:'img1'), 'not_registered');
SELECT project('[1,2]'::embedding, 'not_a_projection');
RESET search_path;
DROP SCHEMA hijack CASCADE;

-- ---- unregister ----------------------------------------------------------------------------
SELECT lookalike.unregister_model('resnet18_random');
SELECT image_embedding(pg_read_binary_file(:'img1'), 'resnet18_random');
SELECT name FROM lookalike.models ORDER BY name;
DROP TABLE model_images, model_embeddings, model_backpacks;
\set cleaned `rm -rf :'fixtures' && echo cleaned`
SELECT :'cleaned' AS fixtures_removed;
