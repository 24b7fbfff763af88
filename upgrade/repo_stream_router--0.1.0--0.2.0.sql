-- repo_stream_router 0.1.0 -> 0.2.0 (ALTER EXTENSION repo_stream_router UPDATE).
-- Every change to router/repo_stream_router.sql since 0.1.0 is repeated
-- here; the digest line is the sha256 of that file as this script leaves it
-- (`make check-upgrade`).
\echo Use "ALTER EXTENSION repo_stream_router UPDATE" to load this file. \quit
-- source digest: 6eda96944f9cb38dfcb28457b61c3e328682ae78a01d0ef1bd0dacd4b3ad6557
