/*
 * deploy.c: `lamina deploy` and `lamina teardown`, the procedures (the
 * commands' argument handling is in cmd_deploy.c).
 *
 * Deploy: read the plan, find the laminad at each device's control port
 * (address "HOST[:PORT]", port 7700 by default) or, on this host, start
 * one; choose free worker cores, load the stages in pipeline order, start
 * them from the last laminad to the ingress's.  The record is saved before
 * and after each of these, so what a crash leaves is always known.
 *
 * A plan over several laminads (devices at different addresses or ports)
 * joins them.  Two laminads on this host share an edge through a memif
 * pair of its own: the consumer's laminad listens, the producer's
 * connects (each names the abstract socket from the deployment id and the
 * edge number; LoadStage only says which edges are memif).
 * Laminads on different hosts use their ports between laminads (laminad
 * --port, a NIC or a veth): each stage whose neighbour is there is told
 * that laminad's port MAC and IPv4 address (from Describe).  Either way
 * the last stage sends its answers back to the ingress's laminad, and the
 * ingress
 * keeps every request until answered and re-sends it after at least
 * twice the plan's predicted latency (20 ms at least; it then learns the
 * real answer times).  A laminad of another host that does not answer is
 * started there over ssh when its device names an ssh destination
 * (remote.h).  Each laminad is shipped its stages' files (proto/ship.h)
 * and opens them from its store: no folder is shared between hosts.
 *
 * Teardown reads only the record (and the laminad state files it names):
 * it never needs the plan, the model or a live laminad.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <glob.h>
#include <ifaddrs.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

#include "agent.h"
#include "cli.h"
#include "deploy.h"
#include "lamina/manifest.h"
#include "remote.h"
#include "ship.h"

#define say(o_progress, ...)                                                  \
	do {                                                                  \
		if (o_progress) {                                             \
			fprintf(stderr, "  ");                                \
			fprintf(stderr, __VA_ARGS__);                         \
			fputc('\n', stderr);                                  \
		}                                                             \
	} while (0)

/* ---- where a device is ---- */

/* "HOST", "HOST:PORT" or "[V6]:PORT" into a numeric host and a port. */
static int parse_address(const lm_device *d, char *host, size_t len,
			 int *port, lm_error *e)
{
	char name[LM_ADDR_MAX];
	const char *a = d->address, *colon;
	*port = LM_CONTROL_PORT;
	if (!*a)
		a = "127.0.0.1";
	if (*a == '[') {
		const char *end = strchr(a, ']');
		if (!end)
			return lm_fail(e, -EINVAL, "device '%s': bad address "
				       "'%s'", d->name, d->address);
		snprintf(name, sizeof(name), "%.*s", (int)(end - a - 1), a + 1);
		colon = end[1] == ':' ? end + 1 : NULL;
	} else if ((colon = strchr(a, ':')) && !strchr(colon + 1, ':')) {
		snprintf(name, sizeof(name), "%.*s", (int)(colon - a), a);
	} else {
		snprintf(name, sizeof(name), "%s", a);
		colon = NULL;
	}
	if (colon) {
		char *end;
		long p = strtol(colon + 1, &end, 10);
		if (*end || p < 1 || p > 65534)
			return lm_fail(e, -EINVAL, "device '%s': bad port in "
				       "address '%s'", d->name, d->address);
		*port = (int)p;
	}
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res = NULL;
	int g = getaddrinfo(name, NULL, &hints, &res);
	if (g)
		return lm_fail(e, -EINVAL, "device '%s': address '%s': %s",
			       d->name, name, gai_strerror(g));
	g = getnameinfo(res->ai_addr, res->ai_addrlen, host, (socklen_t)len,
			NULL, 0, NI_NUMERICHOST);
	freeaddrinfo(res);
	if (g)
		return lm_fail(e, -EINVAL, "device '%s': address '%s': %s",
			       d->name, name, gai_strerror(g));
	return 0;
}

/* ---- deploy ---- */

/* The slice folder: its manifest must list the plan's slices. */
/* The name clients use by default: the model file's stem, in the
 * letters a name may have ('-' for the others), room left for "-NN". */
static void default_name(const lm_manifest *man, const char *dir, char *out,
			 size_t len)
{
	const char *src = man->source && man->source[0] ? man->source : dir;
	const char *base = strrchr(src, '/');
	base = base && base[1] ? base + 1 : src;
	size_t n = strcspn(base, "."), k = 0;
	if (!n)
		n = strlen(base);
	for (size_t i = 0; i < n && k + 1 < len && k < LM_REC_ID_MAX - 5; i++) {
		char c = base[i];
		int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			 (c >= '0' && c <= '9') || c == '-' || c == '_';
		out[k++] = ok ? c : '-';
	}
	out[k] = '\0';
	if (!k)
		snprintf(out, len, "model");
}

static int check_model(const char *dir, int n_slices, char *name,
		       size_t name_len, lm_error *e)
{
	lm_manifest *man = NULL;
	int rc = lm_manifest_load(dir, &man, e);
	if (!rc && man->n_slices != n_slices)
		rc = lm_fail(e, -EINVAL, "%s has %d slices but the plan "
			     "places %d: it was made for another slicing",
			     dir, man->n_slices, n_slices);
	if (!rc)
		default_name(man, dir, name, name_len);
	lm_manifest_free(man);
	return rc;
}

/* Fill the record's devices, laminads and stages from the plan. */
static int map_plan(const lm_plan *p, lm_record *r, lm_error *e)
{
	int rc;
	for (int i = 0; i < p->devices->n; i++) {
		const lm_device *d = &p->devices->dev[i];
		lm_rec_device *rd = &r->devices[i];
		char host[LM_ADDR_MAX];
		int port, l;
		snprintf(rd->name, sizeof(rd->name), "%s", d->name);
		snprintf(rd->address, sizeof(rd->address), "%s", d->address);
		rd->laminad = -1;
		if (!p->cores_used[i])
			continue; /* in the fleet, not in this plan */
		if ((rc = parse_address(d, host, sizeof(host), &port, e)))
			return rc;
		for (l = 0; l < r->n_laminads; l++)
			if (!strcmp(r->laminads[l].host, host) &&
			    r->laminads[l].control_port == port)
				break;
		if (l == r->n_laminads) {
			if (l == LM_REC_MAX_LAMINADS)
				return lm_fail(e, -EINVAL, "the plan uses more "
					       "than %d laminads", l);
			lm_rec_laminad *ld = &r->laminads[r->n_laminads++];
			snprintf(ld->host, sizeof(ld->host), "%s", host);
			ld->control_port = port;
		}
		rd->laminad = l;
	}
	for (int i = 0; i < p->n_stages; i++) {
		const lm_plan_stage *s = &p->stages[i];
		lm_rec_stage *st = &r->stages[i];
		snprintf(st->device, sizeof(st->device), "%s",
			 p->devices->dev[s->device].name);
		st->laminad = r->devices[s->device].laminad;
		st->first = s->first;
		st->last = s->last;
		st->replicas = s->cores;
		if (s->cores > LM_REC_MAX_CORES)
			return lm_fail(e, -EINVAL, "stage %d: %d replicas (at "
				       "most %d)", i, s->cores,
				       LM_REC_MAX_CORES);
	}
	return 0;
}

/*
 * The state folder's lock (flock on the folder itself: no file to leave
 * behind).  Held while a laminad is found or started, and while teardown
 * decides to stop one and stops it, so that two lamina processes never
 * start two laminads on one port, nor does one stop a laminad another is
 * just taking into use.  -errno (-EINTR on a signal) or an fd to close.
 */
static int state_lock(const char *state_dir, lm_error *e)
{
	int fd = open(state_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return lm_fail(e, -errno, "%s: %s", state_dir, strerror(errno));
	if (flock(fd, LOCK_EX) != 0) {
		int rc = -errno;
		close(fd);
		return lm_fail(e, rc, rc == -EINTR ? "interrupted"
			       : "cannot lock %s: %s", state_dir,
			       strerror(-rc));
	}
	return fd;
}

static int find_or_start(const lm_deploy_opts *o, lm_record *r, int l,
			 const lm_device *dev, lm_error *e);

static int bring_up(const lm_deploy_opts *o, lm_record *r, int l,
		    const lm_device *dev, lm_error *e)
{
	int lock = state_lock(o->state_dir, e);
	if (lock < 0)
		return lock;
	int rc = find_or_start(o, r, l, dev, e);
	close(lock);
	return rc;
}

static int interrupted(const lm_deploy_opts *o, lm_error *e)
{
	return o->stop && *o->stop ? lm_fail(e, -EINTR, "interrupted") : 0;
}

/* Another host of r than laminad l's, for the route its port takes; NULL
 * when every laminad of r is on l's host. */
static const char *other_host(const lm_record *r, int l)
{
	for (int k = 0; k < r->n_laminads; k++)
		if (strcmp(r->laminads[k].host, r->laminads[l].host))
			return r->laminads[k].host;
	return NULL;
}

/* Start laminad l of r on its host over ssh (dev->ssh), with its port on
 * the interface that host routes to the others through, and wait until
 * it answers. */
static int start_remote(const lm_deploy_opts *o, lm_record *r, int l,
			const lm_device *dev, lm_error *e)
{
	lm_rec_laminad *ld = &r->laminads[l];
	const char *to = other_host(r, l);
	char port_if[64] = "";
	int rc, pid = 0;
	if (to && (rc = lm_remote_route_dev(dev->ssh, to, port_if,
					    sizeof(port_if), e)))
		return lm_fail_prefix(e, rc, "device '%s'", dev->name);
	/* from here on teardown stops it, and cleans up after it there */
	ld->started = 1;
	snprintf(ld->ssh, sizeof(ld->ssh), "%s", dev->ssh);
	snprintf(ld->exe, sizeof(ld->exe), "%s", o->laminad ? o->laminad : "");
	ld->ingress_port = ld->control_port + 1;
	if ((rc = lm_record_save(r, e)))
		return rc;
	say(o->progress, "starting laminad '%s' on %s over ssh (%s)%s%s",
	    dev->name, ld->host, dev->ssh, port_if[0] ? ", its port on " : "",
	    port_if);
	lm_fleet_key key; /* made here on first use; goes over ssh's stdin */
	if ((rc = lm_agent_fleet_key(&key, NULL, 0, e)))
		return rc;
	lm_remote_start_opts so = {
		.dest = dev->ssh, .exe = o->laminad, .listen = ld->host,
		.control_port = ld->control_port,
		.ingress_port = ld->ingress_port, .name = dev->name,
		.port_if = port_if[0] ? port_if : NULL, .poll = o->poll,
		.hugepages = o->hugepages, .key = &key,
	};
	rc = lm_remote_start(&so, &pid, e);
	lm_fleet_key_wipe(&key);
	if (rc)
		return lm_fail_prefix(e, rc, "device '%s'", dev->name);
	ld->pid = pid;
	if ((rc = lm_record_save(r, e)))
		return rc;
	Lamina__Reply *rep = NULL;
	for (int tries = 0;; tries++) {
		rc = lm_agent_describe(ld->host, ld->control_port,
				       LM_AGENT_QUICK_MS, &rep, e);
		if (!rc || tries >= 600 || (rc = interrupted(o, e)))
			break;
		struct timespec nap = { 0, 100 * 1000000 };
		nanosleep(&nap, NULL);
	}
	if (rc)
		return lm_fail_prefix(e, rc, "laminad pid %d on %s", pid,
				      dev->ssh);
	ld->ingress_port = (int)rep->describe->ingress_port;
	ld->http_port = (int)rep->describe->http_port;
	lamina__reply__free_unpacked(rep, NULL);
	/* it took the key (an older laminad there would not have) */
	if ((rc = lm_agent_trusted(ld->host, ld->control_port, e)))
		return lm_fail_prefix(e, rc, "laminad pid %d on %s", pid,
				      dev->ssh);
	say(o->progress, "laminad pid %d is up on %s:%d", pid, ld->host,
	    ld->control_port);
	return lm_record_save(r, e);
}

/* Make sure laminad l of r answers: found running, or started by us (the
 * state folder is locked). */
static int find_or_start(const lm_deploy_opts *o, lm_record *r, int l,
			 const lm_device *dev, lm_error *e)
{
	lm_rec_laminad *ld = &r->laminads[l];
	Lamina__Reply *rep = NULL;
	lm_error probe;
	int rc = lm_agent_describe(ld->host, ld->control_port,
				   LM_AGENT_QUICK_MS, &rep, &probe);
	if (!rc) {
		ld->started = 0;
		ld->pid = (int)rep->describe->pid;
		ld->ingress_port = (int)rep->describe->ingress_port;
		ld->http_port = (int)rep->describe->http_port;
		say(o->progress, "laminad '%s' (pid %d) answers on %s:%d",
		    rep->describe->name, ld->pid, ld->host,
		    ld->control_port);
		lamina__reply__free_unpacked(rep, NULL);
		if ((rc = lm_agent_trusted(ld->host, ld->control_port, e)))
			return rc;
		return lm_record_save(r, e);
	}
	if (rc == -EACCES) { /* another fleet's: the message says so */
		*e = probe;
		return rc;
	}
	if (!lm_agent_is_local(ld->host) && dev->ssh[0] &&
	    (rc == -ECONNREFUSED || rc == -ETIMEDOUT || rc == -EHOSTUNREACH))
		return start_remote(o, r, l, dev, e);
	if (!lm_agent_is_local(ld->host))
		return lm_fail(e, rc, "device '%s' is not on this host and no "
			       "laminad answers at %s:%d (%s): give it an "
			       "\"ssh\" destination in devices.json (or `lamina "
			       "devices add ssh://HOST`) and lamina starts one "
			       "there, or start one by hand (laminad --listen "
			       "ADDR --control-port %d --port IFACE)", dev->name,
			       ld->host, ld->control_port, probe.msg,
			       ld->control_port);
	if (rc != -ECONNREFUSED) {
		*e = probe;
		return lm_fail_prefix(e, rc, "laminad at %s:%d", ld->host,
				      ld->control_port);
	}
	/* Nothing listens.  A state file left there is a dead laminad's:
	 * clean up after it first (its owner's teardown then finds a file
	 * that is not its laminad's, or none). */
	char state_file[PATH_MAX], exe[PATH_MAX], log[PATH_MAX];
	char key[PATH_MAX];
	if (lm_state_path(o->state_dir, ld->control_port, state_file,
			  sizeof(state_file)) ||
	    lm_state_log_path(o->state_dir, ld->control_port, log,
			      sizeof(log)))
		return lm_fail(e, -ENAMETOOLONG, "%s: path too long",
			       o->state_dir);
	lm_laminad_state old;
	if (!lm_state_load(state_file, &old, &probe)) {
		if (lm_agent_alive(old.pid))
			return lm_fail(e, -EBUSY, "laminad pid %d (%s) does "
				       "not answer on %s:%d", old.pid,
				       state_file, ld->host,
				       ld->control_port);
		say(o->progress, "cleaning up after laminad pid %d, which "
		    "died", old.pid);
		if ((rc = lm_agent_cleanup(o->state_dir, ld->control_port,
					   old.pid, o->laminad, e)))
			return rc;
	}
	if ((rc = lm_agent_find(o->laminad, exe, sizeof(exe), e)))
		return rc;
	lm_fleet_key fk; /* made here on first use; laminad reads the file */
	rc = lm_agent_fleet_key(&fk, key, sizeof(key), e);
	lm_fleet_key_wipe(&fk);
	if (rc)
		return rc;
	ld->ingress_port = ld->control_port + 1;
	ld->started = 1; /* from here on, teardown stops and cleans it */
	if ((rc = lm_record_save(r, e)))
		return rc;
	lm_agent_spawn_opts so = {
		.exe = exe, .listen = ld->host,
		.control_port = ld->control_port,
		.ingress_port = ld->ingress_port, .name = dev->name,
		.state_dir = o->state_dir, .poll = o->poll,
		.hugepages = o->hugepages, .log = log, .fleet_key = key,
	};
	say(o->progress, "starting laminad '%s' on %s:%d (log %s)", dev->name,
	    ld->host, ld->control_port, log);
	if ((rc = lm_agent_spawn(&so, &ld->pid, e)))
		return rc;
	if ((rc = lm_record_save(r, e)))
		return rc;
	lm_laminad_state st;
	if ((rc = lm_agent_wait_up(ld->pid, state_file, ld->host,
				   ld->control_port, 60, log, o->stop, &st,
				   e)))
		return rc;
	ld->ingress_port = st.ingress_port;
	if (!lm_agent_describe(ld->host, ld->control_port, LM_AGENT_QUICK_MS,
			       &rep, &probe)) {
		ld->http_port = (int)rep->describe->http_port;
		lamina__reply__free_unpacked(rep, NULL);
	}
	say(o->progress, "laminad pid %d is up (ingress port %d, http port "
	    "%d%s)", st.pid, st.ingress_port, ld->http_port,
	    st.huge_count ? ", hugepages reserved" : "");
	return lm_record_save(r, e);
}

/* Whether core c was given to a stage of an earlier laminad of r on this
 * host (two laminads here share the cpus, and neither's Describe knows
 * the other's stages). */
static int taken_here(const lm_record *r, int l, uint32_t c)
{
	for (int i = 0; i < r->n_stages; i++) {
		const lm_rec_stage *st = &r->stages[i];
		if (st->laminad >= l || !lm_agent_is_local(r->laminads[st->laminad].host)
		    || !lm_agent_is_local(r->laminads[l].host))
			continue;
		for (int k = 0; k < st->n_cores; k++)
			if ((uint32_t)st->cores[k] == c)
				return 1;
	}
	return 0;
}

/*
 * Pick each replica's worker core (a cpu) on laminad l: free cores first
 * (not busy there, nor given to an earlier laminad of this deployment on
 * this host), one replica each; when the plan wants more than there are,
 * replicas share cores round-robin (laminad runs several worker lcores per
 * cpu and then polls adaptively), and laminad refuses a core with no slot
 * left.
 */
static int choose_cores(const lm_deploy_opts *o, lm_record *r, int l,
			lm_error *e)
{
	lm_rec_laminad *ld = &r->laminads[l];
	Lamina__Reply *rep = NULL;
	int rc = lm_agent_describe(ld->host, ld->control_port,
				   LM_AGENT_QUICK_MS, &rep, e);
	if (rc)
		return rc;
	Lamina__DescribeReply *d = rep->describe;
	size_t n = d->n_worker_cores;
	uint32_t *order = calloc(n ? n : 1, sizeof(*order));
	if (!order) {
		lamina__reply__free_unpacked(rep, NULL);
		return lm_fail(e, -ENOMEM, "out of memory");
	}
	size_t idle = 0, n_busy = 0;
	for (size_t c = 0; c < n; c++) {
		int busy = taken_here(r, l, d->worker_cores[c]);
		for (size_t b = 0; b < d->n_busy_cores; b++)
			busy |= d->busy_cores[b] == d->worker_cores[c];
		/* idle cores from the front, busy ones from the back */
		if (busy)
			order[n - 1 - n_busy++] = d->worker_cores[c];
		else
			order[idle++] = d->worker_cores[c];
	}
	int need = 0, next = 0;
	for (int i = 0; i < r->n_stages; i++)
		if (r->stages[i].laminad == l)
			need += r->stages[i].replicas;
	if (!n) {
		rc = lm_fail(e, -ENOSPC, "laminad '%s' at %s:%d has no worker "
			     "cores", d->name, ld->host, ld->control_port);
		goto out;
	}
	if ((size_t)need > idle)
		say(o->progress, "the plan runs %d worker%s and laminad '%s' "
		    "has %zu idle core%s: they share cores", need,
		    need == 1 ? "" : "s", d->name, idle, idle == 1 ? "" : "s");
	for (int i = 0; i < r->n_stages; i++) {
		lm_rec_stage *st = &r->stages[i];
		if (st->laminad != l)
			continue;
		st->n_cores = st->replicas;
		for (int c = 0; c < st->replicas; c++)
			st->cores[c] = (int)order[next++ % n];
	}
out:
	free(order);
	lamina__reply__free_unpacked(rep, NULL);
	return rc;
}

/* Whether laminads a and b both run on this host: an edge between them
 * goes over a memif pair. */
static int same_host(const lm_record *r, int a, int b)
{
	return lm_agent_is_local(r->laminads[a].host) && lm_agent_is_local(r->laminads[b].host);
}

/* A laminad's port to other laminads, from Describe. */
struct port {
	char mac[18];
	uint32_t ip;
};

/* The laminad stage i hands its output to: the next stage's, or for the
 * last stage the ingress's (stage 0), where the answers go. */
static int next_laminad(const lm_record *r, int i)
{
	return r->stages[i + 1 < r->n_stages ? i + 1 : 0].laminad;
}

/* Every laminad a bundle leaves or reaches over the network needs a port:
 * read them all (Describe). */
static int find_ports(const lm_deploy_opts *o, const lm_record *r,
		      struct port *ports, lm_error *e)
{
	for (int l = 0; l < r->n_laminads; l++) {
		const lm_rec_laminad *ld = &r->laminads[l];
		int needed = 0;
		for (int i = 0; i < r->n_stages; i++) {
			int from = r->stages[i].laminad, to = next_laminad(r, i);
			needed |= from != to && !same_host(r, from, to) &&
				   (from == l || to == l);
		}
		if (!needed)
			continue;
		Lamina__Reply *rep = NULL;
		int rc = lm_agent_describe(ld->host, ld->control_port,
					   LM_AGENT_QUICK_MS, &rep, e);
		if (rc)
			return lm_fail_prefix(e, rc, "laminad at %s:%d",
					      ld->host, ld->control_port);
		const Lamina__DescribeReply *d = rep->describe;
		if (!d->port_mac || strlen(d->port_mac) != 17 || !d->port_ip) {
			rc = lm_fail(e, -ENODEV, "laminad '%s' at %s:%d has no "
				     "port to other laminads, and the plan "
				     "sends tensors between it and another: "
				     "start it with --port IFACE", d->name,
				     ld->host, ld->control_port);
		} else {
			memcpy(ports[l].mac, d->port_mac, 18);
			ports[l].ip = d->port_ip;
			say(o->progress, "laminad '%s' at %s:%d: port %s, "
			    "%u.%u.%u.%u, MTU %u", d->name, ld->host,
			    ld->control_port, d->port_mac, d->port_ip >> 24,
			    d->port_ip >> 16 & 255, d->port_ip >> 8 & 255,
			    d->port_ip & 255, d->port_mtu);
		}
		lamina__reply__free_unpacked(rep, NULL);
		if (rc)
			return rc;
	}
	return 0;
}

/* A stage takes no more than the plan charged (5% slack for what the
 * runtime rounds), or the deployment is refused with the numbers. */
static int check_memory(const lm_plan_stage *ps, int i,
			const Lamina__LoadStageReply *lr, lm_error *e)
{
	const struct {
		const char *what;
		double planned, got;
	} m[] = {
		{ "weights", ps->weight_bytes, (double)lr->weight_bytes },
		{ "arenas", ps->arena_bytes, (double)lr->arena_bytes },
		{ "edge pools", ps->ring_bytes, (double)lr->ring_bytes },
	};
	for (size_t k = 0; k < sizeof(m) / sizeof(m[0]); k++)
		if (m[k].got > m[k].planned * 1.05) {
			char a[32], b[32];
			return lm_fail(e, -ENOSPC, "stage %d takes %s of %s, "
				       "more than the %s the plan charged "
				       "(+5%%): plan again with a fresh "
				       "`lamina bench`", i,
				       lm_bytes_str(m[k].got, a, sizeof(a)),
				       m[k].what,
				       lm_bytes_str(m[k].planned, b,
						    sizeof(b)));
		}
	return 0;
}

/* Send stage i's LoadStage (ls) to its laminad, take a name that is
 * free there when the name is ours to choose, and check what it took
 * against the plan. */
static int send_load(const lm_deploy_opts *o, lm_record *r, int i,
		     const lm_plan_stage *ps, Lamina__LoadStageRequest *ls,
		     lm_error *e)
{
	lm_rec_stage *st = &r->stages[i];
	lm_rec_laminad *ld = &r->laminads[st->laminad];
	Lamina__Request req = LAMINA__REQUEST__INIT;
	Lamina__Reply *rep = NULL;
	int rc;
	req.body_case = LAMINA__REQUEST__BODY_LOAD_STAGE;
	req.load_stage = ls;
	st->status = LM_STAGE_LOADING;
	if ((rc = lm_record_save(r, e)))
		return rc;
	char base[LM_REC_ID_MAX - 4]; /* room for "-NN" */
	snprintf(base, sizeof(base), "%.27s", r->name);
	for (int k = 2;; k++) {
		rc = lm_agent_call(ld->host, ld->control_port,
				   LM_AGENT_LOAD_MS, &req, &rep, e);
		/* a name taken on that laminad: the next free one, unless
		 * the user chose it */
		if (rc != -EEXIST || i != 0 || o->name || k > 99)
			break;
		snprintf(r->name, sizeof(r->name), "%s-%d", base, k);
		if ((rc = lm_record_save(r, e)))
			return rc;
	}
	if (rc)
		return lm_fail_prefix(e, rc, "stage %d (slices %d-%d)", i,
				      st->first, st->last);
	if (rep->body_case == LAMINA__REPLY__BODY_LOAD_STAGE) {
		Lamina__LoadStageReply *lr = rep->load_stage;
		char b1[32], b2[32];
		if (lr->n_cores && lr->n_cores <= LM_REC_MAX_CORES) {
			st->n_cores = (int)lr->n_cores;
			for (int c = 0; c < st->n_cores; c++)
				st->cores[c] = (int)lr->cores[c];
		}
		char b3[32];
		say(o->progress, "stage %d: slices %d-%d on %d core%s "
		    "(weights %s, arenas %s, edge pools %s)", i, st->first,
		    st->last, st->n_cores, st->n_cores == 1 ? "" : "s",
		    lm_bytes_str((double)lr->weight_bytes, b1, sizeof(b1)),
		    lm_bytes_str((double)lr->arena_bytes, b3, sizeof(b3)),
		    lm_bytes_str((double)lr->ring_bytes, b2, sizeof(b2)));
		rc = check_memory(ps, i, lr, e);
	}
	lamina__reply__free_unpacked(rep, NULL);
	st->status = LM_STAGE_LOADED;
	if (rc) {
		lm_error ignore;
		lm_record_save(r, &ignore);
		return rc;
	}
	st->status = LM_STAGE_LOADED;
	return lm_record_save(r, e);
}


/* Ship stage i's model files (the manifest and its slices) to its
 * laminad's store, sending only what it lacks; *files names them for
 * LoadStage. */
static int ship(const lm_deploy_opts *o, const lm_record *r, int i,
		lm_ship_file **files, int *n, lm_error *e)
{
	const lm_rec_stage *st = &r->stages[i];
	const lm_rec_laminad *ld = &r->laminads[st->laminad];
	lm_ctl *c = NULL;
	uint64_t pushed = 0;
	char b[32];
	int rc = lm_ship_stage_files(r->model, st->first, st->last, files, n,
				     e);
	if (!rc)
		rc = lm_agent_connect(ld->host, ld->control_port,
				      LM_AGENT_LOAD_MS, &c, e);
	if (!rc)
		rc = lm_ship(c, *files, *n, &pushed, e);
	lm_ctl_free(c);
	if (rc)
		return lm_fail_prefix(e, rc, "stage %d: shipping its model "
				      "files to %s:%d", i, ld->host,
				      ld->control_port);
	say(o->progress, "stage %d: its %d model files are in the store of "
	    "%s:%d (%s shipped)", i, *n, ld->host, ld->control_port,
	    lm_bytes_str((double)pushed, b, sizeof(b)));
	return 0;
}

static int load_stage(const lm_deploy_opts *o, lm_record *r, int i,
		      const lm_plan *p, const struct port *ports,
		      unsigned retry_ms, lm_error *e)
{
	const lm_plan_stage *ps = &p->stages[i];
	double period_us = p->period_us;
	lm_rec_stage *st = &r->stages[i];
	Lamina__LoadStageRequest ls = LAMINA__LOAD_STAGE_REQUEST__INIT;
	uint32_t cores[LM_REC_MAX_CORES];
	int rc;
	for (int c = 0; c < st->n_cores; c++)
		cores[c] = (uint32_t)st->cores[c];
	/* stages are numbered as in the whole pipeline, on every laminad */
	ls.deployment = r->id;
	ls.stage = (uint32_t)i;
	ls.n_stages = (uint32_t)r->n_stages;
	if (r->n_laminads > 1) {
		/* edges that cross to another laminad: memif on this host,
		 * the ports between hosts */
		int n = r->n_stages, here = st->laminad;
		int next = next_laminad(r, i), prev = i ? i - 1 : n - 1;
		int from = r->stages[prev].laminad;
		if (next != here && same_host(r, here, next)) {
			ls.next_memif = 1;
		} else if (next != here) {
			ls.next_mac = (char *)ports[next].mac;
			ls.next_ip = ports[next].ip;
		}
		/* from the stage before, or for stage 0 the answers from the
		 * last (edge n) */
		int remote = from != here, memif = remote &&
						   same_host(r, from, here);
		if (i > 0) {
			ls.input_remote = remote;
			ls.input_memif = memif;
		} else {
			ls.answers_remote = remote && n > 1;
			ls.answers_memif = memif;
			ls.retry_ms = retry_ms;
			ls.period_us = (uint32_t)(period_us + 0.5);
		}
	}
	/* the stage's model files go to its laminad's store first */
	lm_ship_file *files = NULL;
	int n_files = 0;
	Lamina__ModelFile *mf = NULL, **ml = NULL;
	if ((rc = ship(o, r, i, &files, &n_files, e)))
		return rc;
	mf = calloc((size_t)n_files + 1, sizeof(*mf));
	ml = calloc((size_t)n_files + 1, sizeof(*ml));
	if (!mf || !ml) {
		rc = lm_fail(e, -ENOMEM, "out of memory");
		goto out;
	}
	lm_ship_model_files(files, n_files, mf, ml);
	ls.files = ml;
	ls.n_files = (size_t)n_files;
	ls.first = (uint32_t)st->first;
	ls.last = (uint32_t)st->last;
	ls.batch = (uint32_t)r->batch;
	ls.n_cores = (size_t)st->n_cores;
	ls.cores = cores;
	/* the pools, as the plan charged them */
	ls.in_bundles = (uint32_t)ps->in_bundles;
	ls.out_bundles = (uint32_t)ps->out_bundles;
	ls.answers_bundles = (uint32_t)ps->answers_bundles;
	ls.keep_bundles = i == 0 && ls.answers_remote ? (uint32_t)p->keep : 0;
	if (i == 0) {
		/* serving: the name, and how long a batch waits to fill (the
		 * plan's period: a batch's worth of requests comes in one
		 * period at the throughput planned) */
		ls.name = r->name;
		ls.max_delay_us = o->max_delay_us >= 0
			? (uint32_t)o->max_delay_us
			: (uint32_t)(period_us > 1 ? period_us + 0.5 : 1);
		ls.max_queue = (uint32_t)o->max_queue;
	}
	rc = send_load(o, r, i, ps, &ls, e);
out:
	free(files);
	free(mf);
	free(ml);
	return rc;
}


/* Everything after the record exists: on failure the caller undoes. */
static int deploy_steps(const lm_deploy_opts *o, const lm_plan *p,
			lm_record *r, lm_error *e)
{
	struct port ports[LM_REC_MAX_LAMINADS] = { { { 0 }, 0 } };
	double ms = 2 * p->latency_us / 1000;
	unsigned retry_ms = (unsigned)(ms > 20 ? ms : 20);
	int rc;
	for (int l = 0; l < r->n_laminads; l++) {
		const lm_device *dev = NULL;
		for (int i = 0; i < r->n_devices && !dev; i++)
			if (r->devices[i].laminad == l)
				dev = &p->devices->dev[i];
		if ((rc = interrupted(o, e)) ||
		    (rc = bring_up(o, r, l, dev, e)) ||
		    (rc = choose_cores(o, r, l, e)))
			return rc;
	}
	if (r->n_laminads > 1 && (rc = find_ports(o, r, ports, e)))
		return rc;
	for (int i = 0; i < r->n_stages; i++)
		if ((rc = interrupted(o, e)) ||
		    (rc = load_stage(o, r, i, p, ports, retry_ms, e)))
			return rc;
	/* from the last stage's laminad back to the ingress's, so that each
	 * laminad's successors serve before it sends them anything */
	int started[LM_REC_MAX_LAMINADS] = { 0 };
	for (int i = r->n_stages - 1; i >= 0; i--) {
		int l = r->stages[i].laminad;
		if (started[l] || (l == r->stages[0].laminad && i > 0))
			continue;
		started[l] = 1;
		if ((rc = interrupted(o, e)) ||
		    (rc = lm_agent_simple(r->laminads[l].host,
					  r->laminads[l].control_port,
					  LAMINA__REQUEST__BODY_START, r->id,
					  e)))
			return rc;
	}
	snprintf(r->status, sizeof(r->status), "running");
	return lm_record_save(r, e);
}

int lm_deploy(const lm_deploy_opts *o, lm_record **out, lm_error *e)
{
	lm_plan *p = NULL;
	lm_record *r = NULL;
	char model[PATH_MAX], plan[PATH_MAX], name[LM_REC_ID_MAX];
	int rc;
	*out = NULL;
	if ((rc = lm_plan_load(o->plan, &p, e)))
		return rc;
	if (!o->model && !p->model[0]) {
		rc = lm_fail(e, -EINVAL, "%s does not say where its slices are "
			     "(an older plan): give --model DIR", o->plan);
		goto out;
	}
	const char *dir = o->model ? o->model : p->model;
	const char *bad = !realpath(dir, model)	     ? dir
			  : !realpath(o->plan, plan) ? o->plan : NULL;
	if (bad) {
		rc = lm_fail(e, -errno, "%s: %s", bad, strerror(errno));
		goto out;
	}
	if ((rc = check_model(model, p->n_slices, name, sizeof(name), e)) ||
	    (rc = lm_record_create(o->state_dir, p->devices->n, p->n_stages,
				   &r, e)))
		goto out;
	snprintf(r->plan, sizeof(r->plan), "%s", plan);
	snprintf(r->model, sizeof(r->model), "%s", model);
	if (o->name)
		snprintf(r->name, sizeof(r->name), "%s", o->name);
	else
		snprintf(r->name, sizeof(r->name), "%s", name);
	r->batch = p->batch;
	if ((rc = map_plan(p, r, e)))
		goto out;
	if ((rc = lm_record_save(r, e)))
		goto out;
	say(o->progress, "deployment %s: %d stage%s of %s at batch %d", r->id,
	    r->n_stages, r->n_stages == 1 ? "" : "s", model, r->batch);
	rc = deploy_steps(o, p, r, e);
	if (rc) {
		lm_error undo;
		snprintf(r->status, sizeof(r->status), "failed");
		lm_record_save(r, &undo);
		say(o->progress, "undoing what was done");
		if (lm_teardown(r, o->state_dir, o->progress, 0, &undo)) {
			char msg[sizeof(e->msg)];
			snprintf(msg, sizeof(msg), "%s", e->msg);
			lm_fail(e, rc, "%s; undoing it failed too (%s): run "
				"'lamina teardown %s'", msg, undo.msg, r->id);
		}
		goto out;
	}
	*out = r;
	r = NULL;
out:
	lm_record_free(r);
	lm_plan_free(p);
	return rc;
}

/* ---- teardown ---- */

/* Records in the state folder, other than r's, that use laminad ld: one
 * deploying or running, or one tearing down that still has stages there
 * (one whose stages left it is no user); the first one's id in who. */
static int recorded_users(const lm_record *r, const lm_rec_laminad *ld,
			  const char *state_dir, char *who, size_t len)
{
	char (*ids)[LM_REC_ID_MAX] = NULL;
	lm_error ignore;
	int n_ids = 0, users = 0;
	who[0] = '\0';
	lm_record_list(state_dir, &ids, &n_ids, &ignore);
	for (int i = 0; i < n_ids; i++) {
		lm_record *o = NULL;
		if (!strcmp(ids[i], r->id) ||
		    lm_record_load(state_dir, ids[i], &o, &ignore))
			continue;
		for (int l = 0; l < o->n_laminads; l++) {
			if (strcmp(o->laminads[l].host, ld->host) ||
			    o->laminads[l].control_port != ld->control_port)
				continue;
			int uses = strcmp(o->status, "tearing-down") != 0;
			for (int k = 0; k < o->n_stages && !uses; k++)
				uses = o->stages[k].laminad == l &&
				       o->stages[k].status != LM_STAGE_PLANNED;
			if (uses && !users++)
				snprintf(who, len, "%s", o->id);
			break;
		}
		lm_record_free(o);
	}
	free(ids);
	return users;
}

/* Whether any stage of r was sent to laminad l. */
static int sent_any(const lm_record *r, int l)
{
	for (int i = 0; i < r->n_stages; i++)
		if (r->stages[i].laminad == l &&
		    r->stages[i].status != LM_STAGE_PLANNED)
			return 1;
	return 0;
}

/* Whether laminad ld stopped answering within timeout_s (it exited). */
static int gone(const lm_rec_laminad *ld, double timeout_s)
{
	for (int i = 0; i < timeout_s * 10; i++) {
		Lamina__Reply *rep = NULL;
		lm_error ignore;
		if (lm_agent_describe(ld->host, ld->control_port, 1000, &rep,
				      &ignore))
			return 1;
		lamina__reply__free_unpacked(rep, NULL);
		struct timespec nap = { 0, 100 * 1000000 };
		nanosleep(&nap, NULL);
	}
	return 0;
}

/*
 * After r's stages left laminad ld (which answers): stop it when lamina
 * started it (it says it is managed) and nothing else uses it: no
 * deployment loaded in it and no other record naming it.  Under the state
 * folder's lock, so no deploy takes it into use meanwhile.
 */
static int stop_if_unused(const lm_record *r, lm_rec_laminad *ld,
			  const char *state_dir, int progress, lm_error *e)
{
	Lamina__Reply *rep = NULL;
	char who[LM_REC_ID_MAX];
	lm_error ignore;
	int lock = state_lock(state_dir, e), rc = 0;
	if (lock < 0)
		return lock;
	if (lm_agent_describe(ld->host, ld->control_port, LM_AGENT_QUICK_MS,
			      &rep, &ignore) == 0) {
		const Lamina__DescribeReply *d = rep->describe;
		int loaded = 0;
		for (size_t i = 0; i < d->n_deployments; i++)
			loaded += strcmp(d->deployments[i], r->id) != 0;
		int managed = d->managed;
		int pid = (int)d->pid;
		lamina__reply__free_unpacked(rep, NULL);
		if (!managed)
			goto out; /* someone started it by hand: theirs */
		if (loaded || recorded_users(r, ld, state_dir, who,
					     sizeof(who))) {
			say(progress, "laminad pid %d stays: %s uses it", pid,
			    loaded ? "another deployment" : who);
			goto out;
		}
		say(progress, "stopping laminad pid %d on %s", pid, ld->host);
		/* the answer may be lost as it exits: the exit is what counts */
		lm_agent_simple(ld->host, ld->control_port,
				LAMINA__REQUEST__BODY_SHUTDOWN, NULL, &ignore);
		if (lm_agent_is_local(ld->host)) {
			if (lm_agent_wait_exit(pid, 15))
				say(progress, "laminad pid %d did not stop: "
				    "killing it", pid);
			rc = lm_agent_cleanup(state_dir, ld->control_port, pid,
					      NULL, e);
		} else if (ld->ssh[0]) {
			/* then its log there goes too (--cleanup-port) */
			int stuck = !gone(ld, 15);
			if (stuck)
				say(progress, "laminad pid %d on %s did not "
				    "stop: killing it", pid, ld->host);
			rc = lm_remote_cleanup(ld->ssh, ld->exe,
					       ld->control_port,
					       stuck ? pid : 0, e);
		}
	}
out:
	close(lock);
	return rc;
}

/*
 * Laminad l of r, which this deployment started on another host over ssh,
 * does not answer: clean up after it there (`laminad --cleanup-port`,
 * refused while it runs); when it runs but does not answer and no other
 * record uses it, kill it first.  When the host cannot be reached, say
 * what may be left there: a later teardown finishes.
 */
static int unreachable_remote(const lm_record *r, int l,
			      const char *state_dir, int progress,
			      lm_error *e)
{
	const lm_rec_laminad *ld = &r->laminads[l];
	char who[LM_REC_ID_MAX];
	lm_error first;
	if (!ld->pid)
		return 0; /* its start failed: nothing runs there */
	int rc = lm_remote_cleanup(ld->ssh, ld->exe, ld->control_port, 0,
				   &first);
	if (!rc) {
		say(progress, "laminad pid %d on %s is gone: cleaned up after "
		    "it there", ld->pid, ld->host);
		return 0;
	}
	if (rc == -EHOSTUNREACH || rc == -ETIMEDOUT)
		return lm_fail(e, rc, "%s: could not reach it (%s); laminad pid "
			       "%d, its hugepages, state file and stored model "
			       "files may be left there: run 'lamina teardown "
			       "%s' again when it answers", ld->ssh, first.msg,
			       ld->pid, r->id);
	if (recorded_users(r, ld, state_dir, who, sizeof(who)))
		return lm_fail(e, -EBUSY, "laminad pid %d on %s does not answer "
			       "and %s uses it too: left as it is", ld->pid,
			       ld->ssh, who);
	say(progress, "laminad pid %d on %s does not answer: stopping it",
	    ld->pid, ld->host);
	return lm_remote_cleanup(ld->ssh, ld->exe, ld->control_port, ld->pid,
				 e);
}

/*
 * Laminad ld of r does not answer.  On this host: a process that died is
 * cleaned up after (`laminad --cleanup`: its stages went with it); one
 * that runs but does not answer (stopped, hung) is killed and cleaned up
 * after only when this deployment started it and no other record names
 * it, and otherwise left, with an error (its stages of r may still be
 * loaded: a later teardown finishes).  On another host nothing can be
 * done from here.
 */
static int unreachable(const lm_record *r, int l, const char *state_dir,
		       int progress, lm_error *e)
{
	const lm_rec_laminad *ld = &r->laminads[l];
	char who[LM_REC_ID_MAX];
	int rc = 0;
	if (!lm_agent_is_local(ld->host) && ld->started && ld->ssh[0])
		return unreachable_remote(r, l, state_dir, progress, e);
	if (!lm_agent_is_local(ld->host))
		return sent_any(r, l) && ld->pid
			       ? lm_fail(e, -EHOSTUNREACH, "laminad at %s:%d "
					 "does not answer; stages of %s may "
					 "still be loaded there", ld->host,
					 ld->control_port, r->id)
			       : 0;
	int lock = state_lock(state_dir, e);
	if (lock < 0)
		return lock;
	if (ld->pid && lm_agent_alive(ld->pid)) {
		if (recorded_users(r, ld, state_dir, who, sizeof(who)) ||
		    !ld->started)
			rc = lm_fail(e, -EBUSY, "laminad pid %d at %s:%d runs "
				     "but does not answer%s%s; stages of %s "
				     "may still be loaded: run 'lamina "
				     "teardown %s' again when it answers",
				     ld->pid, ld->host, ld->control_port,
				     who[0] ? ", and " : "", who[0] ? who : "",
				     r->id, r->id);
		if (!rc) {
			say(progress, "laminad pid %d does not answer: "
			    "stopping it", ld->pid);
			rc = lm_agent_cleanup(state_dir, ld->control_port,
					      ld->pid, NULL, e);
		}
	} else {
		if (ld->pid)
			say(progress, "laminad pid %d is gone: cleaning up "
			    "after it", ld->pid);
		rc = lm_agent_cleanup(state_dir, ld->control_port, ld->pid,
				      NULL, e);
	}
	close(lock);
	return rc;
}

/* Ask the ingress's laminad to stop admitting r's requests and answer the
 * admitted ones; wait for that, at most drain_s.  Best effort: a laminad
 * that does not answer has nothing to drain. */
static void drain(const lm_record *r, int progress, double drain_s)
{
	const lm_rec_laminad *ld = &r->laminads[r->stages[0].laminad];
	Lamina__Request req = LAMINA__REQUEST__INIT;
	Lamina__DrainRequest dr = LAMINA__DRAIN_REQUEST__INIT;
	struct timespec t0, now, nap = { 0, 10 * 1000000 };
	unsigned said = 0;
	lm_error ignore;
	dr.deployment = (char *)r->id;
	req.body_case = LAMINA__REQUEST__BODY_DRAIN;
	req.drain = &dr;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		Lamina__Reply *rep = NULL;
		if (lm_agent_call(ld->host, ld->control_port, LM_AGENT_QUICK_MS,
				  &req, &rep, &ignore))
			return; /* gone, or an older laminad */
		unsigned pending = rep->body_case == LAMINA__REPLY__BODY_DRAIN
					   ? rep->drain->pending : 0;
		lamina__reply__free_unpacked(rep, NULL);
		clock_gettime(CLOCK_MONOTONIC, &now);
		double s = (double)(now.tv_sec - t0.tv_sec) +
			   (double)(now.tv_nsec - t0.tv_nsec) * 1e-9;
		if (!pending)
			return;
		if (s >= drain_s) {
			say(progress, "%u request(s) still unanswered after "
			    "%.0f s: they are cancelled", pending, drain_s);
			return;
		}
		if (!said++)
			say(progress, "answering the %u request(s) admitted",
			    pending);
		nanosleep(&nap, NULL);
	}
}

int lm_teardown(lm_record *r, const char *state_dir, int progress,
		double drain_s, lm_error *e)
{
	int first = 0, probed[LM_REC_MAX_LAMINADS];
	lm_error err, why[LM_REC_MAX_LAMINADS];
	/* a quick question to every laminad first: one that holds stages of
	 * r and refuses this lamina's fleet key ends the teardown before it
	 * changes anything (the deployment is another fleet's to undo) */
	for (int l = 0; l < r->n_laminads; l++) {
		Lamina__Reply *probe = NULL;
		probed[l] = lm_agent_describe(r->laminads[l].host,
					      r->laminads[l].control_port,
					      LM_AGENT_QUICK_MS, &probe,
					      &why[l]);
		if (probe)
			lamina__reply__free_unpacked(probe, NULL);
		if (probed[l] == -EACCES && sent_any(r, l)) {
			*e = why[l];
			return probed[l];
		}
	}
	/* best effort: a full state file system must not stop the undo
	 * (the record is removed at the end, which needs no room) */
	snprintf(r->status, sizeof(r->status), "tearing-down");
	lm_record_save(r, &err);
	if (drain_s > 0 && r->n_stages > 0 &&
	    r->stages[0].status == LM_STAGE_LOADED)
		drain(r, progress, drain_s);
	for (int l = 0; l < r->n_laminads; l++) {
		lm_rec_laminad *ld = &r->laminads[l];
		Lamina__Reply *probe = NULL;
		/* the quick question again, for one that answered it: a
		 * laminad that does not (dead, stopped, cut off) is not
		 * waited on for a minute */
		int rc = probed[l];
		err = why[l];
		if (!rc)
			rc = lm_agent_describe(ld->host, ld->control_port,
					       LM_AGENT_QUICK_MS, &probe, &err);
		if (probe)
			lamina__reply__free_unpacked(probe, NULL);
		if (rc == -EACCES) {
			rc = 0; /* another fleet's, holding nothing of r */
		} else if (!rc) {
			rc = lm_agent_simple(ld->host, ld->control_port,
					     LAMINA__REQUEST__BODY_TEARDOWN,
					     r->id, &err);
			if (rc == -EACCES && !sent_any(r, l))
				rc = 0; /* keyless: it holds nothing of r */
			if (!rc) {
				say(progress, "stages of %s removed from "
				    "%s:%d", r->id, ld->host,
				    ld->control_port);
				/* on disk before anyone decides whether the
				 * laminad is still used */
				for (int i = 0; i < r->n_stages; i++)
					if (r->stages[i].laminad == l)
						r->stages[i].status =
							LM_STAGE_PLANNED;
				lm_record_save(r, &err);
				rc = stop_if_unused(r, ld, state_dir, progress,
						    &err);
			} else {
				lm_fail_prefix(&err, rc, "laminad at %s:%d",
					       ld->host, ld->control_port);
			}
		} else {
			rc = unreachable(r, l, state_dir, progress, &err);
		}
		if (rc) {
			if (!first)
				*e = err;
			first = first ? first : rc;
			continue;
		}
		for (int i = 0; i < r->n_stages; i++)
			if (r->stages[i].laminad == l)
				r->stages[i].status = LM_STAGE_PLANNED;
		ld->started = 0;
		ld->pid = 0;
		lm_record_save(r, &err);
	}
	if (first)
		return first;
	return lm_record_remove(r, e);
}
