/* edges: which edges a plane's bins use at a logged epoch, and how every
 * rank comes to use the same ones.
 *
 * Ranges from the data (range = adaptive, binning = width): before binning,
 * every block of every local replica's forward pass is shown to
 * ipm_edges_observe, and ipm_edges_agree takes each
 * layer's min and max over all replicas on all ranks (exact, so the same on
 * any rank count) as that epoch's range: `bins` edges on it (adaptive), or
 * the width-w edges anchored at 0 that cover it (width). With scope =
 * replica each replica's adaptive range is its min and max alone (no
 * communication: a replica's estimates depend on itself only); the ranges
 * reach rank 0 in replica_range with the estimates. range = whole fixes
 * them once (ipm_edges_fix): no pass, no agreement. binning =
 * quantile sets each replica's equal-mass edges from its own pass (no
 * communication either); they reach rank 0 in quantile_edges. A constant layer's
 * adaptive range is [v, v + 1]; a non-finite one (a
 * diverging run) [-1, 1]. */
#ifndef IPMPI_APP_EDGES_H
#define IPMPI_APP_EDGES_H

#include <mpi.h>

#include "ipmpi/app/measure.h"

/* range = whole: the ranges of the whole run, fixed from now on (layout as
 * ipm_plan's whole_range). With scope = replica a replica's range is set
 * when its pass begins. */
void ipm_edges_fix(ipm_measure *m, const double *whole);

/* 1 when the edges come from the data: observe and agree before binning. */
int ipm_edges_from_data(const ipm_measure *m);

/* Ranges from the data: ws's first rows rows hold samples [first, first +
 * rows) of the forward pass of replica `replica`, which will be binned in
 * local slot `slot` (the slot-th ipm_measure_replica_begin of the epoch); widens this
 * epoch's local min and max of every measured layer (quantile: keeps them
 * for the slot's edges). */
void ipm_edges_observe(ipm_measure *m, int slot, int replica, const ipm_workspace *ws, int first,
                       int rows);

/* Collective, after every local replica was observed: the global ranges
 * (per replica: the local ones) become the layers' bins for this epoch.
 * Fails on every rank alike when width bins would be too many. */
int ipm_edges_agree(ipm_measure *m, MPI_Comm comm, char *err);

#endif
