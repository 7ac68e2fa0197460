/* plan: everything a config means for a run on P ranks, worked out before
 * anything trains: the data sets, the network's layer shapes, the layers and
 * planes measured, the logged, stored and checked epochs, the evaluation
 * block, the replicas this rank owns, and the checks that a run would fail
 * later (loss against output, empty test set, table memory). `ipmpi --check`
 * and the run build the same plan, so a config that --check passes does not
 * fail at start. Errors name the config line of the key concerned. */
#ifndef IPMPI_APP_PLAN_H
#define IPMPI_APP_PLAN_H

#include "ipmpi/info/estimates.h"
#include "ipmpi/io/config.h"
#include "ipmpi/io/dataset.h"
#include "ipmpi/learn/net.h"

typedef struct ipm_plan {
    const ipm_config *cfg;
    char *config_text;             /* the effective config, for output and checkpoints */
    char checkpoint[IPM_PATH_MAX]; /* [run] checkpoint, resolved */
    int rank, n_ranks;
    int n_replicas, n_local;            /* this rank owns replicas rank, rank + P, ... */
    ipm_dataset data[IPM_N_PLANES];     /* train, test (test.n may be 0) */
    int whole_plane;                    /* on = whole: the training plane's measure and stored
                                         * activations cover `whole` */
    ipm_dataset whole;                  /* on = whole: train's samples, then test's */
    ipm_net shape;                      /* the network's layer shapes (replica 0's weights) */
    int width[IPM_MAX_LAYERS];          /* units of each layer (a conv map flattened) */
    int layer_measured[IPM_MAX_LAYERS]; /* [information] layers */
    int n_measured_layers;
    int measured[IPM_N_PLANES];        /* [information] on */
    double *whole_range[IPM_N_PLANES]; /* range = whole: lo then hi, (scope = replica:
                                        * replicas x) layers each; NULL otherwise */
    int block_rows;                    /* samples per evaluation block */
    int *log_epochs, n_log;            /* logged: [information] epochs and stopping checks */
    int *act_epochs, n_act;            /* [output] activations */
} ipm_plan;

/* The plan of cfg for `rank` of n_ranks. Collective in nothing: every rank
 * computes the same plan but for its own replicas. eval_block_rows > 0
 * forces the evaluation block (tests); 0 chooses it from the layer widths. */
int ipm_plan_make(ipm_plan *p, const ipm_config *cfg, int rank, int n_ranks, int eval_block_rows,
                  char *err);
void ipm_plan_free(ipm_plan *p);

/* [run] checkpoint, or when empty the output path with a trailing ".nc"
 * replaced by (or, without one, followed by) ".ckpt". */
void ipm_plan_checkpoint_path(const ipm_config *cfg, char path[IPM_PATH_MAX]);

/* The samples plane k's measure covers: on = whole, the training plane's
 * covers p->whole; else data[k]. */
const ipm_dataset *ipm_plan_measured_data(const ipm_plan *p, int plane);

/* Whether epoch is in the sorted list. */
int ipm_epoch_listed(const int *sorted, int n, int epoch);

/* The layer of the progress line: the last measured one. */
int ipm_plan_last_measured_layer(const ipm_plan *p);

#endif
