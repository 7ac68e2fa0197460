/* activations: [output] activations, every layer's raw values of every
 * replica at the chosen epochs. During a logged epoch each rank keeps its
 * local replicas' training-set activations, block by block, until every
 * rank knows the epoch went well; then rank 0 writes every replica's in
 * replica order while the others send theirs (one message per replica;
 * MPI keeps each sender's messages in order). */
#ifndef IPMPI_APP_ACTIVATIONS_H
#define IPMPI_APP_ACTIVATIONS_H

#include <mpi.h>
#include <stddef.h>

#include "ipmpi/app/plan.h"
#include "ipmpi/io/output.h"
#include "ipmpi/learn/net.h"

typedef struct ipm_activation_store {
    int n_layers, n_samples, n_local;
    const int *width;   /* n_layers */
    size_t per_replica; /* floats: every layer's n_samples x width in turn */
    float *buffer;      /* n_local x per_replica, allocated at first use */
    int slot;           /* the activation_epoch record written next; the run
                           advances it once every rank has written */
} ipm_activation_store;

void ipm_activation_store_init(ipm_activation_store *s, const ipm_plan *plan);
void ipm_activation_store_free(ipm_activation_store *s);

/* Keeps local replica k's activations of training samples [first, first +
 * rows), held in ws's first rows rows. */
int ipm_activation_store_keep(ipm_activation_store *s, int k, const ipm_workspace *ws, int first,
                              int rows, char *err);

/* Collective: rank 0 writes every replica's kept activations into out at
 * the next slot, for epoch. Rank 0 keeps receiving after a write error so
 * that no sender is left blocked. */
int ipm_activation_store_write(ipm_activation_store *s, ipm_output *out, int epoch, int n_replicas,
                               MPI_Comm comm, char *err);

#endif
