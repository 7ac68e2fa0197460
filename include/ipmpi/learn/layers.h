/* layers: one function per layer kind holding its forward and its backward
 * (dense, conv, maxpool), so a kind is one place. A pass works on one
 * replica's batch, row-major (see net.h for the layouts):
 *   forward   in -> out, the layer's output before its activation;
 *   backward  from grad_out = dL/dZ (rows x out) it writes the layer's
 *             parameter gradients and, when grad_in is not NULL, dL/d(in).
 * Matrix products are the kernels of kernels.h (bias added in the same
 * pass), so every value is computed in one fixed order. */
#ifndef IPMPI_LEARN_LAYERS_H
#define IPMPI_LEARN_LAYERS_H

#include "ipmpi/learn/activation.h"
#include "ipmpi/learn/layout.h"

typedef struct ipm_layer_pass {
    int index; /* the layer's number in its net (the workspace's caches) */
    int rows;
    const float *in;       /* rows x layer->in */
    float *out;            /* rows x layer->out */
    const float *grad_out; /* backward: dL/dZ, rows x out */
    float *grad_in;        /* backward: dL/d(in), rows x in, or NULL */
    ipm_workspace *ws;
} ipm_layer_pass;

void ipm_layer_op(const ipm_layer *d, enum ipm_pass pass, const ipm_layer_pass *p);

/* Rows of a layer's weight matrix (its fan-in: in for dense, KH*KW*Cin for
 * conv) and columns (units or output channels); 0 x 0 for maxpool. */
int ipm_weight_rows(const ipm_layer *d);
int ipm_weight_cols(const ipm_layer *d);

/* Samples per im2col chunk of a conv layer: as many as fit a fixed column
 * buffer budget, at least one. A function of the layer's shapes only. */
int ipm_conv_chunk_samples(const ipm_layer *conv);

/* im2col values per sample of a conv layer: out height x out width x fan-in. */
size_t ipm_conv_col_floats(const ipm_layer *conv);

#endif
