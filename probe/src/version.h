/* Probe version and target architecture, shared by --version and HELLO. */
#ifndef HAUL_VERSION_H
#define HAUL_VERSION_H

#define HAUL_PROBE_VERSION "0.1.0"

#if defined(__x86_64__)
#define HAUL_ARCH "x86_64"
#elif defined(__aarch64__)
#define HAUL_ARCH "aarch64"
#else
#define HAUL_ARCH "unknown"
#endif

#endif
