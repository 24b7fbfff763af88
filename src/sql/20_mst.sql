
-- Merkle Search Tree (atproto) ---------------------------------------------

CREATE FUNCTION mst_root(keys text[], cids text[]) RETURNS text
	AS 'MODULE_PATHNAME', 'rs_mst_root'
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION mst_root(text[], text[]) IS
	'Root CID of the atproto Merkle Search Tree mapping keys[i] to cids[i]';
