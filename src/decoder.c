/*
 * decoder.c - logical decoding output plugin "repo_stream".
 *
 * One output message per row INSERTed into a partition of
 * repo_stream.event_log: the stored frame, byte for byte (seq included),
 * in the order the reorder buffer hands changes over, i.e. commit order,
 * and within a transaction the order of the inserts (increasing seq).
 * Every other relation is skipped after one hash lookup on its OID.
 *
 * No BEGIN/COMMIT messages: a stream of frames is what atproto consumers
 * read, and pg_recvlogical then writes a file of frames and nothing else.
 *
 * Options (all optional, parsed strictly):
 *   format  cbor (default, binary output) | json (text, one object a line)
 *   repos   comma-separated DIDs: only their events
 *   kinds   comma-separated subset of commit, account, sync
 *   blocks  true (default) | false: drop the CAR slice from #commit/#sync
 *
 * Memory: each event is its own write, built in a per-change context that
 * is reset right after it, so a transaction of any size needs only as much
 * as its largest frame (the reorder buffer itself spills to disk past
 * logical_decoding_work_mem).
 */
#include "postgres.h"

#include "access/detoast.h"
#include "access/htup_details.h"
#include "catalog/namespace.h"
#include "catalog/partition.h"
#include "fmgr.h"
#include "replication/logical.h"
#include "replication/output_plugin.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"

#include "buf.h"
#include "cbor_sql.h"
#include "frame_split.h"
#include "syntax.h"

#define KIND_COMMIT		0x1
#define KIND_ACCOUNT	0x2
#define KIND_SYNC		0x4
#define KIND_ALL		(KIND_COMMIT | KIND_ACCOUNT | KIND_SYNC)

/* Tell the walsender we are alive every this many changes (as pgoutput does). */
#define PROGRESS_EVERY	100

typedef struct DidKey
{
	const char *did;
	size_t		len;
} DidKey;

typedef struct DecoderState
{
	MemoryContext change_cxt;	/* reset after every change */
	bool		json;
	bool		blocks;
	int			kinds;			/* KIND_* bits */
	DidKey	   *repos;			/* sorted; NULL: every repo */
	int			n_repos;
	int			changes;		/* since the last progress update */
	bool		xact_wrote;		/* this transaction emitted something */
} DecoderState;

/* Per relation OID: is it an event_log partition, and where are its columns. */
typedef struct RelEntry
{
	Oid			relid;			/* hash key */
	bool		is_log;
	AttrNumber	att_seq,
				att_did,
				att_kind,
				att_frame;
} RelEntry;

/*
 * Lives for one decoding session, which replays WAL forward: the next
 * session may start at an earlier LSN, where a relation's past differs
 * from what a later entry says (as pgoutput does with its cache).
 */
static HTAB *rel_cache = NULL;
static bool rel_callback_registered = false;

void		_PG_output_plugin_init(OutputPluginCallbacks *cb);

/* ------------------------------------------------------------ relations */

/* DDL (ATTACH/DETACH/DROP ...) invalidates the relation; forget what we knew. */
static void
rel_cache_invalidate(Datum arg, Oid relid)
{
	if (rel_cache == NULL)
		return;
	if (OidIsValid(relid))
		hash_search(rel_cache, &relid, HASH_REMOVE, NULL);
	else
	{
		HASH_SEQ_STATUS it;
		RelEntry   *e;

		hash_seq_init(&it, rel_cache);
		while ((e = hash_seq_search(&it)) != NULL)
			hash_search(rel_cache, &e->relid, HASH_REMOVE, NULL);
	}
}

static void
rel_cache_drop(void)
{
	if (rel_cache != NULL)
		hash_destroy(rel_cache);
	rel_cache = NULL;
}

static AttrNumber
column(TupleDesc desc, const char *name)
{
	for (int i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute a = TupleDescAttr(desc, i);

		if (!a->attisdropped && strcmp(NameStr(a->attname), name) == 0)
			return a->attnum;
	}
	return InvalidAttrNumber;
}

/*
 * The cache entry for rel, built on first sight.  Catalog lookups run
 * under the decoding's historic snapshot, so they see the relation as it
 * was when the change was made.  Returns a copy: a lookup below may
 * process invalidations, which remove entries.
 */
static RelEntry
rel_entry(Relation rel)
{
	Oid			relid = RelationGetRelid(rel);
	RelEntry   *e;
	RelEntry	built = {0};
	bool		found;

	if (rel_cache == NULL)
	{
		HASHCTL		ctl;

		ctl.keysize = sizeof(Oid);
		ctl.entrysize = sizeof(RelEntry);
		ctl.hcxt = CacheMemoryContext;
		rel_cache = hash_create("repo_stream decoder relations", 64, &ctl,
								HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
		/* once per process: callbacks cannot be unregistered */
		if (!rel_callback_registered)
		{
			CacheRegisterRelcacheCallback(rel_cache_invalidate, (Datum) 0);
			rel_callback_registered = true;
		}
	}
	e = hash_search(rel_cache, &relid, HASH_FIND, NULL);
	if (e != NULL)
		return *e;

	built.relid = relid;
	if (rel->rd_rel->relispartition &&
		RelationGetNamespace(rel) == get_namespace_oid("repo_stream", true))
	{
		Oid			parent = get_partition_parent(relid, true);
		char	   *pname = get_rel_name(parent);

		if (pname != NULL && strcmp(pname, "event_log") == 0 &&
			get_rel_namespace(parent) == RelationGetNamespace(rel))
		{
			TupleDesc	desc = RelationGetDescr(rel);

			built.att_seq = column(desc, "seq");
			built.att_did = column(desc, "did");
			built.att_kind = column(desc, "kind");
			built.att_frame = column(desc, "frame");
			built.is_log = built.att_seq && built.att_did && built.att_kind && built.att_frame;
		}
	}
	e = hash_search(rel_cache, &relid, HASH_ENTER, &found);
	*e = built;
	return built;
}

/* -------------------------------------------------------------- options */

/*
 * Every option error has one shape: SQLSTATE 22023, a message naming the
 * option and the offending value, and a hint saying what is accepted.
 */
static const char *const HINT_OPTIONS = "Valid options are format, repos, kinds and blocks.";

static const char *
option_hint(const char *name)
{
	if (strcmp(name, "format") == 0)
		return "Valid formats are cbor and json.";
	if (strcmp(name, "repos") == 0)
		return "Give DIDs separated by commas, such as did:plc:ewvi7nxzyoun6zhxrhs64oiz,did:web:example.com.";
	if (strcmp(name, "kinds") == 0)
		return "Give event kinds separated by commas: commit, account, sync.";
	return "Give true or false.";
}

#define option_error(hint, ...) \
	ereport(ERROR, \
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE), \
			 errmsg(__VA_ARGS__), \
			 errhint("%s", (hint))))

static int
did_cmp(const void *a, const void *b)
{
	const DidKey *x = a,
			   *y = b;
	int			c = memcmp(x->did, y->did, Min(x->len, y->len));

	return c != 0 ? c : (x->len > y->len) - (x->len < y->len);
}

/*
 * Split a comma-separated value into its elements, spaces around each
 * trimmed.  An empty element (",,", trailing comma, empty value) is an
 * error: it is a typo, not a request for nothing.
 */
static List *
split_list(const char *name, const char *value)
{
	List	   *out = NIL;
	const char *p = value;

	for (;;)
	{
		const char *end = strchr(p, ',');
		const char *s = p,
				   *e = end ? end : p + strlen(p);

		while (s < e && *s == ' ')
			s++;
		while (e > s && e[-1] == ' ')
			e--;
		if (s == e)
			option_error(option_hint(name),
						 "invalid value \"%s\" for repo_stream option \"%s\": the list has an empty element",
						 value, name);
		out = lappend(out, pnstrdup(s, e - s));
		if (end == NULL)
			break;
		p = end + 1;
	}
	return out;
}

static void
parse_options(DecoderState *st, List *options, OutputPluginOptions *opt)
{
	ListCell   *lc;
	bool		seen_format = false,
				seen_repos = false,
				seen_kinds = false,
				seen_blocks = false;

	foreach(lc, options)
	{
		DefElem    *elem = lfirst(lc);
		const char *name = elem->defname;
		const char *value = elem->arg ? strVal(elem->arg) : NULL;
		bool	   *seen;

		if (strcmp(name, "format") == 0)
			seen = &seen_format;
		else if (strcmp(name, "repos") == 0)
			seen = &seen_repos;
		else if (strcmp(name, "kinds") == 0)
			seen = &seen_kinds;
		else if (strcmp(name, "blocks") == 0)
			seen = &seen_blocks;
		else
			option_error(HINT_OPTIONS, "unrecognized repo_stream option \"%s\"", name);
		if (*seen)
			option_error("Give each option at most once.",
						 "repo_stream option \"%s\" is given more than once", name);
		*seen = true;

		/* a bare boolean means true, as in test_decoding; the rest need a value */
		if (value == NULL && strcmp(name, "blocks") != 0)
			option_error(option_hint(name), "repo_stream option \"%s\" needs a value", name);

		if (seen == &seen_format)
		{
			if (strcmp(value, "cbor") == 0)
				st->json = false;
			else if (strcmp(value, "json") == 0)
				st->json = true;
			else
				option_error(option_hint(name), "invalid value \"%s\" for repo_stream option \"%s\"",
							 value, name);
		}
		else if (seen == &seen_blocks)
		{
			if (value != NULL && !parse_bool(value, &st->blocks))
				option_error(option_hint(name), "invalid value \"%s\" for repo_stream option \"%s\"",
							 value, name);
		}
		else if (seen == &seen_kinds)
		{
			ListCell   *k;

			st->kinds = 0;
			foreach(k, split_list(name, value))
			{
				const char *kind = lfirst(k);

				if (strcmp(kind, "commit") == 0)
					st->kinds |= KIND_COMMIT;
				else if (strcmp(kind, "account") == 0)
					st->kinds |= KIND_ACCOUNT;
				else if (strcmp(kind, "sync") == 0)
					st->kinds |= KIND_SYNC;
				else
					option_error(option_hint(name),
								 "invalid event kind \"%s\" in repo_stream option \"kinds\"", kind);
			}
		}
		else
		{
			List	   *dids = split_list(name, value);
			ListCell   *d;
			int			i = 0;

			st->repos = palloc(sizeof(DidKey) * list_length(dids));
			foreach(d, dids)
			{
				const char *did = lfirst(d);

				if (!did_valid(did, strlen(did)))
					option_error(option_hint(name),
								 "invalid DID \"%s\" in repo_stream option \"repos\"", did);
				st->repos[i].did = did;
				st->repos[i].len = strlen(did);
				i++;
			}
			st->n_repos = i;
			qsort(st->repos, st->n_repos, sizeof(DidKey), did_cmp);
		}
	}
	opt->output_type = st->json ? OUTPUT_PLUGIN_TEXTUAL_OUTPUT : OUTPUT_PLUGIN_BINARY_OUTPUT;
}

/* ------------------------------------------------------------ callbacks */

static void
rs_decode_startup(LogicalDecodingContext *ctx, OutputPluginOptions *opt, bool is_init)
{
	DecoderState *st = MemoryContextAllocZero(ctx->context, sizeof(DecoderState));
	MemoryContext old;

	rel_cache_drop();			/* in case a session ended without shutdown */
	st->change_cxt = AllocSetContextCreate(ctx->context, "repo_stream change",
										   ALLOCSET_DEFAULT_SIZES);
	st->blocks = true;
	st->kinds = KIND_ALL;
	ctx->output_plugin_private = st;
	opt->receive_rewrites = false;

	old = MemoryContextSwitchTo(ctx->context);
	parse_options(st, ctx->output_plugin_options, opt);
	MemoryContextSwitchTo(old);
}

static void
rs_decode_shutdown(LogicalDecodingContext *ctx)
{
	DecoderState *st = ctx->output_plugin_private;

	MemoryContextDelete(st->change_cxt);
	rel_cache_drop();
}

static void
rs_decode_begin(LogicalDecodingContext *ctx, ReorderBufferTXN *txn)
{
	DecoderState *st = ctx->output_plugin_private;

	st->xact_wrote = false;
}

/* Every transaction end lets the walsender track lag and send keepalives. */
static void
rs_decode_commit(LogicalDecodingContext *ctx, ReorderBufferTXN *txn, XLogRecPtr commit_lsn)
{
	DecoderState *st = ctx->output_plugin_private;

	st->changes = 0;
	OutputPluginUpdateProgress(ctx, !st->xact_wrote);
}

static void
seq_errcontext(void *arg)
{
	errcontext("repo_stream event seq " INT64_FORMAT, *(int64 *) arg);
}

static bool
did_wanted(DecoderState *st, text *did)
{
	DidKey		key = {VARDATA_ANY(did), VARSIZE_ANY_EXHDR(did)};

	return bsearch(&key, st->repos, st->n_repos, sizeof(DidKey), did_cmp) != NULL;
}

static int
kind_bit(text *kind)
{
	const char *k = VARDATA_ANY(kind);
	size_t		len = VARSIZE_ANY_EXHDR(kind);

	if (len == 6 && memcmp(k, "commit", 6) == 0)
		return KIND_COMMIT;
	if (len == 7 && memcmp(k, "account", 7) == 0)
		return KIND_ACCOUNT;
	if (len == 4 && memcmp(k, "sync", 4) == 0)
		return KIND_SYNC;
	return 0;
}

/*
 * The frame of a decoded row.  A frame stored out of line arrives as an
 * indirect pointer to the value the reorder buffer reassembled from the
 * TOAST chunks; read it in place (detoasting would copy it), and detoast
 * only what still needs it (a compressed value, should storage change).
 */
static bytea *
frame_value(Datum d)
{
	struct varlena *v = (struct varlena *) DatumGetPointer(d);

	if (VARATT_IS_EXTERNAL_INDIRECT(v))
	{
		struct varatt_indirect redirect;

		VARATT_EXTERNAL_GET_POINTER(redirect, v);
		v = redirect.pointer;
	}
	return (bytea *) pg_detoast_datum_packed(v);
}

/* Append the frame as JSON text: {"seq": n, "header": {...}, "body": {...}}. */
static void
append_json(StringInfo out, int64 seq, const uint8 *data, size_t len)
{
	size_t		body;
	Jsonb	   *header_jb,
			   *body_jb;

	if (frame_split(data, len, &body) != FRAME_OK)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("stored frame of seq " INT64_FORMAT " is not two CBOR items", seq)));
	header_jb = rs_cbor_to_jsonb(data, body, "frame header");
	body_jb = rs_cbor_to_jsonb(data + body, len - body, "frame body");
	appendStringInfo(out, "{\"seq\": " INT64_FORMAT ", \"header\": ", seq);
	JsonbToCString(out, &header_jb->root, VARSIZE(header_jb));
	appendStringInfoString(out, ", \"body\": ");
	JsonbToCString(out, &body_jb->root, VARSIZE(body_jb));
	appendStringInfoChar(out, '}');
}

static void
rs_decode_change(LogicalDecodingContext *ctx, ReorderBufferTXN *txn,
				 Relation relation, ReorderBufferChange *change)
{
	DecoderState *st = ctx->output_plugin_private;
	RelEntry	rel;
	HeapTuple	tuple;
	TupleDesc	desc;
	MemoryContext old;
	Datum		d;
	bool		isnull;
	int64		seq;
	int			kind;
	bytea	   *frame;
	const uint8 *data;
	size_t		len;
	ErrorContextCallback errcb;

	/* large transactions: keep the walsender responsive while we skip */
	if (++st->changes >= PROGRESS_EVERY)
	{
		st->changes = 0;
		OutputPluginUpdateProgress(ctx, false);
	}

	/* event_log rows live in partitions: everything else goes without a lookup */
	if (change->action != REORDER_BUFFER_CHANGE_INSERT || change->data.tp.newtuple == NULL ||
		!relation->rd_rel->relispartition)
		return;
	rel = rel_entry(relation);
	if (!rel.is_log)
		return;

	tuple = &change->data.tp.newtuple->tuple;
	desc = RelationGetDescr(relation);
	old = MemoryContextSwitchTo(st->change_cxt);

	/* kind decides the filter and whether blocks=false applies */
	kind = KIND_COMMIT;
	if (st->kinds != KIND_ALL || !st->blocks)
	{
		d = heap_getattr(tuple, rel.att_kind, desc, &isnull);
		kind = isnull ? 0 : kind_bit(DatumGetTextPP(d));
		if (!(st->kinds & kind))
			goto done;
	}
	if (st->repos != NULL)
	{
		d = heap_getattr(tuple, rel.att_did, desc, &isnull);
		if (isnull || !did_wanted(st, DatumGetTextPP(d)))
			goto done;
	}
	d = heap_getattr(tuple, rel.att_seq, desc, &isnull);
	if (isnull)
		goto done;
	seq = DatumGetInt64(d);

	errcb.callback = seq_errcontext;
	errcb.arg = &seq;
	errcb.previous = error_context_stack;
	error_context_stack = &errcb;

	d = heap_getattr(tuple, rel.att_frame, desc, &isnull);
	if (isnull)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("event of seq " INT64_FORMAT " has no frame", seq)));
	frame = frame_value(d);
	data = (const uint8 *) VARDATA_ANY(frame);
	len = VARSIZE_ANY_EXHDR(frame);

	if (!st->blocks && kind != KIND_ACCOUNT)
	{
		RsBuf		cut;
		bool		removed;

		rs_buf_init(&cut, len);
		if (frame_drop_field(data, len, "blocks", &cut, &removed) != FRAME_OK)
			ereport(ERROR,
					(errcode(ERRCODE_DATA_CORRUPTED),
					 errmsg("stored frame of seq " INT64_FORMAT " is not a header and a map body", seq)));
		data = cut.data;
		len = cut.len;
	}

	OutputPluginPrepareWrite(ctx, true);
	if (st->json)
		append_json(ctx->out, seq, data, len);
	else
		appendBinaryStringInfo(ctx->out, (const char *) data, len);
	OutputPluginWrite(ctx, true);
	st->xact_wrote = true;

	error_context_stack = errcb.previous;
done:
	MemoryContextSwitchTo(old);
	MemoryContextReset(st->change_cxt);
}

void
_PG_output_plugin_init(OutputPluginCallbacks *cb)
{
	cb->startup_cb = rs_decode_startup;
	cb->begin_cb = rs_decode_begin;
	cb->change_cb = rs_decode_change;
	cb->commit_cb = rs_decode_commit;
	cb->shutdown_cb = rs_decode_shutdown;
	/* no truncate_cb: pruning TRUNCATEs whole segments, which streams nothing */
}
