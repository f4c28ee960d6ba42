/*
 * cli.h: what the lamina subcommands share: their entry points and small
 * helpers for printing sizes and reporting errors the same way.
 */
#ifndef LAMINA_CLI_H
#define LAMINA_CLI_H

#include <stddef.h>

#include "lamina/common.h"

/* Each subcommand takes its own argv (argv[0] is the subcommand's name)
 * and returns the process exit code. */
int cmd_slice(int argc, char **argv);
int cmd_inspect(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_plan(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_devices(int argc, char **argv);
int cmd_deploy(int argc, char **argv);
int cmd_infer(int argc, char **argv);
int cmd_status(int argc, char **argv);
int cmd_teardown(int argc, char **argv);
int cmd_fleet(int argc, char **argv);

/** Print "lamina CMD: message" on stderr; returns 1 (the exit code). */
int cli_error(const char *cmd, const lm_error *e);

/** Print "lamina CMD: formatted" on stderr; returns 1. */
int cli_errorf(const char *cmd, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/**
 * The error for what getopt_long returned as c when it is ':' (a missing
 * value) or an unknown option: printed as "lamina CMD: ...".  Returns 1.
 */
int cli_bad_option(const char *cmd, int c, char **argv);

/* ---- tensors on the command line (tensor_args.c) ---- */

/** A --input or --output argument: [NAME=]FILE.npy. */
typedef struct cli_named_file {
	const char *name; /**< owned; NULL: the model's only input (output) */
	const char *path; /**< points into argv */
} cli_named_file;

/**
 * Append "[NAME=]PATH" (the value of option opt) to list, which holds *n
 * of at most max.  Returns 0, or 1 after printing "lamina CMD: ...".
 */
int cli_add_named(const char *cmd, const char *opt, const char *arg,
		  cli_named_file *list, int *n, int max);

/** Free the names of n parsed arguments. */
void cli_named_free(cli_named_file *f, int n);

/**
 * Index among the model's n input (what = "input") or output names that
 * f refers to, or -1 after printing why not as "lamina CMD: ...".
 */
int cli_resolve(const char *cmd, const char *const *names, int n,
		const cli_named_file *f, const char *what);

/** Monotonic seconds. */
double cli_now(void);

/** Sort n numbers, ascending. */
void cli_sort(double *v, int n);

/** Sort n latencies (ms) and print "latency_ms median=X p90=Y min=Z". */
void cli_print_latency(double *ms, int n);

#endif
