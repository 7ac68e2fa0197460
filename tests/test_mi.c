/* table + mi: hand-computed plane points and data information, order
 * independence of sum c log2 c, growth, export/merge, clear. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ipmpi/base/error.h"
#include "ipmpi/info/mi.h"
#include "ipmpi/info/table.h"
#include "check.h"
#include "table_util.h"

#define TOL 1e-12

/* The 8-sample set used throughout:
 *   x_id = 0 0 1 1 2 3 4 5   H(X) = 2 * (2/8) log2 4 + 4 * (1/8) log2 8 = 2.5
 *   y    = 0 0 1 1 1 1 1 0   H(Y) = H(3/8, 5/8) = 3 - (3/8) log2 3 - (5/8) log2 5 */
static const int32_t x8[8] = {0, 0, 1, 1, 2, 3, 4, 5};
static const int32_t y8[8] = {0, 0, 1, 1, 1, 1, 1, 0};
#define H_X8 2.5
#define H_Y8 (3.0 - 0.375 * log2(3.0) - 0.625 * log2(5.0))

static uint64_t rng_state = 12345;

static uint64_t next_u64(void)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static void patterns_from(const int32_t *v, ipm_pattern *p, int n)
{
    for (int i = 0; i < n; i++)
        p[i] = (ipm_pattern){(uint64_t)v[i] * 0x9e3779b97f4a7c15ULL, (uint64_t)v[i]};
}

/* Plane point of T given as one small integer per sample, over `copies`
 * identical replicas. */
static void point_of(const int32_t *t, const int32_t *x, const int32_t *y, int n, int copies,
                     double h_x, double h_y, double *i_xt, double *i_ty)
{
    char err[IPM_ERRLEN];
    ipm_pattern p[64];
    ipm_layer_tables lt;
    patterns_from(t, p, n);
    CHECK(ipm_layer_tables_init(&lt, 4, err) == 0);
    for (int c = 0; c < copies; c++)
        CHECK(ipm_layer_tables_add(&lt, p, x, y, n, NULL, err) == 0);
    ipm_plane_point(&lt, h_x, h_y, i_xt, i_ty);
    ipm_layer_tables_free(&lt);
}

static void test_simple_cases(void)
{
    double i_xt, i_ty;
    /* T = Y: I(T;Y) = H(Y); T is a function of X, so I(X;T) = H(T) = H(Y). */
    point_of(y8, x8, y8, 8, 1, H_X8, H_Y8, &i_xt, &i_ty);
    CHECK_NEAR(i_ty, H_Y8, TOL);
    CHECK_NEAR(i_xt, H_Y8, TOL);
    /* T constant: nothing about X or Y. */
    const int32_t zero[8] = {0};
    point_of(zero, x8, y8, 8, 1, H_X8, H_Y8, &i_xt, &i_ty);
    CHECK(i_xt == 0.0 && i_ty == 0.0);
    /* T = X: I(X;T) = H(X), and Y is a function of X here, so I(T;Y) = H(Y). */
    point_of(x8, x8, y8, 8, 1, H_X8, H_Y8, &i_xt, &i_ty);
    CHECK_NEAR(i_xt, H_X8, TOL);
    CHECK_NEAR(i_ty, H_Y8, TOL);
}

/* t = a a a b b b c d (counts 3 3 1 1):
 *   H(T)   = 2 (3/8) log2(8/3) + 2 (1/8) 3 = 3 - (3/4) log2 3
 *   (x,t)  = (0a)x2 (1a) (1b) (2b) (3b) (4c) (5d): H(X,T) = (2/8) 2 + 6 (1/8) 3 = 2.75
 *   I(X;T) = H(T) + 2.5 - 2.75 = 2.75 - (3/4) log2 3
 *            (check: H(T|X) = p(x=1) * 1 bit = 0.25, H(T) - 0.25 is the same)
 *   (y,t)  = (0a)x2 (1a) (1b)x3 (1c) (0d): counts 2 1 3 1 1
 *   H(Y,T) = (2/8) 2 + (3/8) log2(8/3) + 3 (1/8) 3 = 2.75 - (3/8) log2 3
 *   I(T;Y) = H(T) + H(Y) - H(Y,T)
 *          = (3 - .75 log2 3) + (3 - .375 log2 3 - .625 log2 5) - (2.75 - .375 log2 3)
 *          = 3.25 - 0.75 log2 3 - 0.625 log2 5  (= 0.6100730651545315) */
static void test_hand_computed(void)
{
    const int32_t t[8] = {0, 0, 0, 1, 1, 1, 2, 3};
    double i_xt, i_ty;
    point_of(t, x8, y8, 8, 1, H_X8, H_Y8, &i_xt, &i_ty);
    CHECK_NEAR(i_xt, 2.75 - 0.75 * log2(3.0), TOL);
    CHECK_NEAR(i_ty, 3.25 - 0.75 * log2(3.0) - 0.625 * log2(5.0), TOL);
    CHECK_NEAR(i_ty, 0.6100730651545315, TOL);

    /* Pooling R identical replicas scales every count by R: same point. */
    double p_xt, p_ty;
    point_of(t, x8, y8, 8, 5, H_X8, H_Y8, &p_xt, &p_ty);
    CHECK_NEAR(p_xt, i_xt, TOL);
    CHECK_NEAR(p_ty, i_ty, TOL);
}

/* Two replicas that disagree on x = 5 (patterns d and e): over the 16 pairs
 * the (x,t) counts are (0a)x4 (1a)x2 (1b)x2 (2b)x2 (3b)x2 (4c)x2 (5d) (5e):
 *   H(X,T) = (4/16) 2 + 5 (2/16) 3 + 2 (1/16) 4 = 0.5 + 1.875 + 0.5 = 2.875
 *   t counts a6 b6 c2 d1 e1: H(T) = 2 (6/16) log2(16/6) + (2/16) 3 + 2 (1/16) 4
 *                                 = 0.75 (3 - log2 3) + 0.375 + 0.5 = 3.125 - 0.75 log2 3
 *   I(X;T) = H(T) + 2.5 - 2.875 = 2.75 - 0.75 log2 3
 *            (check: H(T|X) = p(x=1) 1 bit + p(x=5) 1 bit = 3/8, H(T) - 3/8 is the same) */
static void test_pooled_disagreement(void)
{
    const int32_t t1[8] = {0, 0, 0, 1, 1, 1, 2, 3}, t2[8] = {0, 0, 0, 1, 1, 1, 2, 4};
    char err[IPM_ERRLEN];
    ipm_pattern p[8];
    ipm_layer_tables lt;
    CHECK(ipm_layer_tables_init(&lt, 8, err) == 0);
    patterns_from(t1, p, 8);
    CHECK(ipm_layer_tables_add(&lt, p, x8, y8, 8, NULL, err) == 0);
    patterns_from(t2, p, 8);
    CHECK(ipm_layer_tables_add(&lt, p, x8, y8, 8, NULL, err) == 0);
    double i_xt, i_ty;
    ipm_plane_point(&lt, H_X8, H_Y8, &i_xt, &i_ty);
    CHECK_NEAR(ipm_table_entropy(&lt.t), 3.125 - 0.75 * log2(3.0), TOL);
    CHECK_NEAR(ipm_table_entropy(&lt.xt), 2.875, TOL);
    CHECK_NEAR(i_xt, 2.75 - 0.75 * log2(3.0), TOL);
    ipm_layer_tables_free(&lt);
}

/* keep[] selects samples: the kept 4 of t = a a a b b b c d are a (x0) a (x1)
 * b (x3) c (x4): H(T) = 1.5, each x its own pattern so I(X;T) = H(T). */
static void test_keep_mask(void)
{
    const int32_t t[8] = {0, 0, 0, 1, 1, 1, 2, 3};
    const uint8_t keep[8] = {1, 0, 1, 0, 0, 1, 1, 0};
    char err[IPM_ERRLEN];
    ipm_pattern p[8];
    ipm_layer_tables lt;
    patterns_from(t, p, 8);
    CHECK(ipm_layer_tables_init(&lt, 8, err) == 0);
    CHECK(ipm_layer_tables_add(&lt, p, x8, y8, 8, keep, err) == 0);
    CHECK(lt.t.total == 4 && lt.t.len == 3 && lt.xt.len == 4);
    CHECK_NEAR(ipm_table_entropy(&lt.t), 1.5, TOL);
    ipm_layer_tables_clear(&lt);
    CHECK(lt.t.len == 0 && lt.xt.total == 0 && ipm_table_entropy(&lt.yt) == 0.0);
    ipm_layer_tables_free(&lt);
}

static void test_data_information(void)
{
    char err[IPM_ERRLEN];
    double h_x, h_y, i_xy;
    /* Y is a function of X: I(X;Y) = H(Y). */
    CHECK(ipm_data_information(x8, y8, 8, &h_x, &h_y, &i_xy, err) == 0);
    CHECK_NEAR(h_x, 2.5, TOL);
    CHECK_NEAR(h_y, H_Y8, TOL);
    CHECK_NEAR(i_xy, H_Y8, TOL);
    /* x = 0 0 1 1, y = 0 1 1 1: H(X) = 1, H(Y) = 2 - (3/4) log2 3,
     * (x,y) counts 1 1 2: H(X,Y) = 1.5, I = 1.5 - (3/4) log2 3. */
    const int32_t x[4] = {0, 0, 1, 1}, y[4] = {0, 1, 1, 1};
    CHECK(ipm_data_information(x, y, 4, &h_x, &h_y, &i_xy, err) == 0);
    CHECK_NEAR(h_x, 1.0, TOL);
    CHECK_NEAR(h_y, 2.0 - 0.75 * log2(3.0), TOL);
    CHECK_NEAR(i_xy, 1.5 - 0.75 * log2(3.0), TOL);
    const int32_t bad[2] = {0, -1};
    CHECK(ipm_data_information(bad, y, 2, &h_x, &h_y, &i_xy, err) == -1);
    CHECK(strstr(err, "sample 1") != NULL);
    CHECK(ipm_data_information(x, y, 0, &h_x, &h_y, &i_xy, err) == -1);
}

typedef struct keyed_count {
    uint32_t group;
    ipm_pattern p;
    uint64_t count;
} keyed_count;

/* Counts spanning the stack histogram, the heap histogram and the sorted
 * tail (> 2^16). */
static keyed_count *make_keys(int n)
{
    keyed_count *k = malloc(sizeof *k * (size_t)n);
    for (int i = 0; i < n; i++) {
        k[i].group = (uint32_t)(next_u64() % 50);
        k[i].p = (ipm_pattern){next_u64(), i % 3 ? 0 : next_u64()};
        uint64_t r = next_u64() % 1000;
        k[i].count = r < 900 ? 1 + r % 40 : r < 990 ? 5000 + r * 37 : 70000 + r * 1001;
    }
    return k;
}

static void shuffle(int *a, int n)
{
    for (int i = n - 1; i > 0; i--) {
        int j = (int)(next_u64() % (uint64_t)(i + 1)), tmp = a[i];
        a[i] = a[j];
        a[j] = tmp;
    }
}

/* Adds each key's count in two uneven parts, keys in the given order. */
static void add_in_order(ipm_table *t, const keyed_count *k, const int *order, int n)
{
    char err[IPM_ERRLEN];
    for (int pass = 0; pass < 2; pass++)
        for (int i = 0; i < n; i++) {
            const keyed_count *e = &k[order[i]];
            uint64_t first = e->count / 3;
            CHECK(ipm_table_add(t, e->group, e->p, pass ? e->count - first : first, err) == 0);
        }
}

static void test_order_independence(void)
{
    enum { N = 20000 };
    char err[IPM_ERRLEN];
    keyed_count *k = make_keys(N);
    int *order = malloc(sizeof *order * N);
    for (int i = 0; i < N; i++)
        order[i] = i;
    ipm_table a, b, half1, half2;
    CHECK(ipm_table_init(&a, 16, err) == 0);
    CHECK(ipm_table_init(&b, N, err) == 0);
    CHECK(ipm_table_init(&half1, 100, err) == 0);
    CHECK(ipm_table_init(&half2, 100, err) == 0);
    add_in_order(&a, k, order, N);
    shuffle(order, N);
    add_in_order(&half1, k, order, N / 2);
    add_in_order(&half2, k, order + N / 2, N - N / 2);
    ipm_count *e = malloc(sizeof *e * N);
    size_t n2 = ipm_table_export(&half2, e);
    CHECK(ipm_table_merge(&b, e, n2, err) == 0);
    size_t n1 = ipm_table_export(&half1, e);
    CHECK(ipm_table_merge(&b, e, n1, err) == 0);
    CHECK(n1 + n2 == N && a.len == N);
    CHECK(same_tables(&a, &b));
    double sa = ipm_table_sum_clog2c(&a), sb = ipm_table_sum_clog2c(&b);
    CHECK(sa == sb);
    CHECK(ipm_table_entropy(&a) == ipm_table_entropy(&b));
    long double reference = 0;
    for (int i = 0; i < N; i++)
        reference += (long double)k[i].count * log2l((long double)k[i].count);
    CHECK_NEAR(sa, (double)reference, 1e-12 * (double)reference);
    free(e);
    free(k);
    free(order);
    ipm_table_free(&a);
    ipm_table_free(&b);
    ipm_table_free(&half1);
    ipm_table_free(&half2);
}

/* 200000 distinct keys from a table sized for 1; counts 1..5 in turn:
 * H = log2(total) - sum c log2 c / total with 40000 keys of each count. */
static void test_growth(void)
{
    enum { N = 200000 };
    char err[IPM_ERRLEN];
    ipm_table t;
    CHECK(ipm_table_init(&t, 1, err) == 0);
    size_t first_capacity = t.capacity;
    for (int i = 0; i < N; i++)
        CHECK(ipm_table_add(&t, (uint32_t)(i % 7), (ipm_pattern){(uint64_t)i / 7, 0},
                            (uint64_t)(i % 5 + 1), err) == 0);
    CHECK(t.len == N && t.total == 3 * (uint64_t)N && t.capacity > first_capacity);
    CHECK((t.capacity & (t.capacity - 1)) == 0 && t.len * 10 <= t.capacity * 7);
    double s = 40000.0 * (2 * 1.0 + 3 * log2(3.0) + 4 * 2.0 + 5 * log2(5.0));
    CHECK_NEAR(ipm_table_sum_clog2c(&t), s, 1e-9);
    CHECK_NEAR(ipm_table_entropy(&t), log2(600000.0) - s / 600000.0, 1e-12);
    ipm_count *e = sorted_export(&t);
    int bad = 0;
    for (int i = 0; i < N; i++) {
        /* sorted by group, then pattern: group g holds i = 7 lo + g */
        uint64_t lo = e[i].lo, g = e[i].group, idx = 7 * lo + g;
        bad += e[i].used != 1 || e[i].count != idx % 5 + 1;
    }
    CHECK(bad == 0);
    free(e);
    ipm_table_free(&t);
}

/* Export into a fresh table gives the same table; merging again doubles. */
static void test_export_merge_round_trip(void)
{
    enum { N = 3000 };
    char err[IPM_ERRLEN];
    keyed_count *k = make_keys(N);
    int order[N];
    for (int i = 0; i < N; i++)
        order[i] = i;
    ipm_table a, b;
    CHECK(ipm_table_init(&a, N, err) == 0);
    CHECK(ipm_table_init(&b, 0, err) == 0);
    add_in_order(&a, k, order, N);
    ipm_count *e = malloc(sizeof *e * N);
    size_t n = ipm_table_export(&a, e);
    CHECK(n == N);
    CHECK(ipm_table_merge(&b, e, n, err) == 0);
    CHECK(same_tables(&a, &b));
    CHECK(ipm_table_merge(&b, e, n, err) == 0);
    CHECK(b.len == a.len && b.total == 2 * a.total);
    /* Doubling every count adds 2 c (log2 c + 1) - 2 c log2 c = 2 c per key. */
    CHECK_NEAR(ipm_table_sum_clog2c(&b), 2 * ipm_table_sum_clog2c(&a) + 2.0 * (double)a.total,
               1e-12 * ipm_table_sum_clog2c(&b));
    ipm_table_clear(&b);
    CHECK(b.len == 0 && b.total == 0 && ipm_table_sum_clog2c(&b) == 0.0);
    CHECK(ipm_table_merge(&b, e, n, err) == 0);
    CHECK(same_tables(&a, &b));
    free(e);
    free(k);
    ipm_table_free(&a);
    ipm_table_free(&b);
}

/* Sums and clears read a table in slot order when it is at least an eighth
 * full and through its insertion list when sparser: the same keys (counts
 * small and beyond the dense histogram) in a table sized for 100000 keys and
 * in one sized for 1 give bitwise the same sum, before and after a clear. */
static void test_sparse_and_dense_tables(void)
{
    char err[IPM_ERRLEN];
    ipm_table sparse, dense;
    CHECK(ipm_table_init(&sparse, 100000, err) == 0);
    CHECK(ipm_table_init(&dense, 1, err) == 0);
    for (int round = 0; round < 2; round++) {
        for (uint64_t i = 0; i < 40; i++) {
            uint64_t count = i % 3 == 0 ? 70000 + i : i + 1;
            CHECK(ipm_table_add(&sparse, (uint32_t)(i % 2), (ipm_pattern){i, 7}, count, err) == 0);
            CHECK(ipm_table_add(&dense, (uint32_t)(i % 2), (ipm_pattern){i, 7}, count, err) == 0);
        }
        CHECK(sparse.len * 8 < sparse.capacity && dense.len * 8 >= dense.capacity);
        long double reference = 0;
        for (uint64_t i = 0; i < 40; i++) {
            long double c = (long double)(i % 3 == 0 ? 70000 + i : i + 1);
            reference += c * log2l(c);
        }
        double a = ipm_table_sum_clog2c(&sparse), b = ipm_table_sum_clog2c(&dense);
        CHECK(a == b);
        CHECK_NEAR(a, (double)reference, 1e-12 * (double)reference);
        ipm_table_clear(&sparse);
        ipm_table_clear(&dense);
        CHECK(sparse.len == 0 && dense.len == 0 && ipm_table_sum_clog2c(&dense) == 0.0);
        int stale = 0;
        for (size_t k = 0; k < dense.capacity; k++)
            stale += dense.slot[k].used != 0;
        for (size_t k = 0; k < sparse.capacity; k++)
            stale += sparse.slot[k].used != 0;
        CHECK(stale == 0);
    }
    ipm_table_free(&sparse);
    ipm_table_free(&dense);
}

int main(void)
{
    test_simple_cases();
    test_hand_computed();
    test_pooled_disagreement();
    test_keep_mask();
    test_data_information();
    test_order_independence();
    test_growth();
    test_export_merge_round_trip();
    test_sparse_and_dense_tables();
    return check_report("test_mi");
}
