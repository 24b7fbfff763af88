/*
 * relay_conn_sql.c - relay mode: the relay's own connections to its shards.
 *
 * Every remote call of the relay (keys, exports, a repo's status, its
 * events, the lag) goes through a libpq connection held here, in a
 * backend-local table keyed by shard name.  Nothing in SQL can name, open,
 * replace or reuse one: a session's dblink connections (whatever their
 * names) are never looked at.  The conninfo is the one relay_add_shard
 * recorded (relay_shards is written by superusers only), and a connection
 * is trusted only once the server it reached proved to be the shard that
 * was registered: its system identifier and database name must equal
 * relay_shards.identity (recorded when the shard was added).  A conninfo
 * that now leads elsewhere (DNS, a moved host, an edited row) is refused.
 *
 * Waits are interruptible (libpq-be-fe-helpers.h), remote errors keep their
 * SQLSTATE, and a connection that broke (the shard restarted) is made again
 * once.  Results come back in binary, each column's type checked.
 *
 * Also here: conninfo masking for display, by parsing (PQconninfoParse):
 * every option libpq marks as secret (password, sslpassword) is hidden,
 * whatever form the conninfo had.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "libpq/libpq-be-fe-helpers.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"
#include "utils/wait_event.h"

#include "relay_sql.h"
#include "spi_sql.h"

PG_FUNCTION_INFO_V1(rs_relay_query);
PG_FUNCTION_INFO_V1(rs_relay_mask_conninfo_sql);

typedef struct RelayConn
{
	char		shard[NAMEDATALEN];	/* hash key */
	PGconn	   *conn;			/* NULL: none open */
	char	   *conninfo;		/* what it was opened with (TopMemoryContext) */
	char	   *identity;		/* <system identifier>/<database> the server reported */
} RelayConn;

static HTAB *conns = NULL;

/* what a remote statement must not leak on an ERROR (see relay_run) */
static PGresult *pending_result = NULL;

static const char *const identity_sql =
	"SELECT pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', false),"
	" pg_catalog.concat((SELECT system_identifier FROM pg_catalog.pg_control_system()), '/',"
	" pg_catalog.current_database())";

static RelayConn *
conn_entry(const char *shard)
{
	bool		found;
	RelayConn  *c;

	if (strlen(shard) >= NAMEDATALEN)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("shard \"%s\" is not known to this relay", shard)));
	if (conns == NULL)
	{
		HASHCTL		ctl;

		memset(&ctl, 0, sizeof(ctl));
		ctl.keysize = NAMEDATALEN;
		ctl.entrysize = sizeof(RelayConn);
		ctl.hcxt = TopMemoryContext;
		conns = hash_create("repo_stream relay connections", 8, &ctl,
							HASH_ELEM | HASH_STRINGS | HASH_CONTEXT);
	}
	c = hash_search(conns, shard, HASH_ENTER, &found);
	if (!found)
	{
		c->conn = NULL;
		c->conninfo = NULL;
		c->identity = NULL;
	}
	return c;
}

static void
conn_drop(RelayConn *c)
{
	if (c->conn != NULL)
		libpqsrv_disconnect(c->conn);
	c->conn = NULL;
	if (c->conninfo)
		pfree(c->conninfo);
	if (c->identity)
		pfree(c->identity);
	c->conninfo = NULL;
	c->identity = NULL;
}

/* The shard's registered conninfo and identity (relay_shards), read as the owner. */
static void
registered(const char *shard, char **conninfo, char **identity)
{
	RsOwnerContext oc;
	Datum		arg = CStringGetTextDatum(shard);
	Oid			type = TEXTOID;
	MemoryContext cxt = CurrentMemoryContext;

	rs_enter_owner(&oc);
	SPI_execute_with_args("SELECT conninfo, identity FROM repo_stream.relay_shards WHERE name = $1",
						  1, &type, &arg, NULL, true, 1);
	MemoryContextSwitchTo(cxt);
	if (SPI_processed != 1)
	{
		rs_leave_owner(&oc);
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("shard \"%s\" is not known to this relay", shard)));
	}
	*conninfo = rs_gettext(0, 1);
	*identity = rs_gettext(0, 2);
	rs_leave_owner(&oc);
}

/* A remote error as ours, with its SQLSTATE, naming the shard. */
static void
report_remote(const char *shard, PGconn *conn, PGresult *res)
{
	const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
	const char *primary = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
	const char *detail = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL) : NULL;
	const char *hint = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_HINT) : NULL;
	char	   *msg = pstrdup(primary ? primary : pchomp(PQerrorMessage(conn)));
	char	   *d = detail ? pstrdup(detail) : NULL;
	char	   *h = hint ? pstrdup(hint) : NULL;
	int			code = ERRCODE_CONNECTION_FAILURE;

	if (state != NULL && strlen(state) == 5)
		code = MAKE_SQLSTATE(state[0], state[1], state[2], state[3], state[4]);
	PQclear(res);
	pending_result = NULL;
	ereport(ERROR,
			(errcode(code),
			 errmsg("shard %s: %s", shard, msg),
			 d ? errdetail_internal("%s", d) : 0,
			 h ? errhint("%s", h) : 0));
}

/*
 * Run one statement; the last result, or NULL if the connection broke
 * (then the caller may connect again).  A remote error is raised here.
 */
static PGresult *
relay_run(const char *shard, PGconn *conn, const char *sql, int nparams,
		  const char *const *params, int format)
{
	PGresult   *res;

	res = libpqsrv_exec_params(conn, sql, nparams, NULL, params, NULL, NULL, format,
							   PG_WAIT_EXTENSION);
	if (res == NULL || PQstatus(conn) == CONNECTION_BAD)
	{
		PQclear(res);
		return NULL;
	}
	pending_result = res;
	if (PQresultStatus(res) != PGRES_TUPLES_OK && PQresultStatus(res) != PGRES_COMMAND_OK)
		report_remote(shard, conn, res);
	return res;
}

/*
 * The relay's connection to the shard, made if needed and checked: the
 * server must be the registered shard (identity).  unregistered allows a
 * shard whose identity is not recorded yet (relay_add_shard, which reads
 * it through this connection and records it); *identity_out gets the
 * server's.
 */
static PGconn *
relay_conn(const char *shard, bool unregistered, bool fresh)
{
	RelayConn  *c;
	char	   *conninfo;
	char	   *identity;

	registered(shard, &conninfo, &identity);
	if (identity == NULL && !unregistered)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("shard \"%s\" has no recorded identity", shard),
				 errdetail("The relay trusts a connection only once the server proves to be the database the shard was added with."),
				 errhint("Remove the shard and add it again with relay_add_shard.")));
	c = conn_entry(shard);
	if (c->conn != NULL && (fresh || PQstatus(c->conn) != CONNECTION_OK ||
							strcmp(c->conninfo, conninfo) != 0))
		conn_drop(c);
	if (c->conn == NULL)
	{
		const char *keys[4] = {"dbname", "fallback_application_name", "client_encoding", NULL};
		const char *vals[4];
		PGconn	   *conn;
		PGresult   *res;

		vals[0] = conninfo;
		vals[1] = "repo_stream relay";
		vals[2] = GetDatabaseEncodingName();
		vals[3] = NULL;
		conn = libpqsrv_connect_params(keys, vals, 1, PG_WAIT_EXTENSION);
		if (conn == NULL || PQstatus(conn) != CONNECTION_OK)
		{
			char	   *msg = conn ? pchomp(PQerrorMessage(conn)) : pstrdup("out of memory");

			libpqsrv_disconnect(conn);
			ereport(ERROR,
					(errcode(ERRCODE_SQLCLIENT_UNABLE_TO_ESTABLISH_SQLCONNECTION),
					 errmsg("could not connect to shard %s", shard),
					 errdetail_internal("%s", msg)));
		}
		c->conn = conn;
		c->conninfo = MemoryContextStrdup(TopMemoryContext, conninfo);
		PG_TRY();
		{
			res = relay_run(shard, conn, identity_sql, 0, NULL, 0);
			if (res == NULL || PQntuples(res) != 1 || PQnfields(res) != 2 || PQgetisnull(res, 0, 1))
				ereport(ERROR,
						(errcode(ERRCODE_CONNECTION_FAILURE),
						 errmsg("shard %s did not say which database it is", shard)));
			c->identity = MemoryContextStrdup(TopMemoryContext, PQgetvalue(res, 0, 1));
			PQclear(res);
			pending_result = NULL;
		}
		PG_CATCH();
		{
			PQclear(pending_result);
			pending_result = NULL;
			conn_drop(c);
			PG_RE_THROW();
		}
		PG_END_TRY();
	}
	if (identity != NULL && strcmp(identity, c->identity) != 0)
	{
		char	   *found = pstrdup(c->identity);

		conn_drop(c);
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION),
				 errmsg("shard %s's conninfo leads to database %s, not to the shard's database %s",
						shard, found, identity),
				 errdetail("The relay trusts only the database the shard was added with (relay_shards.identity); nothing was read from this one.")));
	}
	return c->conn;
}

/*
 * A statement on the shard, retried once on a new connection if the
 * connection broke; the result (the caller PQclears it).
 */
static PGresult *
relay_exec(const char *shard, const char *sql, int nparams, const char *const *params,
		   int format, bool unregistered)
{
	for (int attempt = 0; attempt < 2; attempt++)
	{
		PGconn	   *conn = relay_conn(shard, unregistered, attempt > 0);
		PGresult   *res;

		PG_TRY();
		{
			res = relay_run(shard, conn, sql, nparams, params, format);
		}
		PG_CATCH();
		{
			/* a remote error leaves the connection idle; anything else drops it */
			if (PQstatus(conn) != CONNECTION_OK || PQtransactionStatus(conn) != PQTRANS_IDLE)
				conn_drop(conn_entry(shard));
			PQclear(pending_result);
			pending_result = NULL;
			PG_RE_THROW();
		}
		PG_END_TRY();
		if (res != NULL)
		{
			pending_result = NULL;
			return res;
		}
		if (attempt == 0)
			continue;
		{
			char	   *msg = pchomp(PQerrorMessage(conn));

			conn_drop(conn_entry(shard));
			ereport(ERROR,
					(errcode(ERRCODE_CONNECTION_FAILURE),
					 errmsg("lost the connection to shard %s", shard),
					 errdetail_internal("%s", msg)));
		}
	}
	pg_unreachable();
}

RelayRows *
rs_relay_remote(const char *shard, const char *sql, int nparams, const char *const *params,
				int ncols, const Oid *types)
{
	PGresult   *res = relay_exec(shard, sql, nparams, params, 1, false);
	RelayRows  *rows = palloc0(sizeof(RelayRows));

	PG_TRY();
	{
		if (PQnfields(res) != ncols)
			ereport(ERROR,
					(errcode(ERRCODE_DATATYPE_MISMATCH),
					 errmsg("shard %s answered with %d columns, not %d", shard, PQnfields(res), ncols)));
		for (int j = 0; j < ncols; j++)
			if (OidIsValid(types[j]) && PQftype(res, j) != types[j])
				ereport(ERROR,
						(errcode(ERRCODE_DATATYPE_MISMATCH),
						 errmsg("shard %s answered column %d with type %u, not %u",
								shard, j + 1, PQftype(res, j), types[j])));
		rows->nrows = PQntuples(res);
		rows->ncols = ncols;
		rows->values = palloc0(sizeof(char *) * Max(1, rows->nrows * ncols));
		rows->lengths = palloc0(sizeof(int) * Max(1, rows->nrows * ncols));
		for (int i = 0; i < rows->nrows; i++)
			for (int j = 0; j < ncols; j++)
			{
				int			k = i * ncols + j;
				int			len;

				if (PQgetisnull(res, i, j))
					continue;
				len = PQgetlength(res, i, j);
				rows->values[k] = palloc(len + 1);
				memcpy(rows->values[k], PQgetvalue(res, i, j), len);
				rows->values[k][len] = '\0';
				rows->lengths[k] = len;
			}
	}
	PG_FINALLY();
	{
		PQclear(res);
	}
	PG_END_TRY();
	return rows;
}

char *
rs_rows_text(const RelayRows *r, int row, int col)
{
	return r->values[row * r->ncols + col];
}

int64
rs_rows_int8(const RelayRows *r, int row, int col, bool *isnull)
{
	const uint8 *v = (const uint8 *) r->values[row * r->ncols + col];
	uint64		x = 0;

	*isnull = v == NULL;
	if (v == NULL)
		return 0;
	if (r->lengths[row * r->ncols + col] != 8)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_BINARY_REPRESENTATION),
				 errmsg("a shard sent a bigint of %d bytes", r->lengths[row * r->ncols + col])));
	for (int i = 0; i < 8; i++)
		x = (x << 8) | v[i];
	return (int64) x;
}

bytea *
rs_rows_bytea(const RelayRows *r, int row, int col)
{
	const char *v = r->values[row * r->ncols + col];

	return v == NULL ? NULL : rs_bytea(v, r->lengths[row * r->ncols + col]);
}

/*
 * _relay_query(shard text, query text) RETURNS SETOF record
 *
 * A statement on a registered shard through the relay's own connection,
 * for relay_add_shard (which records the shard's identity from its first
 * call: only then may the identity still be unrecorded).  The caller
 * gives the columns (AS t(...)); values are read with their input
 * functions.  Not granted to anyone: a superuser's tool.
 */
Datum
rs_relay_query(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	char	   *shard = text_to_cstring(PG_GETARG_TEXT_PP(0));
	char	   *query = text_to_cstring(PG_GETARG_TEXT_PP(1));
	PGresult   *res;
	AttInMetadata *meta;
	TupleDesc	desc;

	InitMaterializedSRF(fcinfo, 0);
	desc = rsinfo->setDesc;
	res = relay_exec(shard, query, 0, NULL, 0, true);
	PG_TRY();
	{
		int			n = PQntuples(res);
		int			m = PQnfields(res);
		char	  **vals = palloc(sizeof(char *) * Max(1, m));

		if (PQresultStatus(res) == PGRES_TUPLES_OK && m != desc->natts)
			ereport(ERROR,
					(errcode(ERRCODE_DATATYPE_MISMATCH),
					 errmsg("shard %s answered with %d columns, the call expects %d", shard, m, desc->natts)));
		meta = TupleDescGetAttInMetadata(desc);
		for (int i = 0; i < n; i++)
		{
			for (int j = 0; j < m; j++)
				vals[j] = PQgetisnull(res, i, j) ? NULL : PQgetvalue(res, i, j);
			tuplestore_puttuple(rsinfo->setResult, BuildTupleFromCStrings(meta, vals));
		}
	}
	PG_FINALLY();
	{
		PQclear(res);
	}
	PG_END_TRY();
	return (Datum) 0;
}

/* ---------------------------------------------------------------- masking */

/* value as a conninfo value: single-quoted, ' and \ escaped */
static void
append_quoted(StringInfo out, const char *value)
{
	appendStringInfoChar(out, '\'');
	for (const char *p = value; *p; p++)
	{
		if (*p == '\'' || *p == '\\')
			appendStringInfoChar(out, '\\');
		appendStringInfoChar(out, *p);
	}
	appendStringInfoChar(out, '\'');
}

char *
rs_relay_mask_conninfo(const char *conninfo)
{
	PQconninfoOption *opts;
	char	   *err = NULL;
	StringInfoData out;

	opts = PQconninfoParse(conninfo, &err);
	if (opts == NULL)
	{
		/* not parseable: nothing of it can be shown safely */
		if (err)
			PQfreemem(err);
		return pstrdup("********");
	}
	initStringInfo(&out);
	for (PQconninfoOption *o = opts; o->keyword != NULL; o++)
	{
		if (o->val == NULL)
			continue;
		if (out.len > 0)
			appendStringInfoChar(&out, ' ');
		appendStringInfo(&out, "%s=", o->keyword);
		/* dispchar '*': libpq's mark for a secret (password, sslpassword) */
		if (strchr(o->dispchar, '*') != NULL)
			appendStringInfoString(&out, "********");
		else
			append_quoted(&out, o->val);
	}
	PQconninfoFree(opts);
	return out.data;
}

/*
 * _relay_mask_conninfo(conninfo text) RETURNS text
 *
 * The conninfo as key='value' pairs, parsed as libpq parses it (any form:
 * key=value, a URI, passwords in its user info or query), with every
 * secret option shown as ********; ******** alone if it does not parse.
 */
Datum
rs_relay_mask_conninfo_sql(PG_FUNCTION_ARGS)
{
	PG_RETURN_TEXT_P(cstring_to_text(rs_relay_mask_conninfo(text_to_cstring(PG_GETARG_TEXT_PP(0)))));
}
