/* grad_stats: the norms of the mean and std of minibatch gradients on
 * hand-computed gradients (biases ignored, a layer without weights NaN,
 * reset), a drift-phase case where sums of squares would cancel; in
 * training, the statistics of an epoch equal a two-pass computation over
 * the gradients of its batches taken one at a time, and those gradients
 * equal central finite differences of each batch's loss; replicas side by
 * side gather bitwise the statistics of the same replicas alone. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ipmpi/base/error.h"
#include "ipmpi/learn/grad_stats.h"
#include "ipmpi/learn/group.h"
#include "check.h"

static void net_of(ipm_net *net, ipm_shape in, const ipm_layer_spec *spec, int n)
{
    char err[IPM_ERRLEN];
    ipm_rng rng;
    ipm_rng_init(&rng, 5, 0, IPM_RNG_INIT);
    CHECK(ipm_net_init(net, in, spec, n, IPM_INIT_XAVIER, 0.0, &rng, err) == 0);
}

/* Layer 1 (2 -> 3): weight gradients 1 then 3 everywhere: mean 2, std 1 per
 * weight, so ||mean|| = sqrt(6 * 4), ||std|| = sqrt(6). Layer 2 (3 -> 1):
 * {0, 2, -1} then {0, -2, -1}: mean {0, 0, -1}, std {0, 2, 0}: 1 and 2.
 * Biases of 100 and -100 must change nothing. */
static void test_hand_case(void)
{
    char err[IPM_ERRLEN];
    ipm_layer_spec spec[2] = {{.units = 3, .activation = IPM_ACT_TANH},
                              {.units = 1, .activation = IPM_ACT_LINEAR}};
    ipm_net net;
    net_of(&net, ipm_shape_flat(2), spec, 2);
    ipm_grad_stats s;
    CHECK(ipm_grad_stats_init(&s, &net, err) == 0);
    CHECK(s.n == 9 && s.count[0] == 6 && s.count[1] == 3);
    double m, sd;
    ipm_grad_stats_norms(&s, 0, &m, &sd);
    CHECK(isnan(m) && isnan(sd)); /* no batch yet */
    const float second[3] = {0, 2, -1}, third[3] = {0, -2, -1};
    for (int b = 0; b < 2; b++) {
        for (int i = 0; i < 6; i++)
            net.layer[0].dw[i] = b == 0 ? 1.0f : 3.0f;
        for (int j = 0; j < 3; j++)
            net.layer[0].db[j] = b == 0 ? 100.0f : -100.0f;
        for (int i = 0; i < 3; i++)
            net.layer[1].dw[i] = b == 0 ? second[i] : third[i];
        net.layer[1].db[0] = b == 0 ? 100.0f : -100.0f;
        ipm_grad_stats_add(&s, &net);
    }
    ipm_grad_stats_norms(&s, 0, &m, &sd);
    CHECK_NEAR(m, sqrt(24.0), 1e-15);
    CHECK_NEAR(sd, sqrt(6.0), 1e-15);
    ipm_grad_stats_norms(&s, 1, &m, &sd);
    CHECK_NEAR(m, 1.0, 1e-15);
    CHECK_NEAR(sd, 2.0, 1e-15);
    ipm_grad_stats_norms(&s, 2, &m, &sd);
    CHECK(isnan(m) && isnan(sd)); /* no such layer */
    ipm_grad_stats_reset(&s);
    ipm_grad_stats_norms(&s, 1, &m, &sd);
    CHECK(isnan(m) && isnan(sd) && s.batches == 0);
    ipm_grad_stats_add(&s, &net); /* one batch: its own norm, no spread */
    ipm_grad_stats_norms(&s, 1, &m, &sd);
    CHECK_NEAR(m, sqrt(5.0), 1e-15);
    CHECK(sd == 0.0);
    ipm_grad_stats_free(&s);
    ipm_net_free(&net);
}

/* Drift: every weight's gradient alternates a and b near 1000, a spread
 * ~1e-6 of the mean. Its std is exactly |a - b| / 2 over an even number of
 * batches; the sum of squares (1e6 per batch) would leave no digit of it. */
static void test_drift(void)
{
    char err[IPM_ERRLEN];
    ipm_layer_spec spec[1] = {{.units = 4, .activation = IPM_ACT_TANH}};
    ipm_net net;
    net_of(&net, ipm_shape_flat(5), spec, 1);
    ipm_grad_stats s;
    CHECK(ipm_grad_stats_init(&s, &net, err) == 0);
    const float a = 1000.001f, b = 999.999f;
    for (int k = 0; k < 1000; k++) {
        for (int i = 0; i < 20; i++)
            net.layer[0].dw[i] = k % 2 ? b : a;
        ipm_grad_stats_add(&s, &net);
    }
    double m, sd;
    ipm_grad_stats_norms(&s, 0, &m, &sd);
    double mean = ((double)a + (double)b) / 2, std = ((double)a - (double)b) / 2;
    CHECK_NEAR(m, sqrt(20.0) * mean, 1e-9 * m);
    CHECK_NEAR(sd, sqrt(20.0) * std, 1e-6 * sd);
    ipm_grad_stats_free(&s);
    ipm_net_free(&net);
}

/* ---- in training ---------------------------------------------------------- */

enum { N = 12, DIM = 3, BATCH = 4, BATCHES = N / BATCH };

static ipm_train_spec tiny_spec(int batches_per_epoch)
{
    ipm_train_spec t = {0};
    t.layers[0] = (ipm_layer_spec){.units = 4, .activation = IPM_ACT_TANH};
    t.layers[1] = (ipm_layer_spec){.units = 3, .activation = IPM_ACT_SIGMOID};
    t.layers[2] = (ipm_layer_spec){.units = 2, .activation = IPM_ACT_SOFTMAX};
    t.n_layers = 3;
    t.init = IPM_INIT_XAVIER;
    t.optimizer = IPM_OPT_SGD;
    t.learning_rate = 0.5;
    t.loss = IPM_LOSS_CROSS_ENTROPY;
    t.batch_size = BATCH;
    t.batches_per_epoch = batches_per_epoch;
    t.seed = 23;
    return t;
}

typedef struct tiny_data {
    float x[N * DIM];
    int32_t y[N];
    ipm_data_view view;
} tiny_data;

static void tiny_data_make(tiny_data *d)
{
    for (int i = 0; i < N; i++) {
        for (int f = 0; f < DIM; f++)
            d->x[i * DIM + f] = (float)((i * 7 + f * 3) % 5) * 0.4f - 0.8f;
        d->y[i] = (i * 5) % 3 == 0;
    }
    d->view = (ipm_data_view){d->x, d->y, N, DIM, ipm_shape_flat(DIM)};
}

/* The mean loss of net on the samples rows[0..BATCH). */
static double batch_loss(const ipm_net *net, const tiny_data *d, const int32_t *rows,
                         ipm_workspace *ws)
{
    float x[BATCH * DIM];
    int32_t y[BATCH];
    for (int r = 0; r < BATCH; r++) {
        memcpy(x + r * DIM, d->x + rows[r] * DIM, DIM * sizeof(float));
        y[r] = d->y[rows[r]];
    }
    ipm_net_forward(net, x, BATCH, ws);
    const ipm_layer *last = &net->layer[net->n_layers - 1];
    return ipm_loss_eval(IPM_LOSS_CROSS_ENTROPY, last->activation, ws->act[net->n_layers - 1], y,
                         BATCH, last->out, NULL, NULL, NULL);
}

/* Each weight's gradient in grads against central differences of the loss
 * of the batch at params (restored afterwards). */
static void check_finite_differences(ipm_net *net, const float *grads, const tiny_data *d,
                                     const int32_t *rows, ipm_workspace *ws)
{
    const double eps = 3e-3;
    for (int l = 0; l < net->n_layers; l++) {
        const ipm_layer *layer = &net->layer[l];
        for (float *w = layer->w; w < layer->b; w++) {
            float saved = *w;
            *w = (float)(saved + eps);
            double up = batch_loss(net, d, rows, ws);
            *w = (float)(saved - eps);
            double down = batch_loss(net, d, rows, ws);
            *w = saved;
            double fd = (up - down) / (2 * eps), g = grads[w - net->params];
            CHECK_NEAR(g, fd, 2e-3 + 1e-2 * fabs(fd));
        }
    }
}

/* The statistics of one epoch of replica 0, against the BATCHES gradients
 * of the same replica taken one batch per epoch. */
static void test_training_epoch(void)
{
    char err[IPM_ERRLEN];
    tiny_data d;
    tiny_data_make(&d);
    ipm_train_spec whole = tiny_spec(0), single = tiny_spec(1);
    ipm_replica a, b;
    CHECK(ipm_replica_init(&a, &whole, &d.view, 0, err) == 0);
    CHECK(ipm_replica_init(&b, &single, &d.view, 0, err) == 0);
    ipm_replica_train_epoch(&a, &d.view); /* unwatched: no statistics */
    ipm_replica_train_epoch(&b, &d.view);
    ipm_replica_train_epoch(&b, &d.view);
    ipm_replica_train_epoch(&b, &d.view);
    ipm_grad_stats s;
    CHECK(ipm_grad_stats_init(&s, &a.net, err) == 0);
    a.grad_stats = &s;
    ipm_replica_train_epoch(&a, &d.view);
    CHECK(s.batches == BATCHES);

    size_t n = b.net.n_params;
    float *g = malloc(BATCHES * n * sizeof(float)), *before = malloc(n * sizeof(float));
    ipm_workspace ws;
    CHECK(g && before && ipm_workspace_init(&ws, &b.net, BATCH, err) == 0);
    for (int k = 0; k < BATCHES; k++) {
        int32_t rows[BATCH];
        memcpy(before, b.net.params, n * sizeof(float));
        ipm_replica_train_epoch(&b, &d.view);
        memcpy(rows, b.order + b.position - BATCH, sizeof rows);
        memcpy(g + (size_t)k * n, b.net.grads, n * sizeof(float));
        float *after = malloc(n * sizeof(float));
        CHECK(after != NULL);
        memcpy(after, b.net.params, n * sizeof(float));
        memcpy(b.net.params, before, n * sizeof(float));
        check_finite_differences(&b.net, g + (size_t)k * n, &d, rows, &ws);
        memcpy(b.net.params, after, n * sizeof(float));
        free(after);
    }
    CHECK(memcmp(a.net.params, b.net.params, n * sizeof(float)) == 0); /* the same batches */
    for (int l = 0; l < a.net.n_layers; l++) {
        const ipm_layer *layer = &a.net.layer[l];
        double mm = 0, vv = 0;
        for (size_t i = (size_t)(layer->w - a.net.params); i < (size_t)(layer->b - a.net.params);
             i++) {
            double mean = 0, var = 0;
            for (int k = 0; k < BATCHES; k++)
                mean += g[(size_t)k * n + i];
            mean /= BATCHES;
            for (int k = 0; k < BATCHES; k++)
                var += (g[(size_t)k * n + i] - mean) * (g[(size_t)k * n + i] - mean);
            mm += mean * mean;
            vv += var / BATCHES;
        }
        double m, sd;
        ipm_grad_stats_norms(&s, l, &m, &sd);
        CHECK(m > 0 && sd > 0);
        CHECK_NEAR(m, sqrt(mm), 1e-12 * sqrt(mm));
        CHECK_NEAR(sd, sqrt(vv), 1e-12 * sqrt(vv));
    }
    ipm_workspace_free(&ws);
    free(g);
    free(before);
    ipm_grad_stats_free(&s);
    ipm_replica_free(&a);
    ipm_replica_free(&b);
}

/* Four replicas side by side gather bitwise the statistics they gather alone. */
static void test_side_by_side(void)
{
    enum { R = 4 };
    char err[IPM_ERRLEN];
    tiny_data d;
    tiny_data_make(&d);
    ipm_train_spec spec = tiny_spec(0);
    spec.optimizer = IPM_OPT_ADAM;
    spec.learning_rate = 0.05;
    ipm_replica alone[R], side[R];
    ipm_grad_stats s_alone[R], s_side[R];
    ipm_replica *members[R];
    for (int r = 0; r < R; r++) {
        CHECK(ipm_replica_init(&alone[r], &spec, &d.view, r, err) == 0);
        CHECK(ipm_replica_init(&side[r], &spec, &d.view, r, err) == 0);
        CHECK(ipm_grad_stats_init(&s_alone[r], &alone[r].net, err) == 0);
        CHECK(ipm_grad_stats_init(&s_side[r], &side[r].net, err) == 0);
        members[r] = &side[R - 1 - r]; /* lanes in another order than the indices */
    }
    ipm_group g;
    CHECK(ipm_group_init(&g, members, R, err) == 0);
    for (int epoch = 0; epoch < 3; epoch++) {
        for (int r = 0; r < R; r++) {
            alone[r].grad_stats = epoch == 2 ? &s_alone[r] : NULL;
            side[r].grad_stats = epoch == 2 ? &s_side[r] : NULL;
            ipm_replica_train_epoch(&alone[r], &d.view);
        }
        ipm_group_train_epoch(&g, &d.view, NULL);
    }
    for (int r = 0; r < R; r++) {
        size_t bytes = s_alone[r].n * sizeof(double);
        CHECK(s_alone[r].batches == BATCHES && s_side[r].batches == BATCHES);
        CHECK(memcmp(s_alone[r].mean, s_side[r].mean, bytes) == 0);
        CHECK(memcmp(s_alone[r].m2, s_side[r].m2, bytes) == 0);
        double m, sd;
        ipm_grad_stats_norms(&s_side[r], 0, &m, &sd);
        CHECK(isfinite(m) && sd > 0);
    }
    ipm_group_free(&g);
    for (int r = 0; r < R; r++) {
        ipm_grad_stats_free(&s_alone[r]);
        ipm_grad_stats_free(&s_side[r]);
        ipm_replica_free(&alone[r]);
        ipm_replica_free(&side[r]);
    }
}

/* A layer without weights (maxpool) has no statistics: NaN. */
static void test_no_weights(void)
{
    char err[IPM_ERRLEN];
    ipm_layer_spec spec[3] = {{.units = 2,
                               .activation = IPM_ACT_RELU,
                               .kind = IPM_LAYER_CONV,
                               .kernel_h = 3,
                               .kernel_w = 3},
                              {.kind = IPM_LAYER_MAXPOOL, .kernel_h = 2, .kernel_w = 2},
                              {.units = 2, .activation = IPM_ACT_SOFTMAX}};
    ipm_net net;
    net_of(&net, (ipm_shape){4, 4, 1}, spec, 3);
    ipm_grad_stats s;
    CHECK(ipm_grad_stats_init(&s, &net, err) == 0);
    CHECK(s.count[0] == 18 && s.count[1] == 0 && s.count[2] == 4);
    for (size_t i = 0; i < net.n_params; i++)
        net.grads[i] = 0.5f;
    ipm_grad_stats_add(&s, &net);
    double m, sd;
    ipm_grad_stats_norms(&s, 1, &m, &sd);
    CHECK(isnan(m) && isnan(sd));
    ipm_grad_stats_norms(&s, 2, &m, &sd);
    CHECK_NEAR(m, 1.0, 1e-15); /* sqrt(4 x 0.25) */
    CHECK(sd == 0.0);
    ipm_grad_stats_free(&s);
    ipm_net_free(&net);
}

int main(void)
{
    test_hand_case();
    test_drift();
    test_training_epoch();
    test_side_by_side();
    test_no_weights();
    return check_report("grad_stats");
}
