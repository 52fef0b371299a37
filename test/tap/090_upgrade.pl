# The upgrade path (docs/upgrading.md): install lookalike 0.1.0 (the frozen install script),
# create every kind of object a user has (embedding columns, a lookalike_hnsw index and a btree
# index, a registered model and stored CNN embeddings, a projection, an evaluation with results),
# ALTER EXTENSION lookalike UPDATE, then
#  - the extension's catalogue equals a fresh install's (test/tap/extension_catalogue.sql: every
#    member object, its definition, comments, ACLs, initial privileges, configuration tables);
#  - the old data answers the same queries as before the update, in new sessions (index scans,
#    image_embedding() of the same image, project(), the evaluation's views), and still works
#    (inserts into the index, a new refresh, a new projection);
#  - pg_dump of the upgraded database restores into a database with the same catalogue and data.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $root = $ENV{LOOKALIKE_ROOT} or die "LOOKALIKE_ROOT is not set";
my $shared = $ENV{SHARED} or die "SHARED is not set";
my $model = "$shared/models/mobilenet_v2-imagenet-features.pt";
my @images = map { "$shared/data/fashion/images/$_.jpg" } (1530, 1550, 10000);
-e $_ or die "missing $_" for ($model, @images);

my $catalogue_sql = slurp_file("$root/test/tap/extension_catalogue.sql");
my $default = (slurp_file("$root/extension/lookalike.control") =~ /default_version\s*=\s*'([^']+)'/)[0];

my $node = PostgreSQL::Test::Cluster->new('upgrade');
$node->init;
$node->append_conf('postgresql.conf', "lookalike.progress_interval = 0\n");
$node->start;
$node->safe_psql('postgres', 'CREATE DATABASE upgraded');
$node->safe_psql('postgres', 'CREATE DATABASE fresh');
$node->safe_psql('postgres', 'CREATE DATABASE restored');

# ---- 0.1.0 and a user's objects ------------------------------------------------------------
$node->safe_psql('upgraded', "CREATE EXTENSION lookalike VERSION '0.1.0'");
is($node->safe_psql('upgraded', "SELECT extversion FROM pg_extension WHERE extname = 'lookalike'"),
	'0.1.0', '0.1.0 installs (its C functions still exist in the libraries)');
isnt($default, '0.1.0', "the default version is a later release ($default)");

my $imgs = join ', ', map { "($_, pg_read_binary_file('$images[$_ - 1]'))" } 1 .. 3;
$node->safe_psql('upgraded', qq{
CREATE TABLE items (id bigint PRIMARY KEY, grp text NOT NULL, e embedding(8), tag embedding);
INSERT INTO items
  SELECT i, 'g' || (i % 25),
         array(SELECT sin(i * 0.37 + j * 1.3 + (i % 25) * 2.1)::real FROM generate_series(1, 8) j)::embedding(8),
         CASE WHEN i % 3 = 0 THEN '[1,2,3]'::embedding END
  FROM generate_series(1, 300) i;
CREATE INDEX items_hnsw ON items USING lookalike_hnsw (e embedding_cosine_ops) WITH (m = 8, ef_construction = 32);
CREATE INDEX items_tag ON items (tag);
SELECT lookalike.register_model('mnv2', '$model', description => 'upgrade test');
CREATE TABLE photos (id int PRIMARY KEY, img bytea NOT NULL, e embedding(1280));
INSERT INTO photos (id, img) VALUES $imgs;
UPDATE photos SET e = image_embedding(img, 'mnv2');
SELECT lookalike.fit_projection('p4', 'SELECT e FROM items', components => 4);
CREATE TABLE projected AS SELECT id, project(e, 'p4') AS e FROM items;
SELECT lookalike.create_evaluation('eval', 'items', 'id', 'grp', seeds => 3, k => 3);
SELECT lookalike.add_evaluation_method('eval', 'raw', 'SELECT id, e FROM items');
SELECT lookalike.add_evaluation_method('eval', 'projected', 'SELECT id, e FROM projected', 'l2');
SELECT count(*) FROM lookalike.refresh_evaluation('eval');
});

# Answers that must not change across the update (each in its own session).
my %probe = (
	index_plan => 'SET enable_seqscan = off; EXPLAIN (COSTS OFF) SELECT id FROM items ORDER BY e <=> (SELECT e FROM items WHERE id = 7) LIMIT 5',
	index_top5 => 'SET enable_seqscan = off; SELECT array_agg(id) FROM (SELECT id FROM items ORDER BY e <=> (SELECT e FROM items WHERE id = 7) LIMIT 5) s',
	exact_top5 => 'SET enable_indexscan = off; SELECT array_agg(id) FROM (SELECT id FROM items ORDER BY e <-> (SELECT e FROM items WHERE id = 7) LIMIT 5) s',
	btree => "SET enable_seqscan = off; SELECT count(*) FROM items WHERE tag = '[1,2,3]'",
	models => 'SELECT name, dims, sha256, description FROM lookalike.models',
	photos => 'SELECT id, round((e <=> image_embedding(img, \'mnv2\'))::numeric, 5), dims(e) FROM photos ORDER BY id',
	project => 'SELECT count(*) FILTER (WHERE (p.e <-> project(i.e, \'p4\')) < 1e-6), count(*) FROM items i JOIN projected p USING (id)',
	summary => 'SELECT method, k, seeds, round(precision_at_k::numeric, 6), round(recall_at_k::numeric, 6) FROM eval.retrieval_summary ORDER BY method',
	groups => 'SELECT count(*), round(sum(hit_at_k)::numeric, 6) FROM eval.retrieval_groups',
);
my %before = map { $_ => $node->safe_psql('upgraded', $probe{$_}) } keys %probe;
like($before{index_plan}, qr/Index Scan using items_hnsw/, 'the index answers before the update');
like($before{summary}, qr/^projected\|3\|3\|.*\nraw\|3\|3\|/, 'the evaluation has results for both methods');

# ---- the update ----------------------------------------------------------------------------
$node->safe_psql('upgraded', 'ALTER EXTENSION lookalike UPDATE');
is($node->safe_psql('upgraded', "SELECT extversion FROM pg_extension WHERE extname = 'lookalike'"),
	$default, "ALTER EXTENSION lookalike UPDATE reaches $default");
$node->safe_psql('fresh', 'CREATE EXTENSION lookalike');

sub catalogue_is {
	my ($db, $what) = @_;
	my @got = split /\n/, $node->safe_psql($db, $catalogue_sql);
	my @want = split /\n/, $node->safe_psql('fresh', $catalogue_sql);
	my %got = map { $_ => 1 } @got;
	my %want = map { $_ => 1 } @want;
	my @missing = grep { !$got{$_} } @want;
	my @extra = grep { !$want{$_} } @got;
	ok(@want > 100 && !@missing && !@extra,
		sprintf('%s: catalogue equals a fresh install (%d facts)', $what, scalar @want))
	  or diag(join "\n", (map { "only in fresh install:  $_" } @missing),
		(map { "only in $db: $_" } @extra));
}
catalogue_is('upgraded', 'after ALTER EXTENSION UPDATE');

for my $name (sort keys %probe) {
	is($node->safe_psql('upgraded', $probe{$name}), $before{$name}, "old data after the update: $name");
}

# The old objects keep working: inserts go through the index, a refresh and a refit run.
$node->safe_psql('upgraded', q{
INSERT INTO items SELECT i, 'g' || (i % 25),
    array(SELECT cos(i * 0.11 + j)::real FROM generate_series(1, 8) j)::embedding(8) FROM generate_series(301, 400) i;
INSERT INTO projected SELECT id, project(e, 'p4') FROM items WHERE id > 300;
SELECT lookalike.fit_projection('p4b', 'SELECT e FROM items', components => 4);
});
is($node->safe_psql('upgraded',
		'SET enable_seqscan = off; SELECT id FROM items ORDER BY e <=> (SELECT e FROM items WHERE id = 377) LIMIT 1'),
	'377', 'a row inserted after the update is found through the old index');
is($node->safe_psql('upgraded',
		"SELECT method, queries > 0 FROM lookalike.refresh_evaluation('eval') ORDER BY 1"),
	"projected|t\nraw|t", 'refresh_evaluation runs on an evaluation created by 0.1.0');
is($node->safe_psql('upgraded', 'SELECT count(*) FROM eval.retrieval_summary'), '2',
	'the summary has both methods after the refresh');
is($node->safe_psql('upgraded', q{
	SELECT count(*) FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
	WHERE c.relnamespace = 'eval'::regnamespace AND c.relkind IN ('r', 'v') AND a.attnum > 0
	  AND NOT a.attisdropped AND col_description(a.attrelid, a.attnum) IS NULL}),
	'0', 'the refresh put a comment on every column of the evaluation 0.1.0 created');

# ---- dump and restore of the upgraded database ---------------------------------------------
my $dump = "$PostgreSQL::Test::Utils::tmp_check/upgraded.dump";
command_ok([ 'pg_dump', '-Fc', '-d', $node->connstr('upgraded'), '-f', $dump ], 'pg_dump of the upgraded database');
command_ok([ 'pg_restore', '-d', $node->connstr('restored'), $dump ], 'pg_restore into an empty database');
catalogue_is('restored', 'after dump and restore');
for my $name (sort keys %probe) {
	is($node->safe_psql('restored', $probe{$name}), $node->safe_psql('upgraded', $probe{$name}),
		"restored data answers as the upgraded database: $name");
}

$node->stop;
done_testing();
