/*
 * net.c: edges between laminads: laminad's port and memif pairs (see
 * net.h).
 */
#include <errno.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <rte_dev.h>
#include <rte_ethdev.h>
#include <rte_mbuf.h>

#include "lamina/log.h"
#include "net.h"
#include "pipeline.h"
#include "transport_eth.h"

#define NET_VDEV "net_af_packet_lm"
#define NET_FRAME_ROOM 10240	   /* af_packet framesz: one frame per mbuf */
#define NET_RX_MBUFS 4095
#define NET_TX_MBUFS 2047
#define NET_MAX_BUNDLE (64u << 20) /* larger bundles are dropped, counted */
#define NET_SPIN 1000		   /* tries of a full TX queue per burst */
#define NET_MTU_MEMIF 9000	   /* one frame per 9216-byte memif buffer */
#define NET_LOOPBACK 0x7f000001u   /* frames' IPv4 address without --port */

/* How one remote edge crosses (pipeline.h's edge->link). */
struct lm_dp_link {
	int memif, server;   /* a memif port of its own, and its role */
	int memif_later;     /* remote_out over memif: a client, at start */
	uint16_t mport;      /* that port */
	char name[96];       /* its abstract socket */
	uint8_t peer_mac[6]; /* remote_out over the port: the consumer's */
	uint32_t peer_ip;
	struct lm_dp_eth *tx; /* remote_out, from start */
	struct lm_dp_eth *rx; /* remote_in over memif: the receiver */
	struct lm_dp_bundle *pending; /* memif: being sent, part way */
	uint64_t pending_since;	      /* its TSC at dequeue */
};

/* laminad --port, and the mbuf pools every link uses. */
struct lm_dp_net {
	struct lm_dp_net_opts o;
	uint64_t tsc_hz;
	int has_port;
	uint16_t port;
	unsigned mtu;
	uint8_t mac[6];
	uint32_t ip; /* host order */
	char mac_str[32];
	struct rte_mempool *rx_pool, *tx_pool;
	struct lm_dp_eth *rx; /* the port's: receives for every deployment */
	struct lm_dp_deployments *deps; /* during a poll, for rx_alloc */
};

static uint64_t ns_now(void)
{
	return rte_get_tsc_cycles() * 1000000000ull / rte_get_tsc_hz();
}

/* The remote_in edge a frame or bundle is for, or NULL. */
static struct lm_dp_edge *in_edge(struct lm_dp_deployments *t, uint32_t key,
				  uint32_t edge, struct lm_dp_deployment **dd)
{
	struct lm_dp_deployment *d = t ? lm_dp_find_key(t, key) : NULL;
	if (!d || !d->pipe->started || edge > d->pipe->n_stages)
		return NULL;
	struct lm_dp_edge *ed = &d->pipe->edges[edge];
	if (!ed->remote_in || !ed->ring)
		return NULL;
	*dd = d;
	return ed;
}

static void *rx_alloc(void *ctx, const lm_frame_info *f, int *why)
{
	struct lm_dp_net *n = ctx;
	struct lm_dp_deployment *d;
	struct lm_dp_edge *ed = in_edge(n->deps, f->deployment, f->edge, &d);
	void *b;
	if (!ed || f->total_len != lm_dp_bundle_bytes(&ed->layout)) {
		*why = -ENOENT;
		return NULL;
	}
	if (rte_mempool_get(ed->pool, &b)) {
		*why = -ENOBUFS;
		return NULL;
	}
	return b;
}

static void rx_release(void *ctx, void *buf)
{
	(void)ctx;
	rte_mempool_put(rte_mempool_from_obj(buf), buf);
}

/* A sender only: it never receives, so it needs no buffers. */
static void *no_alloc(void *ctx, const lm_frame_info *f, int *why)
{
	(void)ctx;
	(void)f;
	*why = -ENOENT;
	return NULL;
}

static void no_release(void *ctx, void *buf)
{
	(void)ctx;
	(void)buf;
}

/* A receiver on port, for every deployment's remote_in edges. */
static int rx_make(struct lm_dp_net *n, uint16_t port, unsigned mtu,
		   struct lm_dp_eth **out, lm_error *e)
{
	lm_dp_eth_config c = {
		.port = port, .mtu = mtu, .tx_pool = n->tx_pool,
		.addr = { .src_ip = n->ip, .src_port = LM_FRAME_UDP_PORT,
			  .dst_port = LM_FRAME_UDP_PORT },
		/* a bundle's frames arrive back to back: a partial one with
		 * no news for 20 ms lost a frame, the ingress re-sends it */
		.reasm = { .max_pending = 64, .max_bundle = NET_MAX_BUNDLE,
			   .recent = 4096, .timeout_ns = 20000000 },
		.buffers = { rx_alloc, rx_release, n },
	};
	memcpy(c.addr.src_mac, n->mac, 6);
	return lm_dp_eth_create(&c, out, e);
}

static int rx_open(struct lm_dp_net *n, lm_error *e)
{
	return rx_make(n, n->port, n->mtu, &n->rx, e);
}

/* The mbuf pools: one ring frame per mbuf, as large as a jumbo frame.
 * Made once, when the port or the first memif needs them. */
static int pools_make(struct lm_dp_net *n, const char *what, lm_error *e)
{
	if (n->rx_pool)
		return 0;
	unsigned room = RTE_PKTMBUF_HEADROOM + NET_FRAME_ROOM;
	n->rx_pool = rte_pktmbuf_pool_create("lm_net_rx", NET_RX_MBUFS, 256, 0,
					     (uint16_t)room, SOCKET_ID_ANY);
	n->tx_pool = rte_pktmbuf_pool_create("lm_net_tx", NET_TX_MBUFS, 256, 0,
					     (uint16_t)room, SOCKET_ID_ANY);
	if (!n->rx_pool || !n->tx_pool) {
		rte_mempool_free(n->rx_pool);
		rte_mempool_free(n->tx_pool);
		n->rx_pool = n->tx_pool = NULL;
		return lm_fail(e, -ENOMEM, "%s: no memory for %u mbufs of %u "
			       "bytes (raise --memory)", what,
			       NET_RX_MBUFS + NET_TX_MBUFS, room);
	}
	return 0;
}

/* The first IPv4 address of iface, host order; 0 if none. */
static uint32_t iface_ip(const char *iface)
{
	struct ifaddrs *ifa, *p;
	uint32_t ip = 0;
	if (getifaddrs(&ifa))
		return 0;
	for (p = ifa; p && !ip; p = p->ifa_next)
		if (p->ifa_addr && p->ifa_addr->sa_family == AF_INET &&
		    !strcmp(p->ifa_name, iface))
			ip = ntohl(((struct sockaddr_in *)p->ifa_addr)
					   ->sin_addr.s_addr);
	freeifaddrs(ifa);
	return ip;
}

int lm_dp_net_open(const struct lm_dp_net_opts *o, uint64_t tsc_hz,
		   struct lm_dp_net **out, lm_error *e)
{
	const char *iface = o->iface;
	char args[256];
	struct rte_ether_addr mac;
	struct in_addr a;
	int rc;
	struct lm_dp_net *n = calloc(1, sizeof(*n));
	if (!n)
		return lm_fail(e, -ENOMEM, "out of memory");
	n->o = *o;
	n->tsc_hz = tsc_hz;
	n->mtu = o->mtu;
	*out = n;
	if (!iface)
		return 0;
	if (strlen(iface) >= IF_NAMESIZE || !if_nametoindex(iface))
		return lm_fail(e, -EINVAL, "--port %s: no such interface in "
			       "this network namespace", iface);
	char what[IF_NAMESIZE + 8];
	snprintf(what, sizeof(what), "--port %s", iface);
	if ((rc = pools_make(n, what, e)))
		return rc;
	if (o->ip) {
		if (inet_pton(AF_INET, o->ip, &a) != 1)
			return lm_fail(e, -EINVAL, "--port-ip '%s' is not an "
				       "IPv4 address", o->ip);
		n->ip = ntohl(a.s_addr);
	} else if (!(n->ip = iface_ip(iface))) {
		return lm_fail(e, -EINVAL, "--port %s: the interface has no "
			       "IPv4 address (give one with --port-ip)", iface);
	}
	/* as tools/bench_transport: the PMD opens its socket on iface in
	 * laminad's network namespace */
	snprintf(args, sizeof(args), "%s,iface=%s,blocksz=20480,framesz=%u,"
		 "framecnt=2048,qdisc_bypass=0", NET_VDEV, iface,
		 NET_FRAME_ROOM);
	if ((rc = rte_dev_probe(args)) ||
	    (rc = rte_eth_dev_get_port_by_name(NET_VDEV, &n->port)))
		return lm_fail(e, -EINVAL, "--port %s: cannot create an "
			       "af_packet port on it (%s)", iface,
			       rte_strerror(-rc));
	n->has_port = 1;
	if ((rc = lm_dp_eth_port_start(n->port, n->mtu, n->rx_pool, e)))
		return lm_fail_prefix(e, -EINVAL, "--port %s", iface);
	if ((rc = rte_eth_macaddr_get(n->port, &mac)))
		return lm_fail(e, -EINVAL, "--port %s: no MAC address", iface);
	memcpy(n->mac, mac.addr_bytes, 6);
	rte_ether_format_addr(n->mac_str, sizeof(n->mac_str), &mac);
	if ((rc = rx_open(n, e)))
		return rc;
	a.s_addr = htonl(n->ip);
	lm_log("port %s: %s %s, MTU %u", iface, n->mac_str, inet_ntoa(a),
	       n->mtu);
	if (o->fault_dup_ppm || o->fault_swap_ppm)
		lm_log("port %s: fault injection (tests only): %u ppm of sent "
		       "frames duplicated, %u ppm swapped", iface,
		       o->fault_dup_ppm, o->fault_swap_ppm);
	return 0;
}

void lm_dp_net_close(struct lm_dp_net *n)
{
	if (!n)
		return;
	lm_dp_eth_free(n->rx);
	if (n->has_port) {
		rte_eth_dev_stop(n->port);
		rte_eth_dev_close(n->port);
	}
	rte_mempool_free(n->rx_pool);
	rte_mempool_free(n->tx_pool);
	free(n);
}

void lm_dp_net_port(const struct lm_dp_net *n, const char **mac,
		    uint32_t *ip, unsigned *mtu)
{
	*mac = n && n->has_port ? n->mac_str : NULL;
	*ip = n && n->has_port ? n->ip : 0;
	*mtu = n && n->has_port ? n->mtu : 0;
}

/* The abstract socket name of edge k of d: both laminads of the pair
 * make the same one from what they validated. */
static void memif_name(const struct lm_dp_deployment *d, unsigned k,
		       char *out, size_t len)
{
	snprintf(out, len, "lamina-memif-%s-e%u", d->id, k);
}

static void link_close(struct lm_dp_edge *ed)
{
	struct lm_dp_link *l = ed->link;
	if (!l)
		return;
	if (l->pending)
		rte_mempool_put(ed->pool, l->pending);
	lm_dp_eth_free(l->tx);
	lm_dp_eth_free(l->rx);
	if (l->memif) {
		char name[RTE_ETH_NAME_MAX_LEN];
		if (!rte_eth_dev_get_name_by_port(l->mport, name)) {
			rte_eth_dev_stop(l->mport);
			rte_eal_hotplug_remove("vdev", name);
		}
	}
	free(l);
	ed->link = NULL;
}

static struct lm_dp_link *link_get(struct lm_dp_edge *ed)
{
	if (!ed->link)
		ed->link = calloc(1, sizeof(*ed->link));
	return ed->link;
}

/* Create and start edge k's memif port, as server or client. */
static int memif_port(struct lm_dp_net *n, struct lm_dp_deployment *d,
		      unsigned k, int server, lm_error *e)
{
	struct lm_dp_edge *ed = &d->pipe->edges[k];
	struct lm_dp_link *l = link_get(ed);
	char dev[64], args[256];
	int rc;
	if (!l)
		return lm_fail(e, -ENOMEM, "out of memory");
	if ((rc = pools_make(n, "memif", e)))
		return rc;
	l->server = server;
	memif_name(d, k, l->name, sizeof(l->name));
	snprintf(dev, sizeof(dev), "net_memif_lm%ue%u", d->gen, k);
	/* one 9216-byte buffer per frame, 2048 of them each way: a bundle's
	 * frames cross without waiting for the peer to free buffers */
	snprintf(args, sizeof(args), "%s,role=%s,id=0,bsize=9216,rsize=11,"
		 "socket=%s,socket-abstract=yes", dev,
		 server ? "server" : "client", l->name);
	if ((rc = rte_dev_probe(args)) ||
	    (rc = rte_eth_dev_get_port_by_name(dev, &l->mport)))
		return lm_fail(e, -EINVAL, "edge %u of %s: cannot create a "
			       "memif %s '%s' (%s)", k, d->id,
			       server ? "server" : "client", l->name,
			       rte_strerror(-rc));
	l->memif = 1;
	if ((rc = lm_dp_eth_port_start(l->mport, NET_MTU_MEMIF, n->rx_pool,
				       e)) ||
	    (server && (rc = rx_make(n, l->mport, NET_MTU_MEMIF, &l->rx, e))))
		return lm_fail_prefix(e, rc, "edge %u of %s (memif)", k,
				      d->id);
	/* a client connects now (the server listens since the consumer's
	 * stage was loaded); the handshake runs on DPDK's interrupt thread */
	struct rte_eth_link link = { 0 };
	for (int i = 0; !server && i < 200; i++) {
		if (!rte_eth_link_get_nowait(l->mport, &link) &&
		    link.link_status == RTE_ETH_LINK_UP)
			break;
		usleep(5000);
	}
	lm_log("deployment %s: edge %u over memif (%s) '%s'%s", d->id, k,
	       server ? "server" : "client", l->name,
	       server || link.link_status == RTE_ETH_LINK_UP
		       ? "" : ", not connected yet");
	return 0;
}

int lm_dp_net_link(struct lm_dp_net *n, struct lm_dp_deployment *d,
		   const struct lm_dp_stage_spec *s, lm_error *e)
{
	unsigned out = s->stage + 1;
	int rc;
	if ((s->next == LM_DP_PORT || s->input == LM_DP_PORT ||
	     s->answers == LM_DP_PORT) && !n->has_port)
		return lm_fail(e, -EINVAL, "stage %u: its edges cross to "
			       "another host, and this laminad has no port "
			       "(laminad --port)", s->stage);
	/* servers listen now; a client connects at start, when its
	 * server's laminad surely has its stage loaded */
	if (s->input == LM_DP_MEMIF &&
	    (rc = memif_port(n, d, s->stage, 1, e)))
		return rc;
	if (s->answers == LM_DP_MEMIF &&
	    (rc = memif_port(n, d, s->n_stages, 1, e)))
		return rc;
	if (s->next != LM_DP_LOCAL) {
		struct lm_dp_link *l = link_get(&d->pipe->edges[out]);
		if (!l)
			return lm_fail(e, -ENOMEM, "out of memory");
		if (s->next == LM_DP_PORT) {
			memcpy(l->peer_mac, s->next_mac, 6);
			l->peer_ip = s->next_ip;
		} else { /* memif has one peer */
			memset(l->peer_mac, 0xff, 6);
			l->memif_later = 1;
		}
	}
	return 0;
}

int lm_dp_net_start(struct lm_dp_net *n, struct lm_dp_deployment *d,
		    lm_error *e)
{
	struct lm_pipeline *p = d->pipe;
	int rc;
	for (unsigned k = 0; k <= p->n_stages; k++) {
		struct lm_dp_edge *ed = &p->edges[k];
		struct lm_dp_link *l = ed->link;
		if (!ed->remote_out || !l || l->tx)
			continue;
		if (l->memif_later && !l->memif &&
		    (rc = memif_port(n, d, k, 0, e)))
			return rc;
		lm_dp_eth_config c = {
			.port = l->memif ? l->mport : n->port,
			.mtu = l->memif ? NET_MTU_MEMIF : n->mtu,
			.tx_pool = n->tx_pool,
			.addr = { .src_ip = n->ip ? n->ip : NET_LOOPBACK,
				  .dst_ip = l->peer_ip ? l->peer_ip
						       : NET_LOOPBACK,
				  .src_port = LM_FRAME_UDP_PORT,
				  .dst_port = LM_FRAME_UDP_PORT },
			.reasm = { .max_pending = 1,
				   .max_bundle = NET_MAX_BUNDLE, .recent = 1,
				   .timeout_ns = 1000000000 },
			.buffers = { no_alloc, no_release, NULL },
			.dup_ppm = n->o.fault_dup_ppm,
			.swap_ppm = n->o.fault_swap_ppm,
		};
		memcpy(c.addr.src_mac, n->mac, 6);
		memcpy(c.addr.dst_mac, l->peer_mac, 6);
		if ((rc = lm_dp_eth_create(&c, &l->tx, e)))
			return lm_fail_prefix(e, rc, "edge %u of %s", k, d->id);
	}
	return 0;
}

uint64_t lm_dp_net_send_lost(const struct lm_dp_deployment *d)
{
	uint64_t lost = 0;
	for (unsigned k = 0; k <= d->pipe->n_stages; k++) {
		const struct lm_dp_link *l = d->pipe->edges[k].link;
		if (l && l->tx)
			lost += lm_dp_eth_get_stats(l->tx)->tx_full;
	}
	return lost;
}

void lm_dp_net_forget(struct lm_dp_net *n, struct lm_dp_deployment *d)
{
	lm_error e;
	struct lm_pipeline *p = d->pipe;
	if (!n || !p || !lm_pipeline_remote(p))
		return;
	/* what crossed, for the log (and the tests that read it); the
	 * receiver counts since it was last opened, at the previous
	 * teardown of a deployment across laminads */
	for (unsigned k = 0; k <= p->n_stages; k++) {
		const struct lm_dp_link *l = p->edges[k].link;
		if (!l || !l->tx)
			continue;
		const lm_dp_eth_stats *t = lm_dp_eth_get_stats(l->tx);
		lm_log("deployment %s: edge %u sent %llu bundle(s) in %llu "
		       "frame(s), %llu lost to a full queue; fault injection: "
		       "%llu duplicated, %llu swapped", d->id, k,
		       (unsigned long long)t->tx_bundles,
		       (unsigned long long)t->tx_frames,
		       (unsigned long long)t->tx_full,
		       (unsigned long long)t->tx_dup,
		       (unsigned long long)t->tx_swapped);
	}
	if (n->rx) {
		const lm_dp_eth_stats *t = lm_dp_eth_get_stats(n->rx);
		const lm_reasm_stats *r = lm_dp_eth_reasm_stats(n->rx);
		lm_log("deployment %s: port received %llu frame(s), %llu "
		       "bundle(s); dropped %llu duplicate, %llu stale, %llu "
		       "malformed, %llu unknown, %llu without buffer, %llu "
		       "bad; %llu bundle(s) timed out, %llu evicted", d->id,
		       (unsigned long long)t->rx_frames,
		       (unsigned long long)r->completed,
		       (unsigned long long)r->duplicate,
		       (unsigned long long)r->stale,
		       (unsigned long long)r->malformed,
		       (unsigned long long)r->unknown,
		       (unsigned long long)r->no_buffer,
		       (unsigned long long)(t->rx_bad + t->rx_bad_checksum),
		       (unsigned long long)r->timed_out,
		       (unsigned long long)r->evicted);
	}
	for (unsigned k = 0; k <= p->n_stages; k++)
		link_close(&p->edges[k]);
	/* reassembly may hold buffers of d's pools: a fresh receiver gives
	 * them back (and forgets other deployments' half bundles, which
	 * their ingress re-sends) */
	if (!n->has_port)
		return;
	lm_dp_eth_free(n->rx);
	n->rx = NULL;
	if (rx_open(n, &e))
		lm_log("port: cannot reopen the receiver: %s", e.msg);
}

int lm_dp_net_active(const struct lm_dp_net *n,
		     const struct lm_dp_deployments *t)
{
	if (!n)
		return 0;
	for (int i = 0; i < LM_DP_MAX_DEPLOYMENTS; i++)
		if (t->d[i] && t->d[i]->pipe && t->d[i]->pipe->started &&
		    lm_pipeline_remote(t->d[i]->pipe))
			return 1;
	return 0;
}

/* Send what the stages put on memif edge k of d, resuming a bundle the
 * ring did not take whole.  Returns the bundles finished. */
static int memif_tx(struct lm_dp_net *n, struct lm_dp_deployment *d,
		    struct lm_dp_edge *ed, unsigned k)
{
	struct lm_dp_link *l = ed->link;
	uint32_t len = (uint32_t)lm_dp_bundle_bytes(&ed->layout);
	int done = 0;
	for (;;) {
		if (!l->pending) {
			if (rte_ring_dequeue(ed->ring, (void **)&l->pending))
				break;
			l->pending_since = rte_rdtsc();
		}
		int rc = lm_dp_eth_send_more(l->tx, l->pending, len, d->key, k,
					     l->pending->request_id);
		if (rc != 1 && rte_rdtsc() - l->pending_since < n->tsc_hz / 10)
			break; /* the peer has not read yet: later */
		if (rc != 1)
			lm_dp_eth_send_abandon(l->tx);
		rte_mempool_put(ed->pool, l->pending);
		l->pending = NULL;
		done++;
	}
	return done;
}

/* Send what the stages put on remote_out edges. */
static int net_tx(struct lm_dp_net *n, struct lm_dp_deployments *t)
{
	struct lm_dp_bundle *b[LM_DP_BURST];
	int total = 0;
	for (int i = 0; i < LM_DP_MAX_DEPLOYMENTS; i++) {
		struct lm_dp_deployment *d = t->d[i];
		if (!d || !d->pipe || !d->pipe->started)
			continue;
		for (unsigned k = 0; k <= d->pipe->n_stages; k++) {
			struct lm_dp_edge *ed = &d->pipe->edges[k];
			struct lm_dp_link *l = ed->link;
			if (!ed->remote_out || !ed->ring || !l || !l->tx)
				continue;
			if (l->memif) {
				total += memif_tx(n, d, ed, k);
				continue;
			}
			unsigned m = rte_ring_dequeue_burst(
				ed->ring, (void **)b, LM_DP_BURST, NULL);
			uint32_t len = (uint32_t)lm_dp_bundle_bytes(
				&ed->layout);
			for (unsigned j = 0; j < m; j++) {
				/* a failure is a loss, as on a wire: the
				 * ingress re-sends the request */
				lm_dp_eth_send(l->tx, b[j], len, d->key, k,
					       b[j]->request_id, NET_SPIN);
				rte_mempool_put(ed->pool, b[j]);
			}
			total += (int)m;
		}
	}
	return total;
}

/* Receive what arrived on rx (up to 64 bursts), handing the bundles it
 * completes to their edges' rings.  Returns the bursts with frames plus
 * the bundles completed: work, so that the loop does not back off while a
 * bundle's frames are still coming in. */
static int rx_poll(struct lm_dp_net *n, struct lm_dp_eth *rx, uint64_t now)
{
	lm_reasm_bundle done[32];
	int work = 0;
	for (int burst = 0; burst < 64; burst++) {
		uint64_t before = lm_dp_eth_get_stats(rx)->rx_frames;
		int got = lm_dp_eth_poll(rx, done, 32, now);
		for (int i = 0; i < got; i++) {
			struct lm_dp_deployment *d;
			struct lm_dp_edge *ed = in_edge(n->deps,
							done[i].deployment,
							done[i].edge, &d);
			struct lm_dp_bundle *b = done[i].buf;
			if (!ed) { /* cannot happen: alloc found it */
				rx_release(NULL, b);
				continue;
			}
			b->deployment = d->gen;
			rte_ring_enqueue(ed->ring, b); /* holds the pool */
		}
		uint64_t frames = lm_dp_eth_get_stats(rx)->rx_frames - before;
		work += got + (frames > 0);
		if (frames < 32)
			break;
	}
	return work;
}

int lm_dp_net_poll(struct lm_dp_net *n, struct lm_dp_deployments *t)
{
	if (!n)
		return 0;
	uint64_t now = ns_now();
	n->deps = t;
	int total = net_tx(n, t);
	if (n->rx)
		total += rx_poll(n, n->rx, now);
	for (int i = 0; i < LM_DP_MAX_DEPLOYMENTS; i++) {
		struct lm_dp_deployment *d = t->d[i];
		if (!d || !d->pipe || !d->pipe->started)
			continue;
		for (unsigned k = 0; k <= d->pipe->n_stages; k++) {
			struct lm_dp_link *l = d->pipe->edges[k].link;
			if (l && l->rx)
				total += rx_poll(n, l->rx, now);
		}
	}
	return total;
}
