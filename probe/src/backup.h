/* --serve: the probe's side of a backup session (docs/probe-protocol.md). */
#ifndef HAUL_BACKUP_H
#define HAUL_BACKUP_H

/* Speaks the protocol on stdin/stdout; diagnostics go to stderr. Exit status:
 * 0 after DONE, 2 usage, 1 internal error (out of memory), 3 stdin ended
 * before FINISH or stdout closed, 4 a malformed or unexpected server frame. */
int haul_serve_main(int argc, char **argv);

#endif
