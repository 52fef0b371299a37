-- ============================================================================================
-- Image functions: decoding and the colour histogram (src/image/, lookalike_image.so)
-- ============================================================================================

CREATE FUNCTION color_histogram(image bytea, bins integer DEFAULT 8) RETURNS embedding
    AS '$libdir/lookalike_image', 'color_histogram' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION color_histogram(bytea, integer) IS
    'RGB colour histogram of a JPEG/PNG/WebP/BMP image: resized to 224x224 (bilinear), bins^3 components (index (b*bins+g)*bins+r), divided by their sum';

CREATE FUNCTION image_info(image bytea, OUT format text, OUT width bigint, OUT height bigint)
    AS '$libdir/lookalike_image', 'image_info' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION image_info(bytea) IS
    'format (JPEG, PNG, WebP or BMP) and pixel size read from an image''s header, without decoding it';
