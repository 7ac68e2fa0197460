/* grad_stats: the mean and spread of a replica's minibatch gradients over
 * an epoch, per layer, as Shwartz-Ziv & Tishby (2017, Fig. 4) plot them to
 * tell the drift phase (mean >> std) from the diffusion phase (std >>
 * mean). Each minibatch gradient of the layer's weights (biases excluded,
 * as in the original code) is added to a running mean and sum of squared
 * deviations per weight, in double (Welford), and the norms are
 *   mean_norm = ||m||_2, m_i = (1/B) sum_b g_bi,
 *   std_norm  = ||s||_2, s_i = sqrt((1/B) sum_b (g_bi - m_i)^2),
 * the square root of the trace of the minibatch covariance (population:
 * divided by B, as the original divides by the number of batches), B the
 * minibatches added. The values depend only on the gradients in the order
 * they were added: the same bits wherever the replica trained. */
#ifndef IPMPI_LEARN_GRAD_STATS_H
#define IPMPI_LEARN_GRAD_STATS_H

#include <stddef.h>

#include "ipmpi/base/error.h"
#include "ipmpi/learn/layout.h"

typedef struct ipm_grad_stats {
    int n_layers;
    size_t first[IPM_MAX_LAYERS], count[IPM_MAX_LAYERS]; /* layer l's weights in net->grads */
    size_t n;                                            /* weights of all layers */
    long batches;      /* minibatches added since the last reset */
    double *mean, *m2; /* n each, layer after layer */
} ipm_grad_stats;

/* Statistics for the weights of net's layers (none for a maxpool layer). */
int ipm_grad_stats_init(ipm_grad_stats *s, const ipm_net *net, char *err);
void ipm_grad_stats_free(ipm_grad_stats *s);

/* Forgets every batch added. */
void ipm_grad_stats_reset(ipm_grad_stats *s);

/* Adds net->grads, one minibatch's gradient, to the statistics. */
void ipm_grad_stats_add(ipm_grad_stats *s, const ipm_net *net);

/* Layer l's mean_norm and std_norm; NaN for both when no batch was added
 * or the layer has no weights. */
void ipm_grad_stats_norms(const ipm_grad_stats *s, int l, double *mean_norm, double *std_norm);

#endif
