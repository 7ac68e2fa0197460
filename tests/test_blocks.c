/* blocks: the information estimates of a plane measured in blocks of
 * samples are bitwise those of one block, for any block size, with fixed
 * and adaptive ranges; blocks out of order and incomplete passes are
 * refused. The activations are made up (no forward pass), so the blocks
 * see exactly the rows the whole set sees. Run on one rank. */
#include <math.h>
#include <mpi.h>
#include <stdlib.h>
#include <string.h>

#include "ipmpi/app/edges.h"
#include "ipmpi/app/measure.h"
#include "ipmpi/app/merge.h"
#include "ipmpi/base/error.h"
#include "check.h"

#define N 300
#define REPLICAS 3

typedef struct fixture {
    ipm_config cfg;
    ipm_dataset data;
    ipm_net shape;
    ipm_workspace act[REPLICAS]; /* every replica's whole pass */
} fixture;

/* Duplicated x (so H(T|X) > 0 pooled), three classes, and activations on a
 * coarse grid so that patterns repeat; values reach beyond [-1, 1]. */
static void fixture_init(fixture *f, int adaptive)
{
    char err[IPM_ERRLEN];
    ipm_config_defaults(&f->cfg);
    f->cfg.seed = 11;
    f->cfg.bins = 6;
    f->cfg.range_adaptive = adaptive;
    f->cfg.n_layers = 2;
    f->cfg.layers[0] = (ipm_layer_spec){.units = 4, .activation = IPM_ACT_TANH};
    f->cfg.layers[1] = (ipm_layer_spec){.units = 3, .activation = IPM_ACT_SOFTMAX};
    memset(&f->data, 0, sizeof f->data);
    f->data.n = N;
    f->data.dim = 2;
    f->data.n_classes = 3;
    f->data.x = calloc(2 * N, sizeof(float));
    f->data.x_id = malloc(N * sizeof(int32_t));
    f->data.y = malloc(N * sizeof(int32_t));
    for (int i = 0; i < N; i++) {
        f->data.x_id[i] = (i * 7) % 120;
        f->data.y[i] = f->data.x_id[i] % 3;
    }
    f->data.n_x = 120;
    ipm_rng rng;
    ipm_rng_init(&rng, 3, 0, IPM_RNG_INIT);
    CHECK(ipm_net_init(&f->shape, ipm_shape_flat(2), f->cfg.layers, 2, IPM_INIT_XAVIER, 0, &rng,
                       err) == 0);
    for (int k = 0; k < REPLICAS; k++) {
        CHECK(ipm_workspace_init(&f->act[k], &f->shape, N, err) == 0);
        for (int l = 0; l < 2; l++)
            for (int i = 0; i < N * f->shape.layer[l].out; i++)
                f->act[k].act[l][i] = (float)((int)ipm_rng_below(&rng, 9) - 4) * 0.3f;
    }
}

static void fixture_free(fixture *f)
{
    for (int k = 0; k < REPLICAS; k++)
        ipm_workspace_free(&f->act[k]);
    ipm_net_free(&f->shape);
    free(f->data.x);
    free(f->data.x_id);
    free(f->data.y);
}

/* Rows [first, first + rows) of replica k's pass into ws's first rows. */
static void load_block(const fixture *f, int k, int first, int rows, ipm_workspace *ws)
{
    for (int l = 0; l < f->shape.n_layers; l++) {
        size_t width = (size_t)f->shape.layer[l].out;
        memcpy(ws->act[l], f->act[k].act[l] + (size_t)first * width,
               (size_t)rows * width * sizeof(float));
    }
}

/* One epoch measured in blocks of block_rows (N: one block), as the driver
 * does it: every block observed, ranges agreed, then every block binned. */
static int measure_in_blocks(const fixture *f, ipm_measure *m, int block_rows, char *err)
{
    ipm_workspace ws;
    if (ipm_measure_init(m, &f->cfg, &f->data, 0, &f->shape, REPLICAS, REPLICAS, 0, 1, err) ||
        ipm_workspace_init(&ws, &f->shape, block_rows, err))
        return -1;
    ipm_measure_begin(m, 4);
    int rc = 0;
    for (int k = 0; k < REPLICAS && f->cfg.range_adaptive; k++)
        for (int first = 0; first < N; first += block_rows) {
            int rows = N - first < block_rows ? N - first : block_rows;
            load_block(f, k, first, rows, &ws);
            ipm_edges_observe(m, k, k, &ws, first, rows);
        }
    if (f->cfg.range_adaptive)
        rc = ipm_edges_agree(m, MPI_COMM_SELF, err);
    for (int k = 0; k < REPLICAS && rc == 0; k++) {
        rc = ipm_measure_replica_begin(m, k, err);
        for (int first = 0; first < N && rc == 0; first += block_rows) {
            int rows = N - first < block_rows ? N - first : block_rows;
            load_block(f, k, first, rows, &ws);
            rc = ipm_measure_replica_block(m, &ws, first, rows, err);
        }
    }
    if (rc == 0)
        rc = ipm_merge_finish(m, MPI_COMM_SELF, err);
    ipm_workspace_free(&ws);
    return rc;
}

static int same_doubles(const double *a, const double *b, size_t n)
{
    return memcmp(a, b, n * sizeof(double)) == 0;
}

static void check_block_sizes(int adaptive)
{
    char err[IPM_ERRLEN];
    fixture f;
    fixture_init(&f, adaptive);
    ipm_measure whole;
    CHECK(measure_in_blocks(&f, &whole, N, err) == 0);
    /* Not a degenerate plane: the estimates are strictly between 0 and H. */
    CHECK(whole.est.pooled_xt[0] > 0.1 && whole.est.pooled_xt[0] < whole.terms.h_x);
    CHECK(whole.est.simple_ty[0] > 0.01 && whole.est.simple_ty[0] < whole.terms.h_y);
    if (adaptive) /* the extreme grid values, as float */
        CHECK(whole.range_lo[0] == (double)((float)-4 * 0.3f) &&
              whole.range_hi[0] == (double)((float)4 * 0.3f));
    const int sizes[] = {1, 7, 64, 150, 299};
    for (size_t s = 0; s < sizeof sizes / sizeof *sizes; s++) {
        ipm_measure m;
        CHECK(measure_in_blocks(&f, &m, sizes[s], err) == 0);
        size_t rl = (size_t)REPLICAS * 2;
        int same = same_doubles(m.est.simple_xt, whole.est.simple_xt, rl) &&
                   same_doubles(m.est.simple_ty, whole.est.simple_ty, rl) &&
                   same_doubles(m.est.pooled_xt, whole.est.pooled_xt, 2) &&
                   same_doubles(m.est.pooled_ty, whole.est.pooled_ty, 2) &&
                   same_doubles(m.est.sampled_xt, whole.est.sampled_xt, 2) &&
                   same_doubles(m.est.sampled_ty, whole.est.sampled_ty, 2) &&
                   same_doubles(m.range_lo, whole.range_lo, 2) &&
                   same_doubles(m.range_hi, whole.range_hi, 2);
        if (!same)
            fprintf(stderr, "blocks of %d (adaptive %d) differ from one block\n", sizes[s],
                    adaptive);
        CHECK(same);
        ipm_measure_free(&m);
    }
    ipm_measure_free(&whole);
    fixture_free(&f);
}

static void check_refusals(void)
{
    char err[IPM_ERRLEN];
    fixture f;
    fixture_init(&f, 0);
    ipm_measure m;
    ipm_workspace ws;
    CHECK(ipm_measure_init(&m, &f.cfg, &f.data, 0, &f.shape, REPLICAS, REPLICAS, 0, 1, err) == 0);
    CHECK(ipm_workspace_init(&ws, &f.shape, 10, err) == 0);
    ipm_measure_begin(&m, 0);
    load_block(&f, 0, 0, 10, &ws);
    CHECK(ipm_measure_replica_block(&m, &ws, 0, 10, err) == -1); /* no begin */
    CHECK(ipm_measure_replica_begin(&m, 0, err) == 0);
    CHECK(ipm_measure_replica_block(&m, &ws, 10, 10, err) == -1); /* skips 0..9 */
    CHECK(strstr(err, "out of order") != NULL);
    CHECK(ipm_measure_replica_block(&m, &ws, 0, 10, err) == 0);
    CHECK(ipm_measure_replica_begin(&m, 1, err) == -1); /* replica 0 stopped at 10 */
    CHECK(strstr(err, "after 10 of 300") != NULL);
    CHECK(ipm_merge_finish(&m, MPI_COMM_SELF, err) == -1);
    CHECK(strstr(err, "after 10 of 300") != NULL);
    ipm_workspace_free(&ws);
    ipm_measure_free(&m);
    fixture_free(&f);
}

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    check_block_sizes(0);
    check_block_sizes(1);
    check_refusals();
    int rc = check_report("test_blocks");
    MPI_Finalize();
    return rc;
}
