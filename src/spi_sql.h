/*
 * spi_sql.h - running the extension's own SQL safely: as the extension's
 * owner (the application role has no rights on the log, keys or nodes) and
 * with search_path pinned, through plans prepared once per backend.
 */
#ifndef RS_SPI_SQL_H
#define RS_SPI_SQL_H

#include "postgres.h"
#include "executor/spi.h"

typedef struct RsOwnerContext
{
	Oid			saved_userid;
	int			saved_sec_context;
	int			guc_nest_level;
} RsOwnerContext;

/*
 * SPI_connect + switch to the owner of schema repo_stream + pin search_path.
 * Until rs_leave_owner, palloc uses SPI's context, which rs_leave_owner
 * frees: results that must outlive it come from rs_get* (SPI_palloc).
 */
void		rs_enter_owner(RsOwnerContext *ctx);
/* Undo rs_enter_owner (every setting made since, too) and SPI_finish. */
void		rs_leave_owner(RsOwnerContext *ctx);

Oid			rs_schema_oid(void);
Oid			rs_relation_oid(const char *relname);

typedef enum RsPlanId
{
	PLAN_REPO_LOCK,
	PLAN_REPO_STATE,
	PLAN_NODE_GET,
	PLAN_REPO_PERSIST,
	PLAN_EVENT_INSERT,
	PLAN_LOG_STATE,
	PLAN_KEY_ROTATE,
	PLAN_KEY_HISTORY,
	PLAN_SEQ_HORIZON,
	PLAN_REPO_LAST_SEQ,
	PLAN_COUNT
} RsPlanId;

/*
 * A saved plan of sql, parsed with search_path pinned to pg_catalog,
 * pg_temp, to run as whoever calls it (with the caller's search_path, which
 * the caller's triggers may need).  PostgreSQL parses a saved plan again
 * under the search_path current when it runs, so sql must qualify every
 * function and operator it calls (OPERATOR(pg_catalog.=)).  Inside
 * SPI_connect.
 */
SPIPlanPtr	rs_prepare_pinned(const char *sql, int nargs, Oid *argtypes);

/* Execute a saved plan (read_only false); returns SPI_processed. */
uint64		rs_exec(RsPlanId id, Datum *values, const char *nulls);

/* A palloc'd bytea holding a copy of data. */
bytea	   *rs_bytea(const void *data, size_t len);

/* A stored MST node of a repo (copied like rs_getbytea), or NULL. */
bytea	   *rs_fetch_node(const char *did, const uint8 *cid);

/* Helpers to read SPI_tuptable results. */
Datum		rs_getdatum(int row, int col, bool *isnull);
bytea	   *rs_getbytea(int row, int col);	/* NULL if SQL NULL; copied into caller ctx */
char	   *rs_gettext(int row, int col);	/* NULL if SQL NULL; copied */

#endif
