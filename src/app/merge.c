/* merge: the reduce of one plane's counts between ranks, and rank 0's
 * points of the merged counts. */
#include "ipmpi/app/merge.h"

#include "ipmpi/app/points.h"
#include "ipmpi/app/test_hooks.h"
#include "ipmpi/base/assert.h"
#include "ipmpi/base/error.h"
#include "ipmpi/info/miller_madow.h"
#include "ipmpi/parallel/partition.h"
#include "ipmpi/parallel/reduce.h"

/* Each slot is written by exactly one rank and is 0.0 elsewhere, so the
 * sum is exact whatever the reduction order. simple_ty follows simple_xt,
 * and the Miller-Madow values follow them. */
static int simple_values(const ipm_measure *m)
{
    int arrays = (m->estimators & IPM_EST_MILLER_MADOW) ? 4 : 2;
    return arrays * m->n_replicas * m->n_layers;
}

static int reduce_simple(ipm_measure *m, MPI_Comm comm, char *err)
{
    return ipm_sum_to_root(m->est.simple_xt, simple_values(m), comm, &m->traffic, err);
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

/* The ranks first agree that every one counted (a failure's message is
 * then the first failing rank's, on every rank), so none waits forever in
 * the merge. */
static int reduce_tree(ipm_measure *m, MPI_Comm comm, int rank, int counted, char *err)
{
    double t0 = MPI_Wtime();
    int all_counted = ipm_agree(counted, err, comm) == 0;
    m->seconds_wait += MPI_Wtime() - t0;
    if (!all_counted)
        return -1;
    ipm_table *list[6 * IPM_MAX_LAYERS];
    int n = collect_tables(m, list);
    if (n > 0 && ipm_reduce_tables(list, n, comm, &m->traffic, err))
        return -1;
    if (rank != 0)
        return 0;
    for (int l = 0; l < m->n_layers; l++) {
        if (!m->measured[l])
            continue;
        if (m->estimators & IPM_EST_POOLED)
            ipm_points_from_tables(&m->terms, &m->pooled[l], ipm_points_pooled(&m->est, l));
        if (m->estimators & IPM_EST_SAMPLED)
            ipm_points_from_tables(&m->terms, &m->sampled[l], ipm_points_sampled(&m->est, l));
    }
    return 0;
}

/* Rank 0: the plane points from the summed histograms. */
static void points_from_hists(ipm_measure *m)
{
    static const unsigned bit[IPM_PART_ESTIMATORS] = {IPM_EST_POOLED, IPM_EST_SAMPLED};
    for (int l = 0; l < m->n_layers; l++)
        for (int e = 0; e < IPM_PART_ESTIMATORS; e++) {
            if (!m->measured[l] || !(m->estimators & bit[e]))
                continue;
            const ipm_hist *h =
                m->hists + (size_t)l * IPM_HISTS_PER_LAYER + (size_t)e * IPM_HISTS_PER_ESTIMATOR;
            IPM_ASSERT(ipm_hist_total(&h[IPM_HIST_T]) == ipm_hist_total(&h[IPM_HIST_YT]));
            ipm_entropies sums = {.cells_t = ipm_mm_hist_cells(&h[IPM_HIST_T]),
                                  .cells_xt = ipm_mm_hist_cells(&h[IPM_HIST_XT]),
                                  .cells_yt = ipm_mm_hist_cells(&h[IPM_HIST_YT]),
                                  .total = ipm_hist_total(&h[IPM_HIST_T])};
            ipm_hists_entropies(h, &sums.t, &sums.xt, &sums.yt);
            ipm_points_store(&m->terms, &sums,
                             e == 0 ? ipm_points_pooled(&m->est, l)
                                    : ipm_points_sampled(&m->est, l));
        }
}

/* The simple estimates ride on the histograms' tree (each slot filled by
 * one rank, so the sums are exact), one collective fewer. */
static int reduce_partitioned(ipm_measure *m, MPI_Comm comm, int rank, int counted, char *err)
{
    size_t n = (size_t)m->n_layers * IPM_HISTS_PER_LAYER;
    for (size_t k = 0; k < n; k++)
        ipm_hist_clear(&m->hists[k]);
    int simple = (m->estimators & IPM_EST_SIMPLE) != 0;
    if (ipm_partition_exchange(&m->part, &m->binned, counted != 0, m->hists,
                               simple ? m->est.simple_xt : NULL, simple_values(m), &m->traffic,
                               &m->seconds_wait, comm, err))
        return -1;
    if (rank == 0)
        points_from_hists(m);
    return 0;
}

/* Every step runs on every rank whatever failed before, so none waits
 * forever; a rank's own first failure keeps its message. */
static int merge_plane(ipm_measure *m, MPI_Comm comm, int rank, int counted, char *err)
{
    int rc = counted, partitioned = ipm_measure_partitions(m);
    if (ipm_measure_merges(m)) {
        int reduced = partitioned ? reduce_partitioned(m, comm, rank, counted, err)
                                  : reduce_tree(m, comm, rank, counted, err);
        rc = reduced ? -1 : rc;
    }
    if ((m->estimators & IPM_EST_SIMPLE) && !partitioned && reduce_simple(m, comm, err))
        rc = -1;
    if (m->per_replica &&
        ipm_sum_to_root(m->replica_range, 2 * m->n_replicas * m->n_layers, comm, &m->traffic, err))
        rc = -1;
    if (m->n_quantile_edges &&
        ipm_sum_to_root(m->quantile_edges, (int)m->n_quantile_edges, comm, &m->traffic, err))
        rc = -1;
    return rc;
}

int ipm_merge_finish(ipm_measure *m, MPI_Comm comm, char *err)
{
    int rank, size;
    if (ipm_comm_rank_size(comm, &rank, &size, err))
        return -1;
    int counted = ipm_measure_count(m, err);
    if (counted == 0)
        counted = ipm_test_fault("count", rank, -1, err);
    if (size != m->n_ranks)
        return ipm_fail(err, "measure: prepared for %d ranks, finishing on %d", m->n_ranks, size);
    double t0 = MPI_Wtime(), waited = m->seconds_wait;
    int rc = merge_plane(m, comm, rank, counted, err);
    m->seconds_exchange += MPI_Wtime() - t0 - (m->seconds_wait - waited);
    return ipm_measure_kde(m, comm, rc != 0, err) || rc ? -1 : 0;
}
