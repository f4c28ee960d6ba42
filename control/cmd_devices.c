/*
 * cmd_devices.c: `lamina devices`, the laminads that answer on the link
 * (DNS-SD over mDNS, discover.h) merged with the devices lamina knows of
 * (the devices cache, devcache.h), one line each or as JSON; and `lamina
 * devices add|remove`, which edit the devices added by hand.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "cli.h"
#include "ctl.h"
#include "discover.h"
#include "record.h"
#include "remote.h"

static const char devices_help[] =
	"usage: lamina devices [--json] [--timeout MS] [--device HOST[:PORT]]...\n"
	"                      [--devices FILE] [--state-dir DIR]\n"
	"       lamina devices add ssh://[user@]host[:port] [--port N]\n"
	"                      [--laminad PATH] [--state-dir DIR]\n"
	"       lamina devices remove NAME [--state-dir DIR]\n"
	"\n"
	"List the laminads that answer on the link (DNS-SD over mDNS, service\n"
	"_lamina._tcp) and the devices lamina knows of: those that answered "
	"before\n"
	"(shown as not answering; dropped 10 minutes after their last answer)\n"
	"and those added by hand (kept until removed).  One line each: name,\n"
	"address:port, cores free/total, memory free/total, deployments,\n"
	"version, whether it belongs to this fleet, and whether it answers.\n"
	"`lamina plan` and `lamina bench` without --devices plan over the\n"
	"devices that answer.\n"
	"\n"
	"`devices add` names a host lamina reaches over ssh (the user's keys,\n"
	"no password): it asks `laminad --describe-host` there what the host\n"
	"offers (cores, memory, cpu model), so plans may use it before any\n"
	"laminad runs there; `lamina deploy` starts one when it is needed.\n"
	"A host without laminad is refused (saying how to install it); one\n"
	"ssh cannot reach now is added, and left out of plans until a later\n"
	"`devices add` reaches it.\n"
	"\n"
	"options:\n"
	"  -j, --json           the list as JSON\n"
	"  -t, --timeout MS     browse this long (default 1500)\n"
	"  -D, --device HOST[:PORT]\n"
	"                       ask the laminad there too (control port, "
	"default\n"
	"                       7700), as when mDNS does not reach it; may be\n"
	"                       repeated\n"
	"  -d, --devices FILE   ask the devices of this devices.json too, "
	"under\n"
	"                       their names there\n"
	"  -s, --state-dir DIR  lamina's state folder, where the devices cache "
	"is\n"
	"                       (default: $LAMINA_STATE_DIR, else\n"
	"                       $XDG_STATE_HOME/lamina, else "
	"~/.local/state/lamina)\n"
	"  -p, --port N         (add) the control port of the laminad lamina "
	"starts\n"
	"                       there (default 7700)\n"
	"  -l, --laminad PATH   (add) laminad's path there (default: laminad "
	"on the\n"
	"                       PATH of the ssh user)\n"
	"  -h, --help           this text\n"
	"\n"
	"environment: LAMINA_DEVICES_AGE_OUT=S keeps a device found by discovery\n"
	"S seconds after its last answer instead of 600.\n";

#define MAX_NAMED 256

struct devices_args {
	int json;
	unsigned timeout_ms;
	const char *state_dir;
	const char *named[MAX_NAMED]; /* --device */
	int n_named;
	const char *devices_file;
	const char *verb, *arg; /* "add" URL, "remove" NAME */
	int port;		/* add: --port, 0: not given */
	const char *laminad;	/* add: --laminad */
};

static int parse_devices(int argc, char **argv, struct devices_args *a)
{
	static const struct option opts[] = {
		{ "json", no_argument, 0, 'j' },
		{ "timeout", required_argument, 0, 't' },
		{ "device", required_argument, 0, 'D' },
		{ "devices", required_argument, 0, 'd' },
		{ "state-dir", required_argument, 0, 's' },
		{ "port", required_argument, 0, 'p' },
		{ "laminad", required_argument, 0, 'l' },
		{ "help", no_argument, 0, 'h' },
		{ 0, 0, 0, 0 },
	};
	int c;
	memset(a, 0, sizeof(*a));
	a->timeout_ms = LM_DISCOVER_MS;
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":jt:D:d:s:p:l:h", opts, NULL)) != -1) {
		char *end;
		long v;
		switch (c) {
		case 'j': a->json = 1; break;
		case 's': a->state_dir = optarg; break;
		case 'd': a->devices_file = optarg; break;
		case 'l': a->laminad = optarg; break;
		case 'p':
			v = strtol(optarg, &end, 10);
			if (*end || !*optarg || v < 1 || v > 65535)
				return cli_errorf("devices", "--port needs a "
						  "port from 1 to 65535, not "
						  "'%s'", optarg);
			a->port = (int)v;
			break;
		case 'D':
			if (a->n_named == MAX_NAMED)
				return cli_errorf("devices", "at most %d "
						  "--device", MAX_NAMED);
			a->named[a->n_named++] = optarg;
			break;
		case 't':
			v = strtol(optarg, &end, 10);
			if (*end || !*optarg || v < 1 || v > 600000)
				return cli_errorf("devices", "--timeout needs "
						  "milliseconds from 1 to "
						  "600000, not '%s'", optarg);
			a->timeout_ms = (unsigned)v;
			break;
		case 'h':
			fputs(devices_help, stdout);
			exit(0);
		default:
			return cli_bad_option("devices", c, argv);
		}
	}
	if (optind < argc) {
		a->verb = argv[optind++];
		if (strcmp(a->verb, "add") && strcmp(a->verb, "remove"))
			return cli_errorf("devices", "unknown '%s' (see 'lamina "
					  "devices --help')", a->verb);
		if (optind != argc - 1)
			return cli_errorf("devices", "%s takes one %s", a->verb,
					  !strcmp(a->verb, "add")
						  ? "ssh://[user@]host[:port]"
						  : "device name");
		a->arg = argv[optind];
		if (a->json || a->timeout_ms != LM_DISCOVER_MS ||
		    a->n_named || a->devices_file)
			return cli_errorf("devices", "--json, --timeout, "
					  "--device and --devices list "
					  "devices; %s takes none", a->verb);
	}
	if ((a->port || a->laminad) &&
	    (!a->verb || strcmp(a->verb, "add")))
		return cli_errorf("devices", "--port and --laminad go with "
				  "'devices add'");
	return 0;
}

/* "12.3 GiB" */
static const char *gib(uint64_t b, char *buf, size_t len)
{
	snprintf(buf, len, "%.1f GiB", (double)b / (1024.0 * 1024 * 1024));
	return buf;
}

static void ago(int64_t s, char *buf, size_t len)
{
	if (s < 120)
		snprintf(buf, len, "%lld s ago", (long long)s);
	else if (s < 7200)
		snprintf(buf, len, "%lld min ago", (long long)(s / 60));
	else
		snprintf(buf, len, "%lld h ago", (long long)(s / 3600));
}

static void print_table(const lm_devcache *c, int64_t now)
{
	printf("%-20s %-21s %-7s %-21s %-4s %-8s %-7s %s\n", "NAME", "ADDRESS",
	       "CORES", "MEMORY FREE/TOTAL", "DEPS", "VERSION", "FLEET",
	       "STATE");
	for (int i = 0; i < c->n; i++) {
		const lm_known *k = &c->dev[i];
		char addr[300], cores[32] = "-", mem[64] = "-", deps[16] = "-";
		char state[96], t1[32], t2[32], when[32];
		if (k->port)
			snprintf(addr, sizeof(addr), "%s:%d", k->address,
				 k->port);
		else
			snprintf(addr, sizeof(addr), "%s", k->address);
		if (k->answering) {
			snprintf(cores, sizeof(cores), "%u/%u",
				 k->txt.cores_free, k->txt.cores);
			snprintf(mem, sizeof(mem), "%s/%s",
				 gib(k->txt.mem_free, t1, sizeof(t1)),
				 gib(k->txt.mem, t2, sizeof(t2)));
			snprintf(deps, sizeof(deps), "%u", k->txt.deployments);
			snprintf(state, sizeof(state), "answering");
		} else if (k->last_seen) {
			ago(now - k->last_seen, when, sizeof(when));
			snprintf(state, sizeof(state), "not answering (last "
				 "heard %s)", when);
		} else if (k->has_txt) { /* described by `devices add` */
			snprintf(cores, sizeof(cores), "%u", k->txt.cores);
			snprintf(state, sizeof(state), "no laminad yet "
				 "(described over ssh)");
		} else {
			snprintf(state, sizeof(state), "not answering (never "
				 "heard)");
		}
		if (k->ssh[0])
			snprintf(state + strlen(state),
				 sizeof(state) - strlen(state),
				 ", added by hand");
		printf("%-20s %-21s %-7s %-21s %-4s %-8s %-7s %s\n", k->name,
		       addr, cores, mem, deps,
		       k->has_txt ? k->txt.version : "-",
		       k->has_txt ? lm_fleet_member(k->txt.fp) : "-", state);
	}
}

static json_t *device_json(const lm_known *k)
{
	json_t *o = json_pack("{s:s, s:s, s:i, s:b, s:b}", "name", k->name,
			      "address", k->address, "port", k->port,
			      "answering", k->answering, "added_by_hand",
			      k->ssh[0] != 0);
	if (!o)
		return NULL;
	json_object_set_new(o, "ssh", k->ssh[0] ? json_string(k->ssh)
						 : json_null());
	json_object_set_new(o, "last_seen", k->last_seen
						    ? json_integer(k->last_seen)
						    : json_null());
	if (!k->has_txt)
		return o;
	const struct lm_dnssd_txt *t = &k->txt;
	json_t *x = json_pack(
		"{s:I, s:I, s:I, s:I, s:I, s:I, s:i, s:i, s:I, s:s, s:s, s:s, "
		"s:s}",
		"cores", (json_int_t)t->cores, "cores_free",
		(json_int_t)t->cores_free, "memory_bytes", (json_int_t)t->mem,
		"memory_free_bytes", (json_int_t)t->mem_free, "numa_nodes",
		(json_int_t)t->numa, "hugepages_free_bytes",
		(json_int_t)t->huge, "ingress_port", (int)t->ingress,
		"http_port", (int)t->http, "deployments",
		(json_int_t)t->deployments, "version", t->version, "cpu",
		t->cpu, "fingerprint", t->fp, "fleet", lm_fleet_member(t->fp));
	if (x && !t->fp[0]) /* laminad has no fleet key: no fp key */
		json_object_set_new(x, "fingerprint", json_null());
	if (x)
		json_object_update(o, x);
	json_decref(x);
	return o;
}

static int print_json(const lm_devcache *c)
{
	json_t *list = json_array();
	for (int i = 0; list && i < c->n; i++)
		json_array_append_new(list, device_json(&c->dev[i]));
	json_t *doc = json_pack("{s:o}", "devices", list);
	char *text = doc ? json_dumps(doc, JSON_INDENT(2)) : NULL;
	json_decref(doc);
	if (!text)
		return cli_errorf("devices", "out of memory");
	puts(text);
	free(text);
	return 0;
}

/* add URL: what the host offers, asked over ssh, for the devices of URL
 * that never answered (one that did keeps what its laminad said). */
static int describe(const struct devices_args *a, lm_devcache *c,
		    lm_error *e)
{
	struct lm_dnssd_txt t;
	char dest[512], t1[32];
	const char *d = a->arg + strlen("ssh://"); /* lm_devcache_add checked */
	int rc;
	snprintf(dest, sizeof(dest), "%s", d);
	int unheard = 0;
	for (int i = 0; i < c->n; i++)
		unheard |= !strcmp(c->dev[i].ssh, a->arg) &&
			   !c->dev[i].last_seen;
	if (!unheard) /* its laminads answered: their records say more */
		return 0;
	fprintf(stderr, "lamina devices: asking %s over ssh what it "
		"offers...\n", dest);
	rc = lm_remote_describe(dest, a->laminad, &t, e);
	if (rc == -EHOSTUNREACH || rc == -ETIMEDOUT) {
		/* kept: the host may be down for now; plans leave it out */
		fprintf(stderr, "lamina devices: %s; added, but plans leave "
			"it out until `lamina devices add` reaches it\n",
			e->msg);
		return 0;
	}
	if (rc)
		return rc;
	int port = a->port ? a->port : LM_CONTROL_PORT;
	lm_devcache_describe(c, a->arg, port, &t);
	printf("%s: %u cores, %s free, %s, laminad %s\n", dest, t.cores,
	       gib(t.mem_free, t1, sizeof(t1)), t.cpu[0] ? t.cpu : "cpu "
	       "unknown", t.version);
	printf("lamina deploy starts a laminad there on control port %d "
	       "when a plan uses it\n", port);
	return 0;
}

/* add URL / remove NAME: the cache alone, no browse. */
static int edit(const struct devices_args *a)
{
	char dir[4096], path[4200];
	lm_devcache c = { 0 };
	lm_error e;
	int rc;
	if (lm_state_dir(a->state_dir, dir, sizeof(dir), &e))
		return cli_error("devices", &e);
	snprintf(path, sizeof(path), "%s/%s", dir, LM_DEVCACHE_FILE);
	if (lm_devcache_load(path, &c, &e))
		return cli_error("devices", &e);
	if (!strcmp(a->verb, "add")) {
		rc = lm_devcache_add(&c, a->arg, &e);
		if (!rc)
			rc = describe(a, &c, &e);
	} else {
		rc = lm_devcache_remove(&c, a->arg);
		if (rc)
			lm_fail(&e, rc, "no device named '%s' (see 'lamina "
				"devices')", a->arg);
	}
	lm_devcache_sort(&c);
	if (!rc)
		rc = lm_devcache_save(path, &c, &e);
	lm_devcache_free(&c);
	return rc ? cli_error("devices", &e) : 0;
}

/* The laminads named by --device and --devices, asked directly: into
 * *out (malloc'd), *n of them answered. */
static int ask_named(const struct devices_args *a, lm_found **out, int *n,
		     lm_error *e)
{
	lm_devices *d = NULL;
	int total = a->n_named, rc;
	*out = NULL;
	*n = 0;
	if (a->devices_file &&
	    (rc = lm_devices_load(a->devices_file, &d, e)))
		return rc;
	total += d ? d->n : 0;
	if (!total)
		return 0;
	const char **addr = calloc((size_t)total, sizeof(*addr));
	const char **names = calloc((size_t)total, sizeof(*names));
	lm_found *f = calloc((size_t)total, sizeof(*f));
	if (!addr || !names || !f) {
		rc = lm_fail(e, -ENOMEM, "out of memory");
		goto out;
	}
	for (int i = 0; i < a->n_named; i++)
		addr[i] = a->named[i];
	for (int i = 0; d && i < d->n; i++) {
		/* devices.json's address may be empty: this host */
		addr[a->n_named + i] = d->dev[i].address[0] ? d->dev[i].address
							    : "127.0.0.1";
		names[a->n_named + i] = d->dev[i].name;
	}
	rc = lm_discover_direct(addr, names, total, a->timeout_ms, f, e);
	if (rc >= 0) {
		*n = rc;
		*out = f;
		f = NULL;
		rc = 0;
	}
out:
	free(addr);
	free(names);
	free(f);
	lm_devices_free(d);
	return rc;
}

int cmd_devices(int argc, char **argv)
{
	struct devices_args a;
	lm_devcache c = { 0 };
	lm_found *named = NULL;
	int n_named = 0;
	lm_error e;
	if (parse_devices(argc, argv, &a))
		return 1;
	if (a.verb)
		return edit(&a);
	if (ask_named(&a, &named, &n_named, &e) ||
	    lm_fleet_list(a.state_dir, a.timeout_ms, named, n_named, &c, &e)) {
		free(named);
		lm_devcache_free(&c);
		return cli_error("devices", &e);
	}
	free(named);
	int rc = 0;
	if (a.json)
		rc = print_json(&c);
	else if (!c.n)
		printf("no devices: no laminad answered within %u ms, none "
		       "added by hand\n", a.timeout_ms);
	else
		print_table(&c, (int64_t)time(NULL));
	lm_devcache_free(&c);
	return rc;
}
