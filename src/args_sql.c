/*
 * args_sql.c - required and well-formed arguments (see args_sql.h).
 */
#include "postgres.h"

#include "utils/builtins.h"

#include "args_sql.h"
#include "syntax.h"

void
rs_arg_required(FunctionCallInfo fcinfo, int argno, const char *name)
{
	if (PG_ARGISNULL(argno))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("argument \"%s\" must not be NULL", name)));
}

char *
rs_arg_text(FunctionCallInfo fcinfo, int argno, const char *name)
{
	rs_arg_required(fcinfo, argno, name);
	return text_to_cstring(PG_GETARG_TEXT_PP(argno));
}

void
rs_check_did(const char *did)
{
	if (!did_valid(did, strlen(did)))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid DID: \"%s\"", did),
				 errhint("DIDs look like did:plc:ewvi7nxzyoun6zhxrhs64oiz or did:web:example.com.")));
}

char *
rs_arg_did(FunctionCallInfo fcinfo, int argno)
{
	char	   *did = rs_arg_text(fcinfo, argno, "did");

	rs_check_did(did);
	return did;
}

void
rs_check_record_key(const char *did, const char *collection, const char *rkey)
{
	rs_check_did(did);
	if (!nsid_valid(collection, strlen(collection)))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid collection NSID: \"%s\"", collection),
				 errhint("Collections are NSIDs such as app.bsky.feed.post.")));
	if (!rkey_valid(rkey, strlen(rkey)))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid record key: \"%s\"", rkey),
				 errhint("Record keys are 1 to 512 characters of A-Za-z0-9._:~- and not \".\" or \"..\".")));
}
