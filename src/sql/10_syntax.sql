
-- Identifier syntax (atproto.com/specs/{did,nsid,record-key,tid}), TIDs, did:key.

CREATE FUNCTION repo_stream.is_valid_did(text) RETURNS boolean
AS 'MODULE_PATHNAME', 'is_valid_did'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION repo_stream.is_valid_did(text) IS
'true if the text is a syntactically valid DID (did:method:id, at most 2048 characters)';

CREATE FUNCTION repo_stream.is_valid_nsid(text) RETURNS boolean
AS 'MODULE_PATHNAME', 'is_valid_nsid'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION repo_stream.is_valid_nsid(text) IS
'true if the text is a syntactically valid NSID (reversed domain + name, e.g. app.bsky.feed.post)';

CREATE FUNCTION repo_stream.is_valid_rkey(text) RETURNS boolean
AS 'MODULE_PATHNAME', 'is_valid_rkey'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION repo_stream.is_valid_rkey(text) IS
'true if the text is a valid record key (1..512 of A-Za-z0-9._:~-, not "." or "..")';

CREATE FUNCTION repo_stream.is_valid_tid(text) RETURNS boolean
AS 'MODULE_PATHNAME', 'is_valid_tid'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION repo_stream.is_valid_tid(text) IS
'true if the text is a syntactically valid TID (13 base32-sortable characters)';

CREATE FUNCTION repo_stream.is_valid_datetime(text) RETURNS boolean
AS 'MODULE_PATHNAME', 'is_valid_datetime'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION repo_stream.is_valid_datetime(text) IS
'true if the text is an atproto datetime (RFC 3339 with a timezone, uppercase T and Z, not -00:00, at most 64 characters)';

-- PARALLEL RESTRICTED: run in the leader, so one session's TIDs stay increasing.
CREATE FUNCTION repo_stream.tid_now() RETURNS text
AS 'MODULE_PATHNAME', 'tid_now'
LANGUAGE C VOLATILE PARALLEL RESTRICTED;
COMMENT ON FUNCTION repo_stream.tid_now() IS
'a TID for the current time, strictly increasing within the backend and unique across backends';

CREATE FUNCTION repo_stream.did_key_from_public(bytea) RETURNS text
AS 'MODULE_PATHNAME', 'did_key_from_public'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION repo_stream.did_key_from_public(bytea) IS
'did:key:z... for a 32-byte Ed25519 public key';

CREATE FUNCTION repo_stream.did_key_to_public(text) RETURNS bytea
AS 'MODULE_PATHNAME', 'did_key_to_public'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION repo_stream.did_key_to_public(text) IS
'the 32-byte Ed25519 public key of a did:key:z6Mk... identifier';
