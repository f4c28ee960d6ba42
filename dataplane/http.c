/*
 * http.c: the ingress's HTTP front (see http.h).
 */
#include "http.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <microhttpd.h>
#include <rte_cycles.h>

#include "lamina/log.h"
#include "oip.h"

#define HTTP_CONNS 1024
#define HTTP_IDLE_S 60		  /* a connection with nothing moving */
#define HTTP_BUDGET (512u << 20)  /* request bodies held, all together */
#define HTTP_BODY_MIN (1u << 20)  /* the smallest limit of one body */
#define HTTP_BODY_MAX (1u << 30)  /* the largest */
#define JSON_PER_BYTE 24	  /* JSON text per tensor byte, at most */

enum route { R_NONE, R_SERVER, R_LIVE, R_READY, R_MODEL, R_MODEL_READY,
	     R_INFER, R_METRICS };

/* One HTTP request, from its first call to its completion. */
struct hreq {
	struct lm_dp_http *h;
	struct MHD_Connection *conn;
	enum route route;
	char model[96]; /* as the path gives it */
	/* the body */
	uint8_t *body;
	size_t len, cap, limit;
	int refused; /* a response is queued: the rest is dropped */
	unsigned drop; /* over a limit half-way: the rest is read and
			  dropped, then this status is answered */
	/* in the queue */
	struct lm_dp_req *req;
	lm_oip_request oip;
	int suspended;
	/* the answer, queued at the next call */
	struct MHD_Response *resp;
	unsigned status;
};

struct lm_dp_http {
	struct MHD_Daemon *mhd;
	int epfd, mhd_fd;
	struct lm_dp_serve *serve;
	const char *version;
	lm_dp_metrics_fn metrics;
	void *metrics_ctx;
	size_t buffered; /* bytes of request bodies held */
	int due;	 /* resumed connections wait for MHD_run */
	unsigned refused;
};

/* ---- responses ---- */

static struct MHD_Response *json_response(char *text, size_t len)
{
	struct MHD_Response *r;
	if (!text)
		return NULL;
	r = MHD_create_response_from_buffer(len, text, MHD_RESPMEM_MUST_FREE);
	if (!r) {
		free(text);
		return NULL;
	}
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE,
				"application/json");
	return r;
}

static enum MHD_Result send_resp(struct MHD_Connection *c, unsigned status,
				 struct MHD_Response *r)
{
	if (!r)
		return MHD_NO; /* out of memory: close it */
	enum MHD_Result rc = MHD_queue_response(c, status, r);
	MHD_destroy_response(r);
	return rc;
}

static enum MHD_Result send_json(struct MHD_Connection *c, unsigned status,
				 char *text, size_t len)
{
	return send_resp(c, status, json_response(text, len));
}

static struct MHD_Response *error_response(const char *fmt, ...)
	__attribute__((format(printf, 1, 2)));

static struct MHD_Response *error_response(const char *fmt, ...)
{
	char msg[512];
	size_t len;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	char *text = lm_oip_error(msg, &len);
	return json_response(text, len);
}

/* The HTTP status of a request's error status (a negative errno). */
static unsigned http_status(int status)
{
	switch (status) {
	case -EINVAL:
	case -EMSGSIZE:
		return MHD_HTTP_BAD_REQUEST;
	case -ENOENT:
		return MHD_HTTP_NOT_FOUND;
	case -EBUSY:
	case -EAGAIN:
	case -ESHUTDOWN:
	case -ECANCELED:
	case -ETIMEDOUT:
		return MHD_HTTP_SERVICE_UNAVAILABLE;
	default:
		return MHD_HTTP_INTERNAL_SERVER_ERROR;
	}
}

/* ---- routes ---- */

/* Split the path into its route and model name. */
static enum route route_of(const char *url, char *model, size_t len)
{
	if (!strcmp(url, "/v2") || !strcmp(url, "/v2/"))
		return R_SERVER;
	if (!strcmp(url, "/v2/health/live"))
		return R_LIVE;
	if (!strcmp(url, "/v2/health/ready"))
		return R_READY;
	if (!strcmp(url, "/metrics"))
		return R_METRICS;
	if (strncmp(url, "/v2/models/", 11))
		return R_NONE;
	const char *name = url + 11, *slash = strchr(name, '/');
	size_t n = slash ? (size_t)(slash - name) : strlen(name);
	if (!n || n >= len)
		return R_NONE;
	memcpy(model, name, n);
	model[n] = '\0';
	const char *rest = name + n;
	if (!strncmp(rest, "/versions/1", 11) &&
	    (rest[11] == '\0' || rest[11] == '/'))
		rest += 11; /* lamina's models have one version */
	if (!*rest)
		return R_MODEL;
	if (!strcmp(rest, "/ready"))
		return R_MODEL_READY;
	if (!strcmp(rest, "/infer"))
		return R_INFER;
	return R_NONE;
}

/* Whether every deployment served here takes requests. */
static int all_ready(struct lm_dp_http *h)
{
	for (int i = 0; i < LM_DP_MAX_DEPLOYMENTS; i++) {
		struct lm_dp_deployment *d = h->serve->deps->d[i];
		if (d && d->ing && !lm_dp_ready(d))
			return 0;
	}
	return 1;
}

static enum MHD_Result get(struct lm_dp_http *h, struct hreq *q)
{
	struct lm_dp_deployment *d = NULL;
	size_t len;
	char *text;
	if (q->route == R_MODEL || q->route == R_MODEL_READY) {
		d = lm_dp_find_served(h->serve->deps, q->model);
		if (!d)
			return send_resp(q->conn, MHD_HTTP_NOT_FOUND,
					 error_response("no model '%s' here",
							q->model));
	}
	switch (q->route) {
	case R_SERVER:
		text = lm_oip_server_metadata(h->version, &len);
		return send_json(q->conn, MHD_HTTP_OK, text, len);
	case R_LIVE:
		text = lm_oip_flag("live", 1, &len);
		return send_json(q->conn, MHD_HTTP_OK, text, len);
	case R_READY: {
		int ready = all_ready(h);
		text = lm_oip_flag("ready", ready, &len);
		return send_json(q->conn, ready ? MHD_HTTP_OK
						: MHD_HTTP_SERVICE_UNAVAILABLE,
				 text, len);
	}
	case R_MODEL:
		text = lm_oip_model_metadata(d->name, lm_dp_inputs(d),
					     lm_dp_outputs(d), lm_dp_batch(d),
					     &len);
		return send_json(q->conn, MHD_HTTP_OK, text, len);
	case R_MODEL_READY: {
		int ready = lm_dp_ready(d);
		text = lm_oip_model_ready(d->name, ready, &len);
		return send_json(q->conn, ready ? MHD_HTTP_OK
						: MHD_HTTP_SERVICE_UNAVAILABLE,
				 text, len);
	}
	case R_METRICS: {
		struct MHD_Response *r;
		text = h->metrics(h->metrics_ctx, &len);
		if (!text)
			return MHD_NO;
		r = MHD_create_response_from_buffer(len, text,
						    MHD_RESPMEM_MUST_FREE);
		if (!r) {
			free(text);
			return MHD_NO;
		}
		MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE,
					"text/plain; version=0.0.4");
		return send_resp(q->conn, MHD_HTTP_OK, r);
	}
	default:
		return MHD_NO;
	}
}

/* ---- inference ---- */

/* Copy the decoded inputs into r's rows and commit. */
static void fill(struct lm_dp_http *h, struct hreq *q)
{
	struct lm_dp_req *r = q->req;
	const struct lm_dp_layout *in = lm_dp_inputs(r->d);
	for (int i = 0; i < in->n; i++) {
		size_t n;
		uint8_t *dst = lm_dp_req_rows(r, i, &n);
		memcpy(dst, q->oip.in[i], n); /* n == in_bytes[i]: decoded */
	}
	lm_dp_commit(h->serve, r);
}

static void body_free(struct lm_dp_http *h, struct hreq *q)
{
	h->buffered -= q->cap;
	free(q->body);
	q->body = NULL;
	q->len = q->cap = 0;
}

/* The body is complete: decode, admit, fill (or wait for rows). */
static enum MHD_Result infer(struct lm_dp_http *h, struct hreq *q)
{
	struct lm_dp_deployment *d =
		lm_dp_find_served(h->serve->deps, q->model);
	const char *v;
	char *end;
	size_t header_len = 0;
	lm_error e = { "" };
	if (!d)
		return send_resp(q->conn, MHD_HTTP_NOT_FOUND,
				 error_response("no model '%s' here", q->model));
	v = MHD_lookup_connection_value(q->conn, MHD_HEADER_KIND,
					"Inference-Header-Content-Length");
	if (v) {
		unsigned long long n = strtoull(v, &end, 10);
		if (!*v || *end || n > q->len) {
			lm_dp_count_error(d, -EINVAL);
			return send_resp(q->conn, MHD_HTTP_BAD_REQUEST,
					 error_response(
						 "Inference-Header-Content-"
						 "Length '%.32s' is not a byte "
						 "count within the body's %zu",
						 v, q->len));
		}
		header_len = (size_t)n;
	}
	int rc = lm_oip_request_decode(q->body, q->len, header_len,
				       lm_dp_inputs(d), lm_dp_outputs(d),
				       lm_dp_batch(d), &q->oip, &e);
	if (rc) {
		lm_dp_count_error(d, rc);
		return send_resp(q->conn, http_status(rc),
				 error_response("%s", e.msg));
	}
	uint64_t timeout = q->oip.timeout_us;
	v = MHD_lookup_connection_value(q->conn, MHD_HEADER_KIND,
					"Timeout-Us");
	if (v) {
		unsigned long long n = strtoull(v, &end, 10);
		if (!*v || *end) {
			lm_dp_count_error(d, -EINVAL);
			return send_resp(q->conn, MHD_HTTP_BAD_REQUEST,
					 error_response("Timeout-Us '%.32s' is "
							"not microseconds", v));
		}
		if (!timeout || n < timeout)
			timeout = n;
	}
	uint64_t deadline =
		timeout ? rte_rdtsc() + (uint64_t)((double)timeout *
						   h->serve->cycles_per_us)
			: 0;
	rc = lm_dp_admit(h->serve, d, LM_DP_FRONT_HTTP, (uintptr_t)q,
			 q->oip.rows, deadline, &q->req);
	if (rc < 0) {
		lm_dp_count_error(d, rc);
		return send_resp(
			q->conn, http_status(rc),
			rc == -EBUSY
				? error_response("model '%s': the queue is full "
						 "(%u requests wait); try again "
						 "later", d->name,
						 lm_dp_queue_pending(d))
			: rc == -ESHUTDOWN
				? error_response("model '%s' is being torn "
						 "down", d->name)
			: rc == -EAGAIN
				? error_response("model '%s' is stopped",
						 d->name)
				: error_response("model '%s': %s", d->name,
						 strerror(-rc)));
	}
	if (rc == 0) {
		fill(h, q); /* an expired timeout answers it at once */
		if (q->resp) {
			struct MHD_Response *r = q->resp;
			q->resp = NULL;
			return send_resp(q->conn, q->status, r);
		}
	}
	/* the binary inputs point into the body: it stays until filled */
	MHD_suspend_connection(q->conn);
	q->suspended = 1;
	return MHD_YES;
}

/* Rows came for q, which waited. */
static void on_ready(void *ctx, struct lm_dp_req *r)
{
	struct lm_dp_http *h = ctx;
	fill(h, (struct hreq *)(uintptr_t)r->handle);
}

static void on_answer(void *ctx, struct lm_dp_req *r,
		      const struct lm_dp_reply *a)
{
	struct lm_dp_http *h = ctx;
	struct hreq *q = (struct hreq *)(uintptr_t)r->handle;
	q->req = NULL;
	body_free(h, q);
	if (a->status) {
		q->status = http_status(a->status);
		q->resp = error_response("%s", a->msg);
	} else {
		uint8_t *body;
		size_t len, header_len;
		int rc = lm_oip_response_encode(r->d->name, &q->oip, a->layout,
						a->data, a->batch, a->row0,
						&body, &len, &header_len);
		if (rc == -ERANGE) {
			q->status = MHD_HTTP_INTERNAL_SERVER_ERROR;
			q->resp = error_response(
				"an output holds NaN or infinity, which JSON "
				"cannot carry: ask for binary outputs");
		} else if (!rc) {
			q->status = MHD_HTTP_OK;
			q->resp = MHD_create_response_from_buffer(
				len, body, MHD_RESPMEM_MUST_FREE);
			if (!q->resp) {
				free(body);
			} else if (header_len) {
				char n[24];
				snprintf(n, sizeof(n), "%zu", header_len);
				MHD_add_response_header(
					q->resp,
					"Inference-Header-Content-Length", n);
				MHD_add_response_header(
					q->resp, MHD_HTTP_HEADER_CONTENT_TYPE,
					"application/octet-stream");
			} else {
				MHD_add_response_header(
					q->resp, MHD_HTTP_HEADER_CONTENT_TYPE,
					"application/json");
			}
		}
	}
	lm_oip_request_free(&q->oip);
	if (q->suspended) {
		q->suspended = 0;
		MHD_resume_connection(q->conn);
		h->due = 1;
	}
}

static void on_forget(void *ctx, struct lm_dp_deployment *d)
{
	(void)ctx;
	(void)d; /* answers are copied out at once: nothing is held */
}

static const struct lm_dp_front_ops http_ops = {
	.ready = on_ready,
	.answer = on_answer,
	.forget = on_forget,
};

/* ---- libmicrohttpd's calls ---- */

/* The most a body for route/model may be. */
static size_t body_limit(struct lm_dp_http *h, struct hreq *q)
{
	struct lm_dp_deployment *d =
		lm_dp_find_served(h->serve->deps, q->model);
	if (!d)
		return HTTP_BODY_MIN;
	size_t bytes = lm_dp_inputs(d)->bytes, lim;
	if (lm_size_mul(bytes, JSON_PER_BYTE, &lim) ||
	    lm_size_add(lim, 65536, &lim) || lim > HTTP_BODY_MAX)
		return HTTP_BODY_MAX;
	return lim < HTTP_BODY_MIN ? HTTP_BODY_MIN : lim;
}

/* Append upload data; 0, or an HTTP status to answer with. */
static unsigned gather(struct lm_dp_http *h, struct hreq *q, const char *data,
		       size_t n)
{
	if (q->len + n > q->limit)
		return MHD_HTTP_CONTENT_TOO_LARGE;
	if (q->len + n > q->cap) {
		size_t cap = q->cap ? q->cap : 65536;
		while (cap < q->len + n)
			cap *= 2;
		if (cap > q->limit)
			cap = q->limit;
		if (h->buffered - q->cap + cap > HTTP_BUDGET)
			return MHD_HTTP_SERVICE_UNAVAILABLE;
		uint8_t *b = realloc(q->body, cap);
		if (!b)
			return MHD_HTTP_SERVICE_UNAVAILABLE;
		h->buffered += cap - q->cap;
		q->body = b;
		q->cap = cap;
	}
	memcpy(q->body + q->len, data, n);
	q->len += n;
	return 0;
}

/* The answer to a body over a limit (counted and logged); its body is
 * freed. */
static struct MHD_Response *refusal(struct lm_dp_http *h, struct hreq *q,
				    unsigned status)
{
	struct lm_dp_deployment *d =
		lm_dp_find_served(h->serve->deps, q->model);
	body_free(h, q);
	if (h->refused++ < 100 || h->refused % 1000 == 0)
		lm_log("http: a request for '%s' refused: %s", q->model,
		       status == MHD_HTTP_CONTENT_TOO_LARGE
			       ? "body too large" : "bodies over budget");
	lm_dp_count_error(d, status == MHD_HTTP_CONTENT_TOO_LARGE ? -EINVAL
								  : -EBUSY);
	return status == MHD_HTTP_CONTENT_TOO_LARGE
		       ? error_response("the request body is over %zu bytes, "
					"the most model '%s' takes", q->limit,
					q->model)
		       : error_response("too many request bodies are held; "
					"try again later");
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn,
				  const char *url, const char *method,
				  const char *version, const char *data,
				  size_t *data_size, void **con_cls)
{
	struct lm_dp_http *h = cls;
	struct hreq *q = *con_cls;
	(void)version;
	if (!q) {
		if (!(q = calloc(1, sizeof(*q))))
			return MHD_NO;
		q->h = h;
		q->conn = conn;
		q->route = route_of(url, q->model, sizeof(q->model));
		*con_cls = q;
		int post = !strcmp(method, MHD_HTTP_METHOD_POST);
		int getlike = !strcmp(method, MHD_HTTP_METHOD_GET) ||
			      !strcmp(method, MHD_HTTP_METHOD_HEAD);
		if (q->route == R_NONE) {
			q->refused = 1;
			return send_resp(conn, MHD_HTTP_NOT_FOUND,
					 error_response("no endpoint %.200s "
							"(see /v2)", url));
		}
		if ((q->route == R_INFER && !post) ||
		    (q->route != R_INFER && !getlike)) {
			struct MHD_Response *r = error_response(
				"%.16s is not allowed on %.200s", method, url);
			if (r)
				MHD_add_response_header(
					r, MHD_HTTP_HEADER_ALLOW,
					q->route == R_INFER ? "POST"
							    : "GET, HEAD");
			q->refused = 1;
			return send_resp(conn, MHD_HTTP_METHOD_NOT_ALLOWED, r);
		}
		if (q->route == R_INFER) {
			const char *cl = MHD_lookup_connection_value(
				conn, MHD_HEADER_KIND,
				MHD_HTTP_HEADER_CONTENT_LENGTH);
			q->limit = body_limit(h, q);
			if (cl && strtoull(cl, NULL, 10) > q->limit) {
				/* said at once: the body is never read */
				q->refused = 1;
				return send_resp(
					conn, MHD_HTTP_CONTENT_TOO_LARGE,
					refusal(h, q,
						MHD_HTTP_CONTENT_TOO_LARGE));
			}
		}
		return MHD_YES;
	}
	if (q->resp) { /* answered while suspended */
		struct MHD_Response *r = q->resp;
		q->resp = NULL;
		return send_resp(conn, q->status, r);
	}
	if (*data_size) {
		/* libmicrohttpd takes no answer half-way through a body: one
		 * over a limit is read to its end, dropped, then answered */
		if (!q->refused && !q->drop)
			q->drop = gather(h, q, data, *data_size);
		if (q->drop)
			body_free(h, q);
		*data_size = 0;
		return MHD_YES;
	}
	if (q->refused || q->req || q->suspended)
		return MHD_YES;
	if (q->drop) {
		q->refused = 1;
		return send_resp(conn, q->drop, refusal(h, q, q->drop));
	}
	if (q->route == R_INFER)
		return infer(h, q);
	return get(h, q);
}

static void on_completed(void *cls, struct MHD_Connection *conn,
			 void **con_cls, enum MHD_RequestTerminationCode how)
{
	struct lm_dp_http *h = cls;
	struct hreq *q = *con_cls;
	(void)conn;
	(void)how;
	if (!q)
		return;
	if (q->req) /* cannot be while suspended; kept total */
		lm_dp_abandon(h->serve, q->req);
	if (q->resp)
		MHD_destroy_response(q->resp);
	body_free(h, q);
	lm_oip_request_free(&q->oip);
	free(q);
	*con_cls = NULL;
}

/* libmicrohttpd's messages: its format, its arguments */
static void on_log(void *cls, const char *fmt, va_list ap)
	__attribute__((format(printf, 2, 0)));

static void on_log(void *cls, const char *fmt, va_list ap)
{
	char msg[512];
	(void)cls;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	msg[strcspn(msg, "\n")] = '\0';
	lm_log("http: %s", msg);
}

int lm_dp_http_open(int fd, int epfd, uint64_t ev, struct lm_dp_serve *serve,
		    const char *version, lm_dp_metrics_fn metrics,
		    void *metrics_ctx, struct lm_dp_http **out, lm_error *e)
{
	struct lm_dp_http *h = calloc(1, sizeof(*h));
	*out = NULL;
	if (!h) {
		close(fd);
		return lm_fail(e, -ENOMEM, "out of memory");
	}
	h->serve = serve;
	h->version = version;
	h->metrics = metrics;
	h->metrics_ctx = metrics_ctx;
	h->epfd = epfd;
	h->mhd = MHD_start_daemon(
		MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG,
		0, NULL, NULL, on_request, h,
		MHD_OPTION_EXTERNAL_LOGGER, on_log, h,
		MHD_OPTION_LISTEN_SOCKET, (MHD_socket)fd,
		MHD_OPTION_NOTIFY_COMPLETED, on_completed, h,
		MHD_OPTION_CONNECTION_LIMIT, (unsigned)HTTP_CONNS,
		MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)HTTP_IDLE_S,
		MHD_OPTION_END);
	if (!h->mhd) {
		close(fd);
		free(h);
		return lm_fail(e, -EIO, "the HTTP front (libmicrohttpd) did "
			       "not start");
	}
	const union MHD_DaemonInfo *info =
		MHD_get_daemon_info(h->mhd, MHD_DAEMON_INFO_EPOLL_FD);
	struct epoll_event ee = { .events = EPOLLIN, .data.u64 = ev };
	h->mhd_fd = info ? info->epoll_fd : -1;
	if (h->mhd_fd < 0 ||
	    epoll_ctl(epfd, EPOLL_CTL_ADD, h->mhd_fd, &ee) != 0) {
		MHD_stop_daemon(h->mhd);
		free(h);
		return lm_fail(e, -EIO, "the HTTP front: no epoll descriptor");
	}
	lm_dp_serve_front(serve, LM_DP_FRONT_HTTP, &http_ops, h);
	*out = h;
	return 0;
}

void lm_dp_http_run(struct lm_dp_http *h)
{
	if (!h)
		return;
	h->due = 0;
	MHD_run(h->mhd);
}

unsigned lm_dp_http_next_us(const struct lm_dp_http *h, unsigned cap)
{
	MHD_UNSIGNED_LONG_LONG ms;
	if (!h)
		return cap;
	if (h->due)
		return 0;
	/* libmicrohttpd's epoll descriptor does not tell of work it has in
	 * hand (a keep-alive connection's next request already read, a
	 * resumed connection): it says so here */
	if (MHD_get_timeout(h->mhd, &ms) != MHD_YES)
		return cap;
	return ms * 1000 < cap ? (unsigned)(ms * 1000) : cap;
}

void lm_dp_http_close(struct lm_dp_http *h)
{
	if (!h)
		return;
	MHD_run(h->mhd); /* send what was answered */
	epoll_ctl(h->epfd, EPOLL_CTL_DEL, h->mhd_fd, NULL);
	MHD_stop_daemon(h->mhd);
	free(h);
}
