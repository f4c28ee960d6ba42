/*
 * devices.c: the fleet a plan is made for.  devices.json names each device
 * (a host, or one NUMA node of one) with its cores and memory, and the
 * links between them; without a file, this host is the only device.
 *
 * A link listed once applies both ways; listing the reverse gives that
 * direction its own figures.  Two devices without a link cannot talk, so
 * no plan hands a bundle from one to the other.
 *
 * Also the JSON file helpers the optimizer's readers and writers share.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sysinfo.h>
#include <unistd.h>

#include "internal.h"

json_t *jv_load(const char *path, int *rc, lm_error *e)
{
	json_error_t je;
	FILE *f = fopen(path, "r");
	if (!f) {
		*rc = -errno;
		lm_fail(e, *rc, "%s: %s", path, strerror(errno));
		return NULL;
	}
	json_t *doc = json_loadf(f, JSON_REJECT_DUPLICATES, &je);
	fclose(f);
	if (!doc) {
		*rc = -EINVAL;
		lm_fail(e, *rc, "%s: not valid JSON (line %d: %s)", path,
			je.line, je.text);
		return NULL;
	}
	if (!json_is_object(doc)) {
		json_decref(doc);
		*rc = -EINVAL;
		lm_fail(e, *rc, "%s: not a JSON object", path);
		return NULL;
	}
	*rc = 0;
	return doc;
}

int jv_save(json_t *doc, const char *path, lm_error *e)
{
	char tmp[4096];
	if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp))
		return lm_fail(e, -ENAMETOOLONG, "%s: path too long", path);
	FILE *f = fopen(tmp, "w");
	if (!f)
		return lm_fail(e, -errno, "%s: %s", tmp, strerror(errno));
	int bad = json_dumpf(doc, f, JSON_INDENT(2) | JSON_REAL_PRECISION(17));
	bad |= fputc('\n', f) == EOF;
	bad |= fclose(f) != 0;
	if (bad) {
		int err = errno ? errno : EIO;
		unlink(tmp);
		return lm_fail(e, -err, "%s: cannot write: %s", tmp,
			       strerror(err));
	}
	if (rename(tmp, path)) {
		int err = errno;
		unlink(tmp);
		return lm_fail(e, -err, "%s: %s", path, strerror(err));
	}
	return 0;
}

int lm_devices_create(int n, lm_devices **out)
{
	*out = NULL;
	if (n < 1)
		return -EINVAL;
	lm_devices *d = calloc(1, sizeof(*d));
	if (!d)
		return -ENOMEM;
	d->n = n;
	d->dev = calloc((size_t)n, sizeof(*d->dev));
	d->links = calloc((size_t)n * (size_t)n, sizeof(*d->links));
	if (!d->dev || !d->links) {
		lm_devices_free(d);
		return -ENOMEM;
	}
	*out = d;
	return 0;
}

void lm_devices_free(lm_devices *d)
{
	if (!d)
		return;
	free(d->dev);
	free(d->links);
	free(d);
}

lm_devices *lm_devices_copy(const lm_devices *d)
{
	lm_devices *c;
	if (lm_devices_create(d->n, &c))
		return NULL;
	memcpy(c->dev, d->dev, (size_t)d->n * sizeof(*d->dev));
	memcpy(c->links, d->links,
	       (size_t)d->n * (size_t)d->n * sizeof(*d->links));
	return c;
}

int lm_devices_find(const lm_devices *d, const char *name)
{
	for (int i = 0; i < d->n; i++)
		if (!strcmp(d->dev[i].name, name))
			return i;
	return -1;
}

static int read_device(const json_t *o, lm_device *dev, int i,
		       const char *path, lm_error *e)
{
	static const char *const known[] = { "name", "cores", "memory_bytes",
					     "numa_node", "address", "ssh",
					     NULL };
	char where[LM_NAME_MAX + 4200];
	long long v = 0;
	int rc;
	snprintf(where, sizeof(where), "%s: device %d", path, i);
	if (!json_is_object(o))
		return lm_fail(e, -EINVAL, "%s: not an object", where);
	if ((rc = jv_string(o, "name", 1, dev->name, sizeof(dev->name), where,
			    e)))
		return rc;
	if (!jv_name_ok(dev->name))
		return lm_fail(e, -EINVAL, "%s: \"name\" must be printable and "
			       "not empty", where);
	snprintf(where, sizeof(where), "%s: device '%s'", path, dev->name);
	if ((rc = jv_only(o, known, where, e)))
		return rc;
	if ((rc = jv_int(o, "cores", 1, 1, 4096, &v, where, e)))
		return rc;
	dev->cores = (int)v;
	if ((rc = jv_number(o, "memory_bytes", 1, 1, LM_BYTES_MAX,
			    &dev->memory_bytes, where, e)))
		return rc;
	v = 0;
	if ((rc = jv_int(o, "numa_node", 0, 0, 1023, &v, where, e)))
		return rc;
	dev->numa_node = (int)v;
	if ((rc = jv_string(o, "ssh", 0, dev->ssh, sizeof(dev->ssh), where,
			    e)))
		return rc;
	return jv_string(o, "address", 0, dev->address, sizeof(dev->address),
			 where, e);
}

static int read_links(const json_t *links, lm_devices *d, const char *path,
		      lm_error *e)
{
	static const char *const known[] = { "from", "to", "latency_us",
					     "gbps", NULL };
	char *listed = calloc((size_t)d->n * (size_t)d->n, 1);
	size_t i;
	json_t *o;
	int rc = 0;
	if (!listed)
		return lm_fail(e, -ENOMEM, "%s: out of memory", path);
	json_array_foreach(links, i, o) {
		char where[4200], from[LM_NAME_MAX], to[LM_NAME_MAX];
		snprintf(where, sizeof(where), "%s: link %zu", path, i);
		if (!json_is_object(o)) {
			rc = lm_fail(e, -EINVAL, "%s: not an object", where);
			break;
		}
		if ((rc = jv_only(o, known, where, e)) ||
		    (rc = jv_string(o, "from", 1, from, sizeof(from), where,
				    e)) ||
		    (rc = jv_string(o, "to", 1, to, sizeof(to), where, e)))
			break;
		int a = lm_devices_find(d, from), b = lm_devices_find(d, to);
		if (a < 0 || b < 0) {
			rc = lm_fail(e, -EINVAL, "%s: no device named '%s'",
				     where, a < 0 ? from : to);
			break;
		}
		if (a == b) {
			rc = lm_fail(e, -EINVAL, "%s: links '%s' to itself",
				     where, from);
			break;
		}
		if (listed[a * d->n + b]) {
			rc = lm_fail(e, -EINVAL, "%s: '%s' -> '%s' is listed "
				     "twice", where, from, to);
			break;
		}
		lm_link *l = &d->links[a * d->n + b];
		l->present = 1;
		if ((rc = jv_number(o, "latency_us", 1, 0, 1e9, &l->latency_us,
				    where, e)) ||
		    (rc = jv_number(o, "gbps", 1, 1e-6, 1e6, &l->gbps, where,
				    e)))
			break;
		listed[a * d->n + b] = 1;
	}
	/* A direction not listed takes its reverse's figures. */
	for (int a = 0; !rc && a < d->n; a++)
		for (int b = 0; b < d->n; b++)
			if (listed[a * d->n + b] && !listed[b * d->n + a])
				d->links[b * d->n + a] = d->links[a * d->n + b];
	free(listed);
	return rc;
}

int lm_devices_load(const char *path, lm_devices **out, lm_error *e)
{
	static const char *const known[] = { "devices", "links", NULL };
	lm_devices *d = NULL;
	size_t i;
	json_t *o;
	int rc;
	*out = NULL;
	json_t *doc = jv_load(path, &rc, e);
	if (!doc)
		return rc;
	json_t *devs = json_object_get(doc, "devices");
	json_t *links = json_object_get(doc, "links");
	if ((rc = jv_only(doc, known, path, e)))
		goto out;
	if (!json_is_array(devs) || json_array_size(devs) == 0) {
		rc = lm_fail(e, -EINVAL, "%s: \"devices\" must be a list of at "
			     "least one device", path);
		goto out;
	}
	if (json_array_size(devs) > 4096) {
		rc = lm_fail(e, -EINVAL, "%s: more than 4096 devices", path);
		goto out;
	}
	if (links && !json_is_array(links)) {
		rc = lm_fail(e, -EINVAL, "%s: \"links\" must be a list", path);
		goto out;
	}
	if ((rc = lm_devices_create((int)json_array_size(devs), &d))) {
		rc = lm_fail(e, rc, "%s: out of memory", path);
		goto out;
	}
	json_array_foreach(devs, i, o) {
		if ((rc = read_device(o, &d->dev[i], (int)i, path, e)))
			goto out;
		for (size_t j = 0; j < i; j++)
			if (!strcmp(d->dev[j].name, d->dev[i].name)) {
				rc = lm_fail(e, -EINVAL, "%s: two devices are "
					     "named '%s'", path,
					     d->dev[i].name);
				goto out;
			}
	}
	if (links)
		rc = read_links(links, d, path, e);
out:
	json_decref(doc);
	if (rc)
		lm_devices_free(d);
	else
		*out = d;
	return rc;
}

/* MemAvailable from /proc/meminfo, in bytes; 0 when it cannot be read. */
static double mem_available(void)
{
	FILE *f = fopen("/proc/meminfo", "r");
	char line[256];
	double kb = 0;
	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "MemAvailable: %lf kB", &kb) == 1)
			break;
	fclose(f);
	return kb * 1024;
}

int lm_devices_local(lm_devices **out, lm_error *e)
{
	lm_devices *d;
	if (lm_devices_create(1, &d))
		return lm_fail(e, -ENOMEM, "out of memory");
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	/* One core stays with the system and the control plane. */
	d->dev[0].cores = n > 1 ? (int)(n - 1) : 1;
	double mem = mem_available();
	if (mem <= 0) {
		struct sysinfo si;
		if (sysinfo(&si) == 0)
			mem = ((double)si.freeram + (double)si.bufferram) *
			      si.mem_unit;
	}
	if (mem <= 0) {
		lm_devices_free(d);
		return lm_fail(e, -EIO, "cannot tell how much memory this "
			       "host has (no /proc/meminfo); give a "
			       "devices.json");
	}
	d->dev[0].memory_bytes = mem;
	snprintf(d->dev[0].name, sizeof(d->dev[0].name), "local");
	snprintf(d->dev[0].address, sizeof(d->dev[0].address), "127.0.0.1");
	*out = d;
	return 0;
}
