/* SHA-256 (FIPS 180-4) with a runtime-selected block function: the CPU's
 * SHA instructions when it has them (x86 SHA-NI, ARMv8 SHA2), portable C
 * otherwise. */
#ifndef HAUL_SHA256_H
#define HAUL_SHA256_H

#include <stddef.h>
#include <stdint.h>

#define HAUL_SHA256_LEN 32
#define HAUL_SHA256_BLOCK 64

typedef void (*haul_sha256_blocks_fn)(uint32_t state[8], const uint8_t *p, size_t nblocks);

typedef struct {
    uint32_t state[8];
    uint64_t total;               /* bytes fed so far */
    uint8_t buf[HAUL_SHA256_BLOCK];
    size_t buflen;
    haul_sha256_blocks_fn blocks; /* fixed at init, so one context never mixes paths */
} haul_sha256_ctx;

typedef enum {
    HAUL_SHA_AUTO,     /* accelerated if present, unless HAUL_PROBE_SHA=portable */
    HAUL_SHA_PORTABLE,
    HAUL_SHA_ACCEL     /* SHA-NI on x86, SHA2 extensions on aarch64 */
} haul_sha_impl;

/* Choose the implementation for contexts initialised from now on.
 * Returns 0, or -1 if the CPU lacks it (selection unchanged).
 * Not thread-safe: call it before starting threads. */
int haul_sha256_select(haul_sha_impl impl);
const char *haul_sha256_impl_name(void);  /* selected: accel name or "portable" */
const char *haul_sha256_accel_name(void); /* "sha-ni", "armv8-sha2" or "none" */
int haul_sha256_cpu_has_accel(void);

void haul_sha256_init(haul_sha256_ctx *c);
void haul_sha256_update(haul_sha256_ctx *c, const void *data, size_t len);
void haul_sha256_final(haul_sha256_ctx *c, uint8_t out[HAUL_SHA256_LEN]);
void haul_sha256(const void *data, size_t len, uint8_t out[HAUL_SHA256_LEN]);

#endif
