/*
 * main.c: laminad, the dataplane service: options, start-up as a daemon,
 * the state file (state.h), the main lcore's event loop (control port,
 * ingress, egress, network), and `laminad --cleanup STATE_FILE`, which
 * gives back what a laminad that died took.  The other files of
 * dataplane/ are described in dp.h.
 *
 * Start-up order, so that an interruption at any point leaves nothing
 * behind that the state file does not name: write the state file
 * ("starting": pid, ports, DPDK's file prefix and run folder), reserve
 * hugepages (under a lock on nr_hugepages, huge.h) and write the state
 * file again with them at once, start EAL, listen, and write it
 * a last time ("up").  It is removed on a clean exit (SIGTERM, SIGINT or a
 * Shutdown message), after everything is given back.
 *
 * Without --foreground laminad forks: the parent returns once the child
 * listens (exit 0, one line on stdout) or failed (exit 1, the reason on
 * stderr), so `lamina deploy` can start it and go on.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netdb.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <stddef.h>
#include <sys/eventfd.h>
#include <sys/un.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <dirent.h>
#include <mntent.h>
#include <sys/mount.h>
#include <sys/wait.h>

#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_lcore.h>
#include <rte_log.h>

#include "ctl.h"
#include "dnssd.h"
#include "dp.h"
#include "lamina/fsutil.h"
#include "lamina/log.h"
#include "lamina/sock.h"
#include "state.h"

void openblas_set_num_threads(int num_threads);

static const char help[] =
	"usage: laminad [options]\n"
	"\n"
	"The lamina dataplane service: runs the stages `lamina deploy` loads\n"
	"on pinned DPDK worker lcores and serves predictions.  Users do not\n"
	"start it by hand: `lamina deploy` does.\n"
	"\n"
	"options:\n"
	"  --control-port N     control protocol port (default 7700)\n"
	"  --ingress-port N     inference ingress port (default: control "
	"port + 1)\n"
	"  --http-port N        the HTTP front, the Open Inference Protocol "
	"(default:\n"
	"                       the first free port from 8000; 0: none)\n"
	"  --listen ADDR        address of every port (default 127.0.0.1; "
	"another host's\n"
	"                       lamina reaches it only on the address given "
	"here)\n"
	"  --fleet-key FILE     the fleet key (lamina fleet key --path; -: "
	"read from\n"
	"                       stdin): only a client proving it may load, "
	"start, stop,\n"
	"                       tear down or push files; without it laminad "
	"answers\n"
	"                       describe and stats only\n"
	"  --name NAME          device name reported by describe and announced\n"
	"                       (default: host name)\n"
	"  --announce, --no-announce\n"
	"                       announce this laminad on the link with DNS-SD "
	"over\n"
	"                       mDNS (_lamina._tcp), or not (default: when "
	"--listen\n"
	"                       is not loopback)\n"
	"  --cores LIST         cpus worker stages may use, e.g. 1-3 (default:"
	"\n"
	"                       all but the first on hosts with 4 cpus or "
	"more, else all)\n"
	"  --poll MODE          busy, adaptive or auto (default): busy only "
	"when every\n"
	"                       worker has a cpu to itself with one left over\n"
	"  --hugepages MODE     auto (default): use free hugepages, or as root "
	"reserve\n"
	"                       them for this instance and give them back on "
	"exit,\n"
	"                       else run without; no: never\n"
	"  --memory MB          DPDK memory to reserve or map (default 1024)\n"
	"  --eal \"ARGS\"         extra EAL arguments, for experts (appended "
	"last)\n"
	"  --port IFACE         the port to other laminads: an af_packet port "
	"on IFACE\n"
	"                       (in laminad's network namespace), for "
	"pipelines across\n"
	"                       hosts\n"
	"  --port-ip ADDR       its IPv4 address (default: IFACE's first)\n"
	"  --mtu N              its IP MTU (default 9000; IFACE's own must "
	"match)\n"
	"  --fault dup=PPM,swap=PPM\n"
	"                       for tests only: the port duplicates PPM of "
	"every million\n"
	"                       frames it sends and swaps PPM with the frame "
	"before\n"
	"  --state-dir DIR      where the state file and log go (default:\n"
	"                       /var/lib/lamina as root, else "
	"$XDG_STATE_HOME/lamina,\n"
	"                       else ~/.local/state/lamina)\n"
	"  --log FILE           log file (default STATE/laminad-PORT.log; "
	"stderr with\n"
	"                       --foreground)\n"
	"  --foreground         stay in the foreground\n"
	"  --managed            started by `lamina deploy`: lamina stops it "
	"when no\n"
	"                       deployment uses it (a laminad started by hand "
	"is never\n"
	"                       stopped by lamina)\n"
	"  --cleanup FILE       give back what the dead laminad of state file "
	"FILE took\n"
	"                       (hugepages, its mount, DPDK's run folder), "
	"remove its\n"
	"                       log and FILE; refused while it runs\n"
	"  --cleanup-port N     the same for the laminad of control port N in "
	"the state\n"
	"                       folder (--state-dir, or the default)\n"
	"  --describe-host      print what laminad would offer on this host, "
	"as the\n"
	"                       DNS-SD TXT record it announces (one key=value "
	"a line:\n"
	"                       version, cores, memory, NUMA nodes, "
	"hugepages, cpu\n"
	"                       model), and exit; `lamina devices add` runs it "
	"over ssh\n"
	"  --version            print the version\n"
	"  -h, --help           this text\n";

/* Set from signal handlers: the one global laminad keeps. */
static volatile sig_atomic_t stop_signal;

static void on_signal(int sig)
{
	stop_signal = sig;
}

static int port_arg(const char *opt, const char *v, uint16_t *out)
{
	char *end;
	long n = strtol(v, &end, 10);
	if (*end || n < 1 || n > 65535) {
		fprintf(stderr, "laminad: %s needs a port from 1 to 65535, not "
			"'%s'\n", opt, v);
		return -EINVAL;
	}
	*out = (uint16_t)n;
	return 0;
}

/* --fault dup=PPM,swap=PPM (either may be left out): per million frames. */
static int fault_arg(const char *v, struct lm_dp_net_opts *c)
{
	char buf[64], *save = NULL;
	if (strlen(v) >= sizeof(buf))
		return -EINVAL;
	strcpy(buf, v);
	for (char *t = strtok_r(buf, ",", &save); t;
	     t = strtok_r(NULL, ",", &save)) {
		char *eq = strchr(t, '='), *end;
		if (!eq)
			return -EINVAL;
		*eq = '\0';
		long n = strtol(eq + 1, &end, 10);
		if (!eq[1] || *end || n < 0 || n > 1000000)
			return -EINVAL;
		if (!strcmp(t, "dup"))
			c->fault_dup_ppm = (uint32_t)n;
		else if (!strcmp(t, "swap"))
			c->fault_swap_ppm = (uint32_t)n;
		else
			return -EINVAL;
	}
	return 0;
}

static int parse(int argc, char **argv, struct lm_dp_config *c,
		 const char **cleanup)
{
	enum { O_CTL = 256, O_ING, O_HTTP, O_LISTEN, O_NAME, O_CORES, O_POLL, O_HUGE,
	       O_MEM, O_EAL, O_STATE, O_LOG, O_FG, O_PORT, O_PORT_IP, O_MTU,
	       O_FAULT, O_CLEANUP, O_CLEANUP_PORT, O_VERSION, O_MANAGED,
	       O_ANNOUNCE, O_NO_ANNOUNCE, O_FLEET_KEY, O_DESCRIBE_HOST };
	static const struct option opts[] = {
		{ "control-port", required_argument, 0, O_CTL },
		{ "ingress-port", required_argument, 0, O_ING },
		{ "http-port", required_argument, 0, O_HTTP },
		{ "listen", required_argument, 0, O_LISTEN },
		{ "name", required_argument, 0, O_NAME },
		{ "cores", required_argument, 0, O_CORES },
		{ "poll", required_argument, 0, O_POLL },
		{ "hugepages", required_argument, 0, O_HUGE },
		{ "memory", required_argument, 0, O_MEM },
		{ "eal", required_argument, 0, O_EAL },
		{ "state-dir", required_argument, 0, O_STATE },
		{ "log", required_argument, 0, O_LOG },
		{ "foreground", no_argument, 0, O_FG },
		{ "port", required_argument, 0, O_PORT },
		{ "port-ip", required_argument, 0, O_PORT_IP },
		{ "mtu", required_argument, 0, O_MTU },
		{ "fault", required_argument, 0, O_FAULT },
		{ "cleanup", required_argument, 0, O_CLEANUP },
		{ "cleanup-port", required_argument, 0, O_CLEANUP_PORT },
		{ "managed", no_argument, 0, O_MANAGED },
		{ "announce", no_argument, 0, O_ANNOUNCE },
		{ "no-announce", no_argument, 0, O_NO_ANNOUNCE },
		{ "fleet-key", required_argument, 0, O_FLEET_KEY },
		{ "version", no_argument, 0, O_VERSION },
		{ "describe-host", no_argument, 0, O_DESCRIBE_HOST },
		{ "help", no_argument, 0, 'h' },
		{ 0, 0, 0, 0 },
	};
	int o, idx = 0, ingress_set = 0;
	memset(c, 0, sizeof(*c));
	*cleanup = NULL;
	c->control_port = LM_CONTROL_PORT;
	c->http_port = LM_DP_HTTP_PORT;
	c->http_auto = 1;
	c->listen = "127.0.0.1";
	c->announce = -1;
	c->eal.hugepages_auto = 1;
	c->eal.memory_mb = 1024;
	c->net.mtu = 9000;
	opterr = 0;
	while ((o = getopt_long(argc, argv, ":h", opts, &idx)) != -1) {
		char *end;
		long v;
		switch (o) {
		case O_CTL:
		case O_ING:
			if (port_arg(o == O_CTL ? "--control-port"
						: "--ingress-port", optarg,
				     o == O_CTL ? &c->control_port
						: &c->ingress_port))
				return -EINVAL;
			ingress_set |= o == O_ING;
			break;
		case O_HTTP:
			v = strtol(optarg, &end, 10);
			if (*end || !*optarg || v < 0 || v > 65535)
				goto bad_value;
			c->http_port = (uint16_t)v;
			c->http_auto = 0;
			break;
		case O_LISTEN: c->listen = optarg; break;
		case O_NAME: c->name = optarg; break;
		case O_CORES: c->eal.cores = optarg; break;
		case O_EAL: c->eal.extra = optarg; break;
		case O_STATE: c->state_dir = optarg; break;
		case O_LOG: c->log = optarg; break;
		case O_FG: c->foreground = 1; break;
		case O_PORT: c->net.iface = optarg; break;
		case O_PORT_IP: c->net.ip = optarg; break;
		case O_CLEANUP: *cleanup = optarg; break;
		case O_CLEANUP_PORT:
			if (port_arg("--cleanup-port", optarg,
				     &c->cleanup_port))
				return -EINVAL;
			break;
		case O_MANAGED: c->managed = 1; break;
		case O_ANNOUNCE: c->announce = 1; break;
		case O_NO_ANNOUNCE: c->announce = 0; break;
		case O_FLEET_KEY: c->fleet_key = optarg; break;
		case O_DESCRIBE_HOST: c->describe_host = 1; break;
		case O_VERSION:
			printf("laminad %s\n", LM_DP_VERSION);
			exit(0);
		case O_MTU:
			v = strtol(optarg, &end, 10);
			if (*end || v < 576 || v > 9600)
				goto bad_value;
			c->net.mtu = (unsigned)v;
			break;
		case O_FAULT:
			if (fault_arg(optarg, &c->net))
				goto bad_value;
			break;
		case O_POLL:
			if (!strcmp(optarg, "busy"))
				c->eal.poll = LM_DP_POLL_BUSY;
			else if (!strcmp(optarg, "adaptive"))
				c->eal.poll = LM_DP_POLL_ADAPTIVE;
			else if (!strcmp(optarg, "auto"))
				c->eal.poll = LM_DP_POLL_AUTO;
			else
				goto bad_value;
			break;
		case O_HUGE:
			if (strcmp(optarg, "auto") && strcmp(optarg, "no"))
				goto bad_value;
			c->eal.hugepages_auto = !strcmp(optarg, "auto");
			break;
		case O_MEM:
			v = strtol(optarg, &end, 10);
			if (*end || v < 64 || v > (1L << 20))
				goto bad_value;
			c->eal.memory_mb = (unsigned)v;
			break;
		case 'h':
			fputs(help, stdout);
			exit(0);
		case ':':
			fprintf(stderr, "laminad: %s needs a value\n",
				argv[optind - 1]);
			return -EINVAL;
		default:
			fprintf(stderr, "laminad: unknown option '%s' (see "
				"'laminad --help')\n", argv[optind - 1]);
			return -EINVAL;
		}
		continue;
bad_value:
		fprintf(stderr, "laminad: --%s: '%s' is not a valid value (see "
			"'laminad --help')\n", opts[idx].name, optarg);
		return -EINVAL;
	}
	if (optind != argc) {
		fprintf(stderr, "laminad: unexpected argument '%s'\n",
			argv[optind]);
		return -EINVAL;
	}
	if ((c->net.fault_dup_ppm || c->net.fault_swap_ppm) && !c->net.iface) {
		fprintf(stderr, "laminad: --fault applies to the frames of "
			"--port, which is not given\n");
		return -EINVAL;
	}
	if (!ingress_set)
		c->ingress_port = (uint16_t)(c->control_port + 1);
	c->eal.control_port = c->control_port;
	if (c->ingress_port == c->control_port) {
		fprintf(stderr, "laminad: the control and ingress ports must "
			"differ\n");
		return -EINVAL;
	}
	return 0;
}

static const char *default_state_dir(char *buf, size_t len)
{
	const char *x = getenv("XDG_STATE_HOME"), *home = getenv("HOME");
	if (geteuid() == 0)
		snprintf(buf, len, "/var/lib/lamina");
	else if (x && *x)
		snprintf(buf, len, "%s/lamina", x);
	else
		snprintf(buf, len, "%s/.local/state/lamina", home ? home : "/tmp");
	return buf;
}

/* A listening TCP socket; -errno (-EINVAL: the address, in e). */
static int tcp_listen(const char *addr, uint16_t port, lm_error *e)
{
	struct addrinfo hints = { .ai_flags = AI_PASSIVE | AI_NUMERICSERV,
				  .ai_socktype = SOCK_STREAM }, *res;
	char ps[8];
	snprintf(ps, sizeof(ps), "%u", port);
	int rc = getaddrinfo(addr, ps, &hints, &res);
	if (rc)
		return lm_fail(e, -EINVAL, "--listen %s: %s", addr,
			       gai_strerror(rc));
	int fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK |
			SOCK_CLOEXEC, 0), one = 1;
	if (fd >= 0) {
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (bind(fd, res->ai_addr, res->ai_addrlen) != 0 ||
		    listen(fd, 128) != 0) {
			rc = -errno;
			close(fd);
			fd = rc;
		}
	} else {
		fd = -errno;
	}
	freeaddrinfo(res);
	return fd;
}

static int listen_on(const char *addr, uint16_t port, lm_error *e)
{
	int fd = tcp_listen(addr, port, e);
	if (fd < 0 && fd != -EINVAL)
		return lm_fail(e, fd, "cannot listen on %s port %u: %s", addr,
			       port, strerror(-fd));
	return fd;
}

/* The HTTP front's socket: the port asked for, or the first free one
 * from it.  -1 with no error when there is to be none. */
static int listen_http(struct lm_dp *dp, lm_error *e)
{
	const struct lm_dp_config *c = &dp->cfg;
	unsigned tries = c->http_auto ? LM_DP_HTTP_TRIES : 1;
	if (!c->http_port)
		return -1;
	for (unsigned k = 0; k < tries && c->http_port + k <= 65535; k++) {
		uint16_t port = (uint16_t)(c->http_port + k);
		if (port == c->control_port || port == c->ingress_port)
			continue;
		int fd = tcp_listen(c->listen, port, e);
		if (fd >= 0) {
			dp->http_port = port;
			return fd;
		}
		if (fd == -EINVAL)
			return fd;
		if (fd != -EADDRINUSE)
			return lm_fail(e, fd, "cannot listen on %s port %u: %s",
				       c->listen, port, strerror(-fd));
	}
	if (c->http_auto)
		return lm_fail(e, -EADDRINUSE, "no free HTTP port from %u to "
			       "%u (--http-port)", c->http_port,
			       c->http_port + tries - 1);
	return lm_fail(e, -EADDRINUSE, "HTTP port %u is taken (--http-port)",
		       c->http_port);
}

/* The state file as this process's state stands ("up" once it listens). */
static int write_state(struct lm_dp *dp, int up, lm_error *e)
{
	lm_laminad_state st;
	memset(&st, 0, sizeof(st));
	st.pid = (int)getpid();
	st.up = up;
	st.control_port = dp->cfg.control_port;
	st.ingress_port = dp->cfg.ingress_port;
	snprintf(st.listen, sizeof(st.listen), "%s", dp->cfg.listen);
	snprintf(st.file_prefix, sizeof(st.file_prefix), "%s",
		 dp->eal.file_prefix);
	snprintf(st.run_dir, sizeof(st.run_dir), "%s", dp->eal.run_dir);
	st.huge_page_kb = dp->eal.huge.page_kb;
	st.huge_count = dp->eal.huge.count;
	snprintf(st.huge_mount, sizeof(st.huge_mount), "%s",
		 dp->eal.huge.mount);
	snprintf(st.log, sizeof(st.log), "%s", dp->log_path);
	return lm_state_save(dp->state_file, &st, e);
}

static int add_fd(struct lm_dp *dp, int fd, int kind)
{
	struct epoll_event ev = { .events = EPOLLIN,
				  .data.u64 = LM_DP_EV(kind, 0) };
	return epoll_ctl(dp->epfd, EPOLL_CTL_ADD, fd, &ev);
}

/* One round of epoll events. */
static void events(struct lm_dp *dp, struct epoll_event *ev, int n)
{
	for (int i = 0; i < n; i++) {
		uint32_t kind = (uint32_t)(ev[i].data.u64 >> 32);
		int slot = (int)(uint32_t)ev[i].data.u64;
		switch (kind) {
		case LM_DP_EV_CTL_LISTEN:
			lm_dp_control_accept(dp);
			break;
		case LM_DP_EV_ING_LISTEN:
			lm_dp_front_accept(&dp->front, dp->ing_fd,
					   LM_DP_EV_ING);
			break;
		case LM_DP_EV_CTL:
			lm_dp_control_event(dp, slot, ev[i].events);
			break;
		case LM_DP_EV_ING:
			lm_dp_front_event(&dp->front, slot, ev[i].events);
			break;
		case LM_DP_EV_HTTP:
			lm_dp_http_run(dp->http);
			break;
		case LM_DP_EV_MDNS:
			lm_dp_announce_event(dp);
			break;
		case LM_DP_EV_BELL: {
			uint64_t rung;
			ssize_t r = read(dp->bell.fd, &rung, sizeof(rung));
			(void)r;
			break;
		}
		}
	}
}

/* Wait for events the way the load allows (see loop); `due` is the
 * microseconds until the queue's next timer (a batch's delay). */
static int wait_events(struct lm_dp *dp, struct epoll_event *ev, int max,
		       int polling, int spin, int net, unsigned empty,
		       unsigned due)
{
	struct timespec ts = { 0, 0 };
	if (!polling && due >= 100000)
		return epoll_wait(dp->epfd, ev, max, 100);
	if (spin)
		return epoll_wait(dp->epfd, ev, max, 0);
	if (polling && !net && !dp->serve.waiting) {
		int n;
		/* asleep until an answer rings (or a request comes, or the
		 * delay of a batch ends); an answer handed on before the flag
		 * was seen is found by this last look.  M1 pairs with a
		 * worker's B1 (bundle.h). */
		ts.tv_sec = due / 1000000;
		ts.tv_nsec = (long)(due % 1000000) * 1000;
		__atomic_store_n(&dp->bell.sleeping, 1, __ATOMIC_RELAXED);
		__atomic_thread_fence(__ATOMIC_SEQ_CST); /* M1 */
		n = lm_dp_serve_egress(&dp->serve) > 0
			    ? 0 : epoll_pwait2(dp->epfd, ev, max, &ts, NULL);
		__atomic_store_n(&dp->bell.sleeping, 0, __ATOMIC_RELAXED);
		return n;
	}
	/* the network gives no wake-up, nor does a bundle coming free for
	 * requests that wait: look again soon */
	long us = 10L << (empty < 7 ? empty : 7);
	if (us > 1000)
		us = 1000;
	if ((unsigned long)us > due)
		us = (long)due;
	ts.tv_nsec = us * 1000;
	return epoll_pwait2(dp->epfd, ev, max, &ts, NULL);
}

/*
 * The main lcore's loop: control and ingress sockets through epoll, the
 * last edge of every deployment by polling while requests are in the
 * pipeline.  Between polls it spins when lm_dp_main_spins says it costs no
 * worker anything.  Otherwise, while only answers are awaited, it sleeps in
 * epoll until the last stage rings its doorbell (struct lm_dp_bell) after
 * handing it one; while the network must be polled (no wake-up comes from
 * it), it waits with a timeout doubling from 10 us to 1 ms while nothing
 * happens.  On a host whose every cpu holds a busy-polling worker,
 * spinning here, even briefly after each event (a request arrives in
 * dozens of socket reads), took a fifth of a worker's cpu, and each
 * wake-up is a context switch away from a worker: the doorbell makes it
 * one per answer (the doubling alone: ~13 per ResNet-18 request on two
 * busy cpus).
 */
#define DRAIN_S 5

/* Requests admitted and not yet answered, every deployment. */
static unsigned pending(const struct lm_dp *dp)
{
	unsigned n = 0;
	for (int i = 0; i < LM_DP_MAX_DEPLOYMENTS; i++)
		if (dp->deps.d[i])
			n += lm_dp_queue_pending(dp->deps.d[i]);
	return n;
}

static void loop(struct lm_dp *dp)
{
	struct epoll_event ev[64];
	unsigned empty = 0;
	int spin = lm_dp_main_spins(&dp->lc);
	uint64_t t_sweep = rte_rdtsc(), t_drain = 0;
	for (;;) {
		/* going: answer what was admitted, for at most DRAIN_S */
		if ((dp->quit || stop_signal) && !t_drain) {
			t_drain = rte_rdtsc();
			for (int i = 0; i < LM_DP_MAX_DEPLOYMENTS; i++)
				if (dp->deps.d[i])
					lm_dp_queue_drain(&dp->serve,
							  dp->deps.d[i]);
		}
		if (t_drain && (!pending(dp) ||
				rte_rdtsc() - t_drain > DRAIN_S * dp->tsc_hz))
			break;
		/* while requests are in the pipeline, poll the last edge;
		 * while a deployment crosses laminads, the network too */
		int net = lm_dp_net_active(dp->net, &dp->deps);
		int polling = dp->serve.inflight > 0 || net ||
			      dp->serve.waiting;
		unsigned due = dp->serve.gathering
				       ? lm_dp_serve_next_us(&dp->serve, 100000)
				       : 100000;
		due = lm_dp_http_next_us(dp->http, due);
		int n = wait_events(dp, ev, 64, polling, spin, net, empty,
				    due);
		events(dp, ev, n);
		int got = lm_dp_net_poll(dp->net, &dp->deps);
		got += lm_dp_serve_egress(&dp->serve);
		lm_dp_serve_tick(&dp->serve);
		lm_dp_front_flush(&dp->front);
		if (dp->http && !lm_dp_http_next_us(dp->http, 1))
			lm_dp_http_run(dp->http);
		lm_dp_announce_tick(dp);
		if (rte_rdtsc() - t_sweep > dp->tsc_hz) {
			/* connections that hold slots or bundles idly,
			 * libmicrohttpd's timeouts, what the TXT record says */
			lm_dp_control_sweep(dp);
			lm_dp_front_sweep(&dp->front);
			lm_dp_http_run(dp->http);
			lm_dp_announce_refresh(dp);
			t_sweep = rte_rdtsc();
		}
		if (n > 0) /* a control message may have changed the stages */
			spin = lm_dp_main_spins(&dp->lc);
		if (n > 0 || got > 0 || !polling)
			empty = 0;
		else if (empty < 7)
			empty++;
	}
	if (stop_signal)
		lm_log("signal %d: shutting down", (int)stop_signal);
}

/* Tell the waiting parent how start-up went, then stop telling. */
static void notify(int *fd, const char *msg)
{
	if (*fd < 0)
		return;
	ssize_t w = write(*fd, msg, strlen(msg));
	(void)w;
	close(*fd);
	*fd = -1;
}

/* Fork; the parent waits for the child's word and exits with it. */
static int daemonize(int *notify_fd)
{
	int p[2];
	if (pipe(p) != 0)
		return -errno;
	pid_t pid = fork();
	if (pid < 0)
		return -errno;
	if (pid > 0) {
		char buf[1024];
		size_t n = 0;
		ssize_t r;
		close(p[1]);
		while (n < sizeof(buf) - 1 &&
		       (r = read(p[0], buf + n, sizeof(buf) - 1 - n)) > 0)
			n += (size_t)r;
		buf[n] = '\0';
		if (!strncmp(buf, "ok ", 3)) {
			fputs(buf + 3, stdout);
			exit(0);
		}
		fprintf(stderr, "%s", n ? buf : "laminad: exited during "
			"start-up (see its log)\n");
		exit(1);
	}
	close(p[0]);
	setsid();
	*notify_fd = p[1];
	int null = open("/dev/null", O_RDWR);
	if (null >= 0) {
		dup2(null, 0);
		close(null);
	}
	return 0;
}

/* ---- laminad --cleanup STATE_FILE ---- */

/* 1 when pid runs (not a zombie) and is a laminad. */
static int laminad_alive(int pid)
{
	char path[64], buf[64];
	if (pid <= 0 || pid == (int)getpid())
		return 0;
	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	FILE *f = fopen(path, "r");
	char stat[512] = "";
	if (!f)
		return 0;
	if (!fgets(stat, sizeof(stat), f))
		stat[0] = '\0';
	fclose(f);
	const char *paren = strrchr(stat, ')');
	if (!paren || paren[1] != ' ' || paren[2] == 'Z' || paren[2] == 'X')
		return 0;
	snprintf(path, sizeof(path), "/proc/%d/comm", pid);
	f = fopen(path, "r");
	int yes = f && fgets(buf, sizeof(buf), f) &&
		  !strncmp(buf, "laminad", 7);
	if (f)
		fclose(f);
	return yes;
}

/* Hugepage files EAL left for prefix ("<prefix>map_N") in every hugetlbfs
 * mount: they hold pages until removed. */
static void remove_hugefiles(const char *prefix)
{
	char pattern[96], path[PATH_MAX];
	snprintf(pattern, sizeof(pattern), "%smap_", prefix);
	FILE *m = setmntent("/proc/mounts", "r");
	struct mntent *me;
	while (m && (me = getmntent(m))) {
		if (strcmp(me->mnt_type, "hugetlbfs"))
			continue;
		DIR *d = opendir(me->mnt_dir);
		struct dirent *de;
		while (d && (de = readdir(d)))
			if (!strncmp(de->d_name, pattern, strlen(pattern)) &&
			    snprintf(path, sizeof(path), "%s/%s", me->mnt_dir,
				     de->d_name) < (int)sizeof(path))
				unlink(path);
		if (d)
			closedir(d);
	}
	if (m)
		endmntent(m);
}

/* EAL run folders of laminads of this control port that no longer run
 * ("laminad-PORT-PID", lm_dp_eal_run_dir's): what a laminad left when it
 * was killed after its state file went (a laminad of the same port with
 * another state folder, alive, keeps its own). */
static void remove_stale_run_dirs(int port)
{
	char base[PATH_MAX], want[32], path[PATH_MAX];
	lm_dp_eal_run_dir("", base, sizeof(base));
	int n = snprintf(want, sizeof(want), "laminad-%d-", port);
	DIR *d = opendir(base);
	struct dirent *de;
	while (d && (de = readdir(d))) {
		char *end;
		if (strncmp(de->d_name, want, (size_t)n))
			continue;
		long pid = strtol(de->d_name + n, &end, 10);
		if (*end || pid <= 0 || pid > INT_MAX || laminad_alive((int)pid))
			continue;
		if (snprintf(path, sizeof(path), "%s%s", base, de->d_name) <
		    (int)sizeof(path))
			lm_remove_tree(path);
	}
	if (d)
		closedir(d);
}

/* Half-written copies of the state file a laminad killed while writing
 * it left beside it ("FILE.tmp-XXXXXX", lm_write_atomic's). */
static void remove_tmp_files(const char *dir, const char *path)
{
	const char *base = strrchr(path, '/');
	char prefix[NAME_MAX + 1], file[PATH_MAX];
	base = base ? base + 1 : path;
	if (snprintf(prefix, sizeof(prefix), "%s.tmp-", base) >=
	    (int)sizeof(prefix))
		return;
	DIR *d = opendir(dir);
	struct dirent *de;
	while (d && (de = readdir(d)))
		if (!strncmp(de->d_name, prefix, strlen(prefix)) &&
		    strlen(de->d_name) == strlen(prefix) + 6 &&
		    snprintf(file, sizeof(file), "%s/%s", dir, de->d_name) <
			    (int)sizeof(file))
			unlink(file);
	if (d)
		closedir(d);
}

/* A file prefix this laminad could have made: laminad-PORT-PID. */
static int prefix_ok(const char *p, int port, int pid)
{
	char want[64];
	snprintf(want, sizeof(want), "laminad-%d-%d", port, pid);
	return !strcmp(p, want);
}

/*
 * Give back what the laminad of state file `path` took, when it no longer
 * runs.  Every path acted on is checked first: the run folder must be
 * EAL's for the prefix laminad-PORT-PID of the file, the mount and the log
 * must lie in the state file's folder, and the hugepages given back are
 * the count the file records.
 */
static int cleanup(const char *path)
{
	lm_laminad_state st;
	lm_error e;
	char dir[PATH_MAX - 64], run[PATH_MAX], mount[PATH_MAX];
	int rc = lm_state_load(path, &st, &e);
	if (rc == -ENOENT)
		return 0; /* a clean exit removed it: nothing to do */
	if (rc) {
		fprintf(stderr, "laminad --cleanup: %s\n", e.msg);
		return 1;
	}
	if (laminad_alive(st.pid)) {
		fprintf(stderr, "laminad --cleanup: laminad pid %d still runs "
			"(%s): stop it first\n", st.pid, path);
		return 1;
	}
	snprintf(dir, sizeof(dir), "%s", path);
	char *slash = strrchr(dir, '/');
	if (slash)
		*slash = '\0';
	else
		snprintf(dir, sizeof(dir), ".");
	if (prefix_ok(st.file_prefix, st.control_port, st.pid)) {
		remove_hugefiles(st.file_prefix);
		lm_dp_eal_run_dir(st.file_prefix, run, sizeof(run));
		lm_remove_tree(run);
	}
	/* the mount laminad makes for its own pages, recorded or not (it
	 * may have died between mounting and writing the file) */
	struct lm_huge h = { .page_kb = st.huge_page_kb,
			     .count = st.huge_count };
	snprintf(mount, sizeof(mount), "%s/laminad-%d.huge", dir,
		 st.control_port);
	if (!st.huge_mount[0] || !strcmp(st.huge_mount, mount))
		snprintf(h.mount, sizeof(h.mount), "%s", mount);
	rc = lm_huge_release(&h, &e);
	if (rc)
		fprintf(stderr, "laminad --cleanup: %s\n", e.msg);
	if (st.log[0] && lm_path_in(dir, st.log))
		unlink(st.log);
	remove_tmp_files(dir, path);
	lm_store_remove(dir, (unsigned)st.control_port);
	/* where its output goes when lamina starts it (no --log) */
	if (!lm_state_log_path(dir, st.control_port, run, sizeof(run)))
		unlink(run);
	unlink(path);
	return rc ? 1 : 0;
}

/* One laminad per control port and network namespace: an abstract unix
 * socket named after the port, bound for laminad's life (the kernel
 * releases it when the process ends, however it ends; no file).  Taken
 * before anything else, so a second laminad on the port reserves
 * nothing. */
static int port_lock(const struct lm_dp *dp, int quiet)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	int n = snprintf(a.sun_path + 1, sizeof(a.sun_path) - 1,
			 "lamina-laminad-%u", dp->cfg.control_port);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		fprintf(stderr, "laminad: socket: %s\n", strerror(errno));
		return -1;
	}
	if (bind(fd, (struct sockaddr *)&a,
		 (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 +
			     (size_t)n)) != 0) {
		if (!quiet)
			fprintf(stderr, "laminad: another laminad runs on "
				"control port %u\n", dp->cfg.control_port);
		close(fd);
		return -1;
	}
	return fd;
}

/* --describe-host: the TXT record laminad would announce here, started
 * now with these options (--cores), one string a line.  `lamina devices
 * add ssh://HOST` reads it to plan for a host before any laminad runs
 * there; the strings are printable ASCII without newlines (dnssd.c). */
static int describe_host(struct lm_dp *dp)
{
	struct lm_dnssd_txt t;
	uint8_t raw[LM_DNSSD_TXT_MAX];
	size_t n, off = 0;
	lm_error e = { "" };
	if (lm_dp_lcores_init(&dp->cfg.eal, &dp->lc, &e)) {
		fprintf(stderr, "laminad: %s\n", e.msg);
		return 1;
	}
	lm_dp_announce_txt(dp, &t);
	t.ingress = t.http = 0; /* nothing listens yet */
	if (lm_dnssd_txt_encode(&t, raw, sizeof(raw), &n, &e)) {
		fprintf(stderr, "laminad: %s\n", e.msg);
		return 1;
	}
	while (off < n) {
		printf("%.*s\n", raw[off], (const char *)raw + off + 1);
		off += 1u + raw[off];
	}
	return fflush(stdout) ? 1 : 0;
}

int main(int argc, char **argv)
{
	struct lm_dp dp;
	lm_error e = { "" };
	char state_dir[PATH_MAX], msg[PATH_MAX * 2 + 512];
	const char *cleanup_file;
	int notify_fd = -1, rc = 1, eal_argc = 0, eal_up = 0, lock;
	char **eal_argv = NULL;
	FILE *log = NULL;

	memset(&dp, 0, sizeof(dp));
	dp.epfd = dp.ctl_fd = dp.ing_fd = dp.bell.fd = -1;
	if (parse(argc, argv, &dp.cfg, &cleanup_file))
		return 2;
	if (cleanup_file)
		return cleanup(cleanup_file);
	if (dp.cfg.describe_host)
		return describe_host(&dp);
	if (dp.cfg.cleanup_port) {
		/* the state file of that port in the state folder */
		const char *dir = dp.cfg.state_dir
			? dp.cfg.state_dir
			: default_state_dir(state_dir, sizeof(state_dir));
		char file[PATH_MAX];
		if (lm_state_path(dir, dp.cfg.cleanup_port, file,
				  sizeof(file))) {
			fprintf(stderr, "laminad: state folder path too long\n");
			return 1;
		}
		if ((rc = cleanup(file)))
			return rc;
		/* none runs on the port (its lock is free): what a laminad
		 * that exited cleanly keeps, its log and its store, goes too */
		dp.cfg.control_port = dp.cfg.cleanup_port;
		if ((lock = port_lock(&dp, 1)) < 0)
			return 0;
		if (!lm_state_log_path(dir, dp.cfg.cleanup_port, file,
				       sizeof(file)))
			unlink(file);
		lm_store_remove(dir, dp.cfg.cleanup_port);
		remove_stale_run_dirs(dp.cfg.cleanup_port);
		close(lock);
		return 0;
	}
	if (lm_dp_announce_check(&dp.cfg, &e)) {
		fprintf(stderr, "laminad: %s\n", e.msg);
		return 2;
	}
	/* the key is checked before anything is taken: a key file others
	 * may read is refused, and says so on stderr.  "-": from stdin (a
	 * pipe from ssh when lamina starts this laminad on another host, so
	 * the key is on no command line and in no file there) */
	if (dp.cfg.fleet_key) {
		int from_stdin = !strcmp(dp.cfg.fleet_key, "-");
		if (from_stdin ? lm_fleet_key_read_fd(0, "stdin", &dp.key, &e)
			       : lm_fleet_key_load(dp.cfg.fleet_key, &dp.key,
						   &e)) {
			fprintf(stderr, "laminad: %s (--fleet-key)\n", e.msg);
			return 1;
		}
		dp.keyed = 1;
		lm_fleet_fingerprint(&dp.key, dp.fleet_fp);
	}
	/* connections are descriptors: as many as the system allows */
	lm_sock_raise_nofile();
	if (!dp.cfg.state_dir)
		dp.cfg.state_dir = default_state_dir(state_dir,
						     sizeof(state_dir));
	dp.cfg.eal.state_dir = dp.cfg.state_dir;
	if ((rc = lm_mkdirs(dp.cfg.state_dir, 0700)) != 0) {
		fprintf(stderr, "laminad: cannot create the state folder %s: "
			"%s\n", dp.cfg.state_dir, strerror(-rc));
		return 1;
	}
	rc = 1;
	if (lm_state_path(dp.cfg.state_dir, dp.cfg.control_port,
			  dp.state_file, sizeof(dp.state_file))) {
		fprintf(stderr, "laminad: state folder path too long\n");
		return 1;
	}
	if ((lock = port_lock(&dp, 0)) < 0)
		return 1;
	if (dp.cfg.log || !dp.cfg.foreground) {
		if (dp.cfg.log)
			snprintf(dp.log_path, sizeof(dp.log_path), "%s",
				 dp.cfg.log);
		else
			lm_state_log_path(dp.cfg.state_dir, dp.cfg.control_port,
					  dp.log_path, sizeof(dp.log_path));
		if (!(log = fopen(dp.log_path, "a"))) {
			fprintf(stderr, "laminad: cannot open the log %s: %s\n",
				dp.log_path, strerror(errno));
			return 1;
		}
		setvbuf(log, NULL, _IOLBF, 0);
	}
	/* a state file left here is a dead laminad's (the lock says none
	 * runs): give back what it took before taking anything */
	if (access(dp.state_file, F_OK) == 0 && cleanup(dp.state_file) != 0)
		fprintf(stderr, "laminad: could not clean up after the laminad "
			"of %s; going on\n", dp.state_file);
	if (!dp.cfg.foreground && daemonize(&notify_fd) != 0) {
		fprintf(stderr, "laminad: cannot start in the background\n");
		return 1;
	}
	lm_log_open(log, "laminad");
	if (log) {
		rte_openlog_stream(log);
		if (!dp.cfg.foreground) {
			dup2(fileno(log), 1);
			dup2(fileno(log), 2);
		}
	}
	if (!dp.keyed)
		lm_log("no fleet key (--fleet-key): describe and stats only; "
		       "load, start, stop, teardown, drain and shutdown are "
		       "refused");
	if (dp.cfg.name)
		snprintf(dp.name, sizeof(dp.name), "%s", dp.cfg.name);
	else if (gethostname(dp.name, sizeof(dp.name) - 1) != 0)
		snprintf(dp.name, sizeof(dp.name), "localhost");
	openblas_set_num_threads(1);

	/* Workers inherit a mask without these, so signals reach main. */
	sigset_t sigs;
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	signal(SIGPIPE, SIG_IGN);

	/* the state file names what will be taken before it is taken */
	snprintf(dp.eal.file_prefix, sizeof(dp.eal.file_prefix),
		 "laminad-%u-%d", dp.cfg.control_port, (int)getpid());
	lm_dp_eal_run_dir(dp.eal.file_prefix, dp.eal.run_dir,
			  sizeof(dp.eal.run_dir));
	if (lm_dp_lcores_init(&dp.cfg.eal, &dp.lc, &e) ||
	    write_state(&dp, 0, &e) ||
	    lm_dp_eal_args(&dp.cfg.eal, &dp.lc, &dp.eal, &eal_argc, &eal_argv,
			   &e) ||
	    write_state(&dp, 0, &e))
		goto fail;
	{
		char line[2048];
		size_t off = 0;
		for (int i = 0; i < eal_argc && off < sizeof(line); i++)
			off += (size_t)snprintf(line + off, sizeof(line) - off,
						" %s", eal_argv[i]);
		lm_log("starting: EAL%s", line);
	}
	/* rte_eal_init permutes argv: keep our copy for freeing */
	char **argv_copy = malloc((size_t)(eal_argc + 1) * sizeof(char *));
	if (!argv_copy) {
		lm_fail(&e, -ENOMEM, "out of memory");
		goto fail;
	}
	memcpy(argv_copy, eal_argv, (size_t)(eal_argc + 1) * sizeof(char *));
	if (rte_eal_init(eal_argc, argv_copy) < 0) {
		free(argv_copy);
		lm_fail(&e, -rte_errno, "DPDK EAL did not start: %s (see %s)",
			rte_strerror(rte_errno),
			dp.log_path[0] ? dp.log_path : "the messages above");
		goto fail;
	}
	free(argv_copy);
	eal_up = 1;
	snprintf(dp.eal.run_dir, sizeof(dp.eal.run_dir), "%s",
		 rte_eal_get_runtime_dir());
	dp.tsc_hz = rte_get_tsc_hz();
	dp.cycles_per_us = (double)dp.tsc_hz / 1e6;
	dp.t_start = rte_rdtsc();
	if ((dp.epfd = epoll_create1(EPOLL_CLOEXEC)) < 0) {
		lm_fail(&e, -errno, "epoll: %s", strerror(errno));
		goto fail;
	}
	lm_dp_serve_init(&dp.serve, &dp.deps, dp.tsc_hz);
	if (lm_dp_front_init(&dp.front, dp.epfd, &dp.serve, &e) ||
	    lm_dp_net_open(&dp.cfg.net, dp.tsc_hz, &dp.net, &e) ||
	    lm_store_open(dp.cfg.state_dir, dp.cfg.control_port, &dp.store,
			  &e))
		goto fail;
	if ((dp.ctl_fd = listen_on(dp.cfg.listen, dp.cfg.control_port, &e)) < 0 ||
	    (dp.ing_fd = listen_on(dp.cfg.listen, dp.cfg.ingress_port, &e)) < 0)
		goto fail;
	int http_fd = listen_http(&dp, &e);
	if (http_fd < 0 && dp.cfg.http_port)
		goto fail;
	if (http_fd >= 0 &&
	    lm_dp_http_open(http_fd, dp.epfd, LM_DP_EV(LM_DP_EV_HTTP, 0),
			    &dp.serve, LM_DP_VERSION, lm_dp_metrics, &dp,
			    &dp.http, &e))
		goto fail;
	if ((dp.bell.fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) < 0 ||
	    add_fd(&dp, dp.ctl_fd, LM_DP_EV_CTL_LISTEN) ||
	    add_fd(&dp, dp.ing_fd, LM_DP_EV_ING_LISTEN) ||
	    add_fd(&dp, dp.bell.fd, LM_DP_EV_BELL)) {
		lm_fail(&e, -errno, "epoll: %s", strerror(errno));
		goto fail;
	}
	if (write_state(&dp, 1, &e) || lm_dp_announce_start(&dp, &e))
		goto fail;
	struct sigaction sa = { .sa_handler = on_signal };
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	pthread_sigmask(SIG_UNBLOCK, &sigs, NULL);
	char http[64] = "no http";
	if (dp.http)
		snprintf(http, sizeof(http), "http %s:%u", dp.cfg.listen,
			 dp.http_port);
	snprintf(msg, sizeof(msg), "ok laminad %s: pid %d, control %s:%u, "
		 "ingress %s:%u, %s, %u worker cpu(s), %s, %s%s, log %s\n",
		 dp.name, (int)getpid(), dp.cfg.listen, dp.cfg.control_port,
		 dp.cfg.listen, dp.cfg.ingress_port, http, dp.lc.n_worker_cpus,
		 dp.eal.hugepages ? "hugepages" : "no hugepages",
		 dp.keyed ? "fleet key " : "no fleet key", dp.fleet_fp,
		 dp.log_path[0] ? dp.log_path : "stderr");
	lm_log("%.*s", (int)strlen(msg + 3) - 1, msg + 3);
	notify(&notify_fd, msg);
	loop(&dp);
	rc = 0;
	goto out;
fail:
	lm_log("cannot start: %s", e.msg);
	snprintf(msg, sizeof(msg), "laminad: %s\n", e.msg);
	if (dp.cfg.foreground && log)
		fputs(msg, stderr);
	notify(&notify_fd, msg);
out:
	lm_dp_announce_close(&dp); /* goodbyes first: it is leaving */
	for (int i = 0; i < LM_DP_MAX_DEPLOYMENTS; i++)
		lm_dp_teardown(&dp, dp.deps.d[i]);
	lm_dp_control_close_all(&dp);
	lm_dp_front_flush(&dp.front); /* the last answers, as far as they go */
	lm_dp_front_close(&dp.front);
	lm_dp_http_close(dp.http);
	lm_dp_serve_close(&dp.serve);
	lm_dp_net_close(dp.net);
	lm_store_close(dp.store);
	if (dp.store) /* it served this laminad's deployments only */
		lm_store_remove(dp.cfg.state_dir, dp.cfg.control_port);
	if (dp.bell.fd >= 0)
		close(dp.bell.fd);
	if (dp.ctl_fd >= 0)
		close(dp.ctl_fd);
	if (dp.ing_fd >= 0)
		close(dp.ing_fd);
	if (dp.epfd >= 0)
		close(dp.epfd);
	if (eal_up)
		rte_eal_cleanup();
	lm_remove_tree(dp.eal.run_dir);
	lm_huge_release(&dp.eal.huge, NULL);
	lm_dp_eal_args_free(eal_argc, eal_argv);
	lm_fleet_key_wipe(&dp.key);
	if (dp.eal.huge.count) {
		/* pages this process still holds: the file keeps them for
		 * `laminad --cleanup`, which lamina teardown runs once this
		 * process has exited */
		lm_error ignore;
		lm_log("%u hugepage(s) still held at exit: `laminad --cleanup "
		       "%s` gives them back", dp.eal.huge.count,
		       dp.state_file);
		write_state(&dp, 0, &ignore);
	} else {
		/* everything is given back: the file no longer has anything
		 * to say (after a failed start too: nothing is left) */
		unlink(dp.state_file);
	}
	if (rc == 0)
		lm_log("exited cleanly");
	if (log) {
		rte_openlog_stream(NULL);
		lm_log_open(NULL, NULL);
		fclose(log);
	}
	close(lock);
	return rc;
}
