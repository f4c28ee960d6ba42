/*
 * stage.c: deployments, their stages, the edges between stages, and the
 * worker loop that runs one stage on one pinned lcore.
 *
 * A stage runs slices [first, last] of a slice folder joined into one
 * graph (lm_graph_absorb), as one session of the single-threaded runtime:
 * one arena for every tensor inside the stage, as `lamina run` has for the
 * whole model (a session per slice, each with its own arena and buffers
 * between them, ran ResNet-18 ~10% slower).  Its input is the bundle on its
 * input edge; the outputs that cross the stage's far cut are written by
 * lm_session_run straight into the bundle taken from the output edge's
 * mempool.  Tensors that only pass through the stage (a skip connection
 * spanning it) are the one copy a stage makes.  Nothing is allocated per
 * request.
 *
 * Edges: edge s feeds stage s (edge 0 is fed by the ingress, edge n_stages
 * feeds the egress).  Stage s makes edge s's mempool when it is loaded, on
 * its own NUMA socket (the consumer's); the last stage also makes the last
 * edge's, on the main lcore's socket.  Rings are made at the first start,
 * when the producer and consumer counts of every edge are known: single
 * producer / single consumer wherever one lcore sits on that side.  A ring
 * is sized to hold its whole mempool, so an enqueue never fails.
 *
 * Across laminads (LoadStage's next_mac, input_remote, answers_remote) a
 * laminad holds some of the stages, numbered as in the whole pipeline, and
 * the edges that touch them: a stage whose output goes to another laminad
 * makes its output edge too (remote_out, drained into the port by net.c),
 * one whose input comes from another laminad has its input edge filled
 * from the port (remote_in), and stage 0's laminad, the ingress, makes the
 * last edge for the answers coming back (remote_in).  The worker loop does
 * not change.
 */
#include <errno.h>
#include <numa.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>

#include <rte_errno.h>
#include <rte_launch.h>
#include <rte_lcore.h>
#include <rte_ether.h>
#include <rte_pause.h>

#include "dp.h"
#include "frame.h"

#define EDGE_BUDGET (64u << 20) /* bytes of bundles per edge, at least */
#define EDGE_MIN_BUFS 8
#define EDGE_MAX_BUFS 256

/* ---- the worker loop ---- */

/* Idle: spin a little, then (adaptive) sleep a little longer each time. */
static inline void backoff(int busy_poll, unsigned *empty)
{
	if (busy_poll || ++*empty < 64) {
		rte_pause();
		return;
	}
	/* 10 us at first, up to 500 us when idle for long */
	unsigned us = (*empty - 64) * 10;
	struct timespec ts = { 0, (long)(us < 10 ? 10 : us > 500 ? 500 : us)
				      * 1000 };
	nanosleep(&ts, NULL);
}

/* Run the stage on one bundle. */
static int stage_exec(struct lm_dp_replica *r, uint8_t *in, uint8_t *out)
{
	const struct lm_dp_stage *st = r->stage;
	struct lm_dp_step *s = &r->step;
	for (int i = 0; i < s->n_in; i++)
		s->in[i].data = in + s->in_off[i];
	for (int j = 0; j < s->n_out; j++)
		s->out[j].data = out + s->out_off[j];
	int rc = lm_session_run(s->session, s->in, s->n_in, s->out, s->n_out,
				&r->err);
	if (rc)
		return rc;
	for (int c = 0; c < st->n_copies; c++)
		memcpy(out + st->copies[c].to, in + st->copies[c].from,
		       st->copies[c].nbytes);
	return 0;
}

/* One bundle: take an output buffer, run, hand the input back to its pool
 * and the output on.  -EINTR when told to stop while waiting for a buffer
 * (the bundle is then still the caller's). */
static int run_one(struct lm_dp_replica *r, struct lm_dp_bundle *b)
{
	struct lm_dp_stage *st = r->stage;
	struct lm_dp_bundle *o;
	unsigned empty = 0;
	while (rte_mempool_get(st->out_edge->pool, (void **)&o) != 0) {
		if (r->stop)
			return -EINTR;
		backoff(r->busy_poll, &empty);
	}
	*o = *b;
	if (b->status == 0) {
		uint64_t t0 = rte_rdtsc();
		int rc = stage_exec(r, lm_dp_bundle_data(b),
				    lm_dp_bundle_data(o));
		lm_dp_hist_add(&r->hist, rte_rdtsc() - t0, st->cycles_per_us);
		if (rc) {
			o->status = rc;
			r->errors++;
		}
		r->requests++;
	}
	rte_mempool_put(st->in_edge->pool, b);
	while (rte_ring_enqueue(st->out_edge->ring, o) != 0)
		rte_pause(); /* cannot happen: the ring holds the whole pool */
	lm_dp_bell_ring(st->out_edge->bell);
	return 0;
}

static int worker_main(void *arg)
{
	struct lm_dp_replica *r = arg;
	struct lm_dp_stage *st = r->stage;
	struct lm_dp_bundle *in[LM_DP_BURST];
	/* replicas share their ring: take one at a time to share the load */
	unsigned burst = st->n_replicas > 1 ? 1 : LM_DP_BURST, empty = 0;
	uint64_t t = rte_rdtsc();

	prctl(PR_SET_TIMERSLACK, 1000UL); /* short sleeps when adaptive */
	while (!r->stop) {
		unsigned n = r->n_held;
		if (n) {
			memcpy(in, r->held, n * sizeof(in[0]));
			r->n_held = 0;
		} else {
			n = rte_ring_dequeue_burst(st->in_edge->ring,
						   (void **)in, burst, NULL);
		}
		if (!n) {
			backoff(r->busy_poll, &empty);
			continue;
		}
		empty = 0;
		uint64_t t0 = rte_rdtsc();
		r->idle_cycles += t0 - t;
		for (unsigned i = 0; i < n; i++)
			if (run_one(r, in[i]) == -EINTR) {
				r->n_held = n - i;
				memcpy(r->held, in + i,
				       r->n_held * sizeof(in[0]));
				break;
			}
		t = rte_rdtsc();
		r->busy_cycles += t - t0;
	}
	r->idle_cycles += rte_rdtsc() - t;
	return 0;
}

/* ---- loading ---- */

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

/* Slices [first, last] of the deployment's folder as one graph whose
 * outputs are the tensors made in it that leave the stage. */
static int stage_graph(const struct lm_dp_stage *st,
		       const struct lm_dp_deployment *d,
		       const lm_manifest *m, lm_graph **out,
		       lm_error *e)
{
	int n = (int)(st->last - st->first + 1), rc = 0;
	char (*path)[PATH_MAX * 2] = calloc((size_t)n, sizeof(*path));
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
		rc = lm_slice_join(paths, n, d->batch, &g, e);
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
		if (k < 0 || (rc = same_shape(v, &st->out.t[k], what, e)))
			return k < 0 ? lm_fail(e, -EINVAL, "%s: output '%s' "
					       "does not leave the stage",
					       what, v->name) : rc;
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

static int replica_load(struct lm_dp *dp, struct lm_dp_stage *st,
			const struct lm_dp_deployment *d,
			const lm_manifest *m, unsigned lcore,
			struct lm_dp_replica **out, lm_error *e)
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
	r->cpu = dp->lcore[lcore].cpu;
	r->socket = lm_dp_cpu_node(r->cpu);
	snprintf(what, sizeof(what), "%s: slices %u-%u", d->dir, st->first,
		 st->last);
	/* weights, packed kernels and the arena on the worker's node */
	if (numa_available() >= 0)
		numa_set_preferred(r->socket);
	if (!(rc = stage_graph(st, d, m, &g, e)))
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

static void stage_free(struct lm_dp *dp, struct lm_dp_stage *st)
{
	if (!st)
		return;
	for (int i = 0; i < st->n_replicas; i++) {
		dp->lcore[st->rep[i]->lcore].used = 0;
		replica_free(st->rep[i]);
	}
	lm_dp_layout_clear(&st->in);
	lm_dp_layout_clear(&st->out);
	free(st);
}

/* Worker lcores for a stage: one free slot on each cpu asked for, or, when
 * none is asked for, one on the worker cpu holding the fewest stages. */
static int pick_lcores(struct lm_dp *dp, const uint32_t *cpus, size_t n,
		       unsigned *out, lm_error *e)
{
	uint32_t chosen_cpu = 0;
	if (n == 0) {
		unsigned best = UINT_MAX;
		for (unsigned i = 0; i < dp->n_worker_cpus; i++) {
			unsigned c = dp->worker_cpus[i], load = 0, free_ = 0;
			for (unsigned l = 1; l < dp->n_lcores; l++)
				if (dp->lcore[l].cpu == c) {
					load += dp->lcore[l].used != 0;
					free_ += !dp->lcore[l].used;
				}
			if (free_ && load <= best) {
				best = load;
				chosen_cpu = c;
			}
		}
		if (best == UINT_MAX)
			return lm_fail(e, -EBUSY, "every worker slot holds a "
				       "stage (%u lcores)", dp->n_lcores - 1);
		cpus = &chosen_cpu;
		n = 1;
	}
	for (size_t i = 0; i < n; i++) {
		unsigned l;
		for (l = 1; l < dp->n_lcores; l++) {
			int taken = dp->lcore[l].used;
			for (size_t k = 0; k < i && !taken; k++)
				taken = out[k] == l;
			if (dp->lcore[l].cpu == cpus[i] && !taken)
				break;
		}
		if (l == dp->n_lcores) {
			int worker = 0;
			for (unsigned w = 0; w < dp->n_worker_cpus; w++)
				worker |= dp->worker_cpus[w] == cpus[i];
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

/* Make an edge's layout and mempool. */
static int edge_make(struct lm_dp *dp, struct lm_dp_deployment *d, unsigned k,
		     const lm_manifest *m, int cut, int socket,
		     uint64_t *bytes, lm_error *e)
{
	struct lm_dp_edge *ed = &d->edges[k];
	char name[RTE_MEMPOOL_NAMESIZE];
	int rc = lm_dp_layout_cut(m, cut, d->batch, &ed->layout, e);
	if (rc)
		return rc;
	size_t elt = sizeof(struct lm_dp_bundle) + ed->layout.bytes;
	size_t n = EDGE_BUDGET / elt;
	ed->n_bufs = (unsigned)(n < EDGE_MIN_BUFS ? EDGE_MIN_BUFS
			       : n > EDGE_MAX_BUFS ? EDGE_MAX_BUFS : n);
	snprintf(name, sizeof(name), "lm%u_e%u", d->gen, k);
	/* CPU-only buffers: they need not be IOVA-contiguous, and bundles
	 * larger than a hugepage could not be otherwise */
	ed->pool = rte_mempool_create(name, ed->n_bufs, (unsigned)elt, 0, 0,
				      NULL, NULL, NULL, NULL, socket,
				      RTE_MEMPOOL_F_NO_IOVA_CONTIG);
	if (!ed->pool && socket != SOCKET_ID_ANY) {
		lm_dp_log("edge %u of %s: no memory on socket %d, using any",
			  k, d->id, socket);
		ed->pool = rte_mempool_create(name, ed->n_bufs, (unsigned)elt,
					      0, 0, NULL, NULL, NULL, NULL,
					      SOCKET_ID_ANY,
					      RTE_MEMPOOL_F_NO_IOVA_CONTIG);
	}
	if (!ed->pool) {
		lm_dp_layout_clear(&ed->layout);
		return lm_fail(e, -ENOMEM, "edge %u of %s: cannot allocate %u "
			       "buffers of %zu bytes (%s)", k, d->id,
			       ed->n_bufs, elt, rte_strerror(rte_errno));
	}
	ed->socket = socket;
	ed->loaded = 1;
	*bytes += (uint64_t)ed->n_bufs * elt;
	(void)dp;
	return 0;
}

static void edge_free(struct lm_dp_edge *ed)
{
	void *obj;
	lm_dp_net_edge_close(ed);
	if (ed->ring) {
		while (rte_ring_dequeue(ed->ring, &obj) == 0)
			rte_mempool_put(ed->pool, obj);
		rte_ring_free(ed->ring);
	}
	rte_mempool_free(ed->pool);
	lm_dp_layout_clear(&ed->layout);
	memset(ed, 0, sizeof(*ed));
}

static int valid_id(const char *id)
{
	size_t n = id ? strlen(id) : 0;
	if (n == 0 || n >= LM_WIRE_ID_LEN)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!(id[i] >= 'a' && id[i] <= 'z') &&
		    !(id[i] >= 'A' && id[i] <= 'Z') &&
		    !(id[i] >= '0' && id[i] <= '9') && !strchr("-_.", id[i]))
			return 0;
	return 1;
}

struct lm_dp_deployment *lm_dp_deployment_find(struct lm_dp *dp,
					       const char *id)
{
	for (int i = 0; i < LM_DP_MAX_DEPLOYMENTS; i++)
		if (dp->dep[i] && !strncmp(dp->dep[i]->id, id,
					   LM_WIRE_ID_LEN))
			return dp->dep[i];
	return NULL;
}

static int deployment_new(struct lm_dp *dp, const Lamina__LoadStageRequest *r,
			  struct lm_dp_deployment **out, lm_error *e)
{
	int slot = -1;
	for (int i = 0; i < LM_DP_MAX_DEPLOYMENTS && slot < 0; i++)
		if (!dp->dep[i])
			slot = i;
	if (slot < 0)
		return lm_fail(e, -ENOSPC, "this laminad already holds %d "
			       "deployments", LM_DP_MAX_DEPLOYMENTS);
	struct lm_dp_deployment *d = calloc(1, sizeof(*d));
	if (!d)
		return lm_fail(e, -ENOMEM, "out of memory");
	snprintf(d->id, sizeof(d->id), "%s", r->deployment);
	snprintf(d->dir, sizeof(d->dir), "%s", r->dir);
	d->gen = ++dp->next_gen;
	d->key = lm_frame_deployment_key(d->id);
	d->batch = r->batch;
	d->n_stages = r->n_stages;
	d->t_created = rte_rdtsc();
	dp->dep[slot] = d;
	*out = d;
	return 0;
}

int lm_dp_stage_load(struct lm_dp *dp, const Lamina__LoadStageRequest *r,
		     Lamina__LoadStageReply *reply, lm_error *e)
{
	struct lm_dp_deployment *d;
	lm_manifest *m = NULL;
	struct lm_dp_stage *st = NULL;
	unsigned lcores[LM_DP_MAX_REPLICAS];
	int rc, created = 0;

	if (!valid_id(r->deployment))
		return lm_fail(e, -EINVAL, "deployment id '%.40s' must be 1 to "
			       "%d letters, digits, '-', '_' or '.'",
			       r->deployment ? r->deployment : "",
			       LM_WIRE_ID_LEN - 1);
	if (r->n_stages < 1 || r->n_stages > LM_DP_MAX_STAGES ||
	    r->stage >= r->n_stages)
		return lm_fail(e, -EINVAL, "stage %u of %u: stages must number "
			       "1 to %d", r->stage, r->n_stages,
			       LM_DP_MAX_STAGES);
	if (r->batch < 1 || r->batch > 4096)
		return lm_fail(e, -EINVAL, "batch %u: must be 1 to 4096",
			       r->batch);
	if (!r->dir || r->dir[0] != '/' || strlen(r->dir) >= PATH_MAX - 64)
		return lm_fail(e, -EINVAL, "slice folder '%.200s' must be an "
			       "absolute path", r->dir ? r->dir : "");
	if (r->first > r->last)
		return lm_fail(e, -EINVAL, "slices %u..%u: first is after "
			       "last", r->first, r->last);
	if (r->n_cores > LM_DP_MAX_REPLICAS)
		return lm_fail(e, -EINVAL, "%zu replicas: at most %d",
			       r->n_cores, LM_DP_MAX_REPLICAS);
	int next_port = r->next_mac && r->next_mac[0];
	const char *in_memif = r->input_memif && r->input_memif[0]
				       ? r->input_memif : NULL;
	const char *next_memif = r->next_memif && r->next_memif[0]
					 ? r->next_memif : NULL;
	const char *ans_memif = r->answers_memif && r->answers_memif[0]
					? r->answers_memif : NULL;
	int next_remote = next_port || next_memif;
	struct rte_ether_addr next_mac;
	if (next_port && next_memif)
		return lm_fail(e, -EINVAL, "stage %u: its output goes over the "
			       "port or a memif, not both", r->stage);
	if ((in_memif && !r->input_remote) ||
	    (ans_memif && !r->answers_remote))
		return lm_fail(e, -EINVAL, "stage %u: a memif socket for an "
			       "edge that is not remote", r->stage);
	if ((next_port || (r->input_remote && !in_memif) ||
	     (r->answers_remote && !ans_memif)) &&
	    !(dp->net && dp->net->has_port))
		return lm_fail(e, -EINVAL, "stage %u: its edges cross to "
			       "another laminad, and this one has no port "
			       "(laminad --port)", r->stage);
	if (next_port && (rte_ether_unformat_addr(r->next_mac, &next_mac) ||
			  !r->next_ip))
		return lm_fail(e, -EINVAL, "stage %u: next laminad's port "
			       "'%.40s' needs a MAC aa:bb:cc:dd:ee:ff and an "
			       "IPv4 address", r->stage, r->next_mac);
	if (r->input_remote && r->stage == 0)
		return lm_fail(e, -EINVAL, "stage 0 takes its input from the "
			       "ingress, not another laminad");
	if (r->answers_remote && (r->stage != 0 || r->n_stages < 2))
		return lm_fail(e, -EINVAL, "stage %u: only stage 0 of several "
			       "takes answers from another laminad", r->stage);
	d = lm_dp_deployment_find(dp, r->deployment);
	if (d) {
		if (d->started)
			return lm_fail(e, -EBUSY, "deployment %s is running: "
				       "stop it before loading stages", d->id);
		if (d->n_stages != r->n_stages || d->batch != r->batch ||
		    strcmp(d->dir, r->dir))
			return lm_fail(e, -EINVAL, "deployment %s was loaded "
				       "with %u stages at batch %u from %s",
				       d->id, d->n_stages, d->batch, d->dir);
		if (d->stages[r->stage])
			return lm_fail(e, -EEXIST, "stage %u of %s is already "
				       "loaded", r->stage, d->id);
		/* the edges this stage makes must be free here */
		unsigned out = r->stage + 1;
		if (d->edges[r->stage].loaded ||
		    ((next_remote || out == r->n_stages) &&
		     d->edges[out].loaded) ||
		    (r->answers_remote && d->edges[r->n_stages].loaded))
			return lm_fail(e, -EINVAL, "stage %u of %s: an edge of "
				       "it is already made here by a stage "
				       "loaded with other neighbours", r->stage,
				       d->id);
	}
	if ((rc = lm_manifest_load(r->dir, &m, e)))
		return rc;
	int n = m->n_slices;
	if (r->last >= (unsigned)n) {
		rc = lm_fail(e, -EINVAL, "slices %u..%u: %s has %d slices",
			     r->first, r->last, r->dir, n);
		goto fail;
	}
	if ((rc = pick_lcores(dp, r->cores, r->n_cores, lcores, e)))
		goto fail;
	if (!d) {
		if ((rc = deployment_new(dp, r, &d, e)))
			goto fail;
		created = 1;
		d->n_slices = (unsigned)n;
	} else if (d->n_slices != (unsigned)n) {
		rc = lm_fail(e, -EINVAL, "%s changed since its first stage was "
			     "loaded", r->dir);
		goto fail;
	}
	if (!(st = calloc(1, sizeof(*st)))) {
		rc = lm_fail(e, -ENOMEM, "out of memory");
		goto fail;
	}
	st->index = r->stage;
	st->first = r->first;
	st->last = r->last;
	st->cycles_per_us = dp->cycles_per_us;
	if ((rc = lm_dp_layout_cut(m, (int)r->first - 1, r->batch, &st->in,
				   e)) ||
	    (rc = lm_dp_layout_cut(m, (int)r->last, r->batch, &st->out, e)))
		goto fail;
	size_t nr = r->n_cores ? r->n_cores : 1;
	for (size_t i = 0; i < nr; i++) {
		struct lm_dp_replica *rep;
		if ((rc = replica_load(dp, st, d, m, lcores[i], &rep, e)))
			goto fail;
		st->rep[st->n_replicas++] = rep;
		dp->lcore[lcores[i]].used = 1;
		st->weight_bytes += lm_session_weight_bytes(rep->step.session);
		st->arena_bytes += lm_session_arena_bytes(rep->step.session);
	}
	if ((rc = edge_make(dp, d, r->stage, m, (int)r->first - 1,
			    st->rep[0]->socket, &st->ring_bytes, e)))
		goto fail;
	/* the output edge, when this laminad holds its consumer's end: the
	 * egress's, or the port's (net.c sends from the main lcore) */
	unsigned out = r->stage + 1;
	if ((next_remote || out == r->n_stages) &&
	    (rc = edge_make(dp, d, out, m, (int)r->last, (int)rte_socket_id(),
			    &st->ring_bytes, e))) {
		edge_free(&d->edges[r->stage]);
		goto fail;
	}
	if (r->answers_remote &&
	    (rc = edge_make(dp, d, r->n_stages, m, (int)d->n_slices - 1,
			    (int)rte_socket_id(), &st->ring_bytes, e))) {
		edge_free(&d->edges[r->stage]);
		if (next_remote || out == r->n_stages)
			edge_free(&d->edges[out]);
		goto fail;
	}
	/* memif ports: the input's and the answers' as servers (listening
	 * now), the output's as a client (it connects when the consumer's
	 * laminad listens) */
	if ((in_memif && (rc = lm_dp_net_memif_open(dp, d, r->stage, in_memif,
						    1, e))) ||
	    (ans_memif && (rc = lm_dp_net_memif_open(dp, d, r->n_stages,
						     ans_memif, 1, e))) ||
	    (next_memif && (rc = lm_dp_net_memif_open(dp, d, out, next_memif,
						      0, e)))) {
		edge_free(&d->edges[r->stage]);
		if (next_remote || out == r->n_stages)
			edge_free(&d->edges[out]);
		if (r->answers_remote)
			edge_free(&d->edges[r->n_stages]);
		goto fail;
	}
	d->edges[r->stage].remote_in = r->input_remote;
	if (next_remote) {
		d->edges[out].remote_out = 1;
		if (next_port)
			memcpy(d->edges[out].peer_mac, next_mac.addr_bytes, 6);
		else /* memif has one peer */
			memset(d->edges[out].peer_mac, 0xff, 6);
		d->edges[out].peer_ip = r->next_ip;
	}
	if (r->answers_remote)
		d->edges[r->n_stages].remote_in = 1;
	d->remote |= next_remote || r->input_remote || r->answers_remote;
	if (r->stage == 0) {
		d->ingress = 1;
		d->retry_ms = r->retry_ms ? r->retry_ms : 100;
		d->period_us = r->period_us;
		d->max_retries = r->max_retries ? r->max_retries : 8;
	}
	d->stages[r->stage] = st;
	reply->n_cores = (size_t)st->n_replicas;
	reply->cores = calloc((size_t)st->n_replicas, sizeof(uint32_t));
	for (int i = 0; reply->cores && i < st->n_replicas; i++)
		reply->cores[i] = st->rep[i]->cpu;
	if (!reply->cores)
		reply->n_cores = 0;
	reply->weight_bytes = st->weight_bytes;
	reply->arena_bytes = st->arena_bytes;
	reply->ring_bytes = st->ring_bytes;
	lm_dp_log("deployment %s: stage %u/%u loaded: slices %u..%u of %s at "
		  "batch %u on %d core(s), first on cpu %u", d->id, r->stage,
		  r->n_stages, r->first, r->last, r->dir, r->batch,
		  st->n_replicas, st->rep[0]->cpu);
	lm_manifest_free(m);
	return 0;
fail:
	stage_free(dp, st);
	if (created)
		lm_dp_deployment_free(dp, d);
	lm_manifest_free(m);
	return rc;
}

/* ---- start, stop, free ---- */

static int ring_make(struct lm_dp_deployment *d, unsigned k, unsigned prod,
		     unsigned cons, lm_error *e)
{
	struct lm_dp_edge *ed = &d->edges[k];
	char name[RTE_RING_NAMESIZE];
	if (ed->ring)
		return 0;
	snprintf(name, sizeof(name), "lm%u_r%u", d->gen, k);
	ed->ring = rte_ring_create(name, rte_align32pow2(ed->n_bufs + 1),
				   ed->socket,
				   (prod == 1 ? RING_F_SP_ENQ : 0) |
				   (cons == 1 ? RING_F_SC_DEQ : 0));
	if (!ed->ring)
		return lm_fail(e, -ENOMEM, "edge %u of %s: cannot create its "
			       "ring (%s)", k, d->id, rte_strerror(rte_errno));
	return 0;
}

static void keep_clear(struct lm_dp_deployment *d)
{
	for (unsigned i = 0; d->keep && d->keep_pool && i < d->n_keep; i++)
		rte_mempool_put(d->keep_pool, d->keep[i].copy);
	rte_mempool_free(d->keep_pool);
	free(d->keep);
	free(d->keep_free);
	d->keep_pool = NULL;
	d->keep = NULL;
	d->keep_free = NULL;
	d->n_keep = d->n_keep_free = 0;
}

/* The answer's tensor headers, formatted once (ingress protocol). */
static int format_answer(struct lm_dp_deployment *d, lm_error *e)
{
	const struct lm_dp_layout *l = &d->edges[d->n_stages].layout;
	size_t size = 0, off = 0;
	for (int i = 0; i < l->n; i++)
		size += 8 + 8 * (size_t)l->t[i].rank + 8;
	free(d->answer_thdr);
	if (!(d->answer_thdr = malloc(size ? size : 1)))
		return lm_fail(e, -ENOMEM, "out of memory");
	d->answer_bytes = 8 + 4 + 4; /* request id, status, n_tensors */
	for (int i = 0; i < l->n; i++) {
		const struct lm_dp_tdesc *t = &l->t[i];
		uint8_t *p = d->answer_thdr + off;
		uint32_t u = (uint32_t)t->dtype, rank = (uint32_t)t->rank;
		uint64_t nb = t->nbytes;
		d->thdr_off[i] = off;
		memcpy(p, &u, 4);
		memcpy(p + 4, &rank, 4);
		memcpy(p + 8, t->dims, 8 * (size_t)t->rank);
		memcpy(p + 8 + 8 * (size_t)t->rank, &nb, 8);
		off += 8 + 8 * (size_t)t->rank + 8;
		d->answer_bytes += 8 + 8 * (size_t)t->rank + 8 + t->nbytes;
	}
	d->thdr_off[l->n] = off;
	return 0;
}

/* Across laminads: the ingress's copies of requests in flight, one slot
 * per buffer of edge 0 (a connection waits for a slot as for a buffer). */
static int keep_make(struct lm_dp_deployment *d, lm_error *e)
{
	struct lm_dp_edge *ed = &d->edges[0];
	char name[RTE_MEMPOOL_NAMESIZE];
	unsigned n = ed->n_bufs;
	if (d->keep)
		return 0;
	snprintf(name, sizeof(name), "lm%u_keep", d->gen);
	d->keep_pool = rte_mempool_create(name, n, (unsigned)(
		sizeof(struct lm_dp_bundle) + ed->layout.bytes), 0, 0, NULL,
		NULL, NULL, NULL, SOCKET_ID_ANY, RTE_MEMPOOL_F_NO_IOVA_CONTIG);
	d->keep = calloc(n, sizeof(*d->keep));
	d->keep_free = calloc(n, sizeof(*d->keep_free));
	if (!d->keep_pool || !d->keep || !d->keep_free)
		goto nomem;
	for (unsigned i = 0; i < n; i++) {
		if (rte_mempool_get(d->keep_pool, (void **)&d->keep[i].copy))
			goto nomem;
		d->keep_free[i] = n - 1 - i;
	}
	d->n_keep = d->n_keep_free = n;
	return 0;
nomem:
	keep_clear(d);
	return lm_fail(e, -ENOMEM, "%s: no memory to keep %u requests of %zu "
		       "bytes until answered", d->id, n, ed->layout.bytes);
}

int lm_dp_deployment_start(struct lm_dp *dp, struct lm_dp_deployment *d,
			   lm_error *e)
{
	int rc;
	unsigned n = d->n_stages, workers = 0, here = 0;
	if (d->started)
		return 0;
	for (unsigned s = 0; s < n; s++) {
		const struct lm_dp_stage *st = d->stages[s];
		here += st != NULL;
		/* across laminads a stage may be elsewhere, but then every
		 * edge between it and the stages here is remote */
		if (!st && !d->remote)
			return lm_fail(e, -EINVAL, "deployment %s: stage %u of "
				       "%u is not loaded", d->id, s, n);
		if (!st)
			continue;
		const struct lm_dp_stage *prev = s ? d->stages[s - 1] : NULL;
		if (s && !d->edges[s].remote_in && !prev)
			return lm_fail(e, -EINVAL, "deployment %s: stage %u "
				       "of %u is not loaded", d->id, s - 1, n);
		unsigned want = prev ? prev->last + 1 : 0;
		if ((!s || prev) && st->first != want)
			return lm_fail(e, -EINVAL, "deployment %s: stage %u "
				       "starts at slice %u, not %u", d->id, s,
				       st->first, want);
		if (s + 1 < n && !d->edges[s + 1].remote_out) {
			if (!d->stages[s + 1])
				return lm_fail(e, -EINVAL, "deployment %s: "
					       "stage %u of %u is not loaded",
					       d->id, s + 1, n);
			if (!lm_dp_layout_equal(&st->out,
						&d->edges[s + 1].layout))
				return lm_fail(e, -EINVAL, "deployment %s: "
					       "stages %u and %u disagree on "
					       "the tensors between them",
					       d->id, s, s + 1);
		}
		workers += (unsigned)st->n_replicas;
	}
	if (d->stages[n - 1] && d->stages[n - 1]->last != d->n_slices - 1)
		return lm_fail(e, -EINVAL, "deployment %s: the last stage ends "
			       "at slice %u of %u", d->id,
			       d->stages[n - 1]->last, d->n_slices);
	if (d->ingress && d->remote && !d->edges[n].loaded)
		return lm_fail(e, -EINVAL, "deployment %s: stage 0 is here but "
			       "its answers come from elsewhere: load it with "
			       "answers_remote", d->id);
	/* producer and consumer: a stage's replicas, or the main lcore */
	for (unsigned k = 0; k <= n; k++) {
		unsigned prod = k && d->stages[k - 1]
					? (unsigned)d->stages[k - 1]->n_replicas
					: 1;
		unsigned cons = k < n && d->stages[k]
					? (unsigned)d->stages[k]->n_replicas
					: 1;
		if (d->edges[k].loaded && (rc = ring_make(d, k, prod, cons, e)))
			return rc;
		if (d->edges[k].remote_out &&
		    (rc = lm_dp_net_edge_open(dp, d, k, e)))
			return rc;
		/* the main lcore drains the answers' edge and those to
		 * other laminads; it fills the others itself */
		d->edges[k].bell = k == n || d->edges[k].remote_out
					   ? &dp->bell : NULL;
	}
	if (d->ingress && (rc = format_answer(d, e)))
		return rc;
	if (d->ingress && d->remote && (rc = keep_make(d, e)))
		return rc;
	int busy = lm_dp_poll_busy(dp);
	for (unsigned s = 0; s < n; s++) {
		struct lm_dp_stage *st = d->stages[s];
		if (!st)
			continue;
		st->in_edge = &d->edges[s];
		st->out_edge = &d->edges[s + 1];
		for (int i = 0; i < st->n_replicas; i++) {
			struct lm_dp_replica *r = st->rep[i];
			r->stop = 0;
			r->busy_poll = busy;
			if (rte_eal_remote_launch(worker_main, r, r->lcore)) {
				d->running = 1;
				lm_dp_deployment_stop(dp, d);
				return lm_fail(e, -EBUSY, "lcore %u is busy",
					       r->lcore);
			}
		}
	}
	d->started = d->running = 1;
	lm_dp_log("deployment %s started: %u stage(s) here, %u worker(s), %s "
		  "poll%s", d->id, here, workers, busy ? "busy" : "adaptive",
		  d->remote ? ", edges to other laminads" : "");
	return 0;
}

void lm_dp_deployment_stop(struct lm_dp *dp, struct lm_dp_deployment *d)
{
	(void)dp;
	if (!d->running)
		return;
	for (unsigned s = 0; s < d->n_stages; s++)
		for (int i = 0; d->stages[s] && i < d->stages[s]->n_replicas;
		     i++)
			d->stages[s]->rep[i]->stop = 1;
	for (unsigned s = 0; s < d->n_stages; s++)
		for (int i = 0; d->stages[s] && i < d->stages[s]->n_replicas;
		     i++)
			rte_eal_wait_lcore(d->stages[s]->rep[i]->lcore);
	d->running = d->started = 0;
	lm_dp_log("deployment %s stopped", d->id);
}

void lm_dp_deployment_free(struct lm_dp *dp, struct lm_dp_deployment *d)
{
	if (!d)
		return;
	lm_dp_deployment_stop(dp, d);
	if (d->keep)
		lm_dp_log("deployment %s: %llu request(s) re-sent, %llu "
			  "duplicate answer(s) dropped, %llu given up", d->id,
			  (unsigned long long)d->resent,
			  (unsigned long long)d->dup_answers,
			  (unsigned long long)d->gave_up);
	lm_dp_ingress_forget(dp, d);
	lm_dp_net_forget(dp, d);
	for (unsigned s = 0; s < d->n_stages; s++) {
		struct lm_dp_stage *st = d->stages[s];
		for (int i = 0; st && i < st->n_replicas; i++)
			for (unsigned h = 0; h < st->rep[i]->n_held; h++)
				rte_mempool_put(d->edges[s].pool,
						st->rep[i]->held[h]);
		stage_free(dp, st);
	}
	for (unsigned k = 0; k <= d->n_stages; k++)
		edge_free(&d->edges[k]);
	for (int i = 0; i < LM_DP_MAX_DEPLOYMENTS; i++)
		if (dp->dep[i] == d)
			dp->dep[i] = NULL;
	free(d->answer_thdr);
	keep_clear(d);
	free(d);
}
