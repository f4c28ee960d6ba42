/*
 * cmd_deploy.c: `lamina deploy` and `lamina teardown`, their arguments
 * and messages; the procedures are in deploy.c.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "deploy.h"

static const char deploy_help[] =
	"usage: lamina deploy PLAN.json [options]\n"
	"\n"
	"Run a plan (written by `lamina plan`) on its devices: find the\n"
	"laminad of each device at its address (HOST[:PORT], control port\n"
	"7700 by default) or start one, load every stage on its worker cores,\n"
	"start serving, and print the deployment id for `lamina infer`,\n"
	"`lamina status` and `lamina teardown` (and, on stderr, where it\n"
	"serves: the Open Inference Protocol over HTTP, docs/serving.md).\n"
	"Requests of 1 to the plan's batch samples are gathered into the\n"
	"plan's batch (dynamic batching).  Every action is recorded in\n"
	"the state folder first; on failure everything done is undone.\n"
	"A device of another host with an \"ssh\" destination in\n"
	"devices.json gets its laminad started over ssh when none answers\n"
	"(and stopped by teardown); stages on different hosts pass tensors\n"
	"through their laminads' ports.  Each laminad is sent the slice\n"
	"files of its stages: no folder is shared (docs/operations.md).\n"
	"\n"
	"options:\n"
	"  -m, --model DIR            the slice folder (default: the one the\n"
	"                             plan names)\n"
	"  -n, --name NAME            the name clients use (HTTP's model name;\n"
	"                             default: the model file's stem, with -2,\n"
	"                             -3... when its laminad serves that name)\n"
	"      --max-queue-delay-us N the longest a batch waits for requests\n"
	"                             to fill it (default: the plan's period)\n"
	"      --max-queue N          requests waiting beyond which new ones\n"
	"                             are refused at once (HTTP 503; default\n"
	"                             32 per batch row, at least 256)\n"
	"  -s, --state-dir DIR        deployment records (default\n"
	"                             $LAMINA_STATE_DIR, $XDG_STATE_HOME/lamina\n"
	"                             or ~/.local/state/lamina)\n"
	"  -l, --laminad PATH         the laminad to start (default: beside\n"
	"                             lamina, or on PATH)\n"
	"  -p, --poll busy|adaptive   how a laminad we start polls (default: "
	"its\n"
	"                             choice for this host)\n"
	"  -H, --hugepages auto|no    whether a laminad we start may reserve\n"
	"                             hugepages (default auto)\n"
	"  -q, --quiet                no progress on stderr\n"
	"  -h, --help                 this text\n";

static const char teardown_help[] =
	"usage: lamina teardown ID [--drain-timeout S] [--state-dir DIR]\n"
	"\n"
	"Undo deployment ID: refuse new requests and answer those admitted\n"
	"(for at most --drain-timeout seconds, default 30; what is left is\n"
	"answered with an error), remove its stages from every laminad, stop a\n"
	"laminad it started (unless another deployment uses it), give back\n"
	"what a laminad that died had reserved (hugepages, DPDK files), and\n"
	"remove the record.  Running it again does nothing.\n"
	"\n"
	"options:\n"
	"  -d, --drain-timeout S the longest wait for admitted requests "
	"(0: none)\n"
	"  -s, --state-dir DIR   deployment records (see 'lamina deploy "
	"--help')\n"
	"  -q, --quiet           no progress on stderr\n"
	"  -h, --help            this text\n";

static volatile int stop_flag;

static void on_signal(int sig)
{
	(void)sig;
	stop_flag = 1;
}

/* The options of both commands (teardown has only state_dir and quiet). */
struct common {
	const char *state_dir, *model, *laminad, *poll, *hugepages, *name;
	long max_delay_us, max_queue;
	double drain_s;
	int quiet;
};

static void restore_signals(const struct sigaction old[3])
{
	sigaction(SIGINT, &old[0], NULL);
	sigaction(SIGTERM, &old[1], NULL);
	sigaction(SIGHUP, &old[2], NULL);
}

/* A deployment name: 1 to 31 letters, digits, '-', '_' or '.' (as
 * laminad takes it). */
static int name_ok(const char *s)
{
	size_t n = strlen(s);
	return n >= 1 && n < LM_REC_ID_MAX &&
	       strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
			 "0123456789-_.") == n;
}

/* A whole number in [lo, hi]; -1 when it is not one. */
static long number(const char *s, long lo, long hi)
{
	char *end;
	long v = strtol(s, &end, 10);
	return *s && !*end && v >= lo && v <= hi ? v : -1;
}

static int parse(const char *cmd, const char *help, int deploy, int argc,
		 char **argv, struct common *a, const char **arg)
{
	static const struct option deploy_opts[] = {
		{ "model", required_argument, 0, 'm' },
		{ "name", required_argument, 0, 'n' },
		{ "max-queue-delay-us", required_argument, 0, 'D' },
		{ "max-queue", required_argument, 0, 'Q' },
		{ "state-dir", required_argument, 0, 's' },
		{ "laminad", required_argument, 0, 'l' },
		{ "poll", required_argument, 0, 'p' },
		{ "hugepages", required_argument, 0, 'H' },
		{ "quiet", no_argument, 0, 'q' },
		{ "help", no_argument, 0, 'h' },
		{ 0, 0, 0, 0 },
	};
	static const struct option teardown_opts[] = {
		{ "drain-timeout", required_argument, 0, 'd' },
		{ "state-dir", required_argument, 0, 's' },
		{ "quiet", no_argument, 0, 'q' },
		{ "help", no_argument, 0, 'h' },
		{ 0, 0, 0, 0 },
	};
	int c;
	memset(a, 0, sizeof(*a));
	a->max_delay_us = -1;
	a->drain_s = LM_DRAIN_S;
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, deploy ? ":m:n:D:Q:s:l:p:H:qh"
						   : ":d:s:qh",
				deploy ? deploy_opts : teardown_opts, NULL)) !=
	       -1) {
		switch (c) {
		case 'm': a->model = optarg; break;
		case 'n':
			if (!name_ok(optarg))
				return cli_errorf(cmd, "--name '%s': 1 to 31 "
						  "letters, digits, '-', '_' "
						  "or '.'", optarg);
			a->name = optarg;
			break;
		case 'D':
			if ((a->max_delay_us = number(optarg, 0, 10000000)) < 0)
				return cli_errorf(cmd, "--max-queue-delay-us "
						  "must be 0 to 10000000, not "
						  "'%s'", optarg);
			break;
		case 'Q':
			if ((a->max_queue = number(optarg, 1, 1000000)) < 0)
				return cli_errorf(cmd, "--max-queue must be 1 "
						  "to 1000000, not '%s'",
						  optarg);
			break;
		case 'd': {
			char *end;
			a->drain_s = strtod(optarg, &end);
			if (!*optarg || *end || !(a->drain_s >= 0) ||
			    a->drain_s > 86400)
				return cli_errorf(cmd, "--drain-timeout must be "
						  "seconds, 0 to 86400, not "
						  "'%s'", optarg);
			break;
		}
		case 's': a->state_dir = optarg; break;
		case 'l': a->laminad = optarg; break;
		case 'p':
			if (strcmp(optarg, "busy") && strcmp(optarg, "adaptive"))
				return cli_errorf(cmd, "--poll must be busy or "
						  "adaptive, not '%s'", optarg);
			a->poll = optarg;
			break;
		case 'H':
			if (strcmp(optarg, "auto") && strcmp(optarg, "no"))
				return cli_errorf(cmd, "--hugepages must be "
						  "auto or no, not '%s'",
						  optarg);
			a->hugepages = optarg;
			break;
		case 'q': a->quiet = 1; break;
		case 'h':
			fputs(help, stdout);
			exit(0);
		default:
			return cli_bad_option(cmd, c, argv);
		}
	}
	if (optind != argc - 1)
		return cli_errorf(cmd, "expected one %s (see 'lamina %s "
				  "--help')", deploy ? "PLAN.json" : "ID", cmd);
	*arg = argv[optind];
	return 0;
}

int cmd_deploy(int argc, char **argv)
{
	struct common a;
	const char *plan;
	char state[PATH_MAX];
	lm_record *r = NULL;
	lm_error e;
	if (parse("deploy", deploy_help, 1, argc, argv, &a, &plan))
		return 1;
	if (lm_state_dir(a.state_dir, state, sizeof(state), &e))
		return cli_error("deploy", &e);
	/* ^C or a kill stops the deployment between steps and undoes it */
	struct sigaction sa = { .sa_handler = on_signal }, old[3];
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, &old[0]);
	sigaction(SIGTERM, &sa, &old[1]);
	sigaction(SIGHUP, &sa, &old[2]);
	lm_deploy_opts o = {
		.plan = plan, .model = a.model, .state_dir = state,
		.laminad = a.laminad, .poll = a.poll,
		.hugepages = a.hugepages, .progress = !a.quiet && isatty(2),
		.stop = &stop_flag, .name = a.name,
		.max_delay_us = a.max_delay_us, .max_queue = a.max_queue,
	};
	int rc = lm_deploy(&o, &r, &e);
	if (rc) {
		restore_signals(old);
		return cli_error("deploy", &e);
	}
	/* done: a signal from here on no longer undoes it, nor may it cut
	 * the id short (the handlers stay until it is out) */
	printf("%s\n", r->id);
	fflush(stdout);
	if (!a.quiet) {
		const lm_rec_laminad *in = &r->laminads[r->stages[0].laminad];
		char url[512];
		if (lm_record_http_url(r, url, sizeof(url)))
			fprintf(stderr, "lamina deploy: %s serves '%s' at %s "
				"(Open Inference Protocol), and at %s:%d "
				"(lm_client)\n", r->id, r->name, url, in->host,
				in->ingress_port);
		else
			fprintf(stderr, "lamina deploy: %s serves '%s' at "
				"%s:%d (lm_client; its laminad has no HTTP "
				"front)\n", r->id, r->name, in->host,
				in->ingress_port);
	}
	lm_record_free(r);
	restore_signals(old);
	return 0;
}

int cmd_teardown(int argc, char **argv)
{
	struct common a;
	const char *id;
	char state[PATH_MAX];
	lm_record *r = NULL;
	lm_error e;
	if (parse("teardown", teardown_help, 0, argc, argv, &a, &id))
		return 1;
	if (lm_state_dir(a.state_dir, state, sizeof(state), &e))
		return cli_error("teardown", &e);
	int rc = lm_record_load(state, id, &r, &e);
	if (rc == -ENOENT) {
		if (!a.quiet)
			fprintf(stderr, "lamina teardown: %s: nothing to do "
				"(no such deployment in %s)\n", id, state);
		return 0;
	}
	if (rc)
		return cli_error("teardown", &e);
	rc = lm_teardown(r, state, !a.quiet && isatty(2), a.drain_s, &e);
	if (rc) {
		lm_fail_prefix(&e, rc, "%s", id);
		cli_error("teardown", &e);
	} else if (!a.quiet) {
		fprintf(stderr, "lamina teardown: %s removed\n", id);
	}
	lm_record_free(r);
	return rc ? 1 : 0;
}
