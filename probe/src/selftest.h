/* --selftest mode. */
#ifndef HAUL_SELFTEST_H
#define HAUL_SELFTEST_H

int haul_selftest_main(int argc, char **argv);

#endif
