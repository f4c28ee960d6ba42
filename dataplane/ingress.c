/*
 * ingress.c: the inference ingress and egress on the main lcore (see
 * ingress.h for the design; the bytes are lamina/wire.h's).
 */
#include "ingress.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <rte_cycles.h>
#include <rte_ring.h>

#include "lamina/log.h"
#include "lamina/sock.h"
#include "lamina/wire.h"
#include "pipeline.h"

#define RBUF (64u << 10)
#define MSG_MAX 200
#define ING_IDLE_MS 60000  /* nothing in flight, nothing being read */
#define ING_STALL_MS 5000  /* a request half read, no byte since */

enum { RX_FIXED, RX_WAIT, RX_THDR, RX_DATA, RX_SKIP };

struct answer {
	struct lm_dp_bundle *b; /* NULL: an error answer */
	struct lm_dp_deployment *d;
	size_t len, sent;
	uint32_t head_len;
	uint8_t head[LM_WIRE_ANS_HEAD + MSG_MAX];
};

struct lm_dp_conn {
	int fd;
	uint32_t gen, events, kind;
	int blocked, rd_closed;
	uint64_t t_active; /* ms: accepted, or the last byte read or sent */
	/* receiving */
	int state;
	uint8_t *rbuf;
	size_t rpos, rlen;
	uint8_t hdr[LM_WIRE_REQ_HEAD + LM_WIRE_TENSOR_HEAD(LM_MAX_RANK)];
	size_t hlen, hneed;
	uint64_t remaining; /* bytes of the request not yet read */
	uint64_t request_id;
	struct lm_dp_deployment *d;
	struct lm_dp_bundle *b;
	int ti;
	int keep; /* reliable slot taken for the request being read, or -1 */
	uint8_t *dst;
	size_t dneed;
	/* answers */
	struct answer q[LM_DP_CONN_WINDOW];
	unsigned qhead, qn, inflight;
};

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void set_events(struct lm_dp_front *f, struct lm_dp_conn *c)
{
	uint32_t want = (!c->blocked && !c->rd_closed ? EPOLLIN : 0) |
			(c->qn ? EPOLLOUT : 0);
	if (want == c->events || c->fd < 0)
		return;
	struct epoll_event ev = {
		.events = want,
		.data.u64 = LM_DP_EV(c->kind, c - f->conns),
	};
	epoll_ctl(f->epfd, EPOLL_CTL_MOD, c->fd, &ev);
	c->events = want;
}

static void block(struct lm_dp_front *f, struct lm_dp_conn *c, int on)
{
	if (c->blocked == on)
		return;
	c->blocked = on;
	f->n_blocked += on ? 1 : -1;
	set_events(f, c);
}

static struct rte_mempool *answers_pool(struct lm_dp_deployment *d)
{
	return lm_pipeline_answers(d->pipe)->pool;
}

static struct lm_dp_edge *input_edge(struct lm_dp_deployment *d)
{
	return lm_pipeline_input(d->pipe);
}

static void conn_close(struct lm_dp_front *f, struct lm_dp_conn *c)
{
	if (c->fd < 0)
		return;
	block(f, c, 0);
	close(c->fd);
	c->fd = -1;
	c->gen++;
	for (unsigned i = 0; i < c->qn; i++) {
		struct answer *a = &c->q[(c->qhead + i) % LM_DP_CONN_WINDOW];
		if (a->b)
			rte_mempool_put(answers_pool(a->d), a->b);
	}
	if (c->b)
		rte_mempool_put(input_edge(c->d)->pool, c->b);
	if (c->keep >= 0 && c->d && c->d->rel)
		lm_rel_release(c->d->rel, (unsigned)c->keep);
	c->keep = -1;
	c->b = NULL;
	c->d = NULL;
	c->qn = 0;
	free(c->rbuf);
	c->rbuf = NULL;
}

static struct lm_dp_conn *conn_get(struct lm_dp_front *f, uint64_t id)
{
	uint32_t slot = (uint32_t)id;
	if (slot >= LM_DP_MAX_CONNS)
		return NULL;
	struct lm_dp_conn *c = &f->conns[slot];
	return c->fd >= 0 && c->gen == (uint32_t)(id >> 32) ? c : NULL;
}

/* ---- answers ---- */

static struct answer *push(struct lm_dp_conn *c)
{
	struct answer *a = &c->q[(c->qhead + c->qn) % LM_DP_CONN_WINDOW];
	c->qn++; /* room is guaranteed by the window */
	memset(a, 0, offsetof(struct answer, head));
	return a;
}

static void push_error(struct lm_dp_conn *c, uint64_t id, int status,
		       const char *msg)
{
	struct answer *a = push(c);
	uint32_t n = (uint32_t)strlen(msg);
	if (n > MSG_MAX)
		n = MSG_MAX;
	lm_wire_ans_head_put(a->head, 16 + n, id, status, n);
	memcpy(a->head + LM_WIRE_ANS_HEAD, msg, n);
	a->len = LM_WIRE_ANS_HEAD + n;
	a->head_len = (uint32_t)a->len;
}

static void push_answer(struct lm_dp_conn *c, struct lm_dp_deployment *d,
			struct lm_dp_bundle *b)
{
	struct answer *a = push(c);
	const struct lm_dp_ingress *in = d->ing;
	lm_wire_ans_head_put(a->head, (uint32_t)in->answer_bytes,
			     b->request_id, 0,
			     (uint32_t)lm_pipeline_answers(d->pipe)->layout.n);
	a->head_len = LM_WIRE_ANS_HEAD;
	a->len = 8 + in->answer_bytes;
	a->b = b;
	a->d = d;
}

/* Append the iovecs of answer a from byte `skip` on; returns how many. */
static int answer_iov(const struct answer *a, size_t skip, struct iovec *iov,
		      int max)
{
	int n = 0;
	size_t off = 0;
#define SEG(p, l)                                                          \
	do {                                                               \
		size_t l_ = (l);                                           \
		if (skip < off + l_ && n < max) {                          \
			size_t s_ = skip > off ? skip - off : 0;           \
			iov[n].iov_base = (uint8_t *)(p) + s_;             \
			iov[n++].iov_len = l_ - s_;                        \
		}                                                          \
		off += l_;                                                 \
	} while (0)
	SEG(a->head, a->head_len);
	if (a->b) {
		const struct lm_dp_ingress *in = a->d->ing;
		const struct lm_dp_layout *l =
			&lm_pipeline_answers(a->d->pipe)->layout;
		for (int i = 0; i < l->n; i++) {
			SEG(in->answer_thdr + in->thdr_off[i],
			    in->thdr_off[i + 1] - in->thdr_off[i]);
			SEG(lm_dp_bundle_data(a->b) + l->t[i].offset,
			    l->t[i].nbytes);
		}
	}
#undef SEG
	return n;
}

static void conn_tx(struct lm_dp_front *f, struct lm_dp_conn *c)
{
	while (c->qn && c->fd >= 0) {
		struct iovec iov[256];
		int n = 0;
		for (unsigned i = 0; i < c->qn && n < 200; i++) {
			const struct answer *a =
				&c->q[(c->qhead + i) % LM_DP_CONN_WINDOW];
			n += answer_iov(a, a->sent, iov + n, 256 - n);
		}
		struct msghdr mh = { .msg_iov = iov, .msg_iovlen = (size_t)n };
		ssize_t w = sendmsg(c->fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (w < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK ||
			    errno == EINTR)
				break;
			conn_close(f, c);
			return;
		}
		c->t_active = now_ms();
		size_t left = (size_t)w;
		while (c->qn) {
			struct answer *a = &c->q[c->qhead];
			size_t take = a->len - a->sent < left ? a->len - a->sent
							      : left;
			a->sent += take;
			left -= take;
			if (a->sent < a->len)
				break;
			if (a->b)
				rte_mempool_put(answers_pool(a->d), a->b);
			c->qhead = (c->qhead + 1) % LM_DP_CONN_WINDOW;
			c->qn--;
		}
	}
	if (c->fd < 0)
		return;
	if (!c->qn && c->rd_closed && !c->inflight) {
		conn_close(f, c);
		return;
	}
	set_events(f, c);
}

/* ---- requests ---- */

static void refuse(struct lm_dp_front *f, struct lm_dp_conn *c, int status,
		   const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* Answer the current request with an error and skip what is left of it. */
static void refuse(struct lm_dp_front *f, struct lm_dp_conn *c, int status,
		   const char *fmt, ...)
{
	char msg[MSG_MAX + 1];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (c->b)
		rte_mempool_put(input_edge(c->d)->pool, c->b);
	c->b = NULL;
	if (c->keep >= 0 && c->d && c->d->rel)
		lm_rel_release(c->d->rel, (unsigned)c->keep);
	c->keep = -1;
	if (c->d && c->d->ing)
		c->d->ing->errors++;
	c->d = NULL;
	block(f, c, 0);
	push_error(c, c->request_id, status, msg);
	c->state = c->remaining ? RX_SKIP : RX_FIXED;
	c->hlen = 0;
	c->hneed = LM_WIRE_REQ_HEAD;
	/* rate limited: a client can send nonsense all day */
	if (f->refused++ < 100 || f->refused % 1000 == 0)
		lm_log("ingress: request %llu refused: %s",
		       (unsigned long long)c->request_id, msg);
}

static void on_fixed(struct lm_dp_front *f, struct lm_dp_conn *c)
{
	lm_wire_req_head h;
	int rc = lm_wire_req_head_get(c->hdr, &h);
	if (rc == -EPROTO) {
		lm_log("ingress: connection %d: %s, closing it", c->fd,
		       lm_wire_get32(c->hdr) != LM_WIRE_MAGIC_REQUEST
			       ? "bad magic" : "length too short");
		conn_close(f, c);
		return;
	}
	c->request_id = h.request_id;
	c->remaining = h.length - LM_WIRE_REQ_COUNTED;
	c->d = NULL;
	if (rc == -EMSGSIZE)
		return refuse(f, c, -EMSGSIZE, "request of %u bytes: the "
			      "limit is %u", h.length, LM_WIRE_MAX_BYTES);
	if (rc == -ENOENT)
		return refuse(f, c, -ENOENT, "deployment id is not "
			      "NUL-terminated");
	struct lm_dp_deployment *d = lm_dp_find(f->deps, h.deployment);
	if (!d)
		return refuse(f, c, -ENOENT, "no deployment '%s' on this "
			      "laminad", h.deployment);
	if (!d->ing)
		return refuse(f, c, -ENOENT, "deployment '%s' takes requests "
			      "at another laminad (the one with its stage 0)",
			      h.deployment);
	c->d = d;
	if (!d->pipe->started)
		return refuse(f, c, -EAGAIN, "deployment '%s' is stopped",
			      h.deployment);
	if (h.n_tensors != (uint32_t)input_edge(d)->layout.n)
		return refuse(f, c, -EINVAL, "deployment '%s' takes %d input "
			      "tensor(s), not %u", h.deployment,
			      input_edge(d)->layout.n, h.n_tensors);
	c->ti = 0;
	c->state = RX_WAIT;
}

static void on_thdr(struct lm_dp_front *f, struct lm_dp_conn *c)
{
	const struct lm_dp_tdesc *t = &input_edge(c->d)->layout.t[c->ti];
	lm_wire_tensor w;
	char want[128], got[128];
	lm_wire_tensor_get(c->hdr, &w);
	int rank = (int)w.rank;
	if ((lm_dtype)w.dtype != t->dtype || rank != t->rank ||
	    memcmp(w.dims, t->dims, sizeof(w.dims[0]) * (size_t)rank)) {
		int ok = 1;
		for (int k = 0; k < rank; k++)
			ok &= w.dims[k] >= 0;
		return refuse(f, c, -EINVAL, "input %d ('%s'): expected %s %s, "
			      "got %s %s", c->ti, t->name,
			      lm_dtype_name(t->dtype),
			      lm_shape_str(t->rank, t->dims, want,
					   sizeof(want)),
			      lm_dtype_name((lm_dtype)w.dtype),
			      ok ? lm_shape_str(rank, w.dims, got, sizeof(got))
				 : "(negative dims)");
	}
	if (w.nbytes != t->nbytes)
		return refuse(f, c, -EINVAL, "input %d ('%s'): %llu bytes for "
			      "a tensor of %zu", c->ti, t->name,
			      (unsigned long long)w.nbytes, t->nbytes);
	if (w.nbytes > c->remaining)
		return refuse(f, c, -EINVAL, "input %d ('%s'): its %llu bytes "
			      "run past the request's length", c->ti, t->name,
			      (unsigned long long)w.nbytes);
	c->dst = lm_dp_bundle_data(c->b) + t->offset;
	c->dneed = w.nbytes;
	c->state = RX_DATA;
}

static void on_request(struct lm_dp_front *f, struct lm_dp_conn *c)
{
	if (c->remaining)
		return refuse(f, c, -EINVAL, "%llu bytes after the last "
			      "tensor", (unsigned long long)c->remaining);
	struct lm_dp_deployment *d = c->d;
	struct lm_dp_bundle *b = c->b;
	struct lm_dp_edge *in = input_edge(d);
	b->t_in = rte_rdtsc();
	if (c->keep >= 0) {
		memcpy(lm_rel_copy(d->rel, (unsigned)c->keep), b,
		       lm_dp_bundle_bytes(&in->layout));
		lm_rel_sent(d->rel, (unsigned)c->keep, b->t_in);
		c->keep = -1;
	}
	rte_ring_enqueue(in->ring, b); /* holds the whole pool */
	c->b = NULL;
	c->d = NULL;
	c->inflight++;
	f->inflight++;
	c->state = RX_FIXED;
	c->hlen = 0;
	c->hneed = LM_WIRE_REQ_HEAD;
}

/* Staged bytes, or fill the staging buffer: 1 data, 0 would block, -1
 * connection gone. */
static int staged(struct lm_dp_front *f, struct lm_dp_conn *c)
{
	if (c->rpos < c->rlen)
		return 1;
	c->rpos = c->rlen = 0;
	ssize_t r = recv(c->fd, c->rbuf, RBUF, MSG_DONTWAIT);
	if (r > 0) {
		c->rlen = (size_t)r;
		c->t_active = now_ms();
		return 1;
	}
	if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK ||
		      errno == EINTR))
		return 0;
	if (r == 0 && c->state == RX_FIXED && c->hlen == 0) {
		c->rd_closed = 1; /* clean end: answer what is open */
		if (!c->inflight && !c->qn)
			conn_close(f, c);
		else
			set_events(f, c);
		return -1;
	}
	if (r == 0)
		lm_log("ingress: connection %d ended mid-request, closing it",
		       c->fd);
	conn_close(f, c);
	return -1;
}

static size_t take(struct lm_dp_conn *c, void *dst, size_t want)
{
	size_t n = c->rlen - c->rpos < want ? c->rlen - c->rpos : want;
	if (dst)
		memcpy(dst, c->rbuf + c->rpos, n);
	c->rpos += n;
	if (c->state != RX_FIXED)
		c->remaining -= n;
	return n;
}

/* A bundle of edge 0 (and a reliable slot across laminads) for the
 * request whose head was read; 0 when none is free now. */
static int start_bundle(struct lm_dp_front *f, struct lm_dp_conn *c)
{
	struct lm_dp_deployment *d = c->d;
	uint32_t ticket = 0;
	if (d->rel && lm_rel_in_use(d->rel) == lm_rel_slots(d->rel))
		return 0;
	if (rte_mempool_get(input_edge(d)->pool, (void **)&c->b) != 0)
		return 0;
	c->keep = d->rel ? lm_rel_take(d->rel, &ticket) : -1;
	c->b->keep = c->keep >= 0 ? (uint32_t)c->keep : UINT32_MAX;
	c->b->ticket = ticket;
	c->b->request_id = c->request_id;
	c->b->conn = (uint64_t)(c - f->conns) | (uint64_t)c->gen << 32;
	c->b->deployment = d->gen;
	c->b->status = 0;
	return 1;
}

static void conn_rx(struct lm_dp_front *f, struct lm_dp_conn *c)
{
	while (c->fd >= 0 && !c->rd_closed) {
		switch (c->state) {
		case RX_FIXED:
		case RX_THDR:
			if (c->state == RX_FIXED && c->hlen == 0 &&
			    c->inflight + c->qn >= LM_DP_CONN_WINDOW) {
				block(f, c, 1);
				return;
			}
			if (c->state == RX_THDR && c->hneed - c->hlen >
						    c->remaining)
				return refuse(f, c, -EINVAL, "input %d: its "
					      "head runs past the request's "
					      "length", c->ti);
			if (staged(f, c) <= 0)
				return;
			c->hlen += take(c, c->hdr + c->hlen,
					c->hneed - c->hlen);
			if (c->hlen < c->hneed)
				break;
			if (c->state == RX_FIXED) {
				on_fixed(f, c);
			} else if (c->hneed == LM_WIRE_TENSOR_PRE) {
				uint32_t rank;
				if (lm_wire_tensor_rank(c->hdr, &rank)) {
					refuse(f, c, -EINVAL, "input %d: rank "
					       "%u is above %d", c->ti, rank,
					       LM_MAX_RANK);
					break;
				}
				c->hneed = LM_WIRE_TENSOR_HEAD(rank);
			} else {
				on_thdr(f, c);
			}
			break;
		case RX_WAIT:
			if (!start_bundle(f, c)) {
				block(f, c, 1);
				return;
			}
			block(f, c, 0);
			c->state = RX_THDR;
			c->hlen = 0;
			c->hneed = LM_WIRE_TENSOR_PRE;
			if (input_edge(c->d)->layout.n == 0)
				on_request(f, c);
			break;
		case RX_DATA:
			if (c->rpos < c->rlen) {
				size_t n = take(c, c->dst, c->dneed);
				c->dst += n;
				c->dneed -= n;
			} else if (c->dneed) {
				ssize_t r = recv(c->fd, c->dst, c->dneed,
						 MSG_DONTWAIT);
				if (r <= 0) {
					if (staged(f, c) <= 0)
						return;
					break;
				}
				c->dst += r;
				c->dneed -= (size_t)r;
				c->remaining -= (size_t)r;
				c->t_active = now_ms();
			}
			if (c->dneed)
				break;
			if (++c->ti < input_edge(c->d)->layout.n) {
				c->state = RX_THDR;
				c->hlen = 0;
				c->hneed = LM_WIRE_TENSOR_PRE;
			} else {
				on_request(f, c);
			}
			break;
		case RX_SKIP:
			if (staged(f, c) <= 0)
				return;
			take(c, NULL, c->remaining < SIZE_MAX
					      ? (size_t)c->remaining
					      : SIZE_MAX);
			if (!c->remaining) {
				c->state = RX_FIXED;
				c->hlen = 0;
				c->hneed = LM_WIRE_REQ_HEAD;
			}
			break;
		}
	}
}

/* ---- the event loop's entry points ---- */

int lm_dp_front_init(struct lm_dp_front *f, int epfd,
		     struct lm_dp_deployments *deps, uint64_t tsc_hz,
		     lm_error *e)
{
	memset(f, 0, sizeof(*f));
	f->epfd = epfd;
	f->deps = deps;
	f->tsc_hz = tsc_hz;
	f->cycles_per_us = (double)tsc_hz / 1e6;
	f->conns = calloc(LM_DP_MAX_CONNS, sizeof(*f->conns));
	if (!f->conns)
		return lm_fail(e, -ENOMEM, "out of memory");
	for (int i = 0; i < LM_DP_MAX_CONNS; i++)
		f->conns[i].fd = -1;
	return 0;
}

/* A connection with nothing open: no request being read, in flight or
 * answered but unsent. */
static int conn_idle(const struct lm_dp_conn *c)
{
	return c->fd >= 0 && c->state == RX_FIXED && !c->hlen &&
	       !c->inflight && !c->qn;
}

/* The slot of the idle connection quiet the longest, closed for a new
 * one; -1 when every connection has something open. */
static int evict_idle(struct lm_dp_front *f)
{
	int oldest = -1;
	for (int i = 0; i < LM_DP_MAX_CONNS; i++)
		if (conn_idle(&f->conns[i]) &&
		    (oldest < 0 ||
		     f->conns[i].t_active < f->conns[oldest].t_active))
			oldest = i;
	if (oldest >= 0) {
		lm_log("ingress: every connection is taken; closing the one "
		       "idle longest");
		conn_close(f, &f->conns[oldest]);
	}
	return oldest;
}

void lm_dp_front_sweep(struct lm_dp_front *f)
{
	uint64_t now = now_ms();
	for (int i = 0; i < LM_DP_MAX_CONNS; i++) {
		struct lm_dp_conn *c = &f->conns[i];
		if (c->fd < 0)
			continue;
		int partial = c->state != RX_FIXED || c->hlen;
		if (conn_idle(c) && now - c->t_active > ING_IDLE_MS) {
			conn_close(f, c);
		} else if (partial && !c->blocked &&
			   now - c->t_active > ING_STALL_MS) {
			/* it holds a bundle of a small pool: a client that
			 * stops mid-request must not starve the others */
			lm_log("ingress: connection %d sent half a request and "
			       "nothing for %u s, closing it", c->fd,
			       ING_STALL_MS / 1000);
			conn_close(f, c);
		}
	}
}

int lm_dp_front_accept(struct lm_dp_front *f, int lfd, uint32_t kind)
{
	for (;;) {
		int fd = lm_sock_accept(lfd);
		if (fd == -EMFILE) {
			if (f->refused++ % 1000 == 0)
				lm_log("ingress: out of file descriptors, a "
				       "connection refused");
			continue;
		}
		if (fd < 0)
			return fd == -EAGAIN ? 0 : fd;
		int slot = -1, one = 1;
		for (int i = 0; i < LM_DP_MAX_CONNS && slot < 0; i++)
			if (f->conns[i].fd < 0)
				slot = i;
		if (slot < 0)
			slot = evict_idle(f);
		struct lm_dp_conn *c = slot >= 0 ? &f->conns[slot] : NULL;
		if (!c || !(c->rbuf = malloc(RBUF))) {
			lm_log("ingress: no room for another connection (every "
			       "one has requests open)");
			close(fd);
			continue;
		}
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		uint32_t gen = c->gen;
		uint8_t *rbuf = c->rbuf;
		memset(c, 0, sizeof(*c));
		c->gen = gen;
		c->rbuf = rbuf;
		c->fd = fd;
		c->kind = kind;
		c->keep = -1;
		c->t_active = now_ms();
		c->hneed = LM_WIRE_REQ_HEAD;
		c->events = EPOLLIN;
		struct epoll_event ev = {
			.events = EPOLLIN,
			.data.u64 = LM_DP_EV(kind, slot),
		};
		if (epoll_ctl(f->epfd, EPOLL_CTL_ADD, fd, &ev) != 0) {
			close(fd);
			c->fd = -1;
			free(c->rbuf);
			c->rbuf = NULL;
		}
	}
}

void lm_dp_front_event(struct lm_dp_front *f, int slot, uint32_t events)
{
	if (slot < 0 || slot >= LM_DP_MAX_CONNS)
		return;
	struct lm_dp_conn *c = &f->conns[slot];
	if (c->fd < 0)
		return;
	if (events & EPOLLOUT)
		conn_tx(f, c);
	if (c->fd >= 0 && (events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
		conn_rx(f, c);
	if (c->fd >= 0 && c->qn)
		conn_tx(f, c);
}

int lm_dp_front_egress(struct lm_dp_front *f)
{
	struct lm_dp_bundle *bufs[32];
	struct lm_dp_conn *touched[32];
	int total = 0;
	for (int k = 0; k < LM_DP_MAX_DEPLOYMENTS; k++) {
		struct lm_dp_deployment *d = f->deps->d[k];
		if (!d || !d->ing || !lm_pipeline_answers(d->pipe)->ring)
			continue;
		struct lm_dp_edge *ans = lm_pipeline_answers(d->pipe);
		unsigned n = rte_ring_dequeue_burst(ans->ring, (void **)bufs,
						    32, NULL);
		int nt = 0;
		uint64_t now = rte_rdtsc();
		for (unsigned i = 0; i < n; i++) {
			struct lm_dp_bundle *b = bufs[i];
			if (d->rel &&
			    !lm_rel_answered(d->rel, b->keep, b->ticket, now)) {
				rte_mempool_put(ans->pool, b); /* answered */
				continue;
			}
			struct lm_dp_conn *c = conn_get(f, b->conn);
			f->inflight--;
			if (!c) {
				rte_mempool_put(ans->pool, b);
				continue;
			}
			c->inflight--;
			lm_dp_hist_add(&d->ing->e2e, now - b->t_in,
				       f->cycles_per_us);
			if (b->status) {
				push_error(c, b->request_id, b->status,
					   "a stage failed to run the request "
					   "(see the laminad log)");
				rte_mempool_put(ans->pool, b);
				d->ing->errors++;
			} else {
				push_answer(c, d, b);
				d->ing->requests++;
			}
			int seen = 0;
			for (int t = 0; t < nt && !seen; t++)
				seen = touched[t] == c;
			if (!seen)
				touched[nt++] = c;
		}
		for (int t = 0; t < nt; t++)
			conn_tx(f, touched[t]);
		total += (int)n;
	}
	return total;
}

void lm_dp_front_unblock(struct lm_dp_front *f)
{
	for (int i = 0; i < LM_DP_MAX_CONNS && f->n_blocked; i++) {
		struct lm_dp_conn *c = &f->conns[i];
		if (c->fd < 0 || !c->blocked)
			continue;
		if (c->state == RX_FIXED &&
		    c->inflight + c->qn >= LM_DP_CONN_WINDOW)
			continue;
		if (c->state == RX_WAIT &&
		    (!rte_mempool_avail_count(input_edge(c->d)->pool) ||
		     (c->d->rel &&
		      lm_rel_in_use(c->d->rel) == lm_rel_slots(c->d->rel))))
			continue;
		block(f, c, 0);
		conn_rx(f, c);
		if (c->fd >= 0 && c->qn)
			conn_tx(f, c);
	}
}

/* ---- reliable delivery ---- */

/* Re-send kept request k of d on edge 0, or give it up, or forget it
 * (its connection is gone).  0 when edge 0 has no bundle now. */
static int retry_one(struct lm_dp_front *f, struct lm_dp_deployment *d,
		     unsigned k, int what, uint64_t now)
{
	struct lm_dp_bundle *copy = lm_rel_copy(d->rel, k), *b;
	struct lm_dp_conn *c = conn_get(f, copy->conn);
	struct lm_dp_edge *in = input_edge(d);
	if (!c || what == LM_REL_GIVE_UP) {
		f->inflight--;
		if (c) {
			c->inflight--;
			push_error(c, copy->request_id, -ETIMEDOUT, "no answer "
				   "from the stages on other laminads after "
				   "the request was sent several times");
			d->ing->errors++;
			conn_tx(f, c);
		}
		lm_rel_release(d->rel, k);
		return 1;
	}
	if (rte_mempool_get(in->pool, (void **)&b))
		return 0;
	memcpy(b, copy, lm_dp_bundle_bytes(&in->layout));
	rte_ring_enqueue(in->ring, b); /* holds the whole pool */
	lm_rel_sent(d->rel, k, now);
	return 1;
}

void lm_dp_front_retry(struct lm_dp_front *f)
{
	uint64_t now = rte_rdtsc();
	if (now < f->t_retry)
		return;
	f->t_retry = now + f->tsc_hz / 1000; /* every millisecond */
	for (int i = 0; i < LM_DP_MAX_DEPLOYMENTS; i++) {
		struct lm_dp_deployment *d = f->deps->d[i];
		unsigned cursor = 0;
		int k, what;
		if (!d || !d->rel || !d->pipe->started)
			continue;
		while ((k = lm_rel_due(d->rel, now, &cursor, &what)) >= 0)
			if (!retry_one(f, d, (unsigned)k, what, now))
				break;
	}
}

/* ---- the ingress's part of a deployment ---- */

int lm_dp_ingress_create(struct lm_dp_deployment *d,
			 const struct lm_dp_stage_spec *s0, lm_error *e)
{
	if (d->ing)
		return 0;
	if (!(d->ing = calloc(1, sizeof(*d->ing))))
		return lm_fail(e, -ENOMEM, "out of memory");
	d->ing->retry_ms = s0->retry_ms ? s0->retry_ms : 100;
	d->ing->max_retries = s0->max_retries ? s0->max_retries : 8;
	d->ing->period_us = s0->period_us;
	d->ing->keep_slots = s0->keep_bundles;
	return 0;
}

/* The answer's tensor heads, formatted once. */
static int format_answer(struct lm_dp_deployment *d, lm_error *e)
{
	struct lm_dp_ingress *in = d->ing;
	const struct lm_dp_layout *l = &lm_pipeline_answers(d->pipe)->layout;
	size_t size = 0, off = 0;
	for (int i = 0; i < l->n; i++)
		size += LM_WIRE_TENSOR_HEAD(l->t[i].rank);
	free(in->answer_thdr);
	if (!(in->answer_thdr = malloc(size ? size : 1)))
		return lm_fail(e, -ENOMEM, "out of memory");
	in->answer_bytes = 16; /* request id, status, n_tensors */
	for (int i = 0; i < l->n; i++) {
		const struct lm_dp_tdesc *t = &l->t[i];
		in->thdr_off[i] = off;
		off += lm_wire_tensor_put(in->answer_thdr + off,
					  (uint32_t)t->dtype, t->rank, t->dims,
					  t->nbytes);
		in->answer_bytes += LM_WIRE_TENSOR_HEAD(t->rank) + t->nbytes;
	}
	in->thdr_off[l->n] = off;
	return 0;
}

/* Reliable delivery: keep_slots slots, each with a copy from a pool of
 * its own, as the plan charged them (a connection waits for a slot as for
 * a bundle of edge 0). */
static int keep_make(struct lm_dp_front *f, struct lm_dp_deployment *d,
		     lm_error *e)
{
	struct lm_dp_edge *ed = input_edge(d);
	struct lm_dp_ingress *in = d->ing;
	char name[RTE_MEMPOOL_NAMESIZE];
	unsigned n = in->keep_slots;
	void **copies;
	int rc = 0;
	if (d->rel)
		return 0;
	if (!n)
		return lm_fail(e, -EINVAL, "%s: its stages are on several "
			       "laminads but stage 0 was loaded without kept "
			       "requests (keep_bundles)", d->id);
	copies = calloc(n, sizeof(*copies));
	snprintf(name, sizeof(name), "lm%u_keep", d->gen);
	in->keep_pool = rte_mempool_create(name, n,
					   (unsigned)lm_dp_bundle_bytes(
						   &ed->layout),
					   0, 0, NULL, NULL, NULL, NULL,
					   SOCKET_ID_ANY,
					   RTE_MEMPOOL_F_NO_IOVA_CONTIG |
						   RTE_MEMPOOL_F_NO_SPREAD);
	if (!copies || !in->keep_pool ||
	    rte_mempool_get_bulk(in->keep_pool, copies, n))
		rc = -ENOMEM;
	lm_rel_config cfg = { .slots = n,
			      .ticks_per_us = f->cycles_per_us,
			      .retry_ms = in->retry_ms,
			      .max_retries = in->max_retries,
			      .period_us = in->period_us };
	if (!rc && (rc = lm_rel_create(&cfg, copies, &d->rel)))
		rte_mempool_put_bulk(in->keep_pool, copies, n);
	free(copies);
	if (rc) {
		rte_mempool_free(in->keep_pool);
		in->keep_pool = NULL;
		return lm_fail(e, -ENOMEM, "%s: no memory to keep %u requests "
			       "of %zu bytes until answered", d->id, n,
			       ed->layout.bytes);
	}
	return 0;
}

int lm_dp_ingress_start(struct lm_dp_front *f, struct lm_dp_deployment *d,
			lm_error *e)
{
	int rc;
	if (!d->ing)
		return 0;
	if ((rc = format_answer(d, e)))
		return rc;
	if (lm_pipeline_remote(d->pipe) && (rc = keep_make(f, d, e)))
		return rc;
	return 0;
}

void lm_dp_ingress_free(struct lm_dp_deployment *d)
{
	if (d->rel) {
		const lm_rel_stats *s = lm_rel_get_stats(d->rel);
		lm_log("deployment %s: %llu request(s) re-sent, %llu duplicate "
		       "answer(s) dropped, %llu given up", d->id,
		       (unsigned long long)s->resent,
		       (unsigned long long)s->dup_answers,
		       (unsigned long long)s->gave_up);
		/* the copies go with their pool */
		lm_rel_free(d->rel);
		d->rel = NULL;
	}
	if (d->ing) {
		rte_mempool_free(d->ing->keep_pool);
		free(d->ing->answer_thdr);
		free(d->ing);
		d->ing = NULL;
	}
}

/* ---- teardown ---- */

struct cancel_ctx {
	struct lm_dp_front *f;
	struct lm_dp_deployment *d;
};

/* A bundle of d still in the pipeline: its request is cancelled (across
 * laminads the kept slots stand for the requests: see below). */
static void cancel_bundle(void *ctx, struct lm_dp_bundle *b, unsigned edge)
{
	struct cancel_ctx *x = ctx;
	(void)edge;
	if (!x->d->ing || x->d->rel)
		return;
	struct lm_dp_conn *c = conn_get(x->f, b->conn);
	x->f->inflight--;
	if (c) {
		c->inflight--;
		push_error(c, b->request_id, -ECANCELED, "the deployment was "
			   "torn down");
	}
}

void lm_dp_front_cancel(struct lm_dp_front *f, struct lm_dp_deployment *d)
{
	struct cancel_ctx x = { f, d };
	lm_pipeline_drain(d->pipe, cancel_bundle, &x);
	for (unsigned k = 0; d->rel && k < lm_rel_slots(d->rel); k++) {
		if (!lm_rel_in_flight(d->rel, k))
			continue; /* free, or a request still being read */
		struct lm_dp_bundle *copy = lm_rel_copy(d->rel, k);
		struct lm_dp_conn *c = conn_get(f, copy->conn);
		f->inflight--;
		if (c) {
			c->inflight--;
			push_error(c, copy->request_id, -ECANCELED, "the "
				   "deployment was torn down");
		}
		lm_rel_release(d->rel, k);
	}
	for (int i = 0; i < LM_DP_MAX_CONNS; i++) {
		struct lm_dp_conn *c = &f->conns[i];
		if (c->fd < 0)
			continue;
		if (c->d == d)
			refuse(f, c, -ENOENT, "deployment '%s' was torn down",
			       d->id);
		for (unsigned k = 0; k < c->qn; k++) {
			struct answer *a =
				&c->q[(c->qhead + k) % LM_DP_CONN_WINDOW];
			if (!a->b || a->d != d)
				continue;
			if (a->sent) { /* half sent: framing cannot survive */
				conn_close(f, c);
				break;
			}
			uint64_t id = a->b->request_id;
			rte_mempool_put(answers_pool(d), a->b);
			/* rewrite it in place as an error answer */
			unsigned tail = c->qn;
			c->qn = k;
			push_error(c, id, -ECANCELED, "the deployment was torn "
				   "down");
			c->qn = tail;
		}
		if (c->fd >= 0)
			conn_tx(f, c);
	}
}

void lm_dp_front_close(struct lm_dp_front *f)
{
	for (int i = 0; f->conns && i < LM_DP_MAX_CONNS; i++)
		conn_close(f, &f->conns[i]);
	free(f->conns);
	f->conns = NULL;
}
