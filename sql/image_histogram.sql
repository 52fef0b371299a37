-- color_histogram() and image_info(): real images, every format, bad input (each failure is
-- followed by a valid call), bins, and the lookalike.max_image_pixels limit.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS lookalike;
RESET client_min_messages;
\set VERBOSITY sqlstate
\getenv shared SHARED
\set images :shared '/data/fashion/images/'

-- 10000, 10017: colour JPEGs; 10716, 13162: single-channel (grayscale) JPEGs.
CREATE TEMP TABLE img AS
    SELECT id, pg_read_binary_file(:'images' || id || '.jpg') AS b
    FROM (VALUES (10000), (10017), (10716), (13162)) v(id);
-- the call that must keep working after every error below
\set valid 'SELECT dims(color_histogram(b)) AS valid FROM img WHERE id = 10000;'

SELECT id, (image_info(b)).*, dims(h), round(sum(x)::numeric, 5) AS sum, count(*) FILTER (WHERE x > 0) AS nonzero
FROM img, color_histogram(b) h, unnest(h::real[]) x
GROUP BY id, b, h ORDER BY id;
-- the default is 8 bins
SELECT id, color_histogram(b) = color_histogram(b, 8) AS default_is_8 FROM img ORDER BY id;
-- grayscale: the three channels are equal, so every pixel lands on the diagonal b = g = r
-- (index i*(8*8 + 8 + 1)); colour images do not
SELECT id, round(sum(x) FILTER (WHERE (i - 1) % 73 = 0)::numeric, 5) AS on_diagonal
FROM img, unnest(color_histogram(b)::real[]) WITH ORDINALITY u(x, i)
GROUP BY id ORDER BY id;
-- other bin counts: bins^3 dimensions, sum 1
SELECT bins, dims(h), round(sum(x)::numeric, 5) AS sum
FROM img, generate_series(1, 25, 4) bins, color_histogram(b, bins) h, unnest(h::real[]) x
WHERE id = 10017 GROUP BY bins, h ORDER BY bins;
SELECT color_histogram(NULL), color_histogram(b, NULL) FROM img WHERE id = 10000;

-- small images of each format, made with cv2.imencode: 2x2, left column blue, right column red
-- (grayscale: a black/white checkerboard), 2 bins per channel
\set png '\'\\x89504e470d0a1a0a0000000d4948445200000002000000020802000000fdd49a730000001649444154081d636460f8ff9f81919181e1ff7f0646001c10040133915e5e0000000049454e44ae426082\'::bytea'
\set bmp '\'\\x424d46000000000000003600000028000000020000000200000001001800000000000000000000000000000000000000000000000000ff00000000ff0000ff00000000ff0000\'::bytea'
\set webp '\'\\x524946461e000000574542505650384c120000002f014000000f10f3bffff31f0e2a10d1ff00\'::bytea'
\set graypng '\'\\x89504e470d0a1a0a0000000d494844520000000200000002080000000057dd52f80000000e49444154081d6364f8cff89f1100060a02029d3e81550000000049454e44ae426082\'::bytea'
\set rgbapng '\'\\x89504e470d0a1a0a0000000d494844520000000200000002080600000072b60d240000001749444154081d05c101010000008220fa3fda60246b24eb310905fff16b5a180000000049454e44ae426082\'::bytea'
SELECT f, (image_info(b)).*, color_histogram(b, 2)
FROM (VALUES ('png', :png), ('bmp', :bmp), ('webp', :webp), ('gray png', :graypng),
             ('rgba png', :rgbapng)) v(f, b);

-- bad bins: 22023
SELECT color_histogram(b, 0) FROM img WHERE id = 10000;
:valid
SELECT color_histogram(b, 26) FROM img WHERE id = 10000;
:valid
SELECT color_histogram(b, -3) FROM img WHERE id = 10000;
:valid

-- bad images: 22P03
SELECT color_histogram(''::bytea);
:valid
SELECT color_histogram('\x00010203'::bytea);
:valid
SELECT color_histogram(convert_to('this is not an image', 'UTF8'));
:valid
SELECT color_histogram('\x47494638396101000100800000000000ffffff21f90401000000002c00000000010001000002024401003b'::bytea);  -- a GIF
:valid
-- truncated JPEGs: at half, and by one byte (the end-of-image marker is cut)
SELECT color_histogram(substring(b FROM 1 FOR length(b) / 2)) FROM img WHERE id = 10000;
:valid
SELECT color_histogram(substring(b FROM 1 FOR length(b) - 1)) FROM img WHERE id = 10017;
:valid
SELECT color_histogram(substring(b FROM 1 FOR 3)) FROM img WHERE id = 10000;
:valid
-- truncated PNG, WebP, BMP
SELECT color_histogram(substring(:png FROM 1 FOR 60));
:valid
SELECT color_histogram(substring(:webp FROM 1 FOR 30));
:valid
SELECT color_histogram(substring(:bmp FROM 1 FOR 60));
:valid
-- corrupt: the marker after the JPEG's start-of-image overwritten
SELECT color_histogram(overlay(b PLACING '\x0000'::bytea FROM 3)) FROM img WHERE id = 10000;
:valid
-- corrupt: a PNG whose image data fails its checksum
SELECT color_histogram(overlay(:png PLACING '\x00000000'::bytea FROM 50));
:valid
SELECT image_info('\x0102'::bytea);
:valid
\set VERBOSITY default
SELECT color_histogram(substring(b FROM 1 FOR length(b) - 1)) FROM img WHERE id = 10017;
\set VERBOSITY sqlstate

-- decompression bomb: a PNG header declaring 100000 x 100000 pixels (54000), refused before
-- any decoding
SELECT (image_info('\x89504e470d0a1a0a0000000d49484452000186a0000186a0080200000000000000'::bytea)).*;
SELECT color_histogram('\x89504e470d0a1a0a0000000d49484452000186a0000186a0080200000000000000'::bytea);
:valid

-- lookalike.max_image_pixels: the fashion images have 60 x 80 = 4800 pixels
SHOW lookalike.max_image_pixels;
SET lookalike.max_image_pixels = 4800;
:valid
SET lookalike.max_image_pixels = 4799;
SELECT color_histogram(b) FROM img WHERE id = 10000;
\set VERBOSITY default
SELECT color_histogram(b) FROM img WHERE id = 10000;
\set VERBOSITY sqlstate
RESET lookalike.max_image_pixels;
:valid
SET lookalike.max_image_pixels = 0;
SET lookalike.max_image_pixels = 1073741825;
-- only a superuser, or a role granted SET on the parameter, may change it
CREATE ROLE regress_lookalike_image;
GRANT SELECT ON img TO regress_lookalike_image;
SET ROLE regress_lookalike_image;
SET lookalike.max_image_pixels = 1000;
:valid
RESET ROLE;
GRANT SET ON PARAMETER lookalike.max_image_pixels TO regress_lookalike_image;
SET ROLE regress_lookalike_image;
SET lookalike.max_image_pixels = 1000;
SELECT color_histogram(b) FROM img WHERE id = 10000;
RESET lookalike.max_image_pixels;
:valid
RESET ROLE;
REVOKE SET ON PARAMETER lookalike.max_image_pixels FROM regress_lookalike_image;
REVOKE SELECT ON img FROM regress_lookalike_image;
DROP ROLE regress_lookalike_image;

-- the functions' properties
SELECT p.proname, p.provolatile, p.proisstrict, p.proparallel, d.description IS NOT NULL AS commented
FROM pg_proc p LEFT JOIN pg_description d ON d.objoid = p.oid AND d.classoid = 'pg_proc'::regclass
WHERE p.proname IN ('color_histogram', 'image_info') ORDER BY 1;
