/* optimizer: sgd, momentum and Adam over one parameter vector. */
#include "ipmpi/learn/optimizer.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ipmpi/base/error.h"

int ipm_optimizer_moments(enum ipm_optimizer kind)
{
    return kind == IPM_OPT_ADAM ? 2 : kind == IPM_OPT_MOMENTUM ? 1 : 0;
}

int ipm_optimizer_init(ipm_optimizer_state *opt, const ipm_train_spec *spec, size_t n_params,
                       char *err)
{
    memset(opt, 0, sizeof *opt);
    opt->kind = spec->optimizer;
    opt->learning_rate = spec->learning_rate;
    opt->momentum = spec->momentum;
    opt->n = n_params;
    int moments = ipm_optimizer_moments(opt->kind);
    if (moments == 0)
        return 0;
    opt->m = calloc(n_params ? n_params : 1, sizeof(float));
    opt->v = moments == 2 ? calloc(n_params ? n_params : 1, sizeof(float)) : NULL;
    if (!opt->m || (moments == 2 && !opt->v)) {
        ipm_optimizer_free(opt);
        return ipm_fail(err, "out of memory for optimizer state (%zu parameters)", n_params);
    }
    return 0;
}

static void sgd_step(const ipm_optimizer_state *opt, float *p, const float *g)
{
    for (size_t i = 0; i < opt->n; i++)
        p[i] = (float)(p[i] - opt->learning_rate * g[i]);
}

static void momentum_step(ipm_optimizer_state *opt, float *p, const float *g)
{
    for (size_t i = 0; i < opt->n; i++) {
        double v = opt->momentum * opt->m[i] + g[i];
        opt->m[i] = (float)v;
        p[i] = (float)(p[i] - opt->learning_rate * v);
    }
}

/* Built for each instruction set: the loop is all IEEE double operations
 * (no fusing, -ffp-contract=off), so any vector width gives the same bits;
 * scalar, it was 8% of the fashion CNN's training. */
__attribute__((target_clones("avx512f", "avx2", "default"))) static void
adam_step(ipm_optimizer_state *opt, float *p, const float *g)
{
    const double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
    double correction1 = 1.0 - pow(beta1, (double)opt->step);
    double correction2 = 1.0 - pow(beta2, (double)opt->step);
    for (size_t i = 0; i < opt->n; i++) {
        double m = beta1 * opt->m[i] + (1.0 - beta1) * g[i];
        double v = beta2 * opt->v[i] + (1.0 - beta2) * (double)g[i] * g[i];
        opt->m[i] = (float)m;
        opt->v[i] = (float)v;
        double m_hat = m / correction1, v_hat = v / correction2;
        p[i] = (float)(p[i] - opt->learning_rate * m_hat / (sqrt(v_hat) + eps));
    }
}

void ipm_optimizer_step(ipm_optimizer_state *opt, float *params, const float *grads)
{
    opt->step++;
    switch (opt->kind) {
    case IPM_OPT_SGD:
        sgd_step(opt, params, grads);
        break;
    case IPM_OPT_MOMENTUM:
        momentum_step(opt, params, grads);
        break;
    case IPM_OPT_ADAM:
        adam_step(opt, params, grads);
        break;
    }
}

void ipm_optimizer_free(ipm_optimizer_state *opt)
{
    free(opt->m);
    free(opt->v);
    memset(opt, 0, sizeof *opt);
}
