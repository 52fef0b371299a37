# The Python client (clients/python, docs in clients/python/README.md) against a real server:
# clients/python/tests/test_client.py runs its checks with psycopg2 and with psycopg 3 and prints
# one "ok - NAME" / "not ok - NAME # why" line each; every line becomes a TAP test here.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $root = $ENV{LOOKALIKE_ROOT} or die "LOOKALIKE_ROOT is not set";
my $python = '/usr/bin/python3';
for my $module (qw(numpy psycopg2 psycopg)) {
	system($python, '-c', "import $module") == 0
	  or BAIL_OUT("python3 module $module is missing (scripts/setup-debian.sh installs it)");
}

my $node = PostgreSQL::Test::Cluster->new('python');
$node->init;
$node->start;
$node->safe_psql('postgres', 'CREATE DATABASE client');
$node->safe_psql('postgres', 'CREATE DATABASE plain_client');
$node->safe_psql('client', 'CREATE EXTENSION lookalike');

my $dsn = sprintf('host=%s port=%d dbname=client', $node->host, $node->port);
my ($out, $err) = ('', '');
IPC::Run::run([ $python, "$root/clients/python/tests/test_client.py", $dsn ], '>', \$out, '2>', \$err);
my $exit = $? >> 8;
my $n = 0;
for my $line (split /\n/, $out) {
	if ($line =~ /^ok - (.*)$/) { pass($1); $n++ }
	elsif ($line =~ /^not ok - (.*?)(?: # (.*))?$/) { fail($1); diag($2 // ''); $n++ }
	else { note($line) }
}
diag($err) if $err ne '' && $exit != 0;
cmp_ok($n, '>=', 30, "the client's checks ran ($n)");
is($exit, 0, 'test_client.py exits 0');

$node->stop;
done_testing();
