/*
 * remote.c: laminads on other hosts over OpenSSH (see remote.h).
 */
#include "remote.h"

#include "dnssd.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_ARGS 64

/* "[user@]host[:port]" into "[user@]host" and "port" ("" when none); an
 * IPv6 host is bracketed when a port follows ("[::1]:22"). */
static int split_dest(const char *dest, char *host, size_t hlen, char *port,
		      size_t plen)
{
	const char *at = strrchr(dest, '@');
	const char *rest = at ? at + 1 : dest, *end = NULL;
	size_t user = at ? (size_t)(at + 1 - dest) : 0;
	port[0] = '\0';
	if (*rest == '[') { /* [addr] or [addr]:port */
		const char *close = strchr(rest, ']');
		if (!close)
			return -EINVAL;
		if (close[1] == ':')
			snprintf(port, plen, "%s", close + 2);
		else if (close[1])
			return -EINVAL;
		snprintf(host, hlen, "%.*s%.*s", (int)user, dest,
			 (int)(close - rest - 1), rest + 1);
	} else {
		const char *colon = strchr(rest, ':');
		if (colon && !strchr(colon + 1, ':')) { /* host:port */
			snprintf(port, plen, "%s", colon + 1);
			end = colon;
		}
		snprintf(host, hlen, "%.*s", (int)(end ? end - dest
						       : (long)strlen(dest)),
			 dest);
	}
	if (port[0] && strspn(port, "0123456789") != strlen(port))
		return -EINVAL;
	return host[0] && host[0] != '-' && rest[0] ? 0 : -EINVAL;
}

/* One argument for the remote shell, single-quoted. */
static int quote(char *out, size_t len, const char *arg)
{
	size_t o = 0;
	if (o + 1 >= len)
		return -ENAMETOOLONG;
	out[o++] = '\'';
	for (const char *p = arg; *p; p++) {
		const char *piece = *p == '\'' ? "'\\''" : NULL;
		size_t n = piece ? strlen(piece) : 1;
		if (o + n + 2 >= len)
			return -ENAMETOOLONG;
		if (piece)
			memcpy(out + o, piece, n);
		else
			out[o] = *p;
		o += n;
	}
	out[o++] = '\'';
	out[o] = '\0';
	return 0;
}

/* lm_remote_run, with input (n bytes, or NULL: /dev/null) on the remote
 * command's stdin: a pipe to ssh, which forwards it and then its end. */
static int run(const char *dest, const char *const *argv, const char *input,
	       size_t n_input, char *out, size_t len, int timeout_s,
	       lm_error *e)
{
	char host[256], port[16], cmd[8192] = "", word[1024];
	char ssh_cmd[512];
	const char *av[MAX_ARGS];
	int n = 0, pipefd[2], infd[2] = { -1, -1 };
	out[0] = '\0';
	if (split_dest(dest, host, sizeof(host), port, sizeof(port)))
		return lm_fail(e, -EINVAL, "'%s' is not an ssh destination "
			       "([user@]host[:port])", dest);
	for (int i = 0; argv[i]; i++) {
		if (quote(word, sizeof(word), argv[i]) ||
		    strlen(cmd) + strlen(word) + 2 >= sizeof(cmd))
			return lm_fail(e, -E2BIG, "remote command too long");
		strcat(cmd, i ? " " : "");
		strcat(cmd, word);
	}
	const char *env = getenv("LAMINA_SSH");
	snprintf(ssh_cmd, sizeof(ssh_cmd), "%s", env && *env ? env : "ssh");
	for (char *save = NULL, *t = strtok_r(ssh_cmd, " ", &save);
	     t && n < MAX_ARGS - 12; t = strtok_r(NULL, " ", &save))
		av[n++] = t;
	av[n++] = "-o";
	av[n++] = "BatchMode=yes";
	av[n++] = "-o";
	av[n++] = "ConnectTimeout=10";
	if (port[0]) {
		av[n++] = "-p";
		av[n++] = port;
	}
	av[n++] = "--";
	av[n++] = host;
	av[n++] = cmd;
	av[n] = NULL;
	/* the input fits in a pipe's buffer (remote.h): written before ssh
	 * reads it, never blocking */
	if (input && n_input > 4096)
		return lm_fail(e, -E2BIG, "input to a remote command too long");
	if (pipe2(pipefd, O_CLOEXEC) != 0)
		return lm_fail(e, -errno, "pipe: %s", strerror(errno));
	if (input && pipe2(infd, O_CLOEXEC) != 0) {
		int err = errno;
		close(pipefd[0]);
		close(pipefd[1]);
		return lm_fail(e, -err, "pipe: %s", strerror(err));
	}
	pid_t pid = fork();
	if (pid == 0) {
		int in = input ? infd[0] : open("/dev/null", O_RDONLY);
		if (in < 0 || dup2(in, 0) < 0 || dup2(pipefd[1], 1) < 0 ||
		    dup2(pipefd[1], 2) < 0)
			_exit(126);
		execvp(av[0], (char *const *)av);
		dprintf(2, "cannot run %s: %s\n", av[0], strerror(errno));
		_exit(126);
	}
	close(pipefd[1]);
	if (input) {
		close(infd[0]);
		/* the read end is ssh's only now: if ssh is gone already the
		 * write fails with EPIPE, and its SIGPIPE, blocked, is taken
		 * back rather than ending lamina */
		sigset_t pipe_set, old;
		sigemptyset(&pipe_set);
		sigaddset(&pipe_set, SIGPIPE);
		pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
		if (pid > 0 && write(infd[1], input, n_input) != (ssize_t)n_input)
			n_input = 0; /* ssh failed: its output says why */
		close(infd[1]);
		struct timespec zero = { 0, 0 };
		while (sigtimedwait(&pipe_set, NULL, &zero) > 0)
			; /* a SIGPIPE of that write, taken back */
		pthread_sigmask(SIG_SETMASK, &old, NULL);
	}
	if (pid < 0) {
		close(pipefd[0]);
		return lm_fail(e, -errno, "fork: %s", strerror(errno));
	}
	size_t have = 0;
	struct timespec t0, now;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		clock_gettime(CLOCK_MONOTONIC, &now);
		long left = timeout_s * 1000L -
			    ((now.tv_sec - t0.tv_sec) * 1000L +
			     (now.tv_nsec - t0.tv_nsec) / 1000000L);
		struct pollfd p = { pipefd[0], POLLIN, 0 };
		if (left <= 0 || poll(&p, 1, (int)left) == 0) {
			kill(pid, SIGKILL);
			waitpid(pid, NULL, 0);
			close(pipefd[0]);
			return lm_fail(e, -ETIMEDOUT, "ssh %s: no end after %d "
				       "s", dest, timeout_s);
		}
		char buf[1024];
		ssize_t r = read(pipefd[0], buf, sizeof(buf));
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		size_t take = (size_t)r < len - 1 - have ? (size_t)r
							  : len - 1 - have;
		memcpy(out + have, buf, take);
		have += take;
	}
	out[have] = '\0';
	close(pipefd[0]);
	int status;
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	return WIFEXITED(status) ? WEXITSTATUS(status) : 255;
}

int lm_remote_run(const char *dest, const char *const *argv, char *out,
		  size_t len, int timeout_s, lm_error *e)
{
	return run(dest, argv, NULL, 0, out, len, timeout_s, e);
}

/* The last non-empty line of text, for a one-line message. */
static const char *last_line(char *text)
{
	size_t n = strlen(text);
	while (n && (text[n - 1] == '\n' || text[n - 1] == '\r'))
		text[--n] = '\0';
	char *nl = strrchr(text, '\n');
	return nl ? nl + 1 : text;
}

/* What exit status 127 (no such command) or 255 (ssh's own failure) of
 * `exe` on dest means, in one line. */
static int ssh_failed(const char *dest, const char *exe, int rc,
		      const char *why, lm_error *e)
{
	if (rc == 127)
		return lm_fail(e, -ENOENT, "%s has no %s: install lamina there "
			       "(tools/package makes lamina_VERSION_amd64.deb; "
			       "then apt install ./lamina_VERSION_amd64.deb)",
			       dest, exe);
	return lm_fail(e, -EHOSTUNREACH, "cannot reach %s over ssh: %.300s",
		       dest, why);
}

int lm_remote_describe(const char *dest, const char *exe,
		       struct lm_dnssd_txt *t, lm_error *e)
{
	char out[2048];
	uint8_t raw[LM_DNSSD_TXT_MAX];
	size_t n = 0;
	const char *av[] = { exe && *exe ? exe : "laminad", "--describe-host",
			     NULL };
	int rc = lm_remote_run(dest, av, out, sizeof(out), LM_REMOTE_TIMEOUT_S,
			       e);
	if (rc < 0)
		return rc;
	if (rc == 127 || rc == 255)
		return ssh_failed(dest, av[0], rc, last_line(out), e);
	if (rc != 0)
		return lm_fail(e, -EIO, "%s on %s: %.300s", av[0], dest,
			       last_line(out));
	/* one TXT string a line, back into rdata for the one decoder */
	for (char *line = strtok(out, "\n"); line; line = strtok(NULL, "\n")) {
		size_t k = strlen(line);
		if (k > 255 || n + 1 + k > sizeof(raw))
			return lm_fail(e, -EINVAL, "%s on %s: not a TXT "
				       "record (a line of %zu bytes)", av[0],
				       dest, k);
		raw[n++] = (uint8_t)k;
		memcpy(raw + n, line, k);
		n += k;
	}
	rc = lm_dnssd_txt_decode(raw, n, t, e);
	if (!rc && !t->cores)
		rc = lm_fail(e, -EINVAL, "no cores");
	return rc ? lm_fail_prefix(e, -EINVAL, "%s --describe-host on %s",
				   av[0], dest)
		  : 0;
}

int lm_remote_start(const lm_remote_start_opts *o, int *pid, lm_error *e)
{
	char cport[16], iport[16], out[4096], key[LM_FLEET_KEY_LINE];
	const char *av[24];
	int n = 0;
	snprintf(cport, sizeof(cport), "%d", o->control_port);
	snprintf(iport, sizeof(iport), "%d", o->ingress_port);
	av[n++] = o->exe && *o->exe ? o->exe : "laminad";
	av[n++] = "--listen";
	av[n++] = o->listen;
	av[n++] = "--control-port";
	av[n++] = cport;
	av[n++] = "--ingress-port";
	av[n++] = iport;
	av[n++] = "--name";
	av[n++] = o->name;
	av[n++] = "--managed";
	if (o->port_if) {
		av[n++] = "--port";
		av[n++] = o->port_if;
	}
	if (o->poll) {
		av[n++] = "--poll";
		av[n++] = o->poll;
	}
	if (o->hugepages) {
		av[n++] = "--hugepages";
		av[n++] = o->hugepages;
	}
	if (o->key) { /* on its stdin, through ssh: see remote.h */
		av[n++] = "--fleet-key";
		av[n++] = "-";
		lm_fleet_key_hex(o->key, key);
	}
	av[n] = NULL;
	int rc = run(o->dest, av, o->key ? key : NULL, o->key ? strlen(key) : 0,
		     out, sizeof(out), LM_REMOTE_TIMEOUT_S, e);
	explicit_bzero(key, sizeof(key));
	if (rc < 0)
		return rc;
	const char *why = last_line(out);
	if (rc == 127 || rc == 255)
		return ssh_failed(o->dest, av[0], rc, why, e);
	const char *p = strstr(out, "pid ");
	if (rc != 0 || strncmp(out, "laminad ", 8) || !p)
		return lm_fail(e, -EIO, "laminad on %s did not start: %.300s",
			       o->dest, why);
	*pid = atoi(p + 4);
	return 0;
}

int lm_remote_route_dev(const char *dest, const char *to, char *dev,
			size_t len, lm_error *e)
{
	const char *av[] = { "ip", "-o", "route", "get", to, NULL };
	char out[2048];
	int rc = lm_remote_run(dest, av, out, sizeof(out), LM_REMOTE_TIMEOUT_S,
			       e);
	if (rc < 0)
		return rc;
	if (rc == 255)
		return lm_fail(e, -EHOSTUNREACH, "cannot reach %s over ssh: "
			       "%.300s", dest, last_line(out));
	char *d = strstr(out, " dev ");
	if (rc != 0 || !d)
		return lm_fail(e, -ENOENT, "%s has no route to %s: %.200s",
			       dest, to, last_line(out));
	d += 5;
	size_t n = strcspn(d, " \n");
	if (n == 0 || n >= len)
		return lm_fail(e, -ENOENT, "%s: no interface in '%.200s'", dest,
			       out);
	memcpy(dev, d, n);
	dev[n] = '\0';
	return 0;
}

int lm_remote_cleanup(const char *dest, const char *exe, int port,
		      int kill_pid, lm_error *e)
{
	char cport[16], spid[16], out[4096];
	snprintf(cport, sizeof(cport), "%d", port);
	snprintf(spid, sizeof(spid), "%d", kill_pid);
	int rc;
	if (kill_pid > 0) {
		const char *kv[] = { "kill", "-KILL", spid, NULL };
		lm_remote_run(dest, kv, out, sizeof(out), LM_REMOTE_TIMEOUT_S,
			      e);
	}
	const char *av[] = { exe && *exe ? exe : "laminad", "--cleanup-port",
			     cport, NULL };
	rc = lm_remote_run(dest, av, out, sizeof(out), LM_REMOTE_TIMEOUT_S, e);
	if (rc < 0)
		return rc;
	if (rc != 0)
		return lm_fail(e, rc == 255 ? -EHOSTUNREACH : -EIO,
			       "cleaning up after laminad %s:%d: %.300s", dest,
			       port, last_line(out));
	return 0;
}
