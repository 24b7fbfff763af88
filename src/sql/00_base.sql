-- repo_stream install script, assembled from src/sql/*.sql by the Makefile.
\echo Use "CREATE EXTENSION repo_stream" to load this file. \quit

-- DAG-CBOR text is UTF-8: refuse here rather than at the first write.
-- (DO blocks cannot pin search_path: every name in them is qualified.)
DO $$
BEGIN
	IF pg_catalog.getdatabaseencoding() OPERATOR(pg_catalog.<>) ALL (ARRAY['UTF8', 'SQL_ASCII']::pg_catalog.name[]) THEN
		RAISE EXCEPTION 'repo_stream needs a UTF8 (or SQL_ASCII) database, not %',
			pg_catalog.getdatabaseencoding()
			USING ERRCODE = 'feature_not_supported',
				  HINT = 'DAG-CBOR text is UTF-8: create the database with ENCODING ''UTF8''.';
	END IF;
END $$;

-- The group roles (cluster-wide, made once), before any piece grants to
-- them; what each may do is in 90_privileges.sql.
DO $$
DECLARE
	r pg_catalog.text;
BEGIN
	FOREACH r IN ARRAY ARRAY['repo_stream_writer', 'repo_stream_reader', 'repo_stream_admin',
							 'repo_stream_deleter'] LOOP
		IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname OPERATOR(pg_catalog.=) r) THEN
			EXECUTE pg_catalog.format('CREATE ROLE %I NOLOGIN', r);
		END IF;
	END LOOP;
END $$;
