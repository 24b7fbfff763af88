-- Runs first.  Repo signing keys are sealed under the cluster's master key
-- file, which a superuser creates once per cluster; a server that already
-- has one keeps it.
DO $$
BEGIN
	PERFORM repo_stream.create_master_key();
EXCEPTION WHEN duplicate_object THEN
	NULL;
END $$;
SELECT repo_stream.create_repo('did:plc:setupcheck') LIKE 'did:key:z6Mk%' AS keys_work;
SELECT repo_stream.delete_repo('did:plc:setupcheck');
