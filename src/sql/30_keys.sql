
-- Repo signing keys (Ed25519).  Private keys exist in the database only
-- sealed under the master key file (repo_stream.master_key_file).

CREATE FUNCTION repo_stream.verify_signature(did_key text, message bytea, signature bytea)
RETURNS boolean
AS 'MODULE_PATHNAME', 'rs_verify_signature'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION repo_stream.verify_signature(text, bytea, bytea) IS
'true if signature is a valid Ed25519 signature of message by the key of did_key (did:key:z6Mk...)';

-- Internal: the write path calls the same C code directly.  Revoked from
-- PUBLIC because _keys_sign signs anything with any sealed key it is given,
-- and _keys_generate may create the master key file.
CREATE FUNCTION repo_stream._keys_generate(may_create boolean, OUT sealed bytea, OUT did_key text)
AS 'MODULE_PATHNAME', 'rs_keys_generate_sql'
LANGUAGE C VOLATILE STRICT;
COMMENT ON FUNCTION repo_stream._keys_generate(boolean) IS
'internal: a fresh Ed25519 key pair, its seed sealed under the master key, and its did:key; may_create allows creating the master key file';
REVOKE ALL ON FUNCTION repo_stream._keys_generate(boolean) FROM PUBLIC;

CREATE FUNCTION repo_stream._keys_sign(sealed bytea, msg bytea) RETURNS bytea
AS 'MODULE_PATHNAME', 'rs_keys_sign_sql'
LANGUAGE C VOLATILE STRICT;
COMMENT ON FUNCTION repo_stream._keys_sign(bytea, bytea) IS
'internal: Ed25519 signature of msg by a sealed key; never creates a master key';
REVOKE ALL ON FUNCTION repo_stream._keys_sign(bytea, bytea) FROM PUBLIC;
