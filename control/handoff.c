/*
 * handoff.c: measure what it costs to hand a tensor bundle from one pinned
 * worker to the next on the same device: one pointer through a DPDK
 * single-producer/single-consumer rte_ring, the same handoff the dataplane
 * makes between stages.  The planner charges it per same-device transfer.
 *
 * A ping-pong between the main lcore and one worker lcore: the main lcore
 * enqueues a pointer, the worker dequeues it and sends it back; half the
 * round trip is one handoff.  EAL runs without hugepages, PCI or shared
 * config files.
 */
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_launch.h>
#include <rte_lcore.h>
#include <rte_log.h>
#include <rte_pause.h>
#include <rte_ring.h>

#include "cli.h"
#include "handoff.h"

struct pingpong {
	struct rte_ring *to, *back;
	volatile int stop;
};

static int echo(void *arg)
{
	struct pingpong *p = arg;
	void *obj;
	while (!p->stop) {
		if (rte_ring_sc_dequeue(p->to, &obj) != 0) {
			rte_pause();
			continue;
		}
		while (rte_ring_sp_enqueue(p->back, obj) != 0)
			rte_pause();
	}
	return 0;
}

int lm_handoff_measure(double *us, lm_error *e)
{
	cpu_set_t set;
	int cores[2], n = 0;
	char lcores[64], prefix[64], rundir[128];
	if (sched_getaffinity(0, sizeof(set), &set) != 0)
		return lm_fail(e, -errno, "cannot read the CPU affinity");
	for (int c = 0; c < CPU_SETSIZE && n < 2; c++)
		if (CPU_ISSET(c, &set))
			cores[n++] = c;
	if (n < 2)
		return lm_fail(e, -ENODEV, "measuring a ring handoff needs two "
			       "cores; this process may use one");
	snprintf(lcores, sizeof(lcores), "%d,%d", cores[0], cores[1]);
	/* A prefix of our own, so the run folder EAL makes can go after. */
	snprintf(prefix, sizeof(prefix), "lamina-bench-%d", (int)getpid());
	char *argv[] = { "lamina-bench", "-l", lcores, "--no-huge", "-m",
			 "64", "--no-pci", "--no-shconf", "--no-telemetry",
			 "--file-prefix", prefix, "--log-level", "lib.*:error",
			 NULL };
	int argc = (int)(sizeof(argv) / sizeof(argv[0])) - 1;
	if (rte_eal_init(argc, argv) < 0)
		return lm_fail(e, -rte_errno, "DPDK EAL did not start: %s",
			       rte_strerror(rte_errno));
	struct pingpong p = {
		rte_ring_create("lm_probe_to", 64, SOCKET_ID_ANY,
				RING_F_SP_ENQ | RING_F_SC_DEQ),
		rte_ring_create("lm_probe_back", 64, SOCKET_ID_ANY,
				RING_F_SP_ENQ | RING_F_SC_DEQ),
		0,
	};
	int rc = 0;
	if (!p.to || !p.back) {
		rc = lm_fail(e, -ENOMEM, "cannot create the probe rings");
		goto out;
	}
	unsigned worker = rte_get_next_lcore(-1, 1, 0);
	rte_eal_remote_launch(echo, &p, worker);
	enum { ROUNDS = 21, TRIPS = 20000 };
	double per[ROUNDS];
	void *obj = &p, *got;
	for (int r = 0; r < ROUNDS; r++) {
		double t0 = cli_now();
		for (int i = 0; i < TRIPS; i++) {
			while (rte_ring_sp_enqueue(p.to, obj) != 0)
				rte_pause();
			while (rte_ring_sc_dequeue(p.back, &got) != 0)
				rte_pause();
		}
		per[r] = (cli_now() - t0) / (2.0 * TRIPS) * 1e6;
	}
	p.stop = 1;
	rte_eal_mp_wait_lcore();
	cli_sort(per, ROUNDS);
	*us = per[ROUNDS / 2];
out:
	rte_ring_free(p.to);
	rte_ring_free(p.back);
	rte_eal_cleanup();
	snprintf(rundir, sizeof(rundir), "%s/%s", geteuid() == 0
		 ? "/var/run/dpdk" : getenv("XDG_RUNTIME_DIR") ?
		 getenv("XDG_RUNTIME_DIR") : "/tmp", prefix);
	rmdir(rundir); /* empty after cleanup; nothing else is ours */
	return rc;
}
