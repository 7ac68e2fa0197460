/* bins: edges bit for bit as numpy, digitize against a brute-force count,
 * pattern packing round trips and key distinctness. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ipmpi/info/bins.h"
#include "check.h"

/* np.linspace(-1, 1, 30).astype(np.float32), printed with float.hex() */
static const float numpy_30[30] = {
    -0x1p+0f,        -0x1.dcb08ep-1f, -0x1.b9611ap-1f, -0x1.9611a8p-1f, -0x1.72c234p-1f,
    -0x1.4f72c2p-1f, -0x1.2c235p-1f,  -0x1.08d3dcp-1f, -0x1.cb08d4p-2f, -0x1.8469eep-2f,
    -0x1.3dcb08p-2f, -0x1.ee5846p-3f, -0x1.611a7cp-3f, -0x1.a7b962p-4f, -0x1.1a7b96p-5f,
    0x1.1a7b96p-5f,  0x1.a7b962p-4f,  0x1.611a7cp-3f,  0x1.ee5846p-3f,  0x1.3dcb08p-2f,
    0x1.8469eep-2f,  0x1.cb08d4p-2f,  0x1.08d3dcp-1f,  0x1.2c235p-1f,   0x1.4f72c2p-1f,
    0x1.72c234p-1f,  0x1.9611a8p-1f,  0x1.b9611ap-1f,  0x1.dcb08ep-1f,  0x1p+0f};

/* np.linspace(-0.7, 1.3, 7).astype(np.float32) */
static const float numpy_7[7] = {-0x1.666666p-1f, -0x1.777778p-2f, -0x1.111112p-5f, 0x1.333334p-2f,
                                 0x1.444444p-1f,  0x1.eeeeeep-1f,  0x1.4cccccp+0f};

/* np.linspace(-1e-3, 2.5e-3, 33).astype(np.float32) */
static const float numpy_33[33] = {
    -0x1.0624dep-10f, -0x1.d2f1aap-11f, -0x1.99999ap-11f, -0x1.60418ap-11f, -0x1.26e978p-11f,
    -0x1.db22dp-12f,  -0x1.6872bp-12f,  -0x1.eb851ep-13f, -0x1.0624dep-13f, -0x1.0624dep-16f,
    0x1.89374cp-14f,  0x1.a9fbe8p-13f,  0x1.47ae14p-12f,  0x1.ba5e36p-12f,  0x1.16872cp-11f,
    0x1.4fdf3cp-11f,  0x1.89374cp-11f,  0x1.c28f5cp-11f,  0x1.fbe76cp-11f,  0x1.1a9fbep-10f,
    0x1.374bc6p-10f,  0x1.53f7cep-10f,  0x1.70a3d8p-10f,  0x1.8d4fep-10f,   0x1.a9fbe8p-10f,
    0x1.c6a7fp-10f,   0x1.e353f8p-10f,  0x1p-9f,          0x1.0e5604p-9f,   0x1.1cac08p-9f,
    0x1.2b020cp-9f,   0x1.39581p-9f,    0x1.47ae14p-9f};

static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;

static uint64_t next_u64(void)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static float uniform(float lo, float hi)
{
    return lo + (hi - lo) * (float)((double)(next_u64() >> 11) * 0x1p-53);
}

static int brute_digitize(float v, const float *e, int n)
{
    int k = 0;
    for (int j = 0; j < n; j++)
        k += e[j] <= v;
    return k;
}

static void test_edges_match_numpy(void)
{
    float e[33];
    ipm_bin_edges(e, 30, -1.0, 1.0);
    CHECK(memcmp(e, numpy_30, sizeof numpy_30) == 0);
    ipm_bin_edges(e, 7, -0.7, 1.3);
    CHECK(memcmp(e, numpy_7, sizeof numpy_7) == 0);
    ipm_bin_edges(e, 33, -1e-3, 2.5e-3);
    CHECK(memcmp(e, numpy_33, sizeof numpy_33) == 0);
}

/* Every edge, its float neighbours, random values in and beyond the range. */
static int digitize_mismatches(const float *e, int n, float lo, float hi)
{
    int bad = 0;
    for (int j = 0; j < n; j++) {
        float probes[3] = {e[j], nextafterf(e[j], -INFINITY), nextafterf(e[j], INFINITY)};
        for (int k = 0; k < 3; k++)
            bad += ipm_digitize(probes[k], e, n) != brute_digitize(probes[k], e, n);
    }
    float span = hi - lo;
    for (int i = 0; i < 200000; i++) {
        float v = uniform(lo - span / 4, hi + span / 4);
        bad += ipm_digitize(v, e, n) != brute_digitize(v, e, n);
    }
    return bad;
}

static void test_digitize_against_brute_force(void)
{
    CHECK(digitize_mismatches(numpy_30, 30, -1, 1) == 0);
    CHECK(digitize_mismatches(numpy_7, 7, -0.7f, 1.3f) == 0);
    CHECK(digitize_mismatches(numpy_33, 33, -1e-3f, 2.5e-3f) == 0);
    float two[2] = {0.0f, 1.0f};
    CHECK(digitize_mismatches(two, 2, 0, 1) == 0);
    /* Far from uniform: the index guess misses and the search must take over. */
    float squares[40];
    for (int j = 0; j < 40; j++)
        squares[j] = (float)(j * j) / 1521.0f;
    CHECK(digitize_mismatches(squares, 40, 0, 1) == 0);
}

static void test_digitize_special_values(void)
{
    const float *e = numpy_30;
    /* np.digitize(np.array([-2,-1,-0.99,-0.0,0.0,0.03,0.035,0.5,0.9999,1,1.5],
     *             dtype=np.float32), edges) */
    const float v[11] = {-2, -1, -0.99f, -0.0f, 0.0f, 0.03f, 0.035f, 0.5f, 0.9999f, 1, 1.5f};
    const int numpy_bins[11] = {0, 1, 1, 15, 15, 15, 16, 22, 29, 30, 30};
    for (int i = 0; i < 11; i++)
        CHECK(ipm_digitize(v[i], e, 30) == numpy_bins[i]);
    CHECK(ipm_digitize(-INFINITY, e, 30) == 0);
    CHECK(ipm_digitize(INFINITY, e, 30) == 30);
    CHECK(ipm_digitize(-3e38f, e, 30) == 0);
    CHECK(ipm_digitize(3e38f, e, 30) == 30);
    CHECK(ipm_digitize(NAN, e, 30) == 0);
    CHECK(ipm_digitize(nextafterf(-1.0f, -2.0f), e, 30) == 0);
    CHECK(ipm_digitize(nextafterf(1.0f, 0.0f), e, 30) == 29);
}

static void test_bits(void)
{
    CHECK(ipm_bin_bits(2) == 2);
    CHECK(ipm_bin_bits(3) == 2);
    CHECK(ipm_bin_bits(4) == 3);
    CHECK(ipm_bin_bits(30) == 5);
    CHECK(ipm_bin_bits(31) == 5);
    CHECK(ipm_bin_bits(32) == 6);
    CHECK(ipm_bin_bits(64) == 7);
    CHECK(ipm_patterns_exact(25, 30));  /* 125 bits */
    CHECK(!ipm_patterns_exact(26, 30)); /* 130 bits */
    CHECK(ipm_patterns_exact(21, 32));  /* 126 bits */
    CHECK(!ipm_patterns_exact(22, 32));
}

static uint64_t field(ipm_pattern p, int pos, int bits)
{
    uint64_t mask = ((uint64_t)1 << bits) - 1;
    if (pos >= 64)
        return (p.hi >> (pos - 64)) & mask;
    uint64_t v = p.lo >> pos;
    if (pos + bits > 64)
        v |= p.hi << (64 - pos);
    return v & mask;
}

/* Unpacking each exact pattern gives back the brute-force bins, and no bit
 * beyond the last field is set. */
static void test_exact_round_trip(int units)
{
    const int rows = 500, n = 30, bits = ipm_bin_bits(n);
    float *act = malloc(sizeof(float) * (size_t)(rows * units));
    ipm_pattern *p = malloc(sizeof *p * (size_t)rows);
    for (int i = 0; i < rows * units; i++)
        act[i] = (i % 7 == 0) ? numpy_30[i % 30] : uniform(-1.3f, 1.3f);
    ipm_patterns(act, rows, units, numpy_30, n, p);
    int bad = 0;
    for (int i = 0; i < rows; i++) {
        for (int j = 0; j < units; j++)
            bad += field(p[i], j * bits, bits) !=
                   (uint64_t)brute_digitize(act[i * units + j], numpy_30, n);
        int used = units * bits;
        uint64_t beyond = used >= 128  ? 0
                          : used >= 64 ? p[i].hi >> (used - 64)
                                       : (p[i].lo >> used) | p[i].hi;
        bad += beyond != 0;
    }
    CHECK(bad == 0);
    free(act);
    free(p);
}

static float value_in_bin(const float *e, int n, int b)
{
    return b == 0 ? e[0] - 1 : b == n ? e[n - 1] + 1 : e[b - 1];
}

static int compare_pattern(const void *a, const void *b)
{
    const ipm_pattern *x = a, *y = b;
    if (x->hi != y->hi)
        return x->hi < y->hi ? -1 : 1;
    return (x->lo > y->lo) - (x->lo < y->lo);
}

static int count_duplicates(ipm_pattern *p, int n)
{
    qsort(p, (size_t)n, sizeof *p, compare_pattern);
    int dup = 0;
    for (int i = 1; i < n; i++)
        dup += compare_pattern(&p[i - 1], &p[i]) == 0;
    return dup;
}

/* All 31^2 bin vectors of a 2-unit layer map to distinct keys. */
static void test_exact_keys_distinct(void)
{
    const int n = 30, vectors = (n + 1) * (n + 1);
    float act[2 * 961];
    ipm_pattern p[961];
    for (int a = 0; a <= n; a++)
        for (int b = 0; b <= n; b++) {
            act[2 * (a * (n + 1) + b)] = value_in_bin(numpy_30, n, a);
            act[2 * (a * (n + 1) + b) + 1] = value_in_bin(numpy_30, n, b);
        }
    ipm_patterns(act, vectors, 2, numpy_30, n, p);
    CHECK(p[0].lo == 0 && p[0].hi == 0);
    CHECK(p[vectors - 1].lo == (30u | 30u << 5) && p[vectors - 1].hi == 0);
    CHECK(count_duplicates(p, vectors) == 0);
}

/* A 40-unit layer is fingerprinted: one row changed in each unit to every
 * bin gives 40 * 31 distinct fingerprints; other values in the same bins give
 * the same fingerprint. */
static void test_fingerprints(void)
{
    enum { UNITS = 40, N = 30, ROWS = UNITS * (N + 1) };
    CHECK(!ipm_patterns_exact(UNITS, N));
    float base[UNITS], *act = malloc(sizeof(float) * ROWS * UNITS);
    ipm_pattern *p = malloc(sizeof *p * ROWS), same[2];
    for (int j = 0; j < UNITS; j++)
        base[j] = value_in_bin(numpy_30, N, j % (N + 1));
    for (int j = 0; j < UNITS; j++)
        for (int b = 0; b <= N; b++) {
            float *row = act + (j * (N + 1) + b) * UNITS;
            memcpy(row, base, sizeof base);
            row[j] = value_in_bin(numpy_30, N, (j + b + 1) % (N + 1));
        }
    ipm_patterns(act, ROWS, UNITS, numpy_30, N, p);
    /* b = N puts unit j back into its base bin: those 40 rows repeat the base. */
    int dup = count_duplicates(p, ROWS);
    CHECK(dup == UNITS - 1);
    float shifted[2 * UNITS];
    for (int j = 0; j < UNITS; j++) {
        int b = j % (N + 1);
        shifted[j] = base[j];
        /* a different value in the same bin */
        shifted[UNITS + j] = b == 0 ? -5.0f : b == N ? 7.0f : nextafterf(numpy_30[b], -2.0f);
    }
    ipm_patterns(shifted, 2, UNITS, numpy_30, N, same);
    CHECK(same[0].lo == same[1].lo && same[0].hi == same[1].hi);
    free(act);
    free(p);
}

/* ipm_patterns' bulk paths (SIMD, guess-and-correct, binary search) on
 * every edge, its neighbours, NaN, infinities and random values, in a
 * one-unit layer so each pattern is one bin; 1 + 3n + 5 + 997 values leave
 * a tail beyond any vector width. */
static int bulk_mismatches(const float *e, int n)
{
    enum { RANDOM = 997 };
    int count = 0;
    float *v = malloc(sizeof(float) * (size_t)(3 * n + 6 + RANDOM));
    ipm_pattern *p = malloc(sizeof *p * (size_t)(3 * n + 6 + RANDOM));
    for (int j = 0; j < n; j++) {
        v[count++] = e[j];
        v[count++] = nextafterf(e[j], -INFINITY);
        v[count++] = nextafterf(e[j], INFINITY);
    }
    const float special[6] = {NAN, -NAN, INFINITY, -INFINITY, 3e38f, -3e38f};
    for (int k = 0; k < 6; k++)
        v[count++] = special[k];
    float span = e[n - 1] - e[0];
    for (int k = 0; k < RANDOM; k++)
        v[count++] = uniform(e[0] - span / 4, e[n - 1] + span / 4);
    ipm_patterns(v, count, 1, e, n, p);
    int bad = 0;
    for (int i = 0; i < count; i++)
        bad += p[i].lo != (uint64_t)brute_digitize(v[i], e, n) || p[i].hi != 0;
    free(v);
    free(p);
    return bad;
}

static void test_bulk_binning(void)
{
    float e[100];
    const int sizes[6] = {2, 30, 50, 64, 65, 100};
    for (int k = 0; k < 6; k++) {
        ipm_bin_edges(e, sizes[k], -1.0, 1.0);
        CHECK(bulk_mismatches(e, sizes[k]) == 0);
    }
    ipm_bin_edges(e, 50, -1e-3, 2.5e-3);
    CHECK(bulk_mismatches(e, 50) == 0);
    CHECK(bulk_mismatches(numpy_33, 33) == 0);
    float squares[40];
    for (int j = 0; j < 40; j++)
        squares[j] = (float)(j * j) / 1521.0f;
    CHECK(bulk_mismatches(squares, 40) == 0);
    /* a wide layer goes through the guess-and-correct binner too */
    ipm_binner b;
    ipm_bin_edges(e, 50, -1.0, 1.0);
    ipm_binner_init(&b, e, 50);
    CHECK(b.guess_in_reach);
    ipm_binner_init(&b, squares, 40);
    CHECK(!b.guess_in_reach && !b.simd);
}

/* Hand-computed: w = 0.5 over [-0.7, 1.2] takes k = floor(-1.4) = -2 to
 * floor(2.4) + 1 = 3: edges -1, -0.5, 0, 0.5, 1, 1.5. */
static void test_width_edges(void)
{
    float e[8];
    static const float want[6] = {-1.0f, -0.5f, 0.0f, 0.5f, 1.0f, 1.5f};
    CHECK(ipm_width_edge_count(0.5, -0.7, 1.2) == 6);
    CHECK(ipm_width_edges(e, 0.5, -0.7, 1.2) == 6 && memcmp(e, want, sizeof want) == 0);
    CHECK(ipm_digitize(-0.7f, e, 6) == 1 && ipm_digitize(0.0f, e, 6) == 3);
    CHECK(ipm_digitize(1.2f, e, 6) == 5 && ipm_digitize(-0.5f, e, 6) == 2);
    /* A dead ReLU layer (all zero) still gets one bin around its values: 0, w. */
    CHECK(ipm_width_edges(e, 0.07, 0.0, 0.0) == 2 && e[0] == 0.0f && e[1] == (float)0.07);
    /* Edges are k * w in double, rounded: 0.07 * 3 is not (float)0.21 from 0.21. */
    CHECK(ipm_width_edges(e, 0.07, 0.1, 0.2) == 3 && e[0] == (float)(1.0 * 0.07) &&
          e[2] == (float)(3.0 * 0.07));
    /* Too many bins: refused, nothing written. */
    CHECK(ipm_width_edge_count(1e-6, 0.0, 1.0) == -1);
    CHECK(ipm_width_edge_count(1.0, 0.0, IPM_MAX_EDGES - 2.0) == IPM_MAX_EDGES);
    CHECK(ipm_width_edge_count(1.0, 0.0, IPM_MAX_EDGES - 1.0) == -1);
}

/* With w a power of two every edge is exact, so the bin is Saxe et al.'s
 * floor(v / w), shifted by the first k. */
static void test_width_bins_are_floor(void)
{
    const double w = 0.125;
    float e[64];
    int n = ipm_width_edges(e, w, -2.3, 3.1), bad = 0;
    CHECK(n == (int)(floor(3.1 / w) - floor(-2.3 / w)) + 2);
    for (int i = 0; i < 10000; i++) {
        float v = uniform(-2.3f, 3.1f);
        bad += ipm_digitize(v, e, n) != (int)floor(v / w) - (int)floor(-2.3 / w) + 1;
    }
    CHECK(bad == 0);
}

/* Hand-computed equal-mass edges: 1..10 shuffled, 4 edges at indices
 * (j+1) * 10 / 5 = 2, 4, 6, 8 of the sorted values: 3, 5, 7, 9, so each
 * of the 5 bins holds 2 values. Ties: 0 x6, 1, 2 with 3 edges at indices
 * 2, 4, 6: 0, 0, 1. */
static void test_quantile_edges(void)
{
    float v[10] = {7, 2, 9, 4, 10, 1, 6, 3, 8, 5}, e[4];
    uint32_t keys[20];
    ipm_quantile_edges(v, keys, keys + 10, 10, 4, e);
    CHECK(e[0] == 3 && e[1] == 5 && e[2] == 7 && e[3] == 9);
    int count[5] = {0};
    for (int i = 1; i <= 10; i++)
        count[ipm_digitize((float)i, e, 4)]++;
    CHECK(count[0] == 2 && count[1] == 2 && count[2] == 2 && count[3] == 2 && count[4] == 2);
    float t[8] = {0, 1, 0, 0, 2, 0, 0, 0}, te[3];
    ipm_quantile_edges(t, keys, keys + 8, 8, 3, te);
    CHECK(te[0] == 0 && te[1] == 0 && te[2] == 1);
    float z[4] = {0.0f, -0.0f, 0.0f, -0.0f}, ze[2]; /* -0 sorts first: edges -0, +0 */
    ipm_quantile_edges(z, keys, keys + 4, 4, 2, ze);
    CHECK(signbit(ze[0]) && !signbit(ze[1]));
    float m[6] = {-2.5f, INFINITY, -INFINITY, 1e-30f, -1e-30f, 3}, me[5];
    ipm_quantile_edges(m, keys, keys + 6, 6, 5, me); /* indices 1..5: all but the least */
    CHECK(me[0] == -2.5f && me[1] == -1e-30f && me[2] == 1e-30f && me[3] == 3 && me[4] == INFINITY);
}

/* A binner per unit: unit 0 on edges 0, 1; unit 1 on 10, 20; 2 bits a unit. */
static void test_per_unit_patterns(void)
{
    static const float e0[2] = {0, 1}, e1[2] = {10, 20};
    const float act[4] = {0.5f, 15, -1, 25};
    ipm_binner b[2];
    ipm_binner_init(&b[0], e0, 2);
    ipm_binner_init(&b[1], e1, 2);
    ipm_pattern out[2];
    ipm_binners_patterns(b, act, 2, 2, out);
    CHECK(out[0].lo == (1 | 1 << 2) && out[0].hi == 0); /* bins 1, 1 */
    CHECK(out[1].lo == (0 | 2 << 2) && out[1].hi == 0); /* bins 0, 2 */
}

int main(void)
{
    test_quantile_edges();
    test_per_unit_patterns();
    test_width_edges();
    test_width_bins_are_floor();
    test_bulk_binning();
    test_edges_match_numpy();
    test_digitize_against_brute_force();
    test_digitize_special_values();
    test_bits();
    test_exact_round_trip(1);
    test_exact_round_trip(12);
    test_exact_round_trip(13);
    test_exact_round_trip(25);
    test_exact_keys_distinct();
    test_fingerprints();
    return check_report("test_bins");
}
