
-- Event frames (com.atproto.sync.subscribeRepos framing) ------------------

CREATE FUNCTION repo_stream.frame_to_json(frame bytea) RETURNS jsonb
AS 'MODULE_PATHNAME', 'rs_frame_to_json'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION repo_stream.frame_to_json(bytea) IS
'{"header", "body", "blocks_cids"} of an event frame; blocks_cids lists the CAR blocks of #commit and #sync frames';

-- A NOTICE says why a well-formed frame does not verify; malformed input is an ERROR.
CREATE FUNCTION repo_stream.verify_frame(frame bytea, did_key text) RETURNS boolean
AS 'MODULE_PATHNAME', 'rs_verify_frame'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION repo_stream.verify_frame(bytea, text) IS
'true if a #commit or #sync frame verifies with the repo''s Ed25519 did:key: CAR, signature, records and MST inversion to prevData';
