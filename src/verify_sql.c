/*
 * verify_sql.c - verify_repo(): detect records, nodes, commits or events
 * changed behind the extension's back; and the reader's side of key
 * history: repo_keys() and the one-argument verify_frame().
 *
 * Nothing stored is trusted: record CIDs are recomputed from the JSON, the
 * MST is rebuilt from those CIDs, the stored nodes are loaded and checked
 * on their own, the head commit's signature is checked against the repo's
 * key, and every retained event of the repo is decoded and verified with
 * the key that was current at its rev.
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "funcapi.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/resowner.h"

#include "car.h"
#include "cbor_sql.h"
#include "cid.h"
#include "commit.h"
#include "frame.h"
#include "frame_sql.h"
#include "keys.h"
#include "mst.h"
#include "spi_sql.h"
#include "verify.h"

PG_FUNCTION_INFO_V1(rs_verify_repo);
PG_FUNCTION_INFO_V1(rs_repo_keys);
PG_FUNCTION_INFO_V1(rs_verify_frame_by_history);

typedef struct Report
{
	ReturnSetInfo *rsinfo;
	bool		all_ok;
} Report;

static void
report(Report *r, const char *check, bool ok, const char *fmt,...) pg_attribute_printf(4, 5);

static void
report(Report *r, const char *check, bool ok, const char *fmt,...)
{
	Datum		values[3];
	bool		nulls[3] = {false, false, false};
	StringInfoData detail;
	va_list		ap;

	initStringInfo(&detail);
	for (;;)
	{
		int			needed;

		va_start(ap, fmt);
		needed = appendStringInfoVA(&detail, fmt, ap);
		va_end(ap);
		if (needed == 0)
			break;
		enlargeStringInfo(&detail, needed);
	}
	values[0] = CStringGetTextDatum(check);
	values[1] = BoolGetDatum(ok);
	values[2] = CStringGetTextDatum(detail.data);
	tuplestore_putvalues(r->rsinfo->setResult, r->rsinfo->setDesc, values, nulls);
	r->all_ok &= ok;
}

typedef struct NodeStore
{
	const char *did;
	bytea	   *last;
} NodeStore;

static MstError
table_get(void *ctx, const uint8 cid[CID_LEN], const uint8 **data, size_t *len)
{
	NodeStore  *s = ctx;

	s->last = rs_fetch_node(s->did, cid);
	if (s->last == NULL)
		return MST_ERR_MISSING_NODE;
	*data = (const uint8 *) VARDATA_ANY(s->last);
	*len = VARSIZE_ANY_EXHDR(s->last);
	return MST_OK;
}

/*
 * Recompute every record's CID from its JSON and rebuild the MST from them.
 * A record whose JSON no longer encodes (edited to hold a float, say) is a
 * finding, not an ERROR, so the encoding runs in a subtransaction.
 */
static bool
check_records(Report *r, const char *did, uint8 root[CID_LEN])
{
	Datum		arg = CStringGetTextDatum(did);
	Oid			type = TEXTOID;
	uint64		n;
	MstKV	   *kv;
	int			mismatches = 0;
	StringInfoData first;
	MstTree    *tree;
	MemoryContext cxt = CurrentMemoryContext;
	ResourceOwner owner = CurrentResourceOwner;
	bool		encoded = true;

	SPI_execute_with_args("SELECT collection || '/' || rkey, record, cid FROM repo_stream.records"
						  " WHERE did = $1 ORDER BY collection, rkey",
						  1, &type, &arg, NULL, true, 0);
	n = SPI_processed;
	kv = palloc0(sizeof(MstKV) * Max(n, 1));
	initStringInfo(&first);

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(cxt);
	PG_TRY();
	{
		for (uint64 i = 0; i < n; i++)
		{
			bool		isnull;
			char	   *path = rs_gettext(i, 1);
			Jsonb	   *record = DatumGetJsonbP(rs_getdatum(i, 2, &isnull));
			char	   *stored = rs_gettext(i, 3);
			bytea	   *cbor = rs_record_to_cbor(record);
			char		text[CID_TEXT_LEN + 1];

			cid_for_dagcbor((uint8 *) VARDATA(cbor), VARSIZE(cbor) - VARHDRSZ, kv[i].value);
			cid_format(kv[i].value, text);
			if (strcmp(text, stored) != 0)
			{
				if (mismatches++ < 3)
					appendStringInfo(&first, "%s%s", first.len ? ", " : "", path);
			}
			kv[i].key = path;
			kv[i].key_len = strlen(path);
			pfree(cbor);
		}
		ReleaseCurrentSubTransaction();
	}
	PG_CATCH();
	{
		ErrorData  *e;

		MemoryContextSwitchTo(cxt);
		e = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		report(r, "records", false, "a record no longer encodes: %s", e->message);
		encoded = false;
	}
	PG_END_TRY();
	MemoryContextSwitchTo(cxt);
	CurrentResourceOwner = owner;
	if (!encoded)
		return false;

	if (mismatches)
		report(r, "records", false, "%d of " UINT64_FORMAT " %s %s not match %s stored CID (%s)",
			   mismatches, n, n == 1 ? "record" : "records", mismatches == 1 ? "does" : "do",
			   mismatches == 1 ? "its" : "their", first.data);
	else
		report(r, "records", true, UINT64_FORMAT " %s", n,
			   n == 1 ? "record matches its CID" : "records match their CIDs");

	tree = mst_new(NULL);
	if (mst_build(tree, kv, n) != MST_OK || mst_root(tree, root) != MST_OK)
	{
		report(r, "mst", false, "cannot build the MST: %s", mst_errmsg(tree));
		mst_free(tree);
		return false;
	}
	mst_free(tree);
	return true;
}

static void
check_events(Report *r, const char *did)
{
	Datum		arg = CStringGetTextDatum(did);
	Oid			type = TEXTOID;
	uint64		n;
	int			bad = 0;
	StringInfoData first;
	char	  **keys;
	char	  **key_revs;
	int			n_keys;

	SPI_execute_with_args("SELECT did_key, since_rev FROM repo_stream.repo_key_history"
						  " WHERE did = $1 ORDER BY since_rev",
						  1, &type, &arg, NULL, true, 0);
	n_keys = SPI_processed;
	keys = palloc(sizeof(char *) * Max(n_keys, 1));
	key_revs = palloc(sizeof(char *) * Max(n_keys, 1));
	for (int i = 0; i < n_keys; i++)
	{
		keys[i] = rs_gettext(i, 1);
		key_revs[i] = rs_gettext(i, 2);
	}

	SPI_execute_with_args("SELECT seq, kind, frame FROM repo_stream.event_log WHERE did = $1 ORDER BY seq",
						  1, &type, &arg, NULL, true, 0);
	n = SPI_processed;
	initStringInfo(&first);
	for (uint64 i = 0; i < n; i++)
	{
		bool		isnull;
		int64		seq = DatumGetInt64(rs_getdatum(i, 1, &isnull));
		char	   *kind = rs_gettext(i, 2);
		bytea	   *frame = rs_getbytea(i, 3);
		Frame		f;
		char		err[256] = "";
		const char *rev = NULL;
		size_t		rev_len = 0;
		bool		ok,
					decoded;

		decoded = frame_decode((uint8 *) VARDATA_ANY(frame), VARSIZE_ANY_EXHDR(frame), &f, err, sizeof(err)) == FRAME_OK;
		ok = decoded;
		/* frame_decode used to refuse more than 200 ops; this check keeps that */
		if (ok && f.kind == FRAME_COMMIT && f.commit.n_ops > FRAME_MAX_OPS)
		{
			ok = false;
			snprintf(err, sizeof(err), "%zu ops, more than %d", f.commit.n_ops, FRAME_MAX_OPS);
		}
		if (ok && (!f.has_seq || f.seq != seq))
		{
			ok = false;
			snprintf(err, sizeof(err), "frame seq differs from the log's");
		}
		if (ok)
		{
			if (f.kind == FRAME_COMMIT)
			{
				rev = f.commit.rev;
				rev_len = f.commit.rev_len;
			}
			else if (f.kind == FRAME_SYNC)
			{
				rev = f.sync.rev;
				rev_len = f.sync.rev_len;
			}
			if ((f.kind == FRAME_COMMIT) != (strcmp(kind, "commit") == 0))
			{
				ok = false;
				snprintf(err, sizeof(err), "frame kind differs from the log's");
			}
		}
		if (ok && rev != NULL)
		{
			/* the key in force at this rev: the newest one not after it */
			const char *key = NULL;
			uint8		pub[ED25519_PUBLIC_KEY_LEN];

			for (int k = 0; k < n_keys; k++)
				if (strncmp(key_revs[k], rev, rev_len) <= 0)
					key = keys[k];
			if (key == NULL || !did_key_parse_ed25519(key, strlen(key), pub, NULL))
			{
				ok = false;
				snprintf(err, sizeof(err), "no signing key known for rev %.*s", (int) rev_len, rev);
			}
			else
			{
				VerifyResult vr = frame_verify(&f, pub, err, sizeof(err));

				ok = vr == VERIFY_OK;
				if (!ok && err[0] == '\0')
					snprintf(err, sizeof(err), "%s", verify_strerror(vr));
			}
		}
		if (decoded)
			frame_free(&f);
		if (!ok && bad++ < 3)
			appendStringInfo(&first, "%sseq " INT64_FORMAT ": %s", first.len ? "; " : "", seq, err);
	}
	if (bad)
		report(r, "events", false, "%d of " UINT64_FORMAT " retained %s verification (%s)",
			   bad, n, n == 1 ? "event fails" : bad == 1 ? "events fails" : "events fail", first.data);
	else
		report(r, "events", true, UINT64_FORMAT " %s", n,
			   n == 1 ? "retained event verifies" : "retained events verify");
}

Datum
rs_verify_repo(PG_FUNCTION_ARGS)
{
	char	   *did = text_to_cstring(PG_GETARG_TEXT_PP(0));
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	Report		r;
	RsOwnerContext oc;
	Datum		arg = CStringGetTextDatum(did);
	Oid			type = TEXTOID;
	char	   *status,
			   *did_key,
			   *head_cid,
			   *head_rev;
	bytea	   *data_cid,
			   *head_commit;
	uint8		root[CID_LEN];
	char		root_text[CID_TEXT_LEN + 1];

	InitMaterializedSRF(fcinfo, 0);
	r.rsinfo = rsinfo;
	r.all_ok = true;

	rs_enter_owner(&oc);
	SPI_execute_with_args("SELECT status, did_key, head_cid, head_rev, data_cid, head_commit"
						  "  FROM repo_stream.repos WHERE did = $1",
						  1, &type, &arg, NULL, true, 0);
	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("repo \"%s\" does not exist", did)));
	status = rs_gettext(0, 1);
	did_key = rs_gettext(0, 2);
	head_cid = rs_gettext(0, 3);
	head_rev = rs_gettext(0, 4);
	data_cid = rs_getbytea(0, 5);
	head_commit = rs_getbytea(0, 6);
	report(&r, "repo", true, "%s", status);

	if (strcmp(status, "deleted") == 0)
	{
		check_events(&r, did);
		rs_leave_owner(&oc);
		return (Datum) 0;
	}
	if (data_cid == NULL || head_commit == NULL)
	{
		report(&r, "head_commit", false, "the repo has no commit");
		rs_leave_owner(&oc);
		return (Datum) 0;
	}

	/* records -> CIDs -> MST root, against the signed root */
	if (check_records(&r, did, root))
	{
		cid_format(root, root_text);
		if (memcmp(root, VARDATA_ANY(data_cid), CID_LEN) == 0)
			report(&r, "mst", true, "root %s rebuilt from the records", root_text);
		else
			report(&r, "mst", false, "records give root %s, the head commit signs another", root_text);
	}

	/* the stored nodes on their own */
	{
		NodeStore	ns = {did, NULL};
		MstStore	store = {table_get, &ns};
		MstTree    *tree;
		char		err[256];
		size_t		count;

		if (mst_open(&store, (uint8 *) VARDATA_ANY(data_cid), &tree, err, sizeof(err)) != MST_OK)
			report(&r, "mst_nodes", false, "%s", err);
		else
		{
			MstError	e = mst_verify(tree, &count);

			if (e != MST_OK)
				report(&r, "mst_nodes", false, "%s", mst_errmsg(tree));
			else
				report(&r, "mst_nodes", true, "%zu %s in the stored tree", count,
					   count == 1 ? "entry" : "entries");
			mst_free(tree);
		}
	}

	/* the head commit: its CID, fields and signature */
	{
		RepoCommit	c;
		char		err[256];
		uint8		cid[CID_LEN];
		char		cid_text[CID_TEXT_LEN + 1];
		uint8		pub[ED25519_PUBLIC_KEY_LEN];
		const uint8 *bytes = (uint8 *) VARDATA_ANY(head_commit);
		size_t		len = VARSIZE_ANY_EXHDR(head_commit);

		cid_for_dagcbor(bytes, len, cid);
		cid_format(cid, cid_text);
		if (commit_decode(bytes, len, true, &c, err, sizeof(err)) != COMMIT_OK)
			report(&r, "head_commit", false, "%s", err);
		else if (strcmp(cid_text, head_cid) != 0)
			report(&r, "head_commit", false, "stored commit hashes to %s, not %s", cid_text, head_cid);
		else if (c.did_len != strlen(did) || memcmp(c.did, did, c.did_len) != 0 ||
				 c.rev_len != strlen(head_rev) || memcmp(c.rev, head_rev, c.rev_len) != 0 ||
				 memcmp(c.data, VARDATA_ANY(data_cid), CID_LEN) != 0)
			report(&r, "head_commit", false, "commit fields differ from the repo row");
		else if (!did_key_parse_ed25519(did_key, strlen(did_key), pub, NULL) ||
				 !commit_verify_sig(&c, pub))
			report(&r, "head_commit", false, "signature does not verify with %s", did_key);
		else
			report(&r, "head_commit", true, "%s rev %s signed by %s", head_cid, head_rev, did_key);
	}

	check_events(&r, did);
	rs_leave_owner(&oc);
	return (Datum) 0;
}

/* ------------------------------------------------------------ key history */

static const char *const KEYS_SQL =
"SELECT did_key, since_rev, lead(since_rev) OVER (ORDER BY since_rev)"
"  FROM repo_stream.repo_key_history WHERE did = $1 ORDER BY since_rev";

/* ERROR 42704 unless the repo exists (in any status, deleted included). */
static void
require_repo(const char *did)
{
	Datum		arg = CStringGetTextDatum(did);
	Oid			type = TEXTOID;

	SPI_execute_with_args("SELECT 1 FROM repo_stream.repos WHERE did = $1",
						  1, &type, &arg, NULL, true, 0);
	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("repo \"%s\" does not exist", did)));
}

/*
 * repo_keys(did) -> (did_key, since_rev, until_rev): every key the repo
 * has signed with, oldest first.  A key signs the commits with
 * since_rev <= rev < until_rev; until_rev is NULL for the current key.
 * Reads repo_key_history as the extension owner, so it is granted to
 * repo_stream_reader, not PUBLIC.  ERROR 42704 for an unknown repo.
 */
Datum
rs_repo_keys(PG_FUNCTION_ARGS)
{
	char	   *did = text_to_cstring(PG_GETARG_TEXT_PP(0));
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	RsOwnerContext oc;
	Datum		arg = CStringGetTextDatum(did);
	Oid			type = TEXTOID;
	MemoryContext caller = CurrentMemoryContext;

	InitMaterializedSRF(fcinfo, 0);
	rs_enter_owner(&oc);
	require_repo(did);
	SPI_execute_with_args(KEYS_SQL, 1, &type, &arg, NULL, true, 0);
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		Datum		values[3];
		bool		nulls[3];
		MemoryContext old = MemoryContextSwitchTo(caller);

		for (int c = 0; c < 3; c++)
		{
			char	   *v = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, c + 1);

			nulls[c] = v == NULL;
			values[c] = v ? CStringGetTextDatum(v) : (Datum) 0;
		}
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
		MemoryContextSwitchTo(old);
	}
	rs_leave_owner(&oc);
	return (Datum) 0;
}

/*
 * verify_frame(frame): verify_frame(frame, did_key) with the key that was
 * current at the frame's rev, taken from the repo's key history (so frames
 * signed before a rotate_key still verify).  The DID comes from the frame.
 * Same results as the two-argument form; a #commit or #sync whose rev
 * predates every key of its repo is false with a NOTICE.  ERROR 42704 if
 * the frame's repo does not exist here.
 */
Datum
rs_verify_frame_by_history(PG_FUNCTION_ARGS)
{
	bytea	   *frame = PG_GETARG_BYTEA_PP(0);
	Frame		f;
	RsOwnerContext oc;
	Datum		arg;
	Oid			type = TEXTOID;
	char	   *did;
	const char *rev;
	size_t		rev_len;
	char	   *key = NULL;
	uint8		pub[ED25519_PUBLIC_KEY_LEN];

	switch (rs_frame_open((const uint8 *) VARDATA_ANY(frame), VARSIZE_ANY_EXHDR(frame), &f))
	{
		case RS_FRAME_FAILS:
			PG_RETURN_BOOL(false);
		case RS_FRAME_UNSIGNED:
			PG_RETURN_NULL();
		case RS_FRAME_OK:
			break;
	}
	{
		size_t		did_len;
		const char *d = frame_did(&f, &did_len);

		did = pnstrdup(d, did_len);
		rev = frame_rev(&f, &rev_len);
	}

	/* the key in force at this rev: the newest one whose since_rev is not after it */
	arg = CStringGetTextDatum(did);
	rs_enter_owner(&oc);
	require_repo(did);
	SPI_execute_with_args(KEYS_SQL, 1, &type, &arg, NULL, true, 0);
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		char	   *since = rs_gettext(i, 2);

		/* revs are TIDs: fixed length, so bytewise order is time order */
		if (strlen(since) == rev_len && memcmp(since, rev, rev_len) <= 0)
			key = rs_gettext(i, 1);
	}
	rs_leave_owner(&oc);

	if (key == NULL || !did_key_parse_ed25519(key, strlen(key), pub, NULL))
	{
		char		msg[128];

		snprintf(msg, sizeof(msg), "no key of the repo's history signs rev %.*s",
				 (int) Min(rev_len, 64), rev);
		rs_frame_fails(&f, msg);
		frame_free(&f);
		PG_RETURN_BOOL(false);
	}
	PG_RETURN_BOOL(rs_frame_verify_key(&f, pub));
}
