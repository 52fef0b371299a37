# lookalike.embed_table(): committed batches, progress visible to another session, a backend
# killed with SIGKILL in the middle (crash recovery) loses at most one batch and a second CALL
# finishes the rest, an error stops after the committed batches, a changed image is embedded
# again (hash column), and the embeddings equal image_embedding()'s.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);

my $shared = $ENV{SHARED} or die "SHARED is not set";
my $model = "$shared/models/mobilenet_v2-imagenet-features.pt";
opendir(my $dh, "$shared/data/fashion/images") or die;
my @files = (sort grep { /^\d+\.jpg$/ } readdir $dh)[0 .. 59];
closedir $dh;

my $node = PostgreSQL::Test::Cluster->new('embed');
$node->init;
$node->append_conf('postgresql.conf', "restart_after_crash = on\nlookalike.progress_interval = 0\n");
$node->start;
my $values = join ",\n", map { my ($id) = /^(\d+)/; "($id, pg_read_binary_file('$shared/data/fashion/images/$_'))" } @files;
$node->safe_psql('postgres', qq{
CREATE EXTENSION lookalike;
SELECT lookalike.register_model('mnv2', '$model');
CREATE TABLE products (id int PRIMARY KEY, image bytea, emb embedding(1280), emb_md5 text);
INSERT INTO products (id, image) VALUES $values;
INSERT INTO products (id, image) VALUES (1, NULL);  -- no image: never picked
-- For the crash test only: 0.1 s per updated row, so the job runs long enough to be watched.
CREATE FUNCTION slow() RETURNS trigger LANGUAGE plpgsql AS \$\$BEGIN PERFORM pg_sleep(0.1); RETURN NEW; END\$\$;
CREATE TRIGGER slow BEFORE UPDATE ON products FOR EACH ROW EXECUTE FUNCTION slow();
});
is($node->safe_psql('postgres', 'SELECT count(*) FROM products WHERE image IS NOT NULL'), '60', '60 products with images');

# ---- a job killed by SIGKILL after a few batches ---------------------------------------------
my $job = $node->background_psql('postgres', on_error_stop => 0);
$job->query_until(qr/started/, q{\echo started
CALL lookalike.embed_table('products', 'id', 'image', 'emb', 'mnv2', hash_column => 'emb_md5', batch_rows => 3);
});
my ($seen_running, $progress) = (0, '');
for (my $i = 0; $i < 1200; $i++) {
	$progress = $node->safe_psql('postgres',
		q{SELECT state || ' ' || rows_done || ' ' || rows_total || ' ' || pid FROM lookalike.embedding_progress ORDER BY job_id DESC LIMIT 1});
	last if $progress =~ /^running (\d+) / && $1 >= 9;
	usleep(100_000);
}
my ($state, $done, $total, $pid) = split ' ', $progress;
is($state, 'running', 'another session sees the job running');
cmp_ok($done, '>=', 9, "another session sees committed progress ($done of $total)");
is($total, '60', 'rows_total counts the rows to embed');
kill 'KILL', $pid;
$job->quit;
$node->poll_query_until('postgres', 'SELECT true') or die 'the server did not come back after the crash';
my ($jobs_done, $filled) = split /\|/, $node->safe_psql('postgres',
	q{SELECT (SELECT rows_done FROM lookalike.embedding_jobs ORDER BY job_id DESC LIMIT 1),
	         (SELECT count(*) FROM products WHERE emb IS NOT NULL)});
cmp_ok($filled, '>=', 9, "after the crash the committed batches are kept ($filled rows)");
is($filled, $jobs_done, 'the recorded progress equals the committed rows (only the batch in progress was lost)');
is($node->safe_psql('postgres', q{SELECT state FROM lookalike.embedding_progress ORDER BY job_id DESC LIMIT 1}),
	'interrupted', 'the killed job shows as interrupted');

# ---- a second CALL finishes the rest ----------------------------------------------------------
$node->safe_psql('postgres', 'DROP TRIGGER slow ON products');
$node->safe_psql('postgres', q{CALL lookalike.embed_table('products', 'id', 'image', 'emb', 'mnv2', hash_column => 'emb_md5', batch_rows => 16)});
is($node->safe_psql('postgres', q{SELECT state || ' ' || rows_total || ' ' || rows_done FROM lookalike.embedding_progress ORDER BY job_id DESC LIMIT 1}),
	'done ' . (60 - $filled) . ' ' . (60 - $filled), 'the second CALL embeds only the rest');
is($node->safe_psql('postgres', q{SELECT count(*) FROM products WHERE emb IS NOT NULL}), '60', 'every image is embedded');
is($node->safe_psql('postgres', q{SELECT count(*) FROM products WHERE emb <=> image_embedding(image, 'mnv2') < 1e-6 AND emb_md5 = md5(image)}),
	'60', 'the embeddings equal image_embedding() and the hashes are recorded');

# ---- a changed image is embedded again; nothing else -----------------------------------------
my ($a, $b) = map { /^(\d+)/ } @files[0, 1];
$node->safe_psql('postgres', qq{UPDATE products SET image = (SELECT image FROM products WHERE id = $b) WHERE id = $a});
$node->safe_psql('postgres', q{CALL lookalike.embed_table('products', 'id', 'image', 'emb', 'mnv2', hash_column => 'emb_md5')});
is($node->safe_psql('postgres', q{SELECT rows_total || ' ' || rows_done FROM lookalike.embedding_jobs ORDER BY job_id DESC LIMIT 1}),
	'1 1', 'a changed image: one row embedded again');
is($node->safe_psql('postgres', qq{SELECT (SELECT emb FROM products WHERE id = $a) = (SELECT emb FROM products WHERE id = $b)}),
	't', 'its embedding is the new image\'s');

# ---- an error stops after the committed batches -----------------------------------------------
$node->safe_psql('postgres', q{UPDATE products SET emb = NULL, emb_md5 = NULL;
	UPDATE products SET image = 'not an image'::bytea WHERE id = (SELECT id FROM products WHERE image IS NOT NULL ORDER BY id OFFSET 20 LIMIT 1)});
my ($ret, $out, $err) = $node->psql('postgres',
	q{CALL lookalike.embed_table('products', 'id', 'image', 'emb', 'mnv2', batch_rows => 10)});
like($err, qr/ERROR:.*not a supported image/, 'a bad image stops the CALL with image_embeddings()\' error');
is($node->safe_psql('postgres', q{SELECT count(*) FROM products WHERE emb IS NOT NULL}), '20',
	'the two batches before it stay committed');
$node->safe_psql('postgres', q{CALL lookalike.embed_table('products', 'id', 'image', 'emb', 'mnv2', on_error => 'null')});
is($node->safe_psql('postgres', q{SELECT rows_done || ' ' || rows_failed FROM lookalike.embedding_jobs ORDER BY job_id DESC LIMIT 1}),
	'39 1', "on_error => 'null': the rest embedded, the bad image counted as failed");

# ---- argument errors ----------------------------------------------------------------------------
($ret, $out, $err) = $node->psql('postgres', q{\set VERBOSITY verbose
CALL lookalike.embed_table('products', 'id', 'image', 'emb_md5')});
like($err, qr/42804: column "emb_md5" of products is not an embedding column/, 'a non-embedding column: 42804');
($ret, $out, $err) = $node->psql('postgres', q{\set VERBOSITY verbose
BEGIN; CALL lookalike.embed_table('products', 'id', 'image', 'emb'); COMMIT;});
like($err, qr/2D000: invalid transaction termination/, 'inside a transaction block: 2D000');

$node->stop;
done_testing();
