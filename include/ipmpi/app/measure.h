/* measure: one plane's information estimates at one logged epoch, on every
 * rank. A plane is a data set (train or test). The driver forwards every
 * local replica over the plane in blocks of rows and hands each block here;
 * info/binned.h bins it into pattern ids. ipm_measure_count then counts on
 * those ids (info/count.h): the simple estimates on every rank (a replica's
 * plane is computed where it lives; the values reach rank 0 through a sum
 * that exactly one rank fills per slot); with one rank the pooled and
 * sampled ones too, directly. With more ranks the extended counts meet
 * (app/merge.h) as [run] reduce says:
 *   partitioned  (default) each rank counts what it owns: (X, T) for its
 *                slice of the samples, T and (Y, T) for its share of the
 *                patterns (info/partition.h, parallel/partition.h); their
 *                integer count histograms are summed onto rank 0, which
 *                computes the entropies and never holds the merged tables;
 *   tree         count tables merged onto rank 0 along a binomial tree
 *                (parallel/reduce.h), the entropies computed from them.
 * Every way gives bitwise the same numbers: every entropy is the canonical
 * sum over its multiset of counts (info/hist.h).
 * Only the layers [information] layers selects are binned and counted; the
 * others' results are left at 0 and flagged in `measured`.
 * With the kde estimator every measured layer's activations of the local
 * replicas are kept as the blocks pass (n x width floats per layer and
 * local replica; the plane's pairs never form an n x n matrix), and
 * ipm_measure_kde computes each layer's bounds with the pairs spread
 * over all ranks in blocks (parallel/kde.h), bitwise the same on any rank
 * count. With miller_madow every binned estimate also gets its corrected
 * value, from the numbers of distinct cells (integers, so just as rank-count
 * independent).
 * Which edges the bins use, and when the ranks agree on them, is app/edges.h. */
#ifndef IPMPI_MEASURE_H
#define IPMPI_MEASURE_H

#include <mpi.h>
#include <stdint.h>

#include "ipmpi/app/points.h"
#include "ipmpi/info/binned.h"
#include "ipmpi/info/count.h"
#include "ipmpi/info/estimates.h"
#include "ipmpi/info/mi.h"
#include "ipmpi/info/partition.h"
#include "ipmpi/io/config.h"
#include "ipmpi/io/dataset.h"
#include "ipmpi/learn/net.h"
#include "ipmpi/parallel/comm.h"

typedef struct ipm_measure {
    const ipm_dataset *data;
    int plane; /* 0 train, 1 test */
    int n_layers, n_replicas;
    int n_local, n_ranks; /* replicas measured on this rank; ranks */
    int width[IPM_MAX_LAYERS];
    int measured[IPM_MAX_LAYERS]; /* 1: binned and counted */
    unsigned estimators;
    int adaptive;      /* range = adaptive: `bins` edges on the seen range */
    int width_binning; /* binning = width: edges k * bin_width on the seen range */
    int per_replica;   /* scope = replica: an adaptive range per replica */
    double bin_width;
    int quantile;           /* binning = quantile: enum ipm_quantile_kind */
    int n_edges;            /* [information] bins */
    double *quantile_edges; /* quantile: per measured layer (at edges_at), replicas x
                             * unit sets x n_edges; complete on rank 0 after finish */
    size_t edges_at[IPM_MAX_LAYERS], n_quantile_edges;
    const double *layer_edges[IPM_MAX_LAYERS]; /* quantile_edges + edges_at; NULL unmeasured */
    int *slot_replica;                         /* n_local: the replica each local slot observed */
    const double *whole;         /* range = whole: lo then hi (per replica: replicas x)
                                  * layers each; the caller's, outliving the measure */
    double *replica_range;       /* per_replica: lo then hi, replicas x layers each; complete
                                  * on rank 0 after ipm_merge_finish */
    enum ipm_reduce_kind reduce; /* how extended counts meet on several ranks */
    double range_lo[IPM_MAX_LAYERS], range_hi[IPM_MAX_LAYERS]; /* the ranges in use */
    ipm_plane_terms terms; /* the data set's entropies, for every point */
    double i_xy;           /* of the data set */
    ipm_binned binned;     /* this epoch's pattern ids */
    const int32_t **rows;  /* n_local: one layer's ids per local slot */
    ipm_entropies *each;   /* n_local: one layer's simple entropies */
    ipm_x_groups groups;
    ipm_counter counter;
    ipm_layer_tables *pooled, *sampled; /* tree: n_layers each */
    ipm_partition part;                 /* partitioned */
    ipm_hist *hists;                    /* partitioned: n_layers x IPM_HISTS_PER_LAYER */
    double kde_variance;                /* [information] kde_variance */
    float *kde_acts;                    /* kde: n_local x kde_per_replica floats */
    size_t kde_per_replica;             /* every measured layer's n x width in turn */
    size_t kde_offset[IPM_MAX_LAYERS];  /* a layer's start within a replica's floats */
    const float **kde_slots;            /* n_local: one layer's activations per local slot */
    int kde_slot;                       /* local slot of the replica being passed */
    ipm_estimates est;                  /* the results; complete on rank 0 after ipm_merge_finish */
    double seconds_binning;             /* binning and local counting, accumulated */
    double seconds_exchange;            /* the reduce between ranks, waiting apart */
    double seconds_wait;                /* waiting for the slowest rank before the reduce */
    double seconds_kde;                 /* the KDE bounds, over all ranks */
    ipm_traffic traffic;                /* bytes this rank sent and received in the reduce */
} ipm_measure;

/* n_local replicas will be measured on this rank (of n_ranks) per epoch;
 * rank is this rank's index. */
int ipm_measure_init(ipm_measure *m, const ipm_config *cfg, const ipm_dataset *data, int plane,
                     const ipm_net *shape, int n_replicas, int n_local, int rank, int n_ranks,
                     char *err);
void ipm_measure_free(ipm_measure *m);

/* Clears the dictionaries and draws the sampled estimator's replicas for epoch. */
void ipm_measure_begin(ipm_measure *m, int epoch);

/* A replica's pass over the plane, in blocks (see info/binned.h): begin
 * takes its local slot, then blocks [first, first + rows) follow in sample
 * order. ws's first rows rows hold the block's forward pass. */
int ipm_measure_replica_begin(ipm_measure *m, int replica, char *err);
int ipm_measure_replica_block(ipm_measure *m, const ipm_workspace *ws, int first, int rows,
                              char *err);

/* The same in one block: ws holds replica's pass over every sample. */
int ipm_measure_replica(ipm_measure *m, int replica, const ipm_workspace *ws, char *err);

/* Bytes the kde estimator keeps on a rank holding n_local replicas of a
 * plane of n samples (the activations of the measured layers). */
double ipm_measure_kde_bytes(int n, int n_local, const int *width, const int *measured,
                             int n_layers);

/* Whether the pooled or sampled counts of several ranks must meet, and
 * whether they meet by the partitioned reduce. */
int ipm_measure_merges(const ipm_measure *m);
int ipm_measure_partitions(const ipm_measure *m);

/* This rank's counting once every local replica was binned: the simple
 * estimates of its replicas, with one rank the pooled and sampled ones,
 * with several the counts the merge takes (app/merge.h). Fails when a
 * replica's pass is incomplete. */
int ipm_measure_count(ipm_measure *m, char *err);

/* Collective: the KDE bounds of every measured layer, when kde is on.
 * failed: an earlier step failed on this rank (err keeps its message); it
 * still takes part. */
int ipm_measure_kde(ipm_measure *m, MPI_Comm comm, int failed, char *err);

#endif
