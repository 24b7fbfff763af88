-- Verification that reads repo state: the key history, for readers.
-- (verify_frame(frame, did_key) and frame_to_json are pure: 40_frames.sql.)

CREATE FUNCTION repo_keys(did text)
	RETURNS TABLE (did_key text, since_rev text, until_rev text)
	AS 'MODULE_PATHNAME', 'rs_repo_keys' LANGUAGE C STRICT STABLE;
COMMENT ON FUNCTION repo_keys(text) IS
	'Every did:key the repo has signed with, oldest first: it signs revs from since_rev up to (not including) until_rev; until_rev is NULL for the current key';

CREATE FUNCTION verify_frame(frame bytea) RETURNS boolean
	AS 'MODULE_PATHNAME', 'rs_verify_frame_by_history' LANGUAGE C STRICT STABLE;
COMMENT ON FUNCTION verify_frame(bytea) IS
	'verify_frame(frame, did_key) with the key that was current at the frame''s rev, from the repo''s key history; NULL for kinds without a signature';

-- They read the key history as the extension owner: readers only.
REVOKE EXECUTE ON FUNCTION repo_keys(text), verify_frame(bytea) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION repo_keys(text), verify_frame(bytea) TO repo_stream_reader;
