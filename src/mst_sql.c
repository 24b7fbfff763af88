/*
 * mst_sql.c - SQL surface of the Merkle Search Tree.
 *
 * repo_stream.mst_root(keys text[], cids text[]) builds the atproto MST of
 * the key -> CID pairs and returns its root CID: a way to check a record set
 * against a commit's "data" field, and to test the tree from SQL.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "fmgr.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"

#include "cid.h"
#include "mst.h"

PG_FUNCTION_INFO_V1(rs_mst_root);

/* A text[] as elements, refusing multi-dimensional arrays and NULLs. */
static void
text_array_elems(ArrayType *arr, const char *argname, Datum **elems, int *n)
{
	bool	   *nulls;

	if (ARR_NDIM(arr) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("%s must be a one-dimensional array, not %d-dimensional",
						argname, ARR_NDIM(arr))));
	deconstruct_array(arr, TEXTOID, -1, false, TYPALIGN_INT, elems, &nulls, n);
	for (int i = 0; i < *n; i++)
		if (nulls[i])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("%s[%d] is NULL", argname, ARR_LBOUND(arr)[0] + i)));
}

Datum
rs_mst_root(PG_FUNCTION_ARGS)
{
	ArrayType  *keys = PG_GETARG_ARRAYTYPE_P(0);
	ArrayType  *cids = PG_GETARG_ARRAYTYPE_P(1);
	Datum	   *kd,
			   *cd;
	int			nk,
				nc;
	MstKV	   *kv;
	MstError	err;
	uint8		root[CID_LEN];
	char		msg[400];
	char		out[CID_TEXT_LEN + 1];

	text_array_elems(keys, "keys", &kd, &nk);
	text_array_elems(cids, "cids", &cd, &nc);
	if (nk != nc)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg_plural("keys has %d element but cids has %d",
							   "keys has %d elements but cids has %d", nk, nk, nc),
				 errdetail("Each key needs exactly one CID, at the same position.")));

	kv = palloc_extended(sizeof(MstKV) * (nk > 0 ? nk : 1), MCXT_ALLOC_HUGE);
	for (int i = 0; i < nk; i++)
	{
		text	   *k = DatumGetTextPP(kd[i]);
		text	   *c = DatumGetTextPP(cd[i]);

		kv[i].key = VARDATA_ANY(k);
		kv[i].key_len = VARSIZE_ANY_EXHDR(k);
		if (!cid_parse(VARDATA_ANY(c), VARSIZE_ANY_EXHDR(c), kv[i].value))
		{
			int			len = VARSIZE_ANY_EXHDR(c);

			ereport(ERROR,
					(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
					 errmsg("invalid CID \"%.*s\" at cids[%d]",
							pg_mbcliplen(VARDATA_ANY(c), len, Min(len, 100)),
							VARDATA_ANY(c), ARR_LBOUND(cids)[0] + i),
					 errdetail("CIDs are CIDv1, dag-cbor or raw, sha2-256, in base32 text (\"bafyrei...\").")));
		}
		CHECK_FOR_INTERRUPTS();
	}

	/* streaming: the root without keeping the tree in memory */
	err = mst_build_root(kv, nk, NULL, NULL, root, msg, sizeof(msg));
	switch (err)
	{
		case MST_OK:
			break;
		case MST_ERR_KEY_SYNTAX:
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("%s", msg),
					 errdetail("MST keys are \"collection/rkey\": one slash, both sides non-empty, "
							   "only A-Z a-z 0-9 _ ~ - : . otherwise, at most %d bytes.",
							   MST_MAX_KEY_LEN)));
			break;
		case MST_ERR_DUPLICATE_KEY:
			ereport(ERROR,
					(errcode(ERRCODE_UNIQUE_VIOLATION),
					 errmsg("%s", msg)));
			break;
		case MST_ERR_NODE_TOO_BIG:
			ereport(ERROR,
					(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
					 errmsg("%s", msg)));
			break;
		default:
			ereport(ERROR,
					(errcode(ERRCODE_INTERNAL_ERROR),
					 errmsg("%s", msg)));
	}
	cid_format(root, out);
	PG_RETURN_TEXT_P(cstring_to_text(out));
}
