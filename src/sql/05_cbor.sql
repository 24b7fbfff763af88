
-- DAG-CBOR codec (atproto data model) -------------------------------------

CREATE FUNCTION json_to_cbor(jsonb) RETURNS bytea
	AS 'MODULE_PATHNAME', 'rs_json_to_cbor'
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION json_to_cbor(jsonb) IS
	'Canonical DAG-CBOR bytes of any JSON value under the atproto data model';

CREATE FUNCTION cbor_to_json(bytea) RETURNS jsonb
	AS 'MODULE_PATHNAME', 'rs_cbor_to_json'
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION cbor_to_json(bytea) IS
	'JSON form of strictly validated DAG-CBOR, any value ($link, $bytes for links and bytes); refuses text with U+0000 (22P05)';

CREATE FUNCTION cbor_cid(bytea) RETURNS text
	AS 'MODULE_PATHNAME', 'rs_cbor_cid'
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION cbor_cid(bytea) IS
	'CIDv1 (dag-cbor, sha2-256, base32) of valid DAG-CBOR bytes';
