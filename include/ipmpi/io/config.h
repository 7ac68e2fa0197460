/* config: the run's INI file (libinih) -> one typed, validated struct.
 * Every key has a default; unknown sections/keys, wrong types and
 * out-of-range values are errors "FILE:LINE: [section] key: why".
 * Command-line overrides ("section.key=value") go through the same key
 * handlers, with "--set section.key" in place of FILE:LINE.
 * ipm_config_format() renders the effective config (every key, defaults
 * included) as INI text that ipm_config_load() reads back to the same struct. */
#ifndef IPMPI_CONFIG_H
#define IPMPI_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "ipmpi/info/estimates.h"
#include "ipmpi/info/stopping.h"
#include "ipmpi/learn/spec.h"

#define IPM_PATH_MAX 4096
#define IPM_CONFIG_MAX_KEYS 64

enum ipm_data_source {
    IPM_DATA_TISHBY12,
    IPM_DATA_SIMPLE,
    IPM_DATA_COMPLICATED,
    IPM_DATA_NETCDF,
    IPM_DATA_IDX
};
/* How the extended estimators' counts meet on several ranks (key "reduce"). */
enum ipm_reduce_kind { IPM_REDUCE_PARTITIONED, IPM_REDUCE_TREE };
enum ipm_binning_kind { IPM_BINNING_RANGE, IPM_BINNING_WIDTH, IPM_BINNING_QUANTILE };
enum ipm_quantile_over { IPM_QUANTILES_LAYER, IPM_QUANTILES_UNIT };
enum ipm_range_scope { IPM_RANGE_POOLED, IPM_RANGE_PER_REPLICA };
enum ipm_epoch_rule { IPM_EPOCHS_ALL, IPM_EPOCHS_EVERY, IPM_EPOCHS_LOG, IPM_EPOCHS_LIST };

/* An epoch selection as written by the user; expand it with ipm_epochs_expand. */
typedef struct ipm_epoch_spec {
    enum ipm_epoch_rule rule;
    int param; /* K for every:K, N for log:N */
    int *list; /* explicit list (owned), sorted, unique */
    int n_list;
} ipm_epoch_spec;

typedef struct ipm_config {
    char file[IPM_PATH_MAX];             /* where it was read from, for messages */
    int key_origin[IPM_CONFIG_MAX_KEYS]; /* per key: >0 its line in file, <0 --set, 0 default */

    /* [run] */
    uint64_t seed;                 /* default 0 */
    int replicas;                  /* 0 = number of ranks */
    char output[IPM_PATH_MAX];     /* default "ipmpi.nc" */
    int threads;                   /* BLAS threads per rank, default 1 */
    char checkpoint[IPM_PATH_MAX]; /* default "": output with .nc -> .ckpt */
    int checkpoint_every;          /* epochs; 0 = only on a signal and at the end */
    enum ipm_reduce_kind reduce;   /* default partitioned */

    /* [data] */
    enum ipm_data_source source;  /* default tishby12 */
    char data_path[IPM_PATH_MAX]; /* key "path" */
    int samples;                  /* generated sets, default 1000 */
    double train_fraction;        /* (0, 1], default 1 */
    char images[IPM_PATH_MAX];    /* source = idx: IDX files, raw or gzip */
    char labels[IPM_PATH_MAX];
    char test_images[IPM_PATH_MAX]; /* optional: the held-out set */
    char test_labels[IPM_PATH_MAX];
    int subset;   /* idx: training samples drawn with the seed; 0 = all */
    int pool;     /* idx: k x k sum pooling, default 1 (none) */
    int quantize; /* idx: integer division after pooling, default 1 */
    int scale;    /* idx: 1 = divide by the largest possible value */

    /* [network] */
    ipm_layer_spec layers[IPM_MAX_LAYERS];
    int n_layers;       /* default: 10,7,5,4,3 tanh + 2 softmax */
    enum ipm_init init; /* key "init": xavier | he | truncated_normal:STDDEV|fan_in|fan_out */
    double init_stddev;

    /* [training] */
    int epochs;                   /* default 1000 */
    int batch_size;               /* default 32 */
    enum ipm_optimizer optimizer; /* default adam */
    double learning_rate;         /* default 0.001 */
    double momentum;              /* default 0.9 */
    enum ipm_loss loss;           /* default cross_entropy */
    int batches_per_epoch;        /* 0 = a full pass over the training set */

    /* [information] */
    ipm_epoch_spec info_epochs;       /* key "epochs", default log:100 */
    int bins;                         /* number of edges, default 30 */
    int max_table_mb;                 /* bound on the count tables' memory, default 4096 */
    double range_lo, range_hi;        /* default -1, 1 */
    int range_adaptive;               /* range = adaptive: per layer and epoch, min..max */
    int range_whole;                  /* range = whole: fixed, from range_from's extremes */
    char range_from[IPM_PATH_MAX];    /* an earlier run's output with adaptive ranges */
    enum ipm_binning_kind binning;    /* default range: `bins` edges on `range` */
    double bin_width;                 /* key "width": binning = width, default 0.07 */
    enum ipm_quantile_over quantiles; /* binning = quantile: edges per layer (default) or unit */
    enum ipm_range_scope range_scope; /* key "scope": adaptive ranges pooled or per replica */
    int info_layers[IPM_MAX_LAYERS];  /* key "layers": 1-based, sorted, unique */
    int n_info_layers;                /* 0 = every layer with an activation (not maxpool) */
    unsigned estimators;              /* ipm_estimator mask, default simple, pooled, sampled */
    double kde_variance;              /* sigma^2 of the KDE estimator's noise, default 1e-3 */
    unsigned on;                      /* ipm_plane_set, default train */

    /* [output] */
    ipm_epoch_spec activation_epochs; /* key "activations"; none = empty list */
    int gradient_stats;               /* key "gradients": minibatch gradient norms, default true */

    /* [stopping] */
    enum ipm_stop_criterion stop_criterion; /* key "criterion", default none */
    double stop_beta;                       /* default 1 */
    int stop_layer;                         /* 1-based; 0 = the last layer */
    int stop_estimator;             /* key "estimator": one ipm_estimator bit, default pooled */
    int stop_check_every;           /* epochs between checks, default 10 */
    double stop_tolerance;          /* relative, default 0 */
    double stop_min_rise;           /* absolute floor of a rise, bits, default 0.001 */
    int stop_patience;              /* checks, default 10 */
    enum ipm_stop_scope stop_scope; /* default ensemble */
} ipm_config;

/* Fills cfg with every default. */
void ipm_config_defaults(ipm_config *cfg);

/* Defaults, then the file, then each override "section.key=value" in order.
 * Cross-key checks (e.g. source = netcdf needs path) run last. */
int ipm_config_load(ipm_config *cfg, const char *path, const char *const *overrides,
                    int n_overrides, char *err);

/* As ipm_config_load, from INI text (no overrides); messages call it name. */
int ipm_config_load_text(ipm_config *cfg, const char *text, const char *name, char *err);

/* A key whose values differ between two configs: section, name, and each
 * config's value as ipm_config_format writes it (a and b malloc'd). */
typedef struct ipm_config_difference {
    const char *section, *name;
    char *a, *b;
} ipm_config_difference;

/* The first key, in the order ipm_config_format writes them, whose values
 * differ between a and b, skipping the "section.key" names of ignored
 * ("section.*": the whole section; NULL-terminated; may be NULL): 1 and *d filled (free it with
 * ipm_config_difference_free), 0 when none differs, -1 out of memory. */
int ipm_config_first_difference(const ipm_config *a, const ipm_config *b,
                                const char *const *ignored, ipm_config_difference *d);
void ipm_config_difference_free(ipm_config_difference *d);

/* Releases the lists inside cfg (not cfg itself). */
void ipm_config_free(ipm_config *cfg);

/* The effective config as INI text (malloc'd, caller frees); NULL on OOM. */
char *ipm_config_format(const ipm_config *cfg);

/* The sorted, duplicate-free epochs in [0, last] that spec selects.
 * log:N follows the original code: unique(floor(2^linspace(0, log2(last+1), N))) - 1.
 * *epochs is malloc'd (caller frees). */
int ipm_epochs_expand(const ipm_epoch_spec *spec, int last, int **epochs, int *n, char *err);

/* Sorts v[0..n) and drops duplicates (epoch and layer lists); returns the new count. */
int ipm_sort_unique(int *v, int n);

/* Writes "FILE:LINE: [section] name" + the formatted text (which goes on
 * with ": why" or " = value: why") into err, the place being where the key
 * was set ("--set section.name", or FILE when defaulted). For errors found
 * after loading (data, classes, shapes). Returns -1. */
int ipm_config_fail(const ipm_config *cfg, const char *section, const char *name, char *err,
                    const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* Whether layer l (0-based) is measured: listed in [information] layers, or,
 * with no list, any layer but a maxpool. */
int ipm_config_measures_layer(const ipm_config *cfg, int l);

/* The stopping layer, 0-based (resolves 0 = last). */
int ipm_config_stop_layer(const ipm_config *cfg);

/* [stopping] as the stopping rule takes it. */
ipm_stop_settings ipm_config_stop_settings(const ipm_config *cfg);

#endif
