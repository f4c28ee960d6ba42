/*
 * cmd_slice.c: `lamina slice` and `lamina inspect`.
 *
 * Both load and prepare a model the same way and compute the same slicing;
 * slice writes it, inspect prints it.  inspect also reads a slice folder's
 * manifest.json, so the table always comes from the manifest's JSON form.
 */
#include <errno.h>
#include <getopt.h>
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
	if (lm_onnx_load(a->model, m, &e) ||
	    lm_onnx_prepare(*m, a->shapes, a->n_shapes, &defaulted, &e) ||
	    lm_slice_plan(lm_onnx_graph(*m), &a->opt, s, &e)) {
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

static const char *shape_text(json_t *tensors, char *buf, size_t len)
{
	size_t off = 0, i;
	json_t *t;
	buf[0] = '\0';
	json_array_foreach(tensors, i, t) {
		json_t *shape = json_object_get(t, "shape"), *d;
		size_t k;
		off += (size_t)snprintf(buf + off, len - off, "%s",
					i ? ", " : "");
		if (json_array_size(shape) == 0)
			off += (size_t)snprintf(buf + off, len - off,
						"scalar");
		json_array_foreach(shape, k, d) {
			if (off >= len)
				break;
			off += (size_t)snprintf(buf + off, len - off, "%s%lld",
						k ? "x" : "",
						(long long)json_integer_value(d));
		}
		if (off >= len)
			break;
	}
	return buf;
}

static void print_table(json_t *man)
{
	json_t *slices = json_object_get(man, "slices"), *sl;
	size_t i;
	char shape[96], w[32], cut[32], total_w[32];
	printf("%s: %zu slices, %.3f GFLOPs, %s of weights, opset %lld\n",
	       json_string_value(json_object_get(man, "source")),
	       json_array_size(slices),
	       json_real_value(json_object_get(man, "total_flops")) / 1e9,
	       lm_bytes_str((double)json_integer_value(
				 json_object_get(man, "total_param_bytes")),
			 total_w, sizeof(total_w)),
	       (long long)json_integer_value(json_object_get(man, "opset")));
	json_t *arena = json_object_get(man, "arena_bytes");
	json_t *rterr = json_object_get(man, "runtime_error");
	if (arena)
		printf("runtime arena (peak of intermediate tensors in `lamina "
		       "run`): %s\n", lm_bytes_str((double)json_integer_value(
					arena), w, sizeof(w)));
	else if (rterr)
		printf("runtime: %s\n", json_string_value(rterr));
	printf("%5s  %-24s %-28s %-20s %10s %10s %10s %10s\n", "slice",
	       "layer", "first node", "output shape", "MFLOPs", "weights",
	       "cut", "arena");
	json_array_foreach(slices, i, sl) {
		json_t *nodes = json_object_get(sl, "nodes");
		const char *label = json_string_value(
			json_object_get(sl, "label"));
		const char *first = json_string_value(
			json_array_get(nodes, 0));
		json_int_t cb = json_integer_value(
			json_object_get(sl, "cut_bytes"));
		json_t *ab = json_object_get(sl, "arena_bytes");
		char ar[32];
		if (ab)
			lm_bytes_str((double)json_integer_value(ab), ar,
				  sizeof(ar));
		else
			snprintf(ar, sizeof(ar), "%s",
				 json_object_get(sl, "runtime_error") ? "n/a"
								      : "-");
		printf("%5zu  %-24.24s %-28.28s %-20.20s %10.2f %10s %10s "
		       "%10s\n",
		       i, label ? label : "", first ? first : "",
		       shape_text(json_object_get(sl, "outputs"), shape,
				  sizeof(shape)),
		       json_real_value(json_object_get(sl, "flops")) / 1e6,
		       lm_bytes_str((double)json_integer_value(
					 json_object_get(sl, "param_bytes")),
				 w, sizeof(w)),
		       i + 1 == json_array_size(slices)
			       ? "-"
			       : lm_bytes_str((double)cb, cut, sizeof(cut)),
		       ar);
	}
}

/*
 * The runtime's arena for a prepared graph: the peak bytes of intermediate
 * tensors `lamina run` would hold.  Records either "arena_bytes" or, when
 * the runtime cannot execute the graph, "runtime_error" in obj.
 */
static void add_arena(json_t *obj, lm_graph *g)
{
	lm_session *s;
	lm_error e;
	if (lm_session_create(g, NULL, &s, &e) == 0) {
		json_object_set_new(obj, "arena_bytes",
				    json_integer((json_int_t)
						 lm_session_arena_bytes(s)));
		lm_session_free(s);
	} else {
		json_object_set_new(obj, "runtime_error", json_string(e.msg));
	}
}

/* Arena of each slice of a folder, from its ONNX file. */
static void add_slice_arenas(json_t *man, const char *dir)
{
	json_t *sl;
	size_t i;
	json_array_foreach(json_object_get(man, "slices"), i, sl) {
		char path[4096];
		lm_onnx_model *m;
		lm_error e;
		const char *file = json_string_value(json_object_get(sl,
								     "file"));
		if (!file)
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, file);
		if (lm_onnx_load(path, &m, &e) ||
		    lm_onnx_prepare(m, NULL, 0, NULL, &e)) {
			json_object_set_new(sl, "runtime_error",
					    json_string(e.msg));
			lm_onnx_free(m);
			continue;
		}
		add_arena(sl, lm_onnx_graph(m));
		lm_onnx_free(m);
	}
}

static json_t *read_manifest(const char *dir)
{
	char path[4096];
	json_error_t je;
	snprintf(path, sizeof(path), "%s/manifest.json", dir);
	json_t *man = json_load_file(path, 0, &je);
	if (!man) {
		cli_errorf("inspect", "%s: %s", path, je.text);
		return NULL;
	}
	if (!json_is_array(json_object_get(man, "slices"))) {
		cli_errorf("inspect", "%s: not a lamina manifest (no "
			   "\"slices\" list)", path);
		json_decref(man);
		return NULL;
	}
	return man;
}

int cmd_inspect(int argc, char **argv)
{
	struct slice_args a;
	struct stat st;
	json_t *man;
	lm_onnx_model *m = NULL;
	lm_slicing *s = NULL;
	if (parse_args("inspect", argc, argv, &a))
		return 1;
	if (stat(a.model, &st) == 0 && S_ISDIR(st.st_mode)) {
		man = read_manifest(a.model);
		if (man)
			add_slice_arenas(man, a.model);
	} else {
		if (load_and_plan("inspect", &a, &m, &s))
			return 1;
		const char *base = strrchr(a.model, '/');
		man = lm_manifest_build(lm_onnx_graph(m), s,
					base ? base + 1 : a.model);
		if (man)
			add_arena(man, lm_onnx_graph(m));
	}
	if (!man) {
		lm_slicing_free(s);
		lm_onnx_free(m);
		return 1;
	}
	if (a.json) {
		json_dumpf(man, stdout, JSON_INDENT(2));
		putchar('\n');
	} else {
		print_table(man);
	}
	json_decref(man);
	lm_slicing_free(s);
	lm_onnx_free(m);
	return 0;
}
