/* measure: the orchestration of one plane's estimates: binning (info/binned),
 * local counting (info/count), the merge between ranks (app/merge.h) and
 * the KDE bounds, timed for the report. */
#include "ipmpi/app/measure.h"

#include <stdlib.h>
#include <string.h>

#include "ipmpi/base/assert.h"
#include "ipmpi/base/error.h"
#include "ipmpi/info/miller_madow.h"
#include "ipmpi/parallel/kde.h"

#define EXTENDED (IPM_EST_POOLED | IPM_EST_SAMPLED)

static int alloc_results(ipm_measure *m, char *err)
{
    size_t rl = (size_t)m->n_replicas * (size_t)m->n_layers, l = (size_t)m->n_layers;
    m->est.n_replicas = m->n_replicas;
    m->est.n_layers = m->n_layers;
    /* simple_ty, simple_xt_mm and simple_ty_mm follow simple_xt: one reduce */
    m->est.simple_xt = calloc(4 * rl + 1, sizeof(double));
    m->est.simple_ty = m->est.simple_xt + rl;
    m->est.simple_xt_mm = m->est.simple_xt + 2 * rl;
    m->est.simple_ty_mm = m->est.simple_xt + 3 * rl;
    m->est.pooled_xt = calloc(l, sizeof(double));
    m->est.pooled_ty = calloc(l, sizeof(double));
    m->est.sampled_xt = calloc(l, sizeof(double));
    m->est.sampled_ty = calloc(l, sizeof(double));
    m->replica_range = calloc(2 * rl + 1, sizeof(double)); /* hi follows lo: one reduce */
    m->slot_replica = calloc((size_t)m->n_local + 1, sizeof(int));
    /* the extended Miller-Madow values and the KDE ones, in one block */
    double *more = calloc((4 + IPM_KDE_N_VALUES) * l, sizeof(double));
    if (!m->replica_range || !m->slot_replica || !m->est.simple_xt || !m->est.pooled_xt ||
        !m->est.pooled_ty || !m->est.sampled_xt || !m->est.sampled_ty || !more) {
        free(more);
        return ipm_fail(err, "out of memory for the information estimates");
    }
    double **slot[4] = {&m->est.pooled_xt_mm, &m->est.pooled_ty_mm, &m->est.sampled_xt_mm,
                        &m->est.sampled_ty_mm};
    for (size_t k = 0; k < 4; k++)
        *slot[k] = more + k * l;
    for (size_t k = 0; k < IPM_KDE_N_VALUES; k++)
        m->est.kde[k] = more + (4 + k) * l;
    return 0;
}

double ipm_measure_kde_bytes(int n, int n_local, const int *width, const int *measured,
                             int n_layers)
{
    double floats = 0;
    for (int l = 0; l < n_layers; l++)
        floats += measured[l] ? (double)width[l] * n : 0;
    return 4.0 * floats * n_local;
}

/* kde: room for the local replicas' activations of every measured layer. */
static int alloc_kde(ipm_measure *m, char *err)
{
    for (int l = 0; l < m->n_layers; l++) {
        m->kde_offset[l] = m->kde_per_replica;
        if (m->measured[l])
            m->kde_per_replica += (size_t)m->width[l] * (size_t)m->data->n;
    }
    size_t floats = m->kde_per_replica * (size_t)m->n_local;
    m->kde_acts = calloc(floats + 1, sizeof(float));
    m->kde_slots = malloc(((size_t)m->n_local + 1) * sizeof *m->kde_slots);
    if (!m->kde_acts || !m->kde_slots)
        return ipm_fail(err, "out of memory keeping %zu activations for the kde estimator", floats);
    return 0;
}

/* The extended counts travel between ranks only with more than one. */
int ipm_measure_merges(const ipm_measure *m)
{
    return m->n_ranks > 1 && (m->estimators & EXTENDED);
}

int ipm_measure_partitions(const ipm_measure *m)
{
    return ipm_measure_merges(m) && m->reduce == IPM_REDUCE_PARTITIONED;
}

static int alloc_tree(ipm_measure *m, char *err)
{
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
        if ((m->estimators & IPM_EST_SAMPLED) && ipm_layer_tables_init(&m->sampled[l], expect, err))
            return -1;
    }
    return 0;
}

static int alloc_partition(ipm_measure *m, const ipm_config *cfg, int rank, char *err)
{
    const ipm_dataset *d = m->data;
    ipm_partition_spec spec = {
        .part = rank,
        .n_parts = m->n_ranks,
        .n_replicas = m->n_replicas,
        .n_layers = m->n_layers,
        .n_classes = d->n_classes,
        .n_edges = m->width_binning ? IPM_MAX_EDGES : cfg->bins, /* bounds the pattern bits */
        .width = m->width,
        .measured = m->measured,
        .pooled = (m->estimators & IPM_EST_POOLED) != 0,
        .sampled = (m->estimators & IPM_EST_SAMPLED) != 0,
        .x_id = d->x_id,
        .n = d->n};
    if (ipm_partition_init(&m->part, &spec, err))
        return -1;
    size_t n = (size_t)m->n_layers * IPM_HISTS_PER_LAYER;
    m->hists = malloc(n * sizeof *m->hists);
    if (!m->hists)
        return ipm_fail(err, "out of memory for the count histograms");
    for (size_t k = 0; k < n; k++)
        ipm_hist_init(&m->hists[k]);
    return 0;
}

static int alloc_counting(ipm_measure *m, char *err)
{
    const ipm_dataset *d = m->data;
    size_t local = (size_t)m->n_local;
    m->rows = malloc((local + 1) * sizeof *m->rows);
    m->each = malloc((local + 1) * sizeof *m->each);
    if (!m->rows || !m->each)
        return ipm_fail(err, "out of memory for counting %d local replicas", m->n_local);
    if (ipm_x_groups_init(&m->groups, d->x_id, d->n, err))
        return -1;
    return ipm_counter_init(&m->counter, d->n, m->n_local, d->n_classes, m->groups.largest, err);
}

static int init_binned(ipm_measure *m, const ipm_config *cfg, char *err)
{
    ipm_binned_spec spec = {.n_samples = m->data->n,
                            .n_layers = m->n_layers,
                            .width = m->width,
                            .measured = m->measured,
                            .n_edges = cfg->bins,
                            .lo = cfg->range_lo,
                            .hi = cfg->range_hi,
                            .n_replicas = m->n_replicas,
                            .n_local = m->n_local,
                            .seed = cfg->seed,
                            .plane = m->plane,
                            .sampled = (cfg->estimators & IPM_EST_SAMPLED) != 0,
                            .per_replica = m->per_replica,
                            .quantile = m->quantile};
    for (int l = 0; l < m->n_layers; l++) {
        m->range_lo[l] = cfg->range_lo;
        m->range_hi[l] = cfg->range_hi;
    }
    return ipm_binned_init(&m->binned, &spec, err);
}

/* binning = quantile: every measured layer's edges of every replica, one
 * block after the other (edges_at), for the output. */
static int alloc_quantile_edges(ipm_measure *m, char *err)
{
    size_t total = 0;
    for (int l = 0; l < m->n_layers && m->quantile; l++) {
        m->edges_at[l] = total;
        if (m->measured[l])
            total +=
                (size_t)m->n_replicas * (size_t)m->binned.layer[l].unit_sets * (size_t)m->n_edges;
    }
    m->n_quantile_edges = total;
    if (total && !(m->quantile_edges = malloc(total * sizeof *m->quantile_edges)))
        return ipm_fail(err, "out of memory for %zu bin edges", total);
    for (int l = 0; l < m->n_layers && total; l++)
        m->layer_edges[l] = m->measured[l] ? m->quantile_edges + m->edges_at[l] : NULL;
    return 0;
}

int ipm_measure_init(ipm_measure *m, const ipm_config *cfg, const ipm_dataset *data, int plane,
                     const ipm_net *shape, int n_replicas, int n_local, int rank, int n_ranks,
                     char *err)
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
    m->terms.miller_madow = (cfg->estimators & IPM_EST_MILLER_MADOW) != 0;
    m->width_binning = cfg->binning == IPM_BINNING_WIDTH;
    m->quantile = cfg->binning != IPM_BINNING_QUANTILE   ? IPM_QUANTILE_NONE
                  : cfg->quantiles == IPM_QUANTILES_UNIT ? IPM_QUANTILE_UNIT
                                                         : IPM_QUANTILE_LAYER;
    m->adaptive = cfg->range_adaptive && cfg->binning == IPM_BINNING_RANGE;
    m->per_replica = (m->adaptive || cfg->range_whole) && cfg->range_scope == IPM_RANGE_PER_REPLICA;
    m->bin_width = cfg->bin_width;
    m->n_edges = cfg->bins;
    m->reduce = cfg->reduce;
    m->kde_variance = cfg->kde_variance;
    if (ipm_data_information(data->x_id, data->y, data->n, &m->terms.h_x, &m->terms.h_y, &m->i_xy,
                             err) ||
        alloc_results(m, err) || init_binned(m, cfg, err) || alloc_quantile_edges(m, err) ||
        alloc_counting(m, err))
        return -1;
    if ((m->estimators & IPM_EST_KDE) && alloc_kde(m, err))
        return -1;
    if ((m->estimators & IPM_EST_MILLER_MADOW) &&
        ipm_data_cells(data->x_id, data->y, data->n, &m->terms.m_x, &m->terms.m_y, err))
        return -1;
    if (!ipm_measure_merges(m))
        return 0;
    return m->reduce == IPM_REDUCE_TREE ? alloc_tree(m, err) : alloc_partition(m, cfg, rank, err);
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
    ipm_hists_free(m->hists, (size_t)m->n_layers * IPM_HISTS_PER_LAYER);
    ipm_partition_free(&m->part);
    ipm_binned_free(&m->binned);
    ipm_x_groups_free(&m->groups);
    ipm_counter_free(&m->counter);
    free(m->rows);
    free(m->each);
    free(m->est.simple_xt); /* and simple_ty with it */
    free(m->est.pooled_xt);
    free(m->est.pooled_ty);
    free(m->est.sampled_xt);
    free(m->est.sampled_ty);
    free(m->replica_range);
    free(m->slot_replica);
    free(m->quantile_edges);
    free(m->est.pooled_xt_mm); /* and the other per-layer values with it */
    free(m->kde_acts);
    free(m->kde_slots);
    memset(m, 0, sizeof *m);
}

void ipm_measure_begin(ipm_measure *m, int epoch)
{
    size_t rl = (size_t)m->n_replicas * (size_t)m->n_layers;
    memset(m->est.simple_xt, 0, 4 * rl * sizeof(double)); /* and simple_ty, the _mm ones */
    for (int l = 0; l < m->n_layers; l++) {
        if (!m->measured[l])
            continue;
        if (m->pooled && (m->estimators & IPM_EST_POOLED))
            ipm_layer_tables_clear(&m->pooled[l]);
        if (m->sampled && (m->estimators & IPM_EST_SAMPLED))
            ipm_layer_tables_clear(&m->sampled[l]);
    }
    /* -0.0 is the identity of IEEE addition: the sum onto rank 0 of slots
     * that one rank fills keeps every value bit for bit, -0.0 included. */
    for (size_t k = 0; k < 2 * rl; k++)
        m->replica_range[k] = -0.0;
    ipm_binned_begin(&m->binned, epoch);
}

/* kde: the block's rows of every measured layer, kept for the bounds. */
static void keep_for_kde(ipm_measure *m, const ipm_workspace *ws, int first, int rows)
{
    IPM_ASSERT(m->kde_slot >= 0 && m->kde_slot < m->n_local && first >= 0 &&
               first + rows <= m->data->n);
    float *mine = m->kde_acts + m->kde_per_replica * (size_t)m->kde_slot;
    for (int l = 0; l < m->n_layers; l++) {
        if (!m->measured[l])
            continue;
        size_t width = (size_t)m->width[l];
        memcpy(mine + m->kde_offset[l] + (size_t)first * width, ws->act[l],
               (size_t)rows * width * sizeof(float));
    }
}

int ipm_measure_replica_block(ipm_measure *m, const ipm_workspace *ws, int first, int rows,
                              char *err)
{
    double t0 = MPI_Wtime();
    int rc = ipm_binned_block(&m->binned, ws->act, first, rows, err);
    if (rc == 0 && (m->estimators & IPM_EST_KDE))
        keep_for_kde(m, ws, first, rows);
    m->seconds_binning += MPI_Wtime() - t0;
    return rc;
}

int ipm_measure_replica(ipm_measure *m, int replica, const ipm_workspace *ws, char *err)
{
    if (ipm_measure_replica_begin(m, replica, err))
        return -1;
    return ipm_measure_replica_block(m, ws, 0, m->data->n, err);
}

/* range = whole, scope = replica: the replica's own range in its slot. */
static void use_whole_range_of(ipm_measure *m, int slot, int replica)
{
    size_t rl = (size_t)m->n_replicas * (size_t)m->n_layers;
    for (int l = 0; l < m->n_layers; l++) {
        size_t at = (size_t)replica * (size_t)m->n_layers + (size_t)l;
        if (!m->measured[l])
            continue;
        ipm_binned_set_range(&m->binned, l, slot, m->whole[at], m->whole[rl + at]);
        m->replica_range[at] = m->whole[at];
        m->replica_range[rl + at] = m->whole[rl + at];
    }
}

int ipm_measure_replica_begin(ipm_measure *m, int replica, char *err)
{
    int slot = m->binned.n_seen;
    m->kde_slot = replica / m->n_ranks; /* replica r is local slot r / P on rank r mod P */
    if (m->whole && m->per_replica && slot < m->n_local)
        use_whole_range_of(m, slot, replica);
    else if (m->per_replica && slot < m->n_local && m->slot_replica[slot] != replica)
        return ipm_fail(err, "measure: replica %d binned in slot %d, whose range is replica %d's",
                        replica, slot, m->slot_replica[slot]);
    return ipm_binned_replica_begin(&m->binned, replica, err);
}

/* ---- counting on this rank ----------------------------------------------- */

static void point_of(ipm_measure *m, const ipm_pairs *pairs, ipm_point_slots at)
{
    ipm_entropies h;
    ipm_count_entropies(&m->counter, pairs, &m->groups, m->data->y, &h);
    ipm_points_store(&m->terms, &h, at);
}

/* With the partitioned reduce, the pooled cells are counted in the pass
 * of the simple estimates when there is one. */
static int pooled_with_simple(const ipm_measure *m)
{
    return (m->estimators & IPM_EST_SIMPLE) && (m->estimators & IPM_EST_POOLED) &&
           ipm_measure_partitions(m);
}

/* Simple estimates of every local replica and, in the same counting pass,
 * the pooled counts: on one rank their entropies, with the partitioned
 * reduce their cells, for the exchange. */
static int count_simple(ipm_measure *m, int layer, const ipm_pairs *all, char *err)
{
    int pooled = (m->estimators & IPM_EST_POOLED) != 0, pooled_here = m->n_ranks <= 1 && pooled;
    ipm_entropies h_pooled;
    if (pooled_with_simple(m)) {
        ipm_id_count *cells = ipm_partition_pooled_room(&m->part, &m->binned, layer, err);
        if (!cells)
            return -1;
        size_t n =
            ipm_count_replicas_cells(&m->counter, all, &m->groups, m->data->y, m->each, cells);
        ipm_partition_pooled_counted(&m->part, layer, n);
    } else
        ipm_count_replicas(&m->counter, all, &m->groups, m->data->y, m->each,
                           pooled_here ? &h_pooled : NULL);
    for (int k = 0; k < m->binned.n_seen; k++)
        ipm_points_store(&m->terms, &m->each[k],
                         ipm_points_simple(&m->est, m->n_layers, m->binned.seen_replica[k], layer));
    if (pooled_here)
        ipm_points_store(&m->terms, &h_pooled, ipm_points_pooled(&m->est, layer));
    return 0;
}

static int export_pairs(ipm_measure *m, int layer, const ipm_pairs *pairs, ipm_layer_tables *lt,
                        char *err)
{
    return ipm_count_export(&m->counter, pairs, &m->groups, m->data->y,
                            m->binned.layer[layer].dict.key, &lt->t, &lt->xt, &lt->yt, err);
}

/* Simple estimates of every local replica; with one rank also the extended
 * ones; with a tree reduce the extended counts go into its tables. */
static int count_layer(ipm_measure *m, int layer, char *err)
{
    const int32_t **ids = m->rows;
    for (int k = 0; k < m->binned.n_seen; k++)
        ids[k] = ipm_binned_ids(&m->binned, layer, k);
    ipm_pairs all = {ids, m->binned.n_seen, NULL};
    ipm_pairs sampled = {ids, m->binned.n_seen, m->binned.pick};
    int one_rank = m->n_ranks <= 1, tree = !one_rank && m->reduce == IPM_REDUCE_TREE;
    if ((m->estimators & IPM_EST_SIMPLE) && count_simple(m, layer, &all, err))
        return -1;
    if (m->estimators & IPM_EST_POOLED) {
        if (one_rank && !(m->estimators & IPM_EST_SIMPLE))
            point_of(m, &all, ipm_points_pooled(&m->est, layer));
        else if (tree && export_pairs(m, layer, &all, &m->pooled[layer], err))
            return -1;
    }
    if (m->estimators & IPM_EST_SAMPLED) {
        if (one_rank)
            point_of(m, &sampled, ipm_points_sampled(&m->est, layer));
        else if (tree && export_pairs(m, layer, &sampled, &m->sampled[layer], err))
            return -1;
    }
    return 0;
}

static int count_all(ipm_measure *m, char *err)
{
    if (ipm_binned_check_complete(&m->binned, err) ||
        ipm_counter_reserve(&m->counter, ipm_binned_most_ids(&m->binned), err))
        return -1;
    if (m->estimators & IPM_EST_SAMPLED)
        ipm_binned_pick_local(&m->binned);
    for (int l = 0; l < m->n_layers; l++)
        if (m->measured[l] && count_layer(m, l, err))
            return -1;
    if (ipm_measure_partitions(m))
        return ipm_partition_count(&m->part, &m->binned, &m->counter, m->data->y,
                                   pooled_with_simple(m), err);
    return 0;
}

/* ---- kde ----------------------------------------------------------------- */

/* Collective: every measured layer's bounds, the pairs spread over the
 * ranks. ipm_kde_bounds_mpi fails on every rank together, so all ranks make
 * the same calls whatever happened before. */
static int kde_all(ipm_measure *m, MPI_Comm comm, char *err)
{
    double t0 = MPI_Wtime();
    int rc = 0;
    for (int l = 0; rc == 0 && l < m->n_layers; l++) {
        if (!m->measured[l])
            continue;
        for (int k = 0; k < m->n_local; k++)
            m->kde_slots[k] = m->kde_acts + m->kde_per_replica * (size_t)k + m->kde_offset[l];
        ipm_kde_input in = {.shape = {.n = m->data->n,
                                      .n_replicas = m->n_replicas,
                                      .width = m->width[l],
                                      .var = m->kde_variance},
                            .acts = m->kde_slots,
                            .y = m->data->y};
        ipm_kde_bounds b;
        rc = ipm_kde_bounds_mpi(&in, comm, &b, NULL, err);
        if (rc == 0) {
            m->est.kde[IPM_KDE_XT_UPPER][l] = b.xt_upper;
            m->est.kde[IPM_KDE_XT_LOWER][l] = b.xt_lower;
            m->est.kde[IPM_KDE_TY_UPPER][l] = b.ty_upper;
            m->est.kde[IPM_KDE_TY_LOWER][l] = b.ty_lower;
        }
    }
    m->seconds_kde += MPI_Wtime() - t0;
    return rc;
}

int ipm_measure_count(ipm_measure *m, char *err)
{
    double t0 = MPI_Wtime();
    int rc = count_all(m, err);
    m->seconds_binning += MPI_Wtime() - t0;
    return rc;
}

int ipm_measure_kde(ipm_measure *m, MPI_Comm comm, int failed, char *err)
{
    char kde_err[IPM_ERRLEN]; /* an earlier failure's message comes first */
    return (m->estimators & IPM_EST_KDE) && kde_all(m, comm, failed ? kde_err : err) ? -1 : 0;
}
