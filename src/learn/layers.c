/* layers: dense, conv and maxpool, each one function for forward and
 * backward. */
#include "ipmpi/learn/layers.h"

#include <stdint.h>
#include <string.h>

#include "ipmpi/learn/kernels.h"

int ipm_weight_rows(const ipm_layer *d)
{
    switch (d->kind) {
    case IPM_LAYER_DENSE:
        return d->in;
    case IPM_LAYER_CONV:
        return d->kernel_h * d->kernel_w * d->in_shape.channels;
    default:
        return 0;
    }
}

int ipm_weight_cols(const ipm_layer *d)
{
    return d->kind == IPM_LAYER_MAXPOOL ? 0 : d->out_shape.channels;
}

/* wt = w^T for a w of rows x cols. */
static void transpose(const float *restrict w, int rows, int cols, float *restrict wt)
{
    for (int i = 0; i < rows; i++)
        for (int j = 0; j < cols; j++)
            wt[(size_t)j * (size_t)rows + (size_t)i] = w[(size_t)i * (size_t)cols + (size_t)j];
}

/* The matrix product of a layer: `rows` rows of `k` inputs (a) against the
 * k x n weights. forward: z = a W + b; backward: dW, db from g and, when
 * d is not NULL, d = g W^T. dW and db go on from the values they hold. */
static void product(const ipm_layer *l, enum ipm_pass pass, int rows, const float *a, float *z,
                    const float *g, float *d, ipm_workspace *ws)
{
    const ipm_kernels *kern = ipm_kernels_best();
    int k = ipm_weight_rows(l), n = ipm_weight_cols(l);
    if (pass == IPM_FORWARD) {
        kern->dense_forward(rows, k, n, a, l->w, l->b, z);
        return;
    }
    kern->dense_weight_grad(rows, k, n, a, g, l->dw, l->db);
    if (d) {
        transpose(l->w, k, n, ws->wt);
        kern->dense_input_grad(rows, k, n, g, ws->wt, d);
    }
}

static void zero_grads(const ipm_layer *l)
{
    int k = ipm_weight_rows(l), n = ipm_weight_cols(l);
    memset(l->dw, 0, (size_t)k * (size_t)n * sizeof(float));
    memset(l->db, 0, (size_t)n * sizeof(float));
}

/* dense: A = act(A_prev W + b). */
static void dense_op(const ipm_layer *l, enum ipm_pass pass, const ipm_layer_pass *p)
{
    if (pass == IPM_BACKWARD)
        zero_grads(l);
    product(l, pass, p->rows, p->in, p->out, p->grad_out, p->grad_in, p->ws);
}

/* ---- conv --------------------------------------------------------------- */

/* Patches of `samples` images into col: one row per output pixel
 * (sample, oh, ow), its KH*KW*Cin values in (kh, kw, cin) order. For a
 * fixed kernel row the run of KW*Cin values is contiguous in the HWC input.
 * Runs are short (5 floats for a 5x5 kernel on one channel), and a copy of
 * variable length becomes a memcpy call that cost more than the product,
 * so short runs get a copy of constant length, inlined. */
static inline __attribute__((always_inline)) void
im2col_runs(const ipm_layer *d, const float *restrict in, int samples, float *restrict col, int run)
{
    int width = d->in_shape.width, channels = d->in_shape.channels;
    int out_h = d->out_shape.height, out_w = d->out_shape.width;
    for (int s = 0; s < samples; s++) {
        const float *image = in + (size_t)s * (size_t)d->in;
        for (int oh = 0; oh < out_h; oh++)
            for (int ow = 0; ow < out_w; ow++)
                for (int i = 0; i < d->kernel_h; i++) {
                    const float *src = image + ((size_t)(oh + i) * width + ow) * channels;
                    for (int t = 0; t < run; t++)
                        col[t] = src[t];
                    col += run;
                }
    }
}

#define IM2COL_CASE(RUN)                                                                           \
    case RUN:                                                                                      \
        im2col_runs(d, in, samples, col, RUN);                                                     \
        break;

/* The cases are macros clang-format cannot read as statements. */
// clang-format off
static void im2col(const ipm_layer *d, const float *in, int samples, float *col)
{
    switch (d->kernel_w * d->in_shape.channels) {
        IM2COL_CASE(1) IM2COL_CASE(2) IM2COL_CASE(3) IM2COL_CASE(4) IM2COL_CASE(5)
        IM2COL_CASE(6) IM2COL_CASE(7) IM2COL_CASE(8)
    default:
        im2col_runs(d, in, samples, col, d->kernel_w * d->in_shape.channels);
    }
}
// clang-format on

/* The transpose of im2col: each patch value's gradient is added back to
 * the input value it was copied from. */
static void col2im(const ipm_layer *d, const float *restrict col, int samples, float *restrict g_in)
{
    int width = d->in_shape.width, channels = d->in_shape.channels;
    int out_h = d->out_shape.height, out_w = d->out_shape.width;
    int run = d->kernel_w * channels;
    memset(g_in, 0, (size_t)samples * (size_t)d->in * sizeof(float));
    for (int s = 0; s < samples; s++) {
        float *image = g_in + (size_t)s * (size_t)d->in;
        for (int oh = 0; oh < out_h; oh++)
            for (int ow = 0; ow < out_w; ow++)
                for (int i = 0; i < d->kernel_h; i++) {
                    float *dst = image + ((size_t)(oh + i) * width + ow) * channels;
                    for (int t = 0; t < run; t++)
                        dst[t] += col[t];
                    col += run;
                }
    }
}

/* A dense product over patches, in chunks of a sample count fixed by the
 * layer's shape (ipm_conv_chunk_samples). Forward: im2col, then the
 * product with the bias. When the batch is one chunk, ws->col_layer records
 * that col holds this layer's columns, so the backward that follows need
 * not rebuild them. Backward per chunk: dW, db go on over the chunks in
 * sample order, and when the input's gradient is wanted dcol = dZ W^T (into
 * col, no longer needed) is scattered back by col2im. */
static void conv_op(const ipm_layer *l, enum ipm_pass pass, const ipm_layer_pass *p)
{
    ipm_workspace *ws = p->ws;
    int chunk = ipm_conv_chunk_samples(l);
    int pixels = l->out_shape.height * l->out_shape.width;
    if (pass == IPM_BACKWARD)
        zero_grads(l);
    for (int s0 = 0; s0 < p->rows; s0 += chunk) {
        int n = p->rows - s0 < chunk ? p->rows - s0 : chunk;
        const float *in = p->in + (size_t)s0 * (size_t)l->in;
        size_t at = (size_t)s0 * (size_t)l->out;
        if (pass == IPM_FORWARD || ws->col_layer != p->index)
            im2col(l, in, n, ws->col);
        if (pass == IPM_FORWARD) {
            product(l, pass, n * pixels, ws->col, p->out + at, NULL, NULL, ws);
            continue;
        }
        product(l, pass, n * pixels, ws->col, NULL, p->grad_out + at, p->grad_in ? ws->col : NULL,
                ws);
        if (p->grad_in) {
            ws->col_layer = -1;
            col2im(l, ws->col, n, p->grad_in + (size_t)s0 * (size_t)l->in);
        }
    }
    if (pass == IPM_FORWARD)
        ws->col_layer = p->rows <= chunk ? p->index : -1;
}

/* ---- maxpool ------------------------------------------------------------ */

/* Each output is its window's maximum; argmax keeps the first maximal
 * element in row-major window order (strict >), as an offset within the
 * sample's input. Channels are innermost, so every compare runs over C
 * contiguous values. */
static void maxpool_forward(const ipm_layer *d, const float *restrict in, int rows,
                            float *restrict out, int32_t *restrict argmax)
{
    int width = d->in_shape.width, channels = d->in_shape.channels;
    int kh = d->kernel_h, kw = d->kernel_w;
    for (int s = 0; s < rows; s++) {
        const float *image = in + (size_t)s * (size_t)d->in;
        size_t base = (size_t)s * (size_t)d->out;
        for (int oh = 0; oh < d->out_shape.height; oh++)
            for (int ow = 0; ow < d->out_shape.width; ow++) {
                size_t o = base + ((size_t)oh * d->out_shape.width + ow) * channels;
                float *best = out + o;
                int32_t *arg = argmax + o;
                int32_t first = (oh * kh * width + ow * kw) * channels;
                for (int c = 0; c < channels; c++) {
                    best[c] = image[first + c];
                    arg[c] = first + c;
                }
                for (int i = 0; i < kh; i++)
                    for (int j = i == 0; j < kw; j++) { /* (0, 0) is already in */
                        int32_t at = ((oh * kh + i) * width + ow * kw + j) * channels;
                        /* masks, not branches: after a relu the compares
                         * are random and mispredicted branches dominated */
                        for (int c = 0; c < channels; c++) {
                            float v = image[at + c], b = best[c];
                            int32_t take = -(int32_t)(v > b);
                            best[c] = v > b ? v : b;
                            arg[c] = ((at + c) & take) | (arg[c] & ~take);
                        }
                    }
            }
    }
}

/* Windows do not overlap (stride = window), so each input value receives
 * at most one output's gradient; values outside every window get zero. */
static void maxpool_backward(const ipm_layer *d, int rows, const float *restrict g,
                             const int32_t *restrict argmax, float *restrict g_prev)
{
    memset(g_prev, 0, (size_t)rows * (size_t)d->in * sizeof(float));
    for (int s = 0; s < rows; s++) {
        float *image = g_prev + (size_t)s * (size_t)d->in;
        size_t base = (size_t)s * (size_t)d->out;
        for (int o = 0; o < d->out; o++)
            image[argmax[base + o]] += g[base + o];
    }
}

static void maxpool_op(const ipm_layer *l, enum ipm_pass pass, const ipm_layer_pass *p)
{
    if (pass == IPM_FORWARD)
        maxpool_forward(l, p->in, p->rows, p->out, p->ws->argmax[p->index]);
    else if (p->grad_in)
        maxpool_backward(l, p->rows, p->grad_out, p->ws->argmax[p->index], p->grad_in);
}

void ipm_layer_op(const ipm_layer *d, enum ipm_pass pass, const ipm_layer_pass *p)
{
    switch (d->kind) {
    case IPM_LAYER_DENSE:
        dense_op(d, pass, p);
        break;
    case IPM_LAYER_CONV:
        conv_op(d, pass, p);
        break;
    case IPM_LAYER_MAXPOOL:
        maxpool_op(d, pass, p);
        break;
    }
}

/* Bound on the im2col buffer: the run forwards the whole data set at once
 * (10000 28x28 images under a 5x5 kernel would be 576 MB of patches). */
#ifndef IPM_COL_BUDGET_BYTES
#define IPM_COL_BUDGET_BYTES (4 << 20) /* a batch of 72 28x28 images under 5x5 is one chunk */
#endif

size_t ipm_conv_col_floats(const ipm_layer *conv)
{
    return (size_t)conv->out_shape.height * (size_t)conv->out_shape.width *
           (size_t)ipm_weight_rows(conv);
}

int ipm_conv_chunk_samples(const ipm_layer *conv)
{
    size_t per_sample = ipm_conv_col_floats(conv);
    size_t budget = IPM_COL_BUDGET_BYTES / sizeof(float);
    size_t samples = per_sample ? budget / per_sample : 1;
    return samples < 1 ? 1 : samples > INT32_MAX ? INT32_MAX : (int)samples;
}
