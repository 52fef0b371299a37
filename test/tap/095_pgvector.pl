# The companion extension lookalike_pgvector (docs/pgvector.md) beside pgvector: CREATE
# EXTENSION ... CASCADE, casts both ways with exact values, dimension checks against vector(n)
# and embedding(n), ALTER TABLE ... ALTER COLUMN ... TYPE ... USING, INSERT across the types,
# binary COPY from one type into the other, DROP EXTENSION. With the real pgvector it also
# compares the two extensions' distances on the converted values. Where the system has no
# pgvector (Debian 12 does not package it) scripts/test-all.sh installs a stand-in type `vector`
# (test/fixtures/pgvector_standin/) and the test says so in its names.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('pgvector');
$node->init;
$node->start;
my $version = $node->safe_psql('postgres', "SELECT default_version FROM pg_available_extensions WHERE name = 'vector'");
plan skip_all => 'no extension "vector" (neither pgvector nor the test stand-in) is installed' if $version eq '';
my $real = $version ne 'standin';
my $with = $real ? "with pgvector $version" : 'with the pgvector stand-in';

my ($ret, $out, $err) = $node->psql('postgres', 'CREATE EXTENSION lookalike_pgvector CASCADE');
is($ret, 0, "CREATE EXTENSION lookalike_pgvector CASCADE ($with)");
like($err, qr/installing required extension "lookalike".*installing required extension "vector"/s,
	'CASCADE installs lookalike and vector');

sub sql { $node->safe_psql('postgres', $_[0]) }
sub fails_like {
	my ($sql, $re, $name) = @_;
	my ($r, $o, $e) = $node->psql('postgres', "\\set VERBOSITY verbose\n$sql");
	ok($r != 0 && $e =~ $re, $name) or diag("exit $r, stderr: $e");
}

# Values that survive both ways bit for bit (text form is shortest round-trip on both sides).
my $vals = '[0.1,-2.5,1e-30,-3.4028235e+38,7]';
is(sql("SELECT '[1,2]'::vector::embedding"), '[1,2]', "'[1,2]'::vector::embedding ($with)");
is(sql("SELECT '[1,2]'::embedding::vector::text"), '[1,2]', 'embedding::vector');
is(sql("SELECT '$vals'::vector::embedding = '$vals'::embedding"), 't', 'vector -> embedding keeps every float exactly');
is(sql("SELECT '$vals'::embedding::vector::embedding = '$vals'::embedding"), 't', 'embedding -> vector -> embedding is the identity');
is(sql("SELECT pg_typeof('[1,2,3]'::vector::embedding(3))::text || ' ' || dims('[1,2,3]'::vector::embedding(3))"),
	'embedding 3', 'vector -> embedding(3)');
fails_like(q{SELECT '[1,2]'::vector::embedding(3)}, qr/22000: expected 3 dimensions, not 2/,
	'vector of 2 dimensions -> embedding(3): 22000');
fails_like(q{SELECT '[1,2]'::embedding::vector(3)}, qr/22000: expected 3 dimensions, not 2/,
	'embedding of 2 dimensions -> vector(3): 22000');
is(sql("SELECT NULL::vector::embedding IS NULL"), 't', 'NULL casts to NULL');
# A value large enough to be TOASTed (compressed, out of line) on the vector side.
sql(q{CREATE TABLE big (v vector);
      INSERT INTO big SELECT ('[' || array_to_string(array_fill(0.5::real, ARRAY[4000]), ',') || ']')::vector});
cmp_ok(sql(q{SELECT pg_column_size(v) FROM big}), '<', 16000, 'a 4000-d vector is stored compressed');
is(sql(q{SELECT dims(v::embedding) || ' ' || (v::embedding = array_fill(0.5::real, ARRAY[4000])::embedding) FROM big}),
	'4000 true', 'a compressed 4000-d vector casts (detoasted)');

# A pgvector table migrated in place, as PostgreSQL's hint suggests.
sql(q{
CREATE TABLE items (id int PRIMARY KEY, v vector(3));
INSERT INTO items SELECT i, format('[%s,%s,%s]', i, i * 0.5, -i)::vector FROM generate_series(1, 200) i;
CREATE TABLE copy_of_items AS SELECT id, v::text AS t FROM items;
});
sql('ALTER TABLE items ALTER v TYPE embedding(3) USING v::embedding(3)');
is(sql(q{SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = 'items'::regclass AND attname = 'v'}),
	'embedding(3)', 'ALTER TABLE ... ALTER v TYPE embedding(3) USING v::embedding(3)');
is(sql('SELECT count(*) FROM items JOIN copy_of_items USING (id) WHERE v = t::embedding'), '200',
	'every migrated value is unchanged');
sql('CREATE INDEX items_v ON items USING lookalike_hnsw (v embedding_l2_ops)');
is(sql(q{SET enable_seqscan = off; SELECT id FROM items ORDER BY v <-> '[10,5,-10]' LIMIT 1}), '10',
	'the migrated column is indexed and searched');
sql('DROP INDEX items_v');  # an index of lookalike's cannot follow the column back to vector
fails_like(q{ALTER TABLE items ALTER v TYPE vector(4) USING v::vector(4)}, qr/22000: expected 4 dimensions, not 3/,
	'ALTER to vector(4) of 3-d values fails with 22000 (the table is unchanged)');
sql('ALTER TABLE items ALTER v TYPE vector(3) USING v::vector(3)');
is(sql('SELECT count(*) FROM items JOIN copy_of_items USING (id) WHERE v::text = t::vector::text'), '200',
	'and back to vector(3), unchanged');

# Assignment casts: INSERT ... SELECT across the types.
sql('CREATE TABLE e (id int, v embedding(3)); INSERT INTO e SELECT id, v FROM items');
is(sql('SELECT count(*) FROM e JOIN items USING (id) WHERE e.v = items.v::embedding'), '200',
	'INSERT INTO an embedding column from a vector column (assignment cast)');
fails_like(q{INSERT INTO e VALUES (0, '[1,2]'::vector)}, qr/22000: expected 3 dimensions, not 2/,
	'INSERT of a 2-d vector into embedding(3): 22000');

# Binary COPY: the two binary formats are the same, so a dump of one loads into the other.
my $file = "$PostgreSQL::Test::Utils::tmp_check/items.bin";
sql("COPY items TO '$file' (FORMAT binary)");
sql("CREATE TABLE e2 (id int, v embedding(3)); COPY e2 FROM '$file' (FORMAT binary)");
is(sql('SELECT count(*) FROM e2 JOIN items USING (id) WHERE e2.v = items.v::embedding'), '200',
	'COPY ... (FORMAT binary) of a vector table loads into an embedding table');
fails_like(qq{CREATE TABLE e4 (id int, v embedding(4)); COPY e4 FROM '$file' (FORMAT binary)},
	qr/22000: expected 4 dimensions, not 3/, 'binary COPY into embedding(4) checks the dimensions');

if ($real) {
	is(sql(q{SELECT count(*) FROM items a, items b WHERE a.id < 20 AND b.id < 20
	       AND abs((a.v <=> b.v) - (a.v::embedding <=> b.v::embedding)) > 1e-6
	        OR abs((a.v <-> b.v) - (a.v::embedding <-> b.v::embedding)) > 1e-4 * (1 + (a.v <-> b.v))}),
		'0', 'pgvector and lookalike agree on the distances of the converted values');
	is(sql("SELECT vector_dims('[1,2,3]'::embedding::vector)"), '3', "pgvector's functions read a converted value");
}

sql('DROP EXTENSION lookalike_pgvector');
fails_like(q{SELECT '[1,2]'::vector::embedding}, qr/cannot cast type vector to embedding/,
	'after DROP EXTENSION lookalike_pgvector the casts are gone');

$node->stop;
done_testing();
