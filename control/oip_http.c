/*
 * oip_http.c: HTTP exchanges with an Open Inference Protocol server
 * through libcurl (see oip_http.h).  One easy handle serves every
 * exchange, so its connection is kept alive between requests; libcurl
 * notices a kept connection the server closed and opens a new one.
 * Every failure becomes one line naming the URL.
 */
#include "oip_http.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>

#define HDR_LEN "Inference-Header-Content-Length:"

struct oip_conn {
	CURL *curl;
	char *url;
	int timeout_s;
	char errbuf[CURL_ERROR_SIZE];
	/* the answer being read */
	oip_reply *r;
	size_t cap;
	int too_big, bad_hdr;
	char hdr_text[24];
};

static size_t on_body(char *p, size_t size, size_t n, void *arg)
{
	oip_conn *c = arg;
	oip_reply *r = c->r;
	size_t k = size * n; /* libcurl: size is always 1 */
	if (k > OIP_MAX_ANSWER - r->len) {
		c->too_big = 1;
		return 0;
	}
	if (r->len + k + 1 > c->cap) {
		size_t cap = c->cap ? c->cap : 4096;
		while (cap < r->len + k + 1)
			cap *= 2;
		char *b = realloc(r->body, cap);
		if (!b)
			return 0;
		r->body = b;
		c->cap = cap;
	}
	memcpy(r->body + r->len, p, k);
	r->len += k;
	r->body[r->len] = 0;
	return k;
}

/* Headers, one line at a time (of every answer: a 100 Continue's too). */
static size_t on_header(char *p, size_t size, size_t n, void *arg)
{
	oip_conn *c = arg;
	size_t k = size * n, len = strlen(HDR_LEN);
	if (k >= 5 && !strncmp(p, "HTTP/", 5)) { /* a new answer */
		c->r->json_len = -1;
		c->bad_hdr = 0;
	} else if (k > len && !strncasecmp(p, HDR_LEN, len)) {
		size_t i = len, j = k;
		while (i < k && (p[i] == ' ' || p[i] == '\t'))
			i++;
		while (j > i && (p[j - 1] == '\r' || p[j - 1] == '\n' ||
				 p[j - 1] == ' ' || p[j - 1] == '\t'))
			j--;
		long long v = 0;
		c->bad_hdr = i == j || j - i > 15;
		for (size_t q = i; q < j && !c->bad_hdr; q++) {
			if (p[q] < '0' || p[q] > '9')
				c->bad_hdr = 1;
			else
				v = v * 10 + (p[q] - '0');
		}
		c->r->json_len = c->bad_hdr ? -1 : v;
		size_t t = j - i < sizeof(c->hdr_text) ? j - i
						      : sizeof(c->hdr_text) - 1;
		for (size_t q = 0; q < t; q++)
			c->hdr_text[q] = (unsigned char)p[i + q] < 0x20 ||
						 (unsigned char)p[i + q] >= 0x7f
					 ? '?' : p[i + q];
		c->hdr_text[t] = 0;
	}
	return k;
}

int oip_connect(const char *url, int timeout_s, oip_conn **out, lm_error *e)
{
	*out = NULL;
	if (strncmp(url, "http://", 7) && strncmp(url, "https://", 8))
		return lm_fail(e, -EINVAL, "%s: not an http:// or https:// URL",
			       url);
	if (curl_global_init(CURL_GLOBAL_DEFAULT))
		return lm_fail(e, -ENOMEM, "libcurl failed to start");
	oip_conn *c = calloc(1, sizeof(*c));
	if (!c || !(c->url = strdup(url)) || !(c->curl = curl_easy_init())) {
		if (c)
			oip_close(c);
		else
			curl_global_cleanup();
		return lm_fail(e, -ENOMEM, "out of memory");
	}
	size_t n = strlen(c->url);
	while (n && c->url[n - 1] == '/')
		c->url[--n] = 0;
	c->timeout_s = timeout_s;
	CURL *h = c->curl;
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)timeout_s * 1000L);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS,
			 (long)timeout_s * 1000L);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, c->errbuf);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, c);
	curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(h, CURLOPT_HEADERDATA, c);
	curl_easy_setopt(h, CURLOPT_MAXFILESIZE_LARGE,
			 (curl_off_t)OIP_MAX_ANSWER);
#if LIBCURL_VERSION_NUM >= 0x075500
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
#else
	curl_easy_setopt(h, CURLOPT_PROTOCOLS,
			 (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
	*out = c;
	return 0;
}

const char *oip_url(const oip_conn *c)
{
	return c->url;
}

/* The one-line error of a failed exchange with where (url + path). */
static int failure(oip_conn *c, CURLcode cc, const char *where, lm_error *e)
{
	long os_errno = 0;
	const char *why = c->errbuf[0] ? c->errbuf : curl_easy_strerror(cc);
	curl_easy_getinfo(c->curl, CURLINFO_OS_ERRNO, &os_errno);
	switch (cc) {
	case CURLE_COULDNT_CONNECT:
		return lm_fail(e, -ECONNREFUSED, "cannot connect to %s: %s",
			       c->url, os_errno ? strerror((int)os_errno)
						: why);
	case CURLE_COULDNT_RESOLVE_HOST:
		return lm_fail(e, -EHOSTUNREACH, "cannot connect to %s: %s",
			       c->url, why);
	case CURLE_OPERATION_TIMEDOUT:
		return lm_fail(e, -ETIMEDOUT, "%s: no answer within %d s "
			       "(--timeout)", where, c->timeout_s);
	case CURLE_GOT_NOTHING:
		return lm_fail(e, -EPROTO, "%s: the server closed the "
			       "connection without answering", where);
	case CURLE_PARTIAL_FILE:
		return lm_fail(e, -EPROTO, "%s: the answer was cut short after "
			       "%zu bytes", where, c->r->len);
	case CURLE_FILESIZE_EXCEEDED:
	case CURLE_WRITE_ERROR:
		if (c->too_big || cc == CURLE_FILESIZE_EXCEEDED)
			return lm_fail(e, -EPROTO, "%s: the answer is larger "
				       "than %zu GiB", where,
				       OIP_MAX_ANSWER >> 30);
		return lm_fail(e, -ENOMEM, "%s: out of memory", where);
	default:
		return lm_fail(e, -EIO, "%s: %s", where, why);
	}
}

static int exchange(oip_conn *c, const char *path, struct curl_slist *hdrs,
		    oip_reply *r, lm_error *e)
{
	char *where = NULL;
	int rc = 0;
	memset(r, 0, sizeof(*r));
	r->json_len = -1;
	if (asprintf(&where, "%s%s", c->url, path) < 0)
		return lm_fail(e, -ENOMEM, "out of memory");
	c->r = r;
	c->cap = 0;
	c->too_big = c->bad_hdr = 0;
	c->errbuf[0] = 0;
	curl_easy_setopt(c->curl, CURLOPT_URL, where);
	curl_easy_setopt(c->curl, CURLOPT_HTTPHEADER, hdrs);
	CURLcode cc = curl_easy_perform(c->curl);
	curl_easy_setopt(c->curl, CURLOPT_HTTPHEADER, NULL);
	if (cc != CURLE_OK) {
		/* errbuf ends in a newline at times: one line, please */
		c->errbuf[strcspn(c->errbuf, "\r\n")] = 0;
		rc = failure(c, cc, where, e);
	} else if (!r->body && !(r->body = calloc(1, 1))) {
		rc = lm_fail(e, -ENOMEM, "out of memory");
	} else {
		curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, &r->status);
		if (c->bad_hdr)
			rc = lm_fail(e, -EPROTO, "%s: Inference-Header-Content-"
				     "Length '%s' is not a length", where,
				     c->hdr_text);
	}
	c->r = NULL;
	free(where);
	if (rc)
		oip_reply_free(r);
	return rc;
}

int oip_get(oip_conn *c, const char *path, oip_reply *r, lm_error *e)
{
	curl_easy_setopt(c->curl, CURLOPT_HTTPGET, 1L);
	return exchange(c, path, NULL, r, e);
}

int oip_post(oip_conn *c, const char *path, const char *body, size_t len,
	     size_t json_len, oip_reply *r, lm_error *e)
{
	char hdr[80];
	struct curl_slist *hdrs = NULL, *h;
	int binary = json_len != len;
	/* Expect: no 100-continue round trip before the body */
	if (!(h = curl_slist_append(hdrs, "Expect:")))
		goto oom;
	hdrs = h;
	if (!(h = curl_slist_append(hdrs, binary ?
				    "Content-Type: application/octet-stream" :
				    "Content-Type: application/json")))
		goto oom;
	hdrs = h;
	if (binary) {
		snprintf(hdr, sizeof(hdr), HDR_LEN " %zu", json_len);
		if (!(h = curl_slist_append(hdrs, hdr)))
			goto oom;
		hdrs = h;
	}
	curl_easy_setopt(c->curl, CURLOPT_POST, 1L);
	curl_easy_setopt(c->curl, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(c->curl, CURLOPT_POSTFIELDSIZE_LARGE,
			 (curl_off_t)len);
	int rc = exchange(c, path, hdrs, r, e);
	curl_easy_setopt(c->curl, CURLOPT_POSTFIELDS, NULL);
	curl_slist_free_all(hdrs);
	return rc;
oom:
	curl_slist_free_all(hdrs);
	return lm_fail(e, -ENOMEM, "out of memory");
}

void oip_reply_free(oip_reply *r)
{
	free(r->body);
	memset(r, 0, sizeof(*r));
	r->json_len = -1;
}

void oip_close(oip_conn *c)
{
	if (!c)
		return;
	if (c->curl)
		curl_easy_cleanup(c->curl);
	free(c->url);
	free(c);
	curl_global_cleanup(); /* pairs with oip_connect's init */
}
