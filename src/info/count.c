/* count: pattern dictionary, x groups and dense counting. Counts leave
 * through a sink: either into a count histogram (for an entropy here) or
 * into a count table (for the MPI merge), so both see the same counts. */
#include "ipmpi/info/count.h"

#include <stdlib.h>
#include <string.h>

#include "ipmpi/base/error.h"
#include "ipmpi/info/hash.h"

#define DICT_MIN_CAPACITY 64
#define SMALL_GROUP 32 /* (X, T) groups up to this many ids are sorted */
#define CLOG_CACHED (1u << 16)
#define ROW_COMPARE_REPS 16 /* up to this many replicas compare id rows pairwise */

/* ---- dictionary ---------------------------------------------------------- */

static int dict_alloc_slots(ipm_dict *d, size_t capacity, char *err)
{
    uint32_t *slot = calloc(capacity, sizeof *slot);
    ipm_pattern *slot_key = malloc(capacity * sizeof *slot_key);
    if (!slot || !slot_key) {
        free(slot);
        free(slot_key);
        return ipm_fail(err, "pattern dictionary: out of memory for %zu slots", capacity);
    }
    free(d->slot);
    free(d->slot_key);
    d->slot = slot;
    d->slot_key = slot_key;
    d->capacity = capacity;
    return 0;
}

static int dict_reserve_keys(ipm_dict *d, size_t keys, char *err)
{
    if (keys <= d->key_capacity)
        return 0;
    size_t capacity = d->key_capacity ? d->key_capacity : DICT_MIN_CAPACITY / 2;
    while (capacity < keys)
        capacity *= 2;
    ipm_pattern *key = realloc(d->key, capacity * sizeof *key);
    if (!key)
        return ipm_fail(err, "pattern dictionary: out of memory for %zu patterns", capacity);
    d->key = key;
    d->key_capacity = capacity;
    return 0;
}

int ipm_dict_init(ipm_dict *d, size_t expected_keys, char *err)
{
    memset(d, 0, sizeof *d);
    size_t capacity = DICT_MIN_CAPACITY;
    while (capacity < 2 * expected_keys)
        capacity *= 2;
    if (dict_alloc_slots(d, capacity, err) || dict_reserve_keys(d, capacity / 2, err)) {
        ipm_dict_free(d);
        return -1;
    }
    return 0;
}

void ipm_dict_free(ipm_dict *d)
{
    free(d->slot);
    free(d->slot_key);
    free(d->key);
    memset(d, 0, sizeof *d);
}

void ipm_dict_clear(ipm_dict *d)
{
    memset(d->slot, 0, d->capacity * sizeof *d->slot);
    d->len = 0;
}

/* The slot's id and key are read independently, so the two loads overlap. */
static inline size_t dict_probe(const ipm_dict *d, ipm_pattern p)
{
    size_t mask = d->capacity - 1, i = ipm_pattern_hash(p) & mask;
    for (;;) {
        if (!d->slot[i] || (d->slot_key[i].lo == p.lo && d->slot_key[i].hi == p.hi))
            return i;
        i = (i + 1) & mask;
    }
}

static inline void dict_put(ipm_dict *d, size_t at, ipm_pattern p, size_t id)
{
    d->slot[at] = (uint32_t)(id + 1);
    d->slot_key[at] = p;
}

/* Doubles the slots and re-inserts the keys; ids do not change. */
static int dict_grow(ipm_dict *d, char *err)
{
    if (d->capacity >= ((size_t)1 << 32) || dict_alloc_slots(d, d->capacity * 2, err))
        return ipm_fail(err, "pattern dictionary: cannot grow beyond %zu patterns", d->len);
    for (size_t id = 0; id < d->len; id++)
        dict_put(d, dict_probe(d, d->key[id]), d->key[id], id);
    return 0;
}

int ipm_dict_map(ipm_dict *d, const ipm_pattern *p, int n, int32_t *id, char *err)
{
    if (dict_reserve_keys(d, d->len + (size_t)n, err))
        return -1;
    for (int i = 0; i < n; i++) {
        size_t at = dict_probe(d, p[i]);
        uint32_t s = d->slot[at];
        if (s) {
            id[i] = (int32_t)(s - 1);
            continue;
        }
        if (2 * (d->len + 1) > d->capacity) {
            if (dict_grow(d, err))
                return -1;
            at = dict_probe(d, p[i]);
        }
        d->key[d->len] = p[i];
        dict_put(d, at, p[i], d->len);
        id[i] = (int32_t)d->len++;
    }
    return 0;
}

/* ---- x groups -------------------------------------------------------------- */

int ipm_x_groups_init(ipm_x_groups *g, const int32_t *x_id, int n, char *err)
{
    memset(g, 0, sizeof *g);
    int n_x = 0;
    for (int i = 0; i < n; i++) {
        if (x_id[i] < 0)
            return ipm_fail(err, "sample %d: negative x id %d", i, (int)x_id[i]);
        n_x = x_id[i] + 1 > n_x ? x_id[i] + 1 : n_x;
    }
    g->n = n;
    g->n_x = n_x;
    g->offset = calloc((size_t)n_x + 1, sizeof *g->offset);
    g->member = malloc(((size_t)n + 1) * sizeof *g->member);
    if (!g->offset || !g->member) {
        ipm_x_groups_free(g);
        return ipm_fail(err, "out of memory grouping %d samples by x", n);
    }
    for (int i = 0; i < n; i++)
        g->offset[x_id[i] + 1]++;
    for (int x = 0; x < n_x; x++) {
        g->largest = g->offset[x + 1] > g->largest ? g->offset[x + 1] : g->largest;
        g->offset[x + 1] += g->offset[x];
    }
    /* Counting sort, stable: samples stay in increasing order within a group. */
    for (int i = 0; i < n; i++)
        g->member[g->offset[x_id[i]]++] = i;
    for (int x = n_x; x > 0; x--)
        g->offset[x] = g->offset[x - 1];
    g->offset[0] = 0;
    return 0;
}

void ipm_x_groups_free(ipm_x_groups *g)
{
    free(g->offset);
    free(g->member);
    memset(g, 0, sizeof *g);
}

/* ---- counter ----------------------------------------------------------------- */

int ipm_counter_init(ipm_counter *c, int n, int max_reps, int n_classes, int largest_group,
                     char *err)
{
    memset(c, 0, sizeof *c);
    c->n = n;
    c->n_classes = n_classes > 0 ? n_classes : 1;
    c->max_reps = max_reps > 0 ? max_reps : 1;
    size_t max_count = (size_t)n * (size_t)c->max_reps;
    c->n_clog = max_count + 1 < CLOG_CACHED ? max_count + 1 : CLOG_CACHED;
    c->hist = calloc(max_count + 1, sizeof *c->hist);
    c->clog = malloc(c->n_clog * sizeof *c->clog);
    c->group = malloc(((size_t)largest_group * (size_t)c->max_reps + 1) * sizeof *c->group);
    c->lane_mult = malloc(((size_t)n + 1) * sizeof *c->lane_mult);
    c->lane_first = malloc(((size_t)n + 1) * sizeof *c->lane_first);
    if (!c->hist || !c->clog || !c->group || !c->lane_mult || !c->lane_first) {
        ipm_counter_free(c);
        return ipm_fail(err, "out of memory for counting %zu pairs", max_count);
    }
    for (size_t k = 0; k < c->n_clog; k++)
        c->clog[k] = ipm_clog2c(k);
    return 0;
}

static void free_id_arrays(ipm_counter *c)
{
    free(c->count_t);
    free(c->count_yt);
    free(c->pool_t);
    free(c->pool_yt);
    free(c->touched_t);
    free(c->touched_yt);
    free(c->pool_touched_t);
    free(c->pool_touched_yt);
    c->count_t = c->count_yt = c->pool_t = c->pool_yt = NULL;
    c->touched_t = c->touched_yt = c->pool_touched_t = c->pool_touched_yt = NULL;
    c->n_ids = 0;
}

void ipm_counter_free(ipm_counter *c)
{
    free_id_arrays(c);
    free(c->hist);
    free(c->clog);
    free(c->group);
    free(c->lane_mult);
    free(c->lane_first);
    memset(c, 0, sizeof *c);
}

int ipm_counter_reserve(ipm_counter *c, size_t n_ids, char *err)
{
    if (n_ids <= c->n_ids)
        return 0;
    size_t grown = c->n_ids ? c->n_ids : 64;
    while (grown < n_ids)
        grown *= 2;
    size_t cells = grown * (size_t)c->n_classes;
    free_id_arrays(c);
    c->count_t = calloc(grown, sizeof *c->count_t);
    c->pool_t = calloc(grown, sizeof *c->pool_t);
    c->count_yt = calloc(cells, sizeof *c->count_yt);
    c->pool_yt = calloc(cells, sizeof *c->pool_yt);
    c->touched_t = malloc((grown + 1) * sizeof *c->touched_t);
    c->touched_yt = malloc((cells + 1) * sizeof *c->touched_yt);
    c->pool_touched_t = malloc((grown + 1) * sizeof *c->pool_touched_t);
    c->pool_touched_yt = malloc((cells + 1) * sizeof *c->pool_touched_yt);
    if (!c->count_t || !c->pool_t || !c->count_yt || !c->pool_yt || !c->touched_t ||
        !c->touched_yt || !c->pool_touched_t || !c->pool_touched_yt) {
        free_id_arrays(c);
        return ipm_fail(err, "out of memory for counting %zu patterns", grown);
    }
    c->n_ids = grown;
    return 0;
}

/* ---- sinks ------------------------------------------------------------------- */

#define SINK_BATCH 64

/* Where counts go: a histogram (table == NULL) or a count table. Table
 * entries are handed over in batches, which lets the table prefetch the
 * slots of entries ahead (ipm_table_merge): large tables miss the cache. */
typedef struct sink {
    uint32_t *hist;
    uint64_t top, total;
    ipm_table *table;
    const ipm_pattern *key;
    char *err;
    int rc, n_batch;
    ipm_count *batch; /* SINK_BATCH entries, for a table */
} sink;

static void sink_flush(sink *s)
{
    if (s->table && s->rc == 0 && s->n_batch > 0)
        s->rc = ipm_table_merge(s->table, s->batch, (size_t)s->n_batch, s->err);
    s->n_batch = 0;
}

/* Counts of 1 add nothing to the sum (1 log2 1 = 0) and stay out of the
 * histogram: wide layers are mostly 1s, which would chain on hist[1]. */
static inline void sink_put(sink *s, uint32_t group, int32_t id, uint64_t count)
{
    if (!s->table) {
        s->total += count;
        if (count > 1) {
            s->hist[count]++;
            s->top = count > s->top ? count : s->top;
        }
    } else {
        const ipm_pattern *p = &s->key[id];
        s->batch[s->n_batch++] =
            (ipm_count){.lo = p->lo, .hi = p->hi, .group = group, .used = 1, .count = count};
        if (s->n_batch == SINK_BATCH)
            sink_flush(s);
    }
}

/* A (Y, T) cell id * classes + y; the division only when a table needs it. */
static inline void sink_put_cell(sink *s, int32_t cell, int classes, uint64_t count)
{
    if (!s->table)
        sink_put(s, 0, 0, count);
    else
        sink_put(s, (uint32_t)(cell % classes), cell / classes, count);
}

/* count keys with count m each, into a histogram sink. */
static inline void sink_put_many(sink *s, uint64_t m, uint64_t count)
{
    s->hist[m] += (uint32_t)count;
    s->top = count && m > s->top ? m : s->top;
    s->total += m * count;
}

/* Keys of count 1 are known through the total only (and sink_put_many may
 * have put them in hist[1] too): the distinct keys are the total less
 * (c - 1) for every key of count c >= 2. Read before the sum clears hist. */
static uint64_t sink_cells(const sink *s)
{
    uint64_t repeats = 0;
    for (uint64_t k = 2; k <= s->top; k++)
        repeats += (k - 1) * s->hist[k];
    return s->total - repeats;
}

static double sink_entropy(sink *s, const ipm_counter *c, uint64_t *cells)
{
    *cells = sink_cells(s);
    double sum = ipm_sum_clog2c_hist(0.0, s->hist, s->top, c->clog, c->n_clog);
    return ipm_entropy_from_sum(sum, s->total);
}

/* ---- T and (Y, T) -------------------------------------------------------------- */

typedef struct dense_counts {
    size_t n_t, n_yt; /* touched entries */
} dense_counts;

/* Branch-free: the touched lists have one spare entry for the store that
 * does not count. */
static inline void count_pair(ipm_counter *c, dense_counts *d, int32_t id, int32_t y)
{
    c->touched_t[d->n_t] = id;
    d->n_t += c->count_t[id]++ == 0;
    int32_t cell = id * c->n_classes + y;
    c->touched_yt[d->n_yt] = cell;
    d->n_yt += c->count_yt[cell]++ == 0;
}

static dense_counts count_t_yt(ipm_counter *c, const ipm_pairs *pairs, const int32_t *y)
{
    dense_counts d = {0, 0};
    if (pairs->pick) {
        for (int i = 0; i < c->n; i++)
            if (pairs->pick[i] >= 0)
                count_pair(c, &d, pairs->ids[pairs->pick[i]][i], y[i]);
        return d;
    }
    for (int k = 0; k < pairs->n_reps; k++) {
        const int32_t *ids = pairs->ids[k];
        for (int i = 0; i < c->n; i++)
            count_pair(c, &d, ids[i], y[i]);
    }
    return d;
}

/* Sums of counts over replicas, with the list of entries they touched. */
typedef struct pool {
    uint32_t *count;
    int32_t *touched;
    size_t n;
} pool;

static inline void pool_add(pool *p, int32_t at, uint32_t count)
{
    p->touched[p->n] = at;
    p->n += p->count[at] == 0;
    p->count[at] += count;
}

/* Empty the dense arrays into a sink, resetting what they touched; the
 * counts also go to the pool when there is one. */
static void drain_t(ipm_counter *c, const dense_counts *d, sink *s, pool *p)
{
    for (size_t k = 0; k < d->n_t; k++) {
        int32_t id = c->touched_t[k];
        sink_put(s, 0, id, c->count_t[id]);
        if (p)
            pool_add(p, id, c->count_t[id]);
        c->count_t[id] = 0;
    }
}

static void drain_yt(ipm_counter *c, const dense_counts *d, sink *s, pool *p)
{
    for (size_t k = 0; k < d->n_yt; k++) {
        int32_t cell = c->touched_yt[k];
        sink_put_cell(s, cell, c->n_classes, c->count_yt[cell]);
        if (p)
            pool_add(p, cell, c->count_yt[cell]);
        c->count_yt[cell] = 0;
    }
}

static void drain_pool(pool *p, sink *s)
{
    for (size_t k = 0; k < p->n; k++) {
        sink_put(s, 0, 0, p->count[p->touched[k]]);
        p->count[p->touched[k]] = 0;
    }
    p->n = 0;
}

/* ---- (X, T) ----------------------------------------------------------------- */

/* The ids of group x's counted pairs; returns how many. */
static int gather_group(const ipm_pairs *pairs, const int32_t *member, int size, int32_t *out)
{
    int m = 0;
    if (pairs->pick) {
        for (int j = 0; j < size; j++) {
            int k = pairs->pick[member[j]];
            if (k >= 0)
                out[m++] = pairs->ids[k][member[j]];
        }
        return m;
    }
    for (int k = 0; k < pairs->n_reps; k++)
        for (int j = 0; j < size; j++)
            out[m++] = pairs->ids[k][member[j]];
    return m;
}

static void insertion_sort(int32_t *a, int n)
{
    for (int i = 1; i < n; i++) {
        int32_t v = a[i];
        int j = i;
        for (; j > 0 && a[j - 1] > v; j--)
            a[j] = a[j - 1];
        a[j] = v;
    }
}

static void put_sorted_runs(sink *s, uint32_t x, const int32_t *ids, int m)
{
    for (int j = 0; j < m;) {
        int run = j + 1;
        while (run < m && ids[run] == ids[j])
            run++;
        sink_put(s, x, ids[j], (uint64_t)(run - j));
        j = run;
    }
}

/* A big group counts in count_t (all zero between uses), in first-seen order. */
static void put_counted(ipm_counter *c, sink *s, uint32_t x, const int32_t *ids, int m)
{
    int32_t *first = c->touched_t;
    int n_first = 0;
    for (int j = 0; j < m; j++)
        if (c->count_t[ids[j]]++ == 0)
            first[n_first++] = ids[j];
    for (int j = 0; j < n_first; j++) {
        sink_put(s, x, first[j], c->count_t[first[j]]);
        c->count_t[first[j]] = 0;
    }
}

/* Every x once and every replica counted: sample i's group is its ids
 * across the replicas. The multiplicity of replica j's id among them, and
 * whether j is its first holder, by comparing whole id rows (vectorised
 * across samples); first holders with multiplicity m make one key of count m. */
static void xt_distinct_all_replicas(ipm_counter *c, const ipm_pairs *pairs, sink *s)
{
    int n = c->n, reps = pairs->n_reps;
    int32_t *mult = c->lane_mult, *first = c->lane_first;
    s->total += (uint64_t)n * (uint64_t)reps; /* keys of count 1 add only to the total */
    for (int j = 0; j < reps; j++) {
        const int32_t *a = pairs->ids[j];
        for (int i = 0; i < n; i++) {
            mult[i] = 1;
            first[i] = 1;
        }
        for (int k = 0; k < reps; k++) {
            const int32_t *b = pairs->ids[k];
            if (k < j)
                for (int i = 0; i < n; i++) {
                    int32_t same = a[i] == b[i];
                    mult[i] += same;
                    first[i] &= !same;
                }
            else if (k > j)
                for (int i = 0; i < n; i++)
                    mult[i] += a[i] == b[i];
        }
        for (int m = 2; m <= reps; m++) {
            uint32_t keys = 0;
            for (int i = 0; i < n; i++)
                keys += (uint32_t)(first[i] & (mult[i] == m));
            if (keys) {
                /* m * keys pairs were counted in the total as ones already */
                s->hist[m] += keys;
                s->top = (uint64_t)m > s->top ? (uint64_t)m : s->top;
            }
        }
    }
}

static void count_xt(ipm_counter *c, const ipm_pairs *pairs, const ipm_x_groups *g, sink *s)
{
    int one_pair_per_sample = pairs->pick || pairs->n_reps == 1;
    if (!s->table && g->n_x == g->n && one_pair_per_sample) {
        /* every x once: each counted (x, t) pair is a key of its own */
        uint64_t counted = (uint64_t)g->n;
        if (pairs->pick) {
            counted = 0;
            for (int i = 0; i < g->n; i++)
                counted += pairs->pick[i] >= 0;
        }
        sink_put_many(s, 1, counted);
        return;
    }
    if (!s->table && g->n_x == g->n && pairs->n_reps <= ROW_COMPARE_REPS) {
        xt_distinct_all_replicas(c, pairs, s);
        return;
    }
    for (int x = 0; x < g->n_x; x++) {
        const int32_t *member = g->member + g->offset[x];
        int m = gather_group(pairs, member, g->offset[x + 1] - g->offset[x], c->group);
        if (m <= SMALL_GROUP) {
            insertion_sort(c->group, m);
            put_sorted_runs(s, (uint32_t)x, c->group, m);
        } else {
            put_counted(c, s, (uint32_t)x, c->group, m);
        }
    }
}

/* ---- the two ways out --------------------------------------------------------- */

/* One histogram serves all three sums: each sum clears it. */
void ipm_count_entropies(ipm_counter *c, const ipm_pairs *pairs, const ipm_x_groups *g,
                         const int32_t *y, ipm_entropies *out)
{
    sink t = {.hist = c->hist}, yt = {.hist = c->hist}, xt = {.hist = c->hist};
    dense_counts d = count_t_yt(c, pairs, y);
    drain_t(c, &d, &t, NULL);
    out->total = t.total;
    out->t = sink_entropy(&t, c, &out->cells_t);
    drain_yt(c, &d, &yt, NULL);
    out->yt = sink_entropy(&yt, c, &out->cells_yt);
    count_xt(c, pairs, g, &xt);
    out->xt = sink_entropy(&xt, c, &out->cells_xt);
}

/* Each replica's T and (Y, T) counts are drained into its own entropies and
 * added to the pools, so the pooled counts cost no second pass. The sums
 * clear the shared histogram, so each drain comes right before its sum. */
void ipm_count_replicas(ipm_counter *c, const ipm_pairs *pairs, const ipm_x_groups *g,
                        const int32_t *y, ipm_entropies *each, ipm_entropies *pooled)
{
    pool pool_t = {c->pool_t, c->pool_touched_t, 0};
    pool pool_yt = {c->pool_yt, c->pool_touched_yt, 0};
    for (int k = 0; k < pairs->n_reps; k++) {
        ipm_pairs one = {&pairs->ids[k], 1, NULL};
        sink t = {.hist = c->hist}, yt = {.hist = c->hist}, xt = {.hist = c->hist};
        dense_counts d = count_t_yt(c, &one, y);
        drain_t(c, &d, &t, &pool_t);
        each[k].total = t.total;
        each[k].t = sink_entropy(&t, c, &each[k].cells_t);
        drain_yt(c, &d, &yt, &pool_yt);
        each[k].yt = sink_entropy(&yt, c, &each[k].cells_yt);
        count_xt(c, &one, g, &xt);
        each[k].xt = sink_entropy(&xt, c, &each[k].cells_xt);
    }
    sink t = {.hist = c->hist}, yt = {.hist = c->hist}, xt = {.hist = c->hist};
    drain_pool(&pool_t, &t);
    uint64_t cells_t, cells_yt;
    double h_t = sink_entropy(&t, c, &cells_t);
    drain_pool(&pool_yt, &yt);
    double h_yt = sink_entropy(&yt, c, &cells_yt);
    if (pooled) {
        pooled->t = h_t;
        pooled->yt = h_yt;
        pooled->cells_t = cells_t;
        pooled->cells_yt = cells_yt;
        pooled->total = t.total;
        count_xt(c, pairs, g, &xt);
        pooled->xt = sink_entropy(&xt, c, &pooled->cells_xt);
    }
}

/* Like count_t_yt's (Y, T) half, with the cells listed as they drain. */
size_t ipm_count_yt_cells(ipm_counter *c, const ipm_pairs *pairs, const int32_t *y,
                          ipm_id_count *out)
{
    dense_counts d = count_t_yt(c, pairs, y);
    for (size_t k = 0; k < d.n_t; k++)
        c->count_t[c->touched_t[k]] = 0;
    for (size_t k = 0; k < d.n_yt; k++) {
        int32_t cell = c->touched_yt[k];
        out[k] = (ipm_id_count){cell / c->n_classes, cell % c->n_classes, c->count_yt[cell]};
        c->count_yt[cell] = 0;
    }
    return d.n_yt;
}

int ipm_count_export(ipm_counter *c, const ipm_pairs *pairs, const ipm_x_groups *g,
                     const int32_t *y, const ipm_pattern *key, ipm_table *t, ipm_table *xt,
                     ipm_table *yt, char *err)
{
    ipm_count batch[3][SINK_BATCH];
    sink st = {.table = t, .key = key, .err = err, .batch = batch[0]};
    sink sxt = {.table = xt, .key = key, .err = err, .batch = batch[1]};
    sink syt = {.table = yt, .key = key, .err = err, .batch = batch[2]};
    dense_counts d = count_t_yt(c, pairs, y);
    drain_t(c, &d, &st, NULL);
    drain_yt(c, &d, &syt, NULL);
    count_xt(c, pairs, g, &sxt);
    sink_flush(&st);
    sink_flush(&syt);
    sink_flush(&sxt);
    return st.rc || sxt.rc || syt.rc ? -1 : 0;
}
