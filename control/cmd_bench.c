/*
 * cmd_bench.c: `lamina bench`, measuring every slice of a slice folder on
 * the local device at each batch size and writing DIR/profile.json, the
 * input of `lamina plan`.
 *
 * Each slice is loaded as its own model (it is a standalone ONNX file),
 * prepared at the batch size and timed on one pinned core with the runtime
 * single-threaded, as a dataplane worker runs it: all slices one after the
 * other, in model order, round after round (time_slices says why).  Its weights and arena
 * come from the session; the cost of a same-device handoff is measured once
 * with DPDK rings (handoff.c).  Devices this host cannot measure yet
 * (remote ones) get times only through --model-speed.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "handoff.h"
#include "lamina/optimizer.h"
#include "lamina/runtime.h"
#include "lamina/slicer.h"

#define MAX_BATCHES 16
#define MAX_SPEEDS 64

struct bench_args {
	const char *dir, *devices, *out, *device;
	int batches[MAX_BATCHES], n_batches;
	int repeat, warmup, core;
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
	"  -d, --devices FILE       devices.json (default: this host, named\n"
	"                           'local')\n"
	"  -D, --device NAME        which device of FILE this host is (default:\n"
	"                           the one whose address is loopback)\n"
	"  -b, --batch LIST         batch sizes, e.g. 1,8 (default 1)\n"
	"  -r, --repeat R           timed runs per slice (default 20; the "
	"median is kept)\n"
	"  -w, --warmup W           untimed runs first (default 3)\n"
	"  -c, --core N             the core to pin to (default: the last one "
	"allowed)\n"
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
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":d:D:b:r:w:c:s:o:qh", opts,
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
			v = strtol(optarg, &end, 10);
			if (*end || v < (c == 'r') || v > 100000)
				return cli_errorf("bench", "%s needs a whole "
						  "number, not '%s'",
						  argv[optind - 1], optarg);
			*(c == 'r' ? &a->repeat : c == 'w' ? &a->warmup
							   : &a->core) = (int)v;
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
	memset(t, 0, sizeof(*t));
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
	t->n_in = g->n_inputs;
	t->n_out = g->n_outputs;
	for (int i = 0; i < g->n_inputs; i++) {
		lm_value *v = &g->values[g->inputs[i]];
		if (lm_tensor_alloc(&t->in[i], v->dtype, v->rank, v->dims))
			return lm_fail(e, -ENOMEM, "%s: out of memory", path);
		fill(&t->in[i]);
	}
	ps->output_bytes = 0;
	for (int j = 0; j < g->n_outputs; j++) {
		lm_value *v = &g->values[g->outputs[j]];
		if (lm_tensor_alloc(&t->out[j], v->dtype, v->rank, v->dims))
			return lm_fail(e, -ENOMEM, "%s: out of memory", path);
		ps->output_bytes += (double)t->out[j].nbytes;
	}
	ps->weight_bytes = (double)lm_session_weight_bytes(t->s);
	ps->arena_bytes = (double)lm_session_arena_bytes(t->s);
	return 0;
}

/*
 * Time the n slices of pb at its batch: every round runs them all once, in
 * model order, as a worker runs a stage, so each slice meets the cache its
 * predecessors leave.  (Timing one slice over and over keeps its weights in
 * the last-level cache: ResNet-18's large layers then ran twice as fast as
 * inside the model, and the sum of the slices was a third below the whole
 * model's time.)  The median of the timed rounds is kept per slice.
 */
static int time_slices(const struct bench_args *a, json_t *slices, int n,
		       lm_profile_batch *pb, int progress, lm_error *e)
{
	struct timed *ts = calloc((size_t)n, sizeof(*ts));
	double *t = malloc((size_t)n * (size_t)a->repeat * sizeof(double));
	int rc = 0;
	if (!ts || !t) {
		rc = lm_fail(e, -ENOMEM, "out of memory");
		goto out;
	}
	for (int i = 0; i < n && !rc; i++) {
		json_t *sl = json_array_get(slices, (size_t)i);
		const char *file = json_string_value(json_object_get(sl,
								     "file"));
		const char *label = json_string_value(json_object_get(sl,
								      "label"));
		char path[PATH_MAX];
		if (progress)
			fprintf(stderr, "\rbench: batch %d, loading slice "
				"%d/%d ", pb->batch, i + 1, n);
		if (!file) {
			rc = lm_fail(e, -EINVAL, "%s/manifest.json: slice %d "
				     "has no file", a->dir, i);
			break;
		}
		snprintf(path, sizeof(path), "%s/%s", a->dir, file);
		snprintf(pb->slices[i].label, sizeof(pb->slices[i].label),
			 "%s", label ? label : "");
		rc = timed_load(path, pb->batch, &ts[i], &pb->slices[i], e);
	}
	for (int r = 0; r < a->warmup + a->repeat && !rc; r++) {
		if (progress)
			fprintf(stderr, "\rbench: batch %d, round %d/%d      ",
				pb->batch, r + 1, a->warmup + a->repeat);
		for (int i = 0; i < n && !rc; i++) {
			double t0 = cli_now();
			rc = lm_session_run(ts[i].s, ts[i].in, ts[i].n_in,
					    ts[i].out, ts[i].n_out, e);
			if (r >= a->warmup)
				t[(size_t)i * (size_t)a->repeat +
				  (size_t)(r - a->warmup)] =
					(cli_now() - t0) * 1e6;
		}
	}
	for (int i = 0; i < n && !rc; i++) {
		double *ti = t + (size_t)i * (size_t)a->repeat;
		cli_sort(ti, a->repeat);
		pb->slices[i].time_us[0] = ti[a->repeat / 2];
	}
out:
	for (int i = 0; ts && i < n; i++)
		timed_free(&ts[i]);
	free(ts);
	free(t);
	return rc;
}

static json_t *load_manifest(const char *dir)
{
	char path[PATH_MAX];
	json_error_t je;
	snprintf(path, sizeof(path), "%s/manifest.json", dir);
	if (access(path, F_OK) != 0) {
		cli_errorf("bench", "%s: no manifest.json, so no slices (is it "
			   "a folder written by `lamina slice`?)", dir);
		return NULL;
	}
	json_t *man = json_load_file(path, 0, &je);
	if (!man)
		cli_errorf("bench", "%s: %s", path, je.text);
	else if (!json_array_size(json_object_get(man, "slices"))) {
		cli_errorf("bench", "%s: no slices (is %s a folder written by "
			   "`lamina slice`?)", path, dir);
		json_decref(man);
		man = NULL;
	}
	return man;
}

static double tensors_bytes(json_t *list)
{
	double total = 0;
	size_t i, k;
	json_t *t, *d;
	json_array_foreach(list, i, t) {
		double n = (double)lm_dtype_size(lm_dtype_from_name(
			json_string_value(json_object_get(t, "dtype"))));
		json_array_foreach(json_object_get(t, "shape"), k, d)
			n *= (double)json_integer_value(d);
		total += n;
	}
	return total;
}

int cmd_bench(int argc, char **argv)
{
	struct bench_args a;
	lm_devices *devs = NULL;
	lm_profile *p = NULL;
	lm_error e;
	json_t *man = NULL;
	int rc = 1;
	char out[PATH_MAX];

	if (parse_bench(argc, argv, &a) || !(man = load_manifest(a.dir)))
		return 1;
	if (a.devices ? lm_devices_load(a.devices, &devs, &e)
		      : lm_devices_local(&devs, &e)) {
		cli_error("bench", &e);
		goto done;
	}
	int local = local_device(devs, a.device);
	if (local < 0)
		goto done;
	json_t *slices = json_object_get(man, "slices");
	int n = (int)json_array_size(slices);
	if (lm_profile_create(n, &p) ||
	    lm_profile_add_device(p, devs->dev[local].name) < 0) {
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
		pb->input_bytes = batch * tensors_bytes(json_object_get(man,
									"inputs"));
		if (time_slices(&a, slices, n, pb, progress, &e)) {
			if (progress)
				fputc('\n', stderr);
			cli_error("bench", &e);
			goto done;
		}
		for (int i = 0; i + 1 < n; i++)
			pb->cut_bytes[i] = batch * (double)json_integer_value(
				json_object_get(json_array_get(slices,
							       (size_t)i),
						"cut_bytes"));
	}
	if (progress)
		fputc('\n', stderr);
	for (int i = 0; i < a.n_speeds; i++)
		if (lm_profile_derive(p, &a.speeds[i], &e)) {
			cli_error("bench", &e);
			goto done;
		}
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
			       p->batches[b].batch, n, total / 1e3,
			       devs->dev[local].name, core);
		}
		printf("ring handoff %.3f us; wrote %s\n", handoff, out);
	}
	rc = 0;
done:
	json_decref(man);
	lm_profile_free(p);
	lm_devices_free(devs);
	return rc;
}
