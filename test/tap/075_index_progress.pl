# pg_stat_progress_create_index during a lookalike_hnsw build, sampled from another session:
# the phases appear in order (loading tuples, refining graph (second pass), writing pages) and
# tuples_done moves during the second pass.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);

my $node = PostgreSQL::Test::Cluster->new('progress');
$node->init;
$node->append_conf('postgresql.conf', "maintenance_work_mem = 256MB\n");
$node->start;
$node->safe_psql('postgres', q{
CREATE EXTENSION lookalike;
CREATE TABLE items AS
  SELECT i AS id, array(SELECT sin(i * 0.013 * j + j)::real FROM generate_series(1, 96) j)::embedding(96) AS e
  FROM generate_series(1, 20000) i;
});

my $build = $node->background_psql('postgres');
$build->query_until(qr/go/, q{\echo go
SET lookalike.build_threads = 1;
CREATE INDEX ON items USING lookalike_hnsw (e embedding_l2_ops) WITH (m = 16, ef_construction = 100);
\echo built
});
my (@phases, %done);
my $samples = 0;
for (my $i = 0; $i < 30000; $i++) {
	my $row = $node->safe_psql('postgres',
		q{SELECT phase || '|' || tuples_done || '|' || tuples_total FROM pg_stat_progress_create_index});
	if ($row eq '') {
		last if $samples > 0;
		usleep(5_000);
		next;
	}
	$samples++;
	my ($phase, $done, $total) = split /\|/, $row;
	push @phases, $phase if !@phases || $phases[-1] ne $phase;
	$done{$phase}{$done} = 1;
	usleep(5_000);
}
$build->quit;
note("phases seen: @phases");
my @want = ('building index: loading tuples', 'building index: refining graph (second pass)',
	'building index: writing pages');
my @seen = grep { my $p = $_; grep { $_ eq $p } @phases } @want;
ok((grep { $_ eq $want[1] } @phases), 'the second pass is reported as its own phase');
my %pos = map { $phases[$_] => $_ } reverse 0 .. $#phases;
ok(!defined $pos{$want[2]} || $pos{$want[1]} < $pos{$want[2]}, 'it comes before writing pages');
cmp_ok(scalar(keys %{ $done{$want[1]} || {} }), '>=', 2, 'tuples_done moves during the second pass');
is($node->safe_psql('postgres', 'SELECT count(*) FROM pg_indexes WHERE tablename = \'items\''), '1', 'the index was built');

$node->stop;
done_testing();
