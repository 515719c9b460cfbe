/* Hex encoding for command-line tools and self-test output. */
#ifndef HAUL_HEX_H
#define HAUL_HEX_H

#include <stddef.h>
#include <stdint.h>

/* Writes 2*n lowercase digits and a NUL to out. */
void haul_hex_encode(const uint8_t *in, size_t n, char *out);

/* Decodes exactly 2*n hex digits (either case) from a NUL-terminated string.
 * Returns 0, or -1 on a wrong length or a non-hex character. */
int haul_hex_decode(const char *in, uint8_t *out, size_t n);

#endif
