/*
 * test_solver.c: the optimizer (optimizer/): devices.json, profile.json and
 * plan.json readers and writers, the cost model, and the solver, which is
 * checked against a brute-force enumeration of the same model on thousands
 * of random instances: the optimum (and the tie-break after it) must match
 * to 1e-9 relative, every plan must fit its devices' memory and cores, and
 * infeasible instances must be reported as such.
 */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "lamina/optimizer.h"

#define INF HUGE_VAL
#define REL 1e-9

static char tmpdir[256];

static const char *tmp_path(const char *name)
{
	static char buf[4][512];
	static int i;
	i = (i + 1) % 4;
	snprintf(buf[i], sizeof(buf[i]), "%s/%s", tmpdir, name);
	return buf[i];
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	if (f) {
		fputs(text, f);
		fclose(f);
	}
}

static int close_to(double a, double b)
{
	if (a == b)
		return 1;
	return fabs(a - b) <= REL * fmax(fabs(a), fabs(b));
}

/* ---- random instances ---- */

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t rnd64(void)
{
	uint64_t x = rng_state;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	rng_state = x;
	return x * 0x2545f4914f6cdd1dull;
}

static int rnd(int n)
{
	return (int)(rnd64() % (uint64_t)n);
}

static double urand(void)
{
	return (double)(rnd64() >> 11) / 9007199254740992.0;
}

struct inst {
	lm_devices *d;
	lm_profile *p;
	lm_plan_cost *c;
	double headroom;
};

static void inst_free(struct inst *in)
{
	lm_plan_cost_free(in->c);
	lm_profile_free(in->p);
	lm_devices_free(in->d);
	memset(in, 0, sizeof(*in));
}

static void set_link(lm_devices *d, int a, int b, int present, double lat,
		     double gbps)
{
	lm_link *l = &d->links[a * d->n + b];
	l->present = present;
	l->latency_us = present ? lat : 0;
	l->gbps = present ? gbps : 0;
}

/*
 * Up to 12 slices on up to 4 devices: mixed speeds (related or not),
 * memories from roomy to too small, links missing or one-way, handoffs
 * from free to dear, and sometimes identical devices (a class).
 */
static int make_instance(struct inst *in, int max_n, int max_dev)
{
	int n = 1 + rnd(max_n), N = max_dev;
	memset(in, 0, sizeof(*in));
	if (lm_devices_create(N, &in->d) || lm_profile_create(n, &in->p))
		return -1;
	lm_profile_batch *b = lm_profile_add_batch(in->p, 1 + rnd(8));
	if (!b)
		return -1;
	double need = 0;
	b->input_bytes = 1000.0 * rnd(200);
	b->handoff_us = rnd(5) == 0 ? 0 : rnd(5) == 0 ? 20 + 200 * urand()
						       : 2 * urand();
	double base[12];
	for (int i = 0; i < n; i++) {
		lm_profile_slice *s = &b->slices[i];
		s->weight_bytes = 1000.0 * rnd(1000);
		s->arena_bytes = 1000.0 * rnd(300);
		s->output_bytes = 1000.0 * rnd(200);
		if (i + 1 < n)
			b->cut_bytes[i] = s->output_bytes + 1000.0 * rnd(50);
		base[i] = 1 + 100 * urand();
		need += s->weight_bytes + s->arena_bytes +
			3 * s->output_bytes;
	}
	int unrelated = rnd(3) == 0;
	for (int k = 0; k < N; k++) {
		lm_device *dev = &in->d->dev[k];
		snprintf(dev->name, sizeof(dev->name), "d%d", k);
		dev->cores = 1 + rnd(N <= 2 ? 4 : 3);
		double f = 0.2 + 2 * urand();
		dev->memory_bytes = floor(need * f) + floor(3e6 * urand());
		int col = lm_profile_add_device(in->p, dev->name);
		double speed = 0.25 + 2 * urand();
		for (int i = 0; i < n; i++)
			b->slices[i].time_us[col] =
				base[i] / speed *
				(unrelated ? 0.5 + urand() : 1.0);
	}
	for (int a = 0; a < N; a++)
		for (int c = a + 1; c < N; c++) {
			int present = rnd(5) != 0;
			double lat = 50 * urand(), gbps = 0.05 + 10 * urand();
			set_link(in->d, a, c, present, lat, gbps);
			if (rnd(4) == 0) { /* one way, or its own figures */
				int back = rnd(2);
				double lat2 = 50 * urand();
				double gbps2 = 0.05 + 10 * urand();
				set_link(in->d, c, a, back, lat2, gbps2);
			} else
				set_link(in->d, c, a, present, lat, gbps);
		}
	/* identical devices: copy device 0 into 1 (and 2) */
	if (N >= 2 && rnd(3) == 0) {
		int copies = N >= 3 && rnd(2) ? 2 : 1;
		for (int k = 1; k <= copies; k++) {
			lm_device *dev = &in->d->dev[k];
			dev->cores = in->d->dev[0].cores;
			dev->memory_bytes = in->d->dev[0].memory_bytes;
			for (int i = 0; i < n; i++)
				b->slices[i].time_us[k] =
					b->slices[i].time_us[0];
			for (int x = 0; x < N; x++) {
				if (x == 0 || x == k)
					continue;
				in->d->links[k * N + x] = in->d->links[0 * N + x];
				in->d->links[x * N + k] = in->d->links[x * N + 0];
			}
			in->d->links[k * N + 0] = in->d->links[0 * N + k];
		}
		if (copies == 2)
			in->d->links[2 * N + 1] = in->d->links[1 * N + 2] =
				in->d->links[0 * N + 1];
	}
	in->headroom = rnd(2) ? 0.1 : 0.3 * urand();
	lm_error e;
	return lm_plan_cost_create(in->d, in->p, b->batch, in->headroom,
				   &in->c, &e);
}

/* ---- brute force: every plan of the model ---- */

struct pt {
	double lat, per;
};

struct front {
	struct pt *v;
	int n, cap;
};

struct bf {
	const lm_plan_cost *c;
	int n, N;
	double h;
	int cores_used[4], taken[4];
	double mem_used[4];
	struct front f[13]; /* by number of stages */
	long plans;
};

static void front_add(struct front *f, double lat, double per)
{
	for (int i = 0; i < f->n; i++)
		if (f->v[i].lat <= lat && f->v[i].per <= per)
			return;
	int j = 0;
	for (int i = 0; i < f->n; i++)
		if (!(lat <= f->v[i].lat && per <= f->v[i].per))
			f->v[j++] = f->v[i];
	f->n = j;
	if (f->n == f->cap) {
		f->cap = f->cap ? 2 * f->cap : 16;
		f->v = realloc(f->v, (size_t)f->cap * sizeof(*f->v));
	}
	f->v[f->n++] = (struct pt){ lat, per };
}

static void bf_stages(struct bf *b, int pos, int dev, double lat, double per,
		      int ns);

/* Runs from pos on dev, having arrived with latency lat and period per. */
static void bf_stages(struct bf *b, int pos, int dev, double lat, double per,
		      int ns)
{
	const lm_devices *d = lm_plan_cost_devices(b->c);
	double limit = lm_plan_cost_memory_limit(b->c, dev);
	for (int e = pos; e < b->n; e++) {
		double t = lm_plan_cost_time(b->c, dev, pos, e);
		for (int r = 1; b->cores_used[dev] + r <= d->dev[dev].cores;
		     r++) {
			double m = lm_plan_cost_stage_memory(b->c, pos, e, r);
			if (b->mem_used[dev] + m > limit)
				break;
			double p2 = fmax(per, t / r), l2 = lat + t;
			b->cores_used[dev] += r;
			b->mem_used[dev] += m;
			if (e + 1 == b->n) {
				if (b->mem_used[dev] +
					    lm_plan_cost_run_end(b->c, e) <=
				    limit) {
					front_add(&b->f[ns + 1], l2, p2);
					b->plans++;
				}
			} else {
				/* another stage on this device */
				bf_stages(b, e + 1, dev, l2 + b->h,
					  fmax(p2, b->h), ns + 1);
				/* or on to another device */
				if (b->mem_used[dev] +
					    lm_plan_cost_run_end(b->c, e) <=
				    limit)
					for (int x = 0; x < b->N; x++) {
						double xl, xo;
						if (b->taken[x] ||
						    lm_plan_cost_transfer(
							    b->c, dev, x, e,
							    &xl, &xo))
							continue;
						b->taken[x] = 1;
						bf_stages(b, e + 1, x, l2 + xl,
							  fmax(p2, xo), ns + 1);
						b->taken[x] = 0;
					}
			}
			b->cores_used[dev] -= r;
			b->mem_used[dev] -= m;
		}
	}
}

static void brute_force(struct bf *b, const lm_plan_cost *c)
{
	memset(b, 0, sizeof(*b));
	b->c = c;
	b->n = lm_plan_cost_slices(c);
	b->N = lm_plan_cost_devices(c)->n;
	b->h = lm_plan_cost_batch(c)->handoff_us;
	for (int x = 0; x < b->N; x++) {
		b->taken[x] = 1;
		bf_stages(b, 0, x, 0, 0, 0);
		b->taken[x] = 0;
	}
}

static void bf_free(struct bf *b)
{
	for (int i = 0; i < 13; i++)
		free(b->f[i].v);
}

/* The brute force's answer: primary and secondary values, or ok = 0. */
struct answer {
	int ok;
	double lat, per;
};

static struct answer bf_query(const struct bf *b, lm_objective obj, int K,
			      double budget)
{
	struct answer a = { 0, INF, INF };
	int top = K > 0 && K < b->n ? K : b->n;
	if (obj == LM_PLAN_LATENCY) {
		for (int s = 1; s <= top; s++)
			for (int i = 0; i < b->f[s].n; i++)
				if (b->f[s].v[i].lat < a.lat)
					a.lat = b->f[s].v[i].lat;
		if (!(a.lat < INF) || !(a.lat <= budget))
			return (struct answer){ 0, INF, INF };
		for (int s = 1; s <= top; s++)
			for (int i = 0; i < b->f[s].n; i++)
				if (b->f[s].v[i].lat <= a.lat * (1 + REL) &&
				    b->f[s].v[i].per < a.per)
					a.per = b->f[s].v[i].per;
	} else {
		for (int s = 1; s <= top; s++)
			for (int i = 0; i < b->f[s].n; i++)
				if (b->f[s].v[i].lat <= budget &&
				    b->f[s].v[i].per < a.per)
					a.per = b->f[s].v[i].per;
		if (!(a.per < INF))
			return a;
		for (int s = 1; s <= top; s++)
			for (int i = 0; i < b->f[s].n; i++)
				if (b->f[s].v[i].lat <= budget &&
				    b->f[s].v[i].per <= a.per &&
				    b->f[s].v[i].lat < a.lat)
					a.lat = b->f[s].v[i].lat;
	}
	a.ok = 1;
	return a;
}

/* Memory and cores of a plan, recomputed from the profile's numbers. */
static int plan_fits(const struct inst *in, const lm_plan *p, int K)
{
	const lm_profile_batch *b = &in->p->batches[0];
	int n = in->p->n_slices;
	double mem[4] = { 0 };
	int cores[4] = { 0 };
	if (K > 0 && p->n_stages > K)
		return 0;
	for (int i = 0; i < p->n_stages; i++) {
		const lm_plan_stage *s = &p->stages[i];
		double rep = 0;
		for (int k = s->first; k <= s->last; k++)
			rep += b->slices[k].weight_bytes +
			       b->slices[k].arena_bytes;
		for (int k = s->first; k <= s->last + 1; k++)
			rep += k == 0 ? b->input_bytes
			       : k == n ? b->slices[n - 1].output_bytes
					: b->cut_bytes[k - 1];
		double in_b = s->first ? b->cut_bytes[s->first - 1]
				       : b->input_bytes;
		double out_b = s->last + 1 < n ? b->cut_bytes[s->last]
					       : b->slices[n - 1].output_bytes;
		mem[s->device] += s->cores * rep + LM_PLAN_RING_DEPTH * in_b;
		if (i + 1 == p->n_stages || p->stages[i + 1].device != s->device)
			mem[s->device] += LM_PLAN_RING_DEPTH * out_b;
		cores[s->device] += s->cores;
	}
	for (int k = 0; k < in->d->n; k++)
		if (mem[k] > floor(in->d->dev[k].memory_bytes *
				   (1 - in->headroom)) ||
		    cores[k] > in->d->dev[k].cores)
			return 0;
	return 1;
}

static int stats_feasible, stats_infeasible, stats_queries, stats_heur;
static int stats_shared, stats_replicated, stats_multi, stats_mixed;

/* One query: the solver against the brute force. */
static int check_query(const struct inst *in, const struct bf *b,
		       lm_objective obj, int K, double budget,
		       lm_solve_mode mode)
{
	lm_solve_options o = { .objective = obj, .max_stages = K,
			       .latency_budget_us = budget < INF ? budget : 0,
			       .mode = mode };
	struct answer a = bf_query(b, obj, K, budget);
	lm_plan *p = NULL;
	lm_error e = { "" };
	int rc = lm_solve(in->c, &o, &p, &e);
	stats_queries++;
	if (!a.ok) {
		stats_infeasible++;
		if (rc != -ENOSPC || p || !e.msg[0]) {
			printf("  expected infeasible, got rc %d (%s)\n", rc,
			       e.msg);
			lm_plan_free(p);
			return 0;
		}
		return 1;
	}
	stats_feasible++;
	if (rc || !p) {
		printf("  expected a plan (lat %.17g per %.17g), got rc %d: "
		       "%s\n", a.lat, a.per, rc, e.msg);
		return 0;
	}
	int ok = plan_fits(in, p, K), rep = 0, shared = 0, devs = 1;
	for (int i = 0; i < p->n_stages; i++) {
		rep |= p->stages[i].cores > 1;
		if (i && p->stages[i].device == p->stages[i - 1].device)
			shared = 1;
		else if (i)
			devs++;
	}
	stats_replicated += rep;
	stats_shared += shared;
	stats_multi += devs > 1;
	stats_mixed += rep && shared;
	if (!ok)
		printf("  plan does not fit memory/cores/stages\n");
	if (ok && budget < INF && !(p->latency_us <= budget * (1 + 1e-12))) {
		printf("  plan over budget: %.17g > %.17g\n", p->latency_us,
		       budget);
		ok = 0;
	}
	if (ok && mode == LM_SOLVE_HEURISTIC) {
		/* a valid plan no better than the optimum, a bound no worse */
		stats_heur++;
		if (obj == LM_PLAN_LATENCY)
			ok = p->latency_us >= a.lat * (1 - REL) &&
			     p->bound <= a.lat * (1 + REL);
		else
			ok = p->period_us >= a.per * (1 - REL) &&
			     p->bound >= p->batch * 1e6 / a.per * (1 - REL);
		if (!ok)
			printf("  heuristic: lat %.17g per %.17g bound %.17g "
			       "vs optimum lat %.17g per %.17g\n",
			       p->latency_us, p->period_us, p->bound, a.lat,
			       a.per);
	} else if (ok && (!close_to(p->latency_us, a.lat) ||
			  !close_to(p->period_us, a.per))) {
		printf("  solver lat %.17g per %.17g, brute force lat %.17g "
		       "per %.17g\n", p->latency_us, p->period_us, a.lat,
		       a.per);
		ok = 0;
	}
	lm_plan_free(p);
	return ok;
}

static void describe(const struct inst *in, lm_objective obj, int K,
		     double budget)
{
	const lm_profile_batch *b = &in->p->batches[0];
	printf("  instance: %d slices, %d devices, batch %d, handoff %g, "
	       "headroom %g; objective %s K %d budget %g\n",
	       in->p->n_slices, in->d->n, b->batch, b->handoff_us,
	       in->headroom, obj == LM_PLAN_LATENCY ? "latency" : "throughput",
	       K, budget);
	for (int k = 0; k < in->d->n; k++) {
		printf("  %s cores %d mem %.0f times", in->d->dev[k].name,
		       in->d->dev[k].cores, in->d->dev[k].memory_bytes);
		for (int i = 0; i < in->p->n_slices; i++)
			printf(" %.4g", b->slices[i].time_us[k]);
		printf(" links");
		for (int x = 0; x < in->d->n; x++) {
			const lm_link *l = lm_devices_link(in->d, k, x);
			if (x != k && l->present)
				printf(" ->%d(%.3g,%.3g)", x, l->latency_us,
				       l->gbps);
		}
		printf("\n");
	}
}

/* ---- the tests ---- */

TEST(solver_matches_brute_force)
{
	int instances = 0, failures = 0, none = 0;
	rng_state = 0x1234567887654321ull;
	for (int it = 0; it < 4000 && failures < 3; it++) {
		struct inst in;
		/* keep the enumeration small: many devices, fewer slices */
		int max_dev = 1 + rnd(4) % 4;
		int max_n = max_dev >= 4 ? 9 : max_dev == 3 ? 11 : 12;
		if (make_instance(&in, max_n, max_dev)) {
			inst_free(&in);
			CHECK(!"instance");
		}
		struct bf b;
		brute_force(&b, in.c);
		instances++;
		struct answer al = bf_query(&b, LM_PLAN_LATENCY, 0, INF);
		none += !al.ok;
		int n = in.p->n_slices;
		/* drawn one by one: an initializer's order is unspecified */
		double u1 = urand(), u2 = urand(), u3 = urand();
		int k3 = 1 + rnd(n), k4 = 1 + rnd(n), k5 = 1 + rnd(n);
		int pick = rnd(2);
		struct {
			lm_objective obj;
			int K;
			double budget;
		} q[6] = {
			{ LM_PLAN_THROUGHPUT, 0, INF },
			{ LM_PLAN_LATENCY, 0, INF },
			{ LM_PLAN_THROUGHPUT, 0,
			  al.ok ? al.lat * (0.9 + 0.6 * u1) : 100 },
			{ LM_PLAN_THROUGHPUT, k3, INF },
			{ LM_PLAN_LATENCY, k4,
			  pick && al.ok ? al.lat * (0.95 + 0.3 * u2) : INF },
			{ LM_PLAN_THROUGHPUT, k5, al.ok ? al.lat * (1 + u3) : INF },
		};
		for (int j = 0; j < 6; j++) {
			lm_solve_mode mode = j == 5 && it % 2 ? LM_SOLVE_HEURISTIC
				: it % 3 == 0 ? LM_SOLVE_EXACT : LM_SOLVE_AUTO;
			if (!check_query(&in, &b, q[j].obj, q[j].K, q[j].budget,
					 mode)) {
				printf("  (iteration %d, query %d)\n", it, j);
				describe(&in, q[j].obj, q[j].K, q[j].budget);
				failures++;
			}
		}
		bf_free(&b);
		inst_free(&in);
	}
	printf("  %d instances, %d queries: %d with a plan, %d infeasible, "
	       "%d heuristic\n", instances, stats_queries, stats_feasible,
	       stats_infeasible, stats_heur);
	printf("  %d instances have no plan at all\n", none);
	printf("  plans: %d on several devices, %d with replicas, %d with "
	       "several stages on a device, %d with both\n", stats_multi,
	       stats_replicated, stats_shared, stats_mixed);
	CHECK(failures == 0);
	CHECK(stats_infeasible > 100 && stats_feasible > 5000);
}

int main(void)
{
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/lamina_solver_XXXXXX");
	if (!mkdtemp(tmpdir))
		return 1;
	RUN(solver_matches_brute_force);
	char cmd[600];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	if (system(cmd)) {
	}
	return harness_done();
}
