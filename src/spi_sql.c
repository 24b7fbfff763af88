/*
 * spi_sql.c - the extension's internal SQL, run as the extension owner.
 *
 * The write path runs inside the application's transaction and under its
 * role, which may only touch the records table.  Internal statements switch
 * to the owner of schema repo_stream (like SECURITY DEFINER) and pin
 * search_path, so no role can redirect them with its own operators.
 */
#include "postgres.h"

#include "catalog/namespace.h"
#include "catalog/pg_namespace.h"
#include "catalog/pg_type.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"

#include "cid.h"
#include "spi_sql.h"

typedef struct PlanDef
{
	const char *sql;
	int			nargs;
	Oid			argtypes[9];
} PlanDef;

static const PlanDef plan_defs[PLAN_COUNT] = {
	/*
	 * Only the lock: what is read while waiting for it would be stale when
	 * the wait ends (a key rotated meanwhile), so PLAN_REPO_STATE reads the
	 * state afterwards, with a snapshot taken after the wait.
	 */
	[PLAN_REPO_LOCK] = {
		"SELECT status FROM repo_stream.repos WHERE did = $1 FOR NO KEY UPDATE",
		1, {TEXTOID}
	},
	/* also the root node, which the commit at the end will need */
	[PLAN_REPO_STATE] = {
		"SELECT r.status, r.data_cid, r.head_rev, k.sealed, r.did_key, n.node"
		"  FROM repo_stream.repos r LEFT JOIN repo_stream.repo_keys k USING (did)"
		"  LEFT JOIN repo_stream.mst_nodes n ON n.did = r.did AND n.cid = r.data_cid"
		" WHERE r.did = $1",
		1, {TEXTOID}
	},
	[PLAN_NODE_GET] = {
		"SELECT node FROM repo_stream.mst_nodes WHERE did = $1 AND cid = $2",
		2, {TEXTOID, BYTEAOID}
	},
	/* one statement per commit batch: new nodes, dropped nodes, new head */
	[PLAN_REPO_PERSIST] = {
		"WITH ins AS (INSERT INTO repo_stream.mst_nodes (did, cid, rev, node)"
		"             SELECT $1, c, $3, n FROM unnest($6::bytea[], $7::bytea[]) AS u(c, n)),"
		"     del AS (DELETE FROM repo_stream.mst_nodes WHERE did = $1 AND cid = ANY ($8::bytea[]))"
		" UPDATE repo_stream.repos SET head_cid = $2, head_rev = $3, data_cid = $4,"
		" head_commit = $5, last_seq = $9 WHERE did = $1",
		9, {TEXTOID, TEXTOID, TEXTOID, BYTEAOID, BYTEAOID, BYTEAARRAYOID, BYTEAARRAYOID, BYTEAARRAYOID, INT8OID}
	},
	/* a repo whose events changed no head (#account only) */
	[PLAN_REPO_LAST_SEQ] = {
		"UPDATE repo_stream.repos SET last_seq = $2 WHERE did = $1",
		2, {TEXTOID, INT8OID}
	},
	[PLAN_EVENT_INSERT] = {
		"INSERT INTO repo_stream.event_log (seq, segment, did, kind, frame)"
		" VALUES ($1, $2, $3, $4, $5)",
		5, {INT8OID, INT4OID, TEXTOID, TEXTOID, BYTEAOID}
	},
	[PLAN_KEY_ROTATE] = {
		"WITH k AS (UPDATE repo_stream.repo_keys SET sealed = $2 WHERE did = $1)"
		" UPDATE repo_stream.repos SET did_key = $3 WHERE did = $1",
		3, {TEXTOID, BYTEAOID, TEXTOID}
	},
	[PLAN_KEY_HISTORY] = {
		"INSERT INTO repo_stream.repo_key_history (did, did_key, since_rev) VALUES ($1, $2, $3)",
		3, {TEXTOID, TEXTOID, TEXTOID}
	},
	[PLAN_SEQ_HORIZON] = {
		"SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM repo_stream.event_seq",
		0, {0}
	},
	[PLAN_LOG_STATE] = {
		"SELECT coalesce(s.current_segment, 0), coalesce(s.segment_start[s.current_segment + 1], 0),"
		"       coalesce(s.segment_started_at[s.current_segment + 1], now()), coalesce(s.pruned_through, 0)"
		"  FROM (SELECT) AS one LEFT JOIN repo_stream.log_state s ON true",
		0, {0}
	},
};

static SPIPlanPtr plans[PLAN_COUNT];
static Oid	schema_oid = InvalidOid;

Oid
rs_schema_oid(void)
{
	/* re-check each time: the extension may be dropped and re-created */
	schema_oid = get_namespace_oid("repo_stream", false);
	return schema_oid;
}

Oid
rs_relation_oid(const char *relname)
{
	Oid			relid = get_relname_relid(relname, rs_schema_oid());

	if (!OidIsValid(relid))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("repo_stream relation \"%s\" is missing", relname),
				 errhint("Reinstall the extension.")));
	return relid;
}

static Oid
schema_owner(void)
{
	Oid			nsp = rs_schema_oid();
	HeapTuple	tup = SearchSysCache1(NAMESPACEOID, ObjectIdGetDatum(nsp));
	Oid			owner;

	if (!HeapTupleIsValid(tup))
		elog(ERROR, "cache lookup failed for namespace %u", nsp);
	owner = ((Form_pg_namespace) GETSTRUCT(tup))->nspowner;
	ReleaseSysCache(tup);
	return owner;
}

void
rs_enter_owner(RsOwnerContext *ctx)
{
	Oid			owner = schema_owner();

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	GetUserIdAndSecContext(&ctx->saved_userid, &ctx->saved_sec_context);
	SetUserIdAndSecContext(owner, ctx->saved_sec_context | SECURITY_LOCAL_USERID_CHANGE);
	ctx->guc_nest_level = NewGUCNestLevel();
	(void) set_config_option("search_path", "pg_catalog, pg_temp",
							 PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE,
							 true, 0, false);
}

void
rs_leave_owner(RsOwnerContext *ctx)
{
	/*
	 * As if aborted: every setting made at this level goes, a plain SET
	 * (or set_config(..., false)) too, which a commit would keep.  No
	 * setting made in here (by user code it called, say) reaches the
	 * caller's session.
	 */
	AtEOXact_GUC(false, ctx->guc_nest_level);
	SetUserIdAndSecContext(ctx->saved_userid, ctx->saved_sec_context);
	SPI_finish();
}

uint64
rs_exec(RsPlanId id, Datum *values, const char *nulls)
{
	int			rc;

	if (plans[id] == NULL)
	{
		const PlanDef *def = &plan_defs[id];
		/* generic plans: these run per commit, and replanning costs more than they do */
		SPIPlanPtr	plan = SPI_prepare_cursor(def->sql, def->nargs, (Oid *) def->argtypes,
											  CURSOR_OPT_GENERIC_PLAN);

		if (plan == NULL)
			elog(ERROR, "SPI_prepare failed for \"%s\": %s", def->sql,
				 SPI_result_code_string(SPI_result));
		SPI_keepplan(plan);
		plans[id] = plan;
	}
	rc = SPI_execute_plan(plans[id], values, nulls, false, 0);
	if (rc < 0)
		elog(ERROR, "SPI_execute_plan failed for \"%s\": %s", plan_defs[id].sql,
			 SPI_result_code_string(rc));
	return SPI_processed;
}

bytea *
rs_bytea(const void *data, size_t len)
{
	bytea	   *b = palloc(VARHDRSZ + len);

	SET_VARSIZE(b, VARHDRSZ + len);
	memcpy(VARDATA(b), data, len);
	return b;
}

bytea *
rs_fetch_node(const char *did, const uint8 *cid)
{
	Datum		args[2];
	bytea	   *node;

	args[0] = CStringGetTextDatum(did);
	args[1] = PointerGetDatum(rs_bytea(cid, CID_LEN));
	if (rs_exec(PLAN_NODE_GET, args, NULL) == 0)
		return NULL;
	node = rs_getbytea(0, 1);
	SPI_freetuptable(SPI_tuptable);
	return node;
}

Datum
rs_getdatum(int row, int col, bool *isnull)
{
	return SPI_getbinval(SPI_tuptable->vals[row], SPI_tuptable->tupdesc, col, isnull);
}

bytea *
rs_getbytea(int row, int col)
{
	bool		isnull;
	Datum		d = rs_getdatum(row, col, &isnull);

	if (isnull)
		return NULL;
	return (bytea *) SPI_datumTransfer(PointerGetDatum(PG_DETOAST_DATUM(d)), false, -1);
}

char *
rs_gettext(int row, int col)
{
	bool		isnull;
	Datum		d = rs_getdatum(row, col, &isnull);
	text	   *t;
	char	   *s;
	size_t		len;

	if (isnull)
		return NULL;
	/* copy into the caller's context, which outlives SPI_finish */
	t = DatumGetTextPP(d);
	len = VARSIZE_ANY_EXHDR(t);
	s = SPI_palloc(len + 1);
	memcpy(s, VARDATA_ANY(t), len);
	s[len] = '\0';
	return s;
}

SPIPlanPtr
rs_prepare_pinned(const char *sql, int nargs, Oid *argtypes)
{
	int			nest = NewGUCNestLevel();
	SPIPlanPtr	plan;

	(void) set_config_option("search_path", "pg_catalog, pg_temp",
							 PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE,
							 true, 0, false);
	plan = SPI_prepare_cursor(sql, nargs, argtypes, CURSOR_OPT_GENERIC_PLAN);
	AtEOXact_GUC(true, nest);
	if (plan == NULL)
		elog(ERROR, "SPI_prepare failed for \"%s\": %s", sql, SPI_result_code_string(SPI_result));
	SPI_keepplan(plan);
	return plan;
}
