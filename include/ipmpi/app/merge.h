/* merge: one plane's counts of every rank brought together at a logged
 * epoch, once each rank has counted its own (app/measure.h). The simple
 * estimates, one slot per replica, are summed onto rank 0. The pooled and
 * sampled counts, when several ranks hold them, meet as [run] reduce says:
 * partitioned, each rank summing what it owns into histograms of counts
 * that are summed onto rank 0 (the simple estimates ride along), or tree,
 * whole count tables merged onto rank 0; rank 0 then makes their points
 * (app/points.h). Per-replica ranges and quantile edges are summed onto
 * rank 0 too. */
#ifndef IPMPI_APP_MERGE_H
#define IPMPI_APP_MERGE_H

#include <mpi.h>

#include "ipmpi/app/measure.h"

/* Collective: a plane's logged epoch finished once every local replica
 * was binned: this rank counts its share (ipm_measure_count), the counts
 * meet, and the KDE bounds follow (ipm_measure_kde). Fails (still taking
 * part in every step) when a replica's pass is incomplete; returns -1 on
 * a rank whose step failed or when the reduce failed anywhere. */
int ipm_merge_finish(ipm_measure *m, MPI_Comm comm, char *err);

#endif
