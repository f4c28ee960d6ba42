/*
 * net.h: edges between laminads, on the main lcore.
 *
 * A pipeline may cross laminads: an edge whose producer is here and
 * consumer elsewhere is remote_out here and remote_in there (pipeline.h).
 * Workers do not know: a stage writes its output into a bundle of its
 * output edge's pool and enqueues it, as in one process.  The main lcore
 * then drains the rings of remote_out edges, sends each bundle whole
 * (header and tensors: the request id, connection and ingress time travel
 * with the data) in frames (frame.h) and gives it back; and it polls for
 * frames, reassembling each arriving bundle straight into a bundle of its
 * remote_in edge's pool (the edge named by the frame's deployment key and
 * edge number) and enqueueing the pointer, where the next stage or the
 * egress finds it.
 *
 * Two links: between hosts, laminad's port (--port IFACE: af_packet on a
 * NIC or veth), one receiver for every deployment and one sender per
 * remote_out edge (each knows its peer's addresses); between two laminads
 * on one host, a memif pair per edge: the consumer's laminad is the memif
 * server and reassembles from it, the producer's the client and sends on
 * it.  A memif socket is abstract (no file): its name is made here from
 * the deployment id and the edge number, both validated, never taken from
 * a message.  memif loses nothing: a full ring only means the peer has not
 * read yet, so a bundle is sent as far as the ring takes it and resumed on
 * the next turn of the loop, given up only when the peer read nothing for
 * 100 ms (it stopped or died; the ingress re-sends).  A bundle lost on the
 * way is re-sent by the ingress (reliable.h), never here.
 */
#ifndef LAMINA_DP_NET_H
#define LAMINA_DP_NET_H

#include <stdint.h>

#include "deployment.h"
#include "lamina/common.h"
#include "spec.h"

/* laminad --port and its options. */
struct lm_dp_net_opts {
	const char *iface;  /* NULL: no port (memif edges only) */
	const char *ip;     /* its IPv4 address; NULL: the interface's */
	unsigned mtu;
	uint32_t fault_dup_ppm, fault_swap_ppm; /* tests only */
};

struct lm_dp_net;

/**
 * The network of this laminad: with o->iface, the port on that interface
 * (in laminad's network namespace), its MAC and IPv4 address learnt.
 * Without, nothing is made until a memif edge needs it.
 * @return 0; -EINVAL naming the interface and what failed; -ENOMEM.
 */
int lm_dp_net_open(const struct lm_dp_net_opts *o, uint64_t tsc_hz,
		   struct lm_dp_net **out, lm_error *e);

/** Stop and close everything; safe on NULL. */
void lm_dp_net_close(struct lm_dp_net *n);

/** The port's MAC ("aa:bb:..."), IPv4 (host order) and MTU; mac NULL
 *  without a port. */
void lm_dp_net_port(const struct lm_dp_net *n, const char **mac,
		    uint32_t *ip, unsigned *mtu);

/**
 * The links of the edges stage s->stage of d crosses to other laminads, as
 * s says: a memif server for an input or answers edge from this host
 * (listening from now), the port's receiver for one from another host, the
 * peer's addresses for an output to another host; an output over memif
 * connects at start.
 * @return 0; -EINVAL when an edge needs the port and there is none, or a
 *         memif cannot be made; -ENOMEM.
 */
int lm_dp_net_link(struct lm_dp_net *n, struct lm_dp_deployment *d,
		   const struct lm_dp_stage_spec *s, lm_error *e);

/** At d's start: a sender on each remote_out edge (memif clients connect
 *  now).  0 or -EINVAL/-ENOMEM naming the edge. */
int lm_dp_net_start(struct lm_dp_net *n, struct lm_dp_deployment *d,
		    lm_error *e);

/** Before d's pools go: log what crossed, close its links and give back
 *  the bundles reassembly holds of it.  Safe without any. */
void lm_dp_net_forget(struct lm_dp_net *n, struct lm_dp_deployment *d);

/** Whether a started deployment of t has a remote edge (the loop must
 *  poll the network). */
int lm_dp_net_active(const struct lm_dp_net *n,
		     const struct lm_dp_deployments *t);

/** Receive into remote_in edges, send remote_out edges; returns work. */
int lm_dp_net_poll(struct lm_dp_net *n, struct lm_dp_deployments *t);

/** Bundles of d this laminad could not send (a full queue; each is
 *  re-sent by the ingress). */
uint64_t lm_dp_net_send_lost(const struct lm_dp_deployment *d);

#endif
