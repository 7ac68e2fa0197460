/* activation: the element-wise nonlinearities (linear, tanh, relu,
 * sigmoid) and softmax, each one function holding its forward and its
 * backward. Values are laid out [row][unit][lane]: lanes = 1 for one
 * replica's row-major matrix, IPM_LANES for replicas side by side (a lane
 * per replica). A value's result depends on that value only (softmax: on
 * its own row and lane), computed the same way in every layout and on every
 * instruction set (kernels.h). */
#ifndef IPMPI_LEARN_ACTIVATION_H
#define IPMPI_LEARN_ACTIVATION_H

#include "ipmpi/learn/spec.h"

enum ipm_pass { IPM_FORWARD, IPM_BACKWARD };

/* forward: a <- act(a) in place (g unused). backward: g <- dL/dZ from
 * g = dL/dA and the activated outputs a. */
void ipm_activation_op(enum ipm_activation act, enum ipm_pass pass, float *a, float *g, int rows,
                       int units, int lanes);

/* The forward of one replica's rows x units values, in place. */
void ipm_activate(enum ipm_activation act, float *v, int rows, int units);

#endif
