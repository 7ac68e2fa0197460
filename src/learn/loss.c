/* loss: cross-entropy and squared error, each one function for value and
 * gradient, and the prediction rule of an output layer. */
#include "ipmpi/learn/loss.h"

#include <math.h>
#include <stddef.h>

#include "ipmpi/base/error.h"
#include "ipmpi/learn/kernels.h"

/* Smallest probability the cross-entropy's value takes a log of. */
#define IPM_PROB_FLOOR 1e-12f

int ipm_loss_fits(enum ipm_loss loss, const ipm_layer_spec *last, int n_classes, char *err)
{
    const char *act = ipm_activation_name(last->activation);
    if (loss == IPM_LOSS_CROSS_ENTROPY) {
        int softmax = last->activation == IPM_ACT_SOFTMAX && last->units >= 2;
        int sigmoid = last->activation == IPM_ACT_SIGMOID && last->units == 1;
        if (!softmax && !sigmoid)
            return ipm_fail(err,
                            "[training] loss = cross_entropy needs a softmax output with >= "
                            "2 units or a single sigmoid unit (last layer is dense:%d:%s)",
                            last->units, act);
    }
    if (last->units == 1 && n_classes > 2)
        return ipm_fail(err,
                        "[network] layers: one output unit can only separate 2 classes, "
                        "the data has %d (last layer is dense:1:%s)",
                        n_classes, act);
    if (last->units > 1 && last->units < n_classes)
        return ipm_fail(err,
                        "[network] layers: %d output units cannot represent %d classes "
                        "(last layer is dense:%d:%s)",
                        last->units, n_classes, last->units, act);
    return 0;
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

static int argmax(const float *v, int n)
{
    int best = 0;
    for (int j = 1; j < n; j++)
        if (v[j] > v[best])
            best = j;
    return best;
}

/* One output unit predicts class 1 above the midpoint of its two training
 * targets, whichever loss trained it. */
static int predict(enum ipm_activation out_act, const float *row, int units)
{
    if (units > 1)
        return argmax(row, units);
    float threshold = 0.5f * (mse_target(out_act, 1, 0, 0) + mse_target(out_act, 1, 0, 1));
    return row[0] > threshold;
}

long ipm_count_correct(enum ipm_activation out_act, const float *out, const int32_t *y, int rows,
                       int units)
{
    long correct = 0;
    for (int r = 0; r < rows; r++)
        correct += predict(out_act, out + (size_t)r * (size_t)units, units) == y[r];
    return correct;
}

/* Rows whose probabilities one call of the vector log takes. */
#define LOG_CHUNK 256

/* -sum ln p over the probabilities the rows' labels were given (p of the
 * label's unit, or of the label under one sigmoid unit), each clamped to
 * IPM_PROB_FLOOR: one vector log per chunk of rows, where a libm log a row
 * took 5-7% of the 2017 net's training. */
static double label_log_sum(double sum, const float *out, const int32_t *y, int rows, int units)
{
    float p[LOG_CHUNK];
    for (int r0 = 0; r0 < rows; r0 += LOG_CHUNK) {
        int n = rows - r0 < LOG_CHUNK ? rows - r0 : LOG_CHUNK;
        for (int i = 0; i < n; i++) {
            const float *o = out + (size_t)(r0 + i) * (size_t)units;
            float q = units == 1 ? (y[r0 + i] ? o[0] : 1.0f - o[0]) : o[y[r0 + i]];
            p[i] = q > IPM_PROB_FLOOR ? q : IPM_PROB_FLOOR;
        }
        ipm_kernels_best()->log(p, (size_t)n);
        for (int i = 0; i < n; i++)
            sum -= p[i];
    }
    return sum;
}

/* Softmax + CE (several units) or sigmoid + binary CE (one unit); in both
 * the gradient with respect to the pre-activation is (p - target) / rows. */
static double cross_entropy(double sum, const float *out, const int32_t *y, int rows, int units,
                            int batch_rows, float *grad)
{
    sum = label_log_sum(sum, out, y, rows, units);
    if (!grad)
        return sum;
    float inv_rows = 1.0f / (float)batch_rows;
    for (int r = 0; r < rows; r++) {
        const float *o = out + (size_t)r * (size_t)units;
        float *g = grad + (size_t)r * (size_t)units;
        for (int j = 0; j < units; j++) {
            float target = units == 1 ? (float)(y[r] != 0) : (float)(j == y[r]);
            g[j] = (o[j] - target) * inv_rows;
        }
    }
    return sum;
}

static double squared_errors(double sum, enum ipm_activation out_act, const float *out,
                             const int32_t *y, int rows, int units, int batch_rows, float *grad)
{
    size_t count = (size_t)batch_rows * (size_t)units;
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

double ipm_loss_sum(enum ipm_loss loss, enum ipm_activation out_act, double sum, const float *out,
                    const int32_t *y, int rows, int units, int batch_rows, long *terms, float *grad,
                    int *grad_is_preactivation)
{
    if (grad_is_preactivation)
        *grad_is_preactivation = loss == IPM_LOSS_CROSS_ENTROPY;
    if (loss == IPM_LOSS_CROSS_ENTROPY) {
        *terms = rows;
        return cross_entropy(sum, out, y, rows, units, batch_rows, grad);
    }
    *terms = (long)rows * units;
    return squared_errors(sum, out_act, out, y, rows, units, batch_rows, grad);
}

double ipm_loss_eval(enum ipm_loss loss, enum ipm_activation out_act, const float *out,
                     const int32_t *y, int rows, int units, long *correct, float *grad,
                     int *grad_is_preactivation)
{
    if (correct)
        *correct += ipm_count_correct(out_act, out, y, rows, units);
    long terms;
    double sum = ipm_loss_sum(loss, out_act, 0.0, out, y, rows, units, rows, &terms, grad,
                              grad_is_preactivation);
    return sum / (double)terms;
}
