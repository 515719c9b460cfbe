#include "compress.h"

#include <stdlib.h>

#ifndef HAUL_NO_ZSTD
#include <zstd.h>

struct haul_compressor {
    ZSTD_CCtx *cctx;
    int level;
};

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
    /* Same result as ZSTD_compress(level), without a fresh context each time. */
    size_t r = ZSTD_compressCCtx(c->cctx, dst, cap, src, n, c->level);
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
