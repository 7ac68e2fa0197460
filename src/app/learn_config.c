/* learn_config: from the config and data set to learn's spec and view. */
#include "ipmpi/app/learn_config.h"

#include <stdio.h>
#include <string.h>

#include "ipmpi/base/error.h"

void ipm_train_spec_from_config(const ipm_config *cfg, ipm_train_spec *spec)
{
    memset(spec, 0, sizeof *spec);
    memcpy(spec->layers, cfg->layers, sizeof spec->layers);
    spec->n_layers = cfg->n_layers;
    spec->init = cfg->init;
    spec->init_stddev = cfg->init_stddev;
    spec->optimizer = cfg->optimizer;
    spec->learning_rate = cfg->learning_rate;
    spec->momentum = cfg->momentum;
    spec->loss = cfg->loss;
    spec->batch_size = cfg->batch_size;
    spec->batches_per_epoch = cfg->batches_per_epoch;
    spec->seed = cfg->seed;
}

ipm_data_view ipm_data_view_of(const ipm_dataset *d)
{
    ipm_shape shape =
        d->height ? (ipm_shape){d->height, d->width, d->channels} : ipm_shape_flat(d->dim);
    return (ipm_data_view){.x = d->x, .y = d->y, .n = d->n, .dim = d->dim, .shape = shape};
}

/* learn's message `why`, prefixed by the place its key was set when it
 * starts with "[section] key: ..." or "[section] key = ..."; other
 * messages pass as they are. */
static int name_config_line(const ipm_config *cfg, const char *why, char *err)
{
    char section[32], key[32];
    int end = 0;
    if (sscanf(why, "[%31[a-z_]] %31[a-z_]%n", section, key, &end) == 2 && end > 0 &&
        (why[end] == ':' || strncmp(why + end, " = ", 3) == 0))
        return ipm_config_fail(cfg, section, key, err, "%s", why + end);
    return ipm_fail(err, "%s", why);
}

int ipm_net_for_config(ipm_net *net, const ipm_config *cfg, const ipm_dataset *train, int index,
                       char *err)
{
    ipm_train_spec spec;
    ipm_train_spec_from_config(cfg, &spec);
    char why[IPM_ERRLEN];
    if (ipm_net_for_spec(net, &spec, ipm_data_view_of(train).shape, index, why) == 0)
        return 0;
    return name_config_line(cfg, why, err);
}

int ipm_loss_check(const ipm_config *cfg, int n_classes, char *err)
{
    char why[IPM_ERRLEN];
    if (ipm_loss_fits(cfg->loss, &cfg->layers[cfg->n_layers - 1], n_classes, why) == 0)
        return 0;
    return name_config_line(cfg, why, err);
}

int ipm_replica_for_config(ipm_replica *rep, const ipm_config *cfg, const ipm_dataset *train,
                           int index, char *err)
{
    ipm_train_spec spec;
    ipm_train_spec_from_config(cfg, &spec);
    ipm_data_view view = ipm_data_view_of(train);
    char why[IPM_ERRLEN];
    if (ipm_replica_init(rep, &spec, &view, index, why) == 0)
        return 0;
    return name_config_line(cfg, why, err);
}
