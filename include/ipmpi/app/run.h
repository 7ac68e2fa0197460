/* run: the whole ensemble run on a communicator, from a loaded config to a
 * closed NetCDF file. Collective: every rank calls it and every rank returns
 * the same status; on failure err holds the same message on every rank
 * (the first failing rank's), so rank 0 alone prints it. Rank 0 writes the
 * output and one progress line per logged epoch to stdout, and says when it
 * resumes or stops early. */
#ifndef IPMPI_RUN_H
#define IPMPI_RUN_H

#include <mpi.h>
#include <signal.h>

#include "ipmpi/io/config.h"

typedef struct ipm_run_options {
    int restart;                       /* continue from the config's checkpoint */
    int overwrite;                     /* a fresh start may replace existing files */
    const volatile sig_atomic_t *stop; /* not NULL: a signal number set by a handler */
} ipm_run_options;

/* Returned when a signal stopped the run: the checkpoint is written. */
#define IPM_RUN_STOPPED 1

/* 0 done, IPM_RUN_STOPPED, or -1 failed (err's kind says how: a config or
 * data error found at setup is IPM_ERR_INPUT, as under --check). The ranks agree at every epoch
 * boundary whether any saw *opt->stop set; if so they write the checkpoint
 * and stop. Checkpoints are also written every [run] checkpoint_every epochs
 * and at the end. opt may be NULL (no restart, no signals). */
int ipm_run(const ipm_config *cfg, const ipm_run_options *opt, MPI_Comm comm, char *err);

#endif
