/*
 * depthwise_simd.h: the vector bodies of depthwise.c, included by it once
 * per instruction set after simd.h.  Kernel size K (3, 5, 7) and stride S
 * (1, 2) are constants in each instance, so the tap loops unroll into
 * straight-line code over registers.  Defines, for the set:
 *
 *	SIMD(dw_rows)[K/2 - 1][S - 1]        row path, one plane
 *	SIMD(dw_blocked)[K/2 - 1][S - 1][r]  blocked path, VL planes, strips
 *	                                     of DW_STRIP(r) outputs
 *
 * with the signatures of dw_rows_fn and dw_blocked_fn (depthwise.c).
 */

/* Strip widths of the blocked path: 8 outputs (7, r = 1, where a row
 * holds a multiple of 7: MobileNets' 7, 14, 28) with 32 registers, else
 * 4, so that the accumulators, one kernel row of weights and the input
 * in flight fit (8 + 7 + 1 at 7x7). */
#undef DW_STRIP
#define DW_STRIP(r) (VREGS >= 32 ? 8 - (r) : 4)

/*
 * The fused epilogue where it is exact in registers (a clamp, struct
 * lm_clamp: none, Relu or Clip, with or without a residual): v (+ the n
 * values at s) clamped to [lo, hi], in the order act.c applies them.
 */
SIMD_INLINE VF SIMD(dw_finish)(const struct dw_state *st, VF v,
			       const float *s, int64_t n)
{
	if (s)
		v = v_add(v, n >= VL ? v_load(s) : v_load_range(s, 0, n));
	return v_clamp(v, v_set1(st->lo), v_set1(st->hi));
}

/* ---- row path ---- */

/*
 * The padded plane: row r is image row r - pt; at stride 2 each row holds
 * its even image columns, then its odd ones (phase q at q * pw); column j
 * of phase q is image column S * j + q - pl.  Zero outside the image.
 */
SIMD_INLINE void SIMD(dw_chunk)(const int S, const int edge,
				const struct dw_state *st, const float *xr,
				float *p, int64_t j)
{
	const struct lm_conv_desc *d = &st->d;
	int64_t c0 = S * j - d->pl;   /* image column of lane 0 */
	VF a = edge ? v_load_range(xr + c0, -c0, d->w - c0) : v_load(xr + c0);

	if (S == 1) {
		v_store(p + j, a);
		return;
	}
	VF b = edge ? v_load_range(xr + c0 + VL, -c0 - VL, d->w - c0 - VL)
		    : v_load(xr + c0 + VL), e, o;
	v_unzip(a, b, &e, &o);
	v_store(p + j, e);
	v_store(p + st->pw + j, o);
}

SIMD_INLINE void SIMD(dw_pad)(const int S, const struct dw_state *st,
			      const float *x, float *p)
{
	const struct lm_conv_desc *d = &st->d;
	/* chunks [j0, j1) read whole vectors inside the image: no masks */
	int64_t j0 = (d->pl + S * VL - 1) / (S * VL) * VL;
	int64_t j1 = d->w + d->pl >= S * VL
		     ? ((d->w + d->pl - S * VL) / (S * VL) + 1) * VL : 0;

	j1 = j1 < st->pw ? j1 : st->pw;
	j0 = j0 < j1 ? j0 : j1;
	for (int64_t r = 0; r < st->hp; r++, p += st->wp) {
		int64_t iy = r - d->pt;
		if (iy < 0 || iy >= d->h) {
			for (int64_t j = 0; j < st->wp; j += VL)
				v_store(p + j, v_zero());
			continue;
		}
		const float *xr = x + iy * d->w;
		int64_t j = 0;
		for (; j < j0; j += VL)
			SIMD(dw_chunk)(S, 1, st, xr, p, j);
		for (; j < j1; j += VL)
			SIMD(dw_chunk)(S, 0, st, xr, p, j);
		for (; j < st->pw; j += VL)
			SIMD(dw_chunk)(S, 1, st, xr, p, j);
	}
}

/*
 * Outputs ox0 .. ox0 + NV * VL - 1 of output rows oy .. oy + R - 1 (those
 * below oh are computed on zero rows and not stored): R * NV
 * accumulators, one kernel row's weights in registers at a time.  Tap kx
 * reads phase kx % S shifted by kx / S: with SIMD_ALIGNR from two aligned
 * loads (an unaligned 64-byte load nearly always splits over two cache
 * lines, which halves the load rate), else with an unaligned load.
 */
SIMD_INLINE void SIMD(dw_strip)(const int K, const int S, const int R,
				const int NV, const struct dw_state *st,
				const float *p, const float *w, float bias,
				float *y, const float *sum, int64_t oy,
				int64_t ox0)
{
	const struct lm_conv_desc *d = &st->d;
	VF acc[8][4], wk[7];

#pragma GCC unroll 8
	for (int r = 0; r < R; r++)
#pragma GCC unroll 4
		for (int v = 0; v < NV; v++)
			acc[r][v] = v_set1(bias);
	/* a loop: unrolled, GCC hoists the loads of every kernel row and
	 * spills */
#pragma GCC unroll 1
	for (int ky = 0; ky < K; ky++) {
#pragma GCC unroll 7
		for (int kx = 0; kx < K; kx++)
			wk[kx] = v_set1(w[ky * K + kx]);
#pragma GCC unroll 8
		for (int r = 0; r < R; r++) {
			const float *row = p + ((oy + r) * S + ky) * st->wp +
					   ox0;
#if SIMD_ALIGNR
			VF a[2][5];
#pragma GCC unroll 2
			for (int q = 0; q < S; q++)
#pragma GCC unroll 5
				for (int v = 0; v <= NV; v++)
					a[q][v] = v_load(row + q * st->pw +
							 VL * v);
#pragma GCC unroll 7
			for (int kx = 0; kx < K; kx++)
#pragma GCC unroll 4
				for (int v = 0; v < NV; v++)
					acc[r][v] = v_fma(wk[kx], v_shift(
						a[kx % S][v], a[kx % S][v + 1],
						kx / S), acc[r][v]);
#else
#pragma GCC unroll 7
			for (int kx = 0; kx < K; kx++)
#pragma GCC unroll 4
				for (int v = 0; v < NV; v++)
					acc[r][v] = v_fma(wk[kx], v_load(row +
						(kx % S) * st->pw + kx / S +
						VL * v), acc[r][v]);
#endif
		}
	}
#pragma GCC unroll 8
	for (int r = 0; r < R; r++) {
		if (oy + r >= d->oh)
			break;
		int64_t o = (oy + r) * d->ow + ox0;
#pragma GCC unroll 4
		for (int v = 0; v < NV; v++) {
			int64_t n = d->ow - ox0 - VL * v;
			VF a = acc[r][v];
			if (st->fuse)
				a = SIMD(dw_finish)(st, a, sum ? sum + o + VL * v
						    : NULL, n);
			if (n >= VL)
				v_store(y + o + VL * v, a);
			else
				v_store_n(y + o + VL * v, a, n);
		}
	}
}

/*
 * One plane: padded into p, then rows in pairs, four vectors at a time;
 * the vectors left over (rows of fewer than four, or the end of a long
 * row) in columns of st->rows rows, so that every strip has 8 (or 7)
 * independent accumulators to hide the FMA latency.
 */
SIMD_INLINE void SIMD(dw_plane)(const int K, const int S,
				const struct dw_state *st, const float *x,
				const float *w, float bias, float *y,
				const float *sum, float *p)
{
	const struct lm_conv_desc *d = &st->d;
	int64_t wide = st->nvec / 4 * 4;

	SIMD(dw_pad)(S, st, x, p);
	for (int64_t oy = 0; oy < d->oh && wide; oy += 2)
		for (int64_t v = 0; v < wide; v += 4)
			SIMD(dw_strip)(K, S, 2, 4, st, p, w, bias, y, sum,
				       oy, v * VL);
	if (wide == st->nvec)
		return;
	for (int64_t oy = 0; oy < d->oh; oy += st->rows)
		for (int64_t v = wide; v < st->nvec; v++) {
			if (st->rows == 7)
				SIMD(dw_strip)(K, S, 7, 1, st, p, w, bias, y,
					       sum, oy, v * VL);
			else
				SIMD(dw_strip)(K, S, 8, 1, st, p, w, bias, y,
					       sum, oy, v * VL);
		}
}

#define DW_ROWS(k, s)                                                    \
	static SIMD_FN void SIMD(dw_rows_##k##_##s)(                     \
		const struct dw_state *st, const float *x, const float *w, \
		float bias, float *y, const float *sum, float *scratch)  \
	{                                                                \
		SIMD(dw_plane)(k, s, st, x, w, bias, y, sum, scratch);  \
	}
DW_ROWS(3, 1) DW_ROWS(3, 2) DW_ROWS(5, 1) DW_ROWS(5, 2) DW_ROWS(7, 1)
DW_ROWS(7, 2)
#undef DW_ROWS

static const dw_rows_fn SIMD(dw_rows)[3][2] = {
	{ SIMD(dw_rows_3_1), SIMD(dw_rows_3_2) },
	{ SIMD(dw_rows_5_1), SIMD(dw_rows_5_2) },
	{ SIMD(dw_rows_7_1), SIMD(dw_rows_7_2) },
};

/* ---- blocked path ---- */

/*
 * Up to VL channels (nc) of one image with the channels in the vector
 * lanes: their planes transposed into a padded [row][column][VL] block,
 * then strips of R outputs along an output row: per kernel row, its K
 * weight vectors stay in registers and each input vector the strip
 * touches is loaded once and used for every output it reaches (at 5x5
 * stride 1, 12 loads for 40 FMAs where one load per FMA was the limit),
 * the results transposed back into the NCHW planes VL positions at a
 * time, with the fused epilogue on the way.  Every output still sums
 * bias, then its taps row by row, left to right: bitwise the row path's
 * order.  x, bias, y and sum start at channel c0; wt is the block's
 * weights as [tap][lane]; scratch as laid out by lm_depthwise_prepare.
 * The block's zero border is written only when `zero` is set (the first
 * block of a call): later blocks write the same interior.
 */
SIMD_INLINE void SIMD(dw_block)(const int K, const int S, const int R,
				const struct dw_state *st, const float *x,
				const float *wt, const float *bias, int64_t nc,
				float *y, const float *sum, int zero,
				float *scratch)
{
	const struct lm_conv_desc *d = &st->d;
	int64_t hp = st->hp, wp = st->wp, ip = d->h * d->w;
	int64_t np = d->oh * d->ow;
	float *xb = scratch, *ob = xb + st->ob_off;

	for (int64_t r = 0; r < hp; r++) {
		float *row = xb + r * wp * VL;
		int64_t iy = r - d->pt;
		if (iy < 0 || iy >= d->h) {
			for (int64_t j = 0; zero && j < wp; j++)
				v_store(row + j * VL, v_zero());
			continue;
		}
		for (int64_t j = 0; zero && j < d->pl; j++)
			v_store(row + j * VL, v_zero());
		for (int64_t j = d->pl + d->w; zero && j < wp; j++)
			v_store(row + j * VL, v_zero());
		/* This row of the next block's planes (NCHW: right after
		 * these, or the next image's first): VL small planes read a
		 * row at a time are too many short streams for the
		 * prefetcher.  (Wide planes: the prefetches cost more than
		 * they save.) */
		for (int l = 0; d->w <= 32 && l < VL; l++)
			for (int64_t q = 0; q < d->w; q += 16)
				__builtin_prefetch(x + (VL + l) * ip +
						   iy * d->w + q);
		for (int64_t ix0 = 0; ix0 < d->w; ix0 += VL) {
			int64_t nv = d->w - ix0 < VL ? d->w - ix0 : VL;
			VF v[VL];
			for (int l = 0; l < VL; l++)
				v[l] = l < nc ? v_load_range(x + l * ip +
						iy * d->w + ix0, 0, nv)
					      : v_zero();
			v_transpose(v);
			float *o = row + (d->pl + ix0) * VL;
			for (int64_t j = 0; j < nv; j++)
				v_store(o + j * VL, v[j]);
		}
	}

	VF bv = bias ? v_load_range(bias, 0, nc) : v_zero();
	for (int64_t oy = 0; oy < d->oh; oy++) {
		for (int64_t ox0 = 0; ox0 < d->ow; ox0 += R) {
			/* a strip past the row's end reads the block's
			 * zero columns and is not stored */
			const float *in = xb + (oy * S * wp + ox0 * S) * VL;
			VF acc[8], wk[7];
#pragma GCC unroll 8
			for (int j = 0; j < R; j++)
				acc[j] = bv;
			/* a loop, as in dw_strip */
#pragma GCC unroll 1
			for (int ky = 0; ky < K; ky++) {
				const float *row = in + ky * wp * VL;
#pragma GCC unroll 7
				for (int kx = 0; kx < K; kx++)
					wk[kx] = v_load(wt + (ky * K + kx) * VL);
#pragma GCC unroll 24
				for (int i = 0; i < (R - 1) * S + K; i++) {
					VF xi = v_load(row + i * VL);
#pragma GCC unroll 8
					for (int j = 0; j < R; j++) {
						int kx = i - j * S;
						if (kx >= 0 && kx < K)
							acc[j] = v_fma(wk[kx],
								xi, acc[j]);
					}
				}
			}
			float *o = ob + (oy * d->ow + ox0) * VL;
			int64_t n = d->ow - ox0 < R ? d->ow - ox0 : R;
#pragma GCC unroll 8
			for (int j = 0; j < R; j++)
				if (j < n)
					v_store(o + j * VL, acc[j]);
		}
	}

	for (int64_t p0 = 0; p0 < np; p0 += VL) {
		int64_t n = np - p0 < VL ? np - p0 : VL;
		VF v[VL];
		for (int i = 0; i < VL; i++)
			v[i] = v_load(ob + (p0 + i) * VL);
		v_transpose(v);
		for (int64_t l = 0; l < nc; l++) {
			VF a = st->fuse ? SIMD(dw_finish)(st, v[l], sum ? sum +
					  l * np + p0 : NULL, n) : v[l];
			if (n >= VL)
				v_store(y + l * np + p0, a);
			else
				v_store_n(y + l * np + p0, a, n);
		}
	}
}

#define DW_BLOCKED(k, s, r)                                              \
	static SIMD_FN void SIMD(dw_blocked_##k##_##s##_##r)(            \
		const struct dw_state *st, const float *x, const float *wt, \
		const float *bias, int64_t nc, float *y, const float *sum, \
		int zero, float *scratch)                                \
	{                                                                \
		SIMD(dw_block)(k, s, DW_STRIP(r), st, x, wt, bias, nc, y, \
			       sum, zero, scratch);                      \
	}
/* strips of 7 only with 32 registers (DW_STRIP): none built elsewhere */
#if VREGS >= 32
#define DW_BLOCKED2(k, s) DW_BLOCKED(k, s, 0) DW_BLOCKED(k, s, 1)
#define DW_PAIR(k, s) { SIMD(dw_blocked_##k##_##s##_0), \
			SIMD(dw_blocked_##k##_##s##_1) }
#else
#define DW_BLOCKED2(k, s) DW_BLOCKED(k, s, 0)
#define DW_PAIR(k, s) { SIMD(dw_blocked_##k##_##s##_0), NULL }
#endif
DW_BLOCKED2(3, 1) DW_BLOCKED2(3, 2) DW_BLOCKED2(5, 1) DW_BLOCKED2(5, 2)
DW_BLOCKED2(7, 1) DW_BLOCKED2(7, 2)
#undef DW_BLOCKED2
#undef DW_BLOCKED

static const dw_blocked_fn SIMD(dw_blocked)[3][2][2] = {
	{ DW_PAIR(3, 1), DW_PAIR(3, 2) },
	{ DW_PAIR(5, 1), DW_PAIR(5, 2) },
	{ DW_PAIR(7, 1), DW_PAIR(7, 2) },
};
#undef DW_PAIR
