/* bins: activations -> bin indices -> patterns. For near-uniform edges the
 * bin is a guess from the spacing, corrected by comparing with the two edges
 * around it: branch-free, 16 values at a time with AVX-512 (the edges sit in
 * registers, looked up by permutes) or vectorised by the compiler. The
 * binner proves once that the guess is never off by more than one (the guess
 * is monotone in v, so checking each bin's two ends suffices); otherwise
 * every value goes through a guess plus binary search. Either way the result
 * is exactly #{j : e_j <= v}. */
#include "ipmpi/info/bins.h"

#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define HAVE_AVX512_PATH 1
#else
#define HAVE_AVX512_PATH 0
#endif

void ipm_bin_edges(float *edges, int n, double lo, double hi)
{
    /* numpy.linspace: step in double, i * step + lo, the last edge exactly hi. */
    double step = (hi - lo) / (double)(n - 1);
    for (int i = 0; i < n - 1; i++)
        edges[i] = (float)((double)i * step + lo);
    edges[n - 1] = (float)hi;
}

long ipm_width_edge_count(double w, double lo, double hi)
{
    double first = floor(lo / w), last = floor(hi / w) + 1.0;
    double n = last - first + 1.0;
    return n <= IPM_MAX_EDGES ? (long)n : -1;
}

int ipm_width_edges(float *edges, double w, double lo, double hi)
{
    long n = ipm_width_edge_count(w, lo, hi);
    double first = floor(lo / w);
    for (long i = 0; i < n; i++)
        edges[i] = (float)((first + (double)i) * w);
    return (int)n;
}

/* Float bits mapped so that unsigned order is the floats' order (-0 just
 * below +0; NaN beyond the infinities on its sign's side). */
static inline uint32_t order_key(float v)
{
    uint32_t u;
    memcpy(&u, &v, sizeof u);
    return u & 0x80000000u ? ~u : u | 0x80000000u;
}

static inline float key_value(uint32_t k)
{
    uint32_t u = k & 0x80000000u ? k & 0x7fffffffu : ~k;
    float v;
    memcpy(&v, &u, sizeof v);
    return v;
}

/* LSD radix sort of the keys, 8 bits a pass: linear, where a comparison
 * sort of a replica's layer at every logged epoch would dominate. */
static void radix_sort(uint32_t *keys, uint32_t *tmp, size_t count)
{
    for (int shift = 0; shift < 32; shift += 8) {
        size_t start[257] = {0};
        for (size_t i = 0; i < count; i++)
            start[((keys[i] >> shift) & 0xffu) + 1]++;
        for (int d = 0; d < 256; d++)
            start[d + 1] += start[d];
        for (size_t i = 0; i < count; i++)
            tmp[start[(keys[i] >> shift) & 0xffu]++] = keys[i];
        uint32_t *swap = keys;
        keys = tmp;
        tmp = swap;
    } /* four passes: the sorted keys are back in the first buffer */
}

void ipm_quantile_edges(const float *values, uint32_t *keys, uint32_t *tmp, size_t count, int n,
                        float *edges)
{
    for (size_t i = 0; i < count; i++)
        keys[i] = order_key(values[i]);
    radix_sort(keys, tmp, count);
    for (int j = 0; j < n; j++)
        edges[j] = key_value(keys[((uint64_t)(j + 1) * count) / (uint64_t)(n + 1)]);
}

/* The in-range guess k in [1, n-1]: bin v when it lies in [e[k-1], e[k]).
 * NaN and values below e[0] give 1, huge ones n - 1. */
static inline int guess_of(const ipm_binner *b, float v)
{
    float g = (v - b->lo) * b->inv_step;
    g = g > 0.0f ? g : 0.0f; /* NaN goes to 0 too */
    g = g < b->top ? g : b->top;
    return (int)g + 1;
}

/* For every v the true bin t must satisfy |t - guess| <= 1 (see bin_near).
 * Bin 0 (v < e[0], NaN) always guesses 1; bin n (v >= e[n-1]) needs the
 * guess n - 1 from e[n-1] on; bin t in 1..n-1 holds [e[t-1], e[t]). */
static int guess_always_near(const ipm_binner *b)
{
    if (guess_of(b, b->e[b->n - 1]) != b->n - 1)
        return 0;
    for (int t = 1; t < b->n; t++) {
        if (!(b->e[t - 1] < b->e[t]))
            continue; /* empty bin */
        int first = guess_of(b, b->e[t - 1]);
        int last = guess_of(b, nextafterf(b->e[t], -INFINITY));
        if (first < t - 1 || last > t + 1)
            return 0;
    }
    return 1;
}

static int cpu_has_avx512(void)
{
#if HAVE_AVX512_PATH
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f");
#else
    return 0;
#endif
}

void ipm_binner_init(ipm_binner *b, const float *edges, int n)
{
    memset(b, 0, sizeof *b);
    b->e = edges;
    b->n = n;
    b->lo = edges[0];
    b->hi = edges[n - 1];
    b->top = (float)(n - 2);
    double span = (double)b->hi - (double)b->lo;
    b->inv_step = span > 0 ? (float)((double)(n - 1) / span) : 0.0f;
    b->guess_in_reach = isfinite(b->inv_step) && guess_always_near(b);
    b->simd = b->guess_in_reach && n <= 64 && cpu_has_avx512();
    for (int j = 0; j < 64; j++)
        b->table[j] = edges[j < n ? j : n - 1];
}

/* With the true bin t in [k-1, k+1]: every edge below e[k-1] is <= v, every
 * edge above e[k] is > v, so t = (k - 1) + [e[k-1] <= v] + [e[k] <= v].
 * Out of range this gives 0 (k = 1) and n (k = n - 1) as well. */
static inline int bin_near(const ipm_binner *b, float v)
{
    int k = guess_of(b, v);
    return k - 1 + (b->e[k - 1] <= v) + (b->e[k] <= v);
}

/* First j in [1, n-1] with e[j] > v, given e[0] <= v < e[n-1]. */
static int search_above(const float *e, int n, float v)
{
    int lo = 1, hi = n - 1;
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2;
        if (e[mid] <= v)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* Any increasing edges: the guess when it is right, else a binary search. */
static inline int bin_of(const ipm_binner *b, float v)
{
    if (!(v >= b->lo)) /* below the range, or NaN */
        return 0;
    if (v >= b->hi)
        return b->n;
    /* g is finite and >= 0 unless inv_step overflowed; NaN fails the test too. */
    float g = (v - b->lo) * b->inv_step;
    int k = g < (float)(b->n - 2) ? (int)g + 1 : b->n - 1;
    if (b->e[k - 1] <= v && v < b->e[k])
        return k;
    return search_above(b->e, b->n, v);
}

int ipm_digitize(float v, const float *edges, int n)
{
    ipm_binner b;
    ipm_binner_init(&b, edges, n);
    return bin_of(&b, v);
}

int ipm_bin_bits(int n_edges)
{
    int bits = 1;
    while (((uint64_t)1 << bits) <= (uint64_t)n_edges)
        bits++;
    return bits;
}

int ipm_patterns_exact(int units, int n_edges)
{
    return (long long)units * ipm_bin_bits(n_edges) <= 128;
}

#if HAVE_AVX512_PATH
/* table[idx & 63] in 16 lanes: two 32-entry permutes, picked by bit 5. */
__attribute__((target("avx512f"))) static inline __m512 lookup64(__m512i idx, __m512 t0, __m512 t1,
                                                                 __m512 t2, __m512 t3)
{
    __m512 low = _mm512_permutex2var_ps(t0, idx, t1);
    __m512 high = _mm512_permutex2var_ps(t2, idx, t3);
    __mmask16 upper = _mm512_test_epi32_mask(idx, _mm512_set1_epi32(32));
    return _mm512_mask_blend_ps(upper, low, high);
}

/* bin_near on 16 lanes; the count is a multiple of 16. vmaxps returns its
 * second operand for a NaN first one, so NaN lands on 0 as in guess_of. */
__attribute__((target("avx512f"))) static void
bin_values_avx512(const ipm_binner *b, const float *v, size_t count, uint16_t *out)
{
    __m512 t0 = _mm512_loadu_ps(b->table), t1 = _mm512_loadu_ps(b->table + 16);
    __m512 t2 = _mm512_loadu_ps(b->table + 32), t3 = _mm512_loadu_ps(b->table + 48);
    __m512 lo = _mm512_set1_ps(b->lo), inv = _mm512_set1_ps(b->inv_step);
    __m512 top = _mm512_set1_ps(b->top), zero = _mm512_setzero_ps();
    __m512i one = _mm512_set1_epi32(1);
    for (size_t i = 0; i < count; i += 16) {
        __m512 x = _mm512_loadu_ps(v + i);
        __m512 g = _mm512_mul_ps(_mm512_sub_ps(x, lo), inv);
        g = _mm512_min_ps(_mm512_max_ps(g, zero), top);
        __m512i below = _mm512_cvttps_epi32(g); /* k - 1 */
        __m512i k = _mm512_add_epi32(below, one);
        __mmask16 ge_below = _mm512_cmp_ps_mask(lookup64(below, t0, t1, t2, t3), x, _CMP_LE_OQ);
        __mmask16 ge_k = _mm512_cmp_ps_mask(lookup64(k, t0, t1, t2, t3), x, _CMP_LE_OQ);
        __m512i bin = _mm512_mask_add_epi32(below, ge_below, below, one);
        bin = _mm512_mask_add_epi32(bin, ge_k, bin, one);
        _mm256_storeu_si256((__m256i *)(out + i), _mm512_cvtepi32_epi16(bin));
    }
}
#endif

static void bin_values(const ipm_binner *b, const float *v, size_t count, uint16_t *out)
{
    size_t i = 0;
#if HAVE_AVX512_PATH
    if (b->simd) {
        i = count & ~(size_t)15;
        bin_values_avx512(b, v, i, out);
    }
#endif
    if (b->guess_in_reach)
        for (; i < count; i++)
            out[i] = (uint16_t)bin_near(b, v[i]);
    else
        for (; i < count; i++)
            out[i] = (uint16_t)bin_of(b, v[i]);
}

/* Bit pos of the 128-bit (lo, hi) pair; a field may straddle the words. */
static inline void put_field(ipm_pattern *p, int pos, int bits, uint64_t value)
{
    if (pos < 64) {
        p->lo |= value << pos;
        if (pos + bits > 64)
            p->hi |= value >> (64 - pos);
    } else {
        p->hi |= value << (pos - 64);
    }
}

static inline ipm_pattern pack_exact(const uint16_t *bin, int units, int bits)
{
    ipm_pattern p = {0, 0};
    if (units * bits <= 64) {
        for (int j = 0; j < units; j++)
            p.lo |= (uint64_t)bin[j] << (j * bits);
        return p;
    }
    for (int j = 0; j < units; j++)
        put_field(&p, j * bits, bits, bin[j]);
    return p;
}

/* Two unrelated bijective 64-bit mixers (murmur3's fmix64 and splitmix64's
 * finaliser), chained over the packed words with different seeds, give the
 * two halves of the fingerprint. */
static inline uint64_t fmix64(uint64_t h)
{
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ULL;
    h ^= h >> 33;
    return h;
}

static inline uint64_t splitmix64(uint64_t z)
{
    z += 0x9e3779b97f4a7c15ULL;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* Bin indices enter the fingerprint packed per_word to a 64-bit word. */
typedef struct hasher {
    uint64_t a, b, word;
    int in_word, per_word, bits;
} hasher;

static inline hasher hasher_start(int units, int bits)
{
    return (hasher){
        0x243f6a8885a308d3ULL ^ (uint64_t)units, 0x13198a2e03707344ULL, 0, 0, 64 / bits, bits};
}

static inline void hasher_word(hasher *h)
{
    h->a = fmix64(h->a ^ h->word);
    h->b = splitmix64(h->b + h->word * 0xd6e8feb86659fd93ULL);
    h->word = 0;
    h->in_word = 0;
}

static inline void hasher_put(hasher *h, uint64_t bin)
{
    h->word |= bin << (h->in_word * h->bits);
    if (++h->in_word == h->per_word)
        hasher_word(h);
}

static inline ipm_pattern hasher_end(hasher *h)
{
    if (h->in_word)
        hasher_word(h);
    return (ipm_pattern){h->a, h->b};
}

static ipm_pattern pack_hashed(const uint16_t *bin, int units, int bits)
{
    hasher h = hasher_start(units, bits);
    for (int j = 0; j < units; j++)
        hasher_put(&h, bin[j]);
    return hasher_end(&h);
}

/* units * bits <= 64: one word per row. With units a constant the compiler
 * unrolls each row, so the narrow layers get a case each. */
static inline __attribute__((always_inline)) void
pack_word_rows(const uint16_t *bin, int n_rows, int units, int bits, ipm_pattern *out)
{
    for (int i = 0; i < n_rows; i++) {
        const uint16_t *row = bin + (size_t)i * (size_t)units;
        uint64_t word = 0;
        for (int j = 0; j < units; j++)
            word |= (uint64_t)row[j] << (j * bits);
        out[i] = (ipm_pattern){word, 0};
    }
}

#define PACK_CASE(u)                                                                               \
    case u:                                                                                        \
        pack_word_rows(bin, n_rows, u, bits, out);                                                 \
        break

static void pack_rows_in_word(const uint16_t *bin, int n_rows, int units, int bits,
                              ipm_pattern *out)
{
    switch (units) {
        PACK_CASE(1);
        PACK_CASE(2);
        PACK_CASE(3);
        PACK_CASE(4);
        PACK_CASE(5);
        PACK_CASE(6);
        PACK_CASE(7);
        PACK_CASE(8);
        PACK_CASE(9);
        PACK_CASE(10);
        PACK_CASE(11);
        PACK_CASE(12);
    default:
        pack_word_rows(bin, n_rows, units, bits, out);
    }
}

#define CHUNK_VALUES 4096 /* bin indices binned at once: 8 KiB, stays in L1 */

/* A row wider than a chunk (so fingerprinted), binned a chunk at a time. */
static ipm_pattern pattern_of_wide_row(const ipm_binner *b, const float *row, int units, int bits,
                                       uint16_t *bin)
{
    hasher h = hasher_start(units, bits);
    for (int j0 = 0; j0 < units; j0 += CHUNK_VALUES) {
        int n = units - j0 < CHUNK_VALUES ? units - j0 : CHUNK_VALUES;
        bin_values(b, row + j0, (size_t)n, bin);
        for (int j = 0; j < n; j++)
            hasher_put(&h, bin[j]);
    }
    return hasher_end(&h);
}

/* A chunk of n_rows binned rows into patterns. */
static void pack_chunk(const uint16_t *bin, int n_rows, int units, int bits, ipm_pattern *out)
{
    if (units * bits <= 64) {
        pack_rows_in_word(bin, n_rows, units, bits, out);
        return;
    }
    int exact = units * bits <= 128;
    for (int i = 0; i < n_rows; i++) {
        const uint16_t *row = bin + (size_t)i * (size_t)units;
        out[i] = exact ? pack_exact(row, units, bits) : pack_hashed(row, units, bits);
    }
}

/* Rows are binned a chunk at a time (one flat loop), then packed. */
void ipm_binner_patterns(const ipm_binner *b, const float *act, int rows, int units,
                         ipm_pattern *out)
{
    int bits = ipm_bin_bits(b->n);
    uint16_t bin[CHUNK_VALUES];
    if (units > CHUNK_VALUES) {
        for (int i = 0; i < rows; i++)
            out[i] = pattern_of_wide_row(b, act + (size_t)i * (size_t)units, units, bits, bin);
        return;
    }
    int per_chunk = CHUNK_VALUES / units;
    for (int i0 = 0; i0 < rows; i0 += per_chunk) {
        int n_rows = rows - i0 < per_chunk ? rows - i0 : per_chunk;
        bin_values(b, act + (size_t)i0 * (size_t)units, (size_t)n_rows * (size_t)units, bin);
        pack_chunk(bin, n_rows, units, bits, out + i0);
    }
}

static inline int bin_one(const ipm_binner *b, float v)
{
    return b->guess_in_reach ? bin_near(b, v) : bin_of(b, v);
}

static ipm_pattern pattern_of_wide_row_per_unit(const ipm_binner *per_unit, const float *row,
                                                int units, int bits)
{
    hasher h = hasher_start(units, bits);
    for (int j = 0; j < units; j++)
        hasher_put(&h, (uint64_t)bin_one(&per_unit[j], row[j]));
    return hasher_end(&h);
}

void ipm_binners_patterns(const ipm_binner *per_unit, const float *act, int rows, int units,
                          ipm_pattern *out)
{
    int bits = ipm_bin_bits(per_unit[0].n);
    uint16_t bin[CHUNK_VALUES];
    if (units > CHUNK_VALUES) {
        for (int i = 0; i < rows; i++)
            out[i] = pattern_of_wide_row_per_unit(per_unit, act + (size_t)i * (size_t)units, units,
                                                  bits);
        return;
    }
    int per_chunk = CHUNK_VALUES / units;
    for (int i0 = 0; i0 < rows; i0 += per_chunk) {
        int n_rows = rows - i0 < per_chunk ? rows - i0 : per_chunk;
        const float *v = act + (size_t)i0 * (size_t)units;
        for (size_t k = 0; k < (size_t)n_rows * (size_t)units; k++)
            bin[k] = (uint16_t)bin_one(&per_unit[k % (size_t)units], v[k]);
        pack_chunk(bin, n_rows, units, bits, out + i0);
    }
}

void ipm_patterns(const float *act, int rows, int units, const float *edges, int n_edges,
                  ipm_pattern *out)
{
    ipm_binner b;
    ipm_binner_init(&b, edges, n_edges);
    ipm_binner_patterns(&b, act, rows, units, out);
}
