/* net: a stack of dense layers, float32, forward and backward on a batch.
 * Dense layer l maps A_{l-1} (rows x in) to A_l = act(A_{l-1} W_l + b_l),
 * W_l in x out row-major. All weights and biases live in one contiguous
 * vector (params), gradients in another of the same layout, so optimizers
 * and checkpoints handle one array. Matrix products go through
 * ipm_matmul (OpenBLAS sgemm, hand loops at tiny shapes), chosen by shape
 * only, so results never depend on the rank a replica runs on.
 * Knows nothing of losses or information estimates. */
#ifndef IPMPI_NET_H
#define IPMPI_NET_H

#include <stddef.h>

#include "ipmpi/config.h"
#include "ipmpi/rng.h"

typedef struct ipm_dense {
    int in, out;
    enum ipm_activation activation;
    float *w, *b;     /* views into net->params */
    float *dw, *db;   /* views into net->grads */
} ipm_dense;

typedef struct ipm_net {
    int in_dim;
    int n_layers;
    ipm_dense layer[IPM_MAX_LAYERS];
    size_t n_params;
    float *params;
    float *grads;
} ipm_net;

/* Per-batch buffers: act[l] holds the outputs of layer l (rows x out_l). */
typedef struct ipm_workspace {
    int capacity;                  /* rows it can hold */
    float *act[IPM_MAX_LAYERS];
    float *scratch[2];             /* capacity x widest layer, for backward */
} ipm_workspace;

/* Weights from init (Xavier/Glorot uniform, He normal, or truncated normal
 * with stddev, redrawn beyond 2 stddev), drawn from rng in layer order;
 * biases zero. */
int ipm_net_init(ipm_net *net, int in_dim, const ipm_layer_spec *spec, int n_layers,
                 enum ipm_init init, double stddev, ipm_rng *rng, char *err);
void ipm_net_free(ipm_net *net);

int ipm_workspace_init(ipm_workspace *ws, const ipm_net *net, int capacity, char *err);
void ipm_workspace_free(ipm_workspace *ws);

/* x is rows x in_dim, rows <= ws->capacity. */
void ipm_net_forward(const ipm_net *net, const float *x, int rows, ipm_workspace *ws);

/* Writes net->grads after a forward of the same x. grad is rows x out of
 * the last layer: dL/dA_last, or dL/dZ_last (before the activation) when
 * grad_is_preactivation (for the fused softmax + cross-entropy).
 * grad may be overwritten. */
void ipm_net_backward(ipm_net *net, const float *x, int rows, ipm_workspace *ws,
                      float *grad, int grad_is_preactivation);

/* C = A B (beta = 0): A m x k, B k x n, C m x n, row-major; trans_a / trans_b
 * use A^T / B^T as stored (A^T: A is k x m). */
void ipm_matmul(int trans_a, int trans_b, int m, int n, int k,
                const float *a, const float *b, float *c);

/* Applies the activation in place to rows x units values (softmax per row). */
void ipm_activate(enum ipm_activation act, float *v, int rows, int units);

#endif
