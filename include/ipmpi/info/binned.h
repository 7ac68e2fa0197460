/* binned: one plane's local replicas, binned into pattern ids at one logged
 * epoch. For every local replica a driver forwards the plane's samples in
 * blocks of rows, in order, and hands each block's activations here; each
 * measured layer is binned and its patterns mapped to dense ids by the
 * layer's dictionary (shared by the local replicas of the epoch). Ids are
 * numbered in order of first appearance, so any block size gives the same
 * ids, counts and estimates, bit for bit, for the same activations.
 * The sampled estimator keeps sample i from replica floor(u * R / 2^32),
 * u = Philox(seed; i | plane << 32, epoch, SAMPLED), drawn at begin.
 * range = adaptive: every block of every local replica's pass is first shown
 * to ipm_binned_observe_range; the caller agrees on the ranges over all
 * ranks and sets them with ipm_binned_set_range.
 * Pure computation: no MPI, no I/O. */
#ifndef IPMPI_INFO_BINNED_H
#define IPMPI_INFO_BINNED_H

#include <stdint.h>

#include "ipmpi/info/bins.h"
#include "ipmpi/info/count.h"

/* What a plane's binning is set up with. */
typedef struct ipm_binned_spec {
    int n_samples, n_layers;
    const int *width;               /* n_layers: units */
    const int *measured;            /* n_layers: 1 binned and counted */
    int n_edges;
    double lo, hi;                  /* the fixed range (adaptive: until set) */
    int n_replicas, n_local;        /* in the ensemble; on this rank */
    uint64_t seed;
    int plane;                      /* 0 train, 1 test: keys the sampled draw */
    int sampled;                    /* draw the sampled estimator's replicas */
} ipm_binned_spec;

typedef struct ipm_binned_layer {
    int width, measured;
    float *edges;                   /* n_edges */
    ipm_binner binner;
    double lo, hi;                  /* the range in use */
    float seen_lo, seen_hi;         /* adaptive: this epoch's local extremes */
    ipm_dict dict;
} ipm_binned_layer;

typedef struct ipm_binned {
    int n, n_layers, n_edges, n_replicas, n_local;
    uint64_t seed;
    int plane, sampled;
    ipm_binned_layer *layer;        /* n_layers */
    ipm_pattern *patterns;          /* n: one block's patterns of one layer */
    int32_t *ids;                   /* n_layers x n_local x n pattern ids */
    int n_seen;                     /* local replicas binned this epoch */
    int rows_done;                  /* samples of the latest one's pass binned so far */
    int *seen_replica;              /* n_local: their global indices */
    int *local_slot;                /* n_replicas: global index -> local slot or -1 */
    uint32_t *choice;               /* n: sampled replica per sample */
    int32_t *pick;                  /* n: local slot of choice[i], or -1 */
} ipm_binned;

int ipm_binned_init(ipm_binned *b, const ipm_binned_spec *spec, char *err);
void ipm_binned_free(ipm_binned *b);

/* Clears the dictionaries and the adaptive extremes; draws the sampled
 * estimator's replicas for epoch. */
void ipm_binned_begin(ipm_binned *b, int epoch);

/* The binning range of layer from now on. */
void ipm_binned_set_range(ipm_binned *b, int layer, double lo, double hi);

/* Widens every measured layer's local extremes by a block of rows rows
 * (act[l]: rows x width of layer l). NaN is skipped. */
void ipm_binned_observe_range(ipm_binned *b, float *const *act, int rows);

/* A replica's pass over the plane, in blocks: begin takes its local slot
 * (at most n_local per epoch; the previous pass must be complete), then
 * blocks [first, first + rows) follow in sample order, first = 0 and each
 * next first = the previous end, until every sample is covered. */
int ipm_binned_replica_begin(ipm_binned *b, int replica, char *err);
int ipm_binned_block(ipm_binned *b, float *const *act, int first, int rows, char *err);

/* 0 when the replica binned last went through every sample (or none was begun). */
int ipm_binned_check_complete(const ipm_binned *b, char *err);

/* Local slot's ids of layer (n of them). */
const int32_t *ipm_binned_ids(const ipm_binned *b, int layer, int slot);

/* Sets pick[i] to the local slot of sample i's sampled replica, -1 when it
 * lives on another rank; call once every local replica is binned. */
void ipm_binned_pick_local(ipm_binned *b);

/* The most pattern ids any measured layer holds. */
size_t ipm_binned_most_ids(const ipm_binned *b);

#endif
