/*
 * oip_http.h: HTTP exchanges with an Open Inference Protocol server, for
 * `lamina infer --url`: one keep-alive connection (libcurl's, which also
 * opens a new one when the server dropped it while idle), GET and POST,
 * answers of any status read whole.  The bodies are oip.h's.  Built
 * without libcurl (-Dhttp_client=disabled), oip_connect fails with
 * -ENOTSUP and says so (oip_http_none.c).
 */
#ifndef LAMINA_OIP_HTTP_H
#define LAMINA_OIP_HTTP_H

#include <stddef.h>

#include "lamina/common.h"

/* Answers larger than this are refused (a bound on what a server can
 * make lamina allocate). */
#define OIP_MAX_ANSWER ((size_t)4 << 30)

typedef struct oip_conn oip_conn;

/** An HTTP answer: status, body (owned), and the value of its
 *  Inference-Header-Content-Length header (-1 when absent). */
typedef struct oip_reply {
	long status;
	char *body;
	size_t len;
	long long json_len;
} oip_reply;

/**
 * A connection to the server at url ("http://host:port[/prefix]"; http
 * and https only), each exchange bounded by timeout_s seconds.  Nothing
 * is sent yet.  0; -EINVAL (not such a URL); -ENOTSUP (no libcurl);
 * -ENOMEM.
 */
int oip_connect(const char *url, int timeout_s, oip_conn **c, lm_error *e);

/** The URL given to oip_connect, without a trailing '/'. */
const char *oip_url(const oip_conn *c);

/**
 * GET url + path.  0 when an answer came, whatever its status (free it
 * with oip_reply_free); else -ECONNREFUSED, -EHOSTUNREACH, -ETIMEDOUT,
 * -EPROTO (an answer cut short, not HTTP, a bad
 * Inference-Header-Content-Length, too large), -EIO, with one line
 * naming the URL.
 */
int oip_get(oip_conn *c, const char *path, oip_reply *r, lm_error *e);

/** POST body (len bytes) to url + path: JSON when json_len == len, else
 *  the binary extension's body with json_len bytes of JSON.  As oip_get. */
int oip_post(oip_conn *c, const char *path, const char *body, size_t len,
	     size_t json_len, oip_reply *r, lm_error *e);

void oip_reply_free(oip_reply *r);

/** Close the connection; safe on NULL. */
void oip_close(oip_conn *c);

#endif
