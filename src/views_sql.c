/*
 * views_sql.c - the SQL surface of computed views: create_count_view,
 * create_handler_view, refresh_view, drop_view, view_count_live, and the
 * catalog (repo_stream.views) behind them.  The engine is in
 * views_refresh_sql.c; docs/views.md has the design.
 *
 * Names.  A view's name is schema-qualified like a table's: a count view's
 * name is its count table's, and an unqualified name is created in the
 * first schema of search_path (as CREATE TABLE does) and looked up along
 * search_path.  The catalog keeps the canonical form, quoted where SQL
 * needs it ("public.like_counts").
 *
 * Privileges.  These functions run their SQL as the owner of schema
 * repo_stream with search_path pinned (rs_enter_owner); name resolution and
 * privilege checks happen before, as the caller.  Count and memory tables
 * are owned by that owner and are members of the extension: only
 * drop_view (or DROP EXTENSION) removes them, and pg_dump leaves them out,
 * as it leaves out the catalog (views are recreated after a restore).
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/dependency.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "catalog/pg_extension.h"
#include "catalog/pg_type.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/regproc.h"

#include "spi_sql.h"
#include "syntax.h"
#include "views_sql.h"

PG_FUNCTION_INFO_V1(rs_create_count_view);
PG_FUNCTION_INFO_V1(rs_create_handler_view);
PG_FUNCTION_INFO_V1(rs_refresh_view);
PG_FUNCTION_INFO_V1(rs_drop_view);
PG_FUNCTION_INFO_V1(rs_view_count_live);
PG_FUNCTION_INFO_V1(rs_view_key);
PG_FUNCTION_INFO_V1(rs_view_handler_digest_sql);

#define VIEW_COLUMNS "id, name, kind, collection, group_by, count_table, handler, owner, cursor,"

/*
 * Does the catalog record handlers (0.2.0's handler_owner, handler_digest)?
 * A database still on 0.1.0 has neither until ALTER EXTENSION ... UPDATE:
 * its count views work as before; its handlers are never run (unrecorded).
 */
static bool
views_record_handlers(void)
{
	return get_attnum(rs_relation_oid("views"), "handler_digest") != InvalidAttrNumber;
}

/* The columns view_from_row reads. */
static const char *
view_columns(void)
{
	return views_record_handlers()
		? VIEW_COLUMNS " handler_owner, handler_digest"
		: VIEW_COLUMNS " NULL::oid, NULL::bytea";
}

/* ------------------------------------------------------------ keys from jsonb */

text *
rs_view_jsonb_key(Jsonb *record, const ViewPath *path)
{
	JsonbContainer *c = &record->root;
	JsonbValue	buf,
			   *v = NULL;

	for (int i = 0; i < path->n_segs; i++)
	{
		/* a scalar record is a one-element array: not an object either */
		if (!JsonContainerIsObject(c))
			return NULL;
		v = getKeyJsonValueFromContainer(c, path->segs[i], path->lens[i], &buf);
		if (v == NULL)
			return NULL;
		if (i + 1 < path->n_segs)
		{
			if (v->type != jbvBinary)
				return NULL;
			c = v->val.binary.data;
		}
	}
	if (v == NULL || v->type != jbvString || v->val.string.len > VIEW_KEY_MAX_LEN)
		return NULL;
	return cstring_to_text_with_len(v->val.string.val, v->val.string.len);
}

/* The parsed path of a text[] argument, cached for the query. */
typedef struct KeyPathCache
{
	bytea	   *raw;			/* the array's bytes, to notice a change */
	char	   *text;			/* segments joined by dots; ViewPath points here */
	ViewPath	path;
} KeyPathCache;

/*
 * _view_key(record jsonb, path text[]) -> text: the string at path, NULL
 * when missing or not a string (views_path.h has the rules).  ERROR 22023
 * for a path view_path_parse refuses.
 */
Datum
rs_view_key(PG_FUNCTION_ARGS)
{
	Jsonb	   *record = PG_GETARG_JSONB_P(0);
	ArrayType  *arr = PG_GETARG_ARRAYTYPE_P(1);
	KeyPathCache *cache = fcinfo->flinfo->fn_extra;
	Size		arr_len = VARSIZE(arr);
	text	   *key;

	if (cache == NULL || VARSIZE(cache->raw) != arr_len || memcmp(cache->raw, arr, arr_len) != 0)
	{
		MemoryContext old = MemoryContextSwitchTo(fcinfo->flinfo->fn_mcxt);
		Datum	   *elems;
		bool	   *nulls;
		int			n;
		StringInfoData s;
		char		err[256];

		cache = palloc0(sizeof(KeyPathCache));
		cache->raw = palloc(arr_len);
		memcpy(cache->raw, arr, arr_len);
		deconstruct_array(arr, TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, &n);
		initStringInfo(&s);
		for (int i = 0; i < n; i++)
		{
			if (nulls[i])
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("a path segment is NULL")));
			appendStringInfo(&s, "%s%s", i ? "." : "", TextDatumGetCString(elems[i]));
		}
		cache->text = s.data;
		if (!view_path_parse(s.data, s.len, &cache->path, err, sizeof(err)) || cache->path.by_did)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid group_by path \"%s\": %s", s.data,
							cache->path.by_did ? "$did is not a path in the record" : err)));
		fcinfo->flinfo->fn_extra = cache;
		MemoryContextSwitchTo(old);
	}
	key = rs_view_jsonb_key(record, &cache->path);
	if (key == NULL)
		PG_RETURN_NULL();
	PG_RETURN_TEXT_P(key);
}

/* ------------------------------------------------------------ names */

static char *
arg_text(FunctionCallInfo fcinfo, int n, const char *what)
{
	if (PG_ARGISNULL(n))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s must not be NULL", what)));
	return text_to_cstring(PG_GETARG_TEXT_PP(n));
}

/* The canonical names a name may mean, in search_path order (as the caller). */
static Datum
name_candidates(const char *name)
{
	RangeVar   *rv = makeRangeVarFromNameList(stringToQualifiedNameList(name));
	List	   *path;
	ListCell   *lc;
	Datum	   *elems;
	int			n = 0;

	if (rv->schemaname)
	{
		elems = palloc(sizeof(Datum));
		elems[n++] = CStringGetTextDatum(quote_qualified_identifier(rv->schemaname, rv->relname));
	}
	else
	{
		path = fetch_search_path(false);
		elems = palloc(sizeof(Datum) * Max(list_length(path), 1));
		foreach(lc, path)
		{
			char	   *nsp = get_namespace_name(lfirst_oid(lc));

			if (nsp)
				elems[n++] = CStringGetTextDatum(quote_qualified_identifier(nsp, rv->relname));
		}
	}
	return PointerGetDatum(construct_array(elems, n, TEXTOID, -1, false, TYPALIGN_INT));
}

/* Where a new view named name goes (as the caller); *relname gets its last part. */
static char *
creation_name(const char *name, Oid *nsp, char **relname)
{
	RangeVar   *rv = makeRangeVarFromNameList(stringToQualifiedNameList(name));

	rv->relpersistence = RELPERSISTENCE_PERMANENT;
	*nsp = RangeVarGetCreationNamespace(rv);
	*relname = rv->relname;
	return quote_qualified_identifier(get_namespace_name(*nsp), rv->relname);
}

/* ------------------------------------------------------------ catalog */

static void
view_from_row(ViewDef *v)
{
	bool		isnull;
	char		err[256];
	Datum		d;

	memset(v, 0, sizeof(*v));
	v->id = DatumGetInt32(rs_getdatum(0, 1, &isnull));
	v->name = rs_gettext(0, 2);
	v->is_count = strcmp(rs_gettext(0, 3), "count") == 0;
	v->collection = rs_gettext(0, 4);
	v->group_by = rs_gettext(0, 5);
	d = rs_getdatum(0, 6, &isnull);
	v->count_table = isnull ? InvalidOid : DatumGetObjectId(d);
	d = rs_getdatum(0, 7, &isnull);
	v->handler = isnull ? InvalidOid : DatumGetObjectId(d);
	v->owner = DatumGetObjectId(rs_getdatum(0, 8, &isnull));
	v->cursor = DatumGetInt64(rs_getdatum(0, 9, &isnull));
	d = rs_getdatum(0, 10, &isnull);
	v->handler_owner = isnull ? InvalidOid : DatumGetObjectId(d);
	{
		bytea	   *digest = rs_getbytea(0, 11);

		v->has_digest = digest != NULL && VARSIZE_ANY_EXHDR(digest) == VIEW_HANDLER_DIGEST_LEN;
		if (v->has_digest)
			memcpy(v->handler_digest, VARDATA_ANY(digest), VIEW_HANDLER_DIGEST_LEN);
	}
	if (v->is_count)
	{
		char	   *rel = OidIsValid(v->count_table) ? get_rel_name(v->count_table) : NULL;

		if (!view_path_parse(v->group_by, strlen(v->group_by), &v->path, err, sizeof(err)))
			ereport(ERROR,
					(errcode(ERRCODE_DATA_CORRUPTED),
					 errmsg("view \"%s\" has an invalid group_by path \"%s\": %s", v->name, v->group_by, err)));
		if (rel)
			v->count_rel = quote_qualified_identifier(get_namespace_name(get_rel_namespace(v->count_table)), rel);
		if (!v->path.by_did)
			v->memory_rel = psprintf("repo_stream.view_memory_%d", v->id);
	}
}

static const char *
lock_clause(ViewLock lock)
{
	return lock == VIEW_LOCK_WAIT ? " FOR UPDATE" : lock == VIEW_LOCK_SKIP ? " FOR UPDATE SKIP LOCKED" : "";
}

/* The first view of the candidates (name_candidates) that exists. */
static bool
view_load(Datum candidates, ViewLock lock, ViewDef *out)
{
	Oid			type = TEXTARRAYOID;

	if (SPI_execute_with_args(psprintf("SELECT %s FROM repo_stream.views"
									   " WHERE name = ANY ($1) ORDER BY array_position($1, name) LIMIT 1%s",
									   view_columns(), lock_clause(lock)),
							  1, &type, &candidates, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "reading repo_stream.views failed");
	if (SPI_processed == 0)
		return false;
	view_from_row(out);
	return true;
}

bool
rs_view_load_id(int32 id, ViewLock lock, ViewDef *out)
{
	Oid			type = INT4OID;
	Datum		arg = Int32GetDatum(id);

	if (SPI_execute_with_args(psprintf("SELECT %s FROM repo_stream.views WHERE id = $1%s",
									   view_columns(), lock_clause(lock)),
							  1, &type, &arg, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "reading repo_stream.views failed");
	if (SPI_processed == 0)
		return false;
	view_from_row(out);
	return true;
}

void
rs_view_set_error(int32 id, const char *message)
{
	Oid			types[2] = {INT4OID, TEXTOID};
	Datum		args[2] = {Int32GetDatum(id), CStringGetTextDatum(message)};

	SPI_execute_with_args("UPDATE repo_stream.views SET last_error = $2, last_error_at = now() WHERE id = $1",
						  2, types, args, NULL, false, 0);
}

/* candidates: name_candidates(name), made before rs_enter_owner pinned search_path */
static void
load_or_error(const char *name, Datum candidates, ViewLock lock, ViewDef *v)
{
	if (!view_load(candidates, lock, v))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("view \"%s\" does not exist", name),
				 errhint("repo_stream.view_status lists the views.")));
}

/*
 * Views belong to their creator: only it (a role with its privileges) or a
 * superuser refreshes, rebuilds or drops one.  caller: the calling role,
 * read before rs_enter_owner.
 */
static void
check_view_owner(const ViewDef *v, Oid caller, const char *what)
{
	if (!has_privs_of_role(caller, v->owner))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("must be the owner of view \"%s\" to %s it", v->name, what),
				 errdetail("View \"%s\" belongs to role \"%s\".", v->name,
						   GetUserNameFromId(v->owner, true) ? GetUserNameFromId(v->owner, true) : "(dropped)"),
				 errhint("Only the role that created a view, or a superuser, may refresh or drop it.")));
}

static void
check_not_busy(void)
{
	if (rs_views_busy)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("a view handler cannot create, refresh or drop views")));
}

static void
check_name_free(const char *canonical)
{
	Datum		name = CStringGetTextDatum(canonical);
	Oid			type = TEXTOID;

	SPI_execute_with_args("SELECT 1 FROM repo_stream.views WHERE name = $1", 1, &type, &name, NULL, false, 0);
	if (SPI_processed > 0)
		ereport(ERROR,
				(errcode(ERRCODE_DUPLICATE_TABLE),
				 errmsg("view \"%s\" already exists", canonical)));
}

/*
 * Insert the catalog row; returns the view's id.  A handler view records
 * its handler's owner and digest (rs_view_handler_digest) as of now.
 */
static int32
insert_view(const char *name, const char *kind, const char *collection,
			const char *group_by, Oid handler, Oid owner)
{
	Oid			types[8] = {TEXTOID, TEXTOID, TEXTOID, TEXTOID, OIDOID, OIDOID, OIDOID, BYTEAOID};
	Datum		args[8];
	char		nulls[8] = {' ', ' ', ' ', ' ', ' ', ' ', 'n', 'n'};
	bool		isnull;

	args[0] = CStringGetTextDatum(name);
	args[1] = CStringGetTextDatum(kind);
	args[2] = collection ? CStringGetTextDatum(collection) : (Datum) 0;
	nulls[2] = collection ? ' ' : 'n';
	args[3] = group_by ? CStringGetTextDatum(group_by) : (Datum) 0;
	nulls[3] = group_by ? ' ' : 'n';
	args[4] = ObjectIdGetDatum(handler);
	nulls[4] = OidIsValid(handler) ? ' ' : 'n';
	args[5] = ObjectIdGetDatum(owner);
	if (OidIsValid(handler) && !views_record_handlers())
		ereport(ERROR,
				(errcode(ERRCODE_VIEW_HANDLER_CHANGED),
				 errmsg("cannot create handler view \"%s\": the catalog of repo_stream 0.1.0 cannot record its handler", name),
				 errhint("Update the extension first: ALTER EXTENSION repo_stream UPDATE.")));
	if (!OidIsValid(handler))
		SPI_execute_with_args("INSERT INTO repo_stream.views (name, kind, collection, group_by, handler, owner, cursor)"
							  " VALUES ($1, $2, $3, $4, $5, $6, 0) RETURNING id",
							  6, types, args, nulls, false, 0);
	else
	{
		Oid			handler_owner;
		uint8		digest[VIEW_HANDLER_DIGEST_LEN];

		rs_view_handler_digest(handler, &handler_owner, digest);
		args[6] = ObjectIdGetDatum(handler_owner);
		args[7] = PointerGetDatum(rs_bytea(digest, VIEW_HANDLER_DIGEST_LEN));
		nulls[6] = nulls[7] = ' ';
		SPI_execute_with_args("INSERT INTO repo_stream.views (name, kind, collection, group_by, handler, owner, cursor,"
							  " handler_owner, handler_digest)"
							  " VALUES ($1, $2, $3, $4, $5, $6, 0, $7, $8) RETURNING id",
							  8, types, args, nulls, false, 0);
	}
	return DatumGetInt32(rs_getdatum(0, 1, &isnull));
}

static void
check_collection(const char *collection)
{
	if (!nsid_valid(collection, strlen(collection)))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid collection NSID: \"%s\"", collection),
				 errhint("Collections are NSIDs such as app.bsky.feed.like.")));
}

/* Fill the view just inserted (inside rs_enter_owner). */
static void
fill_new_view(int32 id)
{
	ViewDef		v;

	if (!rs_view_load_id(id, VIEW_LOCK_NONE, &v))
		elog(ERROR, "view %d vanished", id);
	rs_views_busy = true;
	PG_TRY();
	{
		rs_view_fill(&v);
	}
	PG_FINALLY();
	{
		rs_views_busy = false;
	}
	PG_END_TRY();
}

static void
exec_sql(const char *sql)
{
	if (SPI_execute(sql, false, 0) < 0)
		elog(ERROR, "\"%s\" failed", sql);
}

/* A table the extension owns: dropped with it, left out of pg_dump. */
static void
make_member(const char *rel)
{
	exec_sql(psprintf("ALTER EXTENSION repo_stream ADD TABLE %s", rel));
}

static void
drop_member(Oid relid, const char *rel)
{
	Oid			ext = get_extension_oid("repo_stream", false);

	if (!OidIsValid(relid) || get_rel_name(relid) == NULL)
		return;
	if (getExtensionOfObject(RelationRelationId, relid) == ext)
		exec_sql(psprintf("ALTER EXTENSION repo_stream DROP TABLE %s", rel));
	exec_sql(psprintf("DROP TABLE %s", rel));
}

/* ------------------------------------------------------------ SQL functions */

/*
 * create_count_view(name text, collection text, group_by text) -> void
 *
 * Creates table name (key text PRIMARY KEY, count bigint NOT NULL), one row
 * per key whose count is not zero, readable by repo_stream_reader, filled
 * from the current records of collection with an exact handoff to the log
 * (rs_seq_horizon).  group_by: a dotted path of map keys into the record,
 * or $did.  ERROR 22023 for an invalid collection or path, 42P07 if the
 * view or a relation of that name exists, 42501 without CREATE on the
 * schema.
 */
Datum
rs_create_count_view(PG_FUNCTION_ARGS)
{
	char	   *name = arg_text(fcinfo, 0, "name");
	char	   *collection = arg_text(fcinfo, 1, "collection");
	char	   *group_by = arg_text(fcinfo, 2, "group_by");
	ViewPath	path;
	char		err[256];
	Oid			nsp,
				owner = GetUserId();
	char	   *relname,
			   *canonical;
	AclResult	acl;
	RsOwnerContext oc;
	int32		id;

	check_not_busy();
	check_collection(collection);
	if (!view_path_parse(group_by, strlen(group_by), &path, err, sizeof(err)))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid group_by path \"%s\": %s", group_by, err),
				 errhint("A group_by is a dotted path of map keys such as subject.uri, or $did.")));
	canonical = creation_name(name, &nsp, &relname);
	acl = pg_namespace_aclcheck(nsp, owner, ACL_CREATE);
	if (acl != ACLCHECK_OK)
		aclcheck_error(acl, OBJECT_SCHEMA, get_namespace_name(nsp));

	rs_enter_owner(&oc);
	check_name_free(canonical);
	if (OidIsValid(get_relname_relid(relname, nsp)))
		ereport(ERROR,
				(errcode(ERRCODE_DUPLICATE_TABLE),
				 errmsg("relation \"%s\" already exists", canonical)));
	id = insert_view(canonical, "count", collection, group_by, InvalidOid, owner);
	/*
	 * Keys compare bytewise (COLLATE "C"): they are URIs and DIDs, and every
	 * refresh probes the primary key once per key it changes.  Room on each
	 * page lets a count's update stay on its page (HOT, no index entry).
	 */
	exec_sql(psprintf("CREATE TABLE %s (key text COLLATE \"C\" PRIMARY KEY, count bigint NOT NULL)"
					  " WITH (fillfactor = 70)", canonical));
	exec_sql(psprintf("COMMENT ON TABLE %s IS %s", canonical,
					  quote_literal_cstr(psprintf("repo_stream count view: records of %s by %s", collection, group_by))));
	exec_sql(psprintf("GRANT SELECT ON %s TO repo_stream_reader", canonical));
	make_member(canonical);
	if (!path.by_did)
	{
		char	   *mem = psprintf("repo_stream.view_memory_%d", id);

		/*
		 * What each counted record was counted under (its old key on update
		 * or delete), found by h, the path's hash (views_store_sql.c).  The
		 * fill adds the index on h afterwards.
		 */
		exec_sql(psprintf("CREATE TABLE %s (h bigint NOT NULL, did text COLLATE \"C\" NOT NULL,"
						  " rkey text COLLATE \"C\" NOT NULL, key text NOT NULL)", mem));
		make_member(mem);
	}
	{
		Oid			types[2] = {INT4OID, OIDOID};
		Datum		args[2] = {Int32GetDatum(id), ObjectIdGetDatum(get_relname_relid(relname, nsp))};

		SPI_execute_with_args("UPDATE repo_stream.views SET count_table = $2 WHERE id = $1",
							  2, types, args, NULL, false, 0);
	}
	fill_new_view(id);
	rs_leave_owner(&oc);
	PG_RETURN_VOID();
}

/*
 * create_handler_view(name text, handler regprocedure, collection text
 * DEFAULT NULL) -> void
 *
 * A view that calls handler(seq bigint, did text, action text, path text,
 * record jsonb) as the creating role: now with "create" for every existing
 * record (seq: the horizon), then, at each refresh, once per op in seq
 * order ("create", "update", "delete"), with "delete_repo" when a repo is
 * deleted, and with "reset" before a rebuild.  With collection set it sees
 * only that collection's ops.  ERROR 42P13 for a function that cannot be
 * a handler, 42501 without EXECUTE on it, 42P07 if the name is taken,
 * 22023 for an invalid collection, 22004 for a NULL name or handler.
 */
Datum
rs_create_handler_view(PG_FUNCTION_ARGS)
{
	char	   *name = arg_text(fcinfo, 0, "name");
	Oid			handler,
				nsp,
				owner = GetUserId();
	char	   *collection = PG_ARGISNULL(2) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(2));
	char	   *relname,
			   *canonical;
	AclResult	acl;
	RsOwnerContext oc;
	int32		id;

	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("handler must not be NULL")));
	handler = PG_GETARG_OID(1);
	check_not_busy();
	if (collection)
		check_collection(collection);
	rs_view_check_handler(handler);
	acl = pg_proc_aclcheck(handler, owner, ACL_EXECUTE);
	if (acl != ACLCHECK_OK)
		aclcheck_error(acl, OBJECT_FUNCTION, get_func_name(handler));
	canonical = creation_name(name, &nsp, &relname);

	rs_enter_owner(&oc);
	check_name_free(canonical);
	id = insert_view(canonical, "handler", collection, NULL, handler, owner);
	fill_new_view(id);
	rs_leave_owner(&oc);
	PG_RETURN_VOID();
}

/*
 * refresh_view(name text, max_events int DEFAULT NULL) -> bigint
 *
 * Applies the events after the view's cursor (all up to the horizon, or at
 * most max_events) in the caller's transaction, with the cursor's advance:
 * a rolled-back refresh leaves the view as it was.  Refreshes of one view
 * serialize on its catalog row; different views refresh in parallel.  A
 * view whose cursor predates the retained log is rebuilt from the records
 * (rebuilds + 1; returns 0).  Returns the number of events applied.
 * ERROR 42704 for an unknown view, 22023 for max_events <= 0, 0A000 in a
 * REPEATABLE READ or SERIALIZABLE transaction, 55000 from a view handler.
 */
Datum
rs_refresh_view(PG_FUNCTION_ARGS)
{
	char	   *name = arg_text(fcinfo, 0, "name");
	int64		max_events = 0;
	int64		applied = 0;
	Oid			caller = GetUserId();
	RsOwnerContext oc;
	ViewDef		v;

	if (!PG_ARGISNULL(1))
	{
		max_events = PG_GETARG_INT32(1);
		if (max_events <= 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("max_events must be positive, not " INT64_FORMAT, max_events)));
	}
	check_not_busy();
	{
		Datum		candidates = name_candidates(name);

		rs_enter_owner(&oc);
		/* refused before waiting for the view's lock, and again once it is held */
		load_or_error(name, candidates, VIEW_LOCK_NONE, &v);
		check_view_owner(&v, caller, "refresh");
		load_or_error(name, candidates, VIEW_LOCK_WAIT, &v);
	}
	check_view_owner(&v, caller, "refresh");
	rs_views_busy = true;
	PG_TRY();
	{
		applied = rs_view_refresh(&v, 0, max_events, 0);
	}
	PG_FINALLY();
	{
		rs_views_busy = false;
	}
	PG_END_TRY();
	rs_leave_owner(&oc);
	PG_RETURN_INT64(applied);
}

/*
 * drop_view(name text) -> void: drops the view, its count table and its
 * memory.  Waits for a refresh of the view in progress.  ERROR 42704 for
 * an unknown view.
 */
Datum
rs_drop_view(PG_FUNCTION_ARGS)
{
	char	   *name = arg_text(fcinfo, 0, "name");
	Oid			caller = GetUserId();
	Datum		candidates;
	RsOwnerContext oc;
	ViewDef		v;

	check_not_busy();
	candidates = name_candidates(name);
	rs_enter_owner(&oc);
	load_or_error(name, candidates, VIEW_LOCK_NONE, &v);
	check_view_owner(&v, caller, "drop");
	load_or_error(name, candidates, VIEW_LOCK_WAIT, &v);
	check_view_owner(&v, caller, "drop");
	if (v.count_rel)
		drop_member(v.count_table, v.count_rel);
	if (v.memory_rel)
		drop_member(get_relname_relid(psprintf("view_memory_%d", v.id), rs_schema_oid()), v.memory_rel);
	{
		Oid			type = INT4OID;
		Datum		arg = Int32GetDatum(v.id);

		SPI_execute_with_args("DELETE FROM repo_stream.views WHERE id = $1", 1, &type, &arg, NULL, false, 0);
	}
	rs_leave_owner(&oc);
	PG_RETURN_VOID();
}

/*
 * view_count_live(name text, key text) -> bigint
 *
 * The count of key as of now: the stored count plus the effect of the
 * events after the view's cursor, computed under one snapshot taken at a
 * fresh horizon, without writing anything.  Cost grows with the view's
 * lag, not with its table.  A view whose cursor predates the retained log
 * is counted from the records instead (a scan of the collection).
 * ERROR 42704 for an unknown view, 42809 for a handler view.
 */
Datum
rs_view_count_live(PG_FUNCTION_ARGS)
{
	char	   *name = arg_text(fcinfo, 0, "name");
	char	   *key = arg_text(fcinfo, 1, "key");
	Datum		candidates = name_candidates(name);
	RsOwnerContext oc;
	ViewDef		v;
	int64		n;

	rs_enter_owner(&oc);
	load_or_error(name, candidates, VIEW_LOCK_NONE, &v);
	if (!v.is_count)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("view \"%s\" is a handler view, not a count view", v.name)));
	n = rs_view_live(&v, key);
	rs_leave_owner(&oc);
	PG_RETURN_INT64(n);
}

/*
 * _view_handler_digest(handler regprocedure) -> bytea: what a handler view
 * records of its handler (rs_view_handler_digest); for the upgrade from
 * 0.1.0, which records it for the views made before.
 */
Datum
rs_view_handler_digest_sql(PG_FUNCTION_ARGS)
{
	Oid			owner;
	uint8		digest[VIEW_HANDLER_DIGEST_LEN];

	rs_view_handler_digest(PG_GETARG_OID(0), &owner, digest);
	PG_RETURN_BYTEA_P(rs_bytea(digest, VIEW_HANDLER_DIGEST_LEN));
}
