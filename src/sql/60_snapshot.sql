-- Snapshots: a repo's current state as a CAR (com.atproto.sync.getRepo,
-- with since), a record's proof (com.atproto.sync.getRecord), the list of
-- repos (com.atproto.sync.listRepos) and the verified import of a CAR
-- (com.atproto.repo.importRepo).  See docs/snapshots.md.

CREATE FUNCTION export_repo(did text, since text DEFAULT NULL)
	RETURNS TABLE (seq bigint, rev text, chunk bytea)
	AS 'MODULE_PATHNAME', 'rs_export_repo' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION export_repo(text, text) IS
	'The repo as one CARv1 file rooted at its head commit, in 1 MiB chunks in stream order; with since (a rev), only what was stored after it. seq: the repo''s last event reflected. 42704 unknown or deleted repo, 55R01 RepoDeactivated, 22023 a since that is not a TID';

CREATE FUNCTION record_proof(did text, collection text, rkey text) RETURNS bytea
	AS 'MODULE_PATHNAME', 'rs_record_proof' LANGUAGE C STRICT VOLATILE;
COMMENT ON FUNCTION record_proof(text, text, text) IS
	'A CAR rooted at the head commit with the MST nodes on the path to the key and the record block: proves the record''s CID, or its absence';

CREATE FUNCTION list_repos(after text DEFAULT NULL, max_repos int DEFAULT 1000)
	RETURNS TABLE (did text, head_cid text, rev text, seq bigint, status text)
	LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
	IF max_repos IS NULL OR max_repos < 1 OR max_repos > 100000 THEN
		RAISE EXCEPTION 'max_repos must be between 1 and 100000, not %', coalesce(max_repos::text, 'NULL')
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	RETURN QUERY
		SELECT r.did, r.head_cid, r.head_rev, r.last_seq, r.status
		  FROM repo_stream.repos r
		 WHERE list_repos.after IS NULL OR r.did > list_repos.after
		 ORDER BY r.did
		 LIMIT list_repos.max_repos;
END $$;
COMMENT ON FUNCTION list_repos(text, int) IS
	'Repos in DID order after the given DID (a page of at most max_repos): head commit, rev, seq of the last event, status';

CREATE FUNCTION import_repo(car bytea, did_key text) RETURNS text
	AS 'MODULE_PATHNAME', 'rs_import_repo' LANGUAGE C STRICT VOLATILE;
COMMENT ON FUNCTION import_repo(bytea, text) IS
	'Import a repo CAR signed by did_key (checked in full before anything is written) as a local repo with a fresh key; a #sync announces it at COMMIT; returns the new did:key';

CREATE FUNCTION import_repo_lo(car oid, did_key text) RETURNS text
	AS 'MODULE_PATHNAME', 'rs_import_repo_lo' LANGUAGE C STRICT VOLATILE;
COMMENT ON FUNCTION import_repo_lo(oid, text) IS
	'import_repo reading the CAR from a large object, for CARs of any size';

REVOKE EXECUTE ON FUNCTION
	export_repo(text, text), record_proof(text, text, text), list_repos(text, int),
	import_repo(bytea, text), import_repo_lo(oid, text)
	FROM PUBLIC;
GRANT EXECUTE ON FUNCTION
	export_repo(text, text), record_proof(text, text, text), list_repos(text, int)
	TO repo_stream_reader;
GRANT EXECUTE ON FUNCTION import_repo(bytea, text), import_repo_lo(oid, text)
	TO repo_stream_admin;
