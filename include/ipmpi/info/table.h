/* table: counts of (group, pattern) keys in an open-addressing hash table.
 * group is an x id, a class label, or 0 for the pattern's marginal.
 * Counts are integers, so merging tables in any order gives the same table;
 * ipm_table_sum_clog2c is the canonical sum over the count histogram
 * (hist.h), so its floating-point result does not depend on insertion or
 * merge order either. Pure
 * computation: no MPI, no I/O. */
#ifndef IPMPI_TABLE_H
#define IPMPI_TABLE_H

#include <stddef.h>
#include <stdint.h>

#include "ipmpi/info/bins.h"
#include "ipmpi/info/hist.h"

typedef struct ipm_count {
    uint64_t lo, hi; /* pattern */
    uint32_t group;
    uint32_t used; /* slot occupied (0/1); always 1 in exported arrays */
    uint64_t count;
} ipm_count;

typedef struct ipm_table {
    size_t capacity; /* slots, a power of two */
    size_t len;      /* distinct keys */
    uint64_t total;  /* sum of counts */
    ipm_count *slot;
    uint32_t *filled; /* slot indices of the len keys in insertion order, so
                         clear, export and sums cost O(len), not O(capacity) */
} ipm_table;

int ipm_table_init(ipm_table *t, size_t expected_keys, char *err);
void ipm_table_free(ipm_table *t);
void ipm_table_clear(ipm_table *t); /* keeps the memory */

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

/* The histogram of the table's counts, into an empty out. */
int ipm_table_histogram(const ipm_table *t, ipm_hist *out, char *err);

/* The canonical sum over the table's counts (histogram for small counts,
 * sorting above; should scratch space fail to allocate, it falls back to a
 * plain sum, correct but order-dependent). */
double ipm_table_sum_clog2c(const ipm_table *t);

/* Plug-in entropy in bits of the table's distribution: log2(total) - S/total
 * (0 for an empty table). */
double ipm_table_entropy(const ipm_table *t);

#endif
