/*
 * lock_guard_sql.c - LOCK TABLE on the extension's relations in a mode that
 * could stall writers is refused to everyone but their owner and superusers.
 *
 * PostgreSQL lets any role with table-level UPDATE, DELETE or TRUNCATE on a
 * table take every lock mode with LOCK TABLE (and a view's owner's rights
 * decide for the tables under a view).  Held in an idle transaction, a SHARE
 * or stronger lock on records, which every repo shares, or on the event log,
 * stops every writer of every repo.  The default grants give no role such a
 * privilege (src/sql/90_privileges.sql; column grants do not count for LOCK);
 * this ProcessUtility hook also covers the opt-in roles that need one
 * (repo_stream_deleter) and grants a DBA adds.  It refuses modes above ROW
 * EXCLUSIVE, which are the ones that conflict with a writer's ROW EXCLUSIVE
 * (SHARE UPDATE EXCLUSIVE does not, but it stops the ring's rotation on
 * log_state and nothing needs it), on every relation of schema repo_stream,
 * whether named, reached through a view, or as a partition or inheritance
 * child.
 *
 * A hook acts only where the library is loaded: with shared_preload_libraries
 * or session_preload_libraries, or after the session's first use of the
 * extension.  README "Privileges" says who can stall writers without it.
 */
#include "postgres.h"

#include "access/table.h"
#include "catalog/namespace.h"
#include "catalog/pg_inherits.h"
#include "miscadmin.h"
#include "nodes/nodeFuncs.h"
#include "nodes/parsenodes.h"
#include "rewrite/rewriteHandler.h"
#include "storage/lmgr.h"
#include "tcop/utility.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"

#include "lock_guard_sql.h"

static ProcessUtility_hook_type prev_process_utility = NULL;

/* LOCK TABLE's mode names, by LOCKMODE */
static const char *const mode_names[] = {
	"", "ACCESS SHARE", "ROW SHARE", "ROW EXCLUSIVE", "SHARE UPDATE EXCLUSIVE",
	"SHARE", "SHARE ROW EXCLUSIVE", "EXCLUSIVE", "ACCESS EXCLUSIVE"
};

typedef struct GuardContext
{
	Oid			nsp;			/* schema repo_stream */
	LOCKMODE	mode;
	Oid			named;			/* the relation the statement names */
	List	   *views;			/* views on the way down, against cycles */
} GuardContext;

static void guard_relation(Oid relid, bool inh, GuardContext *cx);

static void
guard_one(Oid relid, GuardContext *cx)
{
	if (get_rel_namespace(relid) != cx->nsp || pg_class_ownercheck(relid, GetUserId()))
		return;
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("LOCK TABLE %s IN %s MODE is not allowed",
					quote_qualified_identifier(get_namespace_name(get_rel_namespace(cx->named)),
											   get_rel_name(cx->named)),
					mode_names[cx->mode]),
			 relid != cx->named ?
			 errdetail("It would lock repo_stream.%s.", quote_identifier(get_rel_name(relid))) : 0,
			 errhint("Held in an open transaction, a lock above ROW EXCLUSIVE on a table of repo_stream "
					 "stalls every writer; only the table's owner or a superuser may take one.")));
}

/* Every relation of a view's query, as LOCK TABLE's own recursion finds them. */
static bool
guard_view_walker(Node *node, GuardContext *cx)
{
	if (node == NULL)
		return false;
	if (IsA(node, Query))
	{
		Query	   *query = (Query *) node;
		ListCell   *lc;

		foreach(lc, query->rtable)
		{
			RangeTblEntry *rte = lfirst(lc);

			if (rte->rtekind != RTE_RELATION || list_member_oid(cx->views, rte->relid))
				continue;		/* the view's own OLD/NEW entries, or a cycle */
			guard_relation(rte->relid, rte->inh, cx);
		}
		return query_tree_walker(query, guard_view_walker, cx, QTW_IGNORE_JOINALIASES);
	}
	return expression_tree_walker(node, guard_view_walker, cx);
}

static void
guard_relation(Oid relid, bool inh, GuardContext *cx)
{
	char		relkind = get_rel_relkind(relid);

	guard_one(relid, cx);
	if (relkind == RELKIND_VIEW)
	{
		/* LOCK TABLE locks the view anyway: this lock only comes first */
		Relation	view = table_open(relid, AccessShareLock);
		Query	   *query = get_view_query(view);

		cx->views = lappend_oid(cx->views, relid);
		(void) guard_view_walker((Node *) query, cx);
		cx->views = list_delete_last(cx->views);
		table_close(view, NoLock);
	}
	else if (inh && (relkind == RELKIND_RELATION || relkind == RELKIND_PARTITIONED_TABLE) &&
			 has_subclass(relid))
	{
		List	   *children = find_all_inheritors(relid, NoLock, NULL);
		ListCell   *lc;

		foreach(lc, children)
			if (lfirst_oid(lc) != relid)
				guard_one(lfirst_oid(lc), cx);
		list_free(children);
	}
}

static void
guard_lock(LockStmt *stmt)
{
	GuardContext cx;
	ListCell   *lc;

	if (stmt->mode <= RowExclusiveLock || superuser())
		return;
	cx.nsp = get_namespace_oid("repo_stream", true);
	if (!OidIsValid(cx.nsp))
		return;					/* not installed in this database */
	cx.mode = stmt->mode;
	cx.views = NIL;
	foreach(lc, stmt->relations)
	{
		RangeVar   *rv = lfirst_node(RangeVar, lc);
		/* no lock yet; LOCK TABLE looks the name up again, with one */
		Oid			relid = RangeVarGetRelid(rv, NoLock, true);

		if (!OidIsValid(relid))
			continue;			/* LOCK TABLE reports it */
		/* without a privilege that allows the mode LOCK TABLE refuses anyway (and views are not opened) */
		if (pg_class_aclcheck(relid, GetUserId(), ACL_UPDATE | ACL_DELETE | ACL_TRUNCATE) != ACLCHECK_OK)
			continue;
		cx.named = relid;
		guard_relation(relid, rv->inh, &cx);
	}
}

static void
rs_process_utility(PlannedStmt *pstmt, const char *queryString, bool readOnlyTree,
				   ProcessUtilityContext context, ParamListInfo params,
				   QueryEnvironment *queryEnv, DestReceiver *dest, QueryCompletion *qc)
{
	if (IsA(pstmt->utilityStmt, LockStmt))
		guard_lock((LockStmt *) pstmt->utilityStmt);
	if (prev_process_utility)
		prev_process_utility(pstmt, queryString, readOnlyTree, context, params, queryEnv, dest, qc);
	else
		standard_ProcessUtility(pstmt, queryString, readOnlyTree, context, params, queryEnv, dest, qc);
}

void
rs_lock_guard_init(void)
{
	prev_process_utility = ProcessUtility_hook;
	ProcessUtility_hook = rs_process_utility;
}
