/* net: forward against a double-precision
 * re-computation, activations against libm, init draws, and backward
 * against central finite differences for every activation and loss. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ipmpi/base/error.h"
#include "ipmpi/learn/loss.h"
#include "ipmpi/learn/net.h"
#include "check.h"
#include "ref_activation.h"

static float uniform_in(ipm_rng *rng, double lo, double hi)
{
    return (float)(lo + (hi - lo) * ipm_rng_uniform(rng));
}

/* ---- activations ---------------------------------------------------------- */

static void test_activations(void)
{
    enum { N = 37 }; /* two full blocks of 16 and a padded tail */
    float v[N], t[N], s[N], r[N];
    for (int i = 0; i < N; i++)
        v[i] = (float)(i - 18) * 0.37f;
    memcpy(t, v, sizeof v);
    memcpy(s, v, sizeof v);
    memcpy(r, v, sizeof v);
    ipm_activate(IPM_ACT_TANH, t, 1, N);
    ipm_activate(IPM_ACT_SIGMOID, s, N, 1);
    ipm_activate(IPM_ACT_RELU, r, 1, N);
    for (int i = 0; i < N; i++) {
        CHECK_NEAR(t[i], tanh(v[i]), 2e-6);
        CHECK_NEAR(s[i], 1.0 / (1.0 + exp(-v[i])), 2e-6);
        CHECK(r[i] == (v[i] > 0 ? v[i] : 0.0f));
        /* A value's result does not depend on where it sits in the array. */
        float alone = v[i];
        ipm_activate(IPM_ACT_TANH, &alone, 1, 1);
        CHECK(memcmp(&alone, &t[i], sizeof alone) == 0);
    }
    float lin[3] = {-2.0f, 0.5f, 3.0f};
    ipm_activate(IPM_ACT_LINEAR, lin, 1, 3);
    CHECK(lin[0] == -2.0f && lin[1] == 0.5f && lin[2] == 3.0f);

    /* softmax per row, large logits must not overflow */
    float sm[6] = {1.0f, 2.0f, 3.0f, 1000.0f, 1000.0f, 999.0f};
    ipm_activate(IPM_ACT_SOFTMAX, sm, 2, 3);
    double z = exp(1.0) + exp(2.0) + exp(3.0);
    CHECK_NEAR(sm[0], exp(1.0) / z, 1e-6);
    CHECK_NEAR(sm[2], exp(3.0) / z, 1e-6);
    double z2 = 2.0 + exp(-1.0);
    CHECK_NEAR(sm[3], 1.0 / z2, 1e-6);
    CHECK_NEAR(sm[5], exp(-1.0) / z2, 1e-6);
}

/* ---- init ----------------------------------------------------------------- */

/* A 50-200-100 tanh net under a per-layer truncated normal: each layer's
 * weights lie within 2 stddev, reach near it, and have the truncated
 * normal's spread, stddev = 1/sqrt(fan[k]). */
static void check_truncated_per_layer(enum ipm_init init, const double fan[2], uint64_t seed)
{
    ipm_layer_spec two[2] = {{.units = 200, .activation = IPM_ACT_TANH},
                             {.units = 100, .activation = IPM_ACT_TANH}};
    ipm_net net;
    ipm_rng rng;
    char err[IPM_ERRLEN];
    ipm_rng_init(&rng, seed, 1, IPM_RNG_INIT);
    CHECK(ipm_net_init(&net, ipm_shape_flat(50), two, 2, init, 0.0, &rng, err) == 0);
    for (int k = 0; k < 2; k++) {
        int count = k == 0 ? 50 * 200 : 200 * 100;
        double stddev = 1.0 / sqrt(fan[k]), max_abs = 0.0, sum_sq = 0.0;
        for (int i = 0; i < count; i++) {
            max_abs = fmax(max_abs, fabs(net.layer[k].w[i]));
            sum_sq += (double)net.layer[k].w[i] * net.layer[k].w[i];
        }
        CHECK(max_abs <= (float)(2.0 * stddev) && max_abs > 1.9 * stddev);
        CHECK_NEAR(sqrt(sum_sq / count), stddev * sqrt(0.7737), 0.03 * stddev);
    }
    ipm_net_free(&net);
}

static void test_init(void)
{
    char err[IPM_ERRLEN];
    ipm_layer_spec spec[2] = {{.units = 6, .activation = IPM_ACT_TANH},
                              {.units = 2, .activation = IPM_ACT_SOFTMAX}};
    ipm_net net;
    ipm_rng rng, ref;

    ipm_rng_init(&rng, 3, 1, IPM_RNG_INIT);
    CHECK(ipm_net_init(&net, ipm_shape_flat(4), spec, 2, IPM_INIT_XAVIER, 0.0, &rng, err) == 0);
    CHECK(net.n_params == 4 * 6 + 6 + 6 * 2 + 2);
    CHECK(net.layer[1].w == net.params + 30 && net.layer[1].b == net.params + 42);
    ipm_rng_init(&ref, 3, 1, IPM_RNG_INIT);
    double limit0 = sqrt(6.0 / 10.0), limit1 = sqrt(6.0 / 8.0);
    for (int i = 0; i < 24; i++) /* layer 0 W, row-major, first */
        CHECK(net.layer[0].w[i] == (float)((2.0 * ipm_rng_uniform(&ref) - 1.0) * limit0));
    for (int i = 0; i < 12; i++) /* then layer 1 W: biases draw nothing */
        CHECK(net.layer[1].w[i] == (float)((2.0 * ipm_rng_uniform(&ref) - 1.0) * limit1));
    for (int j = 0; j < 6; j++)
        CHECK(net.layer[0].b[j] == 0.0f);
    ipm_net_free(&net);

    ipm_rng_init(&rng, 3, 1, IPM_RNG_INIT);
    CHECK(ipm_net_init(&net, ipm_shape_flat(4), spec, 2, IPM_INIT_HE, 0.0, &rng, err) == 0);
    ipm_rng_init(&ref, 3, 1, IPM_RNG_INIT);
    CHECK(net.layer[0].w[0] == (float)(ipm_rng_normal(&ref) * sqrt(2.0 / 4.0)));
    ipm_net_free(&net);

    /* truncated normal: every weight within 2 stddev, and they are not all tiny */
    ipm_layer_spec wide[1] = {{.units = 200, .activation = IPM_ACT_LINEAR}};
    ipm_rng_init(&rng, 3, 1, IPM_RNG_INIT);
    CHECK(ipm_net_init(&net, ipm_shape_flat(50), wide, 1, IPM_INIT_TRUNCATED_NORMAL, 0.1, &rng,
                       err) == 0);
    double max_abs = 0.0, sum_sq = 0.0;
    for (int i = 0; i < 50 * 200; i++) {
        max_abs = fmax(max_abs, fabs(net.layer[0].w[i]));
        sum_sq += (double)net.layer[0].w[i] * net.layer[0].w[i];
    }
    CHECK(max_abs <= 0.2f);
    CHECK(max_abs > 0.19);
    /* variance of N(0,1) truncated at 2: 0.7737 */
    CHECK_NEAR(sqrt(sum_sq / 10000.0), 0.1 * sqrt(0.7737), 0.003);
    ipm_net_free(&net);

    /* per-layer stddevs: 1/sqrt(fan-in) (50 in, then 200 in), 1/sqrt(fan-out) (200, then 100) */
    const double fan_in[2] = {50.0, 200.0}, fan_out[2] = {200.0, 100.0};
    check_truncated_per_layer(IPM_INIT_TRUNCATED_FAN_IN, fan_in, 4);
    check_truncated_per_layer(IPM_INIT_TRUNCATED_FAN_OUT, fan_out, 5);

    CHECK(ipm_net_init(&net, ipm_shape_flat(0), spec, 2, IPM_INIT_XAVIER, 0.0, &rng, err) == -1);
    CHECK(ipm_net_init(&net, ipm_shape_flat(4), spec, 2, IPM_INIT_TRUNCATED_NORMAL, 0.0, &rng,
                       err) == -1);
}

/* ---- forward against a double re-computation ------------------------------ */

static void test_forward(void)
{
    char err[IPM_ERRLEN];
    ipm_layer_spec spec[3] = {{.units = 5, .activation = IPM_ACT_TANH},
                              {.units = 4, .activation = IPM_ACT_SIGMOID},
                              {.units = 3, .activation = IPM_ACT_SOFTMAX}};
    ipm_net net;
    ipm_workspace ws;
    ipm_rng rng;
    ipm_rng_init(&rng, 11, 0, IPM_RNG_INIT);
    CHECK(ipm_net_init(&net, ipm_shape_flat(3), spec, 3, IPM_INIT_XAVIER, 0.0, &rng, err) == 0);
    for (size_t i = 0; i < net.n_params; i++) /* nonzero biases too */
        net.params[i] += uniform_in(&rng, -0.3, 0.3);
    CHECK(ipm_workspace_init(&ws, &net, 4, err) == 0);
    float x[4 * 3];
    for (int i = 0; i < 12; i++)
        x[i] = uniform_in(&rng, -1, 1);
    ipm_net_forward(&net, x, 4, &ws);
    for (int r = 0; r < 4; r++) {
        double in[8], out[8];
        for (int i = 0; i < 3; i++)
            in[i] = x[r * 3 + i];
        int width = 3;
        for (int l = 0; l < 3; l++) {
            const ipm_layer *d = &net.layer[l];
            for (int j = 0; j < d->out; j++) {
                double z = d->b[j];
                for (int i = 0; i < width; i++)
                    z += in[i] * d->w[i * d->out + j];
                out[j] = z;
            }
            ref_activate(d->activation, out, d->out);
            for (int j = 0; j < d->out; j++) {
                CHECK_NEAR(ws.act[l][r * d->out + j], out[j], 2e-6);
                in[j] = out[j];
            }
            width = d->out;
        }
    }
    ipm_workspace_free(&ws);
    ipm_net_free(&net);
}

/* ---- backward against finite differences ---------------------------------- */

enum { ROWS = 6, IN = 4 };

typedef struct grad_case {
    const char *name;
    ipm_layer_spec spec[3];
    int n_layers;
    enum ipm_loss loss;
    int n_classes;
} grad_case;

static double batch_loss(const grad_case *gc, ipm_net *net, const float *x, const int32_t *y,
                         ipm_workspace *ws)
{
    ipm_net_forward(net, x, ROWS, ws);
    const ipm_layer *last = &net->layer[net->n_layers - 1];
    return ipm_loss_eval(gc->loss, last->activation, ws->act[net->n_layers - 1], y, ROWS, last->out,
                         NULL, NULL, NULL);
}

/* Rows whose first-layer pre-activations all stay clear of 0, so a relu
 * kink cannot fall between the finite-difference points. */
static void draw_inputs(const ipm_net *net, ipm_rng *rng, float *x)
{
    const ipm_layer *d = &net->layer[0];
    for (int r = 0; r < ROWS; r++) {
        double margin;
        do {
            margin = INFINITY;
            for (int i = 0; i < IN; i++)
                x[r * IN + i] = uniform_in(rng, -1, 1);
            for (int j = 0; j < d->out; j++) {
                double z = d->b[j];
                for (int i = 0; i < IN; i++)
                    z += x[r * IN + i] * d->w[i * d->out + j];
                margin = fmin(margin, fabs(z));
            }
        } while (margin < 0.05);
    }
}

static void check_gradient_case(const grad_case *gc)
{
    char err[IPM_ERRLEN];
    ipm_net net;
    ipm_workspace ws;
    ipm_rng rng;
    ipm_rng_init(&rng, 5, 0, IPM_RNG_INIT);
    CHECK(ipm_net_init(&net, ipm_shape_flat(IN), gc->spec, gc->n_layers, IPM_INIT_XAVIER, 0.0, &rng,
                       err) == 0);
    for (size_t i = 0; i < net.n_params; i++) /* nonzero biases exercise db */
        net.params[i] += uniform_in(&rng, -0.2, 0.2);
    CHECK(ipm_workspace_init(&ws, &net, ROWS, err) == 0);
    float x[ROWS * IN];
    int32_t y[ROWS];
    draw_inputs(&net, &rng, x);
    for (int r = 0; r < ROWS; r++)
        y[r] = r % gc->n_classes;

    const ipm_layer *last = &net.layer[net.n_layers - 1];
    float grad[ROWS * 8];
    int preactivation = -1;
    ipm_net_forward(&net, x, ROWS, &ws);
    ipm_loss_eval(gc->loss, last->activation, ws.act[net.n_layers - 1], y, ROWS, last->out, NULL,
                  grad, &preactivation);
    CHECK(preactivation == (gc->loss == IPM_LOSS_CROSS_ENTROPY));
    ipm_net_backward(&net, x, ROWS, &ws, grad, preactivation);

    const double eps = 3e-3;
    double worst = 0.0;
    for (size_t i = 0; i < net.n_params; i++) {
        float saved = net.params[i];
        float up = (float)(saved + eps), down = (float)(saved - eps);
        net.params[i] = up;
        double loss_up = batch_loss(gc, &net, x, y, &ws);
        net.params[i] = down;
        double loss_down = batch_loss(gc, &net, x, y, &ws);
        net.params[i] = saved;
        double numeric = (loss_up - loss_down) / ((double)up - (double)down);
        double analytic = net.grads[i];
        double rel = fabs(numeric - analytic) / fmax(fmax(fabs(numeric), fabs(analytic)), 1e-2);
        worst = fmax(worst, rel);
    }
    if (!(worst < 1e-2))
        fprintf(stderr, "gradient case %s: max relative error %g\n", gc->name, worst);
    CHECK(worst < 1e-2);
    /* the check must be able to fail: a wrong gradient is caught */
    net.grads[0] += 0.05f;
    float saved = net.params[0];
    net.params[0] = (float)(saved + eps);
    double loss_up = batch_loss(gc, &net, x, y, &ws);
    net.params[0] = (float)(saved - eps);
    double loss_down = batch_loss(gc, &net, x, y, &ws);
    net.params[0] = saved;
    CHECK(fabs((loss_up - loss_down) / (2 * eps) - net.grads[0]) > 0.04);
    ipm_workspace_free(&ws);
    ipm_net_free(&net);
}

static void test_gradients(void)
{
    const grad_case cases[] = {
        {"tanh+softmax/cross_entropy",
         {{.units = 5, .activation = IPM_ACT_TANH},
          {.units = 4, .activation = IPM_ACT_TANH},
          {.units = 3, .activation = IPM_ACT_SOFTMAX}},
         3,
         IPM_LOSS_CROSS_ENTROPY,
         3},
        {"sigmoid+sigmoid1/binary_cross_entropy",
         {{.units = 5, .activation = IPM_ACT_SIGMOID}, {.units = 1, .activation = IPM_ACT_SIGMOID}},
         2,
         IPM_LOSS_CROSS_ENTROPY,
         2},
        {"relu+tanh1/mse",
         {{.units = 6, .activation = IPM_ACT_RELU}, {.units = 1, .activation = IPM_ACT_TANH}},
         2,
         IPM_LOSS_MSE,
         2},
        {"linear+tanh+softmax/mse",
         {{.units = 5, .activation = IPM_ACT_LINEAR},
          {.units = 4, .activation = IPM_ACT_TANH},
          {.units = 3, .activation = IPM_ACT_SOFTMAX}},
         3,
         IPM_LOSS_MSE,
         3},
        {"sigmoid+linear2/mse",
         {{.units = 5, .activation = IPM_ACT_SIGMOID}, {.units = 2, .activation = IPM_ACT_LINEAR}},
         2,
         IPM_LOSS_MSE,
         2},
        {"softmax hidden+sigmoid1/mse",
         {{.units = 4, .activation = IPM_ACT_SOFTMAX}, {.units = 1, .activation = IPM_ACT_SIGMOID}},
         2,
         IPM_LOSS_MSE,
         2},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++)
        check_gradient_case(&cases[c]);
}

/* ---- loss values by hand ---------------------------------------------------- */

static void test_loss_values(void)
{
    float soft[4] = {0.25f, 0.75f, 0.9f, 0.1f};
    int32_t y[2] = {1, 1};
    float grad[4];
    int pre = -1;
    long correct = 0;
    double l =
        ipm_loss_eval(IPM_LOSS_CROSS_ENTROPY, IPM_ACT_SOFTMAX, soft, y, 2, 2, &correct, grad, &pre);
    CHECK_NEAR(l, -(log(0.75) + log(0.1)) / 2, 1e-6);
    CHECK(pre == 1 && correct == 1);
    CHECK_NEAR(grad[0], 0.25 / 2, 1e-7);
    CHECK_NEAR(grad[1], (0.75 - 1) / 2, 1e-7);
    CHECK_NEAR(grad[3], (0.1 - 1) / 2, 1e-7);

    float zero[2] = {0.0f, 1.0f}; /* p_y = 0 is clamped at 1e-12 */
    int32_t y0[1] = {0};
    CHECK_NEAR(
        ipm_loss_eval(IPM_LOSS_CROSS_ENTROPY, IPM_ACT_SOFTMAX, zero, y0, 1, 2, NULL, NULL, NULL),
        -log(1e-12), 1e-6);

    float sig[3] = {0.8f, 0.3f, 0.6f};
    int32_t yb[3] = {1, 1, 0};
    correct = 0;
    l = ipm_loss_eval(IPM_LOSS_CROSS_ENTROPY, IPM_ACT_SIGMOID, sig, yb, 3, 1, &correct, grad, &pre);
    CHECK_NEAR(l, -(log(0.8) + log(0.3) + log(0.4)) / 3, 1e-6);
    CHECK(correct == 1); /* 0.8 -> 1 right, 0.3 -> 0 wrong, 0.6 -> 1 wrong */
    CHECK_NEAR(grad[1], (0.3 - 1) / 3, 1e-7);

    float th[2] = {0.5f, 0.2f}; /* tanh: targets +1 / -1 */
    int32_t yt[2] = {1, 0};
    correct = 0;
    l = ipm_loss_eval(IPM_LOSS_MSE, IPM_ACT_TANH, th, yt, 2, 1, &correct, grad, &pre);
    CHECK_NEAR(l, (0.25 + 1.44) / 2, 1e-6);
    CHECK(pre == 0 && correct == 1);
    CHECK_NEAR(grad[1], 2 * 1.2 / 2, 1e-6);

    float sg[2] = {0.5f, 0.2f}; /* sigmoid: targets 1 / 0 */
    l = ipm_loss_eval(IPM_LOSS_MSE, IPM_ACT_SIGMOID, sg, yt, 2, 1, NULL, NULL, NULL);
    CHECK_NEAR(l, (0.25 + 0.04) / 2, 1e-6);

    float oh[4] = {0.25f, 0.75f, 0.5f, 0.5f}; /* several units: one-hot, mean over 4 */
    l = ipm_loss_eval(IPM_LOSS_MSE, IPM_ACT_SOFTMAX, oh, y, 2, 2, NULL, grad, &pre);
    CHECK_NEAR(l, (0.0625 * 2 + 0.25 * 2) / 4, 1e-7);
    CHECK_NEAR(grad[0], 2 * 0.25 / 4, 1e-7);
}

int main(void)
{
    test_activations();
    test_init();
    test_forward();
    test_gradients();
    test_loss_values();
    return check_report("test_gradients");
}
