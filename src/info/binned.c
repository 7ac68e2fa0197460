/* binned: the binning state of one plane (edges, dictionaries, ids). */
#include "ipmpi/info/binned.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ipmpi/base/assert.h"
#include "ipmpi/base/error.h"
#include "ipmpi/base/rng.h"

static int alloc_arrays(ipm_binned *b, char *err)
{
    size_t n = (size_t)b->n, local = (size_t)b->n_local;
    b->layer = calloc((size_t)b->n_layers, sizeof *b->layer);
    b->patterns = malloc((n + 1) * sizeof *b->patterns);
    b->choice = malloc((n + 1) * sizeof *b->choice);
    b->pick = malloc((n + 1) * sizeof *b->pick);
    b->ids = malloc(((size_t)b->n_layers * local * n + 1) * sizeof *b->ids);
    b->seen_replica = malloc((local + 1) * sizeof *b->seen_replica);
    b->local_slot = malloc((size_t)b->n_replicas * sizeof *b->local_slot);
    b->q_done = calloc(local + 1, 1);
    b->scratch = b->quantile == IPM_QUANTILE_UNIT ? malloc(n * sizeof *b->scratch) : NULL;
    size_t keys = b->quantile ? n * (size_t)b->widest : 0;
    b->keys = keys ? malloc(2 * keys * sizeof *b->keys) : NULL;
    if (!b->layer || !b->patterns || !b->choice || !b->pick || !b->ids || !b->seen_replica ||
        !b->local_slot || !b->q_done || (b->quantile == IPM_QUANTILE_UNIT && !b->scratch) ||
        (keys && !b->keys))
        return ipm_fail(err, "out of memory for the pattern ids of %d samples", b->n);
    return 0;
}

static int alloc_layer(ipm_binned_layer *L, int n_sets, int room, char *err)
{
    size_t sets = (size_t)n_sets, all = sets * (size_t)L->unit_sets;
    L->room = room;
    L->edges = malloc(all * (size_t)room * sizeof *L->edges);
    L->binner = malloc(all * sizeof *L->binner);
    L->lo = malloc(all * sizeof *L->lo);
    L->hi = malloc(all * sizeof *L->hi);
    L->seen_lo = malloc(sets * sizeof *L->seen_lo);
    L->seen_hi = malloc(sets * sizeof *L->seen_hi);
    if (!L->edges || !L->binner || !L->lo || !L->hi || !L->seen_lo || !L->seen_hi)
        return ipm_fail(err, "out of memory for %zu sets of %d bin edges", all, room);
    return 0;
}

static void use_edges(ipm_binned_layer *L, int set, int n, double lo, double hi);

static int init_layer(ipm_binned *b, int l, const ipm_binned_spec *spec, char *err)
{
    ipm_binned_layer *L = &b->layer[l];
    L->width = spec->width[l];
    L->measured = spec->measured[l];
    L->unit_sets = b->quantile == IPM_QUANTILE_UNIT ? L->width : 1;
    if (alloc_layer(L, b->n_sets, b->n_edges, err))
        return -1;
    for (int set = 0; set < b->n_sets * L->unit_sets; set++) {
        ipm_bin_edges(L->edges + (size_t)set * (size_t)L->room, b->n_edges, spec->lo, spec->hi);
        use_edges(L, set, b->n_edges, spec->lo, spec->hi);
    }
    if (b->quantile && L->measured &&
        !(L->values = malloc((size_t)b->n * (size_t)L->width * sizeof *L->values)))
        return ipm_fail(err, "out of memory for the activations of %d samples", b->n);
    return L->measured ? ipm_dict_init(&L->dict, (size_t)b->n, err) : 0;
}

int ipm_binned_init(ipm_binned *b, const ipm_binned_spec *spec, char *err)
{
    memset(b, 0, sizeof *b);
    IPM_ASSERT(spec->n_samples >= 1 && spec->n_layers >= 1 && spec->n_edges >= 2);
    IPM_ASSERT(spec->n_local >= 0 && spec->n_local <= spec->n_replicas);
    b->n = spec->n_samples;
    b->n_layers = spec->n_layers;
    b->n_edges = spec->n_edges;
    b->n_replicas = spec->n_replicas;
    b->n_local = spec->n_local;
    b->seed = spec->seed;
    b->plane = spec->plane;
    b->sampled = spec->sampled;
    b->quantile = spec->quantile;
    b->n_sets = (spec->per_replica || spec->quantile) && spec->n_local > 0 ? spec->n_local : 1;
    b->q_slot = -1;
    for (int l = 0; l < b->n_layers; l++)
        if (spec->measured[l] && spec->width[l] > b->widest)
            b->widest = spec->width[l];
    if (alloc_arrays(b, err))
        return -1;
    for (int l = 0; l < b->n_layers; l++)
        if (init_layer(b, l, spec, err))
            return -1;
    return 0;
}

void ipm_binned_free(ipm_binned *b)
{
    if (b->layer)
        for (int l = 0; l < b->n_layers; l++) {
            ipm_binned_layer *L = &b->layer[l];
            free(L->edges);
            free(L->binner);
            free(L->lo);
            free(L->hi);
            free(L->seen_lo);
            free(L->seen_hi);
            free(L->values);
            ipm_dict_free(&L->dict);
        }
    free(b->layer);
    free(b->patterns);
    free(b->choice);
    free(b->pick);
    free(b->ids);
    free(b->seen_replica);
    free(b->local_slot);
    free(b->q_done);
    free(b->scratch);
    free(b->keys);
    memset(b, 0, sizeof *b);
}

int ipm_binned_set_of(const ipm_binned *b, int slot)
{
    return b->n_sets > 1 ? slot : 0;
}

/* Every set of a layer has the same number of edges: the binners of a
 * layer's sets then pack patterns alike. */
static void use_edges(ipm_binned_layer *L, int set, int n, double lo, double hi)
{
    L->n_edges = n;
    L->lo[set] = lo;
    L->hi[set] = hi;
    ipm_binner_init(&L->binner[set], L->edges + (size_t)set * (size_t)L->room, n);
}

void ipm_binned_set_range(ipm_binned *b, int layer, int set, double lo, double hi)
{
    ipm_binned_layer *L = &b->layer[layer];
    IPM_ASSERT(set >= 0 && set < b->n_sets && L->room >= b->n_edges && L->unit_sets == 1);
    ipm_bin_edges(L->edges + (size_t)set * (size_t)L->room, b->n_edges, lo, hi);
    use_edges(L, set, b->n_edges, lo, hi);
}

/* Room for n edges in every set; the binners point into the edges, so
 * they are re-made by the caller after a move. */
static int make_room(ipm_binned_layer *L, int n_sets, int n, char *err)
{
    if (n <= L->room)
        return 0;
    float *more = realloc(L->edges, (size_t)n_sets * (size_t)n * sizeof *more);
    if (!more)
        return ipm_fail(err, "out of memory for %d bin edges", n);
    L->edges = more;
    L->room = n;
    return 0;
}

int ipm_binned_set_width_range(ipm_binned *b, int layer, double w, double lo, double hi, char *err)
{
    IPM_ASSERT(b->n_sets == 1 && w > 0);
    ipm_binned_layer *L = &b->layer[layer];
    long n = ipm_width_edge_count(w, lo, hi);
    if (n < 0)
        return ipm_fail(err,
                        "[information] width = %g: layer %d's range [%g, %g] needs more "
                        "than %d bins; raise width",
                        w, layer + 1, lo, hi, IPM_MAX_EDGES);
    if (make_room(L, b->n_sets, (int)n, err))
        return -1;
    ipm_width_edges(L->edges, w, lo, hi);
    double first = floor(lo / w); /* the edges' k, as ipm_width_edges takes them */
    use_edges(L, 0, (int)n, first * w, (first + (double)(n - 1)) * w);
    return 0;
}

void ipm_binned_begin(ipm_binned *b, int epoch)
{
    b->n_seen = 0;
    b->rows_done = 0;
    b->q_slot = -1;
    memset(b->q_done, 0, (size_t)b->n_local + 1);
    for (int l = 0; l < b->n_layers; l++) {
        ipm_binned_layer *L = &b->layer[l];
        for (int set = 0; set < b->n_sets; set++) {
            L->seen_lo[set] = INFINITY;
            L->seen_hi[set] = -INFINITY;
        }
        if (L->measured)
            ipm_dict_clear(&L->dict);
    }
    if (!b->sampled)
        return;
    /* Lemire's multiply-shift: bias below R / 2^32, far under sampling noise. */
    for (int i = 0; i < b->n; i++) {
        uint64_t index = (uint64_t)(uint32_t)i | ((uint64_t)b->plane << 32);
        uint32_t u = ipm_rng_at(b->seed, (uint32_t)epoch, IPM_RNG_SAMPLED, index);
        b->choice[i] = (uint32_t)(((uint64_t)u * (uint64_t)b->n_replicas) >> 32);
    }
}

/* NaN is skipped: comparisons with it are false. */
static void min_max(const float *v, size_t n, float *lo, float *hi)
{
    float a = *lo, c = *hi;
    for (size_t i = 0; i < n; i++) {
        a = v[i] < a ? v[i] : a;
        c = v[i] > c ? v[i] : c;
    }
    *lo = a;
    *hi = c;
}

/* The slot's equal-mass edges of every measured layer, from its values. */
static void set_quantile_edges(ipm_binned *b, int slot)
{
    size_t n = (size_t)b->n;
    for (int l = 0; l < b->n_layers; l++) {
        ipm_binned_layer *L = &b->layer[l];
        if (!L->measured)
            continue;
        size_t width = (size_t)L->width;
        for (int u = 0; u < L->unit_sets; u++) {
            int set = slot * L->unit_sets + u;
            float *edges = L->edges + (size_t)set * (size_t)L->room, *v = L->values;
            if (b->quantile == IPM_QUANTILE_UNIT) {
                for (size_t i = 0; i < n; i++)
                    b->scratch[i] = L->values[i * width + (size_t)u];
                v = b->scratch;
            }
            size_t count = b->quantile == IPM_QUANTILE_UNIT ? n : n * width;
            ipm_quantile_edges(v, b->keys, b->keys + count, count, b->n_edges, edges);
            use_edges(L, set, b->n_edges, edges[0], edges[b->n_edges - 1]);
        }
    }
    b->q_done[slot] = 1;
}

static void keep_values(ipm_binned *b, int slot, float *const *act, int first, int rows)
{
    if (slot != b->q_slot) {
        b->q_slot = slot;
        b->q_rows = 0;
    }
    IPM_ASSERT(first >= 0 && rows >= 0 && first + rows <= b->n);
    for (int l = 0; l < b->n_layers; l++) {
        ipm_binned_layer *L = &b->layer[l];
        size_t width = (size_t)L->width;
        if (L->measured && rows > 0)
            memcpy(L->values + (size_t)first * width, act[l], (size_t)rows * width * sizeof(float));
    }
    b->q_rows += rows;
    if (b->q_rows == b->n)
        set_quantile_edges(b, slot);
}

void ipm_binned_observe_range(ipm_binned *b, int slot, float *const *act, int first, int rows)
{
    size_t n = rows > 0 ? (size_t)rows : 0;
    int set = ipm_binned_set_of(b, slot);
    IPM_ASSERT(set >= 0 && set < b->n_sets);
    if (b->quantile) {
        keep_values(b, slot, act, first, rows);
        return;
    }
    for (int l = 0; l < b->n_layers; l++) {
        ipm_binned_layer *L = &b->layer[l];
        if (L->measured)
            min_max(act[l], n * (size_t)L->width, &L->seen_lo[set], &L->seen_hi[set]);
    }
}

const float *ipm_binned_edges(const ipm_binned *b, int layer, int slot)
{
    const ipm_binned_layer *L = &b->layer[layer];
    int set = ipm_binned_set_of(b, slot) * L->unit_sets;
    return L->edges + (size_t)set * (size_t)L->room;
}

const int32_t *ipm_binned_ids(const ipm_binned *b, int layer, int slot)
{
    size_t n = (size_t)b->n;
    return b->ids + ((size_t)layer * (size_t)b->n_local + (size_t)slot) * n;
}

int ipm_binned_check_complete(const ipm_binned *b, char *err)
{
    if (b->n_seen > 0 && b->rows_done < b->n)
        return ipm_fail(err, "measure: replica %d's pass ended after %d of %d samples",
                        b->seen_replica[b->n_seen - 1], b->rows_done, b->n);
    return 0;
}

int ipm_binned_replica_begin(ipm_binned *b, int replica, char *err)
{
    if (ipm_binned_check_complete(b, err))
        return -1;
    if (b->n_seen >= b->n_local)
        return ipm_fail(err, "measure: more than %d local replicas in one epoch", b->n_local);
    IPM_ASSERT(replica >= 0 && replica < b->n_replicas);
    if (b->quantile && !b->q_done[b->n_seen])
        return ipm_fail(err, "measure: replica %d's quantile edges were not observed", replica);
    b->seen_replica[b->n_seen++] = replica;
    b->rows_done = 0;
    return 0;
}

/* Blocks must come in sample order: the dictionaries number patterns in
 * order of first appearance, so mapping block after block gives exactly
 * the ids one call over all samples gives. */
int ipm_binned_block(ipm_binned *b, float *const *act, int first, int rows, char *err)
{
    if (b->n_seen == 0 || first != b->rows_done || rows < 0 || rows > b->n - first)
        return ipm_fail(err, "measure: block of samples [%d, %d) out of order (expected %d of %d)",
                        first, first + rows, b->rows_done, b->n);
    int slot = b->n_seen - 1, rc = 0;
    for (int l = 0; l < b->n_layers && rc == 0; l++) {
        ipm_binned_layer *L = &b->layer[l];
        if (!L->measured)
            continue;
        const ipm_binner *binner = &L->binner[ipm_binned_set_of(b, slot) * L->unit_sets];
        if (L->unit_sets > 1)
            ipm_binners_patterns(binner, act[l], rows, L->width, b->patterns);
        else
            ipm_binner_patterns(binner, act[l], rows, L->width, b->patterns);
        int32_t *ids = (int32_t *)ipm_binned_ids(b, l, slot) + first;
        rc = ipm_dict_map(&L->dict, b->patterns, rows, ids, err);
    }
    b->rows_done += rows;
    return rc;
}

void ipm_binned_pick_local(ipm_binned *b)
{
    for (int r = 0; r < b->n_replicas; r++)
        b->local_slot[r] = -1;
    for (int k = 0; k < b->n_seen; k++)
        b->local_slot[b->seen_replica[k]] = k;
    for (int i = 0; i < b->n; i++)
        b->pick[i] = b->local_slot[b->choice[i]];
}

size_t ipm_binned_most_ids(const ipm_binned *b)
{
    size_t most = 0;
    for (int l = 0; l < b->n_layers; l++)
        if (b->layer[l].measured && b->layer[l].dict.len > most)
            most = b->layer[l].dict.len;
    return most;
}
