#include "ipmpi/app/run.h"
#include "ipmpi/version.h"

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ipmpi/io/dataset.h"
#include "ipmpi/base/error.h"
#include "ipmpi/app/measure.h"
#include "ipmpi/io/output.h"
#include "ipmpi/parallel/comm.h"
#include "ipmpi/app/resume.h"
#include "ipmpi/info/stopping.h"
#include "ipmpi/learn/train.h"


/* A sync costs ~0.3 ms, as much as a whole fast epoch; syncing at most once
 * a second bounds what a killed job can lose to the last second of epochs. */
#define OUTPUT_FLUSH_SECONDS 1.0

typedef struct run {
    const ipm_config *cfg;
    ipm_run_options opt;
    char checkpoint[IPM_PATH_MAX];
    char *config_text;                  /* the effective config, for output and checkpoints */
    int first_epoch;                    /* 0, or the checkpoint's epoch + 1 on restart */
    long resume_records;                /* NetCDF records the checkpoint counts */
    MPI_Comm comm;
    int rank, size;
    ipm_dataset data[IPM_N_PLANES];         /* train, test (test.n may be 0) */
    int n_replicas, n_local;
    ipm_replica *local;                 /* replicas rank, rank + P, ... */
    ipm_workspace eval_ws;              /* one block of block_rows samples, every layer */
    int block_rows;                     /* from the layer widths only: see choose_block_rows */
    int held_replica, held_plane;       /* whose whole-plane pass eval_ws holds (-1: none) */
    ipm_eval_totals held;
    int width[IPM_MAX_LAYERS];          /* units of each layer (a conv map flattened) */
    int layer_measured[IPM_MAX_LAYERS]; /* [information] layers */
    int n_measured_layers;
    int measured[IPM_N_PLANES];
    ipm_measure plane[IPM_N_PLANES];
    int *log_epochs, n_log;
    int *act_epochs, n_act, act_slot;
    ipm_output *out;
    double *loss, *accuracy, *test_loss, *test_accuracy; /* n_replicas each */
    float *act_buffer;                  /* local replicas' activations at a stored epoch */
    int *diverged_at;                   /* local: first epoch with a non-finite batch loss */
    ipm_stop_monitor stop;              /* [stopping]; the same on every rank */
    double t_start, t_train, t_forward, t_output, t_checkpoint;
    int trained_epochs;
    int logged;                         /* epochs logged by this process */
} run;

/* Test-only fault injection: IPMPI_INJECT_FAULT="setup:RANK" fails that
 * rank's setup, "epoch:RANK:EPOCH" its measurement at that logged epoch, as
 * a failed allocation or read would; the other ranks must stop with it. */
static int injected_fault(const run *r, const char *where, int epoch, char *err)
{
    const char *spec = getenv("IPMPI_INJECT_FAULT");
    char kind[16];
    int rank = -1, at = -1;
    if (!spec || sscanf(spec, "%15[a-z]:%d:%d", kind, &rank, &at) < 2)
        return 0;
    if (strcmp(kind, where) != 0 || rank != r->rank || (at >= 0 && at != epoch))
        return 0;
    return ipm_fail(err, "rank %d: injected fault in %s (IPMPI_INJECT_FAULT=%s)", r->rank, where,
                    spec);
}

static int contains(const int *sorted, int n, int value)
{
    for (int lo = 0, hi = n - 1; lo <= hi;) {
        int mid = lo + (hi - lo) / 2;
        if (sorted[mid] == value)
            return 1;
        if (sorted[mid] < value)
            lo = mid + 1;
        else
            hi = mid - 1;
    }
    return 0;
}

static int alloc_replica_arrays(run *r, char *err)
{
    size_t n = (size_t)r->n_replicas;
    r->loss = calloc(n, sizeof(double));
    r->accuracy = calloc(n, sizeof(double));
    r->test_loss = calloc(n, sizeof(double));
    r->test_accuracy = calloc(n, sizeof(double));
    r->local = calloc((size_t)r->n_local + 1, sizeof(ipm_replica));
    r->diverged_at = calloc((size_t)r->n_local + 1, sizeof(int));
    if (!r->loss || !r->accuracy || !r->test_loss || !r->test_accuracy || !r->local ||
        !r->diverged_at)
        return ipm_fail(err, "out of memory for %d replicas", r->n_replicas);
    return 0;
}

static int setup_replicas(run *r, char *err)
{
    const ipm_config *cfg = r->cfg;
    r->n_replicas = cfg->replicas > 0 ? cfg->replicas : r->size;
    r->n_local = r->rank < r->n_replicas ? (r->n_replicas - 1 - r->rank) / r->size + 1 : 0;
    if (alloc_replica_arrays(r, err))
        return -1;
    if (ipm_loss_check(cfg, r->data[IPM_PLANE_TRAIN].n_classes, err))
        return -1;
    for (int k = 0; k < r->n_local; k++) {
        r->diverged_at[k] = -1;
        if (ipm_replica_init(&r->local[k], cfg, &r->data[IPM_PLANE_TRAIN], r->rank + k * r->size,
                             err))
            return -1;
    }
    ipm_stop_settings stop = ipm_config_stop_settings(cfg);
    return ipm_stop_monitor_init(&r->stop, &stop, r->n_replicas, err);
}

/* Worst case, every pattern distinct, on rank 0 after the merge: per layer
 * and measured plane, the pooled T, (X,T), (Y,T) tables hold up to N*R keys
 * (64 bytes a key at the tables' load) plus the 32-byte entries in flight,
 * the sampled ones up to N keys. Refusing here beats an out-of-memory kill. */
static int check_table_memory(const run *r, char *err)
{
    const ipm_config *cfg = r->cfg;
    double worst = 0;
    for (int p = 0; p < IPM_N_PLANES; p++) {
        if (!r->measured[p])
            continue;
        double n = r->data[p].n, pairs = n * r->n_replicas;
        double per_layer = (cfg->estimators & IPM_EST_POOLED ? 3 * pairs * (64 + 32) : 0) +
                           (cfg->estimators & IPM_EST_SAMPLED ? 3 * n * (64 + 32) : 0);
        worst += per_layer * r->n_measured_layers;
    }
    double mb = worst / (1024.0 * 1024.0);
    if (mb <= cfg->max_table_mb)
        return 0;
    return ipm_config_fail(cfg, "information", "max_table_mb", err,
                           " = %d: the count tables may need up to %.0f MB on rank 0 (%d samples "
                           "x %d replicas x %d layers, every pattern distinct); raise "
                           "max_table_mb, or use fewer replicas, samples or estimators",
                           cfg->max_table_mb, mb, r->data[IPM_PLANE_TRAIN].n, r->n_replicas,
                           r->n_measured_layers);
}

/* The forward pass of a logged epoch runs in blocks of this many samples,
 * so that the evaluation workspace (every layer's activations, maxpool's
 * argmax) stays near this size however large the data set: a CNN's conv
 * layer on 10000 images would otherwise hold hundreds of MB per rank. */
#define EVAL_BLOCK_BYTES ((size_t)32 << 20)

/* The block depends on the layer shapes only, never on ranks or replicas,
 * so a replica's numbers do not depend on where it runs. Test-only
 * override: IPMPI_EVAL_BLOCK_ROWS=N (N >= 1) forces blocks of N samples. */
static int choose_block_rows(const ipm_net *shape, int n)
{
    size_t per_row = 0;
    for (int l = 0; l < shape->n_layers; l++) {
        const ipm_layer *d = &shape->layer[l];
        per_row += (size_t)d->out * (d->kind == IPM_LAYER_MAXPOOL ? 2 : 1) * sizeof(float);
    }
    size_t rows = per_row ? EVAL_BLOCK_BYTES / per_row : (size_t)n;
    const char *forced = getenv("IPMPI_EVAL_BLOCK_ROWS");
    if (forced && atoi(forced) > 0)
        rows = (size_t)atoi(forced);
    return rows < 1 ? 1 : rows < (size_t)n ? (int)rows : n;
}

/* Every rank builds a throwaway net for the layer shapes when it has no replica. */
static int setup_measures(run *r, char *err)
{
    const ipm_config *cfg = r->cfg;
    ipm_net shape;
    if (ipm_net_for_config(&shape, cfg, &r->data[IPM_PLANE_TRAIN], 0, err))
        return -1;
    int largest = r->data[IPM_PLANE_TRAIN].n > r->data[IPM_PLANE_TEST].n ? r->data[IPM_PLANE_TRAIN].n
                                                                  : r->data[IPM_PLANE_TEST].n;
    r->block_rows = choose_block_rows(&shape, largest);
    int rc = ipm_workspace_init(&r->eval_ws, &shape, r->block_rows, err);
    for (int l = 0; l < cfg->n_layers; l++) {
        r->width[l] = shape.layer[l].out;
        r->layer_measured[l] = ipm_config_measures_layer(cfg, l);
        r->n_measured_layers += r->layer_measured[l];
    }
    r->measured[IPM_PLANE_TRAIN] = (cfg->on & IPM_ON_TRAIN) != 0;
    r->measured[IPM_PLANE_TEST] = (cfg->on & IPM_ON_TEST) != 0;
    if (rc == 0 && r->measured[IPM_PLANE_TEST] && r->data[IPM_PLANE_TEST].n == 0)
        rc = ipm_config_fail(cfg, "information", "on", err, " = %s: the test set is empty",
                             cfg->on == IPM_ON_ALL ? "all" : "test");
    if (rc == 0)
        rc = check_table_memory(r, err);
    for (int p = 0; p < IPM_N_PLANES && rc == 0; p++)
        if (r->measured[p])
            rc = ipm_measure_init(&r->plane[p], cfg, &r->data[p], p, &shape, r->n_replicas,
                                  r->n_local, r->size, err);
    ipm_net_free(&shape);
    return rc;
}

/* The stopping checks need the plane measured: their epochs are logged too. */
static int add_check_epochs(run *r, char *err)
{
    const ipm_config *cfg = r->cfg;
    if (cfg->stop_criterion == IPM_STOP_NONE)
        return 0;
    ipm_epoch_spec checks = {IPM_EPOCHS_EVERY, cfg->stop_check_every, NULL, 0};
    int *extra, n_extra;
    if (ipm_epochs_expand(&checks, cfg->epochs, &extra, &n_extra, err))
        return -1;
    int *merged = malloc(((size_t)r->n_log + (size_t)n_extra) * sizeof *merged);
    if (!merged) {
        free(extra);
        return ipm_fail(err, "out of memory for the logged epochs");
    }
    memcpy(merged, r->log_epochs, (size_t)r->n_log * sizeof *merged);
    memcpy(merged + r->n_log, extra, (size_t)n_extra * sizeof *merged);
    int n = ipm_sort_unique(merged, r->n_log + n_extra);
    free(extra);
    free(r->log_epochs);
    r->log_epochs = merged;
    r->n_log = n;
    return 0;
}

static int setup_schedule(run *r, char *err)
{
    const ipm_config *cfg = r->cfg;
    if (ipm_epochs_expand(&cfg->info_epochs, cfg->epochs, &r->log_epochs, &r->n_log, err) ||
        add_check_epochs(r, err))
        return -1;
    return ipm_epochs_expand(&cfg->activation_epochs, cfg->epochs, &r->act_epochs, &r->n_act, err);
}

static int setup_output(run *r, char *err)
{
    if (r->rank != 0)
        return 0;
    const ipm_config *cfg = r->cfg;
    const ipm_dataset *train = &r->data[IPM_PLANE_TRAIN];
    char stop_text[160];
    snprintf(stop_text, sizeof stop_text,
             "J = I(T;Y) - %g I(X;T) of layer %d (%s estimator) at each stopping check",
             cfg->stop_beta, r->stop.layer + 1, ipm_stop_monitor_estimator(&r->stop));
    ipm_output_meta meta = {
        .path = cfg->output, .config_text = r->config_text, .version = IPMPI_VERSION,
        .ranks = r->size, .replicas = r->n_replicas, .n_layers = cfg->n_layers,
        .layer_width = r->width, .layer_measured = r->layer_measured,
        .adaptive_range = cfg->range_adaptive, .estimators = cfg->estimators, .planes = cfg->on,
        .has_test = r->data[IPM_PLANE_TEST].n > 0, .bins = cfg->bins,
        .range_lo = cfg->range_lo, .range_hi = cfg->range_hi,
        .n_activation_epochs = r->n_act, .activation_samples = train->n,
        .sample_x_id = train->x_id, .sample_y = train->y,
        .flush_seconds = OUTPUT_FLUSH_SECONDS,
        .stop_rules = r->stop.enabled ? r->stop.n_rules : 0, .stop_description = stop_text,
    };
    if (r->measured[IPM_PLANE_TRAIN]) {
        meta.h_x = r->plane[IPM_PLANE_TRAIN].h_x;
        meta.h_y = r->plane[IPM_PLANE_TRAIN].h_y;
        meta.i_xy = r->plane[IPM_PLANE_TRAIN].i_xy;
    } else if (ipm_data_information(train->x_id, train->y, train->n, &meta.h_x, &meta.h_y,
                                    &meta.i_xy, err)) {
        return -1;
    }
    if (r->measured[IPM_PLANE_TEST]) {
        meta.test_h_x = r->plane[IPM_PLANE_TEST].h_x;
        meta.test_h_y = r->plane[IPM_PLANE_TEST].h_y;
        meta.test_i_xy = r->plane[IPM_PLANE_TEST].i_xy;
    }
    /* A restart appends after the checkpoint's records. The file may hold
     * more (logged after the checkpoint, or after .prev's) and NetCDF cannot
     * shrink the epoch dimension, but nothing needs removing: the restarted
     * run has the same config and state, so it logs exactly those epochs
     * again, bitwise the same, over them (tests/test_restart.sh checks it). */
    if (!r->opt.restart)
        return ipm_output_create(&r->out, &meta, err);
    if (ipm_output_reopen(&r->out, &meta, r->resume_records, err))
        return -1;
    /* The file may hold stops logged after the checkpoint; they will recur. */
    return r->stop.enabled ? ipm_output_stop_epochs(r->out, r->stop.stop_epoch, err) : 0;
}

static int setup(run *r, char *err)
{
    const ipm_config *cfg = r->cfg;
    openblas_set_num_threads(cfg->threads);
    ipm_checkpoint_path(cfg, r->checkpoint);
    r->config_text = ipm_config_format(cfg);
    if (!r->config_text)
        return ipm_fail(err, "out of memory formatting the config");
    if (ipm_dataset_load(cfg, &r->data[IPM_PLANE_TRAIN], &r->data[IPM_PLANE_TEST], err))
        return -1;
    return setup_schedule(r, err) || setup_replicas(r, err) || setup_measures(r, err) ||
                   injected_fault(r, "setup", -1, err)
               ? -1
               : 0;
}

static void teardown(run *r)
{
    for (int k = 0; k < r->n_local; k++)
        ipm_replica_free(&r->local[k]);
    for (int p = 0; p < IPM_N_PLANES; p++)
        if (r->measured[p])
            ipm_measure_free(&r->plane[p]);
    ipm_workspace_free(&r->eval_ws);
    for (int p = 0; p < IPM_N_PLANES; p++)
        ipm_dataset_free(&r->data[p]);
    ipm_stop_monitor_free(&r->stop);
    free(r->local);
    free(r->diverged_at);
    free(r->act_buffer);
    free(r->loss);
    free(r->accuracy);
    free(r->test_loss);
    free(r->test_accuracy);
    free(r->log_epochs);
    free(r->act_epochs);
    free(r->config_text);
}

static void train_epoch(run *r, int epoch)
{
    double t0 = MPI_Wtime();
    for (int k = 0; k < r->n_local; k++) {
        if (r->stop.enabled && r->stop.stop_epoch[r->local[k].index] >= 0)
            continue; /* scope = replica: this one has stopped */
        ipm_replica_train_epoch(&r->local[k], &r->data[IPM_PLANE_TRAIN]);
        if (r->diverged_at[k] < 0 && !isfinite(r->local[k].last_batch_loss))
            r->diverged_at[k] = epoch;
    }
    r->t_train += MPI_Wtime() - t0;
    r->trained_epochs = epoch;
}

static size_t activation_floats(const run *r)
{
    size_t units = 0;
    for (int l = 0; l < r->cfg->n_layers; l++)
        units += (size_t)r->width[l];
    return units * (size_t)r->data[IPM_PLANE_TRAIN].n;
}

/* Keeps local replica k's activations of training samples [first, first +
 * rows), held in eval_ws, until every rank knows the epoch went well. The
 * buffer holds per replica each layer's n x width values in turn. */
static int keep_activations(run *r, int k, int first, int rows, char *err)
{
    size_t per_replica = activation_floats(r);
    if (!r->act_buffer) {
        r->act_buffer = malloc(per_replica * (size_t)r->n_local * sizeof(float));
        if (!r->act_buffer)
            return ipm_fail(err, "out of memory for stored activations (%zu floats)",
                            per_replica * (size_t)r->n_local);
    }
    float *layer_start = r->act_buffer + per_replica * (size_t)k;
    for (int l = 0; l < r->cfg->n_layers; l++) {
        size_t width = (size_t)r->width[l];
        memcpy(layer_start + (size_t)first * width, r->eval_ws.act[l],
               (size_t)rows * width * sizeof(float));
        layer_start += (size_t)r->data[IPM_PLANE_TRAIN].n * width;
    }
    return 0;
}

/* Rank 0 writes every replica's activations in replica order; the other
 * ranks send theirs. Rank 0 keeps receiving after a write error so that no
 * sender is left blocked. MPI keeps each sender's messages in order. */
static int transfer_activations(run *r, int epoch, char *err)
{
    size_t per_replica = activation_floats(r);
    if (r->rank != 0) {
        for (int k = 0; k < r->n_local; k++)
            MPI_Send(r->act_buffer + per_replica * (size_t)k, (int)per_replica, MPI_FLOAT, 0,
                     IPM_TAG_ACTIVATIONS, r->comm);
        return 0;
    }
    float *incoming = malloc(per_replica * sizeof(float));
    if (!incoming)
        return ipm_fail(err, "out of memory receiving activations");
    int rc = 0;
    for (int rep = 0; rep < r->n_replicas; rep++) {
        const float *values = r->act_buffer + per_replica * (size_t)(rep / r->size);
        if (rep % r->size != 0) {
            MPI_Recv(incoming, (int)per_replica, MPI_FLOAT, rep % r->size, IPM_TAG_ACTIVATIONS,
                     r->comm, MPI_STATUS_IGNORE);
            values = incoming;
        }
        for (int l = 0; l < r->cfg->n_layers && rc == 0; l++) {
            rc = ipm_output_activations(r->out, r->act_slot, epoch, rep, l, values, err);
            values += (size_t)r->data[IPM_PLANE_TRAIN].n * (size_t)r->width[l];
        }
    }
    free(incoming);
    return rc;
}

/* Local replica k's forward pass of samples [first, first + rows) of plane
 * p into eval_ws, its loss terms added to *sum. A plane that fits one block
 * is forwarded once per replica and epoch: the binning reuses the pass the
 * range search left in eval_ws. */
static void forward_block(run *r, int k, int p, int first, int rows, ipm_eval_totals *sum)
{
    int whole = first == 0 && rows == r->data[p].n;
    if (whole && r->held_replica == k && r->held_plane == p) {
        *sum = r->held;
        return;
    }
    double t0 = MPI_Wtime();
    ipm_replica_evaluate_block(&r->local[k], &r->data[p], first, rows, &r->eval_ws, sum);
    r->t_forward += MPI_Wtime() - t0;
    r->held_replica = whole ? k : -1;
    r->held_plane = p;
    r->held = *sum;
}

static int block_end(const run *r, int p, int first)
{
    int n = r->data[p].n;
    return n - first < r->block_rows ? n : first + r->block_rows;
}

/* Forwards local replica k over plane p block by block and bins each block;
 * stores the training activations at a stored epoch. */
static int measure_plane(run *r, int k, int p, int store, double *loss, double *accuracy,
                         char *err)
{
    ipm_measure *m = r->measured[p] ? &r->plane[p] : NULL;
    if (m && ipm_measure_replica_begin(m, r->local[k].index, err))
        return -1;
    ipm_eval_totals sum = {0};
    for (int first = 0, end; first < r->data[p].n; first = end) {
        end = block_end(r, p, first);
        forward_block(r, k, p, first, end - first, &sum);
        if (m && ipm_measure_replica_block(m, &r->eval_ws, first, end - first, err))
            return -1;
        if (store && p == IPM_PLANE_TRAIN && keep_activations(r, k, first, end - first, err))
            return -1;
    }
    ipm_eval_totals_mean(&sum, loss, accuracy);
    return 0;
}

static int measure_replica(run *r, int k, int store, char *err)
{
    int index = r->local[k].index;
    if (measure_plane(r, k, IPM_PLANE_TRAIN, store, &r->loss[index], &r->accuracy[index], err))
        return -1;
    if (r->data[IPM_PLANE_TEST].n == 0)
        return 0;
    return measure_plane(r, k, IPM_PLANE_TEST, 0, &r->test_loss[index], &r->test_accuracy[index],
                         err);
}

/* Each replica's slot is filled by its own rank only, so the sum is exact. */
static int reduce_losses(run *r, char *err)
{
    double *vals[4] = {r->loss, r->accuracy, r->test_loss, r->test_accuracy};
    int n = r->data[IPM_PLANE_TEST].n > 0 ? 4 : 2;
    for (int k = 0; k < n; k++)
        if (ipm_sum_to_root(vals[k], r->n_replicas, r->comm, err))
            return -1;
    return 0;
}

static void clear_losses(run *r)
{
    size_t n = (size_t)r->n_replicas * sizeof(double);
    memset(r->loss, 0, n);
    memset(r->accuracy, 0, n);
    memset(r->test_loss, 0, n);
    memset(r->test_accuracy, 0, n);
}

/* A diverged replica stops the run with the epoch where it diverged. */
static int check_divergence(run *r, int epoch, char *err)
{
    for (int k = 0; k < r->n_local; k++) {
        int index = r->local[k].index;
        if (r->diverged_at[k] >= 0 || !isfinite(r->loss[index])) {
            int at = r->diverged_at[k] >= 0 ? r->diverged_at[k] : epoch;
            return ipm_fail(err,
                            "replica %d diverged: its training loss became %s at epoch %d "
                            "(detected at logged epoch %d); lower [training] learning_rate. "
                            "Epochs logged before are kept in %s",
                            index, isnan(r->local[k].last_batch_loss) ? "NaN" : "infinite", at,
                            epoch, r->cfg->output);
        }
    }
    return 0;
}

static void plane_record(const run *r, int p, ipm_plane_record *rec)
{
    const ipm_measure *m = &r->plane[p];
    unsigned est = r->cfg->estimators;
    memset(rec, 0, sizeof *rec);
    if (!r->measured[p])
        return;
    if (est & IPM_EST_SIMPLE) {
        rec->i_xt_simple = m->est.simple_xt;
        rec->i_ty_simple = m->est.simple_ty;
    }
    if (est & IPM_EST_POOLED) {
        rec->i_xt_pooled = m->est.pooled_xt;
        rec->i_ty_pooled = m->est.pooled_ty;
    }
    if (est & IPM_EST_SAMPLED) {
        rec->i_xt_sampled = m->est.sampled_xt;
        rec->i_ty_sampled = m->est.sampled_ty;
    }
    if (m->adaptive) {
        rec->bin_lo = m->range_lo;
        rec->bin_hi = m->range_hi;
    }
}

static double mean(const double *v, int n)
{
    double s = 0;
    for (int i = 0; i < n; i++)
        s += v[i];
    return n ? s / n : 0;
}

static int last_measured_layer(const run *r)
{
    int last = r->cfg->n_layers - 1;
    while (last > 0 && !r->layer_measured[last])
        last--;
    return last;
}

/* The last measured layer's point of the best estimator this run computes. */
static void headline_point(const run *r, double *i_xt, double *i_ty)
{
    int p = r->measured[IPM_PLANE_TRAIN] ? IPM_PLANE_TRAIN : IPM_PLANE_TEST, last = last_measured_layer(r);
    const ipm_measure *m = &r->plane[p];
    unsigned est = r->cfg->estimators;
    if (est & IPM_EST_POOLED) {
        *i_xt = m->est.pooled_xt[last];
        *i_ty = m->est.pooled_ty[last];
    } else if (est & IPM_EST_SAMPLED) {
        *i_xt = m->est.sampled_xt[last];
        *i_ty = m->est.sampled_ty[last];
    } else {
        double sx = 0, sy = 0;
        for (int rep = 0; rep < r->n_replicas; rep++) {
            sx += m->est.simple_xt[rep * r->cfg->n_layers + last];
            sy += m->est.simple_ty[rep * r->cfg->n_layers + last];
        }
        *i_xt = sx / r->n_replicas;
        *i_ty = sy / r->n_replicas;
    }
}

static void progress_line(const run *r, int epoch)
{
    double elapsed = MPI_Wtime() - r->t_start, i_xt, i_ty;
    int total = r->cfg->epochs;
    int done = epoch - (r->first_epoch > 0 ? r->first_epoch - 1 : 0);
    double eta = done > 0 ? elapsed / done * (total - epoch) : 0;
    headline_point(r, &i_xt, &i_ty);
    char check[64] = "";
    if (ipm_stop_monitor_is_check(&r->stop, epoch) && r->stop.n_rules == 1)
        snprintf(check, sizeof check, "  J %.4f", r->stop.j[0]);
    printf("epoch %*d/%d  loss %.4f  acc %.4f  layer %d I(X;T) %.4f  I(T;Y) %.4f bits%s  "
           "elapsed %.1fs  eta %.1fs\n",
           (int)snprintf(NULL, 0, "%d", total), epoch, total, mean(r->loss, r->n_replicas),
           mean(r->accuracy, r->n_replicas), last_measured_layer(r) + 1, i_xt, i_ty, check,
           elapsed, eta);
}

static int write_record(run *r, int epoch, char *err)
{
    double t0 = MPI_Wtime();
    ipm_epoch_record rec = {
        .epoch = epoch, .loss = r->loss, .accuracy = r->accuracy,
        .test_loss = r->test_loss, .test_accuracy = r->test_accuracy,
        .stop_j = ipm_stop_monitor_is_check(&r->stop, epoch) ? r->stop.j : NULL,
    };
    plane_record(r, IPM_PLANE_TRAIN, &rec.train);
    plane_record(r, IPM_PLANE_TEST, &rec.test);
    int rc = ipm_output_append(r->out, &rec, err);
    r->t_output += MPI_Wtime() - t0;
    if (rc == 0)
        progress_line(r, epoch);
    return rc;
}

/* Rank 0 says who stopped and why, and records the stop epochs. */
static int report_stops(run *r, int epoch, char *err)
{
    const ipm_config *cfg = r->cfg;
    const ipm_stop_monitor *m = &r->stop;
    int stopped = 0;
    for (int i = 0; i < m->n_replicas; i++)
        stopped += m->stop_epoch[i] >= 0;
    for (int i = 0; i < m->n_rules; i++) {
        const ipm_stopping *rule = &m->rule[i];
        if (rule->stopped_epoch != epoch)
            continue;
        char who[48];
        snprintf(who, sizeof who, m->n_rules == 1 ? "the ensemble" : "replica %d", i);
        printf("stopping %s at epoch %d: J = I(T;Y) - %g I(X;T) of layer %d (%s) has not risen "
               "by more than %g x |J_best| for %d checks (J_best %.4f at epoch %d)%s\n",
               who, epoch, cfg->stop_beta, m->layer + 1,
               ipm_stop_monitor_estimator(m), cfg->stop_tolerance,
               cfg->stop_patience, rule->best, rule->best_epoch,
               stopped == m->n_replicas ? "; every replica has stopped" : "");
    }
    return ipm_output_stop_epochs(r->out, m->stop_epoch, err);
}

/* Rank 0 decided; every rank takes its state, so all agree on who trains. */
static int share_stop_state(run *r, char *err)
{
    size_t size = r->rank == 0 ? ipm_stop_monitor_state_size(&r->stop) : 0;
    unsigned char *blob = r->rank == 0 ? malloc(size) : NULL;
    int rc = r->rank != 0 || blob ? 0 : ipm_fail(err, "out of memory for the stopping state");
    if (ipm_agree(rc, err, r->comm)) {
        free(blob);
        return -1;
    }
    if (r->rank == 0)
        ipm_stop_monitor_pack(&r->stop, blob);
    if (ipm_bcast_blob(&blob, &size, 0, r->comm, err)) {
        free(blob);
        return -1;
    }
    rc = r->rank == 0 ? 0 : ipm_stop_monitor_unpack(&r->stop, blob, size, err);
    free(blob);
    return ipm_agree(rc, err, r->comm);
}

/* range = adaptive: a first forward pass of every local replica finds each
 * layer's range, agreed over all ranks before anything is binned. Forwarding
 * twice costs less memory than keeping every replica's activations; going
 * backwards leaves eval_ws holding the pass the binning starts with, when a
 * plane fits one block. */
static int agree_ranges(run *r, char *err)
{
    for (int k = r->n_local - 1; k >= 0; k--)
        for (int p = IPM_N_PLANES - 1; p >= 0; p--) {
            if (!r->measured[p])
                continue;
            for (int first = 0, end; first < r->data[p].n; first = end) {
                ipm_eval_totals unused = {0};
                end = block_end(r, p, first);
                forward_block(r, k, p, first, end - first, &unused);
                ipm_measure_observe_range(&r->plane[p], &r->eval_ws, end - first);
            }
        }
    int rc = 0;
    for (int p = 0; p < IPM_N_PLANES; p++)
        if (r->measured[p] && ipm_measure_agree_ranges(&r->plane[p], r->comm, err))
            rc = -1;
    return rc;
}

static int measure_replicas(run *r, int epoch, int store, char *err)
{
    r->held_replica = -1; /* the weights have changed */
    for (int p = 0; p < IPM_N_PLANES; p++)
        if (r->measured[p])
            ipm_measure_begin(&r->plane[p], epoch);
    if (r->cfg->range_adaptive && agree_ranges(r, err))
        return -1;
    for (int k = 0; k < r->n_local; k++)
        if (measure_replica(r, k, store, err))
            return -1;
    return 0;
}

static int log_epoch(run *r, int epoch, char *err)
{
    int store = contains(r->act_epochs, r->n_act, epoch);
    clear_losses(r);
    int rc = measure_replicas(r, epoch, store, err);
    if (rc == 0)
        rc = injected_fault(r, "epoch", epoch, err);
    if (rc == 0)
        rc = check_divergence(r, epoch, err);
    /* Before a collective step every rank must know whether to go on. */
    if (ipm_agree(rc, err, r->comm))
        return -1;
    if (store && ipm_agree(transfer_activations(r, epoch, err), err, r->comm))
        return -1;
    r->act_slot += store;
    if (reduce_losses(r, err))
        rc = -1;
    for (int p = 0; p < IPM_N_PLANES && rc == 0; p++)
        if (r->measured[p])
            rc = ipm_measure_finish(&r->plane[p], r->comm, err);
    int stopped_now = 0;
    if (rc == 0 && r->rank == 0 && ipm_stop_monitor_is_check(&r->stop, epoch) &&
        (stopped_now = ipm_stop_monitor_observe(&r->stop, epoch, &r->plane[IPM_PLANE_TRAIN].est)) < 0)
        rc = ipm_fail(err, "out of memory checking the stopping rule at epoch %d", epoch);
    if (rc == 0 && r->rank == 0)
        rc = write_record(r, epoch, err);
    if (rc == 0 && r->rank == 0 && stopped_now > 0)
        rc = report_stops(r, epoch, err);
    if (ipm_agree(rc, err, r->comm))
        return -1;
    return ipm_stop_monitor_is_check(&r->stop, epoch) ? share_stop_state(r, err) : 0;
}

static void print_summary(const run *r)
{
    if (r->rank != 0)
        return;
    double wall = MPI_Wtime() - r->t_start, bin = 0, merge = 0;
    for (int p = 0; p < IPM_N_PLANES; p++)
        if (r->measured[p]) {
            bin += r->plane[p].seconds_binning;
            merge += r->plane[p].seconds_merge;
        }
    int epochs = r->trained_epochs > 0 ? r->trained_epochs : 1, logs = r->logged > 0 ? r->logged : 1;
    printf("done: %d epochs, %d logged, %d replica%s on %d rank%s, wall %.3fs\n",
           r->trained_epochs, r->logged, r->n_replicas, r->n_replicas == 1 ? "" : "s", r->size,
           r->size == 1 ? "" : "s", wall);
    printf("time (rank 0): train %.3fs (%.4f ms/epoch)  forward %.3fs  binning+tables %.3fs  "
           "merge %.3fs (%.4f ms/logged epoch)  output %.3fs  checkpoints %.3fs\n",
           r->t_train, 1e3 * r->t_train / epochs, r->t_forward, bin, merge, 1e3 * merge / logs,
           r->t_output, r->t_checkpoint);
    printf("wrote %s\n", r->cfg->output);
}

/* Rank 0 flushes first, so the records the checkpoint counts are on disk. */
static int save_checkpoint(run *r, int epoch, char *err)
{
    double t0 = MPI_Wtime();
    if (ipm_agree(r->rank == 0 ? ipm_output_flush(r->out, err) : 0, err, r->comm))
        return -1;
    size_t stop_size = r->stop.enabled ? ipm_stop_monitor_state_size(&r->stop) : 0;
    unsigned char *stop = malloc(stop_size ? stop_size : 1);
    if (ipm_agree(stop ? 0 : ipm_fail(err, "out of memory for the stopping state"), err,
                  r->comm)) {
        free(stop);
        return -1;
    }
    if (stop_size)
        ipm_stop_monitor_pack(&r->stop, stop);
    ipm_ensemble e = {r->local, r->n_local, r->n_replicas, r->comm};
    ipm_resume_extra extra = {r->config_text, epoch, ipm_output_records(r->out), stop, stop_size};
    int rc = ipm_resume_save(&e, r->checkpoint, &extra, err);
    free(stop);
    r->t_checkpoint += MPI_Wtime() - t0;
    return rc;
}

/* The highest signal number any rank has seen (0: none). One MPI_Allreduce
 * of an int per epoch: about a microsecond on one node (see the report). */
static int agreed_signal(const run *r)
{
    int mine = r->opt.stop ? (int)*r->opt.stop : 0, any = 0;
    MPI_Allreduce(&mine, &any, 1, MPI_INT, MPI_MAX, r->comm);
    return any;
}

static const char *signal_name(int sig)
{
    return sig == SIGUSR1 ? "SIGUSR1" : sig == SIGTERM ? "SIGTERM" : sig == SIGINT ? "SIGINT" : "?";
}

/* After epoch's training and logging: 0 go on, IPM_RUN_STOPPED, -1 failed. */
static int epoch_boundary(run *r, int epoch, char *err)
{
    int sig = agreed_signal(r), every = r->cfg->checkpoint_every;
    if (sig) {
        if (save_checkpoint(r, epoch, err))
            return -1;
        if (r->rank == 0)
            printf("stopped early at epoch %d on signal %s: checkpoint written to %s; "
                   "resubmit with --restart\n",
                   epoch, signal_name(sig), r->checkpoint);
        return IPM_RUN_STOPPED;
    }
    if (every > 0 && epoch > 0 && epoch % every == 0 && epoch < r->cfg->epochs)
        return save_checkpoint(r, epoch, err);
    return 0;
}

/* The schedule positions a restart continues from: logged epochs and
 * activation slots before first_epoch were done by the run that wrote the
 * checkpoint. */
static int skip_done(run *r)
{
    int next = 0;
    while (next < r->n_log && r->log_epochs[next] < r->first_epoch)
        r->act_slot += contains(r->act_epochs, r->n_act, r->log_epochs[next++]);
    return next;
}

static int epoch_loop(run *r, char *err)
{
    r->t_start = MPI_Wtime();
    int last = r->first_epoch > 0 ? r->first_epoch - 1 : 0;
    for (int epoch = r->first_epoch, next = skip_done(r); epoch <= r->cfg->epochs; epoch++) {
        if (ipm_stop_monitor_all_stopped(&r->stop))
            break;
        last = epoch;
        if (epoch > 0)
            train_epoch(r, epoch);
        if (next < r->n_log && r->log_epochs[next] == epoch) {
            next++;
            r->logged++;
            if (log_epoch(r, epoch, err))
                return -1;
        }
        int rc = epoch_boundary(r, epoch, err);
        if (rc)
            return rc;
    }
    /* Divergence after the last logged epoch must not pass silently. */
    clear_losses(r);
    if (ipm_agree(check_divergence(r, last, err), err, r->comm))
        return -1;
    return save_checkpoint(r, last, err);
}

/* Replaces the fresh replicas' states with the checkpoint's. */
static int resume(run *r, char *err)
{
    ipm_ensemble e = {r->local, r->n_local, r->n_replicas, r->comm};
    ipm_resume_point at;
    int rc = ipm_resume_load(&e, r->checkpoint, r->config_text, &at, err);
    if (rc == 0 && r->stop.enabled)
        rc = ipm_stop_monitor_unpack(&r->stop, at.stop, at.stop_size, err);
    else if (rc == 0 && at.stop_size)
        rc = ipm_fail(err, "%s: the checkpoint holds a stopping state but [stopping] criterion "
                      "= none", r->checkpoint);
    free(at.stop);
    if (ipm_agree(rc, err, r->comm))
        return -1;
    if (at.epoch > r->cfg->epochs)
        return ipm_fail(err, "%s: the checkpoint is at epoch %d, beyond [training] epochs = %d",
                        r->checkpoint, at.epoch, r->cfg->epochs);
    r->first_epoch = at.epoch + 1;
    r->trained_epochs = at.epoch;
    r->resume_records = at.records;
    if (r->rank == 0 && at.used_prev)
        printf("checkpoint refused (%s): using %s.prev\n", at.refused, r->checkpoint);
    if (r->rank == 0)
        printf("resuming after epoch %d from %s\n", at.epoch, r->checkpoint);
    return 0;
}

int ipm_run(const ipm_config *cfg, const ipm_run_options *opt, MPI_Comm comm, char *err)
{
    run r;
    memset(&r, 0, sizeof r);
    r.cfg = cfg;
    if (opt)
        r.opt = *opt;
    r.comm = comm;
    MPI_Comm_rank(comm, &r.rank);
    MPI_Comm_size(comm, &r.size);
    /* Each step ends in agreement, so every rank takes the same path. The
     * output exists only once every rank is ready: a bad setup leaves no file. */
    int rc = ipm_agree(setup(&r, err), err, comm);
    if (rc == 0 && r.opt.restart)
        rc = resume(&r, err);
    if (rc == 0)
        rc = ipm_agree(setup_output(&r, err), err, comm);
    if (rc == 0)
        rc = epoch_loop(&r, err);
    char close_err[IPM_ERRLEN] = "";
    int close_rc = ipm_output_close(r.out, close_err);
    if (rc >= 0 && close_rc) {
        rc = -1;
        memcpy(err, close_err, IPM_ERRLEN);
    }
    int stopped = rc == IPM_RUN_STOPPED;
    rc = ipm_agree(rc < 0, err, comm);
    if (rc == 0 && !stopped)
        print_summary(&r);
    teardown(&r);
    return rc == 0 && stopped ? IPM_RUN_STOPPED : rc;
}
