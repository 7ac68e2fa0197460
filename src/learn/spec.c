#include "ipmpi/learn/spec.h"

#include <stdio.h>

const char *const ipm_activation_names[IPM_N_ACTIVATIONS] = {"linear", "tanh", "relu", "sigmoid",
                                                             "softmax"};

const char *ipm_activation_name(enum ipm_activation a)
{
    return (int)a >= 0 && (int)a < IPM_N_ACTIVATIONS ? ipm_activation_names[a] : "unknown";
}

void ipm_layer_spec_format(const ipm_layer_spec *s, char *buf, size_t size)
{
    const char *act = ipm_activation_name(s->activation);
    if (s->kind == IPM_LAYER_CONV)
        snprintf(buf, size, "conv:%d:%dx%d:%s", s->units, s->kernel_h, s->kernel_w, act);
    else if (s->kind == IPM_LAYER_MAXPOOL)
        snprintf(buf, size, "maxpool:%dx%d", s->kernel_h, s->kernel_w);
    else
        snprintf(buf, size, "dense:%d:%s", s->units, act);
}
