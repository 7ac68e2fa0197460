/* net: the network's structure (shapes, parameters, initialisation), its
 * workspace, and the forward and backward passes through its layers
 * (layers.c) and activations (activation.c). Layout of params (and grads):
 * for each dense or conv layer W (weight_rows x weight_cols, row-major)
 * then b (weight_cols); maxpool has none. */
#include "ipmpi/learn/net.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ipmpi/base/error.h"
#include "ipmpi/learn/layers.h"

/* ---- shapes ------------------------------------------------------------- */

static int shape_is_image(ipm_shape s)
{
    return s.height > 0;
}

static size_t layer_params(const ipm_layer *d)
{
    int cols = ipm_weight_cols(d);
    return (size_t)ipm_weight_rows(d) * (size_t)cols + (size_t)cols;
}

/* Why an image layer cannot take input `in`, or NULL when it can. */
static const char *image_input_problem(const ipm_layer_spec *s, ipm_shape in, int index, char *why,
                                       size_t size)
{
    const char *what = s->kind == IPM_LAYER_CONV ? "kernel" : "window";
    if (!shape_is_image(in) && index == 0)
        snprintf(why, size, "needs image input; the data has %d flat features", in.channels);
    else if (!shape_is_image(in))
        snprintf(why, size, "needs image input; it follows a dense layer (%d flat outputs)",
                 in.channels);
    else if (s->kernel_h <= 0 || s->kernel_w <= 0)
        snprintf(why, size, "%s %dx%d must be positive", what, s->kernel_h, s->kernel_w);
    else if (s->kernel_h > in.height || s->kernel_w > in.width)
        snprintf(why, size, "%s %dx%d is larger than its %dx%dx%d input", what, s->kernel_h,
                 s->kernel_w, in.height, in.width, in.channels);
    else if (s->kind == IPM_LAYER_CONV && s->units <= 0)
        snprintf(why, size, "needs a positive number of channels (got %d)", s->units);
    else
        return NULL;
    return why;
}

/* The output shape of spec on input `in`; NULL problem or a reason. */
static const char *infer_shape(const ipm_layer_spec *s, ipm_shape in, int index, ipm_shape *out,
                               char *why, size_t size)
{
    if (s->kind == IPM_LAYER_DENSE) {
        if (s->units <= 0) {
            snprintf(why, size, "needs a positive number of units (got %d)", s->units);
            return why;
        }
        *out = ipm_shape_flat(s->units);
        return NULL;
    }
    if (image_input_problem(s, in, index, why, size))
        return why;
    if (s->kind == IPM_LAYER_CONV)
        *out = (ipm_shape){in.height - s->kernel_h + 1, in.width - s->kernel_w + 1, s->units};
    else /* stride = window; rows and columns that do not fill a window are dropped */
        *out = (ipm_shape){in.height / s->kernel_h, in.width / s->kernel_w, in.channels};
    int64_t values = (int64_t)out->height * out->width * out->channels;
    if (values > INT32_MAX) {
        snprintf(why, size, "output of %dx%dx%d values per sample is too large", out->height,
                 out->width, out->channels);
        return why;
    }
    return NULL;
}

static int shape_size(ipm_shape s)
{
    return shape_is_image(s) ? s.height * s.width * s.channels : s.channels;
}

static int check_input(ipm_shape in, char *err)
{
    if (in.height == 0 && in.width == 0) { /* flat */
        if (in.channels <= 0)
            return ipm_fail(err, "network input dimension must be positive (got %d)", in.channels);
        return 0;
    }
    if (in.height <= 0 || in.width <= 0 || in.channels <= 0 ||
        (int64_t)in.height * in.width * in.channels > INT32_MAX)
        return ipm_fail(err, "network input shape %dx%dx%d is invalid", in.height, in.width,
                        in.channels);
    return 0;
}

/* Fills the shapes of every layer; errors name the config item. */
static int infer_layers(ipm_net *net, const ipm_layer_spec *spec, char *err)
{
    ipm_shape in = net->input;
    for (int l = 0; l < net->n_layers; l++) {
        const ipm_layer_spec *s = &spec[l];
        ipm_layer *d = &net->layer[l];
        char why[256];
        ipm_shape out;
        if (infer_shape(s, in, l, &out, why, sizeof why)) {
            char text[96];
            ipm_layer_spec_format(s, text, sizeof text);
            return ipm_fail(err, "[network] layers: item %d '%s': %s", l + 1, text, why);
        }
        *d = (ipm_layer){.kind = s->kind,
                         .in = shape_size(in),
                         .out = shape_size(out),
                         .in_shape = in,
                         .out_shape = out,
                         .activation = s->activation};
        if (s->kind != IPM_LAYER_DENSE) {
            d->kernel_h = s->kernel_h;
            d->kernel_w = s->kernel_w;
        }
        in = out;
    }
    return 0;
}

/* ---- initialisation ----------------------------------------------------- */

static double truncated_normal(ipm_rng *rng)
{
    double z;
    do
        z = ipm_rng_normal(rng);
    while (fabs(z) > 2.0);
    return z;
}

/* Fans follow Keras and PyTorch: a conv's fan_in is KH*KW*Cin and its
 * fan_out KH*KW*Cout (a dense layer's are in and out). Xavier uses both,
 * He only fan_in. */
static void init_weights(ipm_layer *d, enum ipm_init init, double stddev, ipm_rng *rng)
{
    int rows = ipm_weight_rows(d), cols = ipm_weight_cols(d);
    double fan_in = rows;
    double fan_out = d->kind == IPM_LAYER_CONV ? (double)d->kernel_h * d->kernel_w * cols : cols;
    double xavier_limit = sqrt(6.0 / (fan_in + fan_out));
    double he_stddev = sqrt(2.0 / fan_in);
    size_t count = (size_t)rows * (size_t)cols;
    for (size_t i = 0; i < count; i++) {
        double w;
        switch (init) {
        case IPM_INIT_XAVIER:
            w = (2.0 * ipm_rng_uniform(rng) - 1.0) * xavier_limit;
            break;
        case IPM_INIT_HE:
            w = ipm_rng_normal(rng) * he_stddev;
            break;
        case IPM_INIT_TRUNCATED_FAN_IN:
            w = truncated_normal(rng) / sqrt(fan_in);
            break;
        case IPM_INIT_TRUNCATED_FAN_OUT:
            w = truncated_normal(rng) / sqrt(fan_out);
            break;
        default:
            w = truncated_normal(rng) * stddev;
            break;
        }
        d->w[i] = (float)w;
    }
    if (cols)
        memset(d->b, 0, (size_t)cols * sizeof(float));
}

static int check_spec(ipm_shape input, int n_layers, enum ipm_init init, double stddev, char *err)
{
    if (check_input(input, err))
        return -1;
    if (n_layers < 1 || n_layers > IPM_MAX_LAYERS)
        return ipm_fail(err, "[network] needs 1..%d layers (got %d)", IPM_MAX_LAYERS, n_layers);
    if (init == IPM_INIT_TRUNCATED_NORMAL && !(stddev > 0.0))
        return ipm_fail(err, "[network] init truncated_normal needs a positive stddev (got %g)",
                        stddev);
    return 0;
}

/* Points each layer's w, b, dw, db into params / grads (NULL for maxpool). */
static void place_params(ipm_net *net)
{
    size_t offset = 0;
    for (int l = 0; l < net->n_layers; l++) {
        ipm_layer *d = &net->layer[l];
        if (d->kind == IPM_LAYER_MAXPOOL)
            continue;
        size_t weights = (size_t)ipm_weight_rows(d) * (size_t)ipm_weight_cols(d);
        d->w = net->params + offset;
        d->dw = net->grads + offset;
        d->b = d->w + weights;
        d->db = d->dw + weights;
        offset += layer_params(d);
    }
}

int ipm_net_init(ipm_net *net, ipm_shape input, const ipm_layer_spec *spec, int n_layers,
                 enum ipm_init init, double stddev, ipm_rng *rng, char *err)
{
    memset(net, 0, sizeof *net);
    if (check_spec(input, n_layers, init, stddev, err))
        return -1;
    net->input = input;
    net->in_dim = shape_size(input);
    net->n_layers = n_layers;
    if (infer_layers(net, spec, err)) {
        memset(net, 0, sizeof *net);
        return -1;
    }
    size_t total = 0;
    for (int l = 0; l < n_layers; l++)
        total += layer_params(&net->layer[l]);
    net->n_params = total;
    /* calloc(0) may return NULL: a pooling-only net still gets buffers. */
    net->params = calloc(total ? total : 1, sizeof(float));
    net->grads = calloc(total ? total : 1, sizeof(float));
    if (!net->params || !net->grads) {
        ipm_net_free(net);
        return ipm_fail(err, "out of memory for %zu network parameters", total);
    }
    place_params(net);
    for (int l = 0; l < n_layers; l++)
        if (net->layer[l].kind != IPM_LAYER_MAXPOOL)
            init_weights(&net->layer[l], init, stddev, rng);
    return 0;
}

void ipm_net_free(ipm_net *net)
{
    free(net->params);
    free(net->grads);
    memset(net, 0, sizeof *net);
}

/* ---- workspace ---------------------------------------------------------- */

/* Buffers of the backward and of convolutions: the transposed weights of
 * the widest layer, and one chunk's columns. */
static int product_buffers(ipm_workspace *ws, const ipm_net *net)
{
    size_t col = 0, weights = 1;
    for (int l = 0; l < net->n_layers; l++) {
        const ipm_layer *d = &net->layer[l];
        size_t w = (size_t)ipm_weight_rows(d) * (size_t)ipm_weight_cols(d);
        weights = w > weights ? w : weights;
        if (d->kind != IPM_LAYER_CONV)
            continue;
        int chunk = ipm_conv_chunk_samples(d);
        int samples = chunk < ws->capacity ? chunk : ws->capacity;
        size_t need = (size_t)samples * ipm_conv_col_floats(d);
        col = need > col ? need : col;
    }
    ws->wt = malloc(weights * sizeof(float));
    ws->col = col ? malloc(col * sizeof(float)) : NULL;
    return ws->wt && (col == 0 || ws->col) ? 0 : -1;
}

/* Large buffers the run never touches (backward scratch of the evaluation
 * workspace) cost address space only: malloc maps them lazily. */
int ipm_workspace_init(ipm_workspace *ws, const ipm_net *net, int capacity, char *err)
{
    memset(ws, 0, sizeof *ws);
    if (capacity <= 0)
        return ipm_fail(err, "workspace capacity must be positive (got %d)", capacity);
    ws->capacity = capacity;
    ws->col_layer = -1;
    int widest = 0;
    int ok = 1;
    for (int l = 0; l < net->n_layers; l++) {
        const ipm_layer *d = &net->layer[l];
        widest = d->out > widest ? d->out : widest;
        ws->act[l] = malloc((size_t)capacity * (size_t)d->out * sizeof(float));
        ok = ok && ws->act[l];
        if (d->kind == IPM_LAYER_MAXPOOL) {
            ws->argmax[l] = malloc((size_t)capacity * (size_t)d->out * sizeof(int32_t));
            ok = ok && ws->argmax[l];
        }
    }
    for (int s = 0; s < 2; s++) {
        ws->scratch[s] = malloc((size_t)capacity * (size_t)widest * sizeof(float));
        ok = ok && ws->scratch[s];
    }
    if (!ok || product_buffers(ws, net)) {
        ipm_workspace_free(ws);
        return ipm_fail(err, "out of memory for a workspace of %d rows", capacity);
    }
    return 0;
}

void ipm_workspace_free(ipm_workspace *ws)
{
    for (int l = 0; l < IPM_MAX_LAYERS; l++) {
        free(ws->act[l]);
        free(ws->argmax[l]);
    }
    free(ws->scratch[0]);
    free(ws->scratch[1]);
    free(ws->col);
    free(ws->wt);
    memset(ws, 0, sizeof *ws);
}

/* ---- passes ------------------------------------------------------------- */

void ipm_net_forward(const ipm_net *net, const float *x, int rows, ipm_workspace *ws)
{
    const float *input = x;
    for (int l = 0; l < net->n_layers; l++) {
        const ipm_layer *d = &net->layer[l];
        ipm_layer_pass p = {.index = l, .rows = rows, .in = input, .out = ws->act[l], .ws = ws};
        ipm_layer_op(d, IPM_FORWARD, &p);
        ipm_activation_op(d->activation, IPM_FORWARD, ws->act[l], NULL, rows, d->out, 1);
        input = ws->act[l];
    }
}

/* Below the lowest layer with parameters no gradient is needed. */
static int lowest_trained_layer(const ipm_net *net)
{
    for (int l = 0; l < net->n_layers; l++)
        if (net->layer[l].kind != IPM_LAYER_MAXPOOL)
            return l;
    return net->n_layers;
}

void ipm_net_backward(ipm_net *net, const float *x, int rows, ipm_workspace *ws, float *grad,
                      int grad_is_preactivation)
{
    float *g = grad; /* dL/dA of layer l, turned into dL/dZ in place */
    int next_scratch = 0;
    int lowest = lowest_trained_layer(net);
    for (int l = net->n_layers - 1; l >= lowest; l--) {
        const ipm_layer *d = &net->layer[l];
        if (!(grad_is_preactivation && l == net->n_layers - 1))
            ipm_activation_op(d->activation, IPM_BACKWARD, ws->act[l], g, rows, d->out, 1);
        float *g_prev = l > lowest ? ws->scratch[next_scratch] : NULL;
        next_scratch ^= 1;
        ipm_layer_pass p = {.index = l,
                            .rows = rows,
                            .in = l > 0 ? ws->act[l - 1] : x,
                            .grad_out = g,
                            .grad_in = g_prev,
                            .ws = ws};
        ipm_layer_op(d, IPM_BACKWARD, &p);
        g = g_prev;
    }
}
