/*
 * handoff_portable.c: the same-device handoff measured without DPDK, for
 * a `lamina` built with -Ddataplane=disabled (handoff.c measures it with
 * the rte_ring the dataplane uses).  One pointer crosses between two
 * threads pinned to two cores through a single-producer single-consumer
 * slot, a cache line that bounces between the cores as an SP/SC ring's
 * slot and indices do; half the round trip is one handoff.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <string.h>

#include "cli.h"
#include "handoff.h"

struct pingpong {
	/* to: main -> echo; back: echo -> main.  Each store (release) pairs
	 * with the other thread's load (acquire) of the same slot. */
	_Alignas(64) _Atomic(void *) to;
	_Alignas(64) _Atomic(void *) back;
	_Alignas(64) atomic_int stop;
};

static void pin(int cpu)
{
	cpu_set_t s;
	CPU_ZERO(&s);
	CPU_SET(cpu, &s);
	pthread_setaffinity_np(pthread_self(), sizeof(s), &s);
}

static int echo_cpu;

static void *echo(void *arg)
{
	struct pingpong *p = arg;
	pin(echo_cpu);
	while (!atomic_load_explicit(&p->stop, memory_order_relaxed)) {
		void *obj = atomic_load_explicit(&p->to, memory_order_acquire);
		if (!obj)
			continue;
		atomic_store_explicit(&p->to, NULL, memory_order_relaxed);
		atomic_store_explicit(&p->back, obj, memory_order_release);
	}
	return NULL;
}

int lm_handoff_measure(double *us, lm_error *e)
{
	cpu_set_t set;
	int cores[2], n = 0;
	pthread_t th;
	static struct pingpong p;
	if (sched_getaffinity(0, sizeof(set), &set) != 0)
		return lm_fail(e, -errno, "cannot read the CPU affinity");
	for (int c = 0; c < CPU_SETSIZE && n < 2; c++)
		if (CPU_ISSET(c, &set))
			cores[n++] = c;
	if (n < 2)
		return lm_fail(e, -ENODEV, "measuring a ring handoff needs two "
			       "cores; this process may use one");
	memset(&p, 0, sizeof(p));
	echo_cpu = cores[1];
	if (pthread_create(&th, NULL, echo, &p))
		return lm_fail(e, -EAGAIN, "cannot start a thread");
	pin(cores[0]);
	enum { ROUNDS = 21, TRIPS = 20000 };
	double per[ROUNDS];
	for (int r = 0; r < ROUNDS; r++) {
		double t0 = cli_now();
		for (int i = 0; i < TRIPS; i++) {
			atomic_store_explicit(&p.to, &p, memory_order_release);
			while (!atomic_load_explicit(&p.back,
						     memory_order_acquire))
				;
			atomic_store_explicit(&p.back, NULL,
					      memory_order_relaxed);
		}
		per[r] = (cli_now() - t0) / (2.0 * TRIPS) * 1e6;
	}
	atomic_store(&p.stop, 1);
	pthread_join(th, NULL);
	/* back to every allowed cpu: the caller pins where it wants */
	pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
	cli_sort(per, ROUNDS);
	*us = per[ROUNDS / 2];
	return 0;
}
