#include "hmac_sha256.h"

#include <string.h>

void haul_hmac_sha256_init(haul_hmac_sha256_ctx *c, const void *key, size_t keylen)
{
    uint8_t k[HAUL_SHA256_BLOCK] = {0};
    uint8_t pad[HAUL_SHA256_BLOCK];

    /* Keys longer than a block are replaced by their hash. */
    if (keylen > HAUL_SHA256_BLOCK)
        haul_sha256(key, keylen, k);
    else if (keylen)
        memcpy(k, key, keylen);

    for (size_t i = 0; i < sizeof pad; i++)
        pad[i] = k[i] ^ 0x36;
    haul_sha256_init(&c->inner);
    haul_sha256_update(&c->inner, pad, sizeof pad);

    for (size_t i = 0; i < sizeof pad; i++)
        pad[i] = k[i] ^ 0x5c;
    haul_sha256_init(&c->outer);
    haul_sha256_update(&c->outer, pad, sizeof pad);
}

void haul_hmac_sha256_update(haul_hmac_sha256_ctx *c, const void *data, size_t len)
{
    haul_sha256_update(&c->inner, data, len);
}

void haul_hmac_sha256_final(haul_hmac_sha256_ctx *c, uint8_t out[HAUL_SHA256_LEN])
{
    uint8_t ih[HAUL_SHA256_LEN];
    haul_sha256_final(&c->inner, ih);
    haul_sha256_update(&c->outer, ih, sizeof ih);
    haul_sha256_final(&c->outer, out);
}

void haul_hmac_sha256(const void *key, size_t keylen, const void *data, size_t len,
                      uint8_t out[HAUL_SHA256_LEN])
{
    haul_hmac_sha256_ctx c;
    haul_hmac_sha256_init(&c, key, keylen);
    haul_hmac_sha256_update(&c, data, len);
    haul_hmac_sha256_final(&c, out);
}
