/* run: the table of contents of a run: setup -> resume -> open -> epochs ->
 * close. Each step ends in agreement (parallel/comm.h), so every rank takes
 * the same path and a failure anywhere stops every rank with one message. */
#include "ipmpi/app/run.h"

#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ipmpi/app/activations.h"
#include "ipmpi/app/claim.h"
#include "ipmpi/app/edges.h"
#include "ipmpi/app/ensemble.h"
#include "ipmpi/app/measure.h"
#include "ipmpi/app/merge.h"
#include "ipmpi/app/observe.h"
#include "ipmpi/app/plan.h"
#include "ipmpi/app/record.h"
#include "ipmpi/app/report.h"
#include "ipmpi/app/resume.h"
#include "ipmpi/app/test_hooks.h"
#include "ipmpi/base/error.h"
#include "ipmpi/io/checkpoint.h"
#include "ipmpi/io/output.h"
#include "ipmpi/parallel/comm.h"

/* A sync costs ~0.3 ms, as much as a whole fast epoch; syncing at most once
 * a second bounds what a killed job can lose to the last second of epochs. */
#define OUTPUT_FLUSH_SECONDS 1.0

/* The ranks agree on signals about every AGREE_SECONDS, not every epoch: an
 * agreement is a barrier, and where ranks share cores (more ranks than
 * cores, or a busy node) a barrier per epoch makes each wait for the
 * others' time slices at every epoch. The interval in epochs is agreed
 * with the signals, so every rank takes the same agreement epochs. */
#define AGREE_SECONDS 0.05
#define AGREE_MAX_EPOCHS 1000

typedef struct run {
    ipm_run_options opt;
    MPI_Comm comm;
    int rank;
    ipm_config resolved; /* the config, replicas = 0 resolved on a restart */
    ipm_plan plan;
    ipm_claim claim; /* rank 0: the output and checkpoint locked */
    ipm_ensemble ensemble;
    ipm_measure plane[IPM_N_PLANES]; /* where plan.measured */
    ipm_stop_monitor stop;           /* [stopping]; the same on every rank */
    ipm_activation_store store;
    ipm_output *out;     /* rank 0 */
    int first_epoch;     /* 0, or the checkpoint's epoch + 1 on restart */
    long resume_records; /* NetCDF records the checkpoint counts */
    uint64_t run_id;     /* in the checkpoint and the NetCDF file */
    int last_epoch;      /* the last epoch trained (or resumed after) */
    int next_log;        /* index of the next logged epoch */
    int agreed_epoch;    /* the last epoch whose signals the ranks agreed on */
    int next_agree;      /* the next such epoch */
    double agreed_at;    /* MPI_Wtime() then */
    ipm_clock clock;
} run;

/* ipm_agree, with the time spent waiting for the other ranks counted. */
static int agree(run *r, int rc, char *err)
{
    double t0 = MPI_Wtime();
    rc = ipm_agree(rc, err, r->comm);
    r->clock.wait += MPI_Wtime() - t0;
    return rc;
}

static ipm_record_sources record_sources(const run *r)
{
    return (ipm_record_sources){&r->plan, &r->ensemble, r->plane, &r->stop};
}

static ipm_report_sources report_sources(const run *r)
{
    return (ipm_report_sources){&r->plan, &r->ensemble, r->plane, &r->stop, &r->clock};
}

/* ---- setup --------------------------------------------------------------- */

static int setup_measures(run *r, char *err)
{
    const ipm_plan *p = &r->plan;
    for (int k = 0; k < IPM_N_PLANES; k++) {
        if (p->measured[k] &&
            ipm_measure_init(&r->plane[k], p->cfg, ipm_plan_measured_data(p, k), k, &p->shape,
                             p->n_replicas, p->n_local, p->rank, p->n_ranks, err))
            return -1;
        if (p->measured[k] && p->whole_range[k])
            ipm_edges_fix(&r->plane[k], p->whole_range[k]);
    }
    return 0;
}

/* replicas = 0 on a restart: the count of the run's first start. */
static int resolve_replicas(run *r, const ipm_config *cfg, char *err)
{
    r->resolved = *cfg; /* shallow: the lists stay cfg's */
    if (!r->opt.restart || cfg->replicas > 0)
        return 0;
    if (ipm_resume_replicas(cfg, r->comm, &r->resolved.replicas, err) == 0)
        return 0;
    ipm_error_default_kind(err, IPM_ERR_INPUT); /* no checkpoint: as --check --restart says */
    return -1;
}

/* Rank 0 claims the files before anyone writes; every rank learns the
 * outcome with the rest of setup. */
static int setup(run *r, const ipm_config *cfg, char *err)
{
    int size;
    if (ipm_comm_rank_size(r->comm, NULL, &size, err))
        return -1;
    openblas_set_num_threads(cfg->threads);
    if (ipm_plan_make(&r->plan, cfg, r->rank, size, ipm_test_eval_block_rows(), err)) {
        ipm_error_default_kind(err, IPM_ERR_INPUT); /* as --check reports it */
        return -1;
    }
    if (r->rank == 0 &&
        ipm_claim_files(&r->claim, cfg, r->plan.checkpoint, r->opt.restart, r->opt.overwrite, err))
        return -1;
    if (ipm_ensemble_init(&r->ensemble, &r->plan, r->comm, err))
        return -1;
    ipm_stop_settings stop = ipm_config_stop_settings(cfg);
    if (ipm_stop_monitor_init(&r->stop, &stop, r->plan.n_replicas, err) || setup_measures(r, err))
        return -1;
    ipm_activation_store_init(&r->store, &r->plan);
    return ipm_test_fault("setup", r->rank, -1, err);
}

static void teardown(run *r)
{
    for (int p = 0; p < IPM_N_PLANES; p++)
        if (r->plan.measured[p])
            ipm_measure_free(&r->plane[p]);
    ipm_activation_store_free(&r->store);
    ipm_stop_monitor_free(&r->stop);
    ipm_ensemble_free(&r->ensemble);
    ipm_plan_free(&r->plan);
    ipm_claim_release(&r->claim);
}

/* ---- resume -------------------------------------------------------------- */

/* Replaces the fresh replicas' states with the checkpoint's. */
static int resume(run *r, char *err)
{
    ipm_resume_point at;
    const char *path = r->plan.checkpoint;
    int rc = ipm_resume_load(&r->ensemble, path, r->plan.cfg, &at, err);
    if (rc == 0 && r->stop.enabled)
        rc = ipm_stop_monitor_unpack(&r->stop, at.stop, at.stop_size, err);
    else if (rc == 0 && at.stop_size)
        rc = ipm_fail(err,
                      "%s: the checkpoint holds a stopping state but [stopping] criterion "
                      "= none",
                      path);
    free(at.stop);
    if (rc)
        ipm_error_default_kind(err, IPM_ERR_INPUT); /* no checkpoint, or not this config's */
    if (agree(r, rc, err))
        return -1;
    if (ipm_resume_check_epochs(r->plan.cfg, path, at.epoch, err))
        return -1; /* every rank holds the same checkpoint epoch */
    r->first_epoch = at.epoch + 1;
    r->last_epoch = at.epoch;
    r->resume_records = at.records;
    r->run_id = at.run_id;
    if (r->rank == 0 && at.used_prev)
        printf("checkpoint refused (%s): using %s.prev\n", at.refused, path);
    if (r->rank == 0)
        printf("resuming after epoch %d from %s%s\n", at.epoch, path, at.used_prev ? ".prev" : "");
    ipm_report_flush();
    return 0;
}

/* A restarted run with nothing left to do leaves its files as they are. */
static int finished(const run *r)
{
    return r->opt.restart &&
           (r->first_epoch > r->plan.cfg->epochs || ipm_stop_monitor_all_stopped(&r->stop));
}

/* ---- epochs -------------------------------------------------------------- */

/* Rank 0 decided; every rank takes its state, so all agree on who trains. */
static int share_stop_state(run *r, char *err)
{
    size_t size = r->rank == 0 ? ipm_stop_monitor_state_size(&r->stop) : 0;
    unsigned char *blob = r->rank == 0 ? malloc(size) : NULL;
    int rc = r->rank != 0 || blob ? 0 : ipm_fail(err, "out of memory for the stopping state");
    if (agree(r, rc, err)) {
        free(blob);
        return -1;
    }
    if (r->rank == 0)
        ipm_stop_monitor_pack(&r->stop, blob);
    rc = ipm_bcast_blob(&blob, &size, 0, r->comm, err);
    if (rc == 0 && r->rank != 0)
        rc = ipm_stop_monitor_unpack(&r->stop, blob, size, err);
    free(blob);
    return agree(r, rc, err);
}

/* Rank 0, once every plane is merged: the stopping rule, the record, the
 * progress line. */
static int conclude_epoch(run *r, int epoch, char *err)
{
    int check = ipm_stop_monitor_is_check(&r->stop, epoch), stopped_now = 0;
    if (check && (stopped_now = ipm_stop_monitor_observe(&r->stop, epoch,
                                                         &r->plane[IPM_PLANE_TRAIN].est)) < 0)
        return ipm_fail(err, "out of memory checking the stopping rule at epoch %d", epoch);
    double t0 = MPI_Wtime();
    ipm_record_sources rec = record_sources(r);
    int rc = ipm_record_write(r->out, &rec, epoch, err);
    if (rc == 0 && stopped_now > 0)
        rc = ipm_output_stop_epochs(r->out, r->stop.stop_epoch, err);
    r->clock.output += MPI_Wtime() - t0;
    if (rc)
        return -1;
    ipm_report_sources rep = report_sources(r);
    ipm_report_progress(&rep, epoch, r->plan.n_log - r->next_log);
    ipm_report_flush_progress(&r->clock);
    if (stopped_now > 0)
        ipm_report_stops(&rep, epoch);
    return 0;
}

static int log_epoch(run *r, int epoch, char *err)
{
    int store = ipm_epoch_listed(r->plan.act_epochs, r->plan.n_act, epoch);
    ipm_observation o = {&r->plan, &r->ensemble, {NULL, NULL}, store ? &r->store : NULL};
    for (int p = 0; p < IPM_N_PLANES; p++)
        o.plane[p] = r->plan.measured[p] ? &r->plane[p] : NULL;
    /* Training's divergence first: it says where the trouble began. */
    int rc = ipm_ensemble_check_divergence(&r->ensemble, epoch, r->plan.cfg->output, err);
    if (rc == 0)
        rc = ipm_observe_epoch(&o, epoch, err);
    if (rc == 0)
        rc = ipm_test_fault("epoch", r->rank, epoch, err);
    if (rc == 0)
        rc = ipm_ensemble_check_divergence(&r->ensemble, epoch, r->plan.cfg->output, err);
    /* Before a collective step every rank must know whether to go on. */
    if (agree(r, rc, err))
        return -1;
    if (store && agree(r,
                       ipm_activation_store_write(&r->store, r->out, epoch, r->plan.n_replicas,
                                                  r->comm, err),
                       err))
        return -1;
    r->store.slot += store;
    rc = ipm_ensemble_reduce_metrics(&r->ensemble, err);
    for (int p = 0; p < IPM_N_PLANES && rc == 0; p++)
        if (r->plan.measured[p])
            rc = ipm_merge_finish(&r->plane[p], r->comm, err);
    if (rc == 0 && r->rank == 0)
        rc = conclude_epoch(r, epoch, err);
    if (agree(r, rc, err))
        return -1;
    return ipm_stop_monitor_is_check(&r->stop, epoch) ? share_stop_state(r, err) : 0;
}

/* Rank 0 flushes first, so the records the checkpoint counts are on disk. */
static int save_checkpoint(run *r, int epoch, char *err)
{
    double t0 = MPI_Wtime();
    if (agree(r, r->rank == 0 ? ipm_output_flush(r->out, err) : 0, err))
        return -1;
    size_t stop_size = r->stop.enabled ? ipm_stop_monitor_state_size(&r->stop) : 0;
    unsigned char *stop = malloc(stop_size ? stop_size : 1);
    if (agree(r, stop ? 0 : ipm_fail(err, "out of memory for the stopping state"), err)) {
        free(stop);
        return -1;
    }
    if (stop_size)
        ipm_stop_monitor_pack(&r->stop, stop);
    ipm_resume_extra extra = {r->plan.config_text, epoch, ipm_output_records(r->out),
                              r->run_id,           stop,  stop_size};
    int rc = ipm_resume_save(&r->ensemble, r->plan.checkpoint, &extra, err);
    free(stop);
    r->clock.checkpoint += MPI_Wtime() - t0;
    return rc;
}

/* This rank's proposal for the epochs until the next agreement: about
 * AGREE_SECONDS of its recent epochs. */
static int agree_interval(const run *r, int epoch, double now)
{
    int epochs = epoch - r->agreed_epoch;
    if (epochs <= 0 || now <= r->agreed_at)
        return 1;
    double interval = AGREE_SECONDS * epochs / (now - r->agreed_at);
    return interval < 1 ? 1 : interval > AGREE_MAX_EPOCHS ? AGREE_MAX_EPOCHS : (int)interval;
}

/* One MPI_Allreduce: the highest signal any rank has seen, and the
 * shortest proposed interval (its negation's maximum), which sets the next
 * agreement epoch on every rank alike. */
static int agree_signals(run *r, int epoch, int *sig, char *err)
{
    double now = MPI_Wtime();
    int mine[2] = {r->opt.stop ? (int)*r->opt.stop : 0, -agree_interval(r, epoch, now)}, all[2];
    int rc = ipm_max_ints(mine, all, 2, r->comm, err);
    r->agreed_at = MPI_Wtime();
    r->clock.wait += r->agreed_at - now;
    r->agreed_epoch = epoch;
    r->next_agree = epoch - all[1];
    *sig = all[0];
    return rc;
}

/* After epoch's training and logging: 0 go on, IPM_RUN_STOPPED, -1 failed.
 * A signal stops the run at the first agreement after it (within about
 * AGREE_SECONDS), on every rank at the same epoch. */
static int epoch_boundary(run *r, int epoch, char *err)
{
    int sig = 0, every = r->plan.cfg->checkpoint_every;
    if (epoch >= r->next_agree && agree_signals(r, epoch, &sig, err))
        return -1;
    if (sig) {
        if (save_checkpoint(r, epoch, err))
            return -1;
        if (r->rank == 0)
            ipm_report_signal_stop(epoch, sig, r->plan.checkpoint);
        return IPM_RUN_STOPPED;
    }
    if (every > 0 && epoch > 0 && epoch % every == 0 && epoch < r->plan.cfg->epochs)
        return save_checkpoint(r, epoch, err);
    return 0;
}

/* The schedule position a restart continues from: logged epochs and
 * activation slots before first_epoch were done by the run that wrote the
 * checkpoint. */
static void skip_done(run *r)
{
    const ipm_plan *p = &r->plan;
    while (r->next_log < p->n_log && p->log_epochs[r->next_log] < r->first_epoch)
        r->store.slot += ipm_epoch_listed(p->act_epochs, p->n_act, p->log_epochs[r->next_log++]);
}

static int run_epoch(run *r, int epoch, char *err)
{
    const ipm_plan *p = &r->plan;
    r->last_epoch = epoch;
    int logged = r->next_log < p->n_log && p->log_epochs[r->next_log] == epoch;
    ipm_ensemble_watch_gradients(&r->ensemble, logged);
    if (epoch > 0) {
        ipm_ensemble_train_epoch(&r->ensemble, &p->data[IPM_PLANE_TRAIN], epoch,
                                 r->stop.enabled ? r->stop.stop_epoch : NULL);
        r->clock.epochs_done++;
    }
    if (logged) {
        r->next_log++;
        r->clock.logged++;
        if (log_epoch(r, epoch, err))
            return -1;
    }
    return epoch_boundary(r, epoch, err);
}

static int epoch_loop(run *r, char *err)
{
    r->clock.loop_start = MPI_Wtime();
    r->clock.progress_flushed =
        r->clock.loop_start - IPM_PROGRESS_FLUSH_SECONDS; /* show the first */
    r->agreed_epoch = r->next_agree = r->first_epoch;
    r->agreed_at = r->clock.loop_start;
    skip_done(r);
    for (int epoch = r->first_epoch; epoch <= r->plan.cfg->epochs; epoch++) {
        if (ipm_stop_monitor_all_stopped(&r->stop))
            break;
        int rc = run_epoch(r, epoch, err);
        if (rc)
            return rc;
    }
    /* Divergence after the last logged epoch must not pass silently. */
    ipm_ensemble_clear_losses(&r->ensemble);
    if (agree(r,
              ipm_ensemble_check_divergence(&r->ensemble, r->last_epoch, r->plan.cfg->output, err),
              err))
        return -1;
    return save_checkpoint(r, r->last_epoch, err);
}

/* ---- the run ------------------------------------------------------------- */

int ipm_run(const ipm_config *cfg, const ipm_run_options *opt, MPI_Comm comm, char *err)
{
    run r;
    memset(&r, 0, sizeof r);
    r.clock.start = MPI_Wtime();
    if (opt)
        r.opt = *opt;
    r.comm = comm;
    if (ipm_comm_rank_size(comm, &r.rank, NULL, err))
        return -1;
    /* The output exists only once every rank is ready: a bad setup leaves no file. */
    int rc = resolve_replicas(&r, cfg, err);
    if (rc == 0)
        rc = agree(&r, setup(&r, &r.resolved, err), err);
    if (rc == 0 && r.opt.restart)
        rc = resume(&r, err);
    else if (rc == 0)
        r.run_id = r.rank == 0 ? ipm_resume_new_run_id() : 0;
    r.clock.setup = MPI_Wtime() - r.clock.start;
    /* Finished: the output must still be the run's, or "nothing to do"
     * would vouch for another run's file. */
    if (rc == 0 && finished(&r))
        rc =
            agree(&r, r.rank == 0 ? ipm_output_belongs(r.plan.cfg->output, r.run_id, err) : 0, err);
    if (rc == 0 && finished(&r)) {
        if (r.rank == 0)
            printf("nothing to do: the run in %s finished at epoch %d; raise [training] epochs "
                   "to continue it\n",
                   r.plan.checkpoint, r.first_epoch - 1);
        ipm_report_flush();
        teardown(&r);
        return 0;
    }
    ipm_record_sources rec = record_sources(&r);
    if (rc == 0)
        rc = agree(&r,
                   r.rank == 0
                       ? ipm_record_open(&r.out, &rec, r.opt.restart ? r.first_epoch - 1 : -1,
                                         r.resume_records, r.run_id, OUTPUT_FLUSH_SECONDS, err)
                       : 0,
                   err);
    if (rc == 0)
        rc = epoch_loop(&r, err);
    rc = ipm_record_close(&r.out, rc, err);
    int stopped = rc == IPM_RUN_STOPPED;
    char mem_err[IPM_ERRLEN]; /* every rank comes here, whatever rc says */
    if (ipm_report_peak_memory(&r.clock, comm, mem_err))
        r.clock.peak_mb_max = r.clock.peak_mb; /* the report goes on with this rank's own */
    rc = ipm_agree(rc < 0, err, comm);
    ipm_report_sources rep = report_sources(&r);
    if (rc == 0 && !stopped && r.rank == 0)
        ipm_report_summary(&rep, r.last_epoch);
    teardown(&r);
    return rc == 0 && stopped ? IPM_RUN_STOPPED : rc;
}
