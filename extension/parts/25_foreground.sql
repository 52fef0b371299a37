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

CREATE FUNCTION fused_embedding(a embedding, b embedding, weight_a double precision DEFAULT 0.5)
    RETURNS embedding
    AS 'MODULE_PATHNAME', 'embedding_fused' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION fused_embedding(embedding, embedding, double precision) IS
    'concatenation of sqrt(w) a/|a| and sqrt(1-w) b/|b| (w = weight_a in [0,1]): a unit vector whose cosine similarity to another fused vector is w cos(a) + (1-w) cos(b), so ORDER BY fused <=> q ranks by the weighted sum of both similarities';
