/* bins: activations -> bin indices -> patterns. The hot loop is one guess
 * from the uniform spacing plus one check against the two neighbouring
 * edges; a binary search backs it up, so any increasing edges stay exact. */
#include "ipmpi/bins.h"

#include <stddef.h>

void ipm_bin_edges(float *edges, int n, double lo, double hi)
{
    /* numpy.linspace: step in double, i * step + lo, the last edge exactly hi. */
    double step = (hi - lo) / (double)(n - 1);
    for (int i = 0; i < n - 1; i++)
        edges[i] = (float)((double)i * step + lo);
    edges[n - 1] = (float)hi;
}

typedef struct binner {
    const float *e;
    int n;
    float lo, hi, inv_step;
} binner;

static binner binner_make(const float *edges, int n)
{
    binner b = {edges, n, edges[0], edges[n - 1], 0.0f};
    double span = (double)b.hi - (double)b.lo;
    b.inv_step = span > 0 ? (float)((double)(n - 1) / span) : 0.0f;
    return b;
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

static inline int bin_of(const binner *b, float v)
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
    binner b = binner_make(edges, n);
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

static void patterns_exact(const binner *b, const float *act, int rows, int units, int bits,
                           ipm_pattern *out)
{
    for (int i = 0; i < rows; i++) {
        const float *row = act + (size_t)i * (size_t)units;
        ipm_pattern p = {0, 0};
        for (int j = 0; j < units; j++)
            put_field(&p, j * bits, bits, (uint64_t)bin_of(b, row[j]));
        out[i] = p;
    }
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

typedef struct fingerprint {
    uint64_t a, b;
} fingerprint;

static inline void fingerprint_word(fingerprint *f, uint64_t w)
{
    f->a = fmix64(f->a ^ w);
    f->b = splitmix64(f->b + w * 0xd6e8feb86659fd93ULL);
}

static void patterns_hashed(const binner *b, const float *act, int rows, int units, int bits,
                            ipm_pattern *out)
{
    int per_word = 64 / bits;
    for (int i = 0; i < rows; i++) {
        const float *row = act + (size_t)i * (size_t)units;
        fingerprint f = {0x243f6a8885a308d3ULL ^ (uint64_t)units, 0x13198a2e03707344ULL};
        uint64_t word = 0;
        int in_word = 0;
        for (int j = 0; j < units; j++) {
            word |= (uint64_t)bin_of(b, row[j]) << (in_word * bits);
            if (++in_word == per_word) {
                fingerprint_word(&f, word);
                word = 0;
                in_word = 0;
            }
        }
        if (in_word)
            fingerprint_word(&f, word);
        out[i] = (ipm_pattern){f.a, f.b};
    }
}

void ipm_patterns(const float *act, int rows, int units, const float *edges, int n_edges,
                  ipm_pattern *out)
{
    binner b = binner_make(edges, n_edges);
    int bits = ipm_bin_bits(n_edges);
    if (ipm_patterns_exact(units, n_edges))
        patterns_exact(&b, act, rows, units, bits, out);
    else
        patterns_hashed(&b, act, rows, units, bits, out);
}
