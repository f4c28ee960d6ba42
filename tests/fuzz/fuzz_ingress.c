/*
 * fuzz_ingress.c: libFuzzer target for laminad's ingress (dataplane/
 * ingress.c): the request parser, the answers and the kept requests, on
 * real sockets and real DPDK pools (EAL starts once, without hugepages).
 *
 * Two deployments take requests of one float32 Nx4 tensor, N 1 or 2 rows
 * gathered into batches of 2 (queue.h): "d-00000001" in one process,
 * "d-00000002" as if its stages were on another laminad (requests kept
 * until answered, reliable.h).  Each input is the byte stream a client
 * sends, written in pieces while the ingress reads; a stand-in for the
 * pipeline moves every request bundle to the answers' edge, so answers
 * flow back and are read.  At the end the client closes; every bundle must
 * be back in its pool, every kept slot free and nothing left queued: the
 * parser neither overruns a buffer (ASan) nor loses a bundle or a request,
 * whatever it was sent.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <rte_cycles.h>
#include <rte_eal.h>
#include <rte_mempool.h>
#include <rte_ring.h>

#include "dp.h"
#include "lamina/fsutil.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define KIND 9
#define N_BUFS 6

static struct lm_dp_deployments deps;
static struct lm_dp_serve serve;
static struct lm_dp_front front;
static int lfd, epfd;
static struct sockaddr_un addr;
static socklen_t addr_len;

static void layout_1x4(struct lm_dp_layout *l)
{
	memset(l, 0, sizeof(*l));
	l->n = 1;
	l->t[0].name = strdup("x");
	l->t[0].dtype = LM_DT_FLOAT;
	l->t[0].rank = 2;
	l->t[0].dims[0] = 2;
	l->t[0].dims[1] = 4;
	l->t[0].nbytes = 32;
	l->bytes = 64;
}

static void edge(struct lm_dp_edge *ed, const char *name, unsigned k)
{
	char n[32];
	layout_1x4(&ed->layout);
	ed->n_bufs = N_BUFS;
	snprintf(n, sizeof(n), "%s_p%u", name, k);
	ed->pool = rte_mempool_create(n, N_BUFS,
				      (unsigned)lm_dp_bundle_bytes(&ed->layout),
				      0, 0, NULL, NULL, NULL, NULL,
				      SOCKET_ID_ANY, 0);
	snprintf(n, sizeof(n), "%s_r%u", name, k);
	ed->ring = rte_ring_create(n, 16, SOCKET_ID_ANY, 0);
	ed->loaded = 1;
	if (!ed->pool || !ed->ring)
		abort();
}

static void deployment(const char *id, int remote)
{
	struct lm_dp_deployment *d;
	struct lm_dp_stage_spec s = { .n_stages = 1, .batch = 2,
				      .retry_ms = 1, .max_retries = 2,
				      .keep_bundles = 4, .max_delay_us = 1,
				      .max_queue = 8 };
	lm_error e;
	snprintf(s.deployment, sizeof(s.deployment), "%s", id);
	snprintf(s.dir, sizeof(s.dir), "/nonexistent");
	if (lm_dp_deployment_add(&deps, id, 0, &d) ||
	    lm_pipeline_create(&s, d->gen, 1000.0, &d->pipe, &e))
		abort();
	edge(&d->pipe->edges[0], id, 0);
	edge(&d->pipe->edges[1], id, 1);
	d->pipe->edges[1].remote_in = remote; /* answers from elsewhere */
	d->pipe->started = 1;		       /* no workers: see pipeline() */
	snprintf(d->name, sizeof(d->name), "%s", id);
	if (lm_dp_queue_create(d, &s, &e) || lm_dp_queue_start(&serve, d, &e))
		abort();
}

/* libFuzzer ends with exit(): give back EAL and its run folder then. */
static void eal_done(void)
{
	char run[PATH_MAX];
	snprintf(run, sizeof(run), "%s", rte_eal_get_runtime_dir());
	rte_eal_cleanup();
	lm_remove_tree(run);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	char prefix[64];
	lm_error e;
	(void)argc;
	(void)argv;
	snprintf(prefix, sizeof(prefix), "fuzz-ingress-%d", (int)getpid());
	char *eal[] = { "fuzz", "--no-huge", "-m", "64", "--no-pci",
			"--no-shconf", "--no-telemetry", "-l", "0",
			"--file-prefix", prefix, "--log-level", "*:error",
			NULL };
	if (rte_eal_init((int)(sizeof(eal) / sizeof(eal[0])) - 1, eal) < 0)
		abort();
	atexit(eal_done);
	epfd = epoll_create1(EPOLL_CLOEXEC);
	lm_dp_serve_init(&serve, &deps, rte_get_tsc_hz());
	if (epfd < 0 || lm_dp_front_init(&front, epfd, &serve, &e))
		abort();
	deployment("d-00000001", 0);
	deployment("d-00000002", 1);
	lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	addr.sun_family = AF_UNIX;
	int n = snprintf(addr.sun_path + 1, sizeof(addr.sun_path) - 1,
			 "lamina-fuzz-ingress-%d", (int)getpid());
	addr_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 +
			       (size_t)n);
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&addr, addr_len) ||
	    listen(lfd, 4))
		abort();
	return 0;
}

/* The stand-in for the pipeline: each request bundle becomes an answer
 * bundle, as a stage would make it. */
static void pipeline(void)
{
	for (int i = 0; i < LM_DP_MAX_DEPLOYMENTS; i++) {
		struct lm_dp_deployment *d = deps.d[i];
		struct lm_dp_bundle *b, *o;
		if (!d)
			continue;
		struct lm_dp_edge *in = &d->pipe->edges[0],
				  *out = &d->pipe->edges[1];
		while (rte_ring_dequeue(in->ring, (void **)&b) == 0) {
			if (rte_mempool_get(out->pool, (void **)&o)) {
				rte_ring_enqueue(in->ring, b); /* later */
				break;
			}
			memcpy(o, b, lm_dp_bundle_bytes(&in->layout));
			rte_mempool_put(in->pool, b);
			rte_ring_enqueue(out->ring, o);
		}
	}
}

/* One turn of laminad's loop for the ingress. */
static void turn(void)
{
	struct epoll_event ev[8];
	int n = epoll_wait(epfd, ev, 8, 0);
	for (int i = 0; i < n; i++) {
		if ((uint32_t)(ev[i].data.u64 >> 32) == KIND)
			lm_dp_front_event(&front, (int)(uint32_t)ev[i].data.u64,
					  ev[i].events);
	}
	pipeline();
	lm_dp_serve_egress(&serve);
	lm_dp_serve_tick(&serve);
	lm_dp_front_flush(&front);
}

static void drain(int fd)
{
	char buf[4096];
	while (recv(fd, buf, sizeof(buf), MSG_DONTWAIT) > 0)
		;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	int c = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c < 0 || connect(c, (struct sockaddr *)&addr, addr_len))
		abort();
	lm_dp_front_accept(&front, lfd, KIND);
	size_t off = 0;
	/* bounded: every turn either writes or reads, and stops when both
	 * sides are quiet */
	for (int quiet = 0, turns = 0; quiet < 4 && turns < 100000; turns++) {
		ssize_t w = off < size ? send(c, data + off, size - off,
					      MSG_NOSIGNAL | MSG_DONTWAIT)
				       : 0;
		if (w > 0)
			off += (size_t)w;
		if (off == size && size)
			shutdown(c, SHUT_WR);
		turn();
		drain(c);
		quiet = w > 0 ? 0 : quiet + 1;
	}
	close(c);
	for (int i = 0; i < 8; i++) /* the ingress sees the close */
		turn();
	lm_dp_front_close(&front);
	if (lm_dp_front_init(&front, epfd, &serve, NULL))
		abort();
	for (int i = 0; i < LM_DP_MAX_DEPLOYMENTS; i++)
		if (deps.d[i] && lm_dp_queue_pending(deps.d[i]))
			abort(); /* a request neither answered nor let go */
	/* nothing lost: every bundle home, every kept slot free */
	for (int i = 0; i < LM_DP_MAX_DEPLOYMENTS; i++) {
		struct lm_dp_deployment *d = deps.d[i];
		struct lm_dp_bundle *b;
		if (!d)
			continue;
		for (int k = 0; k < 2; k++) {
			struct lm_dp_edge *ed = &d->pipe->edges[k];
			while (rte_ring_dequeue(ed->ring, (void **)&b) == 0)
				rte_mempool_put(ed->pool, b);
			if (rte_mempool_avail_count(ed->pool) != N_BUFS)
				abort();
		}
		if (d->rel)
			for (unsigned k = 0; k < lm_rel_slots(d->rel); k++)
				lm_rel_release(d->rel, k);
	}
	return 0;
}
