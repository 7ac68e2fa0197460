/* optimizer: the update rules, sgd, momentum (v = momentum v + g;
 * p -= lr v) and Adam (Kingma & Ba 2015, Algorithm 1, beta1 0.9, beta2
 * 0.999, eps 1e-8, bias-corrected moments). Parameters and moments are
 * stored as float; each update is computed in double and rounded once, so
 * a parameter's new value depends on its own old value, gradient and
 * moments only: the same whatever else is updated alongside it. */
#ifndef IPMPI_LEARN_OPTIMIZER_H
#define IPMPI_LEARN_OPTIMIZER_H

#include <stddef.h>

#include "ipmpi/learn/spec.h"

typedef struct ipm_optimizer_state {
    enum ipm_optimizer kind;
    double learning_rate, momentum;
    long step;
    size_t n;
    float *m, *v; /* velocity / Adam moments */
} ipm_optimizer_state;

/* The optimizer, learning rate and momentum of spec, for n_params parameters. */
int ipm_optimizer_init(ipm_optimizer_state *opt, const ipm_train_spec *spec, size_t n_params,
                       char *err);
void ipm_optimizer_step(ipm_optimizer_state *opt, float *params, const float *grads);
void ipm_optimizer_free(ipm_optimizer_state *opt);

/* Moment arrays the kind keeps: 0 (sgd), 1 (momentum), 2 (adam). */
int ipm_optimizer_moments(enum ipm_optimizer kind);

#endif
