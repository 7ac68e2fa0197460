/* table: linear probing over 32-byte slots, at most 5/8 full. A side list of
 * occupied slot indices keeps clear, export and the entropy sums
 * proportional to the keys held rather than to the capacity: the simple
 * estimator clears and re-reads its tables for every replica and layer. */
#include "ipmpi/info/table.h"

#include <stdlib.h>
#include <string.h>

#include "ipmpi/base/assert.h"
#include "ipmpi/base/error.h"
#include "ipmpi/info/hash.h"

#define MIN_CAPACITY 16
#define MAX_CAPACITY ((size_t)1 << 32) /* slot indices are stored as uint32 */
#define STACK_HISTOGRAM 4096           /* counts up to this need no heap */
#define DENSE_HISTOGRAM (1u << 16)     /* larger counts are sorted instead */

static inline size_t max_len(size_t capacity)
{
    return capacity / 2 + capacity / 8;
}

static int alloc_slots(ipm_table *t, size_t capacity, char *err)
{
    if (capacity > MAX_CAPACITY)
        return ipm_fail(err, "count table: more than %zu keys", max_len(MAX_CAPACITY));
    t->slot = calloc(capacity, sizeof *t->slot);
    t->filled = malloc((max_len(capacity) + 1) * sizeof *t->filled);
    if (!t->slot || !t->filled) {
        free(t->slot);
        free(t->filled);
        t->slot = NULL;
        t->filled = NULL;
        return ipm_fail(err, "count table: out of memory for %zu slots", capacity);
    }
    t->capacity = capacity;
    return 0;
}

int ipm_table_init(ipm_table *t, size_t expected_keys, char *err)
{
    memset(t, 0, sizeof *t);
    size_t capacity = MIN_CAPACITY;
    while (capacity < MAX_CAPACITY && max_len(capacity) < expected_keys + expected_keys / 4)
        capacity *= 2;
    return alloc_slots(t, capacity, err);
}

void ipm_table_free(ipm_table *t)
{
    free(t->slot);
    free(t->filled);
    memset(t, 0, sizeof *t);
}

/* Loops over every key read the slots in slot order when the table is at
 * least an eighth full (a sequential scan beats following `filled` into a
 * large table), else through `filled`. Unused slots have used == 0. */
static inline size_t visit_count(const ipm_table *t)
{
    return t->len >= t->capacity / 8 ? t->capacity : t->len;
}

static inline const ipm_count *visit(const ipm_table *t, size_t n_visit, size_t k)
{
    return n_visit == t->len ? &t->slot[t->filled[k]] : &t->slot[k];
}

void ipm_table_clear(ipm_table *t)
{
    if (visit_count(t) == t->capacity)
        memset(t->slot, 0, t->capacity * sizeof *t->slot);
    else
        for (size_t k = 0; k < t->len; k++)
            t->slot[t->filled[k]].used = 0;
    t->len = 0;
    t->total = 0;
}

/* The table's hot fields as locals: a slot store could alias t->len or
 * t->total (all uint64_t), so working through t forces a reload after every
 * insert; a cursor stays in registers and is written back once. */
typedef struct cursor {
    ipm_count *slot;
    uint32_t *filled;
    size_t mask, len, limit;
    uint64_t total;
} cursor;

static inline cursor cursor_load(const ipm_table *t)
{
    return (cursor){
        t->slot, t->filled, t->capacity ? t->capacity - 1 : 0, t->len, max_len(t->capacity),
        t->total};
}

static inline void cursor_store(const cursor *c, ipm_table *t)
{
    t->len = c->len;
    t->total = c->total;
}

/* The key's slot, or the empty slot where it belongs; the table is never
 * full, so the probe ends. */
static inline size_t probe(const ipm_count *slot, size_t mask, uint32_t group, uint64_t lo,
                           uint64_t hi)
{
    size_t i = ipm_key_hash(group, lo, hi) & mask;
    for (;;) {
        const ipm_count *s = &slot[i];
        if (!s->used || (s->lo == lo && s->hi == hi && s->group == group))
            return i;
        i = (i + 1) & mask;
    }
}

static inline void put_new(ipm_count *slot, uint32_t *filled, size_t *len, size_t i, uint32_t group,
                           uint64_t lo, uint64_t hi, uint64_t count)
{
    slot[i] = (ipm_count){.lo = lo, .hi = hi, .group = group, .used = 1, .count = count};
    filled[(*len)++] = (uint32_t)i;
}

/* Doubles the capacity, re-inserting keys in their insertion order. */
static int grow(ipm_table *t, char *err)
{
    ipm_table old = *t;
    size_t capacity = old.capacity ? old.capacity * 2 : MIN_CAPACITY;
    if (alloc_slots(t, capacity, err)) {
        *t = old;
        return -1;
    }
    t->len = 0;
    for (size_t k = 0; k < old.len; k++) {
        const ipm_count *s = &old.slot[old.filled[k]];
        size_t i = probe(t->slot, t->capacity - 1, s->group, s->lo, s->hi);
        put_new(t->slot, t->filled, &t->len, i, s->group, s->lo, s->hi, s->count);
    }
    free(old.slot);
    free(old.filled);
    return 0;
}

static inline int cursor_add(cursor *c, ipm_table *t, uint32_t group, uint64_t lo, uint64_t hi,
                             uint64_t count, char *err)
{
    if (c->len >= c->limit) {
        cursor_store(c, t);
        int rc = grow(t, err);
        *c = cursor_load(t);
        if (rc)
            return -1;
    }
    size_t i = probe(c->slot, c->mask, group, lo, hi);
    if (c->slot[i].used)
        c->slot[i].count += count;
    else
        put_new(c->slot, c->filled, &c->len, i, group, lo, hi, count);
    c->total += count;
    return 0;
}

int ipm_table_add(ipm_table *t, uint32_t group, ipm_pattern p, uint64_t count, char *err)
{
    cursor c = cursor_load(t);
    int rc = cursor_add(&c, t, group, p.lo, p.hi, count, err);
    cursor_store(&c, t);
    return rc;
}

int ipm_table_add_patterns(ipm_table *t, const int32_t *group, const ipm_pattern *p, int n,
                           const uint8_t *keep, char *err)
{
    cursor c = cursor_load(t);
    int rc = 0;
    for (int i = 0; i < n && rc == 0; i++)
        if (!keep || keep[i])
            rc = cursor_add(&c, t, group ? (uint32_t)group[i] : 0, p[i].lo, p[i].hi, 1, err);
    cursor_store(&c, t);
    return rc;
}

size_t ipm_table_export(const ipm_table *t, ipm_count *out)
{
    for (size_t k = 0; k < t->len; k++) {
        out[k] = t->slot[t->filled[k]];
        out[k].used = 1;
    }
    return t->len;
}

/* Slots this many entries ahead are prefetched: a large table's probes
 * miss the cache, and the misses of a batch then overlap. */
#define PREFETCH_AHEAD 8

int ipm_table_merge(ipm_table *t, const ipm_count *entries, size_t n, char *err)
{
    cursor c = cursor_load(t);
    int rc = 0;
    for (size_t k = 0; k < n && rc == 0; k++) {
        if (k + PREFETCH_AHEAD < n) {
            const ipm_count *e = &entries[k + PREFETCH_AHEAD];
            __builtin_prefetch(&c.slot[ipm_key_hash(e->group, e->lo, e->hi) & c.mask], 1);
        }
        rc = cursor_add(&c, t, entries[k].group, entries[k].lo, entries[k].hi, entries[k].count,
                        err);
    }
    cursor_store(&c, t);
    return rc;
}

static int compare_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

static double sum_in_table_order(const ipm_table *t)
{
    double s = 0;
    for (size_t k = 0; k < t->len; k++)
        s += ipm_clog2c(t->slot[t->filled[k]].count);
    return s;
}

/* The counts above the dense histogram, sorted; NULL on OOM. */
static uint64_t *sorted_large_counts(const ipm_table *t, uint64_t limit, size_t n_large)
{
    uint64_t *large = malloc(n_large * sizeof *large);
    if (!large)
        return NULL;
    size_t m = 0, n_visit = visit_count(t);
    for (size_t k = 0; k < n_visit; k++) {
        const ipm_count *e = visit(t, n_visit, k);
        if (e->used && e->count > limit)
            large[m++] = e->count;
    }
    qsort(large, n_large, sizeof *large, compare_u64);
    return large;
}

/* The sorted large counts, run-length grouped, appended to out. */
static int push_large(ipm_hist *out, const uint64_t *large, size_t n_large, char *err)
{
    for (size_t k = 0; k < n_large;) {
        size_t run = k + 1;
        while (run < n_large && large[run] == large[k])
            run++;
        if (ipm_hist_push(out, large[k], run - k, err))
            return -1;
        k = run;
    }
    return 0;
}

/* The dense histogram of the counts up to limit, appended to out. */
static int push_small(const ipm_table *t, uint64_t limit, ipm_hist *out, char *err)
{
    uint32_t on_stack[STACK_HISTOGRAM + 1];
    uint32_t *hist = limit <= STACK_HISTOGRAM ? on_stack : calloc(limit + 1, sizeof *hist);
    if (!hist)
        return ipm_fail(err, "count table: out of memory for a histogram of %llu counts",
                        (unsigned long long)limit);
    if (hist == on_stack)
        memset(hist, 0, (limit + 1) * sizeof *hist);
    size_t n_visit = visit_count(t);
    for (size_t k = 0; k < n_visit; k++) {
        const ipm_count *e = visit(t, n_visit, k);
        if (e->used && e->count <= limit)
            hist[e->count]++;
    }
    int rc = 0;
    for (uint64_t c = 1; c <= limit && rc == 0; c++)
        if (hist[c])
            rc = ipm_hist_push(out, c, hist[c], err);
    if (hist != on_stack)
        free(hist);
    return rc;
}

/* Small counts through a dense histogram, the rest sorted and run-length
 * grouped: together the bins in increasing count order. */
int ipm_table_histogram(const ipm_table *t, ipm_hist *out, char *err)
{
    uint64_t max_count = 0;
    size_t n_large = 0, n_visit = visit_count(t);
    for (size_t k = 0; k < n_visit; k++) {
        const ipm_count *e = visit(t, n_visit, k);
        uint64_t c = e->used ? e->count : 0;
        max_count = c > max_count ? c : max_count;
        n_large += c > DENSE_HISTOGRAM;
    }
    IPM_ASSERT(out->len == 0);
    uint64_t limit = max_count < DENSE_HISTOGRAM ? max_count : DENSE_HISTOGRAM;
    uint64_t *large = n_large ? sorted_large_counts(t, limit, n_large) : NULL;
    if (n_large && !large)
        return ipm_fail(err, "count table: out of memory sorting %zu counts", n_large);
    int rc = push_small(t, limit, out, err);
    if (rc == 0)
        rc = push_large(out, large, n_large, err);
    free(large);
    return rc;
}

/* Should the histogram fail to allocate, a plain sum: correct but
 * order-dependent. */
double ipm_table_sum_clog2c(const ipm_table *t)
{
    char err[IPM_ERRLEN];
    ipm_hist h;
    ipm_hist_init(&h);
    double s = ipm_table_histogram(t, &h, err) ? sum_in_table_order(t) : ipm_hist_sum_clog2c(&h);
    ipm_hist_free(&h);
    return s;
}

double ipm_table_entropy(const ipm_table *t)
{
    return ipm_entropy_from_sum(ipm_table_sum_clog2c(t), t->total);
}
