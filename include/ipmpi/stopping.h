/* stopping: the MI stopping rule of the seed report, made precise.
 * The objective is the information-bottleneck Lagrangian of one layer,
 *   J = I(T;Y) - beta * I(X;T),
 * to be maximised. It is checked every few epochs; the run stops when J has
 * not risen by more than tolerance * |J_best| for `patience` checks in a row.
 * A rise smaller than that counts as no improvement and leaves J_best as it
 * was, so a slow creep cannot postpone the stop forever. Pure computation:
 * the driver decides on rank 0 and broadcasts. The state is a plain struct
 * of fixed-width fields, so checkpoints can store it as bytes. */
#ifndef IPMPI_STOPPING_H
#define IPMPI_STOPPING_H

#include <stdint.h>

typedef struct ipm_stopping {
    double beta, tolerance;
    int32_t patience;
    int32_t checks;        /* checks so far */
    double best;           /* J_best; meaningless before the first check */
    int32_t best_epoch;
    int32_t stale;         /* checks in a row without improvement */
    int32_t stopped_epoch; /* -1 while running */
    int32_t reserved;
} ipm_stopping;

void ipm_stopping_init(ipm_stopping *s, double beta, double tolerance, int patience);

double ipm_stopping_objective(const ipm_stopping *s, double i_xt, double i_ty);

/* Records J at epoch; returns 1 when this check stops the run. A
 * non-finite J never counts as an improvement. */
int ipm_stopping_check(ipm_stopping *s, int epoch, double j);

#endif
