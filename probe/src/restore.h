/* --restore: the probe's side of a restore session (docs/probe-protocol.md,
 * "Session: restore"): entries and their data arrive on stdin and are written
 * below a target directory, never outside it. */
#ifndef HAUL_RESTORE_H
#define HAUL_RESTORE_H

/* Speaks the restore session on stdin/stdout; diagnostics go to stderr. Exit
 * status: 0 after RESTORE_DONE, 2 usage, 1 internal error, 3 stdin ended before
 * RESTORE_END or stdout closed, 4 a malformed or unexpected server frame, 5 the
 * target directory cannot be opened or created. */
int haul_restore_main(int argc, char **argv);

#endif
