# color_histogram() gives exactly the reference's vectors (bit for bit, so that evaluations made
# with the study's code carry over): the histograms computed by the study's own code
# (study_reference.histograms in $SHARED/reference: cv2.imread, resize, calcHist, h / h.sum())
# are compared component by component with color_histogram() in SQL, for
# a few hundred fashion images including every grayscale one, at 8 bins and at 4 and 16 bins.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $shared = $ENV{SHARED} or die "SHARED is not set";
my $root = $ENV{LOOKALIKE_ROOT} or die "LOOKALIKE_ROOT is not set";
my $images = "$shared/data/fashion/images";
my $n = $ENV{HISTOGRAM_EXACT_IMAGES} // 300;

my $node = PostgreSQL::Test::Cluster->new('histogram_exact');
$node->init;
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION lookalike');
$node->safe_psql('postgres', 'CREATE TABLE ref (id int, bins int, h real[])');

for my $case ([8, $n], [4, 50], [16, 50]) {
	my ($bins, $count) = @$case;
	my $tsv = "$PostgreSQL::Test::Utils::tmp_check/reference_$bins.tsv";
	my ($out, $err);
	my $ok = IPC::Run::run(
		[ '/usr/bin/python3', "$root/test/tap/reference_histograms.py", $shared, $tsv, $bins, $count ],
		'>', \$out, '2>', \$err);
	ok($ok, "reference histograms at $bins bins: $err");
	$node->safe_psql('postgres', "COPY ref FROM '$tsv'");
}

my $rows = $node->safe_psql('postgres', 'SELECT count(*) FROM ref WHERE bins = 8');
cmp_ok($rows, '>', $n, "more than $n reference images at 8 bins (grayscale ones added)");
is($node->safe_psql('postgres', 'SELECT count(DISTINCT bins) FROM ref'), '3', 'three bin counts');

# Our vectors next to the reference's.
$node->safe_psql('postgres', qq{
	CREATE TABLE ours AS
	SELECT id, bins, color_histogram(pg_read_binary_file('$images/' || id || '.jpg'), bins)::real[] AS h
	FROM ref});

is( $node->safe_psql('postgres', q{
		SELECT count(*) FROM ref r JOIN ours o USING (id, bins)
		WHERE cardinality(r.h) = cardinality(o.h) AND cardinality(r.h) = bins * bins * bins
	}),
	$node->safe_psql('postgres', 'SELECT count(*) FROM ref'),
	'same number of dimensions (bins^3) for every image');

is( $node->safe_psql('postgres', q{
		SELECT count(*) FROM ref r JOIN ours o USING (id, bins) WHERE r.h <> o.h}),
	'0', 'every vector is identical to the reference');

is( $node->safe_psql('postgres', q{
		SELECT coalesce(max(abs(a - b)), -1)
		FROM ref r JOIN ours o USING (id, bins), unnest(r.h, o.h) u(a, b)}),
	'0', 'maximum absolute difference is 0');

# The grayscale JPEGs (three equal channels: all mass on the diagonal b = g = r) are covered.
cmp_ok(
	$node->safe_psql('postgres', q{
		SELECT count(*) FROM (
			SELECT id FROM ours, unnest(h) WITH ORDINALITY u(x, i)
			WHERE bins = 8 GROUP BY id
			HAVING sum(x) FILTER (WHERE (i - 1) % 73 <> 0) = 0) g}),
	'>=', 30, 'the grayscale images are among those compared');

# The comparison can fail: vectors of different images differ.
cmp_ok(
	$node->safe_psql('postgres', q{
		SELECT count(*) FROM ref r JOIN ours o ON o.bins = r.bins AND o.id <> r.id
		WHERE r.bins = 8 AND o.id = (SELECT min(id) FROM ref) AND r.h <> o.h}),
	'>', 0, 'a different image gives a different vector');

$node->stop;
done_testing();
