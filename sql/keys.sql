--
-- Ed25519 verification against RFC 8032 vectors, and who may see and use
-- the master key setting and the internal key functions.
--
-- Nothing here generates a key or touches the master key file, so this is
-- safe to run (installcheck) against a server that holds real repos.
--

-- RFC 8032 section 7.1, TESTs 1-3: public key as did:key, message, signature.
CREATE TEMP TABLE rfc8032 (test text, pk bytea, did_key text, msg bytea, sig bytea);
INSERT INTO rfc8032 VALUES
	('TEST 1', '\xd75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a',
	 'did:key:z6MktwupdmLXVVqTzCw4i46r4uGyosGXRnR3XjN4Zq7oMMsw', '\x',
	 '\xe5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b'),
	('TEST 2', '\x3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c',
	 'did:key:z6MkiaMbhXHNA4eJVCCj8dbzKzTgYDKf6crKgHVHid1F1WCT', '\x72',
	 '\x92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00'),
	('TEST 3', '\xfc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025',
	 'did:key:z6MkwSD8dBdqcXQzKJZQFPy2hh2izzxskndKCjdmC2dBpfME', '\xaf82',
	 '\x6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a');

-- Valid signatures verify; a flipped bit in the message, the signature or
-- the key does not.  The did:key literals are the keys' did:keys.
SELECT test,
       repo_stream.did_key_from_public(pk) = did_key AS did_key_matches,
       repo_stream.verify_signature(did_key, msg, sig) AS valid,
       repo_stream.verify_signature(did_key, msg || '\x00'::bytea, sig) AS msg_extended,
       CASE WHEN length(msg) > 0
            THEN repo_stream.verify_signature(did_key, set_bit(msg, 0, 1 - get_bit(msg, 0)), sig)
       END AS msg_bit_flipped,
       repo_stream.verify_signature(did_key, msg, set_bit(sig, 100, 1 - get_bit(sig, 100))) AS sig_bit_flipped,
       repo_stream.verify_signature(repo_stream.did_key_from_public(set_bit(pk, 7, 1 - get_bit(pk, 7))),
                                    msg, sig) AS key_bit_flipped
FROM rfc8032
ORDER BY test;

-- Another test's key or message never verifies.
SELECT a.test AS key_of, b.test AS signed_by,
       repo_stream.verify_signature(a.did_key, b.msg, b.sig) AS valid
FROM rfc8032 a, rfc8032 b
ORDER BY a.test, b.test;

-- A key that is not a curve point (all zeros) just fails to verify.
SELECT repo_stream.verify_signature(repo_stream.did_key_from_public(decode(repeat('00', 32), 'hex')),
                                    '\x', sig) AS zero_key
FROM rfc8032 WHERE test = 'TEST 1';

-- STRICT: NULL in, NULL out.
SELECT repo_stream.verify_signature(NULL, '\x', '\x') IS NULL AS null_key,
       repo_stream.verify_signature(did_key, NULL, sig) IS NULL AS null_msg,
       repo_stream.verify_signature(did_key, msg, NULL) IS NULL AS null_sig
FROM rfc8032 WHERE test = 'TEST 1';

-- Bad input: a malformed did:key is 22P02 (as did_key_to_public), a
-- signature that is not 64 bytes 22023.
CREATE FUNCTION pg_temp.error_of(query text) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    msg text;
    detail text;
BEGIN
    EXECUTE query;
    RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS msg = MESSAGE_TEXT, detail = PG_EXCEPTION_DETAIL;
    RETURN SQLSTATE || ': ' || msg || ' / ' || detail;
END
$$;

SELECT pg_temp.error_of(format('SELECT repo_stream.verify_signature(%L, %L, %L)', d, m, '\x' || s)) AS error
FROM (VALUES ('did:web:example.com', '\x', repeat('00', 64)),
             ('did:key:z6MktwupdmLXVVqTzCw4i46r4uGyosGXRnR3XjN4Zq7oMMs0', '\x', repeat('00', 64)),
             ('did:key:zQ3shZc2QzApp2oymGvQbzP8eKheVshBHbU4ZYjeXqwSKEn6N', '\x', repeat('00', 64)),
             ('did:key:z6MktwupdmLXVVqTzCw4i46r4uGyosGXRnR3XjN4Zq7oMMsw', '\x', ''),
             ('did:key:z6MktwupdmLXVVqTzCw4i46r4uGyosGXRnR3XjN4Zq7oMMsw', '\x', repeat('00', 63)),
             ('did:key:z6MktwupdmLXVVqTzCw4i46r4uGyosGXRnR3XjN4Zq7oMMsw', '\x', repeat('00', 65))
     ) AS t(d, m, s);

-- As a client sees them.
SELECT repo_stream.verify_signature('did:key:z6MktwupdmLXVVqTzCw4i46r4uGyosGXRnR3XjN4Zq7oMMs0', '\x', '\x00');
SELECT repo_stream.verify_signature(did_key, msg, substring(sig from 2)) FROM rfc8032 WHERE test = 'TEST 1';

-- A malformed sealed key is refused before the master key file is read.
SELECT what, pg_temp.error_of(format('SELECT repo_stream._keys_sign(%L, %L)', blob, 'msg')) AS error
FROM (VALUES ('empty', '\x'),
             ('72 bytes', '\x01' || repeat('00', 71)),
             ('74 bytes', '\x01' || repeat('00', 73)),
             ('version 0', '\x00' || repeat('00', 72)),
             ('version 2', '\x02' || repeat('00', 72))) AS t(what, blob);

-- The master key setting: superuser-only, set per session or server.
SELECT name, setting, context, vartype, boot_val
FROM pg_settings WHERE name = 'repo_stream.master_key_file';
SHOW repo_stream.master_key_file;
SET repo_stream.master_key_file = '/nonexistent/master.key';
SHOW repo_stream.master_key_file;
RESET repo_stream.master_key_file;

-- The repo_stream.* prefix is reserved: typos are errors, not placeholders.
SET repo_stream.master_key_fil = 'x';

-- An application role: may verify, may not see or set the setting, may not
-- call the internal key functions.
CREATE ROLE regress_keys_app;
GRANT USAGE ON SCHEMA repo_stream TO regress_keys_app;
GRANT SELECT ON rfc8032 TO regress_keys_app;
SELECT f, has_function_privilege('regress_keys_app', f, 'EXECUTE') AS app_may_execute
FROM (VALUES ('repo_stream.verify_signature(text, bytea, bytea)'),
             ('repo_stream._keys_generate()'),
             ('repo_stream._keys_sign(bytea, bytea)'),
             ('repo_stream.create_master_key()')) AS t(f);

SET ROLE regress_keys_app;
SELECT test, repo_stream.verify_signature(did_key, msg, sig) AS valid FROM rfc8032 ORDER BY test;
SHOW repo_stream.master_key_file;
SELECT current_setting('repo_stream.master_key_file');
SELECT current_setting('repo_stream.master_key_file', true);
SELECT count(*) AS visible_in_pg_settings FROM pg_settings WHERE name = 'repo_stream.master_key_file';
SET repo_stream.master_key_file = '/tmp/attacker.key';
SELECT set_config('repo_stream.master_key_file', '/tmp/attacker.key', false);
SELECT * FROM repo_stream._keys_generate();
SELECT repo_stream._keys_sign('\x', 'msg');
SELECT repo_stream.create_master_key();
RESET ROLE;

-- Even when granted, only a superuser makes the master key; a second one
-- is refused whoever asks (the cluster already has one: setup.sql).
GRANT EXECUTE ON FUNCTION repo_stream.create_master_key() TO regress_keys_app;
SET ROLE regress_keys_app;
SELECT repo_stream.create_master_key();
RESET ROLE;
REVOKE EXECUTE ON FUNCTION repo_stream.create_master_key() FROM regress_keys_app;
DO $$
BEGIN
	PERFORM repo_stream.create_master_key();
EXCEPTION WHEN duplicate_object THEN
	-- the path depends on the server
	RAISE NOTICE '%: %', SQLSTATE, regexp_replace(SQLERRM, '"[^"]*"', '"..."');
END $$;

-- pg_read_all_settings members may read it (PostgreSQL's rule for
-- GUC_SUPERUSER_ONLY settings), still not set it.
GRANT pg_read_all_settings TO regress_keys_app;
SET ROLE regress_keys_app;
SHOW repo_stream.master_key_file;
SET repo_stream.master_key_file = '/tmp/attacker.key';
RESET ROLE;

REVOKE USAGE ON SCHEMA repo_stream FROM regress_keys_app;
REVOKE SELECT ON rfc8032 FROM regress_keys_app;
DROP ROLE regress_keys_app;
