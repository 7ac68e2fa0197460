/* ref_activation: activations in double precision by their definitions, the
 * independent reference the forward-pass tests (test_gradients, test_conv)
 * compare the float implementation against. */
#ifndef IPMPI_TESTS_REF_ACTIVATION_H
#define IPMPI_TESTS_REF_ACTIVATION_H

#include <math.h>

#include "ipmpi/io/config.h"

/* z[0..n) in place: softmax over the n values, or the activation of each. */
static inline void ref_activate(enum ipm_activation a, double *z, int n)
{
    if (a == IPM_ACT_SOFTMAX) {
        double zmax = -INFINITY, sum = 0.0;
        for (int j = 0; j < n; j++)
            zmax = fmax(zmax, z[j]);
        for (int j = 0; j < n; j++)
            sum += z[j] = exp(z[j] - zmax);
        for (int j = 0; j < n; j++)
            z[j] /= sum;
        return;
    }
    for (int j = 0; j < n; j++) {
        double v = z[j];
        switch (a) {
        case IPM_ACT_TANH:
            z[j] = tanh(v);
            break;
        case IPM_ACT_RELU:
            z[j] = v > 0 ? v : 0;
            break;
        case IPM_ACT_SIGMOID:
            z[j] = 1.0 / (1.0 + exp(-v));
            break;
        default:
            break;
        }
    }
}

#endif
