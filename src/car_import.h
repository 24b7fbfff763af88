/*
 * car_import.h - checking a repo CAR before it is imported (pure C, no
 * backend): the inverse of car_export, for com.atproto.repo.importRepo.
 *
 * The CAR is read through a CarSource (bytes at an offset), so it can be a
 * bytea in memory or a large object bigger than any one value.  Three
 * steps, each of which only reads:
 *
 *   car_import_open     every block framed and hashed (CARv1, as car.h's
 *                       strict reader), an index of the blocks by CID
 *                       (48 bytes a block), exactly one root, and the root
 *                       block decoded as a signed v3 commit;
 *   car_import_verify   the commit's Ed25519 signature;
 *   car_import_walk     the MST from the commit's data, in key order
 *                       (mst_iter: every node canonical), and every record
 *                       present, a dag-cbor CID, valid DAG-CBOR, a map, at
 *                       most CAR_IMPORT_MAX_RECORD bytes, under a key that
 *                       is "<collection NSID>/<record key>".
 *
 * The walk hands each node and record to the caller, which runs it twice:
 * once to check what only the backend can (JSON conversion), once to
 * write.  Blocks the tree does not reach are ignored (counted in
 * unreached).  Block order in the CAR does not matter.
 *
 * Errors: a CarImportError, with ci->errmsg naming the byte offset, the
 * block's CID or the key.  Memory: the index, plus what the source keeps.
 */
#ifndef RS_CAR_IMPORT_H
#define RS_CAR_IMPORT_H

#include "buf.h"
#include "car.h"
#include "cbor.h"
#include "cid.h"
#include "commit.h"
#include "mst.h"

/* Largest record, in bytes of DAG-CBOR (as the write path). */
#define CAR_IMPORT_MAX_RECORD 1000000
/* Largest block of any kind (a full MST node is about 1.2 MB). */
#define CAR_IMPORT_MAX_BLOCK (2 * 1024 * 1024)
/* Largest CAR header. */
#define CAR_IMPORT_MAX_HEADER (64 * 1024)

/*
 * Point *out at bytes [offset, offset + len) of the CAR (offset + len <=
 * size), valid until the next call.  false if they cannot be read; a
 * backend source may ereport instead.
 */
typedef bool (*CarReadFn) (void *ctx, uint64_t offset, size_t len, const uint8_t **out);

typedef struct CarSource
{
	CarReadFn	read;
	void	   *ctx;
	uint64_t	size;
} CarSource;

typedef enum CarImportError
{
	CI_OK = 0,
	CI_CAR,						/* CARv1 framing or header (car_err says how) */
	CI_BLOCK_TOO_BIG,			/* a block or header over the limits above */
	CI_ROOTS,					/* not exactly one root */
	CI_MISSING_BLOCK,			/* the commit, a node or a record is not in the CAR */
	CI_COMMIT,					/* the root block is not a valid signed v3 commit */
	CI_SIGNATURE,				/* the commit's signature does not verify */
	CI_MST,						/* a node invalid, or the tree not canonical */
	CI_RECORD_CID,				/* a record link that is not a dag-cbor CID */
	CI_RECORD_KEY,				/* a key that is not collection/rkey */
	CI_RECORD_TOO_BIG,			/* a record over CAR_IMPORT_MAX_RECORD */
	CI_RECORD_CBOR,				/* a record that is not valid DAG-CBOR */
	CI_RECORD_NOT_MAP,			/* a record that is not a map */
	CI_IO,						/* the source could not be read */
	CI_STOPPED					/* a visitor returned false */
} CarImportError;

const char *car_import_strerror(CarImportError err);

typedef struct CarImportBlock
{
	uint8_t		cid[CID_LEN];
	uint32_t	len;			/* of the data */
	uint64_t	offset;			/* of the data (after the CID) in the CAR */
} CarImportBlock;

/* Called every few MB while car_import_open reads the CAR. */
typedef void (*CarProgressFn) (void *ctx, uint64_t done, uint64_t total);

typedef struct CarImport
{
	CarSource	src;
	CarImportBlock *blocks;		/* sorted by CID, one per CID */
	size_t		n_blocks;
	uint8_t		root[CID_LEN];	/* the commit's CID */
	uint8_t    *commit_bytes;	/* copy of the commit block */
	size_t		commit_len;
	RepoCommit	commit;			/* points into commit_bytes */
	char		did[2049];		/* the commit's DID, NUL-terminated */
	char		rev[16];		/* its rev */
	/* after a walk */
	size_t		n_nodes;
	size_t		n_records;
	size_t		unreached;		/* blocks the tree does not reach */
	CarProgressFn progress;
	void	   *progress_ctx;
	/* the last error */
	CarImportError err;
	CarError	car_err;		/* CI_CAR */
	MstError	mst_err;		/* CI_MST */
	DcborError	cbor_err;		/* CI_RECORD_CBOR */
	char		errmsg[640];
} CarImport;

/*
 * Read the whole CAR: frame and hash every block, index them, check the
 * header has exactly one root and decode the root block as a signed v3
 * commit (did, rev, data, prev, version 3, sig).  ci is initialized here,
 * except for progress and progress_ctx, which the caller may set first on a
 * zeroed ci; free it with car_import_free either way.
 */
CarImportError car_import_open(CarImport *ci, const CarSource *src);

/* The commit's signature, by the Ed25519 public key pub. */
CarImportError car_import_verify(CarImport *ci, const uint8_t pub[COMMIT_PUBLIC_KEY_LEN]);

/* The block of a CID, or NULL. */
const CarImportBlock *car_import_find(const CarImport *ci, const uint8_t cid[CID_LEN]);

/*
 * What car_import_walk hands out; a callback returns false to stop (the
 * walk then fails with CI_STOPPED).  record gets the key, the length of
 * its collection part, the record's CID and bytes (valid during the call).
 */
typedef struct CarImportVisitor
{
	bool		(*node) (void *ctx, const uint8_t cid[CID_LEN], const uint8_t *data, size_t len);
	bool		(*record) (void *ctx, const char *key, size_t key_len, size_t collection_len,
						   const uint8_t cid[CID_LEN], const uint8_t *data, size_t len);
	void	   *ctx;
} CarImportVisitor;

/*
 * Walk the tree under the commit's data in the export's order, checking it
 * (see above); visitor members may be NULL.  Sets n_nodes, n_records and
 * unreached.  Can run any number of times.
 */
CarImportError car_import_walk(CarImport *ci, const CarImportVisitor *visitor);

void		car_import_free(CarImport *ci);

/* A CarSource over bytes in memory (ctx is the CarMemSource). */
typedef struct CarMemSource
{
	const uint8_t *data;
} CarMemSource;

void		car_mem_source(CarSource *src, CarMemSource *mem, const uint8_t *data, size_t len);

#endif
