-- lookalike 0.1.0 -> 0.2.0: run by ALTER EXTENSION lookalike UPDATE (TO '0.2.0').
-- Policy (docs/upgrading.md): every change to extension/parts/*.sql made for 0.2.0 is mirrored
-- here, so that an upgraded database and a fresh 0.2.0 install have the same catalogue
-- (test/tap/090_upgrade.pl compares them) and keep their data.
-- complain if the script is sourced in psql rather than through ALTER EXTENSION
\echo Use "ALTER EXTENSION lookalike UPDATE TO '0.2.0'" to load this file. \quit
-- Scale-out (src/scaleout/, docs/scale-out.md): top-k per partition over local and postgres_fdw
-- partitions. The coordinator wraps the query vector of a top-k query on foreign tables in this
-- function, which postgres_fdw ships with the ORDER BY: each shard then searches with the
-- coordinator's lookalike.ef_search and lookalike.max_scan_tuples.
CREATE FUNCTION with_search_settings(query embedding, ef_search integer, max_scan_tuples integer)
    RETURNS embedding
    AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION with_search_settings(embedding, integer, integer) IS 'returns the query unchanged; sets lookalike.ef_search and lookalike.max_scan_tuples for the rest of the transaction where they differ (shipped to shards by the partition top-k plan, see docs/scale-out.md)';
