-- Text I/O, typmod, casts and binary round trip of the embedding type.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS lookalike;
RESET client_min_messages;
\set VERBOSITY sqlstate

SELECT '[1,2,3]'::embedding;
SELECT '  [ 1 , -2.5 , +3e2 ]  '::embedding;
SELECT '[1.5e-45, 3.4028235e38, -0.1]'::embedding;
SELECT '[1,2,3]'::embedding(3);
SELECT dims('[1,2,3]'::embedding), norm('[3,4]'::embedding);

-- malformed text: 22P02
SELECT '[1,2'::embedding;
SELECT '1,2'::embedding;
SELECT '[1,,2]'::embedding;
SELECT '[a]'::embedding;
SELECT ''::embedding;
-- empty, NaN, infinity, out of range
SELECT '[]'::embedding;
SELECT '[NaN]'::embedding;
SELECT '[1,Infinity]'::embedding;
SELECT '[1e39]'::embedding;
-- typmod
SELECT '[1,2]'::embedding(3);
SELECT '[1]'::embedding(0);
SELECT '[1]'::embedding(16001);
SELECT '[1]'::embedding(1, 2);
CREATE TABLE t (e embedding(3));
INSERT INTO t VALUES ('[1,2,3]');
INSERT INTO t VALUES ('[1,2]');
SELECT array_fill(0, ARRAY[16001])::embedding;
\set VERBOSITY default
SELECT '[1,2'::embedding;
\set VERBOSITY sqlstate

-- casts
SELECT ARRAY[1,2,3]::embedding, ARRAY[1.5,2,3]::real[]::embedding, ARRAY[1.25,2]::float8[]::embedding;
SELECT ARRAY[1.5,2]::numeric[]::embedding;
SELECT '[1,2.5]'::embedding::real[];
SELECT ARRAY[1,NULL]::int[]::embedding;
SELECT ARRAY[[1,2],[3,4]]::int[]::embedding;
SELECT ARRAY[1e300]::float8[]::embedding;
SELECT ARRAY['NaN']::float8[]::embedding;
SELECT ARRAY[]::int[]::embedding;
SELECT ARRAY[1,2]::int[]::embedding(3);
-- the text form is pgvector's: a value printed by one parses in the other
SELECT ('[1,2,3]'::embedding)::text = '[1,2,3]';

-- binary send/receive: the wire format, and a COPY BINARY round trip through a file
SELECT encode(embedding_send('[1,-2.5]'::embedding), 'hex');
CREATE TABLE t2 (e embedding(3));
DO $$
DECLARE f text := '/tmp/lookalike_embedding_io_' || pg_backend_pid() || '.copy';
BEGIN
  INSERT INTO t VALUES ('[1.5e-45,-0.1,3.4028235e38]');
  EXECUTE format('COPY t TO %L (FORMAT binary)', f);
  EXECUTE format('COPY t2 FROM %L (FORMAT binary)', f);
END $$;
SELECT a.e = b.e AS same, b.e FROM t a JOIN t2 b ON a.e = b.e ORDER BY b.e;
-- a binary value whose dimension disagrees with the column's typmod is refused
CREATE TABLE t4 (e embedding(4));
DO $$
DECLARE f text := '/tmp/lookalike_embedding_io_' || pg_backend_pid() || '.copy';
BEGIN
  EXECUTE format('COPY t4 FROM %L (FORMAT binary)', f);
END $$;
DROP TABLE t, t2, t4;
