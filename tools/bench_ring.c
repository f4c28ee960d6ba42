/*
 * bench_ring.c: what one tensor-bundle handoff between two pinned worker
 * lcores costs, made the way laminad makes it: the producer takes a bundle
 * from the edge's mempool, writes its header, and enqueues the pointer on
 * a single-producer/single-consumer rte_ring; the consumer dequeues it,
 * reads the header and puts the bundle back in the pool.  Bundles are the
 * size of a small cut (4 KiB of tensors); only pointers move.
 *
 *   stream   producer and consumer run flat out; ns per bundle
 *   pingpong one burst there and back through a second ring; half the
 *            round trip, per burst
 *
 * Bursts of 1 and 32; each figure is the median of 9 runs.  EAL runs
 * without hugepages or shared files; the two lcores busy-poll for about a
 * second in all.
 *
 *   build-dp/tools/bench_ring [CPU_A CPU_B]
 */
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <rte_cycles.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_launch.h>
#include <rte_lcore.h>
#include <rte_mempool.h>
#include <rte_pause.h>
#include <rte_ring.h>

#define RUNS 9
#define BUNDLE 4096
#define STREAM_N 400000
#define PINGPONG_N 20000

struct hdr {
	uint64_t request_id, conn, t_in;
};

struct bench {
	struct rte_ring *to, *back;
	struct rte_mempool *pool;
	unsigned burst;
	long n;
	int mode; /* 0 stream, 1 pingpong */
	volatile int go, done, quit;
	uint64_t sum;
};

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

/* The consumer: dequeue, read, give back (stream) or send back. */
static int consumer(void *arg)
{
	struct bench *b = arg;
	void *objs[32];
	while (!b->quit) {
		if (!b->go) {
			rte_pause();
			continue;
		}
		long got = 0;
		while (got < b->n) {
			unsigned n = rte_ring_sc_dequeue_burst(b->to, objs,
							       b->burst, NULL);
			if (!n) {
				rte_pause();
				continue;
			}
			for (unsigned i = 0; i < n; i++)
				b->sum += ((struct hdr *)objs[i])->request_id;
			if (b->mode == 0)
				rte_mempool_put_bulk(b->pool, objs, n);
			else
				while (rte_ring_sp_enqueue_bulk(b->back, objs, n,
								NULL) == 0)
					rte_pause();
			got += n;
		}
		b->go = 0;
		b->done = 1;
	}
	return 0;
}

/* One run on the main lcore; returns ns per bundle (stream) or per
 * one-way burst (pingpong). */
static double run(struct bench *b)
{
	void *objs[32];
	long sent = 0;
	b->done = 0;
	b->go = 1;
	uint64_t t0 = rte_get_tsc_cycles();
	while (sent < b->n) {
		unsigned n = b->burst;
		if (b->mode == 1) {
			/* the bundles come back; take them once from the pool */
			if (rte_mempool_get_bulk(b->pool, objs, n) != 0)
				return -1;
			for (long k = 0; k < b->n / n; k++) {
				for (unsigned i = 0; i < n; i++)
					((struct hdr *)objs[i])->request_id =
						(uint64_t)(sent + i);
				while (rte_ring_sp_enqueue_bulk(b->to, objs, n,
								NULL) == 0)
					rte_pause();
				while (rte_ring_sc_dequeue_bulk(b->back, objs,
								n, NULL) == 0)
					rte_pause();
				sent += n;
			}
			rte_mempool_put_bulk(b->pool, objs, n);
			break;
		}
		while (rte_mempool_get_bulk(b->pool, objs, n) != 0)
			rte_pause();
		for (unsigned i = 0; i < n; i++)
			((struct hdr *)objs[i])->request_id =
				(uint64_t)(sent + i);
		while (rte_ring_sp_enqueue_bulk(b->to, objs, n, NULL) == 0)
			rte_pause();
		sent += n;
	}
	while (!b->done)
		rte_pause();
	double dt = (double)(rte_get_tsc_cycles() - t0) /
		    (double)rte_get_tsc_hz();
	return b->mode == 0 ? dt / (double)b->n * 1e9
			    : dt / (double)(b->n / b->burst) / 2 * 1e9;
}

int main(int argc, char **argv)
{
	cpu_set_t set;
	int cpus[2], n = 0;
	char lcores[64], prefix[64], rundir[160];
	if (argc == 3) {
		cpus[0] = atoi(argv[1]);
		cpus[1] = atoi(argv[2]);
		n = 2;
	} else if (sched_getaffinity(0, sizeof(set), &set) == 0) {
		for (int c = 0; c < CPU_SETSIZE && n < 2; c++)
			if (CPU_ISSET(c, &set))
				cpus[n++] = c;
	}
	if (n < 2 || cpus[0] == cpus[1]) {
		fprintf(stderr, "bench_ring: needs two distinct cpus\n");
		return 1;
	}
	snprintf(lcores, sizeof(lcores), "0@%d,1@%d", cpus[0], cpus[1]);
	snprintf(prefix, sizeof(prefix), "lamina-bench-ring-%d",
		 (int)getpid());
	char *eal[] = { "bench_ring", "--lcores", lcores, "--no-huge", "-m",
			"128", "--no-pci", "--no-shconf", "--no-telemetry",
			"--file-prefix", prefix, "--log-level", "lib.*:error",
			NULL };
	if (rte_eal_init((int)(sizeof(eal) / sizeof(eal[0])) - 1, eal) < 0) {
		fprintf(stderr, "bench_ring: EAL did not start: %s\n",
			rte_strerror(rte_errno));
		return 1;
	}
	snprintf(rundir, sizeof(rundir), "%s", rte_eal_get_runtime_dir());
	struct bench b = { 0 };
	b.pool = rte_mempool_create("bench_bundles", 1023,
				    sizeof(struct hdr) + BUNDLE, 0, 0, NULL,
				    NULL, NULL, NULL, SOCKET_ID_ANY, 0);
	b.to = rte_ring_create("bench_to", 1024, SOCKET_ID_ANY,
			       RING_F_SP_ENQ | RING_F_SC_DEQ);
	b.back = rte_ring_create("bench_back", 1024, SOCKET_ID_ANY,
				 RING_F_SP_ENQ | RING_F_SC_DEQ);
	int rc = 1;
	if (!b.pool || !b.to || !b.back) {
		fprintf(stderr, "bench_ring: cannot create the pool or rings\n");
		goto out;
	}
	rte_eal_remote_launch(consumer, &b, rte_get_next_lcore(-1, 1, 0));
	printf("tensor-bundle handoff, cpu %d -> cpu %d, %d-byte bundles, "
	       "median of %d runs\n", cpus[0], cpus[1], BUNDLE, RUNS);
	printf("%-6s %-10s %14s %14s\n", "burst", "mode", "ns/bundle",
	       "ns/burst");
	for (int mode = 0; mode < 2; mode++)
		for (unsigned burst = 1; burst <= 32; burst *= 32) {
			double t[RUNS];
			b.mode = mode;
			b.burst = burst;
			b.n = mode == 0 ? STREAM_N : PINGPONG_N * (long)burst;
			for (int r = 0; r < RUNS; r++)
				if ((t[r] = run(&b)) < 0) {
					fprintf(stderr, "bench_ring: pool "
						"empty\n");
					goto stop;
				}
			qsort(t, RUNS, sizeof(double), cmp_double);
			double med = t[RUNS / 2];
			if (mode == 0)
				printf("%-6u %-10s %14.1f %14.1f\n", burst,
				       "stream", med, med * burst);
			else
				printf("%-6u %-10s %14.1f %14.1f\n", burst,
				       "pingpong", med / burst, med);
		}
	rc = 0;
stop:
	b.quit = 1;
	rte_eal_mp_wait_lcore();
out:
	rte_ring_free(b.to);
	rte_ring_free(b.back);
	rte_mempool_free(b.pool);
	rte_eal_cleanup();
	/* the run folder is empty after cleanup with --no-shconf */
	rmdir(rundir);
	return rc;
}
