/*
 * main.c: laminad, the dataplane service: options, start-up as a daemon,
 * the state file, and the main lcore's event loop (control port, ingress,
 * egress).  The other files of dataplane/ are described in dp.h.
 *
 * The state file, STATE/laminad-<control_port>.json, is written once
 * laminad listens and removed on a clean exit (SIGTERM, SIGINT or a
 * Shutdown message).  `lamina teardown` reads it to clean up after a
 * crash.  Its fields:
 *
 *   pid                 laminad's process id
 *   control_port        TCP port of the control protocol (lamina.proto)
 *   ingress_port        TCP port of the inference ingress (client.h)
 *   listen              the address both ports listen on
 *   file_prefix         DPDK's --file-prefix: EAL's run folder is
 *                       /var/run/dpdk/<file_prefix> (root) or
 *                       $XDG_RUNTIME_DIR/dpdk/<file_prefix>
 *   run_dir             that folder, as EAL reported it
 *   hugepages_reserved  null, or the hugepages laminad reserved itself:
 *                       {"page_kb", "count", "mount"}: to give back, write
 *                       nr_hugepages minus count to
 *                       /proc/sys/vm/nr_hugepages (the pool of page_kb),
 *                       unmount and remove `mount`
 *   log                 laminad's log file, or null (stderr)
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
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_lcore.h>
#include <rte_log.h>

#include "dp.h"

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
	"  --listen ADDR        address of both ports (default 127.0.0.1)\n"
	"  --name NAME          device name reported by describe (default: "
	"host name)\n"
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
	"$XDG_STATE_HOME/lamina)\n"
	"  --log FILE           log file (default STATE/laminad-PORT.log; "
	"stderr with\n"
	"                       --foreground)\n"
	"  --foreground         stay in the foreground\n"
	"  -h, --help           this text\n";

/* Set from signal handlers: the one global laminad keeps. */
static volatile sig_atomic_t stop_signal;

static void on_signal(int sig)
{
	stop_signal = sig;
}

void lm_dp_log(const char *fmt, ...)
{
	FILE *f = rte_log_get_stream();
	char ts[32];
	time_t t = time(NULL);
	struct tm tm;
	va_list ap;
	strftime(ts, sizeof(ts), "%Y-%m-%d %H:%M:%S", localtime_r(&t, &tm));
	fprintf(f, "%s laminad[%d]: ", ts, (int)getpid());
	va_start(ap, fmt);
	vfprintf(f, fmt, ap);
	va_end(ap);
	fputc('\n', f);
	fflush(f);
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
static int fault_arg(const char *v, struct lm_dp_config *c)
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

static int parse(int argc, char **argv, struct lm_dp_config *c)
{
	enum { O_CTL = 256, O_ING, O_LISTEN, O_NAME, O_CORES, O_POLL, O_HUGE,
	       O_MEM, O_EAL, O_STATE, O_LOG, O_FG, O_PORT, O_PORT_IP, O_MTU,
	       O_FAULT };
	static const struct option opts[] = {
		{ "control-port", required_argument, 0, O_CTL },
		{ "ingress-port", required_argument, 0, O_ING },
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
		{ "help", no_argument, 0, 'h' },
		{ 0, 0, 0, 0 },
	};
	int o, idx = 0, ingress_set = 0;
	memset(c, 0, sizeof(*c));
	c->control_port = LM_CONTROL_PORT;
	c->listen = "127.0.0.1";
	c->hugepages_auto = 1;
	c->memory_mb = 1024;
	c->mtu = 9000;
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
		case O_LISTEN: c->listen = optarg; break;
		case O_NAME: c->name = optarg; break;
		case O_CORES: c->cores = optarg; break;
		case O_EAL: c->eal = optarg; break;
		case O_STATE: c->state_dir = optarg; break;
		case O_LOG: c->log = optarg; break;
		case O_FG: c->foreground = 1; break;
		case O_PORT: c->port_iface = optarg; break;
		case O_PORT_IP: c->port_ip = optarg; break;
		case O_MTU:
			v = strtol(optarg, &end, 10);
			if (*end || v < 576 || v > 9600)
				goto bad_value;
			c->mtu = (unsigned)v;
			break;
		case O_FAULT:
			if (fault_arg(optarg, c))
				goto bad_value;
			break;
		case O_POLL:
			if (!strcmp(optarg, "busy"))
				c->poll = LM_DP_POLL_BUSY;
			else if (!strcmp(optarg, "adaptive"))
				c->poll = LM_DP_POLL_ADAPTIVE;
			else if (!strcmp(optarg, "auto"))
				c->poll = LM_DP_POLL_AUTO;
			else
				goto bad_value;
			break;
		case O_HUGE:
			if (strcmp(optarg, "auto") && strcmp(optarg, "no"))
				goto bad_value;
			c->hugepages_auto = !strcmp(optarg, "auto");
			break;
		case O_MEM:
			v = strtol(optarg, &end, 10);
			if (*end || v < 64 || v > (1L << 20))
				goto bad_value;
			c->memory_mb = (unsigned)v;
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
	if ((c->fault_dup_ppm || c->fault_swap_ppm) && !c->port_iface) {
		fprintf(stderr, "laminad: --fault applies to the frames of "
			"--port, which is not given\n");
		return -EINVAL;
	}
	if (!ingress_set)
		c->ingress_port = (uint16_t)(c->control_port + 1);
	if (c->ingress_port == c->control_port) {
		fprintf(stderr, "laminad: the control and ingress ports must "
			"differ\n");
		return -EINVAL;
	}
	return 0;
}

/* mkdir -p */
static int make_dirs(const char *path)
{
	char p[PATH_MAX];
	snprintf(p, sizeof(p), "%s", path);
	for (char *s = p + 1; *s; s++)
		if (*s == '/') {
			*s = '\0';
			if (mkdir(p, 0755) != 0 && errno != EEXIST)
				return -errno;
			*s = '/';
		}
	return mkdir(p, 0755) != 0 && errno != EEXIST ? -errno : 0;
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

static int listen_on(const char *addr, uint16_t port, lm_error *e)
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
	if (fd < 0)
		return lm_fail(e, fd, "cannot listen on %s port %u: %s", addr,
			       port, strerror(-fd));
	return fd;
}

static int write_state(struct lm_dp *dp, lm_error *e)
{
	char tmp[PATH_MAX + 8];
	json_t *huge = dp->huge_count
		? json_pack("{s:I, s:I, s:s}", "page_kb",
			    (json_int_t)dp->huge_kb, "count",
			    (json_int_t)dp->huge_count, "mount",
			    dp->huge_mount)
		: json_null();
	json_t *j = json_pack("{s:I, s:I, s:I, s:s, s:s, s:s, s:o, s:o}",
			      "pid", (json_int_t)getpid(),
			      "control_port", (json_int_t)dp->cfg.control_port,
			      "ingress_port", (json_int_t)dp->cfg.ingress_port,
			      "listen", dp->cfg.listen,
			      "file_prefix", dp->file_prefix,
			      "run_dir", dp->run_dir,
			      "hugepages_reserved", huge,
			      "log", dp->log_path[0]
					     ? json_string(dp->log_path)
					     : json_null());
	snprintf(tmp, sizeof(tmp), "%s.tmp", dp->state_file);
	if (!j || json_dump_file(j, tmp, JSON_INDENT(2)) != 0 ||
	    rename(tmp, dp->state_file) != 0) {
		json_decref(j);
		unlink(tmp);
		return lm_fail(e, -EIO, "cannot write %s", dp->state_file);
	}
	json_decref(j);
	return 0;
}

static int add_fd(struct lm_dp *dp, int fd, int kind)
{
	struct epoll_event ev = { .events = EPOLLIN,
				  .data.u64 = LM_DP_EV(kind, 0) };
	return epoll_ctl(dp->epfd, EPOLL_CTL_ADD, fd, &ev);
}

/*
 * The main lcore's loop: control and ingress sockets through epoll, the
 * last edge of every deployment by polling while requests are in the
 * pipeline.  Between polls it spins when lm_dp_main_spins says it costs no
 * worker anything.  Otherwise, while only answers are awaited, it sleeps in
 * epoll until the last stage rings its doorbell (struct lm_dp_bell) after
 * handing it one; while a port to other laminads must be polled (no
 * wake-up comes from it), it waits with a timeout doubling from 10 us to
 * 1 ms while nothing happens.  On a host whose every cpu holds a
 * busy-polling worker, spinning here, even briefly after each event (a
 * request arrives in dozens of socket reads), took a fifth of a worker's
 * cpu, and each wake-up is a context switch away from a worker: the
 * doorbell makes it one per answer (the doubling alone: ~13 per ResNet-18
 * request on two busy cpus).
 */
static void loop(struct lm_dp *dp)
{
	struct epoll_event ev[64];
	unsigned empty = 0;
	int spin = lm_dp_main_spins(dp);
	while (!dp->quit && !stop_signal) {
		/* while requests are in the pipeline, poll the last edge;
		 * while a deployment crosses laminads, the port too */
		int polling = dp->inflight > 0 || lm_dp_net_active(dp), n;
		if (!polling) {
			n = epoll_wait(dp->epfd, ev, 64, 100);
		} else if (spin) {
			n = epoll_wait(dp->epfd, ev, 64, 0);
		} else if (!lm_dp_net_active(dp) && !dp->n_blocked) {
			/* asleep until an answer rings (or a request comes);
			 * an answer handed on before the flag was seen is
			 * found by this last look */
			__atomic_store_n(&dp->bell.sleeping, 1,
					 __ATOMIC_RELAXED);
			__atomic_thread_fence(__ATOMIC_SEQ_CST);
			n = lm_dp_egress_poll(dp) > 0
				    ? 0 : epoll_wait(dp->epfd, ev, 64, 100);
			__atomic_store_n(&dp->bell.sleeping, 0,
					 __ATOMIC_RELAXED);
		} else {
			long us = 10L << (empty < 7 ? empty : 7);
			struct timespec ts = { 0, (us > 1000 ? 1000 : us)
						      * 1000 };
			n = epoll_pwait2(dp->epfd, ev, 64, &ts, NULL);
		}
		for (int i = 0; i < n; i++) {
			uint32_t kind = (uint32_t)(ev[i].data.u64 >> 32);
			int slot = (int)(uint32_t)ev[i].data.u64;
			switch (kind) {
			case LM_DP_EV_CTL_LISTEN:
				lm_dp_control_accept(dp);
				break;
			case LM_DP_EV_ING_LISTEN:
				lm_dp_ingress_accept(dp);
				break;
			case LM_DP_EV_CTL:
				lm_dp_control_event(dp, slot, ev[i].events);
				break;
			case LM_DP_EV_ING:
				lm_dp_ingress_event(dp, slot, ev[i].events);
				break;
			case LM_DP_EV_BELL: {
				uint64_t rung;
				ssize_t r = read(dp->bell.fd, &rung,
						 sizeof(rung));
				(void)r;
				break;
			}
			}
		}
		int got = lm_dp_net_poll(dp);
		got += lm_dp_egress_poll(dp);
		lm_dp_ingress_retry(dp);
		if (dp->n_blocked)
			lm_dp_ingress_unblock(dp);
		if (n > 0) /* a control message may have changed the stages */
			spin = lm_dp_main_spins(dp);
		if (n > 0 || got > 0 || !polling)
			empty = 0;
		else if (empty < 7)
			empty++;
	}
	if (stop_signal)
		lm_dp_log("signal %d: shutting down", (int)stop_signal);
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

int main(int argc, char **argv)
{
	struct lm_dp dp;
	lm_error e = { "" };
	char state_dir[PATH_MAX], msg[PATH_MAX * 2 + 512];
	int notify_fd = -1, rc = 1, eal_argc = 0, eal_up = 0;
	char **eal_argv = NULL;
	FILE *log = NULL;

	memset(&dp, 0, sizeof(dp));
	dp.epfd = dp.ctl_fd = dp.ing_fd = dp.bell.fd = -1;
	if (parse(argc, argv, &dp.cfg))
		return 2;
	if (!dp.cfg.state_dir)
		dp.cfg.state_dir = default_state_dir(state_dir,
						     sizeof(state_dir));
	if (make_dirs(dp.cfg.state_dir) != 0) {
		fprintf(stderr, "laminad: cannot create the state folder %s: "
			"%s\n", dp.cfg.state_dir, strerror(errno));
		return 1;
	}
	snprintf(dp.state_file, sizeof(dp.state_file), "%s/laminad-%u.json",
		 dp.cfg.state_dir, dp.cfg.control_port);
	if (dp.cfg.log || !dp.cfg.foreground) {
		if (dp.cfg.log)
			snprintf(dp.log_path, sizeof(dp.log_path), "%s",
				 dp.cfg.log);
		else
			snprintf(dp.log_path, sizeof(dp.log_path),
				 "%s/laminad-%u.log", dp.cfg.state_dir,
				 dp.cfg.control_port);
		if (!(log = fopen(dp.log_path, "a"))) {
			fprintf(stderr, "laminad: cannot open the log %s: %s\n",
				dp.log_path, strerror(errno));
			return 1;
		}
		setvbuf(log, NULL, _IOLBF, 0);
	}
	if (access(dp.state_file, F_OK) == 0) {
		/* a live laminad on this port would also fail to bind; a
		 * dead one's file is replaced below */
		json_t *old = json_load_file(dp.state_file, 0, NULL);
		pid_t pid = (pid_t)json_integer_value(json_object_get(old,
								      "pid"));
		json_decref(old);
		if (pid > 0 && kill(pid, 0) == 0) {
			fprintf(stderr, "laminad: another laminad (pid %d) runs "
				"on control port %u (%s)\n", (int)pid,
				dp.cfg.control_port, dp.state_file);
			return 1;
		}
	}
	if (!dp.cfg.foreground && daemonize(&notify_fd) != 0) {
		fprintf(stderr, "laminad: cannot start in the background\n");
		return 1;
	}
	if (log) {
		rte_openlog_stream(log);
		if (!dp.cfg.foreground) {
			dup2(fileno(log), 1);
			dup2(fileno(log), 2);
		}
	}
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

	if (lm_dp_eal_args(&dp, &eal_argc, &eal_argv, &e))
		goto fail;
	{
		char line[2048];
		size_t off = 0;
		for (int i = 0; i < eal_argc && off < sizeof(line); i++)
			off += (size_t)snprintf(line + off, sizeof(line) - off,
						" %s", eal_argv[i]);
		lm_dp_log("starting: EAL%s", line);
	}
	/* where EAL makes its run folder, to remove it even if init fails */
	const char *xdg = getenv("XDG_RUNTIME_DIR");
	if (geteuid() == 0 || !xdg)
		snprintf(dp.run_dir, sizeof(dp.run_dir), "%s/%s",
			 geteuid() == 0 ? "/var/run/dpdk" : "/tmp/dpdk",
			 dp.file_prefix);
	else
		snprintf(dp.run_dir, sizeof(dp.run_dir), "%s/dpdk/%s", xdg,
			 dp.file_prefix);
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
	snprintf(dp.run_dir, sizeof(dp.run_dir), "%s",
		 rte_eal_get_runtime_dir());
	dp.tsc_hz = rte_get_tsc_hz();
	dp.cycles_per_us = (double)dp.tsc_hz / 1e6;
	dp.t_start = rte_rdtsc();
	if (lm_dp_ingress_init(&dp, &e))
		goto fail;
	if (dp.cfg.port_iface && lm_dp_net_open(&dp, &e))
		goto fail;
	if ((dp.ctl_fd = listen_on(dp.cfg.listen, dp.cfg.control_port, &e)) < 0 ||
	    (dp.ing_fd = listen_on(dp.cfg.listen, dp.cfg.ingress_port, &e)) < 0)
		goto fail;
	if ((dp.epfd = epoll_create1(EPOLL_CLOEXEC)) < 0 ||
	    (dp.bell.fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) < 0 ||
	    add_fd(&dp, dp.ctl_fd, LM_DP_EV_CTL_LISTEN) ||
	    add_fd(&dp, dp.ing_fd, LM_DP_EV_ING_LISTEN) ||
	    add_fd(&dp, dp.bell.fd, LM_DP_EV_BELL)) {
		lm_fail(&e, -errno, "epoll: %s", strerror(errno));
		goto fail;
	}
	if (write_state(&dp, &e))
		goto fail;
	struct sigaction sa = { .sa_handler = on_signal };
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	pthread_sigmask(SIG_UNBLOCK, &sigs, NULL);
	snprintf(msg, sizeof(msg), "ok laminad %s: pid %d, control %s:%u, "
		 "ingress %s:%u, %u worker cpu(s), %s, log %s\n", dp.name,
		 (int)getpid(), dp.cfg.listen, dp.cfg.control_port,
		 dp.cfg.listen, dp.cfg.ingress_port, dp.n_worker_cpus,
		 dp.hugepages ? "hugepages" : "no hugepages",
		 dp.log_path[0] ? dp.log_path : "stderr");
	lm_dp_log("%.*s", (int)strlen(msg + 3) - 1, msg + 3);
	notify(&notify_fd, msg);
	loop(&dp);
	rc = 0;
	goto out;
fail:
	lm_dp_log("cannot start: %s", e.msg);
	snprintf(msg, sizeof(msg), "laminad: %s\n", e.msg);
	if (dp.cfg.foreground && log)
		fputs(msg, stderr);
	notify(&notify_fd, msg);
out:
	for (int i = 0; i < LM_DP_MAX_DEPLOYMENTS; i++)
		lm_dp_deployment_free(&dp, dp.dep[i]);
	lm_dp_control_close_all(&dp);
	lm_dp_ingress_close_all(&dp);
	lm_dp_net_close(&dp);
	if (dp.bell.fd >= 0)
		close(dp.bell.fd);
	if (dp.ctl_fd >= 0)
		close(dp.ctl_fd);
	if (dp.ing_fd >= 0)
		close(dp.ing_fd);
	if (dp.epfd >= 0)
		close(dp.epfd);
	if (rc == 0)
		unlink(dp.state_file);
	if (eal_up)
		rte_eal_cleanup();
	lm_dp_eal_rundir_remove(&dp);
	lm_dp_hugepages_release(&dp);
	lm_dp_eal_args_free(eal_argc, eal_argv);
	if (rc == 0)
		lm_dp_log("exited cleanly");
	if (log) {
		rte_openlog_stream(NULL);
		fclose(log);
	}
	return rc;
}
