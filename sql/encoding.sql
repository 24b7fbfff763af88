-- CREATE EXTENSION refuses a database whose encoding cannot hold DAG-CBOR
-- text, naming the encoding, instead of failing at the first write.
CREATE DATABASE regress_rs_latin1 ENCODING 'LATIN1' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0;
\c regress_rs_latin1
CREATE EXTENSION repo_stream;
SELECT count(*) AS schemas FROM pg_namespace WHERE nspname = 'repo_stream';
\c contrib_regression
DROP DATABASE regress_rs_latin1;
