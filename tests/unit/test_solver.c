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
 * Up to max_n (<= 64) slices on max_dev (<= 8) devices: mixed speeds (related or not),
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
	double base[64];
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

static void bf_stages(struct bf *b, int run0, int pos, int dev, double lat,
		      double per, int ns);

/* Stages from pos on dev (whose run began at run0), having arrived with
 * latency lat and period per. */
static void bf_stages(struct bf *b, int run0, int pos, int dev, double lat,
		      double per, int ns)
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
					    lm_plan_cost_run_end(b->c, run0,
								 e) <=
				    limit) {
					front_add(&b->f[ns + 1], l2, p2);
					b->plans++;
				}
			} else {
				/* another stage on this device */
				bf_stages(b, run0, e + 1, dev, l2 + b->h,
					  fmax(p2, b->h), ns + 1);
				/* or on to another device */
				if (b->mem_used[dev] +
					    lm_plan_cost_run_end(b->c, run0,
								 e) <=
				    limit)
					for (int x = 0; x < b->N; x++) {
						double xl, xo;
						if (b->taken[x] ||
						    lm_plan_cost_transfer(
							    b->c, dev, x, e,
							    &xl, &xo))
							continue;
						b->taken[x] = 1;
						bf_stages(b, e + 1, e + 1, x,
							  l2 + xl, fmax(p2, xo),
							  ns + 1);
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
		bf_stages(b, 0, 0, x, 0, 0, 0);
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
	double mem[8] = { 0 };
	int cores[8] = { 0 };
	if (K > 0 && p->n_stages > K)
		return 0;
	/* what laminad allocates: per replica weights, arena and the inner
	 * cuts (its session's), and every edge's pool of bundles */
#define BYTES(k) ((k) == 0 ? b->input_bytes                                \
		  : (k) == n ? b->slices[n - 1].output_bytes                  \
			     : b->cut_bytes[(k) - 1])
#define BUNDLE(k) (BYTES(k) + LM_PLAN_BUNDLE_OVERHEAD)
	int several = 0;
	for (int i = 1; i < p->n_stages; i++)
		several |= p->stages[i].device != p->stages[0].device;
	for (int i = 0; i < p->n_stages; i++) {
		const lm_plan_stage *s = &p->stages[i];
		int first = i == 0 || p->stages[i - 1].device != s->device;
		int last = i + 1 == p->n_stages ||
			   p->stages[i + 1].device != s->device;
		double rep = 0;
		for (int k = s->first; k <= s->last; k++)
			rep += b->slices[k].weight_bytes +
			       b->slices[k].arena_bytes;
		for (int k = s->first + 1; k <= s->last; k++)
			rep += BYTES(k);
		mem[s->device] += s->cores * rep;
		/* its input edge's pool, on its device: shared with the stage
		 * before when that is here too (counted there) */
		int prev = first ? 0 : p->stages[i - 1].cores;
		mem[s->device] += (first ? lm_plan_edge_bundles(0, s->cores)
				   : lm_plan_edge_bundles(prev, s->cores) -
					     prev) * BUNDLE(s->first);
		/* the pool of its output edge: the next stage's when it is
		 * here (its part counted here), else its own queue */
		mem[s->device] += (last ? lm_plan_edge_bundles(s->cores, 0)
				   : s->cores) * BUNDLE(s->last + 1);
		if (i == 0 && several)
			mem[s->device] += LM_PLAN_RING_DEPTH * BUNDLE(n) +
					  LM_PLAN_KEEP * BUNDLE(0);
		cores[s->device] += s->cores;
	}
#undef BUNDLE
#undef BYTES
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

/* ---- file formats ---- */

TEST(devices_json)
{
	const char *path = tmp_path("devices.json");
	lm_devices *d = NULL;
	lm_error e;
	write_file(path,
		   "{\"devices\": [\n"
		   " {\"name\": \"a\", \"cores\": 4, \"memory_bytes\": 1e9,"
		   "  \"numa_node\": 1, \"address\": \"10.0.0.1\"},\n"
		   " {\"name\": \"b\", \"cores\": 2, \"memory_bytes\": 5e8},\n"
		   " {\"name\": \"c\", \"cores\": 1, \"memory_bytes\": 1e8}],\n"
		   " \"links\": [\n"
		   " {\"from\": \"a\", \"to\": \"b\", \"latency_us\": 10, \"gbps\": 25},\n"
		   " {\"from\": \"b\", \"to\": \"c\", \"latency_us\": 5, \"gbps\": 1},\n"
		   " {\"from\": \"c\", \"to\": \"b\", \"latency_us\": 7, \"gbps\": 2}]}\n");
	CHECK(lm_devices_load(path, &d, &e) == 0);
	CHECK(d->n == 3 && d->dev[0].cores == 4 && d->dev[0].numa_node == 1);
	CHECK(!strcmp(d->dev[0].address, "10.0.0.1") &&
	      d->dev[1].memory_bytes == 5e8);
	/* listed once: both ways; listed twice: each its own; none: none */
	CHECK(lm_devices_link(d, 1, 0)->present &&
	      lm_devices_link(d, 1, 0)->gbps == 25);
	CHECK(lm_devices_link(d, 1, 2)->latency_us == 5 &&
	      lm_devices_link(d, 2, 1)->latency_us == 7);
	CHECK(!lm_devices_link(d, 0, 2)->present &&
	      !lm_devices_link(d, 2, 0)->present);
	lm_devices_free(d);

	static const struct {
		const char *text, *needle;
	} bad[] = {
		{ "{\"devices\": []}", "at least one device" },
		{ "{\"devices\": [{\"name\": \"a\", \"memory_bytes\": 1}]}",
		  "device 'a': missing \"cores\"" },
		{ "{\"devices\": [{\"name\": \"a\", \"cores\": 1, "
		  "\"memory\": 1}]}", "unknown field \"memory\"" },
		{ "{\"devices\": [{\"name\": \"a\", \"cores\": 0, "
		  "\"memory_bytes\": 1}]}", "\"cores\" is 0" },
		{ "{\"devices\": [{\"name\": \"a\", \"cores\": 1, "
		  "\"memory_bytes\": 1}, {\"name\": \"a\", \"cores\": 1, "
		  "\"memory_bytes\": 1}]}", "two devices are named 'a'" },
		{ "{\"devices\": [{\"name\": \"a\", \"cores\": 1, "
		  "\"memory_bytes\": 1}], \"links\": [{\"from\": \"a\", "
		  "\"to\": \"z\", \"latency_us\": 1, \"gbps\": 1}]}",
		  "no device named 'z'" },
		{ "{\"devices\": [{\"name\": \"a\", \"cores\": 1, "
		  "\"memory_bytes\": 1}], \"links\": [{\"from\": \"a\", "
		  "\"to\": \"a\", \"latency_us\": 1, \"gbps\": 1}]}",
		  "to itself" },
		{ "{\"devices\": [{\"name\": \"a\", \"cores\": 1, "
		  "\"memory_bytes\": 1}, {\"name\": \"b\", \"cores\": 1, "
		  "\"memory_bytes\": 1}], \"links\": [{\"from\": \"a\", "
		  "\"to\": \"b\", \"latency_us\": 1, \"gbps\": 0}]}",
		  "\"gbps\" is 0" },
		{ "{\"devices\": [", "not valid JSON" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		write_file(path, bad[i].text);
		e.msg[0] = 0;
		int rc = lm_devices_load(path, &d, &e);
		if (rc != -EINVAL || d || !strstr(e.msg, bad[i].needle) ||
		    !strstr(e.msg, "devices.json"))
			printf("  case %zu: rc %d, '%s'\n", i, rc, e.msg);
		CHECK(rc == -EINVAL && !d && strstr(e.msg, bad[i].needle));
	}
	CHECK(lm_devices_load(tmp_path("missing.json"), &d, &e) == -ENOENT);
	CHECK(strstr(e.msg, "missing.json"));
}

TEST(devices_local)
{
	lm_devices *d = NULL;
	lm_error e;
	CHECK(lm_devices_local(&d, &e) == 0);
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	CHECK(d->n == 1 && !strcmp(d->dev[0].name, "local"));
	CHECK(d->dev[0].cores == (n > 1 ? n - 1 : 1));
	CHECK(d->dev[0].memory_bytes > 0 &&
	      !strcmp(d->dev[0].address, "127.0.0.1"));
	lm_devices_free(d);
}

/* Two batches, one device, three slices. */
static lm_profile *small_profile(void)
{
	lm_profile *p;
	if (lm_profile_create(3, &p))
		return NULL;
	lm_profile_add_device(p, "local");
	for (int bi = 0; bi < 2; bi++) {
		int batch = bi ? 8 : 1;
		lm_profile_batch *b = lm_profile_add_batch(p, batch);
		b->input_bytes = 100.0 * batch;
		b->handoff_us = 1.5;
		for (int i = 0; i < 3; i++) {
			b->slices[i].weight_bytes = 1000 * (i + 1);
			b->slices[i].arena_bytes = 10.0 * batch;
			b->slices[i].output_bytes = 50.0 * batch * (i + 1);
			b->slices[i].time_us[0] = 10.0 * (i + 1) * batch;
			snprintf(b->slices[i].label, LM_NAME_MAX, "L%d", i);
		}
		b->cut_bytes[0] = 50.0 * batch;
		b->cut_bytes[1] = 120.0 * batch;
	}
	return p;
}

TEST(profile_json_and_model_speed)
{
	lm_profile *p = small_profile(), *q = NULL;
	lm_model_speed ms;
	lm_error e;
	const char *path = tmp_path("profile.json");
	CHECK(p);
	snprintf(p->model, sizeof(p->model), "model.lam");
	CHECK(lm_profile_parse_speed("slow=0.5", &ms, &e) == 0);
	CHECK(!strcmp(ms.name, "slow") && ms.factor == 0.5 && !ms.from[0]);
	CHECK(lm_profile_derive(p, &ms, &e) == 0);
	CHECK(lm_profile_parse_speed("fast=2@local", &ms, &e) == 0);
	CHECK(lm_profile_derive(p, &ms, &e) == 0);
	CHECK(p->n_devices == 3);
	/* time(NAME) = time(FROM) / F */
	CHECK(p->batches[1].slices[2].time_us[1] == 480 &&
	      p->batches[1].slices[2].time_us[2] == 120);
	CHECK(lm_profile_save(p, path, &e) == 0);
	CHECK(lm_profile_load(path, &q, &e) == 0);
	CHECK(q->n_slices == 3 && q->n_batches == 2 && q->n_devices == 3);
	CHECK(!strcmp(q->model, "model.lam"));
	CHECK(q->derived_from[1] == 0 && q->speed[1] == 0.5);
	int b8 = lm_profile_find_batch(q, 8);
	CHECK(b8 >= 0 && q->batches[b8].cut_bytes[1] == 960 &&
	      q->batches[b8].input_bytes == 800 &&
	      q->batches[b8].handoff_us == 1.5);
	CHECK(q->batches[b8].slices[1].weight_bytes == 2000 &&
	      !strcmp(q->batches[b8].slices[1].label, "L1"));
	CHECK(q->batches[b8].slices[2].time_us[lm_profile_find_device(
		      q, "fast")] == 120);
	/* a derived device is not a source; a source of others is not
	 * derived afterwards; bad arguments */
	CHECK(lm_profile_parse_speed("x=3@slow", &ms, &e) == 0);
	CHECK(lm_profile_derive(q, &ms, &e) == -EINVAL &&
	      strstr(e.msg, "itself derived"));
	CHECK(lm_profile_parse_speed("local=3@fast", &ms, &e) == 0);
	CHECK(lm_profile_derive(q, &ms, &e) == -EINVAL);
	CHECK(lm_profile_parse_speed("x=2@nope", &ms, &e) == 0);
	CHECK(lm_profile_derive(q, &ms, &e) == -EINVAL &&
	      strstr(e.msg, "'nope'"));
	const char *bad[] = { "x", "x=0", "x=-1", "=2", "x=2@", "x=fast",
			      "x=2z" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		CHECK(lm_profile_parse_speed(bad[i], &ms, &e) == -EINVAL &&
		      strstr(e.msg, "--model-speed"));
	lm_profile_free(q);
	lm_profile_free(p);

	/* broken files name the field */
	static const struct {
		const char *text, *needle;
	} cases[] = {
		{ "{\"format\": \"x\", \"version\": 1}", "not a lamina profile" },
		{ "{\"format\": \"lamina-profile\", \"version\": 2}",
		  "version 2" },
		{ "{\"format\": \"lamina-profile\", \"version\": 1, "
		  "\"slices\": 1, \"devices\": [\"a\"], \"batches\": [{"
		  "\"batch\": 1, \"input_bytes\": 1, \"handoff_us\": 1, "
		  "\"slices\": [{\"index\": 0, \"weight_bytes\": 1, "
		  "\"arena_bytes\": 1, \"output_bytes\": 1, \"time_us\": "
		  "{}}], \"cut_bytes\": []}]}",
		  "batch 1, slice 0: no time for device 'a'" },
		{ "{\"format\": \"lamina-profile\", \"version\": 1, "
		  "\"slices\": 2, \"devices\": [\"a\"], \"batches\": [{"
		  "\"batch\": 1, \"input_bytes\": 1, \"handoff_us\": 1, "
		  "\"slices\": [{\"index\": 0, \"weight_bytes\": 1, "
		  "\"arena_bytes\": 1, \"output_bytes\": 1, \"time_us\": "
		  "{\"a\": 1}}], \"cut_bytes\": [1]}]}",
		  "\"slices\" must list all 2 slices" },
		{ "{\"format\": \"lamina-profile\", \"version\": 1, "
		  "\"slices\": 1, \"devices\": [\"a\"], \"batches\": [{"
		  "\"batch\": 1, \"input_bytes\": -1, \"handoff_us\": 1}]}",
		  "\"input_bytes\" is -1" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		write_file(path, cases[i].text);
		int rc = lm_profile_load(path, &q, &e);
		if (rc != -EINVAL || !strstr(e.msg, cases[i].needle))
			printf("  case %zu: rc %d, '%s'\n", i, rc, e.msg);
		CHECK(rc == -EINVAL && !q && strstr(e.msg, cases[i].needle) &&
		      strstr(e.msg, "profile.json"));
	}
}

/* ---- the cost model, by hand ---- */

TEST(cost_model_by_hand)
{
	lm_profile *p = small_profile();
	lm_devices *d;
	lm_plan_cost *c;
	lm_plan *plan;
	lm_error e;
	CHECK(p && lm_devices_create(2, &d) == 0);
	lm_model_speed ms = { "b", "local", 2 };
	CHECK(lm_profile_derive(p, &ms, &e) == 0);
	snprintf(d->dev[0].name, LM_NAME_MAX, "local");
	snprintf(d->dev[1].name, LM_NAME_MAX, "b");
	d->dev[0].cores = 4;
	d->dev[0].memory_bytes = 1e6;
	d->dev[1].cores = 1;
	d->dev[1].memory_bytes = 1e5;
	set_link(d, 0, 1, 1, 10, 8); /* 8 Gbit/s: 1 byte per ns */
	CHECK(lm_plan_cost_create(d, p, 8, 0.5, &c, &e) == 0);
	/* batch 8: times 80, 160, 240 on local, half that on b */
	CHECK(lm_plan_cost_time(c, 0, 0, 2) == 480 &&
	      lm_plan_cost_time(c, 1, 1, 2) == 200);
	/* one replica of slices 0-1: weights 3000 + arenas 160 + the inner
	 * cut 400 (in its session), the bundles in (800) and out (960) it
	 * holds; a queue of 4 inputs.  A bundle is its bytes plus
	 * LM_PLAN_BUNDLE_OVERHEAD when the profile does not say. */
	const double O = LM_PLAN_BUNDLE_OVERHEAD;
	CHECK(lm_plan_cost_stage_memory(c, 0, 1, 1) ==
	      3000 + 160 + 400 + (800 + O) + (960 + O) + 4 * (800 + O));
	CHECK(lm_plan_cost_stage_memory(c, 0, 1, 3) ==
	      3 * (3000 + 160 + 400 + (800 + O) + (960 + O)) +
		      4 * (800 + O));
	CHECK(lm_plan_cost_run_end(c, 0, 2) == 4 * (1200 + O));
	/* the first device of several also holds the answers' queue and
	 * the kept requests */
	CHECK(lm_plan_cost_run_end(c, 0, 1) ==
	      4 * (960 + O) + 4 * (1200 + O) + LM_PLAN_KEEP * (800 + O));
	CHECK(lm_plan_cost_run_end(c, 1, 1) == 4 * (960 + O));
	CHECK(lm_plan_cost_memory_limit(c, 1) == 5e4);
	double lat, occ;
	CHECK(lm_plan_cost_transfer(c, 0, 1, 1, &lat, &occ) == 0);
	/* busy 0.96 us on the wire, but the 4 queued bundles cover only
	 * 4 periods of its 10.96 us latency */
	CHECK(fabs(occ - 10.96 / 4) < 1e-12 && fabs(lat - 10.96) < 1e-12);
	CHECK(lm_plan_cost_transfer(c, 0, 0, 1, &lat, &occ) == 0 &&
	      lat == 1.5 && occ == 1.5);
	/* set_link sets one direction (the reader mirrors, not the cost) */
	CHECK(lm_plan_cost_transfer(c, 1, 0, 1, &lat, &occ) == -1);

	/* a hand plan: 0 on local (2 cores), 1 on local, 2 on b */
	CHECK(lm_plan_create(d, 3, &plan) == 0);
	plan->stages[0] = (lm_plan_stage){ .device = 0, .first = 0,
					   .last = 0, .cores = 2 };
	plan->stages[1] = (lm_plan_stage){ .device = 0, .first = 1,
					   .last = 1, .cores = 1 };
	plan->stages[2] = (lm_plan_stage){ .device = 1, .first = 2,
					   .last = 2, .cores = 1 };
	CHECK(lm_plan_evaluate(c, plan, &e) == 0);
	/* 80 + 1.5 + 160 + (10 + 0.96) + 120 */
	CHECK(fabs(plan->latency_us - 372.46) < 1e-9);
	CHECK(plan->period_us == 160 && plan->bottleneck == 1 &&
	      !plan->bottleneck_xfer);
	CHECK(plan->cores_used[0] == 3 && plan->cores_used[1] == 1);
	CHECK(plan->stages[1].xfer == LM_XFER_LINK &&
	      plan->stages[0].xfer == LM_XFER_RING);
	CHECK(fabs(plan->throughput_rps - 8e6 / 160) < 1e-9);
	/* b's memory: weights 3000, arena 80, bundles in 960 out 1200 held,
	 * queues of 4 in and 4 out */
	CHECK(plan->memory_used[1] == 3000 + 80 + (960 + O) + (1200 + O) +
					      4 * (960 + O) + 4 * (1200 + O));
	/* what laminad makes for stage 2: its input pool (4 + 1) and its
	 * egress pool (4 + 1), weights and arena of its replica */
	CHECK(plan->stages[2].in_bundles == 5 &&
	      plan->stages[2].out_bundles == 5);
	CHECK(plan->stages[2].ring_bytes == 5 * (960 + O) + 5 * (1200 + O));
	CHECK(plan->stages[2].weight_bytes == 3000 &&
	      plan->stages[2].arena_bytes == 80);
	/* stage 1 shares its input pool with stage 0 (2 replicas) and sends
	 * to b; stage 0 keeps requests for a plan over two devices */
	CHECK(plan->stages[1].in_bundles == 4 + 2 + 1 &&
	      plan->stages[1].out_bundles == 5 &&
	      plan->stages[0].in_bundles == 4 + 2 &&
	      plan->stages[0].out_bundles == 0 &&
	      plan->stages[0].answers_bundles == 4 && plan->keep ==
	      LM_PLAN_KEEP);

	/* broken plans */
	plan->stages[2].device = 0;
	plan->stages[1].device = 1;
	CHECK(lm_plan_evaluate(c, plan, &e) == -EINVAL &&
	      strstr(e.msg, "already holds"));
	plan->stages[1].device = 0;
	plan->stages[2].device = 1;
	plan->stages[1].first = 2;
	CHECK(lm_plan_evaluate(c, plan, &e) == -EINVAL &&
	      strstr(e.msg, "follow on"));
	plan->stages[1].first = 1;
	plan->stages[0].cores = 4;
	CHECK(lm_plan_evaluate(c, plan, &e) == -ENOSPC &&
	      strstr(e.msg, "5 cores of 4"));
	plan->stages[0].cores = 1;
	set_link(d, 0, 1, 0, 0, 0);
	CHECK(lm_plan_evaluate(c, plan, &e) == -EINVAL &&
	      strstr(e.msg, "no link"));
	set_link(d, 0, 1, 1, 10, 8);
	d->dev[1].memory_bytes = 2e4; /* the cost keeps its limits */
	lm_plan_cost_free(c);
	CHECK(lm_plan_cost_create(d, p, 8, 0.5, &c, &e) == 0);
	CHECK(lm_plan_evaluate(c, plan, &e) == -ENOSPC &&
	      strstr(e.msg, "'b'"));
	lm_plan_free(plan);
	lm_plan_cost_free(c);
	/* a batch the profile lacks, a device it has no times for */
	CHECK(lm_plan_cost_create(d, p, 4, 0.1, &c, &e) == -EINVAL &&
	      strstr(e.msg, "batch 4") && strstr(e.msg, "1, 8"));
	snprintf(d->dev[1].name, LM_NAME_MAX, "ghost");
	CHECK(lm_plan_cost_create(d, p, 8, 0.1, &c, &e) == -EINVAL &&
	      strstr(e.msg, "'ghost'") && strstr(e.msg, "--model-speed"));
	lm_devices_free(d);
	lm_profile_free(p);
}

/* One device, two slices: memory forbids replicating both, so the
 * optimum splits the run and replicates only the slow, light slice. */
TEST(memory_forces_a_split_with_replicas)
{
	lm_profile *p;
	lm_devices *d;
	lm_plan_cost *c;
	lm_plan *plan = NULL;
	lm_error e;
	CHECK(lm_profile_create(2, &p) == 0 && lm_devices_create(1, &d) == 0);
	lm_profile_add_device(p, "h");
	lm_profile_batch *b = lm_profile_add_batch(p, 1);
	b->handoff_us = 1;
	b->slices[0].weight_bytes = 1e6; /* heavy and quick */
	b->slices[0].time_us[0] = 100;
	b->slices[1].weight_bytes = 1e3; /* light and slow */
	b->slices[1].time_us[0] = 300;
	snprintf(d->dev[0].name, LM_NAME_MAX, "h");
	d->dev[0].cores = 4;
	d->dev[0].memory_bytes = 1.5e6;
	CHECK(lm_plan_cost_create(d, p, 1, 0, &c, &e) == 0);
	lm_solve_options o = { .objective = LM_PLAN_THROUGHPUT };
	CHECK(lm_solve(c, &o, &plan, &e) == 0);
	CHECK(plan->exact && plan->n_stages == 2);
	CHECK(plan->stages[0].cores == 1 && plan->stages[1].cores == 3);
	CHECK(plan->period_us == 100 && plan->latency_us == 401);
	lm_plan_free(plan);
	/* the latency objective keeps one stage, and with it one core */
	o.objective = LM_PLAN_LATENCY;
	CHECK(lm_solve(c, &o, &plan, &e) == 0);
	CHECK(plan->n_stages == 1 && plan->latency_us == 400 &&
	      plan->stages[0].cores == 1);
	lm_plan_free(plan);
	/* one stage only: no replica fits beside the heavy slice */
	o.objective = LM_PLAN_THROUGHPUT;
	o.max_stages = 1;
	CHECK(lm_solve(c, &o, &plan, &e) == 0);
	CHECK(plan->n_stages == 1 && plan->period_us == 400);
	lm_plan_free(plan);
	lm_plan_cost_free(c);
	lm_devices_free(d);
	lm_profile_free(p);
}

TEST(infeasible_reasons)
{
	lm_profile *p = small_profile();
	lm_devices *d;
	lm_plan_cost *c;
	lm_plan *plan = NULL;
	lm_error e;
	lm_solve_options o = { .objective = LM_PLAN_THROUGHPUT };
	CHECK(p && lm_devices_create(2, &d) == 0);
	lm_model_speed ms = { "b", "", 1 };
	CHECK(lm_profile_derive(p, &ms, &e) == 0);
	snprintf(d->dev[0].name, LM_NAME_MAX, "local");
	snprintf(d->dev[1].name, LM_NAME_MAX, "b");
	d->dev[0].cores = d->dev[1].cores = 1;
	/* slice 2 (20000 weight bytes) fits nowhere */
	d->dev[0].memory_bytes = d->dev[1].memory_bytes = 14000;
	p->batches[0].slices[2].weight_bytes = 20000;
	CHECK(lm_plan_cost_create(d, p, 1, 0.1, &c, &e) == 0);
	CHECK(lm_solve(c, &o, &plan, &e) == -ENOSPC && !plan);
	CHECK(strstr(e.msg, "slice 2 (L2) fits on no device") &&
	      strstr(e.msg, "'local'") && strstr(e.msg, "12.3 KiB free"));
	lm_plan_cost_free(c);
	/* each slice fits somewhere, but the devices have no link: slices
	 * 0-1 with the first device's kept requests on one, slice 2 (8000
	 * bytes of weights) on the other, not all on one */
	p->batches[0].slices[2].weight_bytes = 8000;
	CHECK(lm_plan_cost_create(d, p, 1, 0, &c, &e) == 0);
	CHECK(lm_solve(c, &o, &plan, &e) == -ENOSPC);
	CHECK(strstr(e.msg, "no placement fits") && strstr(e.msg, "link"));
	/* with a link the model spreads over both */
	set_link(d, 0, 1, 1, 1, 1);
	set_link(d, 1, 0, 1, 1, 1);
	CHECK(lm_solve(c, &o, &plan, &e) == 0 && plan->n_stages >= 2);
	lm_plan_free(plan);
	/* but not within one stage */
	o.max_stages = 1;
	CHECK(lm_solve(c, &o, &plan, &e) == -ENOSPC &&
	      strstr(e.msg, "--max-stages 1 is too few"));
	/* and not within an impossible budget */
	o.max_stages = 0;
	o.latency_budget_us = 1;
	CHECK(lm_solve(c, &o, &plan, &e) == -ENOSPC &&
	      strstr(e.msg, "latency budget of 0.001 ms"));
	o.objective = LM_PLAN_LATENCY;
	CHECK(lm_solve(c, &o, &plan, &e) == -ENOSPC &&
	      strstr(e.msg, "latency budget"));
	lm_plan_cost_free(c);
	lm_devices_free(d);
	lm_profile_free(p);
}

TEST(plan_json_round_trip)
{
	struct inst in = { 0 };
	lm_plan *p = NULL, *q = NULL;
	lm_error e;
	const char *path = tmp_path("plan.json");
	rng_state = 99;
	do {
		inst_free(&in);
		CHECK(make_instance(&in, 10, 3) == 0);
		lm_solve_options o = { .objective = LM_PLAN_THROUGHPUT,
				       .latency_budget_us = 1e9 };
		lm_plan_free(p);
		p = NULL;
		lm_solve(in.c, &o, &p, &e);
	} while (!p || p->n_stages < 3);
	CHECK(lm_plan_save(p, path, &e) == 0);
	CHECK(lm_plan_load(path, &q, &e) == 0);
	CHECK(q->n_stages == p->n_stages && q->batch == p->batch &&
	      q->objective == p->objective && q->n_slices == p->n_slices);
	CHECK(q->latency_budget_us == 1e9 && q->devices->n == p->devices->n);
	for (int i = 0; i < p->n_stages; i++) {
		CHECK(q->stages[i].device == p->stages[i].device &&
		      q->stages[i].first == p->stages[i].first &&
		      q->stages[i].last == p->stages[i].last &&
		      q->stages[i].cores == p->stages[i].cores);
		CHECK(close_to(q->stages[i].time_us, p->stages[i].time_us) &&
		      q->stages[i].xfer == p->stages[i].xfer);
		/* what laminad is told to allocate survives the file */
		CHECK(q->stages[i].in_bundles == p->stages[i].in_bundles &&
		      q->stages[i].out_bundles == p->stages[i].out_bundles &&
		      q->stages[i].answers_bundles ==
			      p->stages[i].answers_bundles &&
		      close_to(q->stages[i].ring_bytes,
			       p->stages[i].ring_bytes) &&
		      close_to(q->stages[i].weight_bytes,
			       p->stages[i].weight_bytes));
	}
	CHECK(close_to(q->latency_us, p->latency_us) &&
	      close_to(q->throughput_rps, p->throughput_rps));
	/* the checks on reading: a device holding two runs */
	lm_plan_free(q);
	q = NULL;
#define STAGE(dev, a, b)                                                   \
	"{\"device\": \"" dev "\", \"slices\": [" #a ", " #b "], "            \
	"\"cores\": 1, \"weight_bytes\": 1, \"arena_bytes\": 1, "          \
	"\"ring_bytes\": 1, \"in_bundles\": 5, \"out_bundles\": 5, "       \
	"\"answers_bundles\": 0}"
	write_file(path, "{\"format\": \"lamina-plan\", \"version\": 2, "
			 "\"objective\": \"latency\", \"batch\": 1, "
			 "\"slices\": 3, \"devices\": [{\"name\": \"a\", "
			 "\"cores\": 2, \"memory_bytes\": 1}, {\"name\": \"b\", "
			 "\"cores\": 1, \"memory_bytes\": 1}], \"stages\": ["
			 STAGE("a", 0, 0) "," STAGE("b", 1, 1) ","
			 STAGE("a", 2, 2) "]}");
	CHECK(lm_plan_load(path, &q, &e) == -EINVAL &&
	      strstr(e.msg, "earlier run"));
	write_file(path, "{\"format\": \"lamina-plan\", \"version\": 2, "
			 "\"objective\": \"latency\", \"batch\": 1, "
			 "\"slices\": 3, \"devices\": [{\"name\": \"a\", "
			 "\"cores\": 2, \"memory_bytes\": 1}], \"stages\": ["
			 STAGE("a", 0, 1) "]}");
	CHECK(lm_plan_load(path, &q, &e) == -EINVAL &&
	      strstr(e.msg, "end at slice 1 of 3"));
	/* a plan without the memory of its stages (version 1) */
	write_file(path, "{\"format\": \"lamina-plan\", \"version\": 1, "
			 "\"objective\": \"latency\", \"batch\": 1, "
			 "\"slices\": 1, \"devices\": [{\"name\": \"a\", "
			 "\"cores\": 2, \"memory_bytes\": 1}], \"stages\": ["
			 "{\"device\": \"a\", \"slices\": [0, 0], "
			 "\"cores\": 1}]}");
	CHECK(lm_plan_load(path, &q, &e) == -EINVAL &&
	      strstr(e.msg, "plan version 1") &&
	      strstr(e.msg, "lamina plan` again"));
#undef STAGE
	lm_plan_free(p);
	inst_free(&in);
}

/*
 * Larger instances than the brute force can take: the heuristic must give
 * valid plans no better than the exact optimum, and bounds no worse.
 */
TEST(heuristic_against_exact)
{
	int checked = 0;
	rng_state = 0xfeedfacecafebeefull;
	for (int it = 0; it < 100; it++) {
		struct inst in;
		if (make_instance(&in, 32, 2 + rnd(5))) {
			inst_free(&in);
			CHECK(!"instance");
		}
		for (int obj = 0; obj < 2; obj++) {
			lm_solve_options o = {
				.objective = obj ? LM_PLAN_LATENCY
						 : LM_PLAN_THROUGHPUT,
				.mode = LM_SOLVE_EXACT
			};
			lm_plan *x = NULL, *h = NULL;
			lm_error e;
			int rx = lm_solve(in.c, &o, &x, &e);
			o.mode = LM_SOLVE_HEURISTIC;
			int rh = lm_solve(in.c, &o, &h, &e);
			CHECK(rx == 0 || rx == -ENOSPC);
			if (rx) {
				CHECK(rh == -ENOSPC);
				continue;
			}
			checked++;
			if (rh) /* the heuristic may miss a tight instance */
				CHECK(rh == -ENOSPC);
			if (!rh) {
				CHECK(plan_fits(&in, h, 0));
				if (obj) {
					CHECK(h->latency_us >=
					      x->latency_us * (1 - REL));
					CHECK(h->bound <=
					      x->latency_us * (1 + REL));
				} else {
					CHECK(h->period_us >=
					      x->period_us * (1 - REL));
					CHECK(h->bound >= x->throughput_rps *
								  (1 - REL));
				}
			}
			CHECK(plan_fits(&in, x, 0) && x->exact);
			lm_plan_free(x);
			lm_plan_free(h);
		}
		inst_free(&in);
	}
	printf("  %d exact optima checked against the heuristic\n", checked);
	CHECK(checked > 100);
}

int main(void)
{
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/lamina_solver_XXXXXX");
	if (!mkdtemp(tmpdir))
		return 1;
	RUN(devices_json);
	RUN(devices_local);
	RUN(profile_json_and_model_speed);
	RUN(cost_model_by_hand);
	RUN(memory_forces_a_split_with_replicas);
	RUN(infeasible_reasons);
	RUN(plan_json_round_trip);
	/* The files' tests are done: remove them before the long searches,
	 * which a timeout may kill. */
	char cmd[600];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	if (system(cmd)) {
	}
	RUN(solver_matches_brute_force);
	RUN(heuristic_against_exact);
	return harness_done();
}
