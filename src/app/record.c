#include "ipmpi/app/record.h"

#include <stdio.h>
#include <string.h>

#include "ipmpi/app/edges.h"
#include "ipmpi/base/bytes.h"
#include "ipmpi/version.h"

/* H(X), H(Y), I(X;Y) of the training set: the measure has them when the
 * training plane is measured, else they are computed here. */
static int data_information(const ipm_record_sources *src, ipm_output_meta *meta, char *err)
{
    const ipm_plan *plan = src->plan;
    const ipm_dataset *train = ipm_plan_measured_data(plan, IPM_PLANE_TRAIN);
    if (plan->measured[IPM_PLANE_TRAIN]) {
        const ipm_measure *m = &src->plane[IPM_PLANE_TRAIN];
        meta->h_x = m->terms.h_x;
        meta->h_y = m->terms.h_y;
        meta->i_xy = m->i_xy;
    } else if (ipm_data_information(train->x_id, train->y, train->n, &meta->h_x, &meta->h_y,
                                    &meta->i_xy, err)) {
        return -1;
    }
    if (plan->measured[IPM_PLANE_TEST]) {
        const ipm_measure *m = &src->plane[IPM_PLANE_TEST];
        meta->test_h_x = m->terms.h_x;
        meta->test_h_y = m->terms.h_y;
        meta->test_i_xy = m->i_xy;
    }
    return 0;
}

int ipm_record_open(ipm_output **out, const ipm_record_sources *src, int resumed_after,
                    long records, uint64_t run_id, double flush_seconds, char *err)
{
    const ipm_plan *plan = src->plan;
    const ipm_config *cfg = plan->cfg;
    const ipm_dataset *train = ipm_plan_measured_data(plan, IPM_PLANE_TRAIN); /* stored samples */
    const ipm_stop_monitor *stop = src->stop;
    char stop_text[160];
    snprintf(stop_text, sizeof stop_text,
             "J = I(T;Y) - %g I(X;T) of layer %d (%s estimator) at each stopping check",
             cfg->stop_beta, stop->layer + 1, ipm_stop_monitor_estimator(stop));
    ipm_output_meta meta = {
        .path = cfg->output,
        .config_text = plan->config_text,
        .version = IPMPI_VERSION,
        .ranks = plan->n_ranks,
        .replicas = plan->n_replicas,
        .n_layers = cfg->n_layers,
        .layer_spec = cfg->layers,
        .loss = cfg->loss,
        .resumed_after = resumed_after,
        .layer_width = plan->width,
        .layer_measured = plan->layer_measured,
        .adaptive_range =
            cfg->range_adaptive || cfg->range_whole || cfg->binning == IPM_BINNING_WIDTH,
        .range_whole = cfg->range_whole,
        .quantile = cfg->binning != IPM_BINNING_QUANTILE   ? 0
                    : cfg->quantiles == IPM_QUANTILES_UNIT ? 2
                                                           : 1,
        .range_per_replica = cfg->range_scope == IPM_RANGE_PER_REPLICA,
        .bin_width = cfg->binning == IPM_BINNING_WIDTH ? cfg->bin_width : 0,
        .estimators = cfg->estimators,
        .planes = plan->whole_plane ? IPM_ON_TRAIN : cfg->on,
        .whole_plane = plan->whole_plane,
        .has_test = plan->data[IPM_PLANE_TEST].n > 0,
        .bins = cfg->bins,
        .range_lo = cfg->range_lo,
        .range_hi = cfg->range_hi,
        .kde_variance = cfg->kde_variance,
        .n_activation_epochs = plan->n_act,
        .data_fingerprint = ipm_dataset_fingerprint(
            &plan->data[IPM_PLANE_TEST],
            ipm_dataset_fingerprint(&plan->data[IPM_PLANE_TRAIN], IPM_FNV_OFFSET)),
        .planned_records = plan->n_log,
        .activation_samples = train->n,
        .gradient_stats = cfg->gradient_stats,
        .sample_x_id = train->x_id,
        .sample_y = train->y,
        .flush_seconds = flush_seconds,
        .run_id = run_id,
        .stop_rules = stop->enabled ? stop->n_rules : 0,
        .stop_description = stop_text,
    };
    if (data_information(src, &meta, err))
        return -1;
    /* A restart appends after the checkpoint's records. The file may hold
     * more (logged after the checkpoint, or after .prev's) and NetCDF cannot
     * shrink the epoch dimension, but nothing needs removing: the restarted
     * run has the same config and state, so it logs those epochs again,
     * bitwise the same, over them (tests/test_restart.sh checks it). With
     * fewer epochs it might log fewer in all: reopen refuses that. */
    if (resumed_after < 0)
        return ipm_output_create(out, &meta, err);
    if (ipm_output_reopen(out, &meta, records, err))
        return -1;
    /* The file may hold stops logged after the checkpoint; they will recur. */
    return stop->enabled ? ipm_output_stop_epochs(*out, stop->stop_epoch, err) : 0;
}

/* The Miller-Madow and KDE values, when computed. */
static void plane_record_more(const ipm_measure *m, unsigned est, ipm_plane_record *rec)
{
    if (est & IPM_EST_MILLER_MADOW) {
        rec->i_xt_simple_mm = m->est.simple_xt_mm;
        rec->i_ty_simple_mm = m->est.simple_ty_mm;
        rec->i_xt_pooled_mm = m->est.pooled_xt_mm;
        rec->i_ty_pooled_mm = m->est.pooled_ty_mm;
        rec->i_xt_sampled_mm = m->est.sampled_xt_mm;
        rec->i_ty_sampled_mm = m->est.sampled_ty_mm;
    }
    if (est & IPM_EST_KDE) {
        rec->i_xt_kde_upper = m->est.kde[IPM_KDE_XT_UPPER];
        rec->i_xt_kde_lower = m->est.kde[IPM_KDE_XT_LOWER];
        rec->i_ty_kde_upper = m->est.kde[IPM_KDE_TY_UPPER];
        rec->i_ty_kde_lower = m->est.kde[IPM_KDE_TY_LOWER];
    }
}

static void plane_record(const ipm_record_sources *src, int p, ipm_plane_record *rec)
{
    memset(rec, 0, sizeof *rec);
    if (!src->plan->measured[p])
        return;
    const ipm_measure *m = &src->plane[p];
    unsigned est = src->plan->cfg->estimators;
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
    plane_record_more(m, est, rec);
    if (m->per_replica) {
        rec->bin_lo = m->replica_range;
        rec->bin_hi = m->replica_range + (size_t)m->n_replicas * (size_t)m->n_layers;
    } else if (m->quantile) {
        rec->bin_edges = m->layer_edges;
    } else if (ipm_edges_from_data(m) || m->whole) {
        rec->bin_lo = m->range_lo;
        rec->bin_hi = m->range_hi;
    }
}

int ipm_record_write(ipm_output *out, const ipm_record_sources *src, int epoch, char *err)
{
    const ipm_ensemble *e = src->ensemble;
    ipm_epoch_record rec = {
        .epoch = epoch,
        .loss = e->loss,
        .accuracy = e->accuracy,
        .test_loss = e->test_loss,
        .test_accuracy = e->test_accuracy,
        .stop_j = ipm_stop_monitor_is_check(src->stop, epoch) ? src->stop->j : NULL,
        .grad_mean_norm = e->grad_mean_norm,
        .grad_std_norm = e->grad_std_norm,
    };
    plane_record(src, IPM_PLANE_TRAIN, &rec.train);
    plane_record(src, IPM_PLANE_TEST, &rec.test);
    return ipm_output_append(out, &rec, err);
}

int ipm_record_close(ipm_output **out, int rc, char *err)
{
    char close_err[IPM_ERRLEN] = "";
    int failed = ipm_output_close(*out, close_err);
    *out = NULL;
    if (failed && rc >= 0) {
        memcpy(err, close_err, IPM_ERRLEN);
        return -1;
    }
    return rc;
}
