-- ============================================================================================
-- Foreground colour (src/image/foreground.cpp): the colour of the product's own pixels
-- ============================================================================================

CREATE FUNCTION foreground_color_histogram(image bytea, hue_bins integer DEFAULT 12,
                                           white_tolerance integer DEFAULT 20)
    RETURNS embedding
    AS '$libdir/lookalike_image', 'foreground_color_histogram'
    LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION foreground_color_histogram(bytea, integer, integer) IS
    'colour descriptor of a product photo without its background: near-white regions touching the border are masked, the rest goes into an HSV histogram (hue_bins x 3 x 3 chromatic + 4 grey bins), square-rooted to unit norm; compare with <=>';
