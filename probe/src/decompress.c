#include "decompress.h"

#ifndef HAUL_NO_ZSTD
#include <zstd.h>

int haul_decompress_exact(const void *src, size_t n, void *dst, size_t raw)
{
    /* One context for the whole session: creating one per chunk costs more than small chunks. */
    static ZSTD_DCtx *dctx;
    if (!dctx && !(dctx = ZSTD_createDCtx()))
        return -1;
    if (ZSTD_findFrameCompressedSize(src, n) != n)
        return -1;
    unsigned long long declared = ZSTD_getFrameContentSize(src, n);
    if (declared == ZSTD_CONTENTSIZE_UNKNOWN || declared == ZSTD_CONTENTSIZE_ERROR || declared != raw)
        return -1;
    size_t r = ZSTD_decompressDCtx(dctx, dst, raw, src, n);
    return !ZSTD_isError(r) && r == raw ? 0 : -1;
}

#else

int haul_decompress_exact(const void *src, size_t n, void *dst, size_t raw)
{
    (void)src; (void)n; (void)dst; (void)raw;
    return -1;
}

#endif
