/*
 * blas.c: lamina's use of OpenBLAS: the thread count, one row-major sgemm
 * entry that turns vector-shaped products into matrix-vector ones, and
 * the Gemm and MatMul kernels built on it.
 *
 * Gemm and MatMul stay on OpenBLAS: at batch 1 the fully connected layers
 * of the target models are matrix-vector products, bound by reading the
 * weights from memory, not by arithmetic (those get a streaming AVX-512
 * loop below, which reads memory faster than OpenBLAS's sgemv); and
 * MatMul's operands may both change from run to run (attention), so there
 * is nothing to pack ahead.  Except a MatMul with a constant B shared by
 * the batch (the linear layers of ConvNeXt and of transformers, most of
 * their time): on AVX-512 its B is packed once for lamina's GEMM.
 */
#include "kernels.h"
#include "act.h"

#include <cblas.h>
#include <stdlib.h>
#include <string.h>


/* OpenBLAS 0.3.21 declares these in its own cblas.h; spelled out so the
 * file also builds against a reference cblas.h. */
void openblas_set_num_threads(int num_threads);
int openblas_get_num_threads(void);

void lm_blas_threads(int threads)
{
	if (threads < 1)
		threads = 1;
	/* Setting it costs a lock and a pass over OpenBLAS's thread pool,
	 * so only when it changes. */
	if (openblas_get_num_threads() != threads)
		openblas_set_num_threads(threads);
}

/* ---- matrix-vector products on AVX-512 ----
 *
 * At batch 1 a fully connected layer streams its weights from memory once
 * per inference.  What matters is to keep that stream simple: one row at
 * a time, read front to back, which the hardware prefetcher follows at
 * full speed (several rows in flight, or software prefetches, measured
 * slower).  On Zen 5 this reads a 4096 x 25088 matrix at 34 GB/s and a
 * 1000 x 1280 one at 45, where OpenBLAS's sgemv reaches 28 and 31.
 */

#if defined(__x86_64__)

/* y[i] = alpha * W[i, :] . x + beta * y[i] for i < n; W row-major (ldw).
 * Four accumulators so that the FMA latency hides. */
static LM_AVX512 void gemv_rows(int64_t n, int64_t k, float alpha,
				const float *w, int64_t ldw, const float *x,
				float beta, float *y)
{
	for (int64_t i = 0; i < n; i++) {
		const float *r = w + i * ldw;
		__m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
		int64_t c = 0;
		for (; c + 64 <= k; c += 64) {
			a0 = _mm512_fmadd_ps(_mm512_loadu_ps(r + c),
					     _mm512_loadu_ps(x + c), a0);
			a1 = _mm512_fmadd_ps(_mm512_loadu_ps(r + c + 16),
					     _mm512_loadu_ps(x + c + 16), a1);
			a2 = _mm512_fmadd_ps(_mm512_loadu_ps(r + c + 32),
					     _mm512_loadu_ps(x + c + 32), a2);
			a3 = _mm512_fmadd_ps(_mm512_loadu_ps(r + c + 48),
					     _mm512_loadu_ps(x + c + 48), a3);
		}
		for (; c < k; c += 16) {
			__mmask16 m = lm_lanes(0, k - c);
			a0 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, r + c),
					     _mm512_maskz_loadu_ps(m, x + c),
					     a0);
		}
		float v = alpha * _mm512_reduce_add_ps(
			_mm512_add_ps(_mm512_add_ps(a0, a1),
				      _mm512_add_ps(a2, a3)));
		y[i] = beta == 0.0f ? v : v + beta * y[i];
	}
}

/*
 * gemv_rows for four rows of x at once (row r at x + r * ldx, its
 * results at y + r * ldy): a fully connected layer at batch 2 to 16
 * reads each row of W once per four samples instead of once per sample
 * (MnasNet's 1280 -> 1000 classifier at batch 8: 0.55 ms against 0.74
 * for OpenBLAS's sgemm, lamina run --profile).  Each sample keeps
 * gemv_rows' four accumulators and order, so its results are bitwise
 * those of the same sample at batch 1.  (Eight samples in one pass, with
 * each accumulator in a pass of its own over the row, measured slower:
 * 1.05 ms, their 40 KiB of x no longer stays in L1.)
 */
static LM_AVX512 void gemv_rows4(int64_t n, int64_t k, float alpha,
				 const float *w, int64_t ldw, const float *x,
				 int64_t ldx, float beta, float *y,
				 int64_t ldy)
{
	for (int64_t i = 0; i < n; i++) {
		const float *r = w + i * ldw;
		__m512 a[4][4];
		for (int s = 0; s < 4; s++)
			for (int j = 0; j < 4; j++)
				a[s][j] = _mm512_setzero_ps();
		int64_t c = 0;
		for (; c + 64 <= k; c += 64) {
			__m512 w0 = _mm512_loadu_ps(r + c);
			__m512 w1 = _mm512_loadu_ps(r + c + 16);
			__m512 w2 = _mm512_loadu_ps(r + c + 32);
			__m512 w3 = _mm512_loadu_ps(r + c + 48);
#pragma GCC unroll 4
			for (int s = 0; s < 4; s++) {
				const float *xs = x + s * ldx + c;
				a[s][0] = _mm512_fmadd_ps(w0,
					_mm512_loadu_ps(xs), a[s][0]);
				a[s][1] = _mm512_fmadd_ps(w1,
					_mm512_loadu_ps(xs + 16), a[s][1]);
				a[s][2] = _mm512_fmadd_ps(w2,
					_mm512_loadu_ps(xs + 32), a[s][2]);
				a[s][3] = _mm512_fmadd_ps(w3,
					_mm512_loadu_ps(xs + 48), a[s][3]);
			}
		}
		for (; c < k; c += 16) {
			__mmask16 m = lm_lanes(0, k - c);
			__m512 wv = _mm512_maskz_loadu_ps(m, r + c);
			for (int s = 0; s < 4; s++)
				a[s][0] = _mm512_fmadd_ps(wv,
					_mm512_maskz_loadu_ps(m,
						x + s * ldx + c), a[s][0]);
		}
		for (int s = 0; s < 4; s++) {
			float v = alpha * _mm512_reduce_add_ps(
				_mm512_add_ps(_mm512_add_ps(a[s][0], a[s][1]),
					      _mm512_add_ps(a[s][2],
							    a[s][3])));
			float *ys = y + s * ldy + i;
			*ys = beta == 0.0f ? v : v + beta * *ys;
		}
	}
}

/* y = alpha * x^T W + beta * y, W k x n row-major (ldw): each row of W
 * scaled into y, which stays in L1. */
static LM_AVX512 void gemv_cols(int64_t n, int64_t k, float alpha,
				const float *w, int64_t ldw, const float *x,
				float beta, float *y)
{
	for (int64_t j = 0; j < n; j++)
		y[j] = beta == 0.0f ? 0.0f : beta * y[j];
	for (int64_t r = 0; r < k; r++) {
		const float *wr = w + r * ldw;
		__m512 xv = _mm512_set1_ps(alpha * x[r]);
		for (int64_t j = 0; j < n; j += 16) {
			__mmask16 m = lm_lanes(0, n - j);
			__m512 wv = _mm512_maskz_loadu_ps(m, wr + j);
			__m512 yv = _mm512_maskz_loadu_ps(m, y + j);
			_mm512_mask_storeu_ps(y + j, m,
					      _mm512_fmadd_ps(xv, wv, yv));
		}
	}
}

#else

static void gemv_rows(int64_t n, int64_t k, float alpha, const float *w,
		      int64_t ldw, const float *x, float beta, float *y)
{
	cblas_sgemv(CblasRowMajor, CblasNoTrans, (int)n, (int)k, alpha, w,
		    (int)ldw, x, 1, beta, y, 1);
}

static void gemv_cols(int64_t n, int64_t k, float alpha, const float *w,
		      int64_t ldw, const float *x, float beta, float *y)
{
	cblas_sgemv(CblasRowMajor, CblasTrans, (int)k, (int)n, alpha, w,
		    (int)ldw, x, 1, beta, y, 1);
}

static void gemv_rows4(int64_t n, int64_t k, float alpha, const float *w,
		       int64_t ldw, const float *x, int64_t ldx, float beta,
		       float *y, int64_t ldy)
{
	for (int s = 0; s < 4; s++)
		gemv_rows(n, k, alpha, w, ldw, x + s * ldx, beta, y + s * ldy);
}

#endif

void lm_sgemm(int ta, int tb, int64_t m, int64_t n, int64_t k, float alpha,
	      const float *a, int64_t lda, const float *b, int64_t ldb,
	      float beta, float *c, int64_t ldc)
{
	if (m <= 0 || n <= 0)
		return;
	if (k <= 0) {
		for (int64_t i = 0; i < m; i++)
			for (int64_t j = 0; j < n; j++)
				c[i * ldc + j] = beta == 0.0f ? 0.0f
					       : beta * c[i * ldc + j];
		return;
	}
	/* OpenBLAS 0.3.21 runs a 1-row or 1-column sgemm through its
	 * general kernels, several times slower than sgemv. */
	if (m == 1) {
		/* c (1 x n) = op(b)^T op(a)^T: a vector times op(b). */
		int inc = ta ? (int)lda : 1;
		if (inc == 1 && lm_have_avx512()) {
			if (tb)
				gemv_rows(n, k, alpha, b, ldb, a, beta, c);
			else
				gemv_cols(n, k, alpha, b, ldb, a, beta, c);
			return;
		}
		if (tb)
			cblas_sgemv(CblasRowMajor, CblasNoTrans, (int)n, (int)k,
				    alpha, b, (int)ldb, a, inc, beta, c, 1);
		else
			cblas_sgemv(CblasRowMajor, CblasTrans, (int)k, (int)n,
				    alpha, b, (int)ldb, a, inc, beta, c, 1);
		return;
	}
	/* A few rows against a W^T that fits in L3 (a classifier at batch
	 * 2-16): gemv_rows four rows at a time.  A larger W (VGG's 400 MB)
	 * is better read once, by OpenBLAS. */
	if (tb && !ta && m <= 16 && n * k <= (2 << 20) && lm_have_avx512()) {
		int64_t i = 0;
		for (; i + 4 <= m; i += 4)
			gemv_rows4(n, k, alpha, b, ldb, a + i * lda, lda, beta,
				   c + i * ldc, ldc);
		for (; i < m; i++)
			gemv_rows(n, k, alpha, b, ldb, a + i * lda, beta,
				  c + i * ldc);
		return;
	}
	if (n == 1) {
		int inc = tb ? 1 : (int)ldb;
		if (ta)
			cblas_sgemv(CblasRowMajor, CblasTrans, (int)k, (int)m,
				    alpha, a, (int)lda, b, inc, beta, c,
				    (int)ldc);
		else
			cblas_sgemv(CblasRowMajor, CblasNoTrans, (int)m, (int)k,
				    alpha, a, (int)lda, b, inc, beta, c,
				    (int)ldc);
		return;
	}
	cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans,
		    tb ? CblasTrans : CblasNoTrans, (int)m, (int)n, (int)k,
		    alpha, a, (int)lda, b, (int)ldb, beta, c, (int)ldc);
}

static void epilogue(const lm_epilogue *ep, float *y, const float *sum,
		     size_t n)
{
	if (ep->act != LM_ACT_NONE || sum)
		lm_epilogue_apply(ep, y, sum, n);
}

/* y[i] += b[i]: a MatMul's fused bias, row by row.  (Named apart from
 * the other files' helpers: clang gives a cloned static function a
 * global resolver symbol.) */
static LM_CLONES void matmul_bias_row(float *restrict y,
				      const float *restrict b, size_t n)
{
	LM_VFOR(i, n, y[i] += b[i]);
}

/* ---- Gemm ---- */

static int run_gemm(const lm_kargs *a)
{
	const struct lm_gemm_desc *d = a->state;
	const float *x = a->in[0]->data, *w = a->in[1]->data;
	float *y = a->out[0]->data;
	float beta = 0.0f;

	if (d->has_c && d->beta != 0.0f && a->n_in > 2 && a->in[2]) {
		/* Y = beta * C broadcast to (M, N), then accumulate. */
		const float *c = a->in[2]->data;
		int64_t rows = d->c_rank == 2 ? d->c_dims[0] : 1;
		int64_t cols = d->c_rank > 0 ? d->c_dims[d->c_rank - 1] : 1;
		for (int64_t i = 0; i < d->m; i++)
			for (int64_t j = 0; j < d->n; j++)
				y[i * d->n + j] = d->beta *
					c[(rows == 1 ? 0 : i) * cols +
					  (cols == 1 ? 0 : j)];
		beta = 1.0f;
	}
	lm_sgemm(d->ta, d->tb, d->m, d->n, d->k, d->alpha, x,
		 d->ta ? d->m : d->k, w, d->tb ? d->k : d->n, beta, y, d->n);
	epilogue(&d->ep, y, lm_epilogue_sum(a, &d->ep), (size_t)(d->m * d->n));
	return 0;
}

int lm_gemm_prepare(const struct lm_gemm_desc *d, lm_kernel *k)
{
	struct lm_gemm_desc *s = malloc(sizeof(*s));

	if (!s)
		return -ENOMEM;
	*s = *d;
	k->state = s;
	k->free_state = free;
	k->run = run_gemm;
	k->impl = d->m == 1 && !d->ta && lm_have_avx512() ? "sgemv"
		  : d->m == 1 || d->n == 1 ? "openblas sgemv"
		  : d->m <= 16 && d->tb && !d->ta && d->n * d->k <= (2 << 20) &&
		    lm_have_avx512() ? "sgemv rows" : "openblas";
	return 0;
}

/* ---- MatMul ---- */

struct matmul_state {
	struct lm_matmul_desc d;
	int64_t m, n, k, batch;
	int flat;               /* B shared by every batch: one tall sgemm */
	float *pb;              /* constant B packed for lm_pgemm_rows */
};

static void matmul_free(void *p)
{
	struct matmul_state *s = p;

	if (s)
		free(s->pb);
	free(s);
}

/* Element offset (in matrices) of batch index idx in an operand whose
 * batch dims are dims[0..nb), broadcast to the output's odims. */
static int64_t batch_offset(int nb, const int64_t *odims,
			    const int64_t *dims, int64_t idx)
{
	int64_t off = 0, stride = 1;

	for (int i = nb - 1; i >= 0; i--) {
		int64_t ci = idx % odims[i];
		idx /= odims[i];
		if (dims[i] != 1)
			off += ci * stride;
		stride *= dims[i];
	}
	return off;
}

static int run_matmul(const lm_kargs *a)
{
	const struct matmul_state *s = a->state;
	const struct lm_matmul_desc *d = &s->d;
	const float *x = a->in[0]->data, *w = a->in[1]->data;
	float *y = a->out[0]->data;
	int nb = d->rank - 2;

	if (s->pb) {
		lm_pgemm_rows(x, s->k, 1, s->batch * s->m, s->k, s->pb, s->n,
			      y, s->n);
	} else if (s->flat) {
		lm_sgemm(0, 0, s->batch * s->m, s->n, s->k, 1.0f, x, s->k, w,
			 s->n, 0.0f, y, s->n);
	} else {
		for (int64_t i = 0; i < s->batch; i++) {
			int64_t ao = batch_offset(nb, d->o_dims, d->a_dims, i);
			int64_t bo = batch_offset(nb, d->o_dims, d->b_dims, i);
			lm_sgemm(0, 0, s->m, s->n, s->k, 1.0f,
				 x + ao * s->m * s->k, s->k,
				 w + bo * s->k * s->n, s->n, 0.0f,
				 y + i * s->m * s->n, s->n);
		}
	}
	if (d->bias_input >= 0) {
		const float *b = a->in[d->bias_input]->data;
		for (int64_t r = 0; r < s->batch * s->m; r++)
			matmul_bias_row(y + r * s->n, b, (size_t)s->n);
	}
	epilogue(&d->ep, y, lm_epilogue_sum(a, &d->ep),
		 (size_t)(s->batch * s->m * s->n));
	return 0;
}

int lm_matmul_prepare(const struct lm_matmul_desc *d, lm_kernel *k)
{
	struct matmul_state *s = calloc(1, sizeof(*s));
	int r = d->rank, b_shared = 1, a_full = 1;

	if (!s)
		return -ENOMEM;
	s->d = *d;
	s->m = d->a_dims[r - 2];
	s->k = d->a_dims[r - 1];
	s->n = d->b_dims[r - 1];
	s->batch = 1;
	for (int i = 0; i < r - 2; i++) {
		s->batch *= d->o_dims[i];
		b_shared &= d->b_dims[i] == 1;
		a_full &= d->a_dims[i] == d->o_dims[i];
	}
	s->flat = b_shared && a_full;
	k->state = s;
	k->free_state = matmul_free;
	k->run = run_matmul;
	k->impl = (s->flat ? s->batch * s->m : s->m) == 1 && lm_have_avx512()
		  ? "sgemv" : "openblas";
	/*
	 * A constant B (ConvNeXt's and transformers' linear layers, where
	 * MatMul is most of the time): packed once, the activations read in
	 * place as the broadcast rows.  bench_kernels "cnx mm" (ConvNeXt-S,
	 * batch 1), medians against OpenBLAS 0.3.21 (which runs its
	 * Cooperlake kernels here): 1.10-1.22x from 196 rows up, 1.5-1.6x on
	 * 49 rows.
	 */
	if (s->flat && d->b_const && lm_have_avx512() &&
	    s->batch * s->m >= LM_PG_MR && s->n >= 16 && s->k >= 1) {
		size_t fl = lm_pgemm_packed_b_floats(s->k, s->n);
		s->pb = lm_kalloc(fl * sizeof(float));
		if (!s->pb)
			return -ENOMEM;
		lm_pgemm_pack_b(d->b_const, s->n, 1, s->k, s->n, s->pb);
		k->state_bytes = fl * sizeof(float);
		k->impl = "pgemm";
	}
	return 0;
}
