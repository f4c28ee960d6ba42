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
 */
#include <errno.h>
#include <numa.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <rte_cycles.h>
#include <rte_ether.h>
#include <rte_lcore.h>

#include "ctl.h"
#include "dp.h"
#include "lamina/log.h"
#include "stats.h"

#define MAX_CTLS LM_DP_MAX_CTLS

struct lm_dp_ctl {
	int fd;
	uint32_t events;
	int closing;
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
	free(c->in);
	free(c->out);
	free(c);
	dp->ctls[slot] = NULL;
}

int lm_dp_control_accept(struct lm_dp *dp)
{
	for (;;) {
		int fd = accept4(dp->ctl_fd, NULL, NULL,
				 SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0)
			return errno == EAGAIN || errno == EWOULDBLOCK ? 0
								       : -errno;
		int slot = -1;
		for (int i = 0; i < MAX_CTLS && slot < 0; i++)
			if (!dp->ctls[i])
				slot = i;
		struct lm_dp_ctl *c = slot >= 0 ? calloc(1, sizeof(*c)) : NULL;
		struct epoll_event ev = {
			.events = EPOLLIN,
			.data.u64 = LM_DP_EV(LM_DP_EV_CTL, slot),
		};
		if (!c || epoll_ctl(dp->epfd, EPOLL_CTL_ADD, fd, &ev) != 0) {
			lm_log("control: no room for another connection");
			free(c);
			close(fd);
			continue;
		}
		c->fd = fd;
		c->events = EPOLLIN;
		dp->ctls[slot] = c;
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

static int ctl_send(struct lm_dp_ctl *c, const Lamina__Reply *r)
{
	size_t n = lamina__reply__get_packed_size(r);
	if (c->out_len + LM_CTL_FRAME_HEAD + n > c->out_cap) {
		size_t cap = (c->out_len + LM_CTL_FRAME_HEAD + n) * 2;
		uint8_t *p = realloc(c->out, cap);
		if (!p)
			return -ENOMEM;
		c->out = p;
		c->out_cap = cap;
	}
	uint8_t *p = c->out + c->out_len;
	lm_ctl_frame_put(p, (uint32_t)n);
	lamina__reply__pack(r, p + LM_CTL_FRAME_HEAD);
	c->out_len += LM_CTL_FRAME_HEAD + n;
	return 0;
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
	const char *mac;
	unsigned mtu;
	lm_dp_net_port(dp->net, &mac, &r->port_ip, &mtu);
	r->port_mac = (char *)(mac ? mac : "");
	r->port_mtu = mtu;
	lm_dp_memory(&r->heap_bytes, &r->dpdk_bytes);
	const struct lm_dp_lcores *lc = &dp->lc;
	r->worker_cores = calloc(lc->n_worker_cpus + 1, sizeof(uint32_t));
	r->busy_cores = calloc(lc->n_worker_cpus + 1, sizeof(uint32_t));
	r->deployments = calloc(LM_DP_MAX_DEPLOYMENTS, sizeof(char *));
	int nodes = numa_available() >= 0 ? numa_max_node() + 1 : 1;
	r->numa = calloc((size_t)nodes, sizeof(*r->numa));
	if (!r->worker_cores || !r->busy_cores || !r->deployments || !r->numa)
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
		if (dp->deps.d[i])
			r->deployments[r->n_deployments++] = dp->deps.d[i]->id;
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

/* ---- LoadStage: protobuf in, a checked spec out ---- */

static int bundles_ok(uint32_t n)
{
	return n >= 1 && n <= LM_DP_MAX_BUNDLES;
}

/* Decode and check a LoadStage: every field a stage spec holds is
 * validated here, so nothing past this function sees protobuf or an
 * unchecked value. */
static int decode_load(const Lamina__LoadStageRequest *r,
		       struct lm_dp_stage_spec *s, lm_error *e)
{
	struct rte_ether_addr mac;
	memset(s, 0, sizeof(*s));
	if (!lm_dp_id_ok(r->deployment))
		return lm_fail(e, -EINVAL, "deployment id '%.40s' must be 1 to "
			       "%d letters, digits, '-', '_' or '.'",
			       r->deployment ? r->deployment : "",
			       LM_WIRE_ID_LEN - 1);
	snprintf(s->deployment, sizeof(s->deployment), "%s", r->deployment);
	if (r->n_stages < 1 || r->n_stages > LM_DP_MAX_STAGES ||
	    r->stage >= r->n_stages)
		return lm_fail(e, -EINVAL, "stage %u of %u: stages must number "
			       "1 to %d", r->stage, r->n_stages,
			       LM_DP_MAX_STAGES);
	s->stage = r->stage;
	s->n_stages = r->n_stages;
	if (r->batch < 1 || r->batch > 4096)
		return lm_fail(e, -EINVAL, "batch %u: must be 1 to 4096",
			       r->batch);
	s->batch = r->batch;
	if (!r->dir || r->dir[0] != '/' || strlen(r->dir) >= sizeof(s->dir))
		return lm_fail(e, -EINVAL, "slice folder '%.200s' must be an "
			       "absolute path", r->dir ? r->dir : "");
	snprintf(s->dir, sizeof(s->dir), "%s", r->dir);
	if (r->first > r->last)
		return lm_fail(e, -EINVAL, "slices %u..%u: first is after "
			       "last", r->first, r->last);
	s->first = r->first;
	s->last = r->last;
	if (r->n_cores > LM_DP_MAX_REPLICAS)
		return lm_fail(e, -EINVAL, "%zu replicas: at most %d",
			       r->n_cores, LM_DP_MAX_REPLICAS);
	s->n_cores = (unsigned)r->n_cores;
	for (size_t i = 0; i < r->n_cores; i++)
		s->cores[i] = r->cores[i];
	/* memory, as the plan charged it */
	int makes_out = (r->next_mac && r->next_mac[0]) || r->next_memif ||
			r->stage + 1 == r->n_stages;
	if (!bundles_ok(r->in_bundles) ||
	    (makes_out && !bundles_ok(r->out_bundles)) ||
	    (r->answers_remote && (!bundles_ok(r->answers_bundles) ||
				   !bundles_ok(r->keep_bundles))))
		return lm_fail(e, -EINVAL, "stage %u: bundles per edge (in %u, "
			       "out %u, answers %u, kept %u) must be 1 to %d "
			       "as the plan charged them", r->stage,
			       r->in_bundles, r->out_bundles,
			       r->answers_bundles, r->keep_bundles,
			       LM_DP_MAX_BUNDLES);
	s->in_bundles = r->in_bundles;
	s->out_bundles = r->out_bundles;
	s->answers_bundles = r->answers_bundles;
	s->keep_bundles = r->keep_bundles;
	/* topology */
	int next_port = r->next_mac && r->next_mac[0];
	if (next_port && r->next_memif)
		return lm_fail(e, -EINVAL, "stage %u: its output goes over the "
			       "port or a memif, not both", r->stage);
	if ((r->input_memif && !r->input_remote) ||
	    (r->answers_memif && !r->answers_remote))
		return lm_fail(e, -EINVAL, "stage %u: a memif for an edge that "
			       "is not remote", r->stage);
	if (next_port && (rte_ether_unformat_addr(r->next_mac, &mac) ||
			  !r->next_ip))
		return lm_fail(e, -EINVAL, "stage %u: next laminad's port "
			       "'%.40s' needs a MAC aa:bb:cc:dd:ee:ff and an "
			       "IPv4 address", r->stage, r->next_mac);
	if (r->input_remote && r->stage == 0)
		return lm_fail(e, -EINVAL, "stage 0 takes its input from the "
			       "ingress, not another laminad");
	if (r->answers_remote && (r->stage != 0 || r->n_stages < 2))
		return lm_fail(e, -EINVAL, "stage %u: only stage 0 of several "
			       "takes answers from another laminad", r->stage);
	s->next = next_port ? LM_DP_PORT
		  : r->next_memif ? LM_DP_MEMIF : LM_DP_LOCAL;
	if (next_port) {
		memcpy(s->next_mac, mac.addr_bytes, 6);
		s->next_ip = r->next_ip;
	}
	s->input = !r->input_remote ? LM_DP_LOCAL
		   : r->input_memif ? LM_DP_MEMIF : LM_DP_PORT;
	s->answers = !r->answers_remote ? LM_DP_LOCAL
		     : r->answers_memif ? LM_DP_MEMIF : LM_DP_PORT;
	s->retry_ms = r->retry_ms;
	s->max_retries = r->max_retries;
	s->period_us = r->period_us;
	return 0;
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
};

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
	r->requests = b->s.requests;
	r->errors = b->s.errors;
	r->resent = b->s.resent;
	r->duplicate_answers = b->s.dup_answers;
	r->gave_up = b->s.gave_up;
	r->send_lost = b->s.send_lost;
	r->bucket_us = b->edges;
	r->counts = b->counts;
	hist_set(&b->s.e2e, b->edges, b->counts, &r->n_bucket_us,
		 &r->n_counts);
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

static int load_stage(struct lm_dp *dp, const Lamina__LoadStageRequest *q,
		      Lamina__LoadStageReply *reply, uint32_t *cores,
		      lm_error *e)
{
	struct lm_dp_stage_spec spec;
	struct lm_dp_loaded got;
	int rc = decode_load(q, &spec, e);
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
	Lamina__StatsReply *stats = NULL;
	struct lm_dp_deployment *d;
	uint32_t cores[LM_DP_MAX_REPLICAS];
	lm_error e = { "" };
	int rc = 0, have_desc = 0;

	r.id = q->id;
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
	case LAMINA__REQUEST__BODY_SHUTDOWN:
		lm_log("control: shutdown requested");
		dp->quit = 1;
		break;
	default:
		rc = lm_fail(&e, -EINVAL, "request %llu has no body this "
			     "laminad knows (version %s)",
			     (unsigned long long)q->id, LM_DP_VERSION);
	}
	if (rc) {
		err.code = rc;
		err.message = e.msg;
		r.error = &err;
		r.body_case = LAMINA__REPLY__BODY__NOT_SET;
		lm_log("control: %s request %llu refused: %s",
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
}

static void refuse(struct lm_dp_ctl *c, int code, const char *msg)
{
	Lamina__Reply r = LAMINA__REPLY__INIT;
	Lamina__Error err = LAMINA__ERROR__INIT;
	err.code = code;
	err.message = (char *)msg;
	r.error = &err;
	if (ctl_send(c, &r))
		c->closing = 1;
	lm_log("control: %s", msg);
}

/* Handle every complete message in the input buffer. */
static void ctl_parse(struct lm_dp *dp, struct lm_dp_ctl *c)
{
	size_t off = 0;
	while (!c->closing && c->in_len - off >= 4) {
		const uint8_t *p = c->in + off;
		uint32_t n = lm_ctl_frame_len(p);
		if (n > LM_CONTROL_MAX_BYTES) {
			refuse(c, -EMSGSIZE, "a control message above 16 MiB; "
			       "closing the connection");
			c->closing = 1;
			break;
		}
		if (c->in_len - off - 4 < n)
			break;
		Lamina__Request *q = lamina__request__unpack(NULL, n, p + 4);
		if (!q)
			refuse(c, -EPROTO, "a control message that is not a "
			       "lamina.Request");
		else
			handle(dp, c, q);
		lamina__request__free_unpacked(q, NULL);
		off += 4 + n;
	}
	memmove(c->in, c->in + off, c->in_len - off);
	c->in_len -= off;
}

void lm_dp_control_event(struct lm_dp *dp, int slot, uint32_t events)
{
	struct lm_dp_ctl *c = dp->ctls[slot];
	if (!c)
		return;
	if (events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
		for (;;) {
			if (c->in_cap - c->in_len < 4096) {
				size_t cap = c->in_cap ? c->in_cap * 2 : 65536;
				uint8_t *p = cap <= 4 * (size_t)LM_CONTROL_MAX_BYTES
						     ? realloc(c->in, cap) : NULL;
				if (!p) {
					ctl_close(dp, slot);
					return;
				}
				c->in = p;
				c->in_cap = cap;
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
