/* partition: who owns which samples and patterns, what goes where, and the
 * histograms a part makes of what it owns. */
#include "ipmpi/info/partition.h"

#include <stdlib.h>
#include <string.h>

#include "ipmpi/base/assert.h"
#include "ipmpi/base/error.h"
#include "ipmpi/info/hash.h"

/* The room a kept buffer grows to when n items no longer fit (partition.h:
 * ipm_words_reserve says why a quarter more). */
static size_t grown(size_t n)
{
    return n + n / 4 + 1;
}

int ipm_words_reserve(ipm_words *buf, size_t n, const char *what, char *err)
{
    if (n <= buf->capacity)
        return 0;
    free(buf->w);
    size_t room = grown(n);
    buf->w = malloc(room * sizeof *buf->w);
    buf->capacity = buf->w ? room : 0;
    return buf->w ? 0 : ipm_fail(err, "out of memory for %zu words %s", n, what);
}

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

#define TALLY_DENSE 4096 /* owned sums up to this are tallied in place */
/* 4 slots a pattern: one alone on its part is taken for shared with
 * probability 1 - exp(-1/8) at 2 parts. */
#define FILTER_SLOTS_PER_PATTERN 4
#define FILTER_MOST_SLOTS (1ull << 27) /* 32 MiB a layer: beyond, slots are shared more often */

static int alloc_receiving(ipm_partition *p, char *err)
{
    size_t cells = (size_t)p->rows * (size_t)p->ns;
    size_t group = (size_t)p->rows * (size_t)p->groups.largest;
    p->lo = malloc((cells + 1) * sizeof *p->lo);
    p->hi = malloc((cells + 1) * sizeof *p->hi);
    p->group = malloc((2 * group + 1) * sizeof *p->group); /* and room to sort it */
    p->dense = calloc(group + 1, sizeof *p->dense);
    p->tally = calloc(TALLY_DENSE + 1, sizeof *p->tally);
    p->row_lo = calloc((size_t)p->rows + 1, sizeof *p->row_lo);
    p->row_hi = calloc((size_t)p->rows + 1, sizeof *p->row_hi);
    p->row_half = calloc((size_t)p->rows + 1, sizeof *p->row_half);
    if (!p->lo || !p->hi || !p->group || !p->dense || !p->tally || !p->row_lo || !p->row_hi ||
        !p->row_half)
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

static int uses_filter(const ipm_partition_spec *spec)
{
    if (spec->n_parts < 2 || spec->filter == IPM_FILTER_OFF)
        return 0;
    return spec->filter == IPM_FILTER_ON || spec->n_parts <= IPM_FILTER_MOST_PARTS;
}

/* A layer's slots: FILTER_SLOTS_PER_PATTERN for each pattern it can have,
 * at most one per (sample, replica) and one per combination of bins. */
static uint64_t filter_slots(const ipm_partition_spec *spec, int layer)
{
    if (spec->filter_slots)
        return spec->filter_slots;
    uint64_t most = (uint64_t)spec->n * (uint64_t)spec->n_replicas, kinds = 1;
    for (int u = 0; u < spec->width[layer] && kinds < most; u++)
        kinds *= (uint64_t)spec->n_edges + 1;
    most = kinds < most ? kinds : most;
    uint64_t slots = 64;
    while (slots < FILTER_SLOTS_PER_PATTERN * most && slots < FILTER_MOST_SLOTS)
        slots *= 2;
    return slots;
}

static int alloc_filter(ipm_partition *p, const ipm_partition_spec *spec, char *err)
{
    ipm_filter *f = &p->filter;
    f->at = calloc((size_t)p->n_layers + 1, sizeof *f->at);
    f->mask = calloc((size_t)p->n_layers + 1, sizeof *f->mask);
    if (!f->at || !f->mask)
        return ipm_fail(err, "out of memory for the partitioned reduce's filter");
    if (!uses_filter(spec))
        return 0;
    size_t words = 0;
    for (int l = 0; l < p->n_layers; l++)
        if (p->words[l]) {
            uint64_t slots = filter_slots(spec, l);
            IPM_ASSERT(slots >= 64 && (slots & (slots - 1)) == 0);
            f->at[l] = words;
            f->mask[l] = slots - 1;
            words += 2 * (size_t)(slots / 64);
        }
    f->word = malloc((words + 1) * sizeof *f->word);
    if (!f->word)
        return ipm_fail(err, "out of memory for the %zu words of the partitioned reduce's filter",
                        words);
    f->n_words = words;
    return 0;
}

int ipm_partition_init(ipm_partition *p, const ipm_partition_spec *spec, char *err)
{
    memset(p, 0, sizeof *p);
    p->part = spec->part;
    p->n_parts = spec->n_parts;
    p->n_replicas = spec->n_replicas;
    p->n_layers = spec->n_layers;
    p->n_classes = spec->n_classes > 0 ? spec->n_classes : 1;
    while ((1 << p->class_bits) < p->n_classes)
        p->class_bits++;
    p->est[IPM_PART_POOLED] = spec->pooled;
    p->est[IPM_PART_SAMPLED] = spec->sampled;
    p->rows = spec->pooled ? spec->n_replicas : 1;
    p->x_id = spec->x_id;
    p->words = calloc((size_t)p->n_layers, sizeof *p->words);
    p->half_rows = calloc((size_t)p->n_layers + 1, sizeof *p->half_rows);
    p->cell_words = calloc((size_t)p->n_layers + 1, sizeof *p->cell_words);
    p->sizes = calloc(2 * (size_t)p->n_parts, sizeof *p->sizes);
    p->offsets = calloc(4 * (size_t)p->n_parts, sizeof *p->offsets);
    p->cells = calloc((size_t)p->n_layers * IPM_PART_ESTIMATORS, sizeof *p->cells);
    p->mine = calloc((size_t)p->n_layers * IPM_HISTS_PER_LAYER, sizeof *p->mine);
    p->hash_at = calloc((size_t)p->n_layers + 1, sizeof *p->hash_at);
    if (!p->words || !p->half_rows || !p->cell_words || !p->cells || !p->mine || !p->hash_at ||
        !p->sizes || !p->offsets)
        return ipm_fail(err, "out of memory for the partitioned reduce");
    for (int l = 0; l < p->n_layers; l++) {
        p->words[l] = spec->measured[l] ? ipm_pattern_words(spec->width[l], spec->n_edges) : 0;
        int64_t bits = (int64_t)spec->width[l] * ipm_bin_bits(spec->n_edges);
        p->half_rows[l] = spec->measured[l] && spec->pooled && bits <= 32;
        p->cell_words[l] = !spec->measured[l]           ? 0
                           : bits + p->class_bits <= 32 ? 1
                                                        : p->words[l] + 1;
    }
    if (alloc_filter(p, spec, err))
        return -1;
    if (ipm_slices_init(&p->slices, spec->x_id, spec->n, spec->n_parts, err))
        return -1;
    p->ns = p->slices.first[p->part + 1] - p->slices.first[p->part];
    return group_own_samples(p, err) || alloc_receiving(p, err) ||
                   ipm_dict_init(&p->dict, (size_t)p->ns, err)
               ? -1
               : 0;
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
    ipm_hists_free(p->mine, (size_t)p->n_layers * IPM_HISTS_PER_LAYER);
    free(p->filter.word);
    free(p->filter.at);
    free(p->filter.mask);
    free(p->hash_at);
    free(p->hash);
    free(p->alone);
    free(p->words);
    free(p->sizes);
    free(p->offsets);
    ipm_slices_free(&p->slices);
    free(p->lo);
    free(p->hi);
    free(p->row_lo);
    free(p->row_hi);
    free(p->row_half);
    free(p->half_rows);
    free(p->cell_words);
    free(p->group);
    free(p->dense);
    ipm_x_groups_free(&p->groups);
    for (int e = 0; e < IPM_PART_ESTIMATORS; e++) {
        free(p->owned[e].key);
        free(p->owned[e].y);
        free(p->owned[e].count);
    }
    ipm_dict_free(&p->dict);
    free(p->ids);
    free(p->sum_t);
    free(p->sum_yt);
    free(p->touched);
    free(p->send.w);
    free(p->recv.w);
    free(p->counts);
    free(p->tally);
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
    size_t room = grown(n);
    c->cell = malloc(room * sizeof *c->cell);
    c->scratch = malloc(room * sizeof *c->scratch);
    c->owner = malloc(room * sizeof *c->owner);
    c->capacity = c->cell && c->scratch && c->owner ? room : 0;
    if (!c->capacity)
        return ipm_fail(err, "out of memory for %zu (Y, T) cells", n);
    return 0;
}

/* Counting sort of the cells by owner, stable (hash: by pattern id). */
static void group_by_owner(ipm_cells *c, const uint64_t *hash, int n_parts)
{
    memset(c->start, 0, ((size_t)n_parts + 1) * sizeof *c->start);
    for (size_t k = 0; k < c->n; k++) {
        c->owner[k] = ipm_hash_owner(hash[c->cell[k].id], n_parts);
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

/* Room for one estimator's cells of a layer: one per pair counted, at most
 * one per (pattern, class). */
static ipm_cells *cells_room(ipm_partition *p, const ipm_binned *b, int layer, int est, char *err)
{
    size_t pairs_n = (size_t)b->n * (size_t)(est == IPM_PART_SAMPLED ? 1 : b->n_seen);
    size_t most = b->layer[layer].dict.len * (size_t)p->n_classes;
    ipm_cells *c = cells_of(p, layer, est);
    return reserve_cells(c, (pairs_n < most ? pairs_n : most) + 1, p->n_parts, err) ? NULL : c;
}

static int count_cells(ipm_partition *p, int layer, int est, const ipm_binned *b,
                       ipm_counter *counter, const int32_t *const *ids, const int32_t *y, char *err)
{
    ipm_cells *c = cells_room(p, b, layer, est, err);
    if (!c)
        return -1;
    ipm_pairs pairs = {ids, b->n_seen, est == IPM_PART_SAMPLED ? b->pick : NULL};
    c->n = ipm_count_yt_cells(counter, &pairs, y, c->cell);
    return 0;
}

ipm_id_count *ipm_partition_pooled_room(ipm_partition *p, const ipm_binned *b, int layer, char *err)
{
    IPM_ASSERT(p->est[IPM_PART_POOLED] && p->words[layer]);
    ipm_cells *c = cells_room(p, b, layer, IPM_PART_POOLED, err);
    return c ? c->cell : NULL;
}

void ipm_partition_pooled_counted(ipm_partition *p, int layer, size_t n)
{
    ipm_cells *c = cells_of(p, layer, IPM_PART_POOLED);
    IPM_ASSERT(n < c->capacity);
    c->n = n;
}

/* The hashes of every measured layer's patterns, by id (layer l's from
 * p->hash_at[l]), and room to mark which are on this part alone. */
static int hash_patterns(ipm_partition *p, const ipm_binned *b, char *err)
{
    size_t n = 0, most = 0;
    for (int l = 0; l < p->n_layers; l++) {
        p->hash_at[l] = n;
        size_t len = p->words[l] ? b->layer[l].dict.len : 0;
        n += len;
        most = len > most ? len : most;
    }
    if (n + 1 > p->hash_capacity || most + 1 > p->alone_capacity) {
        free(p->hash);
        free(p->alone);
        p->hash_capacity = p->alone_capacity = 0;
        size_t room = grown(n), alone_room = grown(most);
        p->hash = malloc(room * sizeof *p->hash);
        p->alone = malloc(alone_room);
        if (!p->hash || !p->alone)
            return ipm_fail(err, "out of memory for the hashes of %zu patterns", n);
        p->hash_capacity = room;
        p->alone_capacity = alone_room;
    }
    for (int l = 0; l < p->n_layers; l++) {
        const ipm_dict *d = &b->layer[l].dict;
        uint64_t *hash = p->hash + p->hash_at[l];
        for (size_t k = 0; p->words[l] && k < d->len; k++)
            hash[k] = ipm_pattern_hash(d->key[k]);
    }
    return 0;
}

/* This part's patterns of every measured layer marked in the filter. */
static void mark_filter(ipm_partition *p, const ipm_binned *b)
{
    ipm_filter *f = &p->filter;
    memset(f->word, 0, f->n_words * sizeof *f->word);
    for (int l = 0; l < p->n_layers; l++) {
        if (!p->words[l])
            continue;
        uint64_t *pair = f->word + f->at[l], mask = f->mask[l];
        const uint64_t *hash = p->hash + p->hash_at[l];
        for (size_t k = 0; k < b->layer[l].dict.len; k++) {
            uint64_t slot = hash[k] & mask;
            pair[2 * (slot >> 6)] |= 1ull << (slot & 63);
        }
    }
}

int ipm_partition_count(ipm_partition *p, const ipm_binned *b, ipm_counter *counter,
                        const int32_t *y, int pooled_counted, char *err)
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
            if (p->est[e] && !(e == IPM_PART_POOLED && pooled_counted))
                rc = count_cells(p, l, e, b, counter, ids, y, err);
    }
    free(ids);
    if (rc == 0)
        rc = hash_patterns(p, b, err);
    if (rc == 0 && p->filter.n_words)
        mark_filter(p, b);
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
        words += 2 + (p->half_rows[l] ? (rows + 1) / 2 : rows * (size_t)w);
        for (int e = 0; e < IPM_PART_ESTIMATORS; e++)
            if (p->est[e]) {
                const ipm_cells *c = cells_of(p, l, e);
                words += (c->start[dest + 1] - c->start[dest]) * (size_t)p->cell_words[l];
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

/* Every slot's patterns of the samples mine[0..ns) as consecutive 32-bit
 * values (stored as such, so the reader's 32-bit loads read what was
 * stored), a 0 after them when they are odd. */
static uint64_t *pack_half_rows(const ipm_pattern *key, const ipm_binned *b, int layer,
                                const int32_t *mine, int32_t ns, uint64_t *w)
{
    uint32_t *half = (uint32_t *)w;
    for (int k = 0; k < b->n_seen; k++) {
        const int32_t *ids = ipm_binned_ids(b, layer, k);
        for (int32_t j = 0; j < ns; j++)
            *half++ = (uint32_t)key[ids[mine[j]]].lo;
    }
    if ((size_t)b->n_seen * (size_t)ns % 2)
        *half++ = 0;
    return (uint64_t *)half;
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
    if (p->half_rows[layer])
        return pack_half_rows(key, b, layer, mine, ns, w);
    for (int k = 0; k < b->n_seen; k++) {
        const int32_t *ids = ipm_binned_ids(b, layer, k);
        if (words == 1)
            for (int32_t j = 0; j < ns; j++)
                *w++ = key[ids[mine[j]]].lo;
        else
            for (int32_t j = 0; j < ns; j++)
                w = put_pattern(w, key[ids[mine[j]]], 2);
    }
    return w;
}

/* A cell in one word: (pattern << class_bits | y) << 32 | count. */
static inline uint64_t one_word_cell(uint64_t pattern, uint32_t y, uint32_t count, int class_bits)
{
    return (pattern << class_bits | y) << 32 | count;
}

/* one_word_cell's pattern, and its y << 32 | count as a two-word cell has it. */
static inline uint64_t one_word_cell_pattern(uint64_t v, int class_bits)
{
    return v >> 32 >> class_bits;
}

static inline uint64_t one_word_cell_yc(uint64_t v, int class_bits)
{
    return (v >> 32 & ((1u << class_bits) - 1)) << 32 | (uint32_t)v;
}

static uint64_t *pack_cells(const ipm_partition *p, const ipm_cells *c, const ipm_pattern *key,
                            int layer, int dest, uint64_t *w)
{
    int words = p->words[layer];
    if (p->cell_words[layer] == 1) {
        for (size_t k = c->start[dest]; k < c->start[dest + 1]; k++) {
            const ipm_id_count *e = &c->cell[k];
            *w++ = one_word_cell(key[e->id].lo, (uint32_t)e->y, e->count, p->class_bits);
        }
        return w;
    }
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
                w = pack_cells(p, cells_of(p, l, e), b->layer[l].dict.key, l, dest, w);
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

/* Row row's pattern of this part's sample j, copied into the part's own
 * arrays (row_lo, row_hi then point there). */
static inline void put_row(ipm_partition *p, int row, int j, ipm_pattern t)
{
    size_t at = (size_t)row * (size_t)p->ns + (size_t)j;
    p->lo[at] = t.lo;
    p->hi[at] = t.hi;
}

static inline ipm_pattern row_pattern(const ipm_partition *p, int row, int j)
{
    if (p->read_half)
        return (ipm_pattern){p->row_half[row][j], 0};
    return (ipm_pattern){p->row_lo[row][j], p->row_hi[row] ? p->row_hi[row][j] : 0};
}

static void rows_in_arrays(ipm_partition *p, int row)
{
    p->row_lo[row] = p->lo + (size_t)row * (size_t)p->ns;
    p->row_hi[row] = p->hi + (size_t)row * (size_t)p->ns;
}

/* The (X, T) rows source sent: its replicas' patterns of this part's
 * samples. One-word rows are read where they arrived, in the receive
 * buffer; two-word ones are split into halves. */
static void read_rows(ipm_partition *p, int source, const uint64_t **w, int words,
                      const uint32_t *choice)
{
    const int32_t *mine = p->slices.sample + p->slices.first[p->part];
    if (!p->est[IPM_PART_POOLED]) {
        rows_in_arrays(p, 0);
        for (int j = 0; j < p->ns; j++)
            if ((int)(choice[mine[j]] % (uint32_t)p->n_parts) == source)
                put_row(p, 0, j, get_pattern(w, words));
        return;
    }
    int on_source = ipm_replicas_on(source, p->n_replicas, p->n_parts);
    if (p->read_half) { /* in place, as they were stored */
        const uint32_t *half = (const uint32_t *)*w;
        for (int k = 0; k < on_source; k++)
            p->row_half[source + k * p->n_parts] = half + (size_t)k * (size_t)p->ns;
        *w += ((size_t)on_source * (size_t)p->ns + 1) / 2;
        return;
    }
    for (int k = 0; k < on_source; k++) {
        int r = source + k * p->n_parts;
        if (words == 1) {
            p->row_lo[r] = *w;
            p->row_hi[r] = NULL;
            *w += p->ns;
            continue;
        }
        rows_in_arrays(p, r);
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

static int reserve_owned(ipm_owned *o, size_t n, char *err)
{
    if (n <= o->capacity)
        return 0;
    size_t capacity = o->capacity ? o->capacity : 1024;
    while (capacity < n)
        capacity *= 2;
    ipm_pattern *key = realloc(o->key, capacity * sizeof *key);
    if (key)
        o->key = key;
    uint32_t *y = key ? realloc(o->y, capacity * sizeof *y) : NULL;
    if (y)
        o->y = y;
    uint32_t *count = y ? realloc(o->count, capacity * sizeof *count) : NULL;
    if (!count)
        return ipm_fail(err, "out of memory for %zu (Y, T) cells", capacity);
    o->count = count;
    o->capacity = capacity;
    return 0;
}

/* n cells appended to the estimator's owned cells. */
static int read_cells(ipm_partition *p, int est, size_t n, const uint64_t **w, int layer, char *err)
{
    ipm_owned *o = &p->owned[est];
    if (reserve_owned(o, o->n + n, err))
        return -1;
    int words = p->words[layer], one_word = p->cell_words[layer] == 1;
    for (size_t k = 0; k < n; k++) {
        ipm_pattern t = {0, 0};
        uint64_t yc;
        if (one_word) {
            uint64_t v = *(*w)++;
            t.lo = one_word_cell_pattern(v, p->class_bits);
            yc = one_word_cell_yc(v, p->class_bits);
        } else {
            t = get_pattern(w, words);
            yc = *(*w)++;
        }
        uint32_t y = (uint32_t)(yc >> 32), count = (uint32_t)yc;
        if (y >= (uint32_t)p->n_classes || count == 0)
            return ipm_fail(err, "partitioned reduce: a malformed cell (class %u, count %u)", y,
                            count);
        IPM_ASSERT(ipm_pattern_owner(t, p->n_parts) == p->part);
        o->key[o->n] = t;
        o->y[o->n] = y;
        o->count[o->n++] = count;
    }
    return 0;
}

int ipm_partition_read(ipm_partition *p, int layer, int source, const uint64_t **w,
                       const uint64_t *end, const uint32_t *choice, char *err)
{
    int words = p->words[layer];
    IPM_ASSERT(words == 1 || words == 2);
    p->read_words = words;
    p->read_half = p->half_rows[layer];
    if (end - *w < 2)
        return ipm_fail(err, "partitioned reduce: rank %d sent too few words", source);
    uint64_t n_cells[IPM_PART_ESTIMATORS] = {(*w)[0], (*w)[1]};
    *w += 2;
    size_t rows = rows_from(p, source, choice);
    uint64_t rows_words = p->read_half ? (rows + 1) / 2 : rows * (uint64_t)words;
    uint64_t need = rows_words + (n_cells[0] + n_cells[1]) * (uint64_t)p->cell_words[layer];
    if ((uint64_t)(end - *w) < need)
        return ipm_fail(err,
                        "partitioned reduce: rank %d sent %td words of layer %d, "
                        "expected at least %llu",
                        source, end - *w, layer + 1, (unsigned long long)need);
    read_rows(p, source, w, words, choice);
    for (int e = 0; e < IPM_PART_ESTIMATORS; e++)
        if (read_cells(p, e, p->est[e] ? n_cells[e] : 0, w, layer, err))
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

/* Every x once and every row counted: sample j's group is its patterns
 * across the rows, compared row against row (count.h). */
static uint64_t xt_distinct_rows(ipm_partition *p, uint32_t *dense)
{
    size_t ns = (size_t)p->ns;
    if (p->read_half) /* the halves compared as 32-bit ids: equal exactly when the patterns are */
        return ipm_rows_key_counts((const int32_t *const *)p->row_half, NULL, p->rows, ns, dense);
    return p->read_words == 2 ? ipm_rows_key_counts2(p->row_lo, p->row_hi, p->rows, ns, dense)
                              : ipm_rows_key_counts(NULL, p->row_lo, p->rows, ns, dense);
}

/* The (X, T) histogram: in every x group, the runs of equal patterns. */
static int xt_hist(ipm_partition *p, const int32_t *drawn, ipm_hist *out, char *err)
{
    uint64_t top = 0, total = 0;
    if (p->groups.n_x == p->ns && drawn) /* one pair per x: every key of its own */
        return ipm_hist_add_dense(out, p->dense, 0, (uint64_t)p->ns, err);
    if (p->groups.n_x == p->ns && p->rows <= IPM_ROWS_COMPARED) {
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

/* Room for the sums of n owned cells. */
static int reserve_sums(ipm_partition *p, size_t n, char *err)
{
    if (n + 1 <= p->sums_capacity)
        return 0;
    free(p->ids);
    free(p->sum_t);
    free(p->sum_yt);
    free(p->touched);
    free(p->counts);
    size_t room = grown(n);
    p->ids = malloc(room * sizeof *p->ids);
    p->sum_t = calloc(room, sizeof *p->sum_t);
    p->sum_yt = calloc(room << p->class_bits, sizeof *p->sum_yt);
    p->touched = malloc(room * sizeof *p->touched);
    p->counts = malloc(room * sizeof *p->counts);
    p->sums_capacity = p->ids && p->sum_t && p->sum_yt && p->touched && p->counts ? room : 0;
    if (!p->sums_capacity)
        return ipm_fail(err, "out of memory summing %zu (Y, T) cells", n);
    return 0;
}

/* A histogram being tallied: counts up to TALLY_DENSE in place (the ones
 * show only in the total: most are 1 where patterns are many, and tallying
 * them would chain every store), larger ones listed in p->counts. */
typedef struct tally {
    uint64_t total, top;
    size_t n_large;
} tally;

static inline void tally_count(ipm_partition *p, tally *t, uint32_t c)
{
    if (c > TALLY_DENSE) {
        p->counts[t->n_large++] = c;
        return;
    }
    t->total += c;
    if (c > 1) {
        p->tally[c]++;
        t->top = c > t->top ? c : t->top;
    }
}

static int tally_into_hist(ipm_partition *p, const tally *t, ipm_hist *h, char *err)
{
    int rc = ipm_hist_add_dense(h, p->tally, t->top, t->total, err); /* clears the tally */
    return rc == 0 && t->n_large ? ipm_hist_add_counts(h, p->counts, t->n_large, err) : rc;
}

#define SUMS_BLOCK 64

/* Tallies sum[0..n) (n <= SUMS_BLOCK) and empties them. Where patterns are
 * many most sums are 0 (sent) or 1, which only add to the total: a block
 * without a larger one is summed in vector lanes. */
static inline void tally_block(ipm_partition *p, tally *t, uint32_t *restrict sum, size_t n)
{
    uint64_t total = 0;
    uint32_t larger = 0;
    for (size_t k = 0; k < n; k++) {
        total += sum[k];
        larger |= sum[k] > 1;
    }
    if (larger)
        for (size_t k = 0; k < n; k++)
            tally_count(p, t, sum[k]);
    else
        t->total += total;
    memset(sum, 0, n * sizeof *sum);
}

/* The histogram of the sums sum[at[k]] (at NULL: sum[k]), k < n, into h,
 * the sums emptied. */
static int sums_into_hist(ipm_partition *p, uint32_t *sum, const int32_t *at, size_t n, ipm_hist *h,
                          char *err)
{
    tally t = {0, 0, 0};
    if (at)
        for (size_t k = 0; k < n; k++) {
            tally_count(p, &t, sum[at[k]]);
            sum[at[k]] = 0;
        }
    else
        for (size_t k = 0; k < n; k += SUMS_BLOCK)
            tally_block(p, &t, sum + k, n - k < SUMS_BLOCK ? n - k : SUMS_BLOCK);
    return tally_into_hist(p, &t, h, err);
}

/* The owned cells' patterns get dense ids (each part sent a (pattern, y)
 * once, so the cells of one id differ in their class or their sender),
 * and the counts are summed by id (T) and by id and class ((Y, T)); the
 * sums, each emptied as it is read, become the histograms. (Sorting the
 * cells instead, by radix or by hash bucket, cost more: its scattered
 * writes miss the cache as often as the dictionary's probes.) */
static int owned_hists(ipm_partition *p, int est, ipm_hist *h, char *err)
{
    ipm_owned *o = &p->owned[est];
    ipm_dict_clear(&p->dict);
    if (reserve_sums(p, o->n, err) || ipm_dict_map(&p->dict, o->key, (int)o->n, p->ids, err))
        return -1;
    int bits = p->class_bits;
    size_t n_yt = 0;
    for (size_t k = 0; k < o->n; k++) { /* (Y, T) cells listed where first summed */
        size_t cell = (size_t)p->ids[k] << bits | o->y[k];
        p->touched[n_yt] = (int32_t)cell;
        n_yt += p->sum_yt[cell] == 0;
        p->sum_yt[cell] += o->count[k];
        p->sum_t[p->ids[k]] += o->count[k];
    }
    int rc = sums_into_hist(p, p->sum_yt, p->touched, n_yt, &h[IPM_HIST_YT], err);
    if (rc == 0) /* ids are 0 .. len - 1 */
        rc = sums_into_hist(p, p->sum_t, NULL, p->dict.len, &h[IPM_HIST_T], err);
    o->n = 0;
    return rc;
}

/* The counts this part kept of layer, added to its histograms. */
static int add_mine(ipm_partition *p, int layer, ipm_hist *hist, char *err)
{
    ipm_hist *mine = p->mine + (size_t)layer * IPM_HISTS_PER_LAYER;
    for (int k = 0; k < IPM_HISTS_PER_LAYER; k++) {
        if (ipm_hist_add(&hist[k], mine[k].bin, mine[k].len, err))
            return -1;
        ipm_hist_clear(&mine[k]);
    }
    return 0;
}

int ipm_partition_hists(ipm_partition *p, int layer, const uint32_t *choice, ipm_hist *hist,
                        char *err)
{
    if (xt_hists(p, choice, hist, err))
        return -1;
    for (int e = 0; e < IPM_PART_ESTIMATORS; e++)
        if (p->est[e] && owned_hists(p, e, hist + e * IPM_HISTS_PER_ESTIMATOR, err))
            return -1;
    return add_mine(p, layer, hist, err);
}

/* ---- routing: the cells kept, the cells sent ---------------------------------- */

/* The merged filter's second bits of a layer, moved to the front of its
 * words: what routing reads, in half the cache. */
static void keep_second_bits(ipm_filter *f, int layer)
{
    uint64_t *w = f->word + f->at[layer];
    size_t n = (size_t)(f->mask[layer] / 64 + 1);
    for (size_t k = 0; k < n; k++) /* w[k] was read as w[2 j + 1], j < k, or is read now */
        w[k] = w[2 * k + 1];
}

/* Fewer cells than this fraction of the layer's patterns (the sampled
 * estimator's: one pair a sample) list the patterns they sum, rather than
 * every pattern's sum being read back. */
#define FEW_CELLS_PER_PATTERN 4

/* The cells of the patterns on this part alone leave c for the part's own
 * histograms h (T: their sums by pattern; (Y, T): each cell, a key of its
 * own); the others stay, in order. One pass without a branch on which way
 * a cell goes (a coin toss in layers between few and many patterns): a
 * cell sent is tallied as a count of 0, which adds nothing. The T sums are
 * read back from every pattern's or, with few cells, from the list of the
 * patterns summed (p->touched). */
static int keep_alone(ipm_partition *p, ipm_cells *c, size_t n_ids, ipm_hist *h, char *err)
{
    if (reserve_sums(p, c->n > n_ids ? c->n : n_ids, err))
        return -1;
    const uint8_t *alone = p->alone;
    uint32_t *sum_t = p->sum_t;
    int32_t *summed = p->touched;
    tally yt = {0, 0, 0};
    size_t n_cells = c->n, n_sent = 0, n_summed = 0;
    int few = n_cells * FEW_CELLS_PER_PATTERN < n_ids;
    for (size_t k = 0; k < n_cells; k++) {
        ipm_id_count e = c->cell[k];
        uint32_t kept = alone[e.id], count = e.count & (0u - kept);
        c->cell[n_sent] = e; /* n_sent <= k */
        n_sent += kept ^ 1u;
        if (few) {
            summed[n_summed] = e.id; /* n_summed <= k */
            n_summed += (sum_t[e.id] == 0) & kept;
        }
        sum_t[e.id] += count;
        tally_count(p, &yt, count);
    }
    c->n = n_sent;
    if (tally_into_hist(p, &yt, &h[IPM_HIST_YT], err))
        return -1;
    return few ? sums_into_hist(p, sum_t, summed, n_summed, &h[IPM_HIST_T], err)
               : sums_into_hist(p, sum_t, NULL, n_ids, &h[IPM_HIST_T], err);
}

/* Which of n patterns (hashes) are on this part alone, into alone[]: the
 * filter's second bits read in vector lanes where the core gathers. */
__attribute__((target_clones("avx512f", "avx2", "default"))) static void
read_second_bits(const uint64_t *restrict second, uint64_t mask, const uint64_t *restrict hash,
                 size_t n, uint8_t *restrict alone)
{
    for (size_t k = 0; k < n; k++) {
        uint64_t slot = hash[k] & mask;
        alone[k] = (uint8_t)(~second[slot >> 6] >> (slot & 63) & 1);
    }
}

/* Which of the layer's patterns are on this part alone, into p->alone. */
static void find_alone(ipm_partition *p, int layer, size_t n_ids)
{
    read_second_bits(p->filter.word + p->filter.at[layer], p->filter.mask[layer],
                     p->hash + p->hash_at[layer], n_ids, p->alone);
}

int ipm_partition_route(ipm_partition *p, const ipm_binned *b, int merged, char *err)
{
    for (int l = 0; l < p->n_layers; l++) {
        if (!p->words[l])
            continue;
        const ipm_dict *d = &b->layer[l].dict;
        int filtered = merged && p->filter.n_words;
        if (filtered) {
            keep_second_bits(&p->filter, l);
            find_alone(p, l, d->len);
        }
        for (int k = 0; k < IPM_HISTS_PER_LAYER; k++)
            ipm_hist_clear(&p->mine[(size_t)l * IPM_HISTS_PER_LAYER + k]);
        for (int e = 0; e < IPM_PART_ESTIMATORS; e++) {
            if (!p->est[e])
                continue;
            ipm_cells *c = cells_of(p, l, e);
            ipm_hist *h = p->mine + (size_t)l * IPM_HISTS_PER_LAYER + e * IPM_HISTS_PER_ESTIMATOR;
            if (filtered && keep_alone(p, c, d->len, h, err))
                return -1;
            group_by_owner(c, p->hash + p->hash_at[l], p->n_parts);
        }
    }
    return 0;
}

void ipm_hists_entropies(const ipm_hist *hist, double *h_t, double *h_xt, double *h_yt)
{
    *h_t = ipm_hist_entropy(&hist[IPM_HIST_T]);
    *h_xt = ipm_hist_entropy(&hist[IPM_HIST_XT]);
    *h_yt = ipm_hist_entropy(&hist[IPM_HIST_YT]);
}
