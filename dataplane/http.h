/*
 * http.h: the ingress's HTTP front, the Open Inference Protocol's REST API
 * (oip.h) through libmicrohttpd on the main lcore's event loop.
 *
 * libmicrohttpd runs in its external epoll mode: its epoll descriptor sits
 * in laminad's epoll set, and lm_dp_http_run lets it work when that is
 * readable, when a request was answered and once a second for its
 * timeouts.  An inference request's body is gathered (bounded per
 * deployment and in total), decoded, admitted into the deployment's queue
 * (queue.h, shared with the TCP front) and copied into its rows; its
 * connection is suspended until the queue answers, then resumed with the
 * response.  Nothing blocks: a slow or half-closed client holds its own
 * connection only.
 *
 *   GET  /v2                               server metadata
 *   GET  /v2/health/live, /v2/health/ready
 *   GET  /v2/models/NAME[/versions/1]      model metadata
 *   GET  /v2/models/NAME[/versions/1]/ready
 *   POST /v2/models/NAME[/versions/1]/infer
 *   GET  /metrics                          Prometheus text format
 *
 * NAME is a deployment's name or id.  Errors are {"error": "..."}: 400
 * for a request that is not the model's, 404 for an unknown model or
 * path, 405 for a wrong method, 413 for a body over the limit, 503 when
 * the queue is full, the deployment is stopped or going, or a request's
 * timeout (parameters.timeout or the Timeout-Us header, microseconds)
 * expired before it ran, 500 when a stage failed.
 */
#ifndef LAMINA_DP_HTTP_H
#define LAMINA_DP_HTTP_H

#include <stddef.h>
#include <stdint.h>

#include "queue.h"

struct lm_dp_http;

/* What /metrics serves: a malloc'd text and its length. */
typedef char *(*lm_dp_metrics_fn)(void *ctx, size_t *len);

/**
 * Serve HTTP on listening socket fd (taken over), its epoll descriptor
 * added to epfd with user data `ev`; registered with serve as its HTTP
 * front.
 * @return 0; -ENOMEM or -EIO (libmicrohttpd did not start).
 */
int lm_dp_http_open(int fd, int epfd, uint64_t ev, struct lm_dp_serve *serve,
		    const char *version, lm_dp_metrics_fn metrics,
		    void *metrics_ctx, struct lm_dp_http **out, lm_error *e);

/** Let libmicrohttpd work (its descriptor is readable, a request was
 *  answered, or a second passed). */
void lm_dp_http_run(struct lm_dp_http *h);

/** Microseconds until libmicrohttpd must run again, at most cap (0: now,
 *  e.g. answered requests wait for it); cap when h is NULL. */
unsigned lm_dp_http_next_us(const struct lm_dp_http *h, unsigned cap);

/** Stop serving and free everything; safe on NULL. */
void lm_dp_http_close(struct lm_dp_http *h);

#endif
