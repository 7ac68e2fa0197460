/* kde (parallel): one layer's KDE bounds (info/kde.h: the formulas, in bits)
 * with the pairs spread over the ranks. Input: each rank's replicas'
 * activations of the layer (replica r lives on rank r mod P as local slot
 * r / P, n x width floats, row-major) and the n labels; output on every rank:
 * the bounds, bitwise the same on every rank and for any rank count.
 *
 * Work. The M = n R points are cut into row blocks of IPM_KDE_ROW_BLOCK
 * samples of one replica, numbered replica-major; rank p computes the
 * contiguous range of blocks [p B / P, (p + 1) B / P) against all M points.
 * First every replica is broadcast once (from its owner, as floats) and each
 * rank keeps the rows of its blocks; then every replica is broadcast again,
 * in order, and each rank runs its rows against it column block by column
 * block: sgemm gives the dot products of a row block and a column block of
 * IPM_KDE_COL_BLOCK samples, and info/kde.c picks with them the pairs that
 * can add a term and adds those from exact distances. Each block's sums of
 * logs are all-reduced (every slot filled by exactly one rank, so the sum is
 * exact) and every rank adds them in block order.
 *
 * Why bitwise rank-independent: the block shapes, the columns' order and the
 * order of the final sum depend on the problem only; a rank computes whole
 * blocks with the same BLAS calls on the same numbers. So the bounds do not
 * differ in any bit across rank counts (tests/test_kde_mpi.c checks it on 1
 * to 4 ranks and on sub-communicators). Even the BLAS thread count cannot
 * change them: the dot products only decide which pairs are recomputed, and
 * which terms count depends on the exact distances alone (info/kde.h).
 *
 * Memory on a rank (bytes, w = width, B row blocks): 4 ROW_BLOCK COL_BLOCK
 * (the dot-product block, 512 KiB) + 4 n (w + 1) (one broadcast replica and
 * its norms) + (4 (w + 1) + 48) ROW_BLOCK ceil(B / P) (its rows, their norms
 * and sums) + 48 B: linear in n, never n x n. */
#ifndef IPMPI_PARALLEL_KDE_H
#define IPMPI_PARALLEL_KDE_H

#include <mpi.h>
#include <stddef.h>
#include <stdint.h>

#include "ipmpi/info/kde.h"

typedef struct ipm_kde_input {
    ipm_kde_shape shape;      /* the same on every rank */
    const float *const *acts; /* local slot k = replica rank + k P: n x width */
    const int32_t *y;         /* the n labels (>= 0), the same on every rank */
} ipm_kde_input;

/* What one rank did. */
typedef struct ipm_kde_stats {
    size_t workspace_bytes; /* allocated, in total */
    int row_blocks;         /* row blocks computed */
    long long pairs;        /* pairs (row, column) computed */
} ipm_kde_stats;

/* Collective over comm: the bounds into *out on every rank; *stats (may be
 * NULL) this rank's work. Returns -1 on every rank, with the same message,
 * if any rank fails (bad shape or label, no memory, an MPI error). */
int ipm_kde_bounds_mpi(const ipm_kde_input *in, MPI_Comm comm, ipm_kde_bounds *out,
                       ipm_kde_stats *stats, char *err);

/* The workspace one rank of n_ranks allocates for the shape (the figure in
 * the contract above). */
size_t ipm_kde_workspace_bytes(const ipm_kde_shape *s, int n_ranks);

#endif
