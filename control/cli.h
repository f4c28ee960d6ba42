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

/** Print "lamina CMD: message" on stderr; returns 1 (the exit code). */
int cli_error(const char *cmd, const lm_error *e);

/** Print "lamina CMD: formatted" on stderr; returns 1. */
int cli_errorf(const char *cmd, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/** Human-readable size: "512 B", "37.6 KiB", "44.6 MiB". */
const char *cli_bytes(double bytes, char *buf, size_t len);

#endif
