/* kernels: the arithmetic of training, in one set of functions per
 * instruction set (portable C; AVX2+FMA; AVX-512), chosen once at run time.
 *
 * Every kernel fixes the order of the operations on each value, so that a
 * value depends on its own operands only, never on the instruction set, the
 * vector width, the position in a vector or what shares the vector with it:
 *   dense forward   z[r][j] = b[j], then z = fma(a[r][i], w[i][j], z) for i = 0..k-1
 *   input gradient  d[r][i] = 0, then d = fma(g[r][j], w[i][j], d) for j = 0..n-1
 *   weight gradient dw[i][j] = 0, then dw = fma(a[r][i], g[r][j], dw) for r = 0..rows-1
 *   bias gradient   db[j] = 0, then db = db + g[r][j] for r = 0..rows-1
 *   activations     tanh, sigmoid, exp by the polynomial and exponent
 *                   steps below, from +, *, fma and comparisons only
 * (fma is the single-rounding fused multiply-add; files of learn/ are built
 * with -ffp-contract=off, so the compiler fuses nothing else). This is what
 * makes a replica's numbers the same whether it trains alone (vectors over
 * units) or side by side with others (a vector lane per replica, see
 * group.h), on any machine.
 *
 * Layouts: "rows" kernels take row-major matrices of one replica;
 * "lanes" kernels take arrays of IPM_LANES-float vectors, one lane per
 * replica (a lane's values are a replica's; lanes never mix). */
#ifndef IPMPI_LEARN_KERNELS_H
#define IPMPI_LEARN_KERNELS_H

#include <stddef.h>

/* Replicas per vector in the side-by-side layout. */
#define IPM_LANES 8

typedef struct ipm_kernels {
    const char *name; /* "portable", "avx2", "avx512" */

    /* One replica, row-major. */
    void (*dense_forward)(int rows, int k, int n, const float *a, const float *w, const float *b,
                          float *z);
    /* wt is w transposed (n x k). */
    void (*dense_input_grad)(int rows, int k, int n, const float *g, const float *wt, float *d);
    /* Weight and bias gradients are added to dw and db: the chain goes on
     * over calls on consecutive row blocks (start dw and db at zero). */
    void (*dense_weight_grad)(int rows, int k, int n, const float *a, const float *g, float *dw,
                              float *db);

    /* Side by side: a is rows x k vectors, w k x n, b n, z rows x n;
     * gradients as above. */
    void (*lanes_forward)(int rows, int k, int n, const float *a, const float *w, const float *b,
                          float *z);
    void (*lanes_input_grad)(int rows, int k, int n, const float *g, const float *w, float *d);
    void (*lanes_weight_grad)(int rows, int k, int n, const float *a, const float *g, float *dw,
                              float *db);

    /* Element-wise, in place, any count (values of a row or of lanes alike). */
    void (*tanh)(float *v, size_t n);
    void (*sigmoid)(float *v, size_t n);
    void (*exp)(float *v, size_t n);
    /* ln of positive normal floats (the caller clamps away the rest). */
    void (*log)(float *v, size_t n);
    /* Backward, element-wise: g = g (1 - a a) for tanh, g = g (a (1 - a))
     * for sigmoid (a the activation's output), and for relu v = max(v, 0)
     * (v > 0 ? v : 0) and g = a > 0 ? g : 0, as the plain C would. */
    void (*tanh_grad)(const float *a, float *g, size_t n);
    void (*sigmoid_grad)(const float *a, float *g, size_t n);
    void (*relu)(float *v, size_t n);
    void (*relu_grad)(const float *a, float *g, size_t n);
} ipm_kernels;

/* The fastest set this CPU runs; every set gives the same bits. */
const ipm_kernels *ipm_kernels_best(void);

/* A set by name, or NULL when unknown or this CPU cannot run it. */
const ipm_kernels *ipm_kernels_named(const char *name);

/* Subnormal floats, as inputs and results, become zero in this thread from
 * now on (x86-64: MXCSR's FTZ and DAZ; elsewhere nothing changes). Training
 * calls it before its first step on every rank, so every replica's numbers
 * stay the same wherever it trains. Why: ReLU networks drift into subnormal
 * gradients and Adam moments, which x86 cores handle in microcode; a ReLU
 * run of the 12-bit task trained 4x slower without it. */
void ipm_kernels_flush_subnormals(void);

#endif
