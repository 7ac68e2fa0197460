/* hist: histograms of counts and the canonical sum every entropy here is.
 * A plug-in entropy of counts c_k summing to n is log2 n - S / n with
 * S = sum_k c_k log2 c_k. S is taken over the histogram of the counts: over
 * the distinct counts c in increasing order, add (double)m_c * c log2 c, m_c
 * the number of keys with count c (counts 0 and 1 add nothing). It depends
 * only on the multiset of counts, so dense counters, count tables filled in
 * any order and histograms summed over any number of ranks give bitwise
 * identical entropies. Histograms are integers: adding them is exact.
 * A sparse histogram (ipm_hist) holds only the counts that occur, in
 * increasing order; it is what the partitioned reduce sums onto rank 0.
 * Pure computation: no MPI, no I/O. */
#ifndef IPMPI_INFO_HIST_H
#define IPMPI_INFO_HIST_H

#include <stddef.h>
#include <stdint.h>

/* c log2 c in double, the one place it is computed (tables of it cached by
 * callers hold bitwise the same values). */
double ipm_clog2c(uint64_t c);

/* The canonical sum over hist[c] = m_c for 2 <= c <= top, continuing from
 * s; clears hist[0..top]. clog[c] = ipm_clog2c(c) for c < n_clog (clog may
 * be NULL with n_clog 0), computed above. */
double ipm_sum_clog2c_hist(double s, uint32_t *hist, uint64_t top, const double *clog,
                           size_t n_clog);

/* Plug-in entropy in bits of total samples whose counts sum to
 * sum_clog2c: log2(total) - S/total, 0 for total 0, never below 0. */
double ipm_entropy_from_sum(double sum_clog2c, uint64_t total);

typedef struct ipm_hist_bin {
    uint64_t count, keys; /* keys keys have this count */
} ipm_hist_bin;

/* Bins in strictly increasing count order, each with keys > 0. */
typedef struct ipm_hist {
    ipm_hist_bin *bin;
    size_t len, capacity;
} ipm_hist;

void ipm_hist_init(ipm_hist *h); /* empty, holding no memory */
void ipm_hist_free(ipm_hist *h);
void ipm_hist_clear(ipm_hist *h);           /* keeps the memory */
void ipm_hists_free(ipm_hist *h, size_t n); /* n histograms and their array (h may be NULL) */

/* Appends keys keys of count count, above every count held. */
int ipm_hist_push(ipm_hist *h, uint64_t count, uint64_t keys, char *err);

/* h += the dense histogram dense[2..top] of counts whose sum is total (keys
 * of count 1 are known only through total); clears dense[0..top]. */
int ipm_hist_add_dense(ipm_hist *h, uint32_t *dense, uint64_t top, uint64_t total, char *err);

/* h += the histogram of counts[0..n) (any order; each a key's count). */
int ipm_hist_add_counts(ipm_hist *h, const uint64_t *counts, size_t n, char *err);

/* h += the n bins of another histogram (strictly increasing counts). */
int ipm_hist_add(ipm_hist *h, const ipm_hist_bin *bin, size_t n, char *err);

/* The sum of the counts, sum of count x keys. */
uint64_t ipm_hist_total(const ipm_hist *h);

/* The canonical sum S. */
double ipm_hist_sum_clog2c(const ipm_hist *h);

/* The entropy in bits of the counted keys' distribution. */
double ipm_hist_entropy(const ipm_hist *h);

#endif
