/* group: replicas side by side, a vector lane each. */
#include "ipmpi/learn/group.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#if defined(__SSE2__)
#include <immintrin.h>
#endif

#include "ipmpi/base/error.h"

enum { L = IPM_LANES };

/* Rows per block of a pass: a block's activations, gradients and inputs
 * for every lane (32 rows x the 12-10-7-5-4-3-2 net: 48 KB) stay in the
 * first two cache levels between the forward and the backward. */
#define GROUP_BLOCK_ROWS 32

int ipm_group_fits(const ipm_net *net)
{
    for (int l = 0; l < net->n_layers; l++)
        if (net->layer[l].kind != IPM_LAYER_DENSE)
            return 0;
    return net->n_layers > 0;
}

static int same_shape(const ipm_replica *a, const ipm_replica *b)
{
    if (a->net.n_layers != b->net.n_layers || a->net.in_dim != b->net.in_dim ||
        a->net.n_params != b->net.n_params || a->batch_size != b->batch_size ||
        a->loss != b->loss || a->n_train != b->n_train ||
        a->batches_per_epoch != b->batches_per_epoch)
        return 0;
    for (int l = 0; l < a->net.n_layers; l++) {
        const ipm_layer *x = &a->net.layer[l], *y = &b->net.layer[l];
        if (x->in != y->in || x->out != y->out || x->activation != y->activation)
            return 0;
    }
    return 1;
}

static float *lanes_of(size_t count)
{
    return malloc((count ? count : 1) * L * sizeof(float));
}

static int alloc_buffers(ipm_group *g)
{
    const ipm_net *net = &g->member[0]->net;
    size_t rows = (size_t)g->block_rows;
    int widest = net->in_dim;
    int ok = (g->params = lanes_of(g->n_params)) && (g->grads = lanes_of(g->n_params)) &&
             (g->x = lanes_of(rows * (size_t)net->in_dim)) &&
             (g->y = malloc(rows * L * sizeof(int32_t)));
    for (int l = 0; l < net->n_layers && ok; l++) {
        int out = net->layer[l].out;
        widest = out > widest ? out : widest;
        ok = (g->act[l] = lanes_of(rows * (size_t)out)) != NULL;
    }
    int units = net->layer[net->n_layers - 1].out;
    ok = ok && (g->g[0] = lanes_of(rows * (size_t)widest)) &&
         (g->g[1] = lanes_of(rows * (size_t)widest)) &&
         (g->lane_out = malloc(rows * (size_t)units * sizeof(float))) &&
         (g->lane_grad = malloc(rows * (size_t)units * sizeof(float))) &&
         (g->lane_y = malloc(rows * sizeof(int32_t)));
    return ok ? 0 : -1;
}

int ipm_group_init(ipm_group *g, ipm_replica *const *members, int n, char *err)
{
    memset(g, 0, sizeof *g);
    if (n < 1 || n > L)
        return ipm_fail(err, "a group holds 1..%d replicas (got %d)", L, n);
    for (int k = 0; k < n; k++) {
        if (!ipm_group_fits(&members[k]->net) || !same_shape(members[0], members[k]))
            return ipm_fail(err, "replica %d cannot train beside replica %d", members[k]->index,
                            members[0]->index);
        g->member[k] = members[k];
    }
    g->n = n;
    g->block_rows = GROUP_BLOCK_ROWS;
    g->n_params = members[0]->net.n_params;
    if (alloc_buffers(g)) {
        ipm_group_free(g);
        return ipm_fail(err, "out of memory for a group of %d replicas", n);
    }
    return 0;
}

void ipm_group_free(ipm_group *g)
{
    free(g->params);
    free(g->grads);
    free(g->x);
    free(g->y);
    for (int l = 0; l < IPM_MAX_LAYERS; l++)
        free(g->act[l]);
    free(g->g[0]);
    free(g->g[1]);
    free(g->lane_out);
    free(g->lane_grad);
    free(g->lane_y);
    memset(g, 0, sizeof *g);
}

/* ---- layouts ------------------------------------------------------------ */

/* Every member's parameters into its lane; lanes without a member hold 0. */
static void interleave_params(ipm_group *g)
{
    memset(g->params, 0, g->n_params * L * sizeof(float));
    for (int k = 0; k < g->n; k++) {
        const float *p = g->member[k]->net.params;
        for (size_t i = 0; i < g->n_params; i++)
            g->params[i * L + (size_t)k] = p[i];
    }
}

/* Lane k of `count` lane vectors at v into out, or out into the lane. */
static void lane_get(const float *v, size_t count, int k, float *out)
{
    for (size_t i = 0; i < count; i++)
        out[i] = v[i * L + (size_t)k];
}

static void lane_put(float *v, size_t count, int k, const float *in)
{
    for (size_t i = 0; i < count; i++)
        v[i * L + (size_t)k] = in[i];
}

/* Offset of layer l's weights (then its bias) in a member's params. */
static size_t weights_at(const ipm_group *g, int l)
{
    const ipm_net *net = &g->member[0]->net;
    return (size_t)(net->layer[l].w - net->params);
}

/* ---- passes over one block of rows -------------------------------------- */

static void forward_block(ipm_group *g, int rows)
{
    const ipm_kernels *kern = ipm_kernels_best();
    const ipm_net *net = &g->member[0]->net;
    const float *in = g->x;
    for (int l = 0; l < net->n_layers; l++) {
        const ipm_layer *d = &net->layer[l];
        const float *w = g->params + weights_at(g, l) * L;
        const float *b = w + (size_t)d->in * (size_t)d->out * L;
        kern->lanes_forward(rows, d->in, d->out, in, w, b, g->act[l]);
        ipm_activation_op(d->activation, IPM_FORWARD, g->act[l], NULL, rows, d->out, L);
        in = g->act[l];
    }
}

/* From dL/dA (or dL/dZ of the last layer when preactivation) in g->g[0],
 * the weight and bias gradients of the block, added to g->grads. */
static void backward_block(ipm_group *g, int rows, int preactivation)
{
    const ipm_kernels *kern = ipm_kernels_best();
    const ipm_net *net = &g->member[0]->net;
    float *grad = g->g[0], *prev = g->g[1];
    for (int l = net->n_layers - 1; l >= 0; l--) {
        const ipm_layer *d = &net->layer[l];
        if (!(preactivation && l == net->n_layers - 1))
            ipm_activation_op(d->activation, IPM_BACKWARD, g->act[l], grad, rows, d->out, L);
        size_t at = weights_at(g, l) * L, weights = (size_t)d->in * (size_t)d->out * L;
        const float *in = l > 0 ? g->act[l - 1] : g->x;
        kern->lanes_weight_grad(rows, d->in, d->out, in, grad, g->grads + at,
                                g->grads + at + weights);
        if (l == 0)
            break;
        kern->lanes_input_grad(rows, d->in, d->out, grad, g->params + at, prev);
        float *t = grad;
        grad = prev;
        prev = t;
    }
}

/* ---- training ----------------------------------------------------------- */

typedef struct step {
    int rows;     /* the batch's */
    int first[L]; /* each lane's start in its member's order */
    int active[L];
    double loss[L];
    long terms[L];
    int preactivation;
} step;

/* Block rows [b0, b0 + rows) of every active lane's batch into x and y. */
static void gather_block(ipm_group *g, const ipm_data_view *train, const step *s, int b0, int rows)
{
    size_t dim = (size_t)train->dim;
    memset(g->x, 0, (size_t)rows * dim * L * sizeof(float));
    memset(g->y, 0, (size_t)rows * L * sizeof(int32_t));
    for (int k = 0; k < g->n; k++) {
        if (!s->active[k])
            continue;
        const int32_t *order = g->member[k]->order + s->first[k] + b0;
        for (int r = 0; r < rows; r++) {
            const float *src = train->x + (size_t)order[r] * dim;
            float *dst = g->x + (size_t)r * dim * L + (size_t)k;
            for (size_t f = 0; f < dim; f++)
                dst[f * L] = src[f];
            g->y[(size_t)r * L + (size_t)k] = train->y[order[r]];
        }
    }
}

/* Each active lane's loss terms and gradient dL/dA_last (or dL/dZ) of the
 * block, by the one-replica loss function on the lane's rows. */
static void loss_block(ipm_group *g, step *s, int rows)
{
    const ipm_net *net = &g->member[0]->net;
    const ipm_layer *last = &net->layer[net->n_layers - 1];
    size_t count = (size_t)rows * (size_t)last->out;
    memset(g->g[0], 0, count * L * sizeof(float));
    for (int k = 0; k < g->n; k++) {
        if (!s->active[k])
            continue;
        lane_get(g->act[net->n_layers - 1], count, k, g->lane_out);
        for (int r = 0; r < rows; r++)
            g->lane_y[r] = g->y[(size_t)r * L + (size_t)k];
        long terms;
        s->loss[k] =
            ipm_loss_sum(g->member[k]->loss, last->activation, s->loss[k], g->lane_out, g->lane_y,
                         rows, last->out, s->rows, &terms, g->lane_grad, &s->preactivation);
        s->terms[k] += terms;
        lane_put(g->g[0], count, k, g->lane_grad);
    }
}

static void train_step(ipm_group *g, const ipm_data_view *train, step *s)
{
    interleave_params(g);
    memset(g->grads, 0, g->n_params * L * sizeof(float));
    for (int b0 = 0; b0 < s->rows; b0 += g->block_rows) {
        int rows = s->rows - b0 < g->block_rows ? s->rows - b0 : g->block_rows;
        gather_block(g, train, s, b0, rows);
        forward_block(g, rows);
        loss_block(g, s, rows);
        backward_block(g, rows, s->preactivation);
    }
    for (int k = 0; k < g->n; k++) {
        if (!s->active[k])
            continue;
        ipm_replica *m = g->member[k];
        lane_get(g->grads, g->n_params, k, m->net.grads);
        ipm_replica_apply_gradient(m);
        m->last_batch_loss = s->loss[k] / (double)s->terms[k];
    }
}

/* Whether the active members stand at the same batch position (they do
 * unless one was trained alone). */
static int in_step(const ipm_group *g, const int *active)
{
    int position = -1;
    for (int k = 0; k < g->n; k++) {
        if (active && !active[k])
            continue;
        if (position >= 0 && g->member[k]->position != position)
            return 0;
        position = g->member[k]->position;
    }
    return 1;
}

void ipm_group_train_epoch(ipm_group *g, const ipm_data_view *train, const int *active)
{
    if (!in_step(g, active)) {
        for (int k = 0; k < g->n; k++)
            if (!active || active[k])
                ipm_replica_train_epoch(g->member[k], train);
        return;
    }
    int batches = ipm_replica_batches(g->member[0]);
    for (int b = 0; b < batches; b++) {
        step s = {0};
        for (int k = 0; k < g->n; k++) {
            s.active[k] = !active || active[k];
            if (s.active[k])
                s.rows = ipm_replica_take_batch(g->member[k], &s.first[k]);
        }
        if (s.rows > 0)
            train_step(g, train, &s);
    }
}

/* ---- evaluation --------------------------------------------------------- */

/* Values t..t+3 of lanes k..k+3 of the block (4 lane vectors at v + t L)
 * into out[k..k+3] at i + t: a 4 x 4 transpose. */
static inline void transpose4(const float *v, int k, float *const *out, size_t at)
{
#if defined(__SSE2__)
    __m128 r0 = _mm_loadu_ps(v + k), r1 = _mm_loadu_ps(v + L + k);
    __m128 r2 = _mm_loadu_ps(v + 2 * L + k), r3 = _mm_loadu_ps(v + 3 * L + k);
    _MM_TRANSPOSE4_PS(r0, r1, r2, r3);
    _mm_storeu_ps(out[k] + at, r0);
    _mm_storeu_ps(out[k + 1] + at, r1);
    _mm_storeu_ps(out[k + 2] + at, r2);
    _mm_storeu_ps(out[k + 3] + at, r3);
#else
    for (int q = 0; q < 4; q++)
        for (int t = 0; t < 4; t++)
            out[k + q][at + (size_t)t] = v[(size_t)t * L + (size_t)(k + q)];
#endif
}

/* Lanes 0..n-1 of `count` lane vectors at v into out[k], four values of
 * four lanes at a time (a transpose), so v is read once. */
static void lanes_to_members(const float *restrict v, size_t count, int n, float *const *out)
{
    int quads = n / 4 * 4;
    size_t i = 0;
    for (; i + 4 <= count; i += 4) {
        for (int k = 0; k < quads; k += 4)
            transpose4(v + i * L, k, out, i);
        for (int k = quads; k < n; k++)
            for (size_t t = i; t < i + 4; t++)
                out[k][t] = v[t * L + (size_t)k];
    }
    for (; i < count; i++)
        for (int k = 0; k < n; k++)
            out[k][i] = v[i * L + (size_t)k];
}

/* Samples [first, first + rows) of d into every lane. */
static void broadcast_block(ipm_group *g, const ipm_data_view *d, int first, int rows)
{
    size_t dim = (size_t)d->dim;
    for (int r = 0; r < rows; r++) {
        const float *src = d->x + (size_t)(first + r) * dim;
        float *dst = g->x + (size_t)r * dim * L;
        for (size_t f = 0; f < dim; f++)
            for (int k = 0; k < L; k++)
                dst[f * L + (size_t)k] = src[f];
    }
}

int ipm_group_forward_block(ipm_group *g, const ipm_data_view *d, int first, int rows,
                            ipm_workspace *const *ws)
{
    int fits = first >= 0 && rows >= 0 && rows <= d->n - first;
    for (int k = 0; k < g->n; k++)
        fits = fits && rows <= ws[k]->capacity;
    if (!fits)
        return -1;
    const ipm_net *net = &g->member[0]->net;
    interleave_params(g);
    for (int b0 = 0; b0 < rows; b0 += g->block_rows) {
        int n = rows - b0 < g->block_rows ? rows - b0 : g->block_rows;
        broadcast_block(g, d, first + b0, n);
        forward_block(g, n);
        for (int l = 0; l < net->n_layers; l++) {
            size_t out = (size_t)net->layer[l].out;
            float *to[L];
            for (int k = 0; k < g->n; k++)
                to[k] = ws[k]->act[l] + (size_t)b0 * out;
            lanes_to_members(g->act[l], (size_t)n * out, g->n, to);
        }
    }
    return 0;
}

void ipm_group_evaluate_block(ipm_group *g, const ipm_data_view *d, int first, int rows,
                              ipm_workspace *const *ws, ipm_eval_totals *sum)
{
    if (rows <= 0)
        return;
    if (ipm_group_forward_block(g, d, first, rows, ws)) {
        for (int k = 0; k < g->n; k++)
            sum[k].loss_sum = NAN; /* a caller's bug must not pass for a number */
        return;
    }
    int last = g->member[0]->net.n_layers - 1;
    for (int k = 0; k < g->n; k++)
        ipm_eval_totals_add(g->member[k], d->y + first, rows, ws[k]->act[last], &sum[k]);
}
