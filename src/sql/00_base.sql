-- repo_stream install script, assembled from src/sql/*.sql by the Makefile.
\echo Use "CREATE EXTENSION repo_stream" to load this file. \quit
