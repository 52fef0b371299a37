# lookalike.refresh_evaluation and BI readers, with two sessions: while a refresh (after a change
# of the catalogue's members) has run but not committed, another session reads every view of the
# evaluation under lock_timeout = 2 s, gets the previous results and is never blocked; refreshing
# one method keeps the other method's rows (and warns that they are stale); a refresh where no
# group qualifies says so; every column of every table and view of an evaluation has a comment.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('refresh');
$node->init;
$node->start;
$node->safe_psql('postgres', q{
CREATE EXTENSION lookalike;
CREATE TABLE items (id int PRIMARY KEY, grp int NOT NULL, e embedding(4));
INSERT INTO items
  SELECT i, i % 30, array[sin(i), cos(i * 0.7), (i % 30) * 0.1, sin(i * 1.3)]::real[]::embedding(4)
  FROM generate_series(1, 300) i;
SELECT lookalike.create_evaluation('ev', 'items', 'id', 'grp', seeds => 3, k => 3);
SELECT lookalike.add_evaluation_method('ev', 'a', 'SELECT id, e FROM items');
SELECT lookalike.add_evaluation_method('ev', 'b', 'SELECT id, e FROM items', 'l2');
SELECT count(*) FROM lookalike.refresh_evaluation('ev');
});

is($node->safe_psql('postgres', q{
	SELECT count(*) FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
	WHERE c.relnamespace = 'ev'::regnamespace AND c.relkind IN ('r', 'v') AND a.attnum > 0
	  AND NOT a.attisdropped AND col_description(a.attrelid, a.attnum) IS NULL}),
	'0', 'every column of every table and view of the evaluation has a comment');
is($node->safe_psql('postgres', q{
	SELECT count(*) FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
	WHERE c.relnamespace = 'ev'::regnamespace AND c.relkind = 'v' AND a.attnum > 0}),
	'41', 'the five views have 41 columns');

my @views = qw(retrieval_summary retrieval_metrics retrieval_queries retrieval_groups retrieval_splits);
my %before = map {
	$_ => $node->safe_psql('postgres', "SELECT md5(string_agg(t::text, '|' ORDER BY t::text)) FROM ev.$_ t")
} @views;
my $summary_before = $node->safe_psql('postgres', 'SELECT method, round(precision_at_k::numeric, 6) FROM ev.retrieval_summary ORDER BY 1');
like($summary_before, qr/^a\|.*\nb\|/, 'both methods have results');

# Session 1: the members change (group 7 loses items), then a refresh of method a only, left
# uncommitted: every lock the refresh took is still held.
my $writer = $node->background_psql('postgres', on_error_stop => 1);
$writer->query_safe('BEGIN');
$writer->query_safe('DELETE FROM items WHERE grp = 7 AND id > 100');
my ($res, $stderr) = $writer->query(q{SELECT method || ':' || queries FROM lookalike.refresh_evaluation('ev', 'a')});
like($res, qr/^a:\d+$/, 'session 1: the refresh of method a ran (not committed yet)');
like($writer->{stderr}, qr/WARNING:\s+the members of the evaluation in schema "ev" changed: the results of b were computed for the previous members/,
	'the refresh of one method warns that the other method\'s results are stale');
$writer->{stderr} = '';
cmp_ok($node->safe_psql('postgres', q{SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation
	WHERE c.relnamespace = 'ev'::regnamespace AND l.granted AND l.pid <> pg_backend_pid()}), '>', 0,
	'session 1 holds locks on the evaluation\'s tables');

# Session 2: BI reads, with a lock timeout; nothing waits and nothing changed yet.
for my $view (@views) {
	my ($ret, $out, $err) = $node->psql('postgres',
		"SET lock_timeout = '2s'; SELECT md5(string_agg(t::text, '|' ORDER BY t::text)) FROM ev.$view t",
		timeout => 60);
	is($ret, 0, "session 2 reads ev.$view during the refresh without waiting") or diag($err);
	is($out, $before{$view}, "session 2 sees the last committed $view");
}
is($node->safe_psql('postgres', q{SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'}), '0',
	'no session waits for a lock');

$writer->query_safe('COMMIT');
$writer->quit;

my $summary_after = $node->safe_psql('postgres', 'SELECT method, round(precision_at_k::numeric, 6) FROM ev.retrieval_summary ORDER BY 1');
like($summary_after, qr/^a\|.*\nb\|/, 'after the commit the summary still has method b (kept, not refreshed)');
my ($b_before) = $summary_before =~ /^b\|(.*)$/m;
my ($b_after) = $summary_after =~ /^b\|(.*)$/m;
is($b_after, $b_before, "method b's rows are unchanged");
isnt($node->safe_psql('postgres', q{SELECT count(*) FROM ev.retrieval_members}), '300', 'the members changed');

# A refresh of everything is quiet.
my ($ret, $out, $err) = $node->psql('postgres', q{SELECT count(*) FROM lookalike.refresh_evaluation('ev')});
is($err, '', 'a full refresh raises no warning');

# No group qualifies.
$node->safe_psql('postgres', q{SELECT lookalike.create_evaluation('none', 'items', 'id', 'grp', min_group_size => 50, max_group_size => 60);
	SELECT lookalike.add_evaluation_method('none', 'a', 'SELECT id, e FROM items')});
($ret, $out, $err) = $node->psql('postgres', q{SELECT method || ':' || queries FROM lookalike.refresh_evaluation('none')});
is($out, 'a:0', 'a refresh where no group qualifies evaluates no query');
like($err, qr/WARNING:\s+no group of the evaluation in schema "none" qualifies: none has between 50 and 60 items/,
	'and says so in a WARNING');

$node->stop;
done_testing();
