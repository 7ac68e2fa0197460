/* grad_stats: Welford's running mean and squared deviations per weight.
 * Sums of g and g^2 would cancel catastrophically in the drift phase,
 * where the mean is many times the spread. */
#include "ipmpi/learn/grad_stats.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

int ipm_grad_stats_init(ipm_grad_stats *s, const ipm_net *net, char *err)
{
    memset(s, 0, sizeof *s);
    s->n_layers = net->n_layers;
    for (int l = 0; l < net->n_layers; l++) {
        const ipm_layer *d = &net->layer[l];
        s->first[l] = d->dw ? (size_t)(d->dw - net->grads) : 0;
        s->count[l] = d->dw ? (size_t)(d->db - d->dw) : 0; /* the biases follow the weights */
        s->n += s->count[l];
    }
    s->mean = calloc(s->n + 1, sizeof(double));
    s->m2 = calloc(s->n + 1, sizeof(double));
    if (!s->mean || !s->m2) {
        ipm_grad_stats_free(s);
        return ipm_fail(err, "out of memory for the gradient statistics of %zu weights", s->n);
    }
    return 0;
}

void ipm_grad_stats_free(ipm_grad_stats *s)
{
    free(s->mean);
    free(s->m2);
    memset(s, 0, sizeof *s);
}

void ipm_grad_stats_reset(ipm_grad_stats *s)
{
    s->batches = 0;
    memset(s->mean, 0, s->n * sizeof(double));
    memset(s->m2, 0, s->n * sizeof(double));
}

void ipm_grad_stats_add(ipm_grad_stats *s, const ipm_net *net)
{
    double b = (double)++s->batches;
    size_t at = 0;
    for (int l = 0; l < s->n_layers; l++) {
        const float *g = net->grads + s->first[l];
        double *mean = s->mean + at, *m2 = s->m2 + at;
        for (size_t i = 0; i < s->count[l]; i++) {
            double delta = (double)g[i] - mean[i];
            mean[i] += delta / b;
            m2[i] += delta * ((double)g[i] - mean[i]);
        }
        at += s->count[l];
    }
}

void ipm_grad_stats_norms(const ipm_grad_stats *s, int l, double *mean_norm, double *std_norm)
{
    if (s->batches == 0 || l < 0 || l >= s->n_layers || s->count[l] == 0) {
        *mean_norm = *std_norm = NAN;
        return;
    }
    size_t at = 0;
    for (int k = 0; k < l; k++)
        at += s->count[k];
    double mm = 0, vv = 0;
    for (size_t i = 0; i < s->count[l]; i++) {
        mm += s->mean[at + i] * s->mean[at + i];
        vv += s->m2[at + i];
    }
    *mean_norm = sqrt(mm);
    *std_norm = sqrt(vv / (double)s->batches);
}
