/* count: pattern dictionary, x groups and dense counting. Counts leave
 * through a sink: either into a count histogram (for an entropy here) or
 * into a count table (for the MPI merge), so both see the same counts. */
#include "ipmpi/info/count.h"

#include <stdlib.h>
#include <string.h>

#include "ipmpi/base/assert.h"
#include "ipmpi/base/error.h"
#include "ipmpi/info/hash.h"

#define DICT_MIN_CAPACITY 64
#define SMALL_GROUP 32 /* (X, T) groups up to this many ids are sorted */
#define CLOG_CACHED (1u << 16)
#define ROW_COMPARE_REPS IPM_ROWS_COMPARED

/* ---- dictionary ---------------------------------------------------------- */

/* The slot of the pattern this far ahead is prefetched, so the probes of a
 * table larger than the cache overlap instead of queueing. */
#define DICT_AHEAD 16

static int dict_alloc_slots(ipm_dict *d, size_t capacity, char *err)
{
    ipm_dict_slot *slot = calloc(capacity, sizeof *slot);
    if (!slot)
        return ipm_fail(err, "pattern dictionary: out of memory for %zu slots", capacity);
    free(d->slot);
    d->slot = slot;
    d->capacity = capacity;
    d->gen = 1;
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
    free(d->key);
    memset(d, 0, sizeof *d);
}

/* A new generation empties every slot; the slots are zeroed only when the
 * generation counter wraps. */
void ipm_dict_clear(ipm_dict *d)
{
    if (++d->gen == 0) {
        memset(d->slot, 0, d->capacity * sizeof *d->slot);
        d->gen = 1;
    }
    d->len = 0;
    d->wide = 0;
}

/* The dictionary's fields as locals while a batch is mapped: stores into
 * slots and keys (64-bit words) could otherwise alias len and capacity, and
 * the compiler would reload them after every store. */
typedef struct dict_view {
    ipm_dict_slot *slot;
    ipm_pattern *key;
    size_t mask, len;
    uint32_t gen;
} dict_view;

static inline dict_view dict_view_of(const ipm_dict *d)
{
    return (dict_view){d->slot, d->key, d->capacity - 1, d->len, d->gen};
}

static inline size_t dict_home(const dict_view *v, ipm_pattern p)
{
    return ipm_pattern_hash(p) & v->mask;
}

/* The slot holding p, or the empty slot where it goes. wide is a constant
 * where this is inlined: 0 while no key has a high word, so equal low words
 * and p.hi == 0 mean the same pattern. */
static inline __attribute__((always_inline)) size_t dict_find(const dict_view *v, ipm_pattern p,
                                                              size_t at, int wide)
{
    for (;;) {
        const ipm_dict_slot *s = &v->slot[at];
        if (s->gen != v->gen)
            return at;
        if (s->lo == p.lo && (wide ? v->key[s->id].hi == p.hi : p.hi == 0))
            return at;
        at = (at + 1) & v->mask;
    }
}

static inline void dict_put(dict_view *v, size_t at, ipm_pattern p, size_t id)
{
    v->slot[at] = (ipm_dict_slot){p.lo, (uint32_t)id, v->gen};
}

/* Doubles the slots and re-inserts the keys; ids do not change. */
static int dict_grow(ipm_dict *d, char *err)
{
    if (d->capacity >= ((size_t)1 << 32) || dict_alloc_slots(d, d->capacity * 2, err))
        return ipm_fail(err, "pattern dictionary: cannot grow beyond %zu patterns", d->len);
    dict_view v = dict_view_of(d);
    for (size_t id = 0; id < d->len; id++) {
        ipm_pattern p = d->key[id];
        dict_put(&v, dict_find(&v, p, dict_home(&v, p), 1), p, id);
    }
    return 0;
}

/* p's id, adding it when new (there is room for one more key). */
static inline __attribute__((always_inline)) int32_t dict_id(dict_view *v, ipm_pattern p,
                                                             size_t home, int wide)
{
    size_t at = dict_find(v, p, home, wide);
    if (v->slot[at].gen == v->gen)
        return (int32_t)v->slot[at].id;
    v->key[v->len] = p;
    dict_put(v, at, p, v->len);
    return (int32_t)v->len++;
}

/* Homes are computed DICT_AHEAD patterns ahead, when their slot is
 * prefetched, and kept in a ring until their pattern comes. */
static inline __attribute__((always_inline)) int
dict_map_room_as(dict_view *v, size_t limit, const ipm_pattern *p, int n, int32_t *id, int wide)
{
    size_t ring[DICT_AHEAD];
    int ahead = n < DICT_AHEAD ? n : DICT_AHEAD;
    for (int i = 0; i < ahead; i++) {
        ring[i] = dict_home(v, p[i]);
        __builtin_prefetch(&v->slot[ring[i]]);
    }
    int i = 0;
    for (; i < n && v->len < limit; i++) {
        size_t home = ring[i % DICT_AHEAD];
        if (i + DICT_AHEAD < n) {
            ring[i % DICT_AHEAD] = dict_home(v, p[i + DICT_AHEAD]);
            __builtin_prefetch(&v->slot[ring[i % DICT_AHEAD]]);
        }
        id[i] = dict_id(v, p[i], home, wide);
    }
    return i;
}

/* Maps p[0..n) while the keys stay below half the capacity; returns how
 * many it mapped. */
static int dict_map_room(ipm_dict *d, const ipm_pattern *p, int n, int32_t *id)
{
    dict_view v = dict_view_of(d);
    size_t limit = d->capacity / 2;
    int done = d->wide ? dict_map_room_as(&v, limit, p, n, id, 1)
                       : dict_map_room_as(&v, limit, p, n, id, 0);
    d->len = v.len;
    return done;
}

int ipm_dict_map(ipm_dict *d, const ipm_pattern *p, int n, int32_t *id, char *err)
{
    if (dict_reserve_keys(d, d->len + (size_t)n, err))
        return -1;
    for (int i = 0; i < n && !d->wide; i++) /* a key with a high word: compare both */
        d->wide = p[i].hi != 0;
    for (int i = 0; i < n;) {
        /* room is counted in new keys, so a batch may stop early; grow then */
        if (2 * (d->len + 1) > d->capacity && dict_grow(d, err))
            return -1;
        i += dict_map_room(d, p + i, n - i, id + i);
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
    while ((1 << c->class_bits) < c->n_classes)
        c->class_bits++;
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
    free(c->pool_yt);
    free(c->touched_t);
    free(c->touched_yt);
    free(c->pool_touched_yt);
    free(c->above_one);
    c->count_t = c->count_yt = c->pool_yt = c->above_one = NULL;
    c->touched_t = c->touched_yt = c->pool_touched_yt = NULL;
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
    size_t cells = grown << c->class_bits;
    free_id_arrays(c);
    c->count_t = calloc(grown, sizeof *c->count_t);
    c->count_yt = calloc(cells, sizeof *c->count_yt);
    c->pool_yt = calloc(cells, sizeof *c->pool_yt);
    c->touched_t = malloc((grown + 1) * sizeof *c->touched_t);
    c->touched_yt = malloc((cells + 1) * sizeof *c->touched_yt);
    c->pool_touched_yt = malloc((cells + 1) * sizeof *c->pool_touched_yt);
    c->above_one = malloc((cells + 1) * sizeof *c->above_one);
    if (!c->count_t || !c->count_yt || !c->pool_yt || !c->touched_t || !c->touched_yt ||
        !c->pool_touched_yt || !c->above_one) {
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

/* count keys with count m each, into a histogram sink. */
static inline void sink_put_many(sink *s, uint64_t m, uint64_t count)
{
    s->hist[m] += (uint32_t)count;
    s->top = count && m > s->top ? m : s->top;
    s->total += m * count;
}

/* The counts above 1 of a drain (see drain_cells), into a histogram sink
 * whose total the drain has already taken. */
static void sink_put_listed(sink *s, const uint32_t *above_one, size_t m)
{
    uint32_t *hist = s->hist;
    uint64_t top = s->top;
    for (size_t k = 0; k < m; k++) {
        hist[above_one[k]]++;
        top = above_one[k] > top ? above_one[k] : top;
    }
    s->top = top;
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

/* Only (Y, T) is counted pair by pair, in cells id << class_bits | y; a
 * pattern's T count is the sum of its cells', taken as the cells drain.
 * The counting is branch free: the touched lists have a spare entry for
 * the store that does not count. */
static size_t count_cells(ipm_counter *c, const ipm_pairs *pairs, const int32_t *y)
{
    uint32_t *restrict count = c->count_yt;
    int32_t *restrict touched = c->touched_yt;
    int bits = c->class_bits;
    size_t n = 0;
    if (pairs->pick) {
        for (int i = 0; i < c->n; i++) {
            int k = pairs->pick[i];
            if (k < 0)
                continue;
            int32_t cell = pairs->ids[k][i] << bits | y[i];
            touched[n] = cell;
            n += count[cell]++ == 0;
        }
        return n;
    }
    for (int k = 0; k < pairs->n_reps; k++) {
        const int32_t *restrict ids = pairs->ids[k];
        for (int i = 0; i < c->n; i++) {
            int32_t cell = ids[i] << bits | y[i];
            touched[n] = cell;
            n += count[cell]++ == 0;
        }
    }
    return n;
}

/* What a drain of cells leaves: the T counts (in count_t, touched_t) and
 * the (Y, T) counts above 1 (in above_one), with their total. */
typedef struct drained {
    size_t n_t, n_above;
    uint64_t total;
} drained;

/* Empties the cells in cell[0..n) of count into the T counts; their counts
 * above 1 are listed, and with pool != NULL they are also added to the
 * pooled cells. */
static drained drain_cells(ipm_counter *c, uint32_t *restrict count, const int32_t *cell, size_t n,
                           int pool, size_t *n_pool)
{
    uint32_t *restrict t = c->count_t, *restrict above = c->above_one;
    uint32_t *restrict pooled = c->pool_yt;
    int32_t *restrict touched_t = c->touched_t, *restrict pool_touched = c->pool_touched_yt;
    int bits = c->class_bits;
    drained d = {0, 0, 0};
    size_t np = n_pool ? *n_pool : 0;
    for (size_t k = 0; k < n; k++) {
        int32_t at = cell[k], id = at >> bits;
        uint32_t v = count[at];
        count[at] = 0;
        d.total += v;
        above[d.n_above] = v;
        d.n_above += v > 1;
        touched_t[d.n_t] = id;
        d.n_t += t[id] == 0;
        t[id] += v;
        if (pool) {
            pool_touched[np] = at;
            np += pooled[at] == 0;
            pooled[at] += v;
        }
    }
    if (n_pool)
        *n_pool = np;
    return d;
}

/* The T counts of a drain into a histogram sink, count_t emptied. */
static void drain_t(ipm_counter *c, size_t n_t, sink *s)
{
    uint32_t *restrict t = c->count_t, *restrict above = c->above_one;
    size_t m = 0;
    uint64_t total = 0;
    for (size_t k = 0; k < n_t; k++) {
        int32_t id = c->touched_t[k];
        uint32_t v = t[id];
        t[id] = 0;
        total += v;
        above[m] = v;
        m += v > 1;
    }
    s->total += total;
    sink_put_listed(s, above, m);
}

/* H(T) and H(Y, T) of the cells counted in count (touched in cell[0..n)),
 * with their numbers of cells and the total, into out (xt untouched);
 * count emptied; pool as in drain_cells. */
static void cells_entropies(ipm_counter *c, uint32_t *count, const int32_t *cell, size_t n,
                            int pool, size_t *n_pool, ipm_entropies *out)
{
    drained d = drain_cells(c, count, cell, n, pool, n_pool);
    sink yt = {.hist = c->hist, .total = d.total}, t = {.hist = c->hist};
    sink_put_listed(&yt, c->above_one, d.n_above);
    out->yt = sink_entropy(&yt, c, &out->cells_yt);
    drain_t(c, d.n_t, &t);
    out->t = sink_entropy(&t, c, &out->cells_t);
    out->total = d.total;
}

/* The cells into count tables: T as (0, pattern), (Y, T) as (y, pattern). */
static void cells_to_tables(ipm_counter *c, size_t n, sink *t, sink *yt)
{
    int bits = c->class_bits;
    for (size_t k = 0; k < n; k++) {
        int32_t at = c->touched_yt[k], id = at >> bits;
        uint32_t v = c->count_yt[at];
        c->count_yt[at] = 0;
        sink_put(yt, (uint32_t)(at & ((1 << bits) - 1)), id, v);
        c->touched_yt[k] = id; /* T below, in the order of the cells */
        c->count_t[id] += v;
    }
    for (size_t k = 0; k < n; k++) {
        int32_t id = c->touched_yt[k];
        if (c->count_t[id])
            sink_put(t, 0, id, c->count_t[id]);
        c->count_t[id] = 0;
    }
}

/* ---- rows compared side by side -------------------------------------------- */

/* Samples per block: a block's values of every row and the flags stay in
 * the first cache level. */
#define ROWS_BLOCK 128

/* Row j against the later rows over one block of b samples: mult[i] ends
 * as 1 + the later rows equal to row j at i, and dup[k][i] is set where row
 * k repeats row j. V is the row type: int32_t ids, or uint64_t words with
 * a second word hi (NULL when one word). */
#define ROWS_AGAINST_LATER(V)                                                                      \
    for (int k = j + 1; k < n_rows; k++) {                                                         \
        const V *restrict bk = rows[k] + i0;                                                       \
        const uint64_t *restrict bh = hi ? hi[k] + i0 : NULL;                                      \
        int32_t *restrict dk = dup + (size_t)k * ROWS_BLOCK;                                       \
        if (bh)                                                                                    \
            for (int i = 0; i < b; i++) {                                                          \
                int32_t same = (aj[i] == bk[i]) & (ah[i] == bh[i]);                                \
                mult[i] += same;                                                                   \
                dk[i] |= same;                                                                     \
            }                                                                                      \
        else                                                                                       \
            for (int i = 0; i < b; i++) {                                                          \
                int32_t same = aj[i] == bk[i];                                                     \
                mult[i] += same;                                                                   \
                dk[i] |= same;                                                                     \
            }                                                                                      \
    }

/* Row j's keys in the block: where no earlier row holds its value (dup 0)
 * it is the first holder, and its value is a key of count mult. Counted a
 * multiplicity at a time up to the largest in the block (where patterns
 * are many, 1: nothing to count). */
static inline uint64_t rows_block_keys(const int32_t *restrict mult, const int32_t *restrict dj,
                                       int b, int most, uint32_t *dense)
{
    int32_t largest = 1;
    for (int i = 0; i < b; i++)
        largest = mult[i] > largest ? mult[i] : largest;
    most = largest < most ? largest : most;
    uint64_t top = 0;
    for (int m = 2; m <= most; m++) {
        uint32_t keys = 0;
        for (int i = 0; i < b; i++)
            keys += (uint32_t)((dj[i] == 0) & (mult[i] == m));
        dense[m] += keys;
        top = keys ? (uint64_t)m : top;
    }
    return top;
}

#define ROWS_KEY_COUNTS(NAME, V)                                                                   \
    __attribute__((target_clones("avx512f", "avx2", "default"))) static uint64_t NAME(             \
        const V *const *rows, const uint64_t *const *hi, int n_rows, size_t n, uint32_t *dense)    \
    {                                                                                              \
        int32_t dup[IPM_ROWS_COMPARED * ROWS_BLOCK], mult[ROWS_BLOCK];                             \
        uint64_t top = 0;                                                                          \
        for (size_t i0 = 0; i0 < n; i0 += ROWS_BLOCK) {                                            \
            int b = n - i0 < ROWS_BLOCK ? (int)(n - i0) : ROWS_BLOCK;                              \
            memset(dup, 0, (size_t)n_rows *ROWS_BLOCK * sizeof *dup);                              \
            for (int j = 0; j < n_rows; j++) {                                                     \
                const V *restrict aj = rows[j] + i0;                                               \
                const uint64_t *restrict ah = hi ? hi[j] + i0 : NULL;                              \
                for (int i = 0; i < b; i++)                                                        \
                    mult[i] = 1;                                                                   \
                ROWS_AGAINST_LATER(V)                                                              \
                uint64_t t =                                                                       \
                    rows_block_keys(mult, dup + (size_t)j * ROWS_BLOCK, b, n_rows - j, dense);     \
                top = t > top ? t : top;                                                           \
            }                                                                                      \
        }                                                                                          \
        return top;                                                                                \
    }

ROWS_KEY_COUNTS(rows_key_counts_ids, int32_t)
ROWS_KEY_COUNTS(rows_key_counts_words, uint64_t)

uint64_t ipm_rows_key_counts(const int32_t *const *ids, const uint64_t *const *lo, int n_rows,
                             size_t n, uint32_t *dense)
{
    IPM_ASSERT(n_rows >= 1 && n_rows <= IPM_ROWS_COMPARED);
    return ids ? rows_key_counts_ids(ids, NULL, n_rows, n, dense)
               : rows_key_counts_words(lo, NULL, n_rows, n, dense);
}

uint64_t ipm_rows_key_counts2(const uint64_t *const *lo, const uint64_t *const *hi, int n_rows,
                              size_t n, uint32_t *dense)
{
    IPM_ASSERT(n_rows >= 1 && n_rows <= IPM_ROWS_COMPARED);
    return rows_key_counts_words(lo, hi, n_rows, n, dense);
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
 * across the replicas. */
static void xt_distinct_all_replicas(const ipm_pairs *pairs, int n, sink *s)
{
    s->total += (uint64_t)n * (uint64_t)pairs->n_reps; /* keys of count 1 add only to it */
    uint64_t top = ipm_rows_key_counts(pairs->ids, NULL, pairs->n_reps, (size_t)n, s->hist);
    s->top = top > s->top ? top : s->top;
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
        xt_distinct_all_replicas(pairs, c->n, s);
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
    size_t n = count_cells(c, pairs, y);
    cells_entropies(c, c->count_yt, c->touched_yt, n, 0, NULL, out);
    sink xt = {.hist = c->hist};
    count_xt(c, pairs, g, &xt);
    out->xt = sink_entropy(&xt, c, &out->cells_xt);
}

/* Each replica's entropies into each[k]; with pool, its cells are also
 * added to the pooled cells (pool_yt), so the pooled counts cost no second
 * pass over the pairs. Returns the pooled cells touched. */
static size_t count_each(ipm_counter *c, const ipm_pairs *pairs, const ipm_x_groups *g,
                         const int32_t *y, ipm_entropies *each, int pool)
{
    size_t n_pool = 0;
    for (int k = 0; k < pairs->n_reps; k++) {
        ipm_pairs one = {&pairs->ids[k], 1, NULL};
        size_t n = count_cells(c, &one, y);
        cells_entropies(c, c->count_yt, c->touched_yt, n, pool, &n_pool, &each[k]);
        sink xt = {.hist = c->hist};
        count_xt(c, &one, g, &xt);
        each[k].xt = sink_entropy(&xt, c, &each[k].cells_xt);
    }
    return n_pool;
}

/* The (Y, T) cells counted in count (touched in cell[0..n)) into out, count
 * emptied. */
static size_t export_cells(const ipm_counter *c, uint32_t *count, const int32_t *cell, size_t n,
                           ipm_id_count *out)
{
    int bits = c->class_bits;
    for (size_t k = 0; k < n; k++) {
        int32_t at = cell[k];
        out[k] = (ipm_id_count){at >> bits, at & ((1 << bits) - 1), count[at]};
        count[at] = 0;
    }
    return n;
}

void ipm_count_replicas(ipm_counter *c, const ipm_pairs *pairs, const ipm_x_groups *g,
                        const int32_t *y, ipm_entropies *each, ipm_entropies *pooled)
{
    size_t n_pool = count_each(c, pairs, g, y, each, pooled != NULL);
    if (pooled) {
        cells_entropies(c, c->pool_yt, c->pool_touched_yt, n_pool, 0, NULL, pooled);
        sink xt = {.hist = c->hist};
        count_xt(c, pairs, g, &xt);
        pooled->xt = sink_entropy(&xt, c, &pooled->cells_xt);
    }
}

size_t ipm_count_replicas_cells(ipm_counter *c, const ipm_pairs *pairs, const ipm_x_groups *g,
                                const int32_t *y, ipm_entropies *each, ipm_id_count *pooled)
{
    size_t n_pool = count_each(c, pairs, g, y, each, 1);
    return export_cells(c, c->pool_yt, c->pool_touched_yt, n_pool, pooled);
}

size_t ipm_count_yt_cells(ipm_counter *c, const ipm_pairs *pairs, const int32_t *y,
                          ipm_id_count *out)
{
    return export_cells(c, c->count_yt, c->touched_yt, count_cells(c, pairs, y), out);
}

int ipm_count_export(ipm_counter *c, const ipm_pairs *pairs, const ipm_x_groups *g,
                     const int32_t *y, const ipm_pattern *key, ipm_table *t, ipm_table *xt,
                     ipm_table *yt, char *err)
{
    ipm_count batch[3][SINK_BATCH];
    sink st = {.table = t, .key = key, .err = err, .batch = batch[0]};
    sink sxt = {.table = xt, .key = key, .err = err, .batch = batch[1]};
    sink syt = {.table = yt, .key = key, .err = err, .batch = batch[2]};
    cells_to_tables(c, count_cells(c, pairs, y), &st, &syt);
    count_xt(c, pairs, g, &sxt);
    sink_flush(&st);
    sink_flush(&syt);
    sink_flush(&sxt);
    return st.rc || sxt.rc || syt.rc ? -1 : 0;
}
