/* zstd decompression of whole chunks for the restore session. Built with
 * HAUL_NO_ZSTD every call fails (HELLO then tells the server not to send
 * compressed data). */
#ifndef HAUL_DECOMPRESS_H
#define HAUL_DECOMPRESS_H

#include <stddef.h>

/* Decompresses src (n bytes) into dst only if it is exactly one zstd frame that
 * declares its content size, and that size is exactly raw: never more than raw
 * bytes are produced. Returns 0, or -1 for anything else (damaged, several
 * frames, no or another declared size, out of memory). */
int haul_decompress_exact(const void *src, size_t n, void *dst, size_t raw);

#endif
