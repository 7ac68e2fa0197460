#include "ipmpi/app/ensemble.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ipmpi/app/learn_config.h"
#include "ipmpi/base/assert.h"
#include "ipmpi/base/error.h"
#include "ipmpi/learn/kernels.h"
#include "ipmpi/parallel/comm.h"

/* The values of every replica summed onto rank 0 at a logged epoch live in
 * one block, so they take one reduce: loss, accuracy, test loss, test
 * accuracy, then (with [output] gradients) the norms of the gradients' mean
 * and std, replicas x layers each. */
static int alloc_arrays(ipm_ensemble *e, const ipm_config *cfg, int n_local, char *err)
{
    size_t n = (size_t)e->n_replicas;
    size_t cells = cfg->gradient_stats ? n * (size_t)cfg->n_layers : 0;
    e->n_metrics = 4 * n + 2 * cells;
    e->metrics = calloc(e->n_metrics, sizeof(double));
    e->local = calloc((size_t)n_local + 1, sizeof(ipm_replica));
    e->diverged_at = calloc((size_t)n_local + 1, sizeof(int));
    e->bad_param = calloc((size_t)n_local + 1, sizeof(long));
    if (!e->metrics || !e->local || !e->diverged_at || !e->bad_param)
        return ipm_fail(err, "out of memory for %d replicas", e->n_replicas);
    if (e->n_metrics > INT_MAX)
        return ipm_fail(err, "%zu values per logged epoch are too many to sum over the ranks",
                        e->n_metrics);
    e->loss = e->metrics;
    e->accuracy = e->loss + n;
    e->test_loss = e->accuracy + n;
    e->test_accuracy = e->test_loss + n;
    if (cells) {
        e->grad_mean_norm = e->test_accuracy + n;
        e->grad_std_norm = e->grad_mean_norm + cells;
    }
    return 0;
}

/* Fewer local replicas than this train one by one: a vector with most
 * lanes empty costs more than the replicas alone. */
#define MIN_GROUP 4

/* Lane workspaces are made only while they hold at most this much. */
#define LANE_WS_BYTES ((size_t)256 << 20)

/* Full groups of IPM_LANES consecutive local replicas; the rest makes one
 * more group if it has MIN_GROUP or more, else trains one by one. A group
 * costs the same whatever its fill, a replica alone about a quarter of a
 * group (the 2017 net): 10 replicas as 8 + 2 alone train in two thirds of
 * the time of two groups of 5. */
static int setup_groups(ipm_ensemble *e, char *err)
{
    size_t n = (size_t)e->n_local, cells = n * IPM_N_PLANES;
    e->group_of = malloc((n + 1) * sizeof(int));
    e->lane_ws = calloc(cells + 1, sizeof(ipm_workspace));
    e->lane_fresh = calloc(cells + 1, sizeof(int));
    e->lane_made = calloc(cells + 1, sizeof(int));
    if (!e->group_of || !e->lane_ws || !e->lane_fresh || !e->lane_made)
        return ipm_fail(err, "out of memory for %d replicas", e->n_local);
    for (int k = 0; k < e->n_local; k++)
        e->group_of[k] = -1;
    if (e->n_local < MIN_GROUP || !ipm_group_fits(&e->local[0].net))
        return 0;
    int full = e->n_local / IPM_LANES, rest = e->n_local % IPM_LANES;
    int groups = full + (rest >= MIN_GROUP);
    e->groups = calloc((size_t)groups, sizeof(ipm_group));
    if (!e->groups)
        return ipm_fail(err, "out of memory for %d replica groups", groups);
    for (int q = 0, start = 0; q < groups; q++) {
        int size = q < full ? IPM_LANES : rest;
        ipm_replica *members[IPM_LANES];
        for (int m = 0; m < size; m++) {
            members[m] = &e->local[start + m];
            e->group_of[start + m] = q;
        }
        if (ipm_group_init(&e->groups[q], members, size, err))
            return -1;
        e->n_groups = q + 1;
        start += size;
    }
    return 0;
}

/* [output] gradients: one statistics block per local replica, detached
 * until an epoch is watched. */
static int setup_grad_stats(ipm_ensemble *e, const ipm_config *cfg, char *err)
{
    if (!cfg->gradient_stats)
        return 0;
    e->n_layers = cfg->n_layers;
    e->grad_stats = calloc((size_t)e->n_local + 1, sizeof(ipm_grad_stats));
    if (!e->grad_stats)
        return ipm_fail(err, "out of memory for the gradient statistics of %d replicas",
                        e->n_local);
    for (int k = 0; k < e->n_local; k++)
        if (ipm_grad_stats_init(&e->grad_stats[k], &e->local[k].net, err))
            return -1;
    return 0;
}

int ipm_ensemble_init(ipm_ensemble *e, const ipm_plan *plan, MPI_Comm comm, char *err)
{
    memset(e, 0, sizeof *e);
    e->comm = comm;
    e->rank = plan->rank;
    e->size = plan->n_ranks;
    e->n_replicas = plan->n_replicas;
    e->block_rows = plan->block_rows;
    e->held_replica = -1;
    ipm_kernels_flush_subnormals();
    if (alloc_arrays(e, plan->cfg, plan->n_local, err))
        return -1;
    /* Counted before each init: a zeroed or half-built replica frees cleanly. */
    for (int k = 0; k < plan->n_local; k++) {
        e->n_local = k + 1;
        e->diverged_at[k] = -1;
        if (ipm_replica_for_config(&e->local[k], plan->cfg, &plan->data[IPM_PLANE_TRAIN],
                                   e->rank + k * e->size, err))
            return -1;
    }
    if (setup_groups(e, err) || setup_grad_stats(e, plan->cfg, err))
        return -1;
    return ipm_workspace_init(&e->eval_ws, &plan->shape, plan->block_rows, err);
}

void ipm_ensemble_free(ipm_ensemble *e)
{
    for (int k = 0; k < e->n_local; k++)
        ipm_replica_free(&e->local[k]);
    ipm_workspace_free(&e->eval_ws);
    for (int k = 0; e->grad_stats && k < e->n_local; k++)
        ipm_grad_stats_free(&e->grad_stats[k]);
    free(e->grad_stats);
    for (int q = 0; q < e->n_groups; q++)
        ipm_group_free(&e->groups[q]);
    for (int c = 0; e->lane_ws && c < e->n_local * IPM_N_PLANES; c++)
        ipm_workspace_free(&e->lane_ws[c]);
    free(e->groups);
    free(e->group_of);
    free(e->lane_ws);
    free(e->lane_fresh);
    free(e->lane_made);
    free(e->local);
    free(e->diverged_at);
    free(e->bad_param);
    free(e->metrics);
    memset(e, 0, sizeof *e);
}

/* The active mask of group q: members that have not stopped. */
static void group_active(const ipm_ensemble *e, int q, const int32_t *stop_epoch, int *active)
{
    const ipm_group *g = &e->groups[q];
    for (int m = 0; m < g->n; m++)
        active[m] = !stop_epoch || stop_epoch[g->member[m]->index] < 0;
}

/* Index of the first NaN or Inf of v[0..n), or -1. */
static long first_non_finite(const float *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!isfinite(v[i]))
            return (long)i;
    return -1;
}

/* A weight gone NaN or Inf is divergence whatever the loss says: a clamped
 * log turns NaN into a finite loss. One pass over the parameters costs far
 * less than the epoch that changed them. */
static void note_divergence(ipm_ensemble *e, int k, int epoch)
{
    const ipm_replica *rep = &e->local[k];
    if (e->diverged_at[k] >= 0)
        return;
    long bad = first_non_finite(rep->net.params, rep->net.n_params);
    if (bad >= 0 || !isfinite(rep->last_batch_loss)) {
        e->diverged_at[k] = epoch;
        e->bad_param[k] = bad;
    }
}

void ipm_ensemble_train_epoch(ipm_ensemble *e, const ipm_dataset *train, int epoch,
                              const int32_t *stop_epoch)
{
    double t0 = MPI_Wtime();
    ipm_data_view view = ipm_data_view_of(train);
    for (int q = 0; q < e->n_groups; q++) {
        int active[IPM_LANES];
        group_active(e, q, stop_epoch, active);
        ipm_group_train_epoch(&e->groups[q], &view, active);
    }
    for (int k = 0; k < e->n_local; k++) {
        ipm_replica *rep = &e->local[k];
        if (stop_epoch && stop_epoch[rep->index] >= 0)
            continue; /* [stopping] scope = replica: this one has stopped */
        if (e->group_of[k] < 0)
            ipm_replica_train_epoch(rep, &view);
        note_divergence(e, k, epoch);
    }
    e->seconds_train += MPI_Wtime() - t0;
    ipm_ensemble_weights_changed(e);
}

int ipm_ensemble_block_end(const ipm_ensemble *e, int n, int first)
{
    return n - first < e->block_rows ? n : first + e->block_rows;
}

/* Makes the lane workspaces of group q's members for plane p, within the
 * memory bound; 0 when they exist. */
static int make_lane_ws(ipm_ensemble *e, int q, int p, const ipm_workspace *like)
{
    const ipm_group *g = &e->groups[q];
    const ipm_net *net = &g->member[0]->net;
    size_t per_row = 0;
    for (int l = 0; l < net->n_layers; l++)
        per_row += (size_t)net->layer[l].out * sizeof(float);
    for (int m = 0; m < g->n; m++) {
        size_t c = (size_t)p * (size_t)e->n_local + (size_t)(g->member[m] - e->local);
        if (e->lane_made[c])
            continue;
        size_t bytes = (size_t)like->capacity * per_row;
        char err[IPM_ERRLEN];
        if (e->lane_bytes + bytes > LANE_WS_BYTES ||
            ipm_workspace_init(&e->lane_ws[c], net, like->capacity, err))
            return -1;
        e->lane_made[c] = 1;
        e->lane_bytes += bytes;
    }
    return 0;
}

/* Puts local replica k's pass of the whole plane p (data) into eval_ws from
 * its group's pass of all members, forwarding the group when k's pass is
 * not at hand. 0 when k has no group or its workspaces could not be made:
 * the caller then forwards k alone (the same bits). */
static int take_group_pass(ipm_ensemble *e, int k, const ipm_dataset *data, int p)
{
    int q = e->group_of[k];
    if (q < 0 || make_lane_ws(e, q, p, &e->eval_ws))
        return 0;
    ipm_group *g = &e->groups[q];
    size_t plane = (size_t)p * (size_t)e->n_local, c = plane + (size_t)k;
    if (!e->lane_fresh[c]) {
        ipm_workspace *ws[IPM_LANES];
        for (int m = 0; m < g->n; m++)
            ws[m] = &e->lane_ws[plane + (size_t)(g->member[m] - e->local)];
        ipm_data_view view = ipm_data_view_of(data);
        if (ipm_group_forward_block(g, &view, 0, data->n, ws))
            return 0;
        for (int m = 0; m < g->n; m++)
            e->lane_fresh[plane + (size_t)(g->member[m] - e->local)] = 1;
    }
    for (int l = 0; l < e->local[k].net.n_layers; l++) { /* hand the pass over */
        float *t = e->eval_ws.act[l];
        e->eval_ws.act[l] = e->lane_ws[c].act[l];
        e->lane_ws[c].act[l] = t;
    }
    e->lane_fresh[c] = 0;
    return 1;
}

void ipm_ensemble_forward_block(ipm_ensemble *e, int k, const ipm_dataset *data, int p, int first,
                                int rows, ipm_eval_totals *sum)
{
    IPM_ASSERT(k >= 0 && k < e->n_local && rows <= e->block_rows && first + rows <= data->n);
    int whole = first == 0 && rows == data->n;
    if (whole && e->held_replica == k && e->held_plane == p) {
        *sum = e->held;
        return;
    }
    double t0 = MPI_Wtime();
    ipm_data_view view = ipm_data_view_of(data);
    const ipm_replica *rep = &e->local[k];
    if (whole && take_group_pass(e, k, data, p))
        ipm_eval_totals_add(rep, data->y, rows, e->eval_ws.act[rep->net.n_layers - 1], sum);
    else
        ipm_replica_evaluate_block(rep, &view, first, rows, &e->eval_ws, sum);
    e->seconds_forward += MPI_Wtime() - t0;
    e->held_replica = whole ? k : -1;
    e->held_plane = p;
    e->held = *sum;
}

void ipm_ensemble_weights_changed(ipm_ensemble *e)
{
    e->held_replica = -1;
    if (e->lane_fresh)
        memset(e->lane_fresh, 0, (size_t)e->n_local * IPM_N_PLANES * sizeof(int));
}

void ipm_ensemble_watch_gradients(ipm_ensemble *e, int on)
{
    for (int k = 0; e->grad_stats && k < e->n_local; k++) {
        if (on)
            ipm_grad_stats_reset(&e->grad_stats[k]);
        e->local[k].grad_stats = on ? &e->grad_stats[k] : NULL;
    }
}

/* The watched epoch's gradient norms of the local replicas in their slots
 * (the others' stay 0). */
static void gradient_norms(ipm_ensemble *e)
{
    int cells = e->n_replicas * e->n_layers;
    memset(e->grad_mean_norm, 0, (size_t)cells * sizeof(double));
    memset(e->grad_std_norm, 0, (size_t)cells * sizeof(double));
    for (int k = 0; k < e->n_local; k++) {
        size_t row = (size_t)e->local[k].index * (size_t)e->n_layers;
        for (int l = 0; l < e->n_layers; l++)
            ipm_grad_stats_norms(&e->grad_stats[k], l, &e->grad_mean_norm[row + (size_t)l],
                                 &e->grad_std_norm[row + (size_t)l]);
    }
}

void ipm_ensemble_clear_losses(ipm_ensemble *e)
{
    memset(e->metrics, 0, 4 * (size_t)e->n_replicas * sizeof(double));
}

int ipm_ensemble_reduce_metrics(ipm_ensemble *e, char *err)
{
    if (e->grad_stats)
        gradient_norms(e);
    return ipm_sum_to_root(e->metrics, (int)e->n_metrics, e->comm, NULL, err);
}

/* What went non-finite first in local replica k, for the message. */
static void divergence_cause(const ipm_ensemble *e, int k, char *what, size_t cap)
{
    const ipm_replica *rep = &e->local[k];
    long bad = e->bad_param[k];
    if (bad >= 0)
        snprintf(what, cap, "weight %ld became %s", bad,
                 isnan(rep->net.params[bad]) ? "NaN" : "infinite");
    else
        snprintf(what, cap, "training loss became %s",
                 isnan(rep->last_batch_loss) ? "NaN" : "infinite");
}

const char *ipm_divergence_advice(int epoch)
{
    return epoch > 0 ? "lower [training] learning_rate"
                     : "the untrained network overflows: check [network] init and the data's scale";
}

int ipm_ensemble_check_divergence(const ipm_ensemble *e, int epoch, const char *output, char *err)
{
    for (int k = 0; k < e->n_local; k++) {
        int index = e->local[k].index;
        if (e->diverged_at[k] < 0 && isfinite(e->loss[index]))
            continue;
        char what[96];
        if (e->diverged_at[k] >= 0)
            divergence_cause(e, k, what, sizeof what);
        else
            snprintf(what, sizeof what, "loss became %s",
                     isnan(e->loss[index]) ? "NaN" : "infinite");
        int at = e->diverged_at[k] >= 0 ? e->diverged_at[k] : epoch;
        return ipm_fail_as(err, IPM_ERR_FAILED,
                           "replica %d diverged: its %s at epoch %d (detected at logged epoch "
                           "%d); %s. Epochs logged before are kept in %s",
                           index + 1, what, at, epoch, ipm_divergence_advice(at),
                           output); /* numbered from 1, as in the output */
    }
    return 0;
}
