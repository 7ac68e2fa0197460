/* ranges: the extremes of an earlier run's bin_lo / bin_hi. */
#include "ipmpi/io/ranges.h"

#include <math.h>
#include <netcdf.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ipmpi/base/error.h"

typedef struct range_var {
    int varid, ndims;
    size_t epochs, replicas, layers;
    double fill;
} range_var;

static int nc_failed(const char *path, const char *what, int status, char *err)
{
    return ipm_fail(err, "%s: %s: %s", path, what, nc_strerror(status));
}

/* The variable's shape: (epoch, layer) or (epoch, replica, layer). */
static int inspect(int ncid, const char *path, const char *name, range_var *v, char *err)
{
    int s = nc_inq_varid(ncid, name, &v->varid), dims[NC_MAX_VAR_DIMS];
    if (s)
        return ipm_fail(err, "%s: no variable %s: not the output of a run with range = adaptive",
                        path, name);
    if ((s = nc_inq_var(ncid, v->varid, NULL, NULL, &v->ndims, dims, NULL)))
        return nc_failed(path, name, s, err);
    if (v->ndims != 2 && v->ndims != 3)
        return ipm_fail(err, "%s: variable %s has %d dimensions, not 2 or 3", path, name, v->ndims);
    size_t len[3] = {0, 1, 0};
    for (int d = 0; d < v->ndims; d++)
        if ((s = nc_inq_dimlen(ncid, dims[d], &len[v->ndims == 2 && d == 1 ? 2 : d])))
            return nc_failed(path, name, s, err);
    v->epochs = len[0];
    v->replicas = len[1];
    v->layers = len[2];
    v->fill = NC_FILL_DOUBLE;
    nc_get_att_double(ncid, v->varid, "_FillValue", &v->fill); /* absent: the default */
    return 0;
}

/* lo (take_min) or hi of every kept slot: out has `slots` x layers values. */
static void extremes(const double *all, const range_var *v, int pooled, int take_min, double *out)
{
    size_t per_epoch = v->replicas * v->layers, slots = pooled ? 1 : v->replicas;
    for (size_t k = 0; k < slots * v->layers; k++)
        out[k] = NAN;
    for (size_t i = 0; i < v->epochs * per_epoch; i++) {
        double x = all[i];
        if (x == v->fill || !isfinite(x))
            continue;
        size_t at = pooled ? i % v->layers : i % per_epoch;
        if (isnan(out[at]) || (take_min ? x < out[at] : x > out[at]))
            out[at] = x;
    }
}

static int read_extremes(int ncid, const char *path, const char *name, int n_layers, int n_replicas,
                         int per_replica, int take_min, double *out, char *err)
{
    range_var v;
    if (inspect(ncid, path, name, &v, err))
        return -1;
    if (v.layers != (size_t)n_layers)
        return ipm_fail(err, "%s: %s has %zu layers, this run %d", path, name, v.layers, n_layers);
    if (per_replica && (v.ndims != 3 || v.replicas != (size_t)n_replicas))
        return ipm_fail(err,
                        "%s: %s has no ranges of this run's %d replicas (the earlier run "
                        "needs scope = replica and as many replicas)",
                        path, name, n_replicas);
    if (v.epochs == 0)
        return ipm_fail(err, "%s: %s holds no logged epoch", path, name);
    double *all = malloc(v.epochs * v.replicas * v.layers * sizeof *all);
    if (!all)
        return ipm_fail(err, "%s: out of memory reading %s", path, name);
    int s = nc_get_var_double(ncid, v.varid, all);
    if (s == NC_NOERR)
        extremes(all, &v, !per_replica, take_min, out);
    free(all);
    return s ? nc_failed(path, name, s, err) : 0;
}

int ipm_ranges_read(const char *path, const char *prefix, int n_layers, int n_replicas,
                    int per_replica, double *lo, double *hi, char *err)
{
    int ncid, s = nc_open(path, NC_NOWRITE, &ncid);
    if (s)
        return ipm_fail(err, "%s: cannot open: %s", path, nc_strerror(s));
    char kind[32] = "";
    size_t len = 0;
    if (nc_inq_attlen(ncid, NC_GLOBAL, "binning", &len) == NC_NOERR && len < sizeof kind)
        nc_get_att_text(ncid, NC_GLOBAL, "binning", kind);
    char lo_name[64], hi_name[64];
    snprintf(lo_name, sizeof lo_name, "%sbin_lo", prefix);
    snprintf(hi_name, sizeof hi_name, "%sbin_hi", prefix);
    /* Pooled or not, extremes over other replicas are another ensemble's
     * (a file without the attribute is not compared). */
    int replicas = n_replicas;
    if (nc_inq_attlen(ncid, NC_GLOBAL, "replicas", &len) == NC_NOERR && len == 1)
        nc_get_att_int(ncid, NC_GLOBAL, "replicas", &replicas);
    int rc =
        strcmp(kind, "adaptive") != 0
            ? ipm_fail(err,
                       "%s: binning is '%s', not adaptive: the run's bin_lo/bin_hi "
                       "are not its extremes",
                       path, kind)
        : replicas != n_replicas
            ? ipm_fail(err,
                       "%s was written by a run of %d replicas, this run has %d: its ranges "
                       "are the extremes of another ensemble",
                       path, replicas, n_replicas)
            : read_extremes(ncid, path, lo_name, n_layers, n_replicas, per_replica, 1, lo, err) ||
                  read_extremes(ncid, path, hi_name, n_layers, n_replicas, per_replica, 0, hi, err);
    nc_close(ncid);
    return rc ? -1 : 0;
}

char *ipm_ranges_config(const char *path, char *err)
{
    int ncid, s = nc_open(path, NC_NOWRITE, &ncid);
    if (s) {
        ipm_fail(err, "%s: cannot open: %s", path, nc_strerror(s));
        return NULL;
    }
    size_t len = 0;
    if (nc_inq_attlen(ncid, NC_GLOBAL, "config", &len) != NC_NOERR || len > (1u << 24))
        len = 0;
    char *text = calloc(len + 1, 1);
    if (text && len && (s = nc_get_att_text(ncid, NC_GLOBAL, "config", text)) != NC_NOERR) {
        ipm_fail(err, "%s: attribute config: %s", path, nc_strerror(s));
        free(text);
        text = NULL;
    } else if (!text)
        ipm_fail(err, "%s: out of memory for its config", path);
    nc_close(ncid);
    return text;
}
