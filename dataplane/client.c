/*
 * client.c: the C client library of laminad (lamina/client.h): the
 * control port's length-prefixed protobuf-c calls and the ingress's binary
 * inference protocol.  Blocking sockets; every wait is bounded by the
 * connection's timeout.  Used by `lamina deploy/infer/status/teardown`,
 * the tests and the benchmarks.
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "lamina/client.h"

#define FIXED 52

/* A connection: both kinds start with one (see connect_new). */
struct conn {
	int fd, timeout_ms;
};

struct lm_client {
	struct conn k;
	uint64_t next_id;
};

struct lm_infer {
	struct conn k;
	uint8_t *buf;
	size_t cap;
};

/* ---- sockets ---- */

static int wait_fd(int fd, short what, int timeout_ms)
{
	struct pollfd p = { .fd = fd, .events = what };
	for (;;) {
		int r = poll(&p, 1, timeout_ms);
		if (r > 0)
			return 0;
		if (r == 0)
			return -ETIMEDOUT;
		if (errno != EINTR)
			return -errno;
	}
}

static int connect_tcp(const char *host, uint16_t port, int timeout_ms,
		       int *out, lm_error *e)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM,
				  .ai_flags = AI_NUMERICSERV }, *res, *ai;
	char ps[8];
	int rc = -ECONNREFUSED;
	snprintf(ps, sizeof(ps), "%u", port);
	int g = getaddrinfo(host, ps, &hints, &res);
	if (g)
		return lm_fail(e, -EHOSTUNREACH, "%s: %s", host,
			       gai_strerror(g));
	for (ai = res; ai; ai = ai->ai_next) {
		int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK |
				SOCK_CLOEXEC, 0), err = 0, one = 1;
		socklen_t len = sizeof(err);
		if (fd < 0) {
			rc = -errno;
			continue;
		}
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
			rc = errno == EINPROGRESS
				     ? wait_fd(fd, POLLOUT, timeout_ms) : -errno;
			if (!rc && getsockopt(fd, SOL_SOCKET, SO_ERROR, &err,
					      &len) == 0 && err)
				rc = -err;
		} else {
			rc = 0;
		}
		if (rc) {
			close(fd);
			continue;
		}
		/* blocking from here on; every wait goes through poll */
		fcntl(fd, F_SETFL, 0);
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		struct timeval tv = { timeout_ms / 1000,
				      (timeout_ms % 1000) * 1000 };
		setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
		*out = fd;
		break;
	}
	freeaddrinfo(res);
	if (rc)
		return lm_fail(e, rc, "cannot connect to %s port %u: %s", host,
			       port, rc == -ETIMEDOUT ? "timed out"
						     : strerror(-rc));
	return 0;
}

static int read_full(int fd, void *buf, size_t n, int timeout_ms,
		     lm_error *e)
{
	uint8_t *p = buf;
	while (n) {
		int rc = wait_fd(fd, POLLIN, timeout_ms);
		if (rc)
			return lm_fail(e, rc, "no answer from laminad: %s",
				       rc == -ETIMEDOUT ? "timed out"
							: strerror(-rc));
		ssize_t r = recv(fd, p, n, 0);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return lm_fail(e, r ? -errno : -ECONNRESET, "laminad "
				       "closed the connection");
		p += r;
		n -= (size_t)r;
	}
	return 0;
}

static int write_iov(int fd, struct iovec *iov, int n, lm_error *e)
{
	while (n > 0) {
		struct msghdr mh = { .msg_iov = iov,
				     .msg_iovlen = (size_t)(n > 512 ? 512 : n) };
		ssize_t w = sendmsg(fd, &mh, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return lm_fail(e, errno == EAGAIN ? -ETIMEDOUT : -errno,
				       "cannot send to laminad: %s",
				       errno == EAGAIN ? "timed out"
						       : strerror(errno));
		size_t left = (size_t)w;
		while (n > 0 && left >= iov->iov_len) {
			left -= iov->iov_len;
			iov++;
			n--;
		}
		if (n > 0) {
			iov->iov_base = (uint8_t *)iov->iov_base + left;
			iov->iov_len -= left;
		}
	}
	return 0;
}

/* ---- control ---- */

/* Allocate a connection object of `size` that starts with a struct conn,
 * and connect it. */
static int connect_new(const char *host, uint16_t port, int timeout_ms,
		       size_t size, void **out, lm_error *e)
{
	struct conn *c = calloc(1, size);
	int rc;
	if (!c)
		return lm_fail(e, -ENOMEM, "out of memory");
	c->timeout_ms = timeout_ms;
	if ((rc = connect_tcp(host, port, timeout_ms, &c->fd, e))) {
		free(c);
		return rc;
	}
	*out = c;
	return 0;
}

int lm_client_connect(const char *host, uint16_t port, int timeout_ms,
		      lm_client **out, lm_error *e)
{
	return connect_new(host, port, timeout_ms, sizeof(lm_client),
			   (void **)out, e);
}

void lm_client_free(lm_client *c)
{
	if (!c)
		return;
	close(c->k.fd);
	free(c);
}

int lm_client_call(lm_client *c, Lamina__Request *req, Lamina__Reply **reply,
		   lm_error *e)
{
	uint8_t len[4];
	int rc;
	*reply = NULL;
	req->id = ++c->next_id;
	size_t n = lamina__request__get_packed_size(req);
	if (n > LM_CONTROL_MAX_BYTES)
		return lm_fail(e, -EMSGSIZE, "control request of %zu bytes "
			       "(limit %u)", n, LM_CONTROL_MAX_BYTES);
	uint8_t *buf = malloc(n + 4);
	if (!buf)
		return lm_fail(e, -ENOMEM, "out of memory");
	buf[0] = (uint8_t)(n >> 24);
	buf[1] = (uint8_t)(n >> 16);
	buf[2] = (uint8_t)(n >> 8);
	buf[3] = (uint8_t)n;
	lamina__request__pack(req, buf + 4);
	struct iovec iov = { buf, n + 4 };
	rc = write_iov(c->k.fd, &iov, 1, e);
	free(buf);
	if (rc || (rc = read_full(c->k.fd, len, 4, c->k.timeout_ms, e)))
		return rc;
	uint32_t m = (uint32_t)len[0] << 24 | (uint32_t)len[1] << 16 |
		     (uint32_t)len[2] << 8 | len[3];
	if (m > LM_CONTROL_MAX_BYTES)
		return lm_fail(e, -EPROTO, "laminad sent a reply of %u bytes",
			       m);
	if (!(buf = malloc(m ? m : 1)))
		return lm_fail(e, -ENOMEM, "out of memory");
	if ((rc = read_full(c->k.fd, buf, m, c->k.timeout_ms, e))) {
		free(buf);
		return rc;
	}
	Lamina__Reply *r = lamina__reply__unpack(NULL, m, buf);
	free(buf);
	if (!r)
		return lm_fail(e, -EPROTO, "laminad sent a reply that does not "
			       "decode");
	if (r->id != req->id && !(r->id == 0 && r->error)) {
		unsigned long long got = (unsigned long long)r->id;
		lamina__reply__free_unpacked(r, NULL);
		return lm_fail(e, -EPROTO, "reply to request %llu while waiting "
			       "for %llu", got, (unsigned long long)req->id);
	}
	if (r->error) {
		rc = r->error->code < 0 ? r->error->code : -EIO;
		lm_fail(e, rc, "%s", r->error->message ? r->error->message
						       : "refused");
		lamina__reply__free_unpacked(r, NULL);
		return rc;
	}
	*reply = r;
	return 0;
}

/* ---- ingress ---- */

int lm_infer_connect(const char *host, uint16_t port, int timeout_ms,
		     lm_infer **out, lm_error *e)
{
	return connect_new(host, port, timeout_ms, sizeof(lm_infer),
			   (void **)out, e);
}

void lm_infer_free(lm_infer *c)
{
	if (!c)
		return;
	close(c->k.fd);
	free(c->buf);
	free(c);
}

static size_t tensor_bytes(const lm_tensor *t)
{
	int64_t n = lm_shape_numel(t->rank, t->dims);
	return n < 0 ? 0 : (size_t)n * lm_dtype_size(t->dtype);
}

int lm_infer_send(lm_infer *c, const char *deployment, uint64_t request_id,
		  const lm_tensor *inputs, int n_inputs, lm_error *e)
{
	enum { MAXT = 64 };
	uint8_t fixed[FIXED], th[MAXT][8 + 8 * LM_MAX_RANK + 8];
	struct iovec iov[1 + 2 * MAXT];
	size_t dl = deployment ? strlen(deployment) : 0;
	uint64_t total = FIXED - 8;
	if (dl == 0 || dl >= LM_DEPLOYMENT_MAX)
		return lm_fail(e, -EINVAL, "deployment id '%s' must be 1 to %d "
			       "bytes", deployment ? deployment : "",
			       LM_DEPLOYMENT_MAX - 1);
	if (n_inputs < 0 || n_inputs > MAXT)
		return lm_fail(e, -EINVAL, "%d inputs: at most %d", n_inputs,
			       MAXT);
	int n = 1;
	for (int i = 0; i < n_inputs; i++) {
		const lm_tensor *t = &inputs[i];
		uint32_t dt = (uint32_t)t->dtype, rank = (uint32_t)t->rank;
		uint64_t nb = tensor_bytes(t);
		if (t->rank < 0 || t->rank > LM_MAX_RANK || (!t->data && nb))
			return lm_fail(e, -EINVAL, "input %d: rank %d or no "
				       "data", i, t->rank);
		memcpy(th[i], &dt, 4);
		memcpy(th[i] + 4, &rank, 4);
		memcpy(th[i] + 8, t->dims, 8 * rank);
		memcpy(th[i] + 8 + 8 * rank, &nb, 8);
		iov[n].iov_base = th[i];
		iov[n++].iov_len = 16 + 8 * (size_t)rank;
		iov[n].iov_base = t->data;
		iov[n++].iov_len = (size_t)nb;
		total += 16 + 8 * (uint64_t)rank + nb;
	}
	if (total > LM_INGRESS_MAX_BYTES)
		return lm_fail(e, -EMSGSIZE, "request of %llu bytes: the limit "
			       "is %u", (unsigned long long)total,
			       LM_INGRESS_MAX_BYTES);
	uint32_t magic = LM_INGRESS_MAGIC_REQUEST, len = (uint32_t)total;
	uint32_t nt = (uint32_t)n_inputs;
	memset(fixed, 0, sizeof(fixed));
	memcpy(fixed, &magic, 4);
	memcpy(fixed + 4, &len, 4);
	memcpy(fixed + 8, &request_id, 8);
	memcpy(fixed + 16, deployment, dl);
	memcpy(fixed + 48, &nt, 4);
	iov[0].iov_base = fixed;
	iov[0].iov_len = FIXED;
	return write_iov(c->k.fd, iov, n, e);
}

int lm_infer_recv(lm_infer *c, uint64_t *request_id, lm_tensor *outputs,
		  int max, int *n_outputs, lm_error *e)
{
	uint8_t h[8];
	uint32_t magic, len;
	int rc;
	*n_outputs = 0;
	if ((rc = read_full(c->k.fd, h, 8, c->k.timeout_ms, e)))
		return rc;
	memcpy(&magic, h, 4);
	memcpy(&len, h + 4, 4);
	if (magic != LM_INGRESS_MAGIC_ANSWER || len < 16 ||
	    len > LM_INGRESS_MAX_BYTES + 4096u)
		return lm_fail(e, -EPROTO, "malformed answer from laminad "
			       "(magic %08x, length %u)", magic, len);
	if (len > c->cap) {
		uint8_t *p = realloc(c->buf, len);
		if (!p)
			return lm_fail(e, -ENOMEM, "out of memory");
		c->buf = p;
		c->cap = len;
	}
	if ((rc = read_full(c->k.fd, c->buf, len, c->k.timeout_ms, e)))
		return rc;
	const uint8_t *p = c->buf, *end = c->buf + len;
	int32_t status;
	uint32_t n;
	memcpy(request_id, p, 8);
	memcpy(&status, p + 8, 4);
	memcpy(&n, p + 12, 4);
	p += 16;
	if (status != 0) {
		if (n > (size_t)(end - p))
			n = (uint32_t)(end - p);
		lm_fail(e, status < 0 ? status : -EPROTO, "%.*s", (int)n,
			(const char *)p);
		return status < 0 ? status : -EPROTO;
	}
	if ((int64_t)n > max)
		return lm_fail(e, -E2BIG, "the answer has %u tensors, room for "
			       "%d", n, max);
	for (uint32_t i = 0; i < n; i++) {
		uint32_t dt, rank;
		int64_t dims[LM_MAX_RANK];
		uint64_t nb;
		lm_tensor *t = &outputs[i];
		if (end - p < 8)
			goto bad;
		memcpy(&dt, p, 4);
		memcpy(&rank, p + 4, 4);
		p += 8;
		if (rank > LM_MAX_RANK || (size_t)(end - p) < 8 * rank + 8)
			goto bad;
		memcpy(dims, p, 8 * rank);
		memcpy(&nb, p + 8 * rank, 8);
		p += 8 * rank + 8;
		memset(t, 0, sizeof(*t));
		if (nb > (uint64_t)(end - p) ||
		    lm_tensor_alloc(t, (lm_dtype)dt, (int)rank, dims) != 0 ||
		    t->nbytes != nb) {
			lm_tensor_free(t);
			goto bad;
		}
		memcpy(t->data, p, nb);
		p += nb;
		*n_outputs = (int)i + 1;
	}
	if (p != end)
		goto bad;
	return 0;
bad:
	for (int i = 0; i < *n_outputs; i++)
		lm_tensor_free(&outputs[i]);
	*n_outputs = 0;
	return lm_fail(e, -EPROTO, "malformed tensor in the answer to request "
		       "%llu", (unsigned long long)*request_id);
}
