/*
 * bench_sgemm.c: the machine's single-precision matrix-multiply peak, as
 * OpenBLAS reaches it, for tools/bench_runtime.py to measure lamina against.
 *
 *   build/tools/bench_sgemm [--n N] [--threads T] [--reps R]
 *
 * Times cblas_sgemm on N x N x N row-major matrices (default 2048, one
 * thread, 5 timed runs after one warm-up) and prints one line:
 *   sgemm n=2048 threads=1 best_gflops=X median_gflops=Y
 * counting 2*N^3 floating-point operations per product.
 */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* OpenBLAS's own extension; declared here so a reference cblas.h works. */
void openblas_set_num_threads(int num_threads);

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static int int_arg(const char *flag, const char *v, int min, int max)
{
	char *end;
	long x;

	if (v == NULL) {
		fprintf(stderr, "bench_sgemm: %s needs a value\n", flag);
		exit(2);
	}
	x = strtol(v, &end, 10);
	if (*end != '\0' || x < min || x > max) {
		fprintf(stderr, "bench_sgemm: %s needs an integer in %d..%d\n",
			flag, min, max);
		exit(2);
	}
	return (int)x;
}

int main(int argc, char **argv)
{
	int n = 2048, threads = 1, reps = 5;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--n") == 0)
			n = int_arg(argv[i], argv[i + 1], 16, 16384), i++;
		else if (strcmp(argv[i], "--threads") == 0)
			threads = int_arg(argv[i], argv[i + 1], 1, 1024), i++;
		else if (strcmp(argv[i], "--reps") == 0)
			reps = int_arg(argv[i], argv[i + 1], 1, 1000), i++;
		else {
			fprintf(stderr, "usage: bench_sgemm [--n N] "
				"[--threads T] [--reps R]\n");
			return strcmp(argv[i], "--help") == 0 ? 0 : 2;
		}
	}

	size_t elems = (size_t)n * (size_t)n;
	float *a = malloc(elems * sizeof(float));
	float *b = malloc(elems * sizeof(float));
	float *c = malloc(elems * sizeof(float));
	double *gflops = malloc((size_t)reps * sizeof(double));

	if (!a || !b || !c || !gflops) {
		fprintf(stderr, "bench_sgemm: out of memory for n=%d\n", n);
		return 1;
	}
	/* values in [-1, 1): denormals or NaNs would distort the timing */
	unsigned s = 12345;
	for (size_t i = 0; i < elems; i++) {
		s = s * 1103515245u + 12345u;
		a[i] = (float)((s >> 8) & 0xffff) / 32768.0f - 1.0f;
		s = s * 1103515245u + 12345u;
		b[i] = (float)((s >> 8) & 0xffff) / 32768.0f - 1.0f;
	}
	openblas_set_num_threads(threads);

	double flop = 2.0 * (double)n * (double)n * (double)n;
	for (int r = -1; r < reps; r++) {
		double t0 = now();
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n,
			    1.0f, a, n, b, n, 0.0f, c, n);
		double dt = now() - t0;
		if (r >= 0) /* r = -1 warms caches and OpenBLAS's threads */
			gflops[r] = flop / dt * 1e-9;
	}
	qsort(gflops, (size_t)reps, sizeof(double), cmp_double);
	printf("sgemm n=%d threads=%d best_gflops=%.2f median_gflops=%.2f\n",
	       n, threads, gflops[reps - 1], gflops[reps / 2]);
	free(a);
	free(b);
	free(c);
	free(gflops);
	return 0;
}
