/*
 * cmd_infer.c: `lamina infer`, one inference through a running
 * deployment: the inputs (NumPy files) go to the ingress of its first
 * stage's laminad, the answer's tensors are written as NumPy files.  The
 * model's input and output names come from the slice folder's manifest;
 * arguments are matched to them as `lamina run` does.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "lamina/client.h"
#include "lamina/manifest.h"
#include "lamina/npy.h"
#include "lamina/runtime.h"
#include "record.h"

#define MAX_TENSORS 64

struct infer_args {
	const char *id, *state_dir;
	cli_named_file in[MAX_TENSORS], out[MAX_TENSORS];
	int n_in, n_out, repeat, timeout_s;
};

static const char infer_help[] =
	"usage: lamina infer ID --input [NAME=]FILE.npy ... "
	"[--output [NAME=]FILE.npy ...]\n"
	"                    [--repeat R] [--state-dir DIR]\n"
	"\n"
	"Send one request to deployment ID (see `lamina deploy`) and save its\n"
	"answer.  Inputs are the model's, at the plan's batch size; NAME may\n"
	"be left out when the model has one input (output).  Without\n"
	"--output the outputs' shapes are printed.\n"
	"\n"
	"options:\n"
	"  -i, --input [NAME=]FILE.npy   a model input (NumPy .npy)\n"
	"  -o, --output [NAME=]FILE.npy  where to save a model output\n"
	"  -r, --repeat R                send it R more times, one at a time, "
	"and\n"
	"                                print 'latency_ms median=X p90=Y "
	"min=Z'\n"
	"  -t, --timeout S               seconds to wait for an answer "
	"(default 60)\n"
	"  -s, --state-dir DIR           deployment records (see 'lamina "
	"deploy --help')\n"
	"  -h, --help                    this text\n";

static int parse_infer(int argc, char **argv, struct infer_args *a)
{
	static const struct option opts[] = {
		{ "input", required_argument, 0, 'i' },
		{ "output", required_argument, 0, 'o' },
		{ "repeat", required_argument, 0, 'r' },
		{ "timeout", required_argument, 0, 't' },
		{ "state-dir", required_argument, 0, 's' },
		{ "help", no_argument, 0, 'h' },
		{ 0, 0, 0, 0 },
	};
	int c;
	memset(a, 0, sizeof(*a));
	a->timeout_s = 60;
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":i:o:r:t:s:h", opts, NULL)) !=
	       -1) {
		switch (c) {
		case 'i':
			if (cli_add_named("infer", "--input", optarg, a->in,
					  &a->n_in, MAX_TENSORS))
				return 1;
			break;
		case 'o':
			if (cli_add_named("infer", "--output", optarg, a->out,
					  &a->n_out, MAX_TENSORS))
				return 1;
			break;
		case 'r':
		case 't': {
			char *end;
			long v = strtol(optarg, &end, 10);
			if (*end || v < 1 || v > 10000000)
				return cli_errorf("infer", "--%s needs a "
						  "number from 1 to 10000000, "
						  "not '%s'", c == 'r' ?
						  "repeat" : "timeout", optarg);
			*(c == 'r' ? &a->repeat : &a->timeout_s) = (int)v;
			break;
		}
		case 's': a->state_dir = optarg; break;
		case 'h':
			fputs(infer_help, stdout);
			exit(0);
		default:
			return cli_bad_option("infer", c, argv);
		}
	}
	if (optind != argc - 1)
		return cli_errorf("infer", "expected one deployment ID (see "
				  "'lamina infer --help')");
	a->id = argv[optind];
	if (!a->n_in)
		return cli_errorf("infer", "no --input given");
	return 0;
}

/* The model's input and output names (the manifest of the slice folder),
 * borrowed from *man. */
static int model_names(const char *dir, lm_manifest **man, const char **in,
		       int *n_in, const char **out, int *n_out)
{
	lm_error e;
	if (lm_manifest_load(dir, man, &e))
		return cli_error("infer", &e);
	if ((*man)->n_inputs > MAX_TENSORS || (*man)->n_outputs > MAX_TENSORS)
		return cli_errorf("infer", "%s: more than %d inputs or outputs",
				  dir, MAX_TENSORS);
	*n_in = (*man)->n_inputs;
	*n_out = (*man)->n_outputs;
	for (int i = 0; i < *n_in; i++)
		in[i] = (*man)->inputs[i].name;
	for (int i = 0; i < *n_out; i++)
		out[i] = (*man)->outputs[i].name;
	return 0;
}

/* Send the request once and wait for its answer. */
static int round_trip(lm_infer *c, const char *id, uint64_t rid,
		      const lm_tensor *in, int n_in, lm_tensor *out, int *n_out,
		      lm_error *e)
{
	uint64_t got = 0;
	int rc = lm_infer_send(c, id, rid, in, n_in, e);
	if (rc)
		return rc;
	rc = lm_infer_recv(c, &got, out, MAX_TENSORS, n_out, e);
	if (rc)
		return rc;
	if (got != rid) {
		for (int i = 0; i < *n_out; i++)
			lm_tensor_free(&out[i]);
		*n_out = 0;
		return lm_fail(e, -EPROTO, "the answer is for request %llu, "
			       "not %llu", (unsigned long long)got,
			       (unsigned long long)rid);
	}
	return 0;
}

int cmd_infer(int argc, char **argv)
{
	struct infer_args a;
	char state[PATH_MAX], shape[128];
	const char *in_names[MAX_TENSORS], *out_names[MAX_TENSORS];
	lm_tensor in[MAX_TENSORS] = { 0 }, out[MAX_TENSORS] = { 0 };
	int n_in = 0, n_out = 0, got = 0, rc = 1;
	lm_record *r = NULL;
	lm_infer *c = NULL;
	lm_manifest *man = NULL;
	double *times = NULL;
	lm_error e;

	if (parse_infer(argc, argv, &a))
		goto out;
	if (lm_state_dir(a.state_dir, state, sizeof(state), &e) ||
	    lm_record_load(state, a.id, &r, &e)) {
		cli_error("infer", &e);
		goto out;
	}
	if (strcmp(r->status, "running")) {
		cli_errorf("infer", "deployment %s is %s, not running", r->id,
			   r->status);
		goto out;
	}
	if (model_names(r->model, &man, in_names, &n_in, out_names, &n_out))
		goto out;
	for (int i = 0; i < a.n_in; i++) {
		int k = cli_resolve("infer", in_names, n_in, &a.in[i], "input");
		if (k < 0)
			goto out;
		if (in[k].data) {
			cli_errorf("infer", "input '%s' is given twice",
				   in_names[k]);
			goto out;
		}
		if (lm_npy_read(a.in[i].path, &in[k], &e)) {
			cli_error("infer", &e);
			goto out;
		}
	}
	for (int k = 0; k < n_in; k++)
		if (!in[k].data) {
			cli_errorf("infer", "no --input for the model's input "
				   "'%s'", in_names[k]);
			goto out;
		}
	int outs[MAX_TENSORS];
	for (int i = 0; i < a.n_out; i++)
		if ((outs[i] = cli_resolve("infer", out_names, n_out, &a.out[i],
					   "output")) < 0)
			goto out;
	/* the ingress is on the first stage's laminad */
	const lm_rec_laminad *ld = &r->laminads[r->stages[0].laminad];
	if (lm_infer_connect(ld->host, (uint16_t)ld->ingress_port,
			     a.timeout_s * 1000, &c, &e) ||
	    round_trip(c, r->id, 1, in, n_in, out, &got, &e)) {
		lm_fail_prefix(&e, -EIO, "%s", r->id);
		cli_error("infer", &e);
		goto out;
	}
	for (int i = 0; i < a.n_out; i++) {
		if (outs[i] >= got) {
			cli_errorf("infer", "the answer has %d tensors, no "
				   "'%s'", got, out_names[outs[i]]);
			goto out;
		}
		if (lm_npy_write(a.out[i].path, &out[outs[i]], &e)) {
			cli_error("infer", &e);
			goto out;
		}
	}
	if (!a.n_out)
		for (int j = 0; j < got; j++)
			printf("%s: %s %s\n", j < n_out ? out_names[j] : "?",
			       lm_dtype_name(out[j].dtype),
			       lm_shape_str(out[j].rank, out[j].dims, shape,
					    sizeof(shape)));
	if (a.repeat) {
		times = malloc((size_t)a.repeat * sizeof(double));
		if (!times) {
			cli_errorf("infer", "out of memory");
			goto out;
		}
		double t_all = cli_now();
		for (int k = 0; k < a.repeat; k++) {
			lm_tensor more[MAX_TENSORS];
			int n_more = 0;
			double t0 = cli_now();
			if (round_trip(c, r->id, 2 + (uint64_t)k, in, n_in,
				       more, &n_more, &e)) {
				cli_error("infer", &e);
				goto out;
			}
			times[k] = (cli_now() - t0) * 1e3;
			for (int j = 0; j < n_more; j++)
				lm_tensor_free(&more[j]);
		}
		t_all = cli_now() - t_all;
		cli_print_latency(times, a.repeat);
		printf("throughput %.1f requests/s (one at a time, batch "
		       "%d)\n", a.repeat / t_all, r->batch);
	}
	rc = 0;
out:
	for (int i = 0; i < MAX_TENSORS; i++) {
		lm_tensor_free(&in[i]);
		lm_tensor_free(&out[i]);
	}
	cli_named_free(a.in, a.n_in);
	cli_named_free(a.out, a.n_out);
	free(times);
	lm_infer_free(c);
	lm_manifest_free(man);
	lm_record_free(r);
	return rc;
}
