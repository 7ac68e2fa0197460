/* hash: the one hash of a count key (group, pattern), used by the count
 * tables, the pattern dictionaries and the partitioned reduce. Count tables
 * index slots by its low bits; the partitioned reduce gives a pattern to
 * the rank its high 32 bits select, so the two never use the same bits and
 * a rank's share of the keys still spreads over all of its slots. */
#ifndef IPMPI_INFO_HASH_H
#define IPMPI_INFO_HASH_H

#include <stdint.h>

#include "ipmpi/info/bins.h"

/* wyhash's multiply-fold: one 64x64->128 multiply mixes all input bits. */
static inline uint64_t ipm_key_hash(uint32_t group, uint64_t lo, uint64_t hi)
{
    __extension__ typedef unsigned __int128 u128;
    u128 r = (u128)(lo ^ 0xa0761d6478bd642fULL) *
             (hi ^ ((uint64_t)group * 0xe7037ed1a0b428dbULL) ^ 0x8ebc6af09c88c6e3ULL);
    return (uint64_t)r ^ (uint64_t)(r >> 64);
}

/* A pattern's hash is its key's with group 0 (the T table's key). */
static inline uint64_t ipm_pattern_hash(ipm_pattern p)
{
    return ipm_key_hash(0, p.lo, p.hi);
}

/* Which of n_parts owns the pattern of hash h: the high 32 bits of h,
 * scaled (Lemire's multiply-shift), so owners are equally likely. */
static inline int ipm_hash_owner(uint64_t h, int n_parts)
{
    return (int)(((h >> 32) * (uint64_t)n_parts) >> 32);
}

static inline int ipm_pattern_owner(ipm_pattern p, int n_parts)
{
    return ipm_hash_owner(ipm_pattern_hash(p), n_parts);
}

#endif
