/*
 * test_car_manifest.c - repo_stream_car's manifest parser and its checks of
 * untrusted values (tools/car_manifest.c): what backup writes parses back;
 * the hostile lines of issue 17 (probes 3.16-3.18: "../" and absolute
 * paths, /dev/zero, SQL in the did:key, a long comment whose tail looks
 * like an entry) are errors that stop the reading.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "car_manifest.h"
#include "tap.h"

#define KEY "did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK"
#define REV "3kgx2jqmvfk2a"

/* The results of reading a whole manifest, one letter each: E entry,
 * I inactive, S skip, X error (then the reading stops). */
static char *
read_all(const char *data, size_t len, CarManifestEntry *last, char *err, size_t errlen)
{
	static char out[64];
	CarManifestReader r;
	CarManifestEntry e;
	CarManifestResult res;
	size_t		n = 0;

	err[0] = '\0';
	car_manifest_init(&r, data, len);
	while ((res = car_manifest_next(&r, &e, err, errlen)) != CAR_MANIFEST_END && n < sizeof(out) - 1)
	{
		out[n++] = "EISEX"[res];
		if (res == CAR_MANIFEST_ENTRY && last)
			*last = e;
		if (res == CAR_MANIFEST_ERROR)
			break;
	}
	out[n] = '\0';
	return out;
}

static char *
one(const char *text, CarManifestEntry *last, char *err)
{
	return read_all(text, strlen(text), last, err, 256);
}

int
main(void)
{
	CarManifestEntry e,
				back;
	char		err[256],
				line[CAR_MANIFEST_MAX_LINE + 2];
	char	   *big;
	size_t		n;

	/* ---- what backup writes */
	is_str(one("# did\tfile\trev\tseq\tdid_key\tbytes\tstatus\n"
			   "did:plc:alice\tdid:plc:alice.car\t" REV "\t42\t" KEY "\t1234\tactive\n"
			   "did:plc:bob\t\t\t\t\t\tdeactivated\n"
			   "\n"
			   "did:web:example.com\tdid:web:example.com.car\t" REV "\t0\t" KEY "\t0\tactive", &e, err),
		   "SEISE", "a backup's manifest: comment, entry, inactive repo, blank line, entry without a newline");
	is_str(e.did, "did:web:example.com", "the entry's DID");
	is_str(e.file, "did:web:example.com.car", "its file");
	ok(e.seq == 0 && e.bytes == 0, "its seq and byte count");
	one("did:plc:alice\tdid:plc:alice.car\t" REV "\t9007199254740991\t" KEY "\t1234\tactive\n", &e, err);
	ok(e.seq == 9007199254740991LL && strcmp(e.rev, REV) == 0 && strcmp(e.did_key, KEY) == 0, "values kept");
	n = car_manifest_format(&e, line, sizeof(line));
	ok(n > 0 && strcmp(one(line, &back, err), "E") == 0 && memcmp(&e, &back, sizeof(e)) == 0,
	   "format then parse gives the same entry");

	/* ---- probe 3.16: paths out of the directory, SQL in the key */
	is_str(one("did:plc:x1\t../../../../../etc/passwd\tr\t1\tKEY\t1\tactive\n", NULL, err), "X",
		   "a file name with ../ is an error");
	ok(strstr(err, "line 1") && strstr(err, "invalid file name"), "saying which line and what: %s", err);
	is_str(one("did:plc:x1\t/etc/passwd\t" REV "\t1\t" KEY "\t1\tactive\n", NULL, err), "X",
		   "an absolute path is an error");
	is_str(one("did:plc:x1\tsub/x.car\t" REV "\t1\t" KEY "\t1\tactive\n", NULL, err), "X", "a subdirectory too");
	is_str(one("did:plc:x1\t..car\t" REV "\t1\t" KEY "\t1\tactive\n", NULL, err), "X", "and a name with ..");
	is_str(one("did:plc:x1\t.hidden.car\t" REV "\t1\t" KEY "\t1\tactive\n", NULL, err), "X", "and a hidden file");
	is_str(one("did:plc:x1\tx1.txt\t" REV "\t1\t" KEY "\t1\tactive\n", NULL, err), "X", "and a name not .car");
	is_str(one("did:plc:x1\tx1.car\t" REV "\t1\t'); DROP TABLE repo_stream.records; --\t1\tactive\n", NULL, err),
		   "X", "SQL as the did:key is an error");
	ok(strstr(err, "invalid did:key") != NULL, "an invalid did:key: %s", err);
	/* probe 3.17 */
	is_str(one("did:plc:x1\t../../../../../dev/zero\t" REV "\t1\t" KEY "\t1\tactive\n", NULL, err), "X",
		   "../../dev/zero is an error");

	/* ---- probe 3.18: a comment longer than a line may be */
	big = malloc(CAR_MANIFEST_MAX_LINE * 2 + 200);
	memset(big, 'x', CAR_MANIFEST_MAX_LINE * 2);
	big[0] = '#';
	strcpy(big + 8190, "\tx\tdid:plc:erin.car\t" REV "\t1\t" KEY "\t1\tactive\n");
	is_str(read_all(big, strlen(big), NULL, err, sizeof(err)), "X",
		   "a comment line longer than the limit is an error, its tail no entry");
	ok(strstr(err, "longer than 8192 bytes") != NULL, "saying so: %s", err);
	memset(big, 'x', CAR_MANIFEST_MAX_LINE);
	big[0] = '#';
	strcpy(big + CAR_MANIFEST_MAX_LINE, "\n");
	is_str(read_all(big, strlen(big), NULL, err, sizeof(err)), "S", "a comment of exactly the limit is read");
	strcpy(big + CAR_MANIFEST_MAX_LINE, "x\n");
	is_str(read_all(big, strlen(big), NULL, err, sizeof(err)), "X", "one byte more is not");
	free(big);

	/* ---- every field checked */
	is_str(one("did:plc:x1\tx1.car\t" REV "\t1\t" KEY "\t1\n", NULL, err), "X", "six fields");
	is_str(one("did:plc:x1\tx1.car\t" REV "\t1\t" KEY "\t1\tactive\textra\n", NULL, err), "X", "eight fields");
	is_str(one("not a did\tx1.car\t" REV "\t1\t" KEY "\t1\tactive\n", NULL, err), "X", "an invalid DID");
	is_str(one("did:plc:x1\tx1.car\tnot-a-tid\t1\t" KEY "\t1\tactive\n", NULL, err), "X", "an invalid rev");
	is_str(one("did:plc:x1\tx1.car\t" REV "\t-1\t" KEY "\t1\tactive\n", NULL, err), "X", "a negative seq");
	is_str(one("did:plc:x1\tx1.car\t" REV "\t9223372036854775808\t" KEY "\t1\tactive\n", NULL, err), "X",
		   "a seq over 2^63-1");
	is_str(one("did:plc:x1\tx1.car\t" REV "\t007\t" KEY "\t1\tactive\n", NULL, err), "X", "leading zeros");
	is_str(one("did:plc:x1\tx1.car\t" REV "\t1\t" KEY "\t1x\tactive\n", NULL, err), "X", "a byte count not a number");
	is_str(one("did:plc:x1\tx1.car\t" REV "\t1\t" KEY "\t1\tdeleted\n", NULL, err), "X", "a file for a deleted repo");
	is_str(one("did:plc:x1\t\t\t\t\t\tactive\n", NULL, err), "X", "an active repo without a file");
	is_str(one("did:plc:x1\t\t" REV "\t\t\t\tdeleted\n", NULL, err), "X", "no file but a rev");
	is_str(one("did:plc:x1\tx1.car\t" REV "\t1\t" KEY "\t1\tActive\n", NULL, err), "X", "a status not [a-z]");
	is_str(one("did:plc:x1\tx1.car\t" REV "\t1\t" KEY "\t1\tactive\r\n", NULL, err), "X", "a carriage return");
	is_str(read_all("did:plc:x1\tx1.car\0\t", 19, NULL, err, sizeof(err)), "X", "a NUL byte");
	is_str(one("did:plc:a\t\t\t\t\t\tdeleted\nbad\n" "did:plc:b\t\t\t\t\t\tdeleted\n", NULL, err), "IX",
		   "nothing is read after an error");
	ok(strstr(err, "line 2") != NULL, "the error names its line: %s", err);

	/* ---- value checks the CLI applies to what a server returns */
	ok(car_did_file_ok("did:plc:abc", 11), "a DID that names a file");
	ok(!car_did_file_ok("../../../..tmp/pwned", 20), "probe 3.19: a DID with ../ does not");
	ok(!car_did_file_ok("did:plc:a..b", 12), "nor one with ..");
	ok(!car_did_file_ok("did:plc:a/b", 11), "nor one with /");
	ok(car_did_key_ok(KEY, strlen(KEY)) && !car_did_key_ok("did:key:zfake0", 14) &&
	   !car_did_key_ok("did:key:z", 9), "did:key: base58btc after did:key:z");
	{
		CarManifestEntry bad;

		memset(&bad, 0, sizeof(bad));
		strcpy(bad.did, "did:plc:a");
		strcpy(bad.file, "x/../y.car");
		strcpy(bad.rev, REV);
		strcpy(bad.did_key, KEY);
		strcpy(bad.status, "active");
		ok(car_manifest_format(&bad, line, sizeof(line)) == 0, "format refuses what parse would");
	}
	return done_testing();
}
