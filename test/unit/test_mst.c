/*
 * test_mst.c - Merkle Search Tree against the atproto reference vectors,
 * plus order-independence, a randomized edit/rebuild property, strict node
 * decoding, diff and commit proofs.
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "tap.h"
#include "buf.h"
#include "cbor.h"
#include "cid.h"
#include "mst.h"

#define FIX "test/fixtures/"

/* ------------------------------------------------------------------ utils */

static int
is_strf(const char *got, const char *want, const char *fmt,...)
{
	char		name[256];
	va_list		ap;

	va_start(ap, fmt);
	vsnprintf(name, sizeof(name), fmt, ap);
	va_end(ap);
	return is_str(got, want, name);
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;

static uint64_t
rng(void)
{
	/* xorshift64*: fixed seed, same run every time */
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 0x2545f4914f6cdd1dULL;
}

static void
shuffle(void *base, size_t n, size_t size)
{
	char	   *a = base;
	char		tmp[256];

	for (size_t i = n; i > 1; i--)
	{
		size_t		j = rng() % i;

		memcpy(tmp, a + (i - 1) * size, size);
		memcpy(a + (i - 1) * size, a + j * size, size);
		memcpy(a + j * size, tmp, size);
	}
}

static const char *
cidtxt(const uint8_t cid[CID_LEN])
{
	static char buf[4][CID_TEXT_LEN + 1];
	static int	k;

	k = (k + 1) % 4;
	cid_format(cid, buf[k]);
	return buf[k];
}

static void
cid_from(const char *text, uint8_t out[CID_LEN])
{
	if (!cid_parse(text, strlen(text), out))
	{
		printf("# bad CID in fixture: %s\n", text);
		exit(2);
	}
}

/* A fake record CID: dag-cbor CID of a counter. */
static void
fake_cid(uint64_t n, uint8_t out[CID_LEN])
{
	uint8_t		b[8];

	memcpy(b, &n, 8);
	cid_for_dagcbor(b, 8, out);
}

static json_t *
load_json(const char *path)
{
	json_error_t jerr;
	json_t	   *j = json_load_file(path, JSON_ALLOW_NUL, &jerr);

	if (!j)
	{
		printf("# cannot load %s: %s\n", path, jerr.text);
		exit(2);
	}
	return j;
}

static char *
root_text(MstTree *t)
{
	static char buf[8][CID_TEXT_LEN + 1];
	static int	k;
	uint8_t		root[CID_LEN];
	MstError	err = mst_root(t, root);

	k = (k + 1) % 8;
	if (err != MST_OK)
		snprintf(buf[k], sizeof(buf[k]), "error %d: %s", err, mst_errmsg(t));
	else
		cid_format(root, buf[k]);
	return buf[k];
}

/* ------------------------------------------------------------ CID vectors */

typedef struct CidVec
{
	uint8_t		(*v)[CID_LEN];
	size_t		n,
				cap;
} CidVec;

static void
cv_push(CidVec *c, const uint8_t cid[CID_LEN])
{
	if (c->n == c->cap)
	{
		c->cap = c->cap ? c->cap * 2 : 16;
		c->v = realloc(c->v, c->cap * CID_LEN);
	}
	memcpy(c->v[c->n++], cid, CID_LEN);
}

static int
cid_cmp(const void *a, const void *b)
{
	return memcmp(a, b, CID_LEN);
}

/* Sort and drop duplicates. */
static void
cv_norm(CidVec *c)
{
	size_t		o = 0;

	if (c->n > 1)
		qsort(c->v, c->n, CID_LEN, cid_cmp);
	for (size_t i = 0; i < c->n; i++)
		if (o == 0 || memcmp(c->v[o - 1], c->v[i], CID_LEN) != 0)
			memcpy(c->v[o++], c->v[i], CID_LEN);
	c->n = o;
}

static void
cv_from_list(CidVec *c, const MstCidList *l)
{
	for (size_t i = 0; i < l->n; i++)
		cv_push(c, l->cids[i]);
}

/* Equal as sets; prints the difference. */
static bool
cv_same_set(CidVec *a, CidVec *b)
{
	bool		same;

	cv_norm(a);
	cv_norm(b);
	same = a->n == b->n && (a->n == 0 || memcmp(a->v, b->v, a->n * CID_LEN) == 0);
	if (!same)
	{
		for (size_t i = 0; i < a->n; i++)
			if (b->n == 0 || !bsearch(a->v[i], b->v, b->n, CID_LEN, cid_cmp))
				printf("#   only in got:  %s\n", cidtxt(a->v[i]));
		for (size_t i = 0; i < b->n; i++)
			if (a->n == 0 || !bsearch(b->v[i], a->v, a->n, CID_LEN, cid_cmp))
				printf("#   only in want: %s\n", cidtxt(b->v[i]));
	}
	return same;
}

static void
cv_free(CidVec *c)
{
	free(c->v);
	c->v = NULL;
	c->n = c->cap = 0;
}

static void
cv_put_cb(void *ctx, const uint8_t cid[CID_LEN], const uint8_t *data, size_t len)
{
	(void) data;
	(void) len;
	cv_push(ctx, cid);
}

/* ------------------------------------------------------------ memory store */

typedef struct MemStore
{
	uint8_t		(*cid)[CID_LEN];
	uint8_t   **data;
	size_t	   *len;
	size_t		cap,
				n;
	long		gets;
	const uint8_t *corrupt;		/* serve these bytes instead, once set */
	size_t		corrupt_len;
} MemStore;

static void
mem_init(MemStore *m)
{
	memset(m, 0, sizeof(*m));
	m->cap = 1024;
	m->cid = calloc(m->cap, CID_LEN);
	m->data = calloc(m->cap, sizeof(uint8_t *));
	m->len = calloc(m->cap, sizeof(size_t));
}

static size_t
mem_slot(const MemStore *m, const uint8_t cid[CID_LEN])
{
	uint64_t	h;
	size_t		i;

	memcpy(&h, cid + 4, 8);
	i = (size_t) h & (m->cap - 1);
	while (m->data[i] && memcmp(m->cid[i], cid, CID_LEN) != 0)
		i = (i + 1) & (m->cap - 1);
	return i;
}

static void mem_put(void *ctx, const uint8_t cid[CID_LEN], const uint8_t *data, size_t len);

static void
mem_grow(MemStore *m)
{
	MemStore	old = *m;

	m->cap *= 2;
	m->n = 0;
	m->cid = calloc(m->cap, CID_LEN);
	m->data = calloc(m->cap, sizeof(uint8_t *));
	m->len = calloc(m->cap, sizeof(size_t));
	for (size_t i = 0; i < old.cap; i++)
		if (old.data[i])
		{
			mem_put(m, old.cid[i], old.data[i], old.len[i]);
			free(old.data[i]);
		}
	free(old.cid);
	free(old.data);
	free(old.len);
}

static void
mem_put(void *ctx, const uint8_t cid[CID_LEN], const uint8_t *data, size_t len)
{
	MemStore   *m = ctx;
	size_t		i;

	if ((m->n + 1) * 2 > m->cap)
		mem_grow(m);
	i = mem_slot(m, cid);
	if (m->data[i])
		return;
	memcpy(m->cid[i], cid, CID_LEN);
	m->data[i] = malloc(len ? len : 1);
	memcpy(m->data[i], data, len);
	m->len[i] = len;
	m->n++;
}

static MstError
mem_get(void *ctx, const uint8_t cid[CID_LEN], const uint8_t **data, size_t *len)
{
	MemStore   *m = ctx;
	size_t		i = mem_slot(m, cid);

	m->gets++;
	if (m->corrupt)
	{
		*data = m->corrupt;
		*len = m->corrupt_len;
		return MST_OK;
	}
	if (!m->data[i])
		return MST_ERR_MISSING_NODE;
	*data = m->data[i];
	*len = m->len[i];
	return MST_OK;
}

static void
mem_free(MemStore *m)
{
	for (size_t i = 0; i < m->cap; i++)
		free(m->data[i]);
	free(m->cid);
	free(m->data);
	free(m->len);
}

static MstStore
mem_store(MemStore *m)
{
	MstStore	s = {mem_get, m};

	return s;
}

/* ------------------------------------------------------------ key model */

typedef struct Model
{
	char	  **keys;
	size_t	   *lens;
	bool	   *present;
	uint8_t		(*val)[CID_LEN];
	size_t		n;
} Model;

static MstTree *
model_build(const Model *m)
{
	MstKV	   *kv = malloc((m->n + 1) * sizeof(MstKV));
	size_t		c = 0;
	MstTree    *t = mst_new(NULL);

	for (size_t i = 0; i < m->n; i++)
		if (m->present[i])
		{
			kv[c].key = m->keys[i];
			kv[c].key_len = m->lens[i];
			memcpy(kv[c].value, m->val[i], CID_LEN);
			c++;
		}
	if (mst_build(t, kv, c) != MST_OK)
		printf("# model build failed: %s\n", mst_errmsg(t));
	free(kv);
	return t;
}

/* ------------------------------------------------------------ fixtures */

static void
test_key_heights(void)
{
	json_t	   *j = load_json(FIX "atproto-interop/mst/key_heights.json");
	size_t		i;
	json_t	   *v;

	json_array_foreach(j, i, v)
	{
		const char *key = json_string_value(json_object_get(v, "key"));
		int			want = (int) json_integer_value(json_object_get(v, "height"));
		int			got = mst_key_depth((const uint8_t *) key, strlen(key));

		if (!ok(got == want, "key height of \"%s\" is %d", key, want))
			printf("#   got %d\n", got);
	}
	json_decref(j);
}

static void
test_common_prefix(void)
{
	json_t	   *j = load_json(FIX "atproto-interop/mst/common_prefix.json");
	size_t		i;
	json_t	   *v;

	json_array_foreach(j, i, v)
	{
		json_t	   *l = json_object_get(v, "left"),
				   *r = json_object_get(v, "right");
		size_t		want = (size_t) json_integer_value(json_object_get(v, "len"));
		size_t		got = mst_common_prefix((const uint8_t *) json_string_value(l), json_string_length(l),
											(const uint8_t *) json_string_value(r), json_string_length(r));

		if (!ok(got == want, "common prefix of \"%s\" and \"%s\" is %zu",
				json_string_value(l), json_string_value(r), want))
			printf("#   got %zu\n", got);
	}
	json_decref(j);
}

static void
test_example_keys(void)
{
	FILE	   *f = fopen(FIX "atproto-interop/mst/example_keys.txt", "r");
	char		line[256];
	int			n = 0,
				bad = 0;

	if (!f)
	{
		ok(0, "example_keys.txt opens");
		return;
	}
	while (fgets(line, sizeof(line), f))
	{
		size_t		len = strcspn(line, "\r\n");

		line[len] = '\0';
		if (len == 0)
			continue;
		n++;
		/* the digit after the letter is the key's height */
		if (!mst_valid_key(line, len) ||
			mst_key_depth((const uint8_t *) line, len) != line[1] - '0')
		{
			bad++;
			printf("# example key %s: valid %d depth %d\n", line,
				   mst_valid_key(line, len), mst_key_depth((const uint8_t *) line, len));
		}
	}
	fclose(f);
	ok(n == 156 && bad == 0, "all %d example keys are valid and sit at the height their name says", n);
}

/* Known trees from the atproto interop tests (TypeScript mst.test.ts, indigo). */
#define CID1 "bafyreie5cvv4h45feadgeuwhbcutmh6t2ceseocckahdoe6uat64zmz454"
#define CR "com.example.record/"

static MstTree *
tree_of(const char *const *keys, size_t n)
{
	MstTree    *t = mst_new(NULL);
	uint8_t		v[CID_LEN];

	cid_from(CID1, v);
	for (size_t i = 0; i < n; i++)
		if (mst_insert(t, keys[i], strlen(keys[i]), v) != MST_OK)
			printf("# insert %s: %s\n", keys[i], mst_errmsg(t));
	return t;
}

static void
test_known_trees(void)
{
	static const char *trivial[] = {CR "3jqfcqzm3fo2j"};
	static const char *layer2[] = {CR "3jqfcqzm3fx2j"};
	static const char *simple[] = {CR "3jqfcqzm3fp2j", CR "3jqfcqzm3fr2j", CR "3jqfcqzm3fs2j",
	CR "3jqfcqzm3ft2j", CR "3jqfcqzm4fc2j"};
	static const char *trim[] = {CR "3jqfcqzm3fn2j", CR "3jqfcqzm3fo2j", CR "3jqfcqzm3fp2j",
	CR "3jqfcqzm3fs2j", CR "3jqfcqzm3ft2j", CR "3jqfcqzm3fu2j"};
	static const char *ins[] = {CR "3jqfcqzm3fo2j", CR "3jqfcqzm3fp2j", CR "3jqfcqzm3fr2j",
		CR "3jqfcqzm3fs2j", CR "3jqfcqzm3ft2j", CR "3jqfcqzm3fz2j", CR "3jqfcqzm4fc2j",
		CR "3jqfcqzm4fd2j", CR "3jqfcqzm4ff2j", CR "3jqfcqzm4fg2j", CR "3jqfcqzm4fh2j"};
	static const char *higher[] = {CR "3jqfcqzm3ft2j", CR "3jqfcqzm3fz2j"};
	uint8_t		v[CID_LEN];
	MstTree    *t;
	int			layer = -1;
	const char *k;

	cid_from(CID1, v);
	t = tree_of(NULL, 0);
	is_str(root_text(t), "bafyreie5737gdxlw5i64vzichcalba3z2v5n6icifvx5xytvske7mr3hpm", "empty tree root");
	mst_free(t);
	t = tree_of(trivial, 1);
	is_str(root_text(t), "bafyreibj4lsc3aqnrvphp5xmrnfoorvru4wynt6lwidqbm2623a6tatzdu", "single entry, layer 0");
	mst_free(t);
	t = tree_of(layer2, 1);
	is_str(root_text(t), "bafyreih7wfei65pxzhauoibu3ls7jgmkju4bspy4t2ha2qdjnzqvoy33ai", "single entry, layer 2");
	mst_free(t);
	t = tree_of(simple, 5);
	is_str(root_text(t), "bafyreicmahysq4n6wfuxo522m6dpiy7z7qzym3dzs756t5n7nfdgccwq7m", "simple 5-entry tree");
	mst_free(t);

	/* delete trims the top of the tree */
	t = tree_of(trim, 6);
	mst_layer(t, &layer);
	ok(layer == 1, "trim-top tree starts at layer 1");
	is_str(root_text(t), "bafyreifnqrwbk6ffmyaz5qtujqrzf5qmxf7cbxvgzktl4e3gabuxbtatv4", "trim-top tree before delete");
	k = CR "3jqfcqzm3fs2j";
	ok(mst_delete(t, k, strlen(k), NULL) == MST_OK, "trim-top delete succeeds");
	mst_layer(t, &layer);
	ok(layer == 0, "trim-top tree is at layer 0 after delete");
	is_str(root_text(t), "bafyreie4kjuxbwkhzg2i5dljaswcroeih4dgiqq6pazcmunwt2byd725vi", "trim-top tree after delete");
	mst_free(t);

	/* an insertion that splits two layers down, and its removal */
	t = tree_of(ins, 11);
	is_str(root_text(t), "bafyreiettyludka6fpgp33stwxfuwhkzlur6chs4d2v4nkmq2j3ogpdjem", "split-two-layers tree before");
	k = CR "3jqfcqzm3fx2j";
	mst_insert(t, k, strlen(k), v);
	is_str(root_text(t), "bafyreid2x5eqs4w4qxvc5jiwda4cien3gw2q6cshofxwnvv7iucrmfohpm", "split-two-layers tree after insert");
	mst_delete(t, k, strlen(k), NULL);
	is_str(root_text(t), "bafyreiettyludka6fpgp33stwxfuwhkzlur6chs4d2v4nkmq2j3ogpdjem", "split-two-layers tree after removal");
	mst_free(t);

	/* a new key two layers above the tree */
	t = tree_of(higher, 2);
	is_str(root_text(t), "bafyreidfcktqnfmykz2ps3dbul35pepleq7kvv526g47xahuz3rqtptmky", "two-higher tree before");
	k = CR "3jqfcqzm3fx2j";
	mst_insert(t, k, strlen(k), v);
	is_str(root_text(t), "bafyreiavxaxdz7o7rbvr3zg2liox2yww46t7g6hkehx4i4h3lwudly7dhy", "two-higher tree after insert");
	mst_delete(t, k, strlen(k), NULL);
	is_str(root_text(t), "bafyreidfcktqnfmykz2ps3dbul35pepleq7kvv526g47xahuz3rqtptmky", "two-higher tree after removal");
	mst_insert(t, k, strlen(k), v);
	mst_insert(t, CR "3jqfcqzm4fd2j", strlen(CR "3jqfcqzm4fd2j"), v);
	is_str(root_text(t), "bafyreig4jv3vuajbsybhyvb7gggvpwh2zszwfyttjrj6qwvcsp24h6popu", "two-higher tree with a layer-1 key");
	mst_delete(t, CR "3jqfcqzm4fd2j", strlen(CR "3jqfcqzm4fd2j"), NULL);
	is_str(root_text(t), "bafyreiavxaxdz7o7rbvr3zg2liox2yww46t7g6hkehx4i4h3lwudly7dhy", "two-higher tree without it");
	mst_free(t);
}

/* Undo one op on a tree (the consumer's side of sync 1.1). */
typedef struct InvOp
{
	const char *key;
	bool		has_prev;		/* put prev back; otherwise delete */
	uint8_t		prev[CID_LEN];
} InvOp;

static MstError
apply_inverse(MstTree *t, const InvOp *op)
{
	if (op->has_prev)
		return mst_put(t, op->key, strlen(op->key), op->prev, NULL, NULL);
	return mst_delete(t, op->key, strlen(op->key), NULL);
}

/*
 * Invert ops on a tree that only has the proof blocks, in every order when
 * there are few ops, else forward and backward; all must give want.
 */
static bool
invert_with_proof(MemStore *proof, const uint8_t after[CID_LEN], const InvOp *ops,
				  size_t n, const char *want, char *why, size_t whylen)
{
	size_t		perm[8];
	size_t		nperm = 1;
	size_t		orders;

	for (size_t i = 0; i < n; i++)
		perm[i] = i;
	for (size_t i = 2; i <= n && n <= 5; i++)
		nperm *= i;
	orders = n <= 5 ? nperm : 2;
	for (size_t o = 0; o < orders; o++)
	{
		MstStore	s = mem_store(proof);
		MstTree    *t;
		char		msg[400];
		MstError	err = mst_open(&s, after, &t, msg, sizeof(msg));

		if (err != MST_OK)
		{
			snprintf(why, whylen, "open: %s", msg);
			return false;
		}
		for (size_t i = 0; i < n && err == MST_OK; i++)
		{
			size_t		k = n <= 5 ? perm[i] : (o == 0 ? i : n - 1 - i);

			err = apply_inverse(t, &ops[k]);
		}
		if (err != MST_OK || strcmp(root_text(t), want) != 0)
		{
			snprintf(why, whylen, "order %zu: %s", o, err != MST_OK ? mst_errmsg(t) : root_text(t));
			mst_free(t);
			return false;
		}
		mst_free(t);
		/* next permutation (lexicographic) */
		if (n <= 5)
		{
			size_t		i = n - 1,
						j;

			while (i > 0 && perm[i - 1] >= perm[i])
				i--;
			if (i == 0)
				break;
			j = n - 1;
			while (perm[j] <= perm[i - 1])
				j--;
			{
				size_t		tmp = perm[i - 1];

				perm[i - 1] = perm[j];
				perm[j] = tmp;
			}
			for (size_t a = i, b = n - 1; a < b; a++, b--)
			{
				size_t		tmp = perm[a];

				perm[a] = perm[b];
				perm[b] = tmp;
			}
		}
	}
	return true;
}

static void
test_commit_proofs(void)
{
	json_t	   *j = load_json(FIX "atproto-interop/firehose/commit-proof-fixtures.json");
	size_t		i;
	json_t	   *f;

	json_array_foreach(j, i, f)
	{
		const char *comment = json_string_value(json_object_get(f, "comment"));
		json_t	   *keys = json_object_get(f, "keys"),
				   *adds = json_object_get(f, "adds"),
				   *dels = json_object_get(f, "dels"),
				   *want = json_object_get(f, "blocksInProof");
		uint8_t		leaf[CID_LEN],
					after[CID_LEN];
		MstTree    *t = mst_new(NULL);
		MstKey		pk[8];
		InvOp		inv[8];
		size_t		npk = 0,
					k;
		json_t	   *v;
		CidVec		got = {0},
					exp = {0};
		MemStore	proof;
		char		why[512] = "";

		cid_from(json_string_value(json_object_get(f, "leafValue")), leaf);
		json_array_foreach(keys, k, v)
			mst_insert(t, json_string_value(v), json_string_length(v), leaf);
		is_str(root_text(t), json_string_value(json_object_get(f, "rootBeforeCommit")),
			   comment);
		json_array_foreach(adds, k, v)
		{
			mst_insert(t, json_string_value(v), json_string_length(v), leaf);
			pk[npk] = (MstKey) {json_string_value(v), json_string_length(v)};
			inv[npk] = (InvOp) {json_string_value(v), false, {0}};
			npk++;
		}
		json_array_foreach(dels, k, v)
		{
			mst_delete(t, json_string_value(v), json_string_length(v), NULL);
			pk[npk] = (MstKey) {json_string_value(v), json_string_length(v)};
			inv[npk] = (InvOp) {json_string_value(v), true, {0}};
			memcpy(inv[npk].prev, leaf, CID_LEN);
			npk++;
		}
		is_str(root_text(t), json_string_value(json_object_get(f, "rootAfterCommit")),
			   "  root after the commit");
		mem_init(&proof);
		{
			MstCidList  list = {0};

			ok(mst_covering_proof(t, pk, npk, mem_put, &proof, &list) == MST_OK,
			   "  covering proof computes");
			cv_from_list(&got, &list);
			mst_cid_list_free(&list);
		}
		json_array_foreach(want, k, v)
		{
			uint8_t		c[CID_LEN];

			cid_from(json_string_value(v), c);
			cv_push(&exp, c);
		}
		ok(cv_same_set(&got, &exp), "  proof is exactly blocksInProof (%zu blocks)", exp.n);
		mst_root(t, after);
		ok(invert_with_proof(&proof, after, inv, npk,
							 json_string_value(json_object_get(f, "rootBeforeCommit")), why, sizeof(why)),
		   "  proof blocks alone invert the ops in every order to the old root%s%s",
		   why[0] ? ": " : "", why);
		cv_free(&got);
		cv_free(&exp);
		mem_free(&proof);
		mst_free(t);
	}
	json_decref(j);
}

/* ------------------------------------------------------------ random trees */

typedef struct Pair
{
	const char *key;
	size_t		len;
	uint8_t		cid[CID_LEN];
} Pair;

static MstTree *
insert_all(const Pair *p, size_t n)
{
	MstTree    *t = mst_new(NULL);

	for (size_t i = 0; i < n; i++)
		if (mst_insert(t, p[i].key, p[i].len, p[i].cid) != MST_OK)
			printf("# insert %s: %s\n", p[i].key, mst_errmsg(t));
	return t;
}

static MstTree *
build_all(const Pair *p, size_t n)
{
	MstKV	   *kv = malloc((n + 1) * sizeof(MstKV));
	MstTree    *t = mst_new(NULL);

	for (size_t i = 0; i < n; i++)
	{
		kv[i].key = p[i].key;
		kv[i].key_len = p[i].len;
		memcpy(kv[i].value, p[i].cid, CID_LEN);
	}
	if (mst_build(t, kv, n) != MST_OK)
		printf("# build: %s\n", mst_errmsg(t));
	free(kv);
	return t;
}

static void
test_random_trees(void)
{
	json_t	   *j = load_json(FIX "mst-vectors/random-trees.json");
	size_t		i;
	json_t	   *tr;

	json_array_foreach(j, i, tr)
	{
		json_t	   *entries = json_object_get(tr, "entries"),
				   *dels = json_object_get(tr, "deletes");
		const char *root = json_string_value(json_object_get(tr, "root"));
		const char *root2 = json_string_value(json_object_get(tr, "rootAfterDeletes"));
		size_t		n = json_array_size(entries),
					nd = json_array_size(dels),
					k,
					nrest = 0;
		Pair	   *p = malloc((n + 1) * sizeof(Pair)),
				   *rest = malloc((n + 1) * sizeof(Pair));
		MstTree    *orders[3];
		MstTree    *b;
		json_t	   *v;
		size_t		count = 0;

		for (k = 0; k < n; k++)
		{
			json_t	   *e = json_array_get(entries, k);

			p[k].key = json_string_value(json_array_get(e, 0));
			p[k].len = json_string_length(json_array_get(e, 0));
			cid_from(json_string_value(json_array_get(e, 1)), p[k].cid);
		}

		orders[0] = insert_all(p, n);
		for (k = 0; k < n / 2; k++)
		{
			Pair		tmp = p[k];

			p[k] = p[n - 1 - k];
			p[n - 1 - k] = tmp;
		}
		orders[1] = insert_all(p, n);
		shuffle(p, n, sizeof(Pair));
		orders[2] = insert_all(p, n);
		b = build_all(p, n);
		{
			MstKV	   *kv = malloc((n + 1) * sizeof(MstKV));
			uint8_t		sr[CID_LEN];
			char		msg[400] = "";
			CidVec		streamed = {0},
						walked = {0};

			for (k = 0; k < n; k++)
			{
				kv[k].key = p[k].key;
				kv[k].key_len = p[k].len;
				memcpy(kv[k].value, p[k].cid, CID_LEN);
			}
			if (mst_build_root(kv, n, cv_put_cb, &streamed, sr, msg, sizeof(msg)) != MST_OK)
				printf("# build_root: %s\n", msg);
			is_strf(cidtxt(sr), root, "random tree %zu: streaming build", i);
			mst_walk_nodes(b, cv_put_cb, &walked);
			ok(streamed.n == walked.n && cv_same_set(&streamed, &walked),
			   "  streaming build hands over each of the %zu nodes once", walked.n);
			cv_free(&streamed);
			cv_free(&walked);
			free(kv);
		}
		is_strf(root_text(orders[0]), root, "random tree %zu (%zu entries, %zu deletes): given insertion order",
				i, n, nd);
		is_str(root_text(orders[1]), root, "  reversed insertion order");
		is_str(root_text(orders[2]), root, "  shuffled insertion order");
		is_str(root_text(b), root, "  bulk build");
		ok(mst_verify(b, &count) == MST_OK && count == n, "  verify counts %zu records", n);

		for (int o = 0; o < 3; o++)
		{
			MstError	err = MST_OK;

			json_array_foreach(dels, k, v)
				if (err == MST_OK)
				err = mst_delete(orders[o], json_string_value(v), json_string_length(v), NULL);
			if (o == 0)
				is_str(root_text(orders[o]), root2, "  deletes from the given-order tree");
			else
				is_str(root_text(orders[o]), root2,
					   o == 1 ? "  deletes from the reversed-order tree" : "  deletes from the shuffled tree");
		}
		/* rebuild from what is left */
		for (k = 0; k < n; k++)
		{
			bool		gone = false;

			json_array_foreach(dels, count, v)
				if (strcmp(json_string_value(v), p[k].key) == 0)
				gone = true;
			if (!gone)
				rest[nrest++] = p[k];
		}
		mst_free(b);
		b = build_all(rest, nrest);
		is_str(root_text(b), root2, "  bulk build of the remaining entries");
		mst_free(b);
		for (int o = 0; o < 3; o++)
			mst_free(orders[o]);
		free(p);
		free(rest);
	}
	json_decref(j);
}

/* ------------------------------------------------------------ proof vectors */

static void
test_proof_vectors(void)
{
	json_t	   *j = load_json(FIX "mst-vectors/proof-vectors.json");
	size_t		i;
	json_t	   *c;
	int			bad_before = 0,
				bad_after = 0,
				bad_proof = 0,
				bad_invert = 0,
				bad_write = 0,
				bad_diff = 0,
				total = 0;

	json_array_foreach(j, i, c)
	{
		json_t	   *entries = json_object_get(c, "entries"),
				   *ops = json_object_get(c, "ops"),
				   *proof = json_object_get(c, "proof");
		size_t		n = json_array_size(entries),
					nops = json_array_size(ops),
					k;
		Pair	   *p = malloc((n + 1) * sizeof(Pair));
		MstTree    *base,
				   *t,
				   *old;
		MemStore	store,
					pstore;
		MstStore	s;
		uint8_t		before[CID_LEN],
					after[CID_LEN];
		MstKey		keys[8];
		InvOp		inv[8];
		CidVec		got = {0},
					exp = {0},
					written = {0},
					removed = {0},
					added = {0},
					dremoved = {0},
					handed = {0};
		MstCidList	plist = {0},
					rlist = {0};
		MstDiff		diff;
		char		why[512] = "";
		bool		diff_ok = true;

		total++;
		for (k = 0; k < n; k++)
		{
			json_t	   *e = json_array_get(entries, k);

			p[k].key = json_string_value(json_array_get(e, 0));
			p[k].len = json_string_length(json_array_get(e, 0));
			cid_from(json_string_value(json_array_get(e, 1)), p[k].cid);
		}
		base = build_all(p, n);
		if (strcmp(root_text(base), json_string_value(json_object_get(c, "rootBefore"))) != 0)
			bad_before++;

		/* persist, then edit a lazily loaded copy */
		mem_init(&store);
		mst_write(base, mem_put, &store, before, NULL);
		s = mem_store(&store);
		if (mst_open(&s, before, &t, why, sizeof(why)) != MST_OK)
		{
			printf("# case %zu: open: %s\n", i, why);
			bad_after++;
			goto next;
		}
		for (k = 0; k < nops; k++)
		{
			json_t	   *op = json_array_get(ops, k);
			const char *action = json_string_value(json_object_get(op, "action"));
			const char *key = json_string_value(json_object_get(op, "key"));
			uint8_t		v[CID_LEN],
						prev[CID_LEN];
			bool		had = false;
			MstError	err;

			keys[k] = (MstKey) {key, strlen(key)};
			inv[k].key = key;
			if (strcmp(action, "delete") == 0)
			{
				err = mst_delete(t, key, strlen(key), prev);
				had = true;
			}
			else
			{
				cid_from(json_string_value(json_object_get(op, "cid")), v);
				err = mst_put(t, key, strlen(key), v, prev, &had);
			}
			inv[k].has_prev = had;
			memcpy(inv[k].prev, prev, CID_LEN);
			if (err != MST_OK || had != (strcmp(action, "create") != 0))
				printf("# case %zu op %zu %s %s: err %d had %d\n", i, k, action, key, err, had);
		}
		if (strcmp(root_text(t), json_string_value(json_object_get(c, "rootAfter"))) != 0)
			bad_after++;

		/* proof: exactly the reference's set */
		mem_init(&pstore);
		mst_covering_proof(t, keys, nops, mem_put, &pstore, &plist);
		cv_from_list(&got, &plist);
		for (k = 0; k < json_array_size(proof); k++)
		{
			uint8_t		cc[CID_LEN];

			cid_from(json_string_value(json_array_get(proof, k)), cc);
			cv_push(&exp, cc);
		}
		if (!cv_same_set(&got, &exp))
		{
			printf("# case %zu: proof differs\n", i);
			bad_proof++;
		}
		mst_root(t, after);
		if (!invert_with_proof(&pstore, after, inv, nops,
							   json_string_value(json_object_get(c, "rootBefore")), why, sizeof(why)))
		{
			printf("# case %zu: inversion: %s\n", i, why);
			bad_invert++;
		}

		/* what mst_write hands over is what a diff of the two roots says */
		old = NULL;
		mst_open(&s, before, &old, why, sizeof(why));
		mst_write(t, cv_put_cb, &written, NULL, &rlist);
		cv_from_list(&removed, &rlist);
		if (mst_diff(old, t, cv_put_cb, &handed, &diff) != MST_OK)
		{
			printf("# case %zu: diff: %s\n", i, mst_errmsg(t));
			diff_ok = false;
		}
		else
		{
			cv_from_list(&added, &diff.nodes_added);
			if (handed.n != diff.nodes_added.n || !cv_same_set(&handed, &added))
				diff_ok = false;
			cv_from_list(&dremoved, &diff.nodes_removed);
			/* every op of the commit shows up, with the right values */
			for (k = 0; k < nops; k++)
			{
				json_t	   *op = json_array_get(ops, k);
				const char *action = json_string_value(json_object_get(op, "action"));
				bool		seen = false;

				for (size_t d = 0; d < diff.n_ops; d++)
					if (strcmp(diff.ops[d].key, keys[k].key) == 0)
					{
						seen = true;
						if (diff.ops[d].has_old != (strcmp(action, "create") != 0) ||
							diff.ops[d].has_new != (strcmp(action, "delete") != 0))
							diff_ok = false;
						if (diff.ops[d].has_old && memcmp(diff.ops[d].old_value, inv[k].prev, CID_LEN) != 0)
							diff_ok = false;
					}
				if (!seen)
					diff_ok = false;
			}
			if (diff.n_ops != nops)
				diff_ok = false;
			mst_diff_free(&diff);
		}
		if (!diff_ok)
			bad_diff++;
		if (!cv_same_set(&written, &added) || !cv_same_set(&removed, &dremoved))
		{
			printf("# case %zu: mst_write and mst_diff disagree\n", i);
			bad_write++;
		}
		mst_free(old);
		mst_cid_list_free(&plist);
		mst_cid_list_free(&rlist);
		mem_free(&pstore);
		mst_free(t);
next:
		cv_free(&got);
		cv_free(&exp);
		cv_free(&written);
		cv_free(&removed);
		cv_free(&added);
		cv_free(&dremoved);
		cv_free(&handed);
		mem_free(&store);
		mst_free(base);
		free(p);
	}
	ok(total == 80 && bad_before == 0, "proof vectors: %d roots before the commit match", total);
	ok(bad_after == 0, "proof vectors: roots after the commit match on lazily loaded trees (%d wrong)", bad_after);
	ok(bad_proof == 0, "proof vectors: covering proofs equal the reference's (%d wrong)", bad_proof);
	ok(bad_invert == 0, "proof vectors: proofs alone invert every commit (%d failed)", bad_invert);
	ok(bad_diff == 0, "proof vectors: diff of the roots lists exactly the commit's ops and hands over the added nodes (%d wrong)", bad_diff);
	ok(bad_write == 0, "proof vectors: mst_write's new and removed nodes equal the diff's (%d wrong)", bad_write);
	json_decref(j);
}

/* ------------------------------------------------------------ property */

static void
make_key(char *buf, size_t cap, uint64_t r)
{
	static const char *coll[] = {"app.bsky.feed.post", "app.bsky.feed.like",
	"app.bsky.graph.follow", "com.example.record"};
	static const char alpha[] = "234567abcdefghijklmnopqrstuvwxyz";
	char		rkey[14];

	for (int i = 0; i < 13; i++)
	{
		rkey[i] = alpha[r % 32];
		r /= 32;
		if (r == 0)
			r = rng();
	}
	rkey[13] = '\0';
	snprintf(buf, cap, "%s/%s", coll[rng() % 4], rkey);
}

static void
brute_sets(MstTree *t, CidVec *nodes)
{
	mst_walk_nodes(t, cv_put_cb, nodes);
}

static void
test_property(void)
{
	enum
	{
		POOL = 400, OPS = 6000, CHECKPOINT = 500
	};
	Model		m;
	MemStore	store;
	MstStore	s;
	MstTree    *t = mst_new(NULL);
	uint64_t	vals = 1;
	int			mismatches = 0,
				api_errors = 0,
				get_errors = 0,
				reopen_errors = 0,
				diff_errors = 0,
				verify_errors = 0,
				stream_errors = 0;
	long		first_bad = -1;
	int			max_layer = 0;

	mem_init(&store);
	s = mem_store(&store);
	m.n = POOL;
	m.keys = calloc(POOL, sizeof(char *));
	m.lens = calloc(POOL, sizeof(size_t));
	m.present = calloc(POOL, sizeof(bool));
	m.val = calloc(POOL, CID_LEN);
	for (size_t i = 0; i < POOL; i++)
	{
		char		k[64];

		/* every eighth key is ground to layer >= 2 for taller trees */
		do
			make_key(k, sizeof(k), rng());
		while (i % 8 == 0 && mst_key_depth((const uint8_t *) k, strlen(k)) < 2);
		m.keys[i] = strdup(k);
		m.lens[i] = strlen(k);
	}

	for (long op = 0; op < OPS; op++)
	{
		size_t		i = rng() % POOL;
		uint8_t		v[CID_LEN],
					prev[CID_LEN];
		bool		had;
		MstError	err;
		MstTree    *fresh;
		uint8_t		r1[CID_LEN],
					r2[CID_LEN];
		int			layer;

		fake_cid(vals++, v);
		if (!m.present[i] || rng() % 2)
		{
			err = mst_put(t, m.keys[i], m.lens[i], v, prev, &had);
			if (err != MST_OK || had != m.present[i] ||
				(had && memcmp(prev, m.val[i], CID_LEN) != 0))
				api_errors++;
			m.present[i] = true;
			memcpy(m.val[i], v, CID_LEN);
		}
		else
		{
			err = mst_delete(t, m.keys[i], m.lens[i], prev);
			if (err != MST_OK || memcmp(prev, m.val[i], CID_LEN) != 0)
				api_errors++;
			m.present[i] = false;
			/* a second delete is NOT_FOUND and changes nothing */
			mst_root(t, r1);
			if (mst_delete(t, m.keys[i], m.lens[i], NULL) != MST_ERR_NOT_FOUND)
				api_errors++;
			mst_root(t, r2);
			if (memcmp(r1, r2, CID_LEN) != 0)
				api_errors++;
		}

		/* the edited tree is the rebuilt tree, after every single op */
		fresh = model_build(&m);
		mst_root(t, r1);
		mst_root(fresh, r2);
		if (memcmp(r1, r2, CID_LEN) != 0)
		{
			if (first_bad < 0)
				first_bad = op;
			mismatches++;
		}
		mst_free(fresh);
		if (mst_layer(t, &layer) == MST_OK && layer > max_layer)
			max_layer = layer;

		{
			size_t		q = rng() % POOL;
			bool		found;
			uint8_t		got[CID_LEN];

			if (mst_get(t, m.keys[q], m.lens[q], got, &found) != MST_OK ||
				found != m.present[q] ||
				(found && memcmp(got, m.val[q], CID_LEN) != 0))
				get_errors++;
		}

		if ((op + 1) % 50 == 0)
		{
			MstKV	   *kv = malloc(POOL * sizeof(MstKV));
			size_t		c = 0;
			uint8_t		sr[CID_LEN];

			for (size_t q = 0; q < POOL; q++)
				if (m.present[q])
				{
					kv[c].key = m.keys[q];
					kv[c].key_len = m.lens[q];
					memcpy(kv[c].value, m.val[q], CID_LEN);
					c++;
				}
			shuffle(kv, c, sizeof(MstKV));
			if (mst_build_root(kv, c, NULL, NULL, sr, NULL, 0) != MST_OK ||
				memcmp(sr, r1, CID_LEN) != 0)
				stream_errors++;
			free(kv);
		}

		if ((op + 1) % CHECKPOINT == 0)
		{
			/* persist, reopen lazily from the store, and check the diff */
			uint8_t		root[CID_LEN],
						oldroot[CID_LEN];
			MstTree    *re,
					   *old = NULL;
			CidVec		written = {0},
						removed = {0},
						added = {0},
						dremoved = {0},
						bn_old = {0},
						bn_new = {0},
						bfa = {0},
						bfr = {0};
			MstCidList	rl = {0};
			MstDiff		d;
			char		msg[400];
			size_t		count;

			mst_root(t, root);
			memcpy(oldroot, root, CID_LEN);
			mst_write(t, mem_put, &store, root, &rl);
			mst_cid_list_free(&rl);
			mst_free(t);
			if (mst_open(&s, root, &t, msg, sizeof(msg)) != MST_OK)
			{
				reopen_errors++;
				t = model_build(&m);
				continue;
			}
			if (mst_verify(t, &count) != MST_OK)
				verify_errors++;

			/* a batch of edits on a copy, then compare write vs diff vs brute force */
			if (mst_open(&s, root, &re, msg, sizeof(msg)) != MST_OK)
			{
				reopen_errors++;
				continue;
			}
			for (int b = 0; b < 20; b++)
			{
				size_t		q = rng() % POOL;
				uint8_t		nv[CID_LEN];

				fake_cid(vals++, nv);
				if (m.present[q] && rng() % 3 == 0)
					mst_delete(re, m.keys[q], m.lens[q], NULL);
				else
					mst_put(re, m.keys[q], m.lens[q], nv, NULL, NULL);
			}
			mst_open(&s, oldroot, &old, msg, sizeof(msg));
			mst_write(re, cv_put_cb, &written, NULL, &rl);
			cv_from_list(&removed, &rl);
			mst_cid_list_free(&rl);
			if (mst_diff(old, re, NULL, NULL, &d) == MST_OK)
			{
				cv_from_list(&added, &d.nodes_added);
				cv_from_list(&dremoved, &d.nodes_removed);
				mst_diff_free(&d);
			}
			else
				diff_errors++;
			/* brute force: full node sets of both trees */
			brute_sets(old, &bn_old);
			brute_sets(re, &bn_new);
			cv_norm(&bn_old);
			cv_norm(&bn_new);
			for (size_t a = 0; a < bn_new.n; a++)
				if (!bsearch(bn_new.v[a], bn_old.v, bn_old.n, CID_LEN, cid_cmp))
					cv_push(&bfa, bn_new.v[a]);
			for (size_t a = 0; a < bn_old.n; a++)
				if (!bsearch(bn_old.v[a], bn_new.v, bn_new.n, CID_LEN, cid_cmp))
					cv_push(&bfr, bn_old.v[a]);
			if (!cv_same_set(&added, &bfa) || !cv_same_set(&dremoved, &bfr) ||
				!cv_same_set(&written, &bfa) || !cv_same_set(&removed, &bfr))
				diff_errors++;
			mst_free(old);
			mst_free(re);
			cv_free(&written);
			cv_free(&removed);
			cv_free(&added);
			cv_free(&dremoved);
			cv_free(&bn_old);
			cv_free(&bn_new);
			cv_free(&bfa);
			cv_free(&bfr);
		}
	}
	if (!ok(mismatches == 0, "%d random puts/updates/deletes: incremental root equals a fresh rebuild after every op",
			OPS))
		printf("#   %d mismatches, first at op %ld\n", mismatches, first_bad);
	ok(api_errors == 0, "  put/delete report the previous values; repeated delete is NOT_FOUND and a no-op (%d wrong)",
	   api_errors);
	ok(get_errors == 0, "  lookups agree with the model (%d wrong)", get_errors);
	ok(stream_errors == 0, "  a streaming build of the shuffled set gives the same root every 50 ops (%d wrong)",
	   stream_errors);
	ok(reopen_errors == 0 && verify_errors == 0, "  trees written to a store reopen lazily and verify");
	ok(diff_errors == 0, "  mst_write and mst_diff agree with a brute-force node set difference (%d wrong)",
	   diff_errors);
	ok(max_layer >= 3, "  the trees reached layer %d", max_layer);
	for (size_t i = 0; i < POOL; i++)
		free(m.keys[i]);
	free(m.keys);
	free(m.lens);
	free(m.present);
	free(m.val);
	mst_free(t);
	mem_free(&store);
}

/* ------------------------------------------------------------ decoding */

/* A raw entry, so tests can write what the encoder never would. */
typedef struct RawEnt
{
	const char *k;				/* suffix */
	long		p;
	const uint8_t *t;
	const uint8_t *v;
} RawEnt;

static void
raw_node(RsBuf *b, const RawEnt *e, size_t n, const uint8_t *l)
{
	b->len = 0;
	dcbor_put_map(b, 2);
	dcbor_put_cstr(b, "e");
	dcbor_put_array(b, n);
	for (size_t i = 0; i < n; i++)
	{
		dcbor_put_map(b, 4);
		dcbor_put_cstr(b, "k");
		dcbor_put_bytes(b, (const uint8_t *) e[i].k, strlen(e[i].k));
		dcbor_put_cstr(b, "p");
		dcbor_put_int(b, e[i].p);
		dcbor_put_cstr(b, "t");
		if (e[i].t)
			dcbor_put_link(b, e[i].t, CID_LEN);
		else
			dcbor_put_null(b);
		dcbor_put_cstr(b, "v");
		dcbor_put_link(b, e[i].v, CID_LEN);
	}
	dcbor_put_cstr(b, "l");
	if (l)
		dcbor_put_link(b, l, CID_LEN);
	else
		dcbor_put_null(b);
}

static MstError
decode_bytes(const uint8_t *d, size_t len, char *msg, size_t msglen)
{
	MstNodeData nd;
	MstError	err = mst_node_decode(d, len, &nd, msg, msglen);

	mst_node_data_free(&nd);
	return err;
}

static bool
expect_decode(const RsBuf *b, MstError want, const char *name)
{
	char		msg[400] = "";
	MstError	got = decode_bytes(b->data, b->len, msg, sizeof(msg));

	if (!ok(got == want, "decode rejects %s (%s)", name, mst_strerror(want)))
		printf("#   got %d: %s\n", got, msg);
	else if (want != MST_OK)
		printf("#   message: %s\n", msg);
	return got == want;
}

/* Keys with a given depth, named like the atproto example keys. */
static void
key_at(char *buf, size_t cap, const char *prefix, int depth, int *counter)
{
	do
		snprintf(buf, cap, "%s%04d", prefix, (*counter)++);
	while (mst_key_depth((const uint8_t *) buf, strlen(buf)) != depth);
}

static void
test_decode(void)
{
	RsBuf		b;
	uint8_t		v[CID_LEN],
				sub[CID_LEN];
	char		k0a[64],
				k0b[64],
				k0c[64],
				k1[64];
	int			ctr = 0;
	MstNodeData nd;
	char		msg[400];

	rs_buf_init(&b, 256);
	fake_cid(7, v);
	fake_cid(8, sub);
	key_at(k0a, sizeof(k0a), "com.example.record/aaa", 0, &ctr);
	key_at(k0b, sizeof(k0b), "com.example.record/aab", 0, &ctr);
	key_at(k0c, sizeof(k0c), "com.example.record/aac", 0, &ctr);
	ctr = 0;
	key_at(k1, sizeof(k1), "com.example.record/aab", 1, &ctr);

	/* a good node round-trips */
	{
		MstNodeEntry e[2] = {{k0a, strlen(k0a), {0}, false, {0}}, {k0b, strlen(k0b), {0}, true, {0}}};
		MstNodeData in = {false, {0}, 2, e, 0};
		RsBuf		again;

		memcpy(e[0].value, v, CID_LEN);
		memcpy(e[1].value, v, CID_LEN);
		memcpy(e[1].right, sub, CID_LEN);
		mst_node_encode(&in, &b);
		ok(mst_node_decode(b.data, b.len, &nd, msg, sizeof(msg)) == MST_OK && nd.n == 2 &&
		   strcmp(nd.entries[1].key, k0b) == 0 && nd.entries[1].has_right && !nd.has_left &&
		   nd.layer == 0, "a valid node decodes");
		rs_buf_init(&again, 64);
		mst_node_encode(&nd, &again);
		ok(again.len == b.len && memcmp(again.data, b.data, b.len) == 0, "and re-encodes to the same bytes");
		mst_node_data_free(&nd);
		rs_buf_free(&again);
	}

	/* key order, depth, prefix, syntax */
	{
		RawEnt		e[2] = {{k0b, 0, NULL, v}, {k0a, 0, NULL, v}};

		raw_node(&b, e, 2, NULL);
		expect_decode(&b, MST_ERR_KEY_ORDER, "keys in descending order");
	}
	{
		RawEnt		e[2] = {{k0a, 0, NULL, v}, {"", (long) strlen(k0a), NULL, v}};

		raw_node(&b, e, 2, NULL);
		expect_decode(&b, MST_ERR_KEY_ORDER, "a repeated key");
	}
	{
		/* k1 sorts after k0a: only the depth is wrong */
		RawEnt		e[2] = {{k0a, 0, NULL, v}, {k1, 0, NULL, v}};
		size_t		p = mst_common_prefix((const uint8_t *) k0a, strlen(k0a), (const uint8_t *) k1, strlen(k1));

		e[1].k = k1 + p;
		e[1].p = (long) p;
		raw_node(&b, e, 2, NULL);
		expect_decode(&b, MST_ERR_KEY_DEPTH, "keys of two depths in one node");
	}
	{
		RawEnt		e[2] = {{k0a, 0, NULL, v}, {"x", (long) strlen(k0a) + 1, NULL, v}};

		raw_node(&b, e, 2, NULL);
		expect_decode(&b, MST_ERR_PREFIX, "a prefix longer than the previous key");
	}
	{
		/* k0b written with prefix 0 although it shares "com.example.record/aa" */
		RawEnt		e[2] = {{k0a, 0, NULL, v}, {k0b, 0, NULL, v}};

		raw_node(&b, e, 2, NULL);
		expect_decode(&b, MST_ERR_PREFIX, "a prefix shorter than the shared prefix");
	}
	{
		RawEnt		e[1] = {{k0a + 3, 3, NULL, v}};

		raw_node(&b, e, 1, NULL);
		expect_decode(&b, MST_ERR_PREFIX, "a first entry with a non-zero prefix");
	}
	{
		RawEnt		e[1] = {{"no-slash-here", 0, NULL, v}};

		raw_node(&b, e, 1, NULL);
		expect_decode(&b, MST_ERR_KEY_SYNTAX, "a key without a collection");
	}
	{
		RawEnt		e[1] = {{"app.bsky.feed.post/bad key", 0, NULL, v}};

		raw_node(&b, e, 1, NULL);
		expect_decode(&b, MST_ERR_KEY_SYNTAX, "a key with a space");
	}
	{
		RawEnt		e[1] = {{"app.bsky/feed/post", 0, NULL, v}};

		raw_node(&b, e, 1, NULL);
		expect_decode(&b, MST_ERR_KEY_SYNTAX, "a key with two slashes");
	}
	{
		RawEnt		e[1] = {{k0a, -1, NULL, v}};

		raw_node(&b, e, 1, NULL);
		expect_decode(&b, MST_ERR_NODE_SHAPE, "a negative prefix length");
	}

	/* wrong shapes and types, hand-written */
#define ENTRY_HEAD(nfields) do { dcbor_put_map(&b, nfields); } while (0)
	{
		b.len = 0;
		dcbor_put_array(&b, 2);
		dcbor_put_array(&b, 0);
		dcbor_put_null(&b);
		expect_decode(&b, MST_ERR_NODE_SHAPE, "an array instead of a map");
	}
	{
		b.len = 0;
		dcbor_put_map(&b, 3);
		dcbor_put_cstr(&b, "e");
		dcbor_put_array(&b, 0);
		dcbor_put_cstr(&b, "l");
		dcbor_put_null(&b);
		dcbor_put_cstr(&b, "x");
		dcbor_put_null(&b);
		expect_decode(&b, MST_ERR_NODE_SHAPE, "an extra top-level field");
	}
	{
		b.len = 0;
		dcbor_put_map(&b, 1);
		dcbor_put_cstr(&b, "e");
		dcbor_put_array(&b, 0);
		expect_decode(&b, MST_ERR_NODE_SHAPE, "a missing \"l\"");
	}
	{
		b.len = 0;
		dcbor_put_map(&b, 2);
		dcbor_put_cstr(&b, "l");
		dcbor_put_null(&b);
		dcbor_put_cstr(&b, "e");
		dcbor_put_array(&b, 0);
		expect_decode(&b, MST_ERR_NODE_SHAPE, "fields out of order");
	}
	{
		b.len = 0;
		dcbor_put_map(&b, 2);
		dcbor_put_cstr(&b, "e");
		dcbor_put_map(&b, 0);
		dcbor_put_cstr(&b, "l");
		dcbor_put_null(&b);
		expect_decode(&b, MST_ERR_NODE_SHAPE, "\"e\" as a map");
	}
	{
		b.len = 0;
		dcbor_put_map(&b, 2);
		dcbor_put_cstr(&b, "e");
		dcbor_put_array(&b, 0);
		dcbor_put_cstr(&b, "l");
		dcbor_put_bytes(&b, sub, CID_LEN);
		expect_decode(&b, MST_ERR_NODE_SHAPE, "\"l\" as bytes instead of a link");
	}
	{
		/* the entry fields in turn with a wrong type */
		for (int bad = 0; bad < 5; bad++)
		{
			static const char *names[] = {"\"k\" as text", "\"p\" as text", "\"t\" as an integer",
			"\"v\" as null", "an entry with a fifth field"};

			b.len = 0;
			dcbor_put_map(&b, 2);
			dcbor_put_cstr(&b, "e");
			dcbor_put_array(&b, 1);
			ENTRY_HEAD(bad == 4 ? 5 : 4);
			dcbor_put_cstr(&b, "k");
			if (bad == 0)
				dcbor_put_cstr(&b, k0a);
			else
				dcbor_put_bytes(&b, (const uint8_t *) k0a, strlen(k0a));
			dcbor_put_cstr(&b, "p");
			if (bad == 1)
				dcbor_put_cstr(&b, "0");
			else
				dcbor_put_uint(&b, 0);
			dcbor_put_cstr(&b, "t");
			if (bad == 2)
				dcbor_put_uint(&b, 5);
			else
				dcbor_put_null(&b);
			dcbor_put_cstr(&b, "v");
			if (bad == 3)
				dcbor_put_null(&b);
			else
				dcbor_put_link(&b, v, CID_LEN);
			if (bad == 4)
			{
				dcbor_put_cstr(&b, "x");
				dcbor_put_null(&b);
			}
			dcbor_put_cstr(&b, "l");
			dcbor_put_null(&b);
			expect_decode(&b, MST_ERR_NODE_SHAPE, names[bad]);
		}
	}
	{
		RawEnt		e[1] = {{k0a, 0, NULL, v}};
		uint8_t		raw[CID_LEN];

		/* a raw-codec CID as a subtree pointer */
		cid_for_raw((const uint8_t *) "x", 1, raw);
		e[0].t = raw;
		raw_node(&b, e, 1, NULL);
		expect_decode(&b, MST_ERR_NODE_SHAPE, "a subtree link that is not dag-cbor");
	}

	/* CBOR-level damage */
	{
		RawEnt		e[1] = {{k0a, 0, NULL, v}};

		raw_node(&b, e, 1, NULL);
		rs_buf_append_byte(&b, 0x00);
		expect_decode(&b, MST_ERR_CBOR, "a trailing byte");
	}
	{
		b.len = 0;
		dcbor_put_map(&b, 2);
		dcbor_put_cstr(&b, "e");
		rs_buf_append_byte(&b, 0x98);	/* array, count in one byte: 0 is not shortest */
		rs_buf_append_byte(&b, 0x00);
		dcbor_put_cstr(&b, "l");
		dcbor_put_null(&b);
		expect_decode(&b, MST_ERR_CBOR, "a non-shortest array length");
	}
	{
		b.len = 0;
		dcbor_put_map(&b, 2);
		dcbor_put_cstr(&b, "e");
		dcbor_put_array(&b, 1);
		dcbor_put_map(&b, 4);
		dcbor_put_cstr(&b, "k");
		dcbor_put_bytes(&b, (const uint8_t *) k0a, strlen(k0a));
		dcbor_put_cstr(&b, "p");
		rs_buf_append(&b, "\xf9\x00\x00", 3);	/* half float 0.0 */
		dcbor_put_cstr(&b, "t");
		dcbor_put_null(&b);
		dcbor_put_cstr(&b, "v");
		dcbor_put_link(&b, v, CID_LEN);
		dcbor_put_cstr(&b, "l");
		dcbor_put_null(&b);
		expect_decode(&b, MST_ERR_CBOR, "a float prefix length");
	}
	{
		b.len = 0;
		expect_decode(&b, MST_ERR_CBOR, "empty input");
	}
	{
		/* 1025 entries: one over the cap, caught before any allocation per entry */
		b.len = 0;
		dcbor_put_map(&b, 2);
		dcbor_put_cstr(&b, "e");
		dcbor_put_array(&b, MST_MAX_NODE_ENTRIES + 1);
		for (int i = 0; i <= MST_MAX_NODE_ENTRIES; i++)
			rs_buf_append_byte(&b, 0xf6);
		dcbor_put_cstr(&b, "l");
		dcbor_put_null(&b);
		expect_decode(&b, MST_ERR_NODE_TOO_BIG, "more entries than the cap");
	}

	/* every truncation of a good node fails cleanly */
	{
		RawEnt		e[3] = {{k0a, 0, sub, v}, {NULL, 0, NULL, v}, {NULL, 0, sub, v}};
		size_t		p1 = mst_common_prefix((const uint8_t *) k0a, strlen(k0a), (const uint8_t *) k0b, strlen(k0b));
		size_t		p2 = mst_common_prefix((const uint8_t *) k0b, strlen(k0b), (const uint8_t *) k0c, strlen(k0c));
		int			accepted = 0;
		RsBuf		good;

		e[1].k = k0b + p1;
		e[1].p = (long) p1;
		e[2].k = k0c + p2;
		e[2].p = (long) p2;
		raw_node(&b, e, 3, NULL);
		/* the layer-0 check is the tree's job; the codec accepts subtrees */
		ok(decode_bytes(b.data, b.len, NULL, 0) == MST_OK, "a three-entry node decodes");
		rs_buf_init(&good, b.len);
		rs_buf_append(&good, b.data, b.len);
		for (size_t cut = 0; cut < good.len; cut++)
		{
			uint8_t    *copy = malloc(cut ? cut : 1);

			memcpy(copy, good.data, cut);
			if (decode_bytes(copy, cut, NULL, 0) == MST_OK)
				accepted++;
			free(copy);
		}
		ok(accepted == 0, "all %zu truncations are rejected", good.len);

		/* random damage: never a crash, and whatever is accepted is canonical */
		{
			int			noncanon = 0,
						okcount = 0;

			for (int round = 0; round < 20000; round++)
			{
				uint8_t    *copy = malloc(good.len);
				int			flips = 1 + (int) (rng() % 3);
				MstNodeData out;

				memcpy(copy, good.data, good.len);
				for (int f = 0; f < flips; f++)
				{
					size_t		at = rng() % good.len;

					if (rng() % 2)
						copy[at] ^= (uint8_t) (1u << (rng() % 8));
					else
						copy[at] = (uint8_t) rng();
				}
				if (mst_node_decode(copy, good.len, &out, NULL, 0) == MST_OK)
				{
					RsBuf		re;

					okcount++;
					rs_buf_init(&re, good.len);
					mst_node_encode(&out, &re);
					if (re.len != good.len || memcmp(re.data, copy, good.len) != 0)
						noncanon++;
					rs_buf_free(&re);
				}
				mst_node_data_free(&out);
				free(copy);
			}
			ok(noncanon == 0, "20000 damaged nodes: no crash, the %d accepted ones re-encode byte for byte",
			   okcount);
		}
		rs_buf_free(&good);
	}
	rs_buf_free(&b);
}

/* Tree-level rules: what the codec alone cannot see. */
static void
test_tree_rules(void)
{
	MemStore	m;
	MstStore	s;
	RsBuf		b;
	uint8_t		v[CID_LEN],
				c_child[CID_LEN],
				c_root[CID_LEN],
				c_empty[CID_LEN],
				c_bad[CID_LEN];
	char		k0[64],
				k1[64],
				k1b[64],
				msg[400];
	int			ctr = 0;
	MstTree    *t;
	MstError	err;

	mem_init(&m);
	s = mem_store(&m);
	rs_buf_init(&b, 256);
	fake_cid(1, v);
	key_at(k1, sizeof(k1), "com.example.record/m", 1, &ctr);
	key_at(k1b, sizeof(k1b), "com.example.record/n", 1, &ctr);
	ctr = 0;
	key_at(k0, sizeof(k0), "com.example.record/z", 0, &ctr);

	/* empty node */
	raw_node(&b, NULL, 0, NULL);
	cid_for_dagcbor(b.data, b.len, c_empty);
	mem_put(&m, c_empty, b.data, b.len);

	/* root at layer 1 whose left subtree is an empty node */
	{
		RawEnt		e[1] = {{k1, 0, NULL, v}};

		raw_node(&b, e, 1, c_empty);
		cid_for_dagcbor(b.data, b.len, c_root);
		mem_put(&m, c_root, b.data, b.len);
		err = mst_open(&s, c_root, &t, msg, sizeof(msg));
		ok(err == MST_OK && mst_verify(t, NULL) == MST_ERR_NONCANONICAL,
		   "an empty inner node is rejected when reached");
		printf("#   message: %s\n", t ? mst_errmsg(t) : msg);
		mst_free(t);
	}
	/* root with nothing but a left subtree */
	{
		RawEnt		e[1] = {{k1, 0, NULL, v}};
		uint8_t		inner[CID_LEN];

		raw_node(&b, e, 1, NULL);
		cid_for_dagcbor(b.data, b.len, inner);
		mem_put(&m, inner, b.data, b.len);
		raw_node(&b, NULL, 0, inner);
		cid_for_dagcbor(b.data, b.len, c_root);
		mem_put(&m, c_root, b.data, b.len);
		err = mst_open(&s, c_root, &t, msg, sizeof(msg));
		ok(err == MST_ERR_NONCANONICAL && t == NULL, "a root with only a left subtree is rejected");
		printf("#   message: %s\n", msg);
	}
	/* a layer-1 key under a layer-1 root */
	{
		RawEnt		e[1] = {{k1b, 0, NULL, v}};
		RawEnt		r[1] = {{k1, 0, NULL, v}};

		raw_node(&b, e, 1, NULL);
		cid_for_dagcbor(b.data, b.len, c_child);
		mem_put(&m, c_child, b.data, b.len);
		r[0].t = c_child;
		raw_node(&b, r, 1, NULL);
		cid_for_dagcbor(b.data, b.len, c_root);
		mem_put(&m, c_root, b.data, b.len);
		mst_open(&s, c_root, &t, msg, sizeof(msg));
		ok(t && mst_verify(t, NULL) == MST_ERR_KEY_DEPTH, "a subtree with keys of the parent's depth is rejected");
		if (t)
			printf("#   message: %s\n", mst_errmsg(t));
		mst_free(t);
	}
	/* a layer-0 root with a subtree */
	{
		RawEnt		e[1] = {{k0, 0, NULL, v}};

		e[0].t = c_empty;
		raw_node(&b, e, 1, NULL);
		cid_for_dagcbor(b.data, b.len, c_root);
		mem_put(&m, c_root, b.data, b.len);
		err = mst_open(&s, c_root, &t, msg, sizeof(msg));
		ok(err == MST_ERR_NONCANONICAL, "a layer-0 node with a subtree is rejected");
		printf("#   message: %s\n", msg);
	}
	/* keys of a subtree outside the parent's range: only a whole-tree check sees it */
	{
		RawEnt		e[1] = {{k0, 0, NULL, v}};
		RawEnt		r[1] = {{k1, 0, NULL, v}};

		/* k0 ("...z...") sorts after k1 ("...m...") but sits in the left subtree */
		raw_node(&b, e, 1, NULL);
		cid_for_dagcbor(b.data, b.len, c_child);
		mem_put(&m, c_child, b.data, b.len);
		raw_node(&b, r, 1, c_child);
		cid_for_dagcbor(b.data, b.len, c_root);
		mem_put(&m, c_root, b.data, b.len);
		mst_open(&s, c_root, &t, msg, sizeof(msg));
		ok(t && mst_verify(t, NULL) == MST_ERR_KEY_ORDER, "a subtree key out of the parent's range fails verify");
		if (t)
			printf("#   message: %s\n", mst_errmsg(t));
		mst_free(t);
	}
	/* store trouble: missing node, wrong bytes; the tree breaks and says so */
	{
		RawEnt		r[1] = {{k1, 0, NULL, v}};
		uint8_t		missing[CID_LEN];
		uint8_t		w[CID_LEN];

		fake_cid(999, missing);
		r[0].t = missing;
		raw_node(&b, r, 1, NULL);
		cid_for_dagcbor(b.data, b.len, c_root);
		mem_put(&m, c_root, b.data, b.len);
		mst_open(&s, c_root, &t, msg, sizeof(msg));
		fake_cid(5, w);
		err = t ? mst_put(t, k0, strlen(k0), w, NULL, NULL) : MST_OK;
		/* k0 sorts after k1 and is at depth 0: it goes into the missing subtree */
		ok(err == MST_ERR_MISSING_NODE, "an edit that needs a missing node fails with MISSING_NODE");
		if (t)
		{
			printf("#   message: %s\n", mst_errmsg(t));
			ok(mst_root(t, NULL) == MST_ERR_MISSING_NODE, "  and the tree stays broken afterwards");
		}
		mst_free(t);

		fake_cid(998, c_bad);
		m.corrupt = b.data;
		m.corrupt_len = b.len;
		err = mst_open(&s, c_bad, &t, msg, sizeof(msg));
		ok(err == MST_ERR_CID_MISMATCH, "a store returning other bytes is caught by the CID check");
		printf("#   message: %s\n", msg);
		m.corrupt = NULL;
	}
	/* input errors leave the tree usable */
	{
		uint8_t		w[CID_LEN];
		char		before[CID_TEXT_LEN + 1];

		t = mst_new(NULL);
		fake_cid(5, w);
		mst_insert(t, k0, strlen(k0), w);
		strcpy(before, root_text(t));
		ok(mst_insert(t, "nope", 4, w) == MST_ERR_KEY_SYNTAX, "insert of an invalid key is KEY_SYNTAX");
		printf("#   message: %s\n", mst_errmsg(t));
		ok(mst_insert(t, k0, strlen(k0), w) == MST_ERR_DUPLICATE_KEY, "insert of a present key is DUPLICATE_KEY");
		ok(mst_update(t, k1, strlen(k1), w, NULL) == MST_ERR_NOT_FOUND, "update of an absent key is NOT_FOUND");
		ok(mst_delete(t, k1, strlen(k1), NULL) == MST_ERR_NOT_FOUND, "delete of an absent key is NOT_FOUND");
		is_str(root_text(t), before, "  and the tree is unchanged and usable");
		mst_free(t);
	}
	/* build rejects duplicates and bad keys */
	{
		MstKV		kv[3] = {{k0, strlen(k0), {0}}, {k1, strlen(k1), {0}}, {k0, strlen(k0), {0}}};

		t = mst_new(NULL);
		ok(mst_build(t, kv, 3) == MST_ERR_DUPLICATE_KEY && strstr(mst_errmsg(t), k0),
		   "build names a duplicate key");
		printf("#   message: %s\n", mst_errmsg(t));
		is_str(root_text(t), "bafyreie5737gdxlw5i64vzichcalba3z2v5n6icifvx5xytvske7mr3hpm",
			   "  and leaves the tree empty");
		ok(mst_build_root(kv, 3, NULL, NULL, NULL, msg, sizeof(msg)) == MST_ERR_DUPLICATE_KEY &&
		   strstr(msg, k0), "streaming build names a duplicate key too");
		kv[2].key = "bad\x01key/x";
		kv[2].key_len = 9;
		ok(mst_build(t, kv, 3) == MST_ERR_KEY_SYNTAX && strstr(mst_errmsg(t), "\\x01"),
		   "build names an invalid key, escaped");
		printf("#   message: %s\n", mst_errmsg(t));
		ok(mst_build_root(kv, 3, NULL, NULL, NULL, msg, sizeof(msg)) == MST_ERR_KEY_SYNTAX,
		   "streaming build rejects it too");
		{
			uint8_t		er[CID_LEN];

			ok(mst_build_root(kv, 0, NULL, NULL, er, msg, sizeof(msg)) == MST_OK &&
			   strcmp(cidtxt(er), "bafyreie5737gdxlw5i64vzichcalba3z2v5n6icifvx5xytvske7mr3hpm") == 0,
			   "streaming build of nothing is the empty tree");
		}
		mst_free(t);
	}
	/* the node cap holds on the write side too */
	{
		MstKV	   *kv = malloc((MST_MAX_NODE_ENTRIES + 1) * sizeof(MstKV));
		char	  (*keys)[64] = malloc((MST_MAX_NODE_ENTRIES + 1) * 64);
		int			c = 0;
		uint8_t		root[CID_LEN];

		for (int i = 0; i <= MST_MAX_NODE_ENTRIES; i++)
		{
			key_at(keys[i], 64, "com.example.record/cap", 0, &c);
			kv[i].key = keys[i];
			kv[i].key_len = strlen(keys[i]);
			fake_cid((uint64_t) i, kv[i].value);
		}
		t = mst_new(NULL);
		mst_build(t, kv, MST_MAX_NODE_ENTRIES);
		ok(mst_root(t, NULL) == MST_OK, "a node of exactly %d entries is fine", MST_MAX_NODE_ENTRIES);
		ok(mst_insert(t, kv[MST_MAX_NODE_ENTRIES].key, kv[MST_MAX_NODE_ENTRIES].key_len,
					  kv[MST_MAX_NODE_ENTRIES].value) == MST_OK &&
		   mst_root(t, NULL) == MST_ERR_NODE_TOO_BIG, "one more entry in that node is NODE_TOO_BIG");
		printf("#   message: %s\n", mst_errmsg(t));
		ok(mst_build_root(kv, MST_MAX_NODE_ENTRIES, NULL, NULL, root, msg, sizeof(msg)) == MST_OK &&
		   mst_build_root(kv, MST_MAX_NODE_ENTRIES + 1, NULL, NULL, root, msg, sizeof(msg)) == MST_ERR_NODE_TOO_BIG,
		   "the streaming build holds the same cap");
		mst_free(t);
		free(kv);
		free(keys);
	}
	rs_buf_free(&b);
	mem_free(&m);
}

/* ------------------------------------------------------------ diff */

static void
single_node(const char *const *keys, size_t n, const uint8_t *v, uint8_t out[CID_LEN])
{
	MstTree    *t = mst_new(NULL);

	for (size_t i = 0; i < n; i++)
		mst_insert(t, keys[i], strlen(keys[i]), v);
	mst_root(t, out);
	mst_free(t);
}

static bool
diff_is(MstTree *a, MstTree *b, uint8_t (*add)[CID_LEN], size_t nadd,
		uint8_t (*rem)[CID_LEN], size_t nrem, const char *ops)
{
	MstDiff		d;
	CidVec		ga = {0},
				gr = {0},
				wa = {0},
				wr = {0};
	char		got[512] = "";
	bool		res;

	if (mst_diff(a, b, NULL, NULL, &d) != MST_OK)
	{
		printf("#   diff failed: %s\n", mst_errmsg(b));
		return false;
	}
	cv_from_list(&ga, &d.nodes_added);
	cv_from_list(&gr, &d.nodes_removed);
	for (size_t i = 0; i < nadd; i++)
		cv_push(&wa, add[i]);
	for (size_t i = 0; i < nrem; i++)
		cv_push(&wr, rem[i]);
	for (size_t i = 0; i < d.n_ops; i++)
	{
		const MstRecordOp *o = &d.ops[i];
		char		one[200];

		snprintf(one, sizeof(one), "%s%s %s%s%s", i ? "; " : "",
				 !o->has_old ? "create" : !o->has_new ? "delete" : "update", o->key,
				 o->has_old ? " from " : "", o->has_old ? cidtxt(o->old_value) + 52 : "");
		strncat(got, one, sizeof(got) - strlen(got) - 1);
		if (o->has_new)
		{
			snprintf(one, sizeof(one), " to %s", cidtxt(o->new_value) + 52);
			strncat(got, one, sizeof(got) - strlen(got) - 1);
		}
	}
	res = cv_same_set(&ga, &wa);
	res = cv_same_set(&gr, &wr) && res;
	if (strcmp(got, ops) != 0)
	{
		printf("#   ops got:  %s\n#   ops want: %s\n", got, ops);
		res = false;
	}
	mst_diff_free(&d);
	cv_free(&ga);
	cv_free(&gr);
	cv_free(&wa);
	cv_free(&wr);
	return res;
}

static void
test_diff(void)
{
	/* A0, C0, D0 at layer 0 and B1 at layer 1, from the interop example keys */
	static const char *t1k[] = {"A0/374913", "B1/986427", "C0/451630"};
	static const char *ak[] = {"A0/374913"};
	static const char *ck[] = {"C0/451630"};
	static const char *cdk[] = {"C0/451630", "D0/952776"};
	static const char *ack[] = {"A0/374913", "C0/451630"};
	uint8_t		v1[CID_LEN],
				v2[CID_LEN];
	uint8_t		nodes[8][CID_LEN];
	MstTree    *t1,
			   *t2,
			   *e;
	char		want[512];
	char		v1s[8],
				v2s[8];
	MemStore	m;
	MstStore	s;
	CidVec		written = {0},
				removed = {0},
				ww = {0},
				wr = {0};
	MstCidList	rl = {0};

	fake_cid(100, v1);
	fake_cid(200, v2);
	strcpy(v1s, cidtxt(v1) + 52);
	strcpy(v2s, cidtxt(v2) + 52);

	/* T1 = root(B1) with l = node(A0), t = node(C0) */
	t1 = tree_of(NULL, 0);
	for (int i = 0; i < 3; i++)
		mst_insert(t1, t1k[i], strlen(t1k[i]), v1);
	mst_root(t1, nodes[0]);
	single_node(ak, 1, v1, nodes[1]);
	single_node(ck, 1, v1, nodes[2]);

	ok(diff_is(t1, t1, NULL, 0, NULL, 0, ""), "diff of a tree with itself is empty");

	/* update C0: the right leaf node and the root change; A0's node does not */
	t2 = tree_of(NULL, 0);
	for (int i = 0; i < 3; i++)
		mst_insert(t2, t1k[i], strlen(t1k[i]), i == 2 ? v2 : v1);
	mst_root(t2, nodes[3]);
	single_node(ck, 1, v2, nodes[4]);
	{
		uint8_t add[2][CID_LEN];
		uint8_t rem[2][CID_LEN];

		memcpy(add[0], nodes[3], CID_LEN);
		memcpy(add[1], nodes[4], CID_LEN);
		memcpy(rem[0], nodes[0], CID_LEN);
		memcpy(rem[1], nodes[2], CID_LEN);
		snprintf(want, sizeof(want), "update C0/451630 from %s to %s", v1s, v2s);
		ok(diff_is(t1, t2, add, 2, rem, 2, want), "update: new root and right leaf added, old ones removed");
	}
	mst_free(t2);

	/* create D0, next to C0 */
	t2 = tree_of(NULL, 0);
	for (int i = 0; i < 3; i++)
		mst_insert(t2, t1k[i], strlen(t1k[i]), v1);
	mst_insert(t2, "D0/952776", 9, v2);
	mst_root(t2, nodes[5]);
	{
		uint8_t		cd[CID_LEN];
		MstTree    *x = mst_new(NULL);

		mst_insert(x, cdk[0], strlen(cdk[0]), v1);
		mst_insert(x, cdk[1], strlen(cdk[1]), v2);
		mst_root(x, cd);
		mst_free(x);
		{
			uint8_t add[2][CID_LEN];
			uint8_t rem[2][CID_LEN];

			memcpy(add[0], nodes[5], CID_LEN);
			memcpy(add[1], cd, CID_LEN);
			memcpy(rem[0], nodes[0], CID_LEN);
			memcpy(rem[1], nodes[2], CID_LEN);
			snprintf(want, sizeof(want), "create D0/952776 to %s", v2s);
			ok(diff_is(t1, t2, add, 2, rem, 2, want), "create: the leaf node gains a key");
		}
	}
	mst_free(t2);

	/* delete B1: the tree collapses to one layer-0 node */
	t2 = tree_of(NULL, 0);
	mst_insert(t2, ack[0], strlen(ack[0]), v1);
	mst_insert(t2, ack[1], strlen(ack[1]), v1);
	mst_root(t2, nodes[6]);
	{
		uint8_t add[1][CID_LEN];
		uint8_t rem[3][CID_LEN];

		memcpy(add[0], nodes[6], CID_LEN);
		memcpy(rem[0], nodes[0], CID_LEN);
		memcpy(rem[1], nodes[1], CID_LEN);
		memcpy(rem[2], nodes[2], CID_LEN);
		snprintf(want, sizeof(want), "delete B1/986427 from %s", v1s);
		ok(diff_is(t1, t2, add, 1, rem, 3, want), "delete: three nodes merge into one");
	}

	/* from nothing, and to the empty tree */
	{
		uint8_t all[3][CID_LEN];
		uint8_t empty[1][CID_LEN];

		memcpy(all[0], nodes[0], CID_LEN);
		memcpy(all[1], nodes[1], CID_LEN);
		memcpy(all[2], nodes[2], CID_LEN);
		snprintf(want, sizeof(want), "create A0/374913 to %s; create B1/986427 to %s; create C0/451630 to %s",
				 v1s, v1s, v1s);
		ok(diff_is(NULL, t1, all, 3, NULL, 0, want), "diff from nothing adds every node and record");
		e = tree_of(NULL, 0);
		mst_root(e, (uint8_t *) empty[0]);
		snprintf(want, sizeof(want), "delete A0/374913 from %s; delete B1/986427 from %s; delete C0/451630 from %s",
				 v1s, v1s, v1s);
		ok(diff_is(t1, e, empty, 1, all, 3, want), "diff to the empty tree removes them all");
		mst_free(e);
	}

	/* mst_write after the same update on a stored tree: same nodes */
	mem_init(&m);
	s = mem_store(&m);
	mst_write(t1, mem_put, &m, NULL, NULL);
	mst_free(t2);
	mst_open(&s, nodes[0], &t2, want, sizeof(want));
	mst_update(t2, "C0/451630", 9, v2, NULL);
	mst_write(t2, cv_put_cb, &written, NULL, &rl);
	cv_from_list(&removed, &rl);
	cv_push(&ww, nodes[3]);
	cv_push(&ww, nodes[4]);
	cv_push(&wr, nodes[0]);
	cv_push(&wr, nodes[2]);
	ok(cv_same_set(&written, &ww) && cv_same_set(&removed, &wr),
	   "mst_write hands over the 2 new nodes and reports the 2 replaced ones");
	ok(m.gets == 2, "  loading only the root and the changed leaf (%ld fetches)", m.gets);
	cv_free(&written);
	cv_free(&removed);
	cv_free(&ww);
	cv_free(&wr);
	mst_cid_list_free(&rl);
	/* reverting is a no-op for the store */
	mst_update(t2, "C0/451630", 9, v2, NULL);
	mst_write(t2, cv_put_cb, &written, NULL, &rl);
	ok(written.n == 0 && rl.n == 0, "writing again without changes hands over nothing");
	cv_free(&written);
	mst_cid_list_free(&rl);
	mst_update(t2, "C0/451630", 9, v1, NULL);
	mst_update(t2, "C0/451630", 9, v2, NULL);
	mst_write(t2, cv_put_cb, &written, NULL, &rl);
	ok(rl.n == 0, "a change and its undo remove nothing");
	cv_free(&written);
	mst_cid_list_free(&rl);
	mst_free(t2);
	mst_free(t1);
	mem_free(&m);
}

/* Keys that are prefixes of each other around the sort's 8-byte chunks. */
static void
test_sort_edges(void)
{
	enum
	{
		N = 3000
	};
	static const char alpha[] = "ab.-";
	char	  (*keys)[48] = malloc(N * 48);
	MstKV	   *kv = malloc((N + 1) * sizeof(MstKV));
	int			wrong = 0,
				dup_missed = 0;

	for (int round = 0; round < 30; round++)
	{
		size_t		n = 0;
		MstTree    *t = mst_new(NULL);
		uint8_t		r1[CID_LEN],
					r2[CID_LEN];
		char		msg[400];

		while (n < N)
		{
			/* "c/" plus 1..30 bytes from a 4-letter alphabet: many shared prefixes */
			size_t		len = 1 + rng() % 30;
			bool		found;

			if (rng() % 3 == 0)
				len = (rng() % 4 + 1) * 8 - 2;	/* whole keys of 8, 16, 24, 32 bytes */
			memcpy(keys[n], "c/", 2);
			for (size_t i = 0; i < len; i++)
				keys[n][2 + i] = alpha[rng() % 4];
			keys[n][2 + len] = '\0';
			if (mst_get(t, keys[n], len + 2, NULL, &found) != MST_OK || found)
				continue;
			kv[n].key = keys[n];
			kv[n].key_len = len + 2;
			fake_cid(n, kv[n].value);
			mst_insert(t, kv[n].key, kv[n].key_len, kv[n].value);
			n++;
		}
		shuffle(kv, n, sizeof(MstKV));
		mst_root(t, r1);
		if (mst_build_root(kv, n, NULL, NULL, r2, msg, sizeof(msg)) != MST_OK ||
			memcmp(r1, r2, CID_LEN) != 0)
			wrong++;
		/* one key twice, anywhere: found however deep its twin sorts */
		kv[n] = kv[rng() % n];
		shuffle(kv, n + 1, sizeof(MstKV));
		if (mst_build_root(kv, n + 1, NULL, NULL, r2, msg, sizeof(msg)) != MST_ERR_DUPLICATE_KEY)
			dup_missed++;
		mst_free(t);
	}
	ok(wrong == 0, "30 sets of 3000 prefix-heavy keys: the sorted build equals the inserted tree (%d wrong)",
	   wrong);
	ok(dup_missed == 0, "  and a duplicated key is always caught (%d missed)", dup_missed);
	free(keys);
	free(kv);
}

static bool
count_leaf(void *ctx, const char *key, size_t len, const uint8_t value[CID_LEN])
{
	static char last[MST_MAX_KEY_LEN + 1];
	size_t	   *n = ctx;

	(void) value;
	if (*n > 0 && strcmp(last, key) >= 0)
		*n = (size_t) -1000000;
	memcpy(last, key, len + 1);
	(*n)++;
	return true;
}

static void
test_walk(void)
{
	json_t	   *j = load_json(FIX "mst-vectors/random-trees.json");
	json_t	   *tr = json_array_get(j, 7);
	json_t	   *entries = json_object_get(tr, "entries");
	size_t		n = json_array_size(entries),
				count = 0;
	Pair	   *p = malloc(n * sizeof(Pair));
	MstTree    *t;

	for (size_t k = 0; k < n; k++)
	{
		json_t	   *e = json_array_get(entries, k);

		p[k].key = json_string_value(json_array_get(e, 0));
		p[k].len = json_string_length(json_array_get(e, 0));
		cid_from(json_string_value(json_array_get(e, 1)), p[k].cid);
	}
	t = build_all(p, n);
	mst_walk_leaves(t, count_leaf, &count);
	ok(count == n, "walk visits all %zu records in key order", n);
	mst_free(t);
	free(p);
	json_decref(j);
}

int
main(void)
{
	test_key_heights();
	test_common_prefix();
	test_example_keys();
	test_known_trees();
	test_commit_proofs();
	test_random_trees();
	test_proof_vectors();
	test_property();
	test_decode();
	test_tree_rules();
	test_diff();
	test_walk();
	test_sort_edges();
	return done_testing();
}
