/* zstd compression of whole chunks. Built with HAUL_NO_ZSTD (no static
 * libzstd for the target) every call reports "unavailable". */
#ifndef HAUL_COMPRESS_H
#define HAUL_COMPRESS_H

#include <stddef.h>

typedef struct haul_compressor haul_compressor;

int haul_compress_available(void);
const char *haul_compress_name(void); /* "zstd" or "no-zstd" */

/* A reusable context: allocating one per chunk would cost more than small
 * chunks take to compress. NULL when unavailable or out of memory. */
haul_compressor *haul_compressor_new(int level);
void haul_compressor_free(haul_compressor *c);

/* Worst-case output size for n input bytes (0 when unavailable). */
size_t haul_compress_bound(size_t n);

/* Compress src into dst; returns the compressed size, or 0 on error. */
size_t haul_compress(haul_compressor *c, const void *src, size_t n, void *dst, size_t cap);

#endif
