/* measure: one plane's information estimates at one logged epoch.
 * A plane is a data set (train or test). For every local replica the driver
 * forwards the samples in blocks of rows, in order, and hands each block's
 * workspace here; each layer is binned and its patterns mapped to dense ids
 * by the layer's dictionary (shared by the local replicas of the epoch).
 * Ids are numbered in order of first appearance, so any block size gives
 * the same ids, counts and estimates, bit for bit, for the same activations. ipm_measure_finish counts on those ids
 * (count.h): the simple estimates on every rank; with one rank the pooled
 * and sampled ones too, directly; with more, it exports the pooled and
 * sampled counts into count tables, merges them onto rank 0 (binomial tree)
 * and computes the extended estimates there. Both ways give bitwise the
 * same numbers (every entropy is the canonical sum over its count multiset).
 * Per-replica simple values travel by a sum-reduce that exactly one rank
 * fills. The sampled estimator keeps sample i from replica
 * floor(u * R / 2^32), u = Philox(seed; i | plane << 32, epoch, SAMPLED).
 * Only the layers [information] layers selects are binned and counted; the
 * others' results are left at 0 and flagged in `measured`.
 * range = adaptive: before binning, every block of every local replica's
 * forward pass is shown to ipm_measure_observe_range, and ipm_measure_agree_ranges takes
 * each layer's min and max over all replicas on all ranks (exact, so the
 * same on any rank count) as that epoch's binning range. A constant layer
 * gets [v, v + 1]; a non-finite one (a diverging run) [-1, 1]. */
#ifndef IPMPI_MEASURE_H
#define IPMPI_MEASURE_H

#include <mpi.h>
#include <stdint.h>

#include "ipmpi/info/bins.h"
#include "ipmpi/io/config.h"
#include "ipmpi/info/count.h"
#include "ipmpi/info/estimates.h"
#include "ipmpi/io/dataset.h"
#include "ipmpi/info/mi.h"
#include "ipmpi/learn/net.h"

typedef struct ipm_measure {
    const ipm_dataset *data;
    int plane;                      /* 0 train, 1 test */
    int n_layers, n_replicas;
    int n_local, n_ranks;           /* replicas measured on this rank; ranks */
    int width[IPM_MAX_LAYERS];
    int measured[IPM_MAX_LAYERS];   /* 1: binned and counted */
    unsigned estimators;
    uint64_t seed;
    int adaptive;
    float *edges;                   /* n_layers x n_edges */
    int n_edges;
    ipm_binner binner[IPM_MAX_LAYERS];
    double range_lo[IPM_MAX_LAYERS], range_hi[IPM_MAX_LAYERS]; /* the ranges in use */
    float seen_lo[IPM_MAX_LAYERS], seen_hi[IPM_MAX_LAYERS];    /* adaptive: this epoch, local */
    double h_x, h_y, i_xy;          /* of the data set */
    ipm_pattern *patterns;          /* data->n: one layer's patterns */
    ipm_dict *dict;                 /* n_layers */
    int32_t *ids;                   /* n_layers x n_local x data->n pattern ids */
    int n_seen;                     /* local replicas measured this epoch */
    int rows_done;                  /* samples of the latest one's pass mapped so far */
    int *seen_replica;              /* n_local: their global indices */
    const int32_t **rows;           /* n_local: one layer's ids per local slot */
    ipm_entropies *each;            /* n_local: one layer's simple entropies */
    int *local_slot;                /* n_replicas: global index -> local slot or -1 */
    uint32_t *choice;               /* data->n: sampled replica per sample */
    int32_t *pick;                  /* data->n: local slot of choice[i], or -1 */
    ipm_x_groups groups;
    ipm_counter counter;
    ipm_layer_tables *pooled, *sampled; /* n_layers each, only with n_ranks > 1 */
    ipm_estimates est;              /* the results; complete on rank 0 after ipm_measure_finish */
    double seconds_binning, seconds_merge; /* accumulated */
} ipm_measure;

/* n_local replicas will be measured on this rank (of n_ranks) per epoch. */
int ipm_measure_init(ipm_measure *m, const ipm_config *cfg, const ipm_dataset *data, int plane,
                     const ipm_net *shape, int n_replicas, int n_local, int n_ranks, char *err);
void ipm_measure_free(ipm_measure *m);

/* Clears the dictionaries and draws the sampled estimator's replicas for epoch. */
void ipm_measure_begin(ipm_measure *m, int epoch);

/* range = adaptive: ws's first rows rows hold a block of a local replica's
 * forward pass over the plane; widens this epoch's local min and max of
 * every measured layer. */
void ipm_measure_observe_range(ipm_measure *m, const ipm_workspace *ws, int rows);

/* Collective, after every local replica was observed: the global ranges
 * become the layers' bins for this epoch. */
int ipm_measure_agree_ranges(ipm_measure *m, MPI_Comm comm, char *err);

/* A replica's pass over the plane, in blocks: begin takes its local slot
 * (at most n_local per epoch; the previous pass must be complete), then
 * blocks [first, first + rows) follow in sample order, first = 0 and each
 * next first = the previous end, until every sample is covered. ws's first
 * rows rows hold the block's forward pass. Bins and maps patterns to ids;
 * counts nothing yet. */
int ipm_measure_replica_begin(ipm_measure *m, int replica, char *err);
int ipm_measure_replica_block(ipm_measure *m, const ipm_workspace *ws, int first, int rows,
                              char *err);

/* The same in one block: ws holds replica's pass over every sample. */
int ipm_measure_replica(ipm_measure *m, int replica, const ipm_workspace *ws, char *err);

/* Collective: counts, merges onto rank 0 and computes pooled and sampled there.
 * Fails (still taking part in the merge) when a replica's pass is incomplete. */
int ipm_measure_finish(ipm_measure *m, MPI_Comm comm, char *err);

#endif
