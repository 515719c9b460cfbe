#define _GNU_SOURCE
#include "walk.h"
#include "protocol.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int haul_path_valid(const char *p, size_t n)
{
    if (n < 1 || n > HAUL_MAX_PATH || p[0] != '/' || memchr(p, 0, n))
        return -1;
    if (n == 1)
        return 0;
    if (p[n - 1] == '/')
        return -1;
    /* Every component between two slashes (or the end) is non-empty, not "." or "..". */
    for (size_t i = 1, start = 1; i <= n; i++) {
        if (i == n || p[i] == '/') {
            size_t len = i - start;
            if (len == 0 || (len == 1 && p[start] == '.') ||
                (len == 2 && p[start] == '.' && p[start + 1] == '.'))
                return -1;
            start = i + 1;
        }
    }
    return 0;
}

/* Sort key of one position: the end first, then the separator, then bytes. */
static int rank(unsigned char c)
{
    return c == 0 ? 0 : c == '/' ? 1 : (int)c + 1;
}

int haul_path_cmp(const char *a, const char *b)
{
    const unsigned char *x = (const unsigned char *)a, *y = (const unsigned char *)b;
    for (;; x++, y++) {
        int rx = rank(*x), ry = rank(*y);
        if (rx != ry)
            return rx < ry ? -1 : 1;
        if (!*x)
            return 0;
    }
}

static int path_cmp_q(const void *a, const void *b)
{
    return haul_path_cmp(*(const char *const *)a, *(const char *const *)b);
}

/* Is q equal to p or below it? */
static int covers(const char *p, const char *q)
{
    size_t n = strlen(p);
    if (n == 1)
        return 1; /* "/" covers everything */
    return strncmp(p, q, n) == 0 && (q[n] == 0 || q[n] == '/');
}

int haul_open_noatime(int dirfd, const char *name, int flags)
{
    int fd = openat(dirfd, name, flags | O_NOATIME);
    if (fd < 0 && errno == EPERM)
        fd = openat(dirfd, name, flags);
    return fd;
}

int haul_open_path_nofollow(const char *path)
{
    size_t n = strlen(path);
    if (haul_path_valid(path, n) != 0 || n == 1)
        return -EINVAL;
    char comp[HAUL_MAX_PATH + 1];
    int dir = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (dir < 0)
        return -errno;
    const char *p = path + 1;
    for (;;) {
        const char *slash = strchr(p, '/');
        size_t len = slash ? (size_t)(slash - p) : strlen(p);
        memcpy(comp, p, len);
        comp[len] = 0;
        int fd = slash ? openat(dir, comp, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
                       : haul_open_noatime(dir, comp, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
        int err = errno;
        close(dir);
        if (fd < 0)
            return -err;
        if (!slash)
            return fd;
        dir = fd;
        p = slash + 1;
    }
}

typedef struct {
    const haul_walk_opts *opts;
    const haul_walk_ops *ops;
    char path[HAUL_MAX_PATH + 1];
    size_t len; /* the root directory is the empty string here */
} walker;

static void warn(walker *w, int err, const char *msg)
{
    if (w->len == 0)
        w->ops->warn(w->ops->arg, "/", 1, err, msg);
    else
        w->ops->warn(w->ops->arg, w->path, w->len, err, msg);
}

static int excluded(const walker *w, const char *name)
{
    for (size_t i = 0; i < w->opts->n_excludes; i++) {
        const char *pat = w->opts->excludes[i];
        if (fnmatch(pat, pat[0] == '/' ? w->path : name, 0) == 0)
            return 1;
    }
    return 0;
}

static int name_cmp_q(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static void walk_dir(walker *w, int parent, const char *name, const struct stat *st, dev_t root_dev);

static void visit(walker *w, int dirfd, const char *name, const struct stat *st, dev_t root_dev)
{
    w->ops->entry(w->ops->arg, dirfd, name, w->path, w->len, st, 0);
    if (!S_ISDIR(st->st_mode))
        return;
    /* A mount point (one file system) is its own entry only. */
    if (!w->opts->one_file_system || st->st_dev == root_dev)
        walk_dir(w, dirfd, name, st, root_dev);
    if (w->ops->dir_end)
        w->ops->dir_end(w->ops->arg);
}

/* Lists, sorts and visits the entries of the open directory fd (which it closes);
 * w->path is the directory's path. */
static void walk_contents(walker *w, int fd, dev_t root_dev)
{
    DIR *d = fdopendir(fd);
    if (!d) {
        warn(w, errno, "cannot list directory; its contents are not backed up");
        close(fd);
        return;
    }
    char *arena = NULL;
    size_t used = 0, cap = 0, count = 0;
    for (;;) {
        errno = 0;
        struct dirent *e = readdir(d);
        if (!e) {
            if (errno)
                warn(w, errno, "error reading directory; some of its entries may be missing");
            break;
        }
        const char *n = e->d_name;
        if (n[0] == '.' && (n[1] == 0 || (n[1] == '.' && n[2] == 0)))
            continue;
        size_t len = strlen(n) + 1;
        if (cap - used < len) {
            size_t ncap = cap ? cap * 2 : 4096;
            while (ncap - used < len)
                ncap *= 2;
            char *na = realloc(arena, ncap);
            if (!na)
                haul_fatal(HAUL_EXIT_INTERNAL, "out of memory listing a directory of %zu entries", count);
            arena = na;
            cap = ncap;
        }
        memcpy(arena + used, n, len);
        used += len;
        count++;
    }
    const char **names = count ? malloc(count * sizeof *names) : NULL;
    if (count && !names)
        haul_fatal(HAUL_EXIT_INTERNAL, "out of memory listing a directory of %zu entries", count);
    for (size_t i = 0, off = 0; i < count; i++) {
        names[i] = arena + off;
        off += strlen(arena + off) + 1;
    }
    if (count > 1)
        qsort(names, count, sizeof *names, name_cmp_q);

    int dfd = dirfd(d);
    size_t base = w->len;
    for (size_t i = 0; i < count; i++) {
        const char *name = names[i];
        size_t nlen = strlen(name);
        w->ops->tick(w->ops->arg);
        if (base + 1 + nlen > HAUL_MAX_PATH) {
            char msg[320];
            snprintf(msg, sizeof msg, "entry skipped: its path would be longer than %d bytes: %.255s",
                     HAUL_MAX_PATH, name);
            warn(w, ENAMETOOLONG, msg);
            continue;
        }
        w->path[base] = '/';
        memcpy(w->path + base + 1, name, nlen + 1);
        w->len = base + 1 + nlen;
        if (!excluded(w, name)) {
            struct stat st;
            if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0)
                visit(w, dfd, name, &st, root_dev);
            else if (errno != ENOENT) /* vanished since readdir: simply not in this backup */
                warn(w, errno, "cannot stat; not backed up");
        }
        w->len = base;
        w->path[base] = 0;
    }
    free(names);
    free(arena);
    closedir(d);
}

static void walk_dir(walker *w, int parent, const char *name, const struct stat *st, dev_t root_dev)
{
    int fd = haul_open_noatime(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        warn(w, errno, "cannot open directory; its contents are not backed up");
        return;
    }
    struct stat now;
    if (fstat(fd, &now) != 0 || now.st_dev != st->st_dev || now.st_ino != st->st_ino) {
        warn(w, 0, "directory replaced during the backup; its contents are not backed up");
        close(fd);
        return;
    }
    walk_contents(w, fd, root_dev);
}

/* Ancestors of p, a requested path other than "/": confirmed to be directories
 * reached without a symlink, then sent (those not sent before), then p. */
static void walk_requested(walker *w, const char *p, char *sent, size_t *sent_len)
{
    size_t n = strlen(p), depth = 0;
    for (size_t i = 1; i < n; i++)
        depth += p[i] == '/';
    struct stat *anc = depth ? malloc(depth * sizeof *anc) : NULL;
    size_t *ends = depth ? malloc(depth * sizeof *ends) : NULL;
    if (depth && (!anc || !ends))
        haul_fatal(HAUL_EXIT_INTERNAL, "out of memory");
    char comp[HAUL_MAX_PATH + 1];
    int dir = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (dir < 0) {
        w->ops->warn(w->ops->arg, p, n, errno, "cannot open /; requested path not backed up");
        goto out;
    }
    const char *c = p + 1;
    for (size_t k = 0; k < depth; k++) {
        const char *slash = strchr(c, '/');
        size_t len = (size_t)(slash - c);
        memcpy(comp, c, len);
        comp[len] = 0;
        int fd = openat(dir, comp, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0 || fstat(fd, &anc[k]) != 0) {
            int err = errno;
            char msg[HAUL_MAX_PATH + 128];
            snprintf(msg, sizeof msg, "%s %.*s; requested path not backed up",
                     err == ENOTDIR ? "not a directory (symlinks are not followed):"
                                    : "cannot open ancestor", (int)(slash - p), p);
            w->ops->warn(w->ops->arg, p, n, err, msg);
            if (fd >= 0)
                close(fd);
            goto out;
        }
        close(dir);
        dir = fd;
        ends[k] = (size_t)(slash - p);
        c = slash + 1;
    }
    struct stat st;
    if (fstatat(dir, c, &st, AT_SYMLINK_NOFOLLOW) != 0) {
        w->ops->warn(w->ops->arg, p, n, errno,
                     errno == ENOENT ? "requested path not found" : "cannot stat requested path");
        goto out;
    }
    for (size_t k = 0; k < depth; k++) {
        size_t e = ends[k];
        int done = *sent_len >= e && memcmp(sent, p, e) == 0 && (*sent_len == e || sent[e] == '/');
        if (done)
            continue;
        memcpy(w->path, p, e);
        w->path[e] = 0;
        w->len = e;
        const char *name = strrchr(w->path, '/') + 1;
        w->ops->entry(w->ops->arg, -1, name, w->path, e, &anc[k], HAUL_WALK_ANCESTOR);
    }
    *sent_len = depth ? ends[depth - 1] : 0;
    memcpy(sent, p, *sent_len);
    sent[*sent_len] = 0;

    memcpy(w->path, p, n + 1);
    w->len = n;
    visit(w, dir, c, &st, st.st_dev);
out:
    if (dir >= 0)
        close(dir);
    free(anc);
    free(ends);
}

void haul_walk(const haul_walk_opts *opts, const char **paths, size_t npaths,
               const haul_walk_ops *ops)
{
    walker *w = malloc(sizeof *w);
    char *sent = malloc(HAUL_MAX_PATH + 1);
    if (!w || !sent)
        haul_fatal(HAUL_EXIT_INTERNAL, "out of memory");
    w->opts = opts;
    w->ops = ops;
    size_t sent_len = 0;
    sent[0] = 0;

    if (npaths > 1)
        qsort(paths, npaths, sizeof *paths, path_cmp_q);
    const char *last = NULL;
    for (size_t i = 0; i < npaths; i++) {
        const char *p = paths[i];
        if (last && covers(last, p))
            continue; /* already walked as part of an earlier path */
        last = p;
        ops->tick(ops->arg);
        if (strcmp(p, "/") == 0) {
            int fd = open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
            struct stat st;
            if (fd < 0 || fstat(fd, &st) != 0) {
                ops->warn(ops->arg, "/", 1, errno, "cannot open /; not backed up");
                if (fd >= 0)
                    close(fd);
                continue;
            }
            w->len = 0;
            w->path[0] = 0;
            walk_contents(w, fd, st.st_dev);
            continue;
        }
        walk_requested(w, p, sent, &sent_len);
    }
    free(sent);
    free(w);
}
