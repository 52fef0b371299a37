# The demo pipeline on a small catalogue folder made from shared images: lookalike-load (bad
# lines, commas, missing images, idempotence), demo/fashion.sql, the evaluation, the report
# data, scripts/demo_report.py, and the HTML page rendered by headless Chromium (the screenshot
# must show the chart and the green/red hit/miss frames).
use strict;
use warnings;
use File::Copy;
use File::Path qw(make_path);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $root = $ENV{LOOKALIKE_ROOT} or die "LOOKALIKE_ROOT is not set";
my $shared = $ENV{SHARED} or die "SHARED is not set";
my $data = "$shared/data/fashion";
die "shared data not found at $shared" unless -r "$data/subset.csv";
my $loader = "$root/tools/loader/lookalike-load";
ok(-x $loader, 'the loader is built');

# ---- a catalogue folder: 3 style groups of the shared set, plus awkward lines ------------------
my $dir = PostgreSQL::Test::Utils::tempdir();
make_path("$dir/cat/images");
my %styles;
open(my $sf, '<', "$data/styles.csv") or die;
my $header = <$sf>;
while (my $l = <$sf>) { my ($id) = split /,/, $l; $styles{$id} = $l; }
close $sf;
open(my $sub, '<', "$data/subset.csv") or die;
<$sub>;
my (@ids, %groups);
while (my $l = <$sub>) {
	my ($id, $g) = split /,/, $l;
	next unless $g == 0 || $g == 1 || $g == 2;
	push @ids, $id;
	$groups{$g}++;
}
close $sub;
open(my $out, '>', "$dir/cat/styles.csv") or die;
print $out $header;
for my $id (@ids) {
	print $out $styles{$id};
	copy("$data/images/$id.jpg", "$dir/cat/images/$id.jpg") or die;
}
print $out $styles{44065};    # a name with unquoted commas, no image
print $out "123456,Men,Apparel\n";    # too few fields: reported, skipped
print $out "abc,Men,Apparel,Topwear,Shirts,Blue,Fall,2011,Casual,Bad id\n";    # reported, skipped
print $out $styles{$ids[0]};    # a duplicate id: reported, skipped
close $out;
my $n = scalar @ids;
my $commas = 1 + grep { (() = $styles{$_} =~ /,/g) > 9 } @ids;

my $node = PostgreSQL::Test::Cluster->new('demo');
$node->init;
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION lookalike');
my $dsn = $node->connstr('postgres');

my ($stdout, $stderr);
IPC::Run::run([ $loader, '--dsn', $dsn, "$dir/cat" ], '>', \$stdout, '2>', \$stderr);
is($?, 0, 'loader succeeds');
like($stderr, qr/@{[ $n + 1 ]} rows read \($commas with commas rejoined into productDisplayName\), @{[ $n + 1 ]} inserted, 0 updated, 0 unchanged; $n images, 1 missing, 0 unreadable; 3 unreadable lines skipped/,
	'loader summary');
like($stderr, qr/line @{[ $n + 3 ]}: 3 fields, expected 10/, 'short line reported with its number');
like($stderr, qr/line @{[ $n + 4 ]}: id 'abc' is not an integer/, 'bad id reported');
like($stderr, qr/line @{[ $n + 5 ]}: duplicate id $ids[0]/, 'duplicate id reported');
is($node->safe_psql('postgres', "SELECT product_display_name FROM fashion.products WHERE id = 44065"),
	'Boss Men Perfume, After Shave Balm and Shower Gel Set', 'commas rejoined into the name');
IPC::Run::run([ $loader, '--dsn', $dsn, '--quiet', "$dir/cat" ], '>', \$stdout, '2>', \$stderr);
like($stderr, qr/0 inserted, 0 updated, @{[ $n + 1 ]} unchanged/, 're-running changes nothing');
is($node->safe_psql('postgres', 'SELECT count(*) FROM fashion.products'), $n + 1, 'no duplicate rows');
IPC::Run::run([ $loader, '--dsn', $dsn, "$dir/nosuch" ], '>', \$stdout, '2>', \$stderr);
isnt($?, 0, 'a missing folder fails');
like($stderr, qr/cannot read .*nosuch\/styles.csv/, 'and says why');

# ---- the demo's SQL over it ------------------------------------------------------------------
my $psql = sub {
	my ($file, @vars) = @_;
	my ($o, $e);
	IPC::Run::run([ 'psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', @vars, '-d', $dsn, '-f', $file ],
		'>', \$o, '2>', \$e);
	is($?, 0, "psql -f $file") or diag($e);
	return $o;
};
$psql->("$root/demo/fashion.sql");
is($node->safe_psql('postgres', 'SELECT count(*) || \' \' || sum(products) FROM fashion.style_groups'),
	scalar(keys %groups) . " $n", 'style groups');
# Stand-in features from foreground_color_histogram (this test checks the pipeline and the
# page, not the figures).
$psql->("$root/demo/features.sql", '-v', 'model=none');
$node->safe_psql('postgres', q{
	UPDATE fashion.features f SET histogram = foreground_color_histogram(p.image, 6),
	       cnn = foreground_color_histogram(p.image, 18)
	FROM fashion.products p WHERE p.id = f.id;
	UPDATE fashion.features SET fused = fused_embedding(cnn, foreground, 0.5)});
$psql->("$root/demo/evaluate.sql");
is($node->safe_psql('postgres', 'SELECT string_agg(method || \':\' || queries, \',\' ORDER BY method) FROM fashion.retrieval_metrics WHERE seed = 1'),
	'cnn:3,fused:3,histogram:3', 'every method evaluated, one query per group');
my $table1 = $psql->("$root/demo/table1.sql");
like($table1, qr/ResNet-18 pipeline/, 'Table 1 beside the study');

my $json = $node->safe_psql('postgres', slurp_file("$root/demo/report_data.sql"));
open(my $jf, '>', "$dir/report.json") or die;
print $jf $json;
close $jf;
IPC::Run::run([ '/usr/bin/python3', "$root/scripts/demo_report.py", "$dir/report.json", "$dir/report.html" ],
	'>', \$stdout, '2>', \$stderr);
is($?, 0, 'report written') or diag($stderr);
my $page = slurp_file("$dir/report.html");
like($page, qr/<svg/, 'the page has the chart');
like($page, qr/class="(hit|miss)"/, 'and result galleries');
like($page, qr/data:image\/jpeg;base64,/, 'with the images inline');
# The page leads with what the best method wins, names products and distances on the tiles, and
# keeps the chart's value labels clear of the study's dashed lines.
like($page, qr/<h1>[^<]*<\/h1>\s*<h2>What the best method wins<\/h2>\s*<p class="lead"><b[^>]*>(\w+)<\/b> is the best method/,
	'the page opens with the best method');
my ($best) = $page =~ /<p class="lead"><b[^>]*>(\w+)<\/b> is the best method/;
my @sections = $page =~ /<section class="example"><h3>([^<]*)<\/h3>/g;
like($sections[0] // '', qr/^\Q$best\E wins/, "the first example is one $best wins") if grep { /^\Q$best\E wins/ } @sections;
unlike(join('|', @sections[0 .. ($#sections > 0 ? $#sections - 1 : 0)]), qr/every method misses.*\|.*wins/,
	'examples where every method misses come after the wins');
like($page, qr/<figcaption><b>[^<]*<\/b><br><span class="name">[^<]+<\/span><br>distance \d+\.\d{4}<\/figcaption>/,
	'result tiles name the product and its distance');
like($page, qr/Why some misses are not mistakes/, 'label-noise misses are explained');
my @lines = $page =~ /<line x1="([\d.]+)" x2="([\d.]+)" y1="([\d.]+)" y2="[\d.]+" stroke="#c00" stroke-dasharray="5,3" stroke-width="2" class="study">/g;
my @labels = $page =~ /<text class="value" x="([\d.]+)" y="([\d.]+)" font-size="10" text-anchor="middle" fill="(#\w+)"/g;
my $clashes = 0;
for (my $i = 0; $i < @labels; $i += 3) {
	my ($x, $y, $fill) = @labels[$i .. $i + 2];
	next if $fill eq '#fff';    # inside its bar
	for (my $j = 0; $j < @lines; $j += 3) {
		my ($x1, $x2, $ly) = @lines[$j .. $j + 2];
		$clashes++ if $x >= $x1 && $x <= $x2 && abs($y - 4 - $ly) < 8;
	}
}
cmp_ok(scalar(@labels) / 3, '>=', 3, 'the chart has value labels');
is($clashes, 0, 'no value label sits on a dashed study line');

# ---- the whole demo script over the same folder (FASHION_DIR), on this server (LOOKALIKE_DSN) --
# with the real model: registration, image_embeddings, the whitening fit, fused, Table 1.
SKIP: {
	my $model = "$shared/models/mobilenet_v2-imagenet-features.pt";
	skip "no model at $model", 5 unless -r $model;
	$node->safe_psql('postgres', 'CREATE DATABASE demo_script');
	$node->safe_psql('demo_script', 'CREATE EXTENSION lookalike');
	local $ENV{LOOKALIKE_DSN} = $node->connstr('demo_script');
	local $ENV{FASHION_DIR} = "$dir/cat";
	local $ENV{DEMO_OUT} = "$dir/demo_out";
	local $ENV{TRAIN} = 0;    # training the learned model is covered by 070_training.pl
	IPC::Run::run([ "$root/scripts/demo.sh" ], '>', \$stdout, '2>', \$stderr);
	is($?, 0, 'scripts/demo.sh with FASHION_DIR and LOOKALIKE_DSN') or diag($stderr);
	like($stdout, qr/^ fused +\| 0\.\d{4} \| 0\.\d{4} \| [01]\.\d{4} \| ResNet-18 pipeline/m,
		'Table 1 has the fused row');
	like($stdout, qr/not applicable, this catalogue is not the shared benchmark set/,
		'no reproduction verdict on another catalogue');
	is($node->safe_psql('demo_script', q{SELECT rows || ' ' || dims_in || ' ' || dims_out
		FROM lookalike.projections WHERE name = 'fashion_cnn_whitening'}), "$n 1280 1280",
		'the whitening is fitted on this catalogue');
	is($node->safe_psql('demo_script', 'SELECT count(*) FROM fashion.retrieval_summary'), 3,
		'three methods evaluated');
}

# ---- headless Chromium ----------------------------------------------------------------------
SKIP: {
	my $chromium = `command -v chromium 2>/dev/null`;
	chomp $chromium;
	skip 'chromium not installed', 3 unless $chromium;
	make_path("$dir/profile");
	IPC::Run::run([ $chromium, '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic',
			'--no-first-run', '--disable-background-networking', '--disable-component-update',
			'--disable-sync', "--user-data-dir=$dir/profile", '--hide-scrollbars',
			'--window-size=1200,1600', "--screenshot=$dir/report.png", "file://$dir/report.html" ],
		'>', \$stdout, '2>', \$stderr, IPC::Run::timeout(120));
	ok(-s "$dir/report.png", 'Chromium rendered a screenshot') or diag($stderr);
	# The screenshot is not blank: it holds the hit (green) and miss (red) frames of the results.
	my $check = `/usr/bin/python3 -c '
import cv2, sys
img = cv2.imread(sys.argv[1])
b, g, r = img[:, :, 0].astype(int), img[:, :, 1].astype(int), img[:, :, 2].astype(int)
green = ((g > 130) & (r < 80) & (b < 90)).sum()
red = ((r > 180) & (g < 80) & (b < 80)).sum()
print(img.shape[1], img.shape[0], int(img.std() > 20), int(green > 50), int(red > 50))
' $dir/report.png`;
	chomp $check;
	like($check, qr/^1200 1600 1 /, 'screenshot is 1200x1600 and not uniform');
	like($check, qr/ 1 1$/, 'hit and miss frames are visible') or diag($check);
	if ($ENV{LOOKALIKE_KEEP_SCREENSHOT}) { copy("$dir/report.png", $ENV{LOOKALIKE_KEEP_SCREENSHOT}); }
}

$node->stop;
done_testing();
