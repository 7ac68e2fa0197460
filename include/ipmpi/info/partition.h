/* partition: the pure side of the partitioned reduce (parallel/partition.h
 * moves the words between ranks). The extended estimators' counts are
 * shared among the P parts (ranks) two ways, so no part ever holds them all:
 *  - by sample: part q owns the samples whose x id lies in
 *    [x_cut[q], x_cut[q+1]), contiguous x ranges of about N/P samples each.
 *    It receives every replica's patterns of its samples and counts (X, T)
 *    there: a key (x, t) never spans two parts.
 *  - by pattern: each part's (Y, T) counts, aggregated over its local pairs,
 *    go to part ipm_pattern_owner(t, P) (hash.h), which sums them; T's
 *    counts are their sums over y, so they need no message of their own.
 * Every part turns what it owns into histograms of counts (hist.h); summed
 * over the parts they are the histograms of the whole, so the entropies
 * are bitwise those one table holding every count gives (tree reduce, one
 * rank). Replica r lives on part r mod P, in local slot r / P.
 * The words a part sends to part q, layer after layer:
 *   two words: how many pooled and sampled (Y, T) cells follow the rows;
 *   the (X, T) rows: with the pooled estimator, every local slot's patterns
 *     of q's samples (slot after slot, samples in increasing order); with
 *     the sampled one alone, the pattern of each of q's samples whose drawn
 *     replica is local, in sample order;
 *   the pooled cells, then the sampled ones: the pattern, then y << 32 | count.
 * A pattern is one word when the layer's bins fit in 64 bits (its high
 * half is then 0), else two. Pure computation: no MPI, no I/O. */
#ifndef IPMPI_INFO_PARTITION_H
#define IPMPI_INFO_PARTITION_H

#include <stddef.h>
#include <stdint.h>

#include "ipmpi/info/binned.h"
#include "ipmpi/info/count.h"
#include "ipmpi/info/hist.h"

enum { IPM_PART_POOLED, IPM_PART_SAMPLED, IPM_PART_ESTIMATORS };
enum { IPM_HIST_T, IPM_HIST_XT, IPM_HIST_YT, IPM_HISTS_PER_ESTIMATOR };
/* Histograms of one layer: [estimator * IPM_HISTS_PER_ESTIMATOR + which]. */
#define IPM_HISTS_PER_LAYER (IPM_PART_ESTIMATORS * IPM_HISTS_PER_ESTIMATOR)

/* The samples by owning part. */
typedef struct ipm_slices {
    int n_parts, n;
    int32_t *x_cut;  /* n_parts + 1 */
    int32_t *first;  /* n_parts + 1: part q's samples are sample[first[q] .. first[q+1]) */
    int32_t *sample; /* n, increasing within a part */
} ipm_slices;

int ipm_slices_init(ipm_slices *s, const int32_t *x_id, int n, int n_parts, char *err);
void ipm_slices_free(ipm_slices *s);

/* Replicas on part (of n_parts) when there are n_replicas. */
int ipm_replicas_on(int part, int n_replicas, int n_parts);

/* Words a pattern of this width takes on the wire: 1 or 2. */
int ipm_pattern_words(int width, int n_edges);

/* One estimator's (Y, T) cells of one layer, grouped by owning part. */
typedef struct ipm_cells {
    ipm_id_count *cell;
    size_t n, capacity;
    size_t *start;         /* n_parts + 1: part q's cells are cell[start[q] .. start[q+1]) */
    ipm_id_count *scratch; /* capacity, for the grouping */
    int32_t *owner;        /* capacity */
    int counted;           /* the cells of this epoch are in (ipm_partition_pooled_counted) */
} ipm_cells;

/* The (Y, T) counts a pattern's owner received: pattern, class, count. */
typedef struct ipm_owned {
    ipm_pattern *key;
    uint32_t *y, *count;
    size_t n, capacity;
} ipm_owned;

/* Words kept from one exchange to the next (no page faults every epoch). */
typedef struct ipm_words {
    uint64_t *w;
    size_t capacity;
} ipm_words;

/* A part's side of one plane's partitioned reduce, reused every epoch. */
typedef struct ipm_partition {
    int part, n_parts, n_replicas, n_layers, n_classes;
    int est[IPM_PART_ESTIMATORS]; /* 1: pooled, sampled exchanged */
    int rows;                     /* (X, T) rows per sample received: R, or 1 (sampled alone) */
    int *words;                   /* n_layers: per pattern; 0 = layer not measured */
    ipm_slices slices;
    const int32_t *x_id;
    ipm_cells *cells; /* n_layers x IPM_PART_ESTIMATORS */
    /* receiving: this part's samples */
    int ns;                            /* how many */
    uint64_t *lo, *hi;                 /* rows x ns: row r's patterns of this part's samples
                                          (replica r's, or each one's drawn replica's), in halves */
    const uint64_t **row_lo, **row_hi; /* rows: where row r's halves are read (row_hi NULL:
                                      one word, high half 0); in lo and hi, or in place in
                                      the received words until the next exchange */
    ipm_x_groups groups;               /* this part's samples by x (x ids from x_cut[part]) */
    ipm_pattern *group; /* 2 x rows x the largest group: a group's patterns, scratch */
    uint32_t *dense;    /* rows x the largest group + 1: a count histogram */
    int read_words;     /* words a pattern of the layer being read takes */
    ipm_owned owned[IPM_PART_ESTIMATORS]; /* (Y, T) cells received, of the patterns owned */
    int class_bits;                       /* (Y, T) sums in cells id << class_bits | y */
    ipm_dict dict;                        /* the owned cells' patterns -> dense ids */
    int32_t *ids, *touched;               /* per owned cell: its id; the (Y, T) sums touched */
    uint32_t *sum_t, *sum_yt;             /* sums by id, by id and class; zero between uses (a
                                             count is below 2^32, as in count.h's counter) */
    uint64_t *counts;                     /* sums too large for the tally */
    uint32_t *tally;                      /* keys by sum, for a histogram; zero between uses */
    size_t sums_capacity;
    ipm_words send, recv; /* the exchange's buffers (parallel/partition.h) */
    long long *sizes;     /* 2 n_parts: words to and from each part */
    int *offsets;         /* 4 n_parts: the same as MPI counts, and their offsets */
} ipm_partition;

typedef struct ipm_partition_spec {
    int part, n_parts, n_replicas, n_layers, n_classes, n_edges;
    const int *width, *measured; /* n_layers */
    int pooled, sampled;
    const int32_t *x_id; /* n */
    int n;
} ipm_partition_spec;

int ipm_partition_init(ipm_partition *p, const ipm_partition_spec *spec, char *err);
void ipm_partition_free(ipm_partition *p);

/* The local (Y, T) cells of every measured layer, grouped by owner, from
 * the binned replicas (pick set when sampled). counter: n samples, up to
 * n_local replicas. */
int ipm_partition_count(ipm_partition *p, const ipm_binned *b, ipm_counter *counter,
                        const int32_t *y, char *err);

/* The pooled cells of a layer may be counted by the caller, in the pass
 * that counts the simple estimates (ipm_count_replicas_cells): it writes
 * them into the room this returns (NULL: out of memory, err says so) and
 * hands their number to ipm_partition_pooled_counted; ipm_partition_count
 * then takes them as they are. */
ipm_id_count *ipm_partition_pooled_room(ipm_partition *p, const ipm_binned *b, int layer,
                                        char *err);
void ipm_partition_pooled_counted(ipm_partition *p, const ipm_binned *b, int layer, size_t n);

/* Words this part sends to part dest (after ipm_partition_count). */
size_t ipm_partition_words_to(const ipm_partition *p, const ipm_binned *b, int dest);

/* Writes them at w; returns the end. */
uint64_t *ipm_partition_pack(const ipm_partition *p, const ipm_binned *b, int dest, uint64_t *w);

/* Reads source's words of one layer from *w (at most end): the rows of
 * this part's samples and the cells it owns. Advances *w. choice: the
 * sampled draw of every sample (NULL without the sampled estimator). */
int ipm_partition_read(ipm_partition *p, int layer, int source, const uint64_t **w,
                       const uint64_t *end, const uint32_t *choice, char *err);

/* Once every source's words of layer are read: this part's histograms of
 * the layer into hist[IPM_HISTS_PER_LAYER] (added), its state cleared for
 * the next layer. */
int ipm_partition_hists(ipm_partition *p, const uint32_t *choice, ipm_hist *hist, char *err);

/* One estimator's entropies H(T), H(X,T), H(Y,T) from its three summed
 * histograms (hist + estimator * IPM_HISTS_PER_ESTIMATOR). */
void ipm_hists_entropies(const ipm_hist *hist, double *h_t, double *h_xt, double *h_yt);

#endif
