/*
 * tensor_args.c: what `lamina run` and `lamina infer` share about tensors
 * on the command line: --input/--output [NAME=]FILE.npy arguments matched
 * to a model's input or output names, and timing (the latency line
 * --repeat prints).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"

static int parse_named(const char *arg, cli_named_file *f)
{
	const char *eq = strchr(arg, '=');
	if (eq && eq != arg) {
		char *name = strndup(arg, (size_t)(eq - arg));
		if (!name)
			return -ENOMEM;
		f->name = name;
		f->path = eq + 1;
	} else {
		f->name = NULL;
		f->path = arg;
	}
	return 0;
}

int cli_add_named(const char *cmd, const char *opt, const char *arg,
		  cli_named_file *list, int *n, int max)
{
	if (*n == max)
		return cli_errorf(cmd, "too many %s options", opt);
	if (parse_named(arg, &list[*n]))
		return cli_errorf(cmd, "out of memory");
	(*n)++;
	return 0;
}

void cli_named_free(cli_named_file *f, int n)
{
	for (int i = 0; i < n; i++)
		free((char *)f[i].name);
}

int cli_resolve(const char *cmd, const char *const *names, int n,
		const cli_named_file *f, const char *what)
{
	char list[512] = "";
	size_t off = 0;
	for (int i = 0; i < n && off < sizeof(list); i++)
		off += (size_t)snprintf(list + off, sizeof(list) - off,
					"%s'%s'", i ? ", " : "", names[i]);
	if (!f->name) {
		if (n == 1)
			return 0;
		cli_errorf(cmd, "the model has %d %ss (%s): name them, as "
			   "--%s NAME=%s", n, what, list, what, f->path);
		return -1;
	}
	for (int i = 0; i < n; i++)
		if (!strcmp(names[i], f->name))
			return i;
	cli_errorf(cmd, "the model has no %s '%s'; its %s%s %s: %s", what,
		   f->name, what, n == 1 ? "" : "s", n == 1 ? "is" : "are",
		   list);
	return -1;
}

double cli_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

void cli_sort(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(double), cmp_double);
}

void cli_print_latency(double *ms, int n)
{
	if (n < 1)
		return;
	cli_sort(ms, n);
	int p90 = (int)(0.9 * (n - 1) + 0.5);
	printf("latency_ms median=%.3f p90=%.3f min=%.3f\n",
	       n % 2 ? ms[n / 2] : (ms[n / 2 - 1] + ms[n / 2]) / 2, ms[p90],
	       ms[0]);
}
