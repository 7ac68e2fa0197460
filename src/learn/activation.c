/* activation: one function per activation, forward and backward. The
 * transcendental work goes through kernels.h (vectorised, the same bits on
 * every instruction set); the rest is plain element-wise C. */
#include "ipmpi/learn/activation.h"

#include <stddef.h>

#include "ipmpi/learn/kernels.h"

static void tanh_op(enum ipm_pass pass, float *a, float *g, size_t n)
{
    if (pass == IPM_FORWARD)
        ipm_kernels_best()->tanh(a, n);
    else
        ipm_kernels_best()->tanh_grad(a, g, n);
}

static void sigmoid_op(enum ipm_pass pass, float *a, float *g, size_t n)
{
    if (pass == IPM_FORWARD)
        ipm_kernels_best()->sigmoid(a, n);
    else
        ipm_kernels_best()->sigmoid_grad(a, g, n);
}

static void relu_op(enum ipm_pass pass, float *a, float *g, size_t n)
{
    if (pass == IPM_FORWARD)
        ipm_kernels_best()->relu(a, n);
    else
        ipm_kernels_best()->relu_grad(a, g, n);
}

/* Per row and lane: subtract the row max (so exp never overflows),
 * exponentiate, multiply by the reciprocal of the row sum. */
static void softmax_forward(float *v, int rows, int units, int lanes)
{
    size_t row = (size_t)units * (size_t)lanes;
    for (int r = 0; r < rows; r++) {
        float *vr = v + (size_t)r * row;
        for (int l = 0; l < lanes; l++) {
            float max = vr[l];
            for (int j = 1; j < units; j++)
                max = vr[(size_t)j * lanes + l] > max ? vr[(size_t)j * lanes + l] : max;
            for (int j = 0; j < units; j++)
                vr[(size_t)j * lanes + l] -= max;
        }
    }
    ipm_kernels_best()->exp(v, (size_t)rows * row);
    for (int r = 0; r < rows; r++) {
        float *vr = v + (size_t)r * row;
        for (int l = 0; l < lanes; l++) {
            float sum = 0.0f;
            for (int j = 0; j < units; j++)
                sum += vr[(size_t)j * lanes + l];
            float inv = 1.0f / sum;
            for (int j = 0; j < units; j++)
                vr[(size_t)j * lanes + l] *= inv;
        }
    }
}

/* The Jacobian-vector product: dz_j = a_j (g_j - sum_i a_i g_i). */
static void softmax_backward(const float *a, float *g, int rows, int units, int lanes)
{
    size_t row = (size_t)units * (size_t)lanes;
    for (int r = 0; r < rows; r++)
        for (int l = 0; l < lanes; l++) {
            const float *ar = a + (size_t)r * row + l;
            float *gr = g + (size_t)r * row + l;
            float dot = 0.0f;
            for (int j = 0; j < units; j++)
                dot += ar[(size_t)j * lanes] * gr[(size_t)j * lanes];
            for (int j = 0; j < units; j++)
                gr[(size_t)j * lanes] = ar[(size_t)j * lanes] * (gr[(size_t)j * lanes] - dot);
        }
}

static void softmax_op(enum ipm_pass pass, float *a, float *g, int rows, int units, int lanes)
{
    if (pass == IPM_FORWARD)
        softmax_forward(a, rows, units, lanes);
    else
        softmax_backward(a, g, rows, units, lanes);
}

void ipm_activation_op(enum ipm_activation act, enum ipm_pass pass, float *a, float *g, int rows,
                       int units, int lanes)
{
    size_t n = (size_t)rows * (size_t)units * (size_t)lanes;
    switch (act) {
    case IPM_ACT_LINEAR:
        break;
    case IPM_ACT_TANH:
        tanh_op(pass, a, g, n);
        break;
    case IPM_ACT_RELU:
        relu_op(pass, a, g, n);
        break;
    case IPM_ACT_SIGMOID:
        sigmoid_op(pass, a, g, n);
        break;
    case IPM_ACT_SOFTMAX:
        softmax_op(pass, a, g, rows, units, lanes);
        break;
    }
}

void ipm_activate(enum ipm_activation act, float *v, int rows, int units)
{
    ipm_activation_op(act, IPM_FORWARD, v, NULL, rows, units, 1);
}
