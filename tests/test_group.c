/* group: replicas trained side by side give bitwise the parameters,
 * optimizer moments, batch positions and last losses of the same replicas
 * trained alone, whichever replicas share the group and in whatever
 * order; a stopped member does not move; evaluation side by side gives
 * bitwise every layer's activations and the loss totals of evaluation
 * alone. Over losses, output activations, optimizers and batch shapes. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ipmpi/base/error.h"
#include "ipmpi/learn/group.h"
#include "check.h"

enum { N = 203, DIM = 12, REPLICAS = 11 };

typedef struct data {
    float x[N * DIM];
    int32_t y[N];
    ipm_data_view view;
} data;

static void make_data(data *d, int classes)
{
    ipm_rng rng;
    ipm_rng_init(&rng, 3, 0, IPM_RNG_DATA);
    for (int i = 0; i < N * DIM; i++)
        d->x[i] = (float)(ipm_rng_uniform(&rng) < 0.5);
    for (int i = 0; i < N; i++)
        d->y[i] = (int32_t)(ipm_rng_uniform(&rng) * classes);
    d->view = (ipm_data_view){d->x, d->y, N, DIM, ipm_shape_flat(DIM)};
}

static ipm_train_spec spec_of(enum ipm_loss loss, enum ipm_activation out, int units,
                              enum ipm_optimizer opt, int batch, int batches)
{
    ipm_train_spec s = {0};
    int widths[] = {10, 7, 5, 4, 3};
    for (int l = 0; l < 5; l++)
        s.layers[l] = (ipm_layer_spec){.units = widths[l], .activation = IPM_ACT_TANH};
    s.layers[5] = (ipm_layer_spec){.units = units, .activation = out};
    s.n_layers = 6;
    s.init = IPM_INIT_XAVIER;
    s.optimizer = opt;
    s.learning_rate = 0.01;
    s.momentum = 0.9;
    s.loss = loss;
    s.batch_size = batch;
    s.batches_per_epoch = batches;
    s.seed = 17;
    return s;
}

static int same_replica(const ipm_replica *a, const ipm_replica *b)
{
    size_t bytes = a->net.n_params * sizeof(float);
    int moments = ipm_optimizer_moments(a->opt.kind);
    return memcmp(a->net.params, b->net.params, bytes) == 0 &&
           (moments < 1 || memcmp(a->opt.m, b->opt.m, bytes) == 0) &&
           (moments < 2 || memcmp(a->opt.v, b->opt.v, bytes) == 0) && a->position == b->position &&
           a->opt.step == b->opt.step &&
           memcmp(&a->last_batch_loss, &b->last_batch_loss, sizeof(double)) == 0;
}

/* Replicas 0..REPLICAS-1 alone, and in groups of `size` taken in a
 * shuffled order, `epochs` epochs each; every replica must agree. */
static void check_training(const ipm_train_spec *spec, const data *d, int size, int epochs)
{
    char err[IPM_ERRLEN];
    ipm_replica alone[REPLICAS], side[REPLICAS];
    int order[REPLICAS];
    for (int r = 0; r < REPLICAS; r++) {
        CHECK(ipm_replica_init(&alone[r], spec, &d->view, r, err) == 0);
        CHECK(ipm_replica_init(&side[r], spec, &d->view, r, err) == 0);
        order[r] = (r * 7 + 3) % REPLICAS; /* 7 is prime to 11: a permutation */
    }
    for (int e = 0; e < epochs; e++)
        for (int r = 0; r < REPLICAS; r++)
            ipm_replica_train_epoch(&alone[r], &d->view);
    for (int first = 0; first < REPLICAS; first += size) {
        int n = REPLICAS - first < size ? REPLICAS - first : size;
        ipm_replica *members[IPM_LANES];
        for (int k = 0; k < n; k++)
            members[k] = &side[order[first + k]];
        ipm_group g;
        CHECK(ipm_group_init(&g, members, n, err) == 0);
        for (int e = 0; e < epochs; e++)
            ipm_group_train_epoch(&g, &d->view, NULL);
        ipm_group_free(&g);
    }
    for (int r = 0; r < REPLICAS; r++) {
        CHECK(same_replica(&alone[r], &side[r]));
        CHECK(isfinite(side[r].last_batch_loss));
        ipm_replica_free(&alone[r]);
        ipm_replica_free(&side[r]);
    }
}

static void test_training(void)
{
    data *d = malloc(sizeof *d);
    make_data(d, 2);
    ipm_train_spec specs[] = {
        spec_of(IPM_LOSS_CROSS_ENTROPY, IPM_ACT_SOFTMAX, 2, IPM_OPT_ADAM, 4096, 0),
        spec_of(IPM_LOSS_CROSS_ENTROPY, IPM_ACT_SOFTMAX, 2, IPM_OPT_ADAM, 64, 0),
        spec_of(IPM_LOSS_MSE, IPM_ACT_TANH, 1, IPM_OPT_SGD, 101, 1),
        spec_of(IPM_LOSS_CROSS_ENTROPY, IPM_ACT_SIGMOID, 1, IPM_OPT_MOMENTUM, 50, 3),
        spec_of(IPM_LOSS_MSE, IPM_ACT_SIGMOID, 2, IPM_OPT_ADAM, 33, 0),
    };
    int sizes[] = {IPM_LANES, 3, 1, 5, IPM_LANES};
    for (size_t i = 0; i < sizeof specs / sizeof specs[0]; i++)
        check_training(&specs[i], d, sizes[i], 3);
    free(d);
}

/* Member 1 stopped: it keeps its state while the others train; then one
 * member trained alone puts the group out of step, and the group falls
 * back to training one by one with the same result. */
static void test_stopped_member(void)
{
    char err[IPM_ERRLEN];
    data *d = malloc(sizeof *d);
    make_data(d, 2);
    ipm_train_spec spec = spec_of(IPM_LOSS_CROSS_ENTROPY, IPM_ACT_SOFTMAX, 2, IPM_OPT_ADAM, 64, 0);
    ipm_replica side[3], alone[3];
    ipm_replica *members[3] = {&side[0], &side[1], &side[2]};
    for (int r = 0; r < 3; r++) {
        CHECK(ipm_replica_init(&side[r], &spec, &d->view, r, err) == 0);
        CHECK(ipm_replica_init(&alone[r], &spec, &d->view, r, err) == 0);
    }
    ipm_group g;
    CHECK(ipm_group_init(&g, members, 3, err) == 0);
    int active[3] = {1, 0, 1};
    ipm_group_train_epoch(&g, &d->view, active);
    ipm_replica_train_epoch(&alone[0], &d->view);
    ipm_replica_train_epoch(&alone[2], &d->view);
    for (int r = 0; r < 3; r++)
        CHECK(same_replica(&side[r], &alone[r]));
    ipm_group_train_epoch(&g, &d->view, NULL); /* member 1 out of step: one by one */
    for (int r = 0; r < 3; r++)
        ipm_replica_train_epoch(&alone[r], &d->view);
    for (int r = 0; r < 3; r++)
        CHECK(same_replica(&side[r], &alone[r]));
    ipm_group_free(&g);
    for (int r = 0; r < 3; r++) {
        ipm_replica_free(&side[r]);
        ipm_replica_free(&alone[r]);
    }
    free(d);
}

static void test_evaluation(void)
{
    char err[IPM_ERRLEN];
    data *d = malloc(sizeof *d);
    make_data(d, 2);
    ipm_train_spec spec = spec_of(IPM_LOSS_CROSS_ENTROPY, IPM_ACT_SOFTMAX, 2, IPM_OPT_ADAM, 64, 0);
    enum { MEMBERS = 5, ROWS = 77, FIRST = 50 };
    ipm_replica rep[MEMBERS];
    ipm_replica *members[MEMBERS];
    ipm_workspace ws[MEMBERS], own;
    ipm_workspace *wsp[MEMBERS];
    ipm_eval_totals side[MEMBERS] = {{0}};
    for (int k = 0; k < MEMBERS; k++) {
        CHECK(ipm_replica_init(&rep[k], &spec, &d->view, 10 + k, err) == 0);
        ipm_replica_train_epoch(&rep[k], &d->view);
        CHECK(ipm_workspace_init(&ws[k], &rep[k].net, ROWS, err) == 0);
        members[k] = &rep[k];
        wsp[k] = &ws[k];
    }
    CHECK(ipm_workspace_init(&own, &rep[0].net, ROWS, err) == 0);
    ipm_group g;
    CHECK(ipm_group_init(&g, members, MEMBERS, err) == 0);
    ipm_group_evaluate_block(&g, &d->view, FIRST, ROWS, wsp, side);
    for (int k = 0; k < MEMBERS; k++) {
        ipm_eval_totals alone = {0};
        ipm_replica_evaluate_block(&rep[k], &d->view, FIRST, ROWS, &own, &alone);
        for (int l = 0; l < rep[k].net.n_layers; l++)
            CHECK(memcmp(own.act[l], ws[k].act[l],
                         (size_t)ROWS * (size_t)rep[k].net.layer[l].out * sizeof(float)) == 0);
        CHECK(memcmp(&alone.loss_sum, &side[k].loss_sum, sizeof(double)) == 0);
        CHECK(alone.correct == side[k].correct && alone.terms == side[k].terms);
    }
    ipm_eval_totals bad[MEMBERS] = {{0}};
    ipm_group_evaluate_block(&g, &d->view, N - 10, ROWS, wsp, bad);
    CHECK(isnan(bad[0].loss_sum));
    ipm_group_free(&g);
    for (int k = 0; k < MEMBERS; k++) {
        ipm_workspace_free(&ws[k]);
        ipm_replica_free(&rep[k]);
    }
    ipm_workspace_free(&own);
    free(d);
}

static void test_refusals(void)
{
    char err[IPM_ERRLEN];
    data *d = malloc(sizeof *d);
    make_data(d, 2);
    ipm_train_spec a = spec_of(IPM_LOSS_CROSS_ENTROPY, IPM_ACT_SOFTMAX, 2, IPM_OPT_ADAM, 64, 0);
    ipm_train_spec b = a;
    b.layers[0].units = 9;
    ipm_replica ra, rb;
    CHECK(ipm_replica_init(&ra, &a, &d->view, 0, err) == 0);
    CHECK(ipm_replica_init(&rb, &b, &d->view, 1, err) == 0);
    ipm_replica *two[2] = {&ra, &rb};
    ipm_group g;
    CHECK(ipm_group_init(&g, two, 2, err) == -1);
    CHECK(strstr(err, "cannot train beside") != NULL);
    CHECK(ipm_group_init(&g, two, 0, err) == -1);
    CHECK(ipm_group_init(&g, two, IPM_LANES + 1, err) == -1);
    ipm_replica_free(&ra);
    ipm_replica_free(&rb);
    free(d);
}

int main(void)
{
    test_training();
    test_stopped_member();
    test_evaluation();
    test_refusals();
    return check_report("test_group");
}
