/*
 * car_manifest.h - the backup manifest of repo_stream_car (manifest.tsv)
 * and the checks of every value that goes into it or into a file name.
 *
 * Pure C (no libpq, no server headers): the CLI, its unit tests and a
 * fuzzer share this parser.  A manifest line is
 *   did TAB file TAB rev TAB seq TAB did_key TAB bytes TAB status
 * for an exported repo, "did" then five empty fields then the status for a
 * repo that was not active (no CAR), or a comment starting with '#'.
 * Nothing in a manifest is trusted: a line that is too long, has a NUL, the
 * wrong number of fields or a value that fails its check is an error, never
 * skipped and never split.
 */
#ifndef CAR_MANIFEST_H
#define CAR_MANIFEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "syntax.h"

/* longest line, without its newline: a 2048-byte DID twice and the rest */
#define CAR_MANIFEST_MAX_LINE 8192
/* a manifest is read whole: 64 MiB is over 100,000 lines of the longest DIDs */
#define CAR_MANIFEST_MAX_BYTES (64 * 1024 * 1024)
#define CAR_FILE_NAME_MAX 255	/* NAME_MAX */
#define CAR_DID_KEY_MAX_LEN 256
#define CAR_STATUS_MAX_LEN 32
#define CAR_FIELDS 7

typedef struct CarManifestEntry
{
	char		did[DID_MAX_LEN + 1];
	char		file[CAR_FILE_NAME_MAX + 1];	/* "" for a repo that was not active */
	char		rev[TID_LEN + 1];
	int64_t		seq;
	char		did_key[CAR_DID_KEY_MAX_LEN + 1];
	int64_t		bytes;
	char		status[CAR_STATUS_MAX_LEN + 1];
} CarManifestEntry;

typedef enum CarManifestResult
{
	CAR_MANIFEST_ENTRY,			/* a repo with a CAR: *e filled */
	CAR_MANIFEST_INACTIVE,		/* a repo without a CAR: did and status filled */
	CAR_MANIFEST_SKIP,			/* a comment or an empty line */
	CAR_MANIFEST_END,
	CAR_MANIFEST_ERROR			/* err says what, with the line number */
} CarManifestResult;

typedef struct CarManifestReader
{
	const char *data;
	size_t		len;
	size_t		pos;
	int			line;			/* of the line last returned, from 1 */
} CarManifestReader;

void		car_manifest_init(CarManifestReader *r, const char *data, size_t len);
CarManifestResult car_manifest_next(CarManifestReader *r, CarManifestEntry *e, char *err, size_t errlen);

/*
 * The line for e (an ENTRY, or INACTIVE when e->file is ""), newline
 * included, into buf; the length, or 0 if a value fails its check or the
 * line does not fit.
 */
size_t		car_manifest_format(const CarManifestEntry *e, char *buf, size_t buflen);

/*
 * A plain file name inside the backup directory: 1..255 bytes of
 * [A-Za-z0-9._:%-], not starting with '.', without "..", ending in ".car"
 * (so no path separator, no way up, no hidden file).
 */
bool		car_file_name_ok(const char *s, size_t len);
/* did:key:z followed by base58btc, at most CAR_DID_KEY_MAX_LEN bytes */
bool		car_did_key_ok(const char *s, size_t len);
/* 1..32 of [a-z] (active, deactivated, deleted, ...) */
bool		car_status_ok(const char *s, size_t len);
/* a decimal integer 0..INT64_MAX without sign or leading zeros */
bool		car_int64_parse(const char *s, size_t len, int64_t *out);
/*
 * A DID usable as the backup's file name "<did>.car": did_valid, without
 * "..", short enough for a file name.
 */
bool		car_did_file_ok(const char *s, size_t len);

/*
 * An untrusted value as a message may show it: printable ASCII (others
 * become '?'), at most 60 bytes then "...".  out has CAR_SHOWN_SIZE bytes.
 */
#define CAR_SHOWN_SIZE 64
const char *car_shown(const char *s, size_t len, char *out);

#endif
