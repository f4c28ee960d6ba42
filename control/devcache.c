/*
 * devcache.c: the devices cache (devcache.h has the format).  The TXT
 * values of a device's last answer are kept as the record had them, key
 * by key, and read back through the one TXT decoder (dataplane/dnssd.c),
 * so the keys are known in one place.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "devcache.h"
#include "discover.h"
#include "lamina/fsutil.h"

#define MAX_FILE (16u << 20)

void lm_devcache_free(lm_devcache *c)
{
	free(c->dev);
	memset(c, 0, sizeof(*c));
}

static lm_known *grow(lm_devcache *c, lm_error *e)
{
	if (c->n == LM_DEVCACHE_MAX) {
		lm_fail(e, -ENOSPC, "more than %d devices", LM_DEVCACHE_MAX);
		return NULL;
	}
	if (c->n == c->cap) {
		int cap = c->cap ? c->cap * 2 : 16;
		lm_known *d = realloc(c->dev, (size_t)cap * sizeof(*d));
		if (!d) {
			lm_fail(e, -ENOMEM, "out of memory");
			return NULL;
		}
		c->dev = d;
		c->cap = cap;
	}
	lm_known *k = &c->dev[c->n++];
	memset(k, 0, sizeof(*k));
	return k;
}

/* TXT rdata <-> {"key": "value"} */
static json_t *txt_json(const struct lm_dnssd_txt *t)
{
	uint8_t raw[LM_DNSSD_TXT_MAX];
	size_t len = 0, off = 0;
	json_t *o = json_object();
	if (!o || lm_dnssd_txt_encode(t, raw, sizeof(raw), &len, NULL)) {
		json_decref(o);
		return NULL;
	}
	while (off < len) {
		size_t n = raw[off++];
		const char *s = (const char *)raw + off, *eq = memchr(s, '=', n);
		char key[64];
		off += n;
		if (!eq || (size_t)(eq - s) >= sizeof(key))
			continue;
		memcpy(key, s, (size_t)(eq - s));
		key[eq - s] = '\0';
		json_object_set_new(o, key, json_stringn(eq + 1,
							 n - (size_t)(eq - s) -
								 1));
	}
	return o;
}

static int json_txt(json_t *o, struct lm_dnssd_txt *t, const char *where,
		    lm_error *e)
{
	uint8_t raw[4096];
	size_t off = 0;
	const char *key;
	json_t *v;
	if (!json_is_object(o))
		return lm_fail(e, -EINVAL, "%s: \"txt\" must be an object",
			       where);
	json_object_foreach(o, key, v) {
		const char *s = json_string_value(v);
		size_t k = strlen(key), n = s ? strlen(s) : 0;
		if (!s || k + 1 + n > 255 || off + 1 + k + 1 + n > sizeof(raw))
			return lm_fail(e, -EINVAL, "%s: \"txt\": \"%.32s\" is "
				       "not a short string", where, key);
		raw[off++] = (uint8_t)(k + 1 + n);
		memcpy(raw + off, key, k);
		raw[off + k] = '=';
		memcpy(raw + off + k + 1, s, n);
		off += k + 1 + n;
	}
	int rc = lm_dnssd_txt_decode(raw, off, t, e);
	return rc ? lm_fail_prefix(e, rc, "%s", where) : 0;
}

static int ssh_host(const char *url, char *host, size_t len, lm_error *e);

static int read_device(json_t *o, lm_known *k, int i, const char *path,
		       lm_error *e)
{
	char host[LM_DNSSD_LABEL_MAX + 1];
	char where[4200];
	const char *name = NULL, *address = NULL, *ssh = NULL;
	json_int_t port = 0, seen = 0;
	json_t *txt = NULL;
	json_error_t je;
	snprintf(where, sizeof(where), "%s: device %d", path, i);
	if (json_unpack_ex(o, &je, JSON_STRICT,
			   "{s:s, s:s, s:I, s:I, s?s, s?o}", "name", &name,
			   "address", &address, "port", &port, "last_seen",
			   &seen, "ssh", &ssh, "txt", &txt))
		return lm_fail(e, -EINVAL, "%s: %s", where, je.text);
	if (!*name || strlen(name) >= sizeof(k->name) ||
	    strlen(address) >= sizeof(k->address) ||
	    (ssh && strlen(ssh) >= sizeof(k->ssh)) || port < 0 ||
	    port > 65535 || seen < 0)
		return lm_fail(e, -EINVAL, "%s: a field out of range", where);
	/* the URL is handed to ssh (through a plan): checked as when added */
	if (ssh && ssh_host(ssh, host, sizeof(host), e))
		return lm_fail_prefix(e, -EINVAL, "%s: ssh", where);
	snprintf(k->name, sizeof(k->name), "%s", name);
	snprintf(k->address, sizeof(k->address), "%s", address);
	snprintf(k->ssh, sizeof(k->ssh), "%s", ssh ? ssh : "");
	k->port = (int)port;
	k->last_seen = seen;
	if (txt) {
		int rc = json_txt(txt, &k->txt, where, e);
		if (rc)
			return rc;
		k->has_txt = 1;
	}
	return 0;
}

int lm_devcache_load(const char *path, lm_devcache *c, lm_error *e)
{
	char *text = NULL;
	size_t len = 0;
	const char *format = NULL;
	json_int_t version = 0;
	json_t *devs = NULL;
	json_error_t je;
	lm_devcache_free(c);
	int rc = lm_read_file(path, MAX_FILE, &text, &len, e);
	if (rc == -ENOENT)
		return 0;
	if (rc)
		return rc;
	json_t *doc = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
	free(text);
	if (!doc)
		return lm_fail(e, -EINVAL, "%s: not valid JSON (line %d: %s)",
			       path, je.line, je.text);
	if (json_unpack_ex(doc, &je, JSON_STRICT, "{s:s, s:I, s:o}", "format",
			   &format, "version", &version, "devices", &devs)) {
		rc = lm_fail(e, -EINVAL, "%s: %s", path, je.text);
	} else if (strcmp(format, LM_DEVCACHE_FORMAT) ||
		   version != LM_DEVCACHE_VERSION) {
		rc = lm_fail(e, -EINVAL, "%s: not a devices cache of version "
			     "%d", path, LM_DEVCACHE_VERSION);
	} else if (!json_is_array(devs)) {
		rc = lm_fail(e, -EINVAL, "%s: \"devices\" must be a list",
			     path);
	} else {
		size_t i;
		json_t *o;
		json_array_foreach(devs, i, o) {
			lm_known *k = grow(c, e);
			if (!k) {
				rc = lm_fail_prefix(e, -ENOSPC, "%s", path);
				break;
			}
			if ((rc = read_device(o, k, (int)i, path, e)))
				break;
		}
	}
	json_decref(doc);
	if (rc)
		lm_devcache_free(c);
	return rc;
}

int lm_devcache_save(const char *path, const lm_devcache *c, lm_error *e)
{
	json_t *devs = json_array();
	for (int i = 0; devs && i < c->n; i++) {
		const lm_known *k = &c->dev[i];
		json_t *o = json_pack("{s:s, s:s, s:i, s:I}", "name", k->name,
				      "address", k->address, "port", k->port,
				      "last_seen", (json_int_t)k->last_seen);
		if (o && k->ssh[0])
			json_object_set_new(o, "ssh", json_string(k->ssh));
		if (o && k->has_txt)
			json_object_set_new(o, "txt", txt_json(&k->txt));
		json_array_append_new(devs, o);
	}
	json_t *doc = json_pack("{s:s, s:i, s:o}", "format", LM_DEVCACHE_FORMAT,
				"version", LM_DEVCACHE_VERSION, "devices",
				devs);
	char *text = doc ? json_dumps(doc, JSON_INDENT(2)) : NULL;
	json_decref(doc);
	if (!text)
		return lm_fail(e, -ENOMEM, "%s: out of memory", path);
	size_t n = strlen(text);
	text[n] = '\n'; /* json_dumps's NUL: the file ends with a newline */
	int rc = lm_write_atomic(path, text, n + 1, 0600, e);
	free(text);
	return rc;
}

/* ---- devices added by hand ---- */

static int user_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
}

/* "ssh://[user@]host[:port]" -> host (no brackets); 0 or -EINVAL.
 * Strict: the URL is given to ssh one day, so nothing in it may read as
 * an option or a shell word. */
static int ssh_host(const char *url, char *host, size_t len, lm_error *e)
{
	const char *p = url, *at, *h, *end;
	if (strncmp(p, "ssh://", 6))
		return lm_fail(e, -EINVAL, "'%s': not ssh://[user@]host[:port]",
			       url);
	p += 6;
	at = strchr(p, '@');
	if (at) {
		if (at == p)
			return lm_fail(e, -EINVAL, "'%s': an empty user", url);
		for (const char *u = p; u < at; u++)
			if (!user_char(*u))
				return lm_fail(e, -EINVAL, "'%s': a user name "
					       "has letters, digits, '.', '_' "
					       "and '-'", url);
		p = at + 1;
	}
	if (*p == '[') {
		h = p + 1;
		end = strchr(h, ']');
		if (!end || end == h)
			return lm_fail(e, -EINVAL, "'%s': bad [IPv6 address]",
				       url);
		for (const char *q = h; q < end; q++)
			if (!strchr("0123456789abcdefABCDEF:.", *q))
				return lm_fail(e, -EINVAL, "'%s': bad [IPv6 "
					       "address]", url);
		p = end + 1;
	} else {
		h = p;
		end = p + strcspn(p, ":");
		if (end == h || *h == '-' || *h == '.')
			return lm_fail(e, -EINVAL, "'%s': no host", url);
		for (const char *q = h; q < end; q++)
			if (!user_char(*q) || *q == '_')
				return lm_fail(e, -EINVAL, "'%s': a host name "
					       "has letters, digits, '.' and "
					       "'-'", url);
		p = end;
	}
	if (*p == ':') {
		char *stop;
		long port = strtol(p + 1, &stop, 10);
		if (!p[1] || *stop || port < 1 || port > 65535)
			return lm_fail(e, -EINVAL, "'%s': the port must be from "
				       "1 to 65535", url);
	} else if (*p) {
		return lm_fail(e, -EINVAL, "'%s': unexpected '%s'", url, p);
	}
	if ((size_t)(end - h) >= len || (size_t)(end - h) > LM_DNSSD_LABEL_MAX)
		return lm_fail(e, -EINVAL, "'%s': the host is too long", url);
	memcpy(host, h, (size_t)(end - h));
	host[end - h] = '\0';
	return 0;
}

int lm_devcache_add(lm_devcache *c, const char *url, lm_error *e)
{
	char host[LM_DNSSD_LABEL_MAX + 1];
	int rc = ssh_host(url, host, sizeof(host), e);
	if (rc)
		return rc;
	if (strlen(url) >= sizeof(c->dev[0].ssh))
		return lm_fail(e, -EINVAL, "'%.40s...': too long", url);
	/* the device of that name; else every laminad at that address (the
	 * URL is the host's: all of them are reached through it) */
	int given = 0;
	for (int i = 0; i < c->n; i++)
		if (!strcmp(c->dev[i].name, host)) {
			snprintf(c->dev[i].ssh, sizeof(c->dev[i].ssh), "%s",
				 url);
			return 0;
		}
	for (int i = 0; i < c->n; i++)
		if (!strcmp(c->dev[i].address, host)) {
			snprintf(c->dev[i].ssh, sizeof(c->dev[i].ssh), "%s",
				 url);
			given++;
		}
	if (given)
		return 0;
	lm_known *k = grow(c, e);
	if (!k)
		return lm_fail_prefix(e, -ENOSPC, "devices cache");
	snprintf(k->name, sizeof(k->name), "%s", host);
	snprintf(k->address, sizeof(k->address), "%s", host);
	snprintf(k->ssh, sizeof(k->ssh), "%s", url);
	return 0;
}

int lm_devcache_describe(lm_devcache *c, const char *url, int port,
			 const struct lm_dnssd_txt *t)
{
	int given = 0;
	for (int i = 0; i < c->n; i++) {
		lm_known *k = &c->dev[i];
		if (strcmp(k->ssh, url) || k->last_seen)
			continue;
		k->has_txt = 1;
		k->txt = *t;
		k->port = port;
		given++;
	}
	return given;
}

int lm_devcache_ssh_dest(const lm_known *k, char *out, size_t len)
{
	/* lm_devcache_add and the loader keep only "ssh://" URLs */
	const char *d = strncmp(k->ssh, "ssh://", 6) ? k->ssh : k->ssh + 6;
	if (snprintf(out, len, "%s", d) >= (int)len) {
		out[0] = '\0';
		return -ENAMETOOLONG;
	}
	return 0;
}

int lm_devcache_remove(lm_devcache *c, const char *name)
{
	int k = 0;
	for (int i = 0; i < c->n; i++) {
		char host[LM_DNSSD_LABEL_MAX + 1] = "";
		if (c->dev[i].ssh[0])
			ssh_host(c->dev[i].ssh, host, sizeof(host), NULL);
		if (strcmp(c->dev[i].name, name) && strcmp(host, name))
			c->dev[k++] = c->dev[i];
	}
	if (k == c->n)
		return -ENOENT;
	c->n = k;
	return 0;
}

/* ---- what answered ---- */

int lm_devcache_merge(lm_devcache *c, const lm_found *f, int n, int64_t now,
		      lm_error *e)
{
	for (int i = 0; i < c->n; i++)
		c->dev[i].answering = 0;
	for (int j = 0; j < n; j++) {
		lm_known *k = NULL;
		for (int i = 0; i < c->n && !k; i++)
			if (!strcmp(c->dev[i].name, f[j].name))
				k = &c->dev[i];
		/* a host added by hand, now answering under its own name */
		for (int i = 0; i < c->n && !k; i++)
			if (c->dev[i].ssh[0] && !c->dev[i].has_txt &&
			    !strcmp(c->dev[i].address, f[j].address))
				k = &c->dev[i];
		if (!k && !(k = grow(c, e)))
			return lm_fail_prefix(e, -ENOSPC, "devices cache");
		snprintf(k->name, sizeof(k->name), "%s", f[j].name);
		snprintf(k->address, sizeof(k->address), "%s", f[j].address);
		k->port = f[j].port;
		k->last_seen = now;
		k->txt = f[j].txt;
		k->has_txt = 1;
		k->answering = 1;
	}
	return 0;
}

void lm_devcache_age_out(lm_devcache *c, int64_t now, int64_t age_s)
{
	int k = 0;
	for (int i = 0; i < c->n; i++)
		if (c->dev[i].ssh[0] || now - c->dev[i].last_seen <= age_s)
			c->dev[k++] = c->dev[i];
	c->n = k;
}

static int by_name(const void *a, const void *b)
{
	return strcmp(((const lm_known *)a)->name, ((const lm_known *)b)->name);
}

void lm_devcache_sort(lm_devcache *c)
{
	if (c->n > 1)
		qsort(c->dev, (size_t)c->n, sizeof(c->dev[0]), by_name);
}
