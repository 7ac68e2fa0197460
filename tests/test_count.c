/* count: the dictionary, x groups, and dense counting against the count
 * tables (bitwise equal entropies for the same pairs), on hand-computed
 * cases and random data with repeated patterns and repeated x. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ipmpi/base/error.h"
#include "ipmpi/info/count.h"
#include "ipmpi/info/mi.h"
#include "ipmpi/info/table.h"
#include "check.h"
#include "table_util.h"

static char err[IPM_ERRLEN];
static uint64_t rng_state = 0x51ed2701ULL;

static uint64_t next_u64(void)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static int below(int n)
{
    return (int)(next_u64() % (uint64_t)n);
}

/* ---- dictionary ---------------------------------------------------------- */

static void test_dict_small(void)
{
    ipm_dict d;
    CHECK(ipm_dict_init(&d, 2, err) == 0);
    ipm_pattern p[6] = {{5, 0}, {7, 1}, {5, 0}, {0, 0}, {7, 1}, {7, 0}};
    int32_t id[6];
    CHECK(ipm_dict_map(&d, p, 6, id, err) == 0);
    const int32_t want[6] = {0, 1, 0, 2, 1, 3}; /* first appearance order */
    for (int i = 0; i < 6; i++)
        CHECK(id[i] == want[i]);
    CHECK(d.len == 4);
    CHECK(d.key[3].lo == 7 && d.key[3].hi == 0);
    /* a second batch sees the same ids */
    ipm_pattern q[2] = {{0, 0}, {9, 9}};
    CHECK(ipm_dict_map(&d, q, 2, id, err) == 0);
    CHECK(id[0] == 2 && id[1] == 4 && d.len == 5);
    ipm_dict_clear(&d);
    CHECK(d.len == 0);
    CHECK(ipm_dict_map(&d, q, 2, id, err) == 0);
    CHECK(id[0] == 0 && id[1] == 1);
    ipm_dict_free(&d);
}

/* Many keys from a tiny start: growth keeps every id. */
static void test_dict_growth(void)
{
    enum { N = 20000, DISTINCT = 7000 };
    ipm_dict d;
    CHECK(ipm_dict_init(&d, 1, err) == 0);
    ipm_pattern *p = malloc(N * sizeof *p);
    int32_t *id = malloc(N * sizeof *id), *first_id = malloc(DISTINCT * sizeof *first_id);
    for (int k = 0; k < DISTINCT; k++)
        first_id[k] = -1;
    for (int i = 0; i < N; i++) {
        int k = below(DISTINCT);
        p[i] = (ipm_pattern){(uint64_t)k * 0x10001ULL, (uint64_t)(k % 3)};
    }
    CHECK(ipm_dict_map(&d, p, N / 2, id, err) == 0);
    CHECK(ipm_dict_map(&d, p + N / 2, N - N / 2, id + N / 2, err) == 0);
    int bad = 0, next = 0;
    for (int i = 0; i < N; i++) {
        int k = (int)(p[i].lo / 0x10001ULL);
        if (first_id[k] < 0)
            bad += id[i] != next++, first_id[k] = id[i];
        bad += id[i] != first_id[k];
        bad += d.key[id[i]].lo != p[i].lo || d.key[id[i]].hi != p[i].hi;
    }
    CHECK(bad == 0);
    CHECK(d.len == (size_t)next);
    free(p);
    free(id);
    free(first_id);
    ipm_dict_free(&d);
}

/* ---- x groups ------------------------------------------------------------------ */

static void test_x_groups(void)
{
    const int32_t x[7] = {2, 0, 2, 1, 0, 2, 3};
    ipm_x_groups g;
    CHECK(ipm_x_groups_init(&g, x, 7, err) == 0);
    CHECK(g.n_x == 4 && g.largest == 3);
    const int32_t offset[5] = {0, 2, 3, 6, 7}, member[7] = {1, 4, 3, 0, 2, 5, 6};
    for (int k = 0; k < 5; k++)
        CHECK(g.offset[k] == offset[k]);
    for (int k = 0; k < 7; k++)
        CHECK(g.member[k] == member[k]);
    ipm_x_groups_free(&g);
    const int32_t negative[2] = {0, -1};
    CHECK(ipm_x_groups_init(&g, negative, 2, err) == -1);
}

/* ---- canonical sums --------------------------------------------------------------- */

/* Counts above the table's dense histogram, repeated: the histogram sum and
 * the table's sorted path give the same bits. */
static void test_canonical_sum_large_counts(void)
{
    const uint64_t counts[7] = {70000, 3, 100000, 70000, 3, 1, 65537};
    ipm_table t;
    CHECK(ipm_table_init(&t, 4, err) == 0);
    uint32_t *hist = calloc(100001, sizeof *hist);
    uint64_t top = 0;
    for (int k = 0; k < 7; k++) {
        CHECK(ipm_table_add(&t, (uint32_t)k, (ipm_pattern){1, 0}, counts[k], err) == 0);
        hist[counts[k]]++;
        top = counts[k] > top ? counts[k] : top;
    }
    double dense = ipm_sum_clog2c_hist(0.0, hist, top, NULL, 0);
    CHECK(ipm_table_sum_clog2c(&t) == dense);
    double by_hand = 2 * 70000 * log2(70000.0) + 2 * 3 * log2(3.0) + 100000 * log2(100000.0) +
                     65537 * log2(65537.0);
    CHECK_NEAR(dense, by_hand, 1e-6);
    int cleared = 1;
    for (uint64_t c = 0; c <= top; c++)
        cleared &= hist[c] == 0;
    CHECK(cleared);
    /* a cached clog table gives the same bits */
    double clog[10];
    for (int c = 0; c < 10; c++)
        clog[c] = ipm_clog2c((uint64_t)c);
    hist[3] = 2;
    hist[9] = 1;
    double cached = ipm_sum_clog2c_hist(0.0, hist, 9, clog, 10);
    CHECK(cached == 2 * (3 * log2(3.0)) + 9 * log2(9.0));
    ipm_table_free(&t);
    free(hist);
}

/* ---- dense counting against tables ------------------------------------------- */

typedef struct layer_data {
    int n, reps, classes;
    int32_t *x, *y, *pick;
    int32_t *ids[8];
    ipm_pattern *key;
    size_t n_ids;
} layer_data;

/* reps replicas map n samples to patterns from a pool of `distinct`; x ids
 * repeat when n_x < n. */
static void make_layer(layer_data *L, int n, int n_x, int reps, int classes, int distinct)
{
    L->n = n;
    L->reps = reps;
    L->classes = classes;
    L->x = malloc((size_t)n * sizeof(int32_t));
    L->y = malloc((size_t)n * sizeof(int32_t));
    L->pick = malloc((size_t)n * sizeof(int32_t));
    for (int i = 0; i < n; i++) {
        L->x[i] = i < n_x ? i : below(n_x);
        L->y[i] = below(classes);
        L->pick[i] = below(reps + 1) - 1; /* -1: remote replica */
    }
    ipm_dict d;
    CHECK(ipm_dict_init(&d, 16, err) == 0);
    ipm_pattern *p = malloc((size_t)n * sizeof *p);
    for (int k = 0; k < reps; k++) {
        L->ids[k] = malloc((size_t)n * sizeof(int32_t));
        for (int i = 0; i < n; i++) {
            /* replicas agree often, so pooled groups hold repeated ids */
            int t = below(4) == 0 ? below(distinct) : (L->x[i] * 7 + (k & 1)) % distinct;
            p[i] = (ipm_pattern){(uint64_t)t * 0x9e3779b97f4a7c15ULL, (uint64_t)t};
        }
        CHECK(ipm_dict_map(&d, p, n, L->ids[k], err) == 0);
    }
    L->n_ids = d.len;
    L->key = malloc(d.len * sizeof *L->key);
    memcpy(L->key, d.key, d.len * sizeof *L->key);
    ipm_dict_free(&d);
    free(p);
}

static void free_layer(layer_data *L)
{
    free(L->x);
    free(L->y);
    free(L->pick);
    for (int k = 0; k < L->reps; k++)
        free(L->ids[k]);
    free(L->key);
}

/* The tables of the pairs, filled the old way, one pair at a time. */
static void table_entropies(const layer_data *L, const ipm_pairs *pairs, ipm_entropies *h,
                            ipm_layer_tables *lt)
{
    CHECK(ipm_layer_tables_init(lt, 4, err) == 0);
    for (int k = 0; k < L->reps; k++)
        for (int i = 0; i < L->n; i++) {
            int counted = pairs->pick ? pairs->pick[i] == k : k < pairs->n_reps;
            if (!counted)
                continue;
            ipm_pattern p = L->key[pairs->ids[k][i]];
            CHECK(ipm_table_add(&lt->t, 0, p, 1, err) == 0);
            CHECK(ipm_table_add(&lt->xt, (uint32_t)L->x[i], p, 1, err) == 0);
            CHECK(ipm_table_add(&lt->yt, (uint32_t)L->y[i], p, 1, err) == 0);
        }
    h->t = ipm_table_entropy(&lt->t);
    h->xt = ipm_table_entropy(&lt->xt);
    h->yt = ipm_table_entropy(&lt->yt);
}

static int same_entropies(const ipm_entropies *a, const ipm_entropies *b)
{
    return a->t == b->t && a->xt == b->xt && a->yt == b->yt;
}

/* Dense entropies and exports equal the tables' for one pair set. */
static void check_pairs(ipm_counter *c, const layer_data *L, const ipm_x_groups *g,
                        const ipm_pairs *pairs)
{
    ipm_layer_tables want, got;
    ipm_entropies h_table, h_dense;
    table_entropies(L, pairs, &h_table, &want);
    ipm_count_entropies(c, pairs, g, L->y, &h_dense);
    CHECK(same_entropies(&h_dense, &h_table));
    CHECK(ipm_layer_tables_init(&got, 4, err) == 0);
    CHECK(ipm_count_export(c, pairs, g, L->y, L->key, &got.t, &got.xt, &got.yt, err) == 0);
    CHECK(same_tables(&got.t, &want.t) && same_tables(&got.xt, &want.xt) &&
          same_tables(&got.yt, &want.yt));
    /* the counter is clean afterwards: the same call gives the same bits */
    ipm_entropies again;
    ipm_count_entropies(c, pairs, g, L->y, &again);
    CHECK(same_entropies(&again, &h_table));
    ipm_layer_tables_free(&want);
    ipm_layer_tables_free(&got);
}

static void dense_against_tables(int n, int n_x, int reps, int classes, int distinct)
{
    layer_data L;
    make_layer(&L, n, n_x, reps, classes, distinct);
    ipm_x_groups g;
    CHECK(ipm_x_groups_init(&g, L.x, n, err) == 0);
    ipm_counter c;
    CHECK(ipm_counter_init(&c, n, reps, classes, g.largest, err) == 0);
    CHECK(ipm_counter_reserve(&c, L.n_ids, err) == 0);
    const int32_t *const *ids = (const int32_t *const *)L.ids;
    for (int k = 0; k < reps; k++)
        check_pairs(&c, &L, &g, &(ipm_pairs){&ids[k], 1, NULL});
    ipm_pairs all = {ids, reps, NULL}, sampled = {ids, reps, L.pick};
    check_pairs(&c, &L, &g, &all);
    check_pairs(&c, &L, &g, &sampled);
    /* one pass for simple and pooled gives the separate calls' bits */
    ipm_entropies each[8], pooled, want;
    ipm_count_replicas(&c, &all, &g, L.y, each, &pooled);
    for (int k = 0; k < reps; k++) {
        ipm_count_entropies(&c, &(ipm_pairs){&ids[k], 1, NULL}, &g, L.y, &want);
        CHECK(same_entropies(&each[k], &want));
    }
    ipm_count_entropies(&c, &all, &g, L.y, &want);
    CHECK(same_entropies(&pooled, &want));
    /* ... and the pooled cells, cell for cell, in the same order */
    size_t room = (size_t)n * (size_t)reps + 1;
    ipm_id_count *cells = malloc(room * sizeof *cells), *alone = malloc(room * sizeof *alone);
    size_t n_cells = ipm_count_replicas_cells(&c, &all, &g, L.y, each, cells);
    for (int k = 0; k < reps; k++) {
        ipm_count_entropies(&c, &(ipm_pairs){&ids[k], 1, NULL}, &g, L.y, &want);
        CHECK(same_entropies(&each[k], &want));
    }
    CHECK(n_cells == ipm_count_yt_cells(&c, &all, L.y, alone));
    for (size_t k = 0; k < n_cells; k++)
        CHECK(cells[k].id == alone[k].id && cells[k].y == alone[k].y &&
              cells[k].count == alone[k].count);
    ipm_count_entropies(&c, &all, &g, L.y, &want); /* the counter is left clean */
    CHECK(same_entropies(&pooled, &want));
    free(cells);
    free(alone);
    ipm_counter_free(&c);
    ipm_x_groups_free(&g);
    free_layer(&L);
}

/* Two replicas, four samples, x = {0, 0, 1, 2}, y = {0, 1, 1, 0}:
 * replica 0 patterns a a b b, replica 1 a b b b (ids 0 = a, 1 = b).
 * Pooled T: a 3, b 5 of 8. (X,T): x0 {a,a,a,b}: a3 b1; x1 {b,b}: b2; x2 {b,b}: b2.
 * (Y,T): y0 {a,b,a,b}: a2 b2; y1 {a,b,b,b}: a1 b3. */
static void test_hand_computed(void)
{
    const int32_t x[4] = {0, 0, 1, 2}, y[4] = {0, 1, 1, 0};
    const int32_t r0[4] = {0, 0, 1, 1}, r1[4] = {0, 1, 1, 1};
    const int32_t *ids[2] = {r0, r1};
    ipm_x_groups g;
    ipm_counter c;
    CHECK(ipm_x_groups_init(&g, x, 4, err) == 0);
    CHECK(ipm_counter_init(&c, 4, 2, 2, g.largest, err) == 0);
    CHECK(ipm_counter_reserve(&c, 2, err) == 0);
    ipm_entropies h;
    ipm_count_entropies(&c, &(ipm_pairs){ids, 2, NULL}, &g, y, &h);
    double h_t = 3 - (3 * log2(3.0) + 5 * log2(5.0)) / 8;
    double h_xt = 3 - (3 * log2(3.0) + 2 + 2) / 8;
    double h_yt = 3 - (2 + 2 + 3 * log2(3.0)) / 8;
    CHECK_NEAR(h.t, h_t, 1e-12);
    CHECK_NEAR(h.xt, h_xt, 1e-12);
    CHECK_NEAR(h.yt, h_yt, 1e-12);
    /* replica 0 alone: T a2 b2 -> 1 bit; (X,T) x0 {a,a}: 2, x1 b, x2 b -> 1.5 bits */
    ipm_count_entropies(&c, &(ipm_pairs){ids, 1, NULL}, &g, y, &h);
    CHECK_NEAR(h.t, 1.0, 1e-15);
    CHECK_NEAR(h.xt, 1.5, 1e-15);
    CHECK_NEAR(h.yt, 2.0, 1e-15);
    /* sampled: sample 0 from replica 1, sample 1 remote, 2 and 3 from replica 0:
     * pairs (x0,a,y0) (x1,b,y1) (x2,b,y0); T a1 b2 */
    const int32_t pick[4] = {1, -1, 0, 0};
    ipm_count_entropies(&c, &(ipm_pairs){ids, 2, pick}, &g, y, &h);
    CHECK_NEAR(h.t, log2(3.0) - 2.0 / 3, 1e-15);
    CHECK_NEAR(h.xt, log2(3.0), 1e-15);
    CHECK_NEAR(h.yt, log2(3.0), 1e-15);
    ipm_counter_free(&c);
    ipm_x_groups_free(&g);
}

int main(void)
{
    test_dict_small();
    test_dict_growth();
    test_x_groups();
    test_canonical_sum_large_counts();
    test_hand_computed();
    dense_against_tables(500, 500, 1, 2, 40);   /* every x distinct */
    dense_against_tables(500, 500, 5, 2, 40);   /* rows compared across replicas */
    dense_against_tables(600, 150, 3, 3, 60);   /* repeated x */
    dense_against_tables(400, 7, 4, 2, 30);     /* groups beyond the sorted size */
    dense_against_tables(300, 300, 8, 10, 300); /* mostly distinct patterns */
    return check_report("test_count");
}
