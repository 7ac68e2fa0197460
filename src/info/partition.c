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
    size_t ns = (size_t)p->ns, cells = (size_t)p->rows * ns;
    p->pat = malloc((cells + 1) * sizeof *p->pat);
    p->ids = malloc((cells + 1) * sizeof *p->ids);
    p->row = malloc((size_t)p->rows * sizeof *p->row);
    p->pick = malloc((ns + 1) * sizeof *p->pick);
    if (!p->pat || !p->ids || !p->row || !p->pick)
        return ipm_fail(err, "out of memory for %zu patterns of the partitioned reduce", cells);
    for (int r = 0; r < p->rows; r++)
        p->row[r] = p->ids + (size_t)r * ns;
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

static int init_tables(ipm_partition *p, char *err)
{
    for (int e = 0; e < IPM_PART_ESTIMATORS; e++)
        if (p->est[e] && (ipm_table_init(&p->t[e], 1024, err) ||
                          ipm_table_init(&p->yt[e], 1024, err)))
            return -1;
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
    if (alloc_receiving(p, err) || group_own_samples(p, err) ||
        ipm_dict_init(&p->dict, (size_t)p->rows * (size_t)p->ns, err) ||
        ipm_counter_init(&p->counter, p->ns, p->rows, p->n_classes, p->groups.largest, err))
        return -1;
    return init_tables(p, err);
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
    free(p->pat);
    free(p->ids);
    free(p->row);
    free(p->pick);
    ipm_dict_free(&p->dict);
    ipm_x_groups_free(&p->groups);
    ipm_counter_free(&p->counter);
    for (int e = 0; e < IPM_PART_ESTIMATORS; e++) {
        ipm_table_free(&p->t[e]);
        ipm_table_free(&p->yt[e]);
    }
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
                       ipm_counter *counter, const int32_t *const *ids, const int32_t *y,
                       char *err)
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

/* The (X, T) rows source sent: its replicas' patterns of this part's samples. */
static void read_rows(ipm_partition *p, int source, const uint64_t **w, int words,
                      const uint32_t *choice)
{
    const int32_t *mine = p->slices.sample + p->slices.first[p->part];
    if (!p->est[IPM_PART_POOLED]) {
        for (int j = 0; j < p->ns; j++)
            if ((int)(choice[mine[j]] % (uint32_t)p->n_parts) == source)
                p->pat[j] = get_pattern(w, words);
        return;
    }
    int on_source = ipm_replicas_on(source, p->n_replicas, p->n_parts);
    for (int k = 0; k < on_source; k++) {
        ipm_pattern *row = p->pat + (size_t)(source + k * p->n_parts) * (size_t)p->ns;
        for (int j = 0; j < p->ns; j++)
            row[j] = get_pattern(w, words);
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

/* n cells into the estimator's T and (Y, T) tables. */
static int read_cells(ipm_partition *p, int est, size_t n, const uint64_t **w, int words,
                      char *err)
{
    for (size_t k = 0; k < n; k++) {
        ipm_pattern t = get_pattern(w, words);
        uint64_t yc = *(*w)++;
        uint32_t y = (uint32_t)(yc >> 32), count = (uint32_t)yc;
        if (y >= (uint32_t)p->n_classes || count == 0)
            return ipm_fail(err, "partitioned reduce: a malformed cell (class %u, count %u)", y,
                            count);
        IPM_ASSERT(ipm_pattern_owner(t, p->n_parts) == p->part);
        if (ipm_table_add(&p->t[est], 0, t, count, err) ||
            ipm_table_add(&p->yt[est], y, t, count, err))
            return -1;
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
        return ipm_fail(err, "partitioned reduce: rank %d sent %td words of layer %d, "
                        "expected at least %llu", source, end - *w, layer + 1,
                        (unsigned long long)need);
    read_rows(p, source, w, words, choice);
    for (int e = 0; e < IPM_PART_ESTIMATORS; e++)
        if (read_cells(p, e, p->est[e] ? n_cells[e] : 0, w, words, err))
            return -1;
    return 0;
}

/* The (X, T) histograms of this part's samples: their patterns mapped to
 * ids, then counted as a data set of their own. */
static int xt_hists(ipm_partition *p, const uint32_t *choice, ipm_hist *hist, char *err)
{
    size_t cells = (size_t)p->rows * (size_t)p->ns;
    ipm_dict_clear(&p->dict);
    if (cells > 0 && ipm_dict_map(&p->dict, p->pat, (int)cells, p->ids, err))
        return -1;
    if (ipm_counter_reserve(&p->counter, p->dict.len, err))
        return -1;
    const int32_t *mine = p->slices.sample + p->slices.first[p->part];
    int pooled = p->est[IPM_PART_POOLED];
    if (pooled) {
        ipm_pairs all = {p->row, p->rows, NULL};
        if (ipm_count_xt_hist(&p->counter, &all, &p->groups,
                              &hist[IPM_PART_POOLED * IPM_HISTS_PER_ESTIMATOR + IPM_HIST_XT], err))
            return -1;
    }
    if (!p->est[IPM_PART_SAMPLED])
        return 0;
    for (int j = 0; j < p->ns; j++)
        p->pick[j] = pooled ? (int32_t)choice[mine[j]] : 0;
    ipm_pairs drawn = {p->row, p->rows, p->pick};
    return ipm_count_xt_hist(&p->counter, &drawn, &p->groups,
                             &hist[IPM_PART_SAMPLED * IPM_HISTS_PER_ESTIMATOR + IPM_HIST_XT], err);
}

/* A table's histogram added to out; the table cleared. */
static int table_hist(ipm_table *t, ipm_hist *out, char *err)
{
    ipm_hist h;
    ipm_hist_init(&h);
    int rc = ipm_table_histogram(t, &h, err);
    if (rc == 0)
        rc = ipm_hist_add(out, h.bin, h.len, err);
    ipm_hist_free(&h);
    ipm_table_clear(t);
    return rc;
}

int ipm_partition_hists(ipm_partition *p, const uint32_t *choice, ipm_hist *hist, char *err)
{
    if (xt_hists(p, choice, hist, err))
        return -1;
    for (int e = 0; e < IPM_PART_ESTIMATORS; e++) {
        if (!p->est[e])
            continue;
        ipm_hist *h = hist + e * IPM_HISTS_PER_ESTIMATOR;
        if (table_hist(&p->t[e], &h[IPM_HIST_T], err) ||
            table_hist(&p->yt[e], &h[IPM_HIST_YT], err))
            return -1;
    }
    return 0;
}

void ipm_hists_entropies(const ipm_hist *hist, double *h_t, double *h_xt, double *h_yt)
{
    *h_t = ipm_hist_entropy(&hist[IPM_HIST_T]);
    *h_xt = ipm_hist_entropy(&hist[IPM_HIST_XT]);
    *h_yt = ipm_hist_entropy(&hist[IPM_HIST_YT]);
}
