/* kernels: one instruction set's implementation of kernels.h. This file is
 * compiled once per set with IPM_ISA naming it (portable, avx2, avx512) and
 * that set's -m flags; kernels_dispatch.c chooses among them. Vectors are 8
 * floats (GCC vector extensions); fma is the hardware instruction where the
 * set has it and fmaf (the same single rounding) otherwise, so every set
 * computes the same bits. */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "ipmpi/learn/kernels.h"

#if defined(__AVX2__)
#include <immintrin.h>
#endif

#ifndef IPM_ISA
#define IPM_ISA portable
#endif
#define NAME2(a, b) a##_##b
#define NAME(a, b) NAME2(a, b)
#define K(name) NAME(name, IPM_ISA)
#define STR2(a) #a
#define STR(a) STR2(a)

#define W 8
typedef float v8 __attribute__((vector_size(4 * W)));
typedef int32_t vi8 __attribute__((vector_size(4 * W)));

_Static_assert(W == IPM_LANES, "a lane vector is one v8");

static inline v8 vfma(v8 a, v8 b, v8 c)
{
#if defined(__FMA__)
    return (v8)_mm256_fmadd_ps((__m256)a, (__m256)b, (__m256)c);
#else
    v8 r;
    for (int l = 0; l < W; l++)
        r[l] = fmaf(a[l], b[l], c[l]);
    return r;
#endif
}

static inline v8 splat(float x)
{
    return (v8){x, x, x, x, x, x, x, x};
}

static inline v8 load(const float *p)
{
    v8 v;
    memcpy(&v, p, sizeof v);
    return v;
}

static inline void store(float *p, v8 v)
{
    memcpy(p, &v, sizeof v);
}

/* The first n (1..8) of 8 places: a mask made once per column block, so
 * loads and stores of a partial block cost one masked instruction where
 * the set has them. */
typedef struct part {
    int n;
    vi8 mask;
} part;

static inline part part_of(int n)
{
    part p = {n, {0}};
    for (int l = 0; l < W; l++)
        p.mask[l] = l < n ? -1 : 0;
    return p;
}

/* The first p.n values at ptr, zeros after. */
static inline v8 load_part(const float *ptr, part p)
{
    if (p.n == W)
        return load(ptr);
#if defined(__AVX512VL__)
    return (v8)_mm256_maskz_loadu_ps((__mmask8)((1u << p.n) - 1), ptr);
#elif defined(__AVX2__)
    return (v8)_mm256_maskload_ps(ptr, (__m256i)p.mask);
#else
    v8 v = splat(0.0f);
    for (int l = 0; l < p.n; l++)
        v[l] = ptr[l];
    return v;
#endif
}

static inline void store_part(float *ptr, v8 v, part p)
{
    if (p.n == W) {
        store(ptr, v);
        return;
    }
#if defined(__AVX512VL__)
    _mm256_mask_storeu_ps(ptr, (__mmask8)((1u << p.n) - 1), (__m256)v);
#elif defined(__AVX2__)
    _mm256_maskstore_ps(ptr, (__m256i)p.mask, (__m256)v);
#else
    for (int l = 0; l < p.n; l++)
        ptr[l] = v[l];
#endif
}

static inline v8 select(vi8 mask, v8 yes, v8 no)
{
    return (v8)(((vi8)yes & mask) | ((vi8)no & ~mask));
}

/* ---- element-wise functions --------------------------------------------- */

/* e^x: x = k ln2 + r, |r| <= ln2/2 (Cody-Waite with fma), e^r by its Taylor
 * polynomial of degree 7 (remainder < 6e-9 relative), times 2^k built in
 * the exponent bits. x is first clamped to [-87.33654, 88], so the result
 * saturates at e^88 above and at 2^-126 e^r (about 1.2e-38) below; NaN
 * stays NaN. Rounding to k uses the 1.5 * 2^23 trick, with no float to int
 * conversion. */
static inline v8 exp8(v8 x)
{
    const float lo = -87.33654f, hi = 88.0f, magic = 12582912.0f;
    const float ln2_hi = 0.693145752f, ln2_lo = 1.42860677e-6f;
    x = select(x < splat(lo), splat(lo), x);
    x = select(x > splat(hi), splat(hi), x);
    v8 t = x * splat(1.44269504f) + splat(magic);
    v8 k = t - splat(magic);
    vi8 bits = ((vi8)t - (vi8)splat(magic) + 127) << 23;
    v8 r = vfma(-k, splat(ln2_hi), x);
    r = vfma(-k, splat(ln2_lo), r);
    v8 p = splat(1.0f / 5040.0f);
    p = vfma(p, r, splat(1.0f / 720.0f));
    p = vfma(p, r, splat(1.0f / 120.0f));
    p = vfma(p, r, splat(1.0f / 24.0f));
    p = vfma(p, r, splat(1.0f / 6.0f));
    p = vfma(p, r, splat(0.5f));
    p = vfma(p, r, splat(1.0f));
    p = vfma(p, r, splat(1.0f));
    return p * (v8)bits;
}

/* tanh: below |x| = 0.55 its Taylor series to x^17 (next term < 3e-9),
 * above 1 - 2 / (e^(2|x|) + 1); then the sign of x (so -0 stays -0). |x| is
 * clamped to 10, beyond 9.01 tanh is 1 in float. */
static inline v8 tanh8(v8 x)
{
    const vi8 sign = (vi8)splat(-0.0f);
    v8 ax = (v8)((vi8)x & ~sign);
    v8 z = x * x;
    v8 q = splat(6404582.0f / 10854718875.0f);
    q = vfma(q, z, splat(-929569.0f / 638512875.0f));
    q = vfma(q, z, splat(21844.0f / 6081075.0f));
    q = vfma(q, z, splat(-1382.0f / 155925.0f));
    q = vfma(q, z, splat(62.0f / 2835.0f));
    q = vfma(q, z, splat(-17.0f / 315.0f));
    q = vfma(q, z, splat(2.0f / 15.0f));
    q = vfma(q, z, splat(-1.0f / 3.0f));
    v8 small = vfma(x * z, q, x);
    v8 clamped = select(ax > splat(10.0f), splat(10.0f), ax);
    v8 e = exp8(clamped + clamped);
    v8 large = splat(1.0f) - splat(2.0f) / (e + splat(1.0f));
    v8 y = select(ax < splat(0.55f), small, large);
    return (v8)((vi8)y | ((vi8)x & sign));
}

static inline v8 sigmoid8(v8 x)
{
    return splat(1.0f) / (splat(1.0f) + exp8(-x));
}

/* Applies F to n values in place; the tail goes through a padded vector, so
 * every value takes the same path. */
#define MAP(F)                                                                           \
    size_t full = n - n % W;                                                             \
    for (size_t i = 0; i < full; i += W)                                                 \
        store(v + i, F(load(v + i)));                                                    \
    if (full < n)                                                                        \
        store_part(v + full, F(load_part(v + full, part_of((int)(n - full)))),                  \
                   part_of((int)(n - full)));

static void K(tanh_all)(float *v, size_t n)
{
    MAP(tanh8)
}

static void K(sigmoid_all)(float *v, size_t n)
{
    MAP(sigmoid8)
}

static void K(exp_all)(float *v, size_t n)
{
    MAP(exp8)
}

/* ---- one replica, row-major --------------------------------------------- */

#define BLOCK_ROWS 8

/* z[r][j] = bias[j] (0 when NULL), then fma(a[r][i], w[i][j], z) for i in
 * order: a is rows x k, w k x n, z rows x n. Vectors run over 8 output
 * columns; 8 rows at a time share each load of w. */
static void rows_product(int rows, int k, int n, const float *a, const float *w,
                         const float *bias, float *z)
{
    for (int j0 = 0; j0 < n; j0 += W) {
        part nj = part_of(n - j0 < W ? n - j0 : W);
        v8 start = bias ? load_part(bias + j0, nj) : splat(0.0f);
        int r = 0;
        for (; r + BLOCK_ROWS <= rows; r += BLOCK_ROWS) {
            v8 acc[BLOCK_ROWS];
            for (int q = 0; q < BLOCK_ROWS; q++)
                acc[q] = start;
            const float *ar = a + (size_t)r * (size_t)k;
            for (int i = 0; i < k; i++) {
                v8 wv = load_part(w + (size_t)i * (size_t)n + (size_t)j0, nj);
                for (int q = 0; q < BLOCK_ROWS; q++)
                    acc[q] = vfma(splat(ar[(size_t)q * (size_t)k + (size_t)i]), wv, acc[q]);
            }
            for (int q = 0; q < BLOCK_ROWS; q++)
                store_part(z + (size_t)(r + q) * (size_t)n + (size_t)j0, acc[q], nj);
        }
        for (; r < rows; r++) {
            v8 acc = start;
            const float *ar = a + (size_t)r * (size_t)k;
            for (int i = 0; i < k; i++)
                acc = vfma(splat(ar[i]), load_part(w + (size_t)i * (size_t)n + (size_t)j0, nj),
                           acc);
            store_part(z + (size_t)r * (size_t)n + (size_t)j0, acc, nj);
        }
    }
}

static void K(dense_forward)(int rows, int k, int n, const float *a, const float *w,
                             const float *b, float *z)
{
    rows_product(rows, k, n, a, w, b, z);
}

static void K(dense_input_grad)(int rows, int k, int n, const float *g, const float *wt,
                                float *d)
{
    rows_product(rows, n, k, g, wt, NULL, d);
}

#define BLOCK_INPUTS 8

/* dw[i][j] = fma(a[r][i], g[r][j], dw) and db[j] += g[r][j], rows in
 * order, continuing from the values dw and db hold; vectors over 8 columns
 * j, 8 inputs i at a time share each load of g. */
static void K(dense_weight_grad)(int rows, int k, int n, const float *a, const float *g,
                                 float *dw, float *db)
{
    for (int j0 = 0; j0 < n; j0 += W) {
        part nj = part_of(n - j0 < W ? n - j0 : W);
        for (int i0 = 0; i0 < k; i0 += BLOCK_INPUTS) {
            int ni = k - i0 < BLOCK_INPUTS ? k - i0 : BLOCK_INPUTS;
            v8 acc[BLOCK_INPUTS];
            for (int q = 0; q < BLOCK_INPUTS; q++)
                acc[q] = q < ni ? load_part(dw + (size_t)(i0 + q) * (size_t)n + (size_t)j0, nj)
                                : splat(0.0f);
            for (int r = 0; r < rows; r++) {
                v8 gv = load_part(g + (size_t)r * (size_t)n + (size_t)j0, nj);
                const float *ar = a + (size_t)r * (size_t)k + (size_t)i0;
                if (ni == BLOCK_INPUTS)
                    for (int q = 0; q < BLOCK_INPUTS; q++)
                        acc[q] = vfma(splat(ar[q]), gv, acc[q]);
                else
                    for (int q = 0; q < ni; q++)
                        acc[q] = vfma(splat(ar[q]), gv, acc[q]);
            }
            for (int q = 0; q < ni; q++)
                store_part(dw + (size_t)(i0 + q) * (size_t)n + (size_t)j0, acc[q], nj);
        }
        v8 sum = load_part(db + j0, nj);
        for (int r = 0; r < rows; r++)
            sum = sum + load_part(g + (size_t)r * (size_t)n + (size_t)j0, nj);
        store_part(db + j0, sum, nj);
    }
}

/* ---- replicas side by side: one lane per replica ------------------------ */

#define VEC(p, i) load((p) + (size_t)(i) * W)
#define PUT(p, i, v) store((p) + (size_t)(i) * W, (v))
#define BLOCK_COLS 8

/* z[r][j] = b[j], then fma(a[r][i], w[i][j], z) for i in order. */
static void K(lanes_forward)(int rows, int k, int n, const float *a, const float *w,
                             const float *b, float *z)
{
    for (int r = 0; r < rows; r++) {
        const float *ar = a + (size_t)r * (size_t)k * W;
        float *zr = z + (size_t)r * (size_t)n * W;
        for (int j0 = 0; j0 < n; j0 += BLOCK_COLS) {
            int nj = n - j0 < BLOCK_COLS ? n - j0 : BLOCK_COLS;
            v8 acc[BLOCK_COLS];
            for (int q = 0; q < nj; q++)
                acc[q] = VEC(b, j0 + q);
            for (int i = 0; i < k; i++) {
                v8 av = VEC(ar, i);
                const float *wi = w + ((size_t)i * (size_t)n + (size_t)j0) * W;
                for (int q = 0; q < nj; q++)
                    acc[q] = vfma(av, VEC(wi, q), acc[q]);
            }
            for (int q = 0; q < nj; q++)
                PUT(zr, j0 + q, acc[q]);
        }
    }
}

/* d[r][i] = 0, then fma(g[r][j], w[i][j], d) for j in order. */
static void K(lanes_input_grad)(int rows, int k, int n, const float *g, const float *w,
                                float *d)
{
    for (int r = 0; r < rows; r++) {
        const float *gr = g + (size_t)r * (size_t)n * W;
        float *dr = d + (size_t)r * (size_t)k * W;
        for (int i0 = 0; i0 < k; i0 += BLOCK_COLS) {
            int ni = k - i0 < BLOCK_COLS ? k - i0 : BLOCK_COLS;
            v8 acc[BLOCK_COLS];
            for (int q = 0; q < ni; q++)
                acc[q] = splat(0.0f);
            for (int j = 0; j < n; j++) {
                v8 gv = VEC(gr, j);
                for (int q = 0; q < ni; q++)
                    acc[q] = vfma(gv, VEC(w, (size_t)(i0 + q) * (size_t)n + (size_t)j), acc[q]);
            }
            for (int q = 0; q < ni; q++)
                PUT(dr, i0 + q, acc[q]);
        }
    }
}

/* dw[i][j] = fma(a[r][i], g[r][j], dw) and db[j] += g[r][j], rows in order,
 * continuing from the values dw and db hold. */
static void K(lanes_weight_grad)(int rows, int k, int n, const float *a, const float *g,
                                 float *dw, float *db)
{
    for (int i = 0; i < k; i++)
        for (int j0 = 0; j0 < n; j0 += BLOCK_COLS) {
            int nj = n - j0 < BLOCK_COLS ? n - j0 : BLOCK_COLS;
            float *dwi = dw + ((size_t)i * (size_t)n + (size_t)j0) * W;
            v8 acc[BLOCK_COLS];
            for (int q = 0; q < nj; q++)
                acc[q] = VEC(dwi, q);
            for (int r = 0; r < rows; r++) {
                v8 av = VEC(a, (size_t)r * (size_t)k + (size_t)i);
                const float *gr = g + ((size_t)r * (size_t)n + (size_t)j0) * W;
                for (int q = 0; q < nj; q++)
                    acc[q] = vfma(av, VEC(gr, q), acc[q]);
            }
            for (int q = 0; q < nj; q++)
                PUT(dwi, q, acc[q]);
        }
    for (int j = 0; j < n; j++) {
        v8 sum = VEC(db, j);
        for (int r = 0; r < rows; r++)
            sum = sum + VEC(g, (size_t)r * (size_t)n + (size_t)j);
        PUT(db, j, sum);
    }
}

const ipm_kernels K(ipm_kernels) = {
    .name = STR(IPM_ISA),
    .dense_forward = K(dense_forward),
    .dense_input_grad = K(dense_input_grad),
    .dense_weight_grad = K(dense_weight_grad),
    .lanes_forward = K(lanes_forward),
    .lanes_input_grad = K(lanes_input_grad),
    .lanes_weight_grad = K(lanes_weight_grad),
    .tanh = K(tanh_all),
    .sigmoid = K(sigmoid_all),
    .exp = K(exp_all),
};
