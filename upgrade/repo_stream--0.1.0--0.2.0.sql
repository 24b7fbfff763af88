-- repo_stream 0.1.0 -> 0.2.0 (ALTER EXTENSION repo_stream UPDATE).
-- Every change to src/sql/ since 0.1.0 is repeated here, so that a database
-- on 0.1.0 ends with the same schema as a fresh install of 0.2.0
-- (test/t/090_upgrade.pl compares the two).  The digest line below is the
-- sha256 of src/sql/*.sql that this script brings a database up to; `make
-- check-upgrade` fails when src/sql changes and this file does not.
\echo Use "ALTER EXTENSION repo_stream UPDATE" to load this file. \quit
-- source digest: cf998d36a696af00120840fa10f45f6f54e8d68433fa2bd17cb1ca79547636b2

-- views: handler security (issue 17) -----------------------------------------
-- A handler view records its handler's owner and definition; refresh and
-- drop belong to the view's owner.
ALTER TABLE views ADD COLUMN handler_owner oid, ADD COLUMN handler_digest bytea;

CREATE FUNCTION _view_handler_digest(handler regprocedure) RETURNS bytea
	AS 'MODULE_PATHNAME', 'rs_view_handler_digest_sql' LANGUAGE C STABLE STRICT;
COMMENT ON FUNCTION _view_handler_digest(regprocedure) IS
	'internal: sha256 of the pg_proc fields that define what a handler does (owner, language, body, settings, security, ...)';
REVOKE EXECUTE ON FUNCTION _view_handler_digest(regprocedure) FROM PUBLIC;

-- Handler views made by 0.1.0 get their handler recorded as it is now only
-- where no other role could have changed it: it belongs to the view's
-- creator, or to a superuser.  The others are refused until re-created.
UPDATE views v SET handler_owner = p.proowner, handler_digest = _view_handler_digest(v.handler)
  FROM pg_catalog.pg_proc p
 WHERE v.kind = 'handler' AND p.oid = v.handler
   AND (p.proowner = v.owner
        OR (SELECT r.rolsuper FROM pg_catalog.pg_roles r WHERE r.oid = p.proowner));

COMMENT ON FUNCTION create_handler_view(text, regprocedure, text) IS
	'A view that calls handler(seq bigint, did text, action text, path text, record jsonb) in seq order, as the creating role, in a security-restricted operation within repo_stream.view_handler_timeout: create for every existing record now, then create/update/delete per op, delete_repo, reset before a rebuild; the handler''s owner and definition are recorded, and a changed handler is not run';
COMMENT ON FUNCTION refresh_view(text, int) IS
	'Apply the events after the view''s cursor (at most max_events), in this transaction with the cursor''s advance; rebuilds a view whose cursor left the retained window; returns the number of events applied; only the view''s owner or a superuser';
COMMENT ON FUNCTION drop_view(text) IS 'Drop a view, its count table and its memory; only the view''s owner or a superuser';
