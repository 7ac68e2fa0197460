#include "ipmpi/app/measure.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ipmpi/base/error.h"
#include "ipmpi/parallel/comm.h"
#include "ipmpi/parallel/reduce.h"
#include "ipmpi/base/rng.h"

static int alloc_results(ipm_measure *m, char *err)
{
    size_t rl = (size_t)m->n_replicas * (size_t)m->n_layers, l = (size_t)m->n_layers;
    m->est.n_replicas = m->n_replicas;
    m->est.n_layers = m->n_layers;
    m->est.simple_xt = calloc(rl, sizeof(double));
    m->est.simple_ty = calloc(rl, sizeof(double));
    m->est.pooled_xt = calloc(l, sizeof(double));
    m->est.pooled_ty = calloc(l, sizeof(double));
    m->est.sampled_xt = calloc(l, sizeof(double));
    m->est.sampled_ty = calloc(l, sizeof(double));
    if (!m->est.simple_xt || !m->est.simple_ty || !m->est.pooled_xt || !m->est.pooled_ty || !m->est.sampled_xt ||
        !m->est.sampled_ty)
        return ipm_fail(err, "out of memory for the information estimates");
    return 0;
}

/* Per sample and local replica: its pattern id in every layer. */
static int alloc_ids(ipm_measure *m, char *err)
{
    size_t n = (size_t)m->data->n, local = (size_t)m->n_local;
    m->patterns = malloc(n * sizeof *m->patterns);
    m->choice = malloc(n * sizeof *m->choice);
    m->pick = malloc(n * sizeof *m->pick);
    m->ids = malloc(((size_t)m->n_layers * local * n + 1) * sizeof *m->ids);
    m->seen_replica = malloc((local + 1) * sizeof *m->seen_replica);
    m->rows = malloc((local + 1) * sizeof *m->rows);
    m->each = malloc((local + 1) * sizeof *m->each);
    m->local_slot = malloc((size_t)m->n_replicas * sizeof *m->local_slot);
    m->dict = calloc((size_t)m->n_layers, sizeof *m->dict);
    if (!m->patterns || !m->choice || !m->pick || !m->ids || !m->seen_replica || !m->rows || !m->each ||
        !m->local_slot || !m->dict)
        return ipm_fail(err, "out of memory for the pattern ids of %d samples", m->data->n);
    for (int l = 0; l < m->n_layers; l++)
        if (m->measured[l] && ipm_dict_init(&m->dict[l], n, err))
            return -1;
    return 0;
}

/* Count tables only travel between ranks; one rank counts without them. */
static int alloc_tables(ipm_measure *m, char *err)
{
    if (m->n_ranks <= 1)
        return 0;
    size_t expect = (size_t)m->data->n;
    m->pooled = calloc((size_t)m->n_layers, sizeof(ipm_layer_tables));
    m->sampled = calloc((size_t)m->n_layers, sizeof(ipm_layer_tables));
    if (!m->pooled || !m->sampled)
        return ipm_fail(err, "out of memory for the count tables");
    for (int l = 0; l < m->n_layers; l++) {
        if (!m->measured[l])
            continue;
        if ((m->estimators & IPM_EST_POOLED) && ipm_layer_tables_init(&m->pooled[l], expect, err))
            return -1;
        if ((m->estimators & IPM_EST_SAMPLED) &&
            ipm_layer_tables_init(&m->sampled[l], expect, err))
            return -1;
    }
    return 0;
}

static int alloc_counting(ipm_measure *m, char *err)
{
    const ipm_dataset *d = m->data;
    if (ipm_x_groups_init(&m->groups, d->x_id, d->n, err))
        return -1;
    return ipm_counter_init(&m->counter, d->n, m->n_local, d->n_classes, m->groups.largest, err);
}

static void set_range(ipm_measure *m, int layer, double lo, double hi)
{
    float *edges = m->edges + (size_t)layer * (size_t)m->n_edges;
    m->range_lo[layer] = lo;
    m->range_hi[layer] = hi;
    ipm_bin_edges(edges, m->n_edges, lo, hi);
    ipm_binner_init(&m->binner[layer], edges, m->n_edges);
}

int ipm_measure_init(ipm_measure *m, const ipm_config *cfg, const ipm_dataset *data, int plane,
                     const ipm_net *shape, int n_replicas, int n_local, int n_ranks, char *err)
{
    memset(m, 0, sizeof *m);
    m->data = data;
    m->plane = plane;
    m->n_layers = shape->n_layers;
    m->n_replicas = n_replicas;
    m->n_local = n_local;
    m->n_ranks = n_ranks;
    for (int l = 0; l < shape->n_layers; l++) {
        m->width[l] = shape->layer[l].out;
        m->measured[l] = ipm_config_measures_layer(cfg, l);
    }
    m->estimators = cfg->estimators;
    m->seed = cfg->seed;
    m->adaptive = cfg->range_adaptive;
    m->n_edges = cfg->bins;
    m->edges = malloc((size_t)m->n_layers * (size_t)cfg->bins * sizeof(float));
    if (!m->edges)
        return ipm_fail(err, "out of memory for %d bin edges", cfg->bins);
    for (int l = 0; l < m->n_layers; l++)
        set_range(m, l, cfg->range_lo, cfg->range_hi);
    if (ipm_data_information(data->x_id, data->y, data->n, &m->h_x, &m->h_y, &m->i_xy, err))
        return -1;
    if (alloc_results(m, err) || alloc_ids(m, err) || alloc_tables(m, err) ||
        alloc_counting(m, err))
        return -1;
    return 0;
}

static void free_tables(ipm_layer_tables *sets, int n)
{
    if (sets)
        for (int l = 0; l < n; l++)
            ipm_layer_tables_free(&sets[l]);
    free(sets);
}

void ipm_measure_free(ipm_measure *m)
{
    free_tables(m->pooled, m->n_layers);
    free_tables(m->sampled, m->n_layers);
    if (m->dict)
        for (int l = 0; l < m->n_layers; l++)
            ipm_dict_free(&m->dict[l]);
    free(m->dict);
    ipm_x_groups_free(&m->groups);
    ipm_counter_free(&m->counter);
    free(m->edges);
    free(m->patterns);
    free(m->ids);
    free(m->seen_replica);
    free(m->rows);
    free(m->each);
    free(m->local_slot);
    free(m->choice);
    free(m->pick);
    free(m->est.simple_xt);
    free(m->est.simple_ty);
    free(m->est.pooled_xt);
    free(m->est.pooled_ty);
    free(m->est.sampled_xt);
    free(m->est.sampled_ty);
    memset(m, 0, sizeof *m);
}

void ipm_measure_begin(ipm_measure *m, int epoch)
{
    size_t rl = (size_t)m->n_replicas * (size_t)m->n_layers;
    memset(m->est.simple_xt, 0, rl * sizeof(double));
    memset(m->est.simple_ty, 0, rl * sizeof(double));
    m->n_seen = 0;
    m->rows_done = 0;
    for (int l = 0; l < m->n_layers; l++) {
        m->seen_lo[l] = INFINITY;
        m->seen_hi[l] = -INFINITY;
        if (!m->measured[l])
            continue;
        ipm_dict_clear(&m->dict[l]);
        if (m->pooled && (m->estimators & IPM_EST_POOLED))
            ipm_layer_tables_clear(&m->pooled[l]);
        if (m->sampled && (m->estimators & IPM_EST_SAMPLED))
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

static int32_t *layer_ids(const ipm_measure *m, int layer, int slot)
{
    size_t n = (size_t)m->data->n;
    return m->ids + ((size_t)layer * (size_t)m->n_local + (size_t)slot) * n;
}

/* The replica measured last went through every sample (or none was begun). */
static int check_pass_complete(const ipm_measure *m, char *err)
{
    if (m->n_seen > 0 && m->rows_done < m->data->n)
        return ipm_fail(err, "measure: replica %d's pass ended after %d of %d samples",
                        m->seen_replica[m->n_seen - 1], m->rows_done, m->data->n);
    return 0;
}

int ipm_measure_replica_begin(ipm_measure *m, int replica, char *err)
{
    if (check_pass_complete(m, err))
        return -1;
    if (m->n_seen >= m->n_local)
        return ipm_fail(err, "measure: more than %d local replicas in one epoch", m->n_local);
    m->seen_replica[m->n_seen++] = replica;
    m->rows_done = 0;
    return 0;
}

/* Blocks must come in sample order: the dictionaries number patterns in
 * order of first appearance, so mapping block after block gives exactly
 * the ids one call over all samples gives. */
int ipm_measure_replica_block(ipm_measure *m, const ipm_workspace *ws, int first, int rows,
                              char *err)
{
    if (m->n_seen == 0 || first != m->rows_done || rows < 0 || rows > m->data->n - first)
        return ipm_fail(err, "measure: block of samples [%d, %d) out of order (expected %d of %d)",
                        first, first + rows, m->rows_done, m->data->n);
    double t0 = MPI_Wtime();
    int slot = m->n_seen - 1, rc = 0;
    for (int l = 0; l < m->n_layers && rc == 0; l++) {
        if (!m->measured[l])
            continue;
        ipm_binner_patterns(&m->binner[l], ws->act[l], rows, m->width[l], m->patterns);
        rc = ipm_dict_map(&m->dict[l], m->patterns, rows, layer_ids(m, l, slot) + first, err);
    }
    m->rows_done += rows;
    m->seconds_binning += MPI_Wtime() - t0;
    return rc;
}

int ipm_measure_replica(ipm_measure *m, int replica, const ipm_workspace *ws, char *err)
{
    if (ipm_measure_replica_begin(m, replica, err))
        return -1;
    return ipm_measure_replica_block(m, ws, 0, m->data->n, err);
}

/* NaN is skipped: comparisons with it are false. */
static void min_max(const float *v, size_t n, float *lo, float *hi)
{
    float a = *lo, b = *hi;
    for (size_t i = 0; i < n; i++) {
        a = v[i] < a ? v[i] : a;
        b = v[i] > b ? v[i] : b;
    }
    *lo = a;
    *hi = b;
}

void ipm_measure_observe_range(ipm_measure *m, const ipm_workspace *ws, int rows)
{
    double t0 = MPI_Wtime();
    size_t n = rows > 0 ? (size_t)rows : 0;
    for (int l = 0; l < m->n_layers; l++)
        if (m->measured[l])
            min_max(ws->act[l], n * (size_t)m->width[l], &m->seen_lo[l], &m->seen_hi[l]);
    m->seconds_binning += MPI_Wtime() - t0;
}

int ipm_measure_agree_ranges(ipm_measure *m, MPI_Comm comm, char *err)
{
    float lo[IPM_MAX_LAYERS], hi[IPM_MAX_LAYERS];
    int n = m->n_layers;
    if (MPI_Allreduce(m->seen_lo, lo, n, MPI_FLOAT, MPI_MIN, comm) != MPI_SUCCESS ||
        MPI_Allreduce(m->seen_hi, hi, n, MPI_FLOAT, MPI_MAX, comm) != MPI_SUCCESS)
        return ipm_fail(err, "MPI_Allreduce of the adaptive binning ranges failed");
    for (int l = 0; l < n; l++) {
        if (!m->measured[l])
            continue;
        if (!isfinite(lo[l]) || !isfinite(hi[l]))
            set_range(m, l, -1.0, 1.0);
        else
            set_range(m, l, lo[l], lo[l] < hi[l] ? (double)hi[l] : (double)lo[l] + 1.0);
    }
    return 0;
}

/* pick[i]: the local slot of sample i's sampled replica, -1 when remote. */
static void pick_local(ipm_measure *m)
{
    for (int r = 0; r < m->n_replicas; r++)
        m->local_slot[r] = -1;
    for (int k = 0; k < m->n_seen; k++)
        m->local_slot[m->seen_replica[k]] = k;
    for (int i = 0; i < m->data->n; i++)
        m->pick[i] = m->local_slot[m->choice[i]];
}

static void store_point(const ipm_measure *m, const ipm_entropies *h, double *i_xt,
                        double *i_ty)
{
    ipm_plane_point_from(h->t, h->xt, h->yt, m->h_x, m->h_y, i_xt, i_ty);
}

static void point_of(ipm_measure *m, const ipm_pairs *pairs, double *i_xt, double *i_ty)
{
    ipm_entropies h;
    ipm_count_entropies(&m->counter, pairs, &m->groups, m->data->y, &h);
    store_point(m, &h, i_xt, i_ty);
}

/* Simple estimates of every local replica and, on one rank, the pooled one
 * in the same counting pass. */
static void count_simple(ipm_measure *m, int layer, const ipm_pairs *all)
{
    int pooled_here = m->n_ranks <= 1 && (m->estimators & IPM_EST_POOLED);
    ipm_entropies pooled;
    ipm_count_replicas(&m->counter, all, &m->groups, m->data->y, m->each,
                       pooled_here ? &pooled : NULL);
    for (int k = 0; k < m->n_seen; k++) {
        size_t at = (size_t)m->seen_replica[k] * (size_t)m->n_layers + (size_t)layer;
        store_point(m, &m->each[k], &m->est.simple_xt[at], &m->est.simple_ty[at]);
    }
    if (pooled_here)
        store_point(m, &pooled, &m->est.pooled_xt[layer], &m->est.pooled_ty[layer]);
}

static int export_pairs(ipm_measure *m, int layer, const ipm_pairs *pairs, ipm_layer_tables *lt,
                        char *err)
{
    return ipm_count_export(&m->counter, pairs, &m->groups, m->data->y, m->dict[layer].key,
                            &lt->t, &lt->xt, &lt->yt, err);
}

/* Simple estimates of every local replica; with one rank also the extended
 * ones, else the extended counts go into the tables for the merge. */
static int count_layer(ipm_measure *m, int layer, char *err)
{
    const int32_t **ids = m->rows;
    for (int k = 0; k < m->n_seen; k++)
        ids[k] = layer_ids(m, layer, k);
    ipm_pairs all = {ids, m->n_seen, NULL}, sampled = {ids, m->n_seen, m->pick};
    int one_rank = m->n_ranks <= 1;
    if (m->estimators & IPM_EST_SIMPLE)
        count_simple(m, layer, &all);
    if (m->estimators & IPM_EST_POOLED) {
        if (one_rank && !(m->estimators & IPM_EST_SIMPLE))
            point_of(m, &all, &m->est.pooled_xt[layer], &m->est.pooled_ty[layer]);
        else if (!one_rank && export_pairs(m, layer, &all, &m->pooled[layer], err))
            return -1;
    }
    if (m->estimators & IPM_EST_SAMPLED) {
        if (one_rank)
            point_of(m, &sampled, &m->est.sampled_xt[layer], &m->est.sampled_ty[layer]);
        else if (export_pairs(m, layer, &sampled, &m->sampled[layer], err))
            return -1;
    }
    return 0;
}

static int count_all(ipm_measure *m, char *err)
{
    size_t most = 0;
    for (int l = 0; l < m->n_layers; l++)
        most = m->measured[l] && m->dict[l].len > most ? m->dict[l].len : most;
    if (ipm_counter_reserve(&m->counter, most, err))
        return -1;
    if (m->estimators & IPM_EST_SAMPLED)
        pick_local(m);
    for (int l = 0; l < m->n_layers; l++)
        if (m->measured[l] && count_layer(m, l, err))
            return -1;
    return 0;
}

/* The extended tables of every layer, in one list for a single tree merge. */
static int collect_tables(ipm_measure *m, ipm_table **list)
{
    int n = 0;
    for (int l = 0; l < m->n_layers; l++) {
        if (!m->measured[l])
            continue;
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

/* Each slot is written by exactly one rank and is 0.0 elsewhere, so the
 * sum is exact whatever the reduction order. */
static int reduce_simple(ipm_measure *m, MPI_Comm comm, char *err)
{
    int rl = m->n_replicas * m->n_layers;
    return ipm_sum_to_root(m->est.simple_xt, rl, comm, err) ||
                   ipm_sum_to_root(m->est.simple_ty, rl, comm, err)
               ? -1
               : 0;
}

/* Every rank takes part in the merge even after a local failure, so none
 * waits forever; all then learn the outcome. */
static int merge_extended(ipm_measure *m, MPI_Comm comm, int rank, int counted, char *err)
{
    if (!ipm_all_ok(counted == 0, comm))
        return counted ? -1 : ipm_fail(err, "counting failed on another rank");
    ipm_table *list[6 * IPM_MAX_LAYERS];
    int n = collect_tables(m, list);
    if (n > 0 && ipm_reduce_tables(list, n, comm, err))
        return -1;
    if (rank == 0)
        for (int l = 0; l < m->n_layers; l++) {
            if (!m->measured[l])
                continue;
            if (m->estimators & IPM_EST_POOLED)
                ipm_plane_point(&m->pooled[l], m->h_x, m->h_y, &m->est.pooled_xt[l], &m->est.pooled_ty[l]);
            if (m->estimators & IPM_EST_SAMPLED)
                ipm_plane_point(&m->sampled[l], m->h_x, m->h_y, &m->est.sampled_xt[l],
                                &m->est.sampled_ty[l]);
        }
    return 0;
}

int ipm_measure_finish(ipm_measure *m, MPI_Comm comm, char *err)
{
    double t0 = MPI_Wtime();
    int rank, size;
    MPI_Comm_rank(comm, &rank);
    MPI_Comm_size(comm, &size);
    int counted = check_pass_complete(m, err) ? -1 : count_all(m, err);
    double t1 = MPI_Wtime();
    m->seconds_binning += t1 - t0;
    if ((size > 1) != (m->n_ranks > 1))
        return ipm_fail(err, "measure: prepared for %d ranks, finishing on %d", m->n_ranks,
                        size);
    int rc = counted;
    if ((m->estimators & IPM_EST_SIMPLE) && reduce_simple(m, comm, err))
        rc = -1;
    if (m->n_ranks > 1 && (m->estimators & (IPM_EST_POOLED | IPM_EST_SAMPLED)) &&
        merge_extended(m, comm, rank, counted, err))
        rc = -1;
    m->seconds_merge += MPI_Wtime() - t1;
    return rc;
}
