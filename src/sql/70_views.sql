-- Computed views maintained from the event log (docs/views.md) ---------------

-- One row per view.  The count table (count views) and the memory table
-- (count views grouped by a path) are made by create_count_view, owned by
-- the extension's owner and members of the extension.
CREATE TABLE views (
	id			int GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	name		text NOT NULL UNIQUE,	-- schema-qualified, quoted where SQL needs it
	kind		text NOT NULL CHECK (kind IN ('count', 'handler')),
	collection	text,					-- NULL: every collection (handler views)
	group_by	text,					-- count views: a dotted path or $did
	count_table oid,					-- count views: pg_class oid of the table
	handler		oid,					-- handler views: pg_proc oid
	owner		oid NOT NULL,			-- the creating role: handlers run as it; only it refreshes or drops
	cursor		bigint NOT NULL,		-- seq of the last event applied
	last_refresh timestamptz,
	rebuilds	bigint NOT NULL DEFAULT 0,
	last_error	text,					-- the background worker's last failure
	last_error_at timestamptz,
	created_at	timestamptz NOT NULL DEFAULT now(),
	-- handler views: the handler's owner and _view_handler_digest at creation;
	-- a handler that differs is not run (NULL: not recorded, never run)
	handler_owner oid,
	handler_digest bytea
);
COMMENT ON TABLE views IS 'Computed views maintained from the event log; read repo_stream.view_status';

-- After a #sync that replaced a repo's records, the view read the repo's
-- records together with repos.last_seq: its events up to that seq are
-- already reflected and are skipped.
CREATE TABLE view_skips (
	view_id		int NOT NULL REFERENCES views ON DELETE CASCADE,
	did			text NOT NULL,
	through_seq bigint NOT NULL,
	PRIMARY KEY (view_id, did)
);
COMMENT ON TABLE view_skips IS 'Per view and repo: the seq through which a #sync''s rebuild already reflects the repo''s events (skipped when applied)';

CREATE VIEW view_status AS
SELECT v.name, v.kind, v.cursor,
	   (SELECT count(*) FROM repo_stream.event_log e WHERE e.seq > v.cursor) AS lag_events,
	   coalesce(greatest(0, extract(epoch FROM clock_timestamp() -
			(SELECT e.logged_at FROM repo_stream.event_log e WHERE e.seq > v.cursor ORDER BY e.seq LIMIT 1))),
			0)::float8 AS lag_seconds,
	   v.last_refresh, v.rebuilds, v.last_error, v.last_error_at,
	   v.collection, v.group_by, v.handler::regprocedure AS handler
FROM repo_stream.views v;
COMMENT ON VIEW view_status IS
	'One row per view: cursor, lag_events (retained events after the cursor), lag_seconds (age of the oldest unapplied event), last_refresh, rebuilds, last_error';

CREATE FUNCTION create_count_view(name text, collection text, group_by text) RETURNS void
	AS 'MODULE_PATHNAME', 'rs_create_count_view' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION create_count_view(text, text, text) IS
	'Create table name (key text PRIMARY KEY, count bigint NOT NULL) counting the records of collection by group_by (a dotted path, or $did), filled from the records with an exact handoff to the log';

CREATE FUNCTION create_handler_view(name text, handler regprocedure, collection text DEFAULT NULL)
	RETURNS void
	AS 'MODULE_PATHNAME', 'rs_create_handler_view' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION create_handler_view(text, regprocedure, text) IS
	'A view that calls handler(seq bigint, did text, action text, path text, record jsonb) in seq order, as the creating role, in a security-restricted operation within repo_stream.view_handler_timeout: create for every existing record now, then create/update/delete per op, delete_repo, reset before a rebuild; the handler''s owner and definition are recorded, and a changed handler is not run';

CREATE FUNCTION refresh_view(name text, max_events int DEFAULT NULL) RETURNS bigint
	AS 'MODULE_PATHNAME', 'rs_refresh_view' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION refresh_view(text, int) IS
	'Apply the events after the view''s cursor (at most max_events), in this transaction with the cursor''s advance; rebuilds a view whose cursor left the retained window; returns the number of events applied; only the view''s owner or a superuser';

CREATE FUNCTION drop_view(name text) RETURNS void
	AS 'MODULE_PATHNAME', 'rs_drop_view' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION drop_view(text) IS 'Drop a view, its count table and its memory; only the view''s owner or a superuser';

CREATE FUNCTION view_count_live(name text, key text) RETURNS bigint
	AS 'MODULE_PATHNAME', 'rs_view_count_live' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION view_count_live(text, text) IS
	'The count of key as of now: the stored count plus the effect of the events the view has not applied yet (cost grows with the lag)';

-- Internal: the group_by key of a records row (same rules as on DAG-CBOR).
CREATE FUNCTION _view_key(record jsonb, path text[]) RETURNS text
	AS 'MODULE_PATHNAME', 'rs_view_key' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION _view_key(jsonb, text[]) IS
	'internal: the string at path (map keys only) in a record, NULL when missing or not a string';

-- Internal: what a handler view records of its handler.
CREATE FUNCTION _view_handler_digest(handler regprocedure) RETURNS bytea
	AS 'MODULE_PATHNAME', 'rs_view_handler_digest_sql' LANGUAGE C STABLE STRICT;
COMMENT ON FUNCTION _view_handler_digest(regprocedure) IS
	'internal: sha256 of the pg_proc fields that define what a handler does (owner, language, body, settings, security, ...)';


REVOKE ALL ON views, view_skips, view_status FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION
	create_count_view(text, text, text), create_handler_view(text, regprocedure, text),
	refresh_view(text, int), drop_view(text), view_count_live(text, text), _view_key(jsonb, text[]),
	_view_handler_digest(regprocedure)
	FROM PUBLIC;
GRANT EXECUTE ON FUNCTION
	create_count_view(text, text, text), create_handler_view(text, regprocedure, text),
	refresh_view(text, int), drop_view(text)
	TO repo_stream_admin;
GRANT EXECUTE ON FUNCTION view_count_live(text, text) TO repo_stream_reader;
GRANT SELECT ON view_status TO repo_stream_reader;
