#include "ipmpi/app/observe.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "ipmpi/app/edges.h"
#include "ipmpi/base/error.h"

/* The measure a pass over plane p feeds, and where its samples start in
 * it: on = whole, the training plane's measure takes the test samples after
 * the training ones. */
static ipm_measure *measure_of(const ipm_observation *o, int p, int *offset)
{
    int whole = o->plan->whole_plane;
    *offset = whole && p == IPM_PLANE_TEST ? o->plan->data[IPM_PLANE_TRAIN].n : 0;
    return whole ? o->plane[IPM_PLANE_TRAIN] : o->plane[p];
}

/* A first forward pass of every local replica finds each layer's range.
 * Forwarding twice costs less memory than keeping every replica's
 * activations; going backwards leaves eval_ws holding the pass the binning
 * starts with, when a plane fits one block. */
static int agree_ranges(const ipm_observation *o, char *err)
{
    ipm_ensemble *e = o->ensemble;
    for (int k = e->n_local - 1; k >= 0; k--)
        for (int p = IPM_N_PLANES - 1; p >= 0; p--) {
            int offset;
            ipm_measure *m = measure_of(o, p, &offset);
            const ipm_dataset *d = &o->plan->data[p];
            for (int first = 0, end; m && first < d->n; first = end) {
                ipm_eval_totals unused = {0};
                end = ipm_ensemble_block_end(e, d->n, first);
                ipm_ensemble_forward_block(e, k, d, p, first, end - first, &unused);
                ipm_edges_observe(m, k, e->local[k].index, &e->eval_ws, offset + first,
                                  end - first);
            }
        }
    int rc = 0;
    for (int p = 0; p < IPM_N_PLANES; p++)
        if (o->plane[p] && ipm_edges_agree(o->plane[p], e->comm, err))
            rc = -1;
    return rc;
}

/* Whether no value is NaN or infinite (exponent bits all ones): one
 * branch-free pass the compiler vectorises, where a test and branch a
 * value took 9% of Experiment 2's run. */
static int all_finite(const float *a, size_t n)
{
    uint32_t bad = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t bits;
        memcpy(&bits, &a[i], sizeof bits);
        bad |= (uint32_t)((bits & 0x7f800000u) == 0x7f800000u);
    }
    return !bad;
}

/* NaN or Inf in a layer's activations is divergence, caught here before
 * binning (which would put it in an outermost bin) or the loss (whose
 * clamped log would turn it finite) can hide it. */
static int check_finite_block(const ipm_observation *o, int k, int epoch, int first, int rows,
                              char *err)
{
    const ipm_ensemble *e = o->ensemble;
    const ipm_plan *plan = o->plan;
    for (int l = 0; l < plan->cfg->n_layers; l++) {
        const float *a = e->eval_ws.act[l];
        size_t n = (size_t)rows * (size_t)plan->width[l];
        if (all_finite(a, n))
            continue;
        for (size_t i = 0; i < n; i++)
            if (!isfinite(a[i]))
                return ipm_fail_as(err, IPM_ERR_FAILED,
                                   "replica %d diverged: layer %d's activation of sample %zu "
                                   "became %s at epoch %d; %s. Epochs logged before are kept "
                                   "in %s",
                                   e->local[k].index + 1, l + 1, /* from 1, as the output */
                                   (size_t)first + i / (size_t)plan->width[l],
                                   isnan(a[i]) ? "NaN" : "infinite", epoch,
                                   ipm_divergence_advice(epoch), plan->cfg->output);
    }
    return 0;
}

/* Local replica k over plane p, block by block: forward, check, bin, keep. */
static int observe_plane(const ipm_observation *o, int k, int p, int epoch, double *loss,
                         double *accuracy, char *err)
{
    ipm_ensemble *e = o->ensemble;
    int offset;
    ipm_measure *m = measure_of(o, p, &offset);
    const ipm_dataset *d = &o->plan->data[p];
    ipm_activation_store *store = p == IPM_PLANE_TRAIN || o->plan->whole_plane ? o->store : NULL;
    if (m && offset == 0 && ipm_measure_replica_begin(m, e->local[k].index, err))
        return -1;
    ipm_eval_totals sum = {0};
    for (int first = 0, end; first < d->n; first = end) {
        end = ipm_ensemble_block_end(e, d->n, first);
        ipm_ensemble_forward_block(e, k, d, p, first, end - first, &sum);
        if (check_finite_block(o, k, epoch, first, end - first, err))
            return -1;
        if (m && ipm_measure_replica_block(m, &e->eval_ws, offset + first, end - first, err))
            return -1;
        if (store &&
            ipm_activation_store_keep(store, k, &e->eval_ws, offset + first, end - first, err))
            return -1;
    }
    ipm_eval_totals_mean(&sum, loss, accuracy);
    return 0;
}

static int observe_replica(const ipm_observation *o, int k, int epoch, char *err)
{
    ipm_ensemble *e = o->ensemble;
    int index = e->local[k].index;
    if (observe_plane(o, k, IPM_PLANE_TRAIN, epoch, &e->loss[index], &e->accuracy[index], err))
        return -1;
    if (o->plan->data[IPM_PLANE_TEST].n == 0)
        return 0;
    return observe_plane(o, k, IPM_PLANE_TEST, epoch, &e->test_loss[index],
                         &e->test_accuracy[index], err);
}

int ipm_observe_epoch(const ipm_observation *o, int epoch, char *err)
{
    ipm_ensemble_weights_changed(o->ensemble);
    ipm_ensemble_clear_losses(o->ensemble);
    for (int p = 0; p < IPM_N_PLANES; p++)
        if (o->plane[p])
            ipm_measure_begin(o->plane[p], epoch);
    const ipm_measure *any =
        o->plane[IPM_PLANE_TRAIN] ? o->plane[IPM_PLANE_TRAIN] : o->plane[IPM_PLANE_TEST];
    if (any && ipm_edges_from_data(any) && agree_ranges(o, err))
        return -1;
    for (int k = 0; k < o->ensemble->n_local; k++)
        if (observe_replica(o, k, epoch, err))
            return -1;
    return 0;
}
