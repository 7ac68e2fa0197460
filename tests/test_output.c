/* output: write a small run, read it back with plain NetCDF calls and
 * compare every dimension, variable, attribute and value with what went in. */
#include <netcdf.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ipmpi/base/error.h"
#include "ipmpi/io/config.h"
#include "ipmpi/io/output.h"
#include "check.h"

enum { R = 3, L = 2, RECORDS = 3, SLOTS = 2, SAMPLES = 5 };
static const int width[L] = {4, 2};
static const ipm_layer_spec specs[L] = {
    {.units = 4, .activation = IPM_ACT_TANH},
    {.units = 2, .activation = IPM_ACT_SOFTMAX},
};
static const int32_t x_ids[SAMPLES] = {0, 1, 2, 1, 3};
static const int32_t labels[SAMPLES] = {1, 0, 0, 0, 1};
static const int epochs[RECORDS] = {0, 7, 42};
static const int activation_epochs[SLOTS] = {0, 42};

static const char *const info_names[6] = {"I_XT_simple", "I_TY_simple",  "I_XT_pooled",
                                          "I_TY_pooled", "I_XT_sampled", "I_TY_sampled"};

/* Distinct, exactly representable numbers for every slot of every record. */
static double info_value(int plane, int q, int rec, int r, int l)
{
    return plane * 1000 + q * 100 + rec * 10 + r + 0.25 * l;
}
static double loss_value(int test, int rec, int r)
{
    return 1 + test + rec + 0.125 * r;
}
static double accuracy_value(int test, int rec, int r)
{
    return 0.5 + test * 0.25 + rec / 16.0 + r / 64.0;
}
static float activation_value(int slot, int r, int l, int i, int u)
{
    return (float)(slot * 1000 + r * 100 + l * 10 + i) + 0.125f * (float)u;
}
/* Slot 1 of replica 2, layer 1 is never written: it must read as fill. */
static int activation_written(int slot, int r, int l)
{
    return !(slot == 1 && r == 2 && l == 1);
}

static ipm_output_meta full_meta(const char *path)
{
    ipm_output_meta m = {0};
    m.path = path;
    m.config_text = "[run]\nseed = 5\n";
    m.version = "0.1-test";
    m.ranks = 2;
    m.replicas = R;
    m.n_layers = L;
    m.layer_spec = specs;
    m.layer_width = width;
    m.estimators = IPM_EST_SIMPLE | IPM_EST_POOLED | IPM_EST_SAMPLED;
    m.planes = IPM_ON_ALL;
    m.has_test = 1;
    m.h_x = 12, m.h_y = 0.99916, m.i_xy = 0.99916;
    m.test_h_x = 10.5, m.test_h_y = 0.875, m.test_i_xy = 0.75;
    m.bins = 30;
    m.range_lo = -1, m.range_hi = 1;
    m.n_activation_epochs = SLOTS;
    m.activation_samples = SAMPLES;
    m.sample_x_id = x_ids;
    m.sample_y = labels;
    return m;
}

typedef struct record_data {
    double loss[2][R], accuracy[2][R];
    double info[2][6][R * L];
} record_data;

static void fill_record(record_data *d, ipm_epoch_record *rec, int k)
{
    memset(rec, 0, sizeof *rec);
    rec->epoch = epochs[k];
    for (int t = 0; t < 2; t++)
        for (int r = 0; r < R; r++) {
            d->loss[t][r] = loss_value(t, k, r);
            d->accuracy[t][r] = accuracy_value(t, k, r);
        }
    rec->loss = d->loss[0], rec->accuracy = d->accuracy[0];
    rec->test_loss = d->loss[1], rec->test_accuracy = d->accuracy[1];
    for (int p = 0; p < 2; p++) {
        for (int q = 0; q < 6; q++) {
            int per_replica = q < 2;
            for (int r = 0; r < (per_replica ? R : 1); r++)
                for (int l = 0; l < L; l++)
                    d->info[p][q][r * L + l] = info_value(p, q, k, per_replica ? r : 0, l);
        }
        ipm_plane_record *pr = p ? &rec->test : &rec->train;
        pr->i_xt_simple = d->info[p][0], pr->i_ty_simple = d->info[p][1];
        pr->i_xt_pooled = d->info[p][2], pr->i_ty_pooled = d->info[p][3];
        pr->i_xt_sampled = d->info[p][4], pr->i_ty_sampled = d->info[p][5];
    }
}

static int write_activations(ipm_output *out, char *err)
{
    float v[SAMPLES * 4];
    for (int slot = 0; slot < SLOTS; slot++)
        for (int r = 0; r < R; r++)
            for (int l = 0; l < L; l++) {
                if (!activation_written(slot, r, l))
                    continue;
                for (int i = 0; i < SAMPLES; i++)
                    for (int u = 0; u < width[l]; u++)
                        v[i * width[l] + u] = activation_value(slot, r, l, i, u);
                if (ipm_output_activations(out, slot, activation_epochs[slot], r, l, v, err))
                    return -1;
            }
    return 0;
}

/* Another process opens the file while the writer still holds it. */
static void check_readable_by_other_process(const char *path, int records, int last_epoch)
{
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        int ncid, dim, var, epoch = -1;
        size_t len = 0, at = (size_t)records - 1;
        int ok = nc_open(path, NC_NOWRITE, &ncid) == NC_NOERR &&
                 nc_inq_dimid(ncid, "epoch", &dim) == NC_NOERR &&
                 nc_inq_dimlen(ncid, dim, &len) == NC_NOERR &&
                 nc_inq_varid(ncid, "epoch", &var) == NC_NOERR &&
                 nc_get_var1_int(ncid, var, &at, &epoch) == NC_NOERR;
        ok = ok && nc_close(ncid) == NC_NOERR;
        _exit(ok && len == (size_t)records && epoch == last_epoch ? 0 : 1);
    }
    int status = -1;
    CHECK(pid > 0 && waitpid(pid, &status, 0) == pid);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

/* A writer killed after two appends (no close) leaves both records readable:
 * the sync after each append is what makes this so. */
static void check_killed_writer(const char *path)
{
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        char err[IPM_ERRLEN];
        ipm_output_meta m = full_meta(path);
        m.n_activation_epochs = 0;
        ipm_output *out = NULL;
        int ok = ipm_output_create(&out, &m, err) == 0;
        for (int k = 0; k < 2 && ok; k++) {
            record_data d;
            ipm_epoch_record rec;
            fill_record(&d, &rec, k);
            ok = ipm_output_append(out, &rec, err) == 0;
        }
        _exit(ok ? 0 : 1); /* no close, no exit handlers: as if killed */
    }
    int status = -1;
    CHECK(pid > 0 && waitpid(pid, &status, 0) == pid);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    int ncid, dim, var;
    size_t len = 0;
    CHECK(nc_open(path, NC_NOWRITE, &ncid) == NC_NOERR);
    CHECK(nc_inq_dimid(ncid, "epoch", &dim) == NC_NOERR);
    CHECK(nc_inq_dimlen(ncid, dim, &len) == NC_NOERR);
    CHECK(len == 2);
    double v[2 * L] = {0};
    CHECK(nc_inq_varid(ncid, "test_I_XT_sampled", &var) == NC_NOERR);
    CHECK(nc_get_var_double(ncid, var, v) == NC_NOERR);
    for (int k = 0; k < 2; k++)
        for (int l = 0; l < L; l++)
            CHECK(v[k * L + l] == info_value(1, 4, k, 0, l));
    CHECK(nc_close(ncid) == NC_NOERR);
}

static void check_records(int ncid);

/* With a long flush interval the first record is written at once, later ones
 * only at ipm_output_flush (or close): the file never holds part of a record. */
static void check_buffered_flush(const char *path)
{
    char err[IPM_ERRLEN] = "";
    ipm_output_meta m = full_meta(path);
    m.n_activation_epochs = 0;
    m.flush_seconds = 3600;
    ipm_output *out = NULL;
    CHECK(ipm_output_create(&out, &m, err) == 0);
    if (!out)
        return;
    for (int k = 0; k < RECORDS; k++) {
        record_data d;
        ipm_epoch_record rec;
        fill_record(&d, &rec, k);
        CHECK(ipm_output_append(out, &rec, err) == 0);
    }
    check_readable_by_other_process(path, 1, epochs[0]);
    CHECK(ipm_output_flush(out, err) == 0);
    check_readable_by_other_process(path, RECORDS, epochs[RECORDS - 1]);
    CHECK(ipm_output_close(out, err) == 0);
    int ncid;
    CHECK(nc_open(path, NC_NOWRITE, &ncid) == NC_NOERR);
    check_records(ncid);
    CHECK(nc_close(ncid) == NC_NOERR);
}

static void write_full(const char *path)
{
    char err[IPM_ERRLEN] = "";
    ipm_output_meta m = full_meta(path);
    ipm_output *out = NULL;
    CHECK(ipm_output_create(&out, &m, err) == 0);
    if (!out) {
        fprintf(stderr, "%s\n", err);
        return;
    }
    CHECK(write_activations(out, err) == 0);
    for (int k = 0; k < RECORDS; k++) {
        record_data d;
        ipm_epoch_record rec;
        fill_record(&d, &rec, k);
        CHECK(ipm_output_append(out, &rec, err) == 0);
        if (k == 0)
            check_readable_by_other_process(path, 1, epochs[0]);
    }
    /* Bad slot / layer: refused with the path and variable named. */
    float v[SAMPLES * 4] = {0};
    CHECK(ipm_output_activations(out, SLOTS, 0, 0, 0, v, err) == -1);
    CHECK(strstr(err, path) && strstr(err, "T1"));
    CHECK(ipm_output_activations(out, 0, 0, 0, L, v, err) == -1);
    CHECK(strstr(err, path) != NULL);
    CHECK(ipm_output_close(out, err) == 0);
}

static void check_dim(int ncid, const char *name, size_t expected)
{
    int dim;
    size_t len = 0;
    CHECK(nc_inq_dimid(ncid, name, &dim) == NC_NOERR);
    CHECK(nc_inq_dimlen(ncid, dim, &len) == NC_NOERR);
    CHECK(len == expected);
}

static void check_text_att(int ncid, int var, const char *name, const char *expected)
{
    char buf[256] = "";
    size_t len = 0;
    CHECK(nc_inq_attlen(ncid, var, name, &len) == NC_NOERR);
    CHECK(len == strlen(expected) && len < sizeof buf);
    if (len < sizeof buf && nc_get_att_text(ncid, var, name, buf) == NC_NOERR)
        CHECK(strcmp(buf, expected) == 0);
}

static void check_double_att(int ncid, const char *name, double expected)
{
    double v = -1;
    nc_type type = NC_NAT;
    CHECK(nc_inq_atttype(ncid, NC_GLOBAL, name, &type) == NC_NOERR && type == NC_DOUBLE);
    CHECK(nc_get_att_double(ncid, NC_GLOBAL, name, &v) == NC_NOERR);
    CHECK(v == expected);
}

static void check_int_att(int ncid, const char *name, int expected)
{
    int v = -1;
    nc_type type = NC_NAT;
    CHECK(nc_inq_atttype(ncid, NC_GLOBAL, name, &type) == NC_NOERR && type == NC_INT);
    CHECK(nc_get_att_int(ncid, NC_GLOBAL, name, &v) == NC_NOERR);
    CHECK(v == expected);
}

/* Checks type, dimension names, long_name (when given: else only present),
 * units (NULL: none), a description, a _FillValue (NetCDF's default) on every
 * float variable and coordinates = "layer_name" on every variable along
 * layer (but layer and layer_name); returns the id. */
static int check_var(int ncid, const char *name, nc_type type, const char *dims,
                     const char *long_name, const char *units)
{
    int var = -1, ndims = 0, dimids[NC_MAX_VAR_DIMS];
    nc_type t = NC_NAT;
    CHECK(nc_inq_varid(ncid, name, &var) == NC_NOERR);
    if (var < 0) {
        fprintf(stderr, "missing variable %s\n", name);
        return -1;
    }
    CHECK(nc_inq_var(ncid, var, NULL, &t, &ndims, dimids, NULL) == NC_NOERR);
    CHECK(t == type);
    char joined[256] = "";
    for (int i = 0; i < ndims; i++) {
        char dn[NC_MAX_NAME + 1];
        nc_inq_dimname(ncid, dimids[i], dn);
        if (i)
            strcat(joined, ",");
        strcat(joined, dn);
    }
    if (strcmp(joined, dims) != 0)
        fprintf(stderr, "%s has dims (%s), expected (%s)\n", name, joined, dims);
    CHECK(strcmp(joined, dims) == 0);
    if (long_name)
        check_text_att(ncid, var, "long_name", long_name);
    else
        CHECK(nc_inq_attlen(ncid, var, "long_name", &(size_t){0}) == NC_NOERR);
    if (units)
        check_text_att(ncid, var, "units", units);
    else
        CHECK(nc_inq_attlen(ncid, var, "units", &(size_t){0}) == NC_ENOTATT);
    size_t len = 0;
    CHECK(nc_inq_attlen(ncid, var, "description", &len) == NC_NOERR && len > 10);
    if (type == NC_DOUBLE) {
        double fill = 0;
        CHECK(nc_get_att_double(ncid, var, "_FillValue", &fill) == NC_NOERR);
        CHECK(fill == NC_FILL_DOUBLE);
    } else if (type == NC_FLOAT) {
        float fill = 0;
        CHECK(nc_get_att_float(ncid, var, "_FillValue", &fill) == NC_NOERR);
        CHECK(fill == NC_FILL_FLOAT);
    } else if (strcmp(name, "stop_epoch") != 0)
        CHECK(nc_inq_attlen(ncid, var, "_FillValue", &len) == NC_ENOTATT);
    int along_layer = ndims > 0 && strcmp(joined + strlen(joined) - 5, "layer") == 0 &&
                      strcmp(name, "layer") != 0 && strcmp(name, "layer_name") != 0;
    if (along_layer)
        check_text_att(ncid, var, "coordinates", "layer_name");
    else
        CHECK(nc_inq_attlen(ncid, var, "coordinates", &len) == NC_ENOTATT);
    return var;
}

static void check_chunks(int ncid, int var, const size_t *expected, int ndims)
{
    int storage = -1;
    size_t chunks[4] = {0};
    CHECK(nc_inq_var_chunking(ncid, var, &storage, chunks) == NC_NOERR);
    CHECK(storage == NC_CHUNKED);
    for (int i = 0; i < ndims; i++)
        CHECK(chunks[i] == expected[i]);
}

static void check_records(int ncid)
{
    int var = check_var(ncid, "epoch", NC_INT, "epoch", "epoch", "1");
    int e[RECORDS] = {0};
    CHECK(nc_get_var_int(ncid, var, e) == NC_NOERR);
    for (int k = 0; k < RECORDS; k++)
        CHECK(e[k] == epochs[k]);
    check_chunks(ncid, var, (size_t[]){64}, 1); /* small records: 64 a chunk */

    const char *row_names[4] = {"loss", "accuracy", "test_loss", "test_accuracy"};
    for (int n = 0; n < 4; n++) {
        static const char *const long_names[4] = {"loss", "accuracy", "test loss", "test accuracy"};
        var = check_var(ncid, row_names[n], NC_DOUBLE, "epoch,replica", long_names[n],
                        n % 2 ? "1" : "nats");
        double v[RECORDS * R];
        CHECK(nc_get_var_double(ncid, var, v) == NC_NOERR);
        for (int k = 0; k < RECORDS; k++)
            for (int r = 0; r < R; r++)
                CHECK(v[k * R + r] ==
                      (n % 2 ? accuracy_value(n / 2, k, r) : loss_value(n / 2, k, r)));
        check_chunks(ncid, var, (size_t[]){64, R}, 2);
    }

    for (int p = 0; p < 2; p++)
        for (int q = 0; q < 6; q++) {
            int per_replica = q < 2;
            char name[64];
            snprintf(name, sizeof name, "%s%s", p ? "test_" : "", info_names[q]);
            var = check_var(ncid, name, NC_DOUBLE,
                            per_replica ? "epoch,replica,layer" : "epoch,layer", NULL, "bits");
            double v[RECORDS * R * L];
            CHECK(nc_get_var_double(ncid, var, v) == NC_NOERR);
            int nr = per_replica ? R : 1;
            for (int k = 0; k < RECORDS; k++)
                for (int r = 0; r < nr; r++)
                    for (int l = 0; l < L; l++)
                        CHECK(v[(k * nr + r) * L + l] == info_value(p, q, k, r, l));
            check_chunks(ncid, var, per_replica ? (size_t[]){64, R, L} : (size_t[]){64, L},
                         per_replica ? 3 : 2);
        }
    int pooled = check_var(ncid, "I_XT_pooled", NC_DOUBLE, "epoch,layer", "I(X;T) pooled", "bits");
    CHECK(pooled >= 0);
    check_text_att(ncid, pooled, "description",
                   "I(X;T), pooled extended estimator over all replicas");
    int simple = check_var(ncid, "test_I_TY_simple", NC_DOUBLE, "epoch,replica,layer",
                           "test I(T;Y) simple", "bits");
    check_text_att(ncid, simple, "description",
                   "I(T;Y), simple estimator per replica, on the test set");
}

static void check_activations(int ncid)
{
    int var = check_var(ncid, "activation_epoch", NC_INT, "activation_epoch", NULL, "1");
    int e[SLOTS];
    CHECK(nc_get_var_int(ncid, var, e) == NC_NOERR);
    for (int s = 0; s < SLOTS; s++)
        CHECK(e[s] == activation_epochs[s]);
    int32_t ids[SAMPLES], ys[SAMPLES];
    var = check_var(ncid, "sample_x_id", NC_INT, "sample", NULL, "1");
    CHECK(nc_get_var_int(ncid, var, ids) == NC_NOERR);
    var = check_var(ncid, "sample_y", NC_INT, "sample", NULL, "1");
    CHECK(nc_get_var_int(ncid, var, ys) == NC_NOERR);
    for (int i = 0; i < SAMPLES; i++)
        CHECK(ids[i] == x_ids[i] && ys[i] == labels[i]);

    for (int l = 0; l < L; l++) {
        char name[16], dims[64], long_name[64];
        snprintf(name, sizeof name, "T%d", l + 1);
        snprintf(dims, sizeof dims, "activation_epoch,replica,sample,unit%d", l + 1);
        snprintf(long_name, sizeof long_name, "T%d activations", l + 1);
        var = check_var(ncid, name, NC_FLOAT, dims, long_name, "1");
        check_text_att(ncid, var, "description",
                       l ? "activations of layer T2 dense:2:softmax"
                         : "activations of layer T1 dense:4:tanh");
        check_chunks(ncid, var, (size_t[]){1, 1, SAMPLES, (size_t)width[l]}, 4);
        float v[SLOTS * R * SAMPLES * 4];
        CHECK(nc_get_var_float(ncid, var, v) == NC_NOERR);
        int bad = 0;
        for (int s = 0; s < SLOTS; s++)
            for (int r = 0; r < R; r++)
                for (int i = 0; i < SAMPLES; i++)
                    for (int u = 0; u < width[l]; u++) {
                        float got = v[((s * R + r) * SAMPLES + i) * width[l] + u];
                        float want = activation_written(s, r, l) ? activation_value(s, r, l, i, u)
                                                                 : NC_FILL_FLOAT;
                        bad += got != want;
                    }
        CHECK(bad == 0);
    }
}

/* replica and layer count from 1; layer_name names T<k> and its spec. */
static void check_coordinates(int ncid)
{
    int n[R] = {0};
    int var = check_var(ncid, "replica", NC_INT, "replica", "replica", "1");
    CHECK(nc_get_var_int(ncid, var, n) == NC_NOERR);
    CHECK(n[0] == 1 && n[1] == 2 && n[2] == 3);
    var = check_var(ncid, "layer", NC_INT, "layer", "layer", "1");
    CHECK(nc_get_var_int(ncid, var, n) == NC_NOERR);
    CHECK(n[0] == 1 && n[1] == 2);
    var = check_var(ncid, "layer_name", NC_STRING, "layer", "layer name", NULL);
    char *names[L] = {NULL};
    CHECK(nc_get_var_string(ncid, var, names) == NC_NOERR);
    CHECK(names[0] && strcmp(names[0], "T1 dense:4:tanh") == 0);
    CHECK(names[1] && strcmp(names[1], "T2 dense:2:softmax") == 0);
    nc_free_string(L, names);
}

static void check_full(const char *path)
{
    int ncid;
    CHECK(nc_open(path, NC_NOWRITE, &ncid) == NC_NOERR);
    int format = -1;
    CHECK(nc_inq_format(ncid, &format) == NC_NOERR && format == NC_FORMAT_NETCDF4);
    int unlimited = -1, epoch_dim = -2;
    CHECK(nc_inq_unlimdim(ncid, &unlimited) == NC_NOERR);
    CHECK(nc_inq_dimid(ncid, "epoch", &epoch_dim) == NC_NOERR && unlimited == epoch_dim);
    int ndims = 0, nvars = 0, natts = 0;
    CHECK(nc_inq(ncid, &ndims, &nvars, &natts, NULL) == NC_NOERR);
    CHECK(ndims == 7);  /* epoch replica layer activation_epoch sample unit1 unit2 */
    CHECK(nvars == 27); /* epoch replica layer layer_name layer_width layer_measured,
                           4 losses, 12 informations, 3 sample vars, 2 T */
    CHECK(natts == 18); /* Conventions, run_id and data_fingerprint among them */
    check_dim(ncid, "epoch", RECORDS);
    check_dim(ncid, "replica", R);
    check_dim(ncid, "layer", L);
    check_dim(ncid, "activation_epoch", SLOTS);
    check_dim(ncid, "sample", SAMPLES);
    check_dim(ncid, "unit1", 4);
    check_dim(ncid, "unit2", 2);

    check_text_att(ncid, NC_GLOBAL, "Conventions", "CF-1.10");
    check_text_att(ncid, NC_GLOBAL, "title", "ipmpi information-plane run");
    check_text_att(ncid, NC_GLOBAL, "config", "[run]\nseed = 5\n");
    check_text_att(ncid, NC_GLOBAL, "ipmpi_version", "0.1-test");
    check_int_att(ncid, "ranks", 2);
    check_int_att(ncid, "replicas", R);
    check_int_att(ncid, "bins", 30);
    check_double_att(ncid, "H_X", 12);
    check_double_att(ncid, "H_Y", 0.99916);
    check_double_att(ncid, "I_XY", 0.99916);
    check_double_att(ncid, "test_H_X", 10.5);
    check_double_att(ncid, "test_H_Y", 0.875);
    check_double_att(ncid, "test_I_XY", 0.75);
    check_double_att(ncid, "range_lo", -1);
    check_double_att(ncid, "range_hi", 1);

    int var = check_var(ncid, "layer_width", NC_INT, "layer", "layer width", "1");
    int w[L] = {0};
    CHECK(nc_get_var_int(ncid, var, w) == NC_NOERR);
    CHECK(w[0] == 4 && w[1] == 2);
    check_coordinates(ncid);
    check_records(ncid);
    check_activations(ncid);
    CHECK(nc_close(ncid) == NC_NOERR);
}

/* Pooled estimator, train plane, no test set, no activations. */
static ipm_output_meta minimal_meta(const char *path)
{
    ipm_output_meta m = full_meta(path);
    m.estimators = IPM_EST_POOLED;
    m.planes = IPM_ON_TRAIN;
    m.has_test = 0;
    m.n_activation_epochs = 0;
    return m;
}

static void check_minimal(const char *path)
{
    char err[IPM_ERRLEN] = "";
    ipm_output_meta m = minimal_meta(path);
    ipm_output *out = NULL;
    CHECK(ipm_output_create(&out, &m, err) == 0);
    record_data d;
    ipm_epoch_record rec;
    fill_record(&d, &rec, 1);
    rec.train.i_xt_simple = rec.train.i_ty_simple = NULL; /* as the driver would pass */
    CHECK(ipm_output_append(out, &rec, err) == 0);
    CHECK(ipm_output_close(out, err) == 0);

    int ncid, id;
    CHECK(nc_open(path, NC_NOWRITE, &ncid) == NC_NOERR);
    int ndims = 0, nvars = 0, natts = 0;
    CHECK(nc_inq(ncid, &ndims, &nvars, &natts, NULL) == NC_NOERR);
    CHECK(ndims == 3 && nvars == 10 && natts == 15); /* Conventions, run_id, data_fingerprint */
    const char *present[] = {"epoch",    "layer_width", "loss",
                             "accuracy", "I_XT_pooled", "I_TY_pooled"};
    for (int i = 0; i < 6; i++)
        CHECK(nc_inq_varid(ncid, present[i], &id) == NC_NOERR);
    const char *absent[] = {
        "test_loss",        "test_accuracy",    "I_XT_simple",      "I_TY_simple", "I_XT_sampled",
        "I_TY_sampled",     "test_I_XT_pooled", "test_I_TY_pooled", "T1",          "T2",
        "activation_epoch", "sample_x_id",      "sample_y"};
    for (size_t i = 0; i < sizeof absent / sizeof *absent; i++)
        CHECK(nc_inq_varid(ncid, absent[i], &id) == NC_ENOTVAR);
    CHECK(nc_inq_dimid(ncid, "sample", &id) == NC_EBADDIM);
    CHECK(nc_inq_attid(ncid, NC_GLOBAL, "test_H_X", &id) == NC_ENOTATT);
    double v[L] = {0};
    CHECK(nc_inq_varid(ncid, "I_TY_pooled", &id) == NC_NOERR);
    CHECK(nc_get_var_double(ncid, id, v) == NC_NOERR);
    CHECK(v[0] == info_value(0, 3, 1, 0, 0) && v[1] == info_value(0, 3, 1, 0, 1));
    CHECK(nc_close(ncid) == NC_NOERR);

    /* Writing activations to a file that stores none is an error, not a crash. */
    CHECK(ipm_output_create(&out, &m, err) == 0);
    float act[SAMPLES * 4] = {0};
    CHECK(ipm_output_activations(out, 0, 0, 0, 0, act, err) == -1);
    CHECK(strstr(err, path) && strstr(err, "T1"));
    CHECK(ipm_output_close(out, err) == 0);
}

/* history holds the n lines, each "YYYY-MM-DDTHH:MM:SSZ TEXT", stamped in
 * UTC between `since` and now, in order. */
static void check_history(int ncid, const char *const *lines, int n, time_t since)
{
    char text[2048] = "";
    size_t len = 0;
    CHECK(nc_inq_attlen(ncid, NC_GLOBAL, "history", &len) == NC_NOERR && len < sizeof text);
    if (len >= sizeof text || nc_get_att_text(ncid, NC_GLOBAL, "history", text) != NC_NOERR)
        return;
    regex_t stamp;
    CHECK(regcomp(&stamp, "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z ",
                  REG_EXTENDED | REG_NOSUB) == 0);
    /* ISO 8601 stamps of one format compare as strings. */
    char earliest[32], latest[32];
    time_t now = time(NULL);
    strftime(earliest, sizeof earliest, "%Y-%m-%dT%H:%M:%SZ", gmtime(&since));
    strftime(latest, sizeof latest, "%Y-%m-%dT%H:%M:%SZ", gmtime(&now));
    char *save = NULL;
    int k = 0;
    for (char *at = strtok_r(text, "\n", &save); at; at = strtok_r(NULL, "\n", &save), k++) {
        CHECK(regexec(&stamp, at, 0, NULL, 0) == 0 && strlen(at) > 21);
        if (k >= n || strlen(at) <= 21)
            continue;
        CHECK(strncmp(at, earliest, 20) >= 0 && strncmp(at, latest, 20) <= 0);
        memcpy(earliest, at, 20); /* lines in time order */
        if (strcmp(at + 21, lines[k]) != 0)
            fprintf(stderr, "history line %d: '%s', want '%s'\n", k + 1, at + 21, lines[k]);
        CHECK(strcmp(at + 21, lines[k]) == 0);
    }
    CHECK(k == n);
    regfree(&stamp);
}

/* Restarted on another rank count from a checkpoint at epoch 9 (logged
 * epochs: 0, 7), then with a longer run's config (kept: config_1), again
 * with the same (nothing kept), and with another (config_2). */
static void restart_four_times(ipm_output_meta *m, const int32_t *stops)
{
    char err[IPM_ERRLEN] = "";
    ipm_output *out = NULL;
    m->ranks = 5;
    m->resumed_after = 9;
    CHECK(ipm_output_reopen(&out, m, 2, err) == 0);
    CHECK(ipm_output_stop_epochs(out, stops, err) == 0);
    CHECK(ipm_output_close(out, err) == 0);
    m->ranks = 1;
    const char *configs[] = {"[training]\nepochs = 200\n", "[training]\nepochs = 200\n",
                             "[training]\nepochs = 300\n"};
    for (int k = 0; k < 3; k++) {
        m->config_text = configs[k];
        CHECK(ipm_output_reopen(&out, m, 2, err) == 0);
        CHECK(ipm_output_close(out, err) == 0);
    }
}

/* What restart_four_times leaves: a history line each, the latest ranks and
 * config, the two configs replaced. */
static void check_restart_attributes(int ncid, time_t started)
{
    int id;
    const char *history[] = {"created by ipmpi 0.1-test on 2 ranks",
                             "restarted by ipmpi 0.1-test on 5 ranks after epoch 9",
                             "restarted by ipmpi 0.1-test on 1 rank after epoch 9 with another "
                             "config (the earlier one is kept as config_1)",
                             "restarted by ipmpi 0.1-test on 1 rank after epoch 9",
                             "restarted by ipmpi 0.1-test on 1 rank after epoch 9 with another "
                             "config (the earlier one is kept as config_2)"};
    check_history(ncid, history, 5, started);
    check_int_att(ncid, "ranks", 1);
    check_text_att(ncid, NC_GLOBAL, "config", "[training]\nepochs = 300\n");
    check_text_att(ncid, NC_GLOBAL, "config_1", "[run]\nseed = 5\n");
    check_text_att(ncid, NC_GLOBAL, "config_2", "[training]\nepochs = 200\n");
    CHECK(nc_inq_attid(ncid, NC_GLOBAL, "config_3", &id) == NC_ENOTATT);
}

/* Layer 2 unmeasured, adaptive ranges and a per-replica stopping objective:
 * the unmeasured layer reads as fill, ranges and J as given, J fill at a
 * record without a check, stop_epoch -1 until written. */
static void check_selection_ranges_stopping(const char *path)
{
    time_t started = time(NULL);
    char err[IPM_ERRLEN] = "";
    static const int measured[L] = {1, 0};
    ipm_output_meta m = full_meta(path);
    m.estimators = IPM_EST_SIMPLE | IPM_EST_POOLED;
    m.planes = IPM_ON_TRAIN;
    m.has_test = 0;
    m.n_activation_epochs = 0;
    m.layer_measured = measured;
    m.adaptive_range = 1;
    m.stop_rules = R;
    m.stop_description = "J of layer 2";
    ipm_output *out = NULL;
    CHECK(ipm_output_create(&out, &m, err) == 0);
    record_data d;
    ipm_epoch_record rec;
    const double lo[L] = {-0.5, 0}, hi[L] = {2.5, 1}, j[R] = {0.25, -1.5, 3};
    const int32_t stops[R] = {-1, 7, -1};
    fill_record(&d, &rec, 0);
    rec.train.bin_lo = lo, rec.train.bin_hi = hi;
    CHECK(ipm_output_append(out, &rec, err) == 0);
    fill_record(&d, &rec, 1);
    rec.train.bin_lo = lo, rec.train.bin_hi = hi;
    rec.stop_j = j;
    CHECK(ipm_output_append(out, &rec, err) == 0);
    CHECK(ipm_output_close(out, err) == 0);

    restart_four_times(&m, stops);

    int ncid, id, stop_read[R] = {0}, measured_read[L] = {0};
    double simple[2 * R * L], pooled[2 * L], range[2 * L], stop_j[2 * R];
    CHECK(nc_open(path, NC_NOWRITE, &ncid) == NC_NOERR);
    CHECK(nc_inq_varid(ncid, "layer_measured", &id) == NC_NOERR &&
          nc_get_var_int(ncid, id, measured_read) == NC_NOERR);
    CHECK(measured_read[0] == 1 && measured_read[1] == 0);
    CHECK(nc_inq_varid(ncid, "I_XT_simple", &id) == NC_NOERR &&
          nc_get_var_double(ncid, id, simple) == NC_NOERR);
    CHECK(simple[1 * R * L + 2 * L + 0] == info_value(0, 0, 1, 2, 0));
    CHECK(simple[1 * R * L + 2 * L + 1] == NC_FILL_DOUBLE);
    CHECK(nc_inq_varid(ncid, "I_TY_pooled", &id) == NC_NOERR &&
          nc_get_var_double(ncid, id, pooled) == NC_NOERR);
    CHECK(pooled[0] == info_value(0, 3, 0, 0, 0) && pooled[1] == NC_FILL_DOUBLE);
    CHECK(nc_inq_varid(ncid, "bin_hi", &id) == NC_NOERR &&
          nc_get_var_double(ncid, id, range) == NC_NOERR);
    CHECK(range[2] == 2.5 && range[3] == NC_FILL_DOUBLE);
    CHECK(nc_inq_varid(ncid, "test_bin_lo", &id) == NC_ENOTVAR);
    CHECK(nc_inq_attid(ncid, NC_GLOBAL, "range_lo", &id) == NC_ENOTATT);
    check_text_att(ncid, NC_GLOBAL, "binning", "adaptive");
    check_restart_attributes(ncid, started);
    CHECK(nc_inq_varid(ncid, "stop_J", &id) == NC_NOERR &&
          nc_get_var_double(ncid, id, stop_j) == NC_NOERR);
    CHECK(stop_j[0] == NC_FILL_DOUBLE && stop_j[R] == 0.25 && stop_j[R + 1] == -1.5);
    check_text_att(ncid, id, "long_name", "stopping objective J");
    check_text_att(ncid, id, "description", "J of layer 2");
    CHECK(nc_inq_varid(ncid, "stop_epoch", &id) == NC_NOERR &&
          nc_get_var_int(ncid, id, stop_read) == NC_NOERR);
    CHECK(stop_read[0] == -1 && stop_read[1] == 7 && stop_read[2] == -1);
    CHECK(nc_close(ncid) == NC_NOERR);
}

/* Reopen checks the file against the schema the meta implies, names what
 * differs, and leaves the file as it was. */
static void check_reopen_mismatch(const char *path)
{
    char err[IPM_ERRLEN] = "";
    time_t started = time(NULL);
    ipm_output_meta m = minimal_meta(path);
    ipm_output *out = NULL;
    record_data d;
    ipm_epoch_record rec;
    fill_record(&d, &rec, 0);
    CHECK(ipm_output_create(&out, &m, err) == 0);
    CHECK(ipm_output_append(out, &rec, err) == 0);
    CHECK(ipm_output_close(out, err) == 0);

    ipm_output_meta other = m;
    other.estimators = IPM_EST_POOLED | IPM_EST_SAMPLED;
    CHECK(ipm_output_reopen(&out, &other, 1, err) == -1 && out == NULL);
    CHECK(strstr(err, path) && strstr(err, "variable I_XT_sampled"));
    other = m;
    other.replicas = R + 1;
    CHECK(ipm_output_reopen(&out, &other, 1, err) == -1 && out == NULL);
    CHECK(strstr(err, "variable replica is not int (replica = 4)") != NULL);
    other = m;
    other.stop_rules = 1;
    CHECK(ipm_output_reopen(&out, &other, 1, err) == -1);
    CHECK(strstr(err, "variable stop_J") != NULL);
    CHECK(ipm_output_reopen(&out, &m, 2, err) == -1);
    CHECK(strstr(err, "holds 1 records, the checkpoint expects 2") != NULL);
    other = m; /* other data: its fingerprint differs */
    other.data_fingerprint = m.data_fingerprint ^ 1;
    CHECK(ipm_output_reopen(&out, &other, 1, err) == -1 && out == NULL);
    CHECK(strstr(err, "the data differ from those the run began with") != NULL);
    CHECK(ipm_error_kind(err) == IPM_ERR_INPUT);

    int ncid;
    CHECK(nc_open(path, NC_NOWRITE, &ncid) == NC_NOERR);
    const char *history[] = {"created by ipmpi 0.1-test on 2 ranks"};
    check_history(ncid, history, 1, started);
    check_text_att(ncid, NC_GLOBAL, "config", "[run]\nseed = 5\n");
    CHECK(nc_close(ncid) == NC_NOERR);
}

/* Records a chunk holds follow a record's bytes: about 16 KiB a chunk, at
 * most 64 records, at least one. */
static void check_chunk_rule(const char *path)
{
    char err[IPM_ERRLEN] = "";
    ipm_output_meta m = minimal_meta(path);
    m.estimators = IPM_EST_SIMPLE | IPM_EST_POOLED;
    m.replicas = 600; /* loss 4800 bytes a record, I_XT_simple 9600, I_XT_pooled 16 */
    ipm_output *out = NULL;
    CHECK(ipm_output_create(&out, &m, err) == 0);
    CHECK(ipm_output_close(out, err) == 0);
    int ncid, var;
    CHECK(nc_open(path, NC_NOWRITE, &ncid) == NC_NOERR);
    CHECK(nc_inq_varid(ncid, "epoch", &var) == NC_NOERR);
    check_chunks(ncid, var, (size_t[]){64}, 1);
    CHECK(nc_inq_varid(ncid, "loss", &var) == NC_NOERR);
    check_chunks(ncid, var, (size_t[]){3, 600}, 2);
    CHECK(nc_inq_varid(ncid, "I_XT_simple", &var) == NC_NOERR);
    check_chunks(ncid, var, (size_t[]){1, 600, L}, 3);
    CHECK(nc_inq_varid(ncid, "I_XT_pooled", &var) == NC_NOERR);
    check_chunks(ncid, var, (size_t[]){64, L}, 2);
    CHECK(nc_close(ncid) == NC_NOERR);
}

/* A writer killed after more records than a chunk holds (each append
 * flushed) leaves every one readable, those of the chunk it was filling
 * among them. */
enum { MANY_RECORDS = 150 };
static void check_killed_across_chunks(const char *path)
{
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        char err[IPM_ERRLEN];
        ipm_output_meta m = minimal_meta(path);
        ipm_output *out = NULL;
        int ok = ipm_output_create(&out, &m, err) == 0;
        for (int k = 0; k < MANY_RECORDS && ok; k++) {
            record_data d;
            ipm_epoch_record rec;
            fill_record(&d, &rec, k % RECORDS);
            rec.epoch = 10 * k;
            for (int l = 0; l < L; l++)
                d.info[0][2][l] = k + 0.25 * l;
            ok = ipm_output_append(out, &rec, err) == 0;
        }
        _exit(ok ? 0 : 1); /* no close: as if killed */
    }
    int status = -1;
    CHECK(pid > 0 && waitpid(pid, &status, 0) == pid);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    int ncid, dim, var, epoch[MANY_RECORDS] = {0};
    size_t len = 0;
    double v[MANY_RECORDS * L] = {0};
    CHECK(nc_open(path, NC_NOWRITE, &ncid) == NC_NOERR);
    CHECK(nc_inq_dimid(ncid, "epoch", &dim) == NC_NOERR);
    CHECK(nc_inq_dimlen(ncid, dim, &len) == NC_NOERR && len == MANY_RECORDS);
    CHECK(nc_inq_varid(ncid, "epoch", &var) == NC_NOERR);
    CHECK(nc_get_var_int(ncid, var, epoch) == NC_NOERR);
    CHECK(nc_inq_varid(ncid, "I_XT_pooled", &var) == NC_NOERR);
    CHECK(nc_get_var_double(ncid, var, v) == NC_NOERR);
    int bad = 0;
    for (int k = 0; k < MANY_RECORDS; k++) {
        bad += epoch[k] != 10 * k;
        for (int l = 0; l < L; l++)
            bad += v[k * L + l] != k + 0.25 * l;
    }
    CHECK(bad == 0);
    CHECK(nc_close(ncid) == NC_NOERR);
}

static void check_errors(const char *dir)
{
    char err[IPM_ERRLEN] = "", path[512];
    snprintf(path, sizeof path, "%s/no/such/dir/run.nc", dir);
    ipm_output_meta m = full_meta(path);
    ipm_output *out = (ipm_output *)&m; /* must be reset to NULL */
    CHECK(ipm_output_create(&out, &m, err) == -1);
    CHECK(out == NULL);
    CHECK(strstr(err, path) != NULL);
    CHECK(strstr(err, "No such file or directory") != NULL);

    /* A schema that NetCDF refuses (a chunk over 4 GiB) leaves no file behind. */
    snprintf(path, sizeof path, "%s/refused.nc", dir);
    m = full_meta(path);
    m.activation_samples = 1 << 30;
    CHECK(ipm_output_create(&out, &m, err) == -1);
    CHECK(out == NULL);
    CHECK(strstr(err, path) && strstr(err, "T1"));
    CHECK(access(path, F_OK) != 0);
    CHECK(ipm_output_close(NULL, err) == 0);
}

int main(void)
{
    char dir[] = "/tmp/ipm_test_output_XXXXXX";
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    char path[512], path2[512];
    snprintf(path, sizeof path, "%s/run.nc", dir);
    snprintf(path2, sizeof path2, "%s/minimal.nc", dir);
    write_full(path);
    check_full(path);
    check_minimal(path2);
    check_errors(dir);
    char path_sel[512];
    snprintf(path_sel, sizeof path_sel, "%s/selection.nc", dir);
    check_selection_ranges_stopping(path_sel);
    char path_mismatch[512];
    snprintf(path_mismatch, sizeof path_mismatch, "%s/mismatch.nc", dir);
    check_reopen_mismatch(path_mismatch);
    char path3[512];
    snprintf(path3, sizeof path3, "%s/killed.nc", dir);
    check_killed_writer(path3);
    char path4[512];
    snprintf(path4, sizeof path4, "%s/buffered.nc", dir);
    check_buffered_flush(path4);
    char path_rule[512], path_many[512];
    snprintf(path_rule, sizeof path_rule, "%s/chunk-rule.nc", dir);
    check_chunk_rule(path_rule);
    snprintf(path_many, sizeof path_many, "%s/many.nc", dir);
    check_killed_across_chunks(path_many);
    if (getenv("KEEP_OUTPUT"))
        fprintf(stderr, "kept %s\n", path);
    else {
        remove(path);
        remove(path2);
        remove(path3);
        remove(path4);
        remove(path_rule);
        remove(path_many);
        remove(path_sel);
        remove(path_mismatch);
        rmdir(dir);
    }
    return check_report("test_output");
}
