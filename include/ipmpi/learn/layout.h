/* layout: how a network and its buffers are laid out in memory, shared by
 * the network (net.h) and its layer operations (layers.h). Every layer maps
 * a batch of rows x in values to rows x out values; image values are stored
 * per sample in HWC order (row-major height, width, channel), so flattening
 * an image for a dense layer is free. All weights and biases live in one
 * contiguous vector (params), gradients in another of the same layout, and
 * each layer holds views into both. */
#ifndef IPMPI_LEARN_LAYOUT_H
#define IPMPI_LEARN_LAYOUT_H

#include <stddef.h>
#include <stdint.h>

#include "ipmpi/learn/spec.h"

/* One sample's shape: height x width x channels (HWC). height == 0 (and
 * width == 0) means flat: `channels` features. */
typedef struct ipm_shape {
    int height, width, channels;
} ipm_shape;

static inline ipm_shape ipm_shape_flat(int features)
{
    return (ipm_shape){0, 0, features};
}

typedef struct ipm_layer {
    enum ipm_layer_kind kind;
    int in, out; /* values per sample (flattened shapes) */
    ipm_shape in_shape, out_shape;
    int kernel_h, kernel_w; /* conv kernel / maxpool window; 0 for dense */
    enum ipm_activation activation;
    float *w, *b;   /* views into net->params; NULL for maxpool */
    float *dw, *db; /* views into net->grads */
} ipm_layer;

typedef struct ipm_net {
    int in_dim; /* input.height*width*channels (flat: channels) */
    ipm_shape input;
    int n_layers;
    ipm_layer layer[IPM_MAX_LAYERS];
    size_t n_params;
    float *params;
    float *grads;
} ipm_net;

/* Per-batch buffers: act[l] holds the outputs of layer l (rows x out_l). */
typedef struct ipm_workspace {
    int capacity; /* rows it can hold */
    float *act[IPM_MAX_LAYERS];
    float *scratch[2];               /* capacity x widest layer, for backward */
    int32_t *argmax[IPM_MAX_LAYERS]; /* maxpool: rows x out, offset of each
                                      * output's maximum within its sample's input */
    float *col;                      /* im2col / its gradient, one chunk of samples */
    int col_layer;                   /* the conv layer whose whole batch col holds, or -1 */
    float *wt;                       /* a layer's weights transposed, for the backward */
} ipm_workspace;

#endif
