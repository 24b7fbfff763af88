/*
 * args_sql.h - arguments of the SQL functions that read or change repo
 * state: a NULL where a value is required is an ERROR (22004) naming the
 * argument, and identifiers are checked with their atproto syntax (22023
 * naming the value).  The pure functions (codec, syntax) stay STRICT:
 * NULL in, NULL out, like PostgreSQL's own.
 */
#ifndef RS_ARGS_SQL_H
#define RS_ARGS_SQL_H

#include "postgres.h"

#include "fmgr.h"

/* Argument argno as a C string; ERROR 22004 naming it when NULL. */
char	   *rs_arg_text(FunctionCallInfo fcinfo, int argno, const char *name);

/* ERROR 22004 naming the argument when it is NULL. */
void		rs_arg_required(FunctionCallInfo fcinfo, int argno, const char *name);

/* A DID argument: required and valid (22023 naming it). */
char	   *rs_arg_did(FunctionCallInfo fcinfo, int argno);

/* ERROR 22023 naming the value unless did, collection, rkey are valid. */
void		rs_check_did(const char *did);
void		rs_check_record_key(const char *did, const char *collection, const char *rkey);

#endif
