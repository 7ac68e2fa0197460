/* stopping: the MI stopping rule of the seed report, made precise.
 * The objective is the information-bottleneck Lagrangian of one layer,
 *   J = I(T;Y) - beta * I(X;T),
 * to be maximised. It is checked every few epochs; the run stops when J has
 * not risen by more than max(tolerance * |J_best|, min_rise) for `patience`
 * checks in a row. A rise smaller than that counts as no improvement and
 * leaves J_best as it was, so a slow creep cannot postpone the stop forever;
 * the absolute floor min_rise keeps the threshold from vanishing as J_best
 * nears 0. J_best is the best finite J: a non-finite J (a diverging plane)
 * never improves and never seeds J_best, so the first finite J does. Pure computation:
 * the driver decides on rank 0 and broadcasts. The state packs into a
 * portable blob (base/bytes.h) for checkpoints and the broadcast. */
#ifndef IPMPI_STOPPING_H
#define IPMPI_STOPPING_H

#include <stddef.h>
#include <stdint.h>

#include "ipmpi/info/estimates.h"

enum ipm_stop_criterion { IPM_STOP_NONE, IPM_STOP_MI };
enum ipm_stop_scope { IPM_SCOPE_ENSEMBLE, IPM_SCOPE_REPLICA };

typedef struct ipm_stopping {
    double beta, tolerance;
    double min_rise; /* from the settings; not part of the packed state */
    int32_t patience;
    int32_t checks;        /* checks so far */
    double best;           /* J_best; meaningless while best_epoch < 0 */
    int32_t best_epoch;    /* -1: no finite J yet */
    int32_t stale;         /* checks in a row without improvement */
    int32_t stopped_epoch; /* -1 while running */
    int32_t reserved;
} ipm_stopping;

void ipm_stopping_init(ipm_stopping *s, double beta, double tolerance, double min_rise,
                       int patience);

double ipm_stopping_objective(const ipm_stopping *s, double i_xt, double i_ty);

/* Records J at epoch; returns 1 when this check stops the run. A
 * non-finite J never counts as an improvement. */
int ipm_stopping_check(ipm_stopping *s, int epoch, double j);

/* The run's monitor of [stopping]: one rule for the ensemble (scope =
 * ensemble, J from the chosen estimator; simple = the replicas' mean) or one
 * per replica (scope = replica, J from its own simple estimate). Checks
 * fall on epochs check_every, 2 check_every, ...; the driver logs those
 * epochs, observes on rank 0 and broadcasts the state. A stopped replica
 * trains no more; the run ends when every replica has stopped. */
typedef struct ipm_stop_monitor {
    int enabled, scope, check_every, layer, n_layers;
    unsigned estimator;
    int n_replicas, n_rules;
    ipm_stopping *rule;  /* n_rules */
    double *j;           /* n_rules: J at the latest check */
    int32_t *stop_epoch; /* n_replicas: -1 while training */
} ipm_stop_monitor;

/* The rule as configured ([stopping] and the network's layer count). */
typedef struct ipm_stop_settings {
    enum ipm_stop_criterion criterion;
    enum ipm_stop_scope scope;
    double beta, tolerance, min_rise;
    int patience, check_every;
    int layer, n_layers; /* the layer watched, 0-based, of n_layers */
    unsigned estimator;  /* one ipm_estimator bit */
} ipm_stop_settings;

int ipm_stop_monitor_init(ipm_stop_monitor *m, const ipm_stop_settings *set, int n_replicas,
                          char *err);
void ipm_stop_monitor_free(ipm_stop_monitor *m);

int ipm_stop_monitor_is_check(const ipm_stop_monitor *m, int epoch);

/* Rank 0, after the plane's estimates at check epoch are complete: computes
 * J for every rule and applies it. Returns how many replicas stopped now,
 * -1 when out of memory. */
int ipm_stop_monitor_observe(ipm_stop_monitor *m, int epoch, const ipm_estimates *train);

/* The same from the (I(X;T), I(T;Y)) of each rule, for tests. */
int ipm_stop_monitor_apply(ipm_stop_monitor *m, int epoch, const double *i_xt, const double *i_ty);

int ipm_stop_monitor_all_stopped(const ipm_stop_monitor *m);

/* "simple", "pooled" or "sampled": the estimate J is computed from. */
const char *ipm_stop_monitor_estimator(const ipm_stop_monitor *m);

/* The state as bytes (checkpoints, broadcast): rules, J, stop epochs.
 * Unpack refuses a blob of another shape (scope, replicas) with a message. */
size_t ipm_stop_monitor_state_size(const ipm_stop_monitor *m);
void ipm_stop_monitor_pack(const ipm_stop_monitor *m, unsigned char *blob);
int ipm_stop_monitor_unpack(ipm_stop_monitor *m, const unsigned char *blob, size_t size, char *err);

#endif
