/* output: the run's NetCDF-4 file. Every variable id is looked up once at
 * create time, so an append is one nc_put_vara per variable and a sync. */
/* fallocate's FALLOC_FL_KEEP_SIZE (Linux) reserves room without changing
 * the file's size, which HDF5 manages itself. */
#define _GNU_SOURCE
#include "ipmpi/io/output.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netcdf.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ipmpi/info/estimates.h"
#include "ipmpi/learn/spec.h"
#include "ipmpi/base/error.h"

#define N_QUANTITIES 6 /* I_XT/I_TY for simple, pooled, sampled */

/* One information variable per (plane, quantity); order matches plane_arrays(). */
typedef struct quantity {
    const char *name;
    unsigned estimator;
    int per_replica;
    const char *long_name;
} quantity;

static const quantity quantities[N_QUANTITIES] = {
    {"I_XT_simple", IPM_EST_SIMPLE, 1, "I(X;T), simple estimator per replica"},
    {"I_TY_simple", IPM_EST_SIMPLE, 1, "I(T;Y), simple estimator per replica"},
    {"I_XT_pooled", IPM_EST_POOLED, 0, "I(X;T), pooled extended estimator over all replicas"},
    {"I_TY_pooled", IPM_EST_POOLED, 0, "I(T;Y), pooled extended estimator over all replicas"},
    {"I_XT_sampled", IPM_EST_SAMPLED, 0,
     "I(X;T), sampled extended estimator (one random replica per sample)"},
    {"I_TY_sampled", IPM_EST_SAMPLED, 0,
     "I(T;Y), sampled extended estimator (one random replica per sample)"},
};

static const char *const plane_prefix[IPM_N_PLANES] = {"", "test_"};
static const unsigned plane_bit[IPM_N_PLANES] = {IPM_ON_TRAIN, IPM_ON_TEST};

/* Per-record columns: losses, information, stop_J, bin ranges. */
enum { COL_LOSS, COL_ACCURACY, COL_TEST_LOSS, COL_TEST_ACCURACY, COL_INFO,
       COL_STOP_J = COL_INFO + IPM_N_PLANES * N_QUANTITIES, COL_RANGE, N_COLUMNS = COL_RANGE + 4 };

struct ipm_output {
    int ncid;
    char *path;
    int replicas, n_layers;
    size_t records;               /* records appended so far */
    int n_activation_epochs, activation_samples;
    int *width;                   /* n_layers */
    int *measured;                /* n_layers: 0 = write fill values */
    int epoch_id, loss_id, accuracy_id, test_loss_id, test_accuracy_id; /* -1: absent */
    int info_id[IPM_N_PLANES][N_QUANTITIES];
    int range_id[IPM_N_PLANES][2];    /* bin_lo, bin_hi per plane (adaptive range) */
    int stop_j_id, stop_epoch_id, stop_rules;
    int activation_epoch_id;
    int *t_id;                    /* n_layers, when activations are stored */
    /* Records not yet in the file: appended records are kept here and written
     * (one nc_put_vara per variable) and synced together at most every
     * flush_seconds, so the file always holds whole records as of the last
     * flush. */
    double flush_seconds, last_flush;
    size_t pending, capacity;     /* records buffered / room for */
    int *pending_epoch;
    double *pending_values[N_COLUMNS];
    int dirty;                    /* activations written since the last sync */
    size_t dirty_bytes;           /* their size, to reserve room for at the next sync */
    int failed;                   /* a write or sync failed: nothing more is written */
};


static void plane_arrays(const ipm_plane_record *p, const double *a[N_QUANTITIES])
{
    a[0] = p->i_xt_simple;
    a[1] = p->i_ty_simple;
    a[2] = p->i_xt_pooled;
    a[3] = p->i_ty_pooled;
    a[4] = p->i_xt_sampled;
    a[5] = p->i_ty_sampled;
}

/* "PATH: WHAT: NetCDF's reason", WHAT naming the variable, dimension or attribute. */
static int nc_fail(const ipm_output *o, int status, const char *what, const char *name, char *err)
{
    return ipm_fail(err, "%s: %s%s%s: %s", o->path, what, *name ? " " : "", name,
                    nc_strerror(status));
}

/* nc_fail for a write or sync, kind IPM_ERR_IO. NetCDF reports every HDF5
 * failure as "HDF error"; the OS's reason (errno, kept by the failing
 * write) is what the user can act on, so it is given instead when there is
 * one. */
static int io_fail(const ipm_output *o, int status, int saved_errno, const char *what,
                   const char *name, char *err)
{
    int os_reason = status == NC_EHDFERR && saved_errno != 0;
    return ipm_fail_as(err, IPM_ERR_IO, "%s: %s%s%s: %s", o->path, what, *name ? " " : "", name,
                       os_reason ? strerror(saved_errno) : nc_strerror(status));
}

static int put_text_att(ipm_output *o, int varid, const char *name, const char *text, char *err)
{
    if (!text)
        text = "";
    int s = nc_put_att_text(o->ncid, varid, name, strlen(text), text);
    return s ? nc_fail(o, s, "attribute", name, err) : 0;
}

static int put_int_att(ipm_output *o, const char *name, int v, char *err)
{
    int s = nc_put_att_int(o->ncid, NC_GLOBAL, name, NC_INT, 1, &v);
    return s ? nc_fail(o, s, "attribute", name, err) : 0;
}

static int put_double_att(ipm_output *o, const char *name, double v, char *err)
{
    int s = nc_put_att_double(o->ncid, NC_GLOBAL, name, NC_DOUBLE, 1, &v);
    return s ? nc_fail(o, s, "attribute", name, err) : 0;
}

static int def_dim(ipm_output *o, const char *name, size_t len, int *dimid, char *err)
{
    int s = nc_def_dim(o->ncid, name, len, dimid);
    return s ? nc_fail(o, s, "dimension", name, err) : 0;
}

/* Defines a variable with its chunk shape (NULL: contiguous), long_name and
 * units (NULL: none). */
static int def_var(ipm_output *o, const char *name, nc_type type, int ndims, const int *dims,
                   const size_t *chunks, const char *long_name, const char *units, int *varid,
                   char *err)
{
    int s = nc_def_var(o->ncid, name, type, ndims, dims, varid);
    if (!s && chunks)
        s = nc_def_var_chunking(o->ncid, *varid, NC_CHUNKED, chunks);
    if (s)
        return nc_fail(o, s, "variable", name, err);
    if (put_text_att(o, *varid, "long_name", long_name, err))
        return -1;
    return units ? put_text_att(o, *varid, "units", units, err) : 0;
}

static int def_global_atts(ipm_output *o, const ipm_output_meta *m, char *err)
{
    char history[96];
    snprintf(history, sizeof history, "created by ipmpi %s on %d ranks", m->version, m->ranks);
    if (put_text_att(o, NC_GLOBAL, "title", "ipmpi information-plane run", err)
        || put_text_att(o, NC_GLOBAL, "history", history, err)
        || put_text_att(o, NC_GLOBAL, "config", m->config_text, err)
        || put_text_att(o, NC_GLOBAL, "ipmpi_version", m->version, err)
        || put_int_att(o, "ranks", m->ranks, err) || put_int_att(o, "replicas", m->replicas, err)
        || put_double_att(o, "H_X", m->h_x, err) || put_double_att(o, "H_Y", m->h_y, err)
        || put_double_att(o, "I_XY", m->i_xy, err))
        return -1;
    if ((m->planes & IPM_ON_TEST)
        && (put_double_att(o, "test_H_X", m->test_h_x, err)
            || put_double_att(o, "test_H_Y", m->test_h_y, err)
            || put_double_att(o, "test_I_XY", m->test_i_xy, err)))
        return -1;
    if (put_int_att(o, "bins", m->bins, err))
        return -1;
    if (m->adaptive_range)
        return put_text_att(o, NC_GLOBAL, "binning", "adaptive", err);
    return put_double_att(o, "range_lo", m->range_lo, err)
                   || put_double_att(o, "range_hi", m->range_hi, err)
               ? -1
               : 0;
}

/* "bin_lo", "bin_hi", "test_bin_lo", "test_bin_hi". */
static void range_var_name(int plane, int hi, char *name, size_t size)
{
    snprintf(name, size, "%sbin_%s", plane_prefix[plane], hi ? "hi" : "lo");
}

static int def_range_vars(ipm_output *o, const ipm_output_meta *m, int epoch_dim, int layer_dim,
                          char *err)
{
    int dims[2] = {epoch_dim, layer_dim};
    size_t chunks[2] = {1, (size_t)m->n_layers};
    for (int p = 0; m->adaptive_range && p < IPM_N_PLANES; p++) {
        if (!(m->planes & plane_bit[p]))
            continue;
        for (int hi = 0; hi < 2; hi++) {
            char name[32], long_name[96];
            range_var_name(p, hi, name, sizeof name);
            snprintf(long_name, sizeof long_name, "%s of the binning range of each layer%s",
                     hi ? "upper end" : "lower end", p ? ", on the test set" : "");
            if (def_var(o, name, NC_DOUBLE, 2, dims, chunks, long_name, NULL, &o->range_id[p][hi],
                        err))
                return -1;
        }
    }
    return 0;
}

static int def_stop_vars(ipm_output *o, const ipm_output_meta *m, int epoch_dim, int replica_dim,
                         char *err)
{
    if (m->stop_rules <= 0)
        return 0;
    int dims[2] = {epoch_dim, replica_dim}, fill = -1;
    size_t chunks[2] = {1, (size_t)m->replicas};
    int per_replica = m->stop_rules > 1;
    if (def_var(o, "stop_J", NC_DOUBLE, per_replica ? 2 : 1, dims, chunks,
                m->stop_description ? m->stop_description : "stopping objective", "bits",
                &o->stop_j_id, err)
        || def_var(o, "stop_epoch", NC_INT, 1, &replica_dim, NULL,
                   "epoch at which each replica stopped training (-1: it did not stop)", NULL,
                   &o->stop_epoch_id, err))
        return -1;
    int s = nc_def_var_fill(o->ncid, o->stop_epoch_id, 0, &fill);
    return s ? nc_fail(o, s, "variable", "stop_epoch", err) : 0;
}

static int def_plane_vars(ipm_output *o, const ipm_output_meta *m, int plane, int epoch_dim,
                          int replica_dim, int layer_dim, char *err)
{
    int per_replica[3] = {epoch_dim, replica_dim, layer_dim};
    int per_layer[2] = {epoch_dim, layer_dim};
    size_t chunk_r[3] = {1, (size_t)m->replicas, (size_t)m->n_layers};
    size_t chunk_l[2] = {1, (size_t)m->n_layers};
    if (!(m->planes & plane_bit[plane]))
        return 0;
    for (int q = 0; q < N_QUANTITIES; q++) {
        const quantity *qu = &quantities[q];
        if (!(m->estimators & qu->estimator))
            continue;
        char name[64], long_name[128];
        snprintf(name, sizeof name, "%s%s", plane_prefix[plane], qu->name);
        snprintf(long_name, sizeof long_name, "%s%s", qu->long_name,
                 plane ? ", on the test set" : "");
        int rc = qu->per_replica
                     ? def_var(o, name, NC_DOUBLE, 3, per_replica, chunk_r, long_name, "bits",
                               &o->info_id[plane][q], err)
                     : def_var(o, name, NC_DOUBLE, 2, per_layer, chunk_l, long_name, "bits",
                               &o->info_id[plane][q], err);
        if (rc)
            return -1;
    }
    return 0;
}

static int def_activation_vars(ipm_output *o, const ipm_output_meta *m, int replica_dim,
                               int *x_varid, int *y_varid, char *err)
{
    int slot_dim, sample_dim;
    if (def_dim(o, "activation_epoch", (size_t)m->n_activation_epochs, &slot_dim, err)
        || def_dim(o, "sample", (size_t)m->activation_samples, &sample_dim, err))
        return -1;
    if (def_var(o, "activation_epoch", NC_INT, 1, &slot_dim, NULL,
                "training epochs completed when the activations were stored", NULL,
                &o->activation_epoch_id, err)
        || def_var(o, "sample_x_id", NC_INT, 1, &sample_dim, NULL,
                   "distinct input id (x id) of each stored sample", NULL, x_varid, err)
        || def_var(o, "sample_y", NC_INT, 1, &sample_dim, NULL, "class label of each stored sample",
                   NULL, y_varid, err))
        return -1;
    for (int k = 1; k <= m->n_layers; k++) {
        char dim_name[32], name[32], long_name[64];
        snprintf(dim_name, sizeof dim_name, "unit%d", k);
        snprintf(name, sizeof name, "T%d", k);
        snprintf(long_name, sizeof long_name, "activations of layer %d", k);
        int unit_dim;
        if (def_dim(o, dim_name, (size_t)m->layer_width[k - 1], &unit_dim, err))
            return -1;
        int dims[4] = {slot_dim, replica_dim, sample_dim, unit_dim};
        size_t chunks[4] = {1, 1, (size_t)m->activation_samples, (size_t)m->layer_width[k - 1]};
        if (def_var(o, name, NC_FLOAT, 4, dims, chunks, long_name, NULL, &o->t_id[k - 1], err))
            return -1;
    }
    return 0;
}

static int def_schema(ipm_output *o, const ipm_output_meta *m, char *err)
{
    int fill_was, s = nc_set_fill(o->ncid, NC_FILL, &fill_was);
    if (s)
        return nc_fail(o, s, "nc_set_fill", "", err);
    int epoch_dim, replica_dim, layer_dim;
    if (def_dim(o, "epoch", NC_UNLIMITED, &epoch_dim, err)
        || def_dim(o, "replica", (size_t)m->replicas, &replica_dim, err)
        || def_dim(o, "layer", (size_t)m->n_layers, &layer_dim, err))
        return -1;
    size_t chunk_e = 1, chunk_r[2] = {1, (size_t)m->replicas};
    int per_replica[2] = {epoch_dim, replica_dim};
    int width_id, measured_id, x_varid = -1, y_varid = -1;
    if (def_var(o, "epoch", NC_INT, 1, &epoch_dim, &chunk_e, "training epochs completed", NULL,
                &o->epoch_id, err)
        || def_var(o, "layer_width", NC_INT, 1, &layer_dim, NULL, "units in each layer", NULL,
                   &width_id, err)
        || def_var(o, "layer_measured", NC_INT, 1, &layer_dim, NULL,
                   "1 where the layer's information is estimated ([information] layers)", NULL,
                   &measured_id, err)
        || def_var(o, "loss", NC_DOUBLE, 2, per_replica, chunk_r,
                   "training loss per replica", NULL, &o->loss_id, err)
        || def_var(o, "accuracy", NC_DOUBLE, 2, per_replica, chunk_r,
                   "training accuracy per replica", NULL, &o->accuracy_id, err))
        return -1;
    if (m->has_test
        && (def_var(o, "test_loss", NC_DOUBLE, 2, per_replica, chunk_r,
                    "test loss per replica", NULL, &o->test_loss_id, err)
            || def_var(o, "test_accuracy", NC_DOUBLE, 2, per_replica, chunk_r,
                       "test accuracy per replica", NULL, &o->test_accuracy_id, err)))
        return -1;
    for (int p = 0; p < IPM_N_PLANES; p++)
        if (def_plane_vars(o, m, p, epoch_dim, replica_dim, layer_dim, err))
            return -1;
    if (def_range_vars(o, m, epoch_dim, layer_dim, err)
        || def_stop_vars(o, m, epoch_dim, replica_dim, err))
        return -1;
    if (m->n_activation_epochs > 0
        && def_activation_vars(o, m, replica_dim, &x_varid, &y_varid, err))
        return -1;
    if (def_global_atts(o, m, err))
        return -1;
    if ((s = nc_enddef(o->ncid)))
        return nc_fail(o, s, "nc_enddef", "", err);
    if ((s = nc_put_var_int(o->ncid, width_id, m->layer_width)))
        return nc_fail(o, s, "variable", "layer_width", err);
    if ((s = nc_put_var_int(o->ncid, measured_id, o->measured)))
        return nc_fail(o, s, "variable", "layer_measured", err);
    if (m->n_activation_epochs > 0) {
        if ((s = nc_put_var_int(o->ncid, x_varid, m->sample_x_id)))
            return nc_fail(o, s, "variable", "sample_x_id", err);
        if ((s = nc_put_var_int(o->ncid, y_varid, m->sample_y)))
            return nc_fail(o, s, "variable", "sample_y", err);
    }
    return 0;
}

static int check_meta(const ipm_output_meta *m, char *err)
{
    if (!m->path || !*m->path)
        return ipm_fail(err, "output: no file name given");
    if (m->replicas < 1 || m->n_layers < 1 || m->n_layers > IPM_MAX_LAYERS || !m->layer_width)
        return ipm_fail(err, "%s: need at least one replica and 1..%d layers", m->path,
                        IPM_MAX_LAYERS);
    for (int l = 0; l < m->n_layers; l++)
        if (m->layer_width[l] < 1)
            return ipm_fail(err, "%s: layer_width[%d] = %d is not positive", m->path, l,
                            m->layer_width[l]);
    if (m->n_activation_epochs > 0
        && (m->activation_samples < 1 || !m->sample_x_id || !m->sample_y))
        return ipm_fail(err, "%s: stored activations need samples, sample_x_id and sample_y",
                        m->path);
    return 0;
}

static void output_free(ipm_output *o)
{
    free(o->pending_epoch);
    for (int c = 0; c < N_COLUMNS; c++)
        free(o->pending_values[c]);
    free(o->path);
    free(o->width);
    free(o->measured);
    free(o->t_id);
    free(o);
}

static ipm_output *output_alloc(const ipm_output_meta *m)
{
    ipm_output *o = calloc(1, sizeof *o);
    if (!o)
        return NULL;
    o->path = malloc(strlen(m->path) + 1);
    o->width = malloc((size_t)m->n_layers * sizeof *o->width);
    o->measured = malloc((size_t)m->n_layers * sizeof *o->measured);
    o->t_id = malloc((size_t)m->n_layers * sizeof *o->t_id);
    if (!o->path || !o->width || !o->measured || !o->t_id) {
        output_free(o);
        return NULL;
    }
    strcpy(o->path, m->path);
    memcpy(o->width, m->layer_width, (size_t)m->n_layers * sizeof *o->width);
    for (int l = 0; l < m->n_layers; l++)
        o->measured[l] = m->layer_measured ? m->layer_measured[l] != 0 : 1;
    o->replicas = m->replicas;
    o->n_layers = m->n_layers;
    o->n_activation_epochs = m->n_activation_epochs > 0 ? m->n_activation_epochs : 0;
    o->activation_samples = m->activation_samples;
    o->test_loss_id = o->test_accuracy_id = o->activation_epoch_id = -1;
    o->flush_seconds = m->flush_seconds > 0 ? m->flush_seconds : 0;
    o->last_flush = -1e300;
    for (int p = 0; p < IPM_N_PLANES; p++) {
        for (int q = 0; q < N_QUANTITIES; q++)
            o->info_id[p][q] = -1;
        o->range_id[p][0] = o->range_id[p][1] = -1;
    }
    o->stop_j_id = o->stop_epoch_id = -1;
    o->stop_rules = m->stop_rules;
    for (int l = 0; l < m->n_layers; l++)
        o->t_id[l] = -1;
    return o;
}

/* NetCDF-4 reports any HDF5 create failure as EACCES ("Permission denied"),
 * even for a missing directory, so look at the directory ourselves. */
static int create_failed(const char *path, int status, char *err)
{
    char *dir = strdup(path);
    char *slash = dir ? strrchr(dir, '/') : NULL;
    struct stat st;
    int rc;
    if (!slash)
        rc = ipm_fail(err, "cannot create NetCDF file %s: %s", path, nc_strerror(status));
    else {
        slash[slash == dir] = '\0'; /* keep "/" for a file in the root */
        if (stat(dir, &st) != 0)
            rc = ipm_fail(err, "cannot create NetCDF file %s: directory %s: %s", path, dir,
                          strerror(errno));
        else if (!S_ISDIR(st.st_mode))
            rc = ipm_fail(err, "cannot create NetCDF file %s: %s is not a directory", path, dir);
        else
            rc = ipm_fail(err, "cannot create NetCDF file %s: %s", path, nc_strerror(status));
    }
    free(dir);
    return rc;
}

/* The run id as the file spells it: 16 hex digits. */
static void run_id_text(uint64_t id, char text[17])
{
    snprintf(text, 17, "%016" PRIx64, id);
}

/* Global attribute run_id, which the run's checkpoints carry too. */
static int put_run_id(ipm_output *o, uint64_t id, char *err)
{
    char text[17];
    run_id_text(id, text);
    int s = nc_redef(o->ncid);
    if (s)
        return nc_fail(o, s, "nc_redef", "", err);
    if (put_text_att(o, NC_GLOBAL, "run_id", text, err))
        return -1;
    s = nc_enddef(o->ncid);
    return s ? nc_fail(o, s, "nc_enddef", "", err) : 0;
}

/* A restart appends only to its own run's file: one copied over it (or an
 * earlier run's, kept beside a newer checkpoint) is refused. id 0: the
 * checkpoint predates run ids, nothing to compare. */
static int check_run_id(const ipm_output *o, uint64_t id, char *err)
{
    if (id == 0)
        return 0;
    char want[17], have[64] = "";
    run_id_text(id, want);
    size_t len = 0;
    if (nc_inq_attlen(o->ncid, NC_GLOBAL, "run_id", &len) == NC_NOERR && len < sizeof have)
        nc_get_att_text(o->ncid, NC_GLOBAL, "run_id", have);
    if (strcmp(have, want) == 0)
        return 0;
    return ipm_fail_as(err, IPM_ERR_REFUSED,
                       "%s belongs to another run (run_id %s) than the checkpoint (run_id %s): "
                       "refused, nothing written; restore the run's own output, or start afresh "
                       "with --overwrite", o->path, *have ? have : "absent", want);
}

int ipm_output_create(ipm_output **out, const ipm_output_meta *meta, char *err)
{
    *out = NULL;
    if (check_meta(meta, err))
        return -1;
    ipm_output *o = output_alloc(meta);
    if (!o)
        return ipm_fail(err, "%s: out of memory", meta->path);
    int s = nc_create(o->path, NC_CLOBBER | NC_NETCDF4, &o->ncid);
    if (s) {
        create_failed(o->path, s, err);
        output_free(o);
        return -1;
    }
    if (def_schema(o, meta, err) || put_run_id(o, meta->run_id, err)) {
        /* Leave no half-written file behind: nc_abort deletes a file still in
         * define mode, remove() covers a failure after nc_enddef. */
        nc_abort(o->ncid);
        remove(o->path);
        output_free(o);
        return -1;
    }
    *out = o;
    return 0;
}

static int find_var(ipm_output *o, const char *name, int *varid, char *err)
{
    int s = nc_inq_varid(o->ncid, name, varid);
    return s ? nc_fail(o, s, "variable", name, err) : 0;
}

/* The variable ids def_schema would have defined for meta. */
static int find_schema(ipm_output *o, const ipm_output_meta *m, char *err)
{
    if (find_var(o, "epoch", &o->epoch_id, err) || find_var(o, "loss", &o->loss_id, err)
        || find_var(o, "accuracy", &o->accuracy_id, err))
        return -1;
    if (m->has_test && (find_var(o, "test_loss", &o->test_loss_id, err)
                        || find_var(o, "test_accuracy", &o->test_accuracy_id, err)))
        return -1;
    for (int p = 0; p < IPM_N_PLANES; p++)
        for (int q = 0; q < N_QUANTITIES; q++) {
            char name[64];
            snprintf(name, sizeof name, "%s%s", plane_prefix[p], quantities[q].name);
            if ((m->planes & plane_bit[p]) && (m->estimators & quantities[q].estimator)
                && find_var(o, name, &o->info_id[p][q], err))
                return -1;
        }
    for (int p = 0; m->adaptive_range && p < IPM_N_PLANES; p++)
        for (int hi = 0; (m->planes & plane_bit[p]) && hi < 2; hi++) {
            char name[32];
            range_var_name(p, hi, name, sizeof name);
            if (find_var(o, name, &o->range_id[p][hi], err))
                return -1;
        }
    if (m->stop_rules > 0 && (find_var(o, "stop_J", &o->stop_j_id, err)
                              || find_var(o, "stop_epoch", &o->stop_epoch_id, err)))
        return -1;
    if (m->n_activation_epochs > 0 && find_var(o, "activation_epoch", &o->activation_epoch_id, err))
        return -1;
    for (int k = 1; m->n_activation_epochs > 0 && k <= m->n_layers; k++) {
        char name[32];
        snprintf(name, sizeof name, "T%d", k);
        if (find_var(o, name, &o->t_id[k - 1], err))
            return -1;
    }
    return 0;
}

static int check_records(ipm_output *o, long records, char *err)
{
    int dim;
    size_t held;
    int s = nc_inq_dimid(o->ncid, "epoch", &dim);
    if (!s)
        s = nc_inq_dimlen(o->ncid, dim, &held);
    if (s)
        return nc_fail(o, s, "dimension", "epoch", err);
    if (records < 0 || (size_t)records > held)
        return ipm_fail(err, "%s: holds %zu records, the checkpoint expects %ld", o->path, held,
                        records);
    o->records = (size_t)records;
    return 0;
}

/* A global text attribute as a malloc'd string ("" when absent). */
static char *global_text(const ipm_output *o, const char *name)
{
    size_t len = 0;
    if (nc_inq_attlen(o->ncid, NC_GLOBAL, name, &len) != NC_NOERR || len > (1u << 20))
        len = 0;
    char *text = calloc(len + 1, 1);
    if (text && len && nc_get_att_text(o->ncid, NC_GLOBAL, name, text) != NC_NOERR)
        text[0] = '\0';
    return text;
}

/* ranks becomes this run's count; history gains a line saying so. */
static int note_restart(ipm_output *o, const ipm_output_meta *m, char *err)
{
    int last_epoch = -1;
    size_t at = o->records - 1;
    if (o->records)
        nc_get_var1_int(o->ncid, o->epoch_id, &at, &last_epoch);
    char *history = global_text(o, "history");
    char line[128];
    snprintf(line, sizeof line, "\nrestarted by ipmpi %s on %d ranks after epoch %d", m->version,
             m->ranks, last_epoch);
    char *text = history ? malloc(strlen(history) + strlen(line) + 1) : NULL;
    if (!text) {
        free(history);
        return ipm_fail(err, "%s: out of memory", o->path);
    }
    strcat(strcpy(text, history), *history ? line : line + 1);
    int s = nc_redef(o->ncid), rc = s ? nc_fail(o, s, "nc_redef", "", err) : 0;
    if (rc == 0 && (put_text_att(o, NC_GLOBAL, "history", text, err)
                    || put_int_att(o, "ranks", m->ranks, err)))
        rc = -1;
    if (rc == 0 && (s = nc_enddef(o->ncid)))
        rc = nc_fail(o, s, "nc_enddef", "", err);
    free(history);
    free(text);
    return rc;
}

int ipm_output_reopen(ipm_output **out, const ipm_output_meta *meta, long records, char *err)
{
    *out = NULL;
    if (check_meta(meta, err))
        return -1;
    ipm_output *o = output_alloc(meta);
    if (!o)
        return ipm_fail(err, "%s: out of memory", meta->path);
    int s = nc_open(o->path, NC_WRITE, &o->ncid);
    if (s) {
        ipm_fail(err, "cannot reopen NetCDF file %s: %s", o->path, nc_strerror(s));
        output_free(o);
        return -1;
    }
    if (check_run_id(o, meta->run_id, err) || find_schema(o, meta, err) ||
        check_records(o, records, err)
        || note_restart(o, meta, err)) {
        nc_close(o->ncid);
        output_free(o);
        return -1;
    }
    *out = o;
    return 0;
}

long ipm_output_records(const ipm_output *o)
{
    return o ? (long)o->records : 0;
}

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Column c's variable id (-1: absent), name, and the extent of one record
 * after the epoch dimension: shape[0] x shape[1]. */
static int column_var(const ipm_output *o, int c, char *name, size_t size, size_t shape[2])
{
    static const char *const replica_vars[] = {"loss", "accuracy", "test_loss", "test_accuracy"};
    const int replica_ids[] = {o->loss_id, o->accuracy_id, o->test_loss_id, o->test_accuracy_id};
    shape[0] = shape[1] = 1;
    if (c < COL_INFO) {
        snprintf(name, size, "%s", replica_vars[c]);
        shape[0] = (size_t)o->replicas;
        return replica_ids[c];
    }
    if (c < COL_STOP_J) {
        int plane = (c - COL_INFO) / N_QUANTITIES, q = (c - COL_INFO) % N_QUANTITIES;
        snprintf(name, size, "%s%s", plane_prefix[plane], quantities[q].name);
        shape[0] = quantities[q].per_replica ? (size_t)o->replicas : (size_t)o->n_layers;
        shape[1] = quantities[q].per_replica ? (size_t)o->n_layers : 1;
        return o->info_id[plane][q];
    }
    if (c == COL_STOP_J) {
        snprintf(name, size, "stop_J");
        shape[0] = (size_t)(o->stop_rules > 0 ? o->stop_rules : 1);
        return o->stop_j_id;
    }
    int plane = (c - COL_RANGE) / 2, hi = (c - COL_RANGE) % 2;
    range_var_name(plane, hi, name, size);
    shape[0] = (size_t)o->n_layers;
    return o->range_id[plane][hi];
}

static void record_columns(const ipm_epoch_record *rec, const double *v[N_COLUMNS])
{
    v[COL_LOSS] = rec->loss;
    v[COL_ACCURACY] = rec->accuracy;
    v[COL_TEST_LOSS] = rec->test_loss;
    v[COL_TEST_ACCURACY] = rec->test_accuracy;
    plane_arrays(&rec->train, v + COL_INFO);
    plane_arrays(&rec->test, v + COL_INFO + N_QUANTITIES);
    v[COL_STOP_J] = rec->stop_j;
    const ipm_plane_record *planes[IPM_N_PLANES] = {&rec->train, &rec->test};
    for (int p = 0; p < IPM_N_PLANES; p++) {
        v[COL_RANGE + 2 * p] = planes[p]->bin_lo;
        v[COL_RANGE + 2 * p + 1] = planes[p]->bin_hi;
    }
}

static int grow_pending(ipm_output *o, char *err)
{
    size_t cap = o->capacity ? 2 * o->capacity : 16;
    int *e = realloc(o->pending_epoch, cap * sizeof *e);
    if (!e)
        return ipm_fail(err, "%s: out of memory buffering records", o->path);
    o->pending_epoch = e;
    for (int c = 0; c < N_COLUMNS; c++) {
        char name[64];
        size_t shape[2];
        if (column_var(o, c, name, sizeof name, shape) < 0)
            continue;
        double *v = realloc(o->pending_values[c], cap * shape[0] * shape[1] * sizeof *v);
        if (!v)
            return ipm_fail(err, "%s: out of memory buffering records", o->path);
        o->pending_values[c] = v;
    }
    o->capacity = cap;
    return 0;
}

/* A value the record does not carry is written as the fill value, as if never written. */
static void buffer_record(ipm_output *o, const ipm_epoch_record *rec)
{
    const double *v[N_COLUMNS];
    record_columns(rec, v);
    o->pending_epoch[o->pending] = rec->epoch;
    for (int c = 0; c < N_COLUMNS; c++) {
        char name[64];
        size_t shape[2];
        if (column_var(o, c, name, sizeof name, shape) < 0)
            continue;
        size_t per = shape[0] * shape[1];
        double *dst = o->pending_values[c] + o->pending * per;
        int by_layer = c >= COL_INFO && c != COL_STOP_J; /* layer is the last index */
        for (size_t i = 0; i < per; i++)
            dst[i] = v[c] && (!by_layer || o->measured[i % (size_t)o->n_layers])
                         ? v[c][i] : NC_FILL_DOUBLE;
    }
    o->pending++;
}

/* Bytes the next flush may add: for every variable along the unlimited
 * dimension, the chunks the pending records start (a chunk is allocated
 * whole); the activations written since the last sync; and room for the
 * metadata that grows with them (B-tree nodes, object headers). */
static double growth_bound(const ipm_output *o)
{
    int nvars = 0, unlimited = -1;
    if (nc_inq_nvars(o->ncid, &nvars) != NC_NOERR ||
        nc_inq_unlimdim(o->ncid, &unlimited) != NC_NOERR)
        return 0;
    /* HDF5 takes file space for metadata in 2 KB blocks; a B-tree node per
     * variable and a few blocks more bound what one flush adds. */
    double bytes = (double)o->dirty_bytes + (64 << 10) + (double)nvars * (4 << 10);
    for (int v = 0; v < nvars; v++) {
        int ndims = 0, dims[NC_MAX_VAR_DIMS], storage = 0;
        size_t chunk[NC_MAX_VAR_DIMS], type_size = 0;
        nc_type type;
        if (nc_inq_var(o->ncid, v, NULL, &type, &ndims, dims, NULL) != NC_NOERR || ndims < 1 ||
            dims[0] != unlimited || nc_inq_type(o->ncid, type, NULL, &type_size) != NC_NOERR ||
            nc_inq_var_chunking(o->ncid, v, &storage, chunk) != NC_NOERR ||
            storage != NC_CHUNKED || chunk[0] == 0)
            continue;
        double row = (double)type_size; /* one chunk-row across the other dimensions */
        for (int d = 1; d < ndims; d++) {
            size_t len = 0;
            nc_inq_dimlen(o->ncid, dims[d], &len);
            row *= (double)chunk[d] * (double)((len + chunk[d] - 1) / (chunk[d] ? chunk[d] : 1));
        }
        size_t before = (o->records + chunk[0] - 1) / chunk[0];
        size_t after = (o->records + o->pending + chunk[0] - 1) / chunk[0];
        bytes += (double)(after - before + 1) * ((double)chunk[0] * row + 64);
    }
    return bytes;
}

/* Reserves room for the next flush beyond the file's end before anything
 * is written, so that a full disk stops the run with the OS's reason while
 * the file still holds every record of the last flush: a write that fails
 * halfway leaves HDF5's metadata torn (the file unreadable, or records with
 * some variables written and others not). A file system that cannot
 * reserve (EOPNOTSUPP) is written without. */
static int reserve_room(const ipm_output *o, char *err)
{
#ifdef FALLOC_FL_KEEP_SIZE
    int fd = open(o->path, O_WRONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        int saved = errno;
        if (fd >= 0)
            close(fd);
        return ipm_fail_as(err, IPM_ERR_IO, "%s: %s", o->path, strerror(saved));
    }
    double bytes = growth_bound(o);
    int rc = 0;
    if (bytes > 0 && fallocate(fd, FALLOC_FL_KEEP_SIZE, st.st_size, (off_t)bytes) != 0 &&
        errno != EOPNOTSUPP && errno != ENOSYS && errno != EINVAL)
        rc = ipm_fail_as(err, IPM_ERR_IO, "%s: cannot write %zu more record%s: %s (the file "
                         "keeps the %zu record%s written before)", o->path, o->pending,
                         o->pending == 1 ? "" : "s", strerror(errno), o->records,
                         o->records == 1 ? "" : "s");
    close(fd);
    return rc;
#else
    (void)o, (void)err;
    return 0;
#endif
}

static int put_pending(ipm_output *o, char *err)
{
    size_t start[3] = {o->records, 0, 0};
    errno = 0;
    int s = nc_put_vara_int(o->ncid, o->epoch_id, start, &o->pending, o->pending_epoch);
    if (s)
        return io_fail(o, s, errno, "variable", "epoch", err);
    for (int c = 0; c < N_COLUMNS; c++) {
        char name[64];
        size_t shape[2];
        int varid = column_var(o, c, name, sizeof name, shape);
        if (varid < 0)
            continue;
        size_t count[3] = {o->pending, shape[0], shape[1]}; /* trailing extents beyond ndims unused */
        errno = 0;
        if ((s = nc_put_vara_double(o->ncid, varid, start, count, o->pending_values[c])))
            return io_fail(o, s, errno, "variable", name, err);
    }
    return 0;
}

/* After a failure nothing more is written: the file stays as of the last
 * flush, which held whole records. */
int ipm_output_flush(ipm_output *o, char *err)
{
    if (!o || (o->pending == 0 && !o->dirty))
        return 0;
    if (o->failed)
        return ipm_fail_as(err, IPM_ERR_IO, "%s: an earlier write failed", o->path);
    if (reserve_room(o, err) || (o->pending && put_pending(o, err))) {
        o->failed = 1;
        return -1;
    }
    errno = 0;
    int s = nc_sync(o->ncid);
    if (s) {
        o->failed = 1;
        return io_fail(o, s, errno, "nc_sync", "", err);
    }
    o->records += o->pending;
    o->pending = 0;
    o->dirty = 0;
    o->dirty_bytes = 0;
    o->last_flush = now_seconds();
    return 0;
}

int ipm_output_append(ipm_output *o, const ipm_epoch_record *rec, char *err)
{
    if (o->pending == o->capacity && grow_pending(o, err))
        return -1;
    buffer_record(o, rec);
    if (now_seconds() - o->last_flush >= o->flush_seconds)
        return ipm_output_flush(o, err);
    return 0;
}

int ipm_output_activations(ipm_output *o, int slot, int epoch, int replica, int layer,
                           const float *values, char *err)
{
    if (o->n_activation_epochs == 0)
        return ipm_fail(err, "%s: variable T%d: the file stores no activations", o->path,
                        layer + 1);
    if (layer < 0 || layer >= o->n_layers)
        return ipm_fail(err, "%s: activations of layer %d: the file has %d layers", o->path,
                        layer, o->n_layers);
    if (slot < 0 || slot >= o->n_activation_epochs || replica < 0 || replica >= o->replicas)
        return ipm_fail(err, "%s: variable T%d: slot %d or replica %d out of range (%d, %d)",
                        o->path, layer + 1, slot, replica, o->n_activation_epochs, o->replicas);
    size_t start[4] = {(size_t)slot, (size_t)replica, 0, 0};
    size_t count[4] = {1, 1, (size_t)o->activation_samples, (size_t)o->width[layer]};
    errno = 0;
    int s = nc_put_vara_float(o->ncid, o->t_id[layer], start, count, values);
    if (s) {
        char name[32];
        snprintf(name, sizeof name, "T%d", layer + 1);
        o->failed = 1;
        return io_fail(o, s, errno, "variable", name, err);
    }
    size_t at = (size_t)slot, one = 1;
    s = nc_put_vara_int(o->ncid, o->activation_epoch_id, &at, &one, &epoch);
    o->dirty = 1;
    o->dirty_bytes += count[2] * count[3] * sizeof(float);
    return s ? io_fail(o, s, errno, "variable", "activation_epoch", err) : 0;
}

int ipm_output_stop_epochs(ipm_output *o, const int32_t *stop_epoch, char *err)
{
    if (o->stop_epoch_id < 0)
        return ipm_fail(err, "%s: variable stop_epoch: the run has no stopping criterion",
                        o->path);
    errno = 0;
    int s = nc_put_var_int(o->ncid, o->stop_epoch_id, stop_epoch);
    o->dirty = 1;
    return s ? io_fail(o, s, errno, "variable", "stop_epoch", err) : 0;
}

int ipm_output_close(ipm_output *o, char *err)
{
    if (!o)
        return 0;
    int rc = ipm_output_flush(o, err);
    errno = 0;
    int s = nc_close(o->ncid);
    if (s && rc == 0)
        rc = io_fail(o, s, errno, "nc_close", "", err);
    output_free(o);
    return rc;
}
