/* net: conv and maxpool layers. Shapes and errors at init, forward against
 * values worked out by hand and against an independent double-precision
 * re-computation, backward against finite differences (ties in maxpool
 * against one-sided differences), and chunked convolution on many rows
 * against one row at a time. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ipmpi/base/error.h"
#include "ipmpi/learn/layers.h"
#include "ipmpi/learn/net.h"
#include "check.h"
#include "ref_activation.h"
#include "replica_util.h"

static ipm_layer_spec conv(int channels, int kh, int kw, enum ipm_activation act)
{
    return (ipm_layer_spec){.units = channels,
                            .activation = act,
                            .kind = IPM_LAYER_CONV,
                            .kernel_h = kh,
                            .kernel_w = kw};
}

static ipm_layer_spec pool(int kh, int kw)
{
    return (ipm_layer_spec){
        .activation = IPM_ACT_LINEAR, .kind = IPM_LAYER_MAXPOOL, .kernel_h = kh, .kernel_w = kw};
}

static ipm_layer_spec dense(int units, enum ipm_activation act)
{
    return (ipm_layer_spec){.units = units, .activation = act, .kind = IPM_LAYER_DENSE};
}

static ipm_shape image(int h, int w, int c)
{
    return (ipm_shape){h, w, c};
}

static float uniform_in(ipm_rng *rng, double lo, double hi)
{
    return (float)(lo + (hi - lo) * ipm_rng_uniform(rng));
}

static int init_net(ipm_net *net, ipm_shape in, const ipm_layer_spec *spec, int n, char *err)
{
    ipm_rng rng;
    ipm_rng_init(&rng, 21, 0, IPM_RNG_INIT);
    return ipm_net_init(net, in, spec, n, IPM_INIT_XAVIER, 0.0, &rng, err);
}

/* ---- shapes and errors ---------------------------------------------------- */

static void expect_error(ipm_shape in, const ipm_layer_spec *spec, int n, const char *message)
{
    char err[IPM_ERRLEN] = "";
    ipm_net net;
    CHECK(init_net(&net, in, spec, n, err) == -1);
    if (strcmp(err, message) != 0) {
        fprintf(stderr, "expected: %s\n     got: %s\n", message, err);
        CHECK(0);
    }
    CHECK(net.params == NULL && net.n_layers == 0);
}

static void test_shape_errors(void)
{
    ipm_layer_spec a[2] = {conv(8, 5, 5, IPM_ACT_RELU), dense(10, IPM_ACT_SOFTMAX)};
    expect_error(ipm_shape_flat(784), a, 2,
                 "[network] layers: item 1 'conv:8:5x5:relu': needs image input; the data has "
                 "784 flat features");
    ipm_layer_spec b[2] = {pool(2, 2), dense(3, IPM_ACT_SOFTMAX)};
    expect_error(ipm_shape_flat(12), b, 2,
                 "[network] layers: item 1 'maxpool:2x2': needs image input; the data has 12 "
                 "flat features");
    ipm_layer_spec c[3] = {dense(16, IPM_ACT_TANH), conv(2, 2, 2, IPM_ACT_LINEAR),
                           dense(2, IPM_ACT_SOFTMAX)};
    expect_error(image(4, 4, 1), c, 3,
                 "[network] layers: item 2 'conv:2:2x2:linear': needs image input; it follows a "
                 "dense layer (16 flat outputs)");
    ipm_layer_spec d[3] = {conv(8, 3, 3, IPM_ACT_RELU), conv(4, 5, 3, IPM_ACT_TANH),
                           dense(2, IPM_ACT_SOFTMAX)};
    expect_error(image(6, 9, 1), d, 3,
                 "[network] layers: item 2 'conv:4:5x3:tanh': kernel 5x3 is larger than its "
                 "4x7x8 input");
    ipm_layer_spec e[3] = {conv(1, 4, 4, IPM_ACT_RELU), pool(3, 4), dense(2, IPM_ACT_SOFTMAX)};
    expect_error(image(6, 6, 1), e, 3,
                 "[network] layers: item 2 'maxpool:3x4': window 3x4 is larger than its 3x3x1 "
                 "input");
    ipm_layer_spec f[2] = {conv(3, 7, 2, IPM_ACT_LINEAR), dense(2, IPM_ACT_SOFTMAX)};
    expect_error(image(6, 6, 2), f, 2,
                 "[network] layers: item 1 'conv:3:7x2:linear': kernel 7x2 is larger than its "
                 "6x6x2 input");
    expect_error(image(0, 6, 2), f, 2, "network input shape 0x6x2 is invalid");
}

static void test_shapes(void)
{
    char err[IPM_ERRLEN];
    ipm_net net;
    /* The seed's network on 14x14 images: 11x11x1, pooled 3x3 (floor 11/3). */
    ipm_layer_spec seed[4] = {conv(1, 4, 4, IPM_ACT_RELU), pool(3, 3), dense(10, IPM_ACT_TANH),
                              dense(10, IPM_ACT_SOFTMAX)};
    CHECK(init_net(&net, image(14, 14, 1), seed, 4, err) == 0);
    CHECK(net.in_dim == 196);
    CHECK(net.layer[0].in == 196 && net.layer[0].out == 121);
    CHECK(net.layer[0].out_shape.height == 11 && net.layer[0].out_shape.channels == 1);
    CHECK(net.layer[1].in == 121 && net.layer[1].out == 9);
    CHECK(net.layer[1].out_shape.height == 3 && net.layer[1].out_shape.width == 3);
    CHECK(net.layer[1].w == NULL && net.layer[1].dw == NULL);
    CHECK(net.layer[2].in == 9 && net.layer[2].out == 10 && net.layer[2].in_shape.height == 3);
    CHECK(net.layer[2].out_shape.height == 0 && net.layer[2].out_shape.channels == 10);
    CHECK(net.n_params == (16 + 1) + (9 * 10 + 10) + (10 * 10 + 10));
    CHECK(net.layer[0].b == net.params + 16 && net.layer[2].w == net.params + 17);
    ipm_net_free(&net);

    /* The benchmark network: 28x28x1 -> 24x24x8 -> 12x12x8 -> 64 -> 10. */
    ipm_layer_spec bench[4] = {conv(8, 5, 5, IPM_ACT_RELU), pool(2, 2), dense(64, IPM_ACT_TANH),
                               dense(10, IPM_ACT_SOFTMAX)};
    CHECK(init_net(&net, image(28, 28, 1), bench, 4, err) == 0);
    CHECK(net.layer[0].out == 24 * 24 * 8 && net.layer[1].out == 12 * 12 * 8);
    CHECK(net.layer[2].in == 1152);
    CHECK(net.n_params == (25 * 8 + 8) + (1152 * 64 + 64) + (64 * 10 + 10));
    ipm_net_free(&net);

    /* Non-square kernel, several input channels, conv after maxpool. */
    ipm_layer_spec odd[4] = {conv(5, 2, 3, IPM_ACT_TANH), pool(2, 1), conv(2, 1, 2, IPM_ACT_RELU),
                             dense(3, IPM_ACT_SOFTMAX)};
    CHECK(init_net(&net, image(7, 6, 3), odd, 4, err) == 0);
    CHECK(net.layer[0].out_shape.height == 6 && net.layer[0].out_shape.width == 4);
    CHECK(net.layer[1].out_shape.height == 3 && net.layer[1].out_shape.width == 4 &&
          net.layer[1].out_shape.channels == 5);
    CHECK(net.layer[2].out == 3 * 3 * 2);
    CHECK(net.n_params == (2 * 3 * 3 * 5 + 5) + (1 * 2 * 5 * 2 + 2) + (18 * 3 + 3));
    ipm_net_free(&net);
}

/* Xavier for a conv uses fan_in = KH*KW*Cin and fan_out = KH*KW*Cout;
 * maxpool draws nothing, so the next layer's weights follow at once. */
static void test_init(void)
{
    char err[IPM_ERRLEN];
    ipm_layer_spec spec[3] = {conv(4, 3, 2, IPM_ACT_TANH), pool(2, 2), dense(3, IPM_ACT_SOFTMAX)};
    ipm_net net;
    ipm_rng rng, ref;
    ipm_rng_init(&rng, 9, 2, IPM_RNG_INIT);
    CHECK(ipm_net_init(&net, image(5, 5, 2), spec, 3, IPM_INIT_XAVIER, 0.0, &rng, err) == 0);
    ipm_rng_init(&ref, 9, 2, IPM_RNG_INIT);
    double conv_limit = sqrt(6.0 / (3 * 2 * 2 + 3 * 2 * 4));
    for (int i = 0; i < 3 * 2 * 2 * 4; i++)
        CHECK(net.layer[0].w[i] == (float)((2.0 * ipm_rng_uniform(&ref) - 1.0) * conv_limit));
    CHECK(net.layer[1].out == 1 * 2 * 4); /* 3x4x4 pooled 2x2: floor */
    double dense_limit = sqrt(6.0 / (8 + 3));
    for (int i = 0; i < 8 * 3; i++)
        CHECK(net.layer[2].w[i] == (float)((2.0 * ipm_rng_uniform(&ref) - 1.0) * dense_limit));
    ipm_net_free(&net);

    ipm_rng_init(&rng, 9, 2, IPM_RNG_INIT);
    CHECK(ipm_net_init(&net, image(5, 5, 2), spec, 3, IPM_INIT_HE, 0.0, &rng, err) == 0);
    ipm_rng_init(&ref, 9, 2, IPM_RNG_INIT);
    CHECK(net.layer[0].w[0] == (float)(ipm_rng_normal(&ref) * sqrt(2.0 / 12.0)));
    ipm_net_free(&net);
}

/* ---- forward by hand ------------------------------------------------------ */

static void test_conv_by_hand(void)
{
    char err[IPM_ERRLEN];
    ipm_net net;
    ipm_workspace ws;
    /* 3x3 image 1..9, 2x2 kernel, two output channels:
     * channel 0 = x[i][j] - x[i+1][j+1] + 0.5 = -3.5 everywhere,
     * channel 1 = (window sum) / 2 - 1 = 5, 7, 11, 13. */
    ipm_layer_spec spec[1] = {conv(2, 2, 2, IPM_ACT_LINEAR)};
    CHECK(init_net(&net, image(3, 3, 1), spec, 1, err) == 0);
    const float w[8] = {1, 0.5f, 0, 0.5f, 0, 0.5f, -1, 0.5f}; /* (kh, kw) x Cout */
    memcpy(net.layer[0].w, w, sizeof w);
    net.layer[0].b[0] = 0.5f;
    net.layer[0].b[1] = -1.0f;
    CHECK(ipm_workspace_init(&ws, &net, 2, err) == 0);
    float x[18] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 8, 7, 6, 5, 4, 3, 2, 1};
    ipm_net_forward(&net, x, 2, &ws);
    const float want[16] = {-3.5f, 5,  -3.5f, 7,  -3.5f, 11, -3.5f, 13, /* HWC */
                            4.5f,  13, 4.5f,  11, 4.5f,  7,  4.5f,  5};
    for (int i = 0; i < 16; i++)
        CHECK(ws.act[0][i] == want[i]);
    ipm_workspace_free(&ws);
    ipm_net_free(&net);

    /* Two input channels: weight row (i*KW + j)*Cin + c reads x[i][j][c].
     * 1*x[0][0][0] + 2*x[0][1][1] + 3*x[1][1][0] = 1 + 40 + 12, relu. */
    ipm_layer_spec two[1] = {conv(1, 2, 2, IPM_ACT_RELU)};
    CHECK(init_net(&net, image(2, 2, 2), two, 1, err) == 0);
    const float w2[8] = {1, 0, 0, 2, 0, 0, 3, 0};
    memcpy(net.layer[0].w, w2, sizeof w2);
    net.layer[0].b[0] = -50.0f;
    CHECK(ipm_workspace_init(&ws, &net, 1, err) == 0);
    float x2[8] = {1, 10, 2, 20, 3, 30, 4, 40};
    ipm_net_forward(&net, x2, 1, &ws);
    CHECK(ws.act[0][0] == 3.0f);
    net.layer[0].b[0] = -60.0f;
    ipm_net_forward(&net, x2, 1, &ws);
    CHECK(ws.act[0][0] == 0.0f);
    ipm_workspace_free(&ws);
    ipm_net_free(&net);
}

/* 5x5 -> 2x2 (the last row and column fall outside every window); ties keep
 * the first maximum in row-major window order. */
static void test_maxpool_by_hand(void)
{
    char err[IPM_ERRLEN];
    ipm_net net;
    ipm_workspace ws;
    ipm_layer_spec spec[1] = {pool(2, 2)};
    CHECK(init_net(&net, image(5, 5, 1), spec, 1, err) == 0);
    CHECK(net.n_params == 0 && net.layer[0].out == 4);
    CHECK(ipm_workspace_init(&ws, &net, 1, err) == 0);
    const float x[25] = {1, 3,  7,  7,  99, 3,     2,  7,  7,  99, -5, -4, 0,
                         0, 99, -4, -5, 0,  -0.0f, 99, 99, 99, 99, 99, 99};
    ipm_net_forward(&net, x, 1, &ws);
    const float want[4] = {3, 7, -4, 0};
    const int32_t arg[4] = {1, 2, 11, 12};
    for (int i = 0; i < 4; i++) {
        CHECK(ws.act[0][i] == want[i]);
        CHECK(ws.argmax[0][i] == arg[i]);
    }
    ipm_workspace_free(&ws);
    ipm_net_free(&net);

    /* Channels pool separately (HWC): 2x2x2 -> 1x1x2. */
    CHECK(init_net(&net, image(2, 2, 2), spec, 1, err) == 0);
    CHECK(ipm_workspace_init(&ws, &net, 1, err) == 0);
    const float xc[8] = {1, 8, 4, 5, 2, 6, 3, 7};
    ipm_net_forward(&net, xc, 1, &ws);
    CHECK(ws.act[0][0] == 4 && ws.act[0][1] == 8);
    CHECK(ws.argmax[0][0] == 2 && ws.argmax[0][1] == 1);
    ipm_workspace_free(&ws);
    ipm_net_free(&net);
}

/* ---- an independent double-precision forward ------------------------------ */

enum { MAX_VALUES = 4096 };

/* Pre-activations of a conv on one HWC sample, by the definition. */
static void ref_conv(const ipm_layer *d, const double *in, double *z)
{
    ipm_shape is = d->in_shape, os = d->out_shape;
    for (int oh = 0; oh < os.height; oh++)
        for (int ow = 0; ow < os.width; ow++)
            for (int co = 0; co < os.channels; co++) {
                double s = d->b[co];
                for (int i = 0; i < d->kernel_h; i++)
                    for (int j = 0; j < d->kernel_w; j++)
                        for (int c = 0; c < is.channels; c++)
                            s += in[((oh + i) * is.width + ow + j) * is.channels + c] *
                                 d->w[((i * d->kernel_w + j) * is.channels + c) * os.channels + co];
                z[(oh * os.width + ow) * os.channels + co] = s;
            }
}

/* Max of each window; *gap lowers to the smallest distance between a
 * window's maximum and its runner-up. */
static void ref_pool(const ipm_layer *d, const double *in, double *out, double *gap)
{
    ipm_shape is = d->in_shape, os = d->out_shape;
    for (int oh = 0; oh < os.height; oh++)
        for (int ow = 0; ow < os.width; ow++)
            for (int c = 0; c < os.channels; c++) {
                double best = -INFINITY, second = -INFINITY;
                for (int i = 0; i < d->kernel_h; i++)
                    for (int j = 0; j < d->kernel_w; j++) {
                        double v = in[((oh * d->kernel_h + i) * is.width + ow * d->kernel_w + j) *
                                          is.channels +
                                      c];
                        if (v > best) {
                            second = best;
                            best = v;
                        } else if (v > second) {
                            second = v;
                        }
                    }
                out[(oh * os.width + ow) * os.channels + c] = best;
                *gap = fmin(*gap, best - second);
            }
}

static void ref_dense(const ipm_layer *d, const double *in, double *z)
{
    for (int j = 0; j < d->out; j++) {
        double s = d->b[j];
        for (int i = 0; i < d->in; i++)
            s += in[i] * d->w[i * d->out + j];
        z[j] = s;
    }
}

/* One sample through the net; out[l] gets layer l's activations. *margin
 * gets the smallest |pre-activation| of a relu layer and the smallest gap
 * in a pooling window: how far the sample is from a kink. */
static void ref_forward(const ipm_net *net, const float *x, double out[][MAX_VALUES],
                        double *margin)
{
    double in[MAX_VALUES];
    for (int i = 0; i < net->in_dim; i++)
        in[i] = x[i];
    *margin = INFINITY;
    for (int l = 0; l < net->n_layers; l++) {
        const ipm_layer *d = &net->layer[l];
        double *z = out[l];
        if (d->kind == IPM_LAYER_MAXPOOL)
            ref_pool(d, in, z, margin);
        else if (d->kind == IPM_LAYER_CONV)
            ref_conv(d, in, z);
        else
            ref_dense(d, in, z);
        for (int j = 0; d->activation == IPM_ACT_RELU && j < d->out; j++)
            *margin = fmin(*margin, fabs(z[j]));
        ref_activate(d->activation, z, d->out);
        for (int j = 0; j < d->out; j++)
            in[j] = z[j];
    }
}

/* ---- gradients against finite differences --------------------------------- */

enum { MAX_ROWS = 5 };

typedef struct grad_case {
    const char *name;
    ipm_shape input;
    ipm_layer_spec spec[5];
    int n_layers;
} grad_case;

typedef struct grad_setup {
    ipm_net net;
    ipm_workspace ws;
    float x[MAX_ROWS * MAX_VALUES];
    float weight[MAX_ROWS * MAX_VALUES]; /* loss = sum weight . output, without softmax */
    int32_t y[MAX_ROWS];
} grad_setup;

static int last_is_softmax(const ipm_net *net)
{
    return net->layer[net->n_layers - 1].activation == IPM_ACT_SOFTMAX;
}

/* Cross-entropy after a softmax, else a fixed random linear function of the
 * outputs, so that every output's gradient is exercised. */
static double batch_loss(grad_setup *s)
{
    ipm_net *net = &s->net;
    const ipm_layer *last = &net->layer[net->n_layers - 1];
    ipm_net_forward(net, s->x, MAX_ROWS, &s->ws);
    const float *out = s->ws.act[net->n_layers - 1];
    if (last_is_softmax(net))
        return ipm_loss_eval(IPM_LOSS_CROSS_ENTROPY, IPM_ACT_SOFTMAX, out, s->y, MAX_ROWS,
                             last->out, NULL, NULL, NULL);
    double sum = 0.0;
    for (int i = 0; i < MAX_ROWS * last->out; i++)
        sum += (double)s->weight[i] * out[i];
    return sum;
}

static void backward(grad_setup *s)
{
    ipm_net *net = &s->net;
    const ipm_layer *last = &net->layer[net->n_layers - 1];
    float grad[MAX_ROWS * MAX_VALUES];
    int preactivation = 0;
    ipm_net_forward(net, s->x, MAX_ROWS, &s->ws);
    if (last_is_softmax(net))
        ipm_loss_eval(IPM_LOSS_CROSS_ENTROPY, IPM_ACT_SOFTMAX, s->ws.act[net->n_layers - 1], s->y,
                      MAX_ROWS, last->out, NULL, grad, &preactivation);
    else
        memcpy(grad, s->weight, (size_t)MAX_ROWS * (size_t)last->out * sizeof(float));
    ipm_net_backward(net, s->x, MAX_ROWS, &s->ws, grad, preactivation);
}

/* Samples at least MARGIN from every relu kink and pooling tie: a weight
 * step of eps moves no value by more than a few eps. */
#define MARGIN 0.03

static void draw_samples(grad_setup *s, ipm_rng *rng)
{
    double(*acts)[MAX_VALUES] = malloc(sizeof(double[IPM_MAX_LAYERS][MAX_VALUES]));
    int dim = s->net.in_dim;
    for (int r = 0; r < MAX_ROWS; r++) {
        double margin = 0.0;
        while (margin < MARGIN) {
            for (int i = 0; i < dim; i++)
                s->x[r * dim + i] = uniform_in(rng, -1, 1);
            ref_forward(&s->net, s->x + r * dim, acts, &margin);
        }
    }
    free(acts);
}

/* Largest relative difference between net->grads and central differences. */
static double worst_gradient_error(grad_setup *s)
{
    const double eps = 3e-3;
    double worst = 0.0;
    for (size_t i = 0; i < s->net.n_params; i++) {
        float saved = s->net.params[i];
        float up = (float)(saved + eps), down = (float)(saved - eps);
        s->net.params[i] = up;
        double loss_up = batch_loss(s);
        s->net.params[i] = down;
        double loss_down = batch_loss(s);
        s->net.params[i] = saved;
        double numeric = (loss_up - loss_down) / ((double)up - (double)down);
        double analytic = s->net.grads[i];
        double rel = fabs(numeric - analytic) / fmax(fmax(fabs(numeric), fabs(analytic)), 1e-2);
        worst = fmax(worst, rel);
    }
    return worst;
}

static grad_setup *setup_case(const grad_case *gc)
{
    char err[IPM_ERRLEN];
    grad_setup *s = calloc(1, sizeof *s);
    ipm_rng rng;
    ipm_rng_init(&rng, 5, 0, IPM_RNG_INIT);
    CHECK(ipm_net_init(&s->net, gc->input, gc->spec, gc->n_layers, IPM_INIT_XAVIER, 0.0, &rng,
                       err) == 0);
    for (size_t i = 0; i < s->net.n_params; i++) /* nonzero biases exercise db */
        s->net.params[i] += uniform_in(&rng, -0.2, 0.2);
    CHECK(ipm_workspace_init(&s->ws, &s->net, MAX_ROWS, err) == 0);
    draw_samples(s, &rng);
    int out = s->net.layer[s->net.n_layers - 1].out;
    for (int i = 0; i < MAX_ROWS * out; i++)
        s->weight[i] = uniform_in(&rng, -1, 1);
    for (int r = 0; r < MAX_ROWS; r++)
        s->y[r] = r % out;
    return s;
}

static void free_setup(grad_setup *s)
{
    ipm_workspace_free(&s->ws);
    ipm_net_free(&s->net);
    free(s);
}

/* The forward against ref_forward, then the gradient. */
static void check_gradient_case(const grad_case *gc)
{
    grad_setup *s = setup_case(gc);
    double(*acts)[MAX_VALUES] = malloc(sizeof(double[IPM_MAX_LAYERS][MAX_VALUES]));
    ipm_net_forward(&s->net, s->x, MAX_ROWS, &s->ws);
    double forward_worst = 0.0, margin;
    for (int r = 0; r < MAX_ROWS; r++) {
        ref_forward(&s->net, s->x + r * s->net.in_dim, acts, &margin);
        for (int l = 0; l < s->net.n_layers; l++)
            for (int j = 0; j < s->net.layer[l].out; j++)
                forward_worst = fmax(forward_worst,
                                     fabs(s->ws.act[l][r * s->net.layer[l].out + j] - acts[l][j]));
    }
    free(acts);
    CHECK(forward_worst < 1e-5);
    backward(s);
    double worst = worst_gradient_error(s);
    if (!(worst < 1e-2))
        fprintf(stderr, "gradient case %s: max relative error %g\n", gc->name, worst);
    CHECK(worst < 1e-2);
    /* The comparison can fail: a conv weight's gradient taken from its
     * neighbour is caught. */
    float kept = s->net.grads[0];
    s->net.grads[0] = s->net.grads[1];
    CHECK(worst_gradient_error(s) > 0.05);
    s->net.grads[0] = kept;
    free_setup(s);
}

static void test_gradients(void)
{
    const grad_case cases[] = {
        {"conv 5x4x2 -> 3 ch 3x2 tanh", {5, 4, 2}, {conv(3, 3, 2, IPM_ACT_TANH)}, 1},
        {"conv 4x6x1 -> 1 ch 1x3 sigmoid", {4, 6, 1}, {conv(1, 1, 3, IPM_ACT_SIGMOID)}, 1},
        {"conv -> conv (col2im)",
         {6, 7, 1},
         {conv(2, 2, 3, IPM_ACT_TANH), conv(3, 3, 2, IPM_ACT_LINEAR)},
         2},
        {"conv 3ch -> conv relu",
         {5, 5, 3},
         {conv(2, 2, 2, IPM_ACT_TANH), conv(2, 2, 1, IPM_ACT_RELU)},
         2},
        {"conv -> maxpool (last)", {6, 5, 1}, {conv(2, 3, 2, IPM_ACT_TANH), pool(2, 2)}, 2},
        {"conv relu -> maxpool 3x3 floor -> dense -> softmax",
         {9, 8, 1},
         {conv(2, 3, 2, IPM_ACT_RELU), pool(3, 3), dense(4, IPM_ACT_TANH),
          dense(3, IPM_ACT_SOFTMAX)},
         4},
        {"conv -> maxpool 2x1 -> conv -> dense softmax",
         {7, 6, 2},
         {conv(3, 2, 2, IPM_ACT_TANH), pool(2, 1), conv(2, 2, 3, IPM_ACT_TANH),
          dense(3, IPM_ACT_SOFTMAX)},
         4},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++)
        check_gradient_case(&cases[c]);
}

/* Exact ties in a pooling window: the whole gradient goes to the first
 * maximal element. A 1x1 conv with weights (1, 1) over two channels makes
 * position 0 (values 1, 2) and position 1 (values 2, 1) tie at 3; under the
 * first-maximum rule dW = (1, 2) (position 1 would give (2, 1), a split
 * (1.5, 1.5)). max is not differentiable there; each gradient component
 * must equal the one-sided difference in the direction that keeps position
 * 0 the maximum (w0 down, w1 up). */
static void test_maxpool_ties(void)
{
    char err[IPM_ERRLEN];
    ipm_net net;
    ipm_workspace ws;
    ipm_layer_spec spec[2] = {conv(1, 1, 1, IPM_ACT_LINEAR), pool(1, 2)};
    CHECK(init_net(&net, image(1, 2, 2), spec, 2, err) == 0);
    net.layer[0].w[0] = 1.0f;
    net.layer[0].w[1] = 1.0f;
    net.layer[0].b[0] = 0.25f;
    CHECK(ipm_workspace_init(&ws, &net, 1, err) == 0);
    const float x[4] = {1, 2, 2, 1};
    ipm_net_forward(&net, x, 1, &ws);
    CHECK(ws.act[0][0] == ws.act[0][1] && ws.act[1][0] == 3.25f && ws.argmax[1][0] == 0);
    float grad[1] = {1.0f};
    ipm_net_backward(&net, x, 1, &ws, grad, 0);
    CHECK(net.grads[0] == 1.0f && net.grads[1] == 2.0f && net.grads[2] == 1.0f);

    const float eps = 1.0f / 64; /* exact in float: the differences below are exact */
    double base = ws.act[1][0];
    net.layer[0].w[0] = 1.0f - eps;
    ipm_net_forward(&net, x, 1, &ws);
    CHECK((base - ws.act[1][0]) / eps == net.grads[0]);
    net.layer[0].w[0] = 1.0f + eps; /* the other side: position 1 takes over */
    ipm_net_forward(&net, x, 1, &ws);
    CHECK((ws.act[1][0] - base) / eps == 2.0);
    net.layer[0].w[0] = 1.0f;
    net.layer[0].w[1] = 1.0f + eps;
    ipm_net_forward(&net, x, 1, &ws);
    CHECK((ws.act[1][0] - base) / eps == net.grads[1]);
    ipm_workspace_free(&ws);
    ipm_net_free(&net);
}

/* ---- chunked convolution -------------------------------------------------- */

/* Many rows go through the conv in several chunks of a fixed sample count;
 * one row at a time goes through it in one short chunk. Not bitwise: the two
 * are sgemm calls of different heights (and a single row may fall below the
 * hand-loop threshold), whose kernels may order a dot product's sums
 * differently; each value is the same 75-term sum, so they agree to float
 * rounding (1e-6 at these magnitudes). The backward over all rows (chunked,
 * weight gradients summed over chunks) must equal the sum of one-row
 * backwards to float rounding too. */
static void test_chunked(void)
{
    char err[IPM_ERRLEN];
    ipm_net net;
    ipm_workspace all, one;
    /* 16x16x2 -> 14x14x3 -> 10x10x2 (its input gradient goes through col2im
     * chunk by chunk) -> 5x5x2 -> 3 */
    ipm_layer_spec spec[4] = {conv(3, 3, 3, IPM_ACT_TANH), conv(2, 5, 5, IPM_ACT_TANH), pool(2, 2),
                              dense(3, IPM_ACT_LINEAR)};
    CHECK(init_net(&net, image(16, 16, 2), spec, 4, err) == 0);
    int chunk = ipm_conv_chunk_samples(&net.layer[0]);
    int rows = 2 * chunk + chunk / 2 + 1; /* three chunks, the last one short */
    CHECK(chunk > 1 && chunk < 1000);
    CHECK(ipm_conv_chunk_samples(&net.layer[1]) < chunk); /* the second conv: more chunks */
    CHECK(ipm_workspace_init(&all, &net, rows, err) == 0);
    CHECK(ipm_workspace_init(&one, &net, 1, err) == 0);
    ipm_rng rng;
    ipm_rng_init(&rng, 77, 0, 1);
    float *x = malloc(sizeof(float) * (size_t)rows * (size_t)net.in_dim);
    float *g = malloc(sizeof(float) * (size_t)rows * 3);
    double *sum = calloc(net.n_params, sizeof(double));
    for (size_t i = 0; i < (size_t)rows * (size_t)net.in_dim; i++)
        x[i] = uniform_in(&rng, -1, 1);
    for (int i = 0; i < rows * 3; i++)
        g[i] = uniform_in(&rng, -1, 1);

    ipm_net_forward(&net, x, rows, &all);
    double worst = 0.0;
    for (int r = 0; r < rows; r++) {
        ipm_net_forward(&net, x + (size_t)r * (size_t)net.in_dim, 1, &one);
        for (int l = 0; l < net.n_layers; l++) {
            int out = net.layer[l].out;
            for (int j = 0; j < out; j++)
                worst = fmax(worst, fabs(all.act[l][(size_t)r * out + j] - one.act[l][j]));
        }
        float gr[3];
        memcpy(gr, g + r * 3, sizeof gr);
        ipm_net_backward(&net, x + (size_t)r * (size_t)net.in_dim, 1, &one, gr, 0);
        for (size_t i = 0; i < net.n_params; i++)
            sum[i] += net.grads[i];
    }
    CHECK(worst <= 1e-6);
    ipm_net_forward(&net, x, rows, &all);
    ipm_net_backward(&net, x, rows, &all, g, 0);
    double grad_worst = 0.0;
    for (size_t i = 0; i < net.n_params; i++)
        grad_worst = fmax(grad_worst, fabs(net.grads[i] - sum[i]) / fmax(fabs(sum[i]), 1.0));
    CHECK(grad_worst < 1e-4);
    free(x);
    free(g);
    free(sum);
    ipm_workspace_free(&all);
    ipm_workspace_free(&one);
    ipm_net_free(&net);
}

/* ---- replicas of image networks ------------------------------------------ */

enum { IMAGES = 12 };

static void image_data(ipm_dataset *d)
{
    *d = (ipm_dataset){
        .n = IMAGES, .dim = 16, .height = 4, .width = 4, .channels = 1, .n_classes = 2};
    d->x = malloc(sizeof(float) * 16 * IMAGES);
    d->y = malloc(sizeof(int32_t) * IMAGES);
    ipm_rng rng;
    ipm_rng_init(&rng, 3, 0, IPM_RNG_DATA);
    for (int i = 0; i < 16 * IMAGES; i++)
        d->x[i] = uniform_in(&rng, 0, 1);
    for (int i = 0; i < IMAGES; i++)
        d->y[i] = d->x[16 * i] > d->x[16 * i + 15];
}

static void image_config(ipm_config *cfg, int kh, int kw)
{
    ipm_config_defaults(cfg);
    cfg->seed = 4;
    cfg->n_layers = 3;
    cfg->layers[0] = conv(2, kh, kw, IPM_ACT_RELU);
    cfg->layers[1] = pool(2, 2);
    cfg->layers[2] = dense(2, IPM_ACT_SOFTMAX);
    cfg->batch_size = 5;
    cfg->learning_rate = 0.05;
}

static unsigned char *pack(const ipm_replica *rep, size_t *size)
{
    char err[IPM_ERRLEN];
    *size = ipm_replica_state_size(rep);
    unsigned char *b = malloc(*size);
    CHECK(ipm_replica_pack(rep, b, *size, err) == 0);
    return b;
}

/* The replica builds its net from the data's image shape; a saved state
 * restores exactly, and one of a net that differs only in its kernel
 * (conv 3x1 and 1x3 on 4x4 images: same sizes, same parameter count) is
 * refused. */
static void test_replica_state(void)
{
    char err[IPM_ERRLEN];
    ipm_dataset data;
    image_data(&data);
    ipm_config tall, wide;
    image_config(&tall, 3, 1);
    image_config(&wide, 1, 3);
    ipm_replica a, b, c;
    CHECK(ipm_replica_for_config(&a, &tall, &data, 0, err) == 0);
    CHECK(ipm_replica_for_config(&b, &tall, &data, 0, err) == 0);
    CHECK(ipm_replica_for_config(&c, &wide, &data, 0, err) == 0);
    CHECK(a.net.input.height == 4 && a.net.layer[0].out_shape.height == 2);
    CHECK(a.net.n_params == c.net.n_params && a.net.layer[0].out == c.net.layer[0].out);
    train_on(&a, &data);
    size_t size;
    unsigned char *blob = pack(&a, &size);
    CHECK(ipm_replica_unpack(&b, blob, size, err) == 0);
    train_on(&a, &data);
    train_on(&b, &data);
    CHECK(memcmp(a.net.params, b.net.params, a.net.n_params * sizeof(float)) == 0);
    CHECK(ipm_replica_state_size(&c) == size);
    CHECK(ipm_replica_unpack(&c, blob, size, err) == -1);
    CHECK(strstr(err, "layer 1 differs") != NULL);

    ipm_replica_free(&c);
    data.channels = 2; /* a shape that does not hold the data */
    CHECK(ipm_replica_for_config(&c, &tall, &data, 1, err) == -1);
    CHECK(strcmp(err, "replica 1: images of 4x4x2 do not hold 16 values") == 0);
    free(blob);
    ipm_replica_free(&a);
    ipm_replica_free(&b);
    ipm_replica_free(&c);
    ipm_config_free(&tall);
    ipm_config_free(&wide);
    free(data.x);
    free(data.y);
}

int main(void)
{
    test_shape_errors();
    test_shapes();
    test_init();
    test_conv_by_hand();
    test_maxpool_by_hand();
    test_gradients();
    test_maxpool_ties();
    test_chunked();
    test_replica_state();
    return check_report("test_conv");
}
