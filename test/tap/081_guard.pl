# The C++/PostgreSQL error guard is exception-safe: a C++ exception that leaves a pg::guarded()
# lambda (std::bad_alloc, lookalike::Error, or the PgException of an inner guard) must restore
# PostgreSQL's error state, so that the error the entry point then raises reaches the caller --
# psql, or a PL/pgSQL exception block -- and the backend lives on. Before the fix, the jump buffer
# of the guard's dead frame stayed in PG_exception_stack and that error longjmp'ed into it.
# The probe (test/fixtures/guard_probe/) is compiled here against the core archive of the build.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $root = $ENV{LOOKALIKE_ROOT} or die 'LOOKALIKE_ROOT is not set';
my $core = "$root/liblookalike_core.a";
plan skip_all => "no $core (build the extension first)" unless -f $core;
# The server headers: those of the pg_config on PATH, or of the system's (a private install tree
# made by scripts/pg-tree.sh has binaries, not headers).
my ($includes) = grep { -f "$_/postgres.h" }
  map { my $d = `$_ --includedir-server 2>/dev/null`; chomp $d; $d } ('pg_config', '/usr/bin/pg_config');
plan skip_all => 'no PostgreSQL server headers' unless $includes;
my $so = "${PostgreSQL::Test::Utils::tmp_check}/guard_probe.so";
my ($stdout, $stderr);
my $built = IPC::Run::run(
	[ 'g++', '-std=c++17', '-O1', '-fPIC', '-shared', "-I$root/src", '-isystem', $includes,
	  "$root/test/fixtures/guard_probe/guard_probe_pg.cpp", $core, '-o', $so ],
	'>', \$stdout, '2>', \$stderr);
ok($built, 'the probe module compiles') or diag($stderr);

my $node = PostgreSQL::Test::Cluster->new('guard');
$node->init;
$node->start;
$node->safe_psql('postgres',
	"CREATE FUNCTION guard_probe(text) RETURNS void AS '$so', 'guard_probe' LANGUAGE C STRICT");
is($node->safe_psql('postgres', "SELECT guard_probe('ok')"), '', 'a normal call returns');

my %want = (bad_alloc => '53200', error => '22023', nested => '22012');
for my $kind (sort keys %want) {
	# One session: the error, then a query in the same backend.
	my ($ret, $out, $err) = $node->psql('postgres',
		"\\set VERBOSITY sqlstate\nSELECT guard_probe('$kind');\nSELECT 'alive', pg_backend_pid() > 0;", on_error_stop => 0);
	like($err, qr/ERROR:\s+$want{$kind}/, "$kind: the caller gets SQLSTATE $want{$kind}");
	like($out, qr/alive\|t/, "$kind: the same backend answers the next query");
	# Caught by PL/pgSQL's exception block (a PG_TRY of its own around the call).
	my $caught = $node->safe_psql('postgres', qq{
		DO \$\$ BEGIN PERFORM guard_probe('$kind');
		EXCEPTION WHEN others THEN RAISE NOTICE 'caught %', SQLSTATE; END \$\$;
		SELECT 'after';});
	is($caught, 'after', "$kind: a PL/pgSQL exception block catches it and the session goes on");
}
# No backend died on the way: the postmaster never restarted.
my $log = slurp_file($node->logfile);
unlike($log, qr/terminated by signal|server process .* was terminated|all server processes terminated/,
	'no backend crashed');

$node->stop;
done_testing();
