/*
 * pipeline.c: loading stages, making edges, starting and stopping the
 * workers, freeing (see pipeline.h).  The worker loop is in worker.c.
 */
#include "pipeline.h"

#include <errno.h>
#include <numa.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <rte_errno.h>
#include <rte_launch.h>
#include <rte_lcore.h>

#include "lamina/log.h"
#include "lamina/slicer.h"

int lm_pipeline_create(const struct lm_dp_stage_spec *s, uint32_t gen,
		       double cycles_per_us, struct lm_pipeline **out,
		       lm_error *e)
{
	struct lm_pipeline *p = calloc(1, sizeof(*p));
	if (!p)
		return lm_fail(e, -ENOMEM, "out of memory");
	snprintf(p->id, sizeof(p->id), "%s", s->deployment);
	snprintf(p->dir, sizeof(p->dir), "%s", s->dir);
	p->gen = gen;
	p->batch = s->batch;
	p->n_stages = s->n_stages;
	p->cycles_per_us = cycles_per_us;
	*out = p;
	return 0;
}

int lm_pipeline_remote(const struct lm_pipeline *p)
{
	for (unsigned k = 0; k <= p->n_stages; k++)
		if (p->edges[k].remote_in || p->edges[k].remote_out)
			return 1;
	return 0;
}

/* ---- one stage ---- */

static int same_shape(const lm_value *v, const struct lm_dp_tdesc *d,
		      const char *file, lm_error *e)
{
	char a[128], b[128];
	if (v->dtype == d->dtype && v->rank == d->rank &&
	    !memcmp(v->dims, d->dims, sizeof(v->dims[0]) * (size_t)v->rank))
		return 0;
	return lm_fail(e, -EINVAL, "%s: tensor '%s' is %s %s in the slice "
		       "but %s %s in the manifest", file, d->name,
		       lm_dtype_name(v->dtype),
		       lm_shape_str(v->rank, v->dims, a, sizeof(a)),
		       lm_dtype_name(d->dtype),
		       lm_shape_str(d->rank, d->dims, b, sizeof(b)));
}

static void replica_free(struct lm_dp_replica *r)
{
	if (!r)
		return;
	lm_session_free(r->step.session);
	lm_graph_free(r->step.graph);
	free(r);
}

/* Slices [first, last] of the folder as one graph whose outputs are the
 * tensors made in it that leave the stage. */
static int stage_graph(const struct lm_dp_stage *st, unsigned batch,
		       const lm_manifest *m, lm_graph **out, lm_error *e)
{
	int n = (int)(st->last - st->first + 1), rc = 0;
	char (*path)[PATH_MAX] = calloc((size_t)n, sizeof(*path));
	const char **paths = calloc((size_t)n, sizeof(*paths));
	lm_graph *g = NULL;
	if (!path || !paths)
		rc = lm_fail(e, -ENOMEM, "out of memory");
	for (int k = 0; k < n && !rc; k++) {
		rc = lm_manifest_slice_path(m, (int)st->first + k, path[k],
					    sizeof(path[k]), e);
		paths[k] = path[k];
	}
	if (!rc)
		rc = lm_slice_join(paths, n,
				   lm_manifest_slice_batch(m, batch), &g, e);
	for (int i = 0; i < st->out.n && !rc; i++) {
		int v = lm_graph_find(g, st->out.t[i].name);
		if (v >= 0 && g->values[v].kind == LM_VAL_NODE &&
		    lm_graph_add_output(g, v))
			rc = lm_fail(e, -ENOMEM, "out of memory");
	}
	free(path);
	free(paths);
	if (rc) {
		lm_graph_free(g);
		return rc;
	}
	*out = g;
	return 0;
}

/* The stage's session over graph g (the step owns g from here on), and
 * where each of its inputs and outputs sits in the bundles; the tensors
 * leaving the stage that it does not make pass through it (copies). */
static int load_step(struct lm_dp_replica *r, lm_graph *g, const char *what,
		     lm_error *e)
{
	struct lm_dp_stage *st = r->stage;
	struct lm_dp_step *s = &r->step;
	int rc;
	s->graph = g;
	if (g->n_inputs > LM_DP_MAX_TENSORS || g->n_outputs > LM_DP_MAX_TENSORS)
		return lm_fail(e, -E2BIG, "%s: more than %d inputs or outputs",
			       what, LM_DP_MAX_TENSORS);
	lm_session_options so = { .threads = 1 };
	if ((rc = lm_session_create(g, &so, &s->session, e)))
		return lm_fail_prefix(e, rc, "%s", what);
	s->n_in = g->n_inputs;
	s->n_out = g->n_outputs;
	for (int i = 0; i < g->n_inputs; i++) {
		const lm_value *v = &g->values[g->inputs[i]];
		int k = lm_dp_layout_find(&st->in, v->name);
		if (k < 0)
			return lm_fail(e, -EINVAL, "%s: input '%s' is not "
				       "carried into the stage", what, v->name);
		if ((rc = same_shape(v, &st->in.t[k], what, e)))
			return rc;
		lm_tensor_set_shape(&s->in[i], v->dtype, v->rank, v->dims);
		s->in[i].nbytes = lm_value_bytes(v);
		s->in_off[i] = st->in.t[k].offset;
	}
	for (int j = 0; j < g->n_outputs; j++) {
		const lm_value *v = &g->values[g->outputs[j]];
		int k = lm_dp_layout_find(&st->out, v->name);
		if (k < 0)
			return lm_fail(e, -EINVAL, "%s: output '%s' does not "
				       "leave the stage", what, v->name);
		if ((rc = same_shape(v, &st->out.t[k], what, e)))
			return rc;
		lm_tensor_set_shape(&s->out[j], v->dtype, v->rank, v->dims);
		s->out[j].nbytes = lm_value_bytes(v);
		s->out_off[j] = st->out.t[k].offset;
	}
	if (st->n_replicas)
		return 0; /* the first replica recorded the copies */
	for (int i = 0; i < st->out.n; i++) {
		const struct lm_dp_tdesc *t = &st->out.t[i];
		int v = lm_graph_find(g, t->name);
		if (v >= 0 && g->values[v].kind == LM_VAL_NODE)
			continue;
		int k = lm_dp_layout_find(&st->in, t->name);
		if (k < 0)
			return lm_fail(e, -EINVAL, "%s: tensor '%s' leaves the "
				       "stage but nothing in it makes it", what,
				       t->name);
		st->copies[st->n_copies++] = (struct lm_dp_copy){
			st->in.t[k].offset, t->offset, t->nbytes };
	}
	return 0;
}

static int replica_load(struct lm_pipeline *p, struct lm_dp_stage *st,
			const lm_manifest *m, const struct lm_dp_lcores *lc,
			unsigned lcore, struct lm_dp_replica **out,
			lm_error *e)
{
	struct lm_dp_replica *r = aligned_alloc(LM_DP_ALIGN, sizeof(*r));
	lm_graph *g = NULL;
	char what[PATH_MAX + 64];
	int rc;
	if (!r)
		return lm_fail(e, -ENOMEM, "out of memory");
	memset(r, 0, sizeof(*r));
	r->stage = st;
	r->lcore = lcore;
	r->cpu = lc->l[lcore].cpu;
	r->socket = lm_dp_cpu_node(r->cpu);
	snprintf(what, sizeof(what), "%s: slices %u-%u", p->dir, st->first,
		 st->last);
	/* weights, packed kernels and the arena on the worker's node */
	if (numa_available() >= 0)
		numa_set_preferred(r->socket);
	if (!(rc = stage_graph(st, p->batch, m, &g, e)))
		rc = load_step(r, g, what, e);
	if (numa_available() >= 0)
		numa_set_localalloc();
	if (rc) {
		replica_free(r);
		return rc;
	}
	*out = r;
	return 0;
}

static void stage_free(struct lm_dp_stage *st, struct lm_dp_lcores *lc)
{
	if (!st)
		return;
	for (int i = 0; i < st->n_replicas; i++) {
		if (lc)
			lc->l[st->rep[i]->lcore].used = 0;
		replica_free(st->rep[i]);
	}
	lm_dp_layout_clear(&st->in);
	lm_dp_layout_clear(&st->out);
	free(st);
}

/* Worker lcores for a stage: one free slot on each cpu asked for, or, when
 * none is asked for, one on the worker cpu holding the fewest stages. */
static int pick_lcores(const struct lm_dp_lcores *lc, const uint32_t *cpus,
		       unsigned n, unsigned *out, lm_error *e)
{
	uint32_t chosen_cpu = 0;
	if (n == 0) {
		unsigned best = UINT_MAX;
		for (unsigned i = 0; i < lc->n_worker_cpus; i++) {
			unsigned c = lc->worker_cpus[i], load = 0, free_ = 0;
			for (unsigned l = 1; l < lc->n; l++)
				if (lc->l[l].cpu == c) {
					load += lc->l[l].used != 0;
					free_ += !lc->l[l].used;
				}
			if (free_ && load <= best) {
				best = load;
				chosen_cpu = c;
			}
		}
		if (best == UINT_MAX)
			return lm_fail(e, -EBUSY, "every worker slot holds a "
				       "stage (%u lcores)", lc->n - 1);
		cpus = &chosen_cpu;
		n = 1;
	}
	for (unsigned i = 0; i < n; i++) {
		unsigned l;
		for (l = 1; l < lc->n; l++) {
			int taken = lc->l[l].used;
			for (unsigned k = 0; k < i && !taken; k++)
				taken = out[k] == l;
			if (lc->l[l].cpu == cpus[i] && !taken)
				break;
		}
		if (l == lc->n) {
			int worker = 0;
			for (unsigned w = 0; w < lc->n_worker_cpus; w++)
				worker |= lc->worker_cpus[w] == cpus[i];
			return worker ? lm_fail(e, -EBUSY, "core %u has no free "
						"worker slot", cpus[i])
				      : lm_fail(e, -EINVAL, "core %u is not a "
						"worker core of this laminad",
						cpus[i]);
		}
		out[i] = l;
	}
	return 0;
}

static void add_chunk(struct rte_mempool *mp, void *opaque,
		      struct rte_mempool_memhdr *memhdr, unsigned mem_idx)
{
	(void)mp;
	(void)mem_idx;
	*(uint64_t *)opaque += memhdr->len;
}

/* Make edge k's layout (cut `cut`) and a pool of exactly `bundles`. */
static int edge_make(struct lm_pipeline *p, unsigned k,
		     const lm_manifest *m, int cut, int socket,
		     unsigned bundles, uint64_t *bytes, lm_error *e)
{
	struct lm_dp_edge *ed = &p->edges[k];
	char name[RTE_MEMPOOL_NAMESIZE];
	int rc = lm_dp_layout_cut(m, cut, p->batch, &ed->layout, e);
	if (rc)
		return rc;
	size_t elt = lm_dp_bundle_bytes(&ed->layout);
	ed->n_bufs = bundles;
	snprintf(name, sizeof(name), "lm%u_e%u", p->gen, k);
	/* CPU-only buffers: they need not be IOVA-contiguous, and bundles
	 * larger than a hugepage could not be otherwise; no padding between
	 * them (spreading over memory channels): the pool is what the plan
	 * charged, bundle after bundle */
	ed->pool = rte_mempool_create(name, ed->n_bufs, (unsigned)elt, 0, 0,
				      NULL, NULL, NULL, NULL, socket,
				      RTE_MEMPOOL_F_NO_IOVA_CONTIG |
				      RTE_MEMPOOL_F_NO_SPREAD);
	if (!ed->pool && socket != SOCKET_ID_ANY) {
		lm_log("edge %u of %s: no memory on socket %d, using any", k,
		       p->id, socket);
		ed->pool = rte_mempool_create(name, ed->n_bufs, (unsigned)elt,
					      0, 0, NULL, NULL, NULL, NULL,
					      SOCKET_ID_ANY,
					      RTE_MEMPOOL_F_NO_IOVA_CONTIG |
				      RTE_MEMPOOL_F_NO_SPREAD);
	}
	if (!ed->pool) {
		lm_dp_layout_clear(&ed->layout);
		return lm_fail(e, -ENOMEM, "edge %u of %s: cannot allocate %u "
			       "bundles of %zu bytes (%s)", k, p->id,
			       ed->n_bufs, elt, rte_strerror(rte_errno));
	}
	ed->socket = socket;
	ed->loaded = 1;
	/* what the pool took: the memory chunks its elements live in */
	ed->pool_bytes = 0;
	rte_mempool_mem_iter(ed->pool, add_chunk, &ed->pool_bytes);
	*bytes += ed->pool_bytes;
	return 0;
}

static void edge_free(struct lm_dp_edge *ed)
{
	void *obj;
	if (ed->ring) {
		while (rte_ring_dequeue(ed->ring, &obj) == 0)
			rte_mempool_put(ed->pool, obj);
		rte_ring_free(ed->ring);
	}
	rte_mempool_free(ed->pool);
	lm_dp_layout_clear(&ed->layout);
	memset(ed, 0, sizeof(*ed));
}

/* A stage of spec s fits this pipeline: same deployment shape, and the
 * edges it makes are free here. */
static int fits(const struct lm_pipeline *p, const struct lm_dp_stage_spec *s,
		lm_error *e)
{
	unsigned out = s->stage + 1;
	int makes_out = s->next != LM_DP_LOCAL || out == s->n_stages;
	if (p->started)
		return lm_fail(e, -EBUSY, "deployment %s is running: stop it "
			       "before loading stages", p->id);
	if (p->n_stages != s->n_stages || p->batch != s->batch ||
	    strcmp(p->dir, s->dir))
		return lm_fail(e, -EINVAL, "deployment %s was loaded with %u "
			       "stages at batch %u from %s", p->id, p->n_stages,
			       p->batch, p->dir);
	if (p->stages[s->stage])
		return lm_fail(e, -EEXIST, "stage %u of %s is already loaded",
			       s->stage, p->id);
	if (p->edges[s->stage].loaded || (makes_out && p->edges[out].loaded) ||
	    (s->answers != LM_DP_LOCAL && p->edges[s->n_stages].loaded))
		return lm_fail(e, -EINVAL, "stage %u of %s: an edge of it is "
			       "already made here by a stage loaded with other "
			       "neighbours", s->stage, p->id);
	return 0;
}

int lm_pipeline_load(struct lm_pipeline *p, const struct lm_dp_stage_spec *s,
		     struct lm_dp_lcores *lc, struct lm_dp_loaded *out,
		     lm_error *e)
{
	lm_manifest *m = NULL;
	struct lm_dp_stage *st = NULL;
	unsigned lcores[LM_DP_MAX_REPLICAS];
	unsigned o = s->stage + 1;
	int makes_out = s->next != LM_DP_LOCAL || o == s->n_stages;
	int made_in = 0, made_out = 0, rc;

	memset(out, 0, sizeof(*out));
	if ((rc = fits(p, s, e)) || (rc = lm_manifest_load(s->dir, &m, e)))
		goto fail;
	if (s->last >= (unsigned)m->n_slices) {
		rc = lm_fail(e, -EINVAL, "slices %u..%u: %s has %d slices",
			     s->first, s->last, s->dir, m->n_slices);
		goto fail;
	}
	if (p->n_slices && p->n_slices != (unsigned)m->n_slices) {
		rc = lm_fail(e, -EINVAL, "%s changed since the first stage of "
			     "%s was loaded", s->dir, p->id);
		goto fail;
	}
	if ((rc = pick_lcores(lc, s->cores, s->n_cores, lcores, e)))
		goto fail;
	if (!(st = calloc(1, sizeof(*st)))) {
		rc = lm_fail(e, -ENOMEM, "out of memory");
		goto fail;
	}
	st->index = s->stage;
	st->first = s->first;
	st->last = s->last;
	st->cycles_per_us = p->cycles_per_us;
	if ((rc = lm_dp_layout_cut(m, (int)s->first - 1, s->batch, &st->in,
				   e)) ||
	    (rc = lm_dp_layout_cut(m, (int)s->last, s->batch, &st->out, e)))
		goto fail;
	unsigned nr = s->n_cores ? s->n_cores : 1;
	for (unsigned i = 0; i < nr; i++) {
		struct lm_dp_replica *rep;
		if ((rc = replica_load(p, st, m, lc, lcores[i], &rep, e)))
			goto fail;
		st->rep[st->n_replicas++] = rep;
		lc->l[lcores[i]].used = 1;
		st->weight_bytes += lm_session_weight_bytes(rep->step.session);
		st->arena_bytes += lm_session_arena_bytes(rep->step.session);
	}
	if ((rc = edge_make(p, s->stage, m, (int)s->first - 1,
			    st->rep[0]->socket, s->in_bundles, &st->ring_bytes,
			    e)))
		goto fail;
	made_in = 1;
	/* the output edge, when this laminad holds its consumer's end: the
	 * egress's, or the network's (net.c sends from the main lcore) */
	if (makes_out &&
	    (rc = edge_make(p, o, m, (int)s->last, (int)rte_socket_id(),
			    s->out_bundles, &st->ring_bytes, e)))
		goto fail;
	made_out = makes_out;
	if (s->answers != LM_DP_LOCAL &&
	    (rc = edge_make(p, s->n_stages, m, m->n_slices - 1,
			    (int)rte_socket_id(), s->answers_bundles,
			    &st->ring_bytes, e)))
		goto fail;
	p->edges[s->stage].remote_in = s->input != LM_DP_LOCAL;
	p->edges[o].remote_out = s->next != LM_DP_LOCAL;
	if (s->answers != LM_DP_LOCAL)
		p->edges[s->n_stages].remote_in = 1;
	p->n_slices = (unsigned)m->n_slices;
	p->stages[s->stage] = st;
	out->n_cores = (unsigned)st->n_replicas;
	for (int i = 0; i < st->n_replicas; i++)
		out->cores[i] = st->rep[i]->cpu;
	out->weight_bytes = st->weight_bytes;
	out->arena_bytes = st->arena_bytes;
	out->ring_bytes = st->ring_bytes;
	lm_log("deployment %s: stage %u/%u loaded: slices %u..%u of %s at "
	       "batch %u on %d core(s), first on cpu %u", p->id, s->stage,
	       s->n_stages, s->first, s->last, s->dir, s->batch,
	       st->n_replicas, st->rep[0]->cpu);
	lm_manifest_free(m);
	return 0;
fail:
	if (made_in)
		edge_free(&p->edges[s->stage]);
	if (made_out)
		edge_free(&p->edges[o]);
	stage_free(st, lc);
	lm_manifest_free(m);
	return rc;
}

/* ---- start, stop, drain, free ---- */

static int ring_make(struct lm_pipeline *p, unsigned k, unsigned prod,
		     unsigned cons, lm_error *e)
{
	struct lm_dp_edge *ed = &p->edges[k];
	char name[RTE_RING_NAMESIZE];
	if (ed->ring)
		return 0;
	snprintf(name, sizeof(name), "lm%u_r%u", p->gen, k);
	ed->ring = rte_ring_create(name, rte_align32pow2(ed->n_bufs + 1),
				   ed->socket,
				   (prod == 1 ? RING_F_SP_ENQ : 0) |
				   (cons == 1 ? RING_F_SC_DEQ : 0));
	if (!ed->ring)
		return lm_fail(e, -ENOMEM, "edge %u of %s: cannot create its "
			       "ring (%s)", k, p->id, rte_strerror(rte_errno));
	return 0;
}

/* Every stage here chains to its neighbours (or to another laminad). */
static int check_chain(const struct lm_pipeline *p, lm_error *e)
{
	unsigned n = p->n_stages;
	int remote = lm_pipeline_remote(p);
	for (unsigned s = 0; s < n; s++) {
		const struct lm_dp_stage *st = p->stages[s];
		/* across laminads a stage may be elsewhere, but then every
		 * edge between it and the stages here is remote */
		if (!st && !remote)
			return lm_fail(e, -EINVAL, "deployment %s: stage %u of "
				       "%u is not loaded", p->id, s, n);
		if (!st)
			continue;
		const struct lm_dp_stage *prev = s ? p->stages[s - 1] : NULL;
		if (s && !p->edges[s].remote_in && !prev)
			return lm_fail(e, -EINVAL, "deployment %s: stage %u "
				       "of %u is not loaded", p->id, s - 1, n);
		unsigned want = prev ? prev->last + 1 : 0;
		if ((!s || prev) && st->first != want)
			return lm_fail(e, -EINVAL, "deployment %s: stage %u "
				       "starts at slice %u, not %u", p->id, s,
				       st->first, want);
		if (s + 1 < n && !p->edges[s + 1].remote_out) {
			if (!p->stages[s + 1])
				return lm_fail(e, -EINVAL, "deployment %s: "
					       "stage %u of %u is not loaded",
					       p->id, s + 1, n);
			if (!lm_dp_layout_equal(&st->out,
						&p->edges[s + 1].layout))
				return lm_fail(e, -EINVAL, "deployment %s: "
					       "stages %u and %u disagree on "
					       "the tensors between them",
					       p->id, s, s + 1);
		}
	}
	if (p->stages[n - 1] && p->stages[n - 1]->last != p->n_slices - 1)
		return lm_fail(e, -EINVAL, "deployment %s: the last stage ends "
			       "at slice %u of %u", p->id,
			       p->stages[n - 1]->last, p->n_slices);
	if (p->stages[0] && remote && !p->edges[n].loaded)
		return lm_fail(e, -EINVAL, "deployment %s: stage 0 is here but "
			       "its answers come from elsewhere: load it with "
			       "answers from its laminad", p->id);
	return 0;
}

int lm_pipeline_start(struct lm_pipeline *p, struct lm_dp_bell *bell,
		      int busy_poll, lm_error *e)
{
	unsigned n = p->n_stages;
	int rc;
	if (p->started)
		return 0;
	if ((rc = check_chain(p, e)))
		return rc;
	/* producer and consumer: a stage's replicas, or the main lcore */
	for (unsigned k = 0; k <= n; k++) {
		unsigned prod = k && p->stages[k - 1]
					? (unsigned)p->stages[k - 1]->n_replicas
					: 1;
		unsigned cons = k < n && p->stages[k]
					? (unsigned)p->stages[k]->n_replicas
					: 1;
		if (p->edges[k].loaded && (rc = ring_make(p, k, prod, cons, e)))
			return rc;
		/* the main lcore drains the answers' edge and those to
		 * other laminads; it fills the others itself */
		p->edges[k].bell = k == n || p->edges[k].remote_out ? bell
								     : NULL;
	}
	for (unsigned s = 0; s < n; s++) {
		struct lm_dp_stage *st = p->stages[s];
		if (!st)
			continue;
		st->in_edge = &p->edges[s];
		st->out_edge = &p->edges[s + 1];
		for (int i = 0; i < st->n_replicas; i++) {
			struct lm_dp_replica *r = st->rep[i];
			r->stop = 0;
			r->busy_poll = busy_poll;
			if (rte_eal_remote_launch(lm_dp_worker_main, r,
						  r->lcore)) {
				p->running = 1;
				lm_pipeline_stop(p);
				return lm_fail(e, -EBUSY, "lcore %u is busy",
					       r->lcore);
			}
		}
	}
	p->started = p->running = 1;
	return 0;
}

void lm_pipeline_stop(struct lm_pipeline *p)
{
	if (!p->running)
		return;
	for (unsigned s = 0; s < p->n_stages; s++)
		for (int i = 0; p->stages[s] && i < p->stages[s]->n_replicas;
		     i++)
			p->stages[s]->rep[i]->stop = 1;
	for (unsigned s = 0; s < p->n_stages; s++)
		for (int i = 0; p->stages[s] && i < p->stages[s]->n_replicas;
		     i++)
			rte_eal_wait_lcore(p->stages[s]->rep[i]->lcore);
	p->running = p->started = 0;
}

void lm_pipeline_drain(struct lm_pipeline *p,
		       void (*fn)(void *ctx, struct lm_dp_bundle *b,
				  unsigned edge),
		       void *ctx)
{
	void *obj;
	for (unsigned k = 0; k <= p->n_stages; k++) {
		struct lm_dp_edge *ed = &p->edges[k];
		while (ed->ring && rte_ring_dequeue(ed->ring, &obj) == 0) {
			if (fn)
				fn(ctx, obj, k);
			rte_mempool_put(ed->pool, obj);
		}
		if (k == p->n_stages || !p->stages[k])
			continue;
		for (int i = 0; i < p->stages[k]->n_replicas; i++) {
			struct lm_dp_replica *r = p->stages[k]->rep[i];
			for (unsigned h = 0; h < r->n_held; h++) {
				if (fn)
					fn(ctx, r->held[h], k);
				rte_mempool_put(ed->pool, r->held[h]);
			}
			r->n_held = 0;
		}
	}
}

void lm_pipeline_free(struct lm_pipeline *p, struct lm_dp_lcores *lc)
{
	if (!p)
		return;
	lm_pipeline_stop(p);
	lm_pipeline_drain(p, NULL, NULL);
	for (unsigned s = 0; s < p->n_stages; s++)
		stage_free(p->stages[s], lc);
	for (unsigned k = 0; k <= p->n_stages; k++)
		edge_free(&p->edges[k]);
	free(p);
}
