/* train: losses, optimizers and the per-replica training loop. */
#include "ipmpi/learn/train.h"

#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ipmpi/base/error.h"

/* Smallest probability the cross-entropy's value takes a log of. */
#define IPM_PROB_FLOOR 1e-12

/* The network input a data set gives: its image shape, or its flat features. */
static ipm_shape input_shape(const ipm_dataset *d)
{
    return d->height ? (ipm_shape){d->height, d->width, d->channels} : ipm_shape_flat(d->dim);
}

int ipm_net_for_config(ipm_net *net, const ipm_config *cfg, const ipm_dataset *train, int index,
                       char *err)
{
    ipm_rng rng;
    ipm_rng_init(&rng, cfg->seed, (uint32_t)index, IPM_RNG_INIT);
    char why[IPM_ERRLEN];
    if (ipm_net_init(net, input_shape(train), cfg->layers, cfg->n_layers, cfg->init,
                     cfg->init_stddev, &rng, why) == 0)
        return 0;
    const char *key = "[network] layers: ";
    if (strncmp(why, key, strlen(key)) == 0) /* name the line the layers were set on */
        return ipm_config_fail(cfg, "network", "layers", err, ": %s", why + strlen(key));
    return ipm_fail(err, "%s", why);
}

/* ---- losses ------------------------------------------------------------- */

int ipm_loss_check(const ipm_config *cfg, int n_classes, char *err)
{
    const ipm_layer_spec *last = &cfg->layers[cfg->n_layers - 1];
    const char *act = ipm_activation_name(last->activation);
    if (cfg->loss == IPM_LOSS_CROSS_ENTROPY) {
        int softmax = last->activation == IPM_ACT_SOFTMAX && last->units >= 2;
        int sigmoid = last->activation == IPM_ACT_SIGMOID && last->units == 1;
        if (!softmax && !sigmoid)
            return ipm_config_fail(cfg, "training", "loss", err,
                                   " = cross_entropy needs a softmax output with >= 2 units or a "
                                   "single sigmoid unit (last layer is dense:%d:%s)",
                                   last->units, act);
    }
    if (last->units == 1 && n_classes > 2)
        return ipm_config_fail(cfg, "network", "layers", err,
                               ": one output unit can only separate 2 classes, the data has %d "
                               "(last layer is dense:1:%s)", n_classes, act);
    if (last->units > 1 && last->units < n_classes)
        return ipm_config_fail(cfg, "network", "layers", err,
                               ": %d output units cannot represent %d classes (last layer is "
                               "dense:%d:%s)", last->units, n_classes, last->units, act);
    return 0;
}

static int argmax(const float *v, int n)
{
    int best = 0;
    for (int j = 1; j < n; j++)
        if (v[j] > v[best])
            best = j;
    return best;
}

static float mse_target(enum ipm_activation out_act, int units, int j, int32_t y);

/* One output unit predicts class 1 above the midpoint of its two training
 * targets (0 under tanh, 0.5 otherwise), whichever loss trained it. */
static int predict(enum ipm_activation out_act, const float *row, int units)
{
    if (units > 1)
        return argmax(row, units);
    float threshold = 0.5f * (mse_target(out_act, 1, 0, 0) + mse_target(out_act, 1, 0, 1));
    return row[0] > threshold;
}

static double clamped_log(double p)
{
    return log(p > IPM_PROB_FLOOR ? p : IPM_PROB_FLOOR);
}

/* Softmax + CE (several units) or sigmoid + binary CE (one unit); in both
 * the gradient with respect to the pre-activation is (p - target) / rows. */
/* Both losses continue a running sum of their terms in row order, so a
 * set evaluated in blocks sums exactly as it does in one call. */
static double cross_entropy(double sum, const float *out, const int32_t *y, int rows, int units,
                            float *grad)
{
    float inv_rows = 1.0f / (float)rows;
    for (int r = 0; r < rows; r++) {
        const float *o = out + (size_t)r * (size_t)units;
        if (units == 1)
            sum -= y[r] ? clamped_log(o[0]) : clamped_log(1.0 - (double)o[0]);
        else
            sum -= clamped_log(o[y[r]]);
        if (!grad)
            continue;
        float *g = grad + (size_t)r * (size_t)units;
        for (int j = 0; j < units; j++) {
            float target = units == 1 ? (float)(y[r] != 0) : (float)(j == y[r]);
            g[j] = (o[j] - target) * inv_rows;
        }
    }
    return sum;
}

/* Target of output unit j for label y: one unit is binary (-1/+1 under
 * tanh, 0/1 otherwise), several are one-hot. */
static float mse_target(enum ipm_activation out_act, int units, int j, int32_t y)
{
    if (units == 1) {
        if (out_act == IPM_ACT_TANH)
            return y ? 1.0f : -1.0f;
        return y ? 1.0f : 0.0f;
    }
    return j == y ? 1.0f : 0.0f;
}

static double squared_errors(double sum, enum ipm_activation out_act, const float *out,
                             const int32_t *y, int rows, int units, float *grad)
{
    size_t count = (size_t)rows * (size_t)units;
    float scale = 2.0f / (float)count;
    for (int r = 0; r < rows; r++)
        for (int j = 0; j < units; j++) {
            size_t i = (size_t)r * (size_t)units + (size_t)j;
            float diff = out[i] - mse_target(out_act, units, j, y[r]);
            sum += (double)diff * diff;
            if (grad)
                grad[i] = diff * scale;
        }
    return sum;
}

/* The running loss sum after rows more rows, and the count of its terms. */
static double loss_sum(enum ipm_loss loss, enum ipm_activation out_act, double sum,
                       const float *out, const int32_t *y, int rows, int units, float *grad,
                       long *terms)
{
    if (loss == IPM_LOSS_CROSS_ENTROPY) {
        *terms = rows;
        return cross_entropy(sum, out, y, rows, units, grad);
    }
    *terms = (long)rows * units;
    return squared_errors(sum, out_act, out, y, rows, units, grad);
}

double ipm_loss_eval(enum ipm_loss loss, enum ipm_activation out_act, const float *out,
                     const int32_t *y, int rows, int units, long *correct, float *grad,
                     int *grad_is_preactivation)
{
    if (correct)
        for (int r = 0; r < rows; r++)
            *correct += predict(out_act, out + (size_t)r * (size_t)units, units) == y[r];
    if (grad_is_preactivation)
        *grad_is_preactivation = loss == IPM_LOSS_CROSS_ENTROPY;
    long terms;
    double sum = loss_sum(loss, out_act, 0.0, out, y, rows, units, grad, &terms);
    return sum / (double)terms;
}

/* ---- optimizers --------------------------------------------------------- */
/* Parameters and moments are stored as float; each update is computed in
 * double and rounded once. */

int ipm_optimizer_init(ipm_optimizer_state *opt, const ipm_config *cfg, size_t n_params,
                       char *err)
{
    memset(opt, 0, sizeof *opt);
    opt->kind = cfg->optimizer;
    opt->learning_rate = cfg->learning_rate;
    opt->momentum = cfg->momentum;
    opt->n = n_params;
    if (opt->kind == IPM_OPT_SGD)
        return 0;
    opt->m = calloc(n_params, sizeof(float));
    opt->v = opt->kind == IPM_OPT_ADAM ? calloc(n_params, sizeof(float)) : NULL;
    if (!opt->m || (opt->kind == IPM_OPT_ADAM && !opt->v)) {
        ipm_optimizer_free(opt);
        return ipm_fail(err, "out of memory for optimizer state (%zu parameters)", n_params);
    }
    return 0;
}

static void sgd_step(const ipm_optimizer_state *opt, float *p, const float *g)
{
    for (size_t i = 0; i < opt->n; i++)
        p[i] = (float)(p[i] - opt->learning_rate * g[i]);
}

/* v = momentum v + g; p -= lr v. */
static void momentum_step(ipm_optimizer_state *opt, float *p, const float *g)
{
    for (size_t i = 0; i < opt->n; i++) {
        double v = opt->momentum * opt->m[i] + g[i];
        opt->m[i] = (float)v;
        p[i] = (float)(p[i] - opt->learning_rate * v);
    }
}

/* Kingma & Ba (2015), Algorithm 1, with bias-corrected moments. */
static void adam_step(ipm_optimizer_state *opt, float *p, const float *g)
{
    const double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
    double correction1 = 1.0 - pow(beta1, (double)opt->step);
    double correction2 = 1.0 - pow(beta2, (double)opt->step);
    for (size_t i = 0; i < opt->n; i++) {
        double m = beta1 * opt->m[i] + (1.0 - beta1) * g[i];
        double v = beta2 * opt->v[i] + (1.0 - beta2) * (double)g[i] * g[i];
        opt->m[i] = (float)m;
        opt->v[i] = (float)v;
        double m_hat = m / correction1, v_hat = v / correction2;
        p[i] = (float)(p[i] - opt->learning_rate * m_hat / (sqrt(v_hat) + eps));
    }
}

void ipm_optimizer_step(ipm_optimizer_state *opt, float *params, const float *grads)
{
    opt->step++;
    switch (opt->kind) {
    case IPM_OPT_SGD:
        sgd_step(opt, params, grads);
        break;
    case IPM_OPT_MOMENTUM:
        momentum_step(opt, params, grads);
        break;
    case IPM_OPT_ADAM:
        adam_step(opt, params, grads);
        break;
    }
}

void ipm_optimizer_free(ipm_optimizer_state *opt)
{
    free(opt->m);
    free(opt->v);
    memset(opt, 0, sizeof *opt);
}

/* ---- replicas ----------------------------------------------------------- */

static int alloc_batch(ipm_replica *rep, const ipm_dataset *train, char *err)
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

int ipm_replica_init(ipm_replica *rep, const ipm_config *cfg, const ipm_dataset *train,
                     int index, char *err)
{
    memset(rep, 0, sizeof *rep);
    rep->index = index;
    rep->loss = cfg->loss;
    rep->batches_per_epoch = cfg->batches_per_epoch;
    if (train->n <= 0)
        return ipm_fail(err, "replica %d: the training set is empty", index);
    if (cfg->batch_size <= 0)
        return ipm_fail(err, "[training] batch_size must be positive (got %d)", cfg->batch_size);
    /* A batch larger than the set is the whole set (full-batch training). */
    rep->batch_size = cfg->batch_size < train->n ? cfg->batch_size : train->n;
    ipm_shape input = input_shape(train);
    if (train->height && (long long)input.height * input.width * input.channels != train->dim)
        return ipm_fail(err, "replica %d: images of %dx%dx%d do not hold %d values", index,
                        input.height, input.width, input.channels, train->dim);
    int rc = ipm_net_for_config(&rep->net, cfg, train, index, err);
    if (rc == 0)
        rc = ipm_optimizer_init(&rep->opt, cfg, rep->net.n_params, err);
    if (rc == 0)
        rc = alloc_batch(rep, train, err);
    if (rc) {
        ipm_replica_free(rep);
        return -1;
    }
    ipm_rng_init(&rep->batch_rng, cfg->seed, (uint32_t)index, IPM_RNG_BATCH);
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
 * stream continues) and the next batch starts the new pass. Returns the
 * rows gathered into xb/yb. */
static int next_batch(ipm_replica *rep, const ipm_dataset *train)
{
    if (rep->position >= train->n) {
        ipm_rng_shuffle(&rep->batch_rng, rep->order, train->n);
        rep->position = 0;
    }
    int rows = train->n - rep->position;
    rows = rows < rep->batch_size ? rows : rep->batch_size;
    size_t dim = (size_t)train->dim;
    for (int r = 0; r < rows; r++) {
        int32_t s = rep->order[rep->position + r];
        memcpy(rep->xb + (size_t)r * dim, train->x + (size_t)s * dim, dim * sizeof(float));
        rep->yb[r] = train->y[s];
    }
    rep->position += rows;
    return rows;
}

static void train_step(ipm_replica *rep, const ipm_dataset *train)
{
    int rows = next_batch(rep, train);
    const ipm_layer *last = &rep->net.layer[rep->net.n_layers - 1];
    ipm_net_forward(&rep->net, rep->xb, rows, &rep->batch_ws);
    int preactivation = 0;
    rep->last_batch_loss =
        ipm_loss_eval(rep->loss, last->activation, rep->batch_ws.act[rep->net.n_layers - 1],
                      rep->yb, rows, last->out, NULL, rep->grad, &preactivation);
    ipm_net_backward(&rep->net, rep->xb, rows, &rep->batch_ws, rep->grad, preactivation);
    ipm_optimizer_step(&rep->opt, rep->net.params, rep->net.grads);
}

void ipm_replica_train_epoch(ipm_replica *rep, const ipm_dataset *train)
{
    int batches = rep->batches_per_epoch;
    if (batches <= 0)
        batches = (train->n + rep->batch_size - 1) / rep->batch_size;
    for (int b = 0; b < batches; b++)
        train_step(rep, train);
}

void ipm_replica_evaluate_block(const ipm_replica *rep, const ipm_dataset *d, int first,
                                int rows, ipm_workspace *ws, ipm_eval_totals *sum)
{
    if (rows <= 0)
        return;
    if (first < 0 || rows > d->n - first || rows > ws->capacity) {
        sum->loss_sum = NAN; /* a caller's bug must not pass for a number */
        return;
    }
    const ipm_layer *last = &rep->net.layer[rep->net.n_layers - 1];
    const float *x = d->x + (size_t)first * (size_t)rep->net.in_dim;
    const int32_t *y = d->y + first;
    ipm_net_forward(&rep->net, x, rows, ws);
    const float *out = ws->act[rep->net.n_layers - 1];
    long terms;
    sum->loss_sum = loss_sum(rep->loss, last->activation, sum->loss_sum, out, y, rows, last->out,
                             NULL, &terms);
    sum->terms += terms;
    for (int r = 0; r < rows; r++)
        sum->correct += predict(last->activation, out + (size_t)r * (size_t)last->out,
                                last->out) == y[r];
    sum->rows += rows;
}

void ipm_eval_totals_mean(const ipm_eval_totals *sum, double *loss, double *accuracy)
{
    *loss = sum->terms > 0 ? sum->loss_sum / (double)sum->terms : NAN;
    *accuracy = sum->rows > 0 ? (double)sum->correct / (double)sum->rows : NAN;
}

void ipm_replica_evaluate(const ipm_replica *rep, const ipm_dataset *d, ipm_workspace *ws,
                          double *loss, double *accuracy)
{
    ipm_eval_totals sum = {0};
    if (d->n > 0 && ws->capacity >= d->n)
        ipm_replica_evaluate_block(rep, d, 0, d->n, ws, &sum);
    ipm_eval_totals_mean(&sum, loss, accuracy);
}

/* ---- state blobs (checkpoints) ----------------------------------------- */
/* Little-endian, fixed width, in this order:
 *   u32 magic "IRS2", u32 index, u32 in_dim, u32 n_layers,
 *   u32 input height, width, channels (flat: 0, 0, in_dim),
 *   n_layers x (u32 in, out, activation, kind, kernel_h, kernel_w),
 *   u32 n_train, u32 optimizer, u64 n_params                     -- identity
 *   u64 step, f64 last_batch_loss, batch rng (u32 key[2], stream, purpose,
 *   u64 counter, u32 block[4], u32 used), u32 position           -- scalars
 *   f32 params[n_params], moments (f32 m[] unless SGD, f32 v[] for Adam),
 *   i32 order[n_train]                                           -- arrays */

#define STATE_MAGIC 0x32535249u /* "IRS2"; "IRS1" had dense layers only */
enum { LAYER_WORDS = 6 };

typedef struct blob_cursor {
    unsigned char *out;         /* pack */
    const unsigned char *in;    /* unpack */
    size_t pos, size;
    int short_read;
} blob_cursor;

static void blob_put(blob_cursor *c, uint64_t v, int bytes)
{
    for (int i = 0; i < bytes; i++)
        c->out[c->pos++] = (unsigned char)(v >> (8 * i));
}

static uint64_t blob_get(blob_cursor *c, int bytes)
{
    if (c->size - c->pos < (size_t)bytes) {
        c->short_read = 1;
        return 0;
    }
    uint64_t v = 0;
    for (int i = bytes - 1; i >= 0; i--)
        v = v << 8 | c->in[c->pos + (size_t)i];
    c->pos += (size_t)bytes;
    return v;
}

static uint32_t float_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static float bits_float(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static int moment_arrays(enum ipm_optimizer kind)
{
    return kind == IPM_OPT_ADAM ? 2 : kind == IPM_OPT_MOMENTUM ? 1 : 0;
}

static size_t identity_bytes(const ipm_replica *rep)
{
    return 4 * 4 + 3 * 4 + 4 * LAYER_WORDS * (size_t)rep->net.n_layers + 4 + 4 + 8;
}

enum { SCALAR_BYTES = 8 + 8 + (4 * 4 + 8 + 4 * 4 + 4) + 4 };

size_t ipm_replica_state_size(const ipm_replica *rep)
{
    size_t floats = rep->net.n_params * (size_t)(1 + moment_arrays(rep->opt.kind));
    return identity_bytes(rep) + SCALAR_BYTES + 4 * floats + 4 * (size_t)rep->n_train;
}

static void put_floats(blob_cursor *c, const float *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        blob_put(c, float_bits(v[i]), 4);
}

/* What identifies layer l's shape and function in a blob. */
static void layer_words(const ipm_layer *d, uint32_t word[LAYER_WORDS])
{
    word[0] = (uint32_t)d->in;
    word[1] = (uint32_t)d->out;
    word[2] = (uint32_t)d->activation;
    word[3] = (uint32_t)d->kind;
    word[4] = (uint32_t)d->kernel_h;
    word[5] = (uint32_t)d->kernel_w;
}

static void put_identity(blob_cursor *c, const ipm_replica *rep)
{
    const ipm_net *net = &rep->net;
    blob_put(c, STATE_MAGIC, 4);
    blob_put(c, (uint32_t)rep->index, 4);
    blob_put(c, (uint32_t)net->in_dim, 4);
    blob_put(c, (uint32_t)net->n_layers, 4);
    blob_put(c, (uint32_t)net->input.height, 4);
    blob_put(c, (uint32_t)net->input.width, 4);
    blob_put(c, (uint32_t)net->input.channels, 4);
    for (int l = 0; l < net->n_layers; l++) {
        uint32_t word[LAYER_WORDS];
        layer_words(&net->layer[l], word);
        for (int i = 0; i < LAYER_WORDS; i++)
            blob_put(c, word[i], 4);
    }
    blob_put(c, (uint32_t)rep->n_train, 4);
    blob_put(c, (uint32_t)rep->opt.kind, 4);
    blob_put(c, rep->net.n_params, 8);
}

int ipm_replica_pack(const ipm_replica *rep, unsigned char *buf, size_t size, char *err)
{
    if (size != ipm_replica_state_size(rep))
        return ipm_fail(err, "replica %d: state buffer of %zu bytes, needs %zu", rep->index, size,
                        ipm_replica_state_size(rep));
    blob_cursor c = {.out = buf, .size = size};
    put_identity(&c, rep);
    uint64_t loss_bits;
    memcpy(&loss_bits, &rep->last_batch_loss, sizeof loss_bits);
    blob_put(&c, (uint64_t)rep->opt.step, 8);
    blob_put(&c, loss_bits, 8);
    const ipm_rng *g = &rep->batch_rng;
    blob_put(&c, g->key[0], 4);
    blob_put(&c, g->key[1], 4);
    blob_put(&c, g->stream, 4);
    blob_put(&c, g->purpose, 4);
    blob_put(&c, g->counter, 8);
    for (int i = 0; i < 4; i++)
        blob_put(&c, g->block[i], 4);
    blob_put(&c, (uint32_t)g->used, 4);
    blob_put(&c, (uint32_t)rep->position, 4);
    put_floats(&c, rep->net.params, rep->net.n_params);
    if (moment_arrays(rep->opt.kind) >= 1)
        put_floats(&c, rep->opt.m, rep->opt.n);
    if (moment_arrays(rep->opt.kind) == 2)
        put_floats(&c, rep->opt.v, rep->opt.n);
    for (int i = 0; i < rep->n_train; i++)
        blob_put(&c, (uint32_t)rep->order[i], 4);
    return 0;
}

static int check_layers(blob_cursor *c, const ipm_replica *rep, char *err)
{
    const ipm_net *net = &rep->net;
    uint64_t in_dim = blob_get(c, 4), n_layers = blob_get(c, 4);
    if (in_dim != (uint64_t)net->in_dim || n_layers != (uint64_t)net->n_layers)
        return ipm_fail(err,
                        "replica %d: saved state is of a net with %llu inputs and %llu layers, "
                        "this one has %d and %d",
                        rep->index, (unsigned long long)in_dim, (unsigned long long)n_layers,
                        net->in_dim, net->n_layers);
    uint64_t h = blob_get(c, 4), w = blob_get(c, 4), ch = blob_get(c, 4);
    if (h != (uint64_t)net->input.height || w != (uint64_t)net->input.width ||
        ch != (uint64_t)net->input.channels)
        return ipm_fail(err,
                        "replica %d: saved state is of a net with %llux%llux%llu input, this "
                        "one has %dx%dx%d",
                        rep->index, (unsigned long long)h, (unsigned long long)w,
                        (unsigned long long)ch, net->input.height, net->input.width,
                        net->input.channels);
    for (int l = 0; l < net->n_layers; l++) {
        uint32_t own[LAYER_WORDS];
        layer_words(&net->layer[l], own);
        int same = 1;
        for (int i = 0; i < LAYER_WORDS; i++)
            same &= blob_get(c, 4) == own[i];
        if (!same)
            return ipm_fail(err, "replica %d: saved state's layer %d differs from this net's",
                            rep->index, l + 1);
    }
    return 0;
}

static int check_identity(blob_cursor *c, const ipm_replica *rep, char *err)
{
    if (c->size < identity_bytes(rep))
        return ipm_fail(err, "replica %d: saved state is truncated (%zu bytes)", rep->index,
                        c->size);
    if (blob_get(c, 4) != STATE_MAGIC)
        return ipm_fail(err, "replica %d: not a replica state (bad magic)", rep->index);
    uint64_t index = blob_get(c, 4);
    if (index != (uint64_t)rep->index)
        return ipm_fail(err, "replica %d: saved state belongs to replica %llu", rep->index,
                        (unsigned long long)index);
    if (check_layers(c, rep, err))
        return -1;
    uint64_t n_train = blob_get(c, 4), kind = blob_get(c, 4), n_params = blob_get(c, 8);
    if (c->short_read)
        return ipm_fail(err, "replica %d: saved state is truncated", rep->index);
    if (n_train != (uint64_t)rep->n_train || kind != (uint64_t)rep->opt.kind ||
        n_params != rep->net.n_params)
        return ipm_fail(err,
                        "replica %d: saved state has %llu training samples, optimizer %llu, %llu "
                        "params; this replica %d, %d, %zu",
                        rep->index, (unsigned long long)n_train, (unsigned long long)kind,
                        (unsigned long long)n_params, rep->n_train, (int)rep->opt.kind,
                        rep->net.n_params);
    if (c->size != ipm_replica_state_size(rep))
        return ipm_fail(err, "replica %d: saved state has %zu bytes, expected %zu", rep->index,
                        c->size, ipm_replica_state_size(rep));
    return 0;
}

typedef struct saved_scalars {
    long step;
    double last_batch_loss;
    ipm_rng batch_rng;
    int position;
} saved_scalars;

static int get_scalars(blob_cursor *c, const ipm_replica *rep, saved_scalars *s, char *err)
{
    uint64_t step = blob_get(c, 8), loss_bits = blob_get(c, 8);
    ipm_rng g;
    g.key[0] = (uint32_t)blob_get(c, 4);
    g.key[1] = (uint32_t)blob_get(c, 4);
    g.stream = (uint32_t)blob_get(c, 4);
    g.purpose = (uint32_t)blob_get(c, 4);
    g.counter = blob_get(c, 8);
    for (int i = 0; i < 4; i++)
        g.block[i] = (uint32_t)blob_get(c, 4);
    uint64_t used = blob_get(c, 4), position = blob_get(c, 4);
    const ipm_rng *own = &rep->batch_rng;
    if (g.key[0] != own->key[0] || g.key[1] != own->key[1] || g.stream != own->stream ||
        g.purpose != own->purpose)
        return ipm_fail(err, "replica %d: saved batch stream has another seed or replica",
                        rep->index);
    if (used > 4 || position > (uint64_t)rep->n_train || step > (uint64_t)LONG_MAX)
        return ipm_fail(err, "replica %d: corrupt saved state (rng words used %llu, position %llu)",
                        rep->index, (unsigned long long)used, (unsigned long long)position);
    g.used = (int)used;
    s->batch_rng = g;
    s->position = (int)position;
    s->step = (long)step;
    memcpy(&s->last_batch_loss, &loss_bits, sizeof loss_bits);
    return 0;
}

/* The saved order must be a permutation of 0..n-1: batches index the data with it. */
static int check_order(blob_cursor c, const ipm_replica *rep, char *err)
{
    int n = rep->n_train;
    unsigned char *seen = calloc((size_t)n, 1);
    if (!seen)
        return ipm_fail(err, "replica %d: out of memory", rep->index);
    int rc = 0;
    for (int i = 0; i < n && rc == 0; i++) {
        uint64_t s = blob_get(&c, 4);
        if (s >= (uint64_t)n || seen[s]++)
            rc = ipm_fail(err, "replica %d: corrupt saved batch order (entry %d)", rep->index, i);
    }
    free(seen);
    return rc;
}

static void get_floats(blob_cursor *c, float *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        v[i] = bits_float((uint32_t)blob_get(c, 4));
}

int ipm_replica_unpack(ipm_replica *rep, const unsigned char *buf, size_t size, char *err)
{
    blob_cursor c = {.in = buf, .size = size};
    saved_scalars scalars = {0};
    if (check_identity(&c, rep, err) || get_scalars(&c, rep, &scalars, err))
        return -1;
    size_t n = rep->net.n_params, arrays = (size_t)(1 + moment_arrays(rep->opt.kind));
    blob_cursor order_at = c;
    order_at.pos += 4 * n * arrays;
    if (check_order(order_at, rep, err))
        return -1;
    rep->batch_rng = scalars.batch_rng;
    rep->position = scalars.position;
    rep->opt.step = scalars.step;
    rep->last_batch_loss = scalars.last_batch_loss;
    get_floats(&c, rep->net.params, n);
    if (arrays >= 2)
        get_floats(&c, rep->opt.m, n);
    if (arrays == 3)
        get_floats(&c, rep->opt.v, n);
    for (int i = 0; i < rep->n_train; i++)
        rep->order[i] = (int32_t)blob_get(&c, 4);
    return 0;
}
