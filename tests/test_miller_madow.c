/* miller_madow: hand-computed corrections on the 8-sample set of test_mi.c,
 * one replica and two; the cells of a count histogram; the data's cells;
 * and bitwise the same corrected point from tables filled in any order and
 * from a count histogram. */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "ipmpi/base/error.h"
#include "ipmpi/info/mi.h"
#include "ipmpi/info/miller_madow.h"
#include "ipmpi/info/table.h"
#include "check.h"

#define TOL 1e-12

/*   x_id = 0 0 1 1 2 3 4 5   H(X) = 2.5, 6 cells
 *   y    = 0 0 1 1 1 1 1 0   H(Y) = 3 - (3/8) log2 3 - (5/8) log2 5, 2 cells */
static const int32_t x8[8] = {0, 0, 1, 1, 2, 3, 4, 5};
static const int32_t y8[8] = {0, 0, 1, 1, 1, 1, 1, 0};
#define H_X8 2.5
#define H_Y8 (3.0 - 0.375 * log2(3.0) - 0.625 * log2(5.0))

static char err[IPM_ERRLEN];

static void fill(ipm_layer_tables *lt, const int32_t *t, int reverse)
{
    for (int k = 0; k < 8; k++) {
        int i = reverse ? 7 - k : k;
        ipm_pattern p = {(uint64_t)t[i] * 0x9e3779b97f4a7c15ULL, (uint64_t)t[i]};
        CHECK(ipm_layer_tables_add(lt, &p, &x8[i], &y8[i], 1, NULL, err) == 0);
    }
}

static void test_entropy(void)
{
    /* 8 samples in 4 cells of 2: H = 2 bits, + 3 / (16 ln 2). */
    CHECK_NEAR(ipm_mm_entropy(2.0, 4, 8), 2.0 + 3.0 / (16.0 * log(2.0)), 1e-15);
    CHECK(ipm_mm_entropy(0.0, 1, 8) == 0.0);     /* one cell: nothing to correct */
    CHECK(ipm_mm_entropy(0.0, 0, 0) == 0.0);     /* nothing counted */
    const uint32_t hist[6] = {5, 3, 2, 0, 0, 1}; /* hist[0] is not a cell */
    CHECK(ipm_hist_cells(hist, 5) == 6);
    CHECK(ipm_hist_cells(hist, 0) == 0);
}

/* t = a a a b b b c d (test_mi.c: I(X;T) = 2.75 - .75 log2 3, I(T;Y) =
 * 3.25 - .75 log2 3 - .625 log2 5). Cells: T 4, (X,T) 7 (0a 1a 1b 2b 3b 4c
 * 5d), (Y,T) 5 (0a 1a 1b 1c 0d), X 6, Y 2; N = 8:
 *   I_MM(X;T) = I(X;T) + (4 + 6 - 7 - 1) / (16 ln 2) = I(X;T) + 1 / (8 ln 2)
 *   I_MM(T;Y) = I(T;Y) + (4 + 2 - 5 - 1) / (16 ln 2) = I(T;Y). */
static void test_one_replica(void)
{
    const int32_t t[8] = {0, 0, 0, 1, 1, 1, 2, 3};
    ipm_layer_tables lt;
    CHECK(ipm_layer_tables_init(&lt, 8, err) == 0);
    fill(&lt, t, 0);
    CHECK(lt.t.len == 4 && lt.xt.len == 7 && lt.yt.len == 5 && lt.t.total == 8);
    double i_xt, i_ty;
    ipm_mm_plane_point_tables(&lt, H_X8, H_Y8, 6, 2, &i_xt, &i_ty);
    CHECK_NEAR(i_xt, 2.75 - 0.75 * log2(3.0) + 1.0 / (8.0 * log(2.0)), TOL);
    CHECK_NEAR(i_ty, 3.25 - 0.75 * log2(3.0) - 0.625 * log2(5.0), TOL);
    /* Term by term: H_MM(T) = 3 - .75 log2 3 + 3 / (16 ln 2). */
    CHECK_NEAR(ipm_mm_entropy(ipm_table_entropy(&lt.t), lt.t.len, lt.t.total),
               3.0 - 0.75 * log2(3.0) + 3.0 / (16.0 * log(2.0)), TOL);
    ipm_layer_tables_free(&lt);
}

/* Two replicas disagreeing on x = 5 (test_mi.c: I(X;T) = 2.75 - .75 log2 3
 * over 16 pairs). Cells: T 5, (X,T) 8, X 6, N = 16:
 *   I_MM(X;T) = I(X;T) + (5 + 6 - 8 - 1) / (32 ln 2).
 * Replicas constant on all samples, 0 and 1: plug-in I(X;T) = 1 + 2.5 - 3.5
 * = 0 and I(T;Y) = 0; cells T 2, (X,T) 12, (Y,T) 4, so the corrections are
 * (2 + 6 - 12 - 1) / (32 ln 2) = -5 / (32 ln 2) and (2 + 2 - 4 - 1) / (32 ln 2)
 * = -1 / (32 ln 2): negative, and reported as they are. */
static void test_two_replicas(void)
{
    const int32_t t1[8] = {0, 0, 0, 1, 1, 1, 2, 3}, t2[8] = {0, 0, 0, 1, 1, 1, 2, 4};
    ipm_layer_tables lt;
    CHECK(ipm_layer_tables_init(&lt, 8, err) == 0);
    fill(&lt, t1, 0);
    fill(&lt, t2, 0);
    double i_xt, i_ty;
    ipm_mm_plane_point_tables(&lt, H_X8, H_Y8, 6, 2, &i_xt, &i_ty);
    CHECK_NEAR(i_xt, 2.75 - 0.75 * log2(3.0) + 2.0 / (32.0 * log(2.0)), TOL);
    const int32_t zeros[8] = {0}, ones[8] = {1, 1, 1, 1, 1, 1, 1, 1};
    ipm_layer_tables_clear(&lt);
    fill(&lt, zeros, 0);
    fill(&lt, ones, 0);
    CHECK(lt.t.len == 2 && lt.xt.len == 12 && lt.yt.len == 4 && lt.t.total == 16);
    ipm_mm_terms terms = {.h_t = ipm_table_entropy(&lt.t),
                          .h_xt = ipm_table_entropy(&lt.xt),
                          .h_yt = ipm_table_entropy(&lt.yt),
                          .h_x = H_X8,
                          .h_y = H_Y8,
                          .m_t = lt.t.len,
                          .m_xt = lt.xt.len,
                          .m_yt = lt.yt.len,
                          .m_x = 6,
                          .m_y = 2,
                          .total = lt.t.total};
    ipm_mm_plane_point(&terms, &i_xt, &i_ty);
    CHECK_NEAR(i_xt, -5.0 / (32.0 * log(2.0)), TOL);
    CHECK_NEAR(i_ty, -1.0 / (32.0 * log(2.0)), TOL);
    ipm_layer_tables_free(&lt);
}

/* The corrected point depends only on the count multisets and the cell
 * counts, so tables filled in another order, and a count histogram, give it
 * bit for bit. */
static void test_order_independence(void)
{
    const int32_t t[8] = {0, 0, 0, 1, 1, 1, 2, 3};
    ipm_layer_tables a, b;
    CHECK(ipm_layer_tables_init(&a, 2, err) == 0 && ipm_layer_tables_init(&b, 64, err) == 0);
    fill(&a, t, 0);
    fill(&b, t, 1);
    double a_xt, a_ty, b_xt, b_ty;
    ipm_mm_plane_point_tables(&a, H_X8, H_Y8, 6, 2, &a_xt, &a_ty);
    ipm_mm_plane_point_tables(&b, H_X8, H_Y8, 6, 2, &b_xt, &b_ty);
    CHECK(memcmp(&a_xt, &b_xt, sizeof a_xt) == 0 && memcmp(&a_ty, &b_ty, sizeof a_ty) == 0);
    /* T's counts 3 3 1 1 as a histogram: 4 cells and the table's entropy. */
    uint32_t hist[4] = {0, 2, 0, 2};
    uint64_t cells = ipm_hist_cells(hist, 3);
    double h = ipm_entropy_from_sum(ipm_sum_clog2c_hist(0.0, hist, 3, NULL, 0), 8);
    double from_hist = ipm_mm_entropy(h, cells, 8);
    double from_table = ipm_mm_entropy(ipm_table_entropy(&a.t), a.t.len, a.t.total);
    CHECK(cells == 4 && memcmp(&from_hist, &from_table, sizeof h) == 0);
    ipm_layer_tables_free(&a);
    ipm_layer_tables_free(&b);
}

static void test_data_cells(void)
{
    uint64_t m_x = 0, m_y = 0;
    CHECK(ipm_data_cells(x8, y8, 8, &m_x, &m_y, err) == 0 && m_x == 6 && m_y == 2);
    const int32_t bad[2] = {0, -3};
    CHECK(ipm_data_cells(bad, y8, 2, &m_x, &m_y, err) == -1 && strstr(err, "negative"));
    CHECK(ipm_data_cells(x8, y8, 0, &m_x, &m_y, err) == -1 && strstr(err, "empty"));
}

int main(void)
{
    test_entropy();
    test_one_replica();
    test_two_replicas();
    test_order_independence();
    test_data_cells();
    return check_report("test_miller_madow");
}
