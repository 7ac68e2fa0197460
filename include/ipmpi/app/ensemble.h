/* ensemble: the replicas this rank trains (replica r on rank r mod P) and
 * what the run needs of them: an epoch of training, forward passes of the
 * logged epochs in blocks, each replica's loss and accuracy (summed onto
 * rank 0, where each replica's slot comes from its own rank only), and the
 * divergence check. A replica's whole life depends only on (config, r), so
 * the ensemble's numbers do not depend on the rank count. Several local
 * replicas of an all-dense net train side by side in vector lanes
 * (learn/group.h), bitwise as they would alone. */
#ifndef IPMPI_APP_ENSEMBLE_H
#define IPMPI_APP_ENSEMBLE_H

#include <mpi.h>
#include <stdint.h>

#include "ipmpi/app/plan.h"
#include "ipmpi/learn/group.h"
#include "ipmpi/learn/replica.h"

typedef struct ipm_ensemble {
    MPI_Comm comm;
    int rank, size;
    int n_replicas, n_local;
    ipm_replica *local; /* replicas rank, rank + P, ... */
    int *diverged_at;   /* local: first epoch with a non-finite weight or batch loss */
    long *bad_param;    /* local: that weight's index (-1: the loss) */
    double *loss, *accuracy, *test_loss, *test_accuracy; /* n_replicas each, in metrics */
    double *metrics;       /* the values summed onto rank 0 at a logged epoch, one block */
    size_t n_metrics;      /* 4 n_replicas, + 2 n_replicas n_layers with grad_stats */
    ipm_workspace eval_ws; /* one block of block_rows samples, every layer */
    int block_rows;
    int held_replica, held_plane; /* whose whole-plane pass eval_ws holds (-1: none) */
    ipm_eval_totals held;
    double seconds_train, seconds_forward; /* accumulated */
    /* Replicas side by side (learn/group.h): groups of up to IPM_LANES local
     * replicas of an all-dense net; group_of[k] is k's group or -1. When a
     * plane fits one block, a group forwards all its members at once:
     * lane_ws[p * n_local + k] (made on first use) then holds k's pass of
     * plane p until lane_fresh says it was handed over or is stale. */
    ipm_group *groups;
    int n_groups;
    int *group_of;
    ipm_workspace *lane_ws;
    int *lane_fresh, *lane_made;
    size_t lane_bytes; /* what the lane workspaces hold */
    /* [output] gradients: each local replica's minibatch gradient statistics
     * (learn/grad_stats.h), gathered in the epochs being watched only, and
     * their norms, replicas x layers, summed onto rank 0 with the losses
     * (in metrics). NULL when off. */
    ipm_grad_stats *grad_stats; /* n_local */
    double *grad_mean_norm, *grad_std_norm;
    int n_layers;
} ipm_ensemble;

/* The plan's local replicas, initialised from (config, index). */
int ipm_ensemble_init(ipm_ensemble *e, const ipm_plan *plan, MPI_Comm comm, char *err);
void ipm_ensemble_free(ipm_ensemble *e);

/* Trains every local replica one epoch; replicas with stop_epoch[index] >= 0
 * (stop_epoch may be NULL) have stopped and are skipped. */
void ipm_ensemble_train_epoch(ipm_ensemble *e, const ipm_dataset *train, int epoch,
                              const int32_t *stop_epoch);

/* The end of the evaluation block that starts at first, for n samples. */
int ipm_ensemble_block_end(const ipm_ensemble *e, int n, int first);

/* Local replica k's forward pass of samples [first, first + rows) of data
 * (plane p) into eval_ws, its loss terms added to *sum. A plane that fits
 * one block is forwarded once per replica and epoch: a second call reuses
 * the pass eval_ws still holds. ipm_ensemble_weights_changed forgets it. */
void ipm_ensemble_forward_block(ipm_ensemble *e, int k, const ipm_dataset *data, int p, int first,
                                int rows, ipm_eval_totals *sum);
void ipm_ensemble_weights_changed(ipm_ensemble *e);

/* Whether the next epoch's minibatch gradients are gathered (its statistics
 * start afresh); a no-op without [output] gradients. Only logged epochs are
 * watched, so the others train at full speed. */
void ipm_ensemble_watch_gradients(ipm_ensemble *e, int on);

/* Zeroes every replica's loss and accuracy slots before a logged epoch. */
void ipm_ensemble_clear_losses(ipm_ensemble *e);

/* Collective, one reduce: the losses and accuracies and (with [output]
 * gradients) the watched epoch's gradient norms of every replica onto rank
 * 0 (exact: one rank fills each slot; a norm is NaN for a replica that
 * took no minibatch). */
int ipm_ensemble_reduce_metrics(ipm_ensemble *e, char *err);

/* A local replica whose weights (checked after every epoch of training),
 * training loss or measured loss went non-finite fails the run, naming the
 * replica, what diverged, the epoch and where the logged epochs are kept
 * (output). */
int ipm_ensemble_check_divergence(const ipm_ensemble *e, int epoch, const char *output, char *err);

/* What to change when a replica diverged at epoch: the learning rate once
 * it trained; at epoch 0 the untrained network already overflowed, which
 * no learning rate causes. */
const char *ipm_divergence_advice(int epoch);

#endif
