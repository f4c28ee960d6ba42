/*
 * control.c: laminad's control port, on the main lcore's event loop.
 *
 * Each message is a 4-byte big-endian length and one protobuf-c encoded
 * lamina.Request (control/proto/lamina.proto); each gets exactly one Reply
 * carrying its id.  Anything that cannot be used (a body that does not
 * decode, a missing or unknown body, bad fields) is answered with an Error
 * and logged; only a length above LM_CONTROL_MAX_BYTES ends the connection,
 * after its error reply, since the stream cannot be followed past it.
 * Requests run to completion on the loop: loading a large stage pauses the
 * ingress for as long as it takes.
 */
#include <errno.h>
#include <numa.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <rte_lcore.h>

#include "dp.h"

#define MAX_CTLS 64

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
			lm_dp_log("control: no room for another connection");
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
	if (c->out_len + 4 + n > c->out_cap) {
		size_t cap = (c->out_len + 4 + n) * 2;
		uint8_t *p = realloc(c->out, cap);
		if (!p)
			return -ENOMEM;
		c->out = p;
		c->out_cap = cap;
	}
	uint8_t *p = c->out + c->out_len;
	p[0] = (uint8_t)(n >> 24);
	p[1] = (uint8_t)(n >> 16);
	p[2] = (uint8_t)(n >> 8);
	p[3] = (uint8_t)n;
	lamina__reply__pack(r, p + 4);
	c->out_len += 4 + n;
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
	r->hugepages = dp->hugepages;
	r->poll = lm_dp_poll_busy(dp) ? (char *)"busy"
					 : (char *)"adaptive";
	r->ingress_port = dp->cfg.ingress_port;
	if (dp->net) {
		r->port_mac = dp->net->mac_str;
		r->port_ip = dp->net->ip;
		r->port_mtu = dp->net->mtu;
	}
	r->worker_cores = calloc(dp->n_worker_cpus + 1, sizeof(uint32_t));
	r->busy_cores = calloc(dp->n_worker_cpus + 1, sizeof(uint32_t));
	r->deployments = calloc(LM_DP_MAX_DEPLOYMENTS, sizeof(char *));
	int nodes = numa_available() >= 0 ? numa_max_node() + 1 : 1;
	r->numa = calloc((size_t)nodes, sizeof(*r->numa));
	if (!r->worker_cores || !r->busy_cores || !r->deployments || !r->numa)
		goto nomem;
	for (unsigned i = 0; i < dp->n_worker_cpus; i++) {
		unsigned cpu = dp->worker_cpus[i];
		int busy = 0;
		r->worker_cores[r->n_worker_cores++] = cpu;
		for (unsigned l = 1; l < dp->n_lcores; l++)
			busy |= dp->lcore[l].cpu == cpu && dp->lcore[l].used;
		if (busy)
			r->busy_cores[r->n_busy_cores++] = cpu;
	}
	for (int i = 0; i < LM_DP_MAX_DEPLOYMENTS; i++)
		if (dp->dep[i])
			r->deployments[r->n_deployments++] = dp->dep[i]->id;
	for (int n = 0; n < nodes; n++) {
		Lamina__NumaNode *node = calloc(1, sizeof(*node));
		char path[256];
		if (!node)
			goto nomem;
		r->numa[r->n_numa++] = node;
		lamina__numa_node__init(node);
		node->id = (uint32_t)n;
		if (!(node->cores = calloc(dp->n_online_cpus + 1,
					   sizeof(uint32_t))))
			goto nomem;
		for (unsigned cpu = 0; cpu < dp->n_online_cpus; cpu++)
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
	struct lm_dp_deployment *d = id ? lm_dp_deployment_find(dp, id)
					: NULL;
	if (!d)
		lm_fail(e, -ENOENT, "no deployment '%.40s' on this laminad",
			id ? id : "");
	return d;
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
		if (!(rc = lm_dp_stage_load(dp, q->load_stage, &load, &e))) {
			r.body_case = LAMINA__REPLY__BODY_LOAD_STAGE;
			r.load_stage = &load;
		}
		break;
	case LAMINA__REQUEST__BODY_START:
		if (!(d = named(dp, q->start->deployment, &e)))
			rc = -ENOENT;
		else
			rc = lm_dp_deployment_start(dp, d, &e);
		break;
	case LAMINA__REQUEST__BODY_STOP:
		if (!(d = named(dp, q->stop->deployment, &e)))
			rc = -ENOENT;
		else
			lm_dp_deployment_stop(dp, d);
		break;
	case LAMINA__REQUEST__BODY_STATS:
		if (!(d = named(dp, q->stats->deployment, &e)))
			rc = -ENOENT;
		else if (!(rc = lm_dp_stats_reply(dp, d, &stats, &e))) {
			r.body_case = LAMINA__REPLY__BODY_STATS;
			r.stats = stats;
		}
		break;
	case LAMINA__REQUEST__BODY_TEARDOWN:
		/* idempotent: an unknown deployment is already gone */
		if ((d = lm_dp_deployment_find(dp, q->teardown->deployment
					       ? q->teardown->deployment : ""))) {
			lm_dp_log("deployment %s: teardown", d->id);
			lm_dp_deployment_free(dp, d);
		}
		break;
	case LAMINA__REQUEST__BODY_SHUTDOWN:
		lm_dp_log("control: shutdown requested");
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
		lm_dp_log("control: %s request %llu refused: %s",
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
	free(load.cores);
	if (stats)
		stats->deployment = NULL; /* borrowed from the deployment */
	lm_dp_stats_reply_free(stats);
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
	lm_dp_log("control: %s", msg);
}

/* Handle every complete message in the input buffer. */
static void ctl_parse(struct lm_dp *dp, struct lm_dp_ctl *c)
{
	size_t off = 0;
	while (!c->closing && c->in_len - off >= 4) {
		const uint8_t *p = c->in + off;
		uint32_t n = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
			     (uint32_t)p[2] << 8 | p[3];
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
