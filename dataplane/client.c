/*
 * client.c: the C client of laminad's inference ingress (lamina/client.h),
 * speaking the protocol of lamina/wire.h.  Blocking sockets; every wait is
 * bounded by the connection's timeout.  Used by `lamina infer`, the tests
 * and the benchmarks.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "lamina/client.h"
#include "lamina/sock.h"

#define MAX_TENSORS 64

struct lm_infer {
	int fd, timeout_ms;
	uint8_t *buf;
	size_t cap;
};

int lm_infer_connect(const char *host, uint16_t port, int timeout_ms,
		     lm_infer **out, lm_error *e)
{
	lm_infer *c = calloc(1, sizeof(*c));
	int rc;
	if (!c)
		return lm_fail(e, -ENOMEM, "out of memory");
	c->timeout_ms = timeout_ms;
	if ((rc = lm_sock_connect(host, port, timeout_ms, &c->fd, e))) {
		free(c);
		return rc;
	}
	*out = c;
	return 0;
}

void lm_infer_free(lm_infer *c)
{
	if (!c)
		return;
	close(c->fd);
	free(c->buf);
	free(c);
}

int lm_infer_send(lm_infer *c, const char *deployment, uint64_t request_id,
		  const lm_tensor *inputs, int n_inputs, lm_error *e)
{
	uint8_t head[LM_WIRE_REQ_HEAD];
	uint8_t th[MAX_TENSORS][LM_WIRE_TENSOR_HEAD(LM_MAX_RANK)];
	struct iovec iov[1 + 2 * MAX_TENSORS];
	uint64_t total = LM_WIRE_REQ_COUNTED;
	if (n_inputs < 0 || n_inputs > MAX_TENSORS)
		return lm_fail(e, -EINVAL, "%d inputs: at most %d", n_inputs,
			       MAX_TENSORS);
	int n = 1;
	for (int i = 0; i < n_inputs; i++) {
		const lm_tensor *t = &inputs[i];
		size_t nb;
		if (lm_shape_bytes(t->dtype, t->rank, t->dims, &nb) ||
		    (!t->data && nb))
			return lm_fail(e, -EINVAL, "input %d: no type, shape "
				       "or data", i);
		size_t hl = lm_wire_tensor_put(th[i], (uint32_t)t->dtype,
					       t->rank, t->dims, nb);
		iov[n].iov_base = th[i];
		iov[n++].iov_len = hl;
		iov[n].iov_base = t->data;
		iov[n++].iov_len = nb;
		total += hl + (uint64_t)nb;
		if (total > LM_WIRE_MAX_BYTES)
			break;
	}
	if (total > LM_WIRE_MAX_BYTES)
		return lm_fail(e, -EMSGSIZE, "request of more than %llu bytes: "
			       "the limit is %u", (unsigned long long)total,
			       LM_WIRE_MAX_BYTES);
	if (lm_wire_req_head_put(head, (uint32_t)total, request_id,
				 deployment, (uint32_t)n_inputs))
		return lm_fail(e, -EINVAL, "deployment '%s' must be 1 to %d "
			       "bytes", deployment ? deployment : "",
			       LM_WIRE_ID_LEN - 1);
	iov[0].iov_base = head;
	iov[0].iov_len = sizeof(head);
	return lm_sock_writev(c->fd, iov, n, "laminad", e);
}

int lm_infer_recv(lm_infer *c, uint64_t *request_id, lm_tensor *outputs,
		  int max, int *n_outputs, lm_error *e)
{
	uint8_t h[8];
	uint32_t len;
	lm_wire_ans_head a;
	int rc;
	*n_outputs = 0;
	if ((rc = lm_sock_read(c->fd, h, 8, c->timeout_ms, "laminad", e)))
		return rc;
	if (lm_wire_ans_length(h, &len))
		return lm_fail(e, -EPROTO, "malformed answer from laminad "
			       "(magic %08x, length %u)", lm_wire_get32(h),
			       lm_wire_get32(h + 4));
	if (8 + (size_t)len > c->cap) {
		uint8_t *p = realloc(c->buf, 8 + (size_t)len);
		if (!p)
			return lm_fail(e, -ENOMEM, "out of memory");
		c->buf = p;
		c->cap = 8 + (size_t)len;
	}
	memcpy(c->buf, h, 8);
	if ((rc = lm_sock_read(c->fd, c->buf + 8, len, c->timeout_ms,
			       "laminad", e)))
		return rc;
	lm_wire_ans_head_get(c->buf, &a);
	*request_id = a.request_id;
	const uint8_t *p = c->buf + LM_WIRE_ANS_HEAD, *end = c->buf + 8 + len;
	if (a.status != 0) {
		size_t n = a.n < (size_t)(end - p) ? a.n : (size_t)(end - p);
		rc = a.status < 0 ? a.status : -EPROTO;
		return lm_fail(e, rc, "%.*s", (int)n, (const char *)p);
	}
	if ((int64_t)a.n > max)
		return lm_fail(e, -E2BIG, "the answer has %u tensors, room for "
			       "%d", a.n, max);
	for (uint32_t i = 0; i < a.n; i++) {
		lm_wire_tensor t;
		uint32_t rank;
		size_t nb;
		lm_tensor *o = &outputs[i];
		if (end - p < LM_WIRE_TENSOR_PRE ||
		    lm_wire_tensor_rank(p, &rank) ||
		    (size_t)(end - p) < LM_WIRE_TENSOR_HEAD(rank))
			goto bad;
		lm_wire_tensor_get(p, &t);
		p += LM_WIRE_TENSOR_HEAD(rank);
		memset(o, 0, sizeof(*o));
		if (lm_shape_bytes((lm_dtype)t.dtype, (int)rank, t.dims, &nb) ||
		    nb != t.nbytes || nb > (size_t)(end - p) ||
		    lm_tensor_alloc(o, (lm_dtype)t.dtype, (int)rank,
				    t.dims) != 0)
			goto bad;
		memcpy(o->data, p, nb);
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
