/*
 * car_manifest.c - parse and check repo_stream_car's manifest.tsv (see
 * car_manifest.h).  Pure C: linked into the CLI, test/unit and test/fuzz.
 */
#include "car_manifest.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static bool
has_dotdot(const char *s, size_t len)
{
	for (size_t i = 0; i + 1 < len; i++)
		if (s[i] == '.' && s[i + 1] == '.')
			return true;
	return false;
}

bool
car_file_name_ok(const char *s, size_t len)
{
	if (len < 5 || len > CAR_FILE_NAME_MAX || s[0] == '.' || has_dotdot(s, len) ||
		memcmp(s + len - 4, ".car", 4) != 0)
		return false;
	for (size_t i = 0; i < len; i++)
	{
		char		c = s[i];

		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
			  c == '.' || c == '_' || c == ':' || c == '%' || c == '-'))
			return false;
	}
	return true;
}

bool
car_did_file_ok(const char *s, size_t len)
{
	return did_valid(s, len) && len + 4 <= CAR_FILE_NAME_MAX && !has_dotdot(s, len);
}

bool
car_did_key_ok(const char *s, size_t len)
{
	static const char base58[] = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";

	if (len <= 9 || len > CAR_DID_KEY_MAX_LEN || memcmp(s, "did:key:z", 9) != 0)
		return false;
	for (size_t i = 9; i < len; i++)
		if (s[i] == '\0' || strchr(base58, s[i]) == NULL)
			return false;
	return true;
}

bool
car_status_ok(const char *s, size_t len)
{
	if (len < 1 || len > CAR_STATUS_MAX_LEN)
		return false;
	for (size_t i = 0; i < len; i++)
		if (s[i] < 'a' || s[i] > 'z')
			return false;
	return true;
}

bool
car_int64_parse(const char *s, size_t len, int64_t *out)
{
	uint64_t	v = 0;

	if (len < 1 || len > 19 || (len > 1 && s[0] == '0'))
		return false;
	for (size_t i = 0; i < len; i++)
	{
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (uint64_t) (s[i] - '0');
	}
	if (v > (uint64_t) INT64_MAX)
		return false;
	*out = (int64_t) v;
	return true;
}

void
car_manifest_init(CarManifestReader *r, const char *data, size_t len)
{
	r->data = data;
	r->len = len;
	r->pos = 0;
	r->line = 0;
}

static CarManifestResult
refuse(CarManifestReader *r, char *err, size_t errlen, const char *fmt,...)
{
	va_list		ap;
	int			n = snprintf(err, errlen, "manifest line %d: ", r->line);

	if (n >= 0 && (size_t) n < errlen)
	{
		va_start(ap, fmt);
		vsnprintf(err + n, errlen - n, fmt, ap);
		va_end(ap);
	}
	r->pos = r->len;			/* nothing after an error is read */
	return CAR_MANIFEST_ERROR;
}

const char *
car_shown(const char *s, size_t len, char *out)
{
	size_t		n = len > 60 ? 60 : len;

	for (size_t i = 0; i < n; i++)
		out[i] = (s[i] >= 0x20 && s[i] < 0x7f) ? s[i] : '?';
	strcpy(out + n, len > n ? "..." : "");
	return out;
}

static void
copy_field(char *dst, const char *src, size_t len)
{
	memcpy(dst, src, len);
	dst[len] = '\0';
}

CarManifestResult
car_manifest_next(CarManifestReader *r, CarManifestEntry *e, char *err, size_t errlen)
{
	const char *line,
			   *nl;
	size_t		len;
	const char *f[CAR_FIELDS];
	size_t		flen[CAR_FIELDS];
	int			nf = 0;
	bool		empty_rest = true;
	char		val[CAR_SHOWN_SIZE];

	if (errlen > 0)
		err[0] = '\0';
	if (r->pos >= r->len)
		return CAR_MANIFEST_END;
	r->line++;
	line = r->data + r->pos;
	nl = memchr(line, '\n', r->len - r->pos);
	len = nl ? (size_t) (nl - line) : r->len - r->pos;
	if (len > CAR_MANIFEST_MAX_LINE)
		return refuse(r, err, errlen, "longer than %d bytes", CAR_MANIFEST_MAX_LINE);
	r->pos += len + (nl ? 1 : 0);
	if (memchr(line, '\0', len) != NULL)
		return refuse(r, err, errlen, "has a NUL byte");
	if (memchr(line, '\r', len) != NULL)
		return refuse(r, err, errlen, "has a carriage return");
	if (len == 0 || line[0] == '#')
		return CAR_MANIFEST_SKIP;

	/* exactly seven tab-separated fields */
	for (size_t start = 0;;)
	{
		const char *tab = memchr(line + start, '\t', len - start);
		size_t		end = tab ? (size_t) (tab - line) : len;

		if (nf == CAR_FIELDS)
			return refuse(r, err, errlen, "has more than %d fields", CAR_FIELDS);
		f[nf] = line + start;
		flen[nf++] = end - start;
		if (!tab)
			break;
		start = end + 1;
	}
	if (nf != CAR_FIELDS)
		return refuse(r, err, errlen, "has %d fields, not %d", nf, CAR_FIELDS);

	memset(e, 0, sizeof(*e));
	if (!did_valid(f[0], flen[0]))
		return refuse(r, err, errlen, "invalid DID \"%s\"", car_shown(f[0], flen[0], val));
	copy_field(e->did, f[0], flen[0]);
	if (!car_status_ok(f[6], flen[6]))
		return refuse(r, err, errlen, "invalid status \"%s\"", car_shown(f[6], flen[6], val));
	copy_field(e->status, f[6], flen[6]);
	for (int i = 1; i < 6; i++)
		if (flen[i] != 0)
			empty_rest = false;
	if (flen[1] == 0)
	{
		/* a repo that was not active: noted in the backup, no CAR */
		if (!empty_rest)
			return refuse(r, err, errlen, "has no file but other values");
		if (strcmp(e->status, "active") == 0)
			return refuse(r, err, errlen, "an active repo without a file");
		return CAR_MANIFEST_INACTIVE;
	}
	if (strcmp(e->status, "active") != 0)
		return refuse(r, err, errlen, "a file for a repo that is %s", e->status);
	if (!car_file_name_ok(f[1], flen[1]))
		return refuse(r, err, errlen, "invalid file name \"%s\" (a plain name ending in .car, no \"/\" or \"..\")",
					  car_shown(f[1], flen[1], val));
	copy_field(e->file, f[1], flen[1]);
	if (!tid_valid(f[2], flen[2]))
		return refuse(r, err, errlen, "invalid rev \"%s\"", car_shown(f[2], flen[2], val));
	copy_field(e->rev, f[2], flen[2]);
	if (!car_int64_parse(f[3], flen[3], &e->seq))
		return refuse(r, err, errlen, "invalid seq \"%s\"", car_shown(f[3], flen[3], val));
	if (!car_did_key_ok(f[4], flen[4]))
		return refuse(r, err, errlen, "invalid did:key \"%s\"", car_shown(f[4], flen[4], val));
	copy_field(e->did_key, f[4], flen[4]);
	if (!car_int64_parse(f[5], flen[5], &e->bytes))
		return refuse(r, err, errlen, "invalid byte count \"%s\"", car_shown(f[5], flen[5], val));
	return CAR_MANIFEST_ENTRY;
}

size_t
car_manifest_format(const CarManifestEntry *e, char *buf, size_t buflen)
{
	int			n;

	if (!did_valid(e->did, strlen(e->did)) || !car_status_ok(e->status, strlen(e->status)))
		return 0;
	if (e->file[0] == '\0')
	{
		if (strcmp(e->status, "active") == 0)
			return 0;
		n = snprintf(buf, buflen, "%s\t\t\t\t\t\t%s\n", e->did, e->status);
	}
	else
	{
		if (!car_file_name_ok(e->file, strlen(e->file)) || !tid_valid(e->rev, strlen(e->rev)) ||
			!car_did_key_ok(e->did_key, strlen(e->did_key)) || e->seq < 0 || e->bytes < 0 ||
			strcmp(e->status, "active") != 0)
			return 0;
		n = snprintf(buf, buflen, "%s\t%s\t%s\t%lld\t%s\t%lld\t%s\n", e->did, e->file, e->rev,
					 (long long) e->seq, e->did_key, (long long) e->bytes, e->status);
	}
	if (n < 0 || (size_t) n >= buflen || (size_t) n - 1 > CAR_MANIFEST_MAX_LINE)
		return 0;
	return (size_t) n;
}
