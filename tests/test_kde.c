/* kde (info): the pairwise sums and the bounds on point sets small enough to
 * do by hand, fed with dot products computed here (no BLAS):
 * two points, coincident points, far-apart points, a two-replica case
 * written out term by term; a sample's own pairs from exact distances;
 * column blocks of any size and dot products rounded in any way a float sum
 * can round them giving bitwise the same bounds; the block geometry and the
 * shape checks. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ipmpi/base/error.h"
#include "ipmpi/info/kde.h"
#include "check.h"

#define TOL 1e-13
#define LOG2(x) (log(x) / log(2.0))
#define TWO_PI_E (2 * 3.14159265358979323846 * 2.71828182845904523536)

static char err[IPM_ERRLEN];

/* How the dot products handed to the module are made: in double and
 * rounded (0), summed in float as sgemm may (1), or pushed off by the
 * largest error a float sum of width products can have, up (2) or down (3). */
static int dot_mode;

static float dot_of(const float *a, const float *b, int w)
{
    double exact = 0, magnitude = 0;
    float sum = 0;
    for (int k = 0; k < w; k++) {
        exact += (double)a[k] * b[k];
        magnitude += fabs((double)a[k] * b[k]);
        sum += a[k] * b[k];
    }
    double worst = (w + 1) * 0x1p-24 * magnitude;
    switch (dot_mode) {
    case 1:
        return sum;
    case 2:
        return (float)(exact + worst);
    case 3:
        return (float)(exact - worst);
    default:
        return (float)exact;
    }
}

/* The whole computation in column blocks of col_block samples; pts is
 * replicas x n x width. */
static int bounds_of(const ipm_kde_shape *s, const float *pts, const int32_t *y, int col_block,
                     ipm_kde_bounds *out)
{
    int nb = ipm_kde_row_blocks(s), w = s->width;
    size_t n_points = (size_t)s->n * s->n_replicas;
    double *logs = calloc((size_t)nb * IPM_KDE_N_SUMS, sizeof *logs);
    double *sums = calloc((size_t)IPM_KDE_ROW_BLOCK * IPM_KDE_N_SUMS, sizeof *sums);
    float *dots = malloc((size_t)IPM_KDE_ROW_BLOCK * col_block * sizeof *dots);
    float *norm2 = malloc(n_points * sizeof *norm2);
    ipm_kde_norms(pts, (int)n_points, w, norm2);
    for (int g = 0; g < nb; g++) {
        ipm_kde_block b;
        ipm_kde_row_block(s, g, &b.row_replica, &b.row_first, &b.n_rows);
        size_t row0 = (size_t)b.row_replica * s->n + b.row_first;
        memset(sums, 0, (size_t)IPM_KDE_ROW_BLOCK * IPM_KDE_N_SUMS * sizeof *sums);
        for (b.col_replica = 0; b.col_replica < s->n_replicas; b.col_replica++)
            for (b.col_first = 0; b.col_first < s->n; b.col_first += col_block) {
                b.n_cols = s->n - b.col_first < col_block ? s->n - b.col_first : col_block;
                size_t col0 = (size_t)b.col_replica * s->n + b.col_first;
                ipm_kde_points p = {
                    w,    pts + row0 * w,  pts + col0 * w, norm2 + row0, norm2 + col0,
                    dots, (size_t)b.n_cols};
                for (int i = 0; i < b.n_rows; i++)
                    for (int j = 0; j < b.n_cols; j++)
                        dots[(size_t)i * b.n_cols + j] =
                            dot_of(p.rows + (size_t)i * w, p.cols + (size_t)j * w, w);
                ipm_kde_add_block(&b, &p, y, s->var, sums);
            }
        ipm_kde_row_logs(sums, b.n_rows, logs + (size_t)g * IPM_KDE_N_SUMS);
    }
    int rc = ipm_kde_combine(s, logs, y, out, err);
    free(logs);
    free(sums);
    free(dots);
    free(norm2);
    return rc;
}

static double noise_bits(int width, double var)
{
    return 0.5 * width * LOG2(TWO_PI_E * var);
}

/* Two points at distance sqrt(D) in one dimension, classes 0 and 1:
 *   S_all = 1 + exp(-D/2v) (KL) or 1 + exp(-D/8v) (BD), S_y = S_x = 1, so
 *   I(X;T) = I(T;Y) = 1 - log2 S_all (H(Y) = 1 bit), and the entropies are
 *   noise + 1 - log2 S_all for T and the noise alone given X or Y. */
static void test_two_points(void)
{
    const double var = 0.5, D = 2.25;
    const float pts[2] = {0.0f, 1.5f};
    const int32_t y[2] = {0, 1};
    ipm_kde_shape s = {.n = 2, .n_replicas = 1, .width = 1, .var = var};
    ipm_kde_bounds b;
    CHECK(bounds_of(&s, pts, y, 512, &b) == 0);
    double kl = 1 + exp(-D / (2 * var)), bd = 1 + exp(-D / (8 * var));
    CHECK_NEAR(b.xt_upper, 1 - LOG2(kl), TOL);
    CHECK_NEAR(b.xt_lower, 1 - LOG2(bd), TOL);
    CHECK_NEAR(b.ty_upper, 1 - LOG2(kl), TOL);
    CHECK_NEAR(b.ty_lower, 1 - LOG2(bd), TOL);
    CHECK(b.xt_upper > b.xt_lower);
    CHECK_NEAR(b.h_t_kl, noise_bits(1, var) + 1 - LOG2(kl), TOL);
    CHECK_NEAR(b.h_t_bd, noise_bits(1, var) + 1 - LOG2(bd), TOL);
    CHECK_NEAR(b.h_t_given_x_kl, noise_bits(1, var), TOL);
    CHECK_NEAR(b.h_t_given_x_bd, noise_bits(1, var), TOL);
    CHECK_NEAR(b.h_t_given_y_kl, noise_bits(1, var), TOL);
    CHECK_NEAR(b.h_t_given_y_bd, noise_bits(1, var), TOL);
}

/* Every point the same: no information either way, and the mixture is one
 * Gaussian (entropy = noise) for every term and both distances. */
static void test_coincident(void)
{
    float pts[5 * 3];
    for (int i = 0; i < 15; i++)
        pts[i] = 0.25f * (float)(i % 3);
    const int32_t y[5] = {0, 1, 1, 2, 0};
    ipm_kde_shape s = {.n = 5, .n_replicas = 1, .width = 3, .var = 1e-3};
    ipm_kde_bounds b;
    CHECK(bounds_of(&s, pts, y, 2, &b) == 0);
    CHECK_NEAR(b.xt_upper, 0, TOL);
    CHECK_NEAR(b.xt_lower, 0, TOL);
    CHECK_NEAR(b.ty_upper, 0, TOL);
    CHECK_NEAR(b.ty_lower, 0, TOL);
    CHECK_NEAR(b.h_t_kl, noise_bits(3, 1e-3), TOL);
    CHECK_NEAR(b.h_t_given_y_bd, noise_bits(3, 1e-3), TOL);
}

/* Points so far apart that every cross term underflows: I(X;T) = log2 n
 * and I(T;Y) = H(Y) exactly, for both bounds; the entropies add log2 n. */
static void test_far_apart(void)
{
    enum { N = 600 };
    float pts[N * 2];
    int32_t y[N];
    for (int i = 0; i < N; i++) {
        pts[2 * i] = 10.0f * (float)(i % 25);
        pts[2 * i + 1] = 10.0f * (float)(i / 25);
        y[i] = i % 3 == 0; /* 200 ones: H(Y) = H(1/3) */
    }
    ipm_kde_shape s = {.n = N, .n_replicas = 1, .width = 2, .var = 1e-3};
    ipm_kde_bounds b;
    CHECK(bounds_of(&s, pts, y, 100, &b) == 0);
    double h_y = LOG2(3.0) - 2.0 / 3.0;
    CHECK_NEAR(b.xt_upper, LOG2((double)N), TOL);
    CHECK_NEAR(b.xt_lower, LOG2((double)N), TOL);
    CHECK_NEAR(b.ty_upper, h_y, TOL);
    CHECK_NEAR(b.ty_lower, h_y, TOL);
    CHECK_NEAR(b.h_t_kl, noise_bits(2, 1e-3) + LOG2((double)N), 1e-12);
}

/* Two replicas, two samples, one dimension, v = 1/2 (KL term exp(-D),
 * BD term exp(-D/4)); classes 0 and 1. Points t(i, r):
 *   t(0,0) = 0, t(0,1) = 1, t(1,0) = 3, t(1,1) = 3.
 * Pairs with D: (00,01) 1, (00,1r) 9, (01,1r) 4, (10,11) 0.
 *   S_all(00) = 1 + e^-D(1) + 2 e^-D(9), S_all(01) = 1 + e^-D(1) + 2 e^-D(4),
 *   S_all(10) = S_all(11) = 2 + e^-D(9) + e^-D(4);
 *   S_y = S_x: 1 + e^-D(1) for sample 0's points, 2 for sample 1's.
 * With L the mean of ln S over the 4 points, N = 2, H(Y) = ln 2:
 *   I(X;T) upper = ln 2 - L_all^KL + L_x^BD,  lower = ln 2 - L_all^BD + L_x^KL,
 *   I(T;Y) upper = ln 2 - L_all^KL + L_y^KL,  lower = ln 2 - L_all^BD + L_y^BD. */
static void test_two_replicas(void)
{
    const float pts[4] = {0, 3, 1, 3}; /* replica-major: t(0,0) t(1,0) t(0,1) t(1,1) */
    const int32_t y[2] = {0, 1};
    ipm_kde_shape s = {.n = 2, .n_replicas = 2, .width = 1, .var = 0.5};
    ipm_kde_bounds b;
    CHECK(bounds_of(&s, pts, y, 1, &b) == 0);
    double L_all[2], L_x[2]; /* [0] KL, [1] BD */
    for (int k = 0; k < 2; k++) {
        double q = k == 0 ? 1.0 : 0.25; /* exp(-D q) */
        double s00 = 1 + exp(-q) + 2 * exp(-9 * q), s01 = 1 + exp(-q) + 2 * exp(-4 * q);
        double s1 = 2 + exp(-9 * q) + exp(-4 * q);
        L_all[k] = (log(s00) + log(s01) + 2 * log(s1)) / 4;
        L_x[k] = (2 * log(1 + exp(-q)) + 2 * log(2.0)) / 4;
    }
    double ln2 = log(2.0);
    CHECK_NEAR(b.xt_upper, (ln2 - L_all[0] + L_x[1]) / ln2, TOL);
    CHECK_NEAR(b.xt_lower, (ln2 - L_all[1] + L_x[0]) / ln2, TOL);
    CHECK_NEAR(b.ty_upper, (ln2 - L_all[0] + L_x[0]) / ln2, TOL);
    CHECK_NEAR(b.ty_lower, (ln2 - L_all[1] + L_x[1]) / ln2, TOL);
    /* H(T|X) is a two-component mixture now, not the noise alone. */
    CHECK_NEAR(b.h_t_given_x_kl, noise_bits(1, 0.5) + (ln2 - L_x[0]) / ln2, TOL);
    CHECK(b.h_t_given_x_kl > noise_bits(1, 0.5));
    CHECK(b.xt_upper >= b.xt_lower);
}

/* The pair of a point with itself is exp(0) = 1 exactly, and another
 * replica's point of the same sample counts from its exact distance, even
 * with dot products as far off as a float sum can be. */
static void test_own_sample(void)
{
    const int32_t y[1] = {0};
    const float a[1] = {0.0f}, b[1] = {0.03125f}; /* D = 2^-10 */
    const float na[1] = {0.0f}, nb[1] = {0.03125f * 0.03125f};
    double sums[IPM_KDE_N_SUMS] = {0};
    float dot = 1e-4f; /* should be 0 */
    ipm_kde_block same = {0, 0, 1, 0, 0, 1}, other = {0, 0, 1, 1, 0, 1};
    ipm_kde_points self = {1, a, a, na, na, &dot, 1}, next = {1, a, b, na, nb, &dot, 1};
    ipm_kde_add_block(&same, &self, y, 1e-3, sums);
    CHECK(sums[IPM_KDE_ALL_KL] == 1.0 && sums[IPM_KDE_X_BD] == 1.0 && sums[IPM_KDE_Y_KL] == 1.0);
    ipm_kde_add_block(&other, &next, y, 1e-3, sums);
    double D = 0x1p-10;
    CHECK_NEAR(sums[IPM_KDE_X_KL], 1 + exp(-D / 2e-3), 1e-15);
    CHECK_NEAR(sums[IPM_KDE_X_BD], 1 + exp(-D / 8e-3), 1e-15);
    CHECK(sums[IPM_KDE_ALL_BD] == sums[IPM_KDE_X_BD]);
}

/* Any column block size, and dot products rounded any way a float sum of
 * the products can round them, give bitwise the same bounds: a row's sum
 * runs over the columns in one order whatever the blocks, and the dot
 * products only pick the pairs, whose terms come from exact distances.
 * Points on a coarse grid plus a little noise, so that many pairs sit near
 * the distance where the terms vanish, with norms near 100. */
static void test_blocks_and_rounding(void)
{
    enum { N = 300, R = 2, W = 3 };
    float pts[R * N * W];
    int32_t y[N];
    uint64_t z = 99;
    for (int i = 0; i < R * N * W; i++) {
        z = z * 6364136223846793005ULL + 1442695040888963407ULL;
        double u = (double)(z >> 40) / (double)(1 << 24);
        pts[i] = (float)(50.0 + 0.25 * (double)((z >> 20) % 8) + 0.02 * u);
    }
    for (int i = 0; i < N; i++)
        y[i] = i % 4;
    ipm_kde_shape s = {.n = N, .n_replicas = R, .width = W, .var = 1e-3};
    ipm_kde_bounds one, other;
    dot_mode = 0;
    CHECK(bounds_of(&s, pts, y, N, &one) == 0);
    const int sizes[3] = {1, 7, 512};
    for (int k = 0; k < 3; k++) {
        CHECK(bounds_of(&s, pts, y, sizes[k], &other) == 0);
        CHECK(memcmp(&one, &other, sizeof one) == 0);
    }
    for (dot_mode = 1; dot_mode <= 3; dot_mode++) {
        CHECK(bounds_of(&s, pts, y, 64, &other) == 0);
        CHECK(memcmp(&one, &other, sizeof one) == 0);
    }
    dot_mode = 0;
    CHECK(one.xt_upper > 1 && one.xt_upper < LOG2((double)N) - 0.5);
}

static void test_norms(void)
{
    const float a[4] = {1, 2, -3, 0.5f};
    float n2[2];
    ipm_kde_norms(a, 2, 2, n2);
    CHECK(n2[0] == 5.0f && n2[1] == 9.25f);
}

static void test_geometry_and_checks(void)
{
    ipm_kde_shape s = {.n = 600, .n_replicas = 3, .width = 2, .var = 1e-3};
    CHECK(ipm_kde_row_blocks(&s) == 9);
    int r, first, count;
    ipm_kde_row_block(&s, 5, &r, &first, &count);
    CHECK(r == 1 && first == 512 && count == 88);
    ipm_kde_row_block(&s, 6, &r, &first, &count);
    CHECK(r == 2 && first == 0 && count == 256);
    CHECK(ipm_kde_check_shape(&s, err) == 0);
    ipm_kde_shape bad = s;
    bad.var = 0;
    CHECK(ipm_kde_check_shape(&bad, err) == -1 && strstr(err, "variance"));
    bad.var = INFINITY;
    CHECK(ipm_kde_check_shape(&bad, err) == -1);
    bad = s;
    bad.n_replicas = 0;
    CHECK(ipm_kde_check_shape(&bad, err) == -1 && strstr(err, ">= 1"));
    bad = s;
    bad.n = 1 << 20;
    bad.n_replicas = 4096;
    CHECK(ipm_kde_check_shape(&bad, err) == -1 && strstr(err, "too many"));
    const int32_t y[2] = {0, -1};
    const float pts[2] = {0, 1};
    const double logs[IPM_KDE_N_SUMS] = {0};
    ipm_kde_shape two = {.n = 2, .n_replicas = 1, .width = 1, .var = 1};
    ipm_kde_bounds b;
    CHECK(bounds_of(&two, pts, y, 2, &b) == -1 && strstr(err, "negative label"));
    CHECK(ipm_kde_combine(&bad, logs, y, &b, err) == -1);
}

int main(void)
{
    test_two_points();
    test_coincident();
    test_far_apart();
    test_two_replicas();
    test_own_sample();
    test_blocks_and_rounding();
    test_norms();
    test_geometry_and_checks();
    return check_report("test_kde");
}
