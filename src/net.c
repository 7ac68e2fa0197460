/* net: dense layers, float32, forward and backward on a batch.
 * Layout of params (and grads): for each layer W (in x out, row-major) then
 * b (out). Element-wise activations live in activation.c (vectorised). */
#include "ipmpi/net.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ipmpi/error.h"

/* ---- matrix products ---------------------------------------------------- */

/* Below this many multiply-adds (m*n*k) the hand loops are used, above it
 * cblas_sgemm (beta = 0). Measured on this machine (Zen 4, OpenBLAS 0.3.21
 * Haswell kernels, one thread): an sgemm call at tiny shapes costs only
 * 0.1-0.3 us, and its AVX2/FMA kernels reach ~25 GMAC/s at 4096 x 12 x 10,
 * while the hand loops (baseline x86-64 SSE, -O2..-O3) run 3-10 GMAC/s.
 * The hand loops win only below ~1000 MACs (e.g. 101 x 3 x 2: 0.2 us
 * against 0.3 us); from 1000 x 3 x 4 (12k MACs) on, BLAS is 1.5-8x faster.
 * The choice depends on the shape only, so every rank computes the same
 * bits. Overridable at compile time for benchmarking. */
#ifndef IPM_SMALL_GEMM_MACS
#define IPM_SMALL_GEMM_MACS 1024
#endif

/* Widest output row the register-blocked kernel is specialised for. */
#define IPM_FIXED_N_MAX 16

/* C = A B with A m x k, B k x n. The row of C accumulates in a local array
 * that, once n is a compile-time constant (see nn_dispatch), lives in
 * registers across the whole k loop. */
static inline __attribute__((always_inline)) void
nn_kernel(int m, int n, int k, const float *restrict a, const float *restrict b,
          float *restrict c)
{
    for (int i = 0; i < m; i++) {
        float acc[IPM_FIXED_N_MAX] = {0};
        const float *ai = a + (size_t)i * (size_t)k;
        for (int p = 0; p < k; p++) {
            const float *bp = b + (size_t)p * (size_t)n;
            for (int j = 0; j < n; j++)
                acc[j] += ai[p] * bp[j];
        }
        float *ci = c + (size_t)i * (size_t)n;
        for (int j = 0; j < n; j++)
            ci[j] = acc[j];
    }
}

static void nn_generic(int m, int n, int k, const float *restrict a, const float *restrict b,
                       float *restrict c)
{
    for (int i = 0; i < m; i++) {
        float *ci = c + (size_t)i * (size_t)n;
        for (int j = 0; j < n; j++)
            ci[j] = 0.0f;
        for (int p = 0; p < k; p++) {
            float aip = a[(size_t)i * (size_t)k + (size_t)p];
            const float *bp = b + (size_t)p * (size_t)n;
            for (int j = 0; j < n; j++)
                ci[j] += aip * bp[j];
        }
    }
}

#define NN_CASE(N)                                                                       \
    case N:                                                                              \
        nn_kernel(m, N, k, a, b, c);                                                     \
        break;

static void nn_small(int m, int n, int k, const float *a, const float *b, float *c)
{
    switch (n) {
        NN_CASE(1) NN_CASE(2) NN_CASE(3) NN_CASE(4) NN_CASE(5) NN_CASE(6) NN_CASE(7)
        NN_CASE(8) NN_CASE(9) NN_CASE(10) NN_CASE(11) NN_CASE(12) NN_CASE(13) NN_CASE(14)
        NN_CASE(15) NN_CASE(16)
    default:
        nn_generic(m, n, k, a, b, c);
    }
}

/* C = A^T B with A stored k x m: C is tiny (weights-sized) and stays in L1
 * while the k rows stream past once. */
static void tn_small(int m, int n, int k, const float *restrict a, const float *restrict b,
                     float *restrict c)
{
    memset(c, 0, (size_t)m * (size_t)n * sizeof(float));
    for (int p = 0; p < k; p++) {
        const float *ap = a + (size_t)p * (size_t)m;
        const float *bp = b + (size_t)p * (size_t)n;
        for (int i = 0; i < m; i++) {
            float *ci = c + (size_t)i * (size_t)n;
            for (int j = 0; j < n; j++)
                ci[j] += ap[i] * bp[j];
        }
    }
}

/* Any transposition, element by element: the fallback for shapes the fast
 * paths do not cover. */
static void any_small(int trans_a, int trans_b, int m, int n, int k, const float *a,
                      const float *b, float *c)
{
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++) {
            float sum = 0.0f;
            for (int p = 0; p < k; p++) {
                float x = trans_a ? a[(size_t)p * (size_t)m + (size_t)i]
                                  : a[(size_t)i * (size_t)k + (size_t)p];
                float y = trans_b ? b[(size_t)j * (size_t)k + (size_t)p]
                                  : b[(size_t)p * (size_t)n + (size_t)j];
                sum += x * y;
            }
            c[(size_t)i * (size_t)n + (size_t)j] = sum;
        }
}

/* B^T is tiny in every small A B^T of this program (a weight matrix):
 * transposing it on the stack turns the product into the fast NN kernel. */
#define IPM_NT_STACK 4096

static void nt_small(int m, int n, int k, const float *a, const float *b, float *c)
{
    if ((size_t)n * (size_t)k > IPM_NT_STACK) {
        any_small(0, 1, m, n, k, a, b, c);
        return;
    }
    float bt[IPM_NT_STACK];
    for (int j = 0; j < n; j++)
        for (int p = 0; p < k; p++)
            bt[(size_t)p * (size_t)n + (size_t)j] = b[(size_t)j * (size_t)k + (size_t)p];
    nn_small(m, n, k, a, bt, c);
}

void ipm_matmul(int trans_a, int trans_b, int m, int n, int k, const float *a, const float *b,
                float *c)
{
    if (m <= 0 || n <= 0)
        return;
    if (k <= 0) {
        memset(c, 0, (size_t)m * (size_t)n * sizeof(float));
        return;
    }
    if ((double)m * n * k >= IPM_SMALL_GEMM_MACS) {
        cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
                    trans_b ? CblasTrans : CblasNoTrans, m, n, k, 1.0f, a, trans_a ? m : k, b,
                    trans_b ? k : n, 0.0f, c, n);
        return;
    }
    if (!trans_a && !trans_b)
        nn_small(m, n, k, a, b, c);
    else if (trans_a && !trans_b)
        tn_small(m, n, k, a, b, c);
    else if (!trans_a && trans_b)
        nt_small(m, n, k, a, b, c);
    else
        any_small(1, 1, m, n, k, a, b, c);
}

/* ---- initialisation ----------------------------------------------------- */

static double truncated_normal(ipm_rng *rng)
{
    double z;
    do
        z = ipm_rng_normal(rng);
    while (fabs(z) > 2.0);
    return z;
}

static void init_weights(ipm_dense *d, enum ipm_init init, double stddev, ipm_rng *rng)
{
    size_t count = (size_t)d->in * (size_t)d->out;
    double xavier_limit = sqrt(6.0 / (d->in + d->out));
    double he_stddev = sqrt(2.0 / d->in);
    for (size_t i = 0; i < count; i++) {
        double w;
        switch (init) {
        case IPM_INIT_XAVIER:
            w = (2.0 * ipm_rng_uniform(rng) - 1.0) * xavier_limit;
            break;
        case IPM_INIT_HE:
            w = ipm_rng_normal(rng) * he_stddev;
            break;
        default:
            w = truncated_normal(rng) * stddev;
            break;
        }
        d->w[i] = (float)w;
    }
    memset(d->b, 0, (size_t)d->out * sizeof(float));
}

static int check_spec(int in_dim, const ipm_layer_spec *spec, int n_layers, enum ipm_init init,
                      double stddev, char *err)
{
    if (in_dim <= 0)
        return ipm_fail(err, "network input dimension must be positive (got %d)", in_dim);
    if (n_layers < 1 || n_layers > IPM_MAX_LAYERS)
        return ipm_fail(err, "[network] needs 1..%d layers (got %d)", IPM_MAX_LAYERS, n_layers);
    for (int l = 0; l < n_layers; l++)
        if (spec[l].units <= 0)
            return ipm_fail(err, "[network] layer %d has %d units", l + 1, spec[l].units);
    if (init == IPM_INIT_TRUNCATED_NORMAL && !(stddev > 0.0))
        return ipm_fail(err, "[network] init truncated_normal needs a positive stddev (got %g)",
                        stddev);
    return 0;
}

int ipm_net_init(ipm_net *net, int in_dim, const ipm_layer_spec *spec, int n_layers,
                 enum ipm_init init, double stddev, ipm_rng *rng, char *err)
{
    memset(net, 0, sizeof *net);
    if (check_spec(in_dim, spec, n_layers, init, stddev, err))
        return -1;
    net->in_dim = in_dim;
    net->n_layers = n_layers;
    size_t total = 0;
    for (int l = 0, in = in_dim; l < n_layers; in = spec[l].units, l++)
        total += (size_t)in * (size_t)spec[l].units + (size_t)spec[l].units;
    net->n_params = total;
    net->params = calloc(total, sizeof(float));
    net->grads = calloc(total, sizeof(float));
    if (!net->params || !net->grads) {
        ipm_net_free(net);
        return ipm_fail(err, "out of memory for %zu network parameters", total);
    }
    size_t offset = 0;
    for (int l = 0, in = in_dim; l < n_layers; in = spec[l].units, l++) {
        ipm_dense *d = &net->layer[l];
        d->in = in;
        d->out = spec[l].units;
        d->activation = spec[l].activation;
        d->w = net->params + offset;
        d->dw = net->grads + offset;
        offset += (size_t)d->in * (size_t)d->out;
        d->b = net->params + offset;
        d->db = net->grads + offset;
        offset += (size_t)d->out;
        init_weights(d, init, stddev, rng);
    }
    return 0;
}

void ipm_net_free(ipm_net *net)
{
    free(net->params);
    free(net->grads);
    memset(net, 0, sizeof *net);
}

/* ---- workspace ---------------------------------------------------------- */

int ipm_workspace_init(ipm_workspace *ws, const ipm_net *net, int capacity, char *err)
{
    memset(ws, 0, sizeof *ws);
    if (capacity <= 0)
        return ipm_fail(err, "workspace capacity must be positive (got %d)", capacity);
    ws->capacity = capacity;
    int widest = 0;
    int ok = 1;
    for (int l = 0; l < net->n_layers; l++) {
        int out = net->layer[l].out;
        widest = out > widest ? out : widest;
        ws->act[l] = malloc((size_t)capacity * (size_t)out * sizeof(float));
        ok = ok && ws->act[l];
    }
    for (int s = 0; s < 2; s++) {
        ws->scratch[s] = malloc((size_t)capacity * (size_t)widest * sizeof(float));
        ok = ok && ws->scratch[s];
    }
    if (!ok) {
        ipm_workspace_free(ws);
        return ipm_fail(err, "out of memory for a workspace of %d rows", capacity);
    }
    return 0;
}

void ipm_workspace_free(ipm_workspace *ws)
{
    for (int l = 0; l < IPM_MAX_LAYERS; l++)
        free(ws->act[l]);
    free(ws->scratch[0]);
    free(ws->scratch[1]);
    memset(ws, 0, sizeof *ws);
}

/* ---- forward ------------------------------------------------------------ */

/* Adds b to every row of z. Rows are 2-12 units wide here, too short for a
 * per-row loop to vectorise (it cost ~0.6 ns a value, as much as tanh), so
 * the bias row is repeated into a tile of BIAS_TILE_ROWS rows and added to
 * z in long contiguous runs; every value gets the same single addition. */
#define BIAS_TILE_ROWS 16
#define BIAS_TILE_MAX_UNITS 64

static void add_bias(float *restrict z, const float *restrict b, int rows, int units)
{
    if (units > BIAS_TILE_MAX_UNITS) {
        for (int r = 0; r < rows; r++) {
            float *row = z + (size_t)r * (size_t)units;
            for (int j = 0; j < units; j++)
                row[j] += b[j];
        }
        return;
    }
    float tile[BIAS_TILE_ROWS * BIAS_TILE_MAX_UNITS];
    for (int r = 0; r < BIAS_TILE_ROWS; r++)
        memcpy(tile + (size_t)r * (size_t)units, b, (size_t)units * sizeof(float));
    size_t chunk = (size_t)BIAS_TILE_ROWS * (size_t)units;
    size_t n = (size_t)rows * (size_t)units, i = 0;
    for (; i + chunk <= n; i += chunk)
        for (size_t j = 0; j < chunk; j++)
            z[i + j] += tile[j];
    for (size_t j = 0; i + j < n; j++)
        z[i + j] += tile[j];
}

void ipm_net_forward(const ipm_net *net, const float *x, int rows, ipm_workspace *ws)
{
    const float *input = x;
    for (int l = 0; l < net->n_layers; l++) {
        const ipm_dense *d = &net->layer[l];
        float *z = ws->act[l];
        ipm_matmul(0, 0, rows, d->out, d->in, input, d->w, z);
        add_bias(z, d->b, rows, d->out);
        ipm_activate(d->activation, z, rows, d->out);
        input = z;
    }
}

/* ---- backward ----------------------------------------------------------- */

/* g <- dL/dZ from g = dL/dA and the activated outputs a. */
static void activation_backward(enum ipm_activation act, const float *restrict a,
                                float *restrict g, int rows, int units)
{
    size_t n = (size_t)rows * (size_t)units;
    switch (act) {
    case IPM_ACT_LINEAR:
        break;
    case IPM_ACT_TANH:
        for (size_t i = 0; i < n; i++)
            g[i] *= 1.0f - a[i] * a[i];
        break;
    case IPM_ACT_RELU:
        for (size_t i = 0; i < n; i++)
            g[i] = a[i] > 0.0f ? g[i] : 0.0f;
        break;
    case IPM_ACT_SIGMOID:
        for (size_t i = 0; i < n; i++)
            g[i] *= a[i] * (1.0f - a[i]);
        break;
    case IPM_ACT_SOFTMAX: /* Jacobian-vector product: dz_j = a_j (g_j - sum_i a_i g_i) */
        for (int r = 0; r < rows; r++) {
            const float *ar = a + (size_t)r * (size_t)units;
            float *gr = g + (size_t)r * (size_t)units;
            float dot = 0.0f;
            for (int j = 0; j < units; j++)
                dot += ar[j] * gr[j];
            for (int j = 0; j < units; j++)
                gr[j] = ar[j] * (gr[j] - dot);
        }
        break;
    }
}

static void column_sums(const float *restrict m, int rows, int cols, float *restrict out)
{
    memset(out, 0, (size_t)cols * sizeof(float));
    for (int r = 0; r < rows; r++) {
        const float *row = m + (size_t)r * (size_t)cols;
        for (int j = 0; j < cols; j++)
            out[j] += row[j];
    }
}

void ipm_net_backward(ipm_net *net, const float *x, int rows, ipm_workspace *ws, float *grad,
                      int grad_is_preactivation)
{
    float *g = grad; /* dL/dA of layer l, turned into dL/dZ in place */
    int next_scratch = 0;
    for (int l = net->n_layers - 1; l >= 0; l--) {
        ipm_dense *d = &net->layer[l];
        if (!(grad_is_preactivation && l == net->n_layers - 1))
            activation_backward(d->activation, ws->act[l], g, rows, d->out);
        const float *input = l > 0 ? ws->act[l - 1] : x;
        ipm_matmul(1, 0, d->in, d->out, rows, input, g, d->dw);
        column_sums(g, rows, d->out, d->db);
        if (l == 0)
            break;
        float *g_prev = ws->scratch[next_scratch];
        next_scratch ^= 1;
        ipm_matmul(0, 1, rows, d->in, d->out, g, d->w, g_prev);
        g = g_prev;
    }
}
