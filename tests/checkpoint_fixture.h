/* checkpoint_fixture: a tiny training set and config shared by
 * test_checkpoint (which writes the fuzz corpus with it) and fuzz_checkpoint
 * (which unpacks the corpus's replica states into replicas of this shape). */
#ifndef IPMPI_TESTS_CHECKPOINT_FIXTURE_H
#define IPMPI_TESTS_CHECKPOINT_FIXTURE_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ipmpi/base/rng.h"
#include "ipmpi/io/config.h"
#include "ipmpi/io/dataset.h"

/* n points in [-1,1]^2, label x0 + 0.5 x1 > 0. */
static void fixture_data(ipm_dataset *d, int n, uint64_t seed)
{
    memset(d, 0, sizeof *d);
    d->n = n;
    d->dim = 2;
    d->n_classes = 2;
    d->x = malloc(sizeof(float) * 2 * (size_t)n);
    d->y = malloc(sizeof(int32_t) * (size_t)n);
    ipm_rng rng;
    ipm_rng_init(&rng, seed, 0, IPM_RNG_DATA);
    for (int i = 0; i < n; i++) {
        d->x[2 * i] = (float)(2 * ipm_rng_uniform(&rng) - 1);
        d->x[2 * i + 1] = (float)(2 * ipm_rng_uniform(&rng) - 1);
        d->y[i] = d->x[2 * i] + 0.5f * d->x[2 * i + 1] > 0;
    }
}

static void fixture_data_free(ipm_dataset *d)
{
    free(d->x);
    free(d->y);
}

/* 2 -> 4 tanh -> 2 softmax, Adam, batches of 4 over 10 samples (a short
 * last batch) with 3 batches an epoch, so epochs end mid-pass. */
static void fixture_config(ipm_config *cfg)
{
    ipm_config_defaults(cfg);
    cfg->seed = 11;
    cfg->n_layers = 2;
    cfg->layers[0] = (ipm_layer_spec){.units = 4, .activation = IPM_ACT_TANH};
    cfg->layers[1] = (ipm_layer_spec){.units = 2, .activation = IPM_ACT_SOFTMAX};
    cfg->batch_size = 4;
    cfg->batches_per_epoch = 3;
    cfg->learning_rate = 0.05;
}

enum { FIXTURE_SAMPLES = 10, FIXTURE_DATA_SEED = 5 };

#endif
