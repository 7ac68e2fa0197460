/* hist: sparse histograms of counts against hand-computed sums and against
 * count tables holding the same counts (bitwise), and the partition of the
 * samples among ranks (whole x groups, balanced, every sample once). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ipmpi/base/error.h"
#include "ipmpi/info/hash.h"
#include "ipmpi/info/hist.h"
#include "ipmpi/info/partition.h"
#include "ipmpi/info/table.h"
#include "check.h"

static char err[IPM_ERRLEN];

static uint64_t mix(uint64_t z)
{
    z += 0x9e3779b97f4a7c15ULL;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* Counts 1, 1, 2, 3, 3, 3: S = 2 log2 2 + 3 (3 log2 3), total 13. */
static void test_hand_computed(void)
{
    const uint64_t counts[] = {3, 1, 3, 2, 1, 3};
    ipm_hist h;
    ipm_hist_init(&h);
    CHECK(ipm_hist_add_counts(&h, counts, 6, err) == 0);
    CHECK(h.len == 3);
    CHECK(h.bin[0].count == 1 && h.bin[0].keys == 2);
    CHECK(h.bin[1].count == 2 && h.bin[1].keys == 1);
    CHECK(h.bin[2].count == 3 && h.bin[2].keys == 3);
    CHECK(ipm_hist_total(&h) == 13);
    double s = 2.0 + 3.0 * (3.0 * log2(3.0));
    CHECK_NEAR(ipm_hist_sum_clog2c(&h), s, 1e-12);
    CHECK_NEAR(ipm_hist_entropy(&h), log2(13.0) - s / 13.0, 1e-12);
    /* adding a histogram: counts 2 and 5 */
    ipm_hist_bin more[2] = {{2, 4}, {5, 1}};
    CHECK(ipm_hist_add(&h, more, 2, err) == 0);
    CHECK(h.len == 4 && h.bin[1].keys == 5 && h.bin[3].count == 5);
    CHECK(ipm_hist_total(&h) == 13 + 8 + 5);
    ipm_hist_clear(&h);
    CHECK(ipm_hist_total(&h) == 0 && ipm_hist_entropy(&h) == 0.0);
    ipm_hist_free(&h);
}

/* A dense histogram knows keys of count 1 only through the total. */
static void test_dense(void)
{
    uint32_t dense[6] = {0, 0, 2, 0, 0, 1}; /* two 2s, one 5, and ones up to 16 */
    ipm_hist h;
    ipm_hist_init(&h);
    CHECK(ipm_hist_add_dense(&h, dense, 5, 16, err) == 0);
    CHECK(h.len == 3 && h.bin[0].count == 1 && h.bin[0].keys == 7);
    for (int c = 0; c < 6; c++)
        CHECK(dense[c] == 0);
    ipm_hist_free(&h);
}

/* Random counts, small and beyond the dense range, split in parts: the
 * parts' histograms added equal one table holding them all, bit for bit. */
static void test_against_table(void)
{
    enum { N = 20000, PARTS = 7 };
    uint64_t *counts = malloc(N * sizeof *counts);
    ipm_table t;
    CHECK(ipm_table_init(&t, 16, err) == 0);
    for (int k = 0; k < N; k++) {
        uint64_t r = mix((uint64_t)k);
        counts[k] = r % 10 == 0 ? 60000 + r % 20000 : 1 + r % 40;
        CHECK(ipm_table_add(&t, 0, (ipm_pattern){(uint64_t)k, 0}, counts[k], err) == 0);
    }
    ipm_hist sum, whole;
    ipm_hist_init(&sum);
    ipm_hist_init(&whole);
    for (int p = 0; p < PARTS; p++) {
        ipm_hist part;
        ipm_hist_init(&part);
        int lo = p * N / PARTS, hi = (p + 1) * N / PARTS;
        CHECK(ipm_hist_add_counts(&part, counts + lo, (size_t)(hi - lo), err) == 0);
        CHECK(ipm_hist_add(&sum, part.bin, part.len, err) == 0);
        ipm_hist_free(&part);
    }
    CHECK(ipm_table_histogram(&t, &whole, err) == 0);
    CHECK(sum.len == whole.len && memcmp(sum.bin, whole.bin, sum.len * sizeof *sum.bin) == 0);
    double a = ipm_hist_entropy(&sum), b = ipm_table_entropy(&t);
    CHECK(memcmp(&a, &b, sizeof a) == 0);
    CHECK(ipm_hist_total(&sum) == t.total);
    ipm_hist_free(&sum);
    ipm_hist_free(&whole);
    ipm_table_free(&t);
    free(counts);
}

/* Samples by owner: x groups whole, every sample once, about N / P each. */
static void test_slices(void)
{
    enum { N = 1000 };
    int32_t x_id[N];
    for (int i = 0; i < N; i++)
        x_id[i] = (int32_t)((i * 7) % 400); /* groups of 2 or 3, scattered */
    for (int parts = 1; parts <= 9; parts += 4) {
        ipm_slices s;
        CHECK(ipm_slices_init(&s, x_id, N, parts, err) == 0);
        CHECK(s.first[0] == 0 && s.first[parts] == N);
        int seen[N] = {0};
        for (int q = 0; q < parts; q++) {
            int size = s.first[q + 1] - s.first[q];
            CHECK(size >= N / parts - 3 && size <= N / parts + 3);
            for (int j = s.first[q]; j < s.first[q + 1]; j++) {
                int i = s.sample[j];
                seen[i]++;
                CHECK(x_id[i] >= s.x_cut[q] && x_id[i] < s.x_cut[q + 1]);
                CHECK(j == s.first[q] || s.sample[j - 1] < i);
            }
        }
        for (int i = 0; i < N; i++)
            CHECK(seen[i] == 1);
        ipm_slices_free(&s);
    }
    /* more parts than x ids: some parts empty, nothing lost */
    ipm_slices s;
    CHECK(ipm_slices_init(&s, x_id, 5, 8, err) == 0);
    CHECK(s.first[8] == 5);
    ipm_slices_free(&s);
}

/* Owners: spread evenly, and the same pattern always has the same one. */
static void test_owners(void)
{
    enum { P = 6, N = 60000 };
    int per[P] = {0};
    for (int k = 0; k < N; k++) {
        ipm_pattern t = {(uint64_t)k, k % 3 ? 0 : (uint64_t)k * 11};
        int q = ipm_pattern_owner(t, P);
        CHECK(q >= 0 && q < P && q == ipm_pattern_owner(t, P));
        per[q]++;
    }
    for (int q = 0; q < P; q++)
        CHECK(per[q] > N / P * 9 / 10 && per[q] < N / P * 11 / 10);
    CHECK(ipm_pattern_words(10, 50) == 1 && ipm_pattern_words(11, 50) == 2);
    CHECK(ipm_replicas_on(0, 5, 3) == 2 && ipm_replicas_on(2, 5, 3) == 1 &&
          ipm_replicas_on(6, 5, 8) == 0);
}

int main(void)
{
    test_hand_computed();
    test_dense();
    test_against_table();
    test_slices();
    test_owners();
    return check_report("test_hist");
}
