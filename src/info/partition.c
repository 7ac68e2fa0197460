/* partition: who owns which samples and patterns, what goes where, and the
 * histograms a part makes of what it owns. */
#include "ipmpi/info/partition.h"

#include <stdlib.h>
#include <string.h>

#include "ipmpi/base/assert.h"
#include "ipmpi/base/error.h"
#include "ipmpi/info/hash.h"

/* ---- who owns what ---------------------------------------------------------- */

/* Part q's x range starts at the first x id with at least q N / P samples
 * before it, so parts hold about N / P samples and x groups stay whole. */
static void cut_x_ranges(ipm_slices *s, const int32_t *per_x, int n_x)
{
    int x = 0;
    int64_t before = 0;
    for (int q = 0; q <= s->n_parts; q++) {
        int64_t want = (int64_t)q * s->n; /* before * P >= q * N */
        while (x < n_x && before * s->n_parts < want)
            before += per_x[x++];
        s->x_cut[q] = q == s->n_parts ? n_x : x;
    }
}

static int fill_slices(ipm_slices *s, const int32_t *x_id, int32_t *per_x, int n_x)
{
    for (int i = 0; i < s->n; i++)
        per_x[x_id[i]]++;
    cut_x_ranges(s, per_x, n_x);
    int32_t *owner_of_x = per_x; /* reused: per_x is no longer needed */
    for (int q = 0; q < s->n_parts; q++)
        for (int x = s->x_cut[q]; x < s->x_cut[q + 1]; x++)
            owner_of_x[x] = q;
    memset(s->first, 0, ((size_t)s->n_parts + 1) * sizeof *s->first);
    for (int i = 0; i < s->n; i++)
        s->first[owner_of_x[x_id[i]] + 1]++;
    for (int q = 0; q < s->n_parts; q++)
        s->first[q + 1] += s->first[q];
    for (int i = 0; i < s->n; i++) /* in increasing i: stable */
        s->sample[s->first[owner_of_x[x_id[i]]]++] = i;
    for (int q = s->n_parts; q > 0; q--)
        s->first[q] = s->first[q - 1];
    s->first[0] = 0;
    return 0;
}

int ipm_slices_init(ipm_slices *s, const int32_t *x_id, int n, int n_parts, char *err)
{
    memset(s, 0, sizeof *s);
    IPM_ASSERT(n >= 0 && n_parts >= 1);
    s->n = n;
    s->n_parts = n_parts;
    int n_x = 0;
    for (int i = 0; i < n; i++)
        n_x = x_id[i] + 1 > n_x ? x_id[i] + 1 : n_x;
    int32_t *per_x = calloc((size_t)n_x + 1, sizeof *per_x);
    s->x_cut = malloc(((size_t)n_parts + 1) * sizeof *s->x_cut);
    s->first = malloc(((size_t)n_parts + 1) * sizeof *s->first);
    s->sample = malloc(((size_t)n + 1) * sizeof *s->sample);
    if (!per_x || !s->x_cut || !s->first || !s->sample) {
        free(per_x);
        ipm_slices_free(s);
        return ipm_fail(err, "out of memory sharing %d samples among %d ranks", n, n_parts);
    }
    fill_slices(s, x_id, per_x, n_x);
    free(per_x);
    return 0;
}

void ipm_slices_free(ipm_slices *s)
{
    free(s->x_cut);
    free(s->first);
    free(s->sample);
    memset(s, 0, sizeof *s);
}

int ipm_replicas_on(int part, int n_replicas, int n_parts)
{
    return part < n_replicas ? (n_replicas - 1 - part) / n_parts + 1 : 0;
}

int ipm_pattern_words(int width, int n_edges)
{
    return (int64_t)width * ipm_bin_bits(n_edges) <= 64 ? 1 : 2;
}

/* ---- setting up ------------------------------------------------------------- */

static int alloc_receiving(ipm_partition *p, char *err)
{
    size_t cells = (size_t)p->rows * (size_t)p->ns;
    size_t group = (size_t)p->rows * (size_t)p->groups.largest;
    p->lo = malloc((cells + 1) * sizeof *p->lo);
    p->hi = malloc((cells + 1) * sizeof *p->hi);
    p->group = malloc((2 * group + 1) * sizeof *p->group); /* and room to sort it */
    p->dense = calloc(group + 1, sizeof *p->dense);
    p->lane = malloc((2 * (size_t)p->ns + 1) * sizeof *p->lane);
    if (!p->lo || !p->hi || !p->group || !p->dense || !p->lane)
        return ipm_fail(err, "out of memory for %zu patterns of the partitioned reduce", cells);
    return 0;
}

/* This part's samples as a data set of their own: x ids from 0. */
static int group_own_samples(ipm_partition *p, char *err)
{
    const ipm_slices *s = &p->slices;
    const int32_t *mine = s->sample + s->first[p->part];
    int32_t *x = malloc(((size_t)p->ns + 1) * sizeof *x);
    if (!x)
        return ipm_fail(err, "out of memory grouping %d samples", p->ns);
    for (int j = 0; j < p->ns; j++)
        x[j] = p->x_id[mine[j]] - s->x_cut[p->part];
    int rc = ipm_x_groups_init(&p->groups, x, p->ns, err);
    free(x);
    return rc;
}

int ipm_partition_init(ipm_partition *p, const ipm_partition_spec *spec, char *err)
{
    memset(p, 0, sizeof *p);
    p->part = spec->part;
    p->n_parts = spec->n_parts;
    p->n_replicas = spec->n_replicas;
    p->n_layers = spec->n_layers;
    p->n_classes = spec->n_classes > 0 ? spec->n_classes : 1;
    p->est[IPM_PART_POOLED] = spec->pooled;
    p->est[IPM_PART_SAMPLED] = spec->sampled;
    p->rows = spec->pooled ? spec->n_replicas : 1;
    p->x_id = spec->x_id;
    p->words = calloc((size_t)p->n_layers, sizeof *p->words);
    p->cells = calloc((size_t)p->n_layers * IPM_PART_ESTIMATORS, sizeof *p->cells);
    if (!p->words || !p->cells)
        return ipm_fail(err, "out of memory for the partitioned reduce");
    for (int l = 0; l < p->n_layers; l++)
        p->words[l] = spec->measured[l] ? ipm_pattern_words(spec->width[l], spec->n_edges) : 0;
    if (ipm_slices_init(&p->slices, spec->x_id, spec->n, spec->n_parts, err))
        return -1;
    p->ns = p->slices.first[p->part + 1] - p->slices.first[p->part];
    return group_own_samples(p, err) || alloc_receiving(p, err) ? -1 : 0;
}

static void free_cells(ipm_cells *c)
{
    free(c->cell);
    free(c->start);
    free(c->scratch);
    free(c->owner);
}

void ipm_partition_free(ipm_partition *p)
{
    if (p->cells)
        for (int k = 0; k < p->n_layers * IPM_PART_ESTIMATORS; k++)
            free_cells(&p->cells[k]);
    free(p->cells);
    free(p->words);
    ipm_slices_free(&p->slices);
    free(p->lo);
    free(p->hi);
    free(p->group);
    free(p->dense);
    free(p->lane);
    ipm_x_groups_free(&p->groups);
    for (int e = 0; e < IPM_PART_ESTIMATORS; e++)
        free(p->owned[e].cell);
    free(p->scratch.cell);
    free(p->keyed);
    free(p->keyed_scratch);
    free(p->send.w);
    free(p->recv.w);
    free(p->counts);
    memset(p, 0, sizeof *p);
}

/* ---- the sending side ------------------------------------------------------- */

static ipm_cells *cells_of(const ipm_partition *p, int layer, int est)
{
    return &p->cells[layer * IPM_PART_ESTIMATORS + est];
}

static int reserve_cells(ipm_cells *c, size_t n, int n_parts, char *err)
{
    if (!c->start && !(c->start = malloc(((size_t)n_parts + 1) * sizeof *c->start)))
        return ipm_fail(err, "out of memory for the (Y, T) cells");
    if (n <= c->capacity)
        return 0;
    free(c->cell);
    free(c->scratch);
    free(c->owner);
    c->cell = malloc(n * sizeof *c->cell);
    c->scratch = malloc(n * sizeof *c->scratch);
    c->owner = malloc(n * sizeof *c->owner);
    c->capacity = c->cell && c->scratch && c->owner ? n : 0;
    if (!c->capacity)
        return ipm_fail(err, "out of memory for %zu (Y, T) cells", n);
    return 0;
}

/* Counting sort of the cells by owner, stable. */
static void group_by_owner(ipm_cells *c, const ipm_pattern *key, int n_parts)
{
    memset(c->start, 0, ((size_t)n_parts + 1) * sizeof *c->start);
    for (size_t k = 0; k < c->n; k++) {
        c->owner[k] = ipm_pattern_owner(key[c->cell[k].id], n_parts);
        c->start[c->owner[k] + 1]++;
    }
    for (int q = 0; q < n_parts; q++)
        c->start[q + 1] += c->start[q];
    for (size_t k = 0; k < c->n; k++)
        c->scratch[c->start[c->owner[k]]++] = c->cell[k];
    for (int q = n_parts; q > 0; q--)
        c->start[q] = c->start[q - 1];
    c->start[0] = 0;
    ipm_id_count *t = c->cell;
    c->cell = c->scratch;
    c->scratch = t;
}

static int count_cells(ipm_partition *p, int layer, int est, const ipm_binned *b,
                       ipm_counter *counter, const int32_t *const *ids, const int32_t *y, char *err)
{
    ipm_pairs pairs = {ids, b->n_seen, est == IPM_PART_SAMPLED ? b->pick : NULL};
    size_t pairs_n = (size_t)b->n * (size_t)(est == IPM_PART_SAMPLED ? 1 : b->n_seen);
    size_t most = b->layer[layer].dict.len * (size_t)p->n_classes;
    ipm_cells *c = cells_of(p, layer, est);
    if (reserve_cells(c, (pairs_n < most ? pairs_n : most) + 1, p->n_parts, err))
        return -1;
    c->n = ipm_count_yt_cells(counter, &pairs, y, c->cell);
    group_by_owner(c, b->layer[layer].dict.key, p->n_parts);
    return 0;
}

int ipm_partition_count(ipm_partition *p, const ipm_binned *b, ipm_counter *counter,
                        const int32_t *y, char *err)
{
    IPM_ASSERT(b->n_layers == p->n_layers && b->n_seen <= b->n_local);
    const int32_t **ids = malloc(((size_t)b->n_seen + 1) * sizeof *ids);
    if (!ids)
        return ipm_fail(err, "out of memory for %d rows of ids", b->n_seen);
    int rc = ipm_counter_reserve(counter, ipm_binned_most_ids(b), err);
    for (int l = 0; l < p->n_layers && rc == 0; l++) {
        if (!p->words[l])
            continue;
        for (int k = 0; k < b->n_seen; k++)
            ids[k] = ipm_binned_ids(b, l, k);
        for (int e = 0; e < IPM_PART_ESTIMATORS && rc == 0; e++)
            if (p->est[e])
                rc = count_cells(p, l, e, b, counter, ids, y, err);
    }
    free(ids);
    return rc;
}

/* (X, T) rows of one layer this part sends to dest. */
static size_t rows_to(const ipm_partition *p, const ipm_binned *b, int dest)
{
    const ipm_slices *s = &p->slices;
    size_t ns = (size_t)(s->first[dest + 1] - s->first[dest]);
    if (p->est[IPM_PART_POOLED])
        return ns * (size_t)b->n_seen;
    size_t n = 0;
    for (int32_t j = s->first[dest]; j < s->first[dest + 1]; j++)
        n += b->pick[s->sample[j]] >= 0;
    return n;
}

size_t ipm_partition_words_to(const ipm_partition *p, const ipm_binned *b, int dest)
{
    size_t rows = rows_to(p, b, dest), words = 0;
    for (int l = 0; l < p->n_layers; l++) {
        int w = p->words[l];
        if (!w)
            continue;
        words += 2 + rows * (size_t)w;
        for (int e = 0; e < IPM_PART_ESTIMATORS; e++)
            if (p->est[e]) {
                const ipm_cells *c = cells_of(p, l, e);
                words += (c->start[dest + 1] - c->start[dest]) * (size_t)(w + 1);
            }
    }
    return words;
}

static inline uint64_t *put_pattern(uint64_t *w, ipm_pattern t, int words)
{
    *w++ = t.lo;
    if (words == 2)
        *w++ = t.hi;
    return w;
}

static uint64_t *pack_rows(const ipm_partition *p, const ipm_binned *b, int layer, int dest,
                           uint64_t *w)
{
    const ipm_slices *s = &p->slices;
    const ipm_pattern *key = b->layer[layer].dict.key;
    int words = p->words[layer];
    const int32_t *mine = s->sample + s->first[dest];
    int32_t ns = s->first[dest + 1] - s->first[dest];
    if (!p->est[IPM_PART_POOLED]) {
        for (int32_t j = 0; j < ns; j++) {
            int k = b->pick[mine[j]];
            if (k >= 0)
                w = put_pattern(w, key[ipm_binned_ids(b, layer, k)[mine[j]]], words);
        }
        return w;
    }
    for (int k = 0; k < b->n_seen; k++) {
        const int32_t *ids = ipm_binned_ids(b, layer, k);
        for (int32_t j = 0; j < ns; j++)
            w = put_pattern(w, key[ids[mine[j]]], words);
    }
    return w;
}

static uint64_t *pack_cells(const ipm_cells *c, const ipm_pattern *key, int words, int dest,
                            uint64_t *w)
{
    for (size_t k = c->start[dest]; k < c->start[dest + 1]; k++) {
        const ipm_id_count *e = &c->cell[k];
        w = put_pattern(w, key[e->id], words);
        *w++ = (uint64_t)(uint32_t)e->y << 32 | e->count;
    }
    return w;
}

uint64_t *ipm_partition_pack(const ipm_partition *p, const ipm_binned *b, int dest, uint64_t *w)
{
    for (int l = 0; l < p->n_layers; l++) {
        if (!p->words[l])
            continue;
        for (int e = 0; e < IPM_PART_ESTIMATORS; e++) {
            const ipm_cells *c = cells_of(p, l, e);
            *w++ = p->est[e] ? c->start[dest + 1] - c->start[dest] : 0;
        }
        w = pack_rows(p, b, l, dest, w);
        for (int e = 0; e < IPM_PART_ESTIMATORS; e++)
            if (p->est[e])
                w = pack_cells(cells_of(p, l, e), b->layer[l].dict.key, p->words[l], dest, w);
    }
    return w;
}

/* ---- the receiving side ----------------------------------------------------- */

static inline ipm_pattern get_pattern(const uint64_t **w, int words)
{
    ipm_pattern t = {(*w)[0], words == 2 ? (*w)[1] : 0};
    *w += words;
    return t;
}

static inline void put_row(ipm_partition *p, int row, int j, ipm_pattern t)
{
    size_t at = (size_t)row * (size_t)p->ns + (size_t)j;
    p->lo[at] = t.lo;
    p->hi[at] = t.hi;
}

static inline ipm_pattern row_pattern(const ipm_partition *p, int row, int j)
{
    size_t at = (size_t)row * (size_t)p->ns + (size_t)j;
    return (ipm_pattern){p->lo[at], p->hi[at]};
}

/* The (X, T) rows source sent: its replicas' patterns of this part's samples. */
static void read_rows(ipm_partition *p, int source, const uint64_t **w, int words,
                      const uint32_t *choice)
{
    const int32_t *mine = p->slices.sample + p->slices.first[p->part];
    if (!p->est[IPM_PART_POOLED]) {
        for (int j = 0; j < p->ns; j++)
            if ((int)(choice[mine[j]] % (uint32_t)p->n_parts) == source)
                put_row(p, 0, j, get_pattern(w, words));
        return;
    }
    int on_source = ipm_replicas_on(source, p->n_replicas, p->n_parts);
    for (int k = 0; k < on_source; k++) {
        int r = source + k * p->n_parts;
        for (int j = 0; j < p->ns; j++)
            put_row(p, r, j, get_pattern(w, words));
    }
}

static size_t rows_from(const ipm_partition *p, int source, const uint32_t *choice)
{
    if (p->est[IPM_PART_POOLED])
        return (size_t)p->ns * (size_t)ipm_replicas_on(source, p->n_replicas, p->n_parts);
    const int32_t *mine = p->slices.sample + p->slices.first[p->part];
    size_t n = 0;
    for (int j = 0; j < p->ns; j++)
        n += (int)(choice[mine[j]] % (uint32_t)p->n_parts) == source;
    return n;
}

static int reserve_list(ipm_cell_list *l, size_t n, char *err)
{
    if (n <= l->capacity)
        return 0;
    size_t capacity = l->capacity ? l->capacity : 1024;
    while (capacity < n)
        capacity *= 2;
    ipm_cell *cell = realloc(l->cell, capacity * sizeof *cell);
    if (!cell)
        return ipm_fail(err, "out of memory for %zu (Y, T) cells", capacity);
    l->cell = cell;
    l->capacity = capacity;
    return 0;
}

/* n cells appended to the estimator's list of owned cells. */
static int read_cells(ipm_partition *p, int est, size_t n, const uint64_t **w, int words, char *err)
{
    ipm_cell_list *l = &p->owned[est];
    if (reserve_list(l, l->n + n, err))
        return -1;
    for (size_t k = 0; k < n; k++) {
        ipm_pattern t = get_pattern(w, words);
        uint64_t yc = *(*w)++;
        ipm_cell c = {t.lo, t.hi, (uint32_t)(yc >> 32), (uint32_t)yc};
        if (c.y >= (uint32_t)p->n_classes || c.count == 0)
            return ipm_fail(err, "partitioned reduce: a malformed cell (class %u, count %u)", c.y,
                            c.count);
        IPM_ASSERT(ipm_pattern_owner(t, p->n_parts) == p->part);
        l->cell[l->n++] = c;
    }
    return 0;
}

int ipm_partition_read(ipm_partition *p, int layer, int source, const uint64_t **w,
                       const uint64_t *end, const uint32_t *choice, char *err)
{
    int words = p->words[layer];
    IPM_ASSERT(words == 1 || words == 2);
    if (end - *w < 2)
        return ipm_fail(err, "partitioned reduce: rank %d sent too few words", source);
    uint64_t n_cells[IPM_PART_ESTIMATORS] = {(*w)[0], (*w)[1]};
    *w += 2;
    size_t rows = rows_from(p, source, choice);
    uint64_t need = rows * (uint64_t)words + (n_cells[0] + n_cells[1]) * (uint64_t)(words + 1);
    if ((uint64_t)(end - *w) < need)
        return ipm_fail(err,
                        "partitioned reduce: rank %d sent %td words of layer %d, "
                        "expected at least %llu",
                        source, end - *w, layer + 1, (unsigned long long)need);
    read_rows(p, source, w, words, choice);
    for (int e = 0; e < IPM_PART_ESTIMATORS; e++)
        if (read_cells(p, e, p->est[e] ? n_cells[e] : 0, w, words, err))
            return -1;
    return 0;
}

/* ---- this part's histograms ---------------------------------------------------- */

static int compare_patterns(const void *a, const void *b)
{
    const ipm_pattern *x = a, *y = b;
    if (x->hi != y->hi)
        return x->hi < y->hi ? -1 : 1;
    return (x->lo > y->lo) - (x->lo < y->lo);
}

/* LSD radix sort by (hi, lo), one pass per byte that varies. */
static void radix_sort_patterns(ipm_pattern *v, ipm_pattern *tmp, int m)
{
    uint64_t or_lo = 0, and_lo = ~0ull, or_hi = 0, and_hi = ~0ull;
    for (int i = 0; i < m; i++) {
        or_lo |= v[i].lo;
        and_lo &= v[i].lo;
        or_hi |= v[i].hi;
        and_hi &= v[i].hi;
    }
    uint64_t differ[2] = {or_lo ^ and_lo, or_hi ^ and_hi};
    ipm_pattern *from = v, *to = tmp;
    for (int d = 0; d < 16; d++) {
        int word = d / 8, shift = 8 * (d % 8);
        if (((differ[word] >> shift) & 0xff) == 0)
            continue;
        int at[256] = {0}, sum = 0;
        for (int i = 0; i < m; i++)
            at[((word ? from[i].hi : from[i].lo) >> shift) & 0xff]++;
        for (int b = 0; b < 256; b++) {
            int c = at[b];
            at[b] = sum;
            sum += c;
        }
        for (int i = 0; i < m; i++)
            to[at[((word ? from[i].hi : from[i].lo) >> shift) & 0xff]++] = from[i];
        ipm_pattern *t = from;
        from = to;
        to = t;
    }
    if (from != v)
        memcpy(v, from, (size_t)m * sizeof *v);
}

/* Small groups by insertion, large ones by radix (tmp: room for m). */
static void sort_patterns(ipm_pattern *v, ipm_pattern *tmp, int m)
{
    if (m > 48) {
        radix_sort_patterns(v, tmp, m);
        return;
    }
    for (int i = 1; i < m; i++) {
        ipm_pattern t = v[i];
        int j = i;
        for (; j > 0 && compare_patterns(&v[j - 1], &t) > 0; j--)
            v[j] = v[j - 1];
        v[j] = t;
    }
}

/* One x group's counted patterns: every row's (pooled), or each sample's
 * drawn replica's (drawn != NULL: its row, by sample of this part). */
static int gather_group(const ipm_partition *p, int x, const int32_t *drawn)
{
    const ipm_x_groups *g = &p->groups;
    const int32_t *member = g->member + g->offset[x];
    int size = g->offset[x + 1] - g->offset[x], m = 0;
    if (drawn) {
        for (int j = 0; j < size; j++)
            p->group[m++] = row_pattern(p, drawn[member[j]], member[j]);
        return m;
    }
    for (int r = 0; r < p->rows; r++)
        for (int j = 0; j < size; j++)
            p->group[m++] = row_pattern(p, r, member[j]);
    return m;
}

#define ROW_COMPARE_ROWS 16 /* up to this many rows compare whole rows pairwise */

/* Row a against an earlier row b (earlier: a's pattern is not the first
 * of its key where b has it) or a later one; restrict lets these vectorise,
 * and 64-bit compares need AVX2 (chosen at load time where the CPU has it). */
__attribute__((target_clones("avx2", "default"))) static void
compare_rows(const uint64_t *restrict alo, const uint64_t *restrict ahi,
             const uint64_t *restrict blo, const uint64_t *restrict bhi, int64_t *restrict mult,
             int64_t *restrict first, size_t ns, int earlier)
{
    if (earlier)
        for (size_t j = 0; j < ns; j++) {
            int64_t same = (alo[j] == blo[j]) & (ahi[j] == bhi[j]);
            mult[j] += same;
            first[j] &= !same;
        }
    else
        for (size_t j = 0; j < ns; j++)
            mult[j] += (alo[j] == blo[j]) & (ahi[j] == bhi[j]);
}

/* Every x once and every row counted: sample j's group is its patterns
 * across the rows. Row r's pattern of j makes a key of count m when no
 * earlier row has it and m rows do (compared row by row, vectorised across
 * samples). The dense histogram gets the keys above 1. */
static uint64_t xt_distinct_rows(ipm_partition *p, uint32_t *dense)
{
    size_t ns = (size_t)p->ns;
    uint64_t top = 0;
    int64_t *mult = p->lane, *first = p->lane + ns;
    for (int r = 0; r < p->rows; r++) {
        const uint64_t *alo = p->lo + (size_t)r * ns, *ahi = p->hi + (size_t)r * ns;
        for (size_t j = 0; j < ns; j++) {
            mult[j] = 1;
            first[j] = 1;
        }
        for (int k = 0; k < p->rows; k++)
            if (k != r)
                compare_rows(alo, ahi, p->lo + (size_t)k * ns, p->hi + (size_t)k * ns, mult, first,
                             ns, k < r);
        for (size_t j = 0; j < ns; j++)
            if (first[j] && mult[j] > 1) {
                dense[mult[j]]++;
                top = (uint64_t)mult[j] > top ? (uint64_t)mult[j] : top;
            }
    }
    return top;
}

/* The (X, T) histogram: in every x group, the runs of equal patterns. */
static int xt_hist(ipm_partition *p, const int32_t *drawn, ipm_hist *out, char *err)
{
    uint64_t top = 0, total = 0;
    if (p->groups.n_x == p->ns && drawn) /* one pair per x: every key of its own */
        return ipm_hist_add_dense(out, p->dense, 0, (uint64_t)p->ns, err);
    if (p->groups.n_x == p->ns && p->rows <= ROW_COMPARE_ROWS) {
        top = xt_distinct_rows(p, p->dense);
        return ipm_hist_add_dense(out, p->dense, top, (uint64_t)p->ns * (uint64_t)p->rows, err);
    }
    for (int x = 0; x < p->groups.n_x; x++) {
        int m = gather_group(p, x, drawn);
        sort_patterns(p->group, p->group + m, m);
        for (int j = 0; j < m;) {
            int run = j + 1;
            while (run < m && compare_patterns(&p->group[run], &p->group[j]) == 0)
                run++;
            p->dense[run - j]++;
            top = (uint64_t)(run - j) > top ? (uint64_t)(run - j) : top;
            j = run;
        }
        total += (uint64_t)m;
    }
    return ipm_hist_add_dense(out, p->dense, top, total, err);
}

/* Row of each sample's drawn replica: the replica itself when every row
 * came, row 0 when only the drawn ones did. */
static int32_t *drawn_rows(const ipm_partition *p, const uint32_t *choice, char *err)
{
    const int32_t *mine = p->slices.sample + p->slices.first[p->part];
    int32_t *drawn = malloc(((size_t)p->ns + 1) * sizeof *drawn);
    if (!drawn) {
        ipm_fail(err, "out of memory for %d drawn replicas", p->ns);
        return NULL;
    }
    for (int j = 0; j < p->ns; j++)
        drawn[j] = p->est[IPM_PART_POOLED] ? (int32_t)choice[mine[j]] : 0;
    return drawn;
}

static int xt_hists(ipm_partition *p, const uint32_t *choice, ipm_hist *hist, char *err)
{
    if (p->est[IPM_PART_POOLED] &&
        xt_hist(p, NULL, &hist[IPM_PART_POOLED * IPM_HISTS_PER_ESTIMATOR + IPM_HIST_XT], err))
        return -1;
    if (!p->est[IPM_PART_SAMPLED])
        return 0;
    int32_t *drawn = drawn_rows(p, choice, err);
    int rc = drawn ? xt_hist(p, drawn,
                             &hist[IPM_PART_SAMPLED * IPM_HISTS_PER_ESTIMATOR + IPM_HIST_XT], err)
                   : -1;
    free(drawn);
    return rc;
}

/* The 8-bit digits of a cell's sort key, least significant first: y's 4,
 * lo's 8, hi's 8. */
enum { KEY_DIGITS = 20 };

static inline unsigned key_digit(const ipm_cell *c, int d)
{
    uint64_t word = d < 4 ? c->y : d < 12 ? c->lo : c->hi;
    int shift = 8 * (d < 4 ? d : d < 12 ? d - 4 : d - 12);
    return (unsigned)(word >> shift) & 0xff;
}

/* Which digits differ between some cells: the others need no pass. */
static void varying_digits(const ipm_cell_list *l, int *vary)
{
    uint64_t or_y = 0, and_y = ~0ull, or_lo = 0, and_lo = ~0ull, or_hi = 0, and_hi = ~0ull;
    for (size_t k = 0; k < l->n; k++) {
        const ipm_cell *c = &l->cell[k];
        or_y |= c->y;
        and_y &= c->y;
        or_lo |= c->lo;
        and_lo &= c->lo;
        or_hi |= c->hi;
        and_hi &= c->hi;
    }
    uint64_t differ[3] = {or_y ^ and_y, or_lo ^ and_lo, or_hi ^ and_hi};
    for (int d = 0; d < KEY_DIGITS; d++) {
        int word = d < 4 ? 0 : d < 12 ? 1 : 2, shift = 8 * (d < 4 ? d : d < 12 ? d - 4 : d - 12);
        vary[d] = ((differ[word] >> shift) & 0xff) != 0;
    }
}

static void swap_lists(ipm_cell_list *a, ipm_cell_list *b)
{
    ipm_cell_list t = *a;
    *a = *b;
    *b = t;
}

/* LSD radix sort by (hi, lo, y), one streaming pass per digit that varies
 * (a hash table would miss the cache on nearly every cell). */
static void radix_sort(ipm_cell_list *l, ipm_cell_list *scratch)
{
    int vary[KEY_DIGITS];
    varying_digits(l, vary);
    for (int d = 0; d < KEY_DIGITS; d++) {
        if (!vary[d])
            continue;
        size_t at[256] = {0}, sum = 0;
        for (size_t k = 0; k < l->n; k++)
            at[key_digit(&l->cell[k], d)]++;
        for (int v = 0; v < 256; v++) {
            size_t c = at[v];
            at[v] = sum;
            sum += c;
        }
        for (size_t k = 0; k < l->n; k++)
            scratch->cell[at[key_digit(&l->cell[k], d)]++] = l->cell[k];
        scratch->n = l->n;
        swap_lists(l, scratch);
    }
}

static int reserve_counts(ipm_partition *p, size_t n, char *err)
{
    if (n <= p->counts_capacity)
        return 0;
    uint64_t *c = realloc(p->counts, n * sizeof *c);
    if (!c)
        return ipm_fail(err, "out of memory for %zu counts", n);
    p->counts = c;
    p->counts_capacity = n;
    return 0;
}

/* The sorted cells' counts: of each pattern (T), or of each (pattern, y). */
static size_t run_counts(const ipm_cell_list *l, int with_y, uint64_t *out)
{
    size_t n = 0;
    for (size_t k = 0; k < l->n;) {
        const ipm_cell *a = &l->cell[k];
        uint64_t sum = 0;
        for (; k < l->n && l->cell[k].lo == a->lo && l->cell[k].hi == a->hi &&
               (!with_y || l->cell[k].y == a->y);
             k++)
            sum += l->cell[k].count;
        out[n++] = sum;
    }
    return n;
}

/* LSD radix sort of n (key, count) word pairs by key, 11 bits a pass,
 * skipping the digits every key shares. */
static uint64_t *radix_sort_keyed(uint64_t *v, uint64_t *tmp, size_t n, uint64_t differ)
{
    enum { BITS = 11, BUCKETS = 1 << BITS };
    for (int shift = 0; shift < 64; shift += BITS) {
        if (((differ >> shift) & (BUCKETS - 1)) == 0)
            continue;
        size_t at[BUCKETS] = {0}, sum = 0;
        for (size_t k = 0; k < n; k++)
            at[(v[2 * k] >> shift) & (BUCKETS - 1)]++;
        for (int b = 0; b < BUCKETS; b++) {
            size_t c = at[b];
            at[b] = sum;
            sum += c;
        }
        for (size_t k = 0; k < n; k++) {
            size_t to = at[(v[2 * k] >> shift) & (BUCKETS - 1)]++;
            tmp[2 * to] = v[2 * k];
            tmp[2 * to + 1] = v[2 * k + 1];
        }
        uint64_t *t = v;
        v = tmp;
        tmp = t;
    }
    return v;
}

static int bits_for(uint64_t v)
{
    return v ? 64 - __builtin_clzll(v) : 0;
}

/* Patterns of at most 64 - y bits: each cell one 64-bit key pattern << ybits
 * | y, sorted in two-word records; 0 with T and (Y, T) counts in p->counts
 * (T's first, n_t of them), 1 when the cells do not fit. */
static int narrow_counts(ipm_partition *p, const ipm_cell_list *l, size_t *n_t, size_t *n_yt,
                         char *err)
{
    uint64_t or_lo = 0, and_key = ~0ull, or_key = 0, or_hi = 0;
    int ybits = bits_for((uint64_t)p->n_classes - 1);
    for (size_t k = 0; k < l->n; k++) {
        or_lo |= l->cell[k].lo;
        or_hi |= l->cell[k].hi;
    }
    if (or_hi || bits_for(or_lo) + ybits > 64)
        return 1;
    size_t need = 2 * l->capacity + 2;
    uint64_t *a = realloc(p->keyed, need * sizeof *a);
    uint64_t *b = a ? realloc(p->keyed_scratch, need * sizeof *b) : NULL;
    if (a)
        p->keyed = a;
    if (b)
        p->keyed_scratch = b;
    if (!a || !b)
        return ipm_fail(err, "out of memory sorting %zu cells", l->n);
    for (size_t k = 0; k < l->n; k++) {
        uint64_t key = ybits ? l->cell[k].lo << ybits | l->cell[k].y : l->cell[k].lo;
        a[2 * k] = key;
        a[2 * k + 1] = l->cell[k].count;
        or_key |= key;
        and_key &= key;
    }
    uint64_t *v = radix_sort_keyed(a, b, l->n, or_key ^ and_key);
    size_t t = 0, yt = l->n; /* T counts from the front, (Y, T) counts behind them */
    for (size_t k = 0; k < l->n;) {
        uint64_t pattern = v[2 * k] >> ybits, sum = 0;
        for (; k < l->n && v[2 * k] >> ybits == pattern; k++)
            sum += v[2 * k + 1];
        p->counts[t++] = sum;
    }
    for (size_t k = 0; k < l->n;) {
        uint64_t key = v[2 * k], sum = 0;
        for (; k < l->n && v[2 * k] == key; k++)
            sum += v[2 * k + 1];
        p->counts[yt++] = sum;
    }
    *n_t = t;
    *n_yt = yt - l->n;
    return 0;
}

/* T and (Y, T) histograms of the owned cells; the list emptied. */
static int owned_hists(ipm_partition *p, int est, ipm_hist *h, char *err)
{
    ipm_cell_list *l = &p->owned[est];
    if (reserve_list(&p->scratch, l->capacity, err) || reserve_counts(p, 2 * l->n + 1, err))
        return -1;
    size_t n_t = 0, n_yt = 0;
    int narrow = narrow_counts(p, l, &n_t, &n_yt, err);
    if (narrow < 0)
        return -1;
    if (narrow == 0) {
        int rc = ipm_hist_add_counts(&h[IPM_HIST_T], p->counts, n_t, err);
        if (rc == 0)
            rc = ipm_hist_add_counts(&h[IPM_HIST_YT], p->counts + l->n, n_yt, err);
        l->n = 0;
        return rc;
    }
    radix_sort(l, &p->scratch);
    size_t n = run_counts(l, 0, p->counts);
    int rc = ipm_hist_add_counts(&h[IPM_HIST_T], p->counts, n, err);
    n = run_counts(l, 1, p->counts);
    if (rc == 0)
        rc = ipm_hist_add_counts(&h[IPM_HIST_YT], p->counts, n, err);
    l->n = 0;
    return rc;
}

int ipm_partition_hists(ipm_partition *p, const uint32_t *choice, ipm_hist *hist, char *err)
{
    if (xt_hists(p, choice, hist, err))
        return -1;
    for (int e = 0; e < IPM_PART_ESTIMATORS; e++)
        if (p->est[e] && owned_hists(p, e, hist + e * IPM_HISTS_PER_ESTIMATOR, err))
            return -1;
    return 0;
}

void ipm_hists_entropies(const ipm_hist *hist, double *h_t, double *h_xt, double *h_yt)
{
    *h_t = ipm_hist_entropy(&hist[IPM_HIST_T]);
    *h_xt = ipm_hist_entropy(&hist[IPM_HIST_XT]);
    *h_yt = ipm_hist_entropy(&hist[IPM_HIST_YT]);
}
