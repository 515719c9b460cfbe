/* Developer modes: chunk listing for cross-checks with the TypeScript
 * chunker, and throughput benchmarks. */
#ifndef HAUL_TOOLS_H
#define HAUL_TOOLS_H

int haul_chunk_boundaries_main(int argc, char **argv);
int haul_bench_sha_main(int argc, char **argv);
int haul_bench_chunk_main(int argc, char **argv);

#endif
