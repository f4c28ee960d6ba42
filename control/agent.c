/*
 * agent.c: starting laminad, one request on its control port, and the
 * clean-up after one that died (see agent.h).
 *
 * A laminad that exits cleanly gives back what it reserved and removes its
 * state file itself; for one that could not, lamina kills the process and
 * asks `laminad --cleanup`, which knows what its state file means and
 * acts only when no laminad of that file runs.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <ifaddrs.h>
#include <netdb.h>
#include <netinet/in.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <mntent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "agent.h"
#include "cli.h"

static void sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
	nanosleep(&ts, NULL);
}

static int executable(const char *path)
{
	struct stat sb;
	return !stat(path, &sb) && S_ISREG(sb.st_mode) && !access(path, X_OK);
}

int lm_agent_find(const char *given, char *out, size_t len, lm_error *e)
{
	char self[PATH_MAX], cand[PATH_MAX + 32];
	if (given) {
		if (!executable(given))
			return lm_fail(e, -ENOENT, "--laminad %s: not an "
				       "executable file", given);
		snprintf(out, len, "%s", given);
		return 0;
	}
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n > 0) {
		self[n] = '\0';
		char *slash = strrchr(self, '/');
		if (slash)
			*slash = '\0';
		/* installed side by side, then the build tree's layout */
		static const char *const rel[] = { "laminad",
						   "../dataplane/laminad" };
		for (size_t i = 0; i < sizeof(rel) / sizeof(rel[0]); i++) {
			snprintf(cand, sizeof(cand), "%s/%s", self, rel[i]);
			if (executable(cand) && realpath(cand, self)) {
				snprintf(out, len, "%s", self);
				return 0;
			}
		}
	}
	const char *path = getenv("PATH");
	while (path && *path) {
		const char *end = strchrnul(path, ':');
		snprintf(cand, sizeof(cand), "%.*s/laminad", (int)(end - path),
			 path);
		if (end > path && executable(cand)) {
			snprintf(out, len, "%s", cand);
			return 0;
		}
		path = *end ? end + 1 : end;
	}
	return lm_fail(e, -ENOENT, "laminad not found beside lamina, in "
		       "../dataplane/ of the build or on PATH (build it, or "
		       "give --laminad PATH)");
}

int lm_agent_spawn(const lm_agent_spawn_opts *o, int *pid, lm_error *e)
{
	char cport[16], iport[16];
	const char *argv[24];
	int n = 0;
	snprintf(cport, sizeof(cport), "%d", o->control_port);
	snprintf(iport, sizeof(iport), "%d", o->ingress_port);
	argv[n++] = o->exe;
	argv[n++] = "--control-port";
	argv[n++] = cport;
	argv[n++] = "--ingress-port";
	argv[n++] = iport;
	argv[n++] = "--listen";
	argv[n++] = o->listen;
	argv[n++] = "--name";
	argv[n++] = o->name;
	argv[n++] = "--state-dir";
	argv[n++] = o->state_dir;
	/* we detach it ourselves, and its stderr is the log; lamina stops
	 * it when no deployment uses it */
	argv[n++] = "--foreground";
	argv[n++] = "--managed";
	if (o->poll) {
		argv[n++] = "--poll";
		argv[n++] = o->poll;
	}
	if (o->hugepages) {
		argv[n++] = "--hugepages";
		argv[n++] = o->hugepages;
	}
	if (o->fleet_key) {
		argv[n++] = "--fleet-key";
		argv[n++] = o->fleet_key;
	}
	argv[n] = NULL;
	int log = open(o->log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	if (log < 0)
		return lm_fail(e, -errno, "%s: %s", o->log, strerror(errno));
	int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (null < 0) {
		close(log);
		return lm_fail(e, -errno, "/dev/null: %s", strerror(errno));
	}
	pid_t p = fork();
	if (p == 0) {
		/* its own session: a terminal's ^C to lamina is not for it */
		setsid();
		sigset_t none;
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		signal(SIGINT, SIG_DFL);
		signal(SIGTERM, SIG_DFL);
		if (dup2(null, 0) < 0 || dup2(log, 1) < 0 || dup2(log, 2) < 0)
			_exit(127);
		execv(o->exe, (char *const *)argv);
		dprintf(2, "lamina: cannot run %s: %s\n", o->exe,
			strerror(errno));
		_exit(127);
	}
	int err = errno;
	close(log);
	close(null);
	if (p < 0)
		return lm_fail(e, -err, "cannot start laminad: %s",
			       strerror(err));
	*pid = (int)p;
	return 0;
}

/* The last non-empty line of a log, for an error message. */
static void last_line(const char *path, char *out, size_t len)
{
	char buf[4096];
	out[0] = '\0';
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	off_t size = lseek(fd, 0, SEEK_END);
	off_t from = size > (off_t)sizeof(buf) - 1
			     ? size - (off_t)sizeof(buf) + 1 : 0;
	ssize_t n = pread(fd, buf, sizeof(buf) - 1, from);
	close(fd);
	if (n <= 0)
		return;
	buf[n] = '\0';
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
		buf[--n] = '\0';
	const char *line = strrchr(buf, '\n') ? strrchr(buf, '\n') + 1 : buf;
	size_t m = strlen(line) < len ? strlen(line) : len - 1;
	memcpy(out, line, m);
	out[m] = '\0';
}

int lm_agent_wait_up(int pid, const char *state_file, const char *host,
		     int port, double timeout_s, const char *log,
		     volatile int *stop, lm_laminad_state *st, lm_error *e)
{
	double end = cli_now() + timeout_s;
	lm_error ignore;
	for (;;) {
		int status;
		if (waitpid(pid, &status, WNOHANG) == pid) {
			char line[300];
			last_line(log, line, sizeof(line));
			return lm_fail(e, -ECHILD, "laminad exited (%s %d) "
				       "before it answered%s%s",
				       WIFEXITED(status) ? "status" : "signal",
				       WIFEXITED(status) ? WEXITSTATUS(status)
							 : WTERMSIG(status),
				       line[0] ? ": " : "", line);
		}
		if (!lm_state_load(state_file, st, &ignore) &&
		    st->pid == pid && st->up) {
			lm_ctl *c = NULL;
			if (!lm_agent_connect(host, port, 1000, &c, &ignore)) {
				lm_ctl_free(c);
				return 0;
			}
		}
		if (stop && *stop)
			return lm_fail(e, -EINTR, "interrupted");
		if (cli_now() > end) {
			char line[300];
			last_line(log, line, sizeof(line));
			return lm_fail(e, -ETIMEDOUT, "laminad (pid %d) did not "
				       "answer on %s:%d within %.0f s%s%s", pid,
				       host, port, timeout_s,
				       line[0] ? "; its log ends: " : "", line);
		}
		sleep_ms(50);
	}
}

int lm_agent_fleet_key(lm_fleet_key *key, char *path, size_t len,
		       lm_error *e)
{
	char mine[PATH_MAX];
	int rc = lm_fleet_key_path(mine, sizeof(mine), e);
	if (rc || (rc = lm_fleet_key_ensure(mine, key, NULL, e)))
		return rc;
	if (path && (size_t)snprintf(path, len, "%s", mine) >= len)
		return lm_fail(e, -ENAMETOOLONG, "%s: path too long", mine);
	return 0;
}

int lm_agent_connect(const char *host, int port, int timeout_ms, lm_ctl **c,
		     lm_error *e)
{
	lm_fleet_key key;
	int rc = lm_agent_fleet_key(&key, NULL, 0, e);
	if (!rc)
		rc = lm_ctl_connect(host, (uint16_t)port, timeout_ms, &key, c,
				    e);
	lm_fleet_key_wipe(&key);
	return rc;
}

int lm_agent_trusted(const char *host, int port, lm_error *e)
{
	lm_ctl *c = NULL;
	int rc = lm_agent_connect(host, port, LM_AGENT_QUICK_MS, &c, e);
	if (!rc && !lm_ctl_trusted(c))
		rc = lm_fail(e, -EACCES, "laminad at %s:%d has no fleet key, "
			     "so it takes no stages: restart it with "
			     "--fleet-key \"$(lamina fleet key --path)\"", host,
			     port);
	lm_ctl_free(c);
	return rc;
}

int lm_agent_call(const char *host, int port, int timeout_ms,
		  Lamina__Request *req, Lamina__Reply **reply, lm_error *e)
{
	lm_ctl *c = NULL;
	*reply = NULL;
	int rc = lm_agent_connect(host, port, timeout_ms, &c, e);
	if (rc)
		return rc;
	rc = lm_ctl_call(c, req, reply, e);
	lm_ctl_free(c);
	return rc;
}

int lm_agent_describe(const char *host, int port, int timeout_ms,
		      Lamina__Reply **reply, lm_error *e)
{
	Lamina__Request req = LAMINA__REQUEST__INIT;
	Lamina__DescribeRequest d = LAMINA__DESCRIBE_REQUEST__INIT;
	req.body_case = LAMINA__REQUEST__BODY_DESCRIBE;
	req.describe = &d;
	int rc = lm_agent_call(host, port, timeout_ms, &req, reply, e);
	if (!rc && (*reply)->body_case != LAMINA__REPLY__BODY_DESCRIBE) {
		lamina__reply__free_unpacked(*reply, NULL);
		*reply = NULL;
		rc = lm_fail(e, -EPROTO, "%s:%d answered describe with "
			     "something else", host, port);
	}
	return rc;
}

int lm_agent_simple(const char *host, int port, int body,
		    const char *deployment, lm_error *e)
{
	Lamina__Request req = LAMINA__REQUEST__INIT;
	Lamina__StartRequest start = LAMINA__START_REQUEST__INIT;
	Lamina__StopRequest stop = LAMINA__STOP_REQUEST__INIT;
	Lamina__TeardownRequest down = LAMINA__TEARDOWN_REQUEST__INIT;
	Lamina__ShutdownRequest shut = LAMINA__SHUTDOWN_REQUEST__INIT;
	Lamina__Reply *reply = NULL;
	char *dep = (char *)deployment;
	req.body_case = (Lamina__Request__BodyCase)body;
	switch (body) {
	case LAMINA__REQUEST__BODY_START:
		start.deployment = dep;
		req.start = &start;
		break;
	case LAMINA__REQUEST__BODY_STOP:
		stop.deployment = dep;
		req.stop = &stop;
		break;
	case LAMINA__REQUEST__BODY_TEARDOWN:
		down.deployment = dep;
		req.teardown = &down;
		break;
	case LAMINA__REQUEST__BODY_SHUTDOWN:
		req.shutdown = &shut;
		break;
	default:
		return lm_fail(e, -EINVAL, "not a simple request");
	}
	/* shutdown answers at once; a teardown may wait for busy workers */
	int rc = lm_agent_call(host, port,
			       body == LAMINA__REQUEST__BODY_SHUTDOWN
				       ? LM_AGENT_QUICK_MS : LM_AGENT_STEP_MS,
			       &req, &reply, e);
	if (reply)
		lamina__reply__free_unpacked(reply, NULL);
	return rc;
}

/* Read a small /proc file into buf (NUL-terminated); bytes read or -1. */
static ssize_t read_small(const char *path, char *buf, size_t len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	ssize_t n = read(fd, buf, len - 1);
	close(fd);
	if (n < 0)
		return -1;
	buf[n] = '\0';
	return n;
}

int lm_agent_alive(int pid)
{
	char path[64], buf[512];
	if (pid <= 0)
		return 0;
	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	if (read_small(path, buf, sizeof(buf)) <= 0)
		return 0;
	const char *paren = strrchr(buf, ')');
	if (!paren || paren[1] != ' ' || paren[2] == 'Z' || paren[2] == 'X')
		return 0;
	/* the pid may have been reused: it must still be a laminad */
	snprintf(path, sizeof(path), "/proc/%d/comm", pid);
	if (read_small(path, buf, sizeof(buf)) > 0 &&
	    !strncmp(buf, "laminad", 7))
		return 1;
	snprintf(path, sizeof(path), "/proc/%d/cmdline", pid);
	if (read_small(path, buf, sizeof(buf)) <= 0)
		return 0;
	const char *base = strrchr(buf, '/');
	return !strcmp(base ? base + 1 : buf, "laminad");
}

int lm_agent_wait_exit(int pid, double timeout_s)
{
	double end = cli_now() + timeout_s;
	for (;;) {
		waitpid(pid, NULL, WNOHANG); /* reap it if it is our child */
		if (!lm_agent_alive(pid))
			return 0;
		if (cli_now() > end)
			return -ETIMEDOUT;
		sleep_ms(20);
	}
}

int lm_agent_is_local(const char *host)
{
	struct in_addr v4;
	struct in6_addr v6;
	if (inet_pton(AF_INET, host, &v4) == 1 &&
	    (ntohl(v4.s_addr) >> 24) == 127)
		return 1;
	if (inet_pton(AF_INET6, host, &v6) == 1 && IN6_IS_ADDR_LOOPBACK(&v6))
		return 1;
	struct ifaddrs *ifs, *i;
	int found = 0;
	if (getifaddrs(&ifs))
		return 0;
	for (i = ifs; i && !found; i = i->ifa_next) {
		char buf[LM_ADDR_MAX];
		if (!i->ifa_addr || (i->ifa_addr->sa_family != AF_INET &&
				     i->ifa_addr->sa_family != AF_INET6))
			continue;
		socklen_t sl = i->ifa_addr->sa_family == AF_INET
				       ? sizeof(struct sockaddr_in)
				       : sizeof(struct sockaddr_in6);
		if (!getnameinfo(i->ifa_addr, sl, buf, sizeof(buf), NULL, 0,
				 NI_NUMERICHOST))
			found = !strcmp(buf, host);
	}
	freeifaddrs(ifs);
	return found;
}

int lm_agent_up(const lm_rec_laminad *ld)
{
	Lamina__Reply *rep = NULL;
	lm_error ignore;
	if (lm_agent_is_local(ld->host) && ld->pid)
		return lm_agent_alive(ld->pid);
	if (lm_agent_describe(ld->host, ld->control_port, 1000, &rep, &ignore))
		return 0;
	lamina__reply__free_unpacked(rep, NULL);
	return 1;
}

int lm_agent_cleanup(const char *state_dir, int port, int pid,
		     const char *exe, lm_error *e)
{
	char state_file[PATH_MAX], laminad[PATH_MAX];
	int rc;
	if (lm_agent_alive(pid)) {
		kill(pid, SIGTERM);
		if (lm_agent_wait_exit(pid, 5)) {
			kill(pid, SIGKILL);
			if (lm_agent_wait_exit(pid, 5))
				return lm_fail(e, -EBUSY, "laminad pid %d does "
					       "not stop, even on SIGKILL",
					       pid);
		}
	}
	if (lm_state_path(state_dir, port, state_file, sizeof(state_file)) ||
	    lm_state_log_path(state_dir, port, laminad, sizeof(laminad)))
		return lm_fail(e, -ENAMETOOLONG, "%s: path too long",
			       state_dir);
	/* its output, which lamina sent there when it started it */
	unlink(laminad);
	if (access(state_file, F_OK) != 0)
		return 0; /* it exited cleanly: nothing was left */
	if ((rc = lm_agent_find(exe, laminad, sizeof(laminad), e)))
		return lm_fail_prefix(e, rc, "cannot clean up after laminad "
				      "pid %d (%s)", pid, state_file);
	pid_t p = fork();
	if (p == 0) {
		int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
		if (null >= 0)
			dup2(null, 0);
		execl(laminad, laminad, "--cleanup", state_file, (char *)NULL);
		_exit(127);
	}
	if (p < 0)
		return lm_fail(e, -errno, "cannot run %s: %s", laminad,
			       strerror(errno));
	int status;
	while (waitpid(p, &status, 0) < 0)
		if (errno != EINTR)
			return lm_fail(e, -errno, "waitpid: %s",
				       strerror(errno));
	if (!WIFEXITED(status) || WEXITSTATUS(status))
		return lm_fail(e, -EIO, "laminad --cleanup %s failed (status "
			       "%d)", state_file,
			       WIFEXITED(status) ? WEXITSTATUS(status) : -1);
	return 0;
}
