
-- Event frames (com.atproto.sync.subscribeRepos framing) ------------------

CREATE FUNCTION repo_stream.frame_to_json(frame bytea) RETURNS jsonb
AS 'MODULE_PATHNAME', 'rs_frame_to_json'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION repo_stream.frame_to_json(bytea) IS
'{"header", "body", "blocks_cids"} of an event frame; blocks_cids lists the CAR blocks of #commit and #sync frames';

-- false comes with a NOTICE saying why; NULL for kinds without a signature;
-- only bytes that are not a frame at all are an ERROR (docs/frames.md).
CREATE FUNCTION repo_stream.verify_frame(frame bytea, did_key text) RETURNS boolean
AS 'MODULE_PATHNAME', 'rs_verify_frame'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION repo_stream.verify_frame(bytea, text) IS
'true if a #commit or #sync frame verifies with the repo''s Ed25519 did:key (lexicon limits, CAR, signature, records, MST inversion to prevData); false with a NOTICE if not; NULL for kinds without a signature';
