/* Content-defined chunking with a keyed gear hash (FastCDC-style normalised
 * cut points). The boundaries must match the TypeScript chunker bit for bit,
 * so this follows the "haul-gear-v1" spec exactly; see gear_chunker.c. */
#ifndef HAUL_GEAR_CHUNKER_H
#define HAUL_GEAR_CHUNKER_H

#include <stddef.h>
#include <stdint.h>

#define HAUL_GEAR_KEY_LEN 32
#define HAUL_GEAR_DEFAULT_MIN (256u * 1024)
#define HAUL_GEAR_DEFAULT_AVG (512u * 1024)
#define HAUL_GEAR_DEFAULT_MAX (4u * 1024 * 1024)
#define HAUL_GEAR_DEFAULT_NORMALIZATION 1u
#define HAUL_GEAR_MAX_NORMALIZATION 3u
#define HAUL_GEAR_MAX_MAX (1024u * 1024 * 1024) /* keeps 2*max far from overflow */

typedef struct {
    uint32_t table[256];
    size_t min, avg, max;
    uint32_t mask_s; /* stricter mask before avg: fewer early cuts */
    uint32_t mask_l; /* looser mask after avg: cut soon */
} haul_gear;

/* Derive the table from key and check the parameters: avg a power of two in
 * [4, 2^30], min <= avg <= max <= HAUL_GEAR_MAX_MAX, normalization (how many
 * bits stricter / looser the masks are before / after avg) at most
 * HAUL_GEAR_MAX_NORMALIZATION. Returns 0 or -1. */
int haul_gear_init(haul_gear *g, const uint8_t key[HAUL_GEAR_KEY_LEN],
                   size_t min, size_t avg, size_t max, unsigned normalization);

/* Length of the chunk starting at data[0]; n bytes are available and must be
 * >= max unless they run to the end of the input. */
size_t haul_gear_cut(const haul_gear *g, const uint8_t *data, size_t n);

/* Called once per chunk, in order; chunk points into the caller's buffer and
 * is valid only during the call. Return 0 to go on, a positive value to stop. */
typedef int (*haul_chunk_fn)(void *arg, const uint8_t *chunk, size_t len);

/* Bytes of buffer haul_gear_chunk_fd needs. */
size_t haul_gear_buffer_size(const haul_gear *g);

/* Read fd to its end through buf (at least haul_gear_buffer_size bytes),
 * calling fn for each chunk. Returns 0 at end of input, fn's positive value
 * if it stopped, or -errno on a read error / too small a buffer. */
int haul_gear_chunk_fd(const haul_gear *g, int fd, uint8_t *buf, size_t bufsize,
                       haul_chunk_fn fn, void *arg);

#endif
