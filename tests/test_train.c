/* train: optimizer steps by hand, batch order, learning toy sets with each
 * optimizer, reproducibility per replica index, loss/output checks. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ipmpi/base/error.h"
#include "check.h"
#include "replica_util.h"

/* ---- toy data --------------------------------------------------------------- */

enum toy_kind { TOY_LINEAR, TOY_XOR };

/* n points in [-1,1]^2 kept clear (margin 0.1) of the class boundary:
 * linear: x0 + 0.5 x1 > 0; xor: x0 x1 > 0 (both coordinates clear of 0). */
static void make_toy(ipm_dataset *d, enum toy_kind kind, int n, uint64_t seed)
{
    memset(d, 0, sizeof *d);
    d->n = n;
    d->dim = 2;
    d->n_classes = 2;
    d->x = malloc(sizeof(float) * 2 * (size_t)n);
    d->y = malloc(sizeof(int32_t) * (size_t)n);
    ipm_rng rng;
    ipm_rng_init(&rng, seed, 0, IPM_RNG_DATA);
    for (int i = 0; i < n; i++) {
        float a, b;
        double score;
        do {
            a = (float)(2 * ipm_rng_uniform(&rng) - 1);
            b = (float)(2 * ipm_rng_uniform(&rng) - 1);
            score =
                kind == TOY_LINEAR ? a + 0.5 * b : fmin(fabs(a), fabs(b)) * (a * b > 0 ? 1 : -1);
        } while (fabs(score) < 0.1);
        d->x[2 * i] = a;
        d->x[2 * i + 1] = b;
        d->y[i] = score > 0;
    }
}

static void free_toy(ipm_dataset *d)
{
    free(d->x);
    free(d->y);
}

static void base_config(ipm_config *cfg)
{
    ipm_config_defaults(cfg);
    cfg->seed = 42;
    cfg->batch_size = 20;
    cfg->batches_per_epoch = 0;
    cfg->init = IPM_INIT_XAVIER;
}

/* ---- optimizers by hand --------------------------------------------------- */

/* Adam's step as plain scalar C, the order of operations the optimizer
 * promises: its vectorised build must give these bits. */
static void adam_reference(float *p, float *m, float *v, const float *g, size_t n, long step,
                           double lr)
{
    double c1 = 1.0 - pow(0.9, (double)step), c2 = 1.0 - pow(0.999, (double)step);
    for (size_t i = 0; i < n; i++) {
        double mi = 0.9 * m[i] + (1.0 - 0.9) * g[i];
        double vi = 0.999 * v[i] + (1.0 - 0.999) * (double)g[i] * g[i];
        m[i] = (float)mi;
        v[i] = (float)vi;
        p[i] = (float)(p[i] - lr * (mi / c1) / (sqrt(vi / c2) + 1e-8));
    }
}

/* Every vector body and tail length: 1003 parameters, three steps. */
static void test_adam_bits(void)
{
    enum { N = 1003 };
    char err[IPM_ERRLEN];
    ipm_train_spec cfg = {.optimizer = IPM_OPT_ADAM, .learning_rate = 0.003};
    ipm_optimizer_state opt;
    CHECK(ipm_optimizer_init(&opt, &cfg, N, err) == 0);
    static float p[N], want[N], m[N], v[N], g[N];
    ipm_rng rng;
    ipm_rng_init(&rng, 5, 0, IPM_RNG_DATA);
    for (int i = 0; i < N; i++)
        p[i] = want[i] = (float)ipm_rng_normal(&rng);
    for (long step = 1; step <= 3; step++) {
        for (int i = 0; i < N; i++)
            g[i] = (float)(ipm_rng_normal(&rng) * (i % 7 == 0 ? 1e-6 : 1.0));
        ipm_optimizer_step(&opt, p, g);
        adam_reference(want, m, v, g, N, step, 0.003);
    }
    CHECK(memcmp(p, want, sizeof p) == 0);
    CHECK(memcmp(opt.m, m, sizeof m) == 0 && memcmp(opt.v, v, sizeof v) == 0);
    ipm_optimizer_free(&opt);
}

static void test_optimizers(void)
{
    char err[IPM_ERRLEN];
    ipm_train_spec cfg = {0};
    ipm_optimizer_state opt;
    float p[2], g1[2] = {0.5f, -2.0f}, g2[2] = {-0.25f, 1.0f};

    cfg.optimizer = IPM_OPT_SGD;
    cfg.learning_rate = 0.1;
    CHECK(ipm_optimizer_init(&opt, &cfg, 2, err) == 0);
    p[0] = 1.0f, p[1] = 0.0f;
    ipm_optimizer_step(&opt, p, g1);
    CHECK_NEAR(p[0], 0.95, 1e-7);
    CHECK_NEAR(p[1], 0.2, 1e-7);
    ipm_optimizer_free(&opt);

    cfg.optimizer = IPM_OPT_MOMENTUM;
    cfg.momentum = 0.9;
    CHECK(ipm_optimizer_init(&opt, &cfg, 2, err) == 0);
    p[0] = 1.0f, p[1] = 0.0f;
    ipm_optimizer_step(&opt, p, g1); /* v = g1 */
    ipm_optimizer_step(&opt, p, g2); /* v = 0.9 g1 + g2 */
    CHECK_NEAR(p[0], 1.0 - 0.1 * 0.5 - 0.1 * (0.45 - 0.25), 1e-6);
    CHECK_NEAR(p[1], 0.0 + 0.2 - 0.1 * (-1.8 + 1.0), 1e-6);
    ipm_optimizer_free(&opt);

    cfg.optimizer = IPM_OPT_ADAM;
    cfg.learning_rate = 0.01;
    CHECK(ipm_optimizer_init(&opt, &cfg, 2, err) == 0);
    p[0] = 1.0f, p[1] = 0.0f;
    ipm_optimizer_step(&opt, p, g1); /* first step moves lr * sign(g) */
    CHECK_NEAR(p[0], 1.0 - 0.01, 1e-6);
    CHECK_NEAR(p[1], 0.01, 1e-6);
    ipm_optimizer_step(&opt, p, g2);
    double m = 0.9 * 0.1 * 0.5 + 0.1 * -0.25, v = 0.999 * 0.001 * 0.25 + 0.001 * 0.0625;
    double step = 0.01 * (m / (1 - 0.81)) / (sqrt(v / (1 - 0.998001)) + 1e-8);
    CHECK_NEAR(p[0], 0.99 - step, 1e-6);
    CHECK(opt.step == 2);
    ipm_optimizer_free(&opt);
}

/* ---- batches ---------------------------------------------------------------- */

static int is_permutation(const int32_t *a, int n)
{
    char *seen = calloc((size_t)n, 1);
    int ok = 1;
    for (int i = 0; i < n && ok; i++) {
        ok = a[i] >= 0 && a[i] < n && !seen[a[i]];
        if (ok)
            seen[a[i]] = 1;
    }
    free(seen);
    return ok;
}

static void test_batches(void)
{
    char err[IPM_ERRLEN];
    ipm_dataset d;
    make_toy(&d, TOY_LINEAR, 50, 1);
    ipm_config cfg;
    base_config(&cfg);
    cfg.batch_size = 16;
    ipm_replica rep;
    CHECK(ipm_replica_for_config(&rep, &cfg, &d, 3, err) == 0);
    CHECK(is_permutation(rep.order, d.n));
    int identity = 1;
    for (int i = 0; i < d.n; i++)
        identity = identity && rep.order[i] == i;
    CHECK(!identity);
    /* the order is Philox(seed, index, BATCH)'s shuffle of 0..n-1 */
    int32_t expect[50];
    ipm_rng rng;
    ipm_rng_init(&rng, 42, 3, IPM_RNG_BATCH);
    for (int i = 0; i < 50; i++)
        expect[i] = i;
    ipm_rng_shuffle(&rng, expect, 50);
    CHECK(memcmp(expect, rep.order, sizeof expect) == 0);

    /* a full pass: ceil(50/16) = 4 batches (16, 16, 16, 2) end exactly at n */
    train_on(&rep, &d);
    CHECK(rep.position == 50);
    CHECK(rep.opt.step == 4);
    /* the next epoch reshuffles first: a new permutation from the same stream */
    train_on(&rep, &d);
    CHECK(rep.position == 50);
    ipm_rng_shuffle(&rng, expect, 50);
    CHECK(memcmp(expect, rep.order, sizeof expect) == 0);
    ipm_replica_free(&rep);

    cfg.batches_per_epoch = 1;
    CHECK(ipm_replica_for_config(&rep, &cfg, &d, 3, err) == 0);
    train_on(&rep, &d);
    CHECK(rep.position == 16 && rep.opt.step == 1);
    ipm_replica_free(&rep);

    cfg.batch_size = 500; /* larger than the set: full-batch steps */
    CHECK(ipm_replica_for_config(&rep, &cfg, &d, 3, err) == 0);
    CHECK(rep.batch_size == 50);
    train_on(&rep, &d);
    CHECK(rep.position == 50 && isfinite(rep.last_batch_loss));
    /* one batch is the whole pass: later epochs keep the first order (the
     * gradient sums every sample whatever the order), and draw nothing */
    int32_t first[50];
    memcpy(first, rep.order, sizeof first);
    ipm_rng before = rep.batch_rng;
    train_on(&rep, &d);
    train_on(&rep, &d);
    CHECK(rep.position == 50 && rep.opt.step == 3);
    CHECK(memcmp(first, rep.order, sizeof first) == 0);
    CHECK(memcmp(&before, &rep.batch_rng, sizeof before) == 0);
    ipm_replica_free(&rep);

    cfg.batch_size = 0;
    CHECK(ipm_replica_for_config(&rep, &cfg, &d, 3, err) == -1);
    free_toy(&d);
}

/* ---- learning ----------------------------------------------------------------- */

typedef struct learn_case {
    const char *name;
    enum toy_kind data;
    enum ipm_optimizer optimizer;
    double learning_rate;
    enum ipm_loss loss;
    ipm_layer_spec layers[2];
} learn_case;

/* Accuracy computed here from the activations, independently of the loss code. */
static double own_accuracy(const ipm_workspace *ws, const ipm_net *net, const ipm_dataset *d)
{
    const ipm_layer *last = &net->layer[net->n_layers - 1];
    const float *out = ws->act[net->n_layers - 1];
    int correct = 0;
    for (int i = 0; i < d->n; i++) {
        int predicted;
        if (last->out == 1)
            predicted = out[i] > (last->activation == IPM_ACT_TANH ? 0.0f : 0.5f);
        else
            predicted = out[2 * i + 1] > out[2 * i];
        correct += predicted == d->y[i];
    }
    return (double)correct / d->n;
}

static void check_learns(const learn_case *lc)
{
    char err[IPM_ERRLEN];
    ipm_dataset d;
    make_toy(&d, lc->data, 200, 9);
    ipm_config cfg;
    base_config(&cfg);
    cfg.optimizer = lc->optimizer;
    cfg.learning_rate = lc->learning_rate;
    cfg.loss = lc->loss;
    cfg.n_layers = 2;
    cfg.layers[0] = lc->layers[0];
    cfg.layers[1] = lc->layers[1];
    CHECK(ipm_loss_check(&cfg, d.n_classes, err) == 0);
    ipm_replica rep;
    ipm_workspace ws;
    CHECK(ipm_replica_for_config(&rep, &cfg, &d, 0, err) == 0);
    CHECK(ipm_workspace_init(&ws, &rep.net, d.n, err) == 0);
    double loss0, acc0, loss, acc;
    evaluate_on(&rep, &d, &ws, &loss0, &acc0);
    for (int e = 0; e < 60; e++)
        train_on(&rep, &d);
    evaluate_on(&rep, &d, &ws, &loss, &acc);
    if (!(acc > 0.95))
        fprintf(stderr, "%s: accuracy %g (loss %g -> %g)\n", lc->name, acc, loss0, loss);
    CHECK(acc > 0.95);
    CHECK(loss < 0.5 * loss0);
    CHECK_NEAR(acc, own_accuracy(&ws, &rep.net, &d), 1e-12);
    ipm_workspace_free(&ws);
    ipm_replica_free(&rep);
    free_toy(&d);
}

static void test_learning(void)
{
    const learn_case cases[] = {
        {"sgd softmax/cross_entropy",
         TOY_LINEAR,
         IPM_OPT_SGD,
         0.5,
         IPM_LOSS_CROSS_ENTROPY,
         {{.units = 8, .activation = IPM_ACT_TANH}, {.units = 2, .activation = IPM_ACT_SOFTMAX}}},
        {"momentum tanh1/mse",
         TOY_LINEAR,
         IPM_OPT_MOMENTUM,
         0.02,
         IPM_LOSS_MSE,
         {{.units = 8, .activation = IPM_ACT_TANH}, {.units = 1, .activation = IPM_ACT_TANH}}},
        {"adam linear1/mse",
         TOY_LINEAR,
         IPM_OPT_ADAM,
         0.02,
         IPM_LOSS_MSE,
         {{.units = 8, .activation = IPM_ACT_TANH}, {.units = 1, .activation = IPM_ACT_LINEAR}}},
        {"adam sigmoid1/binary_ce",
         TOY_LINEAR,
         IPM_OPT_ADAM,
         0.02,
         IPM_LOSS_CROSS_ENTROPY,
         {{.units = 8, .activation = IPM_ACT_RELU}, {.units = 1, .activation = IPM_ACT_SIGMOID}}},
        {"adam xor softmax/cross_entropy",
         TOY_XOR,
         IPM_OPT_ADAM,
         0.02,
         IPM_LOSS_CROSS_ENTROPY,
         {{.units = 16, .activation = IPM_ACT_TANH}, {.units = 2, .activation = IPM_ACT_SOFTMAX}}},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++)
        check_learns(&cases[c]);
}

/* ---- reproducibility ------------------------------------------------------------ */

/* Blocks of 7 rows give bitwise the whole set's loss and accuracy: the
 * loss sum continues across blocks, and at these sizes (under 1024
 * multiply-adds per product) the net's matrix products are per-row hand
 * loops, so every block's forward equals the whole set's rows. */
static void check_blocks_sum_as_one(enum ipm_loss loss, ipm_layer_spec out_layer)
{
    char err[IPM_ERRLEN];
    ipm_dataset d;
    make_toy(&d, TOY_LINEAR, 60, 3);
    ipm_config cfg;
    base_config(&cfg);
    cfg.loss = loss;
    cfg.n_layers = 2;
    cfg.layers[0] = (ipm_layer_spec){.units = 8, .activation = IPM_ACT_TANH};
    cfg.layers[1] = out_layer;
    ipm_replica rep;
    ipm_workspace whole, block;
    CHECK(ipm_replica_for_config(&rep, &cfg, &d, 0, err) == 0);
    CHECK(ipm_workspace_init(&whole, &rep.net, d.n, err) == 0);
    CHECK(ipm_workspace_init(&block, &rep.net, 7, err) == 0);
    train_on(&rep, &d); /* away from the symmetric start */
    double loss_whole, acc_whole, loss_blocks, acc_blocks;
    evaluate_on(&rep, &d, &whole, &loss_whole, &acc_whole);
    ipm_eval_totals sum = {0};
    for (int first = 0; first < d.n; first += 7)
        evaluate_block_on(&rep, &d, first, d.n - first < 7 ? d.n - first : 7, &block, &sum);
    ipm_eval_totals_mean(&sum, &loss_blocks, &acc_blocks);
    CHECK(sum.rows == d.n);
    CHECK(sum.terms == (loss == IPM_LOSS_MSE ? (long)d.n * out_layer.units : d.n));
    CHECK(isfinite(loss_whole) && loss_whole > 0);
    CHECK(memcmp(&loss_blocks, &loss_whole, sizeof loss_whole) == 0);
    CHECK(memcmp(&acc_blocks, &acc_whole, sizeof acc_whole) == 0);
    /* A block beyond the set or the workspace poisons the loss. */
    ipm_eval_totals bad = {0};
    evaluate_block_on(&rep, &d, d.n - 3, 7, &block, &bad);
    CHECK(isnan(bad.loss_sum));
    ipm_eval_totals too_big = {0};
    evaluate_block_on(&rep, &d, 0, 8, &block, &too_big);
    CHECK(isnan(too_big.loss_sum));
    /* Too small a workspace for the whole set: NaN, not a partial mean. */
    evaluate_on(&rep, &d, &block, &loss_blocks, &acc_blocks);
    CHECK(isnan(loss_blocks) && isnan(acc_blocks));
    ipm_workspace_free(&whole);
    ipm_workspace_free(&block);
    ipm_replica_free(&rep);
    free_toy(&d);
}

static void test_evaluate_blocks(void)
{
    check_blocks_sum_as_one(IPM_LOSS_CROSS_ENTROPY,
                            (ipm_layer_spec){.units = 2, .activation = IPM_ACT_SOFTMAX});
    check_blocks_sum_as_one(IPM_LOSS_MSE, (ipm_layer_spec){.units = 1, .activation = IPM_ACT_TANH});
    check_blocks_sum_as_one(IPM_LOSS_MSE,
                            (ipm_layer_spec){.units = 2, .activation = IPM_ACT_SIGMOID});
}

static void train_replica(ipm_replica *rep, const ipm_config *cfg, const ipm_dataset *d, int index,
                          int epochs)
{
    char err[IPM_ERRLEN];
    CHECK(ipm_replica_for_config(rep, cfg, d, index, err) == 0);
    for (int e = 0; e < epochs; e++)
        train_on(rep, d);
}

static void test_reproducible(void)
{
    ipm_dataset d;
    make_toy(&d, TOY_XOR, 300, 4);
    ipm_config cfg;
    base_config(&cfg);
    cfg.batch_size = 101; /* the seed experiment's batch; 300 = 2 x 101 + 98 */
    cfg.n_layers = 3;
    cfg.layers[0] = (ipm_layer_spec){.units = 10, .activation = IPM_ACT_TANH};
    cfg.layers[1] = (ipm_layer_spec){.units = 7, .activation = IPM_ACT_TANH};
    cfg.layers[2] = (ipm_layer_spec){.units = 2, .activation = IPM_ACT_SOFTMAX};
    ipm_replica a, b, c;
    train_replica(&a, &cfg, &d, 5, 7);
    train_replica(&b, &cfg, &d, 5, 7);
    train_replica(&c, &cfg, &d, 6, 7);
    size_t bytes = a.net.n_params * sizeof(float);
    CHECK(memcmp(a.net.params, b.net.params, bytes) == 0);
    CHECK(memcmp(a.opt.m, b.opt.m, bytes) == 0);
    CHECK(memcmp(a.opt.v, b.opt.v, bytes) == 0);
    CHECK(memcmp(a.net.params, c.net.params, bytes) != 0);
    CHECK(memcmp(a.order, c.order, sizeof(int32_t) * (size_t)d.n) != 0);
    ipm_replica_free(&a);
    ipm_replica_free(&b);
    ipm_replica_free(&c);
    free_toy(&d);
}

/* ---- loss / output compatibility ---------------------------------------------- */

/* Loss and output layer of a two-layer config named t.ini (keys defaulted). */
static int loss_check(enum ipm_loss loss, ipm_layer_spec last, int n_classes, char *err)
{
    ipm_config cfg;
    base_config(&cfg);
    snprintf(cfg.file, sizeof cfg.file, "t.ini");
    cfg.loss = loss;
    cfg.n_layers = 2;
    cfg.layers[0] = (ipm_layer_spec){.units = 8, .activation = IPM_ACT_TANH};
    cfg.layers[1] = last;
    return ipm_loss_check(&cfg, n_classes, err);
}

static void test_loss_check(void)
{
    char err[IPM_ERRLEN] = "";
    ipm_layer_spec tanh1 = {.units = 1, .activation = IPM_ACT_TANH},
                   sigmoid1 = {.units = 1, .activation = IPM_ACT_SIGMOID};
    ipm_layer_spec softmax1 = {.units = 1, .activation = IPM_ACT_SOFTMAX},
                   softmax2 = {.units = 2, .activation = IPM_ACT_SOFTMAX};
    ipm_layer_spec softmax4 = {.units = 4, .activation = IPM_ACT_SOFTMAX},
                   sigmoid2 = {.units = 2, .activation = IPM_ACT_SIGMOID};
    enum ipm_loss ce = IPM_LOSS_CROSS_ENTROPY, mse = IPM_LOSS_MSE;

    CHECK(loss_check(ce, tanh1, 2, err) == -1);
    CHECK(strstr(err, "t.ini: [training] loss = cross_entropy") != NULL);
    CHECK(strstr(err, "dense:1:tanh") != NULL);
    CHECK(loss_check(ce, softmax1, 2, err) == -1);
    CHECK(loss_check(ce, sigmoid2, 2, err) == -1);
    CHECK(loss_check(ce, sigmoid1, 2, err) == 0);
    CHECK(loss_check(ce, softmax2, 2, err) == 0);
    CHECK(loss_check(ce, softmax4, 3, err) == 0);

    err[0] = '\0';
    CHECK(loss_check(ce, softmax2, 3, err) == -1);
    CHECK(strstr(err, "t.ini: [network] layers") != NULL);
    CHECK(loss_check(mse, tanh1, 3, err) == -1);
    CHECK(strstr(err, "3") != NULL);
    CHECK(loss_check(mse, tanh1, 2, err) == 0);
    CHECK(loss_check(mse, softmax4, 4, err) == 0);
    CHECK(loss_check(mse, sigmoid2, 2, err) == 0);
}

int main(void)
{
    test_optimizers();
    test_adam_bits();
    test_batches();
    test_learning();
    test_reproducible();
    test_loss_check();
    test_evaluate_blocks();
    return check_report("test_train");
}
