/*
 * cmd_infer.c: `lamina infer`, one inference, two ways:
 *   - through a running deployment (`lamina infer ID`): the inputs (NumPy
 *     files) go to the ingress of its first stage's laminad over lamina's
 *     binary TCP protocol (lamina/client.h); the model's input and output
 *     names come from the slice folder's manifest;
 *   - to any Open Inference Protocol server (`lamina infer --url URL
 *     NAME`: laminad's HTTP front, Triton, KServe) over HTTP, with the
 *     binary tensor data extension or JSON tensors (oip.h, oip_http.h);
 *     names come from the model's metadata when an argument leaves one
 *     out.
 * Either way arguments are matched to names as `lamina run` does and the
 * answer's tensors are written as NumPy files.
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
#include "oip.h"
#include "oip_http.h"
#include "record.h"

#define MAX_TENSORS 64

struct infer_args {
	const char *id, *state_dir, *url;
	cli_named_file in[MAX_TENSORS], out[MAX_TENSORS];
	oip_param params[MAX_TENSORS];
	int n_in, n_out, n_params, repeat, timeout_s, json;
};

static const char infer_help[] =
	"usage: lamina infer ID --input [NAME=]FILE.npy ... "
	"[--output [NAME=]FILE.npy ...]\n"
	"                    [--repeat R] [--timeout S] [--state-dir DIR]\n"
	"       lamina infer --url URL MODEL --input [NAME=]FILE.npy ... "
	"[--output ...]\n"
	"                    [--json] [--parameter KEY=VALUE ...] "
	"[--repeat R] [--timeout S]\n"
	"\n"
	"Send one request and save its answer.  NAME may be left out when the\n"
	"model has one input (output).  Without --output the outputs' types\n"
	"and shapes are printed.\n"
	"\n"
	"With ID, the request goes to deployment ID (see `lamina deploy`), to\n"
	"its first laminad's ingress (the binary protocol of lm_client);\n"
	"inputs are the model's, with 1 to the plan's batch of samples along\n"
	"their first axis (the ingress gathers requests into batches).\n"
	"\n"
	"With --url, it goes to MODEL on an Open Inference Protocol server\n"
	"(KServe v2 / Triton HTTP: laminad's HTTP front, where MODEL is the\n"
	"deployment's name, Triton, KServe): POST URL/v2/models/MODEL/infer,\n"
	"tensors in Triton's binary tensor data extension (or JSON with\n"
	"--json), datatypes from the .npy files (bool, (u)int8..64, float16,\n"
	"float32, float64).  Names left out are looked up in the model's\n"
	"metadata (GET URL/v2/models/MODEL).\n"
	"\n"
	"options:\n"
	"  -i, --input [NAME=]FILE.npy   a model input (NumPy .npy)\n"
	"  -o, --output [NAME=]FILE.npy  where to save a model output (with\n"
	"                                --url: only these are asked for)\n"
	"  -r, --repeat R                send it R more times, one at a time, "
	"and\n"
	"                                print 'latency_ms median=X p90=Y "
	"min=Z'\n"
	"  -t, --timeout S               seconds to wait for an answer "
	"(default 60)\n"
	"  -s, --state-dir DIR           deployment records (see 'lamina "
	"deploy --help')\n"
	"  -u, --url URL                 an OIP server, e.g. "
	"http://127.0.0.1:8000\n"
	"  -j, --json                    with --url: tensors as JSON arrays\n"
	"  -p, --parameter KEY=VALUE     with --url: a request parameter "
	"(VALUE a\n"
	"                                number, true, false, else a string),"
	" e.g.\n"
	"                                timeout=500000 (microseconds, as "
	"Triton)\n"
	"  -h, --help                    this text\n";

static int parse_infer(int argc, char **argv, struct infer_args *a)
{
	static const struct option opts[] = {
		{ "input", required_argument, 0, 'i' },
		{ "output", required_argument, 0, 'o' },
		{ "repeat", required_argument, 0, 'r' },
		{ "timeout", required_argument, 0, 't' },
		{ "state-dir", required_argument, 0, 's' },
		{ "url", required_argument, 0, 'u' },
		{ "json", no_argument, 0, 'j' },
		{ "parameter", required_argument, 0, 'p' },
		{ "help", no_argument, 0, 'h' },
		{ 0, 0, 0, 0 },
	};
	int c;
	memset(a, 0, sizeof(*a));
	a->timeout_s = 60;
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":i:o:r:t:s:u:jp:h", opts,
				NULL)) != -1) {
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
		case 'u': a->url = optarg; break;
		case 'j': a->json = 1; break;
		case 'p': {
			char *eq = strchr(optarg, '=');
			if (!eq || eq == optarg)
				return cli_errorf("infer", "--parameter takes "
						  "KEY=VALUE, not '%s'", optarg);
			if (a->n_params == MAX_TENSORS)
				return cli_errorf("infer", "too many "
						  "--parameter options");
			*eq = 0; /* argv is ours to cut */
			a->params[a->n_params++] = (oip_param){ optarg,
								eq + 1 };
			break;
		}
		case 'h':
			fputs(infer_help, stdout);
			exit(0);
		default:
			return cli_bad_option("infer", c, argv);
		}
	}
	if (optind != argc - 1)
		return cli_errorf("infer", "expected one %s (see 'lamina infer "
				  "--help')", a->url ? "model name after --url"
						     : "deployment ID");
	a->id = argv[optind];
	if (!a->n_in)
		return cli_errorf("infer", "no --input given");
	if (a->url && a->state_dir)
		return cli_errorf("infer", "--state-dir is for a deployment "
				  "ID, not with --url");
	if (!a->url && (a->json || a->n_params))
		return cli_errorf("infer", "--json and --parameter go with "
				  "--url");
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

/* ---- --url: an Open Inference Protocol server ---- */

/* Everything one `lamina infer --url` holds; oip_free releases it. */
struct oip_run {
	oip_conn *c;
	oip_model model;
	char *infer_path;
	const char *in_names[MAX_TENSORS], *out_names[MAX_TENSORS];
	lm_tensor in[MAX_TENSORS];
	int n_in, have_meta;
};

static void oip_free(struct oip_run *o)
{
	for (int i = 0; i < o->n_in; i++)
		lm_tensor_free(&o->in[i]);
	oip_model_free(&o->model);
	free(o->infer_path);
	oip_close(o->c);
}

/* The error of an answer whose status is not 200: the server's text. */
static int http_status(const oip_conn *c, const char *path,
		       const oip_reply *r, lm_error *e)
{
	char text[320];
	if (r->status == 200)
		return 0;
	return lm_fail(e, -EIO, "%s%s: HTTP %ld: %s", oip_url(c), path,
		       r->status, oip_error_text(r->body, r->len, text,
						 sizeof(text)));
}

/* The model's input and output names, from its metadata. */
static int oip_metadata(struct oip_run *o, const char *model, lm_error *e)
{
	oip_reply r;
	char *path = oip_model_path(model, "");
	if (!path)
		return lm_fail(e, -ENOMEM, "out of memory");
	int rc = oip_get(o->c, path, &r, e);
	if (!rc && !(rc = http_status(o->c, path, &r, e)) &&
	    (rc = oip_model_read(r.body, r.len, &o->model, e)))
		lm_fail_prefix(e, rc, "%s%s", oip_url(o->c), path);
	if (!rc && (o->model.n_in > MAX_TENSORS ||
		    o->model.n_out > MAX_TENSORS))
		rc = lm_fail(e, -EPROTO, "%s%s: more than %d inputs or outputs",
			     oip_url(o->c), path, MAX_TENSORS);
	o->have_meta = !rc;
	oip_reply_free(&r);
	free(path);
	return rc;
}

/* Names of the --input (what "input") or --output arguments: as given,
 * or resolved against the model's names when metadata was read. */
static int oip_names(struct oip_run *o, const cli_named_file *f, int n,
		     const char *what, const char **names)
{
	int meta = o->have_meta;
	char **model = !strcmp(what, "input") ? o->model.in : o->model.out;
	int n_model = !strcmp(what, "input") ? o->model.n_in : o->model.n_out;
	for (int i = 0; i < n; i++) {
		int k = 0;
		if (meta && (k = cli_resolve("infer",
					     (const char *const *)model,
					     n_model, &f[i], what)) < 0)
			return -1;
		names[i] = meta ? model[k] : f[i].name;
		for (int j = 0; j < i; j++)
			if (!strcmp(names[j], names[i]))
				return cli_errorf("infer", "%s '%s' is given "
						  "twice", what, names[i]);
	}
	if (!meta || strcmp(what, "input"))
		return 0;
	for (int k = 0; k < n_model; k++) {
		int given = 0;
		for (int i = 0; i < n && !given; i++)
			given = !strcmp(names[i], model[k]);
		if (!given)
			return cli_errorf("infer", "no --input for the model's "
					  "input '%s'", model[k]);
	}
	return 0;
}

/* One request and its answer: the request is written with id, sent,
 * and the answer read into *ans. */
static int oip_round_trip(struct oip_run *o, const struct infer_args *a,
			  unsigned long id, oip_answer *ans, lm_error *e)
{
	char idbuf[24];
	char *body = NULL;
	size_t len, json_len;
	oip_reply r = { 0 };
	snprintf(idbuf, sizeof(idbuf), "%lu", id);
	oip_request q = {
		.id = idbuf, .params = a->params, .n_params = a->n_params,
		.in_names = o->in_names, .in = o->in, .n_in = o->n_in,
		.out_names = o->out_names, .n_out = a->n_out,
		.binary = !a->json,
	};
	int rc = oip_request_write(&q, &body, &len, &json_len, e);
	if (!rc)
		rc = oip_post(o->c, o->infer_path, body, len, json_len, &r, e);
	if (!rc)
		rc = http_status(o->c, o->infer_path, &r, e);
	if (!rc && (rc = oip_answer_read(r.body, r.len, r.json_len, idbuf,
					 o->out_names, a->n_out, ans, e)))
		lm_fail_prefix(e, rc, "%s%s", oip_url(o->c), o->infer_path);
	oip_reply_free(&r);
	free(body);
	return rc;
}

static int save_outputs(const struct infer_args *a, struct oip_run *o,
			const oip_answer *ans)
{
	char shape[128];
	lm_error e;
	for (int i = 0; i < a->n_out; i++) {
		int k = 0;
		while (strcmp(ans->names[k], o->out_names[i]))
			k++; /* oip_answer_read checked it is there */
		if (lm_npy_write(a->out[i].path, &ans->t[k], &e))
			return cli_error("infer", &e);
	}
	if (!a->n_out)
		for (int k = 0; k < ans->n; k++) {
			char nm[80];
			snprintf(nm, sizeof(nm), "%s", ans->names[k]);
			for (char *p = nm; *p; p++)
				if ((unsigned char)*p < 0x20)
					*p = '?';
			printf("%s: %s %s\n", nm, lm_dtype_name(ans->t[k].dtype),
			       lm_shape_str(ans->t[k].rank, ans->t[k].dims,
					    shape, sizeof(shape)));
		}
	return 0;
}

static int infer_oip(const struct infer_args *a)
{
	struct oip_run o = { 0 };
	oip_answer ans = { 0 };
	double *times = NULL;
	int rc = 1, need_meta = 0;
	lm_error e;

	for (int i = 0; i < a->n_in; i++)
		need_meta |= !a->in[i].name;
	for (int i = 0; i < a->n_out; i++)
		need_meta |= !a->out[i].name;
	if (!(o.infer_path = oip_model_path(a->id, "/infer"))) {
		cli_errorf("infer", "out of memory");
		goto out;
	}
	if (oip_connect(a->url, a->timeout_s, &o.c, &e) ||
	    (need_meta && oip_metadata(&o, a->id, &e))) {
		cli_error("infer", &e);
		goto out;
	}
	if (oip_names(&o, a->in, a->n_in, "input", o.in_names) ||
	    oip_names(&o, a->out, a->n_out, "output", o.out_names))
		goto out;
	for (; o.n_in < a->n_in; o.n_in++)
		if (lm_npy_read(a->in[o.n_in].path, &o.in[o.n_in], &e)) {
			cli_error("infer", &e);
			goto out;
		}
	if (oip_round_trip(&o, a, 1, &ans, &e)) {
		cli_error("infer", &e);
		goto out;
	}
	if (save_outputs(a, &o, &ans))
		goto out;
	if (a->repeat) {
		if (!(times = malloc((size_t)a->repeat * sizeof(double)))) {
			cli_errorf("infer", "out of memory");
			goto out;
		}
		double t_all = cli_now();
		for (int k = 0; k < a->repeat; k++) {
			oip_answer more = { 0 };
			double t0 = cli_now();
			int r = oip_round_trip(&o, a, 2 + (unsigned long)k,
					       &more, &e);
			times[k] = (cli_now() - t0) * 1e3;
			oip_answer_free(&more);
			if (r) {
				cli_error("infer", &e);
				goto out;
			}
		}
		t_all = cli_now() - t_all;
		cli_print_latency(times, a->repeat);
		int64_t rows = o.n_in && o.in[0].rank ? o.in[0].dims[0] : 1;
		printf("throughput %.1f inferences/s (%.1f requests of %lld "
		       "one at a time, %s)\n", (double)rows * a->repeat / t_all,
		       a->repeat / t_all, (long long)rows,
		       a->json ? "JSON" : "binary");
	}
	rc = 0;
out:
	free(times);
	oip_answer_free(&ans);
	oip_free(&o);
	return rc;
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
	if (a.url) {
		rc = infer_oip(&a);
		goto out;
	}
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
		int64_t rows = n_in && in[0].rank ? in[0].dims[0] : r->batch;
		printf("throughput %.1f inferences/s (%.1f requests of %lld "
		       "one at a time; the plan's batch is %d)\n",
		       (double)rows * a.repeat / t_all, a.repeat / t_all,
		       (long long)rows, r->batch);
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
