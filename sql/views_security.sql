-- Handler views against hostile handlers and roles (issue 17): a handler
-- runs as its view's creator, in a security-restricted operation, inside a
-- GUC nest level of its own that nothing it sets outlives; a view refuses a
-- handler whose owner or definition changed since it was created; only a
-- view's owner (or a superuser) refreshes or drops it; each handler call
-- has a time budget.  Collections are com.example.vsec.*.
SET client_min_messages = notice;

CREATE ROLE regress_vsec_adm IN ROLE repo_stream_admin;
CREATE ROLE regress_vsec_adm2 IN ROLE repo_stream_admin;
CREATE ROLE regress_vsec_nobody;
CREATE SCHEMA vsec;
GRANT USAGE ON SCHEMA vsec TO PUBLIC;
CREATE SCHEMA vsec_adm AUTHORIZATION regress_vsec_adm;
GRANT USAGE ON SCHEMA vsec_adm TO PUBLIC;
CREATE SCHEMA vsec_nob AUTHORIZATION regress_vsec_nobody;
GRANT USAGE ON SCHEMA vsec_nob TO PUBLIC;
-- every call of a planted function, whoever ran it
CREATE TABLE vsec.ran (what text, who text, superuser boolean);
GRANT INSERT, SELECT ON vsec.ran TO PUBLIC;
SELECT repo_stream.create_repo('did:plc:vsec') IS NOT NULL AS created;
SELECT repo_stream.put_record('did:plc:vsec', 'com.example.vsec.like', 'l1', '{"subject": {"uri": "at://vsec/1"}}') IS NOT NULL AS created;

-- ---------------------------------------------------------------- the probe (F-H1)
-- A repo_stream_admin's handler sets search_path for good; its now() and
-- lower() wait in its schema for the extension's next statement (as the
-- extension's owner, a superuser) or the caller's next query.
SET ROLE regress_vsec_adm;
CREATE FUNCTION vsec_adm.h(seq bigint, did text, action text, path text, record jsonb) RETURNS void
LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_catalog.set_config('search_path', 'vsec_adm, pg_catalog', false); END $$;
CREATE FUNCTION vsec_adm.now() RETURNS timestamptz LANGUAGE plpgsql AS $$
BEGIN
	INSERT INTO vsec.ran SELECT 'vsec_adm.now()', current_user, rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user;
	IF (SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user) THEN
		EXECUTE 'ALTER ROLE regress_vsec_adm SUPERUSER';
	END IF;
	RETURN pg_catalog.now();
END $$;
CREATE FUNCTION vsec_adm.lower(text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
	INSERT INTO vsec.ran SELECT 'vsec_adm.lower(text)', current_user, rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user;
	RETURN 'hijacked';
END $$;
SHOW search_path;
SELECT repo_stream.create_handler_view('vsec_adm.hv', 'vsec_adm.h(bigint,text,text,text,jsonb)');
SHOW search_path;
SELECT lower('X') AS lower_x;
-- the same through refresh_view, by the view's owner
SELECT repo_stream.put_record('did:plc:vsec', 'com.example.vsec.like', 'l2', '{"subject": {"uri": "at://vsec/2"}}') IS NOT NULL AS created;
SELECT repo_stream.refresh_view('vsec_adm.hv') AS applied;
SHOW search_path;
SELECT lower('X') AS lower_x;
RESET ROLE;
SELECT rolsuper AS adm_is_superuser FROM pg_roles WHERE rolname = 'regress_vsec_adm';
SELECT count(*) AS planted_calls FROM vsec.ran;

-- ---------------------------------------------------------------- every setting, every way
-- A handler that tries to set a list of settings, one way per run: SET,
-- SET LOCAL, set_config(..., false), and from a SECURITY DEFINER function
-- with a SET clause of its own (whose plain SETs PostgreSQL keeps past its
-- exit).  transaction_read_only last, outside a block: the refresh's own
-- next statement would fail if it stayed.  After each call, every setting
-- of the calling session (pg_settings, placeholders too) is as before.
CREATE TABLE vsec.ctl (mode text);
INSERT INTO vsec.ctl VALUES ('SET');
CREATE TABLE vsec.attempts (n serial, mode text, guc text, result text);
GRANT SELECT, UPDATE ON vsec.ctl TO PUBLIC;
GRANT INSERT, SELECT ON vsec.attempts TO PUBLIC;
GRANT USAGE ON SEQUENCE vsec.attempts_n_seq TO PUBLIC;
SET ROLE regress_vsec_adm;
CREATE FUNCTION vsec_adm.meddle(seq bigint, did text, action text, path text, record jsonb) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
	m text := (SELECT c.mode FROM vsec.ctl c);
	g record;
BEGIN
	FOR g IN SELECT * FROM (VALUES
		('search_path', 'vsec_adm, pg_catalog'),
		('statement_timeout', '1234'),
		('work_mem', '77kB'),
		('default_transaction_read_only', 'on'),
		('regress_vsec.planted', 'by the handler'),
		('role', 'regress_vsec_adm2'),
		('session_authorization', 'regress_vsec_adm2')) AS v(name, value)
	LOOP
		BEGIN
			IF m = 'SET LOCAL' THEN
				EXECUTE pg_catalog.format('SET LOCAL %s = %L', g.name, g.value);
			ELSIF m = 'set_config' THEN
				PERFORM pg_catalog.set_config(g.name, g.value, false);
			ELSE
				EXECUTE pg_catalog.format('SET %s = %L', g.name, g.value);
			END IF;
			INSERT INTO vsec.attempts (mode, guc, result) VALUES (m, g.name, 'set');
		EXCEPTION WHEN OTHERS THEN
			INSERT INTO vsec.attempts (mode, guc, result) VALUES (m, g.name, SQLERRM);
		END;
	END LOOP;
	IF m = 'SET LOCAL' THEN
		SET LOCAL transaction_read_only = on;
	ELSE
		PERFORM pg_catalog.set_config('transaction_read_only', 'on', m = 'SET LOCAL');
	END IF;
END $$;
CREATE FUNCTION vsec_adm.meddle_definer(seq bigint, did text, action text, path text, record jsonb) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET work_mem = '88kB' SET search_path = pg_catalog AS $$
BEGIN
	PERFORM vsec_adm.meddle(seq, did, action, path, record);
END $$;
SET regress_vsec.planted = 'the session''s';
CREATE TEMP TABLE settings_before AS SELECT name, setting FROM pg_settings;
CREATE TEMP VIEW settings_changed AS
	(SELECT name, setting FROM pg_settings EXCEPT SELECT * FROM settings_before)
	UNION ALL (SELECT * FROM settings_before EXCEPT SELECT name, setting FROM pg_settings);
-- in the creator's session (the fill calls the handler once per record)
SELECT repo_stream.put_record('did:plc:vsec', 'com.example.vsec.meddle', 'm0', '{}') IS NOT NULL AS created;
SELECT repo_stream.create_handler_view('vsec_adm.meddler', 'vsec_adm.meddle(bigint,text,text,text,jsonb)', 'com.example.vsec.meddle');
SELECT * FROM settings_changed;
UPDATE vsec.ctl SET mode = 'set_config';
SELECT repo_stream.create_handler_view('vsec_adm.meddler2', 'vsec_adm.meddle(bigint,text,text,text,jsonb)', 'com.example.vsec.meddle');
SELECT * FROM settings_changed;
UPDATE vsec.ctl SET mode = 'SET LOCAL';
SELECT repo_stream.create_handler_view('vsec_adm.meddler3', 'vsec_adm.meddle(bigint,text,text,text,jsonb)', 'com.example.vsec.meddle');
SELECT * FROM settings_changed;
UPDATE vsec.ctl SET mode = 'SET';
SELECT repo_stream.create_handler_view('vsec_adm.meddler4', 'vsec_adm.meddle_definer(bigint,text,text,text,jsonb)', 'com.example.vsec.meddle');
SELECT * FROM settings_changed;
-- in a refresher's session (the owner's), each mode once more
SELECT repo_stream.put_record('did:plc:vsec', 'com.example.vsec.meddle', 'm1', '{}') IS NOT NULL AS created;
UPDATE vsec.ctl SET mode = 'SET';
SELECT repo_stream.refresh_view('vsec_adm.meddler') AS applied;
SELECT * FROM settings_changed;
UPDATE vsec.ctl SET mode = 'set_config';
SELECT repo_stream.refresh_view('vsec_adm.meddler2') AS applied;
SELECT * FROM settings_changed;
UPDATE vsec.ctl SET mode = 'SET LOCAL';
SELECT repo_stream.refresh_view('vsec_adm.meddler3') AS applied;
SELECT * FROM settings_changed;
UPDATE vsec.ctl SET mode = 'SET';
SELECT repo_stream.refresh_view('vsec_adm.meddler4') AS applied;
SELECT * FROM settings_changed;
-- and in a transaction block, where SET LOCAL would last to its end
BEGIN;
UPDATE vsec.ctl SET mode = 'SET LOCAL';
SELECT repo_stream.put_record('did:plc:vsec', 'com.example.vsec.meddle', 'm2', '{}') IS NOT NULL AS created;
COMMIT;
BEGIN;
SELECT repo_stream.refresh_view('vsec_adm.meddler3') AS applied;
SELECT * FROM settings_changed;
SHOW transaction_read_only;
COMMIT;
RESET ROLE;
-- what the handler could set (undone after the call) and could not
SELECT mode, guc, result, count(*) FROM vsec.attempts GROUP BY 1, 2, 3 ORDER BY 1, 2, 3;
SELECT name, cursor = (SELECT max(seq) FROM repo_stream.event_log) AS at_head, last_error
FROM repo_stream.view_status WHERE name LIKE 'vsec_adm.meddler%' ORDER BY name;
SELECT rolsuper AS adm_is_superuser FROM pg_roles WHERE rolname = 'regress_vsec_adm';
SELECT count(*) AS planted_calls FROM vsec.ran;

-- ---------------------------------------------------------------- views belong to their creator (F-L7)
SET ROLE regress_vsec_adm;
SELECT repo_stream.create_count_view('vsec_adm.likes', 'com.example.vsec.like', 'subject.uri');
SELECT repo_stream.put_record('did:plc:vsec', 'com.example.vsec.like', 'l3', '{"subject": {"uri": "at://vsec/1"}}') IS NOT NULL AS created;
RESET ROLE;
SET ROLE regress_vsec_adm2;
SELECT repo_stream.refresh_view('vsec_adm.hv');
SELECT repo_stream.refresh_view('vsec_adm.likes');
SELECT repo_stream.drop_view('vsec_adm.hv');
SELECT repo_stream.drop_view('vsec_adm.likes');
-- reads stay open to readers
SELECT count FROM vsec_adm.likes WHERE key = 'at://vsec/1';
SELECT repo_stream.view_count_live('vsec_adm.likes', 'at://vsec/1') AS live;
SELECT name, lag_events FROM repo_stream.view_status WHERE name = 'vsec_adm.likes';
RESET ROLE;
-- the owner may, and so may a superuser
SET ROLE regress_vsec_adm;
SELECT repo_stream.refresh_view('vsec_adm.likes') AS applied;
RESET ROLE;
SELECT repo_stream.refresh_view('vsec_adm.hv') AS applied;
SELECT repo_stream.drop_view('vsec_adm.likes');

-- ---------------------------------------------------------------- a handler that changed (F-L6)
-- A superuser's view over a handler that another role owns: the owner
-- replaces the body to make itself superuser at the next refresh.
SET ROLE regress_vsec_nobody;
CREATE FUNCTION vsec_nob.h(seq bigint, did text, action text, path text, record jsonb) RETURNS void
LANGUAGE plpgsql AS $$ BEGIN NULL; END $$;
RESET ROLE;
SELECT repo_stream.create_handler_view('vsec.su_view', 'vsec_nob.h(bigint,text,text,text,jsonb)', 'com.example.vsec.like');
SET ROLE regress_vsec_nobody;
CREATE OR REPLACE FUNCTION vsec_nob.h(seq bigint, did text, action text, path text, record jsonb) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
	INSERT INTO vsec.ran SELECT 'vsec_nob.h', current_user, rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user;
	IF (SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user) THEN
		EXECUTE 'ALTER ROLE regress_vsec_nobody SUPERUSER';
	END IF;
END $$;
RESET ROLE;
SELECT repo_stream.put_record('did:plc:vsec', 'com.example.vsec.like', 'l4', '{"subject": {"uri": "at://vsec/4"}}') IS NOT NULL AS created;
\set VERBOSITY sqlstate
SELECT repo_stream.refresh_view('vsec.su_view');
\set VERBOSITY default
SELECT repo_stream.refresh_view('vsec.su_view');
SELECT rolsuper AS nobody_is_superuser FROM pg_roles WHERE rolname = 'regress_vsec_nobody';
-- a security or settings change is a change too
SET ROLE regress_vsec_nobody;
CREATE OR REPLACE FUNCTION vsec_nob.h(seq bigint, did text, action text, path text, record jsonb) RETURNS void
LANGUAGE plpgsql AS $$ BEGIN NULL; END $$;
RESET ROLE;
SELECT repo_stream.refresh_view('vsec.su_view') AS applied_back_as_recorded;
ALTER FUNCTION vsec_nob.h(bigint, text, text, text, jsonb) SECURITY DEFINER;
SELECT repo_stream.refresh_view('vsec.su_view');
ALTER FUNCTION vsec_nob.h(bigint, text, text, text, jsonb) SECURITY INVOKER SET search_path = vsec_nob;
SELECT repo_stream.refresh_view('vsec.su_view');
ALTER FUNCTION vsec_nob.h(bigint, text, text, text, jsonb) RESET ALL;
-- what does not change behaviour (its cost, its name) is no change
ALTER FUNCTION vsec_nob.h(bigint, text, text, text, jsonb) COST 5;
ALTER FUNCTION vsec_nob.h(bigint, text, text, text, jsonb) RENAME TO h2;
SELECT repo_stream.refresh_view('vsec.su_view') AS applied;
-- a new owner is refused
ALTER FUNCTION vsec_nob.h2(bigint, text, text, text, jsonb) OWNER TO regress_vsec_adm2;
SELECT repo_stream.put_record('did:plc:vsec', 'com.example.vsec.like', 'l5', '{"subject": {"uri": "at://vsec/5"}}') IS NOT NULL AS created;
\set VERBOSITY sqlstate
SELECT repo_stream.refresh_view('vsec.su_view');
\set VERBOSITY default
SELECT repo_stream.refresh_view('vsec.su_view');
-- the creator's session too: a refused handler cannot be created over
-- either (the fill runs it), and a re-created view runs the new handler
SELECT repo_stream.drop_view('vsec.su_view');
SELECT repo_stream.create_handler_view('vsec.su_view', 'vsec_nob.h2(bigint,text,text,text,jsonb)', 'com.example.vsec.like');
SELECT repo_stream.refresh_view('vsec.su_view') AS applied;
SELECT rolsuper AS nobody_is_superuser FROM pg_roles WHERE rolname = 'regress_vsec_nobody';
SELECT count(*) AS planted_calls FROM vsec.ran;
SELECT repo_stream.drop_view('vsec.su_view');

-- ---------------------------------------------------------------- the time budget (F-M2)
SET repo_stream.view_handler_timeout = '300ms';
SHOW repo_stream.view_handler_timeout;
CREATE FUNCTION vsec.sleepy(seq bigint, did text, action text, path text, record jsonb) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
	IF (SELECT c.mode FROM vsec.ctl c) = 'sleep' THEN
		PERFORM pg_catalog.pg_sleep(30);
	ELSIF (SELECT c.mode FROM vsec.ctl c) = 'catch' THEN
		BEGIN
			PERFORM pg_catalog.pg_sleep(30);
		EXCEPTION WHEN query_canceled THEN
			NULL;	-- and return as if nothing happened
		END;
	END IF;
END $$;
UPDATE vsec.ctl SET mode = 'fast';
SELECT repo_stream.create_handler_view('vsec.sleepy', 'vsec.sleepy(bigint,text,text,text,jsonb)', 'com.example.vsec.like');
SELECT repo_stream.put_record('did:plc:vsec', 'com.example.vsec.like', 'l6', '{"subject": {"uri": "at://vsec/6"}}') IS NOT NULL AS created;
UPDATE vsec.ctl SET mode = 'sleep';
CREATE TEMP TABLE t0 AS SELECT clock_timestamp() AS t;
SELECT repo_stream.refresh_view('vsec.sleepy');
SELECT clock_timestamp() - t < interval '10 s' AS cut_short FROM t0;
UPDATE vsec.ctl SET mode = 'catch';
SELECT repo_stream.refresh_view('vsec.sleepy');
-- the session goes on (the budget's cancel is not left pending)
SELECT 1 AS still_fine;
SELECT name, lag_events FROM repo_stream.view_status WHERE name = 'vsec.sleepy';
-- statement_timeout and the budget are independent
SET statement_timeout = '20s';
UPDATE vsec.ctl SET mode = 'sleep';
SELECT repo_stream.refresh_view('vsec.sleepy');
RESET statement_timeout;
UPDATE vsec.ctl SET mode = 'fast';
SELECT repo_stream.refresh_view('vsec.sleepy') AS applied;
RESET repo_stream.view_handler_timeout;
-- only a superuser sets it
SET ROLE regress_vsec_adm;
SET repo_stream.view_handler_timeout = '1h';
RESET ROLE;
SELECT repo_stream.drop_view('vsec.sleepy');

-- ---------------------------------------------------------------- clean up
SET ROLE regress_vsec_adm;
DROP VIEW settings_changed;
DROP TABLE settings_before;
RESET ROLE;
SELECT repo_stream.drop_view(name) FROM repo_stream.view_status WHERE name LIKE 'vsec%' ORDER BY name;
SELECT repo_stream.delete_repo('did:plc:vsec');
DROP SCHEMA vsec, vsec_adm, vsec_nob CASCADE;
DROP ROLE regress_vsec_adm, regress_vsec_adm2, regress_vsec_nobody;
