/*
 * bench_solver.c: how long the placement solver takes on large synthetic
 * instances (a benchmark, not a test; figures in docs/performance.md).
 *
 *   200 slices on 8 distinct devices       (exact; target under 1 s)
 *   1000 slices on 64 devices in 4 classes (target under 1 s)
 *
 * Each case is solved for throughput, for latency and for throughput
 * within a latency budget; the median of a few runs is printed with
 * whether the result is exact, and for heuristic results the gap to the
 * lower bound.  Usage: bench_solver [RUNS]
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lamina/optimizer.h"

static uint64_t state = 42;

static double urand(void)
{
	state ^= state << 13;
	state ^= state >> 7;
	state ^= state << 17;
	return (double)(state >> 11) / 9007199254740992.0;
}

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

/*
 * A network of n slices at batch 8 shaped like a CNN: early layers with
 * big activations and small weights, late ones the other way round.
 */
static lm_profile *make_profile(int n, int ndev, const double *speed,
				const int *cls)
{
	lm_profile *p;
	if (lm_profile_create(n, &p))
		return NULL;
	for (int d = 0; d < ndev; d++) {
		char name[16];
		snprintf(name, sizeof(name), "dev%d", d);
		lm_profile_add_device(p, name);
	}
	lm_profile_batch *b = lm_profile_add_batch(p, 8);
	b->input_bytes = 8 * 3 * 224 * 224 * 4;
	b->handoff_us = 2;
	for (int i = 0; i < n; i++) {
		double x = (double)i / n;
		lm_profile_slice *s = &b->slices[i];
		s->weight_bytes = floor((2e4 + 8e6 * x * x) * (0.5 + urand()));
		s->arena_bytes = floor(4e6 * (1 - x) * (0.5 + urand()) + 1e5);
		s->output_bytes = floor(8 * 4 * 802816 * (1 - 0.9 * x) *
					(0.3 + urand()) / 8);
		if (i + 1 < n)
			b->cut_bytes[i] = s->output_bytes *
					  (urand() < 0.1 ? 2 : 1);
		double t = (200 + 4000 * urand()) * 200.0 / n, noise[64];
		/* devices of one class measure the same */
		for (int d = 0; d < ndev; d++)
			noise[d] = cls[d] == d ? 0.8 + 0.4 * urand()
					       : noise[cls[d]];
		for (int d = 0; d < ndev; d++)
			s->time_us[d] = t / speed[d] * noise[d];
	}
	return p;
}

static lm_devices *distinct8(void)
{
	static const int cores[8] = { 4, 8, 8, 16, 4, 12, 6, 8 };
	static const double gib[8] = { 2, 4, 8, 16, 3, 32, 6, 8 };
	lm_devices *d;
	if (lm_devices_create(8, &d))
		return NULL;
	for (int i = 0; i < 8; i++) {
		snprintf(d->dev[i].name, sizeof(d->dev[i].name), "dev%d", i);
		d->dev[i].cores = cores[i];
		d->dev[i].memory_bytes = gib[i] * 1073741824.0;
		for (int j = 0; j < 8; j++) {
			lm_link *l = &d->links[i * 8 + j];
			if (i == j || (i + j == 7 && i < j)) /* one pair missing */
				continue;
			l->present = 1;
			l->latency_us = 5 + 45 * urand();
			l->gbps = 10 + 90 * urand();
		}
	}
	return d;
}

static lm_devices *classes64(double *speed)
{
	static const int cores[4] = { 8, 4, 16, 2 };
	static const double gib[4] = { 16, 8, 64, 4 }, sp[4] = { 1, 0.7, 1.5,
								   0.5 };
	lm_devices *d;
	if (lm_devices_create(64, &d))
		return NULL;
	for (int i = 0; i < 64; i++) {
		int c = i / 16;
		snprintf(d->dev[i].name, sizeof(d->dev[i].name), "dev%d", i);
		d->dev[i].cores = cores[c];
		d->dev[i].memory_bytes = gib[c] * 1073741824.0;
		speed[i] = sp[c];
		for (int j = 0; j < 64; j++) {
			if (i == j)
				continue;
			lm_link *l = &d->links[i * 64 + j];
			l->present = 1;
			l->latency_us = c == j / 16 ? 10 : 30;
			l->gbps = c == j / 16 ? 25 : 10;
		}
	}
	return d;
}

static void bench(const char *title, const lm_devices *d, const lm_profile *p,
		  int runs)
{
	static const char *names[3] = { "throughput", "latency",
					"throughput, budget" };
	lm_plan_cost *c;
	lm_error e;
	if (lm_plan_cost_create(d, p, 8, 0.1, &c, &e)) {
		fprintf(stderr, "bench_solver: %s\n", e.msg);
		exit(1);
	}
	printf("%s\n", title);
	double fastest = 0;
	for (int k = 0; k < 3; k++) {
		lm_solve_options o = { .objective = k == 1 ? LM_PLAN_LATENCY
							   : LM_PLAN_THROUGHPUT,
				       .mode = getenv("BENCH_MODE")
						       ? atoi(getenv("BENCH_MODE"))
						       : LM_SOLVE_AUTO };
		if (k == 2)
			o.latency_budget_us = fastest * 1.2;
		double t[16];
		lm_plan *plan = NULL;
		for (int r = 0; r < runs; r++) {
			lm_plan_free(plan);
			double t0 = now();
			if (lm_solve(c, &o, &plan, &e)) {
				printf("  %-20s %s\n", names[k], e.msg);
				plan = NULL;
				break;
			}
			t[r] = now() - t0;
		}
		if (!plan)
			continue;
		qsort(t, (size_t)runs, sizeof(double), cmp);
		if (k == 1)
			fastest = plan->latency_us;
		int used = 0;
		for (int i = 0; i < d->n; i++)
			used += plan->cores_used[i] > 0;
		double gap = k == 1 ? (plan->latency_us - plan->bound) /
					      plan->bound
				    : (plan->bound - plan->throughput_rps) /
					      plan->throughput_rps;
		printf("  %-20s %8.3f s  %-9s %8.1f rps %9.3f ms  %3d stages "
		       "on %2d devices",
		       names[k], t[runs / 2], plan->exact ? "exact" : "heuristic",
		       plan->throughput_rps, plan->latency_us / 1e3,
		       plan->n_stages, used);
		if (!plan->exact)
			printf("  bound %.6g (gap %.2f%%)", plan->bound,
			       100 * gap);
		printf("\n");
		lm_plan_free(plan);
	}
	lm_plan_cost_free(c);
}

int main(int argc, char **argv)
{
	int runs = argc > 1 ? atoi(argv[1]) : 5;
	if (runs < 1 || runs > 16)
		runs = 5;
	double speed8[8] = { 1, 1.4, 0.8, 2, 0.6, 1.2, 1, 1.7 }, speed64[64] = { 0 };
	int cls8[8], cls64[64];
	for (int i = 0; i < 64; i++) {
		cls64[i] = i / 16 * 16; /* the first device of its class */
		if (i < 8)
			cls8[i] = i;
	}
	lm_devices *d8 = distinct8(), *d64 = classes64(speed64);
	lm_profile *p200 = make_profile(200, 8, speed8, cls8);
	lm_profile *p1000 = make_profile(1000, 64, speed64, cls64);
	if (!d8 || !d64 || !p200 || !p1000)
		return 1;
	printf("median of %d runs\n", runs);
	bench("200 slices, 8 distinct devices", d8, p200, runs);
	bench("1000 slices, 64 devices in 4 classes", d64, p1000, runs);
	lm_profile_free(p200);
	lm_profile_free(p1000);
	lm_devices_free(d8);
	lm_devices_free(d64);
	return 0;
}
