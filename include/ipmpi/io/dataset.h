/* dataset: the samples a run trains on and measures.
 * Sources: tishby12 (built in), simple and complicated (generated from the
 * run's seed), netcdf (variables X(sample, feature...) any numeric type,
 * y(sample) integer labels). Rows of X are deduplicated into dense x ids
 * 0..n_x-1 (ids in order of first appearance), labels are mapped to
 * 0..n_classes-1 in increasing order of their original value.
 * A NetCDF X may hold at most IPM_DATASET_MAX_VALUES values (samples x
 * features); its and y's declared data must also fit in the file, and in
 * the classic formats every variable's data must end within the file (a
 * file cut short would read as zeros). All are checked before anything is
 * allocated.
 *
 * source = idx: [data] images and labels (IDX, raw or gzip; see idx.h) hold
 * unsigned-byte images n x h x w (one channel) or n x h x w x c, and integer
 * labels. Preprocessing, in this order:
 *  1. subset = N > 0: N images of the images file, drawn without replacement
 *     by selection sampling with Philox(seed, 0, SUBSET) and kept in the
 *     file's order (N = n keeps all); then train_fraction splits those N.
 *  2. pool = k: k x k sum pooling, stride k, per channel: floor(h/k) x
 *     floor(w/k) outputs, trailing rows and columns dropped (28/3 -> 9).
 *  3. quantize = q: integer division of the sums by q.
 *  4. scale = 1: division by top = floor(255 k^2 / q), the largest possible
 *     value, so values lie in [0, 1] (else integers 0..top).
 * height, width, channels are the preprocessed shape (HWC). With
 * test_images/test_labels the held-out set is those files, preprocessed the
 * same way but never subsampled (train_fraction must be 1), and labels map to
 * class ids over the union of both sets' labels. */
#ifndef IPMPI_DATASET_H
#define IPMPI_DATASET_H

#include <stdint.h>

#include "ipmpi/io/config.h"

/* 2^31 - 1 values (8 GiB as float), so that every value's index fits an int. */
#define IPM_DATASET_MAX_VALUES 2147483647LL

typedef struct ipm_dataset {
    int n;                       /* samples */
    int dim;                     /* features per sample */
    int height, width, channels; /* images: dim = height*width*channels, stored HWC;
                                    0, 0, 0 for flat samples */
    float *x;                    /* n * dim, row-major */
    int32_t *x_id;               /* n: id of the distinct row of x */
    int n_x;                     /* distinct rows */
    int32_t *y;                  /* n: class 0..n_classes-1 */
    int n_classes;
} ipm_dataset;

/* Builds or reads the data set of cfg and splits it: the first
 * round(train_fraction * n) samples of a Philox(seed, SPLIT) permutation
 * train, the rest test (test->n == 0 when train_fraction == 1; with
 * train_fraction == 1 the order is the source's own). Errors name the file
 * and variable (netcdf) or the config key. */
int ipm_dataset_load(const ipm_config *cfg, ipm_dataset *train, ipm_dataset *test, char *err);

/* The 12-bit task: all 4096 patterns, bit j of pattern i is x[i][j] (0/1). */
int ipm_dataset_tishby12(ipm_dataset *d, char *err);

/* One paragraph stating the 12-bit task's labelling rule, for documentation. */
const char *ipm_tishby12_rule(void);

/* Recomputes x_id/n_x from x: rows equal when their float bits are equal
 * (so -0 != +0 and a NaN equals the same NaN); O(n) with a hash table. */
int ipm_dataset_dedup(ipm_dataset *d, char *err);

/* out = a's samples, then b's (same features, class ids alike), with x
 * ids of its own: a row in both sets is one x. For [information] on = whole. */
int ipm_dataset_concat(const ipm_dataset *a, const ipm_dataset *b, ipm_dataset *out, char *err);

void ipm_dataset_free(ipm_dataset *d);

/* A 64-bit FNV-1a hash of what a run trains and measures on: the shape,
 * every value of x and every class id, continued from h (start with
 * IPM_FNV_OFFSET, base/bytes.h), so
 * a restart can tell data that changed since the run began. */
uint64_t ipm_dataset_fingerprint(const ipm_dataset *d, uint64_t h);

#endif
