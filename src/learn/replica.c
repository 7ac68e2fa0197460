/* replica: a replica's set-up, its training epochs and its evaluation. */
#include "ipmpi/learn/replica.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ipmpi/base/error.h"

int ipm_net_for_spec(ipm_net *net, const ipm_train_spec *spec, ipm_shape input, int index,
                     char *err)
{
    ipm_rng rng;
    ipm_rng_init(&rng, spec->seed, (uint32_t)index, IPM_RNG_INIT);
    return ipm_net_init(net, input, spec->layers, spec->n_layers, spec->init, spec->init_stddev,
                        &rng, err);
}

static int alloc_batch(ipm_replica *rep, const ipm_data_view *train, char *err)
{
    int units = rep->net.layer[rep->net.n_layers - 1].out;
    size_t rows = (size_t)rep->batch_size;
    rep->order = malloc((size_t)train->n * sizeof(int32_t));
    rep->xb = malloc(rows * (size_t)train->dim * sizeof(float));
    rep->grad = malloc(rows * (size_t)units * sizeof(float));
    rep->yb = malloc(rows * sizeof(int32_t));
    if (!rep->order || !rep->xb || !rep->grad || !rep->yb)
        return ipm_fail(err, "out of memory for replica %d's batches", rep->index);
    return ipm_workspace_init(&rep->batch_ws, &rep->net, rep->batch_size, err);
}

static int check_data(const ipm_train_spec *spec, const ipm_data_view *train, int index, char *err)
{
    if (train->n <= 0)
        return ipm_fail(err, "replica %d: the training set is empty", index);
    if (spec->batch_size <= 0)
        return ipm_fail(err, "[training] batch_size must be positive (got %d)", spec->batch_size);
    ipm_shape s = train->shape;
    if (s.height && (long long)s.height * s.width * s.channels != train->dim)
        return ipm_fail(err, "replica %d: images of %dx%dx%d do not hold %d values", index,
                        s.height, s.width, s.channels, train->dim);
    return 0;
}

int ipm_replica_init(ipm_replica *rep, const ipm_train_spec *spec, const ipm_data_view *train,
                     int index, char *err)
{
    memset(rep, 0, sizeof *rep);
    rep->index = index;
    rep->loss = spec->loss;
    rep->batches_per_epoch = spec->batches_per_epoch;
    if (check_data(spec, train, index, err))
        return -1;
    /* A batch larger than the set is the whole set (full-batch training). */
    rep->batch_size = spec->batch_size < train->n ? spec->batch_size : train->n;
    int rc = ipm_net_for_spec(&rep->net, spec, train->shape, index, err);
    if (rc == 0)
        rc = ipm_optimizer_init(&rep->opt, spec, rep->net.n_params, err);
    if (rc == 0)
        rc = alloc_batch(rep, train, err);
    if (rc) {
        ipm_replica_free(rep);
        return -1;
    }
    ipm_rng_init(&rep->batch_rng, spec->seed, (uint32_t)index, IPM_RNG_BATCH);
    rep->n_train = train->n;
    for (int i = 0; i < train->n; i++)
        rep->order[i] = i;
    ipm_rng_shuffle(&rep->batch_rng, rep->order, train->n);
    rep->position = 0;
    return 0;
}

void ipm_replica_free(ipm_replica *rep)
{
    ipm_net_free(&rep->net);
    ipm_optimizer_free(&rep->opt);
    ipm_workspace_free(&rep->batch_ws);
    free(rep->order);
    free(rep->xb);
    free(rep->grad);
    free(rep->yb);
    memset(rep, 0, sizeof *rep);
}

/* Batches are consecutive slices of the shuffled order. The last slice of a
 * pass may be short (n mod batch_size rows, like Keras): we take it rather
 * than drop it, so a full-pass epoch (batches_per_epoch = 0) sees every
 * sample exactly once. Once the order is used up it is reshuffled (the
 * stream continues) and the next batch starts the new pass; except when one
 * batch is the whole pass: its gradient is a sum over every sample whatever
 * the order, and the shuffle cost 5-7% of a small full-batch
 * network's training. */
int ipm_replica_take_batch(ipm_replica *rep, int *first)
{
    if (rep->position >= rep->n_train) {
        if (rep->batch_size < rep->n_train)
            ipm_rng_shuffle(&rep->batch_rng, rep->order, rep->n_train);
        rep->position = 0;
    }
    int rows = rep->n_train - rep->position;
    rows = rows < rep->batch_size ? rows : rep->batch_size;
    *first = rep->position;
    rep->position += rows;
    return rows;
}

/* Gathers the next batch into xb/yb; returns its rows. */
static int next_batch(ipm_replica *rep, const ipm_data_view *train)
{
    int first;
    int rows = ipm_replica_take_batch(rep, &first);
    size_t dim = (size_t)train->dim;
    for (int r = 0; r < rows; r++) {
        int32_t s = rep->order[first + r];
        memcpy(rep->xb + (size_t)r * dim, train->x + (size_t)s * dim, dim * sizeof(float));
        rep->yb[r] = train->y[s];
    }
    return rows;
}

static void train_step(ipm_replica *rep, const ipm_data_view *train)
{
    int rows = next_batch(rep, train);
    const ipm_layer *last = &rep->net.layer[rep->net.n_layers - 1];
    ipm_net_forward(&rep->net, rep->xb, rows, &rep->batch_ws);
    int preactivation = 0;
    rep->last_batch_loss =
        ipm_loss_eval(rep->loss, last->activation, rep->batch_ws.act[rep->net.n_layers - 1],
                      rep->yb, rows, last->out, NULL, rep->grad, &preactivation);
    ipm_net_backward(&rep->net, rep->xb, rows, &rep->batch_ws, rep->grad, preactivation);
    ipm_replica_apply_gradient(rep);
}

void ipm_replica_apply_gradient(ipm_replica *rep)
{
    if (rep->grad_stats)
        ipm_grad_stats_add(rep->grad_stats, &rep->net);
    ipm_optimizer_step(&rep->opt, rep->net.params, rep->net.grads);
}

int ipm_replica_batches(const ipm_replica *rep)
{
    if (rep->batches_per_epoch > 0)
        return rep->batches_per_epoch;
    return (rep->n_train + rep->batch_size - 1) / rep->batch_size;
}

void ipm_replica_train_epoch(ipm_replica *rep, const ipm_data_view *train)
{
    int batches = ipm_replica_batches(rep);
    for (int b = 0; b < batches; b++)
        train_step(rep, train);
}

void ipm_replica_evaluate_block(const ipm_replica *rep, const ipm_data_view *d, int first, int rows,
                                ipm_workspace *ws, ipm_eval_totals *sum)
{
    if (rows <= 0)
        return;
    if (first < 0 || rows > d->n - first || rows > ws->capacity) {
        sum->loss_sum = NAN; /* a caller's bug must not pass for a number */
        return;
    }
    ipm_net_forward(&rep->net, d->x + (size_t)first * (size_t)rep->net.in_dim, rows, ws);
    ipm_eval_totals_add(rep, d->y + first, rows, ws->act[rep->net.n_layers - 1], sum);
}

void ipm_eval_totals_add(const ipm_replica *rep, const int32_t *y, int rows, const float *out,
                         ipm_eval_totals *sum)
{
    const ipm_layer *last = &rep->net.layer[rep->net.n_layers - 1];
    long terms;
    sum->loss_sum = ipm_loss_sum(rep->loss, last->activation, sum->loss_sum, out, y, rows,
                                 last->out, rows, &terms, NULL, NULL);
    sum->terms += terms;
    sum->correct += ipm_count_correct(last->activation, out, y, rows, last->out);
    sum->rows += rows;
}

void ipm_eval_totals_mean(const ipm_eval_totals *sum, double *loss, double *accuracy)
{
    *loss = sum->terms > 0 ? sum->loss_sum / (double)sum->terms : NAN;
    *accuracy = sum->rows > 0 ? (double)sum->correct / (double)sum->rows : NAN;
}

void ipm_replica_evaluate(const ipm_replica *rep, const ipm_data_view *d, ipm_workspace *ws,
                          double *loss, double *accuracy)
{
    ipm_eval_totals sum = {0};
    if (d->n > 0 && ws->capacity >= d->n)
        ipm_replica_evaluate_block(rep, d, 0, d->n, ws, &sum);
    ipm_eval_totals_mean(&sum, loss, accuracy);
}
