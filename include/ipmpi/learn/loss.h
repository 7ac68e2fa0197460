/* loss: the training losses, each one function that gives the loss and,
 * when asked, its gradient, and the prediction rule of an output layer.
 *   cross_entropy  softmax output (several units) or one sigmoid unit
 *                  (binary CE); mean over the rows; its gradient is taken
 *                  with respect to the pre-activation, (p - target) / rows,
 *                  which fuses the softmax's Jacobian.
 *   mse            mean of the squared errors over all outputs; one unit
 *                  trains toward -1/+1 under tanh and 0/1 otherwise,
 *                  several units toward one-hot.
 * Accuracy: argmax with several outputs; with one, above the midpoint of
 * its two targets (0 under tanh, 0.5 otherwise) means class 1. Sums run in
 * row order so a set evaluated in blocks sums exactly as in one call. */
#ifndef IPMPI_LEARN_LOSS_H
#define IPMPI_LEARN_LOSS_H

#include <stdint.h>

#include "ipmpi/learn/spec.h"

/* Whether loss and the last layer fit each other and n_classes (e.g.
 * cross_entropy needs softmax with >= 2 units or one sigmoid unit); the
 * message starts with the key concerned, "[training] loss" or "[network]
 * layers". */
int ipm_loss_fits(enum ipm_loss loss, const ipm_layer_spec *last, int n_classes, char *err);

/* The running sum of loss terms after `rows` more rows of out (rows x units,
 * activated) against labels y, and in *terms how many terms it added (rows
 * for cross_entropy, rows x units for mse). When grad is not NULL writes
 * these rows' gradient (rows x units) of the mean loss over a batch of
 * batch_rows rows, and sets *grad_is_preactivation. */
double ipm_loss_sum(enum ipm_loss loss, enum ipm_activation out_act, double sum, const float *out,
                    const int32_t *y, int rows, int units, int batch_rows, long *terms, float *grad,
                    int *grad_is_preactivation);

/* Mean loss of out against labels y; adds the number of correct predictions
 * to *correct when not NULL; grad as in ipm_loss_sum. */
double ipm_loss_eval(enum ipm_loss loss, enum ipm_activation out_act, const float *out,
                     const int32_t *y, int rows, int units, long *correct, float *grad,
                     int *grad_is_preactivation);

/* Correct predictions among rows of out (rows x units) against y. */
long ipm_count_correct(enum ipm_activation out_act, const float *out, const int32_t *y, int rows,
                       int units);

#endif
