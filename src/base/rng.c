/* rng: Philox4x32-10 exactly as Random123 (philox.h), streams of blocks
 * ctr = {counter lo32, counter hi32, stream, purpose}, key = {seed lo32, seed hi32}. */
#include "ipmpi/base/rng.h"

#include <math.h>

#define PHILOX_M0 0xD2511F53u
#define PHILOX_M1 0xCD9E8D57u
#define PHILOX_W0 0x9E3779B9u
#define PHILOX_W1 0xBB67AE85u

static void philox_round(uint32_t c[4], const uint32_t k[2])
{
    uint64_t p0 = (uint64_t)PHILOX_M0 * c[0];
    uint64_t p1 = (uint64_t)PHILOX_M1 * c[2];
    uint32_t hi0 = (uint32_t)(p0 >> 32), lo0 = (uint32_t)p0;
    uint32_t hi1 = (uint32_t)(p1 >> 32), lo1 = (uint32_t)p1;
    uint32_t out0 = hi1 ^ c[1] ^ k[0];
    uint32_t out2 = hi0 ^ c[3] ^ k[1];
    c[0] = out0;
    c[1] = lo1;
    c[2] = out2;
    c[3] = lo0;
}

void ipm_philox4x32_10(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4])
{
    uint32_t c[4] = {ctr[0], ctr[1], ctr[2], ctr[3]};
    uint32_t k[2] = {key[0], key[1]};
    for (int round = 0; round < 10; round++) {
        if (round > 0) { /* Random123 bumps the key before every round but the first */
            k[0] += PHILOX_W0;
            k[1] += PHILOX_W1;
        }
        philox_round(c, k);
    }
    for (int i = 0; i < 4; i++)
        out[i] = c[i];
}

static void make_key(uint64_t seed, uint32_t key[2])
{
    key[0] = (uint32_t)seed;
    key[1] = (uint32_t)(seed >> 32);
}

void ipm_rng_init(ipm_rng *rng, uint64_t seed, uint32_t stream, uint32_t purpose)
{
    make_key(seed, rng->key);
    rng->stream = stream;
    rng->purpose = purpose;
    rng->counter = 0;
    for (int i = 0; i < 4; i++)
        rng->block[i] = 0;
    rng->used = 4;
}

uint32_t ipm_rng_u32(ipm_rng *rng)
{
    if (rng->used >= 4) {
        uint32_t ctr[4] = {(uint32_t)rng->counter, (uint32_t)(rng->counter >> 32), rng->stream,
                           rng->purpose};
        ipm_philox4x32_10(ctr, rng->key, rng->block);
        rng->counter++;
        rng->used = 0;
    }
    return rng->block[rng->used++];
}

/* Two consecutive words a, b: the top 53 bits of (a << 32 | b), times 2^-53. */
double ipm_rng_uniform(ipm_rng *rng)
{
    uint64_t a = ipm_rng_u32(rng);
    uint64_t b = ipm_rng_u32(rng);
    return (double)((a << 32 | b) >> 11) * 0x1.0p-53;
}

/* Box-Muller, cosine branch only, so no second value is cached outside the
 * struct: u1 from words 1-2, u2 from words 3-4 of the draw (four words per
 * normal); z = sqrt(-2 ln(1 - u1)) cos(2 pi u2), 1 - u1 in (0, 1]. */
double ipm_rng_normal(ipm_rng *rng)
{
    const double two_pi = 6.283185307179586476925286766559;
    double u1 = ipm_rng_uniform(rng);
    double u2 = ipm_rng_uniform(rng);
    return sqrt(-2.0 * log(1.0 - u1)) * cos(two_pi * u2);
}

/* Lemire's multiply-and-reject (2019): unbiased, one multiply per draw
 * except with probability below n / 2^32. */
uint32_t ipm_rng_below(ipm_rng *rng, uint32_t n)
{
    uint64_t m = (uint64_t)ipm_rng_u32(rng) * n;
    uint32_t low = (uint32_t)m;
    if (low < n) {
        uint32_t threshold = (uint32_t)(-n) % n; /* 2^32 mod n */
        while (low < threshold) {
            m = (uint64_t)ipm_rng_u32(rng) * n;
            low = (uint32_t)m;
        }
    }
    return (uint32_t)(m >> 32);
}

void ipm_rng_shuffle(ipm_rng *rng, int32_t *a, int n)
{
    for (int i = n - 1; i > 0; i--) {
        int j = (int)ipm_rng_below(rng, (uint32_t)i + 1);
        int32_t t = a[i];
        a[i] = a[j];
        a[j] = t;
    }
}

uint32_t ipm_rng_at(uint64_t seed, uint32_t stream, uint32_t purpose, uint64_t index)
{
    uint32_t key[2], out[4];
    uint32_t ctr[4] = {(uint32_t)index, (uint32_t)(index >> 32), stream, purpose};
    make_key(seed, key);
    ipm_philox4x32_10(ctr, key, out);
    return out[0];
}
