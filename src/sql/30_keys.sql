
-- Repo signing keys (Ed25519).  Private keys exist in the database only
-- sealed under the master key file (repo_stream.master_key_file).

CREATE FUNCTION repo_stream.verify_signature(did_key text, message bytea, signature bytea)
RETURNS boolean
AS 'MODULE_PATHNAME', 'rs_verify_signature'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION repo_stream.verify_signature(text, bytea, bytea) IS
'true if signature is a valid Ed25519 signature of message by the key of did_key (did:key:z6Mk...)';

-- Once per cluster, by a superuser: never implicitly, because a database of
-- the cluster may hold keys sealed under a file that was not brought along.
CREATE FUNCTION repo_stream.create_master_key() RETURNS text
AS 'MODULE_PATHNAME', 'rs_create_master_key'
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION repo_stream.create_master_key() IS
'Create the master key file (32 random bytes, mode 0600) that seals repo signing keys, where repo_stream.master_key_file says (default: next to postgresql.conf, never in the data directory); returns its path. Superusers only; 42710 if it exists';
REVOKE ALL ON FUNCTION repo_stream.create_master_key() FROM PUBLIC;

-- Internal: the write path calls the same C code directly.  Revoked from
-- PUBLIC because _keys_sign signs anything with any sealed key it is given.
CREATE FUNCTION repo_stream._keys_generate(OUT sealed bytea, OUT did_key text)
AS 'MODULE_PATHNAME', 'rs_keys_generate_sql'
LANGUAGE C VOLATILE STRICT;
COMMENT ON FUNCTION repo_stream._keys_generate() IS
'internal: a fresh Ed25519 key pair, its seed sealed under the master key, and its did:key';
REVOKE ALL ON FUNCTION repo_stream._keys_generate() FROM PUBLIC;

CREATE FUNCTION repo_stream._keys_sign(sealed bytea, msg bytea) RETURNS bytea
AS 'MODULE_PATHNAME', 'rs_keys_sign_sql'
LANGUAGE C VOLATILE STRICT;
COMMENT ON FUNCTION repo_stream._keys_sign(bytea, bytea) IS
'internal: Ed25519 signature of msg by a sealed key; never creates a master key';
REVOKE ALL ON FUNCTION repo_stream._keys_sign(bytea, bytea) FROM PUBLIC;
