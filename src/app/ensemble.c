#include "ipmpi/app/ensemble.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ipmpi/app/learn_config.h"
#include "ipmpi/base/assert.h"
#include "ipmpi/base/error.h"
#include "ipmpi/parallel/comm.h"

static int alloc_arrays(ipm_ensemble *e, int n_local, char *err)
{
    size_t n = (size_t)e->n_replicas;
    e->loss = calloc(n, sizeof(double));
    e->accuracy = calloc(n, sizeof(double));
    e->test_loss = calloc(n, sizeof(double));
    e->test_accuracy = calloc(n, sizeof(double));
    e->local = calloc((size_t)n_local + 1, sizeof(ipm_replica));
    e->diverged_at = calloc((size_t)n_local + 1, sizeof(int));
    if (!e->loss || !e->accuracy || !e->test_loss || !e->test_accuracy || !e->local ||
        !e->diverged_at)
        return ipm_fail(err, "out of memory for %d replicas", e->n_replicas);
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
    if (alloc_arrays(e, plan->n_local, err))
        return -1;
    /* Counted before each init: a zeroed or half-built replica frees cleanly. */
    for (int k = 0; k < plan->n_local; k++) {
        e->n_local = k + 1;
        e->diverged_at[k] = -1;
        if (ipm_replica_for_config(&e->local[k], plan->cfg, &plan->data[IPM_PLANE_TRAIN],
                                   e->rank + k * e->size, err))
            return -1;
    }
    return ipm_workspace_init(&e->eval_ws, &plan->shape, plan->block_rows, err);
}

void ipm_ensemble_free(ipm_ensemble *e)
{
    for (int k = 0; k < e->n_local; k++)
        ipm_replica_free(&e->local[k]);
    ipm_workspace_free(&e->eval_ws);
    free(e->local);
    free(e->diverged_at);
    free(e->loss);
    free(e->accuracy);
    free(e->test_loss);
    free(e->test_accuracy);
    memset(e, 0, sizeof *e);
}

void ipm_ensemble_train_epoch(ipm_ensemble *e, const ipm_dataset *train, int epoch,
                              const int32_t *stop_epoch)
{
    double t0 = MPI_Wtime();
    ipm_data_view view = ipm_data_view_of(train);
    for (int k = 0; k < e->n_local; k++) {
        ipm_replica *rep = &e->local[k];
        if (stop_epoch && stop_epoch[rep->index] >= 0)
            continue; /* [stopping] scope = replica: this one has stopped */
        ipm_replica_train_epoch(rep, &view);
        if (e->diverged_at[k] < 0 && !isfinite(rep->last_batch_loss))
            e->diverged_at[k] = epoch;
    }
    e->seconds_train += MPI_Wtime() - t0;
    ipm_ensemble_weights_changed(e);
}

int ipm_ensemble_block_end(const ipm_ensemble *e, int n, int first)
{
    return n - first < e->block_rows ? n : first + e->block_rows;
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
    ipm_replica_evaluate_block(&e->local[k], &view, first, rows, &e->eval_ws, sum);
    e->seconds_forward += MPI_Wtime() - t0;
    e->held_replica = whole ? k : -1;
    e->held_plane = p;
    e->held = *sum;
}

void ipm_ensemble_weights_changed(ipm_ensemble *e)
{
    e->held_replica = -1;
}

void ipm_ensemble_clear_losses(ipm_ensemble *e)
{
    size_t n = (size_t)e->n_replicas * sizeof(double);
    memset(e->loss, 0, n);
    memset(e->accuracy, 0, n);
    memset(e->test_loss, 0, n);
    memset(e->test_accuracy, 0, n);
}

int ipm_ensemble_reduce_losses(ipm_ensemble *e, int has_test, char *err)
{
    double *vals[4] = {e->loss, e->accuracy, e->test_loss, e->test_accuracy};
    for (int k = 0; k < (has_test ? 4 : 2); k++)
        if (ipm_sum_to_root(vals[k], e->n_replicas, e->comm, err))
            return -1;
    return 0;
}

int ipm_ensemble_check_divergence(const ipm_ensemble *e, int epoch, const char *output,
                                  char *err)
{
    for (int k = 0; k < e->n_local; k++) {
        int index = e->local[k].index;
        if (e->diverged_at[k] < 0 && isfinite(e->loss[index]))
            continue;
        int at = e->diverged_at[k] >= 0 ? e->diverged_at[k] : epoch;
        return ipm_fail(err,
                        "replica %d diverged: its training loss became %s at epoch %d "
                        "(detected at logged epoch %d); lower [training] learning_rate. "
                        "Epochs logged before are kept in %s",
                        index, isnan(e->local[k].last_batch_loss) ? "NaN" : "infinite", at,
                        epoch, output);
    }
    return 0;
}
