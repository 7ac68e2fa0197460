/* replica: one member of the ensemble and its training loop. A replica owns
 * its net, optimizer state and batch stream Philox(seed, replica, BATCH);
 * its results depend only on (training spec, data, replica index). Batches
 * are consecutive slices of a shuffled order, reshuffled at every wrap.
 * Evaluation runs the net over a data set in blocks of samples and sums
 * the loss and correct predictions (loss.h). */
#ifndef IPMPI_LEARN_REPLICA_H
#define IPMPI_LEARN_REPLICA_H

#include <stddef.h>
#include <stdint.h>

#include "ipmpi/base/rng.h"
#include "ipmpi/learn/grad_stats.h"
#include "ipmpi/learn/loss.h"
#include "ipmpi/learn/net.h"
#include "ipmpi/learn/optimizer.h"
#include "ipmpi/learn/spec.h"

/* The samples a replica learns from or is evaluated on: n rows of dim
 * features (x, row-major) and their classes y. shape is the network input
 * a row is (image HWC, or flat: ipm_shape_flat(dim)). */
typedef struct ipm_data_view {
    const float *x;
    const int32_t *y;
    int n, dim;
    ipm_shape shape;
} ipm_data_view;

/* The net of spec on input `input` with the weights of replica `index`
 * (Philox(seed, index, INIT)). */
int ipm_net_for_spec(ipm_net *net, const ipm_train_spec *spec, ipm_shape input, int index,
                     char *err);

typedef struct ipm_replica {
    int index;
    ipm_net net;
    ipm_optimizer_state opt;
    ipm_workspace batch_ws;
    ipm_rng batch_rng;
    int32_t *order; /* shuffled sample order; reshuffled at every wrap */
    int n_train;    /* length of order: the training set's samples */
    int position;   /* next index into order */
    int batch_size;
    int batches_per_epoch;
    enum ipm_loss loss;
    float *xb, *grad; /* batch inputs, loss gradient */
    int32_t *yb;
    double last_batch_loss;
    ipm_grad_stats *grad_stats; /* NULL, or where each minibatch gradient is added (not owned) */
} ipm_replica;

/* Initial weights from Philox(seed, index, INIT), batch order from
 * Philox(seed, index, BATCH). */
int ipm_replica_init(ipm_replica *rep, const ipm_train_spec *spec, const ipm_data_view *train,
                     int index, char *err);
void ipm_replica_free(ipm_replica *rep);

/* One epoch: batches_per_epoch minibatches (0: ceil(n / batch_size), i.e. a
 * full pass), each one gradient step. */
void ipm_replica_train_epoch(ipm_replica *rep, const ipm_data_view *train);

/* Batches of the epoch (ipm_replica_train_epoch's count). */
int ipm_replica_batches(const ipm_replica *rep);

/* Starts the next batch: reshuffles the order when it is used up, sets
 * *first and returns the rows of the batch, the samples order[*first ..
 * *first + rows), and moves past them. */
int ipm_replica_take_batch(ipm_replica *rep, int *first);

/* One minibatch's gradient, in rep->net.grads, added to rep->grad_stats
 * (when set) and applied by the optimizer: the end of every training step,
 * alone or side by side (group.h). */
void ipm_replica_apply_gradient(ipm_replica *rep);

/* Forwards every sample of d into ws (capacity >= d->n) and returns the mean
 * loss and accuracy (NaN for an empty set or a workspace too small). */
void ipm_replica_evaluate(const ipm_replica *rep, const ipm_data_view *d, ipm_workspace *ws,
                          double *loss, double *accuracy);

/* Running totals of an evaluation in blocks of samples; start from {0}. */
typedef struct ipm_eval_totals {
    double loss_sum; /* the loss terms summed in sample order */
    long terms;      /* how many: samples (cross_entropy) or samples x outputs (mse) */
    long correct, rows;
} ipm_eval_totals;

/* Forwards samples [first, first + rows) of d into ws's first rows rows
 * (rows <= ws->capacity) and adds them to *sum. The loss sum continues in
 * sample order, so blocks covering the set in order give bitwise the totals
 * of one block over it when the forward passes agree bit for bit (they do
 * for the same block rows; a matrix product of another row count may round
 * differently, see net.h). A block outside d or ws makes loss_sum NaN. */
void ipm_replica_evaluate_block(const ipm_replica *rep, const ipm_data_view *d, int first, int rows,
                                ipm_workspace *ws, ipm_eval_totals *sum);

/* Adds rows more outputs of the replica's last layer (rows x units,
 * activated) against labels y to *sum. */
void ipm_eval_totals_add(const ipm_replica *rep, const int32_t *y, int rows, const float *out,
                         ipm_eval_totals *sum);

/* Mean loss and accuracy of the totals; NaN when empty. ipm_replica_evaluate
 * is one block over the whole set followed by this. */
void ipm_eval_totals_mean(const ipm_eval_totals *sum, double *loss, double *accuracy);

/* A replica's whole training state as a portable byte blob (base/bytes.h),
 * for checkpoints: its index and shape (layers, optimizer, training-set
 * size, to refuse a blob of another replica or config), the optimizer step,
 * last batch loss, batch stream state, position, params, optimizer moments
 * and batch order. Unpacking it into a replica initialised from the same
 * spec and index, then training, gives bitwise the same params as training
 * the original on. */
size_t ipm_replica_state_size(const ipm_replica *rep);

/* size must be ipm_replica_state_size(rep). */
int ipm_replica_pack(const ipm_replica *rep, unsigned char *buf, size_t size, char *err);

/* Validates the whole blob (size, index, shape, stream, that order is a
 * permutation, position) before changing anything: on failure rep is
 * untouched. */
int ipm_replica_unpack(ipm_replica *rep, const unsigned char *buf, size_t size, char *err);

#endif
