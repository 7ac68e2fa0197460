/* edges: a plane's binning edges at a logged epoch, from the data or fixed
 * (the contract is in the header). */
#include "ipmpi/app/edges.h"

#include <math.h>

#include "ipmpi/base/assert.h"
#include "ipmpi/base/error.h"
#include "ipmpi/parallel/comm.h"

void ipm_edges_fix(ipm_measure *m, const double *whole)
{
    m->whole = whole;
    if (m->per_replica)
        return; /* set per pass: the slots' replicas are known then */
    for (int l = 0; l < m->n_layers; l++)
        if (m->measured[l]) {
            m->range_lo[l] = whole[l];
            m->range_hi[l] = whole[m->n_layers + l];
            ipm_binned_set_range(&m->binned, l, 0, m->range_lo[l], m->range_hi[l]);
        }
}

int ipm_edges_from_data(const ipm_measure *m)
{
    return m->adaptive || m->width_binning || m->quantile;
}

void ipm_edges_observe(ipm_measure *m, int slot, int replica, const ipm_workspace *ws, int first,
                       int rows)
{
    double t0 = MPI_Wtime();
    IPM_ASSERT(slot >= 0 && slot < m->n_local);
    m->slot_replica[slot] = replica;
    ipm_binned_observe_range(&m->binned, slot, ws->act, first, rows);
    m->seconds_binning += MPI_Wtime() - t0;
}

/* Edge set `set` of layer from the extremes lo..hi seen: a constant layer
 * gets [v, v + 1] (width bins need no such care), a non-finite one (a
 * diverging run) [-1, 1]. */
static int set_range_from(ipm_measure *m, int layer, int set, float lo, float hi, char *err)
{
    double a = lo, b = lo < hi ? (double)hi : (double)lo + (m->width_binning ? 0.0 : 1.0);
    if (!isfinite(lo) || !isfinite(hi))
        a = -1.0, b = 1.0;
    if (m->width_binning)
        return ipm_binned_set_width_range(&m->binned, layer, m->bin_width, a, b, err);
    ipm_binned_set_range(&m->binned, layer, set, a, b);
    return 0;
}

/* scope = replica: every local replica's range is its own; the ranges
 * reach rank 0 with the estimates (ipm_merge_finish). */
static void agree_per_replica(ipm_measure *m)
{
    size_t rl = (size_t)m->n_replicas * (size_t)m->n_layers;
    IPM_ASSERT(!m->width_binning); /* set_range_from cannot fail then */
    for (int k = 0; k < m->n_local; k++)
        for (int l = 0; l < m->n_layers; l++) {
            ipm_binned_layer *L = &m->binned.layer[l];
            if (!m->measured[l])
                continue;
            set_range_from(m, l, k, L->seen_lo[k], L->seen_hi[k], NULL);
            size_t at = (size_t)m->slot_replica[k] * (size_t)m->n_layers + (size_t)l;
            m->replica_range[at] = L->lo[k];
            m->replica_range[rl + at] = L->hi[k];
        }
}

/* binning = quantile: the local slots' edges (set while observing) into
 * quantile_edges; -0.0 elsewhere, so the sum onto rank 0 keeps them exact. */
static void collect_quantile_edges(ipm_measure *m)
{
    for (size_t k = 0; k < m->n_quantile_edges; k++)
        m->quantile_edges[k] = -0.0;
    size_t n = (size_t)m->n_edges;
    for (int l = 0; l < m->n_layers; l++) {
        const ipm_binned_layer *L = &m->binned.layer[l];
        size_t sets = (size_t)L->unit_sets, room = (size_t)L->room;
        for (int k = 0; k < m->n_local && m->measured[l]; k++) {
            double *to = m->quantile_edges + m->edges_at[l] + (size_t)m->slot_replica[k] * sets * n;
            const float *from = ipm_binned_edges(&m->binned, l, k);
            for (size_t u = 0; u < sets; u++)
                for (size_t j = 0; j < n; j++)
                    to[u * n + j] = from[u * room + j];
        }
    }
}

int ipm_edges_agree(ipm_measure *m, MPI_Comm comm, char *err)
{
    if (m->quantile) {
        collect_quantile_edges(m);
        return 0;
    }
    if (m->per_replica) {
        agree_per_replica(m);
        return 0;
    }
    float seen_lo[IPM_MAX_LAYERS] = {0}, seen_hi[IPM_MAX_LAYERS] = {0};
    float lo[IPM_MAX_LAYERS], hi[IPM_MAX_LAYERS];
    int n = m->n_layers;
    for (int l = 0; l < n; l++) {
        seen_lo[l] = m->binned.layer[l].seen_lo[0];
        seen_hi[l] = m->binned.layer[l].seen_hi[0];
    }
    if (ipm_min_max_floats(seen_lo, seen_hi, lo, hi, n, comm, err))
        return -1;
    int rc = 0; /* every rank fails alike: the same ranges */
    for (int l = 0; l < n && rc == 0; l++) {
        if (!m->measured[l])
            continue;
        rc = set_range_from(m, l, 0, lo[l], hi[l], err);
        m->range_lo[l] = m->binned.layer[l].lo[0];
        m->range_hi[l] = m->binned.layer[l].hi[0];
    }
    return rc;
}
