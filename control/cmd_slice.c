/*
 * cmd_slice.c: `lamina slice` and `lamina inspect`.
 *
 * Both load and prepare a model the same way and compute the same slicing;
 * slice writes it, inspect prints it.  inspect also reads a slice folder's
 * manifest.json, so the table always comes from the manifest
 * (lamina/manifest.h), whichever was given.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "lamina/runtime.h"
#include "lamina/slicer.h"

#define MAX_SHAPES 32

struct slice_args {
	const char *model;
	const char *out;
	lm_slice_options opt;
	lm_input_shape shapes[MAX_SHAPES];
	int n_shapes;
	int force, json, quiet;
};

static const char slice_help[] =
	"usage: lamina slice MODEL.onnx -o DIR [options]\n"
	"\n"
	"Cut an ONNX model into slices, each a standalone ONNX model, and write\n"
	"DIR/manifest.json describing them.  A slice is one layer (a compute node\n"
	"and the elementwise nodes after it) unless told otherwise.\n"
	"\n"
	"options:\n"
	"  -o, --output DIR          folder to create (must not exist)\n"
	"  -f, --force               replace DIR if it holds an earlier slicing\n"
	"  -g, --granularity G       'layer' (default) or 'node'\n"
	"  -n, --max-slices N        group neighbouring layers into at most N\n"
	"                            slices of balanced FLOPs\n"
	"  -s, --input-shape NAME=D0,D1,...\n"
	"                            fix an input's shape (symbolic dims\n"
	"                            default to 1); may be repeated\n"
	"  -q, --quiet               print nothing on success\n"
	"  -h, --help                this text\n";

static const char inspect_help[] =
	"usage: lamina inspect MODEL.onnx|DIR [options]\n"
	"\n"
	"Print the layers of a model (as `lamina slice` would cut it) or the\n"
	"slices of a folder written by `lamina slice`: output shapes, FLOPs,\n"
	"weight bytes and the bytes that cross the cut after each one.\n"
	"\n"
	"options:\n"
	"  -j, --json                print JSON (the manifest format)\n"
	"  -g, --granularity G       'layer' (default) or 'node'\n"
	"  -n, --max-slices N        group layers into at most N slices\n"
	"  -s, --input-shape NAME=D0,D1,...   fix an input's shape\n"
	"  -h, --help                this text\n";

static int parse_args(const char *cmd, int argc, char **argv,
		      struct slice_args *a)
{
	static const struct option opts[] = {
		{ "output", required_argument, 0, 'o' },
		{ "force", no_argument, 0, 'f' },
		{ "granularity", required_argument, 0, 'g' },
		{ "max-slices", required_argument, 0, 'n' },
		{ "input-shape", required_argument, 0, 's' },
		{ "json", no_argument, 0, 'j' },
		{ "quiet", no_argument, 0, 'q' },
		{ "help", no_argument, 0, 'h' },
		{ 0, 0, 0, 0 },
	};
	int is_slice = !strcmp(cmd, "slice"), c;
	lm_error e;
	memset(a, 0, sizeof(*a));
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":o:fg:n:s:jqh", opts, NULL)) !=
	       -1) {
		switch (c) {
		case 'o': a->out = optarg; break;
		case 'f': a->force = 1; break;
		case 'j': a->json = 1; break;
		case 'q': a->quiet = 1; break;
		case 'g':
			if (!strcmp(optarg, "layer"))
				a->opt.granularity = LM_GRAN_LAYER;
			else if (!strcmp(optarg, "node"))
				a->opt.granularity = LM_GRAN_NODE;
			else
				return cli_errorf(cmd, "--granularity must be "
						  "'layer' or 'node', not "
						  "'%s'", optarg);
			break;
		case 'n': {
			char *end;
			long n = strtol(optarg, &end, 10);
			if (*end || n < 1 || n > 1000000)
				return cli_errorf(cmd, "--max-slices needs a "
						  "positive number, not '%s'",
						  optarg);
			a->opt.max_slices = (int)n;
			break;
		}
		case 's':
			if (a->n_shapes == MAX_SHAPES)
				return cli_errorf(cmd, "too many "
						  "--input-shape options");
			if (lm_input_shape_parse(optarg,
						 &a->shapes[a->n_shapes++], &e))
				return cli_error(cmd, &e);
			break;
		case 'h':
			fputs(is_slice ? slice_help : inspect_help, stdout);
			exit(0);
		default:
			return cli_bad_option(cmd, c, argv);
		}
	}
	if (optind != argc - 1)
		return cli_errorf(cmd, "expected one %s (see 'lamina %s "
				  "--help')", is_slice ? "MODEL.onnx" :
				  "MODEL.onnx or DIR", cmd);
	a->model = argv[optind];
	if (is_slice && !a->out)
		return cli_errorf(cmd, "missing -o DIR (the folder to write)");
	return 0;
}

/* Load, prepare and slice a model as the arguments say. */
static int load_and_plan(const char *cmd, const struct slice_args *a,
			 lm_onnx_model **m, lm_slicing **s)
{
	lm_error e;
	int defaulted = 0;
	*m = NULL;
	*s = NULL;
	int rc = 0;
	uint8_t *fused = NULL;
	lm_slice_options opt = a->opt;
	/* layers keep whole what the runtime fuses (cut.c) */
	if (!(rc = lm_onnx_load(a->model, m, &e)) &&
	    !(rc = lm_onnx_prepare(*m, a->shapes, a->n_shapes, &defaulted,
				   &e)) &&
	    opt.granularity == LM_GRAN_LAYER)
		rc = lm_onnx_fused_values(*m, a->shapes, a->n_shapes, &fused,
					  &e);
	opt.fused = fused;
	if (!rc && (rc = lm_slice_plan(lm_onnx_graph(*m), &opt, s, &e)))
		lm_fail_prefix(&e, rc, "%s", a->model);
	free(fused);
	if (rc) {
		lm_onnx_free(*m);
		*m = NULL;
		return cli_error(cmd, &e);
	}
	if (defaulted && !a->quiet)
		fprintf(stderr, "lamina %s: %d symbolic input dim%s taken as "
			"1; fix them with --input-shape\n", cmd, defaulted,
			defaulted == 1 ? "" : "s");
	return 0;
}

static void show_progress(int done, int total)
{
	fprintf(stderr, "\rwriting slice %d/%d", done, total);
	if (done == total)
		fputc('\n', stderr);
}

int cmd_slice(int argc, char **argv)
{
	struct slice_args a;
	lm_onnx_model *m;
	lm_slicing *s;
	lm_error e;
	char b1[32];
	if (parse_args("slice", argc, argv, &a))
		return 1;
	/* Refuse early: nothing is loaded or written when DIR is taken. */
	if (!a.force && access(a.out, F_OK) == 0)
		return cli_errorf("slice", "%s: already exists (use --force "
				  "to replace it)", a.out);
	if (load_and_plan("slice", &a, &m, &s))
		return 1;
	int rc = lm_slice_write(m, s, a.out, a.force,
				!a.quiet && isatty(2) ? show_progress : NULL,
				&e);
	if (rc) {
		rc = cli_error("slice", &e);
	} else if (!a.quiet) {
		double flops = 0, params = 0;
		for (int i = 0; i < s->n; i++) {
			flops += s->slices[i].flops;
			params += (double)s->slices[i].param_bytes;
		}
		printf("%s: %d slices, %.3f GFLOPs, %s of weights -> %s/"
		       "manifest.json\n", a.model, s->n, flops / 1e9,
		       lm_bytes_str(params, b1, sizeof(b1)), a.out);
	}
	lm_slicing_free(s);
	lm_onnx_free(m);
	return rc;
}

/* "1x3x224x224, 1x10" for a list of tensors. */
static const char *shape_text(const lm_mtensor *t, int n, char *buf,
			      size_t len)
{
	size_t off = 0;
	char one[96];
	buf[0] = '\0';
	for (int i = 0; i < n && off < len; i++)
		off += (size_t)snprintf(buf + off, len - off, "%s%s",
					i ? ", " : "",
					lm_shape_str(t[i].rank, t[i].dims, one,
						     sizeof(one)));
	return buf;
}

/* The model's inputs or outputs, one per line: name, dtype, shape. */
static void print_tensors(const char *what, const lm_mtensor *t, int n)
{
	char shape[96];
	for (int i = 0; i < n; i++)
		printf("%s %-28s %-8s %s\n", what, t[i].name,
		       lm_dtype_name(t[i].dtype),
		       lm_shape_str(t[i].rank, t[i].dims, shape,
				    sizeof(shape)));
}

static void print_table(const lm_manifest *man, char **errors)
{
	char shape[96], w[32], cut[32], total_w[32];
	printf("%s: %d slices, %.3f GFLOPs, %s of weights, opset %d\n",
	       man->source, man->n_slices, man->total_flops / 1e9,
	       lm_bytes_str((double)man->total_param_bytes, total_w,
			    sizeof(total_w)),
	       man->opset);
	print_tensors("input ", man->inputs, man->n_inputs);
	print_tensors("output", man->outputs, man->n_outputs);
	if (man->arena_bytes >= 0)
		printf("runtime arena (peak of intermediate tensors in `lamina "
		       "run`): %s\n", lm_bytes_str((double)man->arena_bytes, w,
						   sizeof(w)));
	else if (errors && errors[man->n_slices])
		printf("runtime: %s\n", errors[man->n_slices]);
	printf("%5s  %-24s %-28s %-20s %10s %10s %10s %10s\n", "slice",
	       "layer", "first node", "output shape", "MFLOPs", "weights",
	       "cut", "arena");
	for (int i = 0; i < man->n_slices; i++) {
		const lm_mslice *sl = &man->slices[i];
		char ar[32];
		if (sl->arena_bytes >= 0)
			lm_bytes_str((double)sl->arena_bytes, ar, sizeof(ar));
		else
			snprintf(ar, sizeof(ar), "%s",
				 errors && errors[i] ? "n/a" : "-");
		printf("%5d  %-24.24s %-28.28s %-20.20s %10.2f %10s %10s "
		       "%10s\n",
		       i, sl->label, sl->n_nodes ? sl->nodes[0] : "",
		       shape_text(sl->outputs, sl->n_outputs, shape,
				  sizeof(shape)),
		       sl->flops / 1e6,
		       lm_bytes_str((double)sl->param_bytes, w, sizeof(w)),
		       i + 1 == man->n_slices
			       ? "-"
			       : lm_bytes_str((double)sl->cut_bytes, cut,
					      sizeof(cut)),
		       ar);
	}
	for (int i = 0; errors && i < man->n_slices; i++)
		if (errors[i])
			printf("slice %d: %s\n", i, errors[i]);
}

/*
 * The runtime's arena for a prepared graph: the peak bytes of intermediate
 * tensors `lamina run` would hold; -1 with *error set (malloc'd) when the
 * runtime cannot execute the graph.
 */
static int64_t arena_of(lm_graph *g, char **error)
{
	lm_session *s;
	lm_error e;
	if (lm_session_create(g, NULL, &s, &e) == 0) {
		int64_t n = (int64_t)lm_session_arena_bytes(s);
		lm_session_free(s);
		return n;
	}
	*error = strdup(e.msg);
	return -1;
}

/* Arena of each slice of a folder, from its ONNX file. */
static void add_slice_arenas(lm_manifest *man, char **errors)
{
	for (int i = 0; i < man->n_slices; i++) {
		char path[PATH_MAX];
		lm_onnx_model *m = NULL;
		lm_error e;
		if (lm_manifest_slice_path(man, i, path, sizeof(path), &e) ||
		    lm_onnx_load(path, &m, &e) ||
		    lm_onnx_prepare_batch(m, lm_manifest_slice_batch(man,
								   man->batch), &e))
			errors[i] = strdup(e.msg);
		else
			man->slices[i].arena_bytes =
				arena_of(lm_onnx_graph(m), &errors[i]);
		lm_onnx_free(m);
	}
}

int cmd_inspect(int argc, char **argv)
{
	struct slice_args a;
	struct stat st;
	lm_manifest *man = NULL;
	lm_onnx_model *m = NULL;
	lm_slicing *s = NULL;
	lm_error e;
	char **errors = NULL;
	int rc = 1;
	if (parse_args("inspect", argc, argv, &a))
		return 1;
	if (stat(a.model, &st) == 0 && S_ISDIR(st.st_mode)) {
		if (lm_manifest_load(a.model, &man, &e)) {
			cli_error("inspect", &e);
			goto out;
		}
		if (!(errors = calloc((size_t)man->n_slices + 1,
				      sizeof(char *))))
			goto nomem;
		add_slice_arenas(man, errors);
	} else {
		if (load_and_plan("inspect", &a, &m, &s))
			goto out;
		const char *base = strrchr(a.model, '/');
		if (lm_manifest_build(m, s,
				      base ? base + 1 : a.model, &man, &e)) {
			cli_error("inspect", &e);
			goto out;
		}
		if (!(errors = calloc((size_t)man->n_slices + 1,
				      sizeof(char *))))
			goto nomem;
		man->arena_bytes = arena_of(lm_onnx_graph(m),
					    &errors[man->n_slices]);
	}
	if (a.json) {
		char *text = lm_manifest_dumps(man);
		if (!text)
			goto nomem;
		puts(text);
		free(text);
	} else {
		print_table(man, errors);
	}
	rc = 0;
	goto out;
nomem:
	cli_errorf("inspect", "out of memory");
out:
	for (int i = 0; errors && i <= man->n_slices; i++)
		free(errors[i]);
	free(errors);
	lm_manifest_free(man);
	lm_slicing_free(s);
	lm_onnx_free(m);
	return rc;
}
