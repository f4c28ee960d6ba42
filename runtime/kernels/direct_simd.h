/*
 * direct_simd.h: the vector bodies of direct.c, included by it once per
 * instruction set after simd.h.  Defines, for the set:
 *
 *	SIMD(dc_fns)     the phase planes of one group of one image, and a
 *	                 band of output rows of one group (struct dc_fns,
 *	                 direct.c)
 */

/*
 * Phase planes of channels [0, cg) of x (C image planes of h x w): plane
 * (c, py, px) row i, column j is padded image row sh * i + py, column
 * sw * j + px, that is image row sh * i + py - pt, column sw * j + px - pl,
 * zero outside the image; rows of st->pw floats, st->plane floats apart.
 * Strides 1 and 2 copy and split rows a vector at a time (the last one
 * masked: the next row or plane may already be written); others go
 * element by element.
 */
static SIMD_FN void SIMD(dc_phases)(const struct dc_state *st, const float *x,
				    float *p)
{
	const struct lm_conv_desc *d = &st->d;
	int64_t sh = d->sh, sw = d->sw, pw = st->pw;

	for (int64_t c = 0; c < st->cg; c++, x += d->h * d->w)
	for (int64_t py = 0; py < sh; py++)
	for (int64_t i = 0; i < st->ph; i++) {
		int64_t iy = sh * i + py - d->pt;
		/* the sw phase rows of padded row sh * i + py */
		float *row = p + ((c * sh + py) * sw * st->ph + i) * pw;
		int64_t step = st->ph * pw;   /* from phase px to px + 1 */
		if (iy < 0 || iy >= d->h) {
			for (int64_t px = 0; px < sw; px++)
				for (int64_t j = 0; j < pw; j++)
					row[px * step + j] = 0.0f;
			continue;
		}
		const float *xr = x + iy * d->w;
		if (sw == 1) {
			for (int64_t j = 0; j < pw; j += VL) {
				int64_t c0 = j - d->pl;
				VF a = v_load_range(xr + c0, -c0, d->w - c0);
				if (j + VL <= pw)
					v_store(row + j, a);
				else
					v_store_n(row + j, a, pw - j);
			}
		} else if (sw == 2) {
			for (int64_t j = 0; j < pw; j += VL) {
				int64_t c0 = 2 * j - d->pl;
				VF a = v_load_range(xr + c0, -c0, d->w - c0);
				VF b = v_load_range(xr + c0 + VL, -c0 - VL,
						    d->w - c0 - VL), e, o;
				v_unzip(a, b, &e, &o);
				if (j + VL <= pw) {
					v_store(row + j, e);
					v_store(row + step + j, o);
				} else {
					v_store_n(row + j, e, pw - j);
					v_store_n(row + step + j, o, pw - j);
				}
			}
		} else {
			for (int64_t px = 0; px < sw; px++)
				for (int64_t j = 0; j < pw; j++) {
					int64_t ix = sw * j + px - d->pl;
					row[px * step + j] = ix >= 0 &&
						ix < d->w ? xr[ix] : 0.0f;
				}
		}
	}
}

/*
 * Where the VL positions from flat index f go: the lanes that are
 * outputs (column < ow, position < f_end) as a bit mask, and the output
 * index of the first of them.  Consecutive output positions stay
 * consecutive in the (NCHW) output across a row end, so the selected
 * lanes are stored packed from there.
 */
SIMD_INLINE void SIMD(dc_dest)(const struct dc_state *st, int64_t f,
			       int64_t f_end, int64_t *y, unsigned *mask)
{
	int64_t pw = st->pw, ow = st->d.ow, ox = f % pw;

	*y = f / pw * ow + (ox < ow ? ox : ow);
	if (ox + VL <= ow && f + VL <= f_end) {
		*mask = (1u << VL) - 1;
		return;
	}
	*mask = 0;
	for (int l = 0; l < VL && f + l < f_end; l++) {
		if (ox < ow)
			*mask |= 1u << l;
		if (++ox == pw)
			ox = 0;
	}
}

/*
 * MR output channels x NV vectors of positions: A (a sliver, tap k's MR
 * weights at a + k * MR) times B (tap k's positions at b + off[k]), plus
 * bias (MR values, or none), stored into the planes y, y + np, ... (rows
 * past mr are not) at the destinations of dc_dest.
 */
SIMD_INLINE void SIMD(dc_tile)(const int MR, const int NV, int64_t kt,
			       const float *a, const float *b,
			       const int32_t *off, const float *bias, int mr,
			       float *y, int64_t np, const int64_t *dy,
			       const unsigned *dm)
{
	VF acc[8][6];

#pragma GCC unroll 8
	for (int i = 0; i < MR; i++) {
		VF v = bias && i < mr ? v_set1(bias[i]) : v_zero();
#pragma GCC unroll 6
		for (int j = 0; j < NV; j++)
			acc[i][j] = v;
	}
	for (int64_t k = 0; k < kt; k++, a += MR) {
		const float *bk = b + off[k];
		VF bv[6];
#pragma GCC unroll 6
		for (int j = 0; j < NV; j++)
			bv[j] = v_load(bk + VL * j);
#pragma GCC unroll 8
		for (int i = 0; i < MR; i++) {
			VF av = v_set1(a[i]);
#pragma GCC unroll 6
			for (int j = 0; j < NV; j++)
				acc[i][j] = v_fma(av, bv[j], acc[i][j]);
		}
	}
#pragma GCC unroll 8
	for (int i = 0; i < MR; i++) {
		if (i >= mr)
			break;
#pragma GCC unroll 6
		for (int j = 0; j < NV; j++)
			v_store_packed(y + i * np + dy[j], acc[i][j], dm[j]);
	}
}

/* One strip of NV vectors of positions from f, every sliver. */
SIMD_INLINE void SIMD(dc_strip)(const int MR, const int NV,
				const struct dc_state *st, const float *p,
				const float *pa, const float *bias, int64_t f,
				int64_t f1, float *y)
{
	int64_t np = st->d.oh * st->d.ow, dy[6];
	unsigned dm[6];

#pragma GCC unroll 6
	for (int j = 0; j < NV; j++)
		SIMD(dc_dest)(st, f + VL * j, f1, &dy[j], &dm[j]);
	for (int64_t m0 = 0; m0 < st->mg; m0 += MR) {
		int mr = st->mg - m0 < MR ? (int)(st->mg - m0) : MR;
		SIMD(dc_tile)(MR, NV, st->kt, pa + m0 * st->kt, p + f, st->off,
			      bias ? bias + m0 : NULL, mr, y + m0 * np, np, dy,
			      dm);
	}
}

/*
 * Output rows [oy0, oy1) of one group (y: its first output plane): on the
 * flat grid of the phase planes (position f = oy * pw + ox, of which
 * ox >= ow are computed and not stored), strips of NV vectors, each
 * through every sliver of MR output channels while its taps are in L1;
 * the last strip only as many vectors as are left (7x7 outputs are 61
 * positions: 4 vectors, not 6).
 */
SIMD_INLINE void SIMD(dc_rows)(const int MR, const int NV,
			       const struct dc_state *st, const float *p,
			       const float *pa, const float *bias,
			       int64_t oy0, int64_t oy1, float *y)
{
	int64_t f = oy0 * st->pw, f1 = (oy1 - 1) * st->pw + st->d.ow;

	for (; f + NV * VL <= f1; f += NV * VL)
		SIMD(dc_strip)(MR, NV, st, p, pa, bias, f, f1, y);
	int64_t rv = (f1 - f + VL - 1) / VL;
	if (rv >= NV)
		SIMD(dc_strip)(MR, NV, st, p, pa, bias, f, f1, y);
	else if (NV > 1 && rv == 1)
		SIMD(dc_strip)(MR, 1, st, p, pa, bias, f, f1, y);
	else if (NV > 2 && rv == 2)
		SIMD(dc_strip)(MR, 2, st, p, pa, bias, f, f1, y);
	else if (NV > 3 && rv == 3)
		SIMD(dc_strip)(MR, 3, st, p, pa, bias, f, f1, y);
	else if (NV > 4 && rv == 4)
		SIMD(dc_strip)(MR, 4, st, p, pa, bias, f, f1, y);
	else if (NV > 5 && rv == 5)
		SIMD(dc_strip)(MR, 5, st, p, pa, bias, f, f1, y);
}

#define DC_BAND(mr, nv)                                                  \
	static SIMD_FN void SIMD(dc_band_##mr##_##nv)(                   \
		const struct dc_state *st, const float *p, const float *pa, \
		const float *bias, int64_t oy0, int64_t oy1, float *y)  \
	{                                                                \
		SIMD(dc_rows)(mr, nv, st, p, pa, bias, oy0, oy1, y);    \
	}
#if VREGS >= 32
DC_BAND(8, 3) DC_BAND(4, 6)
static const struct dc_fns SIMD(dc_fns) = {
	SIMD(dc_phases), { SIMD(dc_band_8_3), SIMD(dc_band_4_6) }, { 8, 4 },
};
#else
DC_BAND(4, 3)
static const struct dc_fns SIMD(dc_fns) = {
	SIMD(dc_phases), { SIMD(dc_band_4_3), SIMD(dc_band_4_3) }, { 4, 4 },
};
#endif
#undef DC_BAND
