# Scale-out (docs/scale-out.md): a coordinator and two shard servers, each with lookalike; on the
# coordinator a table hash-partitioned by id whose two partitions are postgres_fdw foreign tables
# on the shards, 20,000 clustered 32-d vectors loaded through the parent, and a plain local copy.
#  - every operator, k = 1, 5, 50, with and without WHERE, the query as a literal and as a
#    prepared statement's $1 (generic plan): the same distances in the same order as the copy;
#  - EXPLAIN VERBOSE: ORDER BY ... LIMIT k in each Remote SQL, async foreign scans;
#  - an inline STABLE function as the query: computed once per query, on the coordinator;
#  - lookalike_hnsw on the shards: recall@10 >= single-node recall - 0.02; the coordinator's
#    lookalike.ef_search / max_scan_tuples are what the shards use;
#  - rows inserted through the parent are found, also before commit in the same transaction;
#  - lookalike.shard_fanout (default): one remote statement per shard, all shards at once (each
#    shard's table locked: both shards wait at the same time), a cancel ends it on the shards,
#    two partitions on one server; off: postgres_fdw's own foreign scans, same answers;
#  - one session, one transaction per statement: same answers, the remote isolation level;
#  - a stopped shard gives an error, not a hang (also in a session that had used it: the
#    error, then answers again once it is back; a restarted shard: answered on a new connection).
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);

my $t0;

my $DIMS = 32;
my @shards;
for my $i (1, 2) {
	my $s = PostgreSQL::Test::Cluster->new("shard$i");
	$s->init;
	# No session_preload_libraries on the shards: the shipped with_search_settings() call loads
	# lookalike there before it sets the settings.
	$s->append_conf('postgresql.conf', "max_parallel_workers_per_gather = 0\n");
	$s->start;
	$s->safe_psql('postgres', qq{
CREATE EXTENSION lookalike;
CREATE TABLE items (id int PRIMARY KEY, cat int, e embedding($DIMS));
-- What this shard's session has for the search settings (read through a foreign table).
CREATE VIEW shard_settings AS
  SELECT coalesce(current_setting('lookalike.ef_search', true), 'unset') AS ef_search,
         coalesce(current_setting('lookalike.max_scan_tuples', true), 'unset') AS max_scan_tuples;
-- The isolation level of this shard session's (remote) transaction.
CREATE VIEW shard_xact AS SELECT current_setting('transaction_isolation') AS iso;
-- The top-k statements prepared in this shard session, and how often each kind of plan ran.
CREATE VIEW shard_prepared AS
  SELECT count(*)::int AS n, coalesce(sum(generic_plans), 0)::int AS generic,
         coalesce(sum(custom_plans), 0)::int AS custom
  FROM pg_prepared_statements WHERE name LIKE 'lookalike_topk_%';
-- DEALLOCATE ALL in this shard session (as a pooler's DISCARD ALL would do between sessions).
CREATE FUNCTION deallocate_all() RETURNS int LANGUAGE plpgsql AS \$\$ BEGIN DEALLOCATE ALL; RETURN 1; END \$\$;
CREATE VIEW shard_deallocate AS SELECT deallocate_all() AS done;});
	push @shards, $s;
}
my $node = PostgreSQL::Test::Cluster->new('coordinator');
$node->init;
# lookalike loaded before the first query is planned (its planner hook computes the query once
# and ships the search settings).
$node->append_conf('postgresql.conf',
	"session_preload_libraries = 'lookalike'\nmax_parallel_workers_per_gather = 0\n");
$node->start;
my $servers = '';
for my $i (1, 2) {
	my ($h, $p) = ($shards[$i - 1]->host, $shards[$i - 1]->port);
	$servers .= qq{
CREATE SERVER shard$i FOREIGN DATA WRAPPER postgres_fdw OPTIONS (host '$h', port '$p',
  dbname 'postgres', extensions 'lookalike', async_capable 'true', parallel_commit 'true', batch_size '1000',
  connect_timeout '5');
CREATE USER MAPPING FOR CURRENT_USER SERVER shard$i;
CREATE FOREIGN TABLE shard${i}_settings (ef_search text, max_scan_tuples text)
  SERVER shard$i OPTIONS (table_name 'shard_settings');
CREATE FOREIGN TABLE shard${i}_xact (iso text) SERVER shard$i OPTIONS (table_name 'shard_xact');
CREATE FOREIGN TABLE shard${i}_prepared (n int, generic int, custom int) SERVER shard$i OPTIONS (table_name 'shard_prepared');
CREATE FOREIGN TABLE shard${i}_deallocate (done int) SERVER shard$i OPTIONS (table_name 'shard_deallocate');};
}
$node->safe_psql('postgres', qq{
CREATE EXTENSION lookalike;
CREATE EXTENSION postgres_fdw;
$servers
CREATE TABLE items (id int, cat int, e embedding($DIMS)) PARTITION BY HASH (id);
CREATE FOREIGN TABLE items_0 PARTITION OF items FOR VALUES WITH (MODULUS 2, REMAINDER 0)
  SERVER shard1 OPTIONS (table_name 'items');
CREATE FOREIGN TABLE items_1 PARTITION OF items FOR VALUES WITH (MODULUS 2, REMAINDER 1)
  SERVER shard2 OPTIONS (table_name 'items');
SELECT setseed(0.17);
CREATE TABLE centres AS
  SELECT c, array_agg(sqrt(-2 * ln(1 - random())) * cos(2 * pi() * random()) ORDER BY j) AS v
  FROM generate_series(1, 50) c, generate_series(1, $DIMS) j GROUP BY c;
CREATE FUNCTION gen(lo int, hi int) RETURNS TABLE (id int, cat int, e embedding) LANGUAGE sql AS \$\$
  SELECT i, i % 20, l2_normalize(array_agg(cv.v[j] + 0.8 * sqrt(-2 * ln(1 - random()))
                                 * cos(2 * pi() * random()) ORDER BY j)::real[]::embedding)
  FROM generate_series(lo, hi) i JOIN centres cv ON cv.c = 1 + (i::bigint * 7919) % 50,
       generate_series(1, $DIMS) j
  GROUP BY i \$\$;
CREATE TABLE flat (id int PRIMARY KEY, cat int, e embedding($DIMS));
INSERT INTO flat SELECT * FROM gen(1, 20000);
INSERT INTO items SELECT * FROM flat;
CREATE TABLE queries AS SELECT id AS qid, e FROM gen(1000001, 1000020);
ANALYZE flat, queries;});
$_->safe_psql('postgres', 'ANALYZE items') for @shards;
my @per_shard = map { $_->safe_psql('postgres', 'SELECT count(*) FROM items') } @shards;
is($per_shard[0] + $per_shard[1], 20000, "20,000 rows loaded through the parent, on both shards (@per_shard)");
cmp_ok($per_shard[0] * $per_shard[1], '>', 0, 'each shard has rows');

# 1. The same distances in the same order as the local copy (exact top-k scan on the shards).
$node->safe_psql('postgres', q{
CREATE FUNCTION dists(tbl text, q embedding, op text, k int, flt text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE r text;
BEGIN
  EXECUTE format('SELECT array_agg(d)::text FROM (SELECT e %s %L::embedding AS d FROM %s WHERE %s ORDER BY e %s %L::embedding LIMIT %s) s',
                 op, q, tbl, flt, op, q, k) INTO r;
  RETURN r;
END $$;});
my $literal = $node->safe_psql('postgres', q{
SELECT count(*) || ' ' || count(*) FILTER (WHERE dists('items', q.e, op, k, flt) = dists('flat', q.e, op, k, flt))
FROM queries q, (VALUES ('<=>'), ('<->'), ('<#>')) o(op), (VALUES (1), (5), (50)) kk(k),
     (VALUES ('true'), ('cat = 3'), ('id % 7 <> 3 AND cat <> 5')) f(flt) WHERE q.qid <= 1000006});
my ($n, $same) = split ' ', $literal;
is($same, $n, "literal query vector: $same of $n queries (3 operators x k 1, 5, 50 x 3 WHERE clauses x 6 queries) identical to the local copy");
# Ids too, where no two distances are equal.
is($node->safe_psql('postgres', q{
SELECT bool_and(a = b) FROM queries q,
  LATERAL (SELECT array_agg(id) a FROM (SELECT id FROM items ORDER BY e <-> q.e LIMIT 10) s) x,
  LATERAL (SELECT array_agg(id) b FROM (SELECT id FROM flat ORDER BY e <-> q.e LIMIT 10) s) y}),
	't', 'the same ids, in order, for 20 queries (l2, k = 10, correlated sub-query)');

# One session, one transaction per statement (postgres_fdw keeps its connections idle between
# transactions and begins a remote transaction on each shard for each): the same ids as the
# local copy, statement by statement, and the remote transaction's isolation level
# (SERIALIZABLE with the coordinator's, else REPEATABLE READ).
my $same_ids = sub {
	my $q = "(SELECT e FROM queries WHERE qid = $_[0])";
	return qq{SELECT (SELECT array_agg(id) FROM (SELECT id FROM items ORDER BY e <-> $q LIMIT 10) s)
  = (SELECT array_agg(id) FROM (SELECT id FROM flat ORDER BY e <-> $q LIMIT 10) s);\n};
};
my $topk5 = 'SELECT count(*) FROM (SELECT id FROM items ORDER BY e <=> (SELECT e FROM queries WHERE qid = 1000001) LIMIT 5) s';
is($node->safe_psql('postgres', join('', map { $same_ids->($_) } 1000001 .. 1000010) . qq{
BEGIN ISOLATION LEVEL SERIALIZABLE; $topk5; SELECT iso FROM shard2_xact; COMMIT;
BEGIN; $topk5; SELECT iso FROM shard2_xact; COMMIT;}),
	join("\n", ('t') x 10, 5, 'serializable', 5, 'repeatable read'),
	"one session, 12 transactions: the same ids as the local copy; the shard's remote transaction SERIALIZABLE, then REPEATABLE READ");

# The same with lookalike.shard_fanout = off (postgres_fdw's own foreign scans with the LIMIT).
my $fdw_literal = $node->safe_psql('postgres', q{
SET lookalike.shard_fanout = off;
SELECT count(*) || ' ' || count(*) FILTER (WHERE dists('items', q.e, op, k, flt) = dists('flat', q.e, op, k, flt))
FROM queries q, (VALUES ('<=>'), ('<->'), ('<#>')) o(op), (VALUES (1), (50)) kk(k),
     (VALUES ('true'), ('cat = 3')) f(flt) WHERE q.qid <= 1000003});
($n, $same) = split ' ', $fdw_literal;
is($same, $n, "shard_fanout off: $same of $n queries identical to the local copy");

# Prepared statements, generic plan: the query vector is $1, shipped as a remote parameter.
my $prepared_ok = 0;
my $prepared_n = 0;
for my $op ('<=>', '<->', '<#>') {
	for my $k (1, 5, 50) {
		for my $flt ('true', 'cat = 3') {
			my $r = $node->safe_psql('postgres', qq{
SET plan_cache_mode = force_generic_plan;
PREPARE a(embedding) AS SELECT array_agg(d)::text FROM (SELECT e $op \$1 AS d FROM items WHERE $flt ORDER BY e $op \$1 LIMIT $k) s;
PREPARE b(embedding) AS SELECT array_agg(d)::text FROM (SELECT e $op \$1 AS d FROM flat WHERE $flt ORDER BY e $op \$1 LIMIT $k) s;
CREATE TEMP TABLE r AS SELECT 0 AS qid, ''::text AS a, ''::text AS b LIMIT 0;
DO \$\$ DECLARE q record; x text; y text; BEGIN
  FOR q IN SELECT qid, e FROM queries WHERE qid <= 1000004 LOOP
    EXECUTE 'EXECUTE a(' || quote_literal(q.e::text) || ')' INTO x;
    EXECUTE 'EXECUTE b(' || quote_literal(q.e::text) || ')' INTO y;
    INSERT INTO r VALUES (q.qid, x, y);
  END LOOP; END \$\$;
SELECT count(*) || ' ' || count(*) FILTER (WHERE a = b) FROM r;});
			my ($c, $s) = split ' ', $r;
			$prepared_n += $c;
			$prepared_ok += $s;
		}
	}
}
is($prepared_ok, $prepared_n, "prepared \$1 (generic plan): $prepared_ok of $prepared_n queries identical to the local copy");
my $generic = $node->safe_psql('postgres', q{
SET plan_cache_mode = force_generic_plan;
PREPARE a(embedding) AS SELECT id FROM items ORDER BY e <=> $1 LIMIT 5;
EXPLAIN (VERBOSE, COSTS OFF) EXECUTE a('[1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31,32]')});
is(scalar(() = $generic =~ /Remote SQL: SELECT .* ORDER BY .*\$1::public\.embedding.* LIMIT 5::bigint/g), 2,
	'generic plan: the parameter and LIMIT 5 in both Remote SQL');

# OFFSET, and a WHERE clause the shards cannot evaluate (to_char is not immutable): each shard's
# ordered rows under a local Limit instead, the same answer.
for my $tail ("WHERE to_char(id, '99999') LIKE '%7%' ORDER BY e <-> q.e LIMIT 10", 'ORDER BY e <=> q.e LIMIT 5 OFFSET 3') {
	is($node->safe_psql('postgres', qq{
SELECT bool_and(a = b) FROM queries q,
  LATERAL (SELECT array_agg(id) a FROM (SELECT id FROM items $tail) s) x,
  LATERAL (SELECT array_agg(id) b FROM (SELECT id FROM flat $tail) s) y WHERE q.qid <= 1000005}),
		't', "the same ids as the local copy: ... $tail");
}

# 2. The plan: ORDER BY ... LIMIT k in each Remote SQL, the scans asynchronous.
for my $op ('<=>', '<->', '<#>') {
	for my $k (1, 50) {
		my $plan = $node->safe_psql('postgres',
			"EXPLAIN (VERBOSE, COSTS OFF) SELECT id FROM items WHERE cat = 3 ORDER BY e $op (SELECT e FROM queries WHERE qid = 1000001) LIMIT $k");
		my @remote = $plan =~ /Remote SQL: ([^\n]*)/g;
		is(scalar(grep { /WHERE \(\(cat = 3\)\) ORDER BY \(e OPERATOR\(public\.\Q$op\E\).* ASC NULLS LAST LIMIT ${k}::bigint$/ } @remote), 2,
			"$op, k = $k: WHERE, ORDER BY and LIMIT $k in both Remote SQL");
		is(scalar(() = $plan =~ /Custom Scan \(lookalike remote top-k\)/g), 2,
			"$op, k = $k: one remote top-k statement per shard")
		  if $k == 1;
	}
}
my $fdw_plan = $node->safe_psql('postgres',
	"SET lookalike.shard_fanout = off; EXPLAIN (VERBOSE, COSTS OFF) SELECT id FROM items ORDER BY e <=> (SELECT e FROM queries WHERE qid = 1000001) LIMIT 5");
ok(scalar(() = $fdw_plan =~ /Async Foreign Scan/g) == 2 && scalar(() = $fdw_plan =~ /Remote SQL: .* LIMIT 5::bigint/g) == 2,
	'shard_fanout off: two asynchronous foreign scans, LIMIT 5 in each Remote SQL');
# OFFSET: each shard is asked for LIMIT + OFFSET rows, the OFFSET is applied after the merge.
my $offset_plan = $node->safe_psql('postgres',
	"EXPLAIN (VERBOSE, COSTS OFF) SELECT id FROM items ORDER BY e <=> (SELECT e FROM queries WHERE qid = 1000001) LIMIT 5 OFFSET 3");
is(scalar(() = $offset_plan =~ /Remote SQL: .* LIMIT 8::bigint$/mg), 2, 'LIMIT 5 OFFSET 3: LIMIT 8 in both Remote SQL');
# A correlated query vector (LATERAL): a parameter per outer row, the settings shipped with it.
like($node->safe_psql('postgres',
		'EXPLAIN (VERBOSE, COSTS OFF) SELECT x.id FROM queries q, LATERAL (SELECT id FROM items ORDER BY e <=> q.e LIMIT 5) x'),
	qr/Remote SQL: .*with_search_settings\(\$1::public\.embedding, \$2::integer, \$3::integer\).* LIMIT 5::bigint/,
	'a correlated query vector (LATERAL): shipped as a parameter, with the search settings');
# Without the setting: PostgreSQL's plan, no LIMIT sent to the shards.
my $off = $node->safe_psql('postgres',
	"SET lookalike.partition_topk = off; EXPLAIN (VERBOSE, COSTS OFF) SELECT id FROM items ORDER BY e <=> (SELECT e FROM queries WHERE qid = 1000001) LIMIT 5");
ok($off !~ /LIMIT 5::bigint/ && $off =~ /Merge Append/, 'lookalike.partition_topk = off: Merge Append, no remote LIMIT');

# 3. An inline STABLE function as the query: one call per query, on the coordinator.
$node->safe_psql('postgres', q{
CREATE FUNCTION query_of(i int) RETURNS embedding STABLE LANGUAGE plpgsql AS $$
BEGIN
  RAISE NOTICE 'query_of called';
  RETURN (SELECT e FROM queries WHERE qid = i);
END $$;});
my ($ret, $out, $err) = $node->psql('postgres',
	'SELECT array_agg(id)::text FROM (SELECT id FROM items ORDER BY e <=> query_of(1000002) LIMIT 5) s');
my $calls = () = $err =~ /query_of called/g;
is($calls, 1, 'inline STABLE function: computed once per query');
is($out, $node->safe_psql('postgres',
		'SELECT array_agg(id)::text FROM (SELECT id FROM flat ORDER BY e <=> (SELECT e FROM queries WHERE qid = 1000002) LIMIT 5) s'),
	'inline STABLE function: the same rows as the local copy');
like($node->safe_psql('postgres', 'EXPLAIN (VERBOSE, COSTS OFF) SELECT id FROM items ORDER BY e <=> query_of(1000002) LIMIT 5'),
	qr/InitPlan 1.*Output: query_of\(1000002\).*Remote SQL: .*LIMIT 5::bigint/s, 'inline function: an initplan, LIMIT shipped');

# 4. lookalike_hnsw on the shards (and on a single-node copy, the reference).
$_->safe_psql('postgres', 'CREATE INDEX ON items USING lookalike_hnsw (e embedding_cosine_ops) WITH (m = 16, ef_construction = 64); ANALYZE items')
  for @shards;
$node->safe_psql('postgres', q{
CREATE TABLE single AS SELECT * FROM flat;
CREATE INDEX ON single USING lookalike_hnsw (e embedding_cosine_ops) WITH (m = 16, ef_construction = 64);
ANALYZE single;
CREATE FUNCTION recall(tbl text, k int) RETURNS float8 LANGUAGE plpgsql AS $$
DECLARE hits int := 0; n int := 0; q record; a int[]; b int[];
BEGIN
  FOR q IN SELECT qid, e FROM queries ORDER BY qid LOOP
    EXECUTE format('SELECT array_agg(id) FROM (SELECT id FROM %s ORDER BY e <=> %L::embedding LIMIT %s) s', tbl, q.e, k) INTO a;
    EXECUTE format('SELECT array_agg(id) FROM (SELECT id FROM flat ORDER BY e <=> %L::embedding LIMIT %s) s', q.e, k) INTO b;
    hits := hits + (SELECT count(*) FROM unnest(a) x WHERE x = ANY (b));
    n := n + k;
  END LOOP;
  RETURN hits::float8 / n;
END $$;});
# Index scans on the shards whatever the cost model prefers (sessions of postgres_fdw included).
$_->safe_psql('postgres', 'ALTER DATABASE postgres SET enable_seqscan = off') for @shards;
my $idx_before = $shards[0]->safe_psql('postgres', 'SELECT sum(idx_scan) FROM pg_stat_user_indexes WHERE indexrelname LIKE \'%_e_idx\'');
my $single = $node->safe_psql('postgres', 'SET enable_seqscan = off; SET lookalike.ef_search = 20; SELECT recall(\'single\', 10)');
my $sharded = $node->safe_psql('postgres', 'SET lookalike.ef_search = 20; SELECT recall(\'items\', 10)');
cmp_ok($sharded, '>=', $single - 0.02, "recall\@10 at ef_search 20: 2 shards $sharded >= single node $single - 0.02");
ok($shards[0]->poll_query_until('postgres',
		"SELECT sum(idx_scan) >= $idx_before + 20 FROM pg_stat_user_indexes WHERE indexrelname LIKE '%_e_idx'"),
	'the shards answered with their index (index scans counted on shard 1)');

# The coordinator's settings, as the shard's session sees them during the query.
is($node->safe_psql('postgres', 'SELECT ef_search || \' \' || max_scan_tuples FROM shard1_settings'),
	'unset unset', 'a new shard session before any top-k query: lookalike not loaded there (no preload needed)');
is($node->safe_psql('postgres', q{
BEGIN;
SET LOCAL lookalike.ef_search = 77;
SET LOCAL lookalike.max_scan_tuples = 1234;
SELECT count(*) FROM (SELECT id FROM items ORDER BY e <=> (SELECT e FROM queries WHERE qid = 1000003) LIMIT 5) s;
SELECT ef_search || ' ' || max_scan_tuples FROM shard1_settings;
SELECT ef_search || ' ' || max_scan_tuples FROM shard2_settings;
COMMIT;}), "5\n77 1234\n77 1234", 'a top-k query sets the coordinator\'s ef_search and max_scan_tuples on both shards');
is($node->safe_psql('postgres', q{
BEGIN;
SET LOCAL lookalike.shard_fanout = off;
SET LOCAL lookalike.ef_search = 55;
SET LOCAL lookalike.max_scan_tuples = 4321;
SELECT count(*) FROM (SELECT id FROM items ORDER BY e <=> (SELECT e FROM queries WHERE qid = 1000003) LIMIT 5) s;
SELECT ef_search || ' ' || max_scan_tuples FROM shard2_settings;
COMMIT;}), "5\n55 4321", 'with shard_fanout off too (postgres_fdw\'s cursors)');
# And they change what the shards do: max_scan_tuples bounds how many index elements a shard
# visits, so a filter keeping 1 row in 20 cannot fill LIMIT 10 from 5 elements per shard.
my $bounded = $node->safe_psql('postgres',
	'SET lookalike.max_scan_tuples = 5; SELECT count(*) FROM (SELECT id FROM items WHERE cat = 3 ORDER BY e <=> (SELECT e FROM queries WHERE qid = 1000004) LIMIT 10) s');
my $unbounded = $node->safe_psql('postgres',
	'SELECT count(*) FROM (SELECT id FROM items WHERE cat = 3 ORDER BY e <=> (SELECT e FROM queries WHERE qid = 1000004) LIMIT 10) s');
cmp_ok($bounded, '<', 10, "max_scan_tuples = 5 on the coordinator: the shards stop early ($bounded rows)");
is($unbounded, 10, 'default max_scan_tuples: 10 rows');
my $low = $node->safe_psql('postgres', 'SET lookalike.ef_search = 1; SELECT recall(\'items\', 10)');
my $high = $node->safe_psql('postgres', 'SET lookalike.ef_search = 200; SELECT recall(\'items\', 10)');
cmp_ok($high, '>', $low, "ef_search set on the coordinator changes the shards' search: ef_search 200 finds more than ef_search 1 (recall $high vs $low)");

# Prepared statements on the shards (lookalike.shard_prepare, the default): a remote top-k text
# that recurs on a connection is prepared there once and then only executed; after the shard's
# five custom plans it runs a generic plan, and the coordinator's settings still reach the shard
# with every query (they are parameters of each execution).
my $topk_q = sub { "SELECT count(*) FROM (SELECT id FROM items ORDER BY e <=> (SELECT e FROM queries WHERE qid = $_[0]) LIMIT 5) s;\n" };
my $prep_session = $node->background_psql('postgres', on_error_stop => 0);
is($prep_session->query_safe(join('', map { $topk_q->($_) } 1000001 .. 1000009)
		. 'SELECT n || \' \' || (generic > 0) || \' \' || (generic + custom) FROM shard1_prepared'),
	join("\n", ('5') x 9, '1 true 8'),
	'9 queries in a session: one statement prepared on the shard (at the second), run 8 times, generic plans among them');
is($prep_session->query_safe(q{
BEGIN;
SET LOCAL lookalike.ef_search = 66;
SET LOCAL lookalike.max_scan_tuples = 4444;
} . $topk_q->(1000010) . q{
SELECT ef_search || ' ' || max_scan_tuples FROM shard1_settings;
SELECT ef_search || ' ' || max_scan_tuples FROM shard2_settings;
SELECT n || ' ' || (generic + custom) FROM shard1_prepared;
COMMIT;}), "5\n66 4444\n66 4444\n1 9", 'the settings reach both shards through the prepared statement (generic plan)');
my $bounded_prepared = $prep_session->query_safe(
	'SET lookalike.max_scan_tuples = 5; SELECT count(*) FROM (SELECT id FROM items WHERE cat = 3 ORDER BY e <=> (SELECT e FROM queries WHERE qid = 1000004) LIMIT 10) s;' x 7
	. 'RESET lookalike.max_scan_tuples; SELECT count(*) FROM (SELECT id FROM items WHERE cat = 3 ORDER BY e <=> (SELECT e FROM queries WHERE qid = 1000004) LIMIT 10) s;');
my @bp = split /\n/, $bounded_prepared;
ok($bp[6] < 10 && $bp[7] == 10, "max_scan_tuples 5, then the default, through a generic plan: $bp[6] rows, then $bp[7]");
# The same answers as the local copy through the prepared statements (generic plans).
is($prep_session->query_safe(join('', map { $same_ids->($_) } 1000001 .. 1000020)), join("\n", ('t') x 20),
	'20 queries through the prepared statements: the same ids as the local copy');
# DISCARD ALL on the coordinator: postgres_fdw's connections (and what is prepared there) stay.
is($prep_session->query_safe("DISCARD ALL; $topk5; SELECT n FROM shard1_prepared"), "5\n3",
	'DISCARD ALL on the coordinator: same answer, the shard connection keeps its statements');
# A new connection (postgres_fdw_disconnect_all): nothing prepared there; prepared again when the
# text recurs.
is($prep_session->query_safe("SELECT postgres_fdw_disconnect_all(); $topk5; SELECT n FROM shard1_prepared; $topk5; SELECT n FROM shard1_prepared"),
	"t\n5\n0\n5\n1", 'a new shard connection: nothing prepared there, then prepared again');
# The shard's session loses its statements (DEALLOCATE ALL there, as a pooler's DISCARD ALL):
# one clear error, then prepared again.
$prep_session->query_safe('SELECT done FROM shard1_deallocate');
my ($dealloc_out, $dealloc_failed) = $prep_session->query($topk5);
ok($dealloc_failed && $prep_session->{stderr} =~ /the remote top-k statement prepared on server "shard1" no longer exists there/,
	'statements deallocated on the shard: the next query fails with a clear error');
$prep_session->{stderr} = '';
is($prep_session->query_safe("$topk5; $topk5; $topk5; SELECT n FROM shard1_prepared"), "5\n5\n5\n1",
	'and the following queries answer, prepared again');
# lookalike.shard_prepare = off: unnamed statements, same answers.
is($prep_session->query_safe("SET lookalike.shard_prepare = off; SELECT postgres_fdw_disconnect_all(); "
		. join('', map { $same_ids->($_) } 1000001 .. 1000004) . 'SELECT n FROM shard1_prepared'),
	join("\n", 't', ('t') x 4, 0), 'lookalike.shard_prepare = off: the same ids, nothing prepared on the shard');
$prep_session->quit;

# 5. Rows inserted through the parent are found.
$node->safe_psql('postgres', qq{
INSERT INTO items SELECT 900000, 0, e FROM queries WHERE qid = 1000005;
INSERT INTO flat SELECT 900000, 0, e FROM queries WHERE qid = 1000005;});
is($node->safe_psql('postgres', 'SELECT id FROM items ORDER BY e <=> (SELECT e FROM queries WHERE qid = 1000005) LIMIT 1'),
	'900000', 'a row inserted through the parent is found (index on its shard)');

# In the same transaction, before commit: the remote statement runs in postgres_fdw's remote
# transaction, which holds the row.
is($node->safe_psql('postgres', q{
BEGIN;
INSERT INTO items SELECT 900001, 0, e FROM queries WHERE qid = 1000006;
SELECT id FROM items ORDER BY e <=> (SELECT e FROM queries WHERE qid = 1000006) LIMIT 1;
ROLLBACK;}), '900001', 'a row inserted through the parent is found before commit, in the same transaction');

# Two partitions on one server (one connection: their statements go one after the other), the
# query vector a correlated sub-query's parameter (a rescan per query).
$shards[0]->safe_psql('postgres', q{
CREATE VIEW items_even AS SELECT * FROM items WHERE id % 2 = 0;
CREATE VIEW items_odd AS SELECT * FROM items WHERE id % 2 = 1;});
$node->safe_psql('postgres', qq{
CREATE TABLE pair (id int, cat int, e embedding($DIMS)) PARTITION BY LIST ((id % 2));
CREATE FOREIGN TABLE pair_even PARTITION OF pair FOR VALUES IN (0) SERVER shard1 OPTIONS (table_name 'items_even');
CREATE FOREIGN TABLE pair_odd PARTITION OF pair FOR VALUES IN (1) SERVER shard1 OPTIONS (table_name 'items_odd');});
is(scalar(() = $node->safe_psql('postgres',
	'EXPLAIN (COSTS OFF) SELECT id FROM pair ORDER BY e <-> (SELECT e FROM queries WHERE qid = 1000001) LIMIT 10') =~ /lookalike remote top-k/g),
	2, 'two partitions on one server: two remote top-k scans');
is($node->safe_psql('postgres', q{
SELECT bool_and(a = b) FROM queries q,
  LATERAL (SELECT array_agg(id) a FROM (SELECT id FROM pair ORDER BY e <-> q.e LIMIT 10) s) x,
  LATERAL (SELECT array_agg(id) b FROM (SELECT id FROM items_0 ORDER BY e <-> q.e LIMIT 10) s) y}),
	't', 'two partitions on one server, correlated query vector: the same ids as the whole shard');

# Result columns whose type on the shard differs from the coordinator's (bigint and text for the
# shard's integers): read as text, which converts them, also once the statement is prepared
# (binary results only where the shard's type is the coordinator's).
$node->safe_psql('postgres', qq{
CREATE TABLE widened (id bigint, cat text, e embedding($DIMS)) PARTITION BY LIST (cat);
CREATE FOREIGN TABLE widened_all PARTITION OF widened DEFAULT SERVER shard1 OPTIONS (table_name 'items');});
like($node->safe_psql('postgres', 'EXPLAIN (COSTS OFF) SELECT id FROM widened ORDER BY e <-> (SELECT e FROM queries WHERE qid = 1000001) LIMIT 10'),
	qr/lookalike remote top-k/, 'a foreign partition with other column types: the one-statement scan');
is($node->safe_psql('postgres', q{
SELECT bool_and(a = b) FROM queries q,
  LATERAL (SELECT array_agg(id || ':' || cat) a FROM (SELECT id, cat FROM widened ORDER BY e <-> q.e LIMIT 10) s) x,
  LATERAL (SELECT array_agg(id || ':' || cat) b FROM (SELECT id, cat FROM items_0 ORDER BY e <-> q.e LIMIT 10) s) y}),
	't', 'columns of other types on the shard (bigint, text): the same rows, 20 queries, prepared');

# Two partitioned tables over the same shard table, one with the shard's column types and one with
# others: the same remote text, hence the same prepared statement; binary results for the first,
# text for the second, alternating in one session.
$node->safe_psql('postgres', qq{
CREATE TABLE narrow (id int, cat int, e embedding($DIMS)) PARTITION BY LIST (cat);
CREATE FOREIGN TABLE narrow_all PARTITION OF narrow DEFAULT SERVER shard1 OPTIONS (table_name 'items');});
my $remote_of = sub {
	my ($plan) = $node->safe_psql('postgres', "EXPLAIN (VERBOSE, COSTS OFF) SELECT id, cat FROM $_[0] ORDER BY e <-> (SELECT e FROM queries WHERE qid = 1000001) LIMIT 10") =~ /Remote SQL: (.*)$/m;
	return $plan;
};
is($remote_of->('narrow'), $remote_of->('widened'), 'narrow and widened: one remote text');
my @alternating = split /\n/, $node->safe_psql('postgres', join('', map {
	my $t = ($_ >= 2 && $_ % 2) ? 'widened' : 'narrow';  # binary decided by narrow first
	"SELECT array_agg(id || ':' || cat) FROM (SELECT id, cat FROM $t ORDER BY e <-> (SELECT e FROM queries WHERE qid = 1000001) LIMIT 10) s;\n" } 0 .. 9));
is(scalar(grep { $_ eq $alternating[0] } @alternating) . ' ' . scalar(@alternating), '10 10',
	'narrow and widened alternating in a session, 10 queries: the same rows');

# NULL and the zero vector (NaN under cosine) on the shards, through the prepared statements
# (binary results from a text's third execution on, the literal query vector a parameter):
# numbers, then NaN, then NULL, as on the local copy.
my $zero = '[' . join(',', (0) x $DIMS) . ']';
$node->safe_psql('postgres', qq{
INSERT INTO items VALUES (30001, 1, NULL), (30002, 1, NULL), (30003, 1, '$zero'), (30004, 1, '$zero');
INSERT INTO flat SELECT * FROM items WHERE id BETWEEN 30001 AND 30004;});
my $special = sub {
	my $q = "(SELECT e FROM queries WHERE qid = $_[1])";
	return "dists('$_[0]', $q, '<=>', 8, 'id < 5 OR id BETWEEN 30001 AND 30004')";
};
is($node->safe_psql('postgres', join('', map { "SELECT " . $special->('items', $_) . ' = ' . $special->('flat', $_) . ";\n" } 1000001 .. 1000006)
		. 'SELECT ' . $special->('items', 1000001)),
	join("\n", ('t') x 6) . "\n" . $node->safe_psql('postgres', 'SELECT ' . $special->('flat', 1000001)),
	'NULL and NaN distances through prepared statements: the same as the local copy, 6 queries');
like($node->safe_psql('postgres', 'SELECT ' . $special->('items', 1000002)), qr/,NaN,NaN,NULL,NULL\}$/,
	'numbers, then NaN, then NULL');
$node->safe_psql('postgres', 'DELETE FROM items WHERE id BETWEEN 30001 AND 30004; DELETE FROM flat WHERE id BETWEEN 30001 AND 30004');

# All shards at once, and a cancel. Each shard's table is locked by another session: the top-k
# statement then waits on both shards at the same time (with postgres_fdw's cursors the second
# shard is reached only when the first has answered). pg_cancel_backend on the coordinator ends
# the query and the statements still waiting on the shards.
# The session has queried the shards before (its connections are open and idle).
my $topk = $node->background_psql('postgres', on_error_stop => 0);
$topk->query_safe($topk5);
my @lockers = map { $_->background_psql('postgres') } @shards;
$_->query_safe('BEGIN; LOCK TABLE items IN ACCESS EXCLUSIVE MODE') for @lockers;
$topk->query_until(qr/started/, q{\echo started
SELECT count(*) FROM (SELECT id FROM items ORDER BY e <=> (SELECT e FROM queries WHERE qid = 1000001) LIMIT 5) s;
});
my $waiting = q{SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE '%LIMIT 5::bigint%'};
sub within {  # ($seconds, $code): polls $code every 50 ms until it returns true, for at most $seconds
	my ($seconds, $code) = @_;
	my $until = time + $seconds;
	while (time < $until) { return 1 if $code->(); select(undef, undef, undef, 0.05); }
	return 0;
}
ok(within(20, sub { $shards[0]->safe_psql('postgres', $waiting) eq '1' && $shards[1]->safe_psql('postgres', $waiting) eq '1' }),
	'both shards run their top-k statement at the same time');
my $qpid = $node->safe_psql('postgres',
	q{SELECT pid FROM pg_stat_activity WHERE query LIKE 'SELECT count(*) FROM (SELECT id FROM items%' AND state = 'active'});
$t0 = time;
$node->safe_psql('postgres', "SELECT pg_cancel_backend($qpid)");
ok(within(10, sub { $node->safe_psql('postgres', "SELECT state FROM pg_stat_activity WHERE pid = $qpid") eq 'idle' }),
	sprintf('cancel: the coordinator query ends (%.1f s)', time - $t0));
ok(within(10, sub { $shards[0]->safe_psql('postgres', $waiting) eq '0' && $shards[1]->safe_psql('postgres', $waiting) eq '0' }),
	'cancel: the statements on the shards are cancelled too');
like(slurp_file($node->logfile), qr/\[$qpid\] .*ERROR:  canceling statement due to user request/, 'cancel: the query got the cancel error');
$_->query_safe('COMMIT') for @lockers;
$_->quit for @lockers;
like($topk->query('SELECT count(*) FROM (SELECT id FROM items ORDER BY e <=> (SELECT e FROM queries WHERE qid = 1000001) LIMIT 5) s'),
	qr/(^|\n)5$/, 'the cancelled session queries the shards again');
$topk->quit;

# A coordinator session without session_preload_libraries: its first top-k query is planned
# before lookalike's library is loaded (no inline query vector shipped), still the same rows.
{
	local $ENV{PGOPTIONS} = '-c session_preload_libraries=';
	is($node->safe_psql('postgres',
			'SELECT array_agg(id)::text FROM (SELECT id FROM items ORDER BY e <=> query_of(1000002) LIMIT 5) s'),
		$node->safe_psql('postgres',
			'SELECT array_agg(id)::text FROM (SELECT id FROM flat ORDER BY e <=> (SELECT e FROM queries WHERE qid = 1000002) LIMIT 5) s'),
		'without session_preload_libraries: the first query of a session gives the same rows');
}

# 6. A stopped shard: an error naming the connection, quickly; not a hang. Also in a session
# whose connections to the shards were open: the error, then, once the shard is back, answers
# again -- whichever shard was stopped.
my $warm = $node->background_psql('postgres', on_error_stop => 0);
$warm->query_safe($topk5);
$shards[1]->stop;
$t0 = time;
($ret, $out, $err) = $node->psql('postgres',
	'SELECT id FROM items ORDER BY e <=> (SELECT e FROM queries WHERE qid = 1000001) LIMIT 5',
	timeout => 60);
my $took = time - $t0;
isnt($ret, 0, 'a stopped shard: the query fails');
like($err, qr/could not connect to server "shard2"/, 'the error names the shard');
cmp_ok($took, '<', 30, sprintf('and comes quickly (%.1f s)', $took));
my ($warm_out, $warm_failed) = $warm->query($topk5);
ok($warm_failed && $warm->{stderr} =~ /could not connect to server "shard2"/,
	'a stopped shard, in a session that had used it: the error names the shard');
$shards[1]->start;
is($node->safe_psql('postgres', 'SELECT count(*) FROM (SELECT id FROM items ORDER BY e <=> (SELECT e FROM queries WHERE qid = 1000001) LIMIT 5) s'),
	'5', 'the shard back: queries work again');
$warm->{stderr} = '';
is(scalar($warm->query($topk5)), '5', 'and in the session that had used it');
$shards[0]->stop;
($warm_out, $warm_failed) = $warm->query($topk5);
ok($warm_failed && $warm->{stderr} =~ /could not connect to server "shard1"/,
	'the first shard stopped, in that session: the error names it');
$shards[0]->start;
$warm->{stderr} = '';
($warm_out, $warm_failed) = $warm->query("$topk5; $topk5");
is("$warm_out $warm_failed", "5\n5 0", 'the shard back: the session answers again (both shards)');
# A shard restarted between two transactions of the session: its cached connection is broken;
# answered on a new connection (postgres_fdw's GetConnection reconnects when its START finds the
# connection broken).
$shards[1]->restart;
$warm->{stderr} = '';
($warm_out, $warm_failed) = $warm->query($topk5);
is("$warm_out $warm_failed", '5 0', 'a shard restarted between two transactions of a session: answered on a new connection');
$warm->quit;

done_testing();
