/* partition (parallel): the exchanges of the partitioned reduce, a
 * reduce-scatter by key followed by a small reduce to rank 0 (the pure
 * side, what goes where and what a rank makes of it, is info/partition.h).
 * Per plane and logged epoch:
 *   0. with a filter (info/partition.h), one agreement that every rank
 *      counted and one MPI_Allreduce merging the filters, after which each
 *      rank keeps the cells of the patterns it alone holds;
 *   1. one MPI_Alltoall of word counts (a negative count says the sender
 *      failed, so every rank learns it at once and none waits forever),
 *      then one agreement (a rank may fail to make room for what comes);
 *   2. one MPI_Alltoallv carrying, for every measured layer, each rank's
 *      patterns to the owners of the samples and its (Y, T) cells to the
 *      owners of the patterns (what a rank owns of its own is packed
 *      straight into its receive buffer, not copied by the all-to-all);
 *   3. each rank's histograms of counts summed onto rank 0 along a binomial
 *      tree of point-to-point messages (integers: exact), with any values
 *      the caller has to sum onto rank 0 beside them (the simple
 *      estimates), then one agreement on the outcome.
 * Rank 0 receives N R / P patterns a layer in step 2 and a few histograms
 * per tree round in step 3, never the merged tables. */
#ifndef IPMPI_PARALLEL_PARTITION_H
#define IPMPI_PARALLEL_PARTITION_H

#include <mpi.h>

#include "ipmpi/info/binned.h"
#include "ipmpi/info/hist.h"
#include "ipmpi/info/partition.h"
#include "ipmpi/parallel/comm.h"

/* Collective, after ipm_partition_count on every rank (failed != 0: it
 * failed here, err says why): steps 1 to 3 for every measured layer of b.
 * hist holds n_layers x IPM_HISTS_PER_LAYER empty histograms; on rank 0
 * they end as the sums over all ranks (others' are left cleared). The
 * n_sums values at sums (NULL: none) travel up the same tree, each slot
 * added: where exactly one rank fills a slot, rank 0 ends with its value,
 * bit for bit, and the others' hold partial sums. The time spent at the
 * first meeting point (step 0's agreement, or step 1), mostly waiting for
 * the slowest rank, is added to *waited. Returns -1
 * on every rank if any failed. */
int ipm_partition_exchange(ipm_partition *p, const ipm_binned *b, int failed, ipm_hist *hist,
                           double *sums, int n_sums, ipm_traffic *traffic, double *waited,
                           MPI_Comm comm, char *err);

/* Collective: hist[0..n) and sums[0..n_sums) of every rank summed into
 * rank 0's (others' histograms are cleared). failed != 0: this rank failed
 * (err says why); it still takes part. Returns -1 on every rank if any
 * failed. */
int ipm_hists_sum_to_root(ipm_hist *hist, int n, double *sums, int n_sums, int failed,
                          ipm_traffic *traffic, MPI_Comm comm, char *err);

#endif
