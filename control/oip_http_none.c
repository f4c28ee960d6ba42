/*
 * oip_http_none.c: oip_http.h for a lamina built without libcurl
 * (-Dhttp_client=disabled): `lamina infer --url` says so and stops.
 */
#include "oip_http.h"

#include <errno.h>
#include <stddef.h>

int oip_connect(const char *url, int timeout_s, oip_conn **c, lm_error *e)
{
	(void)timeout_s;
	*c = NULL;
	return lm_fail(e, -ENOTSUP, "%s: this lamina was built without "
		       "libcurl (meson -Dhttp_client=disabled), so it has no "
		       "HTTP client", url);
}

const char *oip_url(const oip_conn *c)
{
	(void)c;
	return "";
}

int oip_get(oip_conn *c, const char *path, oip_reply *r, lm_error *e)
{
	(void)c;
	(void)path;
	(void)r;
	return lm_fail(e, -ENOTSUP, "no HTTP client in this lamina");
}

int oip_post(oip_conn *c, const char *path, const char *body, size_t len,
	     size_t json_len, oip_reply *r, lm_error *e)
{
	(void)body;
	(void)len;
	(void)json_len;
	return oip_get(c, path, r, e);
}

void oip_reply_free(oip_reply *r)
{
	(void)r;
}

void oip_close(oip_conn *c)
{
	(void)c;
}
