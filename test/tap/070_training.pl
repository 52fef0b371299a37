# lookalike.train_model() end to end on 40 images of the training pool (../shared/data/
# fashion-train) at 64 x 64: the loss falls over two epochs, the model is stored in the database
# and embeds differently from its base, pg_dump/restore carries it, lookalike.training_progress
# shows a run from another session, and a cancel mid-training is answered quickly and leaves
# nothing registered.
use strict;
use warnings;
use Time::HiRes qw(time);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $root = $ENV{LOOKALIKE_ROOT} or plan skip_all => 'LOOKALIKE_ROOT not set';
my $shared = $ENV{SHARED} // "$root/../shared";
my $train = "$shared/data/fashion-train";
my $model = "$shared/models/mobilenet_v2-imagenet-features.pt";
plan skip_all => "no training data at $train" unless -r "$train/styles.csv" && -r $model;

# 20 T-shirts and 20 watches of two colours (labels: articleType, baseColour).
my @rows;
open(my $sf, '<', "$train/styles.csv") or die;
<$sf>;
my %n;
while (my $l = <$sf>) {
	my @f = split /,/, $l;
	next unless ($f[4] eq 'Tshirts' || $f[4] eq 'Watches') && ($f[5] eq 'Black' || $f[5] eq 'White');
	next if ($n{ $f[4] } // 0) >= 20 || !-r "$train/images/$f[0].jpg";
	$n{ $f[4] }++;
	push @rows, "($f[0], '$f[4]', '$f[5]')";
}
close $sf;
is(scalar @rows, 40, '40 training images');

my $node = PostgreSQL::Test::Cluster->new('train');
$node->init;
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION lookalike');
$node->safe_psql('postgres', "SELECT lookalike.register_model('mnv2', '$model', input_size => 64)");
$node->safe_psql('postgres', "CREATE TABLE items AS SELECT id, article, colour,
  pg_read_binary_file('$train/images/' || id || '.jpg') AS image
  FROM (VALUES " . join(',', @rows) . ") v(id, article, colour)");
my $q = 'SELECT image, article, colour FROM public.items ORDER BY id';

# ---- two epochs: the loss falls ---------------------------------------------------------------
my ($ret, $out, $err) = $node->psql('postgres',
	"SELECT name, dims FROM lookalike.train_model('learned', 'mnv2', '$q', epochs => 2,
	   embedding_dims => 32, trainable_blocks => 2, batch_size => 8, learning_rate => 0.01)");
is($ret, 0, 'train_model succeeds') or diag $err;
is($out, 'learned|32', 'the trained model is registered with 32 dimensions');
my @loss = $err =~ /epoch \d+\/2, loss ([0-9.]+)/g;
is(scalar @loss, 2, 'one NOTICE per epoch with the loss') or diag $err;
cmp_ok($loss[1], '<', $loss[0], "the loss falls ($loss[0] -> $loss[1])");
like($err, qr/40 images cached/, 'a NOTICE counts the cached images');
is($node->safe_psql('postgres',
		"SELECT path IS NULL AND m.sha256 = encode(sha256(torchscript), 'hex')
		   FROM lookalike.models m JOIN lookalike.model_data d USING (name)"),
	't', 'the model is stored in the database with its sha256');
my $emb = "SELECT string_agg(image_embedding(image, 'learned')::text, ';' ORDER BY id) FROM items";
my $before = $node->safe_psql('postgres', $emb);
my $base = $node->safe_psql('postgres',
	"SELECT string_agg(image_embedding(image, 'mnv2')::text, ';' ORDER BY id) FROM items");
isnt($before, $base, 'its embeddings differ from the base model\'s');
# Same-article pairs are closer than cross-article pairs with the trained model.
my ($same, $other) = split /\|/, $node->safe_psql('postgres', q{
  WITH e AS (SELECT id, article, image_embedding(image, 'learned') AS v FROM items)
  SELECT avg(1 - (a.v <=> b.v)) FILTER (WHERE a.article = b.article),
         avg(1 - (a.v <=> b.v)) FILTER (WHERE a.article <> b.article)
    FROM e a JOIN e b ON a.id < b.id});
cmp_ok($same, '>', $other, "same-article pairs are closer ($same > $other)");

# ---- pg_dump / restore carries the model --------------------------------------------------------
my $dump = $node->basedir . '/dump.sql';
$node->command_ok([ 'pg_dump', '-d', $node->connstr('postgres'), '-f', $dump ], 'pg_dump');
$node->safe_psql('postgres', 'CREATE DATABASE restored');
$node->command_ok([ 'psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', $node->connstr('restored'), '-f', $dump ],
	'restore into a new database');
is($node->safe_psql('restored', $emb), $before, 'the restored model gives the same embeddings');

# ---- progress from another session, and a cancel mid-training ------------------------------------
my ($o, $e) = ('', '');
my $h = IPC::Run::start(
	[ 'psql', '-X', '-d', $node->connstr('postgres'), '-c',
	  "SELECT lookalike.train_model('cancelled', 'mnv2', '$q', epochs => 50, embedding_dims => 32, trainable_blocks => 2, batch_size => 8)" ],
	'>', \$o, '2>', \$e);
$node->poll_query_until('postgres',
	"SELECT count(*) = 1 FROM lookalike.training_progress WHERE model = 'cancelled' AND phase = 'training'")
  or die 'training did not start';
my $row = $node->safe_psql('postgres',
	"SELECT pid, epochs, total > 0 FROM lookalike.training_progress WHERE model = 'cancelled'");
like($row, qr/^\d+\|50\|t$/, 'lookalike.training_progress shows the run from another session');
my ($pid) = split /\|/, $row;
my $t0 = time;
$node->safe_psql('postgres', "SELECT pg_cancel_backend($pid)");
$h->finish;
my $secs = time - $t0;
like($e, qr/canceling statement due to user request/, 'the training was cancelled');
cmp_ok($secs, '<', 3, sprintf('the cancel was answered in %.2f s', $secs));
is($node->safe_psql('postgres',
		"SELECT count(*) FROM lookalike.models WHERE name = 'cancelled'") .
	$node->safe_psql('postgres', "SELECT count(*) FROM lookalike.model_data WHERE name = 'cancelled'"),
	'00', 'nothing of the cancelled run is registered');
is($node->safe_psql('postgres', 'SELECT count(*) FROM lookalike.training_progress'), '0',
	'no progress row is left');
ok(!-e $node->data_dir . "/pg_stat_tmp/lookalike_training.$pid", 'the progress file is removed');

$node->stop;
done_testing();
