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
 *   the pooled cells, then the sampled ones: the pattern, then y << 32 | count;
 *     when the pattern's bits and the class's fit in 32, one word,
 *     (pattern << class bits | y) << 32 | count.
 * A pattern is one word when the layer's bins fit in 64 bits (its high
 * half is then 0), else two. With the pooled estimator, a layer whose bins
 * fit in 32 bits sends its rows as consecutive 32-bit values, two to a
 * word (a 0 after them when they are odd): the owner compares them where
 * they arrived, 16 to a vector instead of 8.
 * The filter (used by default on 2 to IPM_FILTER_MOST_PARTS parts): before
 * the exchange the parts learn which of their patterns no other part
 * holds. Such a pattern's counts are whole where it is: its part adds them
 * to its own histograms and sends nothing. Per layer, a pattern's slot is
 * the low bits of its hash (hash.h; the owner takes the high ones); every
 * part marks its patterns' slots, and the marks are merged slot by slot
 * into two bits: some part has a pattern there, two parts or more do. A
 * pattern whose slot lacks the second bit is on its part alone. A slot
 * shared by chance only sends a pattern that could have stayed, so the
 * estimates never depend on the filter. In wide layers most pairs are
 * patterns of their own: the filter keeps most cells from travelling and
 * the owners from looking them up. Its merge moves 2 bits a slot, and the
 * slots grow with N R, not N R / P, so beyond IPM_FILTER_MOST_PARTS parts
 * the cells are cheaper to send. Pure computation: no MPI, no I/O. */
#ifndef IPMPI_INFO_PARTITION_H
#define IPMPI_INFO_PARTITION_H

#include <stddef.h>
#include <stdint.h>

#include "ipmpi/info/binned.h"
#include "ipmpi/info/count.h"
#include "ipmpi/info/hist.h"

enum { IPM_PART_POOLED, IPM_PART_SAMPLED, IPM_PART_ESTIMATORS };
enum { IPM_FILTER_AUTO, IPM_FILTER_OFF, IPM_FILTER_ON };
#define IPM_FILTER_MOST_PARTS 16 /* the filter pays up to this many parts (README) */
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
} ipm_cells;

/* The filter of every measured layer: per 64 slots a pair of words, the
 * slots where some part has a pattern, and where two parts or more do
 * (only the first is set until the parts' filters are merged; routing
 * then moves the second words to the front of the layer's words). */
typedef struct ipm_filter {
    uint64_t *word;
    size_t n_words;
    size_t *at;     /* n_layers: where the layer's pairs start */
    uint64_t *mask; /* n_layers: the layer's slots - 1 (0: not measured) */
} ipm_filter;

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

/* Room for at least n words in buf (what it held is not kept); what says
 * what they are for in a failure. Like every buffer a partition keeps, it
 * grows to a quarter more than asked: an exchange's sizes creep up from one
 * logged epoch to the next, and memory taken afresh every epoch is faulted
 * in again every epoch (a third of the 2017 setup's exchange at 2 ranks). */
int ipm_words_reserve(ipm_words *buf, size_t n, const char *what, char *err);

/* A part's side of one plane's partitioned reduce, reused every epoch. */
typedef struct ipm_partition {
    int part, n_parts, n_replicas, n_layers, n_classes;
    int est[IPM_PART_ESTIMATORS]; /* 1: pooled, sampled exchanged */
    int rows;                     /* (X, T) rows per sample received: R, or 1 (sampled alone) */
    int *words;                   /* n_layers: per pattern; 0 = layer not measured */
    uint8_t *half_rows;           /* n_layers: 1 where rows travel as 32-bit halves */
    int *cell_words;              /* n_layers: words a (Y, T) cell takes on the wire */
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
    const uint32_t **row_half; /* rows: with half rows, row r in place in the received words */
    ipm_x_groups groups;       /* this part's samples by x (x ids from x_cut[part]) */
    ipm_pattern *group;        /* 2 x rows x the largest group: a group's patterns, scratch */
    uint32_t *dense;           /* rows x the largest group + 1: a count histogram */
    int read_words;            /* words a pattern of the layer being read takes */
    int read_half;             /* the layer being read came in half rows */
    ipm_owned owned[IPM_PART_ESTIMATORS]; /* (Y, T) cells received, of the patterns owned */
    int class_bits;                       /* (Y, T) sums in cells id << class_bits | y */
    ipm_dict dict;                        /* the owned cells' patterns -> dense ids */
    int32_t *ids, *touched;               /* per owned cell: its id; the (Y, T) sums touched */
    uint32_t *sum_t, *sum_yt;             /* sums by id, by id and class; zero between uses (a
                                             count is below 2^32, as in count.h's counter) */
    uint64_t *counts;                     /* sums too large for the tally */
    uint32_t *tally;                      /* keys by sum, for a histogram; zero between uses */
    size_t sums_capacity;
    ipm_filter filter; /* n_words 0: not used */
    uint64_t *hash;    /* every measured layer's patterns' hashes, by id */
    size_t *hash_at;   /* n_layers: where layer l's start */
    uint8_t *alone;    /* routing a layer: 1 where the pattern is on this part alone */
    size_t hash_capacity, alone_capacity;
    ipm_hist *mine;       /* n_layers x IPM_HISTS_PER_LAYER: the counts of the patterns on this
                             part alone (T and (Y, T)), until ipm_partition_hists adds them */
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
    int filter;            /* IPM_FILTER_AUTO (0), _OFF or _ON */
    uint64_t filter_slots; /* 0: 4 per pattern a layer can have; else this many a layer (a
                              power of two, at least 64: tests make slots collide) */
} ipm_partition_spec;

int ipm_partition_init(ipm_partition *p, const ipm_partition_spec *spec, char *err);
void ipm_partition_free(ipm_partition *p);

/* The local (Y, T) cells of every measured layer from the binned replicas
 * (pick set when sampled), and the filter marked with this part's
 * patterns. counter: n samples, up to n_local replicas. pooled_counted:
 * the caller counted the pooled cells of every measured layer this epoch
 * (below), so only the sampled ones are left. */
int ipm_partition_count(ipm_partition *p, const ipm_binned *b, ipm_counter *counter,
                        const int32_t *y, int pooled_counted, char *err);

/* The pooled cells of a layer may be counted by the caller, in the pass
 * that counts the simple estimates (ipm_count_replicas_cells): it writes
 * them into the room this returns (NULL: out of memory, err says so) and
 * hands their number to ipm_partition_pooled_counted; ipm_partition_count,
 * told so, then takes them as they are. */
ipm_id_count *ipm_partition_pooled_room(ipm_partition *p, const ipm_binned *b, int layer,
                                        char *err);
void ipm_partition_pooled_counted(ipm_partition *p, int layer, size_t n);

/* After ipm_partition_count, and once every part's filter is merged into
 * this one's (merged 0: it was not, or there is none): the cells of the
 * patterns on this part alone go into its own histograms, the others are
 * grouped by owner, to be sent. */
int ipm_partition_route(ipm_partition *p, const ipm_binned *b, int merged, char *err);

/* Words this part sends to part dest (after ipm_partition_route). */
size_t ipm_partition_words_to(const ipm_partition *p, const ipm_binned *b, int dest);

/* Writes them at w; returns the end. */
uint64_t *ipm_partition_pack(const ipm_partition *p, const ipm_binned *b, int dest, uint64_t *w);

/* Reads source's words of one layer from *w (at most end): the rows of
 * this part's samples and the cells it owns. Advances *w. choice: the
 * sampled draw of every sample (NULL without the sampled estimator). */
int ipm_partition_read(ipm_partition *p, int layer, int source, const uint64_t **w,
                       const uint64_t *end, const uint32_t *choice, char *err);

/* Once every source's words of layer are read: this part's histograms of
 * the layer, with the counts it kept, into hist[IPM_HISTS_PER_LAYER]
 * (added), its state cleared for the next layer. */
int ipm_partition_hists(ipm_partition *p, int layer, const uint32_t *choice, ipm_hist *hist,
                        char *err);

/* One estimator's entropies H(T), H(X,T), H(Y,T) from its three summed
 * histograms (hist + estimator * IPM_HISTS_PER_ESTIMATOR). */
void ipm_hists_entropies(const ipm_hist *hist, double *h_t, double *h_xt, double *h_yt);

#endif
