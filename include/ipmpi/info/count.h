/* count: the estimators' counting on dense ids instead of hash tables.
 * Per layer and logged epoch a dictionary maps each distinct pattern to a
 * dense id 0..D-1 (in order of first appearance), shared by all local
 * replicas. T and (Y, T) counts then live in plain arrays indexed by id; (X,
 * T) counts come from the samples grouped by x id, each group's ids sorted
 * and run-length counted. Every entropy ends in ipm_sum_clog2c_hist
 * (hist.h), so it is bitwise the one a count table holding the same
 * multiset of counts gives; the same counts can also be exported into count
 * tables (the tree reduce) or as a list of (Y, T) cells (the partitioned
 * reduce). Pure computation: no MPI, no I/O. */
#ifndef IPMPI_COUNT_H
#define IPMPI_COUNT_H

#include <stddef.h>
#include <stdint.h>

#include "ipmpi/info/bins.h"
#include "ipmpi/info/table.h"

/* A slot of the dictionary: the pattern's low word, its id, and the
 * generation it was filled in (older generations count as empty, so
 * clearing costs nothing). */
typedef struct ipm_dict_slot {
    uint64_t lo;
    uint32_t id, gen;
} ipm_dict_slot;

/* Open addressing with linear probing, at most half full; one 16-byte slot
 * per probe (the high word is checked in key[] only when the low words
 * match and some key has a high word). */
typedef struct ipm_dict {
    ipm_dict_slot *slot;
    size_t capacity;  /* slots, a power of two */
    uint32_t gen;     /* the current generation, >= 1 */
    int wide;         /* some key of this generation has hi != 0 */
    ipm_pattern *key; /* key[id] for id < len */
    size_t len, key_capacity;
} ipm_dict;

int ipm_dict_init(ipm_dict *d, size_t expected_keys, char *err);
void ipm_dict_free(ipm_dict *d);
void ipm_dict_clear(ipm_dict *d); /* keeps the memory */

/* id[i] = the id of p[i], adding patterns not seen yet; grows as needed. */
int ipm_dict_map(ipm_dict *d, const ipm_pattern *p, int n, int32_t *id, char *err);

/* The samples grouped by x id (CSR): member[offset[x] .. offset[x+1]) are
 * x's samples in increasing order. */
typedef struct ipm_x_groups {
    int n, n_x, largest;
    int32_t *offset; /* n_x + 1 */
    int32_t *member; /* n */
} ipm_x_groups;

/* x ids must lie in 0..n_x-1 (n_x = 1 + the largest id). */
int ipm_x_groups_init(ipm_x_groups *g, const int32_t *x_id, int n, char *err);
void ipm_x_groups_free(ipm_x_groups *g);

/* The (sample, replica) pairs of one layer an estimator counts. ids[k][i] is
 * sample i's pattern id under local replica k. pick NULL counts every
 * replica k < n_reps for every sample; otherwise sample i is counted from
 * replica pick[i] only, and not at all when pick[i] < 0. */
typedef struct ipm_pairs {
    const int32_t *const *ids;
    int n_reps;
    const int32_t *pick;
} ipm_pairs;

/* Scratch of the counting, reused for every layer and estimator; all count
 * arrays are zero between calls (only touched entries are reset). (Y, T)
 * counts live in cells id << class_bits | y. */
typedef struct ipm_counter {
    int n, n_classes, class_bits, max_reps;
    size_t n_ids;       /* ids the arrays can hold */
    uint32_t *count_t;  /* n_ids; also the large-group scratch for (X, T) */
    uint32_t *count_yt; /* n_ids << class_bits */
    uint32_t *pool_yt;  /* the same, summed over replicas */
    int32_t *touched_t, *touched_yt, *pool_touched_yt; /* one entry longer than their arrays */
    uint32_t *above_one;             /* n_ids << class_bits: a drain's counts above 1 */
    int32_t *lane_mult, *lane_first; /* n */
    uint32_t *hist;                  /* n * max_reps + 1: the count histogram */
    double *clog;                    /* clog[c] = ipm_clog2c(c) for c < n_clog */
    size_t n_clog;
    int32_t *group; /* largest x group * max_reps ids */
} ipm_counter;

/* For n samples, up to max_reps replicas per pair set, labels 0..n_classes-1
 * and x groups no larger than largest_group. */
int ipm_counter_init(ipm_counter *c, int n, int max_reps, int n_classes, int largest_group,
                     char *err);
void ipm_counter_free(ipm_counter *c);

/* Makes room for ids 0..n_ids-1. */
int ipm_counter_reserve(ipm_counter *c, size_t n_ids, char *err);

/* Plug-in entropies in bits of the pairs' T, (X, T) and (Y, T), the
 * numbers of distinct keys (non-empty cells) of each, and the pairs counted
 * (what a Miller-Madow correction needs, info/miller_madow.h). */
typedef struct ipm_entropies {
    double t, xt, yt;
    uint64_t cells_t, cells_xt, cells_yt, total;
} ipm_entropies;

void ipm_count_entropies(ipm_counter *c, const ipm_pairs *pairs, const ipm_x_groups *g,
                         const int32_t *y, ipm_entropies *out);

/* The simple entropies of every replica in pairs (pick NULL) into each[k]
 * and the pooled ones over all into *pooled (may be NULL), with one
 * counting pass: bitwise what ipm_count_entropies gives for each replica
 * alone and for all. */
void ipm_count_replicas(ipm_counter *c, const ipm_pairs *pairs, const ipm_x_groups *g,
                        const int32_t *y, ipm_entropies *each, ipm_entropies *pooled);

/* Rows compared side by side: when every x is distinct and every row
 * (replica) of a sample is counted, sample i's (X, T) keys are the distinct
 * values among row 0..n_rows-1 at i, each with the count of rows holding
 * it. Adds the keys of count m >= 2 to dense[m] (keys of count 1 show only
 * in the total, n x n_rows) and returns the largest such m (0: none).
 * Rows are pattern ids, or patterns as 64-bit words (the high words in a
 * second set of rows when patterns take two). n_rows <= IPM_ROWS_COMPARED. */
#define IPM_ROWS_COMPARED 16
uint64_t ipm_rows_key_counts(const int32_t *const *ids, const uint64_t *const *lo, int n_rows,
                             size_t n, uint32_t *dense);
uint64_t ipm_rows_key_counts2(const uint64_t *const *lo, const uint64_t *const *hi, int n_rows,
                              size_t n, uint32_t *dense);

/* A count of pattern id with label y. */
typedef struct ipm_id_count {
    int32_t id, y;
    uint32_t count;
} ipm_id_count;

/* The pairs' (Y, T) counts, one cell per (id, y) counted, into out (room
 * for min(pairs, ids x classes) cells); returns how many. */
size_t ipm_count_yt_cells(ipm_counter *c, const ipm_pairs *pairs, const int32_t *y,
                          ipm_id_count *out);

/* ipm_count_replicas's simple entropies, with the pooled (Y, T) counts
 * over all the pairs as cells (as ipm_count_yt_cells lists them, in the
 * same order) instead of their entropies: one counting pass for both. */
size_t ipm_count_replicas_cells(ipm_counter *c, const ipm_pairs *pairs, const ipm_x_groups *g,
                                const int32_t *y, ipm_entropies *each, ipm_id_count *pooled);

/* Adds the pairs' counts to count tables: T as (0, pattern), (X, T) as
 * (x, pattern), (Y, T) as (y, pattern), patterns key[id]. */
int ipm_count_export(ipm_counter *c, const ipm_pairs *pairs, const ipm_x_groups *g,
                     const int32_t *y, const ipm_pattern *key, ipm_table *t, ipm_table *xt,
                     ipm_table *yt, char *err);

#endif
