#include "ipmpi/app/report.h"

#include <mpi.h>
#include <signal.h>
#include <stdio.h>
#include <sys/resource.h>

#include "ipmpi/parallel/comm.h"

static double mean(const double *v, int n)
{
    double s = 0;
    for (int i = 0; i < n; i++)
        s += v[i];
    return n ? s / n : 0;
}

/* The last measured layer's point of the best estimator this run computes. */
static void headline_point(const ipm_report_sources *src, int layer, double *i_xt, double *i_ty)
{
    const ipm_plan *plan = src->plan;
    int p = plan->measured[IPM_PLANE_TRAIN] ? IPM_PLANE_TRAIN : IPM_PLANE_TEST;
    const ipm_estimates *est = &src->plane[p].est;
    unsigned which = plan->cfg->estimators;
    if (which & IPM_EST_POOLED) {
        *i_xt = est->pooled_xt[layer];
        *i_ty = est->pooled_ty[layer];
    } else if (which & IPM_EST_SAMPLED) {
        *i_xt = est->sampled_xt[layer];
        *i_ty = est->sampled_ty[layer];
    } else if (!(which & IPM_EST_SIMPLE)) { /* kde alone: its upper bounds */
        *i_xt = est->kde[IPM_KDE_XT_UPPER][layer];
        *i_ty = est->kde[IPM_KDE_TY_UPPER][layer];
    } else {
        double sx = 0, sy = 0;
        for (int rep = 0; rep < est->n_replicas; rep++) {
            sx += est->simple_xt[rep * est->n_layers + layer];
            sy += est->simple_ty[rep * est->n_layers + layer];
        }
        *i_xt = sx / est->n_replicas;
        *i_ty = sy / est->n_replicas;
    }
}

/* Seconds left: epochs left at the training cost per epoch so far, logged
 * epochs left at the cost of a logged epoch so far (all but training). */
static double eta_seconds(const ipm_report_sources *src, int epoch, int logged_left)
{
    const ipm_clock *c = src->clock;
    double spent = MPI_Wtime() - c->loop_start, train = src->ensemble->seconds_train;
    double per_epoch = c->epochs_done > 0 ? train / c->epochs_done : 0;
    double per_logged = c->logged > 0 ? (spent - train) / c->logged : 0;
    int epochs_left = src->plan->cfg->epochs - epoch;
    double eta = epochs_left * per_epoch + logged_left * (per_logged > 0 ? per_logged : 0);
    return eta > 0 ? eta : 0;
}

void ipm_report_progress(const ipm_report_sources *src, int epoch, int logged_left)
{
    const ipm_plan *plan = src->plan;
    const ipm_ensemble *e = src->ensemble;
    int total = plan->cfg->epochs, layer = ipm_plan_last_measured_layer(plan);
    double i_xt, i_ty;
    headline_point(src, layer, &i_xt, &i_ty);
    char test[48] = "", check[64] = "";
    if (plan->data[IPM_PLANE_TEST].n > 0)
        snprintf(test, sizeof test, "  test acc %.4f", mean(e->test_accuracy, e->n_replicas));
    if (ipm_stop_monitor_is_check(src->stop, epoch) && src->stop->n_rules == 1)
        snprintf(check, sizeof check, "  J %.4f", src->stop->j[0]);
    printf("epoch %*d/%d  loss %.4f  acc %.4f%s  layer %d I(X;T) %.4f  I(T;Y) %.4f bits%s  "
           "elapsed %.1fs  eta %.1fs\n",
           (int)snprintf(NULL, 0, "%d", total), epoch, total, mean(e->loss, e->n_replicas),
           mean(e->accuracy, e->n_replicas), test, layer + 1, i_xt, i_ty, check,
           MPI_Wtime() - src->clock->start, eta_seconds(src, epoch, logged_left));
}

void ipm_report_flush_progress(ipm_clock *clock)
{
    double now = MPI_Wtime();
    if (now - clock->progress_flushed < IPM_PROGRESS_FLUSH_SECONDS)
        return;
    fflush(stdout);
    clock->progress_flushed = now;
}

void ipm_report_flush(void)
{
    fflush(stdout);
}

void ipm_report_stops(const ipm_report_sources *src, int epoch)
{
    const ipm_config *cfg = src->plan->cfg;
    const ipm_stop_monitor *m = src->stop;
    int stopped = 0;
    for (int i = 0; i < m->n_replicas; i++)
        stopped += m->stop_epoch[i] >= 0;
    for (int i = 0; i < m->n_rules; i++) {
        const ipm_stopping *rule = &m->rule[i];
        if (rule->stopped_epoch != epoch)
            continue;
        char who[48];
        /* replicas are numbered from 1, as in the output's replica coordinate */
        snprintf(who, sizeof who, m->n_rules == 1 ? "the ensemble" : "replica %d", i + 1);
        printf("stopping %s at epoch %d: J = I(T;Y) - %g I(X;T) of layer %d (%s) has not risen "
               "by more than max(%g x |J_best|, %g) for %d checks (J_best %.4f at epoch %d)%s\n",
               who, epoch, cfg->stop_beta, m->layer + 1, ipm_stop_monitor_estimator(m),
               cfg->stop_tolerance, cfg->stop_min_rise, cfg->stop_patience, rule->best,
               rule->best_epoch, stopped == m->n_replicas ? "; every replica has stopped" : "");
    }
    fflush(stdout);
}

static const char *signal_name(int sig)
{
    switch (sig) {
    case SIGUSR1:
        return "SIGUSR1";
    case SIGTERM:
        return "SIGTERM";
    case SIGINT:
        return "SIGINT";
    case SIGHUP:
        return "SIGHUP";
    case SIGPIPE:
        return "SIGPIPE";
    default:
        return "?";
    }
}

void ipm_report_signal_stop(int epoch, int sig, const char *checkpoint)
{
    printf("stopped early at epoch %d on signal %s: checkpoint written to %s; "
           "resubmit with --restart\n",
           epoch, signal_name(sig), checkpoint);
    fflush(stdout);
}

int ipm_report_peak_memory(ipm_clock *clock, MPI_Comm comm, char *err)
{
    struct rusage usage;
    clock->peak_mb = getrusage(RUSAGE_SELF, &usage) == 0 ? usage.ru_maxrss / 1024.0 : 0.0;
    return ipm_max_double(clock->peak_mb, comm, &clock->peak_mb_max, err);
}

/* What the planes' measures spent and moved, summed over the planes. */
typedef struct measure_totals {
    double binning, exchange, wait, kde;
    ipm_traffic traffic;
} measure_totals;

static measure_totals measure_totals_of(const ipm_report_sources *src)
{
    measure_totals t = {0, 0, 0, 0, {0, 0}};
    for (int p = 0; p < IPM_N_PLANES; p++)
        if (src->plan->measured[p]) {
            const ipm_measure *m = &src->plane[p];
            t.binning += m->seconds_binning;
            t.exchange += m->seconds_exchange;
            t.wait += m->seconds_wait;
            t.kde += m->seconds_kde;
            t.traffic.sent += m->traffic.sent;
            t.traffic.received += m->traffic.received;
        }
    return t;
}

static const char *reduce_name(const ipm_plan *plan)
{
    if (plan->n_ranks == 1)
        return "none: one rank";
    return plan->cfg->reduce == IPM_REDUCE_TREE ? "tree" : "partitioned";
}

void ipm_report_summary(const ipm_report_sources *src, int trained_epochs)
{
    const ipm_plan *plan = src->plan;
    const ipm_ensemble *e = src->ensemble;
    const ipm_clock *c = src->clock;
    measure_totals m = measure_totals_of(src);
    double wall = MPI_Wtime() - c->start, wait = c->wait + m.wait;
    double parts = c->setup + e->seconds_train + e->seconds_forward + m.binning + m.exchange +
                   m.kde + c->output + c->checkpoint + wait;
    int epochs = c->epochs_done > 0 ? c->epochs_done : 1, logs = c->logged > 0 ? c->logged : 1;
    printf("done: %d epochs, %d logged, %d replica%s on %d rank%s, wall %.3fs\n", trained_epochs,
           c->logged, plan->n_replicas, plan->n_replicas == 1 ? "" : "s", plan->n_ranks,
           plan->n_ranks == 1 ? "" : "s", wall);
    printf("time (rank 0): setup %.3fs  train %.3fs (%.4f ms/epoch)  forward %.3fs  "
           "binning+tables %.3fs  exchange %.3fs (%.4f ms/logged epoch)  kde %.3fs  output %.3fs  "
           "checkpoints %.3fs  wait %.3fs  other %.3fs\n",
           c->setup, e->seconds_train, 1e3 * e->seconds_train / epochs, e->seconds_forward,
           m.binning, m.exchange, 1e3 * m.exchange / logs, m.kde, c->output, c->checkpoint, wait,
           wall - parts > 0 ? wall - parts : 0);
    printf("exchange (rank 0, reduce %s): sent %.0f bytes, received %.0f bytes per logged epoch\n",
           reduce_name(plan), (double)m.traffic.sent / logs, (double)m.traffic.received / logs);
    printf("memory: peak resident %.1f MB on rank 0, %.1f MB on the largest rank\n", c->peak_mb,
           c->peak_mb_max);
    printf("wrote %s\n", plan->cfg->output);
    fflush(stdout);
}
