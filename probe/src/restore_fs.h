/* The file-system side of --restore (docs/probe-protocol.md, "Session:
 * restore"): every operation is relative to an open directory descriptor and
 * never follows a symlink; entries are made under a temporary name and renamed
 * into place, replacing an existing entry only when asked to. */
#ifndef HAUL_RESTORE_FS_H
#define HAUL_RESTORE_FS_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define HAUL_TEMP_NAME_MAX 64

/* Opens the directory at `target` (an absolute, valid path) one component at a
 * time from "/", never following a symlink, creating missing components with
 * mode 0700. Returns its descriptor, or -1 with the reason in why. */
int haul_rfs_open_target(const char *target, char *why, size_t whylen);

/* Makes an entry under a fresh temporary name ".haul-restore-<pid>-<n>" in
 * dirfd: create(dirfd, name, arg) returns >= 0 or -1 with errno, and EEXIST
 * moves on to the next name. Returns what create returned, or -errno. The
 * name is remembered until haul_rfs_rename or haul_rfs_discard_temp, and removed
 * if the probe exits before that (a violation, the channel gone). */
int haul_rfs_create_temp(int dirfd, char tmp[HAUL_TEMP_NAME_MAX],
                         int (*create)(int dirfd, const char *name, void *arg), void *arg);

/* Removes the temporary entry tmp in dirfd. */
void haul_rfs_discard_temp(int dirfd, const char *tmp);

/* Renames tmp to name within dirfd: over an existing entry with overwrite, else
 * never replacing one (-EEXIST). Atomic either way. On failure the temporary
 * entry is removed. Returns 0 or -errno. */
int haul_rfs_rename(int dirfd, const char *tmp, const char *name, int overwrite);

/* Writes n bytes at offset off, leaving out 4 KiB blocks of zeros so that they
 * stay holes (the caller sets the final length). Returns 0 or -errno. */
int haul_rfs_write_sparse(int fd, const uint8_t *p, size_t n, uint64_t off);

/* The parent directory of the relative path rel (NUL-terminated, valid) below
 * rootfd, opened O_PATH one component at a time without following a symlink;
 * *name points at rel's last component. Returns the descriptor or -errno. */
int haul_rfs_open_parent(int rootfd, const char *rel, const char **name);

/* Nanoseconds since the epoch as a timespec (seconds rounded down). */
struct timespec haul_rfs_timespec(int64_t ns);

#endif
