/* haul-probe entry point: picks a mode from argv[1] and hands over.
 * A new mode is one line in `modes`. */
#include "compress.h"
#include "selftest.h"
#include "sha256.h"
#include "tools.h"
#include "backup.h"
#include "restore.h"
#include "version.h"

#include <stdio.h>
#include <string.h>

/* Each mode gets argv shifted so that argv[0] is the mode flag itself. */
typedef int (*mode_fn)(int argc, char **argv);

static int version_main(int argc, char **argv);
static int help_main(int argc, char **argv);

static const struct {
    const char *flag;
    const char *args;
    const char *help;
    mode_fn run;
} modes[] = {
    {"--version", "", "print version, architecture and build features", version_main},
    {"--help", "", "print this help", help_main},
    {"--serve", "", "speak the probe protocol on stdin/stdout (docs/probe-protocol.md)",
     haul_serve_main},
    {"--restore", "", "restore entries sent on stdin below a target directory (docs/probe-protocol.md)",
     haul_restore_main},
    {"--selftest", "", "run the built-in known-answer tests", haul_selftest_main},
    {"--chunk-boundaries", "KEYHEX MIN AVG MAX [NORMALIZATION] < file",
     "print 'offset length sha256' per chunk", haul_chunk_boundaries_main},
    {"--bench-sha", "[MiB]", "SHA-256 throughput of each path (default 1024 MiB)",
     haul_bench_sha_main},
    {"--bench-chunk", "[MiB]", "chunker throughput (default 1024 MiB)", haul_bench_chunk_main},
};

static void usage(FILE *f)
{
    fprintf(f, "usage: haul-probe MODE [ARGS]\n\nmodes:\n");
    for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++) {
        char left[64];
        snprintf(left, sizeof left, "%s %s", modes[i].flag, modes[i].args);
        fprintf(f, "  %-46s %s\n", left, modes[i].help);
    }
}

static int version_main(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    printf("haul-probe " HAUL_PROBE_VERSION " (" HAUL_ARCH ", %s, %s)\n",
           haul_sha256_impl_name(), haul_compress_name());
    return 0;
}

static int help_main(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    usage(stdout);
    return 0;
}

int main(int argc, char **argv)
{
    /* Settle the SHA-256 path (and read HAUL_PROBE_SHA) before any work. */
    haul_sha256_select(HAUL_SHA_AUTO);
    if (argc >= 2)
        for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++)
            if (strcmp(argv[1], modes[i].flag) == 0)
                return modes[i].run(argc - 1, argv + 1);
    usage(stderr);
    return 2;
}
