/* binned: one plane's local replicas, binned into pattern ids at one logged
 * epoch. For every local replica a driver forwards the plane's samples in
 * blocks of rows, in order, and hands each block's activations here; each
 * measured layer is binned and its patterns mapped to dense ids by the
 * layer's dictionary (shared by the local replicas of the epoch). Ids are
 * numbered in order of first appearance, so any block size gives the same
 * ids, counts and estimates, bit for bit, for the same activations.
 * The sampled estimator keeps sample i from replica floor(u * R / 2^32),
 * u = Philox(seed; i | plane << 32, epoch, SAMPLED), drawn at begin.
 * Ranges from the data (range = adaptive, binning = width): every block of
 * every local replica's pass is first shown to ipm_binned_observe_range;
 * the caller agrees on the ranges over all ranks (or, per replica, takes
 * each local replica's own) and sets them with ipm_binned_set_range or
 * ipm_binned_set_width_range. With per_replica every local slot has its own
 * edges (an edge set per slot); otherwise a layer has one set.
 * Pure computation: no MPI, no I/O. */
#ifndef IPMPI_INFO_BINNED_H
#define IPMPI_INFO_BINNED_H

#include <stdint.h>

#include "ipmpi/info/bins.h"
#include "ipmpi/info/count.h"

/* Equal-mass bins (binning = quantile): none, a set of edges per layer, or
 * per unit, from each replica's own activations. */
enum ipm_quantile_kind { IPM_QUANTILE_NONE, IPM_QUANTILE_LAYER, IPM_QUANTILE_UNIT };

/* What a plane's binning is set up with. */
typedef struct ipm_binned_spec {
    int n_samples, n_layers;
    const int *width;    /* n_layers: units */
    const int *measured; /* n_layers: 1 binned and counted */
    int n_edges;
    double lo, hi;           /* the fixed range (adaptive: until set) */
    int n_replicas, n_local; /* in the ensemble; on this rank */
    uint64_t seed;
    int plane;       /* 0 train, 1 test: keys the sampled draw */
    int sampled;     /* draw the sampled estimator's replicas */
    int per_replica; /* an edge set per local slot (scope = replica) */
    int quantile;    /* enum ipm_quantile_kind; implies per_replica */
} ipm_binned_spec;

typedef struct ipm_binned_layer {
    int width, measured;
    int n_edges, room;        /* edges in use; room for per set */
    int unit_sets;            /* sets per slot set: width (quantile per unit) or 1 */
    float *edges;             /* n_sets x unit_sets sets of room */
    ipm_binner *binner;       /* a binner per set */
    double *lo, *hi;          /* per set: the range in use */
    float *seen_lo, *seen_hi; /* n_sets: this epoch's local extremes */
    float *values;            /* quantile: the observed slot's n x width activations */
    ipm_dict dict;
} ipm_binned_layer;

typedef struct ipm_binned {
    int n, n_layers, n_edges, n_replicas, n_local;
    int n_sets;            /* slot sets per layer: n_local with per_replica, else 1 */
    int quantile;          /* enum ipm_quantile_kind */
    int q_slot, q_rows;    /* quantile: the slot being observed, its rows so far */
    unsigned char *q_done; /* n_local: the slot's quantile edges are this epoch's */
    float *scratch;        /* quantile per unit: one unit's n values */
    int widest;            /* the widest measured layer's units */
    uint32_t *keys;        /* quantile: 2 x n x widest sort keys */
    uint64_t seed;
    int plane, sampled;
    ipm_binned_layer *layer; /* n_layers */
    ipm_pattern *patterns;   /* n: one block's patterns of one layer */
    int32_t *ids;            /* n_layers x n_local x n pattern ids */
    int n_seen;              /* local replicas binned this epoch */
    int rows_done;           /* samples of the latest one's pass binned so far */
    int *seen_replica;       /* n_local: their global indices */
    int *local_slot;         /* n_replicas: global index -> local slot or -1 */
    uint32_t *choice;        /* n: sampled replica per sample */
    int32_t *pick;           /* n: local slot of choice[i], or -1 */
} ipm_binned;

int ipm_binned_init(ipm_binned *b, const ipm_binned_spec *spec, char *err);
void ipm_binned_free(ipm_binned *b);

/* Clears the dictionaries and the adaptive extremes; draws the sampled
 * estimator's replicas for epoch. */
void ipm_binned_begin(ipm_binned *b, int epoch);

/* The edge set of a local slot: the slot itself with per_replica, else 0. */
int ipm_binned_set_of(const ipm_binned *b, int slot);

/* Edge set `set` of layer from now on: n_edges edges evenly on [lo, hi]. */
void ipm_binned_set_range(ipm_binned *b, int layer, int set, double lo, double hi);

/* Layer's one edge set (width bins are never per replica: they are the same
 * for all) from now on: width-w edges anchored at 0 covering [lo, hi]
 * (info/bins.h). Fails, naming [information] width, when that takes
 * more than IPM_MAX_EDGES edges or no memory is left for them. */
int ipm_binned_set_width_range(ipm_binned *b, int layer, double w, double lo, double hi, char *err);

/* A block [first, first + rows) of the pass of the replica that local slot
 * `slot` will bin this epoch (its replica_begin's order), act[l] rows x
 * width of layer l. Widens the slot set's local extremes of every measured
 * layer (NaN is skipped); with quantile bins keeps the values, and once
 * every sample of the slot was seen (slots one after another, blocks in any
 * order) sets the slot's equal-mass edges. */
void ipm_binned_observe_range(ipm_binned *b, int slot, float *const *act, int first, int rows);

/* Slot's edges of layer: unit_sets sets of n_edges (spaced by room). */
const float *ipm_binned_edges(const ipm_binned *b, int layer, int slot);

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
