/*
 * cmd_bench.c: `lamina bench`, measuring every slice of a slice folder on
 * the local device at each batch size and writing DIR/profile.json, the
 * input of `lamina plan`.
 *
 * The slices are joined into one graph and timed on one pinned core with
 * the runtime single-threaded, as a dataplane worker runs a stage, each
 * slice's time read from the session's per-node profile (time_slices says
 * why).  Each slice's weights and arena come from a session of its own;
 * the cost of a same-device handoff is measured once with DPDK rings
 * (handoff.c).  Devices this host cannot measure yet
 * (remote ones) get times through --model-speed, or, without a devices
 * file, when discovery finds them (discover.h) running the same CPU model
 * as this host: they are given this host's times, and the profile says
 * so (the note of each derived device).
 */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <limits.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "discover.h"
#include "handoff.h"
#include "lamina/optimizer.h"
#include "lamina/runtime.h"
#include "lamina/slicer.h"

#define MAX_BATCHES 16
#define MAX_SPEEDS 64
#define MAX_NEIGHBOURS 64

struct bench_args {
	const char *dir, *devices, *out, *device;
	int batches[MAX_BATCHES], n_batches;
	int repeat, warmup, core;
	int neighbours; /* -1: the device's other cores */
	lm_model_speed speeds[MAX_SPEEDS];
	int n_speeds;
	int quiet;
};

static const char bench_help[] =
	"usage: lamina bench DIR [options]\n"
	"\n"
	"Time every slice of DIR (written by `lamina slice`) on this host, one\n"
	"pinned core, at each batch size, and write DIR/profile.json with each\n"
	"slice's time, weight, arena and output bytes, the bytes crossing each\n"
	"cut and the measured cost of a same-device ring handoff.\n"
	"\n"
	"options:\n"
	"  -d, --devices FILE       devices.json (default: the devices that\n"
	"                           answer on the link, as `lamina devices`\n"
	"                           lists them: those with this host's CPU\n"
	"                           model get its times; when none answers,\n"
	"                           this host, named 'local')\n"
	"  -D, --device NAME        which device of FILE this host is (default:\n"
	"                           the one whose address is loopback, or one\n"
	"                           of this host's)\n"
	"  -b, --batch LIST         batch sizes, e.g. 1,8 (default 1)\n"
	"  -r, --repeat R           timed runs per slice (default 20; the "
	"median is kept)\n"
	"  -w, --warmup W           untimed runs first (default 3)\n"
	"  -c, --core N             the core to pin to (default: the last one "
	"allowed)\n"
	"  -n, --neighbours N       run the model on N other cores meanwhile,\n"
	"                           as the other stages of a pipeline do on\n"
	"                           this device (default: the device's cores\n"
	"                           minus one, as far as this host has them;\n"
	"                           0 times the slices alone)\n"
	"  -s, --model-speed NAME=F[@FROM]\n"
	"                           give device NAME the times of FROM (default:\n"
	"                           the measured device) divided by F: F=2 is a\n"
	"                           device twice as fast; may be repeated\n"
	"  -o, --output FILE        where to write (default DIR/profile.json)\n"
	"  -q, --quiet              no progress\n"
	"  -h, --help               this text\n";

static int parse_batches(const char *arg, struct bench_args *a)
{
	const char *p = arg;
	a->n_batches = 0;
	while (*p) {
		char *end;
		long b = strtol(p, &end, 10);
		if (end == p || b < 1 || b > 4096 ||
		    a->n_batches == MAX_BATCHES || (*end && *end != ','))
			return cli_errorf("bench", "--batch needs sizes from 1 "
					  "to 4096 separated by commas, not "
					  "'%s'", arg);
		for (int i = 0; i < a->n_batches; i++)
			if (a->batches[i] == b)
				return cli_errorf("bench", "--batch lists %ld "
						  "twice", b);
		a->batches[a->n_batches++] = (int)b;
		p = *end ? end + 1 : end;
	}
	return 0;
}

static int parse_bench(int argc, char **argv, struct bench_args *a)
{
	static const struct option opts[] = {
		{ "devices", required_argument, 0, 'd' },
		{ "device", required_argument, 0, 'D' },
		{ "batch", required_argument, 0, 'b' },
		{ "repeat", required_argument, 0, 'r' },
		{ "warmup", required_argument, 0, 'w' },
		{ "core", required_argument, 0, 'c' },
		{ "neighbours", required_argument, 0, 'n' },
		{ "model-speed", required_argument, 0, 's' },
		{ "output", required_argument, 0, 'o' },
		{ "quiet", no_argument, 0, 'q' },
		{ "help", no_argument, 0, 'h' },
		{ 0, 0, 0, 0 },
	};
	int c;
	lm_error e;
	memset(a, 0, sizeof(*a));
	a->batches[0] = 1;
	a->n_batches = 1;
	a->repeat = 20;
	a->warmup = 3;
	a->core = -1;
	a->neighbours = -1;
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":d:D:b:r:w:c:n:s:o:qh", opts,
				NULL)) != -1) {
		char *end;
		long v;
		switch (c) {
		case 'd': a->devices = optarg; break;
		case 'D': a->device = optarg; break;
		case 'o': a->out = optarg; break;
		case 'q': a->quiet = 1; break;
		case 'b':
			if (parse_batches(optarg, a))
				return 1;
			break;
		case 'r':
		case 'w':
		case 'c':
		case 'n':
			v = strtol(optarg, &end, 10);
			if (*end || v < (c == 'r') || v > 100000)
				return cli_errorf("bench", "%s needs a whole "
						  "number, not '%s'",
						  argv[optind - 1], optarg);
			*(c == 'r'   ? &a->repeat
			  : c == 'w' ? &a->warmup
			  : c == 'c' ? &a->core
				     : &a->neighbours) = (int)v;
			break;
		case 's':
			if (a->n_speeds == MAX_SPEEDS)
				return cli_errorf("bench", "too many "
						  "--model-speed options");
			if (lm_profile_parse_speed(optarg,
						   &a->speeds[a->n_speeds++],
						   &e))
				return cli_error("bench", &e);
			break;
		case 'h':
			fputs(bench_help, stdout);
			exit(0);
		default:
			return cli_bad_option("bench", c, argv);
		}
	}
	if (optind != argc - 1)
		return cli_errorf("bench", "expected one slice folder (see "
				  "'lamina bench --help')");
	a->dir = argv[optind];
	return 0;
}

static int loopback(const char *addr)
{
	return !strncmp(addr, "127.", 4) || !strcmp(addr, "::1") ||
	       !strcmp(addr, "localhost");
}

/* The device this host is: --device, else the one on loopback. */
static int local_device(const lm_devices *d, const char *want)
{
	if (want) {
		int i = lm_devices_find(d, want);
		if (i < 0)
			cli_errorf("bench", "--device %s: no such device in "
				   "the devices file", want);
		return i;
	}
	for (int i = 0; i < d->n; i++)
		if (loopback(d->dev[i].address))
			return i;
	cli_errorf("bench", "no device in the devices file is this host (a "
		   "loopback address); name it with --device");
	return -1;
}

/*
 * Discovered devices that run this host's CPU model get the times
 * measured here (device `measured`), and the profile says so; the others
 * are named, without times (lamina plan leaves them out).  Devices given
 * times by --model-speed keep those.
 */
static int same_cpu(lm_profile *p, const lm_devices *devs, int local,
		    const char *measured, const lm_devcache *c, int quiet)
{
	char here[128];
	lm_dnssd_cpu_model(here, sizeof(here));
	for (int i = 0; i < devs->n; i++) {
		const char *name = devs->dev[i].name, *cpu = "";
		lm_error e;
		if (i == local || lm_profile_find_device(p, name) >= 0)
			continue;
		for (int k = 0; k < c->n; k++)
			if (!strcmp(c->dev[k].name, name))
				cpu = c->dev[k].txt.cpu;
		if (!here[0] || strcmp(cpu, here)) {
			if (!quiet)
				printf("device '%s' at %s runs another CPU "
				       "model ('%s'; this host: '%s'): no times "
				       "(bench there, or --model-speed %s=F)\n",
				       name, devs->dev[i].address, cpu, here,
				       name);
			continue;
		}
		lm_model_speed s = { .factor = 1 };
		snprintf(s.name, sizeof(s.name), "%s", name);
		snprintf(s.from, sizeof(s.from), "%s", measured);
		snprintf(s.note, sizeof(s.note), "same CPU model as the host "
			 "measured ('%.120s'): its times, measured on '%s'",
			 here, measured);
		if (lm_profile_derive(p, &s, &e))
			return cli_error("bench", &e);
		if (!quiet)
			printf("device '%s' at %s: same CPU model as this host "
			       "('%s'): given the times measured on '%s'\n",
			       name, devs->dev[i].address, here, measured);
	}
	return 0;
}

/* The core to time on: the one asked for, else the last this process may
 * use.  Chosen before DPDK starts, which narrows the affinity. */
static int choose_core(int core)
{
	cpu_set_t set;
	if (sched_getaffinity(0, sizeof(set), &set) != 0)
		return -1;
	if (core < 0)
		for (int c = CPU_SETSIZE - 1; c >= 0 && core < 0; c--)
			if (CPU_ISSET(c, &set))
				core = c;
	return core >= 0 && core < CPU_SETSIZE && CPU_ISSET(core, &set)
		       ? core : -1;
}

/* Up to want cores this process may use other than core, highest first;
 * returns how many. */
static int other_cores(int core, int want, int *out)
{
	cpu_set_t set;
	int n = 0;
	if (sched_getaffinity(0, sizeof(set), &set) != 0)
		return 0;
	for (int c = CPU_SETSIZE - 1; c >= 0 && n < want &&
				      n < MAX_NEIGHBOURS; c--)
		if (c != core && CPU_ISSET(c, &set))
			out[n++] = c;
	return n;
}

static int pin(int core)
{
	cpu_set_t set;
	CPU_ZERO(&set);
	CPU_SET(core, &set);
	return sched_setaffinity(0, sizeof(set), &set);
}

/* Fill an input with small deterministic values (indices stay valid). */
static void fill(lm_tensor *t)
{
	size_t n = t->nbytes / (lm_dtype_size(t->dtype) ? lm_dtype_size(
							      t->dtype) : 1);
	if (t->dtype != LM_DT_FLOAT)
		return; /* zeros: valid for integer and boolean inputs */
	for (size_t i = 0; i < n; i++)
		((float *)t->data)[i] = (float)((i * 2654435761u) % 2001) /
					1000.0f - 1.0f;
}

/* One slice loaded for timing at one batch. */
struct timed {
	lm_onnx_model *m;
	lm_graph *g; /* a joined graph, when not m's */
	lm_session *s;
	lm_tensor in[64], out[64];
	int n_in, n_out;
};

static void timed_free(struct timed *t)
{
	for (int i = 0; i < 64; i++) {
		lm_tensor_free(&t->in[i]);
		lm_tensor_free(&t->out[i]);
	}
	lm_session_free(t->s);
	lm_onnx_free(t->m);
	lm_graph_free(t->g);
	memset(t, 0, sizeof(*t));
}

/* Inputs (filled) and outputs for running graph g. */
static int timed_tensors(struct timed *t, lm_graph *g, const char *what,
			 lm_error *e)
{
	t->n_in = g->n_inputs;
	t->n_out = g->n_outputs;
	for (int i = 0; i < g->n_inputs; i++) {
		lm_value *v = &g->values[g->inputs[i]];
		if (lm_tensor_alloc(&t->in[i], v->dtype, v->rank, v->dims))
			return lm_fail(e, -ENOMEM, "%s: out of memory", what);
		fill(&t->in[i]);
	}
	for (int j = 0; j < g->n_outputs; j++) {
		lm_value *v = &g->values[g->outputs[j]];
		if (lm_tensor_alloc(&t->out[j], v->dtype, v->rank, v->dims))
			return lm_fail(e, -ENOMEM, "%s: out of memory", what);
	}
	return 0;
}

/* Load one slice at one batch, with inputs and outputs, and fill the sizes
 * of its profile entry. */
static int timed_load(const char *path, int batch, struct timed *t,
		      lm_profile_slice *ps, lm_error *e)
{
	int rc;
	if ((rc = lm_onnx_load(path, &t->m, e)) ||
	    (rc = lm_onnx_prepare_batch(t->m, batch, e)))
		return rc;
	lm_graph *g = lm_onnx_graph(t->m);
	if (g->n_inputs > 64 || g->n_outputs > 64)
		return lm_fail(e, -E2BIG, "%s: too many inputs or outputs",
			       path);
	lm_session_options so = { .threads = 1 };
	if ((rc = lm_session_create(g, &so, &t->s, e)))
		return lm_fail_prefix(e, rc, "%s", path);
	if ((rc = timed_tensors(t, g, path, e)))
		return rc;
	ps->output_bytes = 0;
	for (int j = 0; j < g->n_outputs; j++)
		ps->output_bytes += (double)t->out[j].nbytes;
	ps->weight_bytes = (double)lm_session_weight_bytes(t->s);
	ps->arena_bytes = (double)lm_session_arena_bytes(t->s);
	return 0;
}

/* The n slices of the folder joined into one graph whose outputs are the
 * model's, with input and output tensors to run it. */
static int joined_load(const struct bench_args *a, const lm_manifest *man,
		       int n, int batch, struct timed *t, lm_error *e)
{
	char (*path)[PATH_MAX] = calloc((size_t)n, sizeof(*path));
	const char **paths = calloc((size_t)n, sizeof(*paths));
	lm_graph *g = NULL;
	int rc = 0;
	if (!path || !paths)
		rc = lm_fail(e, -ENOMEM, "out of memory");
	for (int i = 0; i < n && !rc; i++) {
		rc = lm_manifest_slice_path(man, i, path[i], sizeof(path[i]),
					    e);
		paths[i] = path[i];
	}
	if (!rc)
		rc = lm_slice_join(paths, n,
				   lm_manifest_slice_batch(man, batch), &g, e);
	free(path);
	free(paths);
	if (rc)
		return rc;
	t->g = g;
	for (int k = 0; k < man->n_outputs; k++) {
		int v = lm_graph_find(g, man->outputs[k].name);
		if (v < 0 || g->values[v].kind != LM_VAL_NODE)
			return lm_fail(e, -EINVAL, "%s/manifest.json: output "
				       "'%s' is made by no slice", a->dir,
				       man->outputs[k].name);
		if (lm_graph_add_output(g, v))
			return lm_fail(e, -ENOMEM, "out of memory");
	}
	lm_session_options so = { .threads = 1, .profile = 1 };
	if (g->n_inputs > 64 || g->n_outputs > 64)
		return lm_fail(e, -E2BIG, "%s: too many inputs or outputs",
			       a->dir);
	if ((rc = lm_session_create(g, &so, &t->s, e)))
		return lm_fail_prefix(e, rc, "%s", a->dir);
	return timed_tensors(t, g, a->dir, e);
}

/* A thread running the joined model on another core while the slices are
 * timed: a pipeline's other stages share the last-level cache and the
 * memory bus with each stage (two ResNet-18 runs on this kind of 2-core
 * host each take ~7% longer than one alone). */
struct neighbour {
	pthread_t th;
	int core, started;
	const struct bench_args *a;
	const lm_manifest *man;
	int n, batch;
	volatile int ready, stop;
	int rc;
	lm_error e;
};

static void *neighbour_main(void *arg)
{
	struct neighbour *nb = arg;
	struct timed t = { 0 };
	cpu_set_t set;
	CPU_ZERO(&set);
	CPU_SET(nb->core, &set);
	pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
	nb->rc = joined_load(nb->a, nb->man, nb->n, nb->batch, &t, &nb->e);
	nb->ready = 1;
	while (!nb->rc && !nb->stop)
		nb->rc = lm_session_run(t.s, t.in, t.n_in, t.out, t.n_out,
					&nb->e);
	timed_free(&t);
	return NULL;
}

/* Start the neighbours and wait until each runs (or failed to load). */
static int neighbours_start(struct neighbour *nb, int count, lm_error *e)
{
	for (int i = 0; i < count; i++) {
		if (pthread_create(&nb[i].th, NULL, neighbour_main, &nb[i]))
			return lm_fail(e, -EAGAIN, "cannot start a thread");
		nb[i].started = 1;
	}
	for (int i = 0; i < count; i++) {
		while (!nb[i].ready)
			usleep(1000);
		if (nb[i].rc) {
			*e = nb[i].e;
			return nb[i].rc;
		}
	}
	return 0;
}

static void neighbours_stop(struct neighbour *nb, int count)
{
	for (int i = 0; i < count; i++)
		nb[i].stop = 1;
	for (int i = 0; i < count; i++)
		if (nb[i].started)
			pthread_join(nb[i].th, NULL);
}

/*
 * Time the n slices of pb at its batch as a worker runs a stage: all of
 * them joined into one graph run by one session (one arena), round after
 * round, each slice's time being the sum of its nodes' times in the
 * session's profile.  The median of the timed rounds is kept per slice.
 * (Timing one slice over and over keeps its weights in the last-level
 * cache: ResNet-18's large layers then ran twice as fast as inside the
 * model.  A session per slice, run one after the other, gives each slice
 * its own arena and buffers between them: its sum was 10% above the
 * joined model's time.)  Each slice is also loaded alone, once, for its
 * weight, arena and output bytes.
 */
static int time_slices(const struct bench_args *a, const lm_manifest *man,
		       int n,
		       lm_profile_batch *pb, const int *others, int n_others,
		       int progress, lm_error *e)
{
	struct neighbour nb[MAX_NEIGHBOURS];
	struct timed joined = { 0 };
	const lm_node_time *rows;
	double *t = malloc((size_t)n * (size_t)a->repeat * sizeof(double));
	double *before = NULL, *round = calloc((size_t)n, sizeof(double));
	int *owner = NULL, rc = 0;
	if (!t || !round) {
		rc = lm_fail(e, -ENOMEM, "out of memory");
		goto out;
	}
	for (int i = 0; i < n && !rc; i++) {
		char path[PATH_MAX];
		struct timed one = { 0 };
		if (progress)
			fprintf(stderr, "\rbench: batch %d, loading slice "
				"%d/%d ", pb->batch, i + 1, n);
		if ((rc = lm_manifest_slice_path(man, i, path, sizeof(path),
						 e)))
			break;
		snprintf(pb->slices[i].label, sizeof(pb->slices[i].label),
			 "%s", man->slices[i].label);
		rc = timed_load(path, (int)lm_manifest_slice_batch(man, pb->batch),
			       &one, &pb->slices[i], e);
		timed_free(&one);
	}
	if (!rc)
		rc = joined_load(a, man, n, pb->batch, &joined, e);
	memset(nb, 0, sizeof(nb));
	for (int i = 0; i < n_others && i < MAX_NEIGHBOURS; i++) {
		nb[i].core = others[i];
		nb[i].a = a;
		nb[i].man = man;
		nb[i].n = n;
		nb[i].batch = pb->batch;
	}
	if (!rc && n_others) {
		if (progress)
			fprintf(stderr, "\rbench: batch %d, starting %d "
				"neighbour%s ", pb->batch, n_others,
				n_others == 1 ? "" : "s");
		rc = neighbours_start(nb, n_others, e);
	}
	int n_rows = rc ? 0 : lm_session_profile(joined.s, &rows);
	if (!rc && (!(owner = calloc((size_t)n_rows + 1, sizeof(int))) ||
		    !(before = calloc((size_t)n_rows + 1, sizeof(double)))))
		rc = lm_fail(e, -ENOMEM, "out of memory");
	for (int r = 0, cur = 0; r < n_rows && !rc; r++) {
		/* nodes come in model order; a node made by fusion keeps
		 * its first node's name, so few are not found */
		int k = lm_manifest_slice_of_node(man, cur, rows[r].name);
		owner[r] = cur = k >= 0 ? k : cur;
	}
	for (int r = 0; r < a->warmup + a->repeat && !rc; r++) {
		if (progress)
			fprintf(stderr, "\rbench: batch %d, round %d/%d      ",
				pb->batch, r + 1, a->warmup + a->repeat);
		for (int j = 0; j < n_rows; j++)
			before[j] = rows[j].seconds;
		rc = lm_session_run(joined.s, joined.in, joined.n_in,
				    joined.out, joined.n_out, e);
		if (rc || r < a->warmup)
			continue;
		memset(round, 0, (size_t)n * sizeof(double));
		for (int j = 0; j < n_rows; j++)
			round[owner[j]] += rows[j].seconds - before[j];
		for (int i = 0; i < n; i++)
			t[(size_t)i * (size_t)a->repeat +
			  (size_t)(r - a->warmup)] = round[i] * 1e6;
	}
	for (int i = 0; i < n && !rc; i++) {
		double *ti = t + (size_t)i * (size_t)a->repeat;
		cli_sort(ti, a->repeat);
		pb->slices[i].time_us[0] = ti[a->repeat / 2];
	}
	neighbours_stop(nb, n_others);
	for (int i = 0; i < n_others && !rc; i++)
		if (nb[i].rc) {
			*e = nb[i].e;
			rc = nb[i].rc;
		}
out:
	timed_free(&joined);
	free(owner);
	free(before);
	free(round);
	free(t);
	return rc;
}

int cmd_bench(int argc, char **argv)
{
	struct bench_args a;
	lm_devices *devs = NULL, *here = NULL;
	lm_profile *p = NULL;
	lm_devcache cache = { 0 };
	lm_error e;
	lm_manifest *man = NULL;
	int rc = 1, fleet = 0;
	char out[PATH_MAX];

	if (parse_bench(argc, argv, &a))
		return 1;
	if (lm_manifest_load(a.dir, &man, &e))
		return cli_error("bench", &e);
	if (a.devices ? lm_devices_load(a.devices, &devs, &e)
		      : lm_fleet_default("bench", &devs, &cache, &fleet, &e)) {
		cli_error("bench", &e);
		goto done;
	}
	/* with the discovered fleet, this host may be none of its devices:
	 * it is then measured as 'local', with its own cores */
	int local = fleet && !a.device ? lm_fleet_this_host(devs)
				       : local_device(devs, a.device);
	if (local < 0 && (!fleet || a.device))
		goto done;
	if (local < 0 && lm_devices_local(&here, &e)) {
		cli_error("bench", &e);
		goto done;
	}
	const lm_device *me = local >= 0 ? &devs->dev[local] : &here->dev[0];
	for (int b = 0; b < a.n_batches; b++)
		if (lm_manifest_batch_ok(man, a.batches[b], &e)) {
			cli_error("bench", &e);
			goto done;
		}
	int n = man->n_slices;
	if (lm_profile_create(n, &p) ||
	    lm_profile_add_device(p, me->name) < 0) {
		cli_errorf("bench", "out of memory");
		goto done;
	}
	snprintf(p->model, sizeof(p->model), "%s", a.dir);
	int core = choose_core(a.core);
	if (core < 0) {
		cli_errorf("bench", "core %d is not one this process may use",
			   a.core);
		goto done;
	}
	int others[MAX_NEIGHBOURS];
	int want = a.neighbours >= 0 ? a.neighbours : me->cores - 1;
	int n_others = other_cores(core, want, others);
	if (a.neighbours > n_others) {
		cli_errorf("bench", "--neighbours %d: this host has %d other "
			   "core%s", a.neighbours, n_others,
			   n_others == 1 ? "" : "s");
		goto done;
	}
	double handoff = 0;
	if (lm_handoff_measure(&handoff, &e)) {
		cli_error("bench", &e);
		goto done;
	}
	if (pin(core) != 0) {
		cli_errorf("bench", "cannot pin to core %d", core);
		goto done;
	}
	int progress = !a.quiet && isatty(2);
	for (int b = 0; b < a.n_batches; b++) {
		int batch = a.batches[b];
		lm_profile_batch *pb = lm_profile_add_batch(p, batch);
		if (!pb) {
			cli_errorf("bench", "out of memory");
			goto done;
		}
		pb->handoff_us = handoff;
		/* bytes at this batch: the manifest's shapes are at the
		 * batch it was sliced at, scaled along each batch axis */
		pb->input_bytes = (double)lm_manifest_input_bytes(man, batch);
		if (time_slices(&a, man, n, pb, others, n_others, progress, &e)) {
			if (progress)
				fputc('\n', stderr);
			cli_error("bench", &e);
			goto done;
		}
		for (int i = 0; i + 1 < n; i++)
			pb->cut_bytes[i] = (double)lm_manifest_cut_bytes(
				man, i, batch);
		/* boundary k is the cut after slice k - 1: a bundle there as
		 * laminad lays it out */
		for (int k = 0; k <= n; k++)
			pb->bundle_bytes[k] = (double)lm_manifest_bundle_bytes(
				man, k - 1, batch);
	}
	if (progress)
		fputc('\n', stderr);
	for (int i = 0; i < a.n_speeds; i++)
		if (lm_profile_derive(p, &a.speeds[i], &e)) {
			cli_error("bench", &e);
			goto done;
		}
	if (fleet && same_cpu(p, devs, local, me->name, &cache, a.quiet))
		goto done;
	snprintf(out, sizeof(out), "%s", a.out ? a.out : "");
	if (!a.out)
		snprintf(out, sizeof(out), "%s/profile.json", a.dir);
	if (lm_profile_save(p, out, &e)) {
		cli_error("bench", &e);
		goto done;
	}
	if (!a.quiet) {
		for (int b = 0; b < p->n_batches; b++) {
			double total = 0;
			for (int i = 0; i < n; i++)
				total += p->batches[b].slices[i].time_us[0];
			printf("batch %d: %d slices, %.3f ms on '%s' (core %d)\n",
			       p->batches[b].batch, n, total / 1e3, me->name,
			       core);
		}
		printf("ring handoff %.3f us; wrote %s\n", handoff, out);
	}
	rc = 0;
done:
	lm_manifest_free(man);
	lm_profile_free(p);
	lm_devices_free(devs);
	lm_devices_free(here);
	lm_devcache_free(&cache);
	return rc;
}
