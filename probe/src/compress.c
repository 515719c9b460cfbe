#include "compress.h"

#include <stdlib.h>

#ifndef HAUL_NO_ZSTD
#define ZSTD_STATIC_LINKING_ONLY /* ZSTD_getCParams: in every zstd since 1.0 */
#include <zstd.h>

struct haul_compressor {
    ZSTD_CCtx *cctx;
    int level;
};

/* The match-finder tables of the high levels grow to tens of MiB (level 19:
 * about 28 MiB more than level 3). Capping their logs at 20 (4 MiB each at
 * most) keeps the probe's memory bounded at every level, at a small cost in
 * ratio for levels above about 11 only. */
#define HAUL_ZSTD_TABLE_LOG_MAX 20

int haul_compress_available(void) { return 1; }
const char *haul_compress_name(void) { return "zstd"; }

haul_compressor *haul_compressor_new(int level)
{
    haul_compressor *c = malloc(sizeof *c);
    if (!c)
        return NULL;
    c->cctx = ZSTD_createCCtx();
    if (!c->cctx) {
        free(c);
        return NULL;
    }
    c->level = level;
    /* Table sizes of this level for a large input; smaller inputs shrink them further. */
    ZSTD_compressionParameters cp = ZSTD_getCParams(level, 0, 0);
    size_t r = ZSTD_CCtx_setParameter(c->cctx, ZSTD_c_compressionLevel, level);
    if (!ZSTD_isError(r) && cp.hashLog > HAUL_ZSTD_TABLE_LOG_MAX)
        r = ZSTD_CCtx_setParameter(c->cctx, ZSTD_c_hashLog, HAUL_ZSTD_TABLE_LOG_MAX);
    if (!ZSTD_isError(r) && cp.chainLog > HAUL_ZSTD_TABLE_LOG_MAX)
        r = ZSTD_CCtx_setParameter(c->cctx, ZSTD_c_chainLog, HAUL_ZSTD_TABLE_LOG_MAX);
    if (ZSTD_isError(r)) {
        haul_compressor_free(c);
        return NULL;
    }
    return c;
}

void haul_compressor_free(haul_compressor *c)
{
    if (c) {
        ZSTD_freeCCtx(c->cctx);
        free(c);
    }
}

size_t haul_compress_bound(size_t n)
{
    return ZSTD_compressBound(n);
}

size_t haul_compress(haul_compressor *c, const void *src, size_t n, void *dst, size_t cap)
{
    /* One frame with the content size in its header, the level's parameters (tables
     * capped, see above), without a fresh context each time. */
    size_t r = ZSTD_compress2(c->cctx, dst, cap, src, n);
    return ZSTD_isError(r) ? 0 : r;
}

#else

int haul_compress_available(void) { return 0; }
const char *haul_compress_name(void) { return "no-zstd"; }
haul_compressor *haul_compressor_new(int level) { (void)level; return NULL; }
void haul_compressor_free(haul_compressor *c) { (void)c; }
size_t haul_compress_bound(size_t n) { (void)n; return 0; }

size_t haul_compress(haul_compressor *c, const void *src, size_t n, void *dst, size_t cap)
{
    (void)c; (void)src; (void)n; (void)dst; (void)cap;
    return 0;
}

#endif
