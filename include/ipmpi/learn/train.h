/* train: losses, optimizers and the per-replica training loop.
 * A replica owns its net, optimizer state and batch stream
 * Philox(seed, replica, BATCH); its results depend only on (config, replica).
 * Losses: cross_entropy (softmax output; or one sigmoid unit: binary CE),
 * mse (one output unit: targets -1/+1 for a tanh output, 0/1 otherwise;
 * several: one-hot), mean over the batch (mse: over all outputs).
 * Accuracy: argmax with several outputs; with one, output above 0 (tanh,
 * linear) or above 0.5 (other activations) means class 1. */
#ifndef IPMPI_TRAIN_H
#define IPMPI_TRAIN_H

#include <stddef.h>
#include <stdint.h>

#include "ipmpi/io/config.h"
#include "ipmpi/io/dataset.h"
#include "ipmpi/learn/net.h"
#include "ipmpi/base/rng.h"

/* cfg's network on train's input with the weights of replica `index`; a
 * shape that does not fit is an error naming the config line of
 * [network] layers and the item. */
int ipm_net_for_config(ipm_net *net, const ipm_config *cfg, const ipm_dataset *train, int index,
                       char *err);

/* Checks that cfg's loss and output layer fit (e.g. cross_entropy needs
 * softmax with >= 2 units or one sigmoid unit) and that the output can
 * represent n_classes; the error names the config line of [training] loss
 * or [network] layers. */
int ipm_loss_check(const ipm_config *cfg, int n_classes, char *err);

/* Mean loss of out (rows x units, already activated) against labels y;
 * adds the number of correct predictions to *correct when not NULL; when
 * grad is not NULL writes the gradient of the mean loss (rows x units) and
 * sets *grad_is_preactivation. */
double ipm_loss_eval(enum ipm_loss loss, enum ipm_activation out_act, const float *out,
                     const int32_t *y, int rows, int units, long *correct,
                     float *grad, int *grad_is_preactivation);

typedef struct ipm_optimizer_state {
    enum ipm_optimizer kind;
    double learning_rate, momentum;  /* momentum: SGD momentum; Adam uses 0.9, 0.999, 1e-8 */
    long step;
    size_t n;
    float *m, *v;                    /* velocity / Adam moments */
} ipm_optimizer_state;

int ipm_optimizer_init(ipm_optimizer_state *opt, const ipm_config *cfg, size_t n_params, char *err);
void ipm_optimizer_step(ipm_optimizer_state *opt, float *params, const float *grads);
void ipm_optimizer_free(ipm_optimizer_state *opt);

typedef struct ipm_replica {
    int index;
    ipm_net net;
    ipm_optimizer_state opt;
    ipm_workspace batch_ws;
    ipm_rng batch_rng;
    int32_t *order;      /* shuffled sample order; reshuffled at every wrap */
    int n_train;         /* length of order: the training set's samples */
    int position;        /* next index into order */
    int batch_size;
    int batches_per_epoch;
    enum ipm_loss loss;
    float *xb, *grad;    /* batch inputs, loss gradient */
    int32_t *yb;
    double last_batch_loss;
} ipm_replica;

/* Initial weights from Philox(seed, index, INIT), batch order from
 * Philox(seed, index, BATCH). */
int ipm_replica_init(ipm_replica *rep, const ipm_config *cfg, const ipm_dataset *train,
                     int index, char *err);
void ipm_replica_free(ipm_replica *rep);

/* One epoch: batches_per_epoch minibatches (0: ceil(n / batch_size), i.e. a
 * full pass), each one gradient step. */
void ipm_replica_train_epoch(ipm_replica *rep, const ipm_dataset *train);

/* Forwards every sample of d into ws (capacity >= d->n) and returns the mean
 * loss and accuracy (NaN for an empty set or a workspace too small). */
void ipm_replica_evaluate(const ipm_replica *rep, const ipm_dataset *d, ipm_workspace *ws,
                          double *loss, double *accuracy);

/* Running totals of an evaluation in blocks of samples; start from {0}. */
typedef struct ipm_eval_totals {
    double loss_sum;  /* the loss terms summed in sample order */
    long terms;       /* how many: samples (cross_entropy) or samples x outputs (mse) */
    long correct, rows;
} ipm_eval_totals;

/* Forwards samples [first, first + rows) of d into ws's first rows rows
 * (rows <= ws->capacity) and adds them to *sum. The loss sum continues in
 * sample order, so blocks covering the set in order give bitwise the totals
 * of one block over it when the forward passes agree bit for bit (they do
 * for the same block rows; a matrix product of another row count may round
 * differently, see net.h). A block outside d or ws makes loss_sum NaN. */
void ipm_replica_evaluate_block(const ipm_replica *rep, const ipm_dataset *d, int first,
                                int rows, ipm_workspace *ws, ipm_eval_totals *sum);

/* Mean loss and accuracy of the totals; NaN when empty. ipm_replica_evaluate
 * is one block over the whole set followed by this. */
void ipm_eval_totals_mean(const ipm_eval_totals *sum, double *loss, double *accuracy);

/* A replica's whole training state as a portable byte blob (little-endian,
 * fixed width), for checkpoints: its index and shape (layers, optimizer,
 * training-set size, to refuse a blob of another replica or config), the
 * optimizer step, last batch loss, batch stream state, position, params,
 * optimizer moments and batch order. Unpacking it into a replica initialised
 * from the same config and index, then training, gives bitwise the same
 * params as training the original on. */
size_t ipm_replica_state_size(const ipm_replica *rep);

/* size must be ipm_replica_state_size(rep). */
int ipm_replica_pack(const ipm_replica *rep, unsigned char *buf, size_t size, char *err);

/* Validates the whole blob (size, index, shape, stream, that order is a
 * permutation, position) before changing anything: on failure rep is
 * untouched. */
int ipm_replica_unpack(ipm_replica *rep, const unsigned char *buf, size_t size, char *err);

#endif
