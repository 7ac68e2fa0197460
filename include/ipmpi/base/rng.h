/* rng: Philox4x32-10 counter-based streams (Salmon et al., SC'11).
 * A stream is keyed by (seed, stream, purpose): the same triple gives the
 * same numbers on any rank, in any process, so a replica's whole life
 * depends only on (seed, replica). The state is a plain counter, so it can
 * be saved and restored exactly. */
#ifndef IPMPI_RNG_H
#define IPMPI_RNG_H

#include <stdint.h>

enum ipm_rng_purpose {
    IPM_RNG_INIT = 1,    /* initial weights of replica `stream` */
    IPM_RNG_BATCH = 2,   /* batch order of replica `stream` */
    IPM_RNG_DATA = 3,    /* generated data sets */
    IPM_RNG_SPLIT = 4,   /* train/test split */
    IPM_RNG_SAMPLED = 5, /* sampled estimator's replica choice; stream = epoch */
    IPM_RNG_SUBSET = 6   /* [data] subset of an IDX source's training images */
};

typedef struct ipm_rng {
    uint32_t key[2]; /* seed */
    uint32_t stream;
    uint32_t purpose;
    uint64_t counter; /* next block */
    uint32_t block[4];
    int used; /* words of block consumed, 4 = empty */
} ipm_rng;

/* One Philox4x32-10 block: out = philox(ctr, key). */
void ipm_philox4x32_10(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4]);

void ipm_rng_init(ipm_rng *rng, uint64_t seed, uint32_t stream, uint32_t purpose);
uint32_t ipm_rng_u32(ipm_rng *rng);
double ipm_rng_uniform(ipm_rng *rng);                  /* [0, 1), 53 bits */
double ipm_rng_normal(ipm_rng *rng);                   /* N(0, 1) */
uint32_t ipm_rng_below(ipm_rng *rng, uint32_t n);      /* uniform in [0, n), unbiased, n > 0 */
void ipm_rng_shuffle(ipm_rng *rng, int32_t *a, int n); /* Fisher-Yates */

/* Stateless draw: word 0 of philox((index lo, index hi, stream, purpose), seed). */
uint32_t ipm_rng_at(uint64_t seed, uint32_t stream, uint32_t purpose, uint64_t index);

#endif
