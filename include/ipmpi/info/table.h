/* table: counts of (group, pattern) keys in an open-addressing hash table.
 * group is an x id, a class label, or 0 for the pattern's marginal.
 * Counts are integers, so merging tables in any order gives the same table;
 * ipm_table_sum_clog2c sums over the count histogram, so its floating-point
 * result does not depend on insertion or merge order either. Pure
 * computation: no MPI, no I/O. */
#ifndef IPMPI_TABLE_H
#define IPMPI_TABLE_H

#include <stddef.h>
#include <stdint.h>

#include "ipmpi/info/bins.h"

typedef struct ipm_count {
    uint64_t lo, hi;      /* pattern */
    uint32_t group;
    uint32_t used;        /* slot occupied (0/1); always 1 in exported arrays */
    uint64_t count;
} ipm_count;

typedef struct ipm_table {
    size_t capacity;      /* slots, a power of two */
    size_t len;           /* distinct keys */
    uint64_t total;       /* sum of counts */
    ipm_count *slot;
    uint32_t *filled;     /* slot indices of the len keys in insertion order, so
                             clear, export and sums cost O(len), not O(capacity) */
} ipm_table;

int ipm_table_init(ipm_table *t, size_t expected_keys, char *err);
void ipm_table_free(ipm_table *t);
void ipm_table_clear(ipm_table *t);   /* keeps the memory */

/* Adds count to key (group, p); grows as needed. */
int ipm_table_add(ipm_table *t, uint32_t group, ipm_pattern p, uint64_t count, char *err);

/* Adds 1 to key (group[i], p[i]) for every i < n with keep[i] != 0; group
 * NULL means group 0 for all, keep NULL keeps all. The estimators' hot path:
 * one call per table and layer keeps the table state in registers. */
int ipm_table_add_patterns(ipm_table *t, const int32_t *group, const ipm_pattern *p, int n,
                           const uint8_t *keep, char *err);

/* Writes the len occupied entries to out (insertion order); returns len. */
size_t ipm_table_export(const ipm_table *t, ipm_count *out);

/* Adds every entry of a exported array. */
int ipm_table_merge(ipm_table *t, const ipm_count *entries, size_t n, char *err);

/* The canonical sum every entropy here uses: over the distinct counts c in
 * increasing order, add (double)m_c * c log2 c, m_c the number of keys with
 * count c. It depends only on the multiset of counts, so tables filled or
 * merged in any order, and the dense counters of count.h, give bitwise
 * identical sums. */

/* c log2 c in double, the one place it is computed (tables of it cached by
 * callers hold bitwise the same values). */
double ipm_clog2c(uint64_t c);

/* The canonical sum over hist[c] = m_c for 2 <= c <= top (counts 0 and 1 add
 * nothing), continuing from s; clears hist[0..top]. clog[c] = ipm_clog2c(c)
 * for c < n_clog (clog may be NULL with n_clog 0), computed above. */
double ipm_sum_clog2c_hist(double s, uint32_t *hist, uint64_t top, const double *clog,
                           size_t n_clog);

/* The canonical sum over the table's counts (histogram for small counts,
 * sorting above; should scratch space fail to allocate, it falls back to a
 * plain sum, correct but order-dependent). */
double ipm_table_sum_clog2c(const ipm_table *t);

/* Plug-in entropy in bits of total samples whose counts sum to
 * sum_clog2c: log2(total) - S/total, 0 for total 0, never below 0. */
double ipm_entropy_from_sum(double sum_clog2c, uint64_t total);

/* Plug-in entropy in bits of the table's distribution: log2(total) - S/total
 * (0 for an empty table). */
double ipm_table_entropy(const ipm_table *t);

#endif
