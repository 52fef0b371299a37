-- lookalike install script (the version is in the file name), assembled by the Makefile from extension/parts/*.sql.
-- complain if the script is sourced in psql rather than through CREATE EXTENSION
\echo Use "CREATE EXTENSION lookalike" to load this file. \quit
