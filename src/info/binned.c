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

static int init_layer(ipm_binned *b, int l, const ipm_binned_spec *spec, char *err)
{
    ipm_binned_layer *L = &b->layer[l];
    L->width = spec->width[l];
    L->measured = spec->measured[l];
    L->edges = malloc((size_t)b->n_edges * sizeof *L->edges);
    if (!L->edges)
        return ipm_fail(err, "out of memory for %d bin edges", b->n_edges);
    ipm_binned_set_range(b, l, spec->lo, spec->hi);
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
            free(b->layer[l].edges);
            ipm_dict_free(&b->layer[l].dict);
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

void ipm_binned_set_range(ipm_binned *b, int layer, double lo, double hi)
{
    ipm_binned_layer *L = &b->layer[layer];
    L->lo = lo;
    L->hi = hi;
    ipm_bin_edges(L->edges, b->n_edges, lo, hi);
    ipm_binner_init(&L->binner, L->edges, b->n_edges);
}

void ipm_binned_begin(ipm_binned *b, int epoch)
{
    b->n_seen = 0;
    b->rows_done = 0;
    for (int l = 0; l < b->n_layers; l++) {
        ipm_binned_layer *L = &b->layer[l];
        L->seen_lo = INFINITY;
        L->seen_hi = -INFINITY;
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

void ipm_binned_observe_range(ipm_binned *b, float *const *act, int rows)
{
    size_t n = rows > 0 ? (size_t)rows : 0;
    for (int l = 0; l < b->n_layers; l++) {
        ipm_binned_layer *L = &b->layer[l];
        if (L->measured)
            min_max(act[l], n * (size_t)L->width, &L->seen_lo, &L->seen_hi);
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
        ipm_binner_patterns(&L->binner, act[l], rows, L->width, b->patterns);
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
