#define _GNU_SOURCE
#include "protocol.h"

#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

void haul_fatal(int status, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fprintf(stderr, "haul-probe: %s\n", msg);
    exit(status);
}

uint8_t *haul_put_u8(uint8_t *p, uint8_t v)
{
    *p = v;
    return p + 1;
}

uint8_t *haul_put_u16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    return p + 2;
}

uint8_t *haul_put_u32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
    return p + 4;
}

uint8_t *haul_put_u64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
    return p + 8;
}

uint8_t *haul_put_bytes(uint8_t *p, const void *src, size_t n)
{
    if (n)
        memcpy(p, src, n);
    return p + n;
}

uint8_t *haul_put_bytes16(uint8_t *p, const void *src, size_t n)
{
    return haul_put_bytes(haul_put_u16(p, (uint16_t)n), src, n);
}

uint64_t haul_get_u64le(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ---- output ------------------------------------------------------------ */

static void write_all(int fd, const uint8_t *p, size_t n)
{
    while (n > 0) {
        ssize_t r = write(fd, p, n);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            haul_fatal(HAUL_EXIT_CHANNEL, "cannot write stdout (%s): the server is gone; ending",
                       strerror(errno));
        }
        if (r == 0)
            haul_fatal(HAUL_EXIT_CHANNEL, "cannot write stdout: write returned 0; ending");
        p += r;
        n -= (size_t)r;
    }
}

void haul_out_init(haul_out *o, int fd, size_t cap)
{
    o->fd = fd;
    o->cap = cap;
    o->len = 0;
    o->buf = malloc(cap);
    if (!o->buf)
        haul_fatal(HAUL_EXIT_INTERNAL, "out of memory (output buffer of %zu bytes)", cap);
    o->last_flush_ns = now_ns();
}

void haul_out_free(haul_out *o)
{
    free(o->buf);
    o->buf = NULL;
}

void haul_out_flush(haul_out *o)
{
    if (o->len)
        write_all(o->fd, o->buf, o->len);
    o->len = 0;
    o->last_flush_ns = now_ns();
}

void haul_out_flush_if_older(haul_out *o, unsigned ms)
{
    if (o->len && now_ns() - o->last_flush_ns >= (uint64_t)ms * 1000000u)
        haul_out_flush(o);
}

uint8_t *haul_out_reserve(haul_out *o, size_t n)
{
    if (n > o->cap)
        haul_fatal(HAUL_EXIT_INTERNAL, "internal error: %zu bytes do not fit the output buffer", n);
    if (o->cap - o->len < n)
        haul_out_flush(o);
    return o->buf + o->len;
}

void haul_out_commit(haul_out *o, size_t n)
{
    o->len += n;
}

void haul_out_bytes(haul_out *o, const void *src, size_t n)
{
    if (n <= o->cap - o->len) {
        if (n)
            memcpy(o->buf + o->len, src, n);
        o->len += n;
        return;
    }
    haul_out_flush(o);
    if (n >= o->cap / 2) {
        write_all(o->fd, src, n); /* a whole chunk: no copy */
        return;
    }
    memcpy(o->buf, src, n);
    o->len = n;
}

uint8_t *haul_out_frame(haul_out *o, uint8_t type, size_t body_len, size_t head_room)
{
    uint8_t *p = haul_out_reserve(o, 5 + head_room);
    p = haul_put_u32(p, (uint32_t)(body_len + 1));
    *p++ = type;
    o->len += 5;
    return p;
}

/* ---- input ------------------------------------------------------------- */

void haul_in_init(haul_in *in, int fd, size_t cap, haul_out *out)
{
    in->fd = fd;
    in->cap = cap;
    in->start = in->end = 0;
    in->out = out;
    in->end_of_session = "FINISH";
    in->buf = malloc(cap);
    if (!in->buf)
        haul_fatal(HAUL_EXIT_INTERNAL, "out of memory (input buffer of %zu bytes)", cap);
}

void haul_in_free(haul_in *in)
{
    free(in->buf);
    in->buf = NULL;
}

static void closed(const haul_in *in)
{
    haul_fatal(HAUL_EXIT_CHANNEL, "stdin closed before %s: the server ended the session; ending",
               in->end_of_session);
}

/* One read(2) into the free tail of the buffer; returns bytes read (0 on EINTR/EAGAIN). */
static size_t read_some(haul_in *in)
{
    if (in->start == in->end)
        in->start = in->end = 0;
    if (in->end == in->cap && in->start > 0) {
        memmove(in->buf, in->buf + in->start, in->end - in->start);
        in->end -= in->start;
        in->start = 0;
    }
    ssize_t r = read(in->fd, in->buf + in->end, in->cap - in->end);
    if (r == 0)
        closed(in);
    if (r < 0) {
        if (errno == EINTR || errno == EAGAIN)
            return 0;
        haul_fatal(HAUL_EXIT_CHANNEL, "cannot read stdin (%s); ending", strerror(errno));
    }
    in->end += (size_t)r;
    return (size_t)r;
}

void haul_in_poll(haul_in *in)
{
    struct pollfd pfd = {.fd = in->fd, .events = POLLIN};
    int r = poll(&pfd, 1, 0);
    if (r <= 0)
        return;
    int room = in->end - in->start < in->cap;
    if (room && (pfd.revents & (POLLIN | POLLHUP | POLLERR)))
        read_some(in);
    else if (pfd.revents & (POLLHUP | POLLERR | POLLNVAL))
        closed(in); /* nothing more can be taken in and the writer is gone */
}

void haul_in_read(haul_in *in, void *dst, size_t n)
{
    uint8_t *d = dst;
    while (n > 0) {
        size_t have = in->end - in->start;
        if (have == 0) {
            haul_out_flush(in->out);
            if (n >= in->cap) {
                /* A large body: straight into the caller's memory. */
                ssize_t r = read(in->fd, d, n);
                if (r == 0)
                    closed(in);
                if (r < 0) {
                    if (errno == EINTR || errno == EAGAIN)
                        continue;
                    haul_fatal(HAUL_EXIT_CHANNEL, "cannot read stdin (%s); ending", strerror(errno));
                }
                d += r;
                n -= (size_t)r;
                continue;
            }
            read_some(in);
            continue;
        }
        size_t k = have < n ? have : n;
        memcpy(d, in->buf + in->start, k);
        in->start += k;
        d += k;
        n -= k;
    }
}

uint8_t haul_in_frame(haul_in *in, size_t *body_len)
{
    uint8_t head[5];
    haul_in_read(in, head, 4);
    uint32_t len = (uint32_t)head[0] | (uint32_t)head[1] << 8 | (uint32_t)head[2] << 16 |
                   (uint32_t)head[3] << 24;
    if (len < 1 || len > HAUL_MAX_FRAME)
        haul_fatal(HAUL_EXIT_PROTOCOL,
                   "protocol violation: frame of %u bytes from the server exceeds the limit of %u "
                   "(or is empty); ending", len, HAUL_MAX_FRAME);
    haul_in_read(in, head + 4, 1);
    *body_len = len - 1;
    return head[4];
}

/* ---- body parsing ------------------------------------------------------ */

void haul_cur_init(haul_cursor *c, const uint8_t *p, size_t n)
{
    c->p = p;
    c->left = n;
    c->bad = 0;
}

const uint8_t *haul_cur_bytes(haul_cursor *c, size_t n)
{
    if (c->bad || n > c->left) {
        c->bad = 1;
        return NULL;
    }
    const uint8_t *at = c->p;
    c->p += n;
    c->left -= n;
    return at;
}

static uint64_t get_le(haul_cursor *c, size_t n)
{
    const uint8_t *p = haul_cur_bytes(c, n);
    uint64_t v = 0;
    if (p)
        for (size_t i = n; i-- > 0;)
            v = v << 8 | p[i];
    return v;
}

uint8_t haul_cur_u8(haul_cursor *c) { return (uint8_t)get_le(c, 1); }
uint16_t haul_cur_u16(haul_cursor *c) { return (uint16_t)get_le(c, 2); }
uint32_t haul_cur_u32(haul_cursor *c) { return (uint32_t)get_le(c, 4); }
uint64_t haul_cur_u64(haul_cursor *c) { return get_le(c, 8); }

const uint8_t *haul_cur_bytes16(haul_cursor *c, size_t *n)
{
    *n = haul_cur_u16(c);
    const uint8_t *p = haul_cur_bytes(c, *n);
    if (!p)
        *n = 0;
    return p;
}

int haul_cur_end(const haul_cursor *c)
{
    return c->bad || c->left != 0 ? -1 : 0;
}
