/*
 * lamina_client_test.c: `lamina-client-test`, a small driver of laminad
 * through the client library (lm_client_*, lm_infer_*), for the
 * integration tests (test_laminad.py).  It is not a user tool: `lamina
 * deploy/infer/status/teardown` are.
 *
 *   lamina-client-test PORT describe
 *   lamina-client-test PORT load DEP DIR BATCH RANGE...   (and start)
 *        RANGE is FIRST-LAST[@CPU[+CPU...]], one per stage
 *   lamina-client-test PORT load-one DEP STAGE N_STAGES DIR FIRST LAST BATCH
 *        [next=MAC@IP] [input=remote] [answers=remote] [retry=MS]
 *        [retries=N]: a stage of a pipeline across laminads (lamina.proto)
 *   lamina-client-test PORT push FILE SHA256_HEX: FILE's bytes pushed
 *        into laminad's store as the file of that hash (which may lie)
 *   lamina-client-test PORT load-files DEP NAME=SHA256_HEX...: a LoadStage
 *        (stage 0 of 1, batch 1) naming those stored files
 *   lamina-client-test PORT start|stop|stats|teardown DEP
 *   lamina-client-test PORT shutdown
 *   lamina-client-test IPORT infer DEP OUT.npy IN.npy...
 *   lamina-client-test IPORT stress DEP IN.npy EXPECTED.npy CLIENTS TOTAL
 *        WINDOW [TOL]: row i % K of IN (K rows) as a batch-1 request,
 *        answers checked bitwise against row i % K of EXPECTED, or with
 *        float32 outputs within TOL x max|row| when TOL is given (a plan
 *        at another batch runs other kernel paths); prints the
 *        requests/s and, on a second line, the latency percentiles of
 *        every request (send to answer, as the client sees it)
 *
 *   lamina-client-test PORT replay DEP: a sealed Stop of DEP sent twice,
 *        byte for byte, on one authenticated connection (see replay())
 *   lamina-client-test --no-key PORT ...: as LAMINA_FLEET_KEY=none
 *
 * Replies are printed as one JSON object (stats, describe, load) or "ok";
 * failures as one line on stderr with exit status 1.
 *
 * The control commands prove the fleet key of file $LAMINA_FLEET_KEY;
 * without it set, of lamina's default key file when it exists
 * (lamina/fleet.h); with it set to "" or "none", or with no file, they
 * make an anonymous session (describe and stats only).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "ctl.h"
#include "ship.h"
#include "lamina/client.h"
#include "lamina/npy.h"
#include "lamina/runtime.h"
#include "lamina/sock.h"

#define TIMEOUT_MS 60000

static int fail(const lm_error *e)
{
	fprintf(stderr, "lamina-client-test: %s\n", e->msg);
	return 1;
}

static json_t *u32_list(const uint32_t *v, size_t n)
{
	json_t *a = json_array();
	for (size_t i = 0; i < n; i++)
		json_array_append_new(a, json_integer(v[i]));
	return a;
}

static json_t *hist(const double *edges, size_t n_edges,
		    const uint64_t *counts, size_t n)
{
	json_t *a = json_array(), *c = json_array();
	for (size_t i = 0; i < n_edges; i++)
		json_array_append_new(a, json_real(edges[i]));
	for (size_t i = 0; i < n; i++)
		json_array_append_new(c, json_integer((json_int_t)counts[i]));
	return json_pack("{s:o, s:o}", "bucket_us", a, "counts", c);
}

static void print_json(json_t *j)
{
	char *s = json_dumps(j, JSON_COMPACT);
	puts(s ? s : "null");
	free(s);
	json_decref(j);
}

static void print_reply(const Lamina__Reply *r)
{
	switch (r->body_case) {
	case LAMINA__REPLY__BODY_DESCRIBE: {
		const Lamina__DescribeReply *d = r->describe;
		json_t *numa = json_array(), *deps = json_array();
		for (size_t i = 0; i < d->n_numa; i++)
			json_array_append_new(numa, json_pack(
				"{s:i, s:o, s:I, s:I, s:I, s:I}", "id",
				d->numa[i]->id, "cores",
				u32_list(d->numa[i]->cores, d->numa[i]->n_cores),
				"total_bytes", (json_int_t)d->numa[i]->total_bytes,
				"free_bytes", (json_int_t)d->numa[i]->free_bytes,
				"hugepage_bytes",
				(json_int_t)d->numa[i]->hugepage_bytes,
				"hugepages_free",
				(json_int_t)d->numa[i]->hugepages_free));
		for (size_t i = 0; i < d->n_deployments; i++)
			json_array_append_new(deps,
					      json_string(d->deployments[i]));
		print_json(json_pack("{s:s, s:s, s:i, s:o, s:o, s:o, s:b, s:s, "
				     "s:i, s:o, s:s, s:I, s:i, s:I, s:I}",
				     "name",
				     d->name, "version",
				     d->version, "pid", d->pid, "worker_cores",
				     u32_list(d->worker_cores,
					      d->n_worker_cores),
				     "busy_cores", u32_list(d->busy_cores,
							    d->n_busy_cores),
				     "numa", numa, "hugepages", d->hugepages,
				     "poll", d->poll, "ingress_port",
				     d->ingress_port, "deployments", deps,
				     "port_mac", d->port_mac, "port_ip",
				     (json_int_t)d->port_ip, "port_mtu",
				     d->port_mtu, "heap_bytes",
				     (json_int_t)d->heap_bytes, "dpdk_bytes",
				     (json_int_t)d->dpdk_bytes));
		break;
	}
	case LAMINA__REPLY__BODY_LOAD_STAGE:
		print_json(json_pack("{s:o, s:I, s:I, s:I}", "cores",
				     u32_list(r->load_stage->cores,
					      r->load_stage->n_cores),
				     "weight_bytes",
				     (json_int_t)r->load_stage->weight_bytes,
				     "arena_bytes",
				     (json_int_t)r->load_stage->arena_bytes,
				     "ring_bytes",
				     (json_int_t)r->load_stage->ring_bytes));
		break;
	case LAMINA__REPLY__BODY_STATS: {
		const Lamina__StatsReply *s = r->stats;
		json_t *stages = json_array();
		for (size_t i = 0; i < s->n_stages; i++) {
			const Lamina__StageStats *t = s->stages[i];
			json_t *o = json_pack(
				"{s:i, s:i, s:i, s:o, s:I, s:I, s:I, s:i, s:i, "
				"s:I}", "stage", t->stage, "first", t->first,
				"last", t->last, "cores",
				u32_list(t->cores, t->n_cores), "requests",
				(json_int_t)t->requests, "busy_cycles",
				(json_int_t)t->busy_cycles, "idle_cycles",
				(json_int_t)t->idle_cycles, "queue_depth",
				t->queue_depth, "queue_capacity",
				t->queue_capacity, "errors",
				(json_int_t)t->errors);
			json_object_update_new(o, hist(t->bucket_us,
						       t->n_bucket_us,
						       t->counts, t->n_counts));
			json_array_append_new(stages, o);
		}
		json_t *o = json_pack("{s:s, s:I, s:f, s:I, s:I, s:o}",
				      "deployment", s->deployment, "tsc_hz",
				      (json_int_t)s->tsc_hz, "uptime_s",
				      s->uptime_s, "requests",
				      (json_int_t)s->requests, "errors",
				      (json_int_t)s->errors, "stages", stages);
		json_object_update_new(o, hist(s->bucket_us, s->n_bucket_us,
					       s->counts, s->n_counts));
		print_json(o);
		break;
	}
	default:
		puts("ok");
	}
}

static int call(lm_ctl *c, Lamina__Request *q)
{
	Lamina__Reply *r;
	lm_error e;
	if (lm_ctl_call(c, q, &r, &e))
		return fail(&e);
	print_reply(r);
	lamina__reply__free_unpacked(r, NULL);
	return 0;
}

/* The remote and memory fields of load-one: next=MAC@IP, input=remote,
 * answers=remote, retry=MS, retries=N, bundles=IN,OUT,ANSWERS,KEEP (as a
 * plan would give them; default 6, 6, 4, 16). */
static int remote_opts(Lamina__LoadStageRequest *l, char **opts, int n)
{
	l->in_bundles = l->out_bundles = 6;
	l->answers_bundles = 4;
	l->keep_bundles = 16;
	for (int i = 0; i < n; i++) {
		char *at;
		struct in_addr a;
		unsigned b[4];
		if (sscanf(opts[i], "bundles=%u,%u,%u,%u", &b[0], &b[1], &b[2],
			   &b[3]) == 4) {
			l->in_bundles = b[0];
			l->out_bundles = b[1];
			l->answers_bundles = b[2];
			l->keep_bundles = b[3];
			continue;
		}
		if (!strncmp(opts[i], "next=", 5) &&
		    (at = strchr(opts[i], '@')) &&
		    inet_pton(AF_INET, at + 1, &a) == 1) {
			*at = '\0';
			l->next_mac = opts[i] + 5;
			l->next_ip = ntohl(a.s_addr);
		} else if (!strcmp(opts[i], "input=remote")) {
			l->input_remote = 1;
		} else if (!strcmp(opts[i], "answers=remote")) {
			l->answers_remote = 1;
		} else if (!strncmp(opts[i], "retry=", 6)) {
			l->retry_ms = (uint32_t)atoi(opts[i] + 6);
		} else if (!strncmp(opts[i], "retries=", 8)) {
			l->max_retries = (uint32_t)atoi(opts[i] + 8);
		} else {
			fprintf(stderr, "lamina-client-test: bad option %s\n",
				opts[i]);
			return -1;
		}
	}
	return 0;
}

static int load_one(lm_ctl *c, const char *dep, unsigned stage,
		    unsigned n_stages, const char *dir, unsigned first,
		    unsigned last, unsigned batch, uint32_t *cores,
		    size_t n_cores, char **opts, int n_opts)
{
	Lamina__Request q = LAMINA__REQUEST__INIT;
	Lamina__LoadStageRequest l = LAMINA__LOAD_STAGE_REQUEST__INIT;
	lm_ship_file *files = NULL;
	int n_files = 0, rc;
	lm_error e;
	if (remote_opts(&l, opts, n_opts))
		return 1;
	/* the stage's files go to laminad's store first (ship.h): for a
	 * range the folder does not have, its manifest alone (for laminad
	 * to refuse the range); a dir that is not a slice folder goes as
	 * given, for laminad to refuse */
	if (lm_ship_stage_files(dir, (int)first, (int)last, &files, &n_files,
				&e) &&
	    lm_ship_stage_files(dir, 0, 0, &files, &n_files, &e)) {
		l.dir = (char *)dir;
	} else if (lm_ship(c, files, n_files, NULL, &e)) {
		free(files);
		return fail(&e);
	}
	Lamina__ModelFile *mf = calloc((size_t)n_files + 1, sizeof(*mf));
	Lamina__ModelFile **ml = calloc((size_t)n_files + 1, sizeof(*ml));
	if (!mf || !ml) {
		free(files);
		free(mf);
		free(ml);
		return 1;
	}
	lm_ship_model_files(files, n_files, mf, ml);
	l.files = ml;
	l.n_files = (size_t)n_files;
	l.deployment = (char *)dep;
	l.stage = stage;
	l.n_stages = n_stages;
	l.first = first;
	l.last = last;
	l.batch = batch;
	l.cores = cores;
	l.n_cores = n_cores;
	q.body_case = LAMINA__REQUEST__BODY_LOAD_STAGE;
	q.load_stage = &l;
	rc = call(c, &q);
	free(files);
	free(mf);
	free(ml);
	return rc;
}

static int unhex(const char *h, uint8_t out[LM_SHIP_HASH])
{
	for (int i = 0; i < LM_SHIP_HASH; i++)
		if (sscanf(h + 2 * i, "%2hhx", &out[i]) != 1)
			return -1;
	return 0;
}

/* push FILE SHA: the whole file in one chunk, claimed to hash to SHA. */
static int push_raw(lm_ctl *c, const char *file, const char *sha)
{
	Lamina__Request q = LAMINA__REQUEST__INIT;
	Lamina__PushFile p = LAMINA__PUSH_FILE__INIT;
	uint8_t h[LM_SHIP_HASH];
	static uint8_t buf[1 << 20];
	FILE *f = fopen(file, "rb");
	size_t n = f ? fread(buf, 1, sizeof(buf), f) : 0;
	if (f)
		fclose(f);
	if (!f || unhex(sha, h)) {
		fprintf(stderr, "lamina-client-test: push FILE SHA256_HEX\n");
		return 1;
	}
	p.sha256.data = h;
	p.sha256.len = sizeof(h);
	p.size = n;
	p.offset = 0;
	p.data.data = buf;
	p.data.len = n;
	q.body_case = LAMINA__REQUEST__BODY_PUSH_FILE;
	q.push_file = &p;
	return call(c, &q);
}

/* load-files DEP NAME=SHA...: a LoadStage naming these files. */
static int load_files(lm_ctl *c, const char *dep, char **args, int n)
{
	Lamina__Request q = LAMINA__REQUEST__INIT;
	Lamina__LoadStageRequest l = LAMINA__LOAD_STAGE_REQUEST__INIT;
	Lamina__ModelFile mf[16], *ml[16];
	uint8_t h[16][LM_SHIP_HASH];
	for (int i = 0; i < n && i < 16; i++) {
		char *eq = strrchr(args[i], '=');
		if (!eq || unhex(eq + 1, h[i])) {
			fprintf(stderr, "lamina-client-test: NAME=SHA256\n");
			return 1;
		}
		*eq = '\0';
		lamina__model_file__init(&mf[i]);
		mf[i].name = args[i];
		mf[i].sha256.data = h[i];
		mf[i].sha256.len = LM_SHIP_HASH;
		ml[i] = &mf[i];
	}
	remote_opts(&l, NULL, 0);
	l.deployment = (char *)dep;
	l.n_stages = 1;
	l.batch = 1;
	l.files = ml;
	l.n_files = (size_t)(n < 16 ? n : 16);
	q.body_case = LAMINA__REQUEST__BODY_LOAD_STAGE;
	q.load_stage = &l;
	return call(c, &q);
}

/* The key to prove (see the top of this file): 0 with *have set, or -1. */
static int fleet_key(lm_fleet_key *key, int *have)
{
	const char *env = getenv("LAMINA_FLEET_KEY");
	char path[4096];
	lm_error e;
	*have = 0;
	if (env && (!*env || !strcmp(env, "none")))
		return 0;
	if (env)
		snprintf(path, sizeof(path), "%s", env);
	else if (lm_fleet_key_path(path, sizeof(path), &e))
		return 0;
	int rc = lm_fleet_key_load(path, key, &e);
	if (rc == -ENOENT && !env)
		return 0;
	if (rc) {
		fail(&e);
		return -1;
	}
	*have = 1;
	return 0;
}

/* One plain frame (at most max bytes) into buf; 0, or -1 at the end or
 * on an error (e says which). */
static int raw_frame(int fd, uint8_t *buf, uint32_t max, uint32_t *n,
		     lm_error *e)
{
	uint8_t head[LM_CTL_FRAME_HEAD];
	if (lm_sock_read(fd, head, sizeof(head), TIMEOUT_MS, "laminad", e))
		return -1;
	*n = lm_ctl_frame_len(head);
	if (*n > max) {
		lm_fail(e, -EPROTO, "a frame of %u bytes", *n);
		return -1;
	}
	return lm_sock_read(fd, buf, *n, TIMEOUT_MS, "laminad", e) ? -1 : 0;
}

/* `replay DEP`: the handshake with the key (ctl.h's session layer, on a
 * socket of its own), a sealed Stop of DEP sent, its reply read, then the
 * very same bytes sent again, as an attacker who recorded them would.
 * Prints {"first": ..., "replayed": ..., "closed": ...}: the first reply
 * ("ok" or its error), laminad's answer to the replay (its error, or
 * "ok" when it took it: a failure) and whether it then closed. */
static int replay(uint16_t port, const char *dep, const lm_fleet_key *key)
{
	static uint8_t buf[LM_CTL_HELLO_FRAME + 65536];
	uint8_t frame[LM_CTL_HELLO_FRAME], sealed[1024];
	char first[600] = "ok", again[600] = "ok";
	lm_ctl_hs hs;
	lm_ctl_session s;
	lm_error e;
	size_t len;
	uint32_t n;
	int fd, rc = 1;
	if (lm_sock_connect("127.0.0.1", port, TIMEOUT_MS, &fd, &e))
		return fail(&e);
	if (raw_frame(fd, buf, sizeof(buf), &n, &e) ||
	    lm_ctl_answer(&hs, key, buf, n, frame, &len, &e))
		goto out;
	struct iovec iov = { frame, len };
	if (lm_sock_writev(fd, &iov, 1, "laminad", &e) ||
	    raw_frame(fd, buf, sizeof(buf), &n, &e) ||
	    lm_ctl_welcome(&hs, buf, n, &s, &e))
		goto out;
	Lamina__Request q = LAMINA__REQUEST__INIT;
	Lamina__StopRequest st = LAMINA__STOP_REQUEST__INIT;
	st.deployment = (char *)dep;
	q.id = 1;
	q.body_case = LAMINA__REQUEST__BODY_STOP;
	q.stop = &st;
	size_t m = lamina__request__get_packed_size(&q);
	if (LM_CTL_SEALED_HEAD + m + LM_CTL_TAG_BYTES > sizeof(sealed)) {
		lm_fail(&e, -E2BIG, "deployment id too long");
		goto out;
	}
	lamina__request__pack(&q, sealed + LM_CTL_SEALED_HEAD);
	lm_ctl_seal(&s, sealed, m);
	for (int round = 0; round < 2; round++) {
		char *what = round ? again : first;
		const uint8_t *body;
		size_t blen;
		iov.iov_base = sealed;
		iov.iov_len = LM_CTL_SEALED_HEAD + m + LM_CTL_TAG_BYTES;
		if (lm_sock_writev(fd, &iov, 1, "laminad", &e) ||
		    raw_frame(fd, buf, sizeof(buf), &n, &e))
			goto out;
		/* the replay's refusal is sealed as laminad's next frame */
		if (lm_ctl_open(&s, buf, n, &body, &blen, &e))
			goto out;
		Lamina__Reply *r = lamina__reply__unpack(NULL, blen, body);
		if (r && r->error)
			snprintf(what, 600, "%s", r->error->message
							 ? r->error->message
							 : "refused");
		else if (!r)
			snprintf(what, 600, "a reply that does not decode");
		lamina__reply__free_unpacked(r, NULL);
	}
	/* laminad ends the connection after a replay: a read sees the end */
	int closed = raw_frame(fd, buf, sizeof(buf), &n, &e) != 0;
	json_t *j = json_pack("{s:s, s:s, s:b}", "first", first, "replayed",
			      again, "closed", closed);
	print_json(j); /* and frees it */
	rc = 0;
out:
	if (rc)
		fail(&e);
	close(fd);
	return rc;
}

static int control(int argc, char **argv, uint16_t port)
{
	lm_ctl *c;
	lm_error e;
	lm_fleet_key key;
	int rc = 1, have;
	if (fleet_key(&key, &have))
		return 1;
	if (!strcmp(argv[2], "replay") && argc == 4) {
		if (!have) {
			fprintf(stderr, "lamina-client-test: replay needs the "
				"fleet key\n");
			return 1;
		}
		rc = replay(port, argv[3], &key);
		lm_fleet_key_wipe(&key);
		return rc;
	}
	rc = lm_ctl_connect("127.0.0.1", port, TIMEOUT_MS, have ? &key : NULL,
			    &c, &e);
	lm_fleet_key_wipe(&key);
	if (rc)
		return fail(&e);
	rc = 1;
	const char *cmd = argv[2], *dep = argc > 3 ? argv[3] : "";
	Lamina__Request q = LAMINA__REQUEST__INIT;
	Lamina__DescribeRequest dq = LAMINA__DESCRIBE_REQUEST__INIT;
	Lamina__StartRequest sq = LAMINA__START_REQUEST__INIT;
	Lamina__StopRequest pq = LAMINA__STOP_REQUEST__INIT;
	Lamina__StatsRequest tq = LAMINA__STATS_REQUEST__INIT;
	Lamina__TeardownRequest dn = LAMINA__TEARDOWN_REQUEST__INIT;
	Lamina__ShutdownRequest sh = LAMINA__SHUTDOWN_REQUEST__INIT;
	sq.deployment = pq.deployment = tq.deployment = dn.deployment =
		(char *)dep;
	if (!strcmp(cmd, "describe")) {
		q.body_case = LAMINA__REQUEST__BODY_DESCRIBE;
		q.describe = &dq;
	} else if (!strcmp(cmd, "start")) {
		q.body_case = LAMINA__REQUEST__BODY_START;
		q.start = &sq;
	} else if (!strcmp(cmd, "stop")) {
		q.body_case = LAMINA__REQUEST__BODY_STOP;
		q.stop = &pq;
	} else if (!strcmp(cmd, "stats")) {
		q.body_case = LAMINA__REQUEST__BODY_STATS;
		q.stats = &tq;
	} else if (!strcmp(cmd, "teardown")) {
		q.body_case = LAMINA__REQUEST__BODY_TEARDOWN;
		q.teardown = &dn;
	} else if (!strcmp(cmd, "shutdown")) {
		q.body_case = LAMINA__REQUEST__BODY_SHUTDOWN;
		q.shutdown = &sh;
	} else if (!strcmp(cmd, "empty")) {
		/* a request with no body, as a newer client might send */
	} else if (!strcmp(cmd, "push") && argc == 5) {
		rc = push_raw(c, argv[3], argv[4]);
		goto out;
	} else if (!strcmp(cmd, "load-files") && argc >= 5) {
		rc = load_files(c, dep, argv + 4, argc - 4);
		goto out;
	} else if (!strcmp(cmd, "load-one") && argc >= 10) {
		rc = load_one(c, dep, (unsigned)atoi(argv[4]),
			      (unsigned)atoi(argv[5]), argv[6],
			      (unsigned)atoi(argv[7]), (unsigned)atoi(argv[8]),
			      (unsigned)atoi(argv[9]), NULL, 0, argv + 10,
			      argc - 10);
		goto out;
	} else if (!strcmp(cmd, "load") && argc >= 7) {
		unsigned n = (unsigned)(argc - 6);
		for (unsigned s = 0; s < n; s++) {
			uint32_t cores[16];
			size_t nc = 0;
			unsigned first, last;
			char *at = strchr(argv[6 + s], '@');
			if (sscanf(argv[6 + s], "%u-%u", &first, &last) != 2) {
				fprintf(stderr, "bad range %s\n", argv[6 + s]);
				goto out;
			}
			for (char *p = at; p && nc < 16;
			     p = strchr(p + 1, '+'))
				cores[nc++] = (uint32_t)atoi(p + 1);
			if (load_one(c, dep, s, n, argv[4], first, last,
				     (unsigned)atoi(argv[5]), cores, nc, NULL,
				     0))
				goto out;
		}
		q.body_case = LAMINA__REQUEST__BODY_START;
		q.start = &sq;
	} else {
		fprintf(stderr, "lamina-client-test: unknown command %s\n",
			cmd);
		goto out;
	}
	rc = call(c, &q);
out:
	lm_ctl_free(c);
	return rc;
}

static int infer(int argc, char **argv, uint16_t port)
{
	lm_tensor in[16] = { 0 }, out[16] = { 0 };
	int n_in = argc - 5, n_out = 0, rc = 1;
	lm_infer *c = NULL;
	lm_error e;
	uint64_t id;
	if (n_in < 1 || n_in > 16)
		return 1;
	for (int i = 0; i < n_in; i++)
		if (lm_npy_read(argv[5 + i], &in[i], &e)) {
			fail(&e);
			goto out;
		}
	if (lm_infer_connect("127.0.0.1", port, TIMEOUT_MS, &c, &e) ||
	    lm_infer_send(c, argv[3], 42, in, n_in, &e) ||
	    lm_infer_recv(c, &id, out, 16, &n_out, &e)) {
		fail(&e);
		goto out;
	}
	for (int j = 0; j < n_out; j++) {
		char path[4096];
		if (j)
			snprintf(path, sizeof(path), "%s.%d.npy", argv[4], j);
		else
			snprintf(path, sizeof(path), "%s", argv[4]);
		if (lm_npy_write(path, &out[j], &e)) {
			fail(&e);
			goto out;
		}
	}
	rc = id == 42 ? 0 : 1;
out:
	for (int i = 0; i < 16; i++) {
		lm_tensor_free(&in[i]);
		lm_tensor_free(&out[i]);
	}
	lm_infer_free(c);
	return rc;
}

/* ---- stress: many clients, each request checked ---- */

struct stress {
	uint16_t port;
	const char *dep;
	lm_tensor in, exp;
	int k, total, window;
	size_t in_row, exp_row;
	double tol; /* 0: bitwise */
	/* per client */
	int client, bad;
	double *sent_at, *lat_ms; /* per request of this client */
	char msg[600];
};

/* An answer row against the expected one: bitwise, or float32 within
 * tol relative to the expected row's own scale. */
static int row_matches(const struct stress *s, const lm_tensor *out, int i)
{
	const uint8_t *want =
		(const uint8_t *)s->exp.data + (size_t)i * s->exp_row;
	if (out->nbytes != s->exp_row)
		return 0;
	if (s->tol <= 0 || s->exp.dtype != LM_DT_FLOAT ||
	    out->dtype != LM_DT_FLOAT)
		return !memcmp(out->data, want, s->exp_row);
	size_t n = s->exp_row / sizeof(float);
	const float *a = out->data, *b = (const float *)want;
	double scale = 0, diff = 0;
	for (size_t j = 0; j < n; j++) {
		scale = fmax(scale, fabs(b[j]));
		diff = fmax(diff, fabs((double)a[j] - b[j]));
	}
	return diff <= s->tol * scale; /* NaN fails */
}

static void row(const lm_tensor *t, int i, size_t bytes, lm_tensor *r)
{
	*r = *t;
	r->dims[0] = 1;
	r->data = (uint8_t *)t->data + (size_t)i * bytes;
	r->nbytes = bytes;
	r->owned = 0;
}

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void *stress_client(void *arg)
{
	struct stress *s = arg;
	lm_infer *c;
	lm_error e;
	uint8_t *seen = calloc((size_t)s->total, 1);
	int sent = 0, got = 0;
	if (!seen || lm_infer_connect("127.0.0.1", s->port, TIMEOUT_MS, &c,
				      &e)) {
		snprintf(s->msg, sizeof(s->msg), "connect: %s", e.msg);
		s->bad = 1;
		free(seen);
		return NULL;
	}
	while (got < s->total && !s->bad) {
		while (sent < s->total && sent - got < s->window) {
			lm_tensor r;
			int i = (sent + s->client) % s->k;
			row(&s->in, i, s->in_row, &r);
			uint64_t id = (uint64_t)s->client << 32 | (uint64_t)sent;
			if (lm_infer_send(c, s->dep, id, &r, 1, &e)) {
				snprintf(s->msg, sizeof(s->msg), "send: %s",
					 e.msg);
				s->bad = 1;
				break;
			}
			s->sent_at[sent] = now();
			sent++;
		}
		lm_tensor out[4];
		int n = 0;
		uint64_t id;
		if (s->bad)
			break;
		if (lm_infer_recv(c, &id, out, 4, &n, &e)) {
			snprintf(s->msg, sizeof(s->msg), "recv: %s", e.msg);
			s->bad = 1;
			break;
		}
		int seq = (int)(uint32_t)id;
		if ((id >> 32) != (uint64_t)s->client || seq >= s->total ||
		    seen[seq]) {
			snprintf(s->msg, sizeof(s->msg), "answer %llx is not "
				 "ours or came twice",
				 (unsigned long long)id);
			s->bad = 1;
		} else {
			int i = (seq + s->client) % s->k;
			seen[seq] = 1;
			s->lat_ms[seq] = (now() - s->sent_at[seq]) * 1e3;
			if (n != 1 || !row_matches(s, &out[0], i)) {
				snprintf(s->msg, sizeof(s->msg), "request %d "
					 "(row %d): wrong output", seq, i);
				s->bad = 1;
			}
		}
		for (int j = 0; j < n; j++)
			lm_tensor_free(&out[j]);
		got++;
	}
	lm_infer_free(c);
	free(seen);
	return NULL;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

/* Nearest-rank percentile p (0..100) of n ascending values. */
static double percentile(const double *v, int n, double p)
{
	int rank = (int)ceil(p / 100.0 * n);
	return v[rank < 1 ? 0 : rank > n ? n - 1 : rank - 1];
}

static int stress(int argc, char **argv, uint16_t port)
{
	struct stress base = { 0 }, *s;
	lm_error e;
	if (argc != 9 && argc != 10)
		return 1;
	base.port = port;
	base.tol = argc == 10 ? atof(argv[9]) : 0;
	base.dep = argv[3];
	if (lm_npy_read(argv[4], &base.in, &e) ||
	    lm_npy_read(argv[5], &base.exp, &e))
		return fail(&e);
	int clients = atoi(argv[6]), total = atoi(argv[7]);
	base.window = atoi(argv[8]);
	base.k = (int)base.in.dims[0];
	if (clients < 1 || clients > 64 || total < clients || base.k < 1 ||
	    base.exp.dims[0] != base.k || base.window < 1) {
		fprintf(stderr, "lamina-client-test: bad stress arguments\n");
		return 1;
	}
	base.in_row = base.in.nbytes / (size_t)base.k;
	base.exp_row = base.exp.nbytes / (size_t)base.k;
	base.total = total / clients;
	int n = base.total * clients;
	s = calloc((size_t)clients, sizeof(*s));
	double *sent_at = calloc((size_t)n, sizeof(double));
	double *lat_ms = calloc((size_t)n, sizeof(double));
	if (!s || !sent_at || !lat_ms) {
		fprintf(stderr, "lamina-client-test: out of memory\n");
		free(s);
		free(sent_at);
		free(lat_ms);
		lm_tensor_free(&base.in);
		lm_tensor_free(&base.exp);
		return 1;
	}
	pthread_t th[64];
	double t0 = now();
	for (int i = 0; i < clients; i++) {
		s[i] = base;
		s[i].client = i;
		s[i].sent_at = sent_at + (size_t)i * (size_t)base.total;
		s[i].lat_ms = lat_ms + (size_t)i * (size_t)base.total;
		pthread_create(&th[i], NULL, stress_client, &s[i]);
	}
	int bad = 0;
	for (int i = 0; i < clients; i++) {
		pthread_join(th[i], NULL);
		if (s[i].bad) {
			fprintf(stderr, "client %d: %s\n", i, s[i].msg);
			bad = 1;
		}
	}
	double dt = now() - t0;
	if (!bad) {
		qsort(lat_ms, (size_t)n, sizeof(double), cmp_double);
		printf("ok %d requests from %d clients in %.3f s: %.2f "
		       "requests/s\n", n, clients, dt, n / dt);
		printf("latency_ms p50=%.3f p90=%.3f p99=%.3f max=%.3f\n",
		       percentile(lat_ms, n, 50), percentile(lat_ms, n, 90),
		       percentile(lat_ms, n, 99), lat_ms[n - 1]);
	}
	free(s);
	free(sent_at);
	free(lat_ms);
	lm_tensor_free(&base.in);
	lm_tensor_free(&base.exp);
	return bad;
}

int main(int argc, char **argv)
{
	if (argc > 1 && !strcmp(argv[1], "--no-key")) {
		setenv("LAMINA_FLEET_KEY", "none", 1);
		argv[1] = argv[0];
		argv++;
		argc--;
	}
	if (argc < 3) {
		fprintf(stderr, "usage: lamina-client-test PORT COMMAND ... "
			"(see the source)\n");
		return 2;
	}
	uint16_t port = (uint16_t)atoi(argv[1]);
	if (!strcmp(argv[2], "infer"))
		return infer(argc, argv, port);
	if (!strcmp(argv[2], "stress"))
		return stress(argc, argv, port);
	return control(argc, argv, port);
}
