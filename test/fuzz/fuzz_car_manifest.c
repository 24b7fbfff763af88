/*
 * fuzz_car_manifest.c - repo_stream_car's manifest parser
 * (tools/car_manifest.c), which reads a file nothing vouches for.
 * Properties, for any bytes:
 *  - reading ends: every line read moves forward, an error ends it;
 *  - no line longer than CAR_MANIFEST_MAX_LINE is read as anything;
 *  - every entry passes the checks again: its file is a plain name in the
 *    backup directory (no '/', no "..", ending in .car), its DID, rev,
 *    did:key and status are valid, seq and bytes are not negative;
 *  - an entry (or an inactive repo) formats to a line that parses back to
 *    the same values;
 *  - an error message names its line and holds printable ASCII only.
 */
#include "car_manifest.h"
#include "fuzz.h"

static void
check_round_trip(const CarManifestEntry *e, CarManifestResult want)
{
	char		line[CAR_MANIFEST_MAX_LINE + 2];
	char		err[256];
	CarManifestReader r;
	CarManifestEntry back;
	size_t		n = car_manifest_format(e, line, sizeof(line));

	FUZZ_CHECK(n > 0, "an accepted entry does not format: %s", e->did);
	car_manifest_init(&r, line, n);
	FUZZ_CHECK(car_manifest_next(&r, &back, err, sizeof(err)) == want, "its line does not parse back: %s", err);
	FUZZ_CHECK(strcmp(back.did, e->did) == 0 && strcmp(back.status, e->status) == 0, "DID or status differ");
	if (want == CAR_MANIFEST_ENTRY)
		FUZZ_CHECK(strcmp(back.file, e->file) == 0 && strcmp(back.rev, e->rev) == 0 &&
				   strcmp(back.did_key, e->did_key) == 0 && back.seq == e->seq && back.bytes == e->bytes,
				   "values differ after a round trip");
	FUZZ_CHECK(car_manifest_next(&r, &back, err, sizeof(err)) == CAR_MANIFEST_END, "more than one line");
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	CarManifestReader r;
	CarManifestEntry e;
	CarManifestResult res;
	char		err[256];
	size_t		before;

	car_manifest_init(&r, (const char *) data, size);
	for (;;)
	{
		before = r.pos;
		res = car_manifest_next(&r, &e, err, sizeof(err));
		if (res == CAR_MANIFEST_END)
		{
			FUZZ_CHECK(before == size, "END before the end");
			break;
		}
		if (res == CAR_MANIFEST_ERROR)
		{
			FUZZ_CHECK(strncmp(err, "manifest line ", 14) == 0, "an error without its line: %s", err);
			for (const char *p = err; *p; p++)
				FUZZ_CHECK(*p >= 0x20 && *p < 0x7f, "an unprintable byte in the error message");
			FUZZ_CHECK(car_manifest_next(&r, &e, err, sizeof(err)) == CAR_MANIFEST_END, "reading on after an error");
			break;
		}
		FUZZ_CHECK(r.pos > before, "a line read without moving forward");
		FUZZ_CHECK(r.pos - before <= CAR_MANIFEST_MAX_LINE + 1, "a line over the limit was read");
		if (res == CAR_MANIFEST_ENTRY)
		{
			FUZZ_CHECK(car_file_name_ok(e.file, strlen(e.file)) && strchr(e.file, '/') == NULL &&
					   strstr(e.file, "..") == NULL && e.file[0] != '.', "an unsafe file name: %s", e.file);
			FUZZ_CHECK(did_valid(e.did, strlen(e.did)) && tid_valid(e.rev, strlen(e.rev)) &&
					   car_did_key_ok(e.did_key, strlen(e.did_key)) && strcmp(e.status, "active") == 0 &&
					   e.seq >= 0 && e.bytes >= 0, "an entry with an invalid value");
			check_round_trip(&e, CAR_MANIFEST_ENTRY);
		}
		else if (res == CAR_MANIFEST_INACTIVE)
		{
			FUZZ_CHECK(did_valid(e.did, strlen(e.did)) && car_status_ok(e.status, strlen(e.status)) &&
					   strcmp(e.status, "active") != 0, "an inactive repo with an invalid value");
			check_round_trip(&e, CAR_MANIFEST_INACTIVE);
		}
	}
	return 0;
}
