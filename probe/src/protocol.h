/* The probe protocol's framing (docs/probe-protocol.md): a buffered frame
 * writer on stdout, a bounded frame reader on stdin, and a body parser that
 * refuses to read past the end. Every failure of the channel itself is fatal:
 * the probe cannot do anything useful once its server is gone or confused. */
#ifndef HAUL_PROTOCOL_H
#define HAUL_PROTOCOL_H

#include <stddef.h>
#include <stdint.h>

#define HAUL_PROTOCOL_VERSION 4
#define HAUL_HELLO_MAGIC "HAULPRB1"

/* A frame's length field counts type + body. */
#define HAUL_MAX_FRAME (16u * 1024 * 1024 + 64u * 1024)
#define HAUL_MAX_PATH 4096
/* Largest chunk the protocol carries: a CHUNK_NEW of raw data must fit a frame. */
#define HAUL_MAX_CHUNK (16u * 1024 * 1024)

/* Exit statuses of --serve. */
#define HAUL_EXIT_OK 0
#define HAUL_EXIT_INTERNAL 1   /* out of memory and the like */
#define HAUL_EXIT_CHANNEL 3    /* stdin ended before FINISH, or stdout is closed */
#define HAUL_EXIT_PROTOCOL 4   /* the server sent a malformed or unexpected frame */
#define HAUL_EXIT_TARGET 5     /* --restore: the target directory cannot be opened or created */

enum {
    HAUL_MSG_HELLO = 0x01,
    HAUL_MSG_BACKUP = 0x10,
    HAUL_MSG_PREVIOUS = 0x11,
    HAUL_MSG_PREVIOUS_END = 0x12,
    HAUL_MSG_KNOWN = 0x13,
    HAUL_MSG_KNOWN_END = 0x14,
    HAUL_MSG_NEED = 0x15,
    HAUL_MSG_FINISH = 0x16,
    HAUL_MSG_ENTRY = 0x20,
    HAUL_MSG_CHUNK_NEW = 0x21,
    HAUL_MSG_CHUNK_KNOWN = 0x22,
    HAUL_MSG_FILE_END = 0x23,
    HAUL_MSG_CHUNK_GONE = 0x24,
    HAUL_MSG_CHUNK_REPEAT = 0x25,
    HAUL_MSG_UNCHANGED = 0x26,
    HAUL_MSG_WARN = 0x30,
    HAUL_MSG_WALK_DONE = 0x31,
    HAUL_MSG_DONE = 0x3f,
    /* the restore session (--restore) */
    HAUL_MSG_RESTORE = 0x40,
    HAUL_MSG_RESTORE_ENTRY = 0x41,
    HAUL_MSG_RESTORE_DATA = 0x42,
    HAUL_MSG_RESTORE_FILE_END = 0x43,
    HAUL_MSG_RESTORE_END = 0x44,
    HAUL_MSG_RESTORE_DONE = 0x50,
};

/* Prints "haul-probe: <message>" on stderr and exits with status. */
#if defined(__GNUC__)
__attribute__((noreturn, format(printf, 2, 3)))
#endif
void haul_fatal(int status, const char *fmt, ...);

/* Little-endian stores; each returns the position after the field. */
uint8_t *haul_put_u8(uint8_t *p, uint8_t v);
uint8_t *haul_put_u16(uint8_t *p, uint16_t v);
uint8_t *haul_put_u32(uint8_t *p, uint32_t v);
uint8_t *haul_put_u64(uint8_t *p, uint64_t v);
uint8_t *haul_put_bytes(uint8_t *p, const void *src, size_t n);
uint8_t *haul_put_bytes16(uint8_t *p, const void *src, size_t n); /* n <= 65535 */
uint64_t haul_get_u64le(const uint8_t *p);

/* ---- output ------------------------------------------------------------ */

typedef struct {
    int fd;
    uint8_t *buf;
    size_t cap, len;
    uint64_t last_flush_ns;
} haul_out;

void haul_out_init(haul_out *o, int fd, size_t cap);
void haul_out_free(haul_out *o);
void haul_out_flush(haul_out *o);
/* Writes what is buffered if something has waited longer than ms milliseconds,
 * so a slow walk still shows progress. */
void haul_out_flush_if_older(haul_out *o, unsigned ms);
/* Room for n (<= cap) contiguous bytes at the end of the buffer; fill it and
 * then haul_out_commit(n). */
uint8_t *haul_out_reserve(haul_out *o, size_t n);
void haul_out_commit(haul_out *o, size_t n);
/* Appends any number of bytes; large runs go straight to the descriptor. */
void haul_out_bytes(haul_out *o, const void *src, size_t n);
/* Starts a frame of the given body length: reserves and fills the 5-byte
 * header plus head_room more bytes for the caller's fields (returned). */
uint8_t *haul_out_frame(haul_out *o, uint8_t type, size_t body_len, size_t head_room);

/* ---- input ------------------------------------------------------------- */

typedef struct {
    int fd;
    uint8_t *buf;
    size_t cap, start, end;
    haul_out *out; /* flushed before every blocking read: never wait with answers unsent */
    const char *end_of_session; /* the frame after which stdin may close, for the message */
} haul_in;

/* end_of_session defaults to "FINISH" (the backup session). */
void haul_in_init(haul_in *in, int fd, size_t cap, haul_out *out);
void haul_in_free(haul_in *in);
/* Without blocking: takes in whatever stdin has ready (up to the buffer's
 * room) and ends the probe with HAUL_EXIT_CHANNEL if stdin has closed. */
void haul_in_poll(haul_in *in);
/* Blocking read of exactly n bytes; end of input is fatal (HAUL_EXIT_CHANNEL). */
void haul_in_read(haul_in *in, void *dst, size_t n);
/* Reads a frame header; returns the type and sets *body_len. A length of 0 or
 * above HAUL_MAX_FRAME is fatal (HAUL_EXIT_PROTOCOL). */
uint8_t haul_in_frame(haul_in *in, size_t *body_len);

/* ---- body parsing ------------------------------------------------------ */

typedef struct {
    const uint8_t *p;
    size_t left;
    int bad; /* set once anything was missing; every later read yields zeros */
} haul_cursor;

void haul_cur_init(haul_cursor *c, const uint8_t *p, size_t n);
uint8_t haul_cur_u8(haul_cursor *c);
uint16_t haul_cur_u16(haul_cursor *c);
uint32_t haul_cur_u32(haul_cursor *c);
uint64_t haul_cur_u64(haul_cursor *c);
/* Pointer to the next n bytes (NULL and bad if fewer remain). */
const uint8_t *haul_cur_bytes(haul_cursor *c, size_t n);
/* A bytes16 field: returns its bytes and sets *n. */
const uint8_t *haul_cur_bytes16(haul_cursor *c, size_t *n);
/* 0 if the body was consumed exactly, -1 if too short or with trailing bytes. */
int haul_cur_end(const haul_cursor *c);

#endif
