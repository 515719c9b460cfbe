/* What the probe's sessions (--serve, --restore) share besides framing: the
 * HELLO that opens each one, WARN frames, and the descriptor limit. */
#ifndef HAUL_SESSION_H
#define HAUL_SESSION_H

#include "protocol.h"

#include <stddef.h>

#define HAUL_WARN_MAX_MESSAGE 1024

/* HELLO: magic, protocol version, probe version, architecture, features
 * (bit 0 SHA extensions in use, bit 1 zstd). */
void haul_send_hello(haul_out *out);

/* WARN: path (cut at 4096 bytes), errno, message (cut at 1024 bytes). */
void haul_send_warn(haul_out *out, const char *path, size_t plen, int err, const char *msg);

/* A path can be 2048 levels deep and a session keeps one directory open per
 * level: raise the soft RLIMIT_NOFILE towards 4200 where the hard limit allows. */
void haul_raise_fd_limit(void);

#endif
