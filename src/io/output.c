/* output: the run's NetCDF-4 file. One table, `schema`, states every
 * variable the file can hold; create defines the file from it, a restart's
 * reopen checks the file against it, and append writes the variables it
 * marks as records. Every variable id is looked up once, so an append is one
 * nc_put_vara per record variable and a sync. */
/* fallocate's FALLOC_FL_KEEP_SIZE (Linux) reserves room without changing
 * the file's size, which HDF5 manages itself. */
#define _GNU_SOURCE
#include "ipmpi/io/output.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <netcdf.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "ipmpi/base/error.h"
#include "ipmpi/info/estimates.h"

/* The dimensions a variable may span; DIM_UNIT is unit<k>, the units of layer k. */
enum dim {
    DIM_EPOCH,
    DIM_REPLICA,
    DIM_LAYER,
    DIM_ACTIVATION_EPOCH,
    DIM_SAMPLE,
    DIM_UNIT,
    DIM_EDGE
};
static const char *const dim_names[] = {"epoch",  "replica", "layer", "activation_epoch",
                                        "sample", "unit",    "edge"};

/* When a variable exists, given the run's meta. */
enum presence {
    ALWAYS,
    WITH_TEST_SET,
    WITH_ESTIMATE,
    WITH_ADAPTIVE_RANGE,
    WITH_STOPPING,
    WITH_ACTIVATIONS,
    WITH_GRADIENTS,
    WITH_QUANTILE_EDGES
};

enum var {
    V_EPOCH,
    V_REPLICA,
    V_LAYER,
    V_LAYER_NAME,
    V_LAYER_WIDTH,
    V_LAYER_MEASURED,
    V_LOSS,
    V_ACCURACY,
    V_TEST_LOSS,
    V_TEST_ACCURACY,
    V_I_XT_SIMPLE,
    V_I_TY_SIMPLE,
    V_I_XT_POOLED,
    V_I_TY_POOLED,
    V_I_XT_SAMPLED,
    V_I_TY_SAMPLED,
    V_I_XT_SIMPLE_MM,
    V_I_TY_SIMPLE_MM,
    V_I_XT_POOLED_MM,
    V_I_TY_POOLED_MM,
    V_I_XT_SAMPLED_MM,
    V_I_TY_SAMPLED_MM,
    V_I_XT_KDE_UPPER,
    V_I_XT_KDE_LOWER,
    V_I_TY_KDE_UPPER,
    V_I_TY_KDE_LOWER,
    V_BIN_LO,
    V_BIN_HI,
    V_BIN_EDGES,
    V_STOP_J,
    V_STOP_EPOCH,
    V_ACTIVATION_EPOCH,
    V_SAMPLE_X_ID,
    V_SAMPLE_Y,
    V_T,
    V_GRAD_MEAN_NORM,
    V_GRAD_STD_NORM,
    N_VARS
};

typedef struct var_schema {
    const char *name;
    nc_type type;
    int ndims;
    enum dim dims[4];
    enum presence when;
    unsigned estimator; /* WITH_ESTIMATE: the estimator bits it needs, all of them */
    int per_plane;      /* one per measured plane, the test plane's named test_<name> */
    int per_layer;      /* one per layer k, named <name><k> (the activations) */
    int record;         /* doubles appended with every record, read at `field` */
    size_t field;    /* offset of the values in ipm_plane_record (per_plane) or ipm_epoch_record */
    int loss;        /* units and description follow the meta's loss */
    int every_layer; /* along layer but not an estimate: written for unmeasured layers too */
    int nan_is_fill; /* NaN means "nothing to record": written as the fill value */
    const char *long_name, *units, *description; /* units NULL: none (text) */
} var_schema;

#define EPOCH_REPLICA                                                                              \
    2,                                                                                             \
    {                                                                                              \
        DIM_EPOCH, DIM_REPLICA                                                                     \
    }
#define EPOCH_LAYER                                                                                \
    2,                                                                                             \
    {                                                                                              \
        DIM_EPOCH, DIM_LAYER                                                                       \
    }
#define EPOCH_REPLICA_LAYER                                                                        \
    3,                                                                                             \
    {                                                                                              \
        DIM_EPOCH, DIM_REPLICA, DIM_LAYER                                                          \
    }
#define RECORD(member) .record = 1, .field = offsetof(ipm_epoch_record, member)
#define PLANE(member) .per_plane = 1, .record = 1, .field = offsetof(ipm_plane_record, member)
#define ESTIMATE(est, member) .when = WITH_ESTIMATE, .estimator = est, PLANE(member)

/* Short long_names (xarray labels plots with them); the detail is in the description. */
static const var_schema schema[N_VARS] = {
    [V_EPOCH] = {"epoch",
                 NC_INT,
                 1,
                 {DIM_EPOCH},
                 ALWAYS,
                 .long_name = "epoch",
                 .units = "1",
                 .description = "training epochs completed when the record was logged"},
    [V_REPLICA] = {"replica",
                   NC_INT,
                   1,
                   {DIM_REPLICA},
                   ALWAYS,
                   .long_name = "replica",
                   .units = "1",
                   .description = "replica number, 1-based; replica r trains on rank "
                                  "(r - 1) mod ranks"},
    [V_LAYER] = {"layer",
                 NC_INT,
                 1,
                 {DIM_LAYER},
                 ALWAYS,
                 .long_name = "layer",
                 .units = "1",
                 .description = "layer number, 1-based: layer k is T<k>, the output of the "
                                "k-th entry of [network] layers"},
    [V_LAYER_NAME] = {"layer_name",
                      NC_STRING,
                      1,
                      {DIM_LAYER},
                      ALWAYS,
                      .long_name = "layer name",
                      .description = "T<k> and the layer as [network] layers writes it"},
    [V_LAYER_WIDTH] = {"layer_width",
                       NC_INT,
                       1,
                       {DIM_LAYER},
                       ALWAYS,
                       .long_name = "layer width",
                       .units = "1",
                       .description = "units in each layer (a convolutional map flattened)"},
    [V_LAYER_MEASURED] = {"layer_measured",
                          NC_INT,
                          1,
                          {DIM_LAYER},
                          ALWAYS,
                          .long_name = "layer measured",
                          .units = "1",
                          .description = "1 where the layer's information is estimated "
                                         "([information] layers); 0: not measured, its "
                                         "estimates are fill values"},
    [V_LOSS] = {"loss", NC_DOUBLE, EPOCH_REPLICA, ALWAYS, RECORD(loss), .loss = 1,
                .long_name = "loss", .description = "training loss per replica"},
    [V_ACCURACY] = {"accuracy", NC_DOUBLE, EPOCH_REPLICA, ALWAYS, RECORD(accuracy),
                    .long_name = "accuracy", .units = "1",
                    .description = "training accuracy per replica (fraction classified right)"},
    [V_TEST_LOSS] = {"test_loss", NC_DOUBLE, EPOCH_REPLICA, WITH_TEST_SET, RECORD(test_loss),
                     .loss = 1, .long_name = "test loss",
                     .description = "loss per replica on the test set"},
    [V_TEST_ACCURACY] = {"test_accuracy", NC_DOUBLE, EPOCH_REPLICA, WITH_TEST_SET,
                         RECORD(test_accuracy), .long_name = "test accuracy", .units = "1",
                         .description = "accuracy per replica on the test set (fraction "
                                        "classified right)"},
    [V_I_XT_SIMPLE] = {"I_XT_simple", NC_DOUBLE, EPOCH_REPLICA_LAYER,
                       ESTIMATE(IPM_EST_SIMPLE, i_xt_simple), .long_name = "I(X;T) simple",
                       .units = "bits", .description = "I(X;T), simple estimator per replica"},
    [V_I_TY_SIMPLE] = {"I_TY_simple", NC_DOUBLE, EPOCH_REPLICA_LAYER,
                       ESTIMATE(IPM_EST_SIMPLE, i_ty_simple), .long_name = "I(T;Y) simple",
                       .units = "bits", .description = "I(T;Y), simple estimator per replica"},
    [V_I_XT_POOLED] = {"I_XT_pooled", NC_DOUBLE, EPOCH_LAYER, ESTIMATE(IPM_EST_POOLED, i_xt_pooled),
                       .long_name = "I(X;T) pooled", .units = "bits",
                       .description = "I(X;T), pooled extended estimator over all replicas"},
    [V_I_TY_POOLED] = {"I_TY_pooled", NC_DOUBLE, EPOCH_LAYER, ESTIMATE(IPM_EST_POOLED, i_ty_pooled),
                       .long_name = "I(T;Y) pooled", .units = "bits",
                       .description = "I(T;Y), pooled extended estimator over all replicas"},
    [V_I_XT_SAMPLED] = {"I_XT_sampled", NC_DOUBLE, EPOCH_LAYER,
                        ESTIMATE(IPM_EST_SAMPLED, i_xt_sampled), .long_name = "I(X;T) sampled",
                        .units = "bits",
                        .description = "I(X;T), sampled extended estimator (one random replica "
                                       "per sample)"},
    [V_I_TY_SAMPLED] = {"I_TY_sampled", NC_DOUBLE, EPOCH_LAYER,
                        ESTIMATE(IPM_EST_SAMPLED, i_ty_sampled), .long_name = "I(T;Y) sampled",
                        .units = "bits",
                        .description = "I(T;Y), sampled extended estimator (one random replica "
                                       "per sample)"},
#define MM(est) (est | IPM_EST_MILLER_MADOW)
#define MM_TEXT "; entropies Miller-Madow corrected, + (cells - 1) / (2 N ln 2) each"
    [V_I_XT_SIMPLE_MM] = {"I_XT_simple_mm", NC_DOUBLE, EPOCH_REPLICA_LAYER,
                          ESTIMATE(MM(IPM_EST_SIMPLE), i_xt_simple_mm),
                          .long_name = "I(X;T) simple MM", .units = "bits",
                          .description = "I(X;T), simple estimator per replica" MM_TEXT},
    [V_I_TY_SIMPLE_MM] = {"I_TY_simple_mm", NC_DOUBLE, EPOCH_REPLICA_LAYER,
                          ESTIMATE(MM(IPM_EST_SIMPLE), i_ty_simple_mm),
                          .long_name = "I(T;Y) simple MM", .units = "bits",
                          .description = "I(T;Y), simple estimator per replica" MM_TEXT},
    [V_I_XT_POOLED_MM] = {"I_XT_pooled_mm", NC_DOUBLE, EPOCH_LAYER,
                          ESTIMATE(MM(IPM_EST_POOLED), i_xt_pooled_mm),
                          .long_name = "I(X;T) pooled MM", .units = "bits",
                          .description = "I(X;T), pooled extended estimator" MM_TEXT},
    [V_I_TY_POOLED_MM] = {"I_TY_pooled_mm", NC_DOUBLE, EPOCH_LAYER,
                          ESTIMATE(MM(IPM_EST_POOLED), i_ty_pooled_mm),
                          .long_name = "I(T;Y) pooled MM", .units = "bits",
                          .description = "I(T;Y), pooled extended estimator" MM_TEXT},
    [V_I_XT_SAMPLED_MM] = {"I_XT_sampled_mm", NC_DOUBLE, EPOCH_LAYER,
                           ESTIMATE(MM(IPM_EST_SAMPLED), i_xt_sampled_mm),
                           .long_name = "I(X;T) sampled MM", .units = "bits",
                           .description = "I(X;T), sampled extended estimator" MM_TEXT},
    [V_I_TY_SAMPLED_MM] = {"I_TY_sampled_mm", NC_DOUBLE, EPOCH_LAYER,
                           ESTIMATE(MM(IPM_EST_SAMPLED), i_ty_sampled_mm),
                           .long_name = "I(T;Y) sampled MM", .units = "bits",
                           .description = "I(T;Y), sampled extended estimator" MM_TEXT},
#define KDE_TEXT " of T + N(0, kde_variance I), replicas pooled (Kolchinsky-Tracey, as Saxe et al.)"
    [V_I_XT_KDE_UPPER] = {"I_XT_kde_upper", NC_DOUBLE, EPOCH_LAYER,
                          ESTIMATE(IPM_EST_KDE, i_xt_kde_upper), .long_name = "I(X;T) KDE upper",
                          .units = "bits", .description = "upper bound on I(X;T)" KDE_TEXT},
    [V_I_XT_KDE_LOWER] = {"I_XT_kde_lower", NC_DOUBLE, EPOCH_LAYER,
                          ESTIMATE(IPM_EST_KDE, i_xt_kde_lower), .long_name = "I(X;T) KDE lower",
                          .units = "bits", .description = "lower bound on I(X;T)" KDE_TEXT},
    [V_I_TY_KDE_UPPER] = {"I_TY_kde_upper", NC_DOUBLE, EPOCH_LAYER,
                          ESTIMATE(IPM_EST_KDE, i_ty_kde_upper), .long_name = "I(T;Y) KDE upper",
                          .units = "bits",
                          .description =
                              "upper estimate of I(T;Y), KL distances in both terms" KDE_TEXT},
    [V_I_TY_KDE_LOWER] = {"I_TY_kde_lower", NC_DOUBLE, EPOCH_LAYER,
                          ESTIMATE(IPM_EST_KDE, i_ty_kde_lower), .long_name = "I(T;Y) KDE lower",
                          .units = "bits",
                          .description = "lower estimate of I(T;Y), Bhattacharyya distances in "
                                         "both terms" KDE_TEXT},
    [V_BIN_LO] = {"bin_lo", NC_DOUBLE, EPOCH_LAYER, WITH_ADAPTIVE_RANGE, PLANE(bin_lo),
                  .long_name = "bin range low", .units = "1",
                  .description = "lower end of the binning range of each layer (binning = "
                                 "width: the first edge)"},
    [V_BIN_HI] = {"bin_hi", NC_DOUBLE, EPOCH_LAYER, WITH_ADAPTIVE_RANGE, PLANE(bin_hi),
                  .long_name = "bin range high", .units = "1",
                  .description = "upper end of the binning range of each layer (binning = "
                                 "width: the last edge)"},
    /* Per unit, bin_edges<k> has a unit<k> dimension before edge (see var_dims). */
    [V_BIN_EDGES] = {"bin_edges",
                     NC_DOUBLE,
                     3,
                     {DIM_EPOCH, DIM_REPLICA, DIM_EDGE},
                     WITH_QUANTILE_EDGES,
                     .per_layer = 1,
                     PLANE(bin_edges),
                     .long_name = "bin edges",
                     .units = "1",
                     .description = "equal-mass bin edges (binning = quantile) of each replica, "
                                    "from its own activations, of layer"},
    /* An ensemble rule's stop_J has no replica dimension (see var_dims). */
    [V_STOP_J] = {"stop_J", NC_DOUBLE, EPOCH_REPLICA, WITH_STOPPING, RECORD(stop_j),
                  .long_name = "stopping objective J", .units = "bits",
                  .description = "the stopping objective at each check (fill value elsewhere)"},
    [V_STOP_EPOCH] = {"stop_epoch",
                      NC_INT,
                      1,
                      {DIM_REPLICA},
                      WITH_STOPPING,
                      .long_name = "stop epoch",
                      .units = "1",
                      .description = "epoch at which each replica stopped training (-1, the "
                                     "fill value: it did not stop)"},
    [V_ACTIVATION_EPOCH] = {"activation_epoch",
                            NC_INT,
                            1,
                            {DIM_ACTIVATION_EPOCH},
                            WITH_ACTIVATIONS,
                            .long_name = "activation epoch",
                            .units = "1",
                            .description = "training epochs completed when the activations "
                                           "were stored"},
    [V_SAMPLE_X_ID] = {"sample_x_id",
                       NC_INT,
                       1,
                       {DIM_SAMPLE},
                       WITH_ACTIVATIONS,
                       .long_name = "sample x id",
                       .units = "1",
                       .description = "distinct input id (x id) of each stored sample"},
    [V_SAMPLE_Y] = {"sample_y",
                    NC_INT,
                    1,
                    {DIM_SAMPLE},
                    WITH_ACTIVATIONS,
                    .long_name = "sample label",
                    .units = "1",
                    .description = "class label of each stored sample"},
    [V_T] = {"T",
             NC_FLOAT,
             4,
             {DIM_ACTIVATION_EPOCH, DIM_REPLICA, DIM_SAMPLE, DIM_UNIT},
             WITH_ACTIVATIONS,
             .per_layer = 1,
             .long_name = "activations",
             .units = "1",
             .description = "activations of layer"},
    [V_GRAD_MEAN_NORM] = {"grad_mean_norm", NC_DOUBLE, EPOCH_REPLICA_LAYER, WITH_GRADIENTS,
                          RECORD(grad_mean_norm), .loss = 1, .every_layer = 1, .nan_is_fill = 1,
                          .long_name = "gradient mean norm",
                          .description = "L2 norm over the layer's weights of the mean of the "
                                         "minibatch gradients of the loss over the epoch's "
                                         "training (fill value: no minibatch)"},
    [V_GRAD_STD_NORM] = {"grad_std_norm", NC_DOUBLE, EPOCH_REPLICA_LAYER, WITH_GRADIENTS,
                         RECORD(grad_std_norm), .loss = 1, .every_layer = 1, .nan_is_fill = 1,
                         .long_name = "gradient std norm",
                         .description = "L2 norm over the layer's weights of the standard "
                                        "deviation (over minibatches, divided by their number) "
                                        "of the minibatch gradients of the loss over the "
                                        "epoch's training (fill value: no minibatch)"},
};

static const char *const plane_prefix[IPM_N_PLANES] = {"", "test_"};
static const unsigned plane_bit[IPM_N_PLANES] = {IPM_ON_TRAIN, IPM_ON_TEST};

/* One variable of the file: a schema row, and its plane or (0-based) layer. */
typedef struct var_ref {
    enum var v;
    int plane, layer;
} var_ref;

/* A record variable: what one record of it holds, and the records not yet
 * in the file. */
typedef struct column {
    var_ref ref;
    int varid;
    size_t count[3]; /* one record's extent after the epoch dimension (1 beyond its rank) */
    int by_layer;    /* its last dimension is layer: unmeasured layers are written as fill */
    double *pending; /* capacity records */
} column;

struct ipm_output {
    int ncid;
    char *path;
    int replicas, n_layers, stop_rules;
    int range_per_replica; /* bin_lo/bin_hi have a replica dimension */
    int quantile;          /* bin_edges<k>: 1 per layer, 2 per unit (a unit dimension) */
    int bins;              /* length of dimension edge */
    int *edges_id;         /* IPM_N_PLANES x n_layers: bin_edges<k> ids */
    size_t records;        /* records appended so far */
    int n_activation_epochs, activation_samples;
    int *width;                      /* n_layers */
    int *measured;                   /* n_layers: 0 = write fill values */
    int varid[N_VARS][IPM_N_PLANES]; /* -1: absent */
    int *t_id;                       /* n_layers, when activations are stored */
    column columns[(N_VARS + IPM_MAX_LAYERS) * IPM_N_PLANES]; /* bin_edges<k> are per layer */
    int n_columns;
    /* Records not yet in the file: appended records are kept in the
     * columns (one nc_put_vara per variable) and written and synced together
     * at most every flush_seconds, so the file always holds whole records as
     * of the last flush. */
    double flush_seconds, last_flush;
    size_t pending, capacity; /* records buffered / room for */
    int *pending_epoch;
    int dirty;          /* activations written since the last sync */
    size_t dirty_bytes; /* their size, to reserve room for at the next sync */
    int failed;         /* a write or sync failed: nothing more is written */
    dev_t dev;          /* the file the run opened, to notice the path */
    ino_t ino;          /* naming another one (replaced under the run) */
};

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

/* ---------------------------------------------------------------- the schema, resolved */

static void var_name(const var_ref *r, char *name, size_t size)
{
    const var_schema *s = &schema[r->v];
    if (s->per_layer)
        snprintf(name, size, "%s%s%d", s->per_plane ? plane_prefix[r->plane] : "", s->name,
                 r->layer + 1);
    else
        snprintf(name, size, "%s%s", s->per_plane ? plane_prefix[r->plane] : "", s->name);
}

static int var_present(const ipm_output_meta *m, const var_ref *r)
{
    const var_schema *s = &schema[r->v];
    int plane_on = !s->per_plane || (m->planes & plane_bit[r->plane]);
    switch (s->when) {
    case WITH_TEST_SET:
        return m->has_test;
    case WITH_ESTIMATE:
        return plane_on && (m->estimators & s->estimator) == s->estimator;
    case WITH_ADAPTIVE_RANGE:
        return plane_on && m->adaptive_range;
    case WITH_STOPPING:
        return m->stop_rules > 0;
    case WITH_ACTIVATIONS:
        return m->n_activation_epochs > 0;
    case WITH_GRADIENTS:
        return m->gradient_stats;
    case WITH_QUANTILE_EDGES:
        return plane_on && m->quantile > 0;
    default:
        return 1;
    }
}

/* Fills dims; returns how many. */
static int var_dims(const ipm_output *o, const var_ref *r, enum dim dims[4])
{
    const var_schema *s = &schema[r->v];
    memcpy(dims, s->dims, sizeof s->dims);
    if ((r->v == V_BIN_LO || r->v == V_BIN_HI) && o->range_per_replica) {
        enum dim per_replica[4] = {DIM_EPOCH, DIM_REPLICA, DIM_LAYER};
        memcpy(dims, per_replica, sizeof per_replica);
        return 3;
    }
    if (r->v == V_BIN_EDGES && o->quantile == 2) {
        enum dim per_unit[4] = {DIM_EPOCH, DIM_REPLICA, DIM_UNIT, DIM_EDGE};
        memcpy(dims, per_unit, sizeof per_unit);
        return 4;
    }
    return r->v == V_STOP_J && o->stop_rules == 1 ? 1 : s->ndims;
}

static void dim_name(enum dim d, int layer, char *name, size_t size)
{
    if (d == DIM_UNIT)
        snprintf(name, size, "%s%d", dim_names[d], layer + 1);
    else
        snprintf(name, size, "%s", dim_names[d]);
}

static size_t dim_length(const ipm_output *o, enum dim d, int layer)
{
    switch (d) {
    case DIM_EPOCH:
        return NC_UNLIMITED;
    case DIM_REPLICA:
        return (size_t)o->replicas;
    case DIM_LAYER:
        return (size_t)o->n_layers;
    case DIM_ACTIVATION_EPOCH:
        return (size_t)o->n_activation_epochs;
    case DIM_SAMPLE:
        return (size_t)o->activation_samples;
    case DIM_EDGE:
        return (size_t)o->bins;
    default:
        return (size_t)o->width[layer];
    }
}

static int *var_id(ipm_output *o, const var_ref *r)
{
    if (r->v == V_BIN_EDGES)
        return &o->edges_id[r->plane * o->n_layers + r->layer];
    return schema[r->v].per_layer ? &o->t_id[r->layer] : &o->varid[r->v][r->plane];
}

/* "T3 dense:5:tanh" (just "T3" without specs). */
static void layer_label(const ipm_output_meta *m, int layer, char *text, size_t size)
{
    char spec[64] = "";
    if (m->layer_spec)
        ipm_layer_spec_format(&m->layer_spec[layer], spec, sizeof spec);
    snprintf(text, size, "T%d%s%s", layer + 1, *spec ? " " : "", spec);
}

typedef struct var_text {
    char long_name[96], units[8], description[256];
} var_text;

/* The attributes' text: the table's, completed for the test plane, the
 * layer of an activation variable, the loss and the stopping rule. */
static void var_texts(const ipm_output_meta *m, const var_ref *r, var_text *t)
{
    const var_schema *s = &schema[r->v];
    int test = s->per_plane && r->plane;
    int mse = m->loss == IPM_LOSS_MSE;
    char layer[96];
    layer_label(m, r->layer, layer, sizeof layer);
    snprintf(t->long_name, sizeof t->long_name, "%s%s", test ? "test " : "", s->long_name);
    snprintf(t->units, sizeof t->units, "%s",
             s->loss    ? (mse ? "1" : "nats")
             : s->units ? s->units
                        : "");
    if (s->per_layer) {
        snprintf(t->long_name, sizeof t->long_name, "T%d %s", r->layer + 1, s->long_name);
        snprintf(t->description, sizeof t->description, "%s %s", s->description, layer);
    } else if (s->loss)
        snprintf(t->description, sizeof t->description, "%s (%s)", s->description,
                 mse ? "mean squared error" : "mean cross-entropy, natural logarithm");
    else if (r->v == V_STOP_J && m->stop_description)
        snprintf(t->description, sizeof t->description, "%s", m->stop_description);
    else
        snprintf(t->description, sizeof t->description, "%s%s", s->description,
                 test ? ", on the test set" : "");
}

/* Visits every variable the meta implies in table order, the test plane's last. */
typedef int (*var_visit)(ipm_output *o, const ipm_output_meta *m, const var_ref *r, char *err);

static int for_each_var(ipm_output *o, const ipm_output_meta *m, var_visit visit, char *err)
{
    for (int p = 0; p < IPM_N_PLANES; p++)
        for (int v = 0; v < N_VARS; v++) {
            const var_schema *s = &schema[v];
            if (p > 0 && !s->per_plane)
                continue;
            for (int l = 0; l < (s->per_layer ? m->n_layers : 1); l++) {
                var_ref r = {(enum var)v, p, l};
                if (var_present(m, &r) && visit(o, m, &r, err))
                    return -1;
            }
        }
    return 0;
}

/* Registers a record variable once its id is known. */
static void add_column(ipm_output *o, const var_ref *r)
{
    if (!schema[r->v].record)
        return;
    column *c = &o->columns[o->n_columns++];
    enum dim dims[4];
    int ndims = var_dims(o, r, dims);
    c->ref = *r;
    c->varid = *var_id(o, r);
    for (int i = 0; i < 3; i++)
        c->count[i] = ndims > i + 1 ? dim_length(o, dims[i + 1], r->layer) : 1;
    c->by_layer = dims[ndims - 1] == DIM_LAYER && !schema[r->v].every_layer;
}

/* ---------------------------------------------------------------- create: define from the table */

/* The dimension's id, defining it at its first use. */
static int dim_id(ipm_output *o, enum dim d, int layer, int *id, char *err)
{
    char name[32];
    dim_name(d, layer, name, sizeof name);
    if (nc_inq_dimid(o->ncid, name, id) == NC_NOERR)
        return 0;
    int s = nc_def_dim(o->ncid, name, dim_length(o, d, layer), id);
    return s ? nc_fail(o, s, "dimension", name, err) : 0;
}

static int put_var_atts(ipm_output *o, const ipm_output_meta *m, const var_ref *r, int id,
                        char *err)
{
    const var_schema *s = &schema[r->v];
    var_text t;
    var_texts(m, r, &t);
    if (put_text_att(o, id, "long_name", t.long_name, err) ||
        (*t.units && put_text_att(o, id, "units", t.units, err)) ||
        put_text_att(o, id, "description", t.description, err))
        return -1;
    /* CF: names the auxiliary coordinate, so xarray attaches layer_name. */
    int along_layer = s->dims[s->ndims - 1] == DIM_LAYER && r->v != V_LAYER && r->v != V_LAYER_NAME;
    if (along_layer && put_text_att(o, id, "coordinates", "layer_name", err))
        return -1;
    /* Explicit _FillValue attributes (NetCDF's default fills), so xarray masks them. */
    static const double fill_double = NC_FILL_DOUBLE;
    static const float fill_float = NC_FILL_FLOAT;
    static const int fill_stop = -1;
    const void *fill = s->type == NC_DOUBLE   ? (const void *)&fill_double
                       : s->type == NC_FLOAT  ? (const void *)&fill_float
                       : r->v == V_STOP_EPOCH ? (const void *)&fill_stop
                                              : NULL;
    int st = fill ? nc_def_var_fill(o->ncid, id, 0, fill) : 0;
    return st ? nc_fail(o, st, "_FillValue of variable", s->name, err) : 0;
}

/* A chunk along epoch holds about RECORD_CHUNK_BYTES of records, at most
 * RECORD_CHUNK_MOST of them. HDF5 writes and indexes every chunk on its
 * own: with one record a chunk, the flush of Experiment 2's 1001 logged
 * epochs took 0.12 s of a 0.8 s run, and 0.01 s with 64. A chunk is
 * allocated whole, so a short run's file grows by at most one chunk per
 * variable. */
#define RECORD_CHUNK_BYTES (16 << 10)
#define RECORD_CHUNK_MOST 64

/* Records a chunk holds, given the bytes of one record's chunk. */
static size_t records_per_chunk(size_t record_bytes)
{
    size_t records = RECORD_CHUNK_BYTES / (record_bytes ? record_bytes : 1);
    return records < 1 ? 1 : records > RECORD_CHUNK_MOST ? RECORD_CHUNK_MOST : records;
}

static int define_var(ipm_output *o, const ipm_output_meta *m, const var_ref *r, char *err)
{
    const var_schema *s = &schema[r->v];
    enum dim dims[4];
    int ndims = var_dims(o, r, dims), dimids[4], *id = var_id(o, r);
    size_t chunks[4], record_bytes = 0;
    char name[64];
    var_name(r, name, sizeof name);
    int st = nc_inq_type(o->ncid, s->type, NULL, &record_bytes);
    if (st)
        return nc_fail(o, st, "variable", name, err);
    for (int i = 0; i < ndims; i++) {
        if (dim_id(o, dims[i], r->layer, &dimids[i], err))
            return -1;
        /* Along epoch, records_per_chunk; stored activations, one replica at one epoch. */
        chunks[i] = i == 0 || (s->per_layer && i == 1) ? 1 : dim_length(o, dims[i], r->layer);
        record_bytes *= i > 0 ? chunks[i] : 1;
    }
    if (ndims > 0 && dims[0] == DIM_EPOCH)
        chunks[0] = records_per_chunk(record_bytes);
    st = nc_def_var(o->ncid, name, s->type, ndims, dimids, id);
    if (!st && (dims[0] == DIM_EPOCH || s->per_layer))
        st = nc_def_var_chunking(o->ncid, *id, NC_CHUNKED, chunks);
    if (st)
        return nc_fail(o, st, "variable", name, err);
    if (put_var_atts(o, m, r, *id, err))
        return -1;
    add_column(o, r);
    return 0;
}

/* "2025-05-01T12:00:00Z" */
static void utc_now(char *text, size_t size)
{
    time_t now = time(NULL);
    struct tm tm;
    if (!gmtime_r(&now, &tm) || !strftime(text, size, "%Y-%m-%dT%H:%M:%SZ", &tm))
        snprintf(text, size, "unknown time");
}

/* An id as the file spells it (run_id, data_fingerprint): 16 hex digits. */
static void hex16_text(uint64_t id, char text[17])
{
    snprintf(text, 17, "%016" PRIx64, id);
}

static int def_global_atts(ipm_output *o, const ipm_output_meta *m, char *err)
{
    char history[160], when[32], run_id[17], fingerprint[17];
    utc_now(when, sizeof when);
    hex16_text(m->run_id, run_id);
    hex16_text(m->data_fingerprint, fingerprint);
    snprintf(history, sizeof history, "%s created by ipmpi %s on %d rank%s", when, m->version,
             m->ranks, m->ranks == 1 ? "" : "s");
    if (put_text_att(o, NC_GLOBAL, "Conventions", "CF-1.10", err) ||
        put_text_att(o, NC_GLOBAL, "title", "ipmpi information-plane run", err) ||
        put_text_att(o, NC_GLOBAL, "run_id", run_id, err) ||
        put_text_att(o, NC_GLOBAL, "data_fingerprint", fingerprint, err) ||
        put_text_att(o, NC_GLOBAL, "history", history, err) ||
        put_text_att(o, NC_GLOBAL, "config", m->config_text, err) ||
        put_text_att(o, NC_GLOBAL, "ipmpi_version", m->version, err) ||
        put_int_att(o, "ranks", m->ranks, err) || put_int_att(o, "replicas", m->replicas, err) ||
        put_double_att(o, "H_X", m->h_x, err) || put_double_att(o, "H_Y", m->h_y, err) ||
        put_double_att(o, "I_XY", m->i_xy, err))
        return -1;
    if ((m->planes & IPM_ON_TEST) && (put_double_att(o, "test_H_X", m->test_h_x, err) ||
                                      put_double_att(o, "test_H_Y", m->test_h_y, err) ||
                                      put_double_att(o, "test_I_XY", m->test_i_xy, err)))
        return -1;
    if ((m->estimators & IPM_EST_KDE) && put_double_att(o, "kde_variance", m->kde_variance, err))
        return -1;
    if (put_int_att(o, "bins", m->bins, err) ||
        (m->whole_plane && put_text_att(o, NC_GLOBAL, "information_on",
                                        "whole: training and test samples together", err)))
        return -1;
    if (m->quantile > 0)
        return put_text_att(o, NC_GLOBAL, "binning", "quantile", err) ||
                       put_text_att(o, NC_GLOBAL, "quantiles", m->quantile == 2 ? "unit" : "layer",
                                    err)
                   ? -1
                   : 0;
    if (m->bin_width > 0)
        return put_text_att(o, NC_GLOBAL, "binning", "width", err) ||
                       put_double_att(o, "bin_width", m->bin_width, err)
                   ? -1
                   : 0;
    if (m->adaptive_range)
        return put_text_att(o, NC_GLOBAL, "binning", m->range_whole ? "whole" : "adaptive", err) ||
                       put_text_att(o, NC_GLOBAL, "binning_scope",
                                    m->range_per_replica ? "replica" : "pooled", err)
                   ? -1
                   : 0;
    return put_double_att(o, "range_lo", m->range_lo, err) ||
                   put_double_att(o, "range_hi", m->range_hi, err)
               ? -1
               : 0;
}

static int put_int_var(ipm_output *o, enum var v, const int *values, char *err)
{
    int s = nc_put_var_int(o->ncid, o->varid[v][0], values);
    return s ? nc_fail(o, s, "variable", schema[v].name, err) : 0;
}

/* The variables written once, at create: coordinates and layer and sample facts. */
static int put_fixed_vars(ipm_output *o, const ipm_output_meta *m, char *err)
{
    int numbers[IPM_MAX_LAYERS];
    char labels[IPM_MAX_LAYERS][96];
    const char *names[IPM_MAX_LAYERS];
    for (int l = 0; l < m->n_layers; l++) {
        numbers[l] = l + 1;
        layer_label(m, l, labels[l], sizeof labels[l]);
        names[l] = labels[l];
    }
    int *replica_numbers = malloc((size_t)m->replicas * sizeof *replica_numbers);
    if (!replica_numbers)
        return ipm_fail(err, "%s: out of memory", o->path);
    for (int r = 0; r < m->replicas; r++)
        replica_numbers[r] = r + 1;
    int rc = put_int_var(o, V_REPLICA, replica_numbers, err);
    free(replica_numbers);
    int s = rc ? NC_NOERR : nc_put_var_string(o->ncid, o->varid[V_LAYER_NAME][0], names);
    if (s)
        return nc_fail(o, s, "variable", "layer_name", err);
    if (rc || put_int_var(o, V_LAYER, numbers, err) ||
        put_int_var(o, V_LAYER_WIDTH, m->layer_width, err) ||
        put_int_var(o, V_LAYER_MEASURED, o->measured, err))
        return -1;
    if (m->n_activation_epochs > 0 && (put_int_var(o, V_SAMPLE_X_ID, m->sample_x_id, err) ||
                                       put_int_var(o, V_SAMPLE_Y, m->sample_y, err)))
        return -1;
    return 0;
}

static int def_schema(ipm_output *o, const ipm_output_meta *m, char *err)
{
    int fill_was, s = nc_set_fill(o->ncid, NC_FILL, &fill_was);
    if (s)
        return nc_fail(o, s, "nc_set_fill", "", err);
    if (for_each_var(o, m, define_var, err) || def_global_atts(o, m, err))
        return -1;
    if ((s = nc_enddef(o->ncid)))
        return nc_fail(o, s, "nc_enddef", "", err);
    return put_fixed_vars(o, m, err);
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
    if (m->n_activation_epochs > 0 &&
        (m->activation_samples < 1 || !m->sample_x_id || !m->sample_y))
        return ipm_fail(err, "%s: stored activations need samples, sample_x_id and sample_y",
                        m->path);
    return 0;
}

static void output_free(ipm_output *o)
{
    free(o->pending_epoch);
    for (int c = 0; c < o->n_columns; c++)
        free(o->columns[c].pending);
    free(o->path);
    free(o->width);
    free(o->measured);
    free(o->t_id);
    free(o->edges_id);
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
    o->edges_id = malloc((size_t)m->n_layers * IPM_N_PLANES * sizeof *o->edges_id);
    if (!o->path || !o->width || !o->measured || !o->t_id || !o->edges_id) {
        output_free(o);
        return NULL;
    }
    strcpy(o->path, m->path);
    memcpy(o->width, m->layer_width, (size_t)m->n_layers * sizeof *o->width);
    for (int l = 0; l < m->n_layers; l++) {
        o->measured[l] = m->layer_measured ? m->layer_measured[l] != 0 : 1;
        o->t_id[l] = -1;
    }
    for (int k = 0; k < m->n_layers * IPM_N_PLANES; k++)
        o->edges_id[k] = -1;
    o->replicas = m->replicas;
    o->n_layers = m->n_layers;
    o->n_activation_epochs = m->n_activation_epochs > 0 ? m->n_activation_epochs : 0;
    o->activation_samples = m->activation_samples;
    o->stop_rules = m->stop_rules;
    o->range_per_replica = m->range_per_replica;
    o->quantile = m->quantile;
    o->bins = m->bins;
    o->flush_seconds = m->flush_seconds > 0 ? m->flush_seconds : 0;
    o->last_flush = -1e300;
    for (int v = 0; v < N_VARS; v++)
        for (int p = 0; p < IPM_N_PLANES; p++)
            o->varid[v][p] = -1;
    return o;
}

/* Remembers which file the path names now, the one NetCDF has open. */
static void note_identity(ipm_output *o)
{
    struct stat st;
    if (stat(o->path, &st) == 0) {
        o->dev = st.st_dev;
        o->ino = st.st_ino;
    }
}

/* The path still names the file the run writes: another program renaming
 * or copying a file over it would leave the run's records in a file no
 * path names, lost when it is closed, while the run reported success. */
static int check_identity(const ipm_output *o, const struct stat *now, char *err)
{
    if (now->st_dev == o->dev && now->st_ino == o->ino)
        return 0;
    return ipm_fail_as(err, IPM_ERR_IO,
                       "%s: another file was put at this path while the run wrote it (the run's "
                       "records are in the replaced file, which no path names now); nothing "
                       "more is written",
                       o->path);
}

/* Gives back the room reserved beyond the file's end (reserve_room), so a
 * finished or restarted run holds no more disk than its file needs. Best
 * effort: what cannot be punched stays reserved. */
static void release_room(const char *path)
{
#ifdef FALLOC_FL_PUNCH_HOLE
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0)
        return;
    if (fstat(fd, &st) == 0 &&
        fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, st.st_size, (off_t)1 << 40) != 0)
        errno = 0; /* nothing to give back, or the file system cannot */
    close(fd);
#else
    (void)path;
#endif
}

/* Below this much free space a new file is not begun: HDF5 cannot undo a
 * header the disk has no room for, and aborting such a file crashes inside
 * the library. A run's header takes tens of KB. */
#define CREATE_ROOM_BYTES (128u << 10)

static int check_room_to_create(const char *path, char *err)
{
    char dir[4096];
    const char *slash = strrchr(path, '/');
    snprintf(dir, sizeof dir, "%.*s", slash ? (int)(slash - path + (slash == path)) : 1,
             slash ? path : ".");
    struct statvfs fs;
    if (statvfs(dir, &fs) != 0)
        return 0; /* nothing known: create reports what happens */
    unsigned long long room = (unsigned long long)fs.f_bavail * (unsigned long long)fs.f_frsize;
    if (room >= CREATE_ROOM_BYTES)
        return 0;
    return ipm_fail_as(err, IPM_ERR_IO,
                       "cannot create NetCDF file %s: %s (%llu KB free in %s; a new output needs "
                       "%u KB to write its header); nothing was written",
                       path, strerror(ENOSPC), room / 1024, dir, CREATE_ROOM_BYTES / 1024);
}

/* NetCDF-4 reports any HDF5 create failure as EACCES ("Permission denied"),
 * even for a missing directory, so look at the directory ourselves. A file
 * the failed create left is this run's (an earlier one was removed first),
 * and goes. */
static int create_failed(const char *path, int status, char *err)
{
    remove(path);
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

/* An earlier file at the path (the run was told --overwrite) goes whole
 * before the new one is made, instead of being truncated in place: a
 * program still reading it (an open notebook holds its HDF5 lock) keeps
 * what it reads, and the new file cannot fail on that lock after emptying
 * the old one. Through a symbolic link, the file it names goes, as the
 * run's lock follows the link. */
static int remove_earlier(const char *path, char *err)
{
    char real[PATH_MAX];
    const char *file = realpath(path, real) ? real : path;
    if (unlink(file) == 0 || errno == ENOENT)
        return 0;
    return ipm_fail_as(err, IPM_ERR_IO, "cannot remove the earlier output %s to overwrite it: %s",
                       file, strerror(errno));
}

int ipm_output_create(ipm_output **out, const ipm_output_meta *meta, char *err)
{
    *out = NULL;
    if (check_meta(meta, err) || remove_earlier(meta->path, err) ||
        check_room_to_create(meta->path, err))
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
    note_identity(o);
    if (def_schema(o, meta, err)) {
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

/* ---------------------------------------------------------------- reopen: check against the table
 */

static const char *type_name(nc_type t)
{
    switch (t) {
    case NC_INT:
        return "int";
    case NC_FLOAT:
        return "float";
    case NC_DOUBLE:
        return "double";
    case NC_STRING:
        return "string";
    default:
        return "another type";
    }
}

/* "double (epoch, replica, layer)": the shape the table gives the variable. */
static void expected_shape(const ipm_output *o, const var_ref *r, char *text, size_t size)
{
    enum dim dims[4];
    int ndims = var_dims(o, r, dims);
    size_t n = (size_t)snprintf(text, size, "%s (", type_name(schema[r->v].type));
    for (int i = 0; i < ndims && n < size; i++) {
        char name[32];
        dim_name(dims[i], r->layer, name, sizeof name);
        n += (size_t)snprintf(text + n, size - n, "%s%s = %zu", i ? ", " : "", name,
                              dim_length(o, dims[i], r->layer));
    }
    if (n < size)
        snprintf(text + n, size - n, ")");
}

/* Whether the file's variable id has the type, dimension names and (fixed) lengths the table gives.
 */
static int shape_matches(const ipm_output *o, const var_ref *r, int id)
{
    enum dim dims[4];
    int ndims = var_dims(o, r, dims), file_ndims = 0, dimids[NC_MAX_VAR_DIMS];
    nc_type type = NC_NAT;
    if (nc_inq_var(o->ncid, id, NULL, &type, &file_ndims, dimids, NULL) != NC_NOERR ||
        type != schema[r->v].type || file_ndims != ndims)
        return 0;
    for (int i = 0; i < ndims; i++) {
        char want[32], got[NC_MAX_NAME + 1];
        size_t len = 0;
        dim_name(dims[i], r->layer, want, sizeof want);
        if (nc_inq_dim(o->ncid, dimids[i], got, &len) != NC_NOERR || strcmp(want, got) != 0 ||
            (dims[i] != DIM_EPOCH && len != dim_length(o, dims[i], r->layer)))
            return 0;
    }
    return 1;
}

static int check_var(ipm_output *o, const ipm_output_meta *m, const var_ref *r, char *err)
{
    (void)m;
    char name[64], shape[160];
    var_name(r, name, sizeof name);
    int *id = var_id(o, r);
    int s = nc_inq_varid(o->ncid, name, id);
    if (s)
        return ipm_fail(err,
                        "%s: variable %s: %s (this run writes it: was the file written with "
                        "another config or an older ipmpi?)",
                        o->path, name, nc_strerror(s));
    if (!shape_matches(o, r, *id)) {
        expected_shape(o, r, shape, sizeof shape);
        return ipm_fail(err, "%s: variable %s is not %s as this run writes it", o->path, name,
                        shape);
    }
    add_column(o, r);
    return 0;
}

static int check_records(ipm_output *o, long records, long planned, char *err)
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
    /* Records past the checkpoint's were logged by a run that did not stop
     * cleanly; a restart logs them again over them, unless it logs fewer in
     * all (fewer epochs): NetCDF cannot shrink the dimension, so the rest
     * would stay, another schedule's. */
    if ((size_t)records < held && planned > 0 && (size_t)planned < held)
        return ipm_fail_as(err, IPM_ERR_INPUT,
                           "%s holds %zu records, %zu past the checkpoint's %ld (logged after it "
                           "by a run that did not stop cleanly), and this run logs %ld in all, "
                           "so the last %zu would stay behind from the earlier run: restart with "
                           "[training] epochs as before, or start afresh with --overwrite; "
                           "nothing was written",
                           o->path, held, held - (size_t)records, records, planned,
                           held - (size_t)planned);
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

/* A config that differs from the file's replaces it; the earlier one is kept
 * as config_<n>, numbered in order (config_1: the config the run was created
 * with). Writes into note what the history line should add. */
static int replace_config(ipm_output *o, const ipm_output_meta *m, char *note, size_t size,
                          char *err)
{
    *note = '\0';
    char *earlier = global_text(o, "config");
    if (!earlier)
        return ipm_fail(err, "%s: out of memory", o->path);
    int rc = 0;
    if (strcmp(earlier, m->config_text ? m->config_text : "") != 0) {
        char name[32];
        int n = 1, id;
        do
            snprintf(name, sizeof name, "config_%d", n++);
        while (nc_inq_attid(o->ncid, NC_GLOBAL, name, &id) == NC_NOERR);
        snprintf(note, size, " with another config (the earlier one is kept as %s)", name);
        rc = put_text_att(o, NC_GLOBAL, name, earlier, err) ||
                     put_text_att(o, NC_GLOBAL, "config", m->config_text, err)
                 ? -1
                 : 0;
    }
    free(earlier);
    return rc;
}

/* Called in define mode: history gains a line, ranks and config become this run's. */
static int note_restart(ipm_output *o, const ipm_output_meta *m, char *err)
{
    char when[32], note[96], line[320];
    if (replace_config(o, m, note, sizeof note, err))
        return -1;
    utc_now(when, sizeof when);
    snprintf(line, sizeof line, "\n%s restarted by ipmpi %s on %d rank%s after epoch %d%s", when,
             m->version, m->ranks, m->ranks == 1 ? "" : "s", m->resumed_after, note);
    char *history = global_text(o, "history");
    char *text = history ? malloc(strlen(history) + strlen(line) + 1) : NULL;
    if (!text) {
        free(history);
        return ipm_fail(err, "%s: out of memory", o->path);
    }
    strcat(strcpy(text, history), *history ? line : line + 1);
    int rc =
        put_text_att(o, NC_GLOBAL, "history", text, err) || put_int_att(o, "ranks", m->ranks, err)
            ? -1
            : 0;
    free(history);
    free(text);
    return rc;
}

/* HDF5 cannot undo a define-mode change the disk has no room for: the
 * file's attributes are left unreadable, and closing it crashes. So a
 * restart notes itself in them only with room to spare, far more than the
 * few KB the note takes. */
#define RESTART_ROOM_BYTES (1u << 20)

static int check_room_to_note(const ipm_output *o, char *err)
{
    struct statvfs fs;
    if (statvfs(o->path, &fs) != 0)
        return 0; /* nothing known: the writes report what happens */
    unsigned long long room = (unsigned long long)fs.f_bavail * (unsigned long long)fs.f_frsize;
    if (room >= RESTART_ROOM_BYTES)
        return 0;
    return ipm_fail_as(err, IPM_ERR_IO,
                       "%s: only %llu KB free on its file system, and a restart needs %u KB to "
                       "note itself in the file's attributes without risk to them: free some "
                       "space and restart (its records and attributes are unchanged)",
                       o->path, room / 1024, RESTART_ROOM_BYTES / 1024);
}

static int restart_attributes(ipm_output *o, const ipm_output_meta *m, char *err)
{
    if (check_room_to_note(o, err))
        return -1;
    int s = nc_redef(o->ncid);
    if (s)
        return nc_fail(o, s, "nc_redef", "", err);
    int rc = note_restart(o, m, err);
    if ((s = nc_enddef(o->ncid)) && rc == 0)
        rc = nc_fail(o, s, "nc_enddef", "", err);
    return rc;
}

/* Global attribute name, 16 hex digits as the file spells ids, read into
 * have ("" when absent); want gets v spelled the same way. 1 when equal. */
static int hex_attribute_is(const ipm_output *o, const char *name, uint64_t v, char want[17],
                            char have[64])
{
    hex16_text(v, want);
    size_t len = 0;
    have[0] = '\0';
    if (nc_inq_attlen(o->ncid, NC_GLOBAL, name, &len) == NC_NOERR && len < 64 &&
        nc_get_att_text(o->ncid, NC_GLOBAL, name, have) == NC_NOERR)
        have[len] = '\0';
    return strcmp(have, want) == 0;
}

/* A restart appends only to its own run's file: one copied over it (or an
 * earlier run's, kept beside a newer checkpoint) is refused. id 0: the
 * checkpoint predates run ids, nothing to compare. */
static int check_run_id(const ipm_output *o, uint64_t id, char *err)
{
    char want[17], have[64];
    if (id == 0 || hex_attribute_is(o, "run_id", id, want, have))
        return 0;
    return ipm_fail_as(err, IPM_ERR_REFUSED,
                       "%s belongs to another run (run_id %s) than the checkpoint (run_id %s): "
                       "refused, nothing written; restore the run's own output, or start afresh "
                       "with --overwrite",
                       o->path, *have ? have : "absent", want);
}

/* A restart trains on the data the run began with: a data file changed
 * in between is refused. A file from before the fingerprint passes. */
static int check_data_fingerprint(const ipm_output *o, uint64_t fingerprint, char *err)
{
    char want[17], have[64];
    if (hex_attribute_is(o, "data_fingerprint", fingerprint, want, have) || !*have)
        return 0;
    return ipm_fail_as(err, IPM_ERR_INPUT,
                       "%s: the data differ from those the run began with (data_fingerprint %s "
                       "in the file, %s now): restore the run's [data], or start afresh with "
                       "--overwrite; nothing was written",
                       o->path, have, want);
}

int ipm_output_present(const char *path, char *err)
{
    struct stat st;
    if (stat(path, &st) == 0 || errno != ENOENT)
        return 0;
    return ipm_fail_as(err, IPM_ERR_INPUT,
                       "cannot reopen NetCDF file %s: it is gone, and the checkpoint continues "
                       "it (restore it, or start afresh with --overwrite)",
                       path);
}

int ipm_output_belongs(const char *path, uint64_t run_id, char *err)
{
    if (ipm_output_present(path, err))
        return -1;
    ipm_output probe = {.path = (char *)path};
    int s = nc_open(path, NC_NOWRITE, &probe.ncid);
    if (s)
        return ipm_fail(err, "cannot reopen NetCDF file %s: %s", path, nc_strerror(s));
    int rc = check_run_id(&probe, run_id, err);
    nc_close(probe.ncid);
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
    /* Checked read-only first: opening for writing already marks the file
     * (HDF5's superblock flags), and a refused restart leaves it as it was. */
    int s = nc_open(o->path, NC_NOWRITE, &o->ncid);
    if (s && (s != ENOENT || ipm_output_present(o->path, err) == 0))
        ipm_fail(err, "cannot reopen NetCDF file %s: %s", o->path, nc_strerror(s));
    if (s) {
        output_free(o);
        return -1;
    }
    int rc = check_run_id(o, meta->run_id, err) ||
             check_data_fingerprint(o, meta->data_fingerprint, err) ||
             for_each_var(o, meta, check_var, err) ||
             check_records(o, records, meta->planned_records, err);
    nc_close(o->ncid);
    if (rc == 0) /* room a killed run had reserved counts as used until given back */
        release_room(o->path);
    if (rc == 0 && (s = nc_open(o->path, NC_WRITE, &o->ncid)) != NC_NOERR)
        rc = ipm_fail(err, "cannot reopen NetCDF file %s for writing: %s", o->path, nc_strerror(s));
    else if (rc == 0 && restart_attributes(o, meta, err)) {
        nc_close(o->ncid);
        rc = -1;
    }
    if (rc) {
        output_free(o);
        return -1;
    }
    note_identity(o);
    *out = o;
    return 0;
}

long ipm_output_records(const ipm_output *o)
{
    return o ? (long)o->records : 0;
}

/* ---------------------------------------------------------------- records */

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static const double *record_values(const ipm_epoch_record *rec, const column *c)
{
    const var_schema *s = &schema[c->ref.v];
    const char *base =
        s->per_plane ? (const char *)(c->ref.plane ? &rec->test : &rec->train) : (const char *)rec;
    if (s->per_layer) { /* one array per layer */
        const void *at = base + s->field;
        const double *const *layers = *(const double *const *const *)at;
        return layers ? layers[c->ref.layer] : NULL;
    }
    return *(const double *const *)(const void *)(base + s->field);
}

static int grow_pending(ipm_output *o, char *err)
{
    size_t cap = o->capacity ? 2 * o->capacity : 16;
    int *e = realloc(o->pending_epoch, cap * sizeof *e);
    if (!e)
        return ipm_fail(err, "%s: out of memory buffering records", o->path);
    o->pending_epoch = e;
    for (int i = 0; i < o->n_columns; i++) {
        column *c = &o->columns[i];
        double *v = realloc(c->pending, cap * c->count[0] * c->count[1] * c->count[2] * sizeof *v);
        if (!v)
            return ipm_fail(err, "%s: out of memory buffering records", o->path);
        c->pending = v;
    }
    o->capacity = cap;
    return 0;
}

/* A value the record does not carry is written as the fill value, as if never written. */
static void buffer_record(ipm_output *o, const ipm_epoch_record *rec)
{
    o->pending_epoch[o->pending] = rec->epoch;
    for (int i = 0; i < o->n_columns; i++) {
        const column *c = &o->columns[i];
        const double *v = record_values(rec, c);
        size_t per = c->count[0] * c->count[1] * c->count[2];
        double *dst = c->pending + o->pending * per;
        int nan_is_fill = schema[c->ref.v].nan_is_fill;
        for (size_t k = 0; k < per; k++)
            dst[k] = v && (!c->by_layer || o->measured[k % (size_t)o->n_layers]) &&
                             !(nan_is_fill && isnan(v[k]))
                         ? v[k]
                         : NC_FILL_DOUBLE;
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
            nc_inq_var_chunking(o->ncid, v, &storage, chunk) != NC_NOERR || storage != NC_CHUNKED ||
            chunk[0] == 0)
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
    int rc = check_identity(o, &st, err);
    double bytes = rc ? 0 : growth_bound(o);
    if (bytes > 0 && fallocate(fd, FALLOC_FL_KEEP_SIZE, st.st_size, (off_t)bytes) != 0 &&
        errno != EOPNOTSUPP && errno != ENOSYS && errno != EINVAL)
        rc = ipm_fail_as(err, IPM_ERR_IO,
                         "%s: cannot write %zu more record%s: %s (the file "
                         "keeps the %zu record%s written before)",
                         o->path, o->pending, o->pending == 1 ? "" : "s", strerror(errno),
                         o->records, o->records == 1 ? "" : "s");
    close(fd);
    return rc;
#else
    (void)o, (void)err;
    return 0;
#endif
}

static int put_pending(ipm_output *o, char *err)
{
    size_t start[4] = {o->records, 0, 0, 0};
    errno = 0;
    int s = nc_put_vara_int(o->ncid, o->varid[V_EPOCH][0], start, &o->pending, o->pending_epoch);
    if (s)
        return io_fail(o, s, errno, "variable", "epoch", err);
    for (int i = 0; i < o->n_columns; i++) {
        const column *c = &o->columns[i];
        /* beyond the rank: unused */
        size_t count[4] = {o->pending, c->count[0], c->count[1], c->count[2]};
        errno = 0;
        if ((s = nc_put_vara_double(o->ncid, c->varid, start, count, c->pending))) {
            char name[64];
            var_name(&c->ref, name, sizeof name);
            return io_fail(o, s, errno, "variable", name, err);
        }
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
        return ipm_fail(err, "%s: activations of layer %d: the file has %d layers", o->path, layer,
                        o->n_layers);
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
    s = nc_put_vara_int(o->ncid, o->varid[V_ACTIVATION_EPOCH][0], &at, &one, &epoch);
    o->dirty = 1;
    o->dirty_bytes += count[2] * count[3] * sizeof(float);
    return s ? io_fail(o, s, errno, "variable", "activation_epoch", err) : 0;
}

int ipm_output_stop_epochs(ipm_output *o, const int32_t *stop_epoch, char *err)
{
    if (o->varid[V_STOP_EPOCH][0] < 0)
        return ipm_fail(err, "%s: variable stop_epoch: the run has no stopping criterion", o->path);
    errno = 0;
    int s = nc_put_var_int(o->ncid, o->varid[V_STOP_EPOCH][0], stop_epoch);
    o->dirty = 1;
    return s ? io_fail(o, s, errno, "variable", "stop_epoch", err) : 0;
}

int ipm_output_close(ipm_output *o, char *err)
{
    if (!o)
        return 0;
    int rc = ipm_output_flush(o, err);
    struct stat st;
    if (rc == 0 && stat(o->path, &st) != 0)
        rc = ipm_fail_as(err, IPM_ERR_IO, "%s: %s (removed while the run wrote it)", o->path,
                         strerror(errno));
    else if (rc == 0)
        rc = check_identity(o, &st, err);
    errno = 0;
    int s = nc_close(o->ncid);
    if (s && rc == 0)
        rc = io_fail(o, s, errno, "nc_close", "", err);
    if (rc == 0)
        release_room(o->path);
    output_free(o);
    return rc;
}
