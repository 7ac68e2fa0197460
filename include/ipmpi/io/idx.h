/* idx: reader for the IDX format of MNIST and Fashion-MNIST (LeCun's page).
 * Big-endian: magic 00 00 TYPE NDIMS, TYPE 0x08 ubyte, 0x09 sbyte, 0x0B short
 * (int16), 0x0C int (int32), 0x0D float, 0x0E double; then NDIMS u32 sizes;
 * then the values, row-major. Plain and gzip-compressed files are both read
 * (gzip is recognised by its magic 1f 8b, not by the name; several gzip
 * members in a row are read as one stream; the input may be a pipe).
 * Refused, with a one-line message naming the file: a bad magic, an unknown
 * type, NDIMS 0 or > IPM_IDX_MAX_DIMS, a dimension of 0, more than
 * IPM_IDX_MAX_VALUES values (checked before anything is allocated), data
 * shorter than the header declares, bytes after the data, a corrupt gzip
 * stream. Memory grows with the data actually read, never with the header's
 * claim alone. */
#ifndef IPMPI_IDX_H
#define IPMPI_IDX_H

#include <stddef.h>
#include <stdint.h>

#define IPM_IDX_MAX_DIMS 4
/* 2^31 - 1, as IPM_DATASET_MAX_VALUES: every value's index fits an int. */
#define IPM_IDX_MAX_VALUES 2147483647LL

enum ipm_idx_type {
    IPM_IDX_UBYTE = 0x08,
    IPM_IDX_SBYTE = 0x09,
    IPM_IDX_SHORT = 0x0B,
    IPM_IDX_INT = 0x0C,
    IPM_IDX_FLOAT = 0x0D,
    IPM_IDX_DOUBLE = 0x0E
};

typedef struct ipm_idx {
    int type;                        /* enum ipm_idx_type, as in the file */
    int ndims;                       /* 1..IPM_IDX_MAX_DIMS */
    uint32_t dims[IPM_IDX_MAX_DIMS]; /* dims[ndims..] are 0 */
    size_t count;                    /* product of dims */
    float *values;                   /* count values, row-major, converted to float
                                        (int values beyond 2^24 are rounded; doubles
                                        beyond float's range become +-inf) */
    uint8_t *bytes;                  /* instead of values, from the _bytes readers */
} ipm_idx;

/* Reads a whole IDX file. On failure *out is zeroed (values NULL). */
int ipm_idx_read(const char *path, ipm_idx *out, char *err);

/* Frees values and zeroes *idx; safe on a zeroed or already freed struct. */
void ipm_idx_free(ipm_idx *idx);

/* Reads images (N, ...) of any type and their labels: one dimension of N
 * values of an integer type, returned exactly as int32 in *y (malloc'd, the
 * caller frees it) with *n = N. Labels of a float type, of more than one
 * dimension, or a count different from the images' N are refused; the
 * mismatch message names both files and both counts. On failure *x is
 * zeroed, *y is NULL and *n is 0. */
int ipm_idx_read_pair(const char *images, const char *labels, ipm_idx *x, int32_t **y, int *n,
                      char *err);

/* The same for unsigned-byte images kept as bytes (a quarter of the
 * memory of floats: MNIST's 60000 images are 47 MB); images of any other
 * type are refused, naming the file and its type. */
int ipm_idx_read_pair_bytes(const char *images, const char *labels, ipm_idx *x, int32_t **y, int *n,
                            char *err);

/* "ubyte", "sbyte", "short", "int", "float", "double", or "unknown". */
const char *ipm_idx_type_name(int type);

#endif
