/*
 * main.c: the lamina command line, the control plane.  Each subcommand
 * lives in its own cmd_*.c file; this file only dispatches.
 */
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"

static const struct command {
	const char *name;
	int (*run)(int argc, char **argv);
	const char *summary;
} commands[] = {
	{ "slice", cmd_slice, "cut an ONNX model into per-layer ONNX models" },
	{ "inspect", cmd_inspect,
	  "show the layers of a model or a slice folder" },
	{ "run", cmd_run, "run a model on the CPU runtime in this process" },
	{ "plan", cmd_plan,
	  "place the slices on devices for latency or throughput" },
	{ "bench", cmd_bench,
	  "time every slice on this host and write profile.json" },
	{ "devices", cmd_devices,
	  "the laminads on the link and the devices added by hand" },
	{ "deploy", cmd_deploy,
	  "run a plan on laminad workers; prints a deployment id" },
	{ "infer", cmd_infer, "send inputs to a deployment, save its outputs" },
	{ "status", cmd_status,
	  "a deployment's stages, throughput, queues and latency" },
	{ "teardown", cmd_teardown,
	  "undo a deployment and stop what it started" },
	{ "fleet", cmd_fleet,
	  "the fleet key: 'lamina fleet key' prints its fingerprint" },
};

static void usage(FILE *f)
{
	fprintf(f, "usage: lamina COMMAND [OPTIONS] ...\n\n"
		   "lamina slices a trained network into layers, places them "
		   "on devices and\nserves it through a pipeline of "
		   "dataplane workers.\n\ncommands:\n");
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		fprintf(f, "  %-10s %s\n", commands[i].name,
			commands[i].summary);
	fprintf(f, "\n'lamina COMMAND --help' describes a command.\n");
}

int cli_error(const char *cmd, const lm_error *e)
{
	fprintf(stderr, "lamina %s: %s\n", cmd, e->msg);
	return 1;
}

int cli_errorf(const char *cmd, const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "lamina %s: ", cmd);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return 1;
}

int cli_bad_option(const char *cmd, int c, char **argv)
{
	if (c == ':')
		return cli_errorf(cmd, "%s needs a value", argv[optind - 1]);
	return cli_errorf(cmd, "unknown option '%s' (see 'lamina %s --help')",
			  argv[optind - 1], cmd);
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") ||
	    !strcmp(argv[1], "help")) {
		usage(stdout);
		return 0;
	}
	if (!strcmp(argv[1], "--version")) {
		printf("lamina %s\n", LAMINA_VERSION);
		return 0;
	}
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (!strcmp(argv[1], commands[i].name))
			return commands[i].run(argc - 1, argv + 1);
	fprintf(stderr, "lamina: unknown command '%s'\n\n", argv[1]);
	usage(stderr);
	return 2;
}
