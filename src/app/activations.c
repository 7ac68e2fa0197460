#include "ipmpi/app/activations.h"

#include <stdlib.h>
#include <string.h>

#include "ipmpi/base/assert.h"
#include "ipmpi/base/error.h"
#include "ipmpi/parallel/comm.h"

void ipm_activation_store_init(ipm_activation_store *s, const ipm_plan *plan)
{
    memset(s, 0, sizeof *s);
    s->n_layers = plan->cfg->n_layers;
    s->n_samples = ipm_plan_measured_data(plan, IPM_PLANE_TRAIN)->n;
    s->n_local = plan->n_local;
    s->width = plan->width;
    for (int l = 0; l < s->n_layers; l++)
        s->per_replica += (size_t)s->width[l] * (size_t)s->n_samples;
}

void ipm_activation_store_free(ipm_activation_store *s)
{
    free(s->buffer);
    memset(s, 0, sizeof *s);
}

int ipm_activation_store_keep(ipm_activation_store *s, int k, const ipm_workspace *ws, int first,
                              int rows, char *err)
{
    if (!s->buffer) {
        s->buffer = malloc(s->per_replica * (size_t)s->n_local * sizeof(float));
        if (!s->buffer)
            return ipm_fail(err, "out of memory for stored activations (%zu floats)",
                            s->per_replica * (size_t)s->n_local);
    }
    IPM_ASSERT(k >= 0 && k < s->n_local && first >= 0 && rows >= 0 && first + rows <= s->n_samples);
    float *layer_start = s->buffer + s->per_replica * (size_t)k;
    for (int l = 0; l < s->n_layers; l++) {
        size_t width = (size_t)s->width[l];
        memcpy(layer_start + (size_t)first * width, ws->act[l],
               (size_t)rows * width * sizeof(float));
        layer_start += (size_t)s->n_samples * width;
    }
    return 0;
}

static int send_local(const ipm_activation_store *s, MPI_Comm comm, char *err)
{
    for (int k = 0; k < s->n_local; k++)
        if (ipm_mpi_check(MPI_Send(s->buffer + s->per_replica * (size_t)k, (int)s->per_replica,
                                   MPI_FLOAT, 0, IPM_TAG_ACTIVATIONS, comm),
                          "MPI_Send of activations", err))
            return -1;
    return 0;
}

/* One replica's layers, one after the other, into the slot. */
static int write_replica(const ipm_activation_store *s, ipm_output *out, int epoch, int rep,
                         const float *values, char *err)
{
    for (int l = 0; l < s->n_layers; l++) {
        if (ipm_output_activations(out, s->slot, epoch, rep, l, values, err))
            return -1;
        values += (size_t)s->n_samples * (size_t)s->width[l];
    }
    return 0;
}

int ipm_activation_store_write(ipm_activation_store *s, ipm_output *out, int epoch, int n_replicas,
                               MPI_Comm comm, char *err)
{
    int rank, size;
    if (ipm_comm_rank_size(comm, &rank, &size, err))
        return -1;
    if (rank != 0)
        return send_local(s, comm, err);
    float *incoming = malloc(s->per_replica * sizeof(float));
    if (!incoming)
        return ipm_fail(err, "out of memory receiving activations");
    int rc = 0;
    for (int rep = 0; rep < n_replicas; rep++) {
        const float *values = s->buffer + s->per_replica * (size_t)(rep / size);
        if (rep % size != 0) {
            int got = ipm_mpi_check(MPI_Recv(incoming, (int)s->per_replica, MPI_FLOAT, rep % size,
                                             IPM_TAG_ACTIVATIONS, comm, MPI_STATUS_IGNORE),
                                    "MPI_Recv of activations", rc ? NULL : err);
            rc = rc ? rc : got;
            values = incoming;
        }
        if (rc == 0)
            rc = write_replica(s, out, epoch, rep, values, err);
    }
    free(incoming);
    return rc;
}
