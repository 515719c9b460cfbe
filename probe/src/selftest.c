/* --selftest: known-answer tests for every primitive, on every SHA-256 path
 * this CPU can run. One line per check; exit 0 only if all pass. */
#include "selftest.h"

#include "compress.h"
#include "gear_chunker.h"
#include "hex.h"
#include "hmac_sha256.h"
#include "sha256.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int failures;

static void report(const char *path, const char *name, int ok)
{
    printf("%s %s: %s\n", ok ? "pass" : "FAIL", path, name);
    if (!ok)
        failures++;
}

static int digest_is(const uint8_t d[HAUL_SHA256_LEN], const char *want)
{
    char hex[2 * HAUL_SHA256_LEN + 1];
    haul_hex_encode(d, HAUL_SHA256_LEN, hex);
    return strcmp(hex, want) == 0;
}

/* ---- SHA-256, FIPS 180-2 ---------------------------------------------- */

static const struct {
    const char *name;
    const char *msg;
    size_t repeat; /* msg is fed this many times */
    const char *want;
} sha_vectors[] = {
    {"sha256 \"abc\"", "abc", 1,
     "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
    {"sha256 448-bit message", "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", 1,
     "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"},
    {"sha256 one million 'a'", "a", 1000000,
     "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"},
    {"sha256 empty string", "", 1,
     "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
};

static void test_sha256(const char *path)
{
    for (size_t v = 0; v < sizeof sha_vectors / sizeof sha_vectors[0]; v++) {
        size_t mlen = strlen(sha_vectors[v].msg), total = mlen * sha_vectors[v].repeat;
        uint8_t *all = malloc(total + 1);
        if (!all) {
            report(path, "out of memory", 0);
            return;
        }
        for (size_t r = 0; r < sha_vectors[v].repeat; r++)
            memcpy(all + r * mlen, sha_vectors[v].msg, mlen);

        uint8_t one[HAUL_SHA256_LEN], inc[HAUL_SHA256_LEN];
        haul_sha256(all, total, one);

        /* Same message in uneven pieces, to cover the buffering in update(). */
        haul_sha256_ctx c;
        haul_sha256_init(&c);
        for (size_t off = 0, step = 1; off < total; step = step * 7 % 193 + 1) {
            size_t n = total - off < step ? total - off : step;
            haul_sha256_update(&c, all + off, n);
            off += n;
        }
        haul_sha256_final(&c, inc);
        free(all);

        char name[96];
        snprintf(name, sizeof name, "%s (one-shot)", sha_vectors[v].name);
        report(path, name, digest_is(one, sha_vectors[v].want));
        snprintf(name, sizeof name, "%s (incremental)", sha_vectors[v].name);
        report(path, name, digest_is(inc, sha_vectors[v].want));
    }
}

/* ---- HMAC-SHA-256, RFC 4231 ------------------------------------------- */

static void fill(uint8_t *p, size_t n, uint8_t v)
{
    memset(p, v, n);
}

static void test_hmac(const char *path)
{
    uint8_t key[131], data[160], out[HAUL_SHA256_LEN];
    static const char *t6 = "Test Using Larger Than Block-Size Key - Hash Key First";
    static const char *t7 = "This is a test using a larger than block-size key and a larger "
                            "than block-size data. The key needs to be hashed before being "
                            "used by the HMAC algorithm.";

    fill(key, 20, 0x0b);
    haul_hmac_sha256(key, 20, "Hi There", 8, out);
    report(path, "hmac-sha256 RFC 4231 case 1",
           digest_is(out, "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"));

    haul_hmac_sha256("Jefe", 4, "what do ya want for nothing?", 28, out);
    report(path, "hmac-sha256 RFC 4231 case 2",
           digest_is(out, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"));

    fill(key, 20, 0xaa);
    fill(data, 50, 0xdd);
    haul_hmac_sha256(key, 20, data, 50, out);
    report(path, "hmac-sha256 RFC 4231 case 3",
           digest_is(out, "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe"));

    for (int i = 0; i < 25; i++)
        key[i] = (uint8_t)(i + 1);
    fill(data, 50, 0xcd);
    haul_hmac_sha256(key, 25, data, 50, out);
    report(path, "hmac-sha256 RFC 4231 case 4",
           digest_is(out, "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b"));

    fill(key, 131, 0xaa);
    haul_hmac_sha256(key, 131, t6, strlen(t6), out);
    report(path, "hmac-sha256 RFC 4231 case 6",
           digest_is(out, "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"));

    haul_hmac_sha256(key, 131, t7, strlen(t7), out);
    report(path, "hmac-sha256 RFC 4231 case 7",
           digest_is(out, "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2"));
}

/* Both paths must agree on every length around the block and padding edges,
 * from unaligned addresses. */
static void test_paths_agree(const char *accel)
{
    uint8_t buf[1024 + 3], a[HAUL_SHA256_LEN], b[HAUL_SHA256_LEN];
    uint32_t x = 0x12345678;
    for (size_t i = 0; i < sizeof buf; i++) {
        x = x * 1103515245u + 12345u;
        buf[i] = (uint8_t)(x >> 24);
    }
    int ok = 1;
    for (size_t len = 0; len <= 1024 && ok; len++) {
        const uint8_t *p = buf + len % 4;
        haul_sha256_select(HAUL_SHA_ACCEL);
        haul_sha256(p, len, a);
        haul_sha256_select(HAUL_SHA_PORTABLE);
        haul_sha256(p, len, b);
        ok = memcmp(a, b, sizeof a) == 0;
    }
    char path[32];
    snprintf(path, sizeof path, "%s+portable", accel);
    report(path, "sha256 paths agree on lengths 0..1024", ok);
}

/* ---- gear chunker ------------------------------------------------------ */

/* Expected values come from an independent Python implementation of the spec. */
static const size_t gear_kat_lengths[] = {
    291, 519, 284, 258, 326, 265, 317, 259, 282, 268, 418, 260, 283, 276,
    387, 341, 266, 308, 305, 445, 276, 259, 319, 301, 321, 280, 78,
};
#define GEAR_KAT_BYTES 8192

struct collect {
    size_t count;
    size_t lengths[64];
    int ok;
};

static int collect_chunk(void *arg, const uint8_t *chunk, size_t len)
{
    struct collect *c = arg;
    (void)chunk;
    if (c->count >= sizeof c->lengths / sizeof c->lengths[0]) {
        c->ok = 0;
        return 1;
    }
    c->lengths[c->count++] = len;
    return 0;
}

static int lengths_match(const struct collect *c)
{
    const size_t n = sizeof gear_kat_lengths / sizeof gear_kat_lengths[0];
    if (!c->ok || c->count != n)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (c->lengths[i] != gear_kat_lengths[i])
            return 0;
    return 1;
}

static void test_gear(void)
{
    uint8_t key[HAUL_GEAR_KEY_LEN], raw[1024], d[HAUL_SHA256_LEN];
    for (int i = 0; i < HAUL_GEAR_KEY_LEN; i++)
        key[i] = (uint8_t)i;
    haul_gear g;

    report("gear", "rejects avg not a power of two", haul_gear_init(&g, key, 64, 300, 1024, 2) != 0);
    report("gear", "rejects min > avg", haul_gear_init(&g, key, 512, 256, 1024, 2) != 0);
    report("gear", "rejects normalization 4", haul_gear_init(&g, key, 64, 256, 1024, 4) != 0);
    report("gear", "masks of 1 MiB, normalization 2",
           haul_gear_init(&g, key, 256u << 10, 1u << 20, 4u << 20, 2) == 0 &&
               g.mask_s == 0xFFFFFC00u && g.mask_l == 0xFFFFC000u);
    report("gear", "default masks", haul_gear_init(&g, key, HAUL_GEAR_DEFAULT_MIN, HAUL_GEAR_DEFAULT_AVG,
                                                   HAUL_GEAR_DEFAULT_MAX, HAUL_GEAR_DEFAULT_NORMALIZATION) == 0 &&
                                        g.mask_s == 0xFFFFF000u && g.mask_l == 0xFFFFC000u);

    for (int i = 0; i < 256; i++)
        for (int b = 0; b < 4; b++)
            raw[4 * i + b] = (uint8_t)(g.table[i] >> (8 * b));
    haul_sha256(raw, sizeof raw, d);
    report("gear", "table from key 00..1f",
           digest_is(d, "a982fe956e9560d42c2b223f49f9bf47544dcb71a9131f826eb9a936a8ef7558"));

    /* Data: SHA-256("haul-kat" || le32(j)) for j = 0..255. */
    static uint8_t data[GEAR_KAT_BYTES];
    uint8_t msg[12] = "haul-kat";
    for (uint32_t j = 0; j < GEAR_KAT_BYTES / HAUL_SHA256_LEN; j++) {
        for (int b = 0; b < 4; b++)
            msg[8 + b] = (uint8_t)(j >> (8 * b));
        haul_sha256(msg, sizeof msg, data + HAUL_SHA256_LEN * j);
    }

    haul_gear_init(&g, key, 64, 256, 1024, 2);
    struct collect mem = {.ok = 1};
    for (size_t off = 0; off < sizeof data;) {
        size_t len = haul_gear_cut(&g, data + off, sizeof data - off);
        collect_chunk(&mem, data + off, len);
        off += len;
    }
    report("gear", "boundaries min=64 avg=256 max=1024 (in memory)", lengths_match(&mem));

    /* The same data through the fd streamer; 8 KiB fits a pipe's buffer. */
    struct collect fd = {.ok = 1};
    int p[2];
    int ok = pipe(p) == 0;
    if (ok) {
        ok = write(p[1], data, sizeof data) == (ssize_t)sizeof data;
        close(p[1]);
        uint8_t buf[2048];
        ok = ok && haul_gear_chunk_fd(&g, p[0], buf, sizeof buf, collect_chunk, &fd) == 0;
        close(p[0]);
    }
    report("gear", "boundaries min=64 avg=256 max=1024 (streamed from fd)", ok && lengths_match(&fd));

    /* Constant input never matches the mask: every chunk is max long. */
    static const uint8_t zeros[3000];
    size_t a = haul_gear_cut(&g, zeros, 3000), b = haul_gear_cut(&g, zeros, 952);
    report("gear", "zeros cut at max, tail kept whole", a == 1024 && b == 952);
}

/* ---- zstd -------------------------------------------------------------- */

static void test_compress(void)
{
    if (!haul_compress_available()) {
        printf("zstd: skipped: built without zstd\n");
        return;
    }
    static uint8_t src[65536];
    for (size_t i = 0; i < sizeof src; i++)
        src[i] = (uint8_t)("haul probe "[i % 11]);
    size_t cap = haul_compress_bound(sizeof src);
    uint8_t *dst = malloc(cap);
    haul_compressor *c = haul_compressor_new(3);
    size_t n = (dst && c) ? haul_compress(c, src, sizeof src, dst, cap) : 0;
    /* A zstd frame starts with the magic number 0xFD2FB528, little-endian. */
    int ok = n > 4 && n < sizeof src / 100 && dst[0] == 0x28 && dst[1] == 0xB5 &&
             dst[2] == 0x2F && dst[3] == 0xFD;
    report("zstd", "level 3 frame of repetitive 64 KiB", ok);
    haul_compressor_free(c);
    free(dst);
}

int haul_selftest_main(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    const char *accel = haul_sha256_accel_name();
    int have_accel = haul_sha256_select(HAUL_SHA_ACCEL) == 0;
    if (have_accel) {
        test_sha256(accel);
        test_hmac(accel);
    } else {
        printf("%s: skipped: no SHA extensions\n", accel);
    }
    haul_sha256_select(HAUL_SHA_PORTABLE);
    test_sha256("portable");
    test_hmac("portable");
    if (have_accel)
        test_paths_agree(accel);

    haul_sha256_select(HAUL_SHA_AUTO);
    test_gear();
    test_compress();

    printf("%s: %d failure%s\n", failures ? "FAILED" : "all passed", failures,
           failures == 1 ? "" : "s");
    return failures ? 1 : 0;
}
