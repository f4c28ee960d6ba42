/*
 * cmd_run.c: `lamina run`, the whole model in one process on the CPU
 * runtime, no dataplane: the reference every pipeline is compared with.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "lamina/npy.h"
#include "lamina/runtime.h"
#include "lamina/slicer.h"

#define MAX_TENSORS 64

struct run_args {
	const char *model;
	cli_named_file in[MAX_TENSORS], out[MAX_TENSORS];
	int n_in, n_out;
	int threads, repeat, profile, no_fuse;
	int64_t batch;
};

static const char run_help[] =
	"usage: lamina run MODEL.onnx --input [NAME=]FILE.npy ... "
	"[--output [NAME=]FILE.npy ...]\n"
	"                  [--threads T] [--batch N] [--repeat R] [--profile]\n"
	"                  [--no-fuse]\n"
	"\n"
	"Run a whole model (or one slice) on the CPU runtime in this process.\n"
	"NAME may be left out when the model has one input (output).\n"
	"\n"
	"options:\n"
	"  -i, --input [NAME=]FILE.npy   a model input (NumPy .npy)\n"
	"  -o, --output [NAME=]FILE.npy  where to save a model output\n"
	"  -t, --threads T               threads for the heavy kernels "
	"(default 1)\n"
	"  -b, --batch N                 run at batch N (rewrites the batch "
	"axis\n"
	"                                of each input)\n"
	"  -r, --repeat R                run R more times and print\n"
	"                                'latency_ms median=X p90=Y min=Z'\n"
	"  -p, --profile                 print the time of every node\n"
	"      --no-fuse                 run the graph as the file has it, "
	"without\n"
	"                                the runtime's fusions (to compare "
	"them)\n"
	"  -h, --help                    this text\n";

static int positive(const char *opt, const char *v, long max, long *out)
{
	char *end;
	long n = strtol(v, &end, 10);
	if (*end || n < 1 || n > max)
		return cli_errorf("run", "%s needs a number from 1 to %ld, not "
				  "'%s'", opt, max, v);
	*out = n;
	return 0;
}

static int parse_run(int argc, char **argv, struct run_args *a)
{
	static const struct option opts[] = {
		{ "input", required_argument, 0, 'i' },
		{ "output", required_argument, 0, 'o' },
		{ "threads", required_argument, 0, 't' },
		{ "batch", required_argument, 0, 'b' },
		{ "repeat", required_argument, 0, 'r' },
		{ "profile", no_argument, 0, 'p' },
		{ "no-fuse", no_argument, 0, 'F' },
		{ "help", no_argument, 0, 'h' },
		{ 0, 0, 0, 0 },
	};
	int c;
	long v = 0;
	memset(a, 0, sizeof(*a));
	a->threads = 1;
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":i:o:t:b:r:ph", opts, NULL)) !=
	       -1) {
		switch (c) {
		case 'i':
			if (cli_add_named("run", "--input", optarg, a->in,
					  &a->n_in, MAX_TENSORS))
				return 1;
			break;
		case 'o':
			if (cli_add_named("run", "--output", optarg, a->out,
					  &a->n_out, MAX_TENSORS))
				return 1;
			break;
		case 't':
			if (positive("--threads", optarg, 256, &v))
				return 1;
			a->threads = (int)v;
			break;
		case 'b':
			if (positive("--batch", optarg, 1 << 20, &v))
				return 1;
			a->batch = v;
			break;
		case 'r':
			if (positive("--repeat", optarg, 10000000, &v))
				return 1;
			a->repeat = (int)v;
			break;
		case 'p': a->profile = 1; break;
		case 'F': a->no_fuse = 1; break;
		case 'h':
			fputs(run_help, stdout);
			exit(0);
		default:
			return cli_bad_option("run", c, argv);
		}
	}
	if (optind != argc - 1)
		return cli_errorf("run", "expected one MODEL.onnx (see 'lamina "
				  "run --help')");
	a->model = argv[optind];
	return 0;
}

/* Index of the graph value (input or output list) a --input/--output
 * refers to, or -1 after printing why not. */
static int resolve(const lm_graph *g, const int *list, int n,
		   const cli_named_file *f, const char *what)
{
	const char *names[MAX_TENSORS];
	for (int i = 0; i < n; i++)
		names[i] = g->values[list[i]].name;
	return cli_resolve("run", names, n, f, what);
}

static void print_profile(lm_session *s)
{
	const lm_node_time *rows;
	int n = lm_session_profile(s, &rows);
	double total = 0;
	for (int i = 0; i < n; i++)
		total += rows[i].runs ? rows[i].seconds / rows[i].runs : 0;
	printf("%-40s %-26s %-18s %9s %6s %8s\n", "node", "op", "kernel",
	       "ms", "%", "GFLOP/s");
	for (int i = 0; i < n; i++) {
		if (!rows[i].runs)
			continue;
		double t = rows[i].seconds / rows[i].runs;
		printf("%-40.40s %-26.26s %-18.18s %9.3f %6.1f %8.1f\n",
		       rows[i].name, rows[i].op, rows[i].kernel, t * 1e3,
		       total > 0 ? 100 * t / total : 0,
		       t > 0 ? rows[i].flops / t / 1e9 : 0);
	}
	printf("total %.3f ms per run\n", total * 1e3);
}

int cmd_run(int argc, char **argv)
{
	struct run_args a;
	lm_onnx_model *m = NULL;
	lm_session *s = NULL;
	lm_tensor in[MAX_TENSORS] = { 0 }, out[MAX_TENSORS] = { 0 };
	lm_tensor files[MAX_TENSORS] = { 0 };
	lm_input_shape shapes[MAX_TENSORS];
	lm_error e;
	double *times = NULL;
	int rc = 1, n_shapes = 0, which[MAX_TENSORS];
	char shape[128];

	if (parse_run(argc, argv, &a))
		return 1;
	if (lm_onnx_load(a.model, &m, &e)) {
		cli_error("run", &e);
		goto out;
	}
	lm_graph *g = lm_onnx_graph(m);
	if (g->n_inputs > MAX_TENSORS || g->n_outputs > MAX_TENSORS) {
		cli_errorf("run", "%s: too many inputs or outputs", a.model);
		goto out;
	}
	/* Read the inputs first: their shapes fill symbolic dims. */
	for (int i = 0; i < a.n_in; i++) {
		which[i] = resolve(g, g->inputs, g->n_inputs, &a.in[i],
				   "input");
		if (which[i] < 0)
			goto out;
		if (files[which[i]].data) {
			cli_errorf("run", "input '%s' is given twice",
				   g->values[g->inputs[which[i]]].name);
			goto out;
		}
		if (lm_npy_read(a.in[i].path, &files[which[i]], &e)) {
			cli_error("run", &e);
			goto out;
		}
	}
	for (int i = 0; i < g->n_inputs; i++) {
		lm_value *v = &g->values[g->inputs[i]];
		lm_input_shape *sh = &shapes[n_shapes];
		if (!files[i].data) {
			cli_errorf("run", "no --input for the model's input "
				   "'%s' (%s %s)", v->name,
				   lm_dtype_name(v->dtype),
				   lm_shape_str(v->rank, v->dims, shape,
						sizeof(shape)));
			goto out;
		}
		if (v->rank >= 0 && v->rank != files[i].rank)
			continue; /* lm_session_run names the mismatch */
		snprintf(sh->name, sizeof(sh->name), "%s", v->name);
		sh->rank = files[i].rank;
		for (int d = 0; d < sh->rank; d++)
			sh->dims[d] = v->rank >= 0 && v->dims[d] >= 0
					      ? v->dims[d] : files[i].dims[d];
		n_shapes++;
	}
	/* --batch: the batch axis of each input (lamina/batch.h) */
	if (lm_onnx_prepare_at(m, shapes, n_shapes, a.batch, NULL, &e)) {
		cli_error("run", &e);
		goto out;
	}
	lm_session_options so = { .threads = a.threads,
				  .profile = a.profile,
				  .no_fuse = a.no_fuse };
	if (lm_session_create(g, &so, &s, &e)) {
		lm_fail_prefix(&e, -EINVAL, "%s", a.model);
		cli_error("run", &e);
		goto out;
	}
	for (int i = 0; i < g->n_inputs; i++)
		in[i] = files[i];
	for (int j = 0; j < g->n_outputs; j++) {
		lm_value *y = &g->values[g->outputs[j]];
		if (lm_tensor_alloc(&out[j], y->dtype, y->rank, y->dims)) {
			cli_errorf("run", "output '%s': cannot allocate %s %s",
				   y->name, lm_dtype_name(y->dtype),
				   lm_shape_str(y->rank, y->dims, shape,
						sizeof(shape)));
			goto out;
		}
	}
	if (lm_session_run(s, in, g->n_inputs, out, g->n_outputs, &e)) {
		cli_error("run", &e);
		goto out;
	}
	for (int i = 0; i < a.n_out; i++) {
		int j = resolve(g, g->outputs, g->n_outputs, &a.out[i],
				"output");
		if (j < 0)
			goto out;
		if (lm_npy_write(a.out[i].path, &out[j], &e)) {
			cli_error("run", &e);
			goto out;
		}
	}
	if (a.repeat) {
		times = malloc((size_t)a.repeat * sizeof(double));
		if (!times) {
			cli_errorf("run", "out of memory");
			goto out;
		}
		for (int r = 0; r < a.repeat; r++) {
			double t0 = cli_now();
			lm_session_run(s, in, g->n_inputs, out, g->n_outputs,
				       NULL);
			times[r] = (cli_now() - t0) * 1e3;
		}
		cli_print_latency(times, a.repeat);
	}
	if (a.profile)
		print_profile(s);
	rc = 0;
out:
	for (int i = 0; i < MAX_TENSORS; i++) {
		lm_tensor_free(&files[i]);
		lm_tensor_free(&out[i]);
	}
	cli_named_free(a.in, a.n_in);
	cli_named_free(a.out, a.n_out);
	free(times);
	lm_session_free(s);
	lm_onnx_free(m);
	return rc;
}
