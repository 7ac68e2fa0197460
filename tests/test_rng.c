/* rng: Random123 known answers, stream layout, statistics of the draws. */
#include "ipmpi/base/rng.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

static void check_known_answers(void)
{
    /* Random123 kat_vectors, philox4x32 10 rounds. */
    static const struct {
        uint32_t ctr[4], key[2], out[4];
    } kat[] = {
        {{0, 0, 0, 0}, {0, 0}, {0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8}},
        {{0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff},
         {0xffffffff, 0xffffffff},
         {0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd}},
        {{0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344},
         {0xa4093822, 0x299f31d0},
         {0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1}},
    };
    for (size_t t = 0; t < sizeof kat / sizeof kat[0]; t++) {
        uint32_t out[4];
        ipm_philox4x32_10(kat[t].ctr, kat[t].key, out);
        for (int i = 0; i < 4; i++)
            CHECK(out[i] == kat[t].out[i]);
    }
}

/* The stream's words are the blocks philox({counter lo, hi, stream, purpose}, seed). */
static void check_stream_layout(void)
{
    const uint64_t seed = 0x0123456789abcdefULL;
    const uint32_t key[2] = {0x89abcdefu, 0x01234567u};
    ipm_rng rng;
    ipm_rng_init(&rng, seed, 7, IPM_RNG_BATCH);
    for (uint32_t block = 0; block < 3; block++) {
        uint32_t ctr[4] = {block, 0, 7, IPM_RNG_BATCH}, out[4];
        ipm_philox4x32_10(ctr, key, out);
        for (int i = 0; i < 4; i++)
            CHECK(ipm_rng_u32(&rng) == out[i]);
    }
    /* The counter carries into its high word. */
    ipm_rng_init(&rng, seed, 7, IPM_RNG_BATCH);
    rng.counter = 0xffffffffu;
    uint32_t ctr_lo[4] = {0xffffffffu, 0, 7, IPM_RNG_BATCH};
    uint32_t ctr_hi[4] = {0, 1, 7, IPM_RNG_BATCH};
    uint32_t lo[4], hi[4];
    ipm_philox4x32_10(ctr_lo, key, lo);
    ipm_philox4x32_10(ctr_hi, key, hi);
    for (int i = 0; i < 4; i++)
        CHECK(ipm_rng_u32(&rng) == lo[i]);
    CHECK(ipm_rng_u32(&rng) == hi[0]);

    uint32_t ctr_at[4] = {5, 2, 9, IPM_RNG_SAMPLED}, at[4];
    ipm_philox4x32_10(ctr_at, key, at);
    CHECK(ipm_rng_at(seed, 9, IPM_RNG_SAMPLED, (2ULL << 32) | 5) == at[0]);

    /* uniform: (a * 2^21 + (b >> 11)) / 2^53 from two consecutive words. */
    ipm_rng a, b;
    ipm_rng_init(&a, seed, 1, IPM_RNG_DATA);
    ipm_rng_init(&b, seed, 1, IPM_RNG_DATA);
    for (int i = 0; i < 10; i++) {
        double wa = ipm_rng_u32(&a), wb = ipm_rng_u32(&a);
        double expect = (wa * 2097152.0 + (double)((uint32_t)wb >> 11)) / 9007199254740992.0;
        CHECK(ipm_rng_uniform(&b) == expect);
    }
}

static void check_reproducible(void)
{
    ipm_rng a, b, other_stream, other_purpose, other_seed;
    ipm_rng_init(&a, 42, 3, IPM_RNG_INIT);
    ipm_rng_init(&b, 42, 3, IPM_RNG_INIT);
    ipm_rng_init(&other_stream, 42, 4, IPM_RNG_INIT);
    ipm_rng_init(&other_purpose, 42, 3, IPM_RNG_BATCH);
    ipm_rng_init(&other_seed, 43, 3, IPM_RNG_INIT);
    int same = 0, same_stream = 0, same_purpose = 0, same_seed = 0;
    for (int i = 0; i < 1000; i++) {
        uint32_t x = ipm_rng_u32(&a);
        same += x == ipm_rng_u32(&b);
        same_stream += x == ipm_rng_u32(&other_stream);
        same_purpose += x == ipm_rng_u32(&other_purpose);
        same_seed += x == ipm_rng_u32(&other_seed);
    }
    CHECK(same == 1000);
    CHECK(same_stream < 3);
    CHECK(same_purpose < 3);
    CHECK(same_seed < 3);

    /* The state is the struct: a copy taken mid-block continues identically. */
    ipm_rng_init(&a, 42, 3, IPM_RNG_INIT);
    (void)ipm_rng_u32(&a);
    (void)ipm_rng_normal(&a);
    ipm_rng saved = a;
    double n1 = ipm_rng_normal(&a), n2 = ipm_rng_normal(&saved);
    CHECK(memcmp(&n1, &n2, sizeof n1) == 0);
    CHECK(ipm_rng_below(&a, 1000) == ipm_rng_below(&saved, 1000));
}

static void check_moments(void)
{
    const int n = 100000;
    ipm_rng rng;
    ipm_rng_init(&rng, 1, 0, IPM_RNG_DATA);
    double s1 = 0, s2 = 0, lo = 1, hi = 0;
    for (int i = 0; i < n; i++) {
        double u = ipm_rng_uniform(&rng);
        s1 += u;
        s2 += u * u;
        lo = u < lo ? u : lo;
        hi = u > hi ? u : hi;
    }
    double mean = s1 / n, var = s2 / n - mean * mean;
    CHECK(lo >= 0.0 && hi < 1.0);
    CHECK_NEAR(mean, 0.5, 0.005); /* sd of the mean ~0.0009 */
    CHECK_NEAR(var, 1.0 / 12, 0.002);

    double m1 = 0, m2 = 0, m3 = 0, m4 = 0;
    for (int i = 0; i < n; i++) {
        double z = ipm_rng_normal(&rng);
        m1 += z;
        m2 += z * z;
        m3 += z * z * z;
        m4 += z * z * z * z;
    }
    CHECK_NEAR(m1 / n, 0.0, 0.015); /* sd ~0.0032 */
    CHECK_NEAR(m2 / n, 1.0, 0.02);  /* sd ~0.0045 */
    CHECK_NEAR(m3 / n, 0.0, 0.05);  /* sd ~0.008 */
    CHECK_NEAR(m4 / n, 3.0, 0.15);  /* sd ~0.03 */
}

static void check_below(void)
{
    enum { K = 7, N = 70000 };
    long hist[K] = {0};
    ipm_rng rng;
    ipm_rng_init(&rng, 5, 0, IPM_RNG_SPLIT);
    for (int i = 0; i < N; i++) {
        uint32_t v = ipm_rng_below(&rng, K);
        CHECK(v < K);
        if (v < K)
            hist[v]++;
    }
    double chi2 = 0, expect = (double)N / K;
    for (int k = 0; k < K; k++)
        chi2 += (hist[k] - expect) * (hist[k] - expect) / expect;
    CHECK(chi2 < 22.5); /* chi-square, 6 degrees of freedom: P(> 22.5) ~ 0.001 */

    for (int i = 0; i < 100; i++)
        CHECK(ipm_rng_below(&rng, 1) == 0);

    /* n just above 2^31 rejects almost half the words: still in range, mean n/2. */
    const uint32_t big = 0x80000001u;
    double sum = 0;
    for (int i = 0; i < 20000; i++) {
        uint32_t v = ipm_rng_below(&rng, big);
        CHECK(v < big);
        sum += v;
    }
    CHECK_NEAR(sum / 20000 / big, 0.5, 0.01);
}

static void check_shuffle(void)
{
    enum { N = 1000 };
    int32_t a[N];
    int seen[N] = {0};
    for (int i = 0; i < N; i++)
        a[i] = i;
    ipm_rng rng;
    ipm_rng_init(&rng, 9, 0, IPM_RNG_SPLIT);
    ipm_rng_shuffle(&rng, a, N);
    int fixed = 0;
    for (int i = 0; i < N; i++) {
        CHECK(a[i] >= 0 && a[i] < N);
        if (a[i] >= 0 && a[i] < N)
            seen[a[i]]++;
        fixed += a[i] == i;
    }
    for (int i = 0; i < N; i++)
        CHECK(seen[i] == 1);
    CHECK(fixed < 10); /* about Poisson(1) fixed points for a random permutation */

    /* Every one of the 6 orders of 3 elements comes out about equally often. */
    long count[6] = {0};
    for (int t = 0; t < 60000; t++) {
        int32_t b[3] = {0, 1, 2};
        ipm_rng_shuffle(&rng, b, 3);
        count[b[0] * 2 + (b[1] > b[2])]++;
    }
    for (int i = 0; i < 6; i++)
        CHECK_NEAR(count[i], 10000, 500);
    int32_t one = 5;
    ipm_rng_shuffle(&rng, &one, 1);
    CHECK(one == 5);
}

int main(void)
{
    check_known_answers();
    check_stream_layout();
    check_reproducible();
    check_moments();
    check_below();
    check_shuffle();
    return check_report("test_rng");
}
