/* kde: the pairwise sums and their combination into the bounds (the
 * formulas are in the header). One exp per pair that passes the filter: the
 * Bhattacharyya term exp(-D/(8v)) is computed and the KL term exp(-D/(2v))
 * is its fourth power, two multiplications. */
#include "ipmpi/info/kde.h"

#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ipmpi/base/error.h"

/* Terms exp(a) with a below this are left out: all of them together, over
 * at most 2^31 points, stay below 2^31 e^-64 < 2^-60 of a sum that is at
 * least 1 (it holds the point's own term), less than that sum's rounding.
 * It saves the exp and the exact distance wherever points are far apart. */
#define TERM_FLOOR (-64.0)

#define PI 3.14159265358979323846
#define FILTER_CHUNK 32 /* columns the filter rules out at once */

int ipm_kde_check_shape(const ipm_kde_shape *s, char *err)
{
    if (s->n < 1 || s->n_replicas < 1 || s->width < 1)
        return ipm_fail(err, "KDE bounds of %d samples x %d replicas x %d units: all must be >= 1",
                        s->n, s->n_replicas, s->width);
    if (!(s->var > 0) || !isfinite(s->var))
        return ipm_fail(err, "KDE noise variance %g: must be positive and finite", s->var);
    if ((long long)s->n * s->n_replicas > INT_MAX)
        return ipm_fail(err, "KDE bounds of %d samples x %d replicas: too many points", s->n,
                        s->n_replicas);
    return 0;
}

static int blocks_per_replica(const ipm_kde_shape *s)
{
    return (s->n + IPM_KDE_ROW_BLOCK - 1) / IPM_KDE_ROW_BLOCK;
}

int ipm_kde_row_blocks(const ipm_kde_shape *s)
{
    return s->n_replicas * blocks_per_replica(s);
}

void ipm_kde_row_block(const ipm_kde_shape *s, int g, int *replica, int *first, int *count)
{
    int per = blocks_per_replica(s);
    *replica = g / per;
    *first = (g % per) * IPM_KDE_ROW_BLOCK;
    *count = s->n - *first < IPM_KDE_ROW_BLOCK ? s->n - *first : IPM_KDE_ROW_BLOCK;
}

void ipm_kde_norms(const float *a, int n, int width, float *norm2)
{
    for (int i = 0; i < n; i++) {
        const float *p = a + (size_t)i * width;
        double s = 0;
        for (int k = 0; k < width; k++)
            s += (double)p[k] * p[k];
        norm2[i] = (float)s;
    }
}

/* The float filter: a pair can add a term when
 *   ||a||^2 + ||b||^2 - 2 a.b <= cut + slack (||a||^2 + ||b||^2),
 * cut = -TERM_FLOOR * 8v. A float dot product of w terms is off by at
 * most about w u (||a||^2 + ||b||^2) / 2 (u = 2^-24), the norms and the test
 * itself by a few u more: slack = (w + 16) 2^-20 is 8 times and more that. */
typedef struct filter {
    float one_minus_slack, cut;
} filter;

static filter make_filter(int width, double var)
{
    double slack = (width + 16) * 0x1p-20;
    return (filter){(float)(1.0 - slack), (float)(-TERM_FLOOR * 8.0 * var)};
}

/* ||a - b||^2 from the differences, in double. */
static inline double exact_sqdist(const float *a, const float *b, int width)
{
    double s = 0;
    for (int k = 0; k < width; k++) {
        double d = (double)a[k] - (double)b[k];
        s += d * d;
    }
    return s;
}

/* One row's running sums over all points and over its class. */
typedef struct row_sums {
    double all_kl, all_bd, y_kl, y_bd;
} row_sums;

/* Adds exp(-D/2v) and exp(-D/8v) of one pair (scale = -1 / (8v)) to the
 * row's sums and returns them in *kl, *bd for the conditional ones. */
static inline void add_pair(row_sums *r, double d2, double scale, int same_class, double *kl,
                            double *bd)
{
    double a = d2 * scale;
    *kl = *bd = 0;
    if (a < TERM_FLOOR)
        return;
    double b = a == 0 ? 1.0 : exp(a), b2 = b * b; /* equal points are common in saturated layers */
    *bd = b;
    *kl = b2 * b2;
    r->all_kl += *kl;
    r->all_bd += b;
    if (same_class) {
        r->y_kl += *kl;
        r->y_bd += b;
    }
}

/* Whether any of columns j0..j1-1 passes the filter: a loop the compiler
 * vectorises, so that runs of far columns cost little. */
static int any_candidate(const float *dots, const float *col_norm2, int j0, int j1, filter f,
                         float bound)
{
    int any = 0;
    for (int j = j0; j < j1; j++)
        any |= f.one_minus_slack * col_norm2[j] - 2.0f * dots[j] <= bound;
    return any;
}

/* Columns j0..j1-1 of row i: the filter, then the exact terms, in column
 * order. */
static void add_columns(row_sums *r, const ipm_kde_points *p, int i, const int32_t *col_y,
                        int32_t y_row, int j0, int j1, double scale, filter f)
{
    const float *dots = p->dots + (size_t)i * p->ld, *a = p->rows + (size_t)i * p->width;
    float bound = f.cut - f.one_minus_slack * p->row_norm2[i];
    double kl, bd;
    for (int c0 = j0; c0 < j1; c0 += FILTER_CHUNK) {
        int c1 = j1 - c0 < FILTER_CHUNK ? j1 : c0 + FILTER_CHUNK;
        if (!any_candidate(dots, p->col_norm2, c0, c1, f, bound))
            continue;
        for (int j = c0; j < c1; j++)
            if (f.one_minus_slack * p->col_norm2[j] - 2.0f * dots[j] <= bound)
                add_pair(r, exact_sqdist(a, p->cols + (size_t)j * p->width, p->width), scale,
                         col_y[j] == y_row, &kl, &bd);
    }
}

void ipm_kde_add_block(const ipm_kde_block *b, const ipm_kde_points *p, const int32_t *y,
                       double var, double *sums)
{
    double scale = -1.0 / (8.0 * var);
    filter f = make_filter(p->width, var);
    const int32_t *col_y = y + b->col_first;
    for (int i = 0; i < b->n_rows; i++) {
        double *s = sums + (size_t)i * IPM_KDE_N_SUMS;
        row_sums r = {s[IPM_KDE_ALL_KL], s[IPM_KDE_ALL_BD], s[IPM_KDE_Y_KL], s[IPM_KDE_Y_BD]};
        int32_t y_row = y[b->row_first + i];
        /* The column of the row's own sample, if in this block, always exact. */
        int jx = b->row_first + i - b->col_first;
        if (jx < 0 || jx >= b->n_cols) {
            add_columns(&r, p, i, col_y, y_row, 0, b->n_cols, scale, f);
        } else {
            add_columns(&r, p, i, col_y, y_row, 0, jx, scale, f);
            double kl, bd;
            add_pair(&r,
                     exact_sqdist(p->rows + (size_t)i * p->width, p->cols + (size_t)jx * p->width,
                                  p->width),
                     scale, 1, &kl, &bd);
            s[IPM_KDE_X_KL] += kl;
            s[IPM_KDE_X_BD] += bd;
            add_columns(&r, p, i, col_y, y_row, jx + 1, b->n_cols, scale, f);
        }
        s[IPM_KDE_ALL_KL] = r.all_kl;
        s[IPM_KDE_ALL_BD] = r.all_bd;
        s[IPM_KDE_Y_KL] = r.y_kl;
        s[IPM_KDE_Y_BD] = r.y_bd;
    }
}

void ipm_kde_row_logs(const double *sums, int n_rows, double logs[IPM_KDE_N_SUMS])
{
    for (int k = 0; k < IPM_KDE_N_SUMS; k++)
        logs[k] = 0;
    for (int i = 0; i < n_rows; i++)
        for (int k = 0; k < IPM_KDE_N_SUMS; k++)
            logs[k] += log(sums[(size_t)i * IPM_KDE_N_SUMS + k]);
}

static int compare_labels(const void *a, const void *b)
{
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

/* H(Y) in nats of n labels: ln n - sum_y (n_y / n) ln n_y, classes in
 * increasing label order. */
static int label_entropy(const int32_t *y, int n, double *h, char *err)
{
    int32_t *sorted = malloc((size_t)n * sizeof *sorted);
    if (!sorted)
        return ipm_fail(err, "out of memory for the labels of %d samples", n);
    memcpy(sorted, y, (size_t)n * sizeof *sorted);
    qsort(sorted, (size_t)n, sizeof *sorted, compare_labels);
    int rc = 0;
    if (sorted[0] < 0)
        rc = ipm_fail(err, "KDE bounds: negative label %d", (int)sorted[0]);
    double s = 0;
    for (int i = 0; i < n && rc == 0;) {
        int j = i;
        while (j < n && sorted[j] == sorted[i])
            j++;
        s += (double)(j - i) * log((double)(j - i));
        i = j;
    }
    free(sorted);
    *h = log((double)n) - s / n;
    return rc;
}

int ipm_kde_combine(const ipm_kde_shape *s, const double *block_logs, const int32_t *y,
                    ipm_kde_bounds *out, char *err)
{
    double h_y = 0;
    if (ipm_kde_check_shape(s, err) || label_entropy(y, s->n, &h_y, err))
        return -1;
    double L[IPM_KDE_N_SUMS] = {0};
    int n_blocks = ipm_kde_row_blocks(s);
    for (int g = 0; g < n_blocks; g++)
        for (int k = 0; k < IPM_KDE_N_SUMS; k++)
            L[k] += block_logs[(size_t)g * IPM_KDE_N_SUMS + k];
    double m = (double)s->n * s->n_replicas, ln_n = log((double)s->n), ln_m = log(m);
    for (int k = 0; k < IPM_KDE_N_SUMS; k++)
        L[k] /= m;
    double bits = 1.0 / log(2.0);
    double noise = 0.5 * s->width * (log(2.0 * PI * s->var) + 1.0); /* d/2 ln(2 pi e v) */
    out->xt_upper = (ln_n - L[IPM_KDE_ALL_KL] + L[IPM_KDE_X_BD]) * bits;
    out->xt_lower = (ln_n - L[IPM_KDE_ALL_BD] + L[IPM_KDE_X_KL]) * bits;
    out->ty_upper = (h_y - L[IPM_KDE_ALL_KL] + L[IPM_KDE_Y_KL]) * bits;
    out->ty_lower = (h_y - L[IPM_KDE_ALL_BD] + L[IPM_KDE_Y_BD]) * bits;
    out->h_t_kl = (noise + ln_m - L[IPM_KDE_ALL_KL]) * bits;
    out->h_t_bd = (noise + ln_m - L[IPM_KDE_ALL_BD]) * bits;
    out->h_t_given_x_kl = (noise + log((double)s->n_replicas) - L[IPM_KDE_X_KL]) * bits;
    out->h_t_given_x_bd = (noise + log((double)s->n_replicas) - L[IPM_KDE_X_BD]) * bits;
    out->h_t_given_y_kl = (noise + ln_m - h_y - L[IPM_KDE_Y_KL]) * bits;
    out->h_t_given_y_bd = (noise + ln_m - h_y - L[IPM_KDE_Y_BD]) * bits;
    return 0;
}
