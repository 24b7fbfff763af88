/*
 * tap.h - minimal TAP producer for the C unit tests (run through prove).
 */
#ifndef RS_TAP_H
#define RS_TAP_H

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int	tap_count = 0;
static int	tap_failed = 0;

static inline int
ok(int cond, const char *fmt, ...)
{
	va_list		ap;

	tap_count++;
	if (!cond)
		tap_failed++;
	printf("%sok %d - ", cond ? "" : "not ", tap_count);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	return cond;
}

static inline int
is_str(const char *got, const char *want, const char *name)
{
	int			r = ok(got != NULL && want != NULL && strcmp(got, want) == 0, "%s", name);

	if (!r)
		printf("#   got:  '%s'\n#   want: '%s'\n", got ? got : "(null)", want ? want : "(null)");
	return r;
}

static inline int
done_testing(void)
{
	printf("1..%d\n", tap_count);
	return tap_failed ? 1 : 0;
}

/* Hex helpers for byte-exact expectations; tohex's result is malloc'd. */
static inline size_t
unhex(const char *hex, uint8_t *out)
{
	size_t		n = strlen(hex) / 2;

	for (size_t i = 0; i < n; i++)
		sscanf(hex + 2 * i, "%2hhx", &out[i]);
	return n;
}

static inline char *
tohex(const uint8_t *b, size_t n)
{
	char	   *s = malloc(2 * n + 1);

	for (size_t i = 0; i < n; i++)
		sprintf(s + 2 * i, "%02x", b[i]);
	s[2 * n] = '\0';
	return s;
}

#endif
