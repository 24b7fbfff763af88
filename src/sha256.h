/*
 * sha256.h - SHA-256: libsodium, with an x86 SHA-NI fast path when the CPU
 * has it.  CIDs hash every block, so this sits on every hot path.
 */
#ifndef RS_SHA256_H
#define RS_SHA256_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

void		rs_sha256(const uint8_t *data, size_t len, uint8_t out[32]);

/* The portable path (libsodium), for tests that compare both. */
void		rs_sha256_portable(const uint8_t *data, size_t len, uint8_t out[32]);
bool		rs_sha256_accelerated(void);

#endif
