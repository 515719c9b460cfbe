#define _GNU_SOURCE
#include "restore.h"

#include "compress.h"
#include "decompress.h"
#include "protocol.h"
#include "restore_fs.h"
#include "session.h"
#include "walk.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#define OUT_BUFFER (64u << 10)       /* only WARN frames and RESTORE_DONE go out */
#define IN_BUFFER (1u << 20)
#define MAX_DEPTH (HAUL_MAX_PATH / 2) /* components of a 4096-byte relative path */
#define MAX_NAME 255
#define RESTORE_MAX_BODY (1 + 4 + 2 + HAUL_MAX_PATH)
#define ENTRY_MAX_BODY (1 + 1 + 2 + HAUL_MAX_PATH + 4 + 4 + 4 + 8 + 8 + 8 + 4 + 2 + HAUL_MAX_PATH)
#define DATA_HEAD 5                  /* compression + raw length */
#define LINK_PATH_BUDGET (64u << 20) /* bytes of remembered hard-link source paths */
#define FLUSH_AFTER_MS 100

enum { KIND_FILE = 1, KIND_DIR, KIND_SYMLINK, KIND_FIFO, KIND_CHR, KIND_BLK, KIND_HARDLINK = 8 };
enum { FLAG_ANCESTOR = 1 };
enum { FLAG_OVERWRITE = 1 };

/* What the server is told; the tests match these texts. */
#define MSG_EXISTS "already exists; not replaced (the restore does not overwrite)"
#define MSG_DIR_IN_THE_WAY "exists and is not a directory; not replaced (the restore does not overwrite), so it and everything in it are not restored"
#define MSG_ANCESTOR_IN_THE_WAY "exists and is not a directory; a directory above the restored path is never replaced, so nothing below it is restored"

typedef struct {
    uint8_t kind, flags;
    char path[HAUL_MAX_PATH + 1];
    size_t plen;
    const char *name;  /* the last component, inside path */
    size_t parent_len; /* bytes of path before the last "/" (0: the target) */
    uint32_t mode, uid, gid;
    int64_t mtime;
    uint64_t size, rdev;
    uint32_t link_id;
    char target[HAUL_MAX_PATH + 1];
    size_t tlen;
} entry;

/* One directory of the chain being restored; level 0 is the target. */
typedef struct {
    int fd;          /* -1: not restored, and nothing inside it is */
    size_t path_len; /* its path is the first path_len bytes of session.dirpath */
    int set_meta;    /* apply mode, owner and mtime when leaving it */
    uint32_t mode, uid, gid;
    int64_t mtime;
} level;

typedef struct {
    char *path; /* NULL: not restored, or beyond the memory budget */
    dev_t dev;
    ino_t ino;
    int over_budget;
} link_source;

typedef struct {
    int active;     /* between a file's RESTORE_ENTRY and its RESTORE_FILE_END */
    int fd;         /* the temporary file, or -1 while its data is only read and dropped */
    int dirfd;
    char tmp[HAUL_TEMP_NAME_MAX];
    uint64_t received;
} file_state;

typedef struct {
    haul_out out;
    haul_in in;
    int overwrite;
    int is_root;
    uid_t euid;
    uint32_t max_data;
    uint8_t *raw, *packed;

    level stack[MAX_DEPTH + 1];
    size_t depth;
    char dirpath[HAUL_MAX_PATH + 1];

    entry e; /* the entry being restored */
    file_state file;

    link_source *links;
    size_t nlinks, links_cap, link_bytes;

    uint64_t entries, files, dirs, symlinks, hardlinks, specials, left_out, bytes;
    uint64_t owners_not_set, setid_dropped;
    int owner_errno;
} session;

/* ---- messages ------------------------------------------------------------ */

/* A path for a stderr line: printable ASCII as is, other bytes as \xNN, cut at 200 bytes. */
static const char *shown(const char *p, size_t n)
{
    static char buf[2][4 * 200 + 4];
    static int which;
    char *out = buf[which ^= 1], *o = out;
    for (size_t i = 0; i < n && i < 200; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c >= 0x20 && c < 0x7f && c != '\\' && c != '"')
            *o++ = (char)c;
        else
            o += sprintf(o, "\\x%02x", c);
    }
    if (n > 200)
        o += sprintf(o, "...");
    *o = 0;
    return out;
}

#if defined(__GNUC__)
__attribute__((noreturn, format(printf, 1, 2)))
#endif
static void violation(const char *fmt, ...)
{
    char msg[480];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    haul_fatal(HAUL_EXIT_PROTOCOL, "protocol violation: %s", msg);
}

static void warn(session *s, int err, const char *msg)
{
    haul_send_warn(&s->out, s->e.path, s->e.plen, err, msg);
}

static void warnf(session *s, int err, const char *fmt, ...)
{
    char msg[HAUL_WARN_MAX_MESSAGE + 1];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    warn(s, err, msg);
}

/* ---- checks -------------------------------------------------------------- */

/* Relative, "/"-separated, components of 1..255 bytes that are not "." or "..", no NUL. */
static int relative_path_valid(const char *p, size_t n)
{
    if (n < 1 || n > HAUL_MAX_PATH || memchr(p, 0, n))
        return 0;
    for (size_t i = 0, start = 0; i <= n; i++) {
        if (i == n || p[i] == '/') {
            size_t len = i - start;
            if (len == 0 || len > MAX_NAME || (len == 1 && p[start] == '.') ||
                (len == 2 && p[start] == '.' && p[start + 1] == '.'))
                return 0;
            start = i + 1;
        }
    }
    return 1;
}

static void check_entry(session *s)
{
    entry *e = &s->e;
    const char *p = shown(e->path, e->plen);
    int file = e->kind == KIND_FILE, device = e->kind == KIND_CHR || e->kind == KIND_BLK;
    if (e->flags & ~FLAG_ANCESTOR || (e->flags && e->kind != KIND_DIR))
        violation("RESTORE_ENTRY \"%s\": flags 0x%02x (only a directory may have bit 0)", p, e->flags);
    if (e->mode & ~07777u)
        violation("RESTORE_ENTRY \"%s\": mode 0%o has bits beyond 07777", p, e->mode);
    if (!file && e->size != 0)
        violation("RESTORE_ENTRY \"%s\": a size for an entry that is not a file", p);
    if (!device && e->rdev != 0)
        violation("RESTORE_ENTRY \"%s\": a device number for an entry that is not a device node", p);
    if (e->kind == KIND_SYMLINK) {
        if (e->tlen == 0 || memchr(e->target, 0, e->tlen))
            violation("RESTORE_ENTRY \"%s\": a symlink target must be 1 to 4096 bytes without NUL", p);
    } else if (e->tlen != 0) {
        violation("RESTORE_ENTRY \"%s\": a link target for an entry that is not a symlink", p);
    }
    uint32_t next = (uint32_t)s->nlinks + 1;
    if (file && e->link_id != 0 && e->link_id != next)
        violation("RESTORE_ENTRY \"%s\": link id %u, expected 0 or the next one, %u", p, e->link_id, next);
    if (e->kind == KIND_HARDLINK && (e->link_id == 0 || e->link_id >= next))
        violation("RESTORE_ENTRY \"%s\" is a hard link to link id %u, which no earlier file of this "
                  "restore has", p, e->link_id);
    if (!file && e->kind != KIND_HARDLINK && e->link_id != 0)
        violation("RESTORE_ENTRY \"%s\": a link id for an entry that is neither a file nor a hard link", p);
}

/* Reads a body of at most cap bytes (anything longer is a violation) and points c at it. */
static void read_body(session *s, uint8_t *buf, size_t cap, size_t len, const char *what, haul_cursor *c)
{
    if (len > cap)
        violation("%s body of %zu bytes is longer than its fields", what, len);
    haul_in_read(&s->in, buf, len);
    haul_cur_init(c, buf, len);
}

static void read_entry(session *s, size_t len)
{
    static uint8_t body[ENTRY_MAX_BODY];
    haul_cursor c;
    read_body(s, body, sizeof body, len, "RESTORE_ENTRY", &c);
    entry *e = &s->e;
    e->kind = haul_cur_u8(&c);
    e->flags = haul_cur_u8(&c);
    const uint8_t *path = haul_cur_bytes16(&c, &e->plen);
    e->mode = haul_cur_u32(&c);
    e->uid = haul_cur_u32(&c);
    e->gid = haul_cur_u32(&c);
    e->mtime = (int64_t)haul_cur_u64(&c);
    e->size = haul_cur_u64(&c);
    e->rdev = haul_cur_u64(&c);
    e->link_id = haul_cur_u32(&c);
    const uint8_t *target = haul_cur_bytes16(&c, &e->tlen);
    if (haul_cur_end(&c) != 0)
        violation("RESTORE_ENTRY body does not parse exactly");
    if (e->plen > HAUL_MAX_PATH || e->tlen > HAUL_MAX_PATH)
        violation("RESTORE_ENTRY with a path or link target of more than %d bytes", HAUL_MAX_PATH);
    memcpy(e->path, path, e->plen);
    e->path[e->plen] = 0;
    memcpy(e->target, target, e->tlen);
    e->target[e->tlen] = 0;
    if (!(e->kind >= KIND_FILE && e->kind <= KIND_BLK) && e->kind != KIND_HARDLINK)
        violation("RESTORE_ENTRY \"%s\": kind %u is not one the probe restores", shown(e->path, e->plen),
                  e->kind);
    if (!relative_path_valid(e->path, e->plen))
        violation("RESTORE_ENTRY path \"%s\" is not a safe relative path (components of 1 to 255 bytes "
                  "without NUL, not . or .., no / at either end, at most 4096 bytes)",
                  shown(e->path, e->plen));
    const char *slash = memrchr(e->path, '/', e->plen);
    e->parent_len = slash ? (size_t)(slash - e->path) : 0;
    e->name = slash ? slash + 1 : e->path;
    check_entry(s);
}

/* ---- owners, modes, times -------------------------------------------------- */

/* Whether to try chown at all: root may give anything to anyone; another user only
 * its own entries (and the kernel then allows the groups it is a member of). */
static int may_chown(const session *s, uint32_t uid)
{
    return s->is_root || uid == (uint32_t)s->euid;
}

/* Counts the outcome of setting an owner (chown_result 0: done, -1 with errno
 * chown_errno when tried, -1 with 0 when not tried) and returns the mode that
 * may go with it: set-id bits only on an entry whose owner was restored. */
static uint32_t mode_after_owner(session *s, int chown_result, int chown_errno, uint32_t mode)
{
    if (chown_result == 0)
        return mode;
    s->owners_not_set++;
    if (s->owner_errno == 0)
        s->owner_errno = chown_errno;
    if (mode & 06000) {
        s->setid_dropped++;
        mode &= ~06000u;
    }
    return mode;
}

static void times_of(int64_t ns, struct timespec ts[2])
{
    ts[0] = ts[1] = haul_rfs_timespec(ns); /* atime = mtime: trees keep no atime */
}

/* Owner, mode and mtime of an open file or directory; returns what failed, or NULL. */
static const char *set_fd_metadata(session *s, int fd, uint32_t mode, uint32_t uid, uint32_t gid,
                                   int64_t mtime, int *err)
{
    errno = 0;
    int r = may_chown(s, uid) ? fchown(fd, uid, gid) : -1;
    mode = mode_after_owner(s, r, errno, mode);
    struct timespec ts[2];
    times_of(mtime, ts);
    if (fchmod(fd, mode) != 0) {
        *err = errno;
        return "mode";
    }
    if (futimens(fd, ts) != 0) {
        *err = errno;
        return "mtime";
    }
    return NULL;
}

/* ---- directories ----------------------------------------------------------- */

static void leave_dir(session *s)
{
    level *l = &s->stack[s->depth];
    if (l->fd >= 0) {
        if (l->set_meta) {
            int err = 0;
            const char *what = set_fd_metadata(s, l->fd, l->mode, l->uid, l->gid, l->mtime, &err);
            if (what) {
                char msg[64];
                snprintf(msg, sizeof msg, "restored, but its %s could not be set", what);
                haul_send_warn(&s->out, s->dirpath, l->path_len, err, msg);
            }
        }
        close(l->fd);
    }
    s->depth--;
}

/* Leaves directories until the entry's parent is the innermost one open. */
static level *enter_parent(session *s)
{
    entry *e = &s->e;
    for (;;) {
        level *top = &s->stack[s->depth];
        if (top->path_len == e->parent_len && memcmp(s->dirpath, e->path, e->parent_len) == 0)
            return top;
        if (s->depth == 0)
            violation("RESTORE_ENTRY \"%s\" is not inside a directory being restored (entries come in "
                      "pre-order, each after its directory)", shown(e->path, e->plen));
        leave_dir(s);
    }
}

static void restore_dir(session *s, level *parent)
{
    entry *e = &s->e;
    if (s->depth == MAX_DEPTH)
        violation("RESTORE_ENTRY \"%s\" is deeper than a 4096-byte path allows", shown(e->path, e->plen));
    level *l = &s->stack[++s->depth];
    *l = (level){-1, e->plen, 0, e->mode, e->uid, e->gid, e->mtime};
    memcpy(s->dirpath, e->path, e->plen);
    if (parent->fd < 0) {
        s->left_out++;
        return;
    }
    int pfd = parent->fd, created = 0;
    if (mkdirat(pfd, e->name, 0700) == 0) {
        created = 1;
    } else if (errno != EEXIST) {
        warn(s, errno, "cannot create the directory; it and everything in it are not restored");
        s->left_out++;
        return;
    }
    int fd = openat(pfd, e->name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0 && !created && (errno == ENOTDIR || errno == ELOOP)) {
        /* Something else is in the way, perhaps a symlink: it is never followed. */
        if (e->flags & FLAG_ANCESTOR || !s->overwrite) {
            warn(s, EEXIST, e->flags & FLAG_ANCESTOR ? MSG_ANCESTOR_IN_THE_WAY : MSG_DIR_IN_THE_WAY);
            s->left_out++;
            return;
        }
        if (unlinkat(pfd, e->name, 0) != 0 || mkdirat(pfd, e->name, 0700) != 0) {
            warn(s, errno, "cannot replace it with a directory; it and everything in it are not restored");
            s->left_out++;
            return;
        }
        created = 1;
        fd = openat(pfd, e->name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    }
    if (fd < 0) {
        warn(s, errno, "cannot open the directory; everything in it is not restored");
        s->left_out++;
        return;
    }
    l->fd = fd;
    l->set_meta = created || (s->overwrite && !(e->flags & FLAG_ANCESTOR));
    s->dirs++;
}

/* ---- entries made under a temporary name and renamed into place ------------ */

static int exists(int dirfd, const char *name)
{
    struct stat st;
    return fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0;
}

/* The final step for every non-directory: rename into place; warns and returns 0 on failure. */
static int place(session *s, int dirfd, const char *tmp)
{
    int r = haul_rfs_rename(dirfd, tmp, s->e.name, s->overwrite);
    if (r == -EEXIST && !s->overwrite)
        warn(s, EEXIST, MSG_EXISTS);
    else if (r != 0)
        warn(s, -r, "cannot move it into place; not restored");
    return r == 0;
}

static int make_symlink(int dirfd, const char *name, void *arg)
{
    return symlinkat(((entry *)arg)->target, dirfd, name);
}

static int make_special(int dirfd, const char *name, void *arg)
{
    entry *e = arg;
    mode_t type = e->kind == KIND_FIFO ? S_IFIFO : e->kind == KIND_CHR ? S_IFCHR : S_IFBLK;
    return mknodat(dirfd, name, type | (e->mode & 01777), (dev_t)e->rdev);
}

/* A symlink, fifo or device node: made, given its owner and times, then placed. */
static int restore_node(session *s, level *parent)
{
    entry *e = &s->e;
    int dirfd = parent->fd;
    if (dirfd < 0)
        return 0;
    if (!s->overwrite && exists(dirfd, e->name)) {
        warn(s, EEXIST, MSG_EXISTS);
        return 0;
    }
    if ((e->kind == KIND_CHR || e->kind == KIND_BLK) && !s->is_root) {
        warn(s, EPERM, "device node not restored: creating device nodes needs root");
        return 0;
    }
    char tmp[HAUL_TEMP_NAME_MAX];
    int r = haul_rfs_create_temp(dirfd, tmp, e->kind == KIND_SYMLINK ? make_symlink : make_special, e);
    if (r < 0) {
        warnf(s, -r, "cannot create the %s; not restored", e->kind == KIND_SYMLINK ? "symlink"
                     : e->kind == KIND_FIFO ? "fifo" : "device node");
        return 0;
    }
    errno = 0;
    int c = may_chown(s, e->uid) ? fchownat(dirfd, tmp, e->uid, e->gid, AT_SYMLINK_NOFOLLOW) : -1;
    uint32_t mode = mode_after_owner(s, c, errno, e->mode);
    const char *failed = NULL;
    int err = 0;
    /* chown clears set-id bits, and mknodat could not set them past the umask-free 01777. */
    if (e->kind != KIND_SYMLINK && (mode & 06000) &&
        fchmodat(dirfd, tmp, mode, AT_SYMLINK_NOFOLLOW) != 0) {
        failed = "mode";
        err = errno;
    }
    struct timespec ts[2];
    times_of(e->mtime, ts);
    if (utimensat(dirfd, tmp, ts, AT_SYMLINK_NOFOLLOW) != 0 && !failed) {
        failed = "mtime";
        err = errno;
    }
    if (!place(s, dirfd, tmp))
        return 0;
    if (failed)
        warnf(s, err, "restored, but its %s could not be set", failed);
    return 1;
}

typedef struct {
    int dirfd;
    const char *name;
} link_from;

static int make_hardlink(int dirfd, const char *name, void *arg)
{
    link_from *from = arg;
    return linkat(from->dirfd, from->name, dirfd, name, 0);
}

/* A hard link, only to a file this restore created and that is still the same inode. */
static int restore_hardlink(session *s, level *parent)
{
    entry *e = &s->e;
    if (parent->fd < 0)
        return 0;
    link_source *src = &s->links[e->link_id - 1];
    if (!src->path) {
        warn(s, 0, src->over_budget
                       ? "hard link not created: more hard-linked files than the probe keeps track of (64 MiB of paths)"
                       : "hard link not created: the file it links to was not restored");
        return 0;
    }
    if (!s->overwrite && exists(parent->fd, e->name)) {
        warn(s, EEXIST, MSG_EXISTS);
        return 0;
    }
    link_from from;
    int sd = haul_rfs_open_parent(s->stack[0].fd, src->path, &from.name);
    struct stat st;
    if (sd < 0 || fstatat(sd, from.name, &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(st.st_mode) ||
        st.st_dev != src->dev || st.st_ino != src->ino) {
        warn(s, sd < 0 ? -sd : 0, "hard link not created: the file it links to is no longer the one this restore created");
        if (sd >= 0)
            close(sd);
        return 0;
    }
    from.dirfd = sd;
    char tmp[HAUL_TEMP_NAME_MAX];
    int r = haul_rfs_create_temp(parent->fd, tmp, make_hardlink, &from);
    close(sd);
    if (r < 0) {
        warn(s, -r, "cannot create the hard link; not restored");
        return 0;
    }
    return place(s, parent->fd, tmp);
}

/* ---- files ----------------------------------------------------------------- */

static int make_file(int dirfd, const char *name, void *arg)
{
    (void)arg;
    return openat(dirfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
}

static void begin_file(session *s, level *parent)
{
    entry *e = &s->e;
    file_state *f = &s->file;
    *f = (file_state){1, -1, parent->fd, "", 0};
    if (e->link_id != 0) {
        if (s->nlinks == s->links_cap) {
            size_t cap = s->links_cap ? s->links_cap * 2 : 1024;
            link_source *n = realloc(s->links, cap * sizeof *n);
            if (!n)
                haul_fatal(HAUL_EXIT_INTERNAL, "out of memory for %zu hard-link sources", cap);
            s->links = n;
            s->links_cap = cap;
        }
        s->links[s->nlinks++] = (link_source){NULL, 0, 0, 0};
    }
    if (parent->fd < 0)
        return;
    if (!s->overwrite && exists(parent->fd, e->name)) {
        warn(s, EEXIST, MSG_EXISTS);
        return;
    }
    int fd = haul_rfs_create_temp(parent->fd, f->tmp, make_file, NULL);
    if (fd < 0) {
        warn(s, -fd, "cannot create the file; not restored");
        return;
    }
    f->fd = fd;
}

static void drop_file(session *s)
{
    file_state *f = &s->file;
    close(f->fd);
    haul_rfs_discard_temp(f->dirfd, f->tmp);
    f->fd = -1;
}

static void read_data(session *s, size_t len)
{
    file_state *f = &s->file;
    entry *e = &s->e;
    if (!f->active)
        violation("RESTORE_DATA outside of a file");
    if (len < DATA_HEAD)
        violation("RESTORE_DATA body of %zu bytes is too short", len);
    size_t data = len - DATA_HEAD;
    if (data > s->max_data)
        violation("RESTORE_DATA of %zu bytes exceeds the max data of %u bytes", data, s->max_data);
    uint8_t head[DATA_HEAD];
    haul_in_read(&s->in, head, sizeof head);
    unsigned compression = head[0];
    uint32_t raw = (uint32_t)head[1] | (uint32_t)head[2] << 8 | (uint32_t)head[3] << 16 | (uint32_t)head[4] << 24;
    const char *p = shown(e->path, e->plen);
    if (raw < 1 || raw > s->max_data)
        violation("RESTORE_DATA for \"%s\": raw length %u is not in 1..%u", p, raw, s->max_data);
    if (raw > e->size - f->received)
        violation("RESTORE_DATA for \"%s\" goes beyond its size of %llu bytes", p, (unsigned long long)e->size);
    if (compression == 0) {
        if (data != raw)
            violation("RESTORE_DATA for \"%s\": %zu data bytes, but a raw length of %u", p, data, raw);
        haul_in_read(&s->in, s->raw, raw);
    } else if (compression == 1) {
        if (!haul_compress_available())
            violation("RESTORE_DATA for \"%s\" is zstd-compressed, but this probe has no zstd (HELLO feature bit 1 is 0)", p);
        if (data > raw)
            violation("RESTORE_DATA for \"%s\": %zu compressed bytes for a raw length of %u", p, data, raw);
        haul_in_read(&s->in, s->packed, data);
        if (haul_decompress_exact(s->packed, data, s->raw, raw) != 0)
            violation("RESTORE_DATA for \"%s\" is not one zstd frame of exactly %u bytes", p, raw);
    } else {
        violation("RESTORE_DATA for \"%s\": unknown compression %u", p, compression);
    }
    if (f->fd >= 0) {
        int r = haul_rfs_write_sparse(f->fd, s->raw, raw, f->received);
        if (r != 0) {
            warn(s, -r, "cannot write the file; not restored");
            drop_file(s);
        }
    }
    f->received += raw;
}

/* Length, owner, mode and mtime on the descriptor, then into place. */
static int finish_file(session *s)
{
    entry *e = &s->e;
    file_state *f = &s->file;
    struct stat st;
    if (ftruncate(f->fd, (off_t)e->size) != 0 || fstat(f->fd, &st) != 0) {
        warn(s, errno, "cannot set the file's length; not restored");
        drop_file(s);
        return 0;
    }
    int err = 0;
    const char *failed = set_fd_metadata(s, f->fd, e->mode, e->uid, e->gid, e->mtime, &err);
    if (close(f->fd) != 0) {
        /* Some file systems (NFS) report a failed write only now. */
        f->fd = -1;
        warn(s, errno, "cannot write the file; not restored");
        haul_rfs_discard_temp(f->dirfd, f->tmp);
        return 0;
    }
    f->fd = -1;
    if (!place(s, f->dirfd, f->tmp))
        return 0;
    if (failed)
        warnf(s, err, "restored, but its %s could not be set", failed);
    if (e->link_id != 0) {
        link_source *src = &s->links[e->link_id - 1];
        if (s->link_bytes + e->plen + 1 > LINK_PATH_BUDGET) {
            src->over_budget = 1;
        } else if ((src->path = malloc(e->plen + 1)) != NULL) {
            memcpy(src->path, e->path, e->plen + 1);
            s->link_bytes += e->plen + 1;
            src->dev = st.st_dev;
            src->ino = st.st_ino;
        }
    }
    s->bytes += e->size;
    return 1;
}

static void read_file_end(session *s, size_t len)
{
    file_state *f = &s->file;
    entry *e = &s->e;
    if (!f->active)
        violation("RESTORE_FILE_END outside of a file");
    if (len != 1)
        violation("RESTORE_FILE_END body is not 1 byte");
    uint8_t status;
    haul_in_read(&s->in, &status, 1);
    if (status > 1)
        violation("RESTORE_FILE_END for \"%s\": unknown status %u", shown(e->path, e->plen), status);
    if (status == 0 && f->received != e->size)
        violation("RESTORE_FILE_END of \"%s\" after %llu bytes, but its entry says %llu",
                  shown(e->path, e->plen), (unsigned long long)f->received, (unsigned long long)e->size);
    f->active = 0;
    if (f->fd >= 0 && status == 1)
        drop_file(s); /* the server could not read the rest: it reports the file itself */
    if (f->fd >= 0 && finish_file(s))
        s->files++;
    else
        s->left_out++;
}

/* ---- the session ----------------------------------------------------------- */

static void on_entry(session *s, size_t len)
{
    if (s->file.active)
        violation("RESTORE_ENTRY before RESTORE_FILE_END of \"%s\"", shown(s->e.path, s->e.plen));
    read_entry(s, len);
    s->entries++;
    level *parent = enter_parent(s);
    int done = 0;
    switch (s->e.kind) {
    case KIND_FILE:
        begin_file(s, parent);
        return; /* counted at its RESTORE_FILE_END */
    case KIND_DIR:
        restore_dir(s, parent);
        return; /* counted there */
    case KIND_SYMLINK:
        if ((done = restore_node(s, parent)))
            s->symlinks++;
        break;
    case KIND_HARDLINK:
        if ((done = restore_hardlink(s, parent)))
            s->hardlinks++;
        break;
    default:
        if ((done = restore_node(s, parent)))
            s->specials++;
        break;
    }
    if (!done)
        s->left_out++;
}

static void read_restore(session *s)
{
    size_t len;
    uint8_t type = haul_in_frame(&s->in, &len);
    if (type != HAUL_MSG_RESTORE)
        violation("expected RESTORE (0x40), got frame type 0x%02x", type);
    static uint8_t body[RESTORE_MAX_BODY];
    haul_cursor c;
    read_body(s, body, sizeof body, len, "RESTORE", &c);
    unsigned flags = haul_cur_u8(&c);
    uint32_t max = haul_cur_u32(&c);
    size_t tlen;
    const uint8_t *t = haul_cur_bytes16(&c, &tlen);
    if (haul_cur_end(&c) != 0)
        violation("RESTORE body does not parse exactly");
    if (flags & ~(unsigned)FLAG_OVERWRITE)
        violation("RESTORE flags 0x%02x has unknown bits", flags);
    if (max < 1 || max > HAUL_MAX_CHUNK)
        violation("RESTORE max data %u is not in 1..%u", max, HAUL_MAX_CHUNK);
    if (haul_path_valid((const char *)t, tlen) != 0)
        violation("RESTORE target is not an absolute, normalised path of at most 4096 bytes");
    char target[HAUL_MAX_PATH + 1];
    memcpy(target, t, tlen);
    target[tlen] = 0;
    s->overwrite = flags & FLAG_OVERWRITE;
    s->max_data = max;
    s->raw = malloc(max);
    s->packed = malloc(max);
    if (!s->raw || !s->packed)
        haul_fatal(HAUL_EXIT_INTERNAL, "out of memory for two data buffers of %u bytes", max);
    char why[HAUL_MAX_PATH + 256];
    int fd = haul_rfs_open_target(target, why, sizeof why);
    if (fd < 0)
        haul_fatal(HAUL_EXIT_TARGET, "cannot restore into %s: %s", shown(target, tlen), why);
    s->stack[0] = (level){fd, 0, 0, 0, 0, 0, 0};
    s->depth = 0;
}

static void send_done(session *s)
{
    size_t body = 8 * 8 + 4 + 8 + 4 + 8;
    uint8_t *p = haul_out_frame(&s->out, HAUL_MSG_RESTORE_DONE, body, body);
    p = haul_put_u64(p, s->entries);
    p = haul_put_u64(p, s->files);
    p = haul_put_u64(p, s->dirs);
    p = haul_put_u64(p, s->symlinks);
    p = haul_put_u64(p, s->hardlinks);
    p = haul_put_u64(p, s->specials);
    p = haul_put_u64(p, s->left_out);
    p = haul_put_u64(p, s->bytes);
    p = haul_put_u32(p, (uint32_t)geteuid());
    p = haul_put_u64(p, s->owners_not_set);
    p = haul_put_u32(p, (uint32_t)s->owner_errno);
    haul_put_u64(p, s->setid_dropped);
    haul_out_commit(&s->out, body);
}

int haul_restore_main(int argc, char **argv)
{
    (void)argv;
    if (argc != 1) {
        fprintf(stderr, "usage: haul-probe --restore  (speaks the restore session on stdin/stdout)\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    haul_raise_fd_limit();
    umask(0); /* modes are set exactly as the server sends them */
    /* The restored data comes in on stdin: a 1 MiB pipe (the unprivileged maximum) lets sshd hand
     * it over in large writes instead of buffering it 64 KiB at a time (best effort). */
    fcntl(STDIN_FILENO, F_SETPIPE_SZ, (int)IN_BUFFER);

    static session sess;
    session *s = &sess;
    s->euid = geteuid();
    s->is_root = s->euid == 0;
    haul_out_init(&s->out, STDOUT_FILENO, OUT_BUFFER);
    haul_in_init(&s->in, STDIN_FILENO, IN_BUFFER, &s->out);
    s->in.end_of_session = "RESTORE_END";

    haul_send_hello(&s->out);
    haul_out_flush(&s->out);
    read_restore(s);
    for (;;) {
        size_t len;
        uint8_t type = haul_in_frame(&s->in, &len);
        if (type == HAUL_MSG_RESTORE_ENTRY) {
            on_entry(s, len);
        } else if (type == HAUL_MSG_RESTORE_DATA) {
            read_data(s, len);
        } else if (type == HAUL_MSG_RESTORE_FILE_END) {
            read_file_end(s, len);
        } else if (type == HAUL_MSG_RESTORE_END) {
            if (len != 0)
                violation("RESTORE_END body is not empty");
            if (s->file.active)
                violation("RESTORE_END before RESTORE_FILE_END of \"%s\"", shown(s->e.path, s->e.plen));
            break;
        } else {
            violation("frame type 0x%02x is not part of a restore session", type);
        }
        haul_out_flush_if_older(&s->out, FLUSH_AFTER_MS);
    }
    /* Directories get their mode and mtime after their contents, innermost first. */
    s->e.plen = 0;
    while (s->depth > 0)
        leave_dir(s);
    close(s->stack[0].fd);
    send_done(s);
    haul_out_flush(&s->out);

    for (size_t i = 0; i < s->nlinks; i++)
        free(s->links[i].path);
    free(s->links);
    free(s->raw);
    free(s->packed);
    haul_in_free(&s->in);
    haul_out_free(&s->out);
    return HAUL_EXIT_OK;
}
