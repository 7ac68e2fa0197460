/* report: what rank 0 tells the user while the run goes on. One progress
 * line per logged epoch (mean loss and accuracy, test accuracy when there is
 * a test set, the last measured layer's point, J at a stopping check,
 * elapsed time and an ETA), the stopping rule's decisions, and at the end
 * where the time went. The time parts account for the whole wall time:
 * what no part claims is printed as "other".
 * The exchange line gives, per logged epoch, the bytes rank 0 sent and
 * received in the reduces between ranks (parallel/comm.h's ipm_traffic).
 * The ETA weights what is left by what it has cost so far: epochs left
 * times the measured training time per epoch, plus logged epochs left times
 * the measured cost of a logged epoch (forwarding, binning, merging, output,
 * waiting), so the dense early logged epochs of a log-spaced schedule do
 * not inflate it. */
#ifndef IPMPI_APP_REPORT_H
#define IPMPI_APP_REPORT_H

#include <mpi.h>

#include "ipmpi/app/ensemble.h"
#include "ipmpi/app/measure.h"
#include "ipmpi/app/plan.h"
#include "ipmpi/info/stopping.h"

/* Where rank 0's time went, in seconds. */
typedef struct ipm_clock {
    double start;                           /* MPI_Wtime() when the run began */
    double loop_start;                      /* when the epoch loop began */
    double setup, output, checkpoint, wait; /* the parts the run times itself */
    int epochs_done;                        /* epochs trained by this process */
    int logged;                             /* epochs logged by this process */
    double progress_flushed;                /* when progress lines last reached stdout */
    double peak_mb, peak_mb_max; /* peak resident memory: this rank's, the largest rank's */
} ipm_clock;

/* The parts the ensemble and the measures time, gathered for printing. */
typedef struct ipm_report_sources {
    const ipm_plan *plan;
    const ipm_ensemble *ensemble;
    const ipm_measure *plane; /* IPM_N_PLANES, valid where plan->measured */
    const ipm_stop_monitor *stop;
    const ipm_clock *clock;
} ipm_report_sources;

/* The progress line of logged epoch `epoch`; logged_left logged epochs
 * remain after it. */
void ipm_report_progress(const ipm_report_sources *src, int epoch, int logged_left);

/* Progress lines reach stdout (fully buffered, main.c) in batches, at most
 * IPM_PROGRESS_FLUSH_SECONDS apart: under mpirun every write wakes the
 * launcher's daemons, which a run logging each of 1000 short epochs paid
 * with about 6% of its wall time on two cores. Every other line is flushed as
 * it is printed (the run.c lines by ipm_report_flush), and everything
 * before an error goes to stderr. */
#define IPM_PROGRESS_FLUSH_SECONDS 0.02
void ipm_report_flush_progress(ipm_clock *clock);
void ipm_report_flush(void);

/* The stopping rule's decisions taken at epoch. */
void ipm_report_stops(const ipm_report_sources *src, int epoch);

/* Rank 0: the run stopped at epoch on signal sig with its checkpoint written
 * (the line batch scripts and tests look for). */
void ipm_report_signal_stop(int epoch, int sig, const char *checkpoint);

/* Collective: every rank's peak resident memory so far into clock (its own
 * and the largest over the ranks). */
int ipm_report_peak_memory(ipm_clock *clock, MPI_Comm comm, char *err);

/* "done: ...", "time (rank 0): ..." and "exchange (rank 0): ..." lines, the
 * peak memory, and where the output went. */
void ipm_report_summary(const ipm_report_sources *src, int trained_epochs);

#endif
