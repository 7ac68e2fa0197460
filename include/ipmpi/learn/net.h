/* net: a stack of dense, 2-D convolution and max-pooling layers, float32,
 * forward and backward on a batch.
 * Every layer maps a batch of rows x in values to rows x out values; image
 * values are stored per sample in HWC order (row-major height, width,
 * channel), so flattening an image for a dense layer is free.
 *   dense    A = act(A_prev W + b), W in x out row-major.
 *   conv     valid padding, stride 1: out (H-KH+1) x (W-KW+1) x Cout; W is
 *            (KH*KW*Cin) x Cout row-major, rows ordered (kh, kw, cin), so the
 *            forward is im2col followed by one matrix product; b per channel.
 *   maxpool  stride = window: out floor(H/KH) x floor(W/KW) x C, no params.
 * All weights and biases live in one contiguous vector (params), gradients
 * in another of the same layout, so optimizers and checkpoints handle one
 * array. Matrix products are the kernels of kernels.h, each value computed
 * in one fixed order, and convolutions run in chunks of a sample count
 * fixed by the layer shapes, so results never depend on the rank a replica
 * runs on or on the replicas beside it. Knows nothing of losses or
 * information estimates. */
#ifndef IPMPI_NET_H
#define IPMPI_NET_H

#include <stddef.h>
#include <stdint.h>

#include "ipmpi/base/rng.h"
#include "ipmpi/learn/activation.h"
#include "ipmpi/learn/layout.h"
#include "ipmpi/learn/spec.h"

/* Checks the layer specs against the input shape, then draws the weights
 * (Xavier/Glorot uniform, He normal, or truncated normal with stddev,
 * redrawn beyond 2 stddev) from rng in layer order; biases zero. A dense
 * layer after a conv or maxpool reads its input flattened (HWC). Shape
 * errors name the item: "[network] layers: item 2 'maxpool:3x3': ...". */
int ipm_net_init(ipm_net *net, ipm_shape input, const ipm_layer_spec *spec, int n_layers,
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
void ipm_net_backward(ipm_net *net, const float *x, int rows, ipm_workspace *ws, float *grad,
                      int grad_is_preactivation);

#endif
