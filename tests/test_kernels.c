/* kernels: every instruction set against a scalar re-statement of the
 * operation order kernels.h fixes (bit for bit), the side-by-side kernels
 * lane by lane against the one-replica kernels (bit for bit: a replica's
 * numbers do not depend on its neighbours), and the activations against
 * double precision over a sweep (the figures are printed for the README). */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ipmpi/base/rng.h"
#include "ipmpi/learn/kernels.h"
#include "check.h"

static const char *const sets[] = {"portable", "avx2", "avx512"};

static float *random_floats(ipm_rng *rng, size_t n)
{
    float *v = malloc(n * sizeof(float) + 1);
    for (size_t i = 0; i < n; i++)
        v[i] = (float)(2.0 * ipm_rng_uniform(rng) - 1.0);
    return v;
}

static int same_bits(const float *a, const float *b, size_t n)
{
    return memcmp(a, b, n * sizeof(float)) == 0;
}

/* ---- the operation order, restated -------------------------------------- */

static void ref_forward(int rows, int k, int n, const float *a, const float *w, const float *b,
                        float *z)
{
    for (int r = 0; r < rows; r++)
        for (int j = 0; j < n; j++) {
            float acc = b ? b[j] : 0.0f;
            for (int i = 0; i < k; i++)
                acc = fmaf(a[r * k + i], w[i * n + j], acc);
            z[r * n + j] = acc;
        }
}

static void ref_weight_grad(int rows, int k, int n, const float *a, const float *g, float *dw,
                            float *db)
{
    for (int i = 0; i < k; i++)
        for (int j = 0; j < n; j++)
            for (int r = 0; r < rows; r++)
                dw[i * n + j] = fmaf(a[r * k + i], g[r * n + j], dw[i * n + j]);
    for (int j = 0; j < n; j++)
        for (int r = 0; r < rows; r++)
            db[j] = db[j] + g[r * n + j];
}

static void check_rows_kernels(const ipm_kernels *kern, int rows, int k, int n)
{
    ipm_rng rng;
    ipm_rng_init(&rng, 5, (uint32_t)(rows * 10000 + k * 100 + n), 1);
    float *a = random_floats(&rng, (size_t)rows * k), *w = random_floats(&rng, (size_t)k * n);
    float *b = random_floats(&rng, (size_t)n), *g = random_floats(&rng, (size_t)rows * n);
    float *z = calloc((size_t)rows * n, sizeof(float)), *zr = calloc((size_t)rows * n, 4);
    kern->dense_forward(rows, k, n, a, w, b, z);
    ref_forward(rows, k, n, a, w, b, zr);
    CHECK(same_bits(z, zr, (size_t)rows * n));

    /* input gradient: g W^T, i.e. the forward of g on W^T without bias */
    float *wt = malloc((size_t)k * n * sizeof(float));
    for (int i = 0; i < k; i++)
        for (int j = 0; j < n; j++)
            wt[j * k + i] = w[i * n + j];
    float *d = calloc((size_t)rows * k, 4), *dr = calloc((size_t)rows * k, 4);
    kern->dense_input_grad(rows, k, n, g, wt, d);
    ref_forward(rows, n, k, g, wt, NULL, dr);
    CHECK(same_bits(d, dr, (size_t)rows * k));

    /* weight gradient in two calls: the chain goes on over the split */
    float *dw = calloc((size_t)k * n, 4), *db = calloc((size_t)n, 4);
    float *dwr = calloc((size_t)k * n, 4), *dbr = calloc((size_t)n, 4);
    int half = rows / 2;
    kern->dense_weight_grad(half, k, n, a, g, dw, db);
    kern->dense_weight_grad(rows - half, k, n, a + (size_t)half * k, g + (size_t)half * n, dw, db);
    ref_weight_grad(rows, k, n, a, g, dwr, dbr);
    CHECK(same_bits(dw, dwr, (size_t)k * n));
    CHECK(same_bits(db, dbr, (size_t)n));
    free(a), free(w), free(b), free(g), free(z), free(zr), free(wt), free(d), free(dr);
    free(dw), free(db), free(dwr), free(dbr);
}

/* A weight gradient mostly zero (a conv's after relu and maxpool: the
 * kernels list its rows not zero), with signed zeros and values only in
 * some columns, in three calls: the bits of the dense order all the same. */
static void check_sparse_weight_grad(const ipm_kernels *kern, int rows, int k, int n, int every)
{
    ipm_rng rng;
    ipm_rng_init(&rng, 7, (uint32_t)(rows * 10000 + k * 100 + n), (uint32_t)every);
    float *a = random_floats(&rng, (size_t)rows * k), *g = random_floats(&rng, (size_t)rows * n);
    for (size_t i = 0; i < (size_t)rows * n; i++)
        if (i % (size_t)every != 0 || (int)(i % (size_t)n) == n - 1)
            g[i] = i % 3 == 0 ? -0.0f : 0.0f; /* the last column stays empty */
    float *dw = calloc((size_t)k * n, 4), *db = calloc((size_t)n, 4);
    float *dwr = calloc((size_t)k * n, 4), *dbr = calloc((size_t)n, 4);
    int cut[] = {0, rows / 3, rows / 3 + 1, rows};
    for (int c = 0; c < 3; c++)
        kern->dense_weight_grad(cut[c + 1] - cut[c], k, n, a + (size_t)cut[c] * k,
                                g + (size_t)cut[c] * n, dw, db);
    ref_weight_grad(rows, k, n, a, g, dwr, dbr);
    CHECK(same_bits(dw, dwr, (size_t)k * n));
    CHECK(same_bits(db, dbr, (size_t)n));
    free(a), free(g), free(dw), free(db), free(dwr), free(dbr);
}

/* ---- side by side against one at a time --------------------------------- */

enum { L = IPM_LANES };

/* Lane l of v (count vectors) into out (count floats), and back. */
static void lane_out(const float *v, size_t count, int l, float *out)
{
    for (size_t i = 0; i < count; i++)
        out[i] = v[i * L + (size_t)l];
}

static int lane_equals(const float *v, size_t count, int l, const float *want)
{
    float *mine = malloc(count * sizeof(float) + 1);
    lane_out(v, count, l, mine);
    int same = same_bits(mine, want, count);
    free(mine);
    return same;
}

static void check_lanes_kernels(const ipm_kernels *kern, int rows, int k, int n)
{
    ipm_rng rng;
    ipm_rng_init(&rng, 6, (uint32_t)(rows * 10000 + k * 100 + n), 2);
    size_t na = (size_t)rows * k, nw = (size_t)k * n, nz = (size_t)rows * n;
    float *a = random_floats(&rng, na * L), *w = random_floats(&rng, nw * L);
    float *b = random_floats(&rng, (size_t)n * L), *g = random_floats(&rng, nz * L);
    float *z = malloc(nz * L * 4), *d = malloc(na * L * 4);
    float *dw = calloc(nw * L, 4), *db = calloc((size_t)n * L, 4);
    kern->lanes_forward(rows, k, n, a, w, b, z);
    kern->lanes_input_grad(rows, k, n, g, w, d);
    kern->lanes_weight_grad(rows, k, n, a, g, dw, db);
    float *al = malloc(na * 4 + 4), *wl = malloc(nw * 4 + 4), *bl = malloc((size_t)n * 4 + 4);
    float *gl = malloc(nz * 4 + 4), *zl = malloc(nz * 4 + 4), *dl = malloc(na * 4 + 4);
    float *wt = malloc(nw * 4 + 4), *dwl = calloc(nw + 1, 4), *dbl = calloc((size_t)n + 1, 4);
    for (int l = 0; l < L; l++) {
        lane_out(a, na, l, al), lane_out(w, nw, l, wl), lane_out(b, (size_t)n, l, bl);
        lane_out(g, nz, l, gl);
        kern->dense_forward(rows, k, n, al, wl, bl, zl);
        CHECK(lane_equals(z, nz, l, zl));
        for (int i = 0; i < k; i++)
            for (int j = 0; j < n; j++)
                wt[j * k + i] = wl[i * n + j];
        kern->dense_input_grad(rows, k, n, gl, wt, dl);
        CHECK(lane_equals(d, na, l, dl));
        memset(dwl, 0, nw * 4), memset(dbl, 0, (size_t)n * 4);
        kern->dense_weight_grad(rows, k, n, al, gl, dwl, dbl);
        CHECK(lane_equals(dw, nw, l, dwl));
        CHECK(lane_equals(db, (size_t)n, l, dbl));
    }
    free(a), free(w), free(b), free(g), free(z), free(d), free(dw), free(db), free(al);
    free(wl), free(bl), free(gl), free(zl), free(dl), free(wt), free(dwl), free(dbl);
}

static void test_products(void)
{
    static const int shapes[][3] = {{1, 1, 1}, {13, 12, 10}, {9, 3, 17}, {37, 25, 8},
                                    {5, 7, 2}, {16, 10, 7},  {3, 40, 9}, {64, 30, 64}};
    for (size_t s = 0; s < sizeof sets / sizeof sets[0]; s++) {
        const ipm_kernels *kern = ipm_kernels_named(sets[s]);
        if (!kern) {
            printf("kernels %s: not on this CPU\n", sets[s]);
            continue;
        }
        for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
            check_rows_kernels(kern, shapes[i][0], shapes[i][1], shapes[i][2]);
            check_lanes_kernels(kern, shapes[i][0], shapes[i][1], shapes[i][2]);
        }
        /* patches of 1 to 65 inputs, 1 to 17 columns, more rows than a
         * listing holds; one value in 2, 7 and 40 not zero */
        static const int sparse[][3] = {{700, 25, 8}, {600, 1, 1},  {300, 8, 16}, {900, 64, 10},
                                        {257, 9, 17}, {400, 65, 8}, {1, 25, 8}};
        static const int every[] = {2, 7, 40};
        for (size_t i = 0; i < sizeof sparse / sizeof sparse[0]; i++)
            for (size_t e = 0; e < sizeof every / sizeof every[0]; e++)
                check_sparse_weight_grad(kern, sparse[i][0], sparse[i][1], sparse[i][2], every[e]);
    }
    CHECK(ipm_kernels_named("portable") != NULL);
    CHECK(ipm_kernels_named("no such set") == NULL);
    CHECK(ipm_kernels_best() != NULL);
}

/* ---- activations ---------------------------------------------------------- */

/* Distance in units in the last place of float between a float result and
 * the double-precision truth. */
static double ulps(float got, double want)
{
    double spacing = nextafterf((float)fabs(want), INFINITY) - (float)fabs(want);
    return fabs((double)got - want) / spacing;
}

typedef struct sweep {
    const char *name;
    double lo, hi, max_abs, max_ulp;
} sweep;

/* Every float in [lo, hi) a step of (hi - lo) / 2^20 apart, plus the
 * edges of the polynomial branches, through every set: the same bits as
 * the portable set, and errors within bounds. */
static void check_function(sweep *s, void (*pick)(const ipm_kernels *, float *, size_t),
                           double (*truth)(double), double abs_bound, double ulp_bound)
{
    enum { N = 1 << 20 };
    float *x = malloc(N * sizeof(float)), *y = malloc(N * sizeof(float));
    float *other = malloc(N * sizeof(float));
    for (int i = 0; i < N; i++)
        x[i] = (float)(s->lo + (s->hi - s->lo) * i / N);
    memcpy(y, x, N * sizeof(float));
    pick(ipm_kernels_named("portable"), y, N);
    for (size_t k = 1; k < sizeof sets / sizeof sets[0]; k++) {
        const ipm_kernels *kern = ipm_kernels_named(sets[k]);
        if (!kern)
            continue;
        memcpy(other, x, N * sizeof(float));
        pick(kern, other, N);
        CHECK(same_bits(other, y, N));
    }
    for (int i = 0; i < N; i++) {
        double want = truth(x[i]), err = fabs((double)y[i] - want);
        s->max_abs = err > s->max_abs ? err : s->max_abs;
        double u = want != 0 ? ulps(y[i], want) : 0;
        s->max_ulp = u > s->max_ulp ? u : s->max_ulp;
    }
    printf("%-8s on [%g, %g): max abs error %.3g, max %.2f ulp\n", s->name, s->lo, s->hi,
           s->max_abs, s->max_ulp);
    CHECK(s->max_abs <= abs_bound);
    CHECK(s->max_ulp <= ulp_bound);
    free(x), free(y), free(other);
}

static void pick_tanh(const ipm_kernels *k, float *v, size_t n)
{
    k->tanh(v, n);
}

static void pick_sigmoid(const ipm_kernels *k, float *v, size_t n)
{
    k->sigmoid(v, n);
}

static void pick_exp(const ipm_kernels *k, float *v, size_t n)
{
    k->exp(v, n);
}

static void pick_log(const ipm_kernels *k, float *v, size_t n)
{
    k->log(v, n);
}

static double sigmoid(double x)
{
    return 1.0 / (1.0 + exp(-x));
}

static void test_activations(void)
{
    sweep t = {"tanh", -10, 10, 0, 0}, s = {"sigmoid", -20, 20, 0, 0};
    sweep e = {"exp", -80, 80, 0, 0};
    check_function(&t, pick_tanh, tanh, 5e-7, 8.0);
    check_function(&s, pick_sigmoid, sigmoid, 1.5e-7, 3.0);
    check_function(&e, pick_exp, exp, INFINITY, 1.5);
    /* log: probabilities near 1 (the loss's usual case), then wide */
    sweep l1 = {"log", 0.25, 4, 0, 0}, l2 = {"log", 1e-12, 1e-3, 0, 0};
    sweep l3 = {"log", 1, 1e30, 0, 0};
    check_function(&l1, pick_log, log, INFINITY, 1.0);
    check_function(&l2, pick_log, log, INFINITY, 1.0);
    check_function(&l3, pick_log, log, INFINITY, 1.0);

    /* edges: saturation, signs, NaN, a value alone against the same value in a block */
    float v[5] = {0.0f, -0.0f, 30.0f, -30.0f, NAN};
    ipm_kernels_best()->tanh(v, 5);
    CHECK(v[0] == 0.0f && v[1] == 0.0f && signbit(v[1]) && v[2] == 1.0f && v[3] == -1.0f);
    CHECK(isnan(v[4]));
    float big[3] = {-1000.0f, 0.0f, 1000.0f};
    ipm_kernels_best()->exp(big, 3);
    CHECK(big[0] >= 0.0f && big[0] < 2e-38f && big[1] == 1.0f && isfinite(big[2]));
}

/* The element-wise derivatives and relu: every set, every length up to two
 * vectors and a long one, bit for bit the plain C they replace. */
static void test_elementwise_grads(void)
{
    ipm_rng rng;
    ipm_rng_init(&rng, 11, 0, 0);
    for (size_t n = 1; n <= 40; n += n < 34 ? 1 : 6) {
        float *a = random_floats(&rng, n), *g = random_floats(&rng, n);
        if (n > 3) { /* relu's edges */
            a[0] = 0.0f;
            a[1] = -0.0f;
            a[2] = NAN;
        }
        float *want[4], *got = malloc(n * sizeof(float) + 1);
        for (int f = 0; f < 4; f++)
            want[f] = malloc(n * sizeof(float) + 1);
        for (size_t i = 0; i < n; i++) {
            want[0][i] = g[i] * (1.0f - a[i] * a[i]);
            want[1][i] = g[i] * (a[i] * (1.0f - a[i]));
            want[2][i] = a[i] > 0.0f ? a[i] : 0.0f;
            want[3][i] = a[i] > 0.0f ? g[i] : 0.0f;
        }
        for (size_t k = 0; k < sizeof sets / sizeof sets[0]; k++) {
            const ipm_kernels *kern = ipm_kernels_named(sets[k]);
            if (!kern)
                continue;
            memcpy(got, g, n * sizeof(float));
            kern->tanh_grad(a, got, n);
            CHECK(same_bits(got, want[0], n));
            memcpy(got, g, n * sizeof(float));
            kern->sigmoid_grad(a, got, n);
            CHECK(same_bits(got, want[1], n));
            memcpy(got, a, n * sizeof(float));
            kern->relu(got, n);
            CHECK(same_bits(got, want[2], n));
            memcpy(got, g, n * sizeof(float));
            kern->relu_grad(a, got, n);
            CHECK(same_bits(got, want[3], n));
        }
        for (int f = 0; f < 4; f++)
            free(want[f]);
        free(a), free(g), free(got);
    }
}

/* After ipm_kernels_flush_subnormals, a subnormal product is 0 and a
 * subnormal input counts as 0 (x86-64); normal values are untouched. Runs
 * last: the mode stays set for the rest of the process. */
static void test_flush_subnormals(void)
{
    volatile float tiny = 1e-30f, small = 1e-20f, sub = 1e-40f, one = 1.0f;
    CHECK(tiny * 1e-9f != 0.0f && fpclassify(tiny * 1e-9f) == FP_SUBNORMAL);
    ipm_kernels_flush_subnormals();
#if defined(__x86_64__)
    CHECK(tiny * 1e-9f == 0.0f); /* FTZ: the subnormal result becomes 0 */
    CHECK(sub * one == 0.0f);    /* DAZ: the subnormal input counts as 0 */
#endif
    CHECK(small * one == 1e-20f && tiny * 2.0f == 2e-30f);
}

int main(void)
{
    test_products();
    test_activations();
    test_elementwise_grads();
    test_flush_subnormals();
    return check_report("test_kernels");
}
