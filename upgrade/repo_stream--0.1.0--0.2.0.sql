-- repo_stream 0.1.0 -> 0.2.0 (ALTER EXTENSION repo_stream UPDATE).
-- Every change to src/sql/ since 0.1.0 is repeated here, so that a database
-- on 0.1.0 ends with the same schema as a fresh install of 0.2.0
-- (test/t/090_upgrade.pl compares the two).  The digest line below is the
-- sha256 of src/sql/*.sql that this script brings a database up to; `make
-- check-upgrade` fails when src/sql changes and this file does not.
\echo Use "ALTER EXTENSION repo_stream UPDATE" to load this file. \quit
-- source digest: 1b8ea2361bbfa8e110fe760c435f4fce473153754f29f0e7a925f413ea18d6b1
