/*
 * control.c: laminad's control port, on the main lcore's event loop.
 *
 * Each message is one frame of the control channel (control/proto/ctl.h):
 * a lamina.Request in, exactly one lamina.Reply carrying its id out.  This
 * file is where protobuf stops: a LoadStage is decoded and checked into a
 * plain struct lm_dp_stage_spec (spec.h) before anything acts on it, and
 * replies are encoded here from plain structs (struct lm_dp_loaded,
 * struct lm_dp_stats).  Anything that cannot be used (a body that does not
 * decode, a missing or unknown body, bad fields) is answered with an Error
 * and logged; only a length above LM_CONTROL_MAX_BYTES ends the
 * connection, after its error reply, since the stream cannot be followed
 * past it.  Requests run to completion on the loop: loading a large stage
 * pauses the ingress for as long as it takes.
 *
 * Every connection opens with the fleet handshake (ctl.h): laminad greets
 * it at once with a fresh nonce, checks the answer's proof of the fleet
 * key, and from then on opens (checks) every frame and seals every reply.
 * A frame with a wrong tag or out of sequence ends the connection with one
 * log line.  A connection that proved the key is trusted; one that did not
 * (an anonymous session, or any on a laminad without --fleet-key) gets
 * describe and stats only: every other request, the privileged ones
 * (load, start, stop, teardown, drain, shutdown, store queries, file
 * pushes and whatever is added later), is refused with one line, and
 * logged.  Describe and stats stay open because they tell no more than
 * mDNS and /metrics already do.
 *
 * No client can lock the port: a connection that has not completed a
 * message for CTL_IDLE_MS is closed (in the handshake too), a new
 * connection to a full table takes the slot of the one idle longest among
 * those that did not prove the key (of every one only when all did), and
 * what connections buffer is bounded, each by one message (a handshake
 * frame by LM_CTL_HELLO_MAX, an untrusted session's by LM_CTL_ANON_MAX)
 * and all together by CTL_BUDGET (beyond it the connection that wants
 * more is told and closed).  Lines about connections are logged at most
 * CTL_LOG_LINES per CTL_LOG_MS, so a flood of them cannot fill the disk;
 * the sweep says how many were left out.
 */
#include <errno.h>
#include <netdb.h>
#include <numa.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <rte_cycles.h>
#include <rte_lcore.h>

#include "ctl.h"
#include "decode.h"
#include "dp.h"
#include "lamina/log.h"
#include "lamina/sock.h"
#include "stats.h"

#define MAX_CTLS LM_DP_MAX_CTLS
#define CTL_IDLE_MS 10000	 /* without a complete message */
#define CTL_BUDGET (64u << 20) /* input buffered by every connection */
#define CTL_CHUNK 65536	 /* a connection's first buffer */
#define LM_CTL_MAX_QUERY 65536 /* files one StoreQuery may ask about */
#define CTL_LOG_LINES 100	 /* lines about connections per CTL_LOG_MS */
#define CTL_LOG_MS 10000

struct lm_dp_ctl {
	int fd;
	uint32_t events;
	int closing;
	int session;	   /* 0: greeted, its answer awaited; 1: session */
	lm_ctl_hs hs;	   /* the handshake, until the session */
	lm_ctl_session s;  /* s.trusted: it proved the fleet key */
	char peer[80];	   /* ADDR:PORT, for the log */
	uint64_t t_active; /* ms: accepted, or last complete message */
	uint8_t *in;
	size_t in_len, in_cap;
	uint8_t *out;
	size_t out_len, out_off, out_cap;
};

static void ctl_close(struct lm_dp *dp, int slot)
{
	struct lm_dp_ctl *c = dp->ctls[slot];
	if (!c)
		return;
	close(c->fd);
	dp->ctl_buffered -= c->in_cap;
	free(c->in);
	free(c->out);
	lm_ctl_wipe(&c->hs, &c->s);
	free(c);
	dp->ctls[slot] = NULL;
}

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void ctl_log(struct lm_dp *dp, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* One line about a connection, within the budget (see the top). */
static void ctl_log(struct lm_dp *dp, const char *fmt, ...)
{
	char line[1024];
	va_list ap;
	if (dp->ctl_log_lines >= CTL_LOG_LINES) {
		dp->ctl_log_dropped++;
		return;
	}
	dp->ctl_log_lines++;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	lm_log("control: %s", line);
}

/* The slot to give to a new connection: the one idle the longest of those
 * that did not prove the fleet key, else of all, so a flood of strangers
 * cannot push lamina's own connections out. */
static int evict_slot(struct lm_dp *dp)
{
	int oldest = -1;
	for (int pass = 0; pass < 2 && oldest < 0; pass++)
		for (int i = 0; i < MAX_CTLS; i++) {
			const struct lm_dp_ctl *c = dp->ctls[i];
			if (pass == 0 && c->session && c->s.trusted)
				continue;
			if (oldest < 0 ||
			    c->t_active < dp->ctls[oldest]->t_active)
				oldest = i;
		}
	ctl_log(dp, "every connection is taken; closing %s, idle longest "
		"(%llu ms)%s", dp->ctls[oldest]->peer,
	       (unsigned long long)(now_ms() - dp->ctls[oldest]->t_active),
	       dp->ctls[oldest]->s.trusted ? "" : " of those without the key");
	ctl_close(dp, oldest);
	return oldest;
}

void lm_dp_control_sweep(struct lm_dp *dp)
{
	uint64_t now = now_ms();
	for (int i = 0; i < MAX_CTLS; i++)
		if (dp->ctls[i] && now - dp->ctls[i]->t_active > CTL_IDLE_MS) {
			ctl_log(dp, "%s: %s for %u s, closing it",
				dp->ctls[i]->peer,
				dp->ctls[i]->session ? "idle" : "no handshake",
				CTL_IDLE_MS / 1000);
			ctl_close(dp, i);
		}
	if (now - dp->ctl_log_t >= CTL_LOG_MS) {
		if (dp->ctl_log_dropped)
			lm_log("control: %u more lines about connections left "
			       "out in the last %u s", dp->ctl_log_dropped,
			       CTL_LOG_MS / 1000);
		dp->ctl_log_lines = dp->ctl_log_dropped = 0;
		dp->ctl_log_t = now;
	}
}

static void peer_name(int fd, char *out, size_t len)
{
	struct sockaddr_storage a;
	socklen_t al = sizeof(a);
	char host[64], port[8];
	if (getpeername(fd, (struct sockaddr *)&a, &al) != 0 ||
	    getnameinfo((struct sockaddr *)&a, al, host, sizeof(host), port,
			sizeof(port), NI_NUMERICHOST | NI_NUMERICSERV) != 0)
		snprintf(out, len, "a client");
	else
		snprintf(out, len, a.ss_family == AF_INET6 ? "[%s]:%s"
							   : "%s:%s", host,
			 port);
}

static void greet(struct lm_dp *dp, int slot);

int lm_dp_control_accept(struct lm_dp *dp)
{
	for (;;) {
		int fd = lm_sock_accept(dp->ctl_fd);
		if (fd == -EMFILE) {
			ctl_log(dp, "out of file descriptors, a connection "
				"refused");
			continue;
		}
		if (fd < 0)
			return fd == -EAGAIN ? 0 : fd;
		int slot = -1;
		for (int i = 0; i < MAX_CTLS && slot < 0; i++)
			if (!dp->ctls[i])
				slot = i;
		if (slot < 0)
			slot = evict_slot(dp);
		struct lm_dp_ctl *c = calloc(1, sizeof(*c));
		struct epoll_event ev = {
			.events = EPOLLIN,
			.data.u64 = LM_DP_EV(LM_DP_EV_CTL, slot),
		};
		if (!c || epoll_ctl(dp->epfd, EPOLL_CTL_ADD, fd, &ev) != 0) {
			ctl_log(dp, "no room for another connection");
			free(c);
			close(fd);
			continue;
		}
		c->fd = fd;
		c->events = EPOLLIN;
		c->t_active = now_ms();
		peer_name(fd, c->peer, sizeof(c->peer));
		dp->ctls[slot] = c;
		greet(dp, slot);
	}
}

static void ctl_events(struct lm_dp *dp, int slot)
{
	struct lm_dp_ctl *c = dp->ctls[slot];
	uint32_t want = (c->closing ? 0 : EPOLLIN) |
			(c->out_len > c->out_off ? EPOLLOUT : 0);
	if (want == c->events)
		return;
	struct epoll_event ev = { .events = want,
				  .data.u64 = LM_DP_EV(LM_DP_EV_CTL, slot) };
	epoll_ctl(dp->epfd, EPOLL_CTL_MOD, c->fd, &ev);
	c->events = want;
}

/* Write what is queued; closes the connection when done and closing. */
static void ctl_flush(struct lm_dp *dp, int slot)
{
	struct lm_dp_ctl *c = dp->ctls[slot];
	while (c->out_off < c->out_len) {
		ssize_t w = send(c->fd, c->out + c->out_off,
				 c->out_len - c->out_off,
				 MSG_NOSIGNAL | MSG_DONTWAIT);
		if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			ctl_close(dp, slot);
			return;
		}
		c->out_off += (size_t)w;
	}
	if (c->out_off == c->out_len) {
		c->out_off = c->out_len = 0;
		if (c->closing) {
			ctl_close(dp, slot);
			return;
		}
	}
	ctl_events(dp, slot);
}

/* Room for n more bytes of output; NULL when out of memory. */
static uint8_t *out_room(struct lm_dp_ctl *c, size_t n)
{
	if (c->out_len + n > c->out_cap) {
		size_t cap = (c->out_len + n) * 2;
		uint8_t *p = realloc(c->out, cap);
		if (!p)
			return NULL;
		c->out = p;
		c->out_cap = cap;
	}
	return c->out + c->out_len;
}

/* Queue a reply: sealed in a session, a plain frame before it. */
static int ctl_send(struct lm_dp_ctl *c, const Lamina__Reply *r)
{
	size_t n = lamina__reply__get_packed_size(r);
	size_t head = c->session ? LM_CTL_SEALED_HEAD : LM_CTL_FRAME_HEAD;
	size_t all = head + n + (c->session ? LM_CTL_TAG_BYTES : 0);
	uint8_t *p = out_room(c, all);
	if (!p)
		return -ENOMEM;
	lamina__reply__pack(r, p + head);
	if (c->session)
		lm_ctl_seal(&c->s, p, n);
	else
		lm_ctl_frame_put(p, (uint32_t)n);
	c->out_len += all;
	return 0;
}

/* Queue a handshake frame (greeting, welcome, refusal). */
static int ctl_send_plain(struct lm_dp_ctl *c, const uint8_t *frame,
			  size_t len)
{
	uint8_t *p = out_room(c, len);
	if (!p)
		return -ENOMEM;
	memcpy(p, frame, len);
	c->out_len += len;
	return 0;
}

static const lm_fleet_key *fleet_key(const struct lm_dp *dp)
{
	return dp->keyed ? &dp->key : NULL;
}

/* A new connection: the greeting, with its fresh nonce, at once. */
static void greet(struct lm_dp *dp, int slot)
{
	struct lm_dp_ctl *c = dp->ctls[slot];
	uint8_t frame[LM_CTL_HELLO_FRAME];
	size_t len;
	lm_ctl_greet(&c->hs, fleet_key(dp), LM_DP_VERSION, frame, &len);
	if (ctl_send_plain(c, frame, len)) {
		ctl_close(dp, slot);
		return;
	}
	ctl_flush(dp, slot);
}

/* The client's answer to the greeting: its session, or a refusal. */
static void answer(struct lm_dp *dp, struct lm_dp_ctl *c, const uint8_t *body,
		   size_t n)
{
	uint8_t frame[LM_CTL_HELLO_FRAME];
	size_t len;
	lm_error e;
	int rc = lm_ctl_accept(&c->hs, fleet_key(dp), body, n, &c->s, frame,
			       &len, &e);
	if (ctl_send_plain(c, frame, len) || rc) {
		ctl_log(dp, "%s: handshake refused: %s", c->peer, e.msg);
		c->closing = 1;
		return;
	}
	c->session = 1;
}

/* ---- describe ---- */

static uint64_t sysfs_u64(const char *path)
{
	FILE *f = fopen(path, "r");
	unsigned long long v = 0;
	if (f) {
		if (fscanf(f, "%llu", &v) != 1)
			v = 0;
		fclose(f);
	}
	return v;
}

static void describe_free(Lamina__DescribeReply *r)
{
	for (size_t i = 0; i < r->n_numa; i++) {
		free(r->numa[i]->cores);
		free(r->numa[i]);
	}
	free(r->numa);
	free(r->worker_cores);
	free(r->busy_cores);
	free(r->deployments);
	free(r->names);
}

static int describe(struct lm_dp *dp, Lamina__DescribeReply *r, lm_error *e)
{
	lamina__describe_reply__init(r);
	r->name = dp->name;
	r->version = (char *)LM_DP_VERSION;
	r->pid = (uint32_t)getpid();
	r->hugepages = dp->eal.hugepages;
	r->poll = lm_dp_poll_busy(&dp->lc) ? (char *)"busy"
					    : (char *)"adaptive";
	r->ingress_port = dp->cfg.ingress_port;
	r->http_port = dp->http_port;
	const char *mac;
	unsigned mtu;
	lm_dp_net_port(dp->net, &mac, &r->port_ip, &mtu);
	r->port_mac = (char *)(mac ? mac : "");
	r->port_mtu = mtu;
	lm_dp_memory(&r->heap_bytes, &r->dpdk_bytes);
	r->managed = dp->cfg.managed;
	const struct lm_dp_lcores *lc = &dp->lc;
	r->worker_cores = calloc(lc->n_worker_cpus + 1, sizeof(uint32_t));
	r->busy_cores = calloc(lc->n_worker_cpus + 1, sizeof(uint32_t));
	r->deployments = calloc(LM_DP_MAX_DEPLOYMENTS, sizeof(char *));
	r->names = calloc(LM_DP_MAX_DEPLOYMENTS, sizeof(char *));
	int nodes = numa_available() >= 0 ? numa_max_node() + 1 : 1;
	r->numa = calloc((size_t)nodes, sizeof(*r->numa));
	if (!r->worker_cores || !r->busy_cores || !r->deployments ||
	    !r->names || !r->numa)
		goto nomem;
	for (unsigned i = 0; i < lc->n_worker_cpus; i++) {
		unsigned cpu = lc->worker_cpus[i];
		int busy = 0;
		r->worker_cores[r->n_worker_cores++] = cpu;
		for (unsigned l = 1; l < lc->n; l++)
			busy |= lc->l[l].cpu == cpu && lc->l[l].used;
		if (busy)
			r->busy_cores[r->n_busy_cores++] = cpu;
	}
	for (int i = 0; i < LM_DP_MAX_DEPLOYMENTS; i++)
		if (dp->deps.d[i]) {
			r->deployments[r->n_deployments++] = dp->deps.d[i]->id;
			r->names[r->n_names++] = dp->deps.d[i]->name;
		}
	for (int n = 0; n < nodes; n++) {
		Lamina__NumaNode *node = calloc(1, sizeof(*node));
		char path[256];
		if (!node)
			goto nomem;
		r->numa[r->n_numa++] = node;
		lamina__numa_node__init(node);
		node->id = (uint32_t)n;
		if (!(node->cores = calloc(lc->n_online_cpus + 1,
					   sizeof(uint32_t))))
			goto nomem;
		for (unsigned cpu = 0; cpu < lc->n_online_cpus; cpu++)
			if (lm_dp_cpu_node(cpu) == n)
				node->cores[node->n_cores++] = cpu;
		long long free_b = 0;
		long long total = numa_available() >= 0
					  ? numa_node_size64(n, &free_b) : 0;
		node->total_bytes = total > 0 ? (uint64_t)total : 0;
		node->free_bytes = free_b > 0 ? (uint64_t)free_b : 0;
		unsigned kb = (unsigned)(sysfs_u64(
			"/sys/kernel/mm/transparent_hugepage/hpage_pmd_size") /
			1024);
		snprintf(path, sizeof(path), "/sys/devices/system/node/node%d/"
			 "hugepages/hugepages-%ukB/free_hugepages", n,
			 kb ? kb : 2048);
		node->hugepage_bytes = (uint64_t)(kb ? kb : 2048) * 1024;
		node->hugepages_free = sysfs_u64(path);
	}
	return 0;
nomem:
	describe_free(r);
	return lm_fail(e, -ENOMEM, "out of memory");
}

/* ---- stats: a plain struct out as a StatsReply ---- */

static void stats_free(Lamina__StatsReply *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->n_stages; i++)
		free(s->stages[i]);
	free(s->stages);
	free(s);
}

static void hist_set(const struct lm_dp_hist *h, double *edges,
		     uint64_t *counts, size_t *n_edges, size_t *n_counts)
{
	for (int i = 0; i < LM_DP_HIST_BUCKETS; i++) {
		edges[i] = lm_dp_hist_edge(i);
		counts[i] = h->counts[i];
	}
	*n_edges = *n_counts = LM_DP_HIST_BUCKETS;
}

/* Everything of the reply in one allocation after the struct: stage
 * entries, each with its cores and histogram arrays. */
struct stage_box {
	Lamina__StageStats st;
	uint32_t cores[LM_DP_MAX_REPLICAS];
	double edges[LM_DP_HIST_BUCKETS];
	uint64_t counts[LM_DP_HIST_BUCKETS];
};

struct stats_box {
	Lamina__StatsReply r;
	struct lm_dp_stats s;
	double edges[LM_DP_HIST_BUCKETS];
	uint64_t counts[LM_DP_HIST_BUCKETS];
	uint64_t queue[LM_DP_HIST_BUCKETS], compute[LM_DP_HIST_BUCKETS];
	char *kinds[LM_DP_ERR_KINDS];
	uint64_t errors[LM_DP_ERR_KINDS];
	uint64_t rows[LM_DP_MAX_BATCH_HIST];
};

/* The ingress's part of the reply (zeros where stage 0 is elsewhere). */
static void ingress_encode(struct stats_box *b, const char *name)
{
	Lamina__StatsReply *r = &b->r;
	const struct lm_dp_ingress_stats *g = &b->s.ing;
	if (!b->s.ingress)
		return;
	r->name = (char *)name;
	r->requests = g->requests;
	r->samples = g->samples;
	r->batches = g->batches;
	for (int k = 0; k < LM_DP_ERR_KINDS; k++) {
		b->kinds[k] = (char *)lm_dp_err_kind((enum lm_dp_err)k);
		b->errors[k] = g->errors[k];
		r->errors += g->errors[k];
	}
	r->error_kinds = b->kinds;
	r->error_counts = b->errors;
	r->n_error_kinds = r->n_error_counts = LM_DP_ERR_KINDS;
	unsigned n = g->batch < LM_DP_MAX_BATCH_HIST ? g->batch
						     : LM_DP_MAX_BATCH_HIST;
	memcpy(b->rows, g->batch_rows + 1, n * sizeof(b->rows[0]));
	r->batch_rows = b->rows;
	r->n_batch_rows = n;
	r->queue_depth = g->queue_depth;
	r->in_flight = g->in_flight;
	r->batch = g->batch;
	r->max_queue = g->max_queue;
	r->max_delay_us = g->max_delay_us;
	r->bucket_us = b->edges;
	r->counts = b->counts;
	hist_set(&g->e2e, b->edges, b->counts, &r->n_bucket_us, &r->n_counts);
	for (int i = 0; i < LM_DP_HIST_BUCKETS; i++) {
		b->queue[i] = g->queue.counts[i];
		b->compute[i] = g->compute.counts[i];
	}
	r->queue_counts = b->queue;
	r->compute_counts = b->compute;
	r->n_queue_counts = r->n_compute_counts = LM_DP_HIST_BUCKETS;
	r->queue_sum_us = g->queue.sum_us;
	r->compute_sum_us = g->compute.sum_us;
	r->e2e_sum_us = g->e2e.sum_us;
	r->recent_s = g->recent_s;
	r->recent_requests = g->recent_requests;
	r->recent_samples = g->recent_samples;
}

static int stats_encode(struct lm_dp *dp, const struct lm_dp_deployment *d,
			Lamina__StatsReply **out, lm_error *e)
{
	struct stats_box *b = calloc(1, sizeof(*b));
	if (!b)
		return lm_fail(e, -ENOMEM, "out of memory");
	Lamina__StatsReply *r = &b->r;
	lm_dp_stats_read(d, rte_rdtsc(), dp->tsc_hz, &b->s);
	lamina__stats_reply__init(r);
	r->deployment = (char *)d->id;
	r->tsc_hz = b->s.tsc_hz;
	r->uptime_s = b->s.uptime_s;
	ingress_encode(b, d->name);
	r->http_port = dp->http_port;
	r->resent = b->s.resent;
	r->duplicate_answers = b->s.dup_answers;
	r->gave_up = b->s.gave_up;
	r->send_lost = b->s.send_lost;
	r->stages = calloc(b->s.n_stages + 1, sizeof(*r->stages));
	if (!r->stages) {
		free(b);
		return lm_fail(e, -ENOMEM, "out of memory");
	}
	for (unsigned k = 0; k < b->s.n_stages; k++) {
		const struct lm_dp_stage_stats *t = &b->s.stages[k];
		struct stage_box *sb = calloc(1, sizeof(*sb));
		if (!sb) {
			stats_free(r);
			return lm_fail(e, -ENOMEM, "out of memory");
		}
		r->stages[r->n_stages++] = &sb->st;
		Lamina__StageStats *o = &sb->st;
		lamina__stage_stats__init(o);
		o->stage = t->stage;
		o->first = t->first;
		o->last = t->last;
		memcpy(sb->cores, t->cores, sizeof(sb->cores));
		o->cores = sb->cores;
		o->n_cores = t->n_cores;
		o->requests = t->requests;
		o->samples = t->samples;
		o->errors = t->errors;
		o->busy_cycles = t->busy_cycles;
		o->idle_cycles = t->idle_cycles;
		o->queue_depth = t->queue_depth;
		o->queue_capacity = t->queue_capacity;
		o->bucket_us = sb->edges;
		o->counts = sb->counts;
		hist_set(&t->hist, sb->edges, sb->counts, &o->n_bucket_us,
			 &o->n_counts);
	}
	*out = r;
	return 0;
}

/* ---- dispatch ---- */

/* Requests anyone may make: they change nothing and tell no more than
 * mDNS and the HTTP front's /metrics do.  Every other request, including
 * any added later, needs the fleet key. */
static int open_request(int body)
{
	return body == LAMINA__REQUEST__BODY_DESCRIBE ||
	       body == LAMINA__REQUEST__BODY_STATS;
}

static const char *body_name(int c)
{
	switch (c) {
	case LAMINA__REQUEST__BODY_DESCRIBE: return "describe";
	case LAMINA__REQUEST__BODY_LOAD_STAGE: return "load_stage";
	case LAMINA__REQUEST__BODY_START: return "start";
	case LAMINA__REQUEST__BODY_STOP: return "stop";
	case LAMINA__REQUEST__BODY_STATS: return "stats";
	case LAMINA__REQUEST__BODY_TEARDOWN: return "teardown";
	case LAMINA__REQUEST__BODY_SHUTDOWN: return "shutdown";
	case LAMINA__REQUEST__BODY_DRAIN: return "drain";
	case LAMINA__REQUEST__BODY_STORE_QUERY: return "store_query";
	case LAMINA__REQUEST__BODY_PUSH_FILE: return "push_file";
	default: return "unknown";
	}
}

/* The deployment a start/stop/stats request names. */
static struct lm_dp_deployment *named(struct lm_dp *dp, const char *id,
				      lm_error *e)
{
	struct lm_dp_deployment *d = lm_dp_find(&dp->deps, id);
	if (!d)
		lm_fail(e, -ENOENT, "no deployment '%.40s' on this laminad",
			id ? id : "");
	return d;
}

/* The stage's files, from the store, under its deployment's folder there;
 * spec->dir is that folder. */
static int link_files(struct lm_dp *dp, const Lamina__LoadStageRequest *q,
		      struct lm_dp_stage_spec *spec, lm_error *e)
{
	int rc;
	for (size_t i = 0; i < q->n_files; i++)
		if ((rc = lm_store_link(dp->store, spec->deployment,
					q->files[i]->name,
					q->files[i]->sha256.data, e)))
			return rc;
	if (lm_store_dir(dp->store, spec->deployment, spec->dir,
			 sizeof(spec->dir)))
		return lm_fail(e, -ENAMETOOLONG, "store path too long");
	return 0;
}

static int load_stage(struct lm_dp *dp, const Lamina__LoadStageRequest *q,
		      Lamina__LoadStageReply *reply, uint32_t *cores,
		      lm_error *e)
{
	struct lm_dp_stage_spec spec;
	struct lm_dp_loaded got;
	int fresh = !lm_dp_find(&dp->deps, q->deployment);
	int rc = lm_dp_spec_decode(q, &spec, e);
	if (!rc && (rc = link_files(dp, q, &spec, e)) && fresh)
		lm_store_forget(dp->store, spec.deployment);
	if (rc || (rc = lm_dp_load(dp, &spec, &got, e)))
		return rc;
	memcpy(cores, got.cores, sizeof(got.cores));
	reply->cores = cores;
	reply->n_cores = got.n_cores;
	reply->weight_bytes = got.weight_bytes;
	reply->arena_bytes = got.arena_bytes;
	reply->ring_bytes = got.ring_bytes;
	return 0;
}

static void handle(struct lm_dp *dp, struct lm_dp_ctl *c,
		   const Lamina__Request *q)
{
	Lamina__Reply r = LAMINA__REPLY__INIT;
	Lamina__Error err = LAMINA__ERROR__INIT;
	Lamina__Empty done = LAMINA__EMPTY__INIT;
	Lamina__DescribeReply desc;
	Lamina__LoadStageReply load = LAMINA__LOAD_STAGE_REPLY__INIT;
	Lamina__DrainReply drain = LAMINA__DRAIN_REPLY__INIT;
	Lamina__StoreQueryReply sq = LAMINA__STORE_QUERY_REPLY__INIT;
	Lamina__PushFileReply pf = LAMINA__PUSH_FILE_REPLY__INIT;
	protobuf_c_boolean *have = NULL;
	Lamina__StatsReply *stats = NULL;
	struct lm_dp_deployment *d;
	uint32_t cores[LM_DP_MAX_REPLICAS];
	lm_error e = { "" };
	int rc = 0, have_desc = 0;

	r.id = q->id;
	if (!c->s.trusted && !open_request(q->body_case)) {
		if (dp->keyed)
			rc = lm_fail(&e, -EACCES, "laminad refuses %s from a "
				     "client without the fleet key (its "
				     "fingerprint is %s: lamina fleet key)",
				     body_name(q->body_case), dp->fleet_fp);
		else
			rc = lm_fail(&e, -EACCES, "laminad refuses %s: it has "
				     "no fleet key (start it with --fleet-key)",
				     body_name(q->body_case));
		goto out;
	}
	switch (q->body_case) {
	case LAMINA__REQUEST__BODY_DESCRIBE:
		if (!(rc = describe(dp, &desc, &e))) {
			have_desc = 1;
			r.body_case = LAMINA__REPLY__BODY_DESCRIBE;
			r.describe = &desc;
		}
		break;
	case LAMINA__REQUEST__BODY_LOAD_STAGE:
		if (!(rc = load_stage(dp, q->load_stage, &load, cores, &e))) {
			r.body_case = LAMINA__REPLY__BODY_LOAD_STAGE;
			r.load_stage = &load;
		}
		break;
	case LAMINA__REQUEST__BODY_START:
		if (!(d = named(dp, q->start->deployment, &e)))
			rc = -ENOENT;
		else
			rc = lm_dp_start(dp, d, &e);
		break;
	case LAMINA__REQUEST__BODY_STOP:
		if (!(d = named(dp, q->stop->deployment, &e)))
			rc = -ENOENT;
		else
			lm_dp_stop(dp, d);
		break;
	case LAMINA__REQUEST__BODY_STATS:
		if (!(d = named(dp, q->stats->deployment, &e)))
			rc = -ENOENT;
		else if (!(rc = stats_encode(dp, d, &stats, &e))) {
			r.body_case = LAMINA__REPLY__BODY_STATS;
			r.stats = stats;
		}
		break;
	case LAMINA__REQUEST__BODY_TEARDOWN:
		/* idempotent: an unknown deployment is already gone */
		if ((d = lm_dp_find(&dp->deps, q->teardown->deployment))) {
			lm_log("deployment %s: teardown", d->id);
			lm_dp_teardown(dp, d);
		}
		break;
	case LAMINA__REQUEST__BODY_DRAIN:
		/* an unknown deployment has nothing to answer */
		if ((d = lm_dp_find(&dp->deps, q->drain->deployment)))
			drain.pending = lm_dp_queue_drain(&dp->serve, d);
		r.body_case = LAMINA__REPLY__BODY_DRAIN;
		r.drain = &drain;
		break;
	case LAMINA__REQUEST__BODY_STORE_QUERY:
		if (q->store_query->n_sha256 > LM_CTL_MAX_QUERY) {
			rc = lm_fail(&e, -E2BIG, "a store query of %zu files: "
				     "at most %d", q->store_query->n_sha256,
				     LM_CTL_MAX_QUERY);
			break;
		}
		have = calloc(q->store_query->n_sha256 + 1, sizeof(*have));
		if (!have) {
			rc = lm_fail(&e, -ENOMEM, "out of memory");
			break;
		}
		for (size_t i = 0; i < q->store_query->n_sha256; i++)
			have[i] = q->store_query->sha256[i].len ==
					  LM_STORE_HASH &&
				  lm_store_has(dp->store,
					       q->store_query->sha256[i].data);
		sq.have = have;
		sq.n_have = q->store_query->n_sha256;
		r.body_case = LAMINA__REPLY__BODY_STORE_QUERY;
		r.store_query = &sq;
		break;
	case LAMINA__REQUEST__BODY_PUSH_FILE: {
		const Lamina__PushFile *p = q->push_file;
		if (p->sha256.len != LM_STORE_HASH) {
			rc = lm_fail(&e, -EINVAL, "a pushed file is named by "
				     "its 32-byte SHA-256, not %zu bytes",
				     p->sha256.len);
			break;
		}
		rc = lm_store_put(dp->store, p->sha256.data, p->size,
				  p->offset, p->data.data, p->data.len,
				  &pf.have, &e);
		if (rc >= 0) {
			pf.complete = rc == 1;
			rc = 0;
			r.body_case = LAMINA__REPLY__BODY_PUSH_FILE;
			r.push_file = &pf;
		}
		break;
	}
	case LAMINA__REQUEST__BODY_SHUTDOWN:
		lm_log("control: shutdown requested");
		dp->quit = 1;
		break;
	default:
		rc = lm_fail(&e, -EINVAL, "request %llu has no body this "
			     "laminad knows (version %s)",
			     (unsigned long long)q->id, LM_DP_VERSION);
	}
out:
	if (rc) {
		err.code = rc;
		err.message = e.msg;
		r.error = &err;
		r.body_case = LAMINA__REPLY__BODY__NOT_SET;
		ctl_log(dp, "%s: %s request %llu refused: %s", c->peer,
			body_name(q->body_case), (unsigned long long)q->id,
			e.msg);
	} else if (r.body_case == LAMINA__REPLY__BODY__NOT_SET) {
		r.body_case = LAMINA__REPLY__BODY_DONE;
		r.done = &done;
	}
	if (ctl_send(c, &r))
		c->closing = 1;
	if (have_desc)
		describe_free(&desc);
	stats_free(stats);
	free(have);
}

static void refuse(struct lm_dp *dp, struct lm_dp_ctl *c, int code,
		   const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void refuse(struct lm_dp *dp, struct lm_dp_ctl *c, int code,
		   const char *fmt, ...)
{
	Lamina__Reply r = LAMINA__REPLY__INIT;
	Lamina__Error err = LAMINA__ERROR__INIT;
	char msg[sizeof(((lm_error *)0)->msg)];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	err.code = code;
	err.message = msg;
	r.error = &err;
	if (ctl_send(c, &r))
		c->closing = 1;
	ctl_log(dp, "%s: %s", c->peer, msg);
}

/* The longest frame this connection may send now. */
static uint32_t frame_max(const struct lm_dp_ctl *c)
{
	if (!c->session)
		return LM_CTL_HELLO_MAX;
	return c->s.trusted ? LM_CONTROL_MAX_BYTES : LM_CTL_ANON_MAX;
}

/* One whole frame's payload (n bytes at p): the handshake's answer, or a
 * sealed request. */
static void ctl_frame(struct lm_dp *dp, struct lm_dp_ctl *c, const uint8_t *p,
		      uint32_t n)
{
	const uint8_t *body;
	size_t len;
	lm_error e;
	if (!c->session) {
		answer(dp, c, p, n);
		return;
	}
	int rc = lm_ctl_open(&c->s, p, n, &body, &len, &e);
	if (rc) {
		refuse(dp, c, rc, "%s; closing the connection", e.msg);
		c->closing = 1;
		return;
	}
	Lamina__Request *q = lamina__request__unpack(NULL, len, body);
	if (!q)
		refuse(dp, c, -EPROTO, "a control message that is not a "
		       "lamina.Request");
	else
		handle(dp, c, q);
	lamina__request__free_unpacked(q, NULL);
}

/* Handle every complete frame in the input buffer. */
static void ctl_parse(struct lm_dp *dp, struct lm_dp_ctl *c)
{
	size_t off = 0;
	while (!c->closing && c->in_len - off >= LM_CTL_FRAME_HEAD) {
		const uint8_t *p = c->in + off;
		uint32_t n = lm_ctl_frame_len(p), max = frame_max(c);
		if (n > max) {
			refuse(dp, c, -EMSGSIZE, "%s of %u bytes%s (at most "
			       "%u %s); closing the connection",
			       c->session ? "a control message"
					  : "a handshake frame", n,
			       c->session && !c->s.trusted
				       ? " from a client without the fleet key"
				       : "", max >> 20 ? max >> 20 : max,
			       max >> 20 ? "MiB" : "bytes");
			c->closing = 1;
			break;
		}
		if (c->in_len - off - LM_CTL_FRAME_HEAD < n)
			break;
		ctl_frame(dp, c, p + LM_CTL_FRAME_HEAD, n);
		off += LM_CTL_FRAME_HEAD + n;
		c->t_active = now_ms();
	}
	memmove(c->in, c->in + off, c->in_len - off);
	c->in_len -= off;
}

/* A last reply before the connection closes: one try, without waiting. */
static void ctl_flush_now(struct lm_dp_ctl *c)
{
	if (c->out_len > c->out_off) {
		ssize_t w = send(c->fd, c->out + c->out_off,
				 c->out_len - c->out_off,
				 MSG_NOSIGNAL | MSG_DONTWAIT);
		(void)w;
	}
}

/* Room for more input: twice the buffer, never more than one message of
 * the largest size, nor past the budget of every connection's buffers.
 * 0 when there is none (a reply says why; the caller closes). */
static int grow(struct lm_dp *dp, struct lm_dp_ctl *c)
{
	size_t cap = c->in_cap ? c->in_cap * 2 : CTL_CHUNK;
	size_t most = LM_CTL_FRAME_HEAD + (size_t)LM_CONTROL_MAX_BYTES;
	if (cap > most)
		cap = most;
	if (cap <= c->in_cap) /* a message this long was refused already */
		return 0;
	if (dp->ctl_buffered - c->in_cap + cap > CTL_BUDGET) {
		refuse(dp, c, -ENOBUFS, "laminad is receiving other large "
		       "control messages; try again");
		ctl_flush_now(c);
		return 0;
	}
	uint8_t *p = realloc(c->in, cap);
	if (!p)
		return 0;
	dp->ctl_buffered += cap - c->in_cap;
	c->in = p;
	c->in_cap = cap;
	return 1;
}

void lm_dp_control_event(struct lm_dp *dp, int slot, uint32_t events)
{
	struct lm_dp_ctl *c = dp->ctls[slot];
	if (!c)
		return;
	if (events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
		for (;;) {
			if (c->in_cap - c->in_len < 4096 && !grow(dp, c)) {
				ctl_close(dp, slot);
				return;
			}
			ssize_t r = recv(c->fd, c->in + c->in_len,
					 c->in_cap - c->in_len, MSG_DONTWAIT);
			if (r < 0 && errno == EINTR)
				continue;
			if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
				break;
			if (r <= 0) {
				ctl_close(dp, slot);
				return;
			}
			c->in_len += (size_t)r;
			ctl_parse(dp, c);
			if (c->closing)
				break;
		}
	}
	ctl_flush(dp, slot);
}

void lm_dp_control_close_all(struct lm_dp *dp)
{
	for (int i = 0; i < MAX_CTLS; i++)
		if (dp->ctls[i]) {
			ctl_flush(dp, i); /* a last reply, e.g. to shutdown */
			ctl_close(dp, i);
		}
}
