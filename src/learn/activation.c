/* activation: the element-wise nonlinearities of net.h, vectorised.
 * Scalar tanhf costs ~11 ns a value, glibc's libmvec ~0.4-1 ns; <math.h>
 * declares the SIMD variants only under fast-math with OpenMP SIMD, so this
 * file alone is compiled with -O3 -ffast-math -fopenmp-simd (and linked with
 * -lmvec -lm). Nothing else may depend on fast-math semantics.
 *
 * Determinism: every value goes through the same vector routine, whatever
 * its position. Arrays are processed in fixed blocks of LANES values; the
 * tail is copied into a padded block, so no value ever takes a scalar
 * epilogue path that could round differently. The result of one value
 * depends on that value only (softmax: on its row only). */
#include "ipmpi/learn/net.h"

#include <math.h>
#include <string.h>

#define LANES 16

static void tanh_block(float *v)
{
#pragma omp simd
    for (int i = 0; i < LANES; i++)
        v[i] = tanhf(v[i]);
}

/* The same loop through libmvec's AVX2 variant (_ZGVdN8v_tanhf): 0.67 ns a
 * value against 1.15 ns for the SSE one (_ZGVbN4v_tanhf), and bit-identical
 * to it for all 2^32 inputs (checked exhaustively with glibc 2.36), so the
 * choice by CPU cannot change a result. The AVX-512 variant is faster still
 * (0.25 ns) but rounds differently, and expf's variants differ too, so
 * sigmoid and softmax stay on the baseline SSE variants. */
__attribute__((target("avx2"))) static void tanh_block_avx2(float *v)
{
#pragma omp simd simdlen(8)
    for (int i = 0; i < LANES; i++)
        v[i] = tanhf(v[i]);
}

static void sigmoid_block(float *v)
{
#pragma omp simd
    for (int i = 0; i < LANES; i++)
        v[i] = 1.0f / (1.0f + expf(-v[i]));
}

static void exp_block(float *v)
{
#pragma omp simd
    for (int i = 0; i < LANES; i++)
        v[i] = expf(v[i]);
}

static void relu_block(float *v)
{
#pragma omp simd
    for (int i = 0; i < LANES; i++)
        v[i] = v[i] > 0.0f ? v[i] : 0.0f;
}

/* Applies block to n values in place; the tail goes through a padded copy. */
static void map_blocks(void (*block)(float *), float *v, size_t n)
{
    size_t full = n - n % LANES;
    for (size_t i = 0; i < full; i += LANES)
        block(v + i);
    if (full < n) {
        float pad[LANES] = {0};
        memcpy(pad, v + full, (n - full) * sizeof(float));
        block(pad);
        memcpy(v + full, pad, (n - full) * sizeof(float));
    }
}

/* Per row: subtract the row max (so expf never overflows), exponentiate,
 * divide by the row sum. */
static void softmax_rows(float *v, int rows, int units)
{
    for (int r = 0; r < rows; r++) {
        float *row = v + (size_t)r * (size_t)units;
        float max = row[0];
        for (int j = 1; j < units; j++)
            max = row[j] > max ? row[j] : max;
        for (int j = 0; j < units; j++)
            row[j] -= max;
    }
    map_blocks(exp_block, v, (size_t)rows * (size_t)units);
    for (int r = 0; r < rows; r++) {
        float *row = v + (size_t)r * (size_t)units;
        float sum = 0.0f;
        for (int j = 0; j < units; j++)
            sum += row[j];
        float inv = 1.0f / sum;
        for (int j = 0; j < units; j++)
            row[j] *= inv;
    }
}

void ipm_activate(enum ipm_activation act, float *v, int rows, int units)
{
    size_t n = (size_t)rows * (size_t)units;
    switch (act) {
    case IPM_ACT_LINEAR:
        break;
    case IPM_ACT_TANH:
        map_blocks(__builtin_cpu_supports("avx2") ? tanh_block_avx2 : tanh_block, v, n);
        break;
    case IPM_ACT_RELU:
        map_blocks(relu_block, v, n);
        break;
    case IPM_ACT_SIGMOID:
        map_blocks(sigmoid_block, v, n);
        break;
    case IPM_ACT_SOFTMAX:
        softmax_rows(v, rows, units);
        break;
    }
}
