#include "ipmpi/app/plan.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ipmpi/app/learn_config.h"
#include "ipmpi/app/measure.h"
#include "ipmpi/app/paths.h"
#include "ipmpi/base/assert.h"
#include "ipmpi/base/error.h"
#include "ipmpi/base/memory.h"
#include "ipmpi/info/partition.h"
#include "ipmpi/io/ranges.h"
#include "ipmpi/parallel/kde.h"

/* The forward pass of a logged epoch runs in blocks of this many samples,
 * so that the evaluation workspace (every layer's activations, maxpool's
 * argmax) stays near this size however large the data set: a CNN's conv
 * layer on 10000 images would otherwise hold hundreds of MB per rank. */
#define EVAL_BLOCK_BYTES ((size_t)32 << 20)

int ipm_epoch_listed(const int *sorted, int n, int epoch)
{
    for (int lo = 0, hi = n - 1; lo <= hi;) {
        int mid = lo + (hi - lo) / 2;
        if (sorted[mid] == epoch)
            return 1;
        if (sorted[mid] < epoch)
            lo = mid + 1;
        else
            hi = mid - 1;
    }
    return 0;
}

/* The block depends on the layer shapes only, never on ranks or replicas,
 * so a replica's numbers do not depend on where it runs. */
static int choose_block_rows(const ipm_net *shape, int n, int forced)
{
    size_t per_row = 0;
    for (int l = 0; l < shape->n_layers; l++) {
        const ipm_layer *d = &shape->layer[l];
        per_row += (size_t)d->out * (d->kind == IPM_LAYER_MAXPOOL ? 2 : 1) * sizeof(float);
    }
    size_t rows = per_row ? EVAL_BLOCK_BYTES / per_row : (size_t)n;
    if (forced > 0)
        rows = (size_t)forced;
    return rows < 1 ? 1 : rows < (size_t)n ? (int)rows : n;
}

/* The epochs a selection will expand to, counted before it is expanded. */
static double selection_size(const ipm_epoch_spec *spec, int last)
{
    switch (spec->rule) {
    case IPM_EPOCHS_ALL:
        return (double)last + 1;
    case IPM_EPOCHS_EVERY:
        return (double)last / (spec->param > 0 ? spec->param : 1) + 2;
    case IPM_EPOCHS_LOG:
        return (double)(spec->param < last ? spec->param : last) + 2;
    case IPM_EPOCHS_LIST:
        return (double)spec->n_list + 1;
    }
    return 0;
}

/* A selection expanded, or an error naming its key: too many epochs to
 * hold (each logged one also costs a record) or no memory for the list. */
static int expand_selection(const ipm_plan *p, const char *section, const char *name,
                            const ipm_epoch_spec *spec, int **epochs, int *n, char *err)
{
    const ipm_config *cfg = p->cfg;
    double bytes = selection_size(spec, cfg->epochs) * (double)sizeof(int) * 4;
    char why[IPM_ERRLEN], size[32], limit[32];
    if (bytes > (double)ipm_memory_available()) {
        ipm_memory_format(bytes, size, sizeof size);
        ipm_memory_format((double)ipm_memory_available(), limit, sizeof limit);
        return ipm_config_fail(cfg, section, name, err,
                               ": with [training] epochs = %d this "
                               "selects too many epochs to hold (%s, more than the %s this "
                               "process may use)",
                               cfg->epochs, size, limit);
    }
    if (ipm_epochs_expand(spec, cfg->epochs, epochs, n, why))
        return ipm_config_fail(cfg, section, name, err, ": %s", why);
    return 0;
}

/* Adds the sorted epochs extra[0..n_extra) to the logged ones. */
static int merge_logged(ipm_plan *p, const int *extra, int n_extra, char *err)
{
    int *merged = malloc(((size_t)p->n_log + (size_t)n_extra + 1) * sizeof *merged);
    if (!merged)
        return ipm_fail(err, "out of memory for the logged epochs");
    memcpy(merged, p->log_epochs, (size_t)p->n_log * sizeof *merged);
    memcpy(merged + p->n_log, extra, (size_t)n_extra * sizeof *merged);
    int n = ipm_sort_unique(merged, p->n_log + n_extra);
    free(p->log_epochs);
    p->log_epochs = merged;
    p->n_log = n;
    return 0;
}

/* The stopping checks need the plane measured: their epochs are logged too. */
static int add_check_epochs(ipm_plan *p, char *err)
{
    const ipm_config *cfg = p->cfg;
    if (cfg->stop_criterion == IPM_STOP_NONE)
        return 0;
    ipm_epoch_spec checks = {IPM_EPOCHS_EVERY, cfg->stop_check_every, NULL, 0};
    int *extra, n_extra;
    if (expand_selection(p, "stopping", "check_every", &checks, &extra, &n_extra, err))
        return -1;
    int rc = merge_logged(p, extra, n_extra, err);
    free(extra);
    return rc;
}

/* Activations are gathered at logged epochs, so stored epochs are logged
 * too (else their slots would stay fill values). */
static int make_schedule(ipm_plan *p, char *err)
{
    const ipm_config *cfg = p->cfg;
    if (expand_selection(p, "information", "epochs", &cfg->info_epochs, &p->log_epochs, &p->n_log,
                         err) ||
        add_check_epochs(p, err) ||
        expand_selection(p, "output", "activations", &cfg->activation_epochs, &p->act_epochs,
                         &p->n_act, err))
        return -1;
    return merge_logged(p, p->act_epochs, p->n_act, err);
}

/* Bytes a pair (sample, replica) may take, every pattern distinct. */
enum {
    IDS_BYTES = 4,         /* its pattern id, per measured layer, on its rank */
    COUNTER_BYTES = 24,    /* dense counting on one rank */
    TREE_TABLE_BYTES = 96, /* per table: a 32-byte slot at the load, a 32-byte entry in flight */
    ROW_BYTES = 16,        /* partitioned: a pattern sent to (and received by) its sample's owner */
    CELL_SEND_BYTES = 52,  /* partitioned: a (Y, T) cell counted, grouped and packed */
    CELL_RECEIVE_BYTES = 24, /* partitioned: a cell received by its pattern's owner */
    OWNER_ROW_BYTES = 16,    /* partitioned: a received pattern kept to compare (largest layer) */
    OWNER_CELL_BYTES = 96,   /* partitioned: a received cell sorted and counted (largest layer) */
    FILTER_BYTES = 2,        /* partitioned, filtered: of all pairs, per layer (info/partition.h:
                                4 slots a pattern, up to twice that as a power of two, 2 bits a slot) */
    HASH_BYTES = 8, /* partitioned: a pattern's hash, per measured layer, kept for routing */
};

#define FILTER_MOST_BYTES (32.0 * 1024 * 1024) /* a layer's filter at most */

/* One plane's worst case on the busiest rank: n samples, r replicas. A
 * partition's kept buffers are taken a quarter larger than they are filled
 * (info/partition.c). The part of a malloc'd one never written is never
 * faulted in; the zeroed sums may be, and the constants' slack covers them
 * (a sent cell is counted as 52 bytes, about 36 in use). */
static double plane_bytes(const ipm_plan *p, double n, double r)
{
    const ipm_config *cfg = p->cfg;
    double layers = p->n_measured_layers, ranks = p->n_ranks;
    double local = ceil(r / ranks), held = n * local; /* pairs binned on one rank */
    int pooled = (cfg->estimators & IPM_EST_POOLED) != 0;
    int sampled = (cfg->estimators & IPM_EST_SAMPLED) != 0;
    double bytes = IDS_BYTES * held * layers;
    if (p->n_ranks == 1)
        return bytes + COUNTER_BYTES * held;
    if (cfg->reduce == IPM_REDUCE_TREE) /* rank 0 ends with every table merged */
        return bytes + 3.0 * TREE_TABLE_BYTES * layers * (pooled * n * r + sampled * n);
    /* partitioned: a rank sends its pairs and receives and counts its share */
    double owned = ceil(n / ranks) * (pooled ? r : 1), drawn = ceil(n / ranks);
    double sent = pooled * held + sampled * drawn, received = pooled * owned + sampled * drawn;
    bytes += layers * (ROW_BYTES * (pooled ? held : drawn) + CELL_SEND_BYTES * sent);
    bytes += layers * (ROW_BYTES * owned + CELL_RECEIVE_BYTES * received);
    bytes += layers * HASH_BYTES * held;
    if (ranks <= IPM_FILTER_MOST_PARTS)
        bytes += layers * fmin(FILTER_BYTES * n * r, FILTER_MOST_BYTES);
    return bytes + OWNER_ROW_BYTES * owned + OWNER_CELL_BYTES * received;
}

/* kde on one plane of n samples, on the busiest rank: the local replicas'
 * activations of every measured layer, and the workspace of the widest one
 * (layers are bounded one after the other). Linear in n: no n x n matrix. */
static double kde_plane_bytes(const ipm_plan *p, int n)
{
    if (!(p->cfg->estimators & IPM_EST_KDE))
        return 0;
    int local = (p->n_replicas + p->n_ranks - 1) / p->n_ranks;
    double workspace = 0;
    for (int l = 0; l < p->cfg->n_layers; l++) {
        ipm_kde_shape shape = {n, p->n_replicas, p->width[l], p->cfg->kde_variance};
        double w = p->layer_measured[l] ? (double)ipm_kde_workspace_bytes(&shape, p->n_ranks) : 0;
        workspace = w > workspace ? w : workspace;
    }
    return workspace +
           ipm_measure_kde_bytes(n, local, p->width, p->layer_measured, p->cfg->n_layers);
}

/* The counts' worst case on the busiest rank, every pattern distinct, and
 * what kde keeps. Refusing here beats an out-of-memory kill. */
static int check_table_memory(const ipm_plan *p, char *err)
{
    const ipm_config *cfg = p->cfg;
    double worst = 0;
    for (int k = 0; k < IPM_N_PLANES; k++) {
        ipm_kde_shape shape = {ipm_plan_measured_data(p, k)->n, p->n_replicas, 1,
                               cfg->kde_variance};
        char why[IPM_ERRLEN];
        if (p->measured[k] && (cfg->estimators & IPM_EST_KDE) && ipm_kde_check_shape(&shape, why))
            return ipm_config_fail(cfg, "information", "estimators", err, ": kde: %s", why);
    }
    for (int k = 0; k < IPM_N_PLANES; k++)
        if (p->measured[k])
            worst += plane_bytes(p, ipm_plan_measured_data(p, k)->n, p->n_replicas) +
                     kde_plane_bytes(p, ipm_plan_measured_data(p, k)->n);
    double mb = worst / (1024.0 * 1024.0);
    if (mb <= cfg->max_table_mb)
        return 0;
    return ipm_config_fail(
        cfg, "information", "max_table_mb", err,
        " = %d: the count tables%s may need up to %.0f MB on one rank (%d "
        "samples x %d replicas x %d layers on %d rank%s, reduce = %s, every "
        "pattern distinct); raise max_table_mb, or use more ranks, fewer "
        "replicas, samples or estimators",
        cfg->max_table_mb, (cfg->estimators & IPM_EST_KDE) ? " and kde's activations" : "", mb,
        p->data[IPM_PLANE_TRAIN].n, p->n_replicas, p->n_measured_layers, p->n_ranks,
        p->n_ranks == 1 ? "" : "s", cfg->reduce == IPM_REDUCE_TREE ? "tree" : "partitioned");
}

static int measure_layers_and_planes(ipm_plan *p, char *err)
{
    const ipm_config *cfg = p->cfg;
    for (int l = 0; l < cfg->n_layers; l++) {
        p->width[l] = p->shape.layer[l].out;
        p->layer_measured[l] = ipm_config_measures_layer(cfg, l);
        p->n_measured_layers += p->layer_measured[l];
    }
    p->whole_plane = cfg->on == IPM_ON_WHOLE;
    p->measured[IPM_PLANE_TRAIN] = (cfg->on & IPM_ON_TRAIN) != 0 || p->whole_plane;
    p->measured[IPM_PLANE_TEST] = (cfg->on & IPM_ON_TEST) != 0;
    if ((p->measured[IPM_PLANE_TEST] || p->whole_plane) && p->data[IPM_PLANE_TEST].n == 0)
        return ipm_config_fail(cfg, "information", "on", err, " = %s: the test set is empty",
                               cfg->on == IPM_ON_ALL ? "all"
                               : p->whole_plane      ? "whole"
                                                     : "test");
    if (p->whole_plane &&
        ipm_dataset_concat(&p->data[IPM_PLANE_TRAIN], &p->data[IPM_PLANE_TEST], &p->whole, err))
        return -1;
    return check_table_memory(p, err);
}

/* range = whole: every measured plane's ranges from range_from. Every rank
 * reads the (small) file, as it reads the data. */
static int read_whole_range(ipm_plan *p, int plane, char *err)
{
    const ipm_config *cfg = p->cfg;
    int per_replica = cfg->range_scope == IPM_RANGE_PER_REPLICA;
    size_t n = (size_t)(per_replica ? p->n_replicas : 1) * (size_t)cfg->n_layers;
    double *range = p->whole_range[plane] = malloc(2 * n * sizeof *range);
    char why[IPM_ERRLEN];
    if (!range)
        return ipm_fail(err, "out of memory for the binning ranges");
    if (ipm_ranges_read(cfg->range_from, plane == IPM_PLANE_TEST ? "test_" : "", cfg->n_layers,
                        p->n_replicas, per_replica, range, range + n, why))
        return ipm_config_fail(cfg, "information", "range_from", err, ": %s", why);
    for (size_t k = 0; k < n; k++)
        if (p->layer_measured[k % (size_t)cfg->n_layers] &&
            !(range[k] <= range[n + k] && isfinite(range[k]) && isfinite(range[n + k])))
            return ipm_config_fail(cfg, "information", "range_from", err,
                                   ": %s has no finite range of layer %zu", cfg->range_from,
                                   k % (size_t)cfg->n_layers + 1);
    return 0;
}

/* What range = whole may differ in from the run that wrote range_from:
 * nothing that changes the networks it trained (seed, data, network,
 * training, stopping), so that its extremes are this run's. The replica
 * count is compared as the file records it (io/ranges.c): the config may
 * say 0, the rank count. */
static const char *const range_from_free_keys[] = {
    "run.replicas",
    "run.output",
    "run.threads",
    "run.checkpoint",
    "run.checkpoint_every",
    "run.reduce",
    "information.*",
    "output.*",
    NULL,
};

static int check_range_from_config(const ipm_config *cfg, char *err)
{
    char why[IPM_ERRLEN];
    char *text = ipm_ranges_config(cfg->range_from, why);
    if (!text)
        return ipm_config_fail(cfg, "information", "range_from", err, ": %s", why);
    ipm_config earlier;
    memset(&earlier, 0, sizeof earlier);
    int rc = 0; /* a file without a config (or one this version cannot read) is not compared */
    if (text[0] && ipm_config_load_text(&earlier, text, cfg->range_from, why) == 0) {
        ipm_config_difference d;
        int diff = ipm_config_first_difference(&earlier, cfg, range_from_free_keys, &d);
        if (diff < 0)
            rc = ipm_fail(err, "out of memory comparing configs");
        else if (diff > 0) {
            rc = ipm_config_fail(cfg, "information", "range_from", err,
                                 ": %s was written by a run with [%s] %s = %.200s, this run has "
                                 "%.200s: its ranges are the extremes of other networks (give the "
                                 "output of a run of this config with range = adaptive)",
                                 cfg->range_from, d.section, d.name, d.a, d.b);
            ipm_config_difference_free(&d);
        }
    }
    ipm_config_free(&earlier);
    free(text);
    return rc;
}

static int read_whole_ranges(ipm_plan *p, char *err)
{
    if (p->cfg->range_whole && check_range_from_config(p->cfg, err))
        return -1;
    for (int k = 0; k < IPM_N_PLANES; k++)
        if (p->cfg->range_whole && p->measured[k] && read_whole_range(p, k, err))
            return -1;
    return 0;
}

/* [run] checkpoint, or when empty the output path with a trailing ".nc"
 * replaced by (or, without one, followed by) ".ckpt". */
void ipm_plan_checkpoint_path(const ipm_config *cfg, char path[IPM_PATH_MAX])
{
    if (cfg->checkpoint[0]) {
        snprintf(path, IPM_PATH_MAX, "%s", cfg->checkpoint);
        return;
    }
    size_t n = strlen(cfg->output);
    if (n >= 3 && strcmp(cfg->output + n - 3, ".nc") == 0)
        n -= 3;
    snprintf(path, IPM_PATH_MAX, "%.*s.ckpt", (int)n, cfg->output);
}

/* Checked before the count tables: the replicas themselves come first.
 * Rank 0 holds every replica's state when it writes a checkpoint (weights,
 * optimizer moments, batch order: at most 4 floats a parameter plus the
 * order), its own replicas' working copies (weights, gradients, moments,
 * a batch), and a few doubles per replica and layer for the estimates. A
 * count that cannot fit is refused here, naming the key, instead of failing
 * an allocation halfway through setup. */
static int check_replica_memory(const ipm_plan *p, char *err)
{
    const ipm_config *cfg = p->cfg;
    double params = (double)p->shape.n_params, widest = 0;
    for (int l = 0; l < cfg->n_layers; l++)
        widest = p->shape.layer[l].out > widest ? p->shape.layer[l].out : widest;
    double state = 4 * (4 * params + p->data[IPM_PLANE_TRAIN].n) + 256;
    double working = 4 * (4 * params + 3 * widest * cfg->batch_size * cfg->n_layers);
    double estimates = 8 * (8 + 4 * (double)cfg->n_layers * IPM_N_PLANES);
    double bytes = p->n_replicas * (state + estimates) + p->n_local * working;
    if (bytes <= (double)ipm_memory_available())
        return 0;
    char need[32], have[32];
    ipm_memory_format(bytes, need, sizeof need);
    ipm_memory_format((double)ipm_memory_available(), have, sizeof have);
    return ipm_config_fail(cfg, "run", "replicas", err,
                           " = %d: the replicas need about %s on rank 0 (their states are "
                           "gathered there for checkpoints), more than the %s this process "
                           "may use (physical memory, ulimit -v)",
                           p->n_replicas, need, have);
}

static void own_replicas(ipm_plan *p)
{
    p->n_replicas = p->cfg->replicas > 0 ? p->cfg->replicas : p->n_ranks;
    p->n_local = p->rank < p->n_replicas ? (p->n_replicas - 1 - p->rank) / p->n_ranks + 1 : 0;
}

int ipm_plan_make(ipm_plan *p, const ipm_config *cfg, int rank, int n_ranks, int eval_block_rows,
                  char *err)
{
    memset(p, 0, sizeof *p);
    p->cfg = cfg;
    p->rank = rank;
    p->n_ranks = n_ranks;
    own_replicas(p);
    ipm_plan_checkpoint_path(cfg, p->checkpoint);
    p->config_text = ipm_config_format(cfg);
    if (!p->config_text)
        return ipm_fail(err, "out of memory formatting the config");
    /* Rank 0 alone touches the files; the others learn by agreement. */
    if (rank == 0 && ipm_paths_check(cfg, p->checkpoint, err))
        return -1;
    if (ipm_dataset_load(cfg, &p->data[IPM_PLANE_TRAIN], &p->data[IPM_PLANE_TEST], err) ||
        ipm_loss_check(cfg, p->data[IPM_PLANE_TRAIN].n_classes, err) ||
        ipm_net_for_config(&p->shape, cfg, &p->data[IPM_PLANE_TRAIN], 0, err) ||
        check_replica_memory(p, err) || measure_layers_and_planes(p, err) ||
        read_whole_ranges(p, err) || make_schedule(p, err))
        return -1;
    int largest = p->data[IPM_PLANE_TRAIN].n > p->data[IPM_PLANE_TEST].n
                      ? p->data[IPM_PLANE_TRAIN].n
                      : p->data[IPM_PLANE_TEST].n;
    p->block_rows = choose_block_rows(&p->shape, largest, eval_block_rows);
    IPM_ASSERT(p->block_rows >= 1 && p->n_local >= 0 && p->n_replicas >= 1);
    return 0;
}

void ipm_plan_free(ipm_plan *p)
{
    for (int k = 0; k < IPM_N_PLANES; k++) {
        ipm_dataset_free(&p->data[k]);
        free(p->whole_range[k]);
    }
    ipm_dataset_free(&p->whole);
    ipm_net_free(&p->shape);
    free(p->log_epochs);
    free(p->act_epochs);
    free(p->config_text);
    memset(p, 0, sizeof *p);
}

const ipm_dataset *ipm_plan_measured_data(const ipm_plan *p, int plane)
{
    return p->whole_plane && plane == IPM_PLANE_TRAIN ? &p->whole : &p->data[plane];
}

int ipm_plan_last_measured_layer(const ipm_plan *p)
{
    int last = p->cfg->n_layers - 1;
    while (last > 0 && !p->layer_measured[last])
        last--;
    return last;
}
