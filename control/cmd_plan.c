/*
 * cmd_plan.c: `lamina plan`, where the slices of a model run.
 *
 * Reads the slice folder's manifest and profile and the devices, asks the
 * solver (optimizer/) for the best placement and writes plan.json.  With
 * --explain it prints the stages, what each costs, and what keeps the plan
 * from being better: the bottleneck and the limit behind it.
 */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "discover.h"
#include "lamina/manifest.h"
#include "lamina/optimizer.h"

#define MAX_SPEEDS 64

struct plan_args {
	const char *dir, *out, *profile, *devices;
	lm_solve_options opt;
	int have_objective, batch, explain, quiet;
	const char *stages; /* --stages: evaluate this placement */
	double headroom;
	lm_model_speed speeds[MAX_SPEEDS];
	int n_speeds;
};

static const char plan_help[] =
	"usage: lamina plan DIR --objective latency|throughput -o plan.json "
	"[options]\n"
	"\n"
	"Choose which device runs which slices of DIR (a folder written by\n"
	"`lamina slice`) on how many cores: the lowest latency, or the highest\n"
	"throughput, within every device's cores and memory.  Reads\n"
	"DIR/manifest.json and DIR/profile.json (written by `lamina bench`).\n"
	"A stage is a run of slices on one device, replicated on its cores;\n"
	"each device holds one run of the pipeline, split into stages.\n"
	"\n"
	"options:\n"
	"  -O, --objective latency|throughput\n"
	"                            latency: one batch end to end, lowest;\n"
	"                            throughput: requests per second, highest\n"
	"  -o, --output FILE         the plan to write\n"
	"  -p, --profile FILE        the profile (default DIR/profile.json)\n"
	"  -d, --devices FILE        devices.json (default: the devices that\n"
	"                            answer on the link, as `lamina devices`\n"
	"                            lists them, those the profile has times\n"
	"                            for; when none answers, this host as one\n"
	"                            device with all its cores but one)\n"
	"  -b, --batch B             plan for batch size B (default: the\n"
	"                            smallest the profile has)\n"
	"  -l, --latency-budget MS   the highest throughput whose latency stays\n"
	"                            within MS milliseconds\n"
	"  -k, --max-stages K        at most K stages\n"
	"  -r, --headroom PCT        memory left free on every device (default\n"
	"                            10)\n"
	"  -s, --model-speed NAME=F[@FROM]\n"
	"                            give device NAME the times of FROM (default:\n"
	"                            the first measured device) divided by F:\n"
	"                            F = 2 is twice as fast; may be repeated\n"
	"      --solver auto|exact|heuristic\n"
	"                            exact search, or the heuristic with its\n"
	"                            bound (default: exact when it takes about\n"
	"                            a second or less)\n"
	"      --stages SPEC         no search: this placement, costed and\n"
	"                            checked as a plan is; SPEC is a comma list\n"
	"                            of FIRST-LAST[@DEVICE][xCORES] slice\n"
	"                            ranges (e.g. 0-9,10-20 or 0-9@a,10-20@bx2;\n"
	"                            default device the first, 1 core)\n"
	"  -e, --explain             print the stages, their time, memory and\n"
	"                            transfers, and what limits the plan\n"
	"  -q, --quiet               print nothing on success\n"
	"  -h, --help                this text\n";

static int number(const char *opt, const char *v, double lo, double hi,
		  double *out)
{
	char *end;
	double x = strtod(v, &end);
	if (end == v || *end || !isfinite(x) || x < lo || x > hi)
		return cli_errorf("plan", "%s needs a number from %g to %g, "
				  "not '%s'", opt, lo, hi, v);
	*out = x;
	return 0;
}

/* A whole number from 1 to hi. */
static int whole(const char *opt, const char *v, double hi, int *out)
{
	double x = 0;
	if (number(opt, v, 1, hi, &x))
		return 1;
	if (x != floor(x))
		return cli_errorf("plan", "%s needs a whole number, not '%s'",
				  opt, v);
	*out = (int)x;
	return 0;
}

static int parse_plan(int argc, char **argv, struct plan_args *a)
{
	static const struct option opts[] = {
		{ "objective", required_argument, 0, 'O' },
		{ "output", required_argument, 0, 'o' },
		{ "profile", required_argument, 0, 'p' },
		{ "devices", required_argument, 0, 'd' },
		{ "batch", required_argument, 0, 'b' },
		{ "latency-budget", required_argument, 0, 'l' },
		{ "max-stages", required_argument, 0, 'k' },
		{ "headroom", required_argument, 0, 'r' },
		{ "model-speed", required_argument, 0, 's' },
		{ "solver", required_argument, 0, 'S' },
		{ "stages", required_argument, 0, 'T' },
		{ "explain", no_argument, 0, 'e' },
		{ "quiet", no_argument, 0, 'q' },
		{ "help", no_argument, 0, 'h' },
		{ 0, 0, 0, 0 },
	};
	int c;
	double v = 0;
	lm_error e;
	memset(a, 0, sizeof(*a));
	a->headroom = 0.10;
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":O:o:p:d:b:l:k:r:s:eqh", opts,
				NULL)) != -1) {
		switch (c) {
		case 'O':
			if (!strcmp(optarg, "latency"))
				a->opt.objective = LM_PLAN_LATENCY;
			else if (!strcmp(optarg, "throughput"))
				a->opt.objective = LM_PLAN_THROUGHPUT;
			else
				return cli_errorf("plan", "--objective must be "
						  "'latency' or 'throughput', "
						  "not '%s'", optarg);
			a->have_objective = 1;
			break;
		case 'o': a->out = optarg; break;
		case 'p': a->profile = optarg; break;
		case 'd': a->devices = optarg; break;
		case 'b':
			if (whole("--batch", optarg, 1000000, &a->batch))
				return 1;
			break;
		case 'l':
			if (number("--latency-budget", optarg, 1e-6, 1e9, &v))
				return 1;
			a->opt.latency_budget_us = v * 1e3;
			break;
		case 'k':
			if (whole("--max-stages", optarg, 32000,
				  &a->opt.max_stages))
				return 1;
			break;
		case 'r':
			if (number("--headroom", optarg, 0, 99, &v))
				return 1;
			a->headroom = v / 100;
			break;
		case 's':
			if (a->n_speeds == MAX_SPEEDS)
				return cli_errorf("plan", "too many "
						  "--model-speed options");
			if (lm_profile_parse_speed(optarg,
						   &a->speeds[a->n_speeds++],
						   &e))
				return cli_error("plan", &e);
			break;
		case 'S':
			if (!strcmp(optarg, "auto"))
				a->opt.mode = LM_SOLVE_AUTO;
			else if (!strcmp(optarg, "exact"))
				a->opt.mode = LM_SOLVE_EXACT;
			else if (!strcmp(optarg, "heuristic"))
				a->opt.mode = LM_SOLVE_HEURISTIC;
			else
				return cli_errorf("plan", "--solver must be "
						  "auto, exact or heuristic, "
						  "not '%s'", optarg);
			break;
		case 'T': a->stages = optarg; break;
		case 'e': a->explain = 1; break;
		case 'q': a->quiet = 1; break;
		case 'h':
			fputs(plan_help, stdout);
			exit(0);
		default:
			return cli_bad_option("plan", c, argv);
		}
	}
	if (optind != argc - 1)
		return cli_errorf("plan", "expected one DIR, a folder written "
				  "by 'lamina slice' (see 'lamina plan "
				  "--help')");
	a->dir = argv[optind];
	if (!a->have_objective && !a->stages)
		return cli_errorf("plan", "missing --objective latency or "
				  "--objective throughput");
	if (!a->have_objective)
		a->opt.objective = LM_PLAN_THROUGHPUT;
	if (!a->out)
		return cli_errorf("plan", "missing -o FILE (the plan to "
				  "write)");
	return 0;
}

/*
 * The manifest's slice count and labels: the profile must describe the
 * same slicing, and errors read better with "slice 7 (Gemm)".
 */
static int check_manifest(const char *dir, lm_profile *p)
{
	lm_manifest *man = NULL;
	lm_error e;
	int rc = 0;
	if (lm_manifest_load(dir, &man, &e))
		return cli_error("plan", &e);
	if (man->n_slices != p->n_slices) {
		rc = cli_errorf("plan", "%s lists %d slices but the profile "
				"has %d: it was measured for another slicing "
				"(run 'lamina bench' again)", dir,
				man->n_slices, p->n_slices);
	} else {
		for (int b = 0; b < p->n_batches; b++)
			for (int i = 0; i < p->n_slices; i++) {
				lm_profile_slice *s = &p->batches[b].slices[i];
				if (!s->label[0])
					snprintf(s->label, sizeof(s->label),
						 "%s", man->slices[i].label);
			}
	}
	lm_manifest_free(man);
	return rc;
}

/*
 * The discovered devices (*devs) the profile has times for; the others
 * are said and left out.  When it has times for none of them but for
 * this host ("local", benched before any laminad answered), this host.
 */
static int profiled_fleet(lm_devices **devs, const lm_profile *prof,
			  const char *path, int quiet)
{
	lm_devices *d = *devs, *k = NULL;
	lm_error e;
	int keep[4096], n = 0;
	for (int i = 0; i < d->n && n < 4096; i++) {
		if (lm_profile_find_device(prof, d->dev[i].name) >= 0)
			keep[n++] = i;
		else if (!quiet)
			fprintf(stderr, "lamina plan: device '%s' (%s) has no "
				"times in %s: left out (bench while it "
				"answers, or --model-speed '%s=F')\n",
				d->dev[i].name, d->dev[i].address, path,
				d->dev[i].name);
	}
	if (!n) {
		if (lm_profile_find_device(prof, "local") < 0)
			return cli_errorf("plan", "%s has times for none of the "
					  "devices that answer (see 'lamina "
					  "devices'); run 'lamina bench' "
					  "again", path);
		if (lm_devices_local(&k, &e))
			return cli_error("plan", &e);
		if (!quiet)
			fprintf(stderr, "lamina plan: planning for this host "
				"alone ('local')\n");
	} else {
		if (lm_devices_create(n, &k))
			return cli_errorf("plan", "out of memory");
		for (int i = 0; i < n; i++) {
			k->dev[i] = d->dev[keep[i]];
			for (int j = 0; j < n; j++)
				k->links[i * n + j] =
					d->links[keep[i] * d->n + keep[j]];
		}
		if (!quiet)
			for (int i = 0; i < n; i++)
				fprintf(stderr, "lamina plan: device '%s' at %s "
					"(discovered): %d free core%s, %.1f "
					"GiB free\n", k->dev[i].name,
					k->dev[i].address, k->dev[i].cores,
					k->dev[i].cores == 1 ? "" : "s",
					k->dev[i].memory_bytes /
						(1024.0 * 1024 * 1024));
	}
	lm_devices_free(d);
	*devs = k;
	return 0;
}

static const char *us_text(double us, char *buf, size_t len)
{
	if (us >= 1e6)
		snprintf(buf, len, "%.3f s", us / 1e6);
	else if (us >= 1e3)
		snprintf(buf, len, "%.3f ms", us / 1e3);
	else
		snprintf(buf, len, "%.1f us", us);
	return buf;
}

static const char *dev_name(const lm_plan *p, int d)
{
	return p->devices->dev[d].name;
}

/* Why the throughput cannot be higher: what holds the bottleneck. */
static void explain_period(const lm_plan *p, const lm_plan_cost *c)
{
	const lm_plan_stage *s = &p->stages[p->bottleneck];
	const lm_device *d = &p->devices->dev[s->device];
	char b1[32], b2[32], b3[32];
	if (p->bottleneck_xfer) {
		const lm_plan_stage *t = &p->stages[p->bottleneck + 1];
		if (s->xfer == LM_XFER_RING) {
			printf("bottleneck: the ring handoff after stage %d "
			       "(%s per batch)\n", p->bottleneck,
			       us_text(s->xfer_occupancy_us, b1, sizeof(b1)));
			return;
		}
		const lm_link *l = lm_devices_link(lm_plan_cost_devices(c),
						   s->device, t->device);
		printf("bottleneck: the link '%s' -> '%s' after slice %d: %s "
		       "per batch at %g Gbit/s keeps it busy %s per batch\n",
		       d->name, dev_name(p, t->device), s->last,
		       lm_bytes_str(s->out_bytes, b1, sizeof(b1)), l->gbps,
		       us_text(s->xfer_occupancy_us, b2, sizeof(b2)));
		printf("  a faster plan would cut the model elsewhere or keep "
		       "slices %d and %d on one device, and none that does "
		       "fits\n", s->last, s->last + 1);
		return;
	}
	printf("bottleneck: stage %d (slices %d-%d on '%s', %d core%s): %s "
	       "per batch / %d = %s per batch\n", p->bottleneck, s->first,
	       s->last, d->name, s->cores, s->cores == 1 ? "" : "s",
	       us_text(s->time_us, b1, sizeof(b1)), s->cores,
	       us_text(s->period_us, b2, sizeof(b2)));
	double replica = lm_plan_cost_stage_memory(c, s->first, s->last, 2) -
			 lm_plan_cost_stage_memory(c, s->first, s->last, 1);
	double free_b = p->memory_limit[s->device] -
			p->memory_used[s->device];
	if (p->cores_used[s->device] >= d->cores)
		printf("  '%s' has no free core for another replica (%d of %d "
		       "in use)\n", d->name, p->cores_used[s->device],
		       d->cores);
	else if (replica > free_b)
		printf("  another replica needs %s and '%s' has %s free\n",
		       lm_bytes_str(replica, b1, sizeof(b1)), d->name,
		       lm_bytes_str(free_b, b3, sizeof(b3)));
	if (s->first == s->last)
		printf("  slice %d is not split further: it takes %s alone\n",
		       s->first, us_text(s->time_us, b1, sizeof(b1)));
	if (p->latency_budget_us > 0)
		printf("  the latency budget is %s; this plan takes %s\n",
		       us_text(p->latency_budget_us, b1, sizeof(b1)),
		       us_text(p->latency_us, b2, sizeof(b2)));
}

/* Why the latency cannot be lower: where it goes, and what is not on
 * its fastest device. */
static void explain_latency(const lm_plan *p, const lm_plan_cost *c)
{
	const lm_devices *d = lm_plan_cost_devices(c);
	double compute = 0, links = 0, rings = 0, ideal = 0;
	char b1[32], b2[32], b3[32], b4[32];
	int big = 0;
	for (int i = 0; i < p->n_stages; i++) {
		const lm_plan_stage *s = &p->stages[i];
		compute += s->time_us;
		if (s->xfer == LM_XFER_LINK)
			links += s->xfer_us;
		else if (s->xfer == LM_XFER_RING)
			rings += s->xfer_us;
		if (s->time_us > p->stages[big].time_us)
			big = i;
	}
	for (int k = 0; k < p->n_slices; k++) {
		double best = INFINITY;
		for (int x = 0; x < d->n; x++)
			best = fmin(best, lm_plan_cost_time(c, x, k, k));
		ideal += best;
	}
	const lm_plan_stage *s = &p->stages[big];
	printf("bottleneck: stage %d (slices %d-%d on '%s') takes %s of the "
	       "%s\n", big, s->first, s->last, dev_name(p, s->device),
	       us_text(s->time_us, b1, sizeof(b1)),
	       us_text(p->latency_us, b2, sizeof(b2)));
	printf("  latency = compute %s + links %s + ring handoffs %s; every "
	       "slice on its fastest device with no transfers would take "
	       "%s\n", us_text(compute, b1, sizeof(b1)),
	       us_text(links, b2, sizeof(b2)), us_text(rings, b3, sizeof(b3)),
	       us_text(ideal, b4, sizeof(b4)));
	for (int i = 0; i < p->n_stages; i++) {
		const lm_plan_stage *st = &p->stages[i];
		int fast = st->device;
		for (int x = 0; x < d->n; x++)
			if (lm_plan_cost_time(c, x, st->first, st->last) <
			    lm_plan_cost_time(c, fast, st->first, st->last))
				fast = x;
		if (fast == st->device)
			continue;
		double need = lm_plan_cost_stage_memory(c, st->first, st->last,
							1);
		double free_b = p->memory_limit[fast] - p->memory_used[fast];
		printf("  slices %d-%d run on '%s', not on the faster '%s': ",
		       st->first, st->last, dev_name(p, st->device),
		       d->dev[fast].name);
		if (need > free_b)
			printf("they need %s and '%s' has %s free\n",
			       lm_bytes_str(need, b1, sizeof(b1)),
			       d->dev[fast].name,
			       lm_bytes_str(free_b, b2, sizeof(b2)));
		else
			printf("the transfers there and back, or the device's "
			       "place in the pipeline, would cost more\n");
		break;
	}
}

/* Over several devices the ingress keeps at most p->keep requests in
 * flight: a plan whose latency spans more periods than that runs slower
 * than predicted (optimizer.h). */
static void warn_keep(const lm_plan *p)
{
	char b1[32];
	if (p->keep && p->latency_us > p->keep * p->period_us)
		printf("note: one batch takes %s end to end, %.1f periods, and "
		       "the ingress keeps at most %d requests in flight across "
		       "devices: expect at most %.1f inferences/s, not %.1f\n",
		       us_text(p->latency_us, b1, sizeof(b1)),
		       p->latency_us / p->period_us, p->keep,
		       p->keep * p->batch * 1e6 / p->latency_us,
		       p->throughput_rps);
}

static void explain(const lm_plan *p, const lm_plan_cost *c,
		    const char *dir)
{
	char b1[32], b2[32], b3[32], b4[32];
	printf("plan for %s at batch %d, %s objective (%s, %.3f s)\n\n", dir,
	       p->batch, p->objective == LM_PLAN_LATENCY ? "latency"
							 : "throughput",
	       p->exact ? "exact" : "heuristic", p->solve_seconds);
	printf("%5s  %-16s %-11s %5s %11s %11s %11s  %s\n", "stage",
	       "device", "slices", "cores", "time/batch", "period",
	       "memory", "then");
	for (int i = 0; i < p->n_stages; i++) {
		const lm_plan_stage *s = &p->stages[i];
		char sl[32], then[160];
		snprintf(sl, sizeof(sl), "%d-%d", s->first, s->last);
		if (s->xfer == LM_XFER_NONE)
			snprintf(then, sizeof(then), "-");
		else if (s->xfer == LM_XFER_RING)
			snprintf(then, sizeof(then), "ring, %s",
				 us_text(s->xfer_us, b1, sizeof(b1)));
		else
			snprintf(then, sizeof(then), "link to '%s', %s in %s "
				 "(busy %s)",
				 dev_name(p, p->stages[i + 1].device),
				 lm_bytes_str(s->out_bytes, b1, sizeof(b1)),
				 us_text(s->xfer_us, b2, sizeof(b2)),
				 us_text(s->xfer_occupancy_us, b3, sizeof(b3)));
		printf("%5d  %-16.16s %-11s %5d %11s %11s %11s  %s\n", i,
		       dev_name(p, s->device), sl, s->cores,
		       us_text(s->time_us, b1, sizeof(b1)),
		       us_text(s->period_us, b2, sizeof(b2)),
		       lm_bytes_str(s->memory_bytes, b4, sizeof(b4)), then);
	}
	printf("\ndevices:\n");
	for (int i = 0; i < p->devices->n; i++) {
		if (!p->cores_used[i])
			continue;
		printf("  %-16s %d of %d cores, %s of %s (memory less %.0f%% "
		       "headroom)\n", dev_name(p, i), p->cores_used[i],
		       p->devices->dev[i].cores,
		       lm_bytes_str(p->memory_used[i], b1, sizeof(b1)),
		       lm_bytes_str(p->memory_limit[i], b2, sizeof(b2)),
		       p->headroom * 100);
	}
	printf("\npredicted: latency %s, throughput %.1f inferences/s (a batch "
	       "of %d every %s)\n", us_text(p->latency_us, b1, sizeof(b1)),
	       p->throughput_rps, p->batch,
	       us_text(p->period_us, b2, sizeof(b2)));
	if (p->objective == LM_PLAN_THROUGHPUT)
		explain_period(p, c);
	else
		explain_latency(p, c);
	warn_keep(p);
	if (p->bound == 0 && !p->exact)
		printf("%s: not searched\n", p->note);
	else if (p->exact)
		printf("exact: no placement within the devices' cores, memory "
		       "and links does better%s\n",
		       p->max_stages ? " with this many stages" : "");
	else if (p->objective == LM_PLAN_LATENCY)
		printf("heuristic (%s); no plan can be faster than %s\n",
		       p->note, us_text(p->bound, b1, sizeof(b1)));
	else
		printf("heuristic (%s); no plan can pass %.1f inferences/s "
		       "(%.1f%% above this one)\n", p->note, p->bound,
		       100 * (p->bound / p->throughput_rps - 1));
}

/* The placement --stages gives, costed as a plan (lm_plan_evaluate). */
static int given_plan(const char *spec, const lm_devices *devs,
		      const lm_plan_cost *cost, lm_plan **out)
{
	char *copy = strdup(spec), *save = NULL;
	lm_plan *p = NULL;
	lm_error e;
	int n = 1, rc = 0;
	if (!copy)
		return cli_errorf("plan", "out of memory");
	for (const char *c = spec; *c; c++)
		n += *c == ',';
	if (lm_plan_create(devs, n, &p)) {
		free(copy);
		return cli_errorf("plan", "out of memory");
	}
	int i = 0;
	for (char *t = strtok_r(copy, ",", &save); t && !rc;
	     t = strtok_r(NULL, ",", &save), i++) {
		lm_plan_stage *s = &p->stages[i];
		char dev[LM_NAME_MAX] = "", *x;
		int first, last, cores = 1, used = 0;
		if ((x = strrchr(t, 'x')) && strchr(t, '-') < x) {
			char *end;
			long r = strtol(x + 1, &end, 10);
			if (*end || r < 1 || r > 4096) {
				rc = cli_errorf("plan", "--stages: '%s': cores "
						"after 'x' must be 1 to 4096",
						t);
				break;
			}
			cores = (int)r;
			*x = '\0';
		}
		char *at = strchr(t, '@');
		if (at) {
			snprintf(dev, sizeof(dev), "%s", at + 1);
			*at = '\0';
		}
		if (sscanf(t, "%d-%d%n", &first, &last, &used) != 2 ||
		    t[used]) {
			rc = cli_errorf("plan", "--stages: '%s' is not "
					"FIRST-LAST[@DEVICE][xCORES]", t);
			break;
		}
		s->device = dev[0] ? lm_devices_find(devs, dev) : 0;
		if (s->device < 0) {
			rc = cli_errorf("plan", "--stages: no device '%s'",
					dev);
			break;
		}
		s->first = first;
		s->last = last;
		s->cores = cores;
	}
	free(copy);
	p->n_stages = i;
	if (!rc && lm_plan_evaluate(cost, p, &e))
		rc = cli_errorf("plan", "--stages %s: %s", spec, e.msg);
	if (rc) {
		lm_plan_free(p);
		return rc;
	}
	snprintf(p->note, sizeof(p->note), "placement given by --stages");
	*out = p;
	return 0;
}

int cmd_plan(int argc, char **argv)
{
	struct plan_args a;
	lm_devices *devs = NULL;
	lm_profile *prof = NULL;
	lm_plan_cost *cost = NULL;
	lm_plan *plan = NULL;
	lm_devcache cache = { 0 };
	lm_error e;
	char path[4096];
	int rc = 1, fleet = 0;
	if (parse_plan(argc, argv, &a))
		return 1;
	if (!a.profile) {
		snprintf(path, sizeof(path), "%s/profile.json", a.dir);
		a.profile = path;
	}
	int r = lm_profile_load(a.profile, &prof, &e);
	if (r) {
		if (r == -ENOENT && a.profile == path)
			cli_errorf("plan", "%s: no profile (run 'lamina bench "
				   "%s' first, or give --profile)", path,
				   a.dir);
		else
			cli_error("plan", &e);
		goto out;
	}
	if (check_manifest(a.dir, prof))
		goto out;
	for (int i = 0; i < a.n_speeds; i++)
		if (lm_profile_derive(prof, &a.speeds[i], &e)) {
			cli_error("plan", &e);
			goto out;
		}
	if (a.devices ? lm_devices_load(a.devices, &devs, &e)
		      : lm_fleet_default("plan", &devs, &cache, &fleet, &e)) {
		cli_error("plan", &e);
		goto out;
	}
	if (fleet && profiled_fleet(&devs, prof, a.profile, a.quiet))
		goto out;
	if (!a.batch) {
		a.batch = prof->batches[0].batch;
		for (int i = 1; i < prof->n_batches; i++)
			if (prof->batches[i].batch < a.batch)
				a.batch = prof->batches[i].batch;
	}
	if (lm_plan_cost_create(devs, prof, a.batch, a.headroom, &cost, &e)) {
		cli_errorf("plan", "%s: %s", a.profile, e.msg);
		goto out;
	}
	if (a.stages) {
		if (given_plan(a.stages, devs, cost, &plan))
			goto out;
		plan->objective = a.opt.objective;
	} else if (lm_solve(cost, &a.opt, &plan, &e)) {
		cli_error("plan", &e);
		goto out;
	}
	/* `lamina deploy` finds the slices through the plan */
	if (!realpath(a.dir, plan->model)) {
		cli_errorf("plan", "%s: %s", a.dir, strerror(errno));
		goto out;
	}
	if (lm_plan_save(plan, a.out, &e)) {
		cli_error("plan", &e);
		goto out;
	}
	if (a.explain) {
		explain(plan, cost, a.dir);
	} else if (!a.quiet) {
		int used = 0;
		char b1[32], b2[32];
		for (int i = 0; i < plan->devices->n; i++)
			used += plan->cores_used[i] > 0;
		printf("%s: %d stage%s on %d device%s, latency %s, %.1f "
		       "inferences/s at batch %d (%s)\n", a.out, plan->n_stages,
		       plan->n_stages == 1 ? "" : "s", used,
		       used == 1 ? "" : "s",
		       us_text(plan->latency_us, b1, sizeof(b1)),
		       plan->throughput_rps, plan->batch,
		       a.stages ? "given by --stages"
		       : plan->exact ? "exact" : "heuristic");
		warn_keep(plan);
		if (!plan->exact && !a.stages)
			printf("  heuristic: %s; bound %s\n", plan->note,
			       plan->objective == LM_PLAN_LATENCY
				       ? us_text(plan->bound, b2, sizeof(b2))
				       : (snprintf(b2, sizeof(b2), "%.1f "
						   "inferences/s", plan->bound),
					  b2));
	}
	rc = 0;
out:
	lm_plan_free(plan);
	lm_plan_cost_free(cost);
	lm_devices_free(devs);
	lm_devcache_free(&cache);
	lm_profile_free(prof);
	return rc;
}
