-- foreground_color_histogram() on a catalogue photo, and fused_embedding().
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS lookalike;
RESET client_min_messages;
\getenv shared SHARED
SELECT pg_read_binary_file(:'shared' || '/data/fashion/images/10017.jpg') AS img \gset
-- 12 x 3 x 3 chromatic + 4 grey bins, unit norm; the same image gives the same vector
SELECT dims(f), round(norm(f)::numeric, 6) AS norm, f = foreground_color_histogram(:'img'::bytea) AS deterministic
FROM foreground_color_histogram(:'img'::bytea) AS f;
SELECT dims(foreground_color_histogram(:'img'::bytea, 6)), dims(foreground_color_histogram(:'img'::bytea, 18, 10));
-- 10017 is a blue jacket: its heaviest bin is a blue hue (bins 6..8 of 12 at 30 degrees each
-- are 180..270 degrees), which the whole-frame white background would otherwise dominate
SELECT (i - 1) / 9 AS hue_bin FROM unnest(foreground_color_histogram(:'img'::bytea)::real[]) WITH ORDINALITY AS u(x, i)
ORDER BY x DESC LIMIT 1;
\set VERBOSITY sqlstate
SELECT foreground_color_histogram('\x00010203'::bytea);
SELECT foreground_color_histogram(:'img'::bytea, 0);
SELECT foreground_color_histogram(:'img'::bytea, 12, 300);
\set VERBOSITY default

-- fused_embedding: cosine of fused vectors = w cos(a) + (1 - w) cos(b)
WITH v(a1, b1, a2, b2) AS (VALUES ('[1,2,3]'::embedding, '[0,1]'::embedding, '[3,1,0]'::embedding, '[1,1]'::embedding))
SELECT w, round((1 - (fused_embedding(a1, b1, w) <=> fused_embedding(a2, b2, w)))::numeric, 6) AS fused_cos,
       round((w * (1 - (a1 <=> a2)) + (1 - w) * (1 - (b1 <=> b2)))::numeric, 6) AS weighted_sum,
       round(norm(fused_embedding(a1, b1, w))::numeric, 6) AS norm
FROM v, (VALUES (0.0::float8), (0.25), (0.5), (1.0)) AS ws(w);
SELECT fused_embedding('[3,4]', '[0,2]');
SELECT dims(fused_embedding('[1,2,3]', '[1]', 0.7));
\set VERBOSITY sqlstate
SELECT fused_embedding('[1]', '[1]', 1.5);
SELECT fused_embedding('[1]', '[1]', 'NaN');
SELECT fused_embedding('[0,0]', '[1]');
SELECT fused_embedding(array_fill(1, ARRAY[9000])::embedding, array_fill(1, ARRAY[9000])::embedding);
\set VERBOSITY default
-- the decompression-bomb guard applies (lookalike.max_image_pixels)
SET lookalike.max_image_pixels = 1000;
\set VERBOSITY sqlstate
SELECT foreground_color_histogram(:'img'::bytea);
\set VERBOSITY default
RESET lookalike.max_image_pixels;
