/*
 * solve.c: the placement solver, exact for the model of optimizer.h.
 *
 * Four facts make the search small:
 *
 *  1. At a given period bound T, a stage needs exactly the fewest replicas
 *     r with time / r <= T: more only cost cores and memory.
 *  2. A device's run [a, b] costs time(a..b) + (m - 1) x handoff for m
 *     stages, whatever the split, so among the splits that fit its cores
 *     and memory the one with the fewest stages is best on every count
 *     (latency, stage cap).  A run fits as one stage unless replication
 *     makes it too big; only then a small labelled search over split points
 *     (cores, stages, memory; dominated labels dropped) finds the fewest.
 *  3. Devices with the same cores, memory, times and links are
 *     interchangeable: they form a class, and the search counts devices
 *     used per class instead of remembering which ones.
 *  4. The best period is one of finitely many candidates: time / r of some
 *     slice range on some class, a link's occupancy at some cut, or the
 *     handoff.  "A plan with period <= T (and latency <= L) exists" is
 *     monotone in T, so a search over T, narrowed numerically and finished
 *     by bisection over the sorted candidates, finds the optimum exactly.
 *
 * The dynamic program runs over (boundary k, usage state z, stages used s):
 * z is the count of devices used per class and the class of the current
 * device (the "exact" space).  Its value is the least latency of a prefix
 * plan; each step places one device's run.  Feasibility alone uses bitsets
 * of boundaries per usage state, which is much cheaper.  A relaxation in
 * which every class has unlimited devices ("free") gives an admissible
 * cost-to-go bound for pruning, a lower bound, and often the optimum
 * itself: when its best plan uses no class more often than it has
 * devices, that plan is optimal.
 *
 * The exact space has prod(n_c + 1) x classes states.  When the estimated
 * work passes the limit, the heuristic searches "ordered" spaces instead:
 * the devices in a fixed order, grouped by class, each plan using a
 * subsequence of that order (every class one block), for every class order
 * when there are at most 4 classes and for a few sensible ones otherwise.
 * Its result is reported with a lower bound from relaxations (total device
 * count only; unlimited devices; the largest single slice).
 */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal.h"

#define INF HUGE_VAL
#define TIE 1e-9      /* objective values this close (relative) tie */
#define CAND_MAX 2048 /* candidate periods sorted in the final bisection */
#define MAX_ORDERS 8  /* class orders the heuristic tries beyond 4 classes */

struct cls {
	int rep;      /* representative device */
	int n;        /* devices in the class */
	int cores;
	double limit; /* memory after headroom */
	int *members; /* device indices, ascending */
};

/* How a run on class `from` hands over to the next run on class `to`. */
struct clink {
	int present;
	int from, to; /* the devices whose link it is */
};

enum { SP_EXACT, SP_ORDER, SP_FREE, SP_TOTAL };

/* A usage space: what the DP remembers about the devices used so far. */
struct space {
	int kind;
	int nz;      /* states */
	int topo;    /* every successor has a larger index */
	int *cls_of; /* per state: the class of the current device */
	int *succ;   /* (nz + 1) x nc: the state after a run on class c;
			row nz is the empty start; -1: not allowed */
};

/* A partial split of a run: stages so far, their cores and memory. */
struct label {
	double mem;
	int cores, stages, prev_pos, prev_idx, r;
};

struct lablist {
	struct label *v;
	int n, cap;
};

struct run {
	int cls, first, last;
};

struct outcome {
	int ok;
	double lat, T;
	int nruns;
	struct run *runs;
};

struct solver {
	const lm_plan_cost *c;
	const lm_devices *d;
	int n, nc, W, K, S;
	double h;
	int oom;
	struct cls *cls;
	int *dev_cls;
	int *used;        /* nc: scratch */
	struct clink *cl; /* nc x nc */
	double *hb;       /* nc x (n + 1): cost-to-go bound, free space */
	double *hmin;     /* n + 1: min over classes of hb */
	double *after;    /* nc x n: scratch of cost_to_go */
	double Tmax;      /* no plan has a longer period */
	int *cover;       /* n: last slice of the longest run from a that
			     fits some class (-1: none) */
	/* caches for the current period bound T and stage cap per run
	   (generation gen) */
	double T;
	int mcap;
	unsigned gen;
	uint64_t *mask;     /* nc x n x W: ends of runs from (c, a) */
	unsigned *mask_gen; /* nc x n */
	uint64_t *lmask;    /* nc x nc x W: cuts a link may carry at T */
	unsigned lmask_gen;
	int *seg_end, *seg_m; /* nc x n: runs from seg_pos[c] on class c */
	double *seg_cost;
	int *seg_n, *seg_pos;
	unsigned *seg_gen;
	signed char *mark; /* n */
	double *mark_t;    /* n */
	struct lablist *ll; /* n + 1 */
	/* value DP */
	size_t dp_cap, g_cap;
	double *F, *G, *dom, *fe; /* dom: nc x S, fe: S */
	int *bk, *bz, *gz, *touched;
	short *bs, *gs;
	char *is_touched;
	/* bitset DP */
	size_t bs_cap;
	uint64_t *St, *R;
	/* candidate periods */
	double *cand;
	size_t cand_cap;
	double work; /* basic steps taken, for the report */
	int calls;
};

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static inline double run_time(const struct solver *s, int c, int a, int b)
{
	return lm_plan_cost_time(s->c, s->cls[c].rep, a, b);
}

/* The fewest replicas r <= C with t / r <= T; C + 1 when none is enough. */
static int reps(double t, double T, int C)
{
	if (t <= T)
		return 1;
	if (!(T > 0))
		return C + 1;
	double q = t / T;
	if (q > C + 1.0)
		return C + 1;
	int r = (int)ceil(q);
	if (r < 1)
		r = 1;
	while (r > 1 && t / (r - 1) <= T)
		r--;
	while (r <= C && t / r > T)
		r++;
	return r;
}

/* Transfer from a run on class c1 to one on c2 at boundary k (0 < k < n). */
static inline int xfer(const struct solver *s, int c1, int c2, int k,
		       double *lat, double *occ)
{
	const struct clink *l = &s->cl[c1 * s->nc + c2];
	if (!l->present)
		return 0;
	lm_plan_cost_transfer(s->c, l->from, l->to, k - 1, lat, occ);
	return 1;
}

static void set_T(struct solver *s, double T)
{
	s->T = T;
	s->gen++;
	if (s->gen == 0) { /* wrapped: forget every cache */
		memset(s->mask_gen, 0xff, (size_t)s->nc * (size_t)s->n *
						  sizeof(unsigned));
		memset(s->seg_gen, 0xff, (size_t)s->nc * sizeof(unsigned));
		s->lmask_gen = ~0u;
		s->gen = 1;
	}
}

/*
 * At most m stages per run: a run split into m stages adds (m - 1)
 * handoffs to any plan holding it, and no plan is faster than hmin[0], so
 * under a latency limit longer splits are useless (and costly to find).
 */
static void set_mcap(struct solver *s, double limit)
{
	int m = 1 << 30;
	if (limit < INF && s->h > 0) {
		double extra = (limit * (1 + 1e-12) - s->hmin[0]) / s->h;
		m = extra < 0 ? 1 : extra > 1e9 ? 1 << 30 : 1 + (int)extra;
	}
	if (m != s->mcap) {
		s->mcap = m;
		set_T(s, s->T); /* a new generation */
	}
}

/* ---- classes ---- */

static int same_link(const lm_link *a, const lm_link *b)
{
	if (a->present != b->present)
		return 0;
	return !a->present ||
	       (a->latency_us == b->latency_us && a->gbps == b->gbps);
}

/* Can device i stand in for device j everywhere? */
static int interchangeable(const struct solver *s, int i, int j)
{
	const lm_devices *d = s->d;
	if (d->dev[i].cores != d->dev[j].cores ||
	    lm_plan_cost_memory_limit(s->c, i) !=
		    lm_plan_cost_memory_limit(s->c, j))
		return 0;
	for (int k = 0; k < s->n; k++)
		if (lm_plan_cost_time(s->c, i, 0, k) !=
		    lm_plan_cost_time(s->c, j, 0, k))
			return 0;
	for (int x = 0; x < d->n; x++) {
		if (x == i || x == j)
			continue;
		if (!same_link(lm_devices_link(d, i, x),
			       lm_devices_link(d, j, x)) ||
		    !same_link(lm_devices_link(d, x, i),
			       lm_devices_link(d, x, j)))
			return 0;
	}
	return same_link(lm_devices_link(d, i, j), lm_devices_link(d, j, i));
}

static int make_classes(struct solver *s)
{
	const lm_devices *d = s->d;
	s->cls = calloc((size_t)d->n, sizeof(*s->cls));
	s->dev_cls = malloc((size_t)d->n * sizeof(int));
	s->used = malloc((size_t)d->n * sizeof(int));
	if (!s->cls || !s->dev_cls || !s->used)
		return -ENOMEM;
	for (int i = 0; i < d->n; i++) {
		int c;
		for (c = 0; c < s->nc; c++)
			if (interchangeable(s, i, s->cls[c].rep))
				break;
		if (c == s->nc) {
			s->cls[c].rep = i;
			s->cls[c].cores = d->dev[i].cores;
			s->cls[c].limit = lm_plan_cost_memory_limit(s->c, i);
			s->cls[c].members = malloc((size_t)d->n * sizeof(int));
			if (!s->cls[c].members)
				return -ENOMEM;
			s->nc++;
		}
		s->cls[c].members[s->cls[c].n++] = i;
		s->dev_cls[i] = c;
	}
	s->cl = calloc((size_t)s->nc * (size_t)s->nc, sizeof(*s->cl));
	if (!s->cl)
		return -ENOMEM;
	for (int a = 0; a < s->nc; a++)
		for (int b = 0; b < s->nc; b++) {
			struct clink *l = &s->cl[a * s->nc + b];
			if (a != b) {
				l->from = s->cls[a].rep;
				l->to = s->cls[b].rep;
			} else if (s->cls[a].n >= 2) {
				l->from = s->cls[a].members[0];
				l->to = s->cls[a].members[1];
			} else {
				continue;
			}
			l->present = lm_devices_link(d, l->from, l->to)->present;
		}
	return 0;
}

/* ---- runs of one device: which fit at T, and how to split them ---- */

static void push_label(struct solver *s, struct lablist *l, struct label x)
{
	for (int i = 0; i < l->n; i++) {
		const struct label *y = &l->v[i];
		if (y->cores <= x.cores && y->stages <= x.stages &&
		    y->mem <= x.mem)
			return;
	}
	int j = 0;
	for (int i = 0; i < l->n; i++) {
		const struct label *y = &l->v[i];
		if (!(x.cores <= y->cores && x.stages <= y->stages &&
		      x.mem <= y->mem))
			l->v[j++] = *y;
	}
	l->n = j;
	if (l->n == l->cap) {
		int cap = l->cap ? 2 * l->cap : 8;
		struct label *v = realloc(l->v, (size_t)cap * sizeof(*v));
		if (!v) {
			s->oom = 1;
			return;
		}
		l->v = v;
		l->cap = cap;
	}
	l->v[l->n++] = x;
}

/*
 * Labels of every split of runs a..b (b <= bmax) on class c into stages
 * at the current T: ll[p] holds the non-dominated (cores, stages, memory)
 * of splits covering a..p-1.
 */
static void split_dp(struct solver *s, int c, int a, int bmax)
{
	const struct cls *k = &s->cls[c];
	int cap = s->K ? s->K : k->cores;
	if (cap > s->mcap)
		cap = s->mcap;
	for (int p = a; p <= bmax + 1; p++)
		s->ll[p].n = 0;
	push_label(s, &s->ll[a], (struct label){ .prev_pos = -1,
						  .prev_idx = -1 });
	for (int p = a; p <= bmax; p++)
		for (int i = 0; i < s->ll[p].n; i++) {
			struct label L = s->ll[p].v[i];
			if (L.stages >= cap)
				continue;
			for (int y = p; y <= bmax; y++) {
				double t = run_time(s, c, p, y);
				int r = reps(t, s->T, k->cores);
				if (L.cores + r > k->cores)
					break;
				double mem = L.mem + lm_plan_cost_stage_memory(
							     s->c, p, y, r);
				if (mem > k->limit)
					break;
				s->work++;
				push_label(s, &s->ll[y + 1],
					   (struct label){ mem, L.cores + r,
							   L.stages + 1, p, i,
							   r });
			}
		}
}

/* The split of a..b with the fewest stages (then least memory), or -1. */
static int split_best(const struct solver *s, int c, int a, int b)
{
	const struct lablist *l = &s->ll[b + 1];
	double end = lm_plan_cost_run_end(s->c, a, b);
	int best = -1;
	for (int i = 0; i < l->n; i++) {
		const struct label *x = &l->v[i];
		if (x->mem + end > s->cls[c].limit)
			continue;
		if (best < 0 || x->stages < l->v[best].stages ||
		    (x->stages == l->v[best].stages &&
		     x->mem < l->v[best].mem))
			best = i;
	}
	return best;
}

/*
 * Every run from slice a on class c that fits at T, with its latency and
 * fewest stages, into the class's segment buffer (ends ascending).
 */
static void gen_segs(struct solver *s, int c, int a)
{
	const struct cls *k = &s->cls[c];
	int n = s->n, C = k->cores, bsplit = -1, bend = a - 1, cnt = 0;
	int split_ok = s->h <= s->T && C >= 2 && s->K != 1 && s->mcap >= 2;
	int *end = s->seg_end + (size_t)c * n, *m = s->seg_m + (size_t)c * n;
	double *cost = s->seg_cost + (size_t)c * n;
	for (int b = a; b < n; b++) {
		/* weights, arenas and bundles of one replica only grow */
		if (lm_plan_cost_stage_memory(s->c, a, b, 1) > k->limit)
			break;
		double t = run_time(s, c, a, b);
		int r = reps(t, s->T, C);
		s->work++;
		bend = b;
		s->mark[b] = 0;
		s->mark_t[b] = t;
		if (r > C) {
			/* splitting never needs fewer cores in all; the slack
			 * only guards against rounding */
			if (split_ok && t / C <= s->T * (1 + 1e-9)) {
				s->mark[b] = 1;
				bsplit = b;
				continue;
			}
			bend = b - 1;
			break;
		}
		if (lm_plan_cost_stage_memory(s->c, a, b, r) +
			    lm_plan_cost_run_end(s->c, a, b) <=
		    k->limit)
			s->mark[b] = 2;
		else if (r > 1 && split_ok) {
			s->mark[b] = 1;
			bsplit = b;
		}
	}
	if (bsplit >= 0)
		split_dp(s, c, a, bsplit);
	for (int b = a; b <= bend; b++) {
		if (s->mark[b] == 2) {
			end[cnt] = b;
			cost[cnt] = s->mark_t[b];
			m[cnt++] = 1;
		} else if (s->mark[b] == 1) {
			int j = split_best(s, c, a, b);
			if (j < 0)
				continue;
			int st = s->ll[b + 1].v[j].stages;
			end[cnt] = b;
			cost[cnt] = s->mark_t[b] + (st - 1) * s->h;
			m[cnt++] = st;
		}
	}
	s->seg_n[c] = cnt;
	s->seg_pos[c] = a;
	s->seg_gen[c] = s->gen;
}

static inline void segs_at(struct solver *s, int c, int a)
{
	if (s->seg_gen[c] != s->gen || s->seg_pos[c] != a)
		gen_segs(s, c, a);
}

/* Boundaries b + 1 of the runs from (c, a) that fit at T. */
static const uint64_t *run_mask(struct solver *s, int c, int a)
{
	size_t i = (size_t)c * s->n + a;
	uint64_t *m = s->mask + i * s->W;
	if (s->mask_gen[i] == s->gen)
		return m;
	segs_at(s, c, a);
	memset(m, 0, (size_t)s->W * sizeof(uint64_t));
	const int *end = s->seg_end + (size_t)c * s->n;
	for (int j = 0; j < s->seg_n[c]; j++) {
		int bit = end[j] + 1;
		m[bit >> 6] |= 1ull << (bit & 63);
	}
	s->mask_gen[i] = s->gen;
	return m;
}

/* Cuts where a run on c1 may hand over to one on c2 at T. */
static const uint64_t *link_mask(struct solver *s, int c1, int c2)
{
	int nc = s->nc, W = s->W;
	if (s->lmask_gen != s->gen) {
		memset(s->lmask, 0, (size_t)nc * nc * W * sizeof(uint64_t));
		for (int a = 0; a < nc; a++)
			for (int b = 0; b < nc; b++) {
				uint64_t *m = s->lmask + ((size_t)a * nc + b) * W;
				double lat, occ;
				for (int k = 1; k < s->n; k++)
					if (xfer(s, a, b, k, &lat, &occ) &&
					    occ <= s->T &&
					    s->hb[(size_t)b * (s->n + 1) + k] <
						    INF)
						m[k >> 6] |= 1ull << (k & 63);
			}
		s->lmask_gen = s->gen;
	}
	return s->lmask + ((size_t)c1 * nc + c2) * W;
}

/* ---- usage spaces ---- */

static void space_free(struct space *sp)
{
	free(sp->cls_of);
	free(sp->succ);
	memset(sp, 0, sizeof(*sp));
}

static int space_alloc(struct solver *s, struct space *sp, int kind, int nz)
{
	memset(sp, 0, sizeof(*sp));
	sp->kind = kind;
	sp->nz = nz;
	sp->cls_of = malloc((size_t)nz * sizeof(int));
	sp->succ = malloc(((size_t)nz + 1) * (size_t)s->nc * sizeof(int));
	if (!sp->cls_of || !sp->succ) {
		space_free(sp);
		return -ENOMEM;
	}
	for (size_t i = 0; i < ((size_t)nz + 1) * (size_t)s->nc; i++)
		sp->succ[i] = -1;
	return 0;
}

/* Per class, devices the exact space counts: no more than slices. */
static int usable(const struct solver *s, int c)
{
	return s->cls[c].n < s->n ? s->cls[c].n : s->n;
}

/* Count vectors u (mixed radix) times the current class. */
static int space_exact(struct solver *s, struct space *sp)
{
	int nc = s->nc;
	size_t U = 1, *stride = malloc((size_t)nc * sizeof(size_t));
	if (!stride)
		return -ENOMEM;
	for (int c = 0; c < nc; c++) {
		stride[c] = U;
		U *= (size_t)usable(s, c) + 1;
	}
	if (space_alloc(s, sp, SP_EXACT, (int)(U * (size_t)nc))) {
		free(stride);
		return -ENOMEM;
	}
	sp->topo = 1;
	for (size_t u = 0; u < U; u++)
		for (int c = 0; c < nc; c++) {
			size_t z = u * (size_t)nc + (size_t)c;
			sp->cls_of[z] = c;
			if ((u / stride[c]) % ((size_t)usable(s, c) + 1) == 0)
				continue; /* never the current class */
			for (int c2 = 0; c2 < nc; c2++)
				if ((u / stride[c2]) %
					    ((size_t)usable(s, c2) + 1) <
				    (size_t)usable(s, c2))
					sp->succ[z * nc + c2] =
						(int)((u + stride[c2]) * nc +
						      (size_t)c2);
		}
	for (int c2 = 0; c2 < nc; c2++)
		sp->succ[(size_t)sp->nz * nc + c2] =
			(int)(stride[c2] * (size_t)nc + (size_t)c2);
	free(stride);
	return 0;
}

/* The devices in a fixed order (classes given in `order`, each repeated
 * for its devices); a plan uses a subsequence, taking the earliest device
 * of the class it needs (equal devices, so the earliest dominates). */
static int space_order(struct solver *s, struct space *sp, const int *order)
{
	int nc = s->nc, nz = 0;
	for (int i = 0; i < nc; i++)
		nz += usable(s, order[i]);
	if (space_alloc(s, sp, SP_ORDER, nz))
		return -ENOMEM;
	sp->topo = 1;
	int z = 0;
	for (int i = 0; i < nc; i++)
		for (int j = 0; j < usable(s, order[i]); j++)
			sp->cls_of[z++] = order[i];
	/* successors: the next position holding each class */
	int *next = s->used;
	for (int c = 0; c < nc; c++)
		next[c] = -1;
	for (int zz = nz - 1; zz >= 0; zz--) {
		for (int c = 0; c < nc; c++)
			sp->succ[(size_t)zz * nc + c] = next[c];
		next[sp->cls_of[zz]] = zz;
	}
	for (int c = 0; c < nc; c++)
		sp->succ[(size_t)nz * nc + c] = next[c];
	return 0;
}

/* Every class has as many devices as needed (a relaxation). */
static int space_free_classes(struct solver *s, struct space *sp)
{
	int nc = s->nc;
	if (space_alloc(s, sp, SP_FREE, nc))
		return -ENOMEM;
	for (int c = 0; c < nc; c++) {
		sp->cls_of[c] = c;
		for (int c2 = 0; c2 < nc; c2++)
			sp->succ[c * nc + c2] = c2;
		sp->succ[nc * nc + c] = c;
	}
	return 0;
}

/* Only the total number of devices is limited (a relaxation). */
static int space_total(struct solver *s, struct space *sp, int total)
{
	int nc = s->nc;
	if (space_alloc(s, sp, SP_TOTAL, total * nc))
		return -ENOMEM;
	sp->topo = 1;
	for (int t = 0; t < total; t++)
		for (int c = 0; c < nc; c++) {
			int z = t * nc + c;
			sp->cls_of[z] = c;
			for (int c2 = 0; t + 1 < total && c2 < nc; c2++)
				sp->succ[z * nc + c2] = (t + 1) * nc + c2;
		}
	for (int c = 0; c < nc; c++)
		sp->succ[total * nc + c] = c;
	return 0;
}

/* ---- the dynamic programs ---- */

static int ensure_dp(struct solver *s, size_t cells, size_t row)
{
	if (cells > s->dp_cap) {
		free(s->F);
		free(s->bk);
		free(s->bz);
		free(s->bs);
		s->F = malloc(cells * sizeof(double));
		s->bk = malloc(cells * sizeof(int));
		s->bz = malloc(cells * sizeof(int));
		s->bs = malloc(cells * sizeof(short));
		s->dp_cap = cells;
		if (!s->F || !s->bk || !s->bz || !s->bs) {
			s->dp_cap = 0;
			return -ENOMEM;
		}
	}
	if (row > s->g_cap) {
		free(s->G);
		free(s->dom);
		free(s->fe);
		s->dom = malloc((size_t)s->nc * s->S * sizeof(double));
		s->fe = malloc((size_t)s->S * sizeof(double));
		free(s->gz);
		free(s->gs);
		free(s->touched);
		free(s->is_touched);
		s->G = malloc(row * sizeof(double));
		s->gz = malloc(row * sizeof(int));
		s->gs = malloc(row * sizeof(short));
		s->touched = malloc(row * sizeof(int));
		s->is_touched = calloc(row, 1);
		s->g_cap = row;
		if (!s->G || !s->gz || !s->gs || !s->touched ||
		    !s->is_touched || !s->dom || !s->fe) {
			s->g_cap = 0;
			return -ENOMEM;
		}
	}
	return 0;
}

/* Cell of F (and its back pointers) for boundary k, state z, stages q:
 * by state first, so a run's ends from one state sit side by side. */
#define FI(k, z, q) (((size_t)(z) * S + (size_t)(q)) * (size_t)(n + 1) + \
		     (size_t)(k))

/*
 * Least latency of a plan with period <= T (the current bound), at most
 * K stages and latency <= limit; INF when none.  Fills the back pointers
 * and the final state (*ez, *es) for extract().
 */
static double dp_value(struct solver *s, const struct space *sp, double limit,
		       int *ez, int *es)
{
	int n = s->n, nc = s->nc, nz = sp->nz, S = s->S;
	size_t row = (size_t)nz * S;
	double slack = limit < INF ? limit * (1 + 1e-12) : INF, best = INF;
	s->calls++;
	set_mcap(s, limit);
	if (ensure_dp(s, (size_t)(n + 1) * row, row)) {
		s->oom = 1;
		return INF;
	}
	for (size_t i = 0; i < (size_t)(n + 1) * row; i++)
		s->F[i] = INF;
	for (size_t i = 0; i < row; i++)
		s->G[i] = INF;
	for (int k = 0; k < n; k++) {
		int nt = 0;
		if (k == 0) {
			for (int c2 = 0; c2 < nc; c2++) {
				int z2 = sp->succ[(size_t)nz * nc + c2];
				if (z2 < 0 || !(s->hb[(size_t)c2 * (n + 1)] < INF))
					continue;
				s->G[(size_t)z2 * S] = 0;
				s->gz[(size_t)z2 * S] = -1;
				s->gs[(size_t)z2 * S] = 0;
				if (!s->is_touched[z2]) {
					s->is_touched[z2] = 1;
					s->touched[nt++] = z2;
				}
			}
		} else {
			for (size_t i = 0; i < (size_t)nc * S; i++)
				s->dom[i] = INF;
			for (int z = 0; z < nz; z++) {
				int c1 = sp->cls_of[z], any = 0;
				double *f = s->fe;
				/* in an ordered space an earlier device of the
				 * same class that got here as fast dominates */
				for (int q = 0; q < S; q++) {
					f[q] = s->F[FI(k, z, q)];
					if (sp->kind == SP_ORDER) {
						double *d = &s->dom[c1 * S + q];
						if (f[q] >= *d)
							f[q] = INF;
						else
							*d = f[q];
					}
					any |= f[q] < INF;
				}
				if (!any)
					continue;
				for (int c2 = 0; c2 < nc; c2++) {
					int z2 = sp->succ[(size_t)z * nc + c2];
					double lat, occ;
					double hb = s->hb[(size_t)c2 * (n + 1) +
							  k];
					if (z2 < 0 || !(hb < INF) ||
					    !xfer(s, c1, c2, k, &lat, &occ) ||
					    occ > s->T)
						continue;
					s->work += S;
					for (int q = 0; q < S; q++) {
						double v = f[q] + lat;
						size_t gi = (size_t)z2 * S + q;
						if (!(v + hb <= slack) ||
						    v >= s->G[gi])
							continue;
						s->G[gi] = v;
						s->gz[gi] = z;
						s->gs[gi] = (short)q;
						if (!s->is_touched[z2]) {
							s->is_touched[z2] = 1;
							s->touched[nt++] = z2;
						}
					}
				}
			}
		}
		for (int t = 0; t < nt; t++) {
			int z2 = s->touched[t], c2 = sp->cls_of[z2];
			double *g = s->G + (size_t)z2 * S;
			segs_at(s, c2, k);
			const int *end = s->seg_end + (size_t)c2 * n;
			const int *m = s->seg_m + (size_t)c2 * n;
			const double *cost = s->seg_cost + (size_t)c2 * n;
			s->work += (double)s->seg_n[c2] * S;
			for (int j = 0; j < s->seg_n[c2]; j++) {
				int nk = end[j] + 1;
				double hn = nk < n ? s->hmin[nk] : 0;
				for (int q = 0; q < S; q++) {
					if (!(g[q] < INF))
						continue;
					double v = g[q] + cost[j];
					int q2 = S > 1 ? q + m[j] : 0;
					if (q2 >= S || !(v + hn <= slack))
						continue;
					size_t fi = FI(nk, z2, q2);
					if (v < s->F[fi]) {
						s->F[fi] = v;
						s->bk[fi] = k;
						s->bz[fi] = s->gz[(size_t)z2 * S + q];
						s->bs[fi] = s->gs[(size_t)z2 * S + q];
					}
				}
			}
			for (int q = 0; q < S; q++)
				g[q] = INF;
			s->is_touched[z2] = 0;
		}
	}
	for (int z = 0; z < nz; z++)
		for (int q = 0; q < S; q++)
			if (s->F[FI(n, z, q)] < best &&
			    s->F[FI(n, z, q)] <= limit) {
				best = s->F[FI(n, z, q)];
				if (ez) {
					*ez = z;
					*es = q;
				}
			}
	return best;
}

/* Is there any plan with period <= T?  Topological spaces, no stage cap. */
static int dp_feasible(struct solver *s, const struct space *sp)
{
	int n = s->n, nc = s->nc, nz = sp->nz, W = s->W;
	size_t need = (size_t)nz * W;
	s->calls++;
	set_mcap(s, INF);
	if (need > s->bs_cap) {
		free(s->St);
		free(s->R);
		s->St = malloc(need * sizeof(uint64_t));
		s->R = malloc((size_t)W * sizeof(uint64_t));
		s->bs_cap = need;
		if (!s->St || !s->R) {
			s->bs_cap = 0;
			s->oom = 1;
			return 0;
		}
	}
	memset(s->St, 0, need * sizeof(uint64_t));
	for (int c2 = 0; c2 < nc; c2++) {
		int z2 = sp->succ[(size_t)nz * nc + c2];
		if (z2 >= 0 && s->hb[(size_t)c2 * (n + 1)] < INF)
			s->St[(size_t)z2 * W] |= 1;
	}
	for (int z = 0; z < nz; z++) {
		const uint64_t *st = s->St + (size_t)z * W;
		int any = 0;
		for (int w = 0; w < W && !any; w++)
			any = st[w] != 0;
		if (!any)
			continue;
		int c = sp->cls_of[z];
		memset(s->R, 0, (size_t)W * sizeof(uint64_t));
		for (int w = 0; w < W; w++)
			for (uint64_t bits = st[w]; bits; bits &= bits - 1) {
				int k = w * 64 + __builtin_ctzll(bits);
				const uint64_t *m = run_mask(s, c, k);
				for (int x = 0; x < W; x++)
					s->R[x] |= m[x];
				s->work += W;
			}
		if (s->R[n >> 6] & (1ull << (n & 63)))
			return 1;
		for (int c2 = 0; c2 < nc; c2++) {
			int z2 = sp->succ[(size_t)z * nc + c2];
			if (z2 < 0)
				continue;
			const uint64_t *lm = link_mask(s, c, c2);
			uint64_t *dst = s->St + (size_t)z2 * W;
			for (int x = 0; x < W; x++)
				dst[x] |= s->R[x] & lm[x];
			s->work += W;
		}
	}
	return 0;
}

/* A plan with period <= T (and latency <= limit) exists. */
static int pred(struct solver *s, const struct space *sp, double T,
		double limit)
{
	set_T(s, T);
	if (!(limit < INF) && sp->topo && s->S == 1)
		return dp_feasible(s, sp);
	return dp_value(s, sp, limit, NULL, NULL) < INF;
}

/* ---- candidate periods ---- */

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

/* Candidate periods in (lo, hi]: counted, or stored in s->cand. */
static size_t cands(struct solver *s, double lo, double hi, int store)
{
	size_t m = 0;
	int n = s->n, nc = s->nc;
#define ADD(v)                                                            \
	do {                                                              \
		if (store) {                                              \
			if (m == s->cand_cap) {                           \
				size_t cap = s->cand_cap ? 2 * s->cand_cap \
							 : 4096;          \
				double *nv = realloc(s->cand,             \
						     cap * sizeof(double)); \
				if (!nv) {                                \
					s->oom = 1;                       \
					return m;                         \
				}                                         \
				s->cand = nv;                             \
				s->cand_cap = cap;                        \
			}                                                 \
			s->cand[m] = (v);                                 \
		}                                                         \
		m++;                                                      \
	} while (0)
	for (int c = 0; c < nc; c++) {
		int C = s->cls[c].cores;
		for (int a = 0; a < n; a++)
			for (int b = a; b < n; b++) {
				if (lm_plan_cost_stage_memory(s->c, a, b, 1) >
				    s->cls[c].limit)
					break;
				double t = run_time(s, c, a, b);
				if (t / C > hi)
					break;
				if (t <= lo)
					continue;
				for (int r = reps(t, hi, C); r <= C; r++) {
					double v = t / r;
					if (v <= lo)
						break;
					ADD(v);
				}
			}
	}
	for (int a = 0; a < nc; a++)
		for (int b = 0; b < nc; b++)
			for (int k = 1; k < n; k++) {
				double lat, occ;
				if (xfer(s, a, b, k, &lat, &occ) && occ > lo &&
				    occ <= hi)
					ADD(occ);
			}
	if (s->h > lo && s->h <= hi)
		ADD(s->h);
#undef ADD
	s->work += (double)nc * n;
	return m;
}

/*
 * The smallest candidate period T in (lo, hi] for which pred holds, given
 * that it holds at hi and fails at lo.
 */
static double bisect(struct solver *s, const struct space *sp, double lo,
		     double hi, double limit)
{
	for (;;) { /* numerically, to a narrow window */
		if (!(hi > 0))
			return hi;
		if (lo > 0 && hi <= lo * 1.05)
			break;
		if (lo <= 0 && hi < 1e-9)
			break;
		double mid = lo > 0 ? sqrt(lo * hi) : hi / 16;
		if (pred(s, sp, mid, limit))
			hi = mid;
		else
			lo = mid;
	}
	size_t m;
	while ((m = cands(s, lo, hi, 0)) > CAND_MAX) {
		double mid = lo + (hi - lo) / 2;
		if (!(mid > lo && mid < hi))
			break;
		if (pred(s, sp, mid, limit))
			hi = mid;
		else
			lo = mid;
	}
	m = cands(s, lo, hi, 1);
	if (s->oom || m == 0)
		return hi;
	qsort(s->cand, m, sizeof(double), cmp_double);
	size_t u = 1;
	for (size_t i = 1; i < m; i++)
		if (s->cand[i] != s->cand[u - 1])
			s->cand[u++] = s->cand[i];
	/* the largest candidate <= hi holds: the plan found at hi has a
	 * period that is a candidate, at most hi and above lo */
	size_t a = 0, b = u - 1;
	while (a < b) {
		size_t mid = (a + b) / 2;
		if (pred(s, sp, s->cand[mid], limit))
			b = mid;
		else
			a = mid + 1;
	}
	return s->cand[a];
}

/* ---- from DP states to plans ---- */

static int extract(struct solver *s, const struct space *sp, int ez, int es,
		   double T, double lat, struct outcome *o)
{
	int n = s->n, S = s->S, cnt = 0;
	struct run *runs = malloc((size_t)n * sizeof(*runs));
	if (!runs)
		return -ENOMEM;
	int pos = n, z = ez, q = es;
	while (pos > 0 && z >= 0) {
		size_t fi = FI(pos, z, q);
		int k = s->bk[fi];
		runs[cnt++] = (struct run){ sp->cls_of[z], k, pos - 1 };
		int z2 = s->bz[fi], q2 = s->bs[fi];
		pos = k;
		z = z2;
		q = q2;
	}
	for (int i = 0; i < cnt / 2; i++) {
		struct run t = runs[i];
		runs[i] = runs[cnt - 1 - i];
		runs[cnt - 1 - i] = t;
	}
	free(o->runs);
	o->runs = runs;
	o->nruns = cnt;
	o->ok = 1;
	o->T = T;
	o->lat = lat;
	return 0;
}

/* The period of a plan of single-stage runs (what T = INF gives). */
static double runs_period(const struct solver *s, const struct outcome *o)
{
	double p = 0, lat, occ;
	for (int i = 0; i < o->nruns; i++) {
		const struct run *r = &o->runs[i];
		double t = run_time(s, r->cls, r->first, r->last);
		if (t > p)
			p = t;
		if (i + 1 < o->nruns &&
		    xfer(s, r->cls, o->runs[i + 1].cls, r->last + 1, &lat,
			 &occ) &&
		    occ > p)
			p = occ;
	}
	return p;
}

/* Does the outcome use no class more often than it has devices? */
static int counts_ok(struct solver *s, const struct outcome *o)
{
	int *used = s->used;
	memset(used, 0, (size_t)s->nc * sizeof(int));
	for (int i = 0; i < o->nruns; i++)
		if (++used[o->runs[i].cls] > s->cls[o->runs[i].cls].n)
			return 0;
	return 1;
}

/* Turn runs into stages on devices at period bound o->T. */
static int make_plan(struct solver *s, const struct outcome *o, lm_plan **out,
		     lm_error *e)
{
	lm_plan *p;
	int *used = s->used, ns = 0;
	memset(used, 0, (size_t)s->nc * sizeof(int));
	if (lm_plan_create(s->d, s->n, &p))
		return lm_fail(e, -ENOMEM, "out of memory");
	set_T(s, o->T);
	set_mcap(s, INF);
	for (int i = 0; i < o->nruns; i++) {
		const struct run *r = &o->runs[i];
		const struct cls *k = &s->cls[r->cls];
		int dev = k->members[used[r->cls]++];
		double t = run_time(s, r->cls, r->first, r->last);
		int rr = reps(t, s->T, k->cores);
		if (rr <= k->cores &&
		    lm_plan_cost_stage_memory(s->c, r->first, r->last, rr) +
				    lm_plan_cost_run_end(s->c, r->first,
							 r->last) <=
			    k->limit) {
			p->stages[ns++] = (lm_plan_stage){ .device = dev,
							   .first = r->first,
							   .last = r->last,
							   .cores = rr };
			continue;
		}
		split_dp(s, r->cls, r->first, r->last);
		int j = split_best(s, r->cls, r->first, r->last);
		if (j < 0 || s->oom) {
			lm_plan_free(p);
			return lm_fail(e, -EFAULT, "internal error: slices "
				       "%d-%d no longer split on '%s'",
				       r->first, r->last,
				       s->d->dev[dev].name);
		}
		int st = s->ll[r->last + 1].v[j].stages, pos = r->last + 1;
		ns += st;
		for (int q = ns - 1; pos > r->first; q--) {
			const struct label *L = &s->ll[pos].v[j];
			p->stages[q] = (lm_plan_stage){ .device = dev,
							 .first = L->prev_pos,
							 .last = pos - 1,
							 .cores = L->r };
			j = L->prev_idx;
			pos = L->prev_pos;
		}
	}
	p->n_stages = ns;
	*out = p;
	return 0;
}

/* ---- one usage space, one objective ---- */

/*
 * The best plan of space sp for the options, if it beats `cutoff` (the
 * incumbent's primary value: latency, or period).  With tiebreak == 0 the
 * latency objective skips the search for the best throughput among the
 * fastest plans.  Returns 1 with *o set, 0 when there is none (or none
 * better), -ENOMEM.
 */
static int run_space(struct solver *s, const struct space *sp,
		     const lm_solve_options *opt, double lo, double cutoff,
		     int tiebreak, struct outcome *o)
{
	double budget = opt->latency_budget_us > 0 ? opt->latency_budget_us
						   : INF;
	int ez = -1, es = 0;
	if (opt->objective == LM_PLAN_LATENCY) {
		double lim = budget;
		if (cutoff < INF && cutoff * (1 - TIE) < lim)
			lim = cutoff * (1 - TIE);
		set_T(s, INF);
		double L = dp_value(s, sp, lim, &ez, &es);
		if (s->oom)
			return -ENOMEM;
		if (!(L < INF))
			return 0;
		if (extract(s, sp, ez, es, INF, L, o))
			return -ENOMEM;
		if (!tiebreak)
			return 1;
		/* among the plans this fast, the highest throughput */
		double tie = L * (1 + TIE) + 1e-300;
		double T = bisect(s, sp, lo, runs_period(s, o), tie);
		set_T(s, T);
		double L2 = dp_value(s, sp, tie, &ez, &es);
		if (s->oom)
			return -ENOMEM;
		if (L2 < INF)
			return extract(s, sp, ez, es, T, L2, o) ? -ENOMEM : 1;
		return 1; /* keep the T = INF plan */
	}
	/* the least period of any plan, from feasibility alone: no plan's
	 * period passes s->Tmax, so a plan exists at all iff one fits it */
	double hi = s->Tmax;
	if (cutoff < INF && cutoff * (1 - TIE) < hi) {
		hi = cutoff * (1 - TIE);
		if (hi <= lo)
			return 0;
	}
	if (!pred(s, sp, hi, INF))
		return s->oom ? -ENOMEM : 0;
	double T = bisect(s, sp, lo, hi, INF);
	if (budget < INF && !pred(s, sp, T, budget)) {
		/* within the budget the period can only be longer: widen
		 * until a plan fits it, then bisect */
		double lo2 = T, hi2 = T;
		for (;;) {
			hi2 = hi2 > 0 ? hi2 * 2 : hi / 1024;
			if (hi2 >= hi) {
				hi2 = hi;
				if (!pred(s, sp, hi2, budget))
					return s->oom ? -ENOMEM : 0;
				break;
			}
			if (pred(s, sp, hi2, budget))
				break;
			lo2 = hi2;
		}
		T = bisect(s, sp, lo2, hi2, budget);
	}
	set_T(s, T);
	double L = dp_value(s, sp, budget, &ez, &es);
	if (s->oom)
		return -ENOMEM;
	if (!(L < INF)) { /* rounding at the edge: fall back to hi */
		T = hi;
		set_T(s, T);
		L = dp_value(s, sp, budget, &ez, &es);
		if (!(L < INF))
			return 0;
	}
	return extract(s, sp, ez, es, T, L, o) ? -ENOMEM : 1;
}

/* Is outcome a better than b (lexicographically, with ties)? */
static int better(const lm_solve_options *opt, const struct outcome *a,
		  const struct outcome *b)
{
	if (!b->ok)
		return a->ok;
	if (!a->ok)
		return 0;
	double pa = opt->objective == LM_PLAN_LATENCY ? a->lat : a->T;
	double pb = opt->objective == LM_PLAN_LATENCY ? b->lat : b->T;
	double sa = opt->objective == LM_PLAN_LATENCY ? a->T : a->lat;
	double sb = opt->objective == LM_PLAN_LATENCY ? b->T : b->lat;
	if (pa < pb * (1 - TIE))
		return 1;
	if (pa > pb * (1 + TIE))
		return 0;
	return sa < sb * (1 - TIE);
}

/* ---- set-up, bounds, estimate ---- */

static void solver_free(struct solver *s)
{
	if (s->cls)
		for (int c = 0; c < s->nc; c++)
			free(s->cls[c].members);
	free(s->cls);
	free(s->dev_cls);
	free(s->used);
	free(s->cl);
	free(s->hb);
	free(s->hmin);
	free(s->cover);
	free(s->after);
	free(s->mask);
	free(s->mask_gen);
	free(s->lmask);
	free(s->seg_end);
	free(s->seg_m);
	free(s->seg_cost);
	free(s->seg_n);
	free(s->seg_pos);
	free(s->seg_gen);
	free(s->mark);
	free(s->mark_t);
	if (s->ll)
		for (int i = 0; i <= s->n; i++)
			free(s->ll[i].v);
	free(s->ll);
	free(s->F);
	free(s->bk);
	free(s->bz);
	free(s->bs);
	free(s->G);
	free(s->dom);
	free(s->fe);
	free(s->gz);
	free(s->gs);
	free(s->touched);
	free(s->is_touched);
	free(s->St);
	free(s->R);
	free(s->cand);
}

/*
 * hb[c][k]: the least latency of slices k.. when the run from k is on
 * class c, with unlimited devices per class and no period bound (an
 * admissible bound for every space and every T).
 */
static void cost_to_go(struct solver *s)
{
	int n = s->n, nc = s->nc;
	/* after[c][k]: the least cost from boundary k on, once a run on
	 * class c has ended there: the transfer and what follows it */
	double *after = s->after;
	set_T(s, INF);
	for (int c = 0; c < nc; c++)
		s->hb[(size_t)c * (n + 1) + n] = 0;
	s->hmin[n] = 0;
	for (int k = n - 1; k >= 0; k--) {
		double hm = INF;
		s->cover[k] = -1;
		for (int c = 0; c < nc; c++) {
			double best = INF;
			gen_segs(s, c, k);
			const int *end = s->seg_end + (size_t)c * n;
			const double *cost = s->seg_cost + (size_t)c * n;
			if (s->seg_n[c] && end[s->seg_n[c] - 1] > s->cover[k])
				s->cover[k] = end[s->seg_n[c] - 1];
			for (int j = 0; j < s->seg_n[c]; j++) {
				int nk = end[j] + 1;
				double v = cost[j] +
					   (nk == n ? 0 : after[(size_t)c * n + nk]);
				if (v < best)
					best = v;
			}
			s->hb[(size_t)c * (n + 1) + k] = best;
			if (best < hm)
				hm = best;
		}
		s->hmin[k] = hm;
		for (int c = 0; k > 0 && c < nc; c++) {
			double a = INF, lat, occ;
			for (int c2 = 0; c2 < nc; c2++) {
				double h2 = s->hb[(size_t)c2 * (n + 1) + k];
				if (h2 < INF && xfer(s, c, c2, k, &lat, &occ) &&
				    lat + h2 < a)
					a = lat + h2;
			}
			after[(size_t)c * n + k] = a;
		}
	}
}

static int solver_init(struct solver *s, const lm_plan_cost *c,
		       const lm_solve_options *o)
{
	memset(s, 0, sizeof(*s));
	s->c = c;
	s->d = lm_plan_cost_devices(c);
	s->n = lm_plan_cost_slices(c);
	s->W = (s->n + 1 + 63) / 64;
	s->h = lm_plan_cost_batch(c)->handoff_us;
	s->gen = 1;
	s->mcap = 1 << 30;
	if (make_classes(s))
		return -ENOMEM;
	int n = s->n, nc = s->nc;
	long max_stages = 0;
	for (int i = 0; i < s->d->n; i++)
		max_stages += s->d->dev[i].cores;
	if (max_stages > n)
		max_stages = n;
	s->K = o->max_stages > 0 && o->max_stages < max_stages
		       ? o->max_stages : 0;
	s->S = s->K ? s->K + 1 : 1;
	s->hb = malloc((size_t)nc * (n + 1) * sizeof(double));
	s->hmin = malloc((size_t)(n + 1) * sizeof(double));
	s->cover = malloc((size_t)n * sizeof(int));
	s->after = malloc((size_t)nc * n * sizeof(double));
	s->mask = malloc((size_t)nc * n * s->W * sizeof(uint64_t));
	s->mask_gen = calloc((size_t)nc * n, sizeof(unsigned));
	s->lmask = malloc((size_t)nc * nc * s->W * sizeof(uint64_t));
	s->seg_end = malloc((size_t)nc * n * sizeof(int));
	s->seg_m = malloc((size_t)nc * n * sizeof(int));
	s->seg_cost = malloc((size_t)nc * n * sizeof(double));
	s->seg_n = calloc((size_t)nc, sizeof(int));
	s->seg_pos = calloc((size_t)nc, sizeof(int));
	s->seg_gen = calloc((size_t)nc, sizeof(unsigned));
	s->mark = malloc((size_t)n);
	s->mark_t = malloc((size_t)n * sizeof(double));
	s->ll = calloc((size_t)n + 1, sizeof(*s->ll));
	if (!s->hb || !s->hmin || !s->cover || !s->after || !s->mask || !s->mask_gen || !s->lmask ||
	    !s->seg_end || !s->seg_m || !s->seg_cost || !s->seg_n ||
	    !s->seg_pos || !s->seg_gen || !s->mark || !s->mark_t || !s->ll)
		return -ENOMEM;
	cost_to_go(s);
	for (int ci = 0; ci < nc; ci++) {
		double t = run_time(s, ci, 0, n - 1);
		if (t > s->Tmax)
			s->Tmax = t;
		for (int c2 = 0; c2 < nc; c2++)
			for (int k = 1; k < n; k++) {
				double lat, occ;
				if (xfer(s, ci, c2, k, &lat, &occ) && occ > s->Tmax)
					s->Tmax = occ;
			}
	}
	if (s->h > s->Tmax)
		s->Tmax = s->h;
	return s->oom ? -ENOMEM : 0;
}

/* No plan can have a period below this: a slice's time on its best class
 * with all the class's cores. */
static double period_floor(const struct solver *s)
{
	double lb = 0;
	for (int i = 0; i < s->n; i++) {
		double best = INF;
		for (int c = 0; c < s->nc; c++) {
			double t = run_time(s, c, i, i) / s->cls[c].cores;
			if (t < best)
				best = t;
		}
		if (best > lb)
			lb = best;
	}
	return lb;
}

static double exact_estimate(const struct solver *s,
			     const lm_solve_options *o, double *cells)
{
	double U = 1;
	for (int c = 0; c < s->nc; c++)
		U *= usable(s, c) + 1;
	double nz = U * s->nc, n = s->n;
	double runs = n < 64 ? n : 64;
	double bitset = nz * (n + 1) * s->W + nz * s->nc * s->W;
	double value = nz * (n + 1) * s->S * (s->nc + runs);
	*cells = nz * (n + 1) * s->S;
	/* Calibrated on the benchmark: the first DP at an unbounded period
	 * is the dear one; the rest are pruned by the bound on what follows,
	 * or are bitset searches over sparse sets. */
	double at_inf = nz * (n + 1) * s->S * (s->nc + n / 2);
	if (s->S > 1)
		return 32 * value;
	if (o->objective == LM_PLAN_LATENCY)
		return 8 * at_inf;
	return 4 * bitset + (o->latency_budget_us > 0 ? 4 : 1) * value;
}

double lm_solve_estimate(const lm_plan_cost *c, const lm_solve_options *o)
{
	struct solver s;
	double cells, est = INF;
	if (solver_init(&s, c, o) == 0)
		est = exact_estimate(&s, o, &cells);
	solver_free(&s);
	return est;
}

/* ---- why nothing fits ---- */

static int fail_slice(struct solver *s, lm_error *e)
{
	const lm_profile_batch *b = lm_plan_cost_batch(s->c);
	int big = 0, reach = -1, n = s->n;
	for (int i = 1; i < s->d->n; i++)
		if (lm_plan_cost_memory_limit(s->c, i) >
		    lm_plan_cost_memory_limit(s->c, big))
			big = i;
	double lim = lm_plan_cost_memory_limit(s->c, big);
	for (int i = 0; i < n; i++) {
		if (s->cover[i] > reach)
			reach = s->cover[i];
		if (reach >= i)
			continue;
		/* the least any one-replica run holding slice i needs */
		double need = INF;
		for (int a = 0; a <= i; a++)
			for (int z = i; z < n; z++) {
				double m = lm_plan_cost_stage_memory(s->c, a, z,
								     1) +
					   lm_plan_cost_run_end(s->c, a, z);
				if (m < need)
					need = m;
			}
		const lm_profile_slice *sl = &b->slices[i];
		char b1[32], b2[32], b3[32], b4[32], b5[32];
		char lab[LM_NAME_MAX + 4];
		snprintf(lab, sizeof(lab), sl->label[0] ? " (%s)" : "%s",
			 sl->label);
		return lm_fail(e, -ENOSPC, "slice %d%s fits on no device: it "
			       "needs at least %s (weights %s, arena %s, "
			       "bundles in and out %s at batch %d, with rings) "
			       "but the largest device, '%s', has %s free "
			       "(%.0f%% headroom kept)", i, lab,
			       lm_bytes_str(need, b1, sizeof(b1)),
			       lm_bytes_str(sl->weight_bytes, b2, sizeof(b2)),
			       lm_bytes_str(sl->arena_bytes, b3, sizeof(b3)),
			       lm_bytes_str(lm_plan_cost_boundary_bytes(s->c, i) +
						 lm_plan_cost_boundary_bytes(
							 s->c, i + 1),
					 b4, sizeof(b4)),
			       b->batch, s->d->dev[big].name,
			       lm_bytes_str(lim, b5, sizeof(b5)),
			       lm_plan_cost_headroom(s->c) * 100);
	}
	return 0;
}

/* The reason no plan exists, for the exact space. */
static int fail_reason(struct solver *s, const struct space *sp,
		       const lm_solve_options *o, lm_error *e)
{
	char b1[32], b2[32];
	if (o->max_stages > 0 && s->K) {
		int K = s->K, S = s->S;
		s->K = 0;
		s->S = 1;
		set_T(s, INF);
		int ez, es;
		double L = dp_value(s, sp, o->latency_budget_us > 0
						   ? o->latency_budget_us
						   : INF,
				    &ez, &es);
		int runs = 0;
		if (L < INF) {
			struct outcome oc = { 0 };
			if (extract(s, sp, ez, es, INF, L, &oc) == 0)
				runs = oc.nruns;
			free(oc.runs);
		}
		s->K = K;
		s->S = S;
		if (L < INF)
			return lm_fail(e, -ENOSPC, "--max-stages %d is too few "
				       "for these devices' memory (a plan with "
				       "%d stages fits)", o->max_stages, runs);
	}
	if (o->latency_budget_us > 0) {
		set_T(s, INF);
		double L = dp_value(s, sp, INF, NULL, NULL);
		if (L < INF)
			return lm_fail(e, -ENOSPC, "no plan meets the latency "
				       "budget of %.3f ms: the fastest plan "
				       "takes %.3f ms",
				       o->latency_budget_us / 1e3, L / 1e3);
	}
	if (!(s->hmin[0] < INF)) {
		/* even unlimited devices cannot pass the model along: find
		 * how far the linked devices with room get */
		int n = s->n, far = 0;
		char *reach = calloc((size_t)n + 1, (size_t)s->nc);
		if (!reach)
			return lm_fail(e, -ENOMEM, "out of memory");
		set_T(s, INF);
		for (int c = 0; c < s->nc; c++)
			reach[c] = 1;
		for (int k = 0; k < n; k++)
			for (int c = 0; c < s->nc; c++) {
				if (!reach[(size_t)k * s->nc + c])
					continue;
				gen_segs(s, c, k);
				for (int j = 0; j < s->seg_n[c]; j++) {
					int nk = s->seg_end[(size_t)c * n + j] + 1;
					double lat, occ;
					if (nk > far)
						far = nk;
					for (int c2 = 0; nk < n && c2 < s->nc;
					     c2++)
						if (xfer(s, c, c2, nk, &lat,
							 &occ))
							reach[(size_t)nk *
								      s->nc +
							      c2] = 1;
				}
			}
		free(reach);
		if (far == 0)
			return lm_fail(e, -ENOSPC, "no placement fits: no "
				       "device has room for slice 0 with its "
				       "buffers");
		return lm_fail(e, -ENOSPC, "no placement fits: the devices "
			       "can hold slices 0-%d, but none with room for "
			       "slice %d onward has a link from the ones "
			       "before", far - 1, far);
	}
	double need = 0, have = 0;
	for (int i = 0; i < s->n; i++)
		need += lm_plan_cost_stage_memory(s->c, i, i, 1) -
			LM_PLAN_RING_DEPTH *
				lm_plan_cost_bundle_bytes(s->c, i);
	for (int i = 0; i < s->d->n; i++)
		have += lm_plan_cost_memory_limit(s->c, i);
	return lm_fail(e, -ENOSPC, "no placement fits: the model needs "
		       "about %s (weights, arenas and buffers) and the %d "
		       "devices have %s free, too little once split along "
		       "the links", lm_bytes_str(need, b1, sizeof(b1)), s->d->n,
		       lm_bytes_str(have, b2, sizeof(b2)));
}

/* ---- the heuristic ---- */

static double class_time(const struct solver *s, int c)
{
	return run_time(s, c, 0, s->n - 1);
}

static int order_cmp_key(const struct solver *s, int key, int a, int b)
{
	double x = 0, y = 0;
	switch (key) {
	case 0: x = class_time(s, a); y = class_time(s, b); break;
	case 1: x = -class_time(s, a); y = -class_time(s, b); break;
	case 2: x = -s->cls[a].limit; y = -s->cls[b].limit; break;
	case 3: x = s->cls[a].limit; y = s->cls[b].limit; break;
	case 4:
		x = -s->cls[a].n * s->cls[a].cores / (class_time(s, a) + 1e-9);
		y = -s->cls[b].n * s->cls[b].cores / (class_time(s, b) + 1e-9);
		break;
	}
	return x < y ? -1 : x > y ? 1 : a - b;
}

/* Class orders to try: all of them up to 4 classes, else a few. */
static int class_orders(const struct solver *s, const struct outcome *hint,
			int **out)
{
	int nc = s->nc, cnt = 0;
	int max = nc <= 4 ? 24 : MAX_ORDERS;
	int *o = malloc((size_t)max * nc * sizeof(int));
	if (!o)
		return -ENOMEM;
	if (nc <= 4) {
		int p[4] = { 0, 1, 2, 3 };
		/* every permutation of 0..nc-1 (Heap's algorithm, iterative) */
		int idx[4] = { 0 }, i = 0;
		memcpy(o, p, (size_t)nc * sizeof(int));
		cnt = 1;
		while (i < nc) {
			if (idx[i] < i) {
				int j = i % 2 ? idx[i] : 0, t = p[j];
				p[j] = p[i];
				p[i] = t;
				memcpy(o + (size_t)cnt * nc, p,
				       (size_t)nc * sizeof(int));
				cnt++;
				idx[i]++;
				i = 0;
			} else {
				idx[i++] = 0;
			}
		}
		*out = o;
		return cnt;
	}
	for (int key = 0; key <= 5 && cnt < max; key++) {
		int *p = o + (size_t)cnt * nc, m = 0;
		if (key == 5) { /* the relaxed plan's classes, in its order */
			if (!hint || !hint->ok)
				continue;
			for (int i = 0; i < hint->nruns; i++) {
				int c = hint->runs[i].cls, seen = 0;
				for (int j = 0; j < m; j++)
					seen |= p[j] == c;
				if (!seen)
					p[m++] = c;
			}
		}
		for (int c = 0; c < nc; c++) { /* the rest, by key (insertion) */
			int seen = 0;
			for (int j = 0; j < m; j++)
				seen |= p[j] == c;
			if (seen)
				continue;
			int j = m++;
			while (j > 0 && key < 5 &&
			       order_cmp_key(s, key, c, p[j - 1]) < 0) {
				p[j] = p[j - 1];
				j--;
			}
			p[j] = c;
		}
		int dup = 0;
		for (int q = 0; q < cnt && !dup; q++)
			dup = !memcmp(o + (size_t)q * nc, p,
				      (size_t)nc * sizeof(int));
		if (!dup)
			cnt++;
	}
	*out = o;
	return cnt;
}

/*
 * A lower bound on the period from the fractional relaxation: slices may
 * be shared out in any fractions, each class offering n_c x cores x T of
 * work per period.  By weak duality, for any weights y_c >= 0
 *   T >= sum_i min_c (y_c t_ic) / sum_c y_c n_c cores_c,
 * and a coordinate search over y finds a good one within `budget` steps.
 */
static double dual_eval(const struct solver *s, const double *y)
{
	double num = 0, den = 0;
	for (int i = 0; i < s->n; i++) {
		double m = INF;
		for (int c = 0; c < s->nc; c++) {
			double v = y[c] * run_time(s, c, i, i);
			if (v < m)
				m = v;
		}
		num += m;
	}
	for (int c = 0; c < s->nc; c++)
		den += y[c] * s->cls[c].n * s->cls[c].cores;
	return den > 0 ? num / den : 0;
}

static double dual_bound(struct solver *s, double budget, double *y)
{
	static const double step[4] = { 0.5, 0.8, 1.25, 2 };
	double best;
	for (int c = 0; c < s->nc; c++) /* y = speed: exact when related */
		y[c] = 1 / (run_time(s, c, 0, s->n - 1) + 1e-300);
	best = dual_eval(s, y);
	double cost = (double)s->n * s->nc, spent = cost;
	for (int improved = 1; improved && spent < budget;) {
		improved = 0;
		for (int c = 0; c < s->nc && spent < budget; c++)
			for (int j = 0; j < 4; j++) {
				double keep = y[c];
				y[c] *= step[j];
				double v = dual_eval(s, y);
				spent += cost;
				if (v > best * (1 + 1e-12)) {
					best = v;
					improved = 1;
				} else {
					y[c] = keep;
				}
			}
	}
	s->work += spent;
	return best;
}

/*
 * Lagrangian certificate at the current T: with unlimited devices per
 * class, every plan that fits T uses devices of total price
 * sum_c lam_c u_c; if the cheapest exceeds sum_c lam_c n_c, no plan with
 * u_c <= n_c exists.  The run granularity, memory, links and handoffs all
 * count here, which the fractional bound ignores.  Returns 1 when priced
 * out, 0 when not (u: the devices per class of the cheapest plan), -1 when
 * no plan fits T even with unlimited devices.
 */
static int priced_out(struct solver *s, const double *lam, double *V, int *P,
		      int *u)
{
	int n = s->n, nc = s->nc, arg = -1;
	double cap = 0, best = INF;
	for (int c = 0; c < nc; c++)
		cap += lam[c] * s->cls[c].n;
	for (size_t i = 0; i < (size_t)(n + 1) * nc; i++)
		V[i] = INF;
	for (int k = 0; k < n; k++)
		for (int c2 = 0; c2 < nc; c2++) {
			double in = k == 0 ? 0 : INF, lat, occ;
			int from = -1;
			for (int c = 0; k > 0 && c < nc; c++) {
				double v = V[(size_t)k * nc + c];
				if (v < in && xfer(s, c, c2, k, &lat, &occ) &&
				    occ <= s->T) {
					in = v;
					from = k * nc + c;
				}
			}
			if (!(in < INF))
				continue;
			segs_at(s, c2, k);
			const int *end = s->seg_end + (size_t)c2 * n;
			for (int j = 0; j < s->seg_n[c2]; j++) {
				size_t i = (size_t)(end[j] + 1) * nc + c2;
				if (in + lam[c2] < V[i]) {
					V[i] = in + lam[c2];
					P[i] = from;
				}
			}
			s->work += s->seg_n[c2] + nc;
		}
	for (int c = 0; c < nc; c++)
		if (V[(size_t)n * nc + c] < best) {
			best = V[(size_t)n * nc + c];
			arg = n * nc + c;
		}
	if (!(best < INF))
		return -1;
	if (best > cap * (1 + 1e-12))
		return 1;
	memset(u, 0, (size_t)nc * sizeof(int));
	for (int i = arg; i >= 0; i = P[i])
		u[i % nc]++;
	return 0;
}

/*
 * The largest period the certificate rules out, between lo and hi; the
 * prices start at the dual's weights and move towards the classes the
 * cheapest plan overuses (a few subgradient steps per period).
 */
static double priced_bound(struct solver *s, const double *y, double lo,
			   double hi, double budget)
{
	int nc = s->nc;
	double *lam = malloc((size_t)nc * sizeof(double));
	double *lam0 = malloc((size_t)nc * sizeof(double));
	double *V = malloc((size_t)(s->n + 1) * nc * sizeof(double));
	int *P = malloc((size_t)(s->n + 1) * nc * sizeof(int));
	int *u = malloc((size_t)nc * sizeof(int));
	double per = (double)s->n * (nc * 8 + nc * nc);
	if (!lam || !lam0 || !V || !P || !u)
		goto out;
	/* a device's price: the work it can do, in the dual's units */
	for (int c = 0; c < nc; c++)
		lam[c] = lam0[c] = y[c] * s->cls[c].cores;
	double spent = 0;
	for (int i = 0; i < 40 && hi > lo * (1 + 1e-6) && spent < budget;
	     i++) {
		double mid = lo + (hi - lo) / 2;
		set_T(s, mid);
		spent += per;
		int r = priced_out(s, lam0, V, P, u);
		for (int step = 0; r == 0 && step < 12 && spent < budget;
		     step++) {
			spent += per;
			r = priced_out(s, lam, V, P, u);
			if (r != 0)
				break;
			int over = 0;
			for (int c = 0; c < nc; c++) {
				double x = (double)(u[c] - s->cls[c].n) /
					   s->cls[c].n;
				over |= x > 0;
				lam[c] *= exp(0.7 * fmax(-0.5, fmin(1, x)));
			}
			if (!over)
				break; /* the cheapest plan is a real one */
		}
		if (r != 0)
			lo = mid;
		else
			hi = mid;
	}
out:
	free(lam);
	free(lam0);
	free(V);
	free(P);
	free(u);
	return lo;
}

/* ---- the entry point ---- */

static void fill_plan(lm_plan *p, const lm_solve_options *o)
{
	p->objective = o->objective;
	p->latency_budget_us = o->latency_budget_us > 0 ? o->latency_budget_us
							: 0;
	p->max_stages = o->max_stages > 0 ? o->max_stages : 0;
}

int lm_solve(const lm_plan_cost *c, const lm_solve_options *o, lm_plan **out,
	     lm_error *e)
{
	struct solver s;
	struct space sp = { 0 };
	struct outcome best = { 0 }, cur = { 0 }, relaxed = { 0 };
	int rc, exact;
	double t0 = now(), cells, bound_primary = 0, *y = NULL;
	char note[256] = "";
	*out = NULL;
	if (o->objective != LM_PLAN_LATENCY && o->objective != LM_PLAN_THROUGHPUT)
		return lm_fail(e, -EINVAL, "unknown objective");
	if (o->max_stages < 0 || o->max_stages > 32000 ||
	    !(o->latency_budget_us >= 0))
		return lm_fail(e, -EINVAL, "bad --max-stages or "
			       "--latency-budget");
	if ((rc = solver_init(&s, c, o))) {
		solver_free(&s);
		return lm_fail(e, rc, "out of memory");
	}
	if ((rc = fail_slice(&s, e)))
		goto out;
	double lo = period_floor(&s);
	lo = lo > 0 ? nextafter(lo, 0) : -1;
	double est = exact_estimate(&s, o, &cells);
	double limit = o->work_limit > 0 ? o->work_limit : LM_SOLVE_WORK_LIMIT;
	exact = o->mode == LM_SOLVE_EXACT ||
		(o->mode == LM_SOLVE_AUTO && est <= limit && cells < 2e7);
	if (exact && !(cells < 4e8)) {
		rc = lm_fail(e, -E2BIG, "an exact search over %d devices in %d "
			     "classes needs %.1e states, more than this "
			     "program can hold", s.d->n, s.nc, cells);
		goto out;
	}

	/* The relaxation with unlimited devices per class: often the answer
	 * for latency, always a bound on it, and a hint for the heuristic. */
	if ((rc = space_free_classes(&s, &sp)))
		goto nomem;
	if (o->objective == LM_PLAN_LATENCY) {
		rc = run_space(&s, &sp, o, lo, INF, 1, &relaxed);
		if (rc < 0)
			goto nomem;
		bound_primary = relaxed.ok ? relaxed.lat : INF;
	} else if (!exact) {
		set_T(&s, INF);
		int ez, es;
		double L = dp_value(&s, &sp, INF, &ez, &es);
		if (L < INF && extract(&s, &sp, ez, es, INF, L, &relaxed))
			goto nomem;
		y = malloc((size_t)s.nc * sizeof(double));
		if (!y)
			goto nomem;
		bound_primary = fmax(lo, dual_bound(&s, limit / 20, y));
	}
	space_free(&sp);
	if (relaxed.ok && o->objective == LM_PLAN_LATENCY &&
	    counts_ok(&s, &relaxed)) {
		best = relaxed;
		relaxed.runs = NULL;
		exact = 1;
	} else if (exact) {
		if ((rc = space_exact(&s, &sp)))
			goto nomem;
		rc = run_space(&s, &sp, o, lo, INF, 1, &best);
		if (rc < 0)
			goto nomem;
		if (!best.ok) {
			rc = fail_reason(&s, &sp, o, e);
			goto out;
		}
	} else {
		int *orders, no = class_orders(&s, &relaxed, &orders), pick = -1;
		if (no < 0)
			goto nomem;
		for (int i = 0; i < no; i++) {
			space_free(&sp);
			if ((rc = space_order(&s, &sp, orders + (size_t)i * s.nc))) {
				free(orders);
				goto nomem;
			}
			double cut = !best.ok ? INF
				     : o->objective == LM_PLAN_LATENCY ? best.lat
								       : best.T;
			rc = run_space(&s, &sp, o, lo, cut, 0, &cur);
			if (rc < 0) {
				free(orders);
				goto nomem;
			}
			if (rc > 0 && better(o, &cur, &best)) {
				struct outcome t = best;
				best = cur;
				cur = t;
				pick = i;
			}
		}
		if (pick >= 0 && o->objective == LM_PLAN_LATENCY) {
			/* the best throughput among the fastest, for the
			 * order that won */
			space_free(&sp);
			if ((rc = space_order(&s, &sp,
					      orders + (size_t)pick * s.nc)) ||
			    run_space(&s, &sp, o, lo, INF, 1, &best) < 0) {
				free(orders);
				goto nomem;
			}
		}
		free(orders);
		/* A tighter bound on the period: only the total number of
		 * devices limited, when that is cheap enough. */
		int total = 0;
		for (int k = 0; k < s.nc; k++)
			total += usable(&s, k);
		if (total > s.n)
			total = s.n;
		if (o->objective == LM_PLAN_THROUGHPUT && relaxed.ok &&
		    (double)total * s.nc * (s.n + 1) * s.W * 40 < limit) {
			space_free(&sp);
			if ((rc = space_total(&s, &sp, total)))
				goto nomem;
			struct outcome tb = { 0 };
			int r2 = run_space(&s, &sp, o, lo, INF, 0, &tb);
			if (r2 < 0) {
				free(tb.runs);
				goto nomem;
			}
			if (tb.ok && tb.T > bound_primary)
				bound_primary = tb.T;
			free(tb.runs);
		}
		if (o->objective == LM_PLAN_THROUGHPUT && best.ok && y)
			bound_primary = fmax(bound_primary,
					     priced_bound(&s, y, bound_primary,
							  best.T, limit / 4));
		snprintf(note, sizeof(note), "%d devices in %d classes: the "
			 "exact search would take about %.1e steps (limit "
			 "%.1e); heuristic: each class one block, %d class "
			 "orders", s.d->n, s.nc, est, limit, no);
		if (!best.ok) {
			space_free(&sp);
			if (space_free_classes(&s, &sp))
				goto nomem;
			if (!relaxed.ok)
				rc = fail_reason(&s, &sp, o, e);
			else
				rc = lm_fail(e, -ENOSPC, "no plan found: %s; "
					     "a plan may still exist (try "
					     "fewer devices)", note);
			goto out;
		}
	}

	lm_plan *p = NULL;
	if ((rc = make_plan(&s, &best, &p, e)))
		goto out;
	fill_plan(p, o);
	if ((rc = lm_plan_evaluate(c, p, e))) {
		lm_fail_prefix(e, -EFAULT, "internal error: the solver's plan "
			       "fails its check");
		lm_plan_free(p);
		rc = -EFAULT;
		goto out;
	}
	if (exact) {
		p->exact = 1;
		p->bound = o->objective == LM_PLAN_LATENCY ? p->latency_us
							   : p->throughput_rps;
	} else {
		if (o->objective == LM_PLAN_LATENCY) {
			p->bound = bound_primary;
			p->exact = p->latency_us <= bound_primary * (1 + TIE);
		} else {
			p->bound = bound_primary > 0 ? p->batch * 1e6 /
							       bound_primary
						     : INF;
			p->exact = p->period_us <= bound_primary * (1 + TIE);
		}
		if (!(p->bound < INF))
			p->bound = 0;
		snprintf(p->note, sizeof(p->note), "%s", note);
	}
	p->solve_seconds = now() - t0;
	*out = p;
	rc = 0;
	goto out;
nomem:
	rc = lm_fail(e, -ENOMEM, "out of memory while placing %d slices on "
		     "%d devices", s.n, s.d->n);
out:
	space_free(&sp);
	free(best.runs);
	free(cur.runs);
	free(relaxed.runs);
	free(y);
	solver_free(&s);
	return rc;
}
