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
    if (!b->layer || !b->patterns || !b->choice || !b->pick || !b->ids || !b->seen_replica ||
        !b->local_slot)
        return ipm_fail(err, "out of memory for the pattern ids of %d samples", b->n);
    return 0;
}

static int alloc_layer(ipm_binned_layer *L, int n_sets, int room, char *err)
{
    size_t sets = (size_t)n_sets;
    L->room = room;
    L->edges = malloc(sets * (size_t)room * sizeof *L->edges);
    L->binner = malloc(sets * sizeof *L->binner);
    L->lo = malloc(sets * sizeof *L->lo);
    L->hi = malloc(sets * sizeof *L->hi);
    L->seen_lo = malloc(sets * sizeof *L->seen_lo);
    L->seen_hi = malloc(sets * sizeof *L->seen_hi);
    if (!L->edges || !L->binner || !L->lo || !L->hi || !L->seen_lo || !L->seen_hi)
        return ipm_fail(err, "out of memory for %d sets of %d bin edges", n_sets, room);
    return 0;
}

static int init_layer(ipm_binned *b, int l, const ipm_binned_spec *spec, char *err)
{
    ipm_binned_layer *L = &b->layer[l];
    L->width = spec->width[l];
    L->measured = spec->measured[l];
    if (alloc_layer(L, b->n_sets, b->n_edges, err))
        return -1;
    for (int set = 0; set < b->n_sets; set++)
        ipm_binned_set_range(b, l, set, spec->lo, spec->hi);
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
    b->n_sets = spec->per_replica && spec->n_local > 0 ? spec->n_local : 1;
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
            ipm_dict_free(&L->dict);
        }
    free(b->layer);
    free(b->patterns);
    free(b->choice);
    free(b->pick);
    free(b->ids);
    free(b->seen_replica);
    free(b->local_slot);
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
    IPM_ASSERT(set >= 0 && set < b->n_sets && L->room >= b->n_edges);
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

int ipm_binned_set_width_range(ipm_binned *b, int layer, double w, double lo, double hi,
                               char *err)
{
    IPM_ASSERT(b->n_sets == 1 && w > 0);
    ipm_binned_layer *L = &b->layer[layer];
    long n = ipm_width_edge_count(w, lo, hi);
    if (n < 0)
        return ipm_fail(err, "[information] width = %g: layer %d's range [%g, %g] needs more "
                        "than %d bins; raise width", w, layer + 1, lo, hi, IPM_MAX_EDGES);
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

void ipm_binned_observe_range(ipm_binned *b, int slot, float *const *act, int rows)
{
    size_t n = rows > 0 ? (size_t)rows : 0;
    int set = ipm_binned_set_of(b, slot);
    IPM_ASSERT(set >= 0 && set < b->n_sets);
    for (int l = 0; l < b->n_layers; l++) {
        ipm_binned_layer *L = &b->layer[l];
        if (L->measured)
            min_max(act[l], n * (size_t)L->width, &L->seen_lo[set], &L->seen_hi[set]);
    }
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
        ipm_binner_patterns(&L->binner[ipm_binned_set_of(b, slot)], act[l], rows, L->width,
                            b->patterns);
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
