-- lookalike 0.1.0 -> 0.2.0: run by ALTER EXTENSION lookalike UPDATE (TO '0.2.0').
-- Policy (docs/upgrading.md): every change to extension/parts/*.sql made for 0.2.0 is mirrored
-- here, so that an upgraded database and a fresh 0.2.0 install have the same catalogue
-- (test/tap/090_upgrade.pl compares them) and keep their data.
-- complain if the script is sourced in psql rather than through ALTER EXTENSION
\echo Use "ALTER EXTENSION lookalike UPDATE TO '0.2.0'" to load this file. \quit
