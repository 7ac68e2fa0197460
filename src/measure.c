#include "ipmpi/measure.h"

#include <stdlib.h>
#include <string.h>

#include "ipmpi/error.h"
#include "ipmpi/reduce.h"
#include "ipmpi/rng.h"

static int alloc_results(ipm_measure *m, char *err)
{
    size_t rl = (size_t)m->n_replicas * (size_t)m->n_layers, l = (size_t)m->n_layers;
    m->simple_xt = calloc(rl, sizeof(double));
    m->simple_ty = calloc(rl, sizeof(double));
    m->pooled_xt = calloc(l, sizeof(double));
    m->pooled_ty = calloc(l, sizeof(double));
    m->sampled_xt = calloc(l, sizeof(double));
    m->sampled_ty = calloc(l, sizeof(double));
    if (!m->simple_xt || !m->simple_ty || !m->pooled_xt || !m->pooled_ty || !m->sampled_xt ||
        !m->sampled_ty)
        return ipm_fail(err, "out of memory for the information estimates");
    return 0;
}

/* Tables start sized for one replica's distinct keys; they grow as needed. */
static int alloc_tables(ipm_measure *m, char *err)
{
    size_t expect = (size_t)m->data->n;
    if (ipm_layer_tables_init(&m->simple, expect, err))
        return -1;
    m->pooled = calloc((size_t)m->n_layers, sizeof(ipm_layer_tables));
    m->sampled = calloc((size_t)m->n_layers, sizeof(ipm_layer_tables));
    if (!m->pooled || !m->sampled)
        return ipm_fail(err, "out of memory for the count tables");
    for (int l = 0; l < m->n_layers; l++) {
        if ((m->estimators & IPM_EST_POOLED) && ipm_layer_tables_init(&m->pooled[l], expect, err))
            return -1;
        if ((m->estimators & IPM_EST_SAMPLED) &&
            ipm_layer_tables_init(&m->sampled[l], expect, err))
            return -1;
    }
    return 0;
}

int ipm_measure_init(ipm_measure *m, const ipm_config *cfg, const ipm_dataset *data, int plane,
                     const ipm_net *shape, int n_replicas, char *err)
{
    memset(m, 0, sizeof *m);
    m->data = data;
    m->plane = plane;
    m->n_layers = shape->n_layers;
    m->n_replicas = n_replicas;
    for (int l = 0; l < shape->n_layers; l++)
        m->width[l] = shape->layer[l].out;
    m->estimators = cfg->estimators;
    m->seed = cfg->seed;
    m->n_edges = cfg->bins;
    m->edges = malloc((size_t)cfg->bins * sizeof(float));
    m->patterns = malloc((size_t)data->n * sizeof(ipm_pattern));
    m->choice = malloc((size_t)data->n * sizeof(uint32_t));
    m->keep = malloc((size_t)data->n);
    if (!m->edges || !m->patterns || !m->choice || !m->keep)
        return ipm_fail(err, "out of memory for binning %d samples", data->n);
    ipm_bin_edges(m->edges, cfg->bins, cfg->range_lo, cfg->range_hi);
    if (ipm_data_information(data->x_id, data->y, data->n, &m->h_x, &m->h_y, &m->i_xy, err))
        return -1;
    if (alloc_results(m, err) || alloc_tables(m, err))
        return -1;
    return 0;
}

void ipm_measure_free(ipm_measure *m)
{
    if (m->pooled)
        for (int l = 0; l < m->n_layers; l++)
            ipm_layer_tables_free(&m->pooled[l]);
    if (m->sampled)
        for (int l = 0; l < m->n_layers; l++)
            ipm_layer_tables_free(&m->sampled[l]);
    ipm_layer_tables_free(&m->simple);
    free(m->pooled);
    free(m->sampled);
    free(m->edges);
    free(m->patterns);
    free(m->choice);
    free(m->keep);
    free(m->simple_xt);
    free(m->simple_ty);
    free(m->pooled_xt);
    free(m->pooled_ty);
    free(m->sampled_xt);
    free(m->sampled_ty);
    memset(m, 0, sizeof *m);
}

void ipm_measure_begin(ipm_measure *m, int epoch)
{
    size_t rl = (size_t)m->n_replicas * (size_t)m->n_layers;
    memset(m->simple_xt, 0, rl * sizeof(double));
    memset(m->simple_ty, 0, rl * sizeof(double));
    for (int l = 0; l < m->n_layers; l++) {
        if (m->estimators & IPM_EST_POOLED)
            ipm_layer_tables_clear(&m->pooled[l]);
        if (m->estimators & IPM_EST_SAMPLED)
            ipm_layer_tables_clear(&m->sampled[l]);
    }
    if (!(m->estimators & IPM_EST_SAMPLED))
        return;
    /* Lemire's multiply-shift: bias below R / 2^32, far under sampling noise. */
    for (int i = 0; i < m->data->n; i++) {
        uint64_t index = (uint64_t)(uint32_t)i | ((uint64_t)m->plane << 32);
        uint32_t u = ipm_rng_at(m->seed, (uint32_t)epoch, IPM_RNG_SAMPLED, index);
        m->choice[i] = (uint32_t)(((uint64_t)u * (uint64_t)m->n_replicas) >> 32);
    }
}

static int measure_layer(ipm_measure *m, int replica, int layer, const float *act, char *err)
{
    const ipm_dataset *d = m->data;
    ipm_patterns(act, d->n, m->width[layer], m->edges, m->n_edges, m->patterns);
    if (m->estimators & IPM_EST_SIMPLE) {
        size_t at = (size_t)replica * (size_t)m->n_layers + (size_t)layer;
        ipm_layer_tables_clear(&m->simple);
        if (ipm_layer_tables_add(&m->simple, m->patterns, d->x_id, d->y, d->n, NULL, err))
            return -1;
        ipm_plane_point(&m->simple, m->h_x, m->h_y, &m->simple_xt[at], &m->simple_ty[at]);
    }
    if ((m->estimators & IPM_EST_POOLED) &&
        ipm_layer_tables_add(&m->pooled[layer], m->patterns, d->x_id, d->y, d->n, NULL, err))
        return -1;
    if ((m->estimators & IPM_EST_SAMPLED) &&
        ipm_layer_tables_add(&m->sampled[layer], m->patterns, d->x_id, d->y, d->n, m->keep, err))
        return -1;
    return 0;
}

int ipm_measure_replica(ipm_measure *m, int replica, const ipm_workspace *ws, char *err)
{
    double t0 = MPI_Wtime();
    if (m->estimators & IPM_EST_SAMPLED)
        for (int i = 0; i < m->data->n; i++)
            m->keep[i] = m->choice[i] == (uint32_t)replica;
    int rc = 0;
    for (int l = 0; l < m->n_layers && rc == 0; l++)
        rc = measure_layer(m, replica, l, ws->act[l], err);
    m->seconds_binning += MPI_Wtime() - t0;
    return rc;
}

/* The extended tables of every layer, in one list for a single tree merge. */
static int collect_tables(ipm_measure *m, ipm_table **list)
{
    int n = 0;
    for (int l = 0; l < m->n_layers; l++) {
        ipm_layer_tables *sets[2] = {
            (m->estimators & IPM_EST_POOLED) ? &m->pooled[l] : NULL,
            (m->estimators & IPM_EST_SAMPLED) ? &m->sampled[l] : NULL,
        };
        for (int s = 0; s < 2; s++) {
            if (!sets[s])
                continue;
            list[n++] = &sets[s]->t;
            list[n++] = &sets[s]->xt;
            list[n++] = &sets[s]->yt;
        }
    }
    return n;
}

static int reduce_simple(ipm_measure *m, MPI_Comm comm, int rank)
{
    /* Each slot is written by exactly one rank and is 0.0 elsewhere, so the
     * sum is exact whatever the reduction order. */
    int rl = m->n_replicas * m->n_layers;
    double *vals[2] = {m->simple_xt, m->simple_ty};
    for (int k = 0; k < 2; k++) {
        void *send = rank == 0 ? MPI_IN_PLACE : (void *)vals[k];
        if (MPI_Reduce(send, vals[k], rl, MPI_DOUBLE, MPI_SUM, 0, comm) != MPI_SUCCESS)
            return -1;
    }
    return 0;
}

int ipm_measure_finish(ipm_measure *m, MPI_Comm comm, char *err)
{
    double t0 = MPI_Wtime();
    int rank;
    MPI_Comm_rank(comm, &rank);
    if ((m->estimators & IPM_EST_SIMPLE) && reduce_simple(m, comm, rank))
        return ipm_fail(err, "MPI_Reduce of the simple estimates failed");
    ipm_table *list[6 * IPM_MAX_LAYERS];
    int n = collect_tables(m, list);
    if (n > 0 && ipm_reduce_tables(list, n, comm, err))
        return -1;
    if (rank == 0)
        for (int l = 0; l < m->n_layers; l++) {
            if (m->estimators & IPM_EST_POOLED)
                ipm_plane_point(&m->pooled[l], m->h_x, m->h_y, &m->pooled_xt[l], &m->pooled_ty[l]);
            if (m->estimators & IPM_EST_SAMPLED)
                ipm_plane_point(&m->sampled[l], m->h_x, m->h_y, &m->sampled_xt[l],
                                &m->sampled_ty[l]);
        }
    m->seconds_merge += MPI_Wtime() - t0;
    return 0;
}
