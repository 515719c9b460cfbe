#define _GNU_SOURCE
#include "backup.h"

#include "compress.h"
#include "gear_chunker.h"
#include "hmac_sha256.h"
#include "protocol.h"
#include "session.h"
#include "sha256.h"
#include "walk.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define OUT_BUFFER (1u << 20)
#define IN_BUFFER (256u << 10)
/* sshd writes into our stdin pipe 64 KiB at a time by default, and buffers what it cannot write
 * yet: for the 1.4 MiB of PREVIOUS/KNOWN of 60,000 files it spent 70-120 ms growing and compacting
 * that buffer. A 1 MiB pipe (the unprivileged maximum) lets it hand the data over at once. */
#define IN_PIPE (1u << 20)
#define MAX_ZSTD_LEVEL 22
#define MIN_COMPRESS 64              /* smaller chunks are sent raw */
#define MAX_PREVIOUS (1u << 26)      /* records: 1.5 GiB of table at 24 bytes each */
#define MAX_KNOWN (1u << 27)         /* fingerprints: 1 GiB */
#define PREVIOUS_PER_FRAME 65536u
#define PREVIOUS_RECORD 16u
/* UNCHANGED references held back while their directories may still collapse
 * into one (256 KiB); beyond that they are sent and the directories in full. */
#define HELD_REFS_MAX (1u << 16)
#define NEED_MAX_BODY (4 + 2 + HAUL_MAX_PATH + 8 + 4 + HAUL_SHA256_LEN)
#define FLUSH_AFTER_MS 100
/* Chunks sent in this run, remembered for CHUNK_REPEAT: 2^19 slots of 8 bytes
 * (4 MiB, whatever the data), in buckets of 4. A full bucket forgets its
 * oldest entry, which costs at most a second copy of that chunk on the wire. */
#define SENT_SLOTS (1u << 19)
#define SENT_WAYS 4u

enum { KIND_FILE = 1, KIND_DIR, KIND_SYMLINK, KIND_FIFO, KIND_CHR, KIND_BLK, KIND_SOCK };
enum { FLAG_ANCESTOR = 2 };

/* A PREVIOUS record: the path hash, the digest of (kind, size or entry count,
 * mtime, ctime, inode), and its number, which UNCHANGED sends back. A digest
 * collision would only make the probe claim "unchanged" for a changed entry:
 * the client's own data, which it could send wrong anyway. */
typedef struct {
    uint64_t path_hash;
    uint64_t meta;
    uint32_t index;
} prev_rec;

/* A directory being walked. While "held", nothing of it has been sent: if
 * every entry in it turns out unchanged and the count and metadata match its
 * PREVIOUS record, one UNCHANGED replaces it all. Held directories are always
 * the innermost ones; their references wait in session.refs, outermost first. */
typedef struct {
    struct stat st;
    size_t plen;      /* its path is session.dirpath[0..plen) */
    uint32_t count;   /* entries seen in it */
    size_t refs_from; /* its references start at session.refs[refs_from] */
    int held;
} dir_level;

typedef struct {
    haul_out out;
    haul_in in;

    haul_gear gear;
    uint8_t key[HAUL_GEAR_KEY_LEN];
    haul_hmac_sha256_ctx fp_keyed; /* HMAC state after the key: copied per chunk */
    haul_compressor *cz;
    uint8_t *zbuf;
    uint8_t *chunkbuf;
    size_t chunkbuf_size;

    int one_fs;
    char **paths;
    size_t npaths;
    char **excludes;
    size_t nexcludes;

    prev_rec *prev;
    size_t nprev;
    uint64_t *known;
    size_t nknown;

    /* Per slot: the fingerprint's high 32 bits, and 1 + the chunk's number
     * among this walk's CHUNK_NEW frames (0: empty). A tag can match a
     * different chunk; the server then sees a SHA-256 that is not the one of
     * the chunk named and asks for the bytes with NEED. */
    uint64_t *sent;
    uint32_t nsent;

    dir_level *levels;
    size_t nlevels, levels_cap;
    uint32_t *refs;
    size_t nrefs;
    char dirpath[HAUL_MAX_PATH + 1];

    uint64_t entries, bytes_read;
    uint64_t file_bytes; /* of the file being chunked */
    unsigned ticks;      /* of the walk, between looks at stdin */
} session;

static void protocol_error(const char *fmt, const char *what)
{
    haul_fatal(HAUL_EXIT_PROTOCOL, fmt, what);
}

static int64_t ts_ns(const struct timespec *ts)
{
    /* Saturates far beyond year 2262 instead of overflowing. */
    if (ts->tv_sec > INT64_MAX / 1000000000 - 1)
        return INT64_MAX;
    if (ts->tv_sec < INT64_MIN / 1000000000 + 1)
        return INT64_MIN;
    return (int64_t)ts->tv_sec * 1000000000 + ts->tv_nsec;
}

static uint64_t first_u64(const uint8_t d[HAUL_SHA256_LEN])
{
    return haul_get_u64le(d);
}

static uint64_t path_hash(const char *path, size_t len)
{
    uint8_t d[HAUL_SHA256_LEN];
    haul_sha256(path, len, d);
    return first_u64(d);
}

static uint64_t meta_digest(int kind, uint64_t size, int64_t mtime, int64_t ctime, uint64_t inode)
{
    uint8_t b[33], d[HAUL_SHA256_LEN];
    uint8_t *p = haul_put_u8(b, (uint8_t)kind);
    p = haul_put_u64(p, size);
    p = haul_put_u64(p, (uint64_t)mtime);
    p = haul_put_u64(p, (uint64_t)ctime);
    haul_put_u64(p, inode);
    haul_sha256(b, sizeof b, d);
    return first_u64(d);
}

static int prev_cmp(const void *a, const void *b)
{
    const prev_rec *x = a, *y = b;
    if (x->path_hash != y->path_hash)
        return x->path_hash < y->path_hash ? -1 : 1;
    return x->meta < y->meta ? -1 : x->meta > y->meta;
}

static int prev_less(const prev_rec *x, const prev_rec *y)
{
    return x->path_hash != y->path_hash ? x->path_hash < y->path_hash : x->meta < y->meta;
}

static void prev_swap(prev_rec *a, prev_rec *b)
{
    prev_rec t = *a;
    *a = *b;
    *b = t;
}

static void prev_sift_down(prev_rec *r, size_t i, size_t n)
{
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n)
            return;
        if (c + 1 < n && prev_less(&r[c], &r[c + 1]))
            c++;
        if (!prev_less(&r[i], &r[c]))
            return;
        prev_swap(&r[i], &r[c]);
        i = c;
    }
}

/* Sorts PREVIOUS records by (path hash, metadata digest), in place. musl's qsort (smoothsort
 * through a comparison callback) took 20-90 ms for 60,000 records, on the critical path of
 * every backup; this quicksort with an inlined comparison takes ~5 ms. Heapsort past a depth
 * limit keeps the worst case O(n log n) whatever order the records come in. */
static void sort_previous(prev_rec *r, size_t n, unsigned depth)
{
    while (n > 16) {
        if (depth-- == 0) {
            for (size_t i = n / 2; i-- > 0;)
                prev_sift_down(r, i, n);
            for (size_t k = n; k-- > 1;) {
                prev_swap(&r[0], &r[k]);
                prev_sift_down(r, 0, k);
            }
            return;
        }
        prev_rec *a = &r[0], *m = &r[n / 2], *z = &r[n - 1];
        if (prev_less(m, a))
            prev_swap(m, a);
        if (prev_less(z, m)) {
            prev_swap(z, m);
            if (prev_less(m, a))
                prev_swap(m, a);
        }
        prev_rec pivot = *m;
        size_t i = 0, j = n - 1;
        for (;;) {
            while (prev_less(&r[i], &pivot))
                i++;
            while (prev_less(&pivot, &r[j]))
                j--;
            if (i >= j)
                break;
            prev_swap(&r[i], &r[j]);
            i++;
            j--;
        }
        /* r[0..j] <= pivot <= r[j+1..n): recurse into the smaller part, loop on the larger. */
        size_t left = j + 1;
        if (left < n - left) {
            sort_previous(r, left, depth);
            r += left;
            n -= left;
        } else {
            sort_previous(r + left, n - left, depth);
            n = left;
        }
    }
    for (size_t i = 1; i < n; i++) {
        prev_rec t = r[i];
        size_t j = i;
        while (j > 0 && prev_less(&t, &r[j - 1])) {
            r[j] = r[j - 1];
            j--;
        }
        r[j] = t;
    }
}

/* The number of the PREVIOUS record with this path and metadata, or -1. */
static int64_t previous_index(const session *s, const char *path, size_t len, int kind,
                              uint64_t size, const struct stat *st)
{
    if (s->nprev == 0)
        return -1;
    prev_rec want = {path_hash(path, len),
                     meta_digest(kind, size, ts_ns(&st->st_mtim), ts_ns(&st->st_ctim),
                                 (uint64_t)st->st_ino), 0};
    const prev_rec *r = bsearch(&want, s->prev, s->nprev, sizeof want, prev_cmp);
    return r ? (int64_t)r->index : -1;
}

/* Whether any PREVIOUS record has this path: a directory worth holding back. */
static int previous_path(const session *s, const char *path, size_t len)
{
    uint64_t h = path_hash(path, len);
    size_t lo = 0, hi = s->nprev;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (s->prev[mid].path_hash < h)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < s->nprev && s->prev[lo].path_hash == h;
}

static int known(const session *s, uint64_t fp)
{
    size_t lo = 0, hi = s->nknown;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (s->known[mid] < fp)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < s->nknown && s->known[lo] == fp;
}

/* The number of the CHUNK_NEW this run sent with fingerprint fp, or -1. */
static int64_t sent_earlier(const session *s, uint64_t fp)
{
    const uint64_t *b = s->sent + ((uint32_t)fp & (SENT_SLOTS - 1) & ~(SENT_WAYS - 1));
    uint32_t tag = (uint32_t)(fp >> 32);
    for (unsigned i = 0; i < SENT_WAYS; i++)
        if (b[i] && (uint32_t)(b[i] >> 32) == tag)
            return (int64_t)(uint32_t)b[i] - 1;
    return -1;
}

static void remember_sent(session *s, uint64_t fp)
{
    if (s->nsent == UINT32_MAX - 1)
        return; /* numbers must fit the frame; later chunks are simply sent again */
    uint64_t *b = s->sent + ((uint32_t)fp & (SENT_SLOTS - 1) & ~(SENT_WAYS - 1));
    unsigned way = 0;
    while (way < SENT_WAYS && b[way])
        way++;
    if (way == SENT_WAYS) {
        /* Full: the oldest entry (the lowest chunk number) goes. */
        way = 0;
        for (unsigned i = 1; i < SENT_WAYS; i++)
            if ((uint32_t)b[i] < (uint32_t)b[way])
                way = i;
    }
    b[way] = (uint64_t)(fp >> 32) << 32 | (s->nsent + 1u);
    s->nsent++;
}

/* ---- frames to the server ---------------------------------------------- */

static void release_held(session *s);

static void send_warn(session *s, const char *path, size_t plen, int err, const char *msg)
{
    release_held(s);
    haul_send_warn(&s->out, path, plen, err, msg);
}

static uint32_t clamp_u32(uint64_t v)
{
    return v > UINT32_MAX ? UINT32_MAX : (uint32_t)v;
}

static int kind_of(mode_t m)
{
    if (S_ISREG(m)) return KIND_FILE;
    if (S_ISDIR(m)) return KIND_DIR;
    if (S_ISLNK(m)) return KIND_SYMLINK;
    if (S_ISFIFO(m)) return KIND_FIFO;
    if (S_ISCHR(m)) return KIND_CHR;
    if (S_ISBLK(m)) return KIND_BLK;
    if (S_ISSOCK(m)) return KIND_SOCK;
    return 0;
}

static void write_entry(session *s, int kind, unsigned flags, const char *path, size_t plen,
                        const struct stat *st, const char *target, size_t tlen)
{
    size_t body = 1 + 1 + 2 + plen + 4 + 4 + 4 + 8 + 8 + 8 + 8 + 8 + 4 + 8 + 2 + tlen;
    uint8_t *p = haul_out_frame(&s->out, HAUL_MSG_ENTRY, body, body);
    p = haul_put_u8(p, (uint8_t)kind);
    p = haul_put_u8(p, (uint8_t)flags);
    p = haul_put_bytes16(p, path, plen);
    p = haul_put_u32(p, (uint32_t)st->st_mode);
    p = haul_put_u32(p, (uint32_t)st->st_uid);
    p = haul_put_u32(p, (uint32_t)st->st_gid);
    p = haul_put_u64(p, (uint64_t)st->st_size);
    p = haul_put_u64(p, (uint64_t)ts_ns(&st->st_mtim));
    p = haul_put_u64(p, (uint64_t)ts_ns(&st->st_ctim));
    p = haul_put_u64(p, (uint64_t)st->st_ino);
    p = haul_put_u64(p, (uint64_t)st->st_dev);
    p = haul_put_u32(p, clamp_u32((uint64_t)st->st_nlink));
    p = haul_put_u64(p, (uint64_t)st->st_rdev);
    haul_put_bytes16(p, target, tlen);
    haul_out_commit(&s->out, body);
    s->entries++;
}

static void write_unchanged(session *s, uint32_t index)
{
    uint8_t *p = haul_out_frame(&s->out, HAUL_MSG_UNCHANGED, 4, 4);
    haul_put_u32(p, index);
    haul_out_commit(&s->out, 4);
    s->entries++;
}

/* Something in the held directories differs: send them after all, in full
 * (ENTRY, then the references held for it), outermost first. */
static void release_held(session *s)
{
    for (size_t i = 0; i < s->nlevels; i++) {
        dir_level *l = &s->levels[i];
        if (!l->held)
            continue;
        write_entry(s, KIND_DIR, 0, s->dirpath, l->plen, &l->st, NULL, 0);
        size_t end = i + 1 < s->nlevels ? s->levels[i + 1].refs_from : s->nrefs;
        for (size_t k = l->refs_from; k < end; k++)
            write_unchanged(s, s->refs[k]);
        l->held = 0;
    }
    s->nrefs = 0;
}

static void send_entry(session *s, int kind, unsigned flags, const char *path, size_t plen,
                       const struct stat *st, const char *target, size_t tlen)
{
    release_held(s);
    write_entry(s, kind, flags, path, plen, st, target, tlen);
}

/* An unchanged file or directory: held back with its directory, or sent. */
static void send_unchanged(session *s, uint32_t index)
{
    if (s->nlevels > 0 && s->levels[s->nlevels - 1].held) {
        if (s->nrefs < HELD_REFS_MAX) {
            s->refs[s->nrefs++] = index;
            return;
        }
        release_held(s);
    }
    write_unchanged(s, index);
}

static void send_file_end(session *s, uint64_t bytes, int status, int err)
{
    uint8_t *p = haul_out_frame(&s->out, HAUL_MSG_FILE_END, 13, 13);
    p = haul_put_u64(p, bytes);
    p = haul_put_u8(p, (uint8_t)status);
    haul_put_u32(p, (uint32_t)err);
    haul_out_commit(&s->out, 13);
}

static void send_chunk_gone(session *s, uint32_t need, int err)
{
    uint8_t *p = haul_out_frame(&s->out, HAUL_MSG_CHUNK_GONE, 8, 8);
    p = haul_put_u32(p, need);
    haul_put_u32(p, (uint32_t)err);
    haul_out_commit(&s->out, 8);
}

/* CHUNK_NEW, zstd-compressed when that saves at least 1/32 of the bytes. */
static void send_chunk_new(session *s, uint32_t need, const uint8_t *data, size_t len,
                           const uint8_t sha[HAUL_SHA256_LEN])
{
    const uint8_t *payload = data;
    size_t plen = len;
    uint8_t compression = 0;
    if (s->cz && len >= MIN_COMPRESS) {
        size_t z = haul_compress(s->cz, data, len, s->zbuf, len - len / 32);
        if (z > 0) {
            payload = s->zbuf;
            plen = z;
            compression = 1;
        }
    }
    size_t head = 4 + 1 + 4 + HAUL_SHA256_LEN;
    uint8_t *p = haul_out_frame(&s->out, HAUL_MSG_CHUNK_NEW, head + plen, head);
    p = haul_put_u32(p, need);
    p = haul_put_u8(p, compression);
    p = haul_put_u32(p, (uint32_t)len);
    haul_put_bytes(p, sha, HAUL_SHA256_LEN);
    haul_out_commit(&s->out, head);
    haul_out_bytes(&s->out, payload, plen);
}

/* Entries between looks at stdin: a poll(2) per entry was a tenth of a no-change walk's time. */
#define ENTRIES_PER_POLL 32

static void tick(void *arg)
{
    session *s = arg;
    if (s->ticks++ % ENTRIES_PER_POLL == 0)
        haul_in_poll(&s->in);
    haul_out_flush_if_older(&s->out, FLUSH_AFTER_MS);
}

/* A chunk is a lot of work: look at stdin after every one. */
static void tick_chunk(session *s)
{
    s->ticks = 0;
    tick(s);
}

/* ---- the walk ---------------------------------------------------------- */

static int on_chunk(void *arg, const uint8_t *chunk, size_t len)
{
    session *s = arg;
    uint8_t sha[HAUL_SHA256_LEN], mac[HAUL_SHA256_LEN];
    haul_sha256(chunk, len, sha);
    haul_hmac_sha256_ctx h = s->fp_keyed;
    haul_hmac_sha256_update(&h, sha, sizeof sha);
    haul_hmac_sha256_final(&h, mac);
    uint64_t fp = first_u64(mac);
    int64_t earlier;
    if (known(s, fp)) {
        uint8_t *p = haul_out_frame(&s->out, HAUL_MSG_CHUNK_KNOWN, 36, 36);
        p = haul_put_u32(p, (uint32_t)len);
        haul_put_bytes(p, sha, sizeof sha);
        haul_out_commit(&s->out, 36);
    } else if ((earlier = sent_earlier(s, fp)) >= 0) {
        uint8_t *p = haul_out_frame(&s->out, HAUL_MSG_CHUNK_REPEAT, 40, 40);
        p = haul_put_u32(p, (uint32_t)earlier);
        p = haul_put_u32(p, (uint32_t)len);
        haul_put_bytes(p, sha, sizeof sha);
        haul_out_commit(&s->out, 40);
    } else {
        send_chunk_new(s, 0, chunk, len, sha);
        remember_sent(s, fp);
    }
    tick_chunk(s);
    s->file_bytes += len;
    return 0;
}

/* Files are opened with O_NONBLOCK so that a fifo swapped in after lstat cannot
 * hang the probe; once fstat has shown a regular file, reads may block again.
 * Linux's F_SETFL sets O_APPEND, O_ASYNC, O_DIRECT, O_NOATIME and O_NONBLOCK
 * at once: one call keeps O_NOATIME where it was granted and clears the rest. */
static void blocking(int fd, int noatime)
{
    fcntl(fd, F_SETFL, noatime ? O_NOATIME : 0);
}

/* openat with O_NOATIME, retried without it on EPERM (files of other users). */
static int open_file(int dirfd, const char *name, int *noatime)
{
    int flags = O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC;
    int fd = openat(dirfd, name, flags | O_NOATIME);
    *noatime = fd >= 0;
    if (fd < 0 && errno == EPERM)
        fd = openat(dirfd, name, flags);
    return fd;
}

static void backup_file(session *s, int dirfd, const char *name, const char *path, size_t plen,
                        const struct stat *st)
{
    int64_t prev = previous_index(s, path, plen, KIND_FILE, (uint64_t)st->st_size, st);
    if (prev >= 0) {
        send_unchanged(s, (uint32_t)prev);
        return;
    }
    int noatime;
    int fd = open_file(dirfd, name, &noatime);
    if (fd < 0) {
        int err = errno;
        if (err == ENOENT)
            return; /* gone since the directory was listed */
        send_entry(s, KIND_FILE, 0, path, plen, st, NULL, 0);
        send_file_end(s, 0, 1, err);
        send_warn(s, path, plen, err, "cannot open file; its content is not backed up");
        return;
    }
    struct stat now;
    if (fstat(fd, &now) != 0 || !S_ISREG(now.st_mode)) {
        close(fd);
        send_warn(s, path, plen, 0, "replaced by something else than a file during the backup; skipped");
        return;
    }
    blocking(fd, noatime);
    /* The metadata of what is actually read. */
    send_entry(s, KIND_FILE, 0, path, plen, &now, NULL, 0);
    s->file_bytes = 0;
    int rc = haul_gear_chunk_fd(&s->gear, fd, s->chunkbuf, s->chunkbuf_size, on_chunk, s);
    close(fd);
    s->bytes_read += s->file_bytes;
    if (rc < 0) {
        send_file_end(s, s->file_bytes, 1, -rc);
        send_warn(s, path, plen, -rc, "read error; the file is backed up only up to the bytes read");
    } else {
        send_file_end(s, s->file_bytes, 0, 0);
    }
}

static void *grow(void *p, size_t *cap, size_t need, size_t elem, size_t limit);

static void enter_dir(session *s, const char *path, size_t plen, const struct stat *st)
{
    s->levels = grow(s->levels, &s->levels_cap, s->nlevels + 1, sizeof *s->levels, SIZE_MAX);
    int held = previous_path(s, path, plen);
    if (!held)
        send_entry(s, KIND_DIR, 0, path, plen, st, NULL, 0);
    else
        memcpy(s->dirpath, path, plen);
    s->levels[s->nlevels++] = (dir_level){*st, plen, 0, s->nrefs, held};
}

static void on_dir_end(void *arg)
{
    session *s = arg;
    dir_level *l = &s->levels[s->nlevels - 1];
    if (l->held) {
        int64_t prev = previous_index(s, s->dirpath, l->plen, KIND_DIR, l->count, &l->st);
        if (prev >= 0) {
            s->nrefs = l->refs_from;
            s->nlevels--;
            send_unchanged(s, (uint32_t)prev);
            return;
        }
        release_held(s);
    }
    s->nlevels--;
}

static void on_entry(void *arg, int dirfd, const char *name, const char *path, size_t plen,
                     const struct stat *st, unsigned flags)
{
    session *s = arg;
    int kind = kind_of(st->st_mode);
    if (!(flags & HAUL_WALK_ANCESTOR) && s->nlevels > 0)
        s->levels[s->nlevels - 1].count++;
    if (kind == KIND_DIR && !(flags & HAUL_WALK_ANCESTOR)) {
        enter_dir(s, path, plen, st);
        return;
    }
    if (kind == 0) {
        send_warn(s, path, plen, 0, "unknown file type; skipped");
        return;
    }
    if (kind == KIND_FILE) {
        backup_file(s, dirfd, name, path, plen, st);
    } else if (kind == KIND_SYMLINK) {
        char target[HAUL_MAX_PATH + 1];
        ssize_t n = readlinkat(dirfd, name, target, sizeof target);
        if (n < 0) {
            if (errno != ENOENT)
                send_warn(s, path, plen, errno, "cannot read symlink; skipped");
            return;
        }
        if ((size_t)n > HAUL_MAX_PATH) {
            send_warn(s, path, plen, ENAMETOOLONG, "symlink target longer than 4096 bytes; skipped");
            return;
        }
        send_entry(s, kind, 0, path, plen, st, target, (size_t)n);
    } else {
        send_entry(s, kind, flags & HAUL_WALK_ANCESTOR ? FLAG_ANCESTOR : 0, path, plen, st, NULL, 0);
    }
}

static void on_warn(void *arg, const char *path, size_t plen, int err, const char *msg)
{
    send_warn(arg, path, plen, err, msg);
}

/* ---- frames from the server -------------------------------------------- */

static uint8_t *read_body(session *s, size_t len)
{
    uint8_t *b = malloc(len ? len : 1);
    if (!b)
        haul_fatal(HAUL_EXIT_INTERNAL, "out of memory for a frame of %zu bytes", len);
    haul_in_read(&s->in, b, len);
    return b;
}

static char *copy_string(const uint8_t *p, size_t n)
{
    char *c = malloc(n + 1);
    if (!c)
        haul_fatal(HAUL_EXIT_INTERNAL, "out of memory");
    memcpy(c, p, n);
    c[n] = 0;
    return c;
}

static void read_backup(session *s)
{
    size_t len;
    uint8_t type = haul_in_frame(&s->in, &len);
    if (type != HAUL_MSG_BACKUP)
        haul_fatal(HAUL_EXIT_PROTOCOL, "protocol violation: expected BACKUP (0x10), got frame type 0x%02x",
                   type);
    uint8_t *body = read_body(s, len);
    haul_cursor c;
    haul_cur_init(&c, body, len);
    uint32_t min = haul_cur_u32(&c), avg = haul_cur_u32(&c), max = haul_cur_u32(&c);
    unsigned normalization = haul_cur_u8(&c);
    const uint8_t *key = haul_cur_bytes(&c, HAUL_GEAR_KEY_LEN);
    int level = (int8_t)haul_cur_u8(&c);
    unsigned flags = haul_cur_u8(&c);
    size_t npaths = haul_cur_u16(&c);
    if (c.bad)
        protocol_error("protocol violation: %s body too short", "BACKUP");
    s->paths = calloc(npaths ? npaths : 1, sizeof *s->paths);
    if (!s->paths)
        haul_fatal(HAUL_EXIT_INTERNAL, "out of memory");
    for (size_t i = 0; i < npaths; i++) {
        size_t n;
        const uint8_t *p = haul_cur_bytes16(&c, &n);
        if (!p || haul_path_valid((const char *)p, n) != 0)
            protocol_error("protocol violation: %s path is not an absolute, normalised path of at "
                           "most 4096 bytes", "BACKUP");
        s->paths[i] = copy_string(p, n);
    }
    s->npaths = npaths;
    size_t nex = haul_cur_u16(&c);
    s->excludes = calloc(nex ? nex : 1, sizeof *s->excludes);
    if (!s->excludes)
        haul_fatal(HAUL_EXIT_INTERNAL, "out of memory");
    for (size_t i = 0; i < nex && !c.bad; i++) {
        size_t n;
        const uint8_t *p = haul_cur_bytes16(&c, &n);
        if (!p)
            break;
        if (n > HAUL_MAX_PATH || memchr(p, 0, n))
            protocol_error("protocol violation: %s exclude pattern longer than 4096 bytes or with NUL",
                           "BACKUP");
        s->excludes[i] = copy_string(p, n);
        s->nexcludes = i + 1;
    }
    if (haul_cur_end(&c) != 0)
        protocol_error("protocol violation: %s body does not parse exactly", "BACKUP");
    if (max > HAUL_MAX_CHUNK || haul_gear_init(&s->gear, key, min, avg, max, normalization) != 0)
        haul_fatal(HAUL_EXIT_PROTOCOL, "protocol violation: BACKUP chunker sizes %u/%u/%u, "
                   "normalization %u: need min <= avg <= max <= %u with avg a power of two >= 4, "
                   "normalization <= %u", min, avg, max, normalization, HAUL_MAX_CHUNK,
                   HAUL_GEAR_MAX_NORMALIZATION);
    if (level < 0 || level > MAX_ZSTD_LEVEL)
        haul_fatal(HAUL_EXIT_PROTOCOL, "protocol violation: BACKUP zstd level %d is not in 0..%d",
                   level, MAX_ZSTD_LEVEL);
    if (flags & ~1u)
        haul_fatal(HAUL_EXIT_PROTOCOL, "protocol violation: BACKUP flags 0x%02x has unknown bits",
                   flags);
    s->one_fs = flags & 1;
    memcpy(s->key, key, sizeof s->key);
    free(body);

    haul_hmac_sha256_init(&s->fp_keyed, s->key, sizeof s->key);
    s->sent = calloc(SENT_SLOTS, sizeof *s->sent);
    if (!s->sent)
        haul_fatal(HAUL_EXIT_INTERNAL, "cannot allocate the table of sent chunks");
    s->chunkbuf_size = haul_gear_buffer_size(&s->gear);
    s->chunkbuf = malloc(s->chunkbuf_size ? s->chunkbuf_size : 1);
    if (!s->chunkbuf)
        haul_fatal(HAUL_EXIT_INTERNAL, "cannot allocate the chunk buffer of %zu bytes", s->chunkbuf_size);
    if (level > 0 && haul_compress_available() && max >= MIN_COMPRESS) {
        s->cz = haul_compressor_new(level);
        s->zbuf = malloc(max - max / 32);
        if (!s->cz || !s->zbuf)
            haul_fatal(HAUL_EXIT_INTERNAL, "cannot set up zstd compression");
    }
}

static void *grow(void *p, size_t *cap, size_t need, size_t elem, size_t limit)
{
    if (need <= *cap)
        return p;
    size_t n = *cap ? *cap : 4096;
    while (n < need)
        n *= 2;
    if (n > limit)
        n = limit;
    void *q = realloc(p, n * elem);
    if (!q)
        haul_fatal(HAUL_EXIT_INTERNAL, "out of memory for %zu records", need);
    *cap = n;
    return q;
}

static uint64_t read_end_total(session *s, size_t len, const char *what)
{
    if (len != 8)
        protocol_error("protocol violation: %s body is not 8 bytes", what);
    uint8_t b[8];
    haul_in_read(&s->in, b, 8);
    return haul_get_u64le(b);
}

static void read_previous(session *s)
{
    size_t cap = 0;
    uint8_t batch[1024 * PREVIOUS_RECORD];
    for (;;) {
        size_t len;
        uint8_t type = haul_in_frame(&s->in, &len);
        if (type == HAUL_MSG_PREVIOUS_END) {
            if (read_end_total(s, len, "PREVIOUS_END") != s->nprev)
                protocol_error("protocol violation: %s total differs from the records sent",
                               "PREVIOUS_END");
            break;
        }
        if (type != HAUL_MSG_PREVIOUS)
            haul_fatal(HAUL_EXIT_PROTOCOL, "protocol violation: expected PREVIOUS or PREVIOUS_END, "
                       "got frame type 0x%02x", type);
        if (len % PREVIOUS_RECORD || len / PREVIOUS_RECORD > PREVIOUS_PER_FRAME)
            protocol_error("protocol violation: %s body is not n x 16 bytes with n <= 65536",
                           "PREVIOUS");
        size_t n = len / PREVIOUS_RECORD;
        if (n > MAX_PREVIOUS - s->nprev)
            haul_fatal(HAUL_EXIT_PROTOCOL, "protocol violation: more than %u PREVIOUS records",
                       MAX_PREVIOUS);
        s->prev = grow(s->prev, &cap, s->nprev + n, sizeof *s->prev, MAX_PREVIOUS);
        while (n > 0) {
            size_t k = n < 1024 ? n : 1024;
            haul_in_read(&s->in, batch, k * PREVIOUS_RECORD);
            for (size_t i = 0; i < k; i++) {
                const uint8_t *r = batch + i * PREVIOUS_RECORD;
                prev_rec *d = &s->prev[s->nprev];
                d->path_hash = haul_get_u64le(r);
                d->meta = haul_get_u64le(r + 8);
                d->index = (uint32_t)s->nprev++;
            }
            n -= k;
        }
    }
    if (s->nprev)
        sort_previous(s->prev, s->nprev, 2 * 64);
}

static void read_known(session *s)
{
    size_t cap = 0;
    uint64_t last = 0;
    for (;;) {
        size_t len;
        uint8_t type = haul_in_frame(&s->in, &len);
        if (type == HAUL_MSG_KNOWN_END) {
            if (read_end_total(s, len, "KNOWN_END") != s->nknown)
                protocol_error("protocol violation: %s total differs from the fingerprints sent",
                               "KNOWN_END");
            return;
        }
        if (type != HAUL_MSG_KNOWN)
            haul_fatal(HAUL_EXIT_PROTOCOL, "protocol violation: expected KNOWN or KNOWN_END, got "
                       "frame type 0x%02x", type);
        if (len % 8)
            protocol_error("protocol violation: %s body is not a multiple of 8 bytes", "KNOWN");
        size_t n = len / 8;
        if (n > MAX_KNOWN - s->nknown)
            haul_fatal(HAUL_EXIT_PROTOCOL, "protocol violation: more than %u KNOWN fingerprints",
                       MAX_KNOWN);
        s->known = grow(s->known, &cap, s->nknown + n, sizeof *s->known, MAX_KNOWN);
        uint64_t *dst = s->known + s->nknown;
        haul_in_read(&s->in, dst, n * 8);
        for (size_t i = 0; i < n; i++) {
            uint64_t v = haul_get_u64le((const uint8_t *)&dst[i]);
            if (s->nknown + i > 0 && v < last)
                protocol_error("protocol violation: %s fingerprints are not sorted ascending", "KNOWN");
            dst[i] = last = v;
        }
        s->nknown += n;
    }
}

/* ---- NEED -------------------------------------------------------------- */

static void answer_need(session *s, uint32_t id, const char *path, uint64_t off, uint32_t len,
                        const uint8_t sha[HAUL_SHA256_LEN])
{
    int fd = haul_open_path_nofollow(path);
    if (fd < 0) {
        send_chunk_gone(s, id, -fd);
        return;
    }
    struct stat st;
    int err = 0;
    if (fstat(fd, &st) != 0)
        err = errno;
    else if (!S_ISREG(st.st_mode))
        err = S_ISDIR(st.st_mode) ? EISDIR : EINVAL; /* no longer a regular file */
    if (err) {
        close(fd);
        send_chunk_gone(s, id, err);
        return;
    }
    int fl = fcntl(fd, F_GETFL);
    if (fl >= 0)
        fcntl(fd, F_SETFL, fl & ~O_NONBLOCK); /* a regular file: reads may block */
    size_t got = 0;
    while (got < len) {
        ssize_t r = pread(fd, s->chunkbuf + got, len - got, (off_t)(off + got));
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            err = errno;
            close(fd);
            send_chunk_gone(s, id, err);
            return;
        }
        if (r == 0)
            break; /* the file is shorter now: the bytes changed */
        got += (size_t)r;
    }
    close(fd);
    uint8_t now[HAUL_SHA256_LEN];
    if (got == len)
        haul_sha256(s->chunkbuf, len, now);
    if (got != len || memcmp(now, sha, sizeof now) != 0) {
        send_chunk_gone(s, id, 0);
        return;
    }
    send_chunk_new(s, id, s->chunkbuf, len, sha);
}

static void serve_needs(session *s)
{
    uint8_t body[NEED_MAX_BODY];
    char path[HAUL_MAX_PATH + 1];
    for (;;) {
        size_t len;
        uint8_t type = haul_in_frame(&s->in, &len);
        if (type == HAUL_MSG_FINISH) {
            if (len != 0)
                protocol_error("protocol violation: %s body is not empty", "FINISH");
            return;
        }
        if (type != HAUL_MSG_NEED)
            haul_fatal(HAUL_EXIT_PROTOCOL, "protocol violation: expected NEED or FINISH, got frame "
                       "type 0x%02x", type);
        if (len > sizeof body)
            protocol_error("protocol violation: %s body longer than its fields", "NEED");
        haul_in_read(&s->in, body, len);
        haul_cursor c;
        haul_cur_init(&c, body, len);
        uint32_t id = haul_cur_u32(&c);
        size_t plen;
        const uint8_t *p = haul_cur_bytes16(&c, &plen);
        uint64_t off = haul_cur_u64(&c);
        uint32_t n = haul_cur_u32(&c);
        const uint8_t *sha = haul_cur_bytes(&c, HAUL_SHA256_LEN);
        if (haul_cur_end(&c) != 0)
            protocol_error("protocol violation: %s body does not parse exactly", "NEED");
        if (id == 0)
            protocol_error("protocol violation: %s id 0", "NEED");
        if (haul_path_valid((const char *)p, plen) != 0 || plen == 1)
            protocol_error("protocol violation: %s path is not an absolute, normalised file path",
                           "NEED");
        if (n == 0 || n > s->gear.max || off > (uint64_t)INT64_MAX - n)
            haul_fatal(HAUL_EXIT_PROTOCOL, "protocol violation: NEED range of %u bytes at %llu: "
                       "need 1..%zu bytes within a file", n, (unsigned long long)off, s->gear.max);
        memcpy(path, p, plen);
        path[plen] = 0;
        answer_need(s, id, path, off, n, sha);
    }
}

/* ---- the session ------------------------------------------------------- */

int haul_serve_main(int argc, char **argv)
{
    (void)argv;
    if (argc != 1) {
        fprintf(stderr, "usage: haul-probe --serve  (speaks the probe protocol on stdin/stdout)\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    haul_raise_fd_limit();
    /* A bigger pipe to sshd means fewer context switches (best effort: stdout may be no pipe). */
    fcntl(STDOUT_FILENO, F_SETPIPE_SZ, (int)OUT_BUFFER);
    fcntl(STDIN_FILENO, F_SETPIPE_SZ, (int)IN_PIPE);

    static session sess;
    session *s = &sess;
    haul_out_init(&s->out, STDOUT_FILENO, OUT_BUFFER);
    haul_in_init(&s->in, STDIN_FILENO, IN_BUFFER, &s->out);

    haul_send_hello(&s->out);
    read_backup(s);
    read_previous(s);
    read_known(s);

    haul_walk_opts opts = {(const char *const *)s->excludes, s->nexcludes, s->one_fs};
    s->refs = malloc(HELD_REFS_MAX * sizeof *s->refs);
    if (!s->refs)
        haul_fatal(HAUL_EXIT_INTERNAL, "out of memory");
    haul_walk_ops ops = {s, on_entry, on_dir_end, on_warn, tick};
    haul_walk(&opts, (const char **)s->paths, s->npaths, &ops);

    uint8_t *p = haul_out_frame(&s->out, HAUL_MSG_WALK_DONE, 16, 16);
    p = haul_put_u64(p, s->entries);
    haul_put_u64(p, s->bytes_read);
    haul_out_commit(&s->out, 16);
    haul_out_flush(&s->out);

    serve_needs(s);
    haul_out_frame(&s->out, HAUL_MSG_DONE, 0, 0);
    haul_out_flush(&s->out);

    /* Tidy up, so that leak checkers see a clean exit. */
    for (size_t i = 0; i < s->npaths; i++)
        free(s->paths[i]);
    for (size_t i = 0; i < s->nexcludes; i++)
        free(s->excludes[i]);
    free(s->paths);
    free(s->excludes);
    free(s->prev);
    free(s->known);
    free(s->sent);
    free(s->levels);
    free(s->refs);
    free(s->chunkbuf);
    free(s->zbuf);
    haul_compressor_free(s->cz);
    haul_in_free(&s->in);
    haul_out_free(&s->out);
    return HAUL_EXIT_OK;
}
