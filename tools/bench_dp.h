/*
 * bench_dp.h: what the two dataplane transport benchmarks, bench_transport
 * (between network namespaces) and bench_memif (between processes), share:
 * a monotonic clock, the --sizes list, and the line of frame and reassembly
 * counters printed after each bundle size.
 */
#ifndef LAMINA_TOOLS_BENCH_DP_H
#define LAMINA_TOOLS_BENCH_DP_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <dirent.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "transport_eth.h"

/** Seconds on the monotonic clock. */
static inline double bench_now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/**
 * Read a comma-separated list of sizes in bytes, each from lo to hi.
 * @return how many were read (at most max), or -1 with *bad pointing at
 *         the first that is not a number in range.
 */
static inline int bench_parse_sizes(const char *s, uint32_t *sizes, int max,
				    unsigned long lo, unsigned long hi,
				    const char **bad)
{
	int n = 0;
	for (char *end; *s && n < max; s = end + (*end == ',')) {
		unsigned long v = strtoul(s, &end, 10);
		if (end == s || v < lo || v > hi) {
			*bad = s;
			return -1;
		}
		sizes[n++] = (uint32_t)v;
	}
	return n;
}

/** Print the frames one end sent and the other received, and how the
 * receiver's reassembly fared. */
static inline void bench_print_counters(const lm_dp_eth_stats *tx,
					const lm_dp_eth_stats *rx,
					const lm_reasm_stats *rs)
{
	printf("  frames sent %llu, received %llu (not ours %llu, bad "
	       "%llu); reassembly: %llu complete, %llu duplicate, %llu "
	       "stale, %llu timed out, %llu evicted, %llu no buffer\n",
	       (unsigned long long)tx->tx_frames,
	       (unsigned long long)rx->rx_frames,
	       (unsigned long long)rx->rx_not_ours,
	       (unsigned long long)(rx->rx_bad + rx->rx_bad_checksum),
	       (unsigned long long)rs->completed,
	       (unsigned long long)rs->duplicate,
	       (unsigned long long)rs->stale,
	       (unsigned long long)rs->timed_out,
	       (unsigned long long)rs->evicted,
	       (unsigned long long)rs->no_buffer);
}

/** Remove what the EAL left in /var/run/dpdk/<prefix> (ours only). */
static inline void bench_remove_runtime_dir(const char *prefix)
{
	char dir[256], path[512];
	if (!prefix[0])
		return;
	snprintf(dir, sizeof(dir), "/var/run/dpdk/%s", prefix);
	DIR *d = opendir(dir);
	if (!d)
		return;
	for (struct dirent *de; (de = readdir(d));) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		unlink(path);
	}
	closedir(d);
	rmdir(dir);
}

#endif
