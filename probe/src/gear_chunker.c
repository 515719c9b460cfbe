#include "gear_chunker.h"
#include "hmac_sha256.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

/* uint32 with the top k bits set (0 <= k <= 32). */
static uint32_t top_bits(unsigned k)
{
    return k == 0 ? 0 : ~(uint32_t)0 << (32 - k);
}

int haul_gear_init(haul_gear *g, const uint8_t key[HAUL_GEAR_KEY_LEN],
                   size_t min, size_t avg, size_t max, unsigned normalization)
{
    unsigned bits = 0;
    while (bits < 31 && ((size_t)1 << bits) < avg)
        bits++;
    if (((size_t)1 << bits) != avg || bits < 2 || bits > 30)
        return -1;
    if (min > avg || avg > max || max > HAUL_GEAR_MAX_MAX ||
        normalization > HAUL_GEAR_MAX_NORMALIZATION)
        return -1;

    /* G = HMAC(K, "haul-gear-v1" || i) for i = 0..31, read as 256 LE uint32. */
    static const char label[] = "haul-gear-v1";
    uint8_t msg[sizeof label]; /* label without its NUL, plus the counter byte */
    uint8_t block[HAUL_SHA256_LEN];
    memcpy(msg, label, sizeof label - 1);
    for (unsigned i = 0; i < 32; i++) {
        msg[sizeof label - 1] = (uint8_t)i;
        haul_hmac_sha256(key, HAUL_GEAR_KEY_LEN, msg, sizeof msg, block);
        for (unsigned j = 0; j < 8; j++) {
            const uint8_t *b = block + 4 * j;
            g->table[8 * i + j] = (uint32_t)b[0] | (uint32_t)b[1] << 8 |
                                  (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
        }
    }
    g->min = min;
    g->avg = avg;
    g->max = max;
    /* Clamped to 0..32 bits: bits + normalization passes 32 only for avg near 2^30. */
    g->mask_s = top_bits(bits + normalization > 32 ? 32 : bits + normalization);
    g->mask_l = top_bits(bits > normalization ? bits - normalization : 0);
    return 0;
}

size_t haul_gear_cut(const haul_gear *g, const uint8_t *data, size_t n)
{
    if (n <= g->min)
        return n;
    if (n > g->max)
        n = g->max;
    size_t normal = g->avg < n ? g->avg : n;
    const uint32_t *G = g->table;
    uint32_t h = 0;
    size_t i = g->min; /* bytes before min can never end a chunk: skip them */
    for (; i < normal; i++) {
        h = (h << 1) + G[data[i]];
        if (!(h & g->mask_s))
            return i + 1;
    }
    for (; i < n; i++) {
        h = (h << 1) + G[data[i]];
        if (!(h & g->mask_l))
            return i + 1;
    }
    return n;
}

size_t haul_gear_buffer_size(const haul_gear *g)
{
    return 2 * g->max;
}

/* Read until buf is full or the input ends; returns bytes read or -errno. */
static ssize_t fill(int fd, uint8_t *buf, size_t want, int *eof)
{
    size_t got = 0;
    while (got < want) {
        ssize_t r = read(fd, buf + got, want - got);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (r == 0) {
            *eof = 1;
            break;
        }
        got += (size_t)r;
    }
    return (ssize_t)got;
}

int haul_gear_chunk_fd(const haul_gear *g, int fd, uint8_t *buf, size_t bufsize,
                       haul_chunk_fn fn, void *arg)
{
    if (bufsize < haul_gear_buffer_size(g))
        return -EINVAL;
    size_t start = 0, have = 0;
    int eof = 0;
    for (;;) {
        /* cut() needs max bytes in view; top up before running short. */
        if (!eof && have < g->max) {
            memmove(buf, buf + start, have);
            start = 0;
            ssize_t r = fill(fd, buf + have, bufsize - have, &eof);
            if (r < 0)
                return (int)r;
            have += (size_t)r;
        }
        if (have == 0)
            return 0;
        size_t len = haul_gear_cut(g, buf + start, have);
        int rc = fn(arg, buf + start, len);
        if (rc)
            return rc;
        start += len;
        have -= len;
    }
}
