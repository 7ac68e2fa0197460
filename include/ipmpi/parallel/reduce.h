/* reduce: the MPI side of the estimators.
 * Tables are merged onto rank 0 along a binomial tree (ceil(log2 P) rounds;
 * in round k a rank whose lowest set bit is k sends everything it holds to
 * rank - 2^k), one message per edge carrying all tables. A rank that fails
 * (e.g. cannot allocate) still takes part, flagging the message, so no rank
 * waits forever; every rank then learns the outcome. */
#ifndef IPMPI_REDUCE_H
#define IPMPI_REDUCE_H

#include <mpi.h>

#include "ipmpi/info/table.h"
#include "ipmpi/parallel/comm.h"

/* Merges tables[0..n) of every rank into rank 0's; other ranks' tables are
 * left cleared. Collective; returns -1 on every rank if any rank failed.
 * The bytes of the headers and entries are added to traffic (may be NULL). */
int ipm_reduce_tables(ipm_table *const *tables, int n_tables, MPI_Comm comm, ipm_traffic *traffic,
                      char *err);

#endif
