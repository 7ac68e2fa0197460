/* hist: dense and sparse histograms of counts, and their canonical sums. */
#include "ipmpi/info/hist.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ipmpi/base/assert.h"
#include "ipmpi/base/error.h"

double ipm_clog2c(uint64_t c)
{
    double d = (double)c;
    return d * log2(d);
}

/* One term of the canonical sum: m keys with count c. */
static inline double clog2c_term(uint64_t c, uint64_t m, const double *clog, size_t n_clog)
{
    return (double)m * (c < n_clog ? clog[c] : ipm_clog2c(c));
}

double ipm_sum_clog2c_hist(double s, uint32_t *hist, uint64_t top, const double *clog,
                           size_t n_clog)
{
    for (uint64_t c = 2; c <= top; c++)
        if (hist[c]) {
            s += clog2c_term(c, hist[c], clog, n_clog);
            hist[c] = 0;
        }
    hist[0] = 0;
    if (top >= 1)
        hist[1] = 0;
    return s;
}

double ipm_entropy_from_sum(double sum_clog2c, uint64_t total)
{
    if (total == 0)
        return 0.0;
    double n = (double)total;
    double h = log2(n) - sum_clog2c / n;
    return h > 0 ? h : 0.0; /* one key: log2(n) - n log2(n) / n may round below 0 */
}

void ipm_hist_init(ipm_hist *h)
{
    memset(h, 0, sizeof *h);
}

void ipm_hist_free(ipm_hist *h)
{
    free(h->bin);
    ipm_hist_init(h);
}

void ipm_hists_free(ipm_hist *h, size_t n)
{
    for (size_t k = 0; h && k < n; k++)
        ipm_hist_free(&h[k]);
    free(h);
}

void ipm_hist_clear(ipm_hist *h)
{
    h->len = 0;
}

static int reserve(ipm_hist *h, size_t n, char *err)
{
    if (n <= h->capacity)
        return 0;
    size_t capacity = h->capacity ? h->capacity : 16;
    while (capacity < n)
        capacity *= 2;
    ipm_hist_bin *bin = realloc(h->bin, capacity * sizeof *bin);
    if (!bin)
        return ipm_fail(err, "out of memory for a histogram of %zu counts", n);
    h->bin = bin;
    h->capacity = capacity;
    return 0;
}

int ipm_hist_push(ipm_hist *h, uint64_t count, uint64_t keys, char *err)
{
    IPM_ASSERT(h->len == 0 || h->bin[h->len - 1].count < count);
    if (keys == 0)
        return 0;
    if (reserve(h, h->len + 1, err))
        return -1;
    h->bin[h->len++] = (ipm_hist_bin){count, keys};
    return 0;
}

/* The dense histogram as sparse bins (ones first), clearing it. */
static int dense_to_sparse(ipm_hist *out, uint32_t *dense, uint64_t top, uint64_t total, char *err)
{
    uint64_t above_one = 0;
    for (uint64_t c = 2; c <= top; c++)
        above_one += c * dense[c];
    IPM_ASSERT(above_one <= total);
    int rc = ipm_hist_push(out, 1, total - above_one, err);
    for (uint64_t c = 2; c <= top && rc == 0; c++)
        if (dense[c])
            rc = ipm_hist_push(out, c, dense[c], err);
    memset(dense, 0, (top + 1) * sizeof *dense);
    return rc;
}

int ipm_hist_add_dense(ipm_hist *h, uint32_t *dense, uint64_t top, uint64_t total, char *err)
{
    if (h->len == 0)
        return dense_to_sparse(h, dense, top, total, err);
    ipm_hist more;
    ipm_hist_init(&more);
    int rc = dense_to_sparse(&more, dense, top, total, err);
    if (rc == 0)
        rc = ipm_hist_add(h, more.bin, more.len, err);
    ipm_hist_free(&more);
    return rc;
}

/* The merge of two increasing bin lists into out (room for na + nb). */
static size_t merge_bins(const ipm_hist_bin *a, size_t na, const ipm_hist_bin *b, size_t nb,
                         ipm_hist_bin *out)
{
    size_t i = 0, j = 0, n = 0;
    while (i < na || j < nb) {
        if (j == nb || (i < na && a[i].count < b[j].count))
            out[n++] = a[i++];
        else if (i == na || b[j].count < a[i].count)
            out[n++] = b[j++];
        else {
            out[n++] = (ipm_hist_bin){a[i].count, a[i].keys + b[j].keys};
            i++;
            j++;
        }
    }
    return n;
}

int ipm_hist_add(ipm_hist *h, const ipm_hist_bin *bin, size_t n, char *err)
{
    if (n == 0)
        return 0;
    size_t capacity = h->len + n;
    ipm_hist_bin *out = malloc(capacity * sizeof *out);
    if (!out)
        return ipm_fail(err, "out of memory adding histograms of %zu and %zu counts", h->len, n);
    h->len = merge_bins(h->bin, h->len, bin, n, out);
    free(h->bin);
    h->bin = out;
    h->capacity = capacity;
    return 0;
}

#define DENSE_LIMIT ((uint64_t)1 << 16) /* larger counts are sorted */

static int compare_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

/* The counts above limit, sorted and run-length grouped, added to h. */
static int add_large_counts(ipm_hist *h, const uint64_t *counts, size_t n, uint64_t limit,
                            size_t n_large, char *err)
{
    uint64_t *large = malloc((n_large + 1) * sizeof *large);
    ipm_hist more;
    ipm_hist_init(&more);
    int rc = large ? 0 : ipm_fail(err, "out of memory sorting %zu counts", n_large);
    size_t m = 0;
    for (size_t k = 0; k < n && rc == 0; k++)
        if (counts[k] > limit)
            large[m++] = counts[k];
    if (rc == 0)
        qsort(large, m, sizeof *large, compare_u64);
    for (size_t k = 0; k < m && rc == 0;) {
        size_t run = k + 1;
        while (run < m && large[run] == large[k])
            run++;
        rc = ipm_hist_push(&more, large[k], run - k, err);
        k = run;
    }
    if (rc == 0)
        rc = ipm_hist_add(h, more.bin, more.len, err);
    ipm_hist_free(&more);
    free(large);
    return rc;
}

int ipm_hist_add_counts(ipm_hist *h, const uint64_t *counts, size_t n, char *err)
{
    uint64_t top = 0, total = 0;
    size_t n_large = 0;
    for (size_t k = 0; k < n; k++) {
        top = counts[k] > top ? counts[k] : top;
        n_large += counts[k] > DENSE_LIMIT;
    }
    /* dense up to a size in proportion to n: a few large counts are sorted */
    uint64_t limit = top < DENSE_LIMIT ? top : DENSE_LIMIT;
    limit = limit < 4 * (uint64_t)n + 64 ? limit : 4 * (uint64_t)n + 64;
    n_large = 0;
    for (size_t k = 0; k < n; k++)
        n_large += counts[k] > limit;
    uint32_t *dense = calloc(limit + 1, sizeof *dense);
    if (!dense)
        return ipm_fail(err, "out of memory for a histogram of %llu counts",
                        (unsigned long long)limit);
    /* ones show only in the total: most counts are 1 where keys are many,
     * and incrementing dense[1] again and again would chain every store */
    for (size_t k = 0; k < n; k++)
        if (counts[k] <= limit) {
            total += counts[k];
            if (counts[k] > 1)
                dense[counts[k]]++;
        }
    int rc = ipm_hist_add_dense(h, dense, limit, total, err);
    free(dense);
    return rc == 0 && n_large ? add_large_counts(h, counts, n, limit, n_large, err) : rc;
}

uint64_t ipm_hist_total(const ipm_hist *h)
{
    uint64_t total = 0;
    for (size_t k = 0; k < h->len; k++)
        total += h->bin[k].count * h->bin[k].keys;
    return total;
}

double ipm_hist_sum_clog2c(const ipm_hist *h)
{
    double s = 0.0;
    for (size_t k = 0; k < h->len; k++)
        if (h->bin[k].count >= 2)
            s += clog2c_term(h->bin[k].count, h->bin[k].keys, NULL, 0);
    return s;
}

double ipm_hist_entropy(const ipm_hist *h)
{
    return ipm_entropy_from_sum(ipm_hist_sum_clog2c(h), ipm_hist_total(h));
}
