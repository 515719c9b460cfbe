#include "sha256.h"

#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#define HAUL_X86 1
#include <cpuid.h>
#include <immintrin.h>
#elif defined(__aarch64__)
#define HAUL_ARM64 1
#include <arm_neon.h>
#include <sys/auxv.h>
#endif

static const uint32_t K[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

static const uint32_t H0[8] = {
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
};

static uint32_t load_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

static void store_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* ---- portable path ---------------------------------------------------- */

#define ROTR(x, n) (((x) >> (n)) | ((x) << (32 - (n))))
#define CH(x, y, z) ((z) ^ ((x) & ((y) ^ (z))))
#define MAJ(x, y, z) (((x) & (y)) | ((z) & ((x) | (y))))
#define BSIG0(x) (ROTR(x, 2) ^ ROTR(x, 13) ^ ROTR(x, 22))
#define BSIG1(x) (ROTR(x, 6) ^ ROTR(x, 11) ^ ROTR(x, 25))
#define SSIG0(x) (ROTR(x, 7) ^ ROTR(x, 18) ^ ((x) >> 3))
#define SSIG1(x) (ROTR(x, 17) ^ ROTR(x, 19) ^ ((x) >> 10))

/* One round; the caller rotates the variable names instead of moving values. */
#define RND(a, b, c, d, e, f, g, h, i)                                    \
    do {                                                                  \
        uint32_t t1_ = h + BSIG1(e) + CH(e, f, g) + K[i] + w[i];          \
        d += t1_;                                                         \
        h = t1_ + BSIG0(a) + MAJ(a, b, c);                                \
    } while (0)

static void blocks_portable(uint32_t st[8], const uint8_t *p, size_t nblocks)
{
    uint32_t w[64];
    while (nblocks--) {
        for (int i = 0; i < 16; i++)
            w[i] = load_be32(p + 4 * i);
        for (int i = 16; i < 64; i++)
            w[i] = SSIG1(w[i - 2]) + w[i - 7] + SSIG0(w[i - 15]) + w[i - 16];
        uint32_t a = st[0], b = st[1], c = st[2], d = st[3];
        uint32_t e = st[4], f = st[5], g = st[6], h = st[7];
        for (int i = 0; i < 64; i += 8) {
            RND(a, b, c, d, e, f, g, h, i);
            RND(h, a, b, c, d, e, f, g, i + 1);
            RND(g, h, a, b, c, d, e, f, i + 2);
            RND(f, g, h, a, b, c, d, e, i + 3);
            RND(e, f, g, h, a, b, c, d, i + 4);
            RND(d, e, f, g, h, a, b, c, i + 5);
            RND(c, d, e, f, g, h, a, b, i + 6);
            RND(b, c, d, e, f, g, h, a, i + 7);
        }
        st[0] += a; st[1] += b; st[2] += c; st[3] += d;
        st[4] += e; st[5] += f; st[6] += g; st[7] += h;
        p += HAUL_SHA256_BLOCK;
    }
}

/* ---- x86 SHA extensions path ----------------------------------------- */

#ifdef HAUL_X86
/* Message schedule for the next 4 words: w0 holds W[t-16..t-13] on entry,
 * w1 W[t-12..], w2 W[t-8..], w3 W[t-4..]; w0 holds W[t..t+3] after. */
#define NI_SCHED(w0, w1, w2, w3)                                                       \
    w0 = _mm_sha256msg2_epu32(                                                         \
        _mm_add_epi32(_mm_sha256msg1_epu32(w0, w1), _mm_alignr_epi8(w3, w2, 4)), w3)

/* Four rounds: rnds2 does two rounds using the low two words of the message. */
#define NI_RNDS(w, g)                                                                  \
    do {                                                                               \
        __m128i m_ = _mm_add_epi32(w, _mm_loadu_si128((const __m128i *)&K[4 * (g)])); \
        s1 = _mm_sha256rnds2_epu32(s1, s0, m_);                                        \
        m_ = _mm_shuffle_epi32(m_, 0x0E);                                              \
        s0 = _mm_sha256rnds2_epu32(s0, s1, m_);                                        \
    } while (0)

#define NI_LOAD(w, off) w = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(p + (off))), bswap)

__attribute__((target("sha,sse4.1")))
static void blocks_shani(uint32_t st[8], const uint8_t *p, size_t nblocks)
{
    const __m128i bswap = _mm_set_epi64x(0x0c0d0e0f08090a0bULL, 0x0405060700010203ULL);
    __m128i m0, m1, m2, m3;

    /* The instructions want the state as ABEF / CDGH word pairs. */
    __m128i t = _mm_shuffle_epi32(_mm_loadu_si128((const __m128i *)&st[0]), 0xB1); /* CDAB */
    __m128i s1 = _mm_shuffle_epi32(_mm_loadu_si128((const __m128i *)&st[4]), 0x1B); /* EFGH */
    __m128i s0 = _mm_alignr_epi8(t, s1, 8);                                          /* ABEF */
    s1 = _mm_blend_epi16(s1, t, 0xF0);                                               /* CDGH */

    while (nblocks--) {
        const __m128i save0 = s0, save1 = s1;
        NI_LOAD(m0, 0);  NI_RNDS(m0, 0);
        NI_LOAD(m1, 16); NI_RNDS(m1, 1);
        NI_LOAD(m2, 32); NI_RNDS(m2, 2);
        NI_LOAD(m3, 48); NI_RNDS(m3, 3);
        for (int g = 4; g < 16; g += 4) {
            NI_SCHED(m0, m1, m2, m3); NI_RNDS(m0, g);
            NI_SCHED(m1, m2, m3, m0); NI_RNDS(m1, g + 1);
            NI_SCHED(m2, m3, m0, m1); NI_RNDS(m2, g + 2);
            NI_SCHED(m3, m0, m1, m2); NI_RNDS(m3, g + 3);
        }
        s0 = _mm_add_epi32(s0, save0);
        s1 = _mm_add_epi32(s1, save1);
        p += HAUL_SHA256_BLOCK;
    }

    t = _mm_shuffle_epi32(s0, 0x1B);             /* FEBA */
    s1 = _mm_shuffle_epi32(s1, 0xB1);            /* DCHG */
    s0 = _mm_blend_epi16(t, s1, 0xF0);           /* DCBA */
    s1 = _mm_alignr_epi8(s1, t, 8);              /* HGFE */
    _mm_storeu_si128((__m128i *)&st[0], s0);
    _mm_storeu_si128((__m128i *)&st[4], s1);
}
#endif

/* ---- ARMv8 SHA2 extensions path -------------------------------------- */

#ifdef HAUL_ARM64
/* Same schedule as the x86 path: w0 becomes W[t..t+3] from the previous 16 words. */
#define A8_SCHED(w0, w1, w2, w3) w0 = vsha256su1q_u32(vsha256su0q_u32(w0, w1), w2, w3)

#define A8_RNDS(w, g)                                         \
    do {                                                      \
        uint32x4_t m_ = vaddq_u32(w, vld1q_u32(&K[4 * (g)])); \
        uint32x4_t abcd_ = s0;                                \
        s0 = vsha256hq_u32(s0, s1, m_);                       \
        s1 = vsha256h2q_u32(s1, abcd_, m_);                   \
    } while (0)

#define A8_LOAD(w, off) w = vreinterpretq_u32_u8(vrev32q_u8(vld1q_u8(p + (off))))

__attribute__((target("+crypto")))
static void blocks_armv8(uint32_t st[8], const uint8_t *p, size_t nblocks)
{
    uint32x4_t s0 = vld1q_u32(&st[0]), s1 = vld1q_u32(&st[4]); /* ABCD, EFGH */
    uint32x4_t m0, m1, m2, m3;
    while (nblocks--) {
        const uint32x4_t save0 = s0, save1 = s1;
        A8_LOAD(m0, 0);  A8_RNDS(m0, 0);
        A8_LOAD(m1, 16); A8_RNDS(m1, 1);
        A8_LOAD(m2, 32); A8_RNDS(m2, 2);
        A8_LOAD(m3, 48); A8_RNDS(m3, 3);
        for (int g = 4; g < 16; g += 4) {
            A8_SCHED(m0, m1, m2, m3); A8_RNDS(m0, g);
            A8_SCHED(m1, m2, m3, m0); A8_RNDS(m1, g + 1);
            A8_SCHED(m2, m3, m0, m1); A8_RNDS(m2, g + 2);
            A8_SCHED(m3, m0, m1, m2); A8_RNDS(m3, g + 3);
        }
        s0 = vaddq_u32(s0, save0);
        s1 = vaddq_u32(s1, save1);
        p += HAUL_SHA256_BLOCK;
    }
    vst1q_u32(&st[0], s0);
    vst1q_u32(&st[4], s1);
}
#endif

/* ---- selection -------------------------------------------------------- */

#if defined(HAUL_X86)
#define ACCEL_NAME "sha-ni"
#define ACCEL_BLOCKS blocks_shani
#elif defined(HAUL_ARM64)
#define ACCEL_NAME "armv8-sha2"
#define ACCEL_BLOCKS blocks_armv8
#else
#define ACCEL_NAME "none"
#endif

int haul_sha256_cpu_has_accel(void)
{
#if defined(HAUL_X86)
    /* Read cpuid directly: older compilers' __builtin_cpu_supports has no "sha". */
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d))
        return 0;
    if (!(c & bit_SSSE3) || !(c & bit_SSE4_1))
        return 0;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d))
        return 0;
    return (b >> 29) & 1;
#elif defined(HAUL_ARM64)
    return (getauxval(AT_HWCAP) & (1ul << 6)) != 0; /* HWCAP_SHA2 */
#else
    return 0;
#endif
}

const char *haul_sha256_accel_name(void)
{
    return ACCEL_NAME;
}

static haul_sha256_blocks_fn active; /* NULL until first use */

int haul_sha256_select(haul_sha_impl impl)
{
    switch (impl) {
    case HAUL_SHA_PORTABLE:
        active = blocks_portable;
        return 0;
    case HAUL_SHA_ACCEL:
#ifdef ACCEL_BLOCKS
        if (haul_sha256_cpu_has_accel()) {
            active = ACCEL_BLOCKS;
            return 0;
        }
#endif
        return -1;
    case HAUL_SHA_AUTO:
    default: {
        const char *env = getenv("HAUL_PROBE_SHA");
        if ((env && strcmp(env, "portable") == 0) || haul_sha256_select(HAUL_SHA_ACCEL) != 0)
            active = blocks_portable;
        return 0;
    }
    }
}

static haul_sha256_blocks_fn current(void)
{
    if (!active)
        haul_sha256_select(HAUL_SHA_AUTO);
    return active;
}

const char *haul_sha256_impl_name(void)
{
    return current() == blocks_portable ? "portable" : ACCEL_NAME;
}

/* ---- incremental API -------------------------------------------------- */

void haul_sha256_init(haul_sha256_ctx *c)
{
    memcpy(c->state, H0, sizeof H0);
    c->total = 0;
    c->buflen = 0;
    c->blocks = current();
}

void haul_sha256_update(haul_sha256_ctx *c, const void *data, size_t len)
{
    const uint8_t *p = data;
    c->total += len;
    if (c->buflen) {
        size_t take = HAUL_SHA256_BLOCK - c->buflen;
        if (take > len)
            take = len;
        memcpy(c->buf + c->buflen, p, take);
        c->buflen += take;
        p += take;
        len -= take;
        if (c->buflen < HAUL_SHA256_BLOCK)
            return;
        c->blocks(c->state, c->buf, 1);
        c->buflen = 0;
    }
    if (len >= HAUL_SHA256_BLOCK) {
        size_t n = len / HAUL_SHA256_BLOCK;
        c->blocks(c->state, p, n);
        p += n * HAUL_SHA256_BLOCK;
        len -= n * HAUL_SHA256_BLOCK;
    }
    if (len) {
        memcpy(c->buf, p, len);
        c->buflen = len;
    }
}

void haul_sha256_final(haul_sha256_ctx *c, uint8_t out[HAUL_SHA256_LEN])
{
    uint64_t bits = c->total * 8;
    size_t n = c->buflen;
    c->buf[n++] = 0x80;
    if (n > HAUL_SHA256_BLOCK - 8) {
        memset(c->buf + n, 0, HAUL_SHA256_BLOCK - n);
        c->blocks(c->state, c->buf, 1);
        n = 0;
    }
    memset(c->buf + n, 0, HAUL_SHA256_BLOCK - 8 - n);
    store_be32(c->buf + 56, (uint32_t)(bits >> 32));
    store_be32(c->buf + 60, (uint32_t)bits);
    c->blocks(c->state, c->buf, 1);
    for (int i = 0; i < 8; i++)
        store_be32(out + 4 * i, c->state[i]);
    memset(c, 0, sizeof *c);
}

void haul_sha256(const void *data, size_t len, uint8_t out[HAUL_SHA256_LEN])
{
    haul_sha256_ctx c;
    haul_sha256_init(&c);
    haul_sha256_update(&c, data, len);
    haul_sha256_final(&c, out);
}
