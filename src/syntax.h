/*
 * syntax.h - atproto identifier syntax checks (pure C, no backend).
 *
 * Each check follows the atproto specs (atproto.com/specs/{did,nsid,
 * record-key,tid}) and agrees with the reference TypeScript in
 * @atproto/syntax on every line of the interop fixtures.  Inputs are byte
 * strings with an explicit length; they need not be NUL-terminated, and an
 * embedded NUL or any non-ASCII byte makes them invalid.
 */
#ifndef RS_SYNTAX_H
#define RS_SYNTAX_H

#include <stddef.h>
#include <stdbool.h>

#define DID_MAX_LEN 2048
#define NSID_MAX_LEN 317		/* 253 (domain authority) + 1 + 63 (name) */
#define NSID_SEGMENT_MAX_LEN 63
#define RKEY_MAX_LEN 512
#define TID_LEN 13

/* did:<method>:<id>; method is [a-z]+, id is [A-Za-z0-9._:%-]+ not ending in ':' or '%'. */
bool		did_valid(const char *s, size_t len);

/* Reversed domain authority (>= 2 segments) + "." + name ([A-Za-z][A-Za-z0-9]*). */
bool		nsid_valid(const char *s, size_t len);

/* 1..512 of [A-Za-z0-9._:~-], but not "." or "..". */
bool		rkey_valid(const char *s, size_t len);

/* 13 base32-sortable characters whose value fits in 64 bits. */
bool		tid_valid(const char *s, size_t len);

/* A repo record path "<collection NSID>/<rkey>". */
bool		repo_path_valid(const char *path, size_t len);

#define DATETIME_MAX_LEN 64

/*
 * An atproto datetime (atproto.com/specs/lexicon#datetime): RFC 3339
 * YYYY-MM-DDTHH:MM:SS[.fraction](Z|+HH:MM|-HH:MM), uppercase T and Z, a
 * timezone required, "-00:00" refused, at most DATETIME_MAX_LEN bytes.
 * The day must exist in its month; second 60 (a leap second) is refused,
 * as the reference implementation does; the instant, moved to UTC, must
 * fall in years 0000..9999.
 */
bool		datetime_valid(const char *s, size_t len);

#endif
