/* HMAC-SHA-256 (RFC 2104) on top of sha256.c. */
#ifndef HAUL_HMAC_SHA256_H
#define HAUL_HMAC_SHA256_H

#include "sha256.h"

typedef struct {
    haul_sha256_ctx inner;
    haul_sha256_ctx outer; /* already keyed, finished at final() */
} haul_hmac_sha256_ctx;

void haul_hmac_sha256_init(haul_hmac_sha256_ctx *c, const void *key, size_t keylen);
void haul_hmac_sha256_update(haul_hmac_sha256_ctx *c, const void *data, size_t len);
void haul_hmac_sha256_final(haul_hmac_sha256_ctx *c, uint8_t out[HAUL_SHA256_LEN]);
void haul_hmac_sha256(const void *key, size_t keylen, const void *data, size_t len,
                      uint8_t out[HAUL_SHA256_LEN]);

#endif
