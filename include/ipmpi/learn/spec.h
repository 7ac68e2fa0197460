/* spec: what a network is made of and how it is trained, as a user writes
 * it. The layer kinds, activations, initialisations, optimizers and losses,
 * a layer spec (dense:UNITS:ACT, conv:CHANNELS:KHxKW[:ACT], maxpool:KHxKW)
 * and a training spec (layers, init, optimizer, loss, batches, seed).
 * Shared by the config parser, the network and the output without tying any
 * of them to the others; ipm_layer_spec_format is the one place a spec
 * becomes text. learn/ reports a problem with a spec in a message that
 * starts with the key it concerns ("[network] layers: ...", "[training]
 * loss = ..."), so the app can name the config line the key was set on. */
#ifndef IPMPI_LEARN_SPEC_H
#define IPMPI_LEARN_SPEC_H

#include <stddef.h>
#include <stdint.h>

#define IPM_MAX_LAYERS 64

enum ipm_activation {
    IPM_ACT_LINEAR,
    IPM_ACT_TANH,
    IPM_ACT_RELU,
    IPM_ACT_SIGMOID,
    IPM_ACT_SOFTMAX
};
/* TRUNCATED_FAN_IN is the original IDNNs code's: truncated normal, stddev 1/sqrt(fan-in) per
 * layer; TRUNCATED_FAN_OUT is Saxe et al.'s (ibsgd): stddev 1/sqrt(the layer's units). */
enum ipm_init {
    IPM_INIT_XAVIER,
    IPM_INIT_HE,
    IPM_INIT_TRUNCATED_NORMAL,
    IPM_INIT_TRUNCATED_FAN_IN,
    IPM_INIT_TRUNCATED_FAN_OUT
};
enum ipm_optimizer { IPM_OPT_SGD, IPM_OPT_MOMENTUM, IPM_OPT_ADAM };
enum ipm_loss { IPM_LOSS_CROSS_ENTROPY, IPM_LOSS_MSE };
enum ipm_layer_kind { IPM_LAYER_DENSE, IPM_LAYER_CONV, IPM_LAYER_MAXPOOL };

/* dense:UNITS:ACT, conv:CHANNELS:KHxKW[:ACT] (valid padding, stride 1; ACT
 * default linear), maxpool:KHxKW (stride = kernel; activation linear).
 * A zero kind is dense: {.units = 10, .activation = IPM_ACT_TANH}. */
typedef struct ipm_layer_spec {
    int units; /* dense: units; conv: output channels; maxpool: 0 */
    enum ipm_activation activation;
    enum ipm_layer_kind kind;
    int kernel_h, kernel_w; /* conv and maxpool */
} ipm_layer_spec;

/* How replicas are built and trained. Replica r draws its initial weights
 * from Philox(seed, r, INIT) and its batches from Philox(seed, r, BATCH). */
typedef struct ipm_train_spec {
    ipm_layer_spec layers[IPM_MAX_LAYERS];
    int n_layers;
    enum ipm_init init;
    double init_stddev; /* init = truncated_normal:STDDEV */
    enum ipm_optimizer optimizer;
    double learning_rate, momentum; /* momentum: optimizer = momentum only */
    enum ipm_loss loss;
    int batch_size;
    int batches_per_epoch; /* 0 = a full pass over the training set */
    uint64_t seed;
} ipm_train_spec;

#define IPM_N_ACTIVATIONS 5
/* Indexed by enum ipm_activation: "linear", "tanh", "relu", "sigmoid", "softmax". */
extern const char *const ipm_activation_names[IPM_N_ACTIVATIONS];

/* Its name ("unknown" out of range). */
const char *ipm_activation_name(enum ipm_activation a);

/* The spec as the config writes it ("conv:8:5x5:relu"), truncated to size. */
void ipm_layer_spec_format(const ipm_layer_spec *s, char *buf, size_t size);

#endif
