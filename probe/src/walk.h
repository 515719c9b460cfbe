/* The tree walk of a backup (docs/probe-protocol.md, "Order"): requested
 * paths in component order, ancestors first, then each path depth first in
 * pre-order with the entries of a directory sorted by their raw name bytes.
 * Symlinks are never followed: every step is an openat/fstatat relative to an
 * already open directory, with O_NOFOLLOW / AT_SYMLINK_NOFOLLOW. */
#ifndef HAUL_WALK_H
#define HAUL_WALK_H

#include <stddef.h>
#include <sys/stat.h>

#define HAUL_WALK_ANCESTOR 2 /* the ENTRY flag bit */

typedef struct {
    void *arg;
    /* One entry, in walk order. dirfd and name locate it (for openat and
     * readlinkat), path is its full path (NUL-terminated, pathlen bytes), st
     * its lstat. flags: HAUL_WALK_ANCESTOR or 0. Directories are entered
     * after this returns. */
    void (*entry)(void *arg, int dirfd, const char *name, const char *path, size_t pathlen,
                  const struct stat *st, unsigned flags);
    /* After a directory given to entry (not an ancestor): its contents were
     * walked, or could not be, or were not entered (another file system). */
    void (*dir_end)(void *arg);
    /* A problem the server should hear about (a WARN frame). */
    void (*warn)(void *arg, const char *path, size_t pathlen, int err, const char *msg);
    /* Called often between entries: poll stdin, flush output. */
    void (*tick)(void *arg);
} haul_walk_ops;

typedef struct {
    const char *const *excludes; /* fnmatch(3) patterns, see the protocol */
    size_t n_excludes;
    int one_file_system;
} haul_walk_opts;

/* Checks a path as the protocol wants it: absolute, at most 4096 bytes, no
 * NUL, no empty, "." or ".." component, no trailing "/" (except "/" itself).
 * Returns 0 or -1. */
int haul_path_valid(const char *p, size_t n);

/* Compares two valid paths component by component (raw bytes, a prefix first):
 * the order of a depth-first pre-order walk with sorted directories. */
int haul_path_cmp(const char *a, const char *b);

/* Walks the requested paths (each valid; they are sorted and any path at or
 * below another is dropped, in place: paths is permuted). */
void haul_walk(const haul_walk_opts *opts, const char **paths, size_t npaths,
               const haul_walk_ops *ops);

/* openat with O_NOATIME, retried without it on EPERM (files of other users). */
int haul_open_noatime(int dirfd, const char *name, int flags);

/* Opens a valid absolute path for reading without following a symlink in any
 * component. Returns the descriptor or -errno. */
int haul_open_path_nofollow(const char *path);

#endif
