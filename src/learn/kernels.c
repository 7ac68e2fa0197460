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

/* ---- element-wise functions --------------------------------------------- */

/* The element-wise functions run on vectors of E floats: 16 where the set
 * has 512-bit registers, 8 elsewhere. Every value goes through the same
 * operations whatever E is, so the bits do not change. */
#if defined(__AVX512F__)
#define E 16
#else
#define E 8
#endif
typedef float ve __attribute__((vector_size(4 * E)));
typedef int32_t vie __attribute__((vector_size(4 * E)));

static inline ve efma(ve a, ve b, ve c)
{
#if defined(__AVX512F__)
    return (ve)_mm512_fmadd_ps((__m512)a, (__m512)b, (__m512)c);
#elif defined(__FMA__)
    return (ve)_mm256_fmadd_ps((__m256)a, (__m256)b, (__m256)c);
#else
    ve r;
    for (int l = 0; l < E; l++)
        r[l] = fmaf(a[l], b[l], c[l]);
    return r;
#endif
}

static inline ve esplat(float x)
{
    ve v;
    for (int l = 0; l < E; l++)
        v[l] = x;
    return v;
}

static inline ve eselect(vie mask, ve yes, ve no)
{
    return (ve)(((vie)yes & mask) | ((vie)no & ~mask));
}

/* The first n (0..E) values at ptr, zeros after; and the store of as many. */
static inline ve eload_part(const float *ptr, int n)
{
#if defined(__AVX512F__)
    return (ve)_mm512_maskz_loadu_ps((__mmask16)((1u << n) - 1), ptr);
#else
    if (n == W)
        return load(ptr);
    return load_part(ptr, part_of(n));
#endif
}

static inline void estore_part(float *ptr, ve v, int n)
{
#if defined(__AVX512F__)
    _mm512_mask_storeu_ps(ptr, (__mmask16)((1u << n) - 1), (__m512)v);
#else
    store_part(ptr, v, part_of(n));
#endif
}

/* e^x: x = k ln2 + r, |r| <= ln2/2 (Cody-Waite with fma), e^r by its Taylor
 * polynomial of degree 7 (remainder < 6e-9 relative), times 2^k built in
 * the exponent bits. x is first clamped to [-87.33654, 88], so the result
 * saturates at e^88 above and at 2^-126 e^r (about 1.2e-38) below; NaN
 * stays NaN. Rounding to k uses the 1.5 * 2^23 trick, with no float to int
 * conversion. */
static inline ve exp_e(ve x)
{
    const float lo = -87.33654f, hi = 88.0f, magic = 12582912.0f;
    const float ln2_hi = 0.693145752f, ln2_lo = 1.42860677e-6f;
    x = eselect(x < esplat(lo), esplat(lo), x);
    x = eselect(x > esplat(hi), esplat(hi), x);
    ve t = x * esplat(1.44269504f) + esplat(magic);
    ve k = t - esplat(magic);
    vie bits = ((vie)t - (vie)esplat(magic) + 127) << 23;
    ve r = efma(-k, esplat(ln2_hi), x);
    r = efma(-k, esplat(ln2_lo), r);
    ve p = esplat(1.0f / 5040.0f);
    p = efma(p, r, esplat(1.0f / 720.0f));
    p = efma(p, r, esplat(1.0f / 120.0f));
    p = efma(p, r, esplat(1.0f / 24.0f));
    p = efma(p, r, esplat(1.0f / 6.0f));
    p = efma(p, r, esplat(0.5f));
    p = efma(p, r, esplat(1.0f));
    p = efma(p, r, esplat(1.0f));
    return p * (ve)bits;
}

/* tanh as a rational function x P(x^2) / Q(x^2) of degrees 13 and 6
 * (the minimax coefficients Eigen uses), with |x| clamped to 7.905311, 1
 * from |x| = 9 on (tanh rounds to 1 in float from 9.01), x itself below
 * |x| = 0.0004 (where tanh x = x in float); then the sign of x. One division and 11 fmas a value,
 * no exponential: about half the cost of 1 - 2 / (e^2x + 1) with a series near 0, for 4.6 ulp
 * (2.7e-7) at worst instead of 1.4 ulp (test_kernels measures both bounds). */
static inline ve tanh_e(ve x)
{
    const vie sign = (vie)esplat(-0.0f);
    ve ax = (ve)((vie)x & ~sign);
    ve c = eselect(ax > esplat(7.90531110763549805f), esplat(7.90531110763549805f), ax);
    ve z = c * c;
    ve p = esplat(-2.76076847742355e-16f);
    p = efma(p, z, esplat(2.00018790482477e-13f));
    p = efma(p, z, esplat(-8.60467152213735e-11f));
    p = efma(p, z, esplat(5.12229709037114e-08f));
    p = efma(p, z, esplat(1.48572235717979e-05f));
    p = efma(p, z, esplat(6.37261928875436e-04f));
    p = efma(p, z, esplat(4.89352455891786e-03f));
    p = p * c;
    ve q = esplat(1.19825839466702e-06f);
    q = efma(q, z, esplat(1.18534705686654e-04f));
    q = efma(q, z, esplat(2.26843463243900e-03f));
    q = efma(q, z, esplat(4.89352518554385e-03f));
    ve y = eselect(ax < esplat(0.0004f), ax, p / q);
    y = eselect(ax >= esplat(9.0f), esplat(1.0f), y);
    return (ve)((vie)y | ((vie)x & sign));
}

/* ln x for positive normal x (callers clamp away zero, subnormals and NaN):
 * x = m 2^e with m in [sqrt(1/2), sqrt(2)), ln m from Cephes logf's degree-9
 * polynomial in m - 1, and e ln 2 added in two parts (0.693359375 exact,
 * and the rest) so the sum keeps its low bits; about 1 ulp. */
static inline ve log_e(ve x)
{
    vie bits = (vie)x;
    vie e = (bits >> 23) - 126;
    ve m = (ve)((bits & 0x007fffff) | 0x3f000000); /* in [0.5, 1) */
    vie low = m < esplat(0.707106781f);            /* -1 where m < sqrt(1/2) */
    e = e + low;
    m = m + (ve)((vie)m & low) - esplat(1.0f); /* 2m - 1 there, m - 1 elsewhere */
    ve z = m * m;
    ve p = esplat(7.0376836292e-2f);
    p = efma(p, m, esplat(-1.1514610310e-1f));
    p = efma(p, m, esplat(1.1676998740e-1f));
    p = efma(p, m, esplat(-1.2420140846e-1f));
    p = efma(p, m, esplat(1.4249322787e-1f));
    p = efma(p, m, esplat(-1.6668057665e-1f));
    p = efma(p, m, esplat(2.0000714765e-1f));
    p = efma(p, m, esplat(-2.4999993993e-1f));
    p = efma(p, m, esplat(3.3333331174e-1f));
    ve fe = __builtin_convertvector(e, ve);
    ve y = p * m * z;
    y = efma(fe, esplat(-2.12194440e-4f), y);
    y = efma(z, esplat(-0.5f), y);
    return efma(fe, esplat(0.693359375f), m + y);
}

static inline ve sigmoid_e(ve x)
{
    return esplat(1.0f) / (esplat(1.0f) + exp_e(-x));
}

/* Applies F to n values in place; the tail goes through a padded vector, so
 * every value takes the same path. */
#define MAP(F)                                                                                     \
    size_t full = n - n % E;                                                                       \
    for (size_t i = 0; i < full; i += E) {                                                         \
        ve x;                                                                                      \
        memcpy(&x, v + i, sizeof x);                                                               \
        x = F(x);                                                                                  \
        memcpy(v + i, &x, sizeof x);                                                               \
    }                                                                                              \
    if (full < n)                                                                                  \
        estore_part(v + full, F(eload_part(v + full, (int)(n - full))), (int)(n - full));

static void K(tanh_all)(float *v, size_t n)
{
    MAP(tanh_e)
}

static void K(sigmoid_all)(float *v, size_t n)
{
    MAP(sigmoid_e)
}

static void K(exp_all)(float *v, size_t n)
{
    MAP(exp_e)
}

static void K(log_all)(float *v, size_t n)
{
    MAP(log_e)
}

/* g = G(a, g) for n values: the derivatives of the activations, applied to
 * the gradient from above. The tail goes through padded vectors. */
#define MAP2(G)                                                                                    \
    size_t full = n - n % E;                                                                       \
    for (size_t i = 0; i < full; i += E) {                                                         \
        ve x, y;                                                                                   \
        memcpy(&x, a + i, sizeof x);                                                               \
        memcpy(&y, g + i, sizeof y);                                                               \
        y = G(x, y);                                                                               \
        memcpy(g + i, &y, sizeof y);                                                               \
    }                                                                                              \
    if (full < n) {                                                                                \
        int rest = (int)(n - full);                                                                \
        estore_part(g + full, G(eload_part(a + full, rest), eload_part(g + full, rest)), rest);    \
    }

static inline ve tanh_grad_e(ve a, ve g)
{
    return g * (esplat(1.0f) - a * a);
}

static inline ve sigmoid_grad_e(ve a, ve g)
{
    return g * (a * (esplat(1.0f) - a));
}

static inline ve relu_e(ve a)
{
    return eselect(a > esplat(0.0f), a, esplat(0.0f));
}

static inline ve relu_grad_e(ve a, ve g)
{
    return eselect(a > esplat(0.0f), g, esplat(0.0f));
}

static void K(tanh_grad)(const float *a, float *g, size_t n)
{
    MAP2(tanh_grad_e)
}

static void K(sigmoid_grad)(const float *a, float *g, size_t n)
{
    MAP2(sigmoid_grad_e)
}

static void K(relu_all)(float *v, size_t n)
{
    MAP(relu_e)
}

static void K(relu_grad)(const float *a, float *g, size_t n)
{
    MAP2(relu_grad_e)
}

/* ---- one replica, row-major --------------------------------------------- */

#define BLOCK_ROWS 8

/* z[r][j] = bias[j] (0 when NULL), then fma(a[r][i], w[i][j], z) for i in
 * order: a is rows x k, w k x n, z rows x n. Vectors run over 8 output
 * columns; 8 rows at a time share each load of w. */
static void rows_product(int rows, int k, int n, const float *a, const float *w, const float *bias,
                         float *z)
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
                acc =
                    vfma(splat(ar[i]), load_part(w + (size_t)i * (size_t)n + (size_t)j0, nj), acc);
            store_part(z + (size_t)r * (size_t)n + (size_t)j0, acc, nj);
        }
    }
}

static void K(dense_forward)(int rows, int k, int n, const float *a, const float *w, const float *b,
                             float *z)
{
    rows_product(rows, k, n, a, w, b, z);
}

static void K(dense_input_grad)(int rows, int k, int n, const float *g, const float *wt, float *d)
{
    rows_product(rows, n, k, g, wt, NULL, d);
}

#define BLOCK_INPUTS 8

/* The sparse weight gradient serves layers of at most this many inputs
 * (a conv's patch: 25 for 5x5 on one channel), whose gradient has at most
 * one value in SPARSE_DENSITY not zero; rows are listed SPARSE_ROWS at a
 * time. */
#define SPARSE_VECS 8
#define SPARSE_DENSITY 4
#define SPARSE_ROWS 256
#define SPARSE_COLUMNS 16

/* g's value is not zero (NaN counts, as in the dense loop): a test of its
 * bits, without the compare that has to order NaN. */
static inline int not_zero(float x)
{
    uint32_t bits;
    memcpy(&bits, &x, sizeof bits);
    return (bits & 0x7fffffffu) != 0;
}

static size_t count_not_zero(const float *g, size_t n)
{
    size_t count = 0;
    for (size_t i = 0; i < n; i++)
        count += (size_t)not_zero(g[i]);
    return count;
}

/* For every column j < n, its rows of g not zero among [r0, end) into
 * at + j * SPARSE_ROWS, in order, and their count into m[j]: one pass over
 * the rows. */
static void rows_not_zero(const float *g, int n, int r0, int end, int32_t *at, int *m)
{
    for (int j = 0; j < n; j++)
        m[j] = 0;
    for (int r = r0; r < end; r++)
        for (int j = 0; j < n; j++) {
            at[j * SPARSE_ROWS + m[j]] = r;
            m[j] += not_zero(g[(size_t)r * (size_t)n + (size_t)j]);
        }
}

/* Column j of dw and db, continued over the listed rows of g: the same
 * fma, on the same values in the same row order, as the dense loop below,
 * which only adds exact zeros besides (a and g finite), so the bits are
 * the same. VECS vectors hold the column, in registers. */
static inline __attribute__((always_inline)) void weight_grad_column(int k, int n, int j,
                                                                     const float *a, const float *g,
                                                                     const int32_t *at, int m,
                                                                     float *dw, float *db, int vecs)
{
    float column[SPARSE_VECS * W] = {0};
    for (int i = 0; i < k; i++)
        column[i] = dw[(size_t)i * (size_t)n + (size_t)j];
    v8 acc[SPARSE_VECS];
    for (int v = 0; v < vecs; v++)
        acc[v] = load(column + v * W);
    part tail = part_of(k - (vecs - 1) * W);
    float sum = db[j];
    for (int t = 0; t < m; t++) {
        float gv = g[(size_t)at[t] * (size_t)n + (size_t)j];
        const float *ar = a + (size_t)at[t] * (size_t)k;
        for (int v = 0; v < vecs - 1; v++)
            acc[v] = vfma(load(ar + v * W), splat(gv), acc[v]);
        acc[vecs - 1] = vfma(load_part(ar + (vecs - 1) * W, tail), splat(gv), acc[vecs - 1]);
        sum += gv;
    }
    for (int v = 0; v < vecs; v++)
        store(column + v * W, acc[v]);
    for (int i = 0; i < k; i++)
        dw[(size_t)i * (size_t)n + (size_t)j] = column[i];
    db[j] = sum;
}

/* The columns of dw and db over the rows of g, SPARSE_ROWS at a time. */
static inline __attribute__((always_inline)) void weight_grad_listed(int rows, int k, int n,
                                                                     const float *a, const float *g,
                                                                     float *dw, float *db, int vecs)
{
    int32_t at[SPARSE_COLUMNS * SPARSE_ROWS];
    int m[SPARSE_COLUMNS];
    for (int r0 = 0; r0 < rows; r0 += SPARSE_ROWS) {
        rows_not_zero(g, n, r0, rows - r0 < SPARSE_ROWS ? rows : r0 + SPARSE_ROWS, at, m);
        for (int j = 0; j < n; j++)
            weight_grad_column(k, n, j, a, g, at + j * SPARSE_ROWS, m[j], dw, db, vecs);
    }
}

#define SPARSE_CASE(VECS)                                                                          \
    case VECS:                                                                                     \
        weight_grad_listed(rows, k, n, a, g, dw, db, VECS);                                        \
        break;

/* The weight gradient of a g mostly zero: after a relu and a maxpool, a
 * conv's g holds about one value in five (the fashion CNN), and the dense
 * loop spent most of its fmas adding zeros. */
// clang-format off
static int weight_grad_sparse(int rows, int k, int n, const float *a, const float *g, float *dw,
                              float *db)
{
    if (k > SPARSE_VECS * W || n > SPARSE_COLUMNS || rows <= 0)
        return 0;
    /* A first look at a few rows keeps the count off the dense gradients
     * of tanh and softmax layers, whose products are a few fmas a value. */
    size_t values = (size_t)rows * (size_t)n, first = values < SPARSE_ROWS ? values : SPARSE_ROWS;
    if (count_not_zero(g, first) * SPARSE_DENSITY > first ||
        count_not_zero(g, values) * SPARSE_DENSITY > values)
        return 0;
    switch ((k + W - 1) / W) {
        SPARSE_CASE(1) SPARSE_CASE(2) SPARSE_CASE(3) SPARSE_CASE(4)
        SPARSE_CASE(5) SPARSE_CASE(6) SPARSE_CASE(7) SPARSE_CASE(8)
    default:
        return 0;
    }
    return 1;
}
// clang-format on

/* dw[i][j] = fma(a[r][i], g[r][j], dw) and db[j] += g[r][j], rows in
 * order, continuing from the values dw and db hold; vectors over 8 columns
 * j, 8 inputs i at a time share each load of g. */
static void K(dense_weight_grad)(int rows, int k, int n, const float *a, const float *g, float *dw,
                                 float *db)
{
    if (weight_grad_sparse(rows, k, n, a, g, dw, db))
        return;
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

#define VEC(p, i) load((p) + (size_t)(i)*W)
#define PUT(p, i, v) store((p) + (size_t)(i)*W, (v))
/* Register blocks of RB rows x CB columns: each w vector loaded serves RB
 * rows, each a vector CB columns, and the RB x CB independent chains hide
 * the latency of fma on layers a few units wide. Tails take blocks of
 * fewer rows or columns; the order of each chain is the same. */
#define RB 4
#define CB 4

static inline __attribute__((always_inline)) void
lanes_forward_block(int rb, int cb, int k, int n, const float *a, const float *w, const float *b,
                    float *z, int r, int j0)
{
    v8 acc[RB][CB];
    for (int q = 0; q < rb; q++)
        for (int c = 0; c < cb; c++)
            acc[q][c] = VEC(b, j0 + c);
    for (int i = 0; i < k; i++) {
        v8 wv[CB];
        for (int c = 0; c < cb; c++)
            wv[c] = VEC(w, (size_t)i * (size_t)n + (size_t)(j0 + c));
        for (int q = 0; q < rb; q++) {
            v8 av = VEC(a, (size_t)(r + q) * (size_t)k + (size_t)i);
            for (int c = 0; c < cb; c++)
                acc[q][c] = vfma(av, wv[c], acc[q][c]);
        }
    }
    for (int q = 0; q < rb; q++)
        for (int c = 0; c < cb; c++)
            PUT(z, (size_t)(r + q) * (size_t)n + (size_t)(j0 + c), acc[q][c]);
}

/* Calls BLOCK(rb, cb, ...) with compile-time rb, cb for full blocks and
 * rb = 1 or cb = 1 steps for the tails. */
#define BLOCKED(BLOCK, rows, cols, ...)                                                            \
    do {                                                                                           \
        int r_ = 0;                                                                                \
        for (; r_ + RB <= (rows); r_ += RB) {                                                      \
            int c_ = 0;                                                                            \
            for (; c_ + CB <= (cols); c_ += CB)                                                    \
                BLOCK(RB, CB, __VA_ARGS__, r_, c_);                                                \
            for (; c_ < (cols); c_++)                                                              \
                BLOCK(RB, 1, __VA_ARGS__, r_, c_);                                                 \
        }                                                                                          \
        for (; r_ < (rows); r_++) {                                                                \
            int c_ = 0;                                                                            \
            for (; c_ + CB <= (cols); c_ += CB)                                                    \
                BLOCK(1, CB, __VA_ARGS__, r_, c_);                                                 \
            for (; c_ < (cols); c_++)                                                              \
                BLOCK(1, 1, __VA_ARGS__, r_, c_);                                                  \
        }                                                                                          \
    } while (0)

/* z[r][j] = b[j], then fma(a[r][i], w[i][j], z) for i in order. */
static void K(lanes_forward)(int rows, int k, int n, const float *a, const float *w, const float *b,
                             float *z)
{
    BLOCKED(lanes_forward_block, rows, n, k, n, a, w, b, z);
}

static inline __attribute__((always_inline)) void lanes_input_block(int rb, int cb, int k, int n,
                                                                    const float *g, const float *w,
                                                                    float *d, int r, int i0)
{
    v8 acc[RB][CB];
    for (int q = 0; q < rb; q++)
        for (int c = 0; c < cb; c++)
            acc[q][c] = splat(0.0f);
    for (int j = 0; j < n; j++) {
        v8 wv[CB];
        for (int c = 0; c < cb; c++)
            wv[c] = VEC(w, (size_t)(i0 + c) * (size_t)n + (size_t)j);
        for (int q = 0; q < rb; q++) {
            v8 gv = VEC(g, (size_t)(r + q) * (size_t)n + (size_t)j);
            for (int c = 0; c < cb; c++)
                acc[q][c] = vfma(gv, wv[c], acc[q][c]);
        }
    }
    for (int q = 0; q < rb; q++)
        for (int c = 0; c < cb; c++)
            PUT(d, (size_t)(r + q) * (size_t)k + (size_t)(i0 + c), acc[q][c]);
}

/* d[r][i] = 0, then fma(g[r][j], w[i][j], d) for j in order. */
static void K(lanes_input_grad)(int rows, int k, int n, const float *g, const float *w, float *d)
{
    BLOCKED(lanes_input_block, rows, k, k, n, g, w, d);
}

/* A block of RB inputs i x CB columns j of dw, over all rows. */
static inline __attribute__((always_inline)) void lanes_weight_block(int rb, int cb, int rows,
                                                                     int k, int n, const float *a,
                                                                     const float *g, float *dw,
                                                                     int i0, int j0)
{
    v8 acc[RB][CB];
    for (int q = 0; q < rb; q++)
        for (int c = 0; c < cb; c++)
            acc[q][c] = VEC(dw, (size_t)(i0 + q) * (size_t)n + (size_t)(j0 + c));
    for (int r = 0; r < rows; r++) {
        v8 gv[CB];
        for (int c = 0; c < cb; c++)
            gv[c] = VEC(g, (size_t)r * (size_t)n + (size_t)(j0 + c));
        for (int q = 0; q < rb; q++) {
            v8 av = VEC(a, (size_t)r * (size_t)k + (size_t)(i0 + q));
            for (int c = 0; c < cb; c++)
                acc[q][c] = vfma(av, gv[c], acc[q][c]);
        }
    }
    for (int q = 0; q < rb; q++)
        for (int c = 0; c < cb; c++)
            PUT(dw, (size_t)(i0 + q) * (size_t)n + (size_t)(j0 + c), acc[q][c]);
}

/* dw[i][j] = fma(a[r][i], g[r][j], dw) and db[j] += g[r][j], rows in order,
 * continuing from the values dw and db hold. */
static void K(lanes_weight_grad)(int rows, int k, int n, const float *a, const float *g, float *dw,
                                 float *db)
{
    BLOCKED(lanes_weight_block, k, n, rows, k, n, a, g, dw);
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
    .log = K(log_all),
    .tanh_grad = K(tanh_grad),
    .sigmoid_grad = K(sigmoid_grad),
    .relu = K(relu_all),
    .relu_grad = K(relu_grad),
};
