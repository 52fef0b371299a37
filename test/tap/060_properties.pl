# Properties of every value the SQL functions return (hostile input is refused with a proper
# SQLSTATE, nothing returned is lost on its way out and back in): a sample of functions and inputs
# -- text input and casts, operators, normalisation and fusion, sum/avg aggregates (and their
# final functions called directly), projections (fit_projection + project), colour histograms of
# BMP images generated in SQL, typmod coercion -- is stored in a table; hostile calls may be
# refused, but only with a proper SQLSTATE (never XX000). Every stored value must then
#   - survive a text round trip (out -> in gives the same bits, compared with embedding_send),
#   - survive a binary round trip (COPY ... (FORMAT binary) out and in, also inside arrays),
#   - survive pg_dump + pg_restore into a new database (same bits, same projections, the index
#     answers like the exact scan).
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('properties');
$node->init;
$node->start;
my $tmp = PostgreSQL::Test::Utils::tempdir;
$node->safe_psql('postgres', 'CREATE DATABASE props');
my $db = 'props';

$node->safe_psql($db, q{
CREATE EXTENSION lookalike;
CREATE TABLE vals (id serial PRIMARY KEY, source text NOT NULL, v embedding NOT NULL);
CREATE TABLE rejected (source text, sqlstate text, message text);
-- Runs one sample: every embedding the query returns goes into vals, an error into rejected.
CREATE FUNCTION try_add(source text, query text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  EXECUTE format('INSERT INTO vals (source, v) SELECT %L, x FROM (%s) s(x)', source, query);
EXCEPTION WHEN OTHERS THEN
  INSERT INTO rejected VALUES (source, SQLSTATE, SQLERRM);
END $$;
-- Little-endian integers and a 24-bit BMP of w x h pixels with a seeded colour pattern.
CREATE FUNCTION le(x bigint, n int) RETURNS bytea LANGUAGE sql IMMUTABLE AS $$
  SELECT string_agg(substring(int8send(x) FROM 9 - i FOR 1), '' ORDER BY i)
  FROM generate_series(1, n) i $$;
CREATE FUNCTION bmp(w int, h int, seed int) RETURNS bytea LANGUAGE sql IMMUTABLE AS $$
  WITH r AS (SELECT (3 * w + 3) / 4 * 4 AS rowsize),
  px AS (
    SELECT string_agg(row_hex, '' ORDER BY y) AS hex FROM (
      SELECT y, string_agg(lpad(to_hex((x * 37 + y * 11 + seed * 53) % 256), 2, '0')
                        || lpad(to_hex((x * x + seed * 7) % 256), 2, '0')
                        || lpad(to_hex((y * 29 + seed) % 256), 2, '0'), '' ORDER BY x)
             || repeat('00', (SELECT rowsize FROM r) - 3 * w) AS row_hex
      FROM generate_series(0, h - 1) y, generate_series(0, w - 1) x GROUP BY y) rows)
  SELECT '\x424d'::bytea || le(54 + rowsize * h, 4) || le(0, 4) || le(54, 4) || le(40, 4)
         || le(w, 4) || le(h, 4) || le(1, 2) || le(24, 2) || le(0, 4) || le(rowsize * h, 4)
         || le(2835, 4) || le(2835, 4) || le(0, 4) || le(0, 4) || decode(px.hex, 'hex')
  FROM r, px $$;
CREATE TABLE images AS
  SELECT s AS seed, bmp(w, h, s) AS img
  FROM (VALUES (1, 1, 1), (3, 2, 2), (16, 9, 3), (64, 48, 4), (5, 200, 5)) t(w, h, s);
-- Clustered points for the aggregates, the projection and the index.
SELECT setseed(0.5);
CREATE TABLE pts AS
  SELECT i, i % 5 AS g, array_agg((i % 5) * 3 + random() - 0.5 ORDER BY j)::real[]::embedding AS e
  FROM generate_series(1, 200) i, generate_series(1, 8) j GROUP BY i;
SELECT lookalike.fit_projection('props_pca', 'SELECT e FROM pts', power => 0.5);
SELECT lookalike.fit_projection('props_rot', 'SELECT e FROM pts', power => 0, components => 3);
});

my @samples = (
	# text input, including the extremes of float4 and white space
	[ 'text simple', q{SELECT '[1,2.5,-3]'::embedding} ],
	[ 'text extremes', q{SELECT '[3.4028235e38,-3.4028235e38,1.17549435e-38,1e-45,-0,0]'::embedding} ],
	[ 'text spaces', q{SELECT E' [ 1 ,\t+2e1 ]\n'::embedding} ],
	[ 'text underflow', q{SELECT '[1e-46]'::embedding} ],
	[ 'text 16000 dims', q{SELECT ('[' || repeat('0.125,', 15999) || '-1]')::embedding} ],
	[ 'text 16001 dims', q{SELECT ('[' || repeat('1,', 16000) || '1]')::embedding} ],
	[ 'text nan', q{SELECT '[nan]'::embedding} ],
	# casts
	[ 'cast int[]', q{SELECT '{1,-2,2147483647}'::int[]::embedding} ],
	[ 'cast real[]', q{SELECT '{1.5,-1e-45,3.4028235e38}'::real[]::embedding} ],
	[ 'cast float8[]', q{SELECT '{0.1,1e-300,-1e30}'::float8[]::embedding} ],
	[ 'cast float8[] overflow', q{SELECT '{1e39}'::float8[]::embedding} ],
	[ 'cast numeric[]', q{SELECT '{0.3333333333333333333,-7}'::numeric[]::embedding} ],
	[ 'cast typmod', q{SELECT '[1,2,3]'::embedding::embedding(3)} ],
	[ 'cast typmod wrong', q{SELECT '[1,2]'::embedding::embedding(3)} ],
	[ 'cast via real[]', q{SELECT e::real[]::embedding FROM pts WHERE i <= 3} ],
	# operators and functions
	[ 'add', q{SELECT a.e + b.e FROM pts a JOIN pts b ON b.i = a.i + 1 WHERE a.i <= 5} ],
	[ 'sub', q{SELECT '[1,2]'::embedding - '[-3e38,3e38]'} ],
	[ 'mul', q{SELECT a.e * b.e FROM pts a JOIN pts b ON b.i = a.i + 7 WHERE a.i <= 5} ],
	[ 'add overflow', q{SELECT '[3e38]'::embedding + '[3e38]'} ],
	[ 'mul overflow', q{SELECT '[3e38]'::embedding * '[3e38]'} ],
	[ 'mul underflow', q{SELECT '[1e-30]'::embedding * '[1e-30]'} ],
	[ 'l2_normalize', q{SELECT l2_normalize(e) FROM pts WHERE i <= 5} ],
	[ 'l2_normalize zero', q{SELECT l2_normalize('[0,0]')} ],
	[ 'l2_normalize tiny', q{SELECT l2_normalize('[1e-45,-1e-45]')} ],
	[ 'l2_normalize huge', q{SELECT l2_normalize('[3e38,3e38,-3e38]')} ],
	[ 'fused_embedding', q{SELECT fused_embedding(e, l2_normalize(e), 0.25) FROM pts WHERE i <= 5} ],
	[ 'fused_embedding edge', q{SELECT fused_embedding('[1,0]', '[3e38,1e-45]', 1)} ],
	# aggregates, and their final functions called directly
	[ 'sum', q{SELECT sum(e) FROM pts GROUP BY g} ],
	[ 'avg', q{SELECT avg(e) FROM pts GROUP BY g} ],
	[ 'avg huge', q{SELECT avg(e) FROM (VALUES ('[3e38]'::embedding), ('[3e38]')) t(e)} ],
	[ 'sum overflow', q{SELECT sum(e) FROM (VALUES ('[3e38]'::embedding), ('[3e38]')) t(e)} ],
	[ 'avg tiny', q{SELECT avg(e) FROM (VALUES ('[1e-45]'::embedding), ('[0]')) t(e)} ],
	[ 'embedding_sum direct nan', q{SELECT embedding_sum('{1,NaN,1}'::float8[])} ],
	[ 'embedding_sum direct 65537', q{SELECT embedding_sum(array_fill(1::float8, array[65537]))} ],
	[ 'embedding_avg direct 20001', q{SELECT embedding_avg(array_fill(1::float8, array[20001]))} ],
	[ 'embedding_avg direct negative count', q{SELECT embedding_avg('{-1,1,2}')} ],
	[ 'embedding_avg direct zero count', q{SELECT embedding_avg('{0,1,2}')} ],
	# projections
	[ 'project pca', q{SELECT project(e, 'props_pca') FROM pts WHERE i <= 10} ],
	[ 'project rotation', q{SELECT project(e, 'props_rot') FROM pts WHERE i <= 10} ],
	[ 'project huge', q{SELECT project('[3e38,3e38,3e38,3e38,3e38,3e38,3e38,3e38]', 'props_pca')} ],
	# image features of BMPs generated in SQL
	[ 'color_histogram', q{SELECT color_histogram(img) FROM images} ],
	[ 'color_histogram 4 bins', q{SELECT color_histogram(img, 4) FROM images} ],
	[ 'color_histogram 25 bins', q{SELECT color_histogram(img, 25) FROM images WHERE seed = 3} ],
	[ 'foreground_color_histogram', q{SELECT foreground_color_histogram(img) FROM images} ],
	[ 'color_histogram truncated', q{SELECT color_histogram(substring(img FROM 1 FOR 60)) FROM images WHERE seed = 4} ],
);
for my $s (@samples) {
	my ($source, $query) = @$s;
	$node->safe_psql($db, "SELECT try_add(\$s\$$source\$s\$, \$q\$$query\$q\$)");
}

my $stored = $node->safe_psql($db, 'SELECT count(*) || \' values from \' || count(DISTINCT source) || \' samples\' FROM vals');
note("stored: $stored");
my ($nvals, $nsources) = $stored =~ /(\d+) values from (\d+)/;
cmp_ok($nsources, '>=', 30, "most samples give values ($stored)");
my $refused = $node->safe_psql($db, q{SELECT string_agg(source || ' ' || sqlstate, '; ' ORDER BY source) FROM rejected});
note("refused: $refused");
is($node->safe_psql($db, q{SELECT string_agg(source || ': ' || message, '; ') FROM rejected WHERE sqlstate LIKE 'XX%' OR sqlstate = '38000'}),
	'', 'refused samples carry a proper SQLSTATE (no internal error)');
like($refused, qr/add overflow 22003/, 'an overflowing operator is refused');

# Text round trip: out -> in gives the same bits.
$node->safe_psql($db, q{
CREATE FUNCTION text_failures() RETURNS text LANGUAGE plpgsql AS $$
DECLARE r record; back embedding; bad text[] := '{}';
BEGIN
  FOR r IN SELECT id, source, v FROM vals ORDER BY id LOOP
    BEGIN
      back := r.v::text::embedding;
      IF embedding_send(back) <> embedding_send(r.v) THEN
        bad := bad || format('%s: %s reads back as %s', r.source, left(r.v::text, 60), left(back::text, 60));
      END IF;
    EXCEPTION WHEN OTHERS THEN
      bad := bad || format('%s: %s does not read back (%s %s)', r.source, left(r.v::text, 60), SQLSTATE, SQLERRM);
    END;
  END LOOP;
  RETURN array_to_string(bad, E'\n');
END $$;
});
is($node->safe_psql($db, 'SELECT text_failures()'), '', "every value survives a text round trip ($nvals values)");

# Binary round trip: COPY out and in (FORMAT binary), also as arrays of embeddings and typmod'd columns.
my $bin = "$tmp/vals.bin";
my $arr = "$tmp/arrays.bin";
chmod 0777, $tmp;
$node->safe_psql($db, qq{
COPY (SELECT id, v FROM vals) TO '$bin' WITH (FORMAT binary);
COPY (SELECT dims(v), array_agg(v ORDER BY id) FROM vals GROUP BY dims(v)) TO '$arr' WITH (FORMAT binary);
CREATE TABLE vals_bin (id int, v embedding);
CREATE TABLE arrays_bin (dims int, vs embedding[]);
});
my ($rc, $out, $err) = $node->psql($db, qq{COPY vals_bin FROM '$bin' WITH (FORMAT binary)});
is($rc, 0, "COPY FROM (FORMAT binary) reads every value back $err");
($rc, $out, $err) = $node->psql($db, qq{COPY arrays_bin FROM '$arr' WITH (FORMAT binary)});
is($rc, 0, "arrays of embeddings read back in binary $err");
is($node->safe_psql($db, q{
  SELECT count(*) FROM vals a FULL JOIN vals_bin b USING (id)
  WHERE b.v IS NULL OR a.v IS NULL OR embedding_send(a.v) <> embedding_send(b.v)}),
	'0', 'every value survives a binary round trip (same bits)');
is($node->safe_psql($db, q{
  SELECT count(*) FROM (SELECT dims(v) AS dims, array_agg(v ORDER BY id) AS vs FROM vals GROUP BY 1) a
  FULL JOIN arrays_bin b USING (dims)
  WHERE b.vs IS NULL OR a.vs IS NULL OR a.vs::text <> b.vs::text}),
	'0', 'arrays of embeddings survive a binary round trip');
# A binary value into a typmod'd column: the dimension is checked on the way in.
$node->safe_psql($db, qq{
COPY (SELECT v FROM vals WHERE dims(v) = 8 LIMIT 5) TO '$tmp/eight.bin' WITH (FORMAT binary);
CREATE TABLE eight (v embedding(8)); CREATE TABLE three (v embedding(3));
});
($rc) = $node->psql($db, qq{COPY eight FROM '$tmp/eight.bin' WITH (FORMAT binary)});
is($rc, 0, 'binary values of the right dimension go into embedding(8)');
($rc, $out, $err) = $node->psql($db, qq{COPY three FROM '$tmp/eight.bin' WITH (FORMAT binary)});
like($err, qr/expected 3 dimensions, not 8/, 'binary values of another dimension are refused by embedding(3)');

# pg_dump and restore into a new database: same bits, same projections, a working index.
$node->safe_psql($db, q{
CREATE TABLE indexed AS SELECT i, e FROM pts;
CREATE INDEX indexed_e ON indexed USING lookalike_hnsw (e embedding_l2_ops);
CREATE TABLE vals8 (id int, v embedding(8));
INSERT INTO vals8 SELECT id, v FROM vals WHERE dims(v) = 8;
});
my $dump = "$tmp/props.dump";
$node->command_ok([ 'pg_dump', '-p', $node->port, '-h', $node->host, '-Fc', '-f', $dump, $db ], 'pg_dump');
$node->safe_psql('postgres', 'CREATE DATABASE restored');
$node->command_ok([ 'pg_restore', '-p', $node->port, '-h', $node->host, '--exit-on-error', '-d', 'restored', $dump ],
	'pg_restore into a new database, no error');
my $digest = q{SELECT md5(string_agg(id || ':' || encode(embedding_send(v), 'hex'), ',' ORDER BY id)) FROM vals};
is($node->safe_psql('restored', $digest), $node->safe_psql($db, $digest), 'every value survives pg_dump and restore (same bits)');
my $digest8 = q{SELECT count(*) || md5(string_agg(encode(embedding_send(v), 'hex'), ',' ORDER BY id)) FROM vals8};
is($node->safe_psql('restored', $digest8), $node->safe_psql($db, $digest8), 'the embedding(8) column survives too');
my $pdigest = q{SELECT string_agg(name || md5(data) || dims_in || '/' || dims_out, ',' ORDER BY name) FROM lookalike.projections};
is($node->safe_psql('restored', $pdigest), $node->safe_psql($db, $pdigest), 'projections survive pg_dump and restore');
my $proj = q{SELECT md5(string_agg(encode(embedding_send(project(e, 'props_pca')), 'hex'), ',' ORDER BY i)) FROM pts};
is($node->safe_psql('restored', $proj), $node->safe_psql($db, $proj), 'project() gives the same values after the restore');
my $knn = q{SELECT string_agg(i::text, ',') FROM (SELECT i FROM indexed ORDER BY e <-> (SELECT e FROM pts WHERE i = 17) LIMIT 5) s};
my $exact = $node->safe_psql($db, "SET enable_indexscan = off; $knn");
is($node->safe_psql('restored', "SET enable_seqscan = off; $knn"), $exact, 'the restored index answers like the exact scan');

$node->stop;
done_testing();
