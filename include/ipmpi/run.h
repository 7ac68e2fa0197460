/* run: the whole ensemble run on a communicator, from a loaded config to a
 * closed NetCDF file. Collective: every rank calls it and every rank returns
 * the same status; on failure err holds the same message on every rank
 * (the first failing rank's), so rank 0 alone prints it. Rank 0 writes the
 * output and one progress line per logged epoch to stdout. */
#ifndef IPMPI_RUN_H
#define IPMPI_RUN_H

#include <mpi.h>

#include "ipmpi/config.h"

#define IPMPI_VERSION "0.1.0"

int ipm_run(const ipm_config *cfg, MPI_Comm comm, char *err);

/* Collective: if any rank's rc is non-zero, copies the lowest failing rank's
 * err to every rank and returns -1 everywhere. */
int ipm_agree(int rc, char *err, MPI_Comm comm);

#endif
