/* record: the run's NetCDF file as the run sees it (rank 0 only). Opening
 * builds the output's description from the plan and the measures: a new
 * run creates the file, a restart reopens it after the checkpoint's
 * records. Each logged epoch becomes one record of losses, accuracies and
 * every measured plane's estimates (with the adaptive ranges and, at a
 * stopping check, J). */
#ifndef IPMPI_APP_RECORD_H
#define IPMPI_APP_RECORD_H

#include "ipmpi/app/ensemble.h"
#include "ipmpi/app/measure.h"
#include "ipmpi/app/plan.h"
#include "ipmpi/info/stopping.h"
#include "ipmpi/io/output.h"

/* Everything a record is made of. */
typedef struct ipm_record_sources {
    const ipm_plan *plan;
    const ipm_ensemble *ensemble;
    const ipm_measure *plane; /* IPM_N_PLANES, valid where plan->measured */
    const ipm_stop_monitor *stop;
} ipm_record_sources;

/* Rank 0: creates the file with run_id (resumed_after < 0), or, for a
 * restart from the checkpoint of epoch resumed_after, reopens it at
 * `records` records, refusing a file of another run_id, notes the restart in
 * its history and rewrites the stop epochs it may hold from after the
 * checkpoint. */
int ipm_record_open(ipm_output **out, const ipm_record_sources *src, int resumed_after,
                    long records, uint64_t run_id, double flush_seconds, char *err);

/* Rank 0: appends epoch's record. */
int ipm_record_write(ipm_output *out, const ipm_record_sources *src, int epoch, char *err);

/* Closes *out (NULL: nothing to close) on every path of a run, and sets it
 * to NULL. Returns rc, or -1 with the close's error in err when the close
 * failed and rc had not (an earlier failure's message is kept). */
int ipm_record_close(ipm_output **out, int rc, char *err);

#endif
