/* measure: one plane's information estimates at one logged epoch.
 * A plane is a data set (train or test). For every local replica the driver
 * forwards all samples and hands the workspace here; each layer is binned,
 * its simple estimate computed on the spot, and its pairs added to the
 * pooled and sampled tables. ipm_measure_finish merges everything onto
 * rank 0 (binomial tree for tables, a sum-reduce of per-replica values that
 * exactly one rank fills) and computes the extended estimates there.
 * The sampled estimator keeps sample i from replica
 * floor(u * R / 2^32), u = Philox(seed; i | plane << 32, epoch, SAMPLED). */
#ifndef IPMPI_MEASURE_H
#define IPMPI_MEASURE_H

#include <mpi.h>
#include <stdint.h>

#include "ipmpi/config.h"
#include "ipmpi/dataset.h"
#include "ipmpi/mi.h"
#include "ipmpi/net.h"

typedef struct ipm_measure {
    const ipm_dataset *data;
    int plane;                      /* 0 train, 1 test */
    int n_layers, n_replicas;
    int width[IPM_MAX_LAYERS];
    unsigned estimators;
    uint64_t seed;
    float *edges;
    int n_edges;
    double h_x, h_y, i_xy;          /* of the data set */
    ipm_pattern *patterns;          /* data->n */
    uint32_t *choice;               /* data->n: sampled replica per sample */
    uint8_t *keep;                  /* data->n */
    ipm_layer_tables simple;        /* reused for each replica and layer */
    ipm_layer_tables *pooled, *sampled; /* n_layers each */
    /* Results; complete on rank 0 after ipm_measure_finish. */
    double *simple_xt, *simple_ty;  /* n_replicas x n_layers */
    double *pooled_xt, *pooled_ty, *sampled_xt, *sampled_ty; /* n_layers */
    double seconds_binning, seconds_merge; /* accumulated */
} ipm_measure;

int ipm_measure_init(ipm_measure *m, const ipm_config *cfg, const ipm_dataset *data, int plane,
                     const ipm_net *shape, int n_replicas, char *err);
void ipm_measure_free(ipm_measure *m);

/* Clears the tables and draws the sampled estimator's replicas for epoch. */
void ipm_measure_begin(ipm_measure *m, int epoch);

/* ws holds replica's forward pass over every sample of the plane. */
int ipm_measure_replica(ipm_measure *m, int replica, const ipm_workspace *ws, char *err);

/* Collective: merges onto rank 0 and computes pooled and sampled there. */
int ipm_measure_finish(ipm_measure *m, MPI_Comm comm, char *err);

#endif
