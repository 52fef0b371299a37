# lookalike.fit_projection() answers a cancel request during its eigendecomposition: a fit of
# 2,048-dimensional vectors spends many seconds there (before its own solver, LAPACK ignored
# pg_cancel_backend for 51 s at this size). pg_cancel_backend is sent once the statement has run
# for a while (reading the 40 rows takes milliseconds, so the fit is then in the eigensolver);
# the backend must be idle again within a second, with nothing stored, and the session usable.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);

my $node = PostgreSQL::Test::Cluster->new('fit_cancel');
$node->init;
# Millisecond timestamps and pids on log lines: the cancel latency is measured on the server,
# from the moment pg_cancel_backend is called to the moment the error is logged.
$node->append_conf('postgresql.conf', "log_line_prefix = '%m [%p] '\n");
$node->start;
$node->safe_psql('postgres', q{
CREATE EXTENSION lookalike;
CREATE TABLE items AS
  SELECT i AS id, array(SELECT (random() * sin(i * j * 0.001))::real FROM generate_series(1, 2048) j)::embedding AS e
  FROM generate_series(1, 40) i;
});

my $fit = $node->background_psql('postgres', on_error_stop => 0);
$fit->query_until(qr/go/, q{\echo go
SELECT pg_backend_pid() AS fit_pid \gset
\echo pid :fit_pid
SELECT lookalike.fit_projection('big', 'SELECT e FROM items');
});

# Wait until the fit has run 2 s (it is then in the eigendecomposition), then cancel it.
my $started;
my $pid;
for (my $i = 0; $i < 3000; $i++) {
	my $row = $node->safe_psql('postgres', q{
		SELECT pid || '|' || extract(epoch FROM now() - query_start)
		  FROM pg_stat_activity WHERE query LIKE 'SELECT lookalike.fit_projection(%' AND state = 'active'});
	if ($row ne '') {
		my $running;
		($pid, $running) = split /\|/, $row;
		if ($running >= 2.0) { $started = 1; last; }
	}
	usleep(20_000);
}
ok($started, 'the fit was still running after 2 s');

my $t0 = $node->safe_psql('postgres', "SELECT clock_timestamp(), pg_cancel_backend($pid)");
$t0 =~ s/\|.*//;
my $idle;
for (my $i = 0; $i < 1000; $i++) {
	my $state = $node->safe_psql('postgres', "SELECT state FROM pg_stat_activity WHERE pid = $pid");
	if ($state eq 'idle') { $idle = 1; last; }
	usleep(10_000);
}
ok($idle, 'the cancelled backend became idle');
my ($logged) = slurp_file($node->logfile) =~
  /^(\S+ \S+ \S+) \[$pid\] ERROR:  canceling statement due to user request/m;
ok(defined $logged, 'the fit ended with the cancel error');
my $latency = $node->safe_psql('postgres',
	"SELECT extract(epoch FROM '$logged'::timestamptz - '$t0'::timestamptz)");
note("cancel answered $latency s after pg_cancel_backend");
cmp_ok($latency, '<', 1.0, 'the cancel was answered within a second');
is($node->safe_psql('postgres', q{SELECT count(*) FROM lookalike.projections}), '0',
	'nothing was stored');

# The same session goes on: a small fit works.
my $out = $fit->query(q{SELECT dims_out FROM lookalike.fit_projection('small', 'SELECT ((e::real[])[1:16])::embedding FROM items')});
# (the output may start with what the session printed before the cancel)
like($out, qr/(^|\n)16$/, 'the session that was cancelled fits again');
$fit->quit;

$node->stop;
done_testing();
