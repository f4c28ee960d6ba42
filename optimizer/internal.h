/*
 * internal.h: what the optimizer's files share and nobody else needs:
 * checked reads of JSON fields (every value from a file is untrusted and
 * every complaint names the file, the object and the field), and writing
 * a JSON document through a temporary file.
 */
#ifndef LAMINA_OPTIMIZER_INTERNAL_H
#define LAMINA_OPTIMIZER_INTERNAL_H

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "lamina/optimizer.h"

/* The field key of o, or NULL when it is missing and not required. */
static inline int jv_get(const json_t *o, const char *key, int required,
			 json_t **v, const char *where, lm_error *e)
{
	*v = json_object_get(o, key);
	if (!*v && required)
		return lm_fail(e, -EINVAL, "%s: missing \"%s\"", where, key);
	return 0;
}

/*
 * A number field of object o in [lo, hi].  `where` names the object
 * ("devices.json: device 'a'").  A missing optional field leaves *out.
 */
static inline int jv_number(const json_t *o, const char *key, int required,
			    double lo, double hi, double *out, const char *where,
			    lm_error *e)
{
	json_t *v;
	int rc = jv_get(o, key, required, &v, where, e);
	if (rc || !v)
		return rc;
	if (!json_is_number(v))
		return lm_fail(e, -EINVAL, "%s: \"%s\" must be a number", where,
			       key);
	double x = json_number_value(v);
	if (!isfinite(x) || x < lo || x > hi)
		return lm_fail(e, -EINVAL, "%s: \"%s\" is %g, outside %g..%g",
			       where, key, x, lo, hi);
	*out = x;
	return 0;
}

/* An integer field in [lo, hi]. */
static inline int jv_int(const json_t *o, const char *key, int required,
			 long long lo, long long hi, long long *out,
			 const char *where, lm_error *e)
{
	json_t *v;
	int rc = jv_get(o, key, required, &v, where, e);
	if (rc || !v)
		return rc;
	if (!json_is_integer(v))
		return lm_fail(e, -EINVAL, "%s: \"%s\" must be an integer",
			       where, key);
	long long x = json_integer_value(v);
	if (x < lo || x > hi)
		return lm_fail(e, -EINVAL, "%s: \"%s\" is %lld, outside "
			       "%lld..%lld", where, key, x, lo, hi);
	*out = x;
	return 0;
}

/* A string field that fits in len bytes (NUL included). */
static inline int jv_string(const json_t *o, const char *key, int required,
			    char *out, size_t len, const char *where,
			    lm_error *e)
{
	json_t *v;
	int rc = jv_get(o, key, required, &v, where, e);
	if (rc || !v)
		return rc;
	if (!json_is_string(v))
		return lm_fail(e, -EINVAL, "%s: \"%s\" must be a string", where,
			       key);
	const char *s = json_string_value(v);
	if (strlen(s) >= len)
		return lm_fail(e, -EINVAL, "%s: \"%s\" is longer than %zu "
			       "characters", where, key, len - 1);
	memcpy(out, s, strlen(s) + 1);
	return 0;
}

/* Refuse fields other than the known ones: a typo must not pass unseen. */
static inline int jv_only(const json_t *o, const char *const *known,
			  const char *where, lm_error *e)
{
	const char *key;
	json_t *v;
	json_object_foreach((json_t *)o, key, v) {
		int ok = 0;
		for (const char *const *k = known; *k; k++)
			if (!strcmp(key, *k))
				ok = 1;
		if (!ok)
			return lm_fail(e, -EINVAL, "%s: unknown field \"%s\"",
				       where, key);
	}
	return 0;
}

/* A name must be printable and not empty. */
static inline int jv_name_ok(const char *s)
{
	if (!*s)
		return 0;
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return 0;
	return 1;
}

/*
 * Load a JSON file, telling a missing or unreadable file (-errno) from
 * one that is not JSON (-EINVAL).  `what` names the file in messages.
 */
json_t *jv_load(const char *path, int *rc, lm_error *e);

/* Write a document to path through path.tmp and rename. */
int jv_save(json_t *doc, const char *path, lm_error *e);

/* Devices: the memory limit after headroom, shared by cost and solver. */
static inline double device_limit(const lm_device *d, double headroom)
{
	return floor(d->memory_bytes * (1.0 - headroom));
}

#endif
