/* net: dense, conv and maxpool layers, float32, forward and backward on a
 * batch. Layout of params (and grads): for each dense or conv layer W
 * (weight_rows x weight_cols, row-major) then b (weight_cols); maxpool has
 * none. Element-wise activations live in activation.c (vectorised). */
#include "ipmpi/learn/net.h"

#include <cblas.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ipmpi/base/error.h"

/* ---- matrix products ---------------------------------------------------- */

/* Below this many multiply-adds (m*n*k) the hand loops are used, above it
 * cblas_sgemm (beta = 0). Measured on this machine (Zen 4, OpenBLAS 0.3.21
 * Haswell kernels, one thread): an sgemm call at tiny shapes costs only
 * 0.1-0.3 us, and its AVX2/FMA kernels reach ~25 GMAC/s at 4096 x 12 x 10,
 * while the hand loops (baseline x86-64 SSE, -O2..-O3) run 3-10 GMAC/s.
 * The hand loops win only below ~1000 MACs (e.g. 101 x 3 x 2: 0.2 us
 * against 0.3 us); from 1000 x 3 x 4 (12k MACs) on, BLAS is 1.5-8x faster.
 * The choice depends on the shape only, so every rank computes the same
 * bits. Overridable at compile time for benchmarking. */
#ifndef IPM_SMALL_GEMM_MACS
#define IPM_SMALL_GEMM_MACS 1024
#endif

/* Widest output row the register-blocked kernel is specialised for. */
#define IPM_FIXED_N_MAX 16

/* C = A B with A m x k, B k x n. The row of C accumulates in a local array
 * that, once n is a compile-time constant (see nn_dispatch), lives in
 * registers across the whole k loop. */
static inline __attribute__((always_inline)) void
nn_kernel(int m, int n, int k, const float *restrict a, const float *restrict b,
          float *restrict c)
{
    for (int i = 0; i < m; i++) {
        float acc[IPM_FIXED_N_MAX] = {0};
        const float *ai = a + (size_t)i * (size_t)k;
        for (int p = 0; p < k; p++) {
            const float *bp = b + (size_t)p * (size_t)n;
            for (int j = 0; j < n; j++)
                acc[j] += ai[p] * bp[j];
        }
        float *ci = c + (size_t)i * (size_t)n;
        for (int j = 0; j < n; j++)
            ci[j] = acc[j];
    }
}

static void nn_generic(int m, int n, int k, const float *restrict a, const float *restrict b,
                       float *restrict c)
{
    for (int i = 0; i < m; i++) {
        float *ci = c + (size_t)i * (size_t)n;
        for (int j = 0; j < n; j++)
            ci[j] = 0.0f;
        for (int p = 0; p < k; p++) {
            float aip = a[(size_t)i * (size_t)k + (size_t)p];
            const float *bp = b + (size_t)p * (size_t)n;
            for (int j = 0; j < n; j++)
                ci[j] += aip * bp[j];
        }
    }
}

#define NN_CASE(N)                                                                       \
    case N:                                                                              \
        nn_kernel(m, N, k, a, b, c);                                                     \
        break;

static void nn_small(int m, int n, int k, const float *a, const float *b, float *c)
{
    switch (n) {
        NN_CASE(1) NN_CASE(2) NN_CASE(3) NN_CASE(4) NN_CASE(5) NN_CASE(6) NN_CASE(7)
        NN_CASE(8) NN_CASE(9) NN_CASE(10) NN_CASE(11) NN_CASE(12) NN_CASE(13) NN_CASE(14)
        NN_CASE(15) NN_CASE(16)
    default:
        nn_generic(m, n, k, a, b, c);
    }
}

/* C = A^T B with A stored k x m: C is tiny (weights-sized) and stays in L1
 * while the k rows stream past once. */
static void tn_small(int m, int n, int k, const float *restrict a, const float *restrict b,
                     float *restrict c)
{
    memset(c, 0, (size_t)m * (size_t)n * sizeof(float));
    for (int p = 0; p < k; p++) {
        const float *ap = a + (size_t)p * (size_t)m;
        const float *bp = b + (size_t)p * (size_t)n;
        for (int i = 0; i < m; i++) {
            float *ci = c + (size_t)i * (size_t)n;
            for (int j = 0; j < n; j++)
                ci[j] += ap[i] * bp[j];
        }
    }
}

/* Any transposition, element by element: the fallback for shapes the fast
 * paths do not cover. */
static void any_small(int trans_a, int trans_b, int m, int n, int k, const float *a,
                      const float *b, float *c)
{
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++) {
            float sum = 0.0f;
            for (int p = 0; p < k; p++) {
                float x = trans_a ? a[(size_t)p * (size_t)m + (size_t)i]
                                  : a[(size_t)i * (size_t)k + (size_t)p];
                float y = trans_b ? b[(size_t)j * (size_t)k + (size_t)p]
                                  : b[(size_t)p * (size_t)n + (size_t)j];
                sum += x * y;
            }
            c[(size_t)i * (size_t)n + (size_t)j] = sum;
        }
}

/* B^T is tiny in every small A B^T of this program (a weight matrix):
 * transposing it on the stack turns the product into the fast NN kernel. */
#define IPM_NT_STACK 4096

static void nt_small(int m, int n, int k, const float *a, const float *b, float *c)
{
    if ((size_t)n * (size_t)k > IPM_NT_STACK) {
        any_small(0, 1, m, n, k, a, b, c);
        return;
    }
    float bt[IPM_NT_STACK];
    for (int j = 0; j < n; j++)
        for (int p = 0; p < k; p++)
            bt[(size_t)p * (size_t)n + (size_t)j] = b[(size_t)j * (size_t)k + (size_t)p];
    nn_small(m, n, k, a, bt, c);
}

void ipm_matmul(int trans_a, int trans_b, int m, int n, int k, const float *a, const float *b,
                float *c)
{
    if (m <= 0 || n <= 0)
        return;
    if (k <= 0) {
        memset(c, 0, (size_t)m * (size_t)n * sizeof(float));
        return;
    }
    if ((double)m * n * k >= IPM_SMALL_GEMM_MACS) {
        cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
                    trans_b ? CblasTrans : CblasNoTrans, m, n, k, 1.0f, a, trans_a ? m : k, b,
                    trans_b ? k : n, 0.0f, c, n);
        return;
    }
    if (!trans_a && !trans_b)
        nn_small(m, n, k, a, b, c);
    else if (trans_a && !trans_b)
        tn_small(m, n, k, a, b, c);
    else if (!trans_a && trans_b)
        nt_small(m, n, k, a, b, c);
    else
        any_small(1, 1, m, n, k, a, b, c);
}

/* ---- shapes ------------------------------------------------------------- */

static int shape_is_image(ipm_shape s)
{
    return s.height > 0;
}

/* Rows of a layer's weight matrix (its fan-in) and columns (units or
 * output channels); 0 x 0 for maxpool. */
static int weight_rows(const ipm_layer *d)
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

static int weight_cols(const ipm_layer *d)
{
    return d->kind == IPM_LAYER_MAXPOOL ? 0 : d->out_shape.channels;
}

static size_t layer_params(const ipm_layer *d)
{
    int cols = weight_cols(d);
    return (size_t)weight_rows(d) * (size_t)cols + (size_t)cols;
}

/* Why an image layer cannot take input `in`, or NULL when it can. */
static const char *image_input_problem(const ipm_layer_spec *s, ipm_shape in, int index,
                                       char *why, size_t size)
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
            return ipm_fail(err, "network input dimension must be positive (got %d)",
                            in.channels);
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
        *d = (ipm_layer){.kind = s->kind, .in = shape_size(in), .out = shape_size(out),
                         .in_shape = in, .out_shape = out, .activation = s->activation};
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
    int rows = weight_rows(d), cols = weight_cols(d);
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
        default:
            w = truncated_normal(rng) * stddev;
            break;
        }
        d->w[i] = (float)w;
    }
    if (cols)
        memset(d->b, 0, (size_t)cols * sizeof(float));
}

static int check_spec(ipm_shape input, int n_layers, enum ipm_init init, double stddev,
                      char *err)
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
        size_t weights = (size_t)weight_rows(d) * (size_t)weight_cols(d);
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

/* Bound on the im2col buffer: the run forwards the whole data set at once
 * (10000 28x28 images under a 5x5 kernel would be 576 MB of patches). */
#ifndef IPM_COL_BUDGET_BYTES
#define IPM_COL_BUDGET_BYTES (4 << 20) /* a batch of 72 28x28 images under 5x5 is one chunk */
#endif

static size_t col_floats_per_sample(const ipm_layer *d)
{
    return (size_t)d->out_shape.height * (size_t)d->out_shape.width * (size_t)weight_rows(d);
}

int ipm_conv_chunk_samples(const ipm_layer *conv)
{
    size_t per_sample = col_floats_per_sample(conv);
    size_t budget = IPM_COL_BUDGET_BYTES / sizeof(float);
    size_t samples = per_sample ? budget / per_sample : 1;
    return samples < 1 ? 1 : samples > INT32_MAX ? INT32_MAX : (int)samples;
}

/* Buffers only convolutions need: one chunk's columns and weight gradient. */
static int conv_buffers(ipm_workspace *ws, const ipm_net *net)
{
    size_t col = 0, dw = 0;
    for (int l = 0; l < net->n_layers; l++) {
        const ipm_layer *d = &net->layer[l];
        if (d->kind != IPM_LAYER_CONV)
            continue;
        int chunk = ipm_conv_chunk_samples(d);
        int samples = chunk < ws->capacity ? chunk : ws->capacity;
        size_t need = (size_t)samples * col_floats_per_sample(d);
        size_t weights = (size_t)weight_rows(d) * (size_t)weight_cols(d);
        col = need > col ? need : col;
        dw = weights > dw ? weights : dw;
    }
    if (col == 0)
        return 0;
    ws->col = malloc(col * sizeof(float));
    ws->dw_chunk = malloc(dw * sizeof(float));
    return ws->col && ws->dw_chunk ? 0 : -1;
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
    if (!ok || conv_buffers(ws, net)) {
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
    free(ws->dw_chunk);
    memset(ws, 0, sizeof *ws);
}

/* ---- forward ------------------------------------------------------------ */

/* Adds b to every row of z. Rows are 2-12 units wide here, too short for a
 * per-row loop to vectorise (it cost ~0.6 ns a value, as much as tanh), so
 * the bias row is repeated into a tile of BIAS_TILE_ROWS rows and added to
 * z in long contiguous runs; every value gets the same single addition. */
#define BIAS_TILE_ROWS 16
#define BIAS_TILE_MAX_UNITS 64

static void add_bias(float *restrict z, const float *restrict b, size_t rows, int units)
{
    if (units > BIAS_TILE_MAX_UNITS) {
        for (size_t r = 0; r < rows; r++) {
            float *row = z + r * (size_t)units;
            for (int j = 0; j < units; j++)
                row[j] += b[j];
        }
        return;
    }
    float tile[BIAS_TILE_ROWS * BIAS_TILE_MAX_UNITS];
    for (int r = 0; r < BIAS_TILE_ROWS; r++)
        memcpy(tile + (size_t)r * (size_t)units, b, (size_t)units * sizeof(float));
    size_t chunk = (size_t)BIAS_TILE_ROWS * (size_t)units;
    size_t n = rows * (size_t)units, i = 0;
    for (; i + chunk <= n; i += chunk)
        for (size_t j = 0; j < chunk; j++)
            z[i + j] += tile[j];
    for (size_t j = 0; i + j < n; j++)
        z[i + j] += tile[j];
}

/* Patches of `samples` images into col: one row per output pixel
 * (sample, oh, ow), its KH*KW*Cin values in (kh, kw, cin) order. For a
 * fixed kernel row the run of KW*Cin values is contiguous in the HWC input.
 * Runs are short (5 floats for a 5x5 kernel on one channel), and a copy of
 * variable length becomes a memcpy call that cost more than the sgemm, so
 * short runs get a copy of constant length, inlined. */
static inline __attribute__((always_inline)) void
im2col_runs(const ipm_layer *d, const float *restrict in, int samples, float *restrict col,
            int run)
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

#define IM2COL_CASE(RUN)                                                                 \
    case RUN:                                                                            \
        im2col_runs(d, in, samples, col, RUN);                                           \
        break;

static void im2col(const ipm_layer *d, const float *in, int samples, float *col)
{
    switch (d->kernel_w * d->in_shape.channels) {
        IM2COL_CASE(1) IM2COL_CASE(2) IM2COL_CASE(3) IM2COL_CASE(4) IM2COL_CASE(5)
        IM2COL_CASE(6) IM2COL_CASE(7) IM2COL_CASE(8)
    default:
        im2col_runs(d, in, samples, col, d->kernel_w * d->in_shape.channels);
    }
}

/* One sgemm per chunk of a fixed sample count. When the batch is one
 * chunk, ws->col_layer records that col holds layer l's columns, so that
 * the backward that follows need not rebuild them. */
static void conv_forward(const ipm_layer *d, int l, const float *in, int rows, float *z,
                         ipm_workspace *ws)
{
    int chunk = ipm_conv_chunk_samples(d);
    int pixels = d->out_shape.height * d->out_shape.width;
    int channels = d->out_shape.channels;
    for (int s0 = 0; s0 < rows; s0 += chunk) {
        int n = rows - s0 < chunk ? rows - s0 : chunk;
        im2col(d, in + (size_t)s0 * (size_t)d->in, n, ws->col);
        ipm_matmul(0, 0, n * pixels, channels, weight_rows(d), ws->col, d->w,
                   z + (size_t)s0 * (size_t)d->out);
    }
    ws->col_layer = rows <= chunk ? l : -1;
    add_bias(z, d->b, (size_t)rows * (size_t)pixels, channels);
}

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

void ipm_net_forward(const ipm_net *net, const float *x, int rows, ipm_workspace *ws)
{
    const float *input = x;
    for (int l = 0; l < net->n_layers; l++) {
        const ipm_layer *d = &net->layer[l];
        float *z = ws->act[l];
        switch (d->kind) {
        case IPM_LAYER_DENSE:
            ipm_matmul(0, 0, rows, d->out, d->in, input, d->w, z);
            add_bias(z, d->b, (size_t)rows, d->out);
            break;
        case IPM_LAYER_CONV:
            conv_forward(d, l, input, rows, z, ws);
            break;
        case IPM_LAYER_MAXPOOL:
            maxpool_forward(d, input, rows, z, ws->argmax[l]);
            break;
        }
        ipm_activate(d->activation, z, rows, d->out);
        input = z;
    }
}

/* ---- backward ----------------------------------------------------------- */

/* g <- dL/dZ from g = dL/dA and the activated outputs a. */
static void activation_backward(enum ipm_activation act, const float *restrict a,
                                float *restrict g, int rows, int units)
{
    size_t n = (size_t)rows * (size_t)units;
    switch (act) {
    case IPM_ACT_LINEAR:
        break;
    case IPM_ACT_TANH:
        for (size_t i = 0; i < n; i++)
            g[i] *= 1.0f - a[i] * a[i];
        break;
    case IPM_ACT_RELU:
        for (size_t i = 0; i < n; i++)
            g[i] = a[i] > 0.0f ? g[i] : 0.0f;
        break;
    case IPM_ACT_SIGMOID:
        for (size_t i = 0; i < n; i++)
            g[i] *= a[i] * (1.0f - a[i]);
        break;
    case IPM_ACT_SOFTMAX: /* Jacobian-vector product: dz_j = a_j (g_j - sum_i a_i g_i) */
        for (int r = 0; r < rows; r++) {
            const float *ar = a + (size_t)r * (size_t)units;
            float *gr = g + (size_t)r * (size_t)units;
            float dot = 0.0f;
            for (int j = 0; j < units; j++)
                dot += ar[j] * gr[j];
            for (int j = 0; j < units; j++)
                gr[j] = ar[j] * (gr[j] - dot);
        }
        break;
    }
}

static void column_sums(const float *restrict m, size_t rows, int cols, float *restrict out)
{
    memset(out, 0, (size_t)cols * sizeof(float));
    for (size_t r = 0; r < rows; r++) {
        const float *row = m + r * (size_t)cols;
        for (int j = 0; j < cols; j++)
            out[j] += row[j];
    }
}

/* Column sums of a tall matrix with few columns (a conv's bias gradient:
 * rows x pixels by channels): whole tiles of TILE_ROWS rows are added as
 * one contiguous vector, then the tile's rows are folded. */
#define SUM_TILE_ROWS 16
#define SUM_TILE_MAX_COLS 64

static void column_sums_tall(const float *restrict m, size_t rows, int cols, float *restrict out)
{
    if (cols > SUM_TILE_MAX_COLS) {
        column_sums(m, rows, cols, out);
        return;
    }
    float tile[SUM_TILE_ROWS * SUM_TILE_MAX_COLS] = {0};
    size_t width = (size_t)SUM_TILE_ROWS * (size_t)cols, n = rows * (size_t)cols, i = 0;
    for (; i + width <= n; i += width)
        for (size_t j = 0; j < width; j++)
            tile[j] += m[i + j];
    for (size_t j = 0; i + j < n; j++)
        tile[j] += m[i + j];
    column_sums(tile, SUM_TILE_ROWS, cols, out);
}

static void dense_backward(ipm_layer *d, const float *input, int rows, const float *g,
                           float *g_prev)
{
    ipm_matmul(1, 0, d->in, d->out, rows, input, g, d->dw);
    column_sums(g, (size_t)rows, d->out, d->db);
    if (g_prev)
        ipm_matmul(0, 1, rows, d->in, d->out, g, d->w, g_prev);
}

/* The transpose of im2col: each patch value's gradient is added back to
 * the input value it was copied from. */
static void col2im(const ipm_layer *d, const float *restrict col, int samples,
                   float *restrict g_in)
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

/* Per chunk of the forward's size: dW += col^T dZ, and when the input's
 * gradient is wanted, dcol = dZ W^T (into col, no longer needed) scattered
 * back by col2im. */
static void conv_backward(ipm_layer *d, int l, const float *input, int rows, const float *g,
                          float *g_prev, ipm_workspace *ws)
{
    int chunk = ipm_conv_chunk_samples(d);
    int pixels = d->out_shape.height * d->out_shape.width;
    int channels = d->out_shape.channels, k = weight_rows(d);
    size_t weights = (size_t)k * (size_t)channels;
    column_sums_tall(g, (size_t)rows * (size_t)pixels, channels, d->db);
    for (int s0 = 0; s0 < rows; s0 += chunk) {
        int n = rows - s0 < chunk ? rows - s0 : chunk;
        const float *g_chunk = g + (size_t)s0 * (size_t)d->out;
        if (ws->col_layer != l)
            im2col(d, input + (size_t)s0 * (size_t)d->in, n, ws->col);
        float *dw = s0 == 0 ? d->dw : ws->dw_chunk;
        ipm_matmul(1, 0, k, channels, n * pixels, ws->col, g_chunk, dw);
        if (s0 > 0)
            for (size_t i = 0; i < weights; i++)
                d->dw[i] += dw[i];
        if (g_prev) {
            ipm_matmul(0, 1, n * pixels, k, channels, g_chunk, d->w, ws->col);
            ws->col_layer = -1;
            col2im(d, ws->col, n, g_prev + (size_t)s0 * (size_t)d->in);
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
        ipm_layer *d = &net->layer[l];
        if (!(grad_is_preactivation && l == net->n_layers - 1))
            activation_backward(d->activation, ws->act[l], g, rows, d->out);
        const float *input = l > 0 ? ws->act[l - 1] : x;
        float *g_prev = l > lowest ? ws->scratch[next_scratch] : NULL;
        next_scratch ^= 1;
        switch (d->kind) {
        case IPM_LAYER_DENSE:
            dense_backward(d, input, rows, g, g_prev);
            break;
        case IPM_LAYER_CONV:
            conv_backward(d, l, input, rows, g, g_prev, ws);
            break;
        case IPM_LAYER_MAXPOOL:
            maxpool_backward(d, rows, g, ws->argmax[l], g_prev);
            break;
        }
        g = g_prev;
    }
}
