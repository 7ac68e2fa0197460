/* bins: activations -> bin indices -> one key per sample (the layer's pattern).
 * Edges as numpy's linspace(lo, hi, n) computed in double (i*step + lo,
 * the last edge exactly hi) then rounded to float32; a float32 value v goes
 * to bin #{j : e_j <= v} (numpy digitize), 0..n. Values outside [lo, hi]
 * land in the outermost bins (the original code wrapped values below the
 * first edge to the last bin; we do not). NaN goes to bin 0.
 * A pattern is the vector of a layer's bin indices packed into 128 bits:
 * exact when units * bits_per_unit <= 128 (bits_per_unit = bits to hold
 * 0..n), otherwise a 128-bit fingerprint of the bin vector: two 64-bit
 * hashes by unrelated bijective mixers (murmur3 fmix64, splitmix64) chained
 * over the packed bin indices; treating them as independent random
 * functions, k distinct patterns collide with probability below
 * k^2 / 2^129 (6e7 patterns: ~1e-23). */
#ifndef IPMPI_BINS_H
#define IPMPI_BINS_H

#include <stddef.h>
#include <stdint.h>

typedef struct ipm_pattern {
    uint64_t lo, hi;
} ipm_pattern;

/* n >= 2 edges, lo < hi. */
void ipm_bin_edges(float *edges, int n, double lo, double hi);

/* The most edges a binning may have: bin indices 0..n fit 16 bits. */
#define IPM_MAX_EDGES 65535

/* Fixed-width bins anchored at 0 (Saxe et al. 2018): edges k * w, computed
 * in double and rounded to float32, for k = floor(lo / w) .. floor(hi / w) + 1,
 * so every value in [lo, hi] falls in a bin [k w, (k+1) w) between two
 * edges (a bin index is k shifted by the first k: the same partition of the
 * line, whatever lo and hi). The number of edges, or -1 when it would
 * exceed IPM_MAX_EDGES (nothing is written then). w > 0; lo <= hi, finite. */
long ipm_width_edge_count(double w, double lo, double hi);
int ipm_width_edges(float *edges, double w, double lo, double hi);

/* Equal-mass edges (Chelombiev et al. 2019): n >= 2 edges at the (j+1)/(n+1)
 * quantiles of count >= 1 values, e_j = s[floor((j+1) count / (n+1))] with s
 * the values sorted ascending (-0 before +0; NaN, which only a diverging run
 * makes, beyond the infinities on its sign's side): n + 1 bins of about
 * count / (n+1) values each. Tied values share a bin (equal edges leave
 * empty bins between them). keys and tmp: room for count values each. */
void ipm_quantile_edges(const float *values, uint32_t *keys, uint32_t *tmp, size_t count, int n,
                        float *edges);

/* #{j : edges[j] <= v}. */
int ipm_digitize(float v, const float *edges, int n);

/* Bits needed for bin indices 0..n_edges. */
int ipm_bin_bits(int n_edges);

/* 1 when patterns of this width are packed exactly, 0 when fingerprinted. */
int ipm_patterns_exact(int units, int n_edges);

/* act is rows x units (row-major); out[i] is row i's pattern. */
void ipm_patterns(const float *act, int rows, int units, const float *edges, int n_edges,
                  ipm_pattern *out);

/* What binning with one set of edges needs, prepared once (ipm_patterns
 * prepares it on every call). The fast paths are chosen here: a guess from
 * the spacing corrected by the two neighbouring edges when that is proven
 * exact for these edges, with AVX-512 when the CPU has it and n <= 64. */
typedef struct ipm_binner {
    const float *e; /* the edges; must outlive the binner */
    int n;
    float lo, hi, inv_step, top;
    int guess_in_reach; /* the guess is never more than one bin off */
    int simd;           /* AVX-512 path usable */
    float table[64];    /* the edges padded with the last, for the SIMD lookup */
} ipm_binner;

void ipm_binner_init(ipm_binner *b, const float *edges, int n_edges);

/* The same as ipm_patterns with b's edges. */
void ipm_binner_patterns(const ipm_binner *b, const float *act, int rows, int units,
                         ipm_pattern *out);

/* The same with a binner per unit: per_unit[j] bins unit j (units of them,
 * all with the same number of edges). */
void ipm_binners_patterns(const ipm_binner *per_unit, const float *act, int rows, int units,
                          ipm_pattern *out);

#endif
