/*
 * state.c: laminad's state file (format in state.h).
 */
#include "state.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "lamina/fsutil.h"

int lm_state_path(const char *state_dir, int control_port, char *out,
		  size_t len)
{
	return snprintf(out, len, "%s/laminad-%d.json", state_dir,
			control_port) >= (int)len ? -ENAMETOOLONG : 0;
}

int lm_state_log_path(const char *state_dir, int control_port, char *out,
		      size_t len)
{
	return snprintf(out, len, "%s/laminad-%d.log", state_dir,
			control_port) >= (int)len ? -ENAMETOOLONG : 0;
}

static int copy_str(json_t *j, const char *key, char *out, size_t len,
		    int optional)
{
	json_t *v = json_object_get(j, key);
	if (optional && (!v || json_is_null(v))) {
		out[0] = '\0';
		return 0;
	}
	const char *s = json_string_value(v);
	if (!s || strlen(s) >= len)
		return -1;
	memcpy(out, s, strlen(s) + 1);
	return 0;
}

static int get_int(json_t *j, const char *key, long lo, long hi, int *out)
{
	json_t *v = json_object_get(j, key);
	if (!json_is_integer(v) || json_integer_value(v) < lo ||
	    json_integer_value(v) > hi)
		return -1;
	*out = (int)json_integer_value(v);
	return 0;
}

int lm_state_load(const char *path, lm_laminad_state *s, lm_error *e)
{
	char *text = NULL;
	size_t len;
	json_error_t je;
	const char *bad = NULL;
	int rc = lm_read_file(path, 1 << 20, &text, &len, e);
	memset(s, 0, sizeof(*s));
	if (rc)
		return rc;
	json_t *j = json_loadb(text, len, 0, &je);
	free(text);
	if (!j)
		return lm_fail(e, -EINVAL, "%s: %s", path, je.text);
	const char *fmt = json_string_value(json_object_get(j, "format"));
	const char *phase = json_string_value(json_object_get(j, "phase"));
	json_t *huge = json_object_get(j, "hugepages_reserved");
	if (!fmt || strcmp(fmt, LM_STATE_FORMAT) ||
	    json_integer_value(json_object_get(j, "version")) !=
		    LM_STATE_VERSION)
		bad = "format or version";
	else if (get_int(j, "pid", 1, 1 << 30, &s->pid))
		bad = "pid";
	else if (!phase || (strcmp(phase, "starting") && strcmp(phase, "up")))
		bad = "phase";
	else if (get_int(j, "control_port", 1, 65535, &s->control_port) ||
		 get_int(j, "ingress_port", 1, 65535, &s->ingress_port))
		bad = "ports";
	else if (copy_str(j, "listen", s->listen, sizeof(s->listen), 0) ||
		 copy_str(j, "file_prefix", s->file_prefix,
			  sizeof(s->file_prefix), 0) ||
		 copy_str(j, "run_dir", s->run_dir, sizeof(s->run_dir), 0) ||
		 copy_str(j, "log", s->log, sizeof(s->log), 1))
		bad = "listen, file_prefix, run_dir or log";
	else if (huge && !json_is_null(huge)) {
		int kb = 0, count = 0;
		if (get_int(huge, "page_kb", 1, 1 << 30, &kb) ||
		    get_int(huge, "count", 0, 1 << 30, &count) ||
		    copy_str(huge, "mount", s->huge_mount,
			     sizeof(s->huge_mount), 1))
			bad = "hugepages_reserved";
		else {
			s->huge_page_kb = (unsigned)kb;
			s->huge_count = (unsigned)count;
		}
	}
	if (!bad)
		s->up = !strcmp(phase, "up");
	json_decref(j);
	if (bad)
		return lm_fail(e, -EINVAL, "%s: not a laminad state file (%s)",
			       path, bad);
	return 0;
}

int lm_state_save(const char *path, const lm_laminad_state *s, lm_error *e)
{
	json_t *huge = s->huge_count
		? json_pack("{s:I, s:I, s:s}", "page_kb",
			    (json_int_t)s->huge_page_kb, "count",
			    (json_int_t)s->huge_count, "mount", s->huge_mount)
		: json_null();
	json_t *j = json_pack("{s:s, s:i, s:i, s:s, s:i, s:i, s:s, s:s, s:s, "
			      "s:o, s:o}",
			      "format", LM_STATE_FORMAT,
			      "version", LM_STATE_VERSION,
			      "pid", s->pid,
			      "phase", s->up ? "up" : "starting",
			      "control_port", s->control_port,
			      "ingress_port", s->ingress_port,
			      "listen", s->listen,
			      "file_prefix", s->file_prefix,
			      "run_dir", s->run_dir,
			      "hugepages_reserved", huge,
			      "log", s->log[0] ? json_string(s->log)
					       : json_null());
	char *text = j ? json_dumps(j, JSON_INDENT(2)) : NULL;
	json_decref(j);
	if (!text)
		return lm_fail(e, -ENOMEM, "%s: out of memory", path);
	int rc = lm_write_atomic(path, text, strlen(text), 0644, e);
	free(text);
	return rc;
}
