/* partition: the partitioned reduce against the tree reduce and against one
 * rank counting every replica, bit for bit, on any number of ranks (run
 * under mpirun with 1 to 8). Synthetic activations give three layers:
 *   0  3 units, few distinct patterns shared by samples and replicas
 *      (overlapping keys; one word on the wire);
 *   1  not measured;
 *   2  20 units of noise: every (sample, replica) pattern distinct
 *      (disjoint keys; two words on the wire).
 * Samples repeat x ids (groups of 1, 2 and 16), or all differ, there are 3 classes, and 5
 * replicas, so ranks hold 0, 1 or several replicas; both estimators, then
 * each alone; twice over the same structures (a second epoch starts clean).
 * The filter that keeps the patterns a rank alone holds runs off, on, as
 * chosen by the rank count, and with so few slots that most or all of
 * them are shared by chance: the entropies never change. */
#include <math.h>
#include <mpi.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ipmpi/base/error.h"
#include "ipmpi/info/binned.h"
#include "ipmpi/info/mi.h"
#include "ipmpi/info/partition.h"
#include "ipmpi/parallel/comm.h"
#include "ipmpi/parallel/partition.h"
#include "ipmpi/parallel/reduce.h"
#include "check.h"

enum { N = 301, LAYERS = 3, REPLICAS = 5, CLASSES = 3, EDGES = 30 };
static const int width[LAYERS] = {3, 4, 20};
static const int measured[LAYERS] = {1, 0, 1};

typedef struct fixture {
    int32_t x_id[N], y[N];
    int distinct_x; /* every sample its own x (the row-compare path) */
    int rank, size, n_local;
} fixture;

static uint64_t mix(uint64_t z)
{
    z += 0x9e3779b97f4a7c15ULL;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* x ids of one or two samples apart, and one of sixteen, not in sample order. */
static void make_data(fixture *f)
{
    for (int i = 0; i < N; i++) {
        f->x_id[i] = f->distinct_x ? (i * 37) % N : i % 20 == 0 ? 5 : (i * 37) % 200;
        f->y[i] = (int32_t)(mix((uint64_t)f->x_id[i] + 99) % CLASSES);
    }
}

/* Activation of unit u of layer l, sample i, replica r (epoch e). */
static float activation(int l, int i, int r, int u, int e)
{
    if (l == 0) { /* a few levels, mostly the sample's, sometimes the replica's */
        uint64_t h = mix((uint64_t)i * 31 + (uint64_t)u + 1000 * (uint64_t)e);
        if (mix((uint64_t)(i * 7 + r)) % 4 == 0)
            h = mix((uint64_t)r * 977 + (uint64_t)u);
        return -0.9f + 0.6f * (float)(h % 4);
    }
    uint64_t h = mix(((uint64_t)l << 56) ^ ((uint64_t)r << 40) ^ ((uint64_t)i << 16) ^ (uint64_t)u ^
                     ((uint64_t)e << 60));
    return (float)((double)(h >> 11) / 9007199254740992.0 * 2.0 - 1.0);
}

/* Bins replica r's pass over all samples into b (one block). */
static void bin_replica(ipm_binned *b, int r, int epoch)
{
    char err[IPM_ERRLEN];
    float *act[LAYERS];
    for (int l = 0; l < LAYERS; l++) {
        act[l] = malloc(sizeof(float) * N * (size_t)width[l]);
        for (int i = 0; i < N; i++)
            for (int u = 0; u < width[l]; u++)
                act[l][i * width[l] + u] = activation(l, i, r, u, epoch);
    }
    CHECK(ipm_binned_replica_begin(b, r, err) == 0);
    CHECK(ipm_binned_block(b, act, 0, N, err) == 0);
    for (int l = 0; l < LAYERS; l++)
        free(act[l]);
}

static void init_binned(ipm_binned *b, int n_local, int sampled)
{
    char err[IPM_ERRLEN];
    ipm_binned_spec spec = {N,        LAYERS,  width, measured, EDGES,   -1.0, 1.0,
                            REPLICAS, n_local, 7,     0,        sampled, 0,    0};
    CHECK(ipm_binned_init(b, &spec, err) == 0);
}

/* Entropies [layer][estimator][t, xt, yt]. */
typedef double entropies[LAYERS][2][3];

/* One rank holding every replica: the dense counting of count.h. */
static void serial(const fixture *f, int epoch, entropies out)
{
    char err[IPM_ERRLEN];
    ipm_binned b;
    init_binned(&b, REPLICAS, 1);
    ipm_binned_begin(&b, epoch);
    for (int r = 0; r < REPLICAS; r++)
        bin_replica(&b, r, epoch);
    ipm_binned_pick_local(&b);
    ipm_x_groups g;
    ipm_counter c;
    CHECK(ipm_x_groups_init(&g, f->x_id, N, err) == 0);
    CHECK(ipm_counter_init(&c, N, REPLICAS, CLASSES, g.largest, err) == 0);
    CHECK(ipm_counter_reserve(&c, ipm_binned_most_ids(&b), err) == 0);
    for (int l = 0; l < LAYERS; l++) {
        if (!measured[l])
            continue;
        const int32_t *ids[REPLICAS];
        for (int k = 0; k < REPLICAS; k++)
            ids[k] = ipm_binned_ids(&b, l, k);
        ipm_pairs pairs[2] = {{ids, REPLICAS, NULL}, {ids, REPLICAS, b.pick}};
        for (int e = 0; e < 2; e++) {
            ipm_entropies h;
            ipm_count_entropies(&c, &pairs[e], &g, f->y, &h);
            out[l][e][0] = h.t;
            out[l][e][1] = h.xt;
            out[l][e][2] = h.yt;
        }
    }
    ipm_counter_free(&c);
    ipm_x_groups_free(&g);
    ipm_binned_free(&b);
}

/* This rank's replicas r = rank + k P, binned. */
static void bin_local(const fixture *f, ipm_binned *b, int epoch, int sampled)
{
    ipm_binned_begin(b, epoch);
    for (int r = f->rank; r < REPLICAS; r += f->size)
        bin_replica(b, r, epoch);
    if (sampled)
        ipm_binned_pick_local(b);
}

/* How the filter runs: IPM_FILTER_*, and slots a layer (0: as sized). */
typedef struct filtering {
    int mode;
    uint64_t slots;
    const char *name;
} filtering;

static const filtering by_ranks = {IPM_FILTER_AUTO, 0, "filter as the ranks choose"};

static void partitioned(const fixture *f, int pooled, int sampled, int epochs, filtering filter,
                        entropies out[2], ipm_traffic *traffic)
{
    char err[IPM_ERRLEN];
    ipm_binned b;
    init_binned(&b, f->n_local, sampled);
    ipm_partition p;
    ipm_partition_spec spec = {f->rank, f->size, REPLICAS,    LAYERS,      CLASSES,
                               EDGES,   width,   measured,    pooled,      sampled,
                               f->x_id, N,       filter.mode, filter.slots};
    CHECK(ipm_partition_init(&p, &spec, err) == 0);
    ipm_x_groups g;
    ipm_counter c;
    CHECK(ipm_x_groups_init(&g, f->x_id, N, err) == 0);
    CHECK(ipm_counter_init(&c, N, f->n_local, CLASSES, g.largest, err) == 0);
    ipm_hist hist[LAYERS * IPM_HISTS_PER_LAYER];
    for (int k = 0; k < LAYERS * IPM_HISTS_PER_LAYER; k++)
        ipm_hist_init(&hist[k]);
    for (int epoch = 0; epoch < epochs; epoch++) {
        bin_local(f, &b, epoch, sampled);
        int rc = ipm_partition_count(&p, &b, &c, f->y, 0, err);
        CHECK(rc == 0);
        double waited = 0;
        rc = ipm_partition_exchange(&p, &b, rc, hist, NULL, 0, traffic, &waited, MPI_COMM_WORLD,
                                    err);
        CHECK(rc == 0);
        if (rc)
            fprintf(stderr, "rank %d: %s\n", f->rank, err);
        for (int l = 0; l < LAYERS && f->rank == 0; l++)
            for (int e = 0; e < 2; e++) {
                ipm_hist *h = hist + l * IPM_HISTS_PER_LAYER + e * IPM_HISTS_PER_ESTIMATOR;
                ipm_hists_entropies(h, &out[epoch][l][e][0], &out[epoch][l][e][1],
                                    &out[epoch][l][e][2]);
            }
        for (int k = 0; k < LAYERS * IPM_HISTS_PER_LAYER; k++) {
            CHECK(f->rank == 0 || hist[k].len == 0);
            ipm_hist_clear(&hist[k]);
        }
    }
    for (int k = 0; k < LAYERS * IPM_HISTS_PER_LAYER; k++)
        ipm_hist_free(&hist[k]);
    ipm_counter_free(&c);
    ipm_x_groups_free(&g);
    ipm_partition_free(&p);
    ipm_binned_free(&b);
}

/* The tree reduce of the same counts (count tables merged onto rank 0). */
static void tree(const fixture *f, entropies out)
{
    char err[IPM_ERRLEN];
    ipm_binned b;
    init_binned(&b, f->n_local, 1);
    bin_local(f, &b, 0, 1);
    ipm_x_groups g;
    ipm_counter c;
    CHECK(ipm_x_groups_init(&g, f->x_id, N, err) == 0);
    CHECK(ipm_counter_init(&c, N, f->n_local, CLASSES, g.largest, err) == 0);
    CHECK(ipm_counter_reserve(&c, ipm_binned_most_ids(&b), err) == 0);
    ipm_layer_tables lt[LAYERS][2];
    ipm_table *list[LAYERS * 6];
    int n = 0;
    for (int l = 0; l < LAYERS; l++) {
        const int32_t *ids[REPLICAS + 1];
        for (int k = 0; k < b.n_seen; k++)
            ids[k] = ipm_binned_ids(&b, l, k);
        ipm_pairs pairs[2] = {{ids, b.n_seen, NULL}, {ids, b.n_seen, b.pick}};
        for (int e = 0; e < 2; e++) {
            CHECK(ipm_layer_tables_init(&lt[l][e], 16, err) == 0);
            if (measured[l])
                CHECK(ipm_count_export(&c, &pairs[e], &g, f->y, b.layer[l].dict.key, &lt[l][e].t,
                                       &lt[l][e].xt, &lt[l][e].yt, err) == 0);
            list[n++] = &lt[l][e].t;
            list[n++] = &lt[l][e].xt;
            list[n++] = &lt[l][e].yt;
        }
    }
    CHECK(ipm_reduce_tables(list, n, MPI_COMM_WORLD, NULL, err) == 0);
    for (int l = 0; l < LAYERS; l++)
        for (int e = 0; e < 2; e++) {
            out[l][e][0] = ipm_table_entropy(&lt[l][e].t);
            out[l][e][1] = ipm_table_entropy(&lt[l][e].xt);
            out[l][e][2] = ipm_table_entropy(&lt[l][e].yt);
            ipm_layer_tables_free(&lt[l][e]);
        }
    ipm_counter_free(&c);
    ipm_x_groups_free(&g);
    ipm_binned_free(&b);
}

/* Bitwise equal where measured (and the estimator was computed). */
static void check_same(entropies got, entropies want, const int *ests, const char *what)
{
    for (int l = 0; l < LAYERS; l++)
        for (int e = 0; e < 2; e++)
            for (int k = 0; k < 3 && measured[l] && ests[e]; k++)
                if (memcmp(&got[l][e][k], &want[l][e][k], sizeof(double)) != 0) {
                    fprintf(stderr, "%s: layer %d estimator %d entropy %d: %.17g, expected %.17g\n",
                            what, l, e, k, got[l][e][k], want[l][e][k]);
                    check_failures++;
                }
}

/* Both estimators, two epochs, with the filter run every way: equal to
 * the serial counts. With the filter as sized, on up to 4 ranks, a rank
 * keeps most cells of the layer whose patterns are all distinct and
 * receives less than without it. */
static void check_filters(const fixture *f, entropies want[2])
{
    const int both[2] = {1, 1};
    const filtering ways[] = {by_ranks,
                              {IPM_FILTER_OFF, 0, "no filter"},
                              {IPM_FILTER_ON, 0, "filter"},
                              {IPM_FILTER_ON, 1024, "filter of 1024 slots"},
                              {IPM_FILTER_ON, 64, "filter of 64 slots"}};
    uint64_t received[5];
    for (int k = 0; k < 5; k++) {
        entropies got[2];
        ipm_traffic traffic = {0, 0};
        partitioned(f, 1, 1, 2, ways[k], got, &traffic);
        received[k] = traffic.received;
        char what[96];
        for (int epoch = 0; epoch < 2 && f->rank == 0; epoch++) {
            snprintf(what, sizeof what, "partitioned, %s, epoch %d", ways[k].name, epoch);
            check_same(got[epoch], want[epoch], both, what);
        }
    }
    if (f->size > 1 && f->size <= 4) /* beyond, this small plane's filter outweighs its cells */
        CHECK(received[2] < received[1]);
    if (f->size > 1) /* a filter of 64 slots has every slot shared: all cells travel */
        CHECK(received[4] > received[1]);
}

/* Every way against the serial counts, on this fixture's data. */
static void check_all(fixture *f)
{
    make_data(f);
    entropies want[2], got[2], by_tree;
    ipm_traffic traffic = {0, 0};
    const int both[2] = {1, 1}, pooled_only[2] = {1, 0}, sampled_only[2] = {0, 1};
    serial(f, 0, want[0]);
    serial(f, 1, want[1]);
    check_filters(f, want);
    partitioned(f, 1, 1, 2, by_ranks, got, &traffic);
    tree(f, by_tree);
    if (f->rank == 0) {
        check_same(got[0], want[0], both, "partitioned, epoch 0");
        check_same(got[1], want[1], both, "partitioned, epoch 1");
        check_same(by_tree, want[0], both, "tree");
        /* the layers differ from each other and from 0, so a mix-up shows */
        CHECK(want[0][0][0][0] > 0.5 && want[0][2][0][0] > want[0][0][0][0]);
        CHECK(want[0][0][0][1] != want[1][0][0][1]);
    }
    /* with more than one rank, this rank moved words */
    CHECK(f->size == 1 || (traffic.sent > 0 && traffic.received > 0));
    partitioned(f, 1, 0, 1, by_ranks, got, &traffic);
    if (f->rank == 0)
        check_same(got[0], want[0], pooled_only, "partitioned, pooled alone");
    partitioned(f, 0, 1, 1, by_ranks, got, &traffic);
    if (f->rank == 0)
        check_same(got[0], want[0], sampled_only, "partitioned, sampled alone");
}

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    fixture f;
    MPI_Comm_rank(MPI_COMM_WORLD, &f.rank);
    MPI_Comm_size(MPI_COMM_WORLD, &f.size);
    f.n_local = ipm_replicas_on(f.rank, REPLICAS, f.size);
    for (f.distinct_x = 0; f.distinct_x < 2; f.distinct_x++)
        check_all(&f);
    int rc = check_report("test_partition");
    MPI_Finalize();
    return rc;
}
