/* output: the run's NetCDF-4 file (written by rank 0 only), CF-1.10, made
 * to be read as it is by xarray. One table in output.c states every
 * variable (name, type, dimensions, attributes, when it exists): create
 * defines the file from it and a restart's reopen checks the file against it.
 * Dimensions epoch (unlimited), replica, layer; one record per logged epoch,
 * synced at least every flush_seconds, so a killed job keeps all it logged
 * up to the last flush. Schema (names are user-facing and fixed):
 *   coordinates epoch(epoch) int; replica(replica), layer(layer) int, 1-based
 *   (layer k is T<k>); layer_name(layer) string "T3 dense:5:tanh";
 *   layer_width(layer), layer_measured(layer) int (0/1; an unmeasured
 *   layer's estimates are fill values);
 *   loss, accuracy (epoch, replica) [+ test_loss, test_accuracy];
 *   for each plane P in {"", "test_"} that was measured and each estimator:
 *     P I_XT_simple, P I_TY_simple (epoch, replica, layer)
 *     P I_XT_pooled, P I_TY_pooled, P I_XT_sampled, P I_TY_sampled (epoch, layer)
 *     with miller_madow, each of those again with the suffix _mm (corrected);
 *     with kde: P I_XT_kde_upper, P I_XT_kde_lower, P I_TY_kde_upper,
 *     P I_TY_kde_lower (epoch, layer), and the attribute kde_variance;
 *   in bits;
 *   with range = adaptive or whole, binning = width, per measured plane P:
 *     P bin_lo, P bin_hi (epoch, layer; scope = replica: epoch, replica,
 *     layer): the binning range each layer used (width: first, last edge);
 *   with binning = quantile, per measured plane P and layer k:
 *     P bin_edges<k> (epoch, replica, edge; per unit: epoch, replica,
 *     unit<k>, edge): the edges each replica's layer used;
 *   with [stopping] criterion = mi: stop_J (epoch) for scope = ensemble,
 *     (epoch, replica) for scope = replica: the objective at each check
 *     (fill value elsewhere); stop_epoch(replica) int, -1 (its _FillValue)
 *     while training;
 *   with stored activations: activation_epoch(activation_epoch),
 *     sample_x_id(sample), sample_y(sample) and
 *     T<k>(activation_epoch, replica, sample, unit<k>) float, k = 1..layers;
 *   with [output] gradients: grad_mean_norm, grad_std_norm (epoch, replica,
 *     layer), the norms of the mean and standard deviation of the epoch's
 *     minibatch gradients of each layer's weights (learn/grad_stats.h), in
 *     the loss's units; the fill value where no minibatch was taken.
 * Every variable has a short long_name, units (CF: "1" for counts, indices
 * and fractions; the loss in nats for cross-entropy) and a description;
 * every float variable a _FillValue (NetCDF's default fill, so xarray reads
 * unwritten values as NaN); every variable along layer the attribute
 * coordinates = "layer_name".
 * Global attributes: Conventions = "CF-1.10", title, run_id (16 hex digits,
 * also in the run's checkpoints), data_fingerprint (16 hex digits: the
 * data's ipm_dataset_fingerprint), config (the effective
 * config of the latest run; a restart with another config keeps the one it
 * replaces as config_1, config_2, ... in order), ipmpi_version, history
 * (ISO 8601 UTC lines: created, restarted by whom on how many ranks after
 * which epoch), ranks (of the latest run), replicas, H_X, H_Y, I_XY (of the
 * training set; test_H_X etc. when the test plane is measured), bins, and
 * range_lo, range_hi or (adaptive) binning = "adaptive". */
#ifndef IPMPI_OUTPUT_H
#define IPMPI_OUTPUT_H

#include <stdint.h>

#include "ipmpi/learn/spec.h"

typedef struct ipm_output ipm_output;

typedef struct ipm_output_meta {
    const char *path;
    const char *config_text;
    const char *version;
    int ranks, replicas, n_layers;
    const ipm_layer_spec *layer_spec; /* n_layers, for layer_name; NULL: names T1..TL alone */
    const int *layer_width;           /* n_layers */
    const int
        *layer_measured;   /* n_layers, 0: its estimates are written as fill values; NULL: all */
    unsigned estimators;   /* ipm_estimator mask */
    unsigned planes;       /* ipm_plane_set mask: which planes are measured */
    int whole_plane;       /* on = whole: the unprefixed plane is train and test together */
    int has_test;          /* test_loss/test_accuracy exist */
    enum ipm_loss loss;    /* the loss's units: nats (cross-entropy) or 1 (MSE) */
    double h_x, h_y, i_xy; /* training set */
    double test_h_x, test_h_y, test_i_xy;
    double kde_variance; /* with the kde estimator: its noise variance (attribute) */
    int bins;
    double range_lo, range_hi;
    int adaptive_range;    /* bin_lo/bin_hi variables instead of range attributes */
    int range_per_replica; /* bin_lo/bin_hi per replica (epoch, replica, layer) */
    int range_whole;       /* range = whole: binning "whole", the same ranges every epoch */
    int quantile;          /* binning = quantile: 1 edges per layer, 2 per unit */
    double bin_width;      /* > 0: binning = width, edges k * bin_width from bin_lo to bin_hi */
    int stop_rules;        /* 0: no stopping; 1: ensemble; R: one per replica */
    const char *stop_description; /* long_name of stop_J */
    int n_activation_epochs;      /* 0: no activations stored */
    long planned_records;         /* the run's logged epochs (a restart leaves none past them) */
    int gradient_stats;           /* grad_mean_norm and grad_std_norm exist */
    int activation_samples;       /* samples stored per replica */
    const int32_t *sample_x_id, *sample_y; /* activation_samples each */
    double flush_seconds; /* write + sync appended records at most this often (0: every append) */
    int resumed_after;    /* reopen: the checkpoint's epoch, for the history line */
    uint64_t run_id;      /* attribute run_id; a reopen refuses a file of another id (0: any) */
    uint64_t data_fingerprint; /* attribute data_fingerprint; a reopen refuses other data */
} ipm_output_meta;

/* One plane's estimates at one epoch; arrays may be NULL when not estimated. */
typedef struct ipm_plane_record {
    const double *i_xt_simple, *i_ty_simple;       /* replicas x layers */
    const double *i_xt_pooled, *i_ty_pooled;       /* layers */
    const double *i_xt_sampled, *i_ty_sampled;     /* layers */
    const double *bin_lo, *bin_hi;                 /* layers (replicas x layers per replica),
                                                    * with a range from the data */
    const double *const *bin_edges;                /* quantile: per layer (NULL: not measured)
                                                    * replicas x [units x] bins */
    const double *i_xt_simple_mm, *i_ty_simple_mm; /* Miller-Madow: as the plug-in ones */
    const double *i_xt_pooled_mm, *i_ty_pooled_mm, *i_xt_sampled_mm, *i_ty_sampled_mm;
    const double *i_xt_kde_upper, *i_xt_kde_lower; /* layers, KDE bounds */
    const double *i_ty_kde_upper, *i_ty_kde_lower;
} ipm_plane_record;

typedef struct ipm_epoch_record {
    int epoch;
    const double *loss, *accuracy;                /* replicas */
    const double *test_loss, *test_accuracy;      /* replicas, when has_test */
    ipm_plane_record train, test;                 /* as meta->planes says */
    const double *stop_j;                         /* stop_rules values at a check, else NULL */
    const double *grad_mean_norm, *grad_std_norm; /* replicas x layers, with gradient_stats */
} ipm_epoch_record;

/* Creates the file and writes the schema and attributes. A file already at
 * the path (the caller was told to overwrite it) is removed whole first, not
 * truncated in place: a reader of it keeps what it reads. */
int ipm_output_create(ipm_output **out, const ipm_output_meta *meta, char *err);

/* Opens a file that ipm_output_create made with the same meta (a restart)
 * for appending after its first `records` records: the next append writes
 * record `records`, so records logged after the checkpoint are overwritten
 * as the run proceeds (the unlimited epoch dimension cannot shrink). The
 * schema is left as it is; history gains a line, ranks becomes this run's,
 * and config this run's (an earlier, different one kept as config_<n>).
 * Fails, naming the variable or dimension, when the file belongs to another
 * run_id (kind IPM_ERR_REFUSED), or does not match the schema the meta implies (a variable missing,
 * or of another type or shape) or holds fewer than `records` records. */
int ipm_output_reopen(ipm_output **out, const ipm_output_meta *meta, long records, char *err);

/* The file a restart reopens is there: fails (kind IPM_ERR_INPUT) when it
 * is gone, as --check --restart and the run both say. */
int ipm_output_present(const char *path, char *err);

/* The file at path is the run's of run_id (0: not compared), as a restart
 * that has nothing left to do still asks: else kind IPM_ERR_REFUSED, or
 * IPM_ERR_INPUT when it is gone. Reads only. */
int ipm_output_belongs(const char *path, uint64_t run_id, char *err);

/* Records in the file as of the last flush (buffered ones not counted). */
long ipm_output_records(const ipm_output *out);

/* Appends one logged epoch. Records are buffered and written + synced
 * together when flush_seconds have passed since the last flush (the first
 * append flushes at once), so the file on disk always holds whole records.
 * Room for a flush is reserved (fallocate) before anything is written, so
 * a full disk fails it with the OS's reason (kind IPM_ERR_IO) and the file
 * keeps every record of the last flush; after a failure nothing more is
 * written, and close only closes. */
int ipm_output_append(ipm_output *out, const ipm_epoch_record *rec, char *err);

/* Writes and syncs whatever is buffered. Close flushes too. */
int ipm_output_flush(ipm_output *out, char *err);

/* Stores layer `layer` (0-based) of replica at activation slot index
 * (0-based, in order of the activation epochs): samples x units floats. */
int ipm_output_activations(ipm_output *out, int slot, int epoch, int replica, int layer,
                           const float *values, char *err);

/* Writes stop_epoch(replica) (when stopping is on); synced with the next flush. */
int ipm_output_stop_epochs(ipm_output *out, const int32_t *stop_epoch, char *err);

/* Closes; out is freed even on error. NULL is allowed. */
int ipm_output_close(ipm_output *out, char *err);

#endif
