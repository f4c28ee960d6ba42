/*
 * ingress.c: the binary TCP front of the ingress (see ingress.h for the
 * design; the bytes are lamina/wire.h's, the queue queue.h's).
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

#include "lamina/log.h"
#include "lamina/sock.h"
#include "lamina/wire.h"
#include "oip.h"

#define RBUF (64u << 10)
#define MSG_MAX 200
#define ING_IDLE_MS 60000  /* nothing open, nothing being read */
#define ING_STALL_MS 5000  /* a request half read, no byte since */

enum { RX_FIXED, RX_THDR, RX_WAIT, RX_DATA, RX_SKIP };

struct answer {
	struct lm_dp_deployment *d; /* status 0: the flight held */
	uint64_t flight;
	const uint8_t *data;	/* the answer bundle's data */
	unsigned batch, row0, rows;
	uint8_t *thdr;		/* status 0: the tensor heads (malloc'd) */
	size_t len, sent;
	uint32_t head_len;
	uint8_t head[LM_WIRE_ANS_HEAD + MSG_MAX];
};

struct lm_dp_conn {
	int fd;
	uint32_t gen, events, kind;
	int blocked, rd_closed, dirty, resume;
	uint64_t t_active; /* ms: accepted, or the last byte read or sent */
	/* receiving */
	int state;
	uint8_t *rbuf;
	size_t rpos, rlen;
	uint8_t hdr[LM_WIRE_REQ_HEAD + LM_WIRE_TENSOR_HEAD(LM_MAX_RANK)];
	size_t hlen, hneed;
	uint64_t remaining; /* bytes of the request not yet read */
	uint64_t request_id;
	struct lm_dp_deployment *d; /* of the request being read */
	struct lm_dp_req *req;	    /* its admission (from tensor 0's head) */
	unsigned rows;
	int ti;
	uint8_t *dst;
	size_t dneed;
	/* answers */
	struct answer q[LM_DP_CONN_WINDOW];
	unsigned qhead, qn;
	unsigned open; /* requests admitted and not yet answered */
};

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static uint64_t conn_handle(const struct lm_dp_front *f,
			    const struct lm_dp_conn *c)
{
	return (uint64_t)(c - f->conns) | (uint64_t)c->gen << 32;
}

static struct lm_dp_conn *conn_get(struct lm_dp_front *f, uint64_t id)
{
	uint32_t slot = (uint32_t)id;
	if (slot >= LM_DP_MAX_CONNS)
		return NULL;
	struct lm_dp_conn *c = &f->conns[slot];
	return c->fd >= 0 && c->gen == (uint32_t)(id >> 32) ? c : NULL;
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
	set_events(f, c);
}

/* Have lm_dp_front_flush look at c (send, or resume reading). */
static void mark(struct lm_dp_front *f, struct lm_dp_conn *c)
{
	if (!c->dirty) {
		c->dirty = 1;
		f->dirty[f->n_dirty++] = (int)(c - f->conns);
	}
}

static void answer_drop(struct answer *a)
{
	if (a->d)
		lm_dp_flight_release(a->d, a->flight);
	free(a->thdr);
	a->d = NULL;
	a->thdr = NULL;
}

static void conn_close(struct lm_dp_front *f, struct lm_dp_conn *c)
{
	if (c->fd < 0)
		return;
	block(f, c, 0);
	close(c->fd);
	c->fd = -1;
	c->gen++;
	for (unsigned i = 0; i < c->qn; i++)
		answer_drop(&c->q[(c->qhead + i) % LM_DP_CONN_WINDOW]);
	if (c->req)
		lm_dp_abandon(f->serve, c->req);
	c->req = NULL;
	c->d = NULL;
	c->qn = 0;
	free(c->rbuf);
	c->rbuf = NULL;
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

/* An answer of `rows` rows from a reply: its tensor heads formatted, its
 * flight held until sent.  An error answer when out of memory. */
static void push_answer(struct lm_dp_conn *c, struct lm_dp_deployment *d,
			uint64_t id, const struct lm_dp_reply *r)
{
	const struct lm_dp_layout *l = r->layout;
	size_t size = 0, body = 16, off = 0;
	for (int i = 0; i < l->n; i++) {
		size += LM_WIRE_TENSOR_HEAD(l->t[i].rank);
		body += LM_WIRE_TENSOR_HEAD(l->t[i].rank) +
			l->t[i].nbytes / r->batch * r->rows;
	}
	uint8_t *thdr = malloc(size ? size : 1);
	if (!thdr)
		return push_error(c, id, -ENOMEM, "laminad is out of memory");
	for (int i = 0; i < l->n; i++) {
		const struct lm_dp_tdesc *t = &l->t[i];
		int64_t dims[LM_MAX_RANK];
		memcpy(dims, t->dims, sizeof(dims));
		if (!l->exact_batch) /* a whole batch when moved */
			dims[t->batch_axis] = r->rows;
		off += lm_wire_tensor_put(thdr + off, (uint32_t)t->dtype,
					  t->rank, dims,
					  t->nbytes / r->batch * r->rows);
	}
	struct answer *a = push(c);
	lm_wire_ans_head_put(a->head, (uint32_t)body, id, 0, (uint32_t)l->n);
	a->head_len = LM_WIRE_ANS_HEAD;
	a->len = 8 + body;
	a->thdr = thdr;
	a->d = d;
	a->flight = r->flight;
	a->data = r->data;
	a->batch = r->batch;
	a->row0 = r->row0;
	a->rows = r->rows;
	lm_dp_flight_hold(d, r->flight);
}

/* Append the iovecs of answer a from byte `skip` on; returns how many. */
static int answer_iov(const struct answer *a, size_t skip, struct iovec *iov,
		      int max)
{
	int n = 0;
	size_t off = 0, toff = 0;
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
	if (a->d) {
		const struct lm_dp_layout *l = lm_dp_outputs(a->d);
		for (int i = 0; i < l->n; i++) {
			size_t th = LM_WIRE_TENSOR_HEAD(l->t[i].rank);
			size_t row = l->t[i].nbytes / a->batch;
			SEG(a->thdr + toff, th);
			toff += th;
			SEG(a->data + l->t[i].offset + row * a->row0,
			    row * a->rows);
		}
	}
#undef SEG
	return n;
}

static void conn_rx(struct lm_dp_front *f, struct lm_dp_conn *c);

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
			answer_drop(a);
			c->qhead = (c->qhead + 1) % LM_DP_CONN_WINDOW;
			c->qn--;
		}
	}
	if (c->fd < 0)
		return;
	if (!c->qn && c->rd_closed && !c->open) {
		conn_close(f, c);
		return;
	}
	set_events(f, c);
	/* a window that was full has room again */
	if (c->blocked && c->state == RX_FIXED &&
	    c->open + c->qn < LM_DP_CONN_WINDOW) {
		block(f, c, 0);
		conn_rx(f, c);
	}
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
	if (c->req) {
		lm_dp_abandon(f->serve, c->req);
		c->req = NULL;
		c->open--;
	}
	lm_dp_count_error(c->d, status);
	c->d = NULL;
	block(f, c, 0);
	push_error(c, c->request_id, status, msg);
	mark(f, c);
	c->state = c->remaining ? RX_SKIP : RX_FIXED;
	c->hlen = 0;
	c->hneed = LM_WIRE_REQ_HEAD;
	/* rate limited: a client can send nonsense all day */
	if (f->refused++ < 100 || f->refused % 1000 == 0)
		lm_log("ingress: request %llu refused: %s",
		       (unsigned long long)c->request_id, msg);
}

static void next_tensor(struct lm_dp_conn *c)
{
	c->state = RX_THDR;
	c->hlen = 0;
	c->hneed = LM_WIRE_TENSOR_PRE;
}

static void on_request(struct lm_dp_front *f, struct lm_dp_conn *c)
{
	if (c->remaining)
		return refuse(f, c, -EINVAL, "%llu bytes after the last "
			      "tensor", (unsigned long long)c->remaining);
	lm_dp_commit(f->serve, c->req);
	c->req = NULL;
	c->d = NULL;
	c->state = RX_FIXED;
	c->hlen = 0;
	c->hneed = LM_WIRE_REQ_HEAD;
}

/* Admit the request whose first tensor head said its rows (or, for a
 * model without inputs, a whole batch). */
static void admit(struct lm_dp_front *f, struct lm_dp_conn *c)
{
	struct lm_dp_deployment *d = c->d;
	int rc = lm_dp_admit(f->serve, d, LM_DP_FRONT_TCP, conn_handle(f, c),
			     c->rows, 0, &c->req);
	switch (rc) {
	case 0:
	case 1:
		c->req->tag = c->request_id;
		c->open++;
		break;
	case -EBUSY:
		return refuse(f, c, rc, "deployment '%s': the queue is full "
			      "(%u requests wait); try again later", d->name,
			      lm_dp_queue_pending(d));
	case -ESHUTDOWN:
		return refuse(f, c, rc, "deployment '%s' is being torn down",
			      d->name);
	case -EAGAIN:
		return refuse(f, c, rc, "deployment '%s' is stopped", d->name);
	default:
		return refuse(f, c, rc, "deployment '%s': %s", d->name,
			      strerror(-rc));
	}
	if (rc == 1) {
		c->state = RX_WAIT; /* the queue's ready() resumes it */
		block(f, c, 1);
		return;
	}
	if (lm_dp_inputs(d)->n == 0)
		return on_request(f, c);
	c->dst = lm_dp_req_rows(c->req, 0, &c->dneed);
	c->state = RX_DATA;
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
	struct lm_dp_deployment *d =
		lm_dp_find_served(f->serve->deps, h.deployment);
	if (!d)
		return refuse(f, c, -ENOENT, "no deployment '%s' takes "
			      "requests at this laminad", h.deployment);
	c->d = d;
	if (h.n_tensors != (uint32_t)lm_dp_inputs(d)->n)
		return refuse(f, c, -EINVAL, "deployment '%s' takes %d input "
			      "tensor(s), not %u", h.deployment,
			      lm_dp_inputs(d)->n, h.n_tensors);
	c->ti = 0;
	if (lm_dp_inputs(d)->n == 0) {
		c->rows = lm_dp_batch(d);
		return admit(f, c);
	}
	next_tensor(c);
}

static void on_thdr(struct lm_dp_front *f, struct lm_dp_conn *c)
{
	const struct lm_dp_tdesc *t = &lm_dp_inputs(c->d)->t[c->ti];
	unsigned batch = lm_dp_batch(c->d);
	lm_wire_tensor w;
	char want[320], got[128];
	lm_wire_tensor_get(c->hdr, &w);
	int rank = (int)w.rank, ok = 1;
	for (int k = 0; k < rank; k++)
		ok &= w.dims[k] >= 0;
	/* samples along the tensor's batch axis; whole batches when the
	 * model holds no batch somewhere (queue.h) */
	int exact = lm_dp_exact_batch(c->d), moved = lm_dp_moved_batch(c->d);
	int64_t rows = ok && rank >= 1
			       ? lm_dp_shape_rows(t, exact, moved, batch, rank,
						  w.dims)
			       : 0;
	int shape = rows >= 1 && (c->ti == 0 || rows == c->rows);
	if (exact && ((lm_dtype)w.dtype != t->dtype || !shape)) {
		char why[256];
		lm_dp_layout_exact_why(lm_dp_inputs(c->d), lm_dp_outputs(c->d),
				       batch, why, sizeof(why));
		return refuse(f, c, -EINVAL, "input %d ('%s'): expected %s %s "
			      "(%s), got %s %s", c->ti, t->name,
			      lm_dtype_name(t->dtype),
			      lm_shape_str(t->rank, t->dims, want,
					   sizeof(want)),
			      why, lm_dtype_name((lm_dtype)w.dtype),
			      ok ? lm_shape_str(rank, w.dims, got, sizeof(got))
				 : "(negative dims)");
	}
	if ((lm_dtype)w.dtype != t->dtype || !shape) {
		/* "1x1x8x8", "Nx1x8x8 (N: 1 to 8)" when rows may vary, or
		 * "8x1x32 or 8x8x32" for a batch on axis 1 */
		int64_t d[LM_MAX_RANK];
		char one[64];
		memcpy(d, t->dims, sizeof(d));
		d[t->batch_axis] = c->ti ? c->rows : 1;
		lm_shape_str(t->rank, d, one, sizeof(one));
		d[t->batch_axis] = -1;
		if (c->ti || batch == 1)
			snprintf(want, sizeof(want), "%s", one);
		else if (moved)
			snprintf(want, sizeof(want), "%s or %s", one,
				 lm_shape_str(t->rank, t->dims, got,
					      sizeof(got)));
		else { /* the batch axis shown as N */
			lm_shape_str(t->rank, d, got, sizeof(got));
			*strchr(got, '?') = 'N';
			snprintf(want, sizeof(want), "%s (N: 1 to %u)", got,
				 batch);
		}
		const char *g = ok ? lm_shape_str(rank, w.dims, got, sizeof(got))
			     : "(negative dims)";
		return refuse(f, c, -EINVAL, "input %d ('%s'): expected %s %s, "
			      "got %s %s", c->ti, t->name,
			      lm_dtype_name(t->dtype), want,
			      lm_dtype_name((lm_dtype)w.dtype), g);
	}
	size_t nbytes = t->nbytes / batch * (size_t)rows;
	if (w.nbytes != nbytes)
		return refuse(f, c, -EINVAL, "input %d ('%s'): %llu bytes for "
			      "a tensor of %zu", c->ti, t->name,
			      (unsigned long long)w.nbytes, nbytes);
	if (w.nbytes > c->remaining)
		return refuse(f, c, -EINVAL, "input %d ('%s'): its %llu bytes "
			      "run past the request's length", c->ti, t->name,
			      (unsigned long long)w.nbytes);
	if (c->ti == 0) {
		c->rows = (unsigned)rows;
		return admit(f, c);
	}
	c->dst = lm_dp_req_rows(c->req, c->ti, &c->dneed);
	c->state = RX_DATA;
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
		if (!c->open && !c->qn)
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

static void conn_rx(struct lm_dp_front *f, struct lm_dp_conn *c)
{
	while (c->fd >= 0 && !c->rd_closed) {
		switch (c->state) {
		case RX_FIXED:
		case RX_THDR:
			if (c->state == RX_FIXED && c->hlen == 0 &&
			    c->open + c->qn >= LM_DP_CONN_WINDOW) {
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
			return; /* for rows: the queue's ready() */
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
			if (++c->ti < lm_dp_inputs(c->d)->n)
				next_tensor(c);
			else
				on_request(f, c);
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

/* ---- what the queue calls ---- */

/* Rows came for the request c waited with: read on (from the flush). */
static void on_ready(void *ctx, struct lm_dp_req *r)
{
	struct lm_dp_front *f = ctx;
	struct lm_dp_conn *c = conn_get(f, r->handle);
	if (!c || c->req != r)
		return; /* cannot be: a closing connection abandons it */
	c->state = RX_DATA;
	c->dst = lm_dp_req_rows(r, 0, &c->dneed);
	c->resume = 1;
	mark(f, c);
}

static void on_answer(void *ctx, struct lm_dp_req *r,
		      const struct lm_dp_reply *a)
{
	struct lm_dp_front *f = ctx;
	struct lm_dp_conn *c = conn_get(f, r->handle);
	if (!c)
		return;
	c->open--;
	if (c->req == r) {
		/* answered while still being read (timeout, teardown): the
		 * rest of it is skipped */
		c->req = NULL;
		c->d = NULL;
		c->state = c->remaining ? RX_SKIP : RX_FIXED;
		c->hlen = 0;
		c->hneed = LM_WIRE_REQ_HEAD;
		c->resume = 1;
	}
	if (a->status)
		push_error(c, r->tag, a->status, a->msg);
	else
		push_answer(c, r->d, r->tag, a);
	mark(f, c);
}

/* d goes: unsent answers of it become errors (the half-sent close their
 * connection: framing cannot survive), and requests being read for it
 * are refused. */
static void on_forget(void *ctx, struct lm_dp_deployment *d)
{
	struct lm_dp_front *f = ctx;
	for (int i = 0; i < LM_DP_MAX_CONNS; i++) {
		struct lm_dp_conn *c = &f->conns[i];
		if (c->fd < 0)
			continue;
		for (unsigned k = 0; k < c->qn; k++) {
			struct answer *a =
				&c->q[(c->qhead + k) % LM_DP_CONN_WINDOW];
			if (a->d != d)
				continue;
			if (a->sent) {
				conn_close(f, c);
				break;
			}
			uint64_t id = lm_wire_get64(a->head + 8);
			answer_drop(a);
			/* rewrite it in place as an error answer */
			unsigned tail = c->qn;
			c->qn = k;
			push_error(c, id, -ECANCELED, "the deployment was torn "
				   "down");
			c->qn = tail;
		}
		if (c->fd >= 0 && c->d == d)
			refuse(f, c, -ENOENT, "deployment '%s' was torn down",
			       d->name);
		if (c->fd >= 0)
			mark(f, c);
	}
}

static const struct lm_dp_front_ops tcp_ops = {
	.ready = on_ready,
	.answer = on_answer,
	.forget = on_forget,
};

void lm_dp_front_flush(struct lm_dp_front *f)
{
	/* what this marks again waits for the next round */
	int n = f->n_dirty;
	for (int i = 0; i < n; i++) {
		struct lm_dp_conn *c = &f->conns[f->dirty[i]];
		c->dirty = 0;
		if (c->fd < 0)
			continue;
		if (c->resume) {
			c->resume = 0;
			block(f, c, 0);
			conn_rx(f, c);
		}
		if (c->fd >= 0)
			conn_tx(f, c);
	}
	memmove(f->dirty, f->dirty + n, (size_t)(f->n_dirty - n) *
					       sizeof(f->dirty[0]));
	f->n_dirty -= n;
}

/* ---- the event loop's entry points ---- */

int lm_dp_front_init(struct lm_dp_front *f, int epfd,
		     struct lm_dp_serve *serve, lm_error *e)
{
	memset(f, 0, sizeof(*f));
	f->epfd = epfd;
	f->serve = serve;
	f->conns = calloc(LM_DP_MAX_CONNS, sizeof(*f->conns));
	f->dirty = calloc(2 * LM_DP_MAX_CONNS, sizeof(*f->dirty));
	if (!f->conns || !f->dirty) {
		free(f->conns);
		free(f->dirty);
		return lm_fail(e, -ENOMEM, "out of memory");
	}
	for (int i = 0; i < LM_DP_MAX_CONNS; i++)
		f->conns[i].fd = -1;
	lm_dp_serve_front(serve, LM_DP_FRONT_TCP, &tcp_ops, f);
	return 0;
}

/* A connection with nothing open: no request being read, admitted or
 * answered but unsent. */
static int conn_idle(const struct lm_dp_conn *c)
{
	return c->fd >= 0 && c->state == RX_FIXED && !c->hlen && !c->open &&
	       !c->qn;
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
		} else if (partial && c->state != RX_WAIT &&
			   now - c->t_active > ING_STALL_MS) {
			/* it holds rows of a batch: a client that stops
			 * mid-request must not hold up the others */
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
		int dirty = c->dirty;
		uint8_t *rbuf = c->rbuf;
		memset(c, 0, sizeof(*c));
		c->gen = gen;
		c->dirty = dirty;
		c->rbuf = rbuf;
		c->fd = fd;
		c->kind = kind;
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

void lm_dp_front_close(struct lm_dp_front *f)
{
	for (int i = 0; f->conns && i < LM_DP_MAX_CONNS; i++)
		conn_close(f, &f->conns[i]);
	free(f->conns);
	free(f->dirty);
	f->conns = NULL;
	f->dirty = NULL;
}
