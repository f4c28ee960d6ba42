/*
 * ingress.c: the inference ingress and egress, on the main lcore.
 *
 * Each connection is a small state machine over the request format of
 * lamina/client.h: the fixed header (52 bytes), then per tensor its header
 * and its bytes.  Headers go through a small per-connection staging buffer;
 * tensor bytes are read from the socket straight into the bundle taken
 * from edge 0's mempool (only bytes the kernel happened to deliver along
 * with a header are moved from the staging buffer).  A request that does
 * not fit the deployment is answered with an error and the rest of it
 * skipped, using its length field, so the connection keeps serving; only
 * broken framing (bad magic, a length too short for the header, a stream
 * ending mid-request) closes the connection.
 *
 * Flow control: a connection may have LM_DP_CONN_WINDOW requests open (in
 * the pipeline or answered but unsent).  When its window is full, or edge
 * 0 has no free buffer, it stops reading (EPOLLIN off) until the egress
 * frees room.  Every parsed request yields exactly one answer, so the
 * answer queue never holds more than the window.
 *
 * Egress: the last edge's bundles are answered with one writev from the
 * answer header, the tensor headers formatted at start and the bundle's
 * tensors; the bundle goes back to its pool when the answer is sent.  An
 * answer for a connection that closed meanwhile is dropped.
 *
 * Across laminads a bundle can be lost with a frame, so the ingress keeps
 * a copy of every request (a keep slot, taken with its edge 0 buffer) until
 * it is answered, re-sends it on edge 0 when no answer came within the
 * deployment's wait (learnt from the answer times, as TCP learns its
 * retransmission timeout, never below retry_ms, doubled per re-send), and
 * gives up with an error answer after max_retries.  Every send carries the slot and a ticket; the first answer
 * frees the slot, so a second answer to the same request (the original
 * was only late) finds the ticket gone and is dropped: the client sees
 * each answer once.  In one process nothing is kept: nothing is lost.
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "dp.h"

#define FIXED 52          /* magic, length, id, deployment, n_tensors */
#define AFTER_LENGTH 44   /* of the fixed header, counted by length */
#define RBUF (64u << 10)
#define ANSWER_HEAD 24    /* magic, length, id, status, n_tensors */
#define MSG_MAX 200

enum { RX_FIXED, RX_WAIT, RX_THDR, RX_DATA, RX_SKIP };

struct answer {
	struct lm_dp_bundle *b; /* NULL: an error answer */
	struct lm_dp_deployment *d;
	size_t len, sent;
	uint32_t head_len;
	uint8_t head[ANSWER_HEAD + 8 + MSG_MAX];
};

struct lm_dp_conn {
	int fd;
	uint32_t gen, events;
	int blocked, rd_closed;
	/* receiving */
	int state;
	uint8_t *rbuf;
	size_t rpos, rlen;
	uint8_t hdr[FIXED + 8 * LM_MAX_RANK + 16];
	size_t hlen, hneed;
	uint64_t remaining; /* bytes of the request not yet read */
	uint64_t request_id;
	struct lm_dp_deployment *d;
	struct lm_dp_bundle *b;
	int ti;
	int keep; /* slot taken for the request being read, or -1 */
	uint8_t *dst;
	size_t dneed;
	/* answers */
	struct answer q[LM_DP_CONN_WINDOW];
	unsigned qhead, qn, inflight;
};

static uint32_t le32(const uint8_t *p)
{
	uint32_t v;
	memcpy(&v, p, 4);
	return v;
}

static uint64_t le64(const uint8_t *p)
{
	uint64_t v;
	memcpy(&v, p, 8);
	return v;
}

static void set_events(struct lm_dp *dp, struct lm_dp_conn *c)
{
	uint32_t want = (!c->blocked && !c->rd_closed ? EPOLLIN : 0) |
			(c->qn ? EPOLLOUT : 0);
	if (want == c->events || c->fd < 0)
		return;
	struct epoll_event ev = {
		.events = want,
		.data.u64 = LM_DP_EV(LM_DP_EV_ING, c - dp->conns),
	};
	epoll_ctl(dp->epfd, EPOLL_CTL_MOD, c->fd, &ev);
	c->events = want;
}

static void block(struct lm_dp *dp, struct lm_dp_conn *c, int on)
{
	if (c->blocked == on)
		return;
	c->blocked = on;
	dp->n_blocked += on ? 1 : -1;
	set_events(dp, c);
}

/* ---- requests kept until answered (across laminads) ---- */

int lm_dp_keep_take(struct lm_dp_deployment *d)
{
	if (!d->n_keep_free)
		return -1;
	unsigned i = d->keep_free[--d->n_keep_free];
	if (!++d->next_ticket)
		d->next_ticket = 1; /* 0 marks a free slot */
	d->keep[i].ticket = d->next_ticket;
	d->keep[i].tries = 0;
	d->keep[i].t_sent = 0; /* not sent yet: never re-sent */
	return (int)i;
}

static void keep_release(struct lm_dp_deployment *d, unsigned i)
{
	d->keep[i].ticket = 0;
	d->keep_free[d->n_keep_free++] = i;
}

/* Is b the first answer to a kept request?  Frees its slot if so, and
 * learns the answer time from a request sent only once (one re-sent could
 * be answered for either send). */
static int keep_answered(struct lm_dp_deployment *d,
			 const struct lm_dp_bundle *b)
{
	if (b->keep >= d->n_keep || !b->ticket ||
	    d->keep[b->keep].ticket != b->ticket) {
		d->dup_answers++;
		return 0;
	}
	struct lm_dp_keep *k = &d->keep[b->keep];
	uint64_t now = rte_rdtsc();
	if (k->tries == 0 && k->t_sent) {
		double rtt = (double)(now - k->t_sent);
		if (d->srtt == 0) {
			d->srtt = rtt;
			d->rttvar = rtt / 2;
		} else {
			d->rttvar = 0.75 * d->rttvar +
				    0.25 * fabs(d->srtt - rtt);
			d->srtt = 0.875 * d->srtt + 0.125 * rtt;
		}
	}
	keep_release(d, b->keep);
	return 1;
}

/* Cycles to wait for an answer before the next send of request k, sent
 * k->tries + 1 times already.  Its answer comes after those of the
 * requests ahead of it: twice their time at the plan's period is always
 * waited (the answer times of the first requests of a burst say nothing
 * of the last's, which queue behind them). */
static uint64_t retry_wait(const struct lm_dp *dp,
			   const struct lm_dp_deployment *d,
			   const struct lm_dp_keep *k)
{
	unsigned tries = k->tries;
	double floor = (double)dp->tsc_hz / 1000 * d->retry_ms;
	/* before the first answer, thrice the floor: a first request also
	 * meets cold caches and first-touch page faults on every stage */
	double w = d->srtt ? d->srtt + 4 * d->rttvar : 3 * floor;
	double queue = 2.0 * (k->ahead + 1) * d->period_us *
		       ((double)dp->tsc_hz / 1e6);
	w = w > floor ? w : floor;
	w = w > queue ? w : queue;
	return (uint64_t)w << (tries < 6 ? tries : 6);
}

static void conn_close(struct lm_dp *dp, struct lm_dp_conn *c)
{
	if (c->fd < 0)
		return;
	block(dp, c, 0);
	close(c->fd);
	c->fd = -1;
	c->gen++;
	for (unsigned i = 0; i < c->qn; i++) {
		struct answer *a = &c->q[(c->qhead + i) % LM_DP_CONN_WINDOW];
		if (a->b)
			rte_mempool_put(a->d->edges[a->d->n_stages].pool, a->b);
	}
	if (c->b)
		rte_mempool_put(c->d->edges[0].pool, c->b);
	if (c->keep >= 0 && c->d)
		keep_release(c->d, (unsigned)c->keep);
	c->keep = -1;
	c->b = NULL;
	c->d = NULL;
	c->qn = 0;
	free(c->rbuf);
	c->rbuf = NULL;
}

static struct lm_dp_conn *conn_get(struct lm_dp *dp, uint64_t id)
{
	uint32_t slot = (uint32_t)id;
	if (slot >= LM_DP_MAX_CONNS)
		return NULL;
	struct lm_dp_conn *c = &dp->conns[slot];
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
	uint32_t magic = LM_WIRE_MAGIC_ANSWER, n = (uint32_t)strlen(msg);
	if (n > MSG_MAX)
		n = MSG_MAX;
	uint32_t len = 8 + 4 + 4 + n;
	int32_t st = status;
	memcpy(a->head, &magic, 4);
	memcpy(a->head + 4, &len, 4);
	memcpy(a->head + 8, &id, 8);
	memcpy(a->head + 16, &st, 4);
	memcpy(a->head + 20, &n, 4);
	memcpy(a->head + 24, msg, n);
	a->head_len = a->len = 24 + n;
}

static void push_answer(struct lm_dp_conn *c, struct lm_dp_deployment *d,
			struct lm_dp_bundle *b)
{
	struct answer *a = push(c);
	uint32_t magic = LM_WIRE_MAGIC_ANSWER;
	uint32_t len = (uint32_t)d->answer_bytes;
	uint32_t n = (uint32_t)d->edges[d->n_stages].layout.n;
	int32_t st = 0;
	memcpy(a->head, &magic, 4);
	memcpy(a->head + 4, &len, 4);
	memcpy(a->head + 8, &b->request_id, 8);
	memcpy(a->head + 16, &st, 4);
	memcpy(a->head + 20, &n, 4);
	a->head_len = ANSWER_HEAD;
	a->len = 8 + d->answer_bytes;
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
		const struct lm_dp_layout *l =
			&a->d->edges[a->d->n_stages].layout;
		for (int i = 0; i < l->n; i++) {
			SEG(a->d->answer_thdr + a->d->thdr_off[i],
			    a->d->thdr_off[i + 1] - a->d->thdr_off[i]);
			SEG(lm_dp_bundle_data(a->b) + l->t[i].offset,
			    l->t[i].nbytes);
		}
	}
#undef SEG
	return n;
}

static void conn_tx(struct lm_dp *dp, struct lm_dp_conn *c)
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
			conn_close(dp, c);
			return;
		}
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
				rte_mempool_put(a->d->edges[a->d->n_stages].pool,
						a->b);
			c->qhead = (c->qhead + 1) % LM_DP_CONN_WINDOW;
			c->qn--;
		}
	}
	if (c->fd < 0)
		return;
	if (!c->qn && c->rd_closed && !c->inflight) {
		conn_close(dp, c);
		return;
	}
	set_events(dp, c);
}

/* ---- requests ---- */

static void refuse(struct lm_dp *dp, struct lm_dp_conn *c, int status,
		   const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* Answer the current request with an error and skip what is left of it. */
static void refuse(struct lm_dp *dp, struct lm_dp_conn *c, int status,
		   const char *fmt, ...)
{
	char msg[MSG_MAX + 1];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (c->b)
		rte_mempool_put(c->d->edges[0].pool, c->b);
	c->b = NULL;
	if (c->keep >= 0 && c->d)
		keep_release(c->d, (unsigned)c->keep);
	c->keep = -1;
	if (c->d)
		c->d->errors++;
	c->d = NULL;
	block(dp, c, 0);
	push_error(c, c->request_id, status, msg);
	c->state = c->remaining ? RX_SKIP : RX_FIXED;
	c->hlen = 0;
	c->hneed = FIXED;
	/* rate limited: a client can send nonsense all day */
	if (dp->refused++ < 100 || dp->refused % 1000 == 0)
		lm_dp_log("ingress: request %llu refused: %s",
			  (unsigned long long)c->request_id, msg);
}

static void on_fixed(struct lm_dp *dp, struct lm_dp_conn *c)
{
	uint32_t magic = le32(c->hdr), length = le32(c->hdr + 4);
	char id[LM_WIRE_ID_LEN + 1];
	if (magic != LM_WIRE_MAGIC_REQUEST || length < AFTER_LENGTH) {
		lm_dp_log("ingress: connection %d: %s, closing it", c->fd,
			  magic != LM_WIRE_MAGIC_REQUEST
				  ? "bad magic" : "length too short");
		conn_close(dp, c);
		return;
	}
	c->request_id = le64(c->hdr + 8);
	memcpy(id, c->hdr + 16, LM_WIRE_ID_LEN);
	id[LM_WIRE_ID_LEN] = '\0';
	uint32_t n = le32(c->hdr + 48);
	c->remaining = length - AFTER_LENGTH;
	c->d = NULL;
	if (length > LM_WIRE_MAX_BYTES)
		return refuse(dp, c, -EMSGSIZE, "request of %u bytes: the "
			      "limit is %u", length, LM_WIRE_MAX_BYTES);
	if (strlen(id) >= LM_WIRE_ID_LEN)
		return refuse(dp, c, -ENOENT, "deployment id is not "
			      "NUL-terminated");
	struct lm_dp_deployment *d = lm_dp_deployment_find(dp, id);
	if (!d)
		return refuse(dp, c, -ENOENT, "no deployment '%s' on this "
			      "laminad", id);
	c->d = d;
	if (!d->started)
		return refuse(dp, c, -EAGAIN, "deployment '%s' is stopped", id);
	if (!d->ingress)
		return refuse(dp, c, -ENOENT, "deployment '%s' takes requests "
			      "at another laminad (the one with its stage 0)",
			      id);
	if (n != (uint32_t)d->edges[0].layout.n)
		return refuse(dp, c, -EINVAL, "deployment '%s' takes %d input "
			      "tensor(s), not %u", id, d->edges[0].layout.n, n);
	c->ti = 0;
	c->state = RX_WAIT;
}

static void on_thdr(struct lm_dp *dp, struct lm_dp_conn *c)
{
	const struct lm_dp_tdesc *t = &c->d->edges[0].layout.t[c->ti];
	lm_dtype dt = (lm_dtype)le32(c->hdr);
	int rank = (int)le32(c->hdr + 4);
	int64_t dims[LM_MAX_RANK] = { 0 };
	uint64_t nbytes = le64(c->hdr + 8 + 8 * (size_t)rank);
	char want[128], got[128];
	for (int k = 0; k < rank; k++)
		dims[k] = (int64_t)le64(c->hdr + 8 + 8 * (size_t)k);
	if (dt != t->dtype || rank != t->rank ||
	    memcmp(dims, t->dims, sizeof(dims[0]) * (size_t)rank)) {
		int ok = 1;
		for (int k = 0; k < rank; k++)
			ok &= dims[k] >= 0;
		return refuse(dp, c, -EINVAL, "input %d ('%s'): expected %s %s, "
			      "got %s %s", c->ti, t->name,
			      lm_dtype_name(t->dtype),
			      lm_shape_str(t->rank, t->dims, want,
					   sizeof(want)),
			      lm_dtype_name(dt) ? lm_dtype_name(dt) : "?",
			      ok ? lm_shape_str(rank, dims, got, sizeof(got))
				 : "(negative dims)");
	}
	if (nbytes != t->nbytes)
		return refuse(dp, c, -EINVAL, "input %d ('%s'): %llu bytes for "
			      "a tensor of %zu", c->ti, t->name,
			      (unsigned long long)nbytes, t->nbytes);
	if (nbytes > c->remaining)
		return refuse(dp, c, -EINVAL, "input %d ('%s'): its %llu bytes "
			      "run past the request's length", c->ti, t->name,
			      (unsigned long long)nbytes);
	c->dst = lm_dp_bundle_data(c->b) + t->offset;
	c->dneed = nbytes;
	c->state = RX_DATA;
}

static void on_request(struct lm_dp *dp, struct lm_dp_conn *c)
{
	if (c->remaining)
		return refuse(dp, c, -EINVAL, "%llu bytes after the last "
			      "tensor", (unsigned long long)c->remaining);
	struct lm_dp_bundle *b = c->b;
	b->t_in = rte_rdtsc();
	if (c->keep >= 0) {
		struct lm_dp_keep *k = &c->d->keep[c->keep];
		memcpy(k->copy, b, sizeof(*b) + c->d->edges[0].layout.bytes);
		k->t_sent = b->t_in;
		k->ahead = c->d->n_keep - c->d->n_keep_free - 1;
		c->keep = -1;
	}
	rte_ring_enqueue(c->d->edges[0].ring, b); /* holds the whole pool */
	c->b = NULL;
	c->d = NULL;
	c->inflight++;
	dp->inflight++;
	c->state = RX_FIXED;
	c->hlen = 0;
	c->hneed = FIXED;
}

/* Staged bytes, or fill the staging buffer: 1 data, 0 would block, -1
 * connection gone. */
static int staged(struct lm_dp *dp, struct lm_dp_conn *c)
{
	if (c->rpos < c->rlen)
		return 1;
	c->rpos = c->rlen = 0;
	ssize_t r = recv(c->fd, c->rbuf, RBUF, MSG_DONTWAIT);
	if (r > 0) {
		c->rlen = (size_t)r;
		return 1;
	}
	if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK ||
		      errno == EINTR))
		return 0;
	if (r == 0 && c->state == RX_FIXED && c->hlen == 0) {
		c->rd_closed = 1; /* clean end: answer what is open */
		if (!c->inflight && !c->qn)
			conn_close(dp, c);
		else
			set_events(dp, c);
		return -1;
	}
	if (r == 0)
		lm_dp_log("ingress: connection %d ended mid-request, closing "
			  "it", c->fd);
	conn_close(dp, c);
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

static void conn_rx(struct lm_dp *dp, struct lm_dp_conn *c)
{
	while (c->fd >= 0 && !c->rd_closed) {
		switch (c->state) {
		case RX_FIXED:
		case RX_THDR:
			if (c->state == RX_FIXED && c->hlen == 0 &&
			    c->inflight + c->qn >= LM_DP_CONN_WINDOW) {
				block(dp, c, 1);
				return;
			}
			if (c->state == RX_THDR && c->hneed - c->hlen >
						    c->remaining)
				return refuse(dp, c, -EINVAL, "input %d: its "
					      "header runs past the request's "
					      "length", c->ti);
			if (staged(dp, c) <= 0)
				return;
			c->hlen += take(c, c->hdr + c->hlen,
					c->hneed - c->hlen);
			if (c->hlen < c->hneed)
				break;
			if (c->state == RX_FIXED) {
				on_fixed(dp, c);
			} else if (c->hneed == 8) {
				uint32_t rank = le32(c->hdr + 4);
				if (rank > LM_MAX_RANK) {
					refuse(dp, c, -EINVAL, "input %d: rank "
					       "%u is above %d", c->ti, rank,
					       LM_MAX_RANK);
					break;
				}
				c->hneed = 8 + 8 * (size_t)rank + 8;
			} else {
				on_thdr(dp, c);
			}
			break;
		case RX_WAIT:
			if ((c->d->keep && !c->d->n_keep_free) ||
			    rte_mempool_get(c->d->edges[0].pool,
					    (void **)&c->b) != 0) {
				block(dp, c, 1);
				return;
			}
			block(dp, c, 0);
			c->b->keep = UINT32_MAX;
			c->b->ticket = 0;
			if (c->d->keep) {
				c->keep = lm_dp_keep_take(c->d);
				c->b->keep = (uint32_t)c->keep;
				c->b->ticket = c->d->keep[c->keep].ticket;
			}
			c->b->request_id = c->request_id;
			c->b->conn = (uint64_t)(c - dp->conns) |
				     (uint64_t)c->gen << 32;
			c->b->deployment = c->d->gen;
			c->b->status = 0;
			c->state = RX_THDR;
			c->hlen = 0;
			c->hneed = 8;
			if (c->d->edges[0].layout.n == 0)
				on_request(dp, c);
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
					if (staged(dp, c) <= 0)
						return;
					break;
				}
				c->dst += r;
				c->dneed -= (size_t)r;
				c->remaining -= (size_t)r;
			}
			if (c->dneed)
				break;
			if (++c->ti < c->d->edges[0].layout.n) {
				c->state = RX_THDR;
				c->hlen = 0;
				c->hneed = 8;
			} else {
				on_request(dp, c);
			}
			break;
		case RX_SKIP:
			if (staged(dp, c) <= 0)
				return;
			take(c, NULL, c->remaining < SIZE_MAX
					      ? (size_t)c->remaining
					      : SIZE_MAX);
			if (!c->remaining) {
				c->state = RX_FIXED;
				c->hlen = 0;
				c->hneed = FIXED;
			}
			break;
		}
	}
}

/* ---- the event loop's entry points ---- */

int lm_dp_ingress_init(struct lm_dp *dp, lm_error *e)
{
	dp->conns = calloc(LM_DP_MAX_CONNS, sizeof(*dp->conns));
	if (!dp->conns)
		return lm_fail(e, -ENOMEM, "out of memory");
	for (int i = 0; i < LM_DP_MAX_CONNS; i++)
		dp->conns[i].fd = -1;
	return 0;
}

int lm_dp_ingress_accept(struct lm_dp *dp)
{
	for (;;) {
		int fd = accept4(dp->ing_fd, NULL, NULL,
				 SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0)
			return errno == EAGAIN || errno == EWOULDBLOCK ? 0
								       : -errno;
		int slot = -1, one = 1;
		for (int i = 0; i < LM_DP_MAX_CONNS && slot < 0; i++)
			if (dp->conns[i].fd < 0)
				slot = i;
		struct lm_dp_conn *c = slot >= 0 ? &dp->conns[slot] : NULL;
		if (!c || !(c->rbuf = malloc(RBUF))) {
			lm_dp_log("ingress: no room for another connection");
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
		c->keep = -1;
		c->hneed = FIXED;
		c->events = EPOLLIN;
		struct epoll_event ev = {
			.events = EPOLLIN,
			.data.u64 = LM_DP_EV(LM_DP_EV_ING, slot),
		};
		if (epoll_ctl(dp->epfd, EPOLL_CTL_ADD, fd, &ev) != 0) {
			close(fd);
			c->fd = -1;
			free(c->rbuf);
			c->rbuf = NULL;
		}
	}
}

void lm_dp_ingress_event(struct lm_dp *dp, int slot, uint32_t events)
{
	struct lm_dp_conn *c = &dp->conns[slot];
	if (c->fd < 0)
		return;
	if (events & EPOLLOUT)
		conn_tx(dp, c);
	if (c->fd >= 0 && (events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
		conn_rx(dp, c);
	if (c->fd >= 0 && c->qn)
		conn_tx(dp, c);
}

int lm_dp_egress_poll(struct lm_dp *dp)
{
	struct lm_dp_bundle *bufs[32];
	struct lm_dp_conn *touched[32];
	int total = 0;
	for (int k = 0; k < LM_DP_MAX_DEPLOYMENTS; k++) {
		struct lm_dp_deployment *d = dp->dep[k];
		if (!d || !d->ingress || !d->edges[d->n_stages].ring)
			continue;
		struct rte_mempool *pool = d->edges[d->n_stages].pool;
		unsigned n = rte_ring_dequeue_burst(d->edges[d->n_stages].ring,
						    (void **)bufs, 32, NULL);
		int nt = 0;
		uint64_t now = rte_rdtsc();
		for (unsigned i = 0; i < n; i++) {
			struct lm_dp_bundle *b = bufs[i];
			if (d->keep && !keep_answered(d, b)) {
				rte_mempool_put(pool, b); /* answered before */
				continue;
			}
			struct lm_dp_conn *c = conn_get(dp, b->conn);
			dp->inflight--;
			if (!c) {
				rte_mempool_put(pool, b);
				continue;
			}
			c->inflight--;
			lm_dp_hist_add(&d->e2e, now - b->t_in,
				       dp->cycles_per_us);
			if (b->status) {
				push_error(c, b->request_id, b->status,
					   "a stage failed to run the request "
					   "(see the laminad log)");
				rte_mempool_put(pool, b);
				d->errors++;
			} else {
				push_answer(c, d, b);
				d->requests++;
			}
			int seen = 0;
			for (int t = 0; t < nt && !seen; t++)
				seen = touched[t] == c;
			if (!seen)
				touched[nt++] = c;
		}
		for (int t = 0; t < nt; t++)
			conn_tx(dp, touched[t]);
		total += (int)n;
	}
	return total;
}

void lm_dp_ingress_unblock(struct lm_dp *dp)
{
	for (int i = 0; i < LM_DP_MAX_CONNS && dp->n_blocked; i++) {
		struct lm_dp_conn *c = &dp->conns[i];
		if (c->fd < 0 || !c->blocked)
			continue;
		if (c->state == RX_FIXED &&
		    c->inflight + c->qn >= LM_DP_CONN_WINDOW)
			continue;
		if (c->state == RX_WAIT &&
		    (!rte_mempool_avail_count(c->d->edges[0].pool) ||
		     (c->d->keep && !c->d->n_keep_free)))
			continue;
		block(dp, c, 0);
		conn_rx(dp, c);
		if (c->fd >= 0 && c->qn)
			conn_tx(dp, c);
	}
}

/* A bundle of d still in the pipeline: its request is cancelled. */
static void cancel(struct lm_dp *dp, struct lm_dp_deployment *d,
		   struct rte_mempool *pool, struct lm_dp_bundle *b)
{
	/* across laminads the keep slots stand for the requests, and a
	 * laminad without the ingress has no connections of them */
	if (d->ingress && !d->keep) {
		struct lm_dp_conn *c = conn_get(dp, b->conn);
		dp->inflight--;
		if (c) {
			c->inflight--;
			push_error(c, b->request_id, -ECANCELED, "the "
				   "deployment was torn down");
		}
	}
	rte_mempool_put(pool, b);
}

void lm_dp_ingress_forget(struct lm_dp *dp, struct lm_dp_deployment *d)
{
	void *obj;
	for (unsigned k = 0; k <= d->n_stages; k++) {
		struct lm_dp_edge *ed = &d->edges[k];
		while (ed->ring && rte_ring_dequeue(ed->ring, &obj) == 0)
			cancel(dp, d, ed->pool, obj);
		if (k == d->n_stages || !d->stages[k])
			continue;
		for (int i = 0; i < d->stages[k]->n_replicas; i++) {
			struct lm_dp_replica *r = d->stages[k]->rep[i];
			for (unsigned h = 0; h < r->n_held; h++)
				cancel(dp, d, ed->pool, r->held[h]);
			r->n_held = 0;
		}
	}
	for (unsigned k = 0; d->keep && k < d->n_keep; k++) {
		if (!d->keep[k].ticket || !d->keep[k].t_sent)
			continue; /* free, or a request still being read */
		struct lm_dp_conn *c = conn_get(dp, d->keep[k].copy->conn);
		dp->inflight--;
		if (c) {
			c->inflight--;
			push_error(c, d->keep[k].copy->request_id, -ECANCELED,
				   "the deployment was torn down");
		}
		keep_release(d, k);
	}
	for (int i = 0; i < LM_DP_MAX_CONNS; i++) {
		struct lm_dp_conn *c = &dp->conns[i];
		if (c->fd < 0)
			continue;
		if (c->d == d)
			refuse(dp, c, -ENOENT, "deployment '%s' was torn down",
			       d->id);
		for (unsigned k = 0; k < c->qn; k++) {
			struct answer *a =
				&c->q[(c->qhead + k) % LM_DP_CONN_WINDOW];
			if (!a->b || a->d != d)
				continue;
			if (a->sent) { /* half sent: framing cannot survive */
				conn_close(dp, c);
				break;
			}
			uint64_t id = a->b->request_id;
			rte_mempool_put(d->edges[d->n_stages].pool, a->b);
			/* rewrite it in place as an error answer */
			unsigned tail = c->qn;
			c->qn = k;
			push_error(c, id, -ECANCELED, "the deployment was torn "
				   "down");
			c->qn = tail;
		}
		if (c->fd >= 0)
			conn_tx(dp, c);
	}
}

/* Re-send one kept request on edge 0, give it up, or forget it (its
 * connection is gone).  0 when edge 0 has no buffer now. */
static int retry_one(struct lm_dp *dp, struct lm_dp_deployment *d,
		     unsigned k, uint64_t now)
{
	struct lm_dp_keep *kp = &d->keep[k];
	struct lm_dp_conn *c = conn_get(dp, kp->copy->conn);
	struct lm_dp_bundle *b;
	if (!c || kp->tries >= d->max_retries) {
		dp->inflight--;
		if (c) {
			c->inflight--;
			push_error(c, kp->copy->request_id, -ETIMEDOUT,
				   "no answer from the stages on other "
				   "laminads after the request was sent "
				   "several times");
			d->errors++;
			d->gave_up++;
			conn_tx(dp, c);
		}
		keep_release(d, k);
		return 1;
	}
	if (rte_mempool_get(d->edges[0].pool, (void **)&b))
		return 0;
	memcpy(b, kp->copy, sizeof(*b) + d->edges[0].layout.bytes);
	rte_ring_enqueue(d->edges[0].ring, b); /* holds the whole pool */
	kp->tries++;
	kp->t_sent = now;
	kp->ahead = d->n_keep - d->n_keep_free - 1;
	d->resent++;
	return 1;
}

void lm_dp_ingress_retry(struct lm_dp *dp)
{
	uint64_t now = rte_rdtsc();
	if (!dp->net || now < dp->net->t_retry)
		return;
	dp->net->t_retry = now + dp->tsc_hz / 1000; /* every millisecond */
	for (int i = 0; i < LM_DP_MAX_DEPLOYMENTS; i++) {
		struct lm_dp_deployment *d = dp->dep[i];
		if (!d || !d->keep || !d->started)
			continue;
		for (unsigned k = 0; k < d->n_keep; k++)
			if (d->keep[k].ticket && d->keep[k].t_sent &&
			    now - d->keep[k].t_sent >
				    retry_wait(dp, d, &d->keep[k]) &&
			    !retry_one(dp, d, k, now))
				break;
	}
}

void lm_dp_ingress_close_all(struct lm_dp *dp)
{
	for (int i = 0; dp->conns && i < LM_DP_MAX_CONNS; i++)
		conn_close(dp, &dp->conns[i]);
	free(dp->conns);
	dp->conns = NULL;
}
