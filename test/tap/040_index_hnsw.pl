# lookalike_hnsw under change, crash and replication: recall@10 against the exact scan on 10,000
# clustered vectors after the build, after 50% more inserts, after deleting a third and VACUUM;
# filtered queries; a backend killed with SIGKILL in the middle of inserts, then crash recovery;
# a streaming replica answering the same.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;

my $DIMS = 32;
my $node = PostgreSQL::Test::Cluster->new('primary');
$node->init(allows_streaming => 1);
$node->append_conf('postgresql.conf', "shared_buffers = 64MB\nmaintenance_work_mem = 256MB\nrestart_after_crash = on\n");
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION lookalike');

# Seeded clustered unit vectors: 50 Gaussian centres, noise of 0.8 times the centre's scale.
$node->safe_psql('postgres', qq{
SELECT setseed(0.42);
CREATE TABLE centres AS
  SELECT c, array_agg(sqrt(-2 * ln(1 - random())) * cos(2 * pi() * random()) ORDER BY j) AS v
  FROM generate_series(1, 50) c, generate_series(1, $DIMS) j GROUP BY c;
CREATE FUNCTION gen(lo int, hi int) RETURNS TABLE (id int, cat int, e embedding) LANGUAGE sql AS \$\$
  SELECT i, i % 20, l2_normalize(array_agg(cv.v[j] + 0.8 * sqrt(-2 * ln(1 - random()))
                                 * cos(2 * pi() * random()) ORDER BY j)::real[]::embedding)
  FROM generate_series(lo, hi) i JOIN centres cv ON cv.c = 1 + (i::bigint * 7919) % 50,
       generate_series(1, $DIMS) j
  GROUP BY i \$\$;
CREATE TABLE items (id int PRIMARY KEY, cat int, e embedding($DIMS));
INSERT INTO items SELECT * FROM gen(1, 10000);
CREATE TABLE queries AS SELECT id AS qid, e FROM gen(1000001, 1000050);
CREATE FUNCTION recall(k int) RETURNS float8 LANGUAGE plpgsql AS \$\$
DECLARE hits int := 0; n int := 0; q record; a int[]; b int[];
BEGIN
  FOR q IN SELECT qid, e FROM queries ORDER BY qid LOOP
    SET LOCAL enable_seqscan = off; SET LOCAL enable_indexscan = on;
    EXECUTE format('SELECT array_agg(id) FROM (SELECT id FROM items ORDER BY e <=> %L LIMIT %s) s', q.e, k) INTO a;
    SET LOCAL enable_seqscan = on; SET LOCAL enable_indexscan = off;
    EXECUTE format('SELECT array_agg(id) FROM (SELECT id FROM items ORDER BY e <=> %L LIMIT %s) s', q.e, k) INTO b;
    hits := hits + (SELECT count(*) FROM unnest(a) x WHERE x = ANY (b));
    n := n + k;
  END LOOP;
  RETURN hits::float8 / n;
END \$\$;
-- Rows the index returns for a query with no LIMIT: (returned, distinct, live rows).
CREATE FUNCTION consistency() RETURNS text LANGUAGE plpgsql AS \$\$
DECLARE r text;
BEGIN
  SET LOCAL enable_seqscan = off; SET LOCAL lookalike.max_scan_tuples = 1000000;
  SELECT format('%s %s %s', count(*), count(DISTINCT id), (SELECT count(*) FROM items))
    INTO r FROM (SELECT id FROM items ORDER BY e <=> (SELECT e FROM queries LIMIT 1)) s;
  RETURN r;
END \$\$;
});

my $t0 = time;
$node->safe_psql('postgres',
	'CREATE INDEX items_e ON items USING lookalike_hnsw (e embedding_cosine_ops) WITH (m = 16, ef_construction = 64)');
note sprintf('build of 10,000 rows: %d s', time - $t0);
like($node->safe_psql('postgres',
	"SET enable_seqscan = off; EXPLAIN (COSTS OFF) SELECT id FROM items ORDER BY e <=> (SELECT e FROM queries LIMIT 1) LIMIT 10"),
	qr/Index Scan using items_e/, 'the planner uses the index');

sub recall_ok {
	my ($node, $what) = @_;
	my $r = $node->safe_psql('postgres', 'SET lookalike.ef_search = 100; SELECT recall(10)');
	cmp_ok($r, '>=', 0.98, "recall\@10 >= 0.98 $what ($r)");
}

sub consistent {
	my ($node, $what) = @_;
	my ($returned, $distinct, $live) = split ' ', $node->safe_psql('postgres', 'SELECT consistency()');
	is($returned, $distinct, "no row returned twice $what");
	cmp_ok($returned, '>=', 0.99 * $live, "index reaches >= 99% of $live rows $what ($returned)");
}

recall_ok($node, 'after the build');
consistent($node, 'after the build');

$node->safe_psql('postgres', 'INSERT INTO items SELECT * FROM gen(10001, 15000)');
recall_ok($node, 'after 50% more inserts');

# Filtered queries: k rows when k rows match (cat = 7 keeps 1 row in 20).
my $filtered = $node->safe_psql('postgres', q{
SET enable_seqscan = off; SET lookalike.ef_search = 10;
SELECT min(c) FROM (SELECT (SELECT count(*) FROM (SELECT id FROM items WHERE cat = 7
  ORDER BY e <=> q.e LIMIT 25) s) AS c FROM queries q) x});
is($filtered, 25, 'filtered queries return k rows past ef_search');
my $rare = $node->safe_psql('postgres', q{
SET enable_seqscan = off; SET lookalike.ef_search = 10;
SELECT count(*) FROM (SELECT id FROM items WHERE id % 1000 = 0 ORDER BY e <=> (SELECT e FROM queries LIMIT 1) LIMIT 15) s});
is($rare, 15, 'a filter keeping 0.1% of rows still fills the LIMIT');

$node->safe_psql('postgres', 'DELETE FROM items WHERE id % 3 = 0');
$node->safe_psql('postgres', 'VACUUM items');
recall_ok($node, 'after deleting a third and VACUUM');
consistent($node, 'after VACUUM');
is($node->safe_psql('postgres', q{SET enable_seqscan = off;
SELECT count(*) FROM (SELECT id FROM items ORDER BY e <=> (SELECT e FROM queries LIMIT 1) LIMIT 1000) s WHERE id % 3 = 0}),
	0, 'deleted rows never come back');

# A streaming replica.
$node->backup('b1');
my $standby = PostgreSQL::Test::Cluster->new('standby');
$standby->init_from_backup($node, 'b1', has_streaming => 1);
$standby->start;

# Crash in the middle of inserts: one transaction per 50 rows, backend killed with SIGKILL.
$node->safe_psql('postgres', q{
CREATE PROCEDURE insert_more() LANGUAGE plpgsql AS $$
BEGIN
  FOR b IN 0..99 LOOP
    INSERT INTO items SELECT * FROM gen(20001 + b * 50, 20000 + (b + 1) * 50);
    COMMIT;
  END LOOP;
END $$;});
my ($out, $err) = ('', '');
my $h = IPC::Run::start(
	[ 'psql', '-X', '-d', $node->connstr('postgres'), '-c', 'CALL insert_more()' ],
	'>', \$out, '2>', \$err);
$node->poll_query_until('postgres', 'SELECT count(*) > 500 FROM items WHERE id > 20000')
  or die 'inserts did not start';
my $pid = $node->safe_psql('postgres',
	"SELECT pid FROM pg_stat_activity WHERE query LIKE 'CALL insert_more%'");
ok($pid =~ /^\d+$/, 'found the inserting backend');
kill 'KILL', $pid;
$h->finish;
$node->poll_query_until('postgres', 'SELECT true') or die 'no recovery';
like(slurp_file($node->logfile), qr/terminated by signal 9/, 'the backend was killed');
my $after = $node->safe_psql('postgres', 'SELECT count(*) FROM items WHERE id > 20000');
cmp_ok($after, '<', 5000, "the crash interrupted the inserts ($after rows of 5000 committed)");
recall_ok($node, 'after crash recovery');
consistent($node, 'after crash recovery');
$node->safe_psql('postgres', 'INSERT INTO items SELECT * FROM gen(30001, 30500); VACUUM items');
recall_ok($node, 'after more inserts and VACUUM following the crash');

# The replica returns the same rows in the same order.
$node->wait_for_catchup($standby);
my $q = q{SET enable_seqscan = off;
SELECT string_agg(ids, ';' ORDER BY qid) FROM (SELECT qid, (SELECT string_agg(id::text, ',')
  FROM (SELECT id FROM items ORDER BY e <=> q.e LIMIT 10) s) ids FROM queries q) x};
my $p = $node->safe_psql('postgres', $q);
my $s = $standby->safe_psql('postgres', $q);
ok(length($p) > 100, 'primary answers');
is($s, $p, 'the streaming replica returns the same results');
like($standby->safe_psql('postgres', "SET enable_seqscan = off; EXPLAIN (COSTS OFF) SELECT id FROM items ORDER BY e <=> (SELECT e FROM queries LIMIT 1) LIMIT 10"),
	qr/Index Scan using items_e/, 'the replica uses the index');

$standby->stop;
$node->stop;
done_testing();
