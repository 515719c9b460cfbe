#define _GNU_SOURCE
#include "restore_fs.h"
#include "protocol.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef RENAME_NOREPLACE
#define RENAME_NOREPLACE 1
#endif

#define HOLE_BLOCK 4096

/* The one temporary entry that exists at any moment, removed at exit if still there. */
static struct {
    int dirfd;
    char name[HAUL_TEMP_NAME_MAX];
    int registered;
} pending = {-1, "", 0};

static void remove_pending(void)
{
    if (pending.dirfd >= 0)
        unlinkat(pending.dirfd, pending.name, 0);
    pending.dirfd = -1;
}

int haul_rfs_open_target(const char *target, char *why, size_t whylen)
{
    int dir = open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir < 0) {
        snprintf(why, whylen, "cannot open / (%s)", strerror(errno));
        return -1;
    }
    char comp[HAUL_MAX_PATH + 1];
    const char *p = target + 1;
    while (*p) {
        const char *slash = strchr(p, '/');
        size_t len = slash ? (size_t)(slash - p) : strlen(p);
        memcpy(comp, p, len);
        comp[len] = 0;
        int fd = openat(dir, comp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0 && errno == ENOENT) {
            if (mkdirat(dir, comp, 0700) != 0 && errno != EEXIST) {
                int err = errno;
                snprintf(why, whylen, "cannot create %.*s (%s)", (int)(p + len - target), target,
                         strerror(err));
                close(dir);
                return -1;
            }
            fd = openat(dir, comp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        }
        if (fd < 0) {
            int err = errno;
            struct stat st;
            int is_link = fstatat(dir, comp, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(st.st_mode);
            int shown = (int)(p + len - target);
            if (is_link)
                snprintf(why, whylen, "%.*s is a symlink, and the probe never follows one: give the "
                         "real path", shown, target);
            else if (err == ENOTDIR)
                snprintf(why, whylen, "%.*s is not a directory", shown, target);
            else
                snprintf(why, whylen, "cannot open %.*s (%s)", shown, target, strerror(err));
            close(dir);
            return -1;
        }
        close(dir);
        dir = fd;
        p += len;
        if (*p == '/')
            p++;
    }
    return dir;
}

int haul_rfs_create_temp(int dirfd, char tmp[HAUL_TEMP_NAME_MAX],
                         int (*create)(int dirfd, const char *name, void *arg), void *arg)
{
    static unsigned long counter;
    if (!pending.registered) {
        atexit(remove_pending);
        pending.registered = 1;
    }
    /* The names are predictable, so someone else may hold one: EEXIST just moves on. */
    for (int attempt = 0; attempt < 1000; attempt++) {
        snprintf(tmp, HAUL_TEMP_NAME_MAX, ".haul-restore-%ld-%lu", (long)getpid(), ++counter);
        int r = create(dirfd, tmp, arg);
        if (r >= 0) {
            pending.dirfd = dirfd;
            memcpy(pending.name, tmp, HAUL_TEMP_NAME_MAX);
            return r;
        }
        if (errno != EEXIST)
            return -errno;
    }
    return -EEXIST;
}

void haul_rfs_discard_temp(int dirfd, const char *tmp)
{
    unlinkat(dirfd, tmp, 0);
    pending.dirfd = -1;
}

int haul_rfs_rename(int dirfd, const char *tmp, const char *name, int overwrite)
{
    int err = 0;
    if (overwrite) {
        if (renameat(dirfd, tmp, dirfd, name) != 0)
            err = errno;
    } else if (syscall(SYS_renameat2, dirfd, tmp, dirfd, name, RENAME_NOREPLACE) != 0) {
        err = errno;
        if (err == EINVAL || err == ENOSYS) {
            /* A file system (or kernel) without RENAME_NOREPLACE: a hard link never replaces either. */
            err = linkat(dirfd, tmp, dirfd, name, 0) == 0 ? 0 : errno;
            if (err == 0)
                unlinkat(dirfd, tmp, 0);
        }
    }
    if (err)
        unlinkat(dirfd, tmp, 0);
    pending.dirfd = -1;
    return -err;
}

static int write_all_at(int fd, const uint8_t *p, size_t n, uint64_t off)
{
    while (n > 0) {
        ssize_t w = pwrite(fd, p, n, (off_t)off);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        p += w;
        n -= (size_t)w;
        off += (uint64_t)w;
    }
    return 0;
}

static int all_zero(const uint8_t *p, size_t n)
{
    return n == 0 || (p[0] == 0 && memcmp(p, p + 1, n - 1) == 0);
}

int haul_rfs_write_sparse(int fd, const uint8_t *p, size_t n, uint64_t off)
{
    size_t run = 0; /* start of the pending run of data */
    int in_run = 0;
    for (size_t at = 0; at < n; at += HOLE_BLOCK) {
        size_t len = n - at < HOLE_BLOCK ? n - at : HOLE_BLOCK;
        int zero = all_zero(p + at, len);
        if (!zero && !in_run) {
            run = at;
            in_run = 1;
        } else if (zero && in_run) {
            int r = write_all_at(fd, p + run, at - run, off + run);
            if (r)
                return r;
            in_run = 0;
        }
    }
    return in_run ? write_all_at(fd, p + run, n - run, off + run) : 0;
}

int haul_rfs_open_parent(int rootfd, const char *rel, const char **name)
{
    int dir = dup(rootfd);
    if (dir < 0)
        return -errno;
    char comp[HAUL_MAX_PATH + 1];
    const char *p = rel;
    for (;;) {
        const char *slash = strchr(p, '/');
        if (!slash)
            break;
        size_t len = (size_t)(slash - p);
        memcpy(comp, p, len);
        comp[len] = 0;
        int fd = openat(dir, comp, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        int err = errno;
        close(dir);
        if (fd < 0)
            return -err;
        dir = fd;
        p = slash + 1;
    }
    *name = p;
    return dir;
}

struct timespec haul_rfs_timespec(int64_t ns)
{
    struct timespec ts;
    int64_t sec = ns / 1000000000, rem = ns % 1000000000;
    if (rem < 0) {
        rem += 1000000000;
        sec--;
    }
    ts.tv_sec = (time_t)sec;
    ts.tv_nsec = (long)rem;
    return ts;
}
