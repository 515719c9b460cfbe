#include "tools.h"

#include "gear_chunker.h"
#include "hex.h"
#include "sha256.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Strict decimal parse: digits only, no sign, no overflow. */
static int parse_size(const char *s, size_t *out)
{
    if (!*s)
        return -1;
    size_t v = 0;
    for (; *s; s++) {
        if (*s < '0' || *s > '9' || v > (SIZE_MAX - 9) / 10)
            return -1;
        v = v * 10 + (size_t)(*s - '0');
    }
    *out = v;
    return 0;
}

/* ---- --chunk-boundaries KEYHEX MIN AVG MAX [NORMALIZATION] < file ------- */

struct listing {
    unsigned long long offset;
};

static int print_chunk(void *arg, const uint8_t *chunk, size_t len)
{
    struct listing *l = arg;
    uint8_t d[HAUL_SHA256_LEN];
    char hex[2 * HAUL_SHA256_LEN + 1];
    haul_sha256(chunk, len, d);
    haul_hex_encode(d, sizeof d, hex);
    printf("%llu %zu %s\n", l->offset, len, hex);
    l->offset += len;
    return 0;
}

int haul_chunk_boundaries_main(int argc, char **argv)
{
    uint8_t key[HAUL_GEAR_KEY_LEN];
    size_t min, avg, max, normalization = 2;
    haul_gear g;
    if ((argc != 5 && argc != 6) || haul_hex_decode(argv[1], key, sizeof key) != 0 ||
        parse_size(argv[2], &min) || parse_size(argv[3], &avg) || parse_size(argv[4], &max) ||
        (argc == 6 && parse_size(argv[5], &normalization))) {
        fprintf(stderr, "usage: haul-probe --chunk-boundaries KEYHEX(64 digits) MIN AVG MAX "
                        "[NORMALIZATION, default 2] < file\n");
        return 2;
    }
    if (normalization > HAUL_GEAR_MAX_NORMALIZATION ||
        haul_gear_init(&g, key, min, avg, max, (unsigned)normalization) != 0) {
        fprintf(stderr, "haul-probe: bad chunker parameters: need AVG a power of two in "
                        "[4, 2^30], MIN <= AVG <= MAX <= %u and NORMALIZATION <= %u\n",
                HAUL_GEAR_MAX_MAX, HAUL_GEAR_MAX_NORMALIZATION);
        return 2;
    }
    size_t bufsize = haul_gear_buffer_size(&g);
    uint8_t *buf = malloc(bufsize);
    if (!buf) {
        fprintf(stderr, "haul-probe: cannot allocate %zu bytes\n", bufsize);
        return 1;
    }
    struct listing l = {0};
    int rc = haul_gear_chunk_fd(&g, STDIN_FILENO, buf, bufsize, print_chunk, &l);
    free(buf);
    if (rc < 0) {
        fprintf(stderr, "haul-probe: reading stdin: %s\n", strerror(-rc));
        return 1;
    }
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, "haul-probe: writing stdout: %s\n", strerror(errno));
        return 1;
    }
    return 0;
}

/* ---- benchmarks --------------------------------------------------------- */

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* xorshift64*: cheap incompressible-looking filler. */
static void fill_random(uint8_t *p, size_t n, uint64_t seed)
{
    uint64_t x = seed | 1;
    for (size_t i = 0; i < n; i++) {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        p[i] = (uint8_t)((x * 0x2545F4914F6CDD1DULL) >> 56);
    }
}

static void print_rate(const char *what, size_t bytes, double secs)
{
    printf("%-28s %9.1f MB/s  (%zu MiB in %.3f s)\n", what, (double)bytes / secs / 1e6,
           bytes >> 20, secs);
}

/* Optional argument: MiB to process (default 1024). */
static int bench_size(int argc, char **argv, size_t *mib)
{
    *mib = 1024;
    if (argc > 2 || (argc == 2 && (parse_size(argv[1], mib) || *mib == 0))) {
        fprintf(stderr, "usage: haul-probe %s [MiB]\n", argv[0]);
        return -1;
    }
    return 0;
}

int haul_bench_sha_main(int argc, char **argv)
{
    size_t mib;
    if (bench_size(argc, argv, &mib))
        return 2;
    size_t total = mib << 20, piece = total < (64u << 20) ? total : (64u << 20);
    uint8_t *buf = malloc(piece);
    if (!buf) {
        fprintf(stderr, "haul-probe: out of memory\n");
        return 1;
    }
    fill_random(buf, piece, 1);

    static const haul_sha_impl paths[] = {HAUL_SHA_ACCEL, HAUL_SHA_PORTABLE};
    for (size_t p = 0; p < sizeof paths / sizeof paths[0]; p++) {
        char name[32];
        int ok = haul_sha256_select(paths[p]) == 0;
        snprintf(name, sizeof name, "sha256 %s",
                 paths[p] == HAUL_SHA_PORTABLE ? "portable" : haul_sha256_accel_name());
        if (!ok) {
            printf("%-28s skipped: no SHA extensions\n", name);
            continue;
        }
        uint8_t d[HAUL_SHA256_LEN];
        haul_sha256_ctx c;
        double t = now();
        haul_sha256_init(&c);
        for (size_t done = 0; done < total; done += piece)
            haul_sha256_update(&c, buf, total - done < piece ? total - done : piece);
        haul_sha256_final(&c, d);
        print_rate(name, total, now() - t);
    }
    haul_sha256_select(HAUL_SHA_AUTO);
    free(buf);
    return 0;
}

struct bench_acc {
    size_t chunks;
    int hash;
};

static int bench_chunk_cb(void *arg, const uint8_t *chunk, size_t len)
{
    struct bench_acc *a = arg;
    a->chunks++;
    if (a->hash) {
        uint8_t d[HAUL_SHA256_LEN];
        haul_sha256(chunk, len, d);
    }
    return 0;
}

/* Chunk an in-memory buffer, as the fd streamer would, with default sizes. */
static size_t chunk_buffer(const haul_gear *g, const uint8_t *p, size_t n, struct bench_acc *a)
{
    for (size_t off = 0; off < n;) {
        size_t len = haul_gear_cut(g, p + off, n - off);
        bench_chunk_cb(a, p + off, len);
        off += len;
    }
    return a->chunks;
}

int haul_bench_chunk_main(int argc, char **argv)
{
    size_t mib;
    if (bench_size(argc, argv, &mib))
        return 2;
    size_t total = mib << 20, piece = total < (256u << 20) ? total : (256u << 20);
    uint8_t key[HAUL_GEAR_KEY_LEN] = {1, 2, 3};
    haul_gear g;
    haul_gear_init(&g, key, HAUL_GEAR_DEFAULT_MIN, HAUL_GEAR_DEFAULT_AVG, HAUL_GEAR_DEFAULT_MAX,
                   HAUL_GEAR_DEFAULT_NORMALIZATION);
    uint8_t *buf = malloc(piece);
    if (!buf) {
        fprintf(stderr, "haul-probe: out of memory\n");
        return 1;
    }
    fill_random(buf, piece, 7);

    for (int hash = 0; hash <= 1; hash++) {
        struct bench_acc a = {0, hash};
        double t = now();
        for (size_t done = 0; done < total; done += piece)
            chunk_buffer(&g, buf, total - done < piece ? total - done : piece, &a);
        double secs = now() - t;
        char what[64];
        snprintf(what, sizeof what, hash ? "gear cut + sha256 %s" : "gear cut",
                 haul_sha256_impl_name());
        print_rate(what, total, secs);
        if (!hash)
            printf("%-28s %zu chunks, mean %.0f KiB (min/avg/max %zuK/%zuK/%zuK, normalization %u)\n",
                   "", a.chunks, (double)total / (double)a.chunks / 1024, g.min >> 10, g.avg >> 10,
                   g.max >> 10, HAUL_GEAR_DEFAULT_NORMALIZATION);
    }
    free(buf);
    return 0;
}
