/* kde (parallel): the bounds over the ranks. Run under mpirun with any
 * number of ranks. For several problems (one network as Saxe et al.; pooled
 * replicas; ReLU-like layers with repeated points; more replicas than ranks
 * and fewer; blocks cut mid-way; one sample):
 *   - the bounds on all ranks, on each half of the ranks, and on rank 0
 *     alone (MPI_COMM_SELF, holding every replica) are bitwise identical,
 *     on every rank: rank-count independence is exact, not a tolerance;
 *   - they equal a plain O(M^2) computation from direct differences (no
 *     BLAS, no blocks) to 1e-10 bits;
 * and failures (bad variance, a bad label on one rank only, missing
 * activations) stop every rank with one message.
 * With --dump DIR rank 0 also writes every problem and its bounds for
 * tests/kde_reference.py --compare DIR (the numpy reference). */
#include <math.h>
#include <mpi.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ipmpi/base/error.h"
#include "ipmpi/parallel/comm.h"
#include "ipmpi/parallel/kde.h"
#include "check.h"

typedef struct problem {
    const char *name;
    int n, n_replicas, width, n_classes;
    double var;
    int kind; /* 0 clusters, 1 relu-like with repeated points */
} problem;

static const problem problems[] = {
    {"saxe", 1000, 1, 6, 2, 1e-3, 0}, {"pooled", 700, 3, 4, 3, 1e-3, 0},
    {"relu", 300, 2, 5, 2, 1e-3, 1},  {"many", 257, 5, 1, 2, 1e-2, 0},
    {"one", 1, 1, 3, 1, 1e-3, 0},     {"wide-var", 513, 2, 3, 4, 0.5, 0},
};
#define N_PROBLEMS (int)(sizeof problems / sizeof problems[0])

static uint64_t mix(uint64_t z)
{
    z += 0x9e3779b97f4a7c15ULL;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* Uniform in [-1, 1), from (a, b, c). */
static double uniform(uint64_t a, uint64_t b, uint64_t c)
{
    return (double)(mix(mix(mix(a) ^ b) ^ c) >> 11) * 0x1p-52 - 1.0;
}

/* Every replica's activations, replicas x n x width: samples sit near one of
 * 12 cluster centres (tanh-like, in [-1, 1]) with the class tied to the
 * cluster half the time, each replica moved a little from the others. ReLU
 * kind: values up to 20 with many exact zeros and repeated samples. */
static void make_problem(const problem *p, float *acts, int32_t *y)
{
    for (int i = 0; i < p->n; i++) {
        int source = p->kind == 1 && i % 3 == 2 ? i - 1 : i; /* a repeat of sample i - 1 */
        int cluster = (int)(mix((uint64_t)source * 7 + 1) % 12);
        y[i] = mix((uint64_t)i) % 2 ? cluster % p->n_classes
                                    : (int)(mix((uint64_t)i + 99) % (uint64_t)p->n_classes);
        for (int r = 0; r < p->n_replicas; r++)
            for (int k = 0; k < p->width; k++) {
                double v = 0.8 * uniform(cluster, k, 1) + 0.04 * uniform(source, k, 2) +
                           0.02 * uniform(source, k, 100 + r);
                if (p->kind == 1)
                    v = v < 0 ? 0 : 20 * v;
                acts[((size_t)r * p->n + i) * p->width + k] = (float)v;
            }
    }
}

/* The plain computation: every point against every point, distances from
 * differences, then the closed forms of info/kde.h. */
static ipm_kde_bounds direct_bounds(const problem *p, const float *acts, const int32_t *y)
{
    int n = p->n, R = p->n_replicas, w = p->width, M = n * R;
    double L[6] = {0}; /* all KL, all BD, y KL, y BD, x KL, x BD */
    for (int a = 0; a < M; a++) {
        double S[6] = {0};
        for (int b = 0; b < M; b++) {
            double d2 = 0;
            for (int k = 0; k < w; k++) {
                double diff = (double)acts[(size_t)a * w + k] - acts[(size_t)b * w + k];
                d2 += diff * diff;
            }
            double kl = exp(-d2 / (2 * p->var)), bd = exp(-d2 / (8 * p->var));
            int same_y = y[a % n] == y[b % n], same_x = a % n == b % n;
            S[0] += kl, S[1] += bd;
            S[2] += same_y ? kl : 0, S[3] += same_y ? bd : 0;
            S[4] += same_x ? kl : 0, S[5] += same_x ? bd : 0;
        }
        for (int k = 0; k < 6; k++)
            L[k] += log(S[k]) / M;
    }
    int counts[8] = {0};
    for (int i = 0; i < n; i++)
        counts[y[i]]++;
    double h_y = log((double)n);
    for (int c = 0; c < 8; c++)
        h_y -= counts[c] ? (double)counts[c] / n * log((double)counts[c]) : 0;
    double ln_n = log((double)n), l2 = log(2.0);
    ipm_kde_bounds b = {0};
    b.xt_upper = (ln_n - L[0] + L[5]) / l2;
    b.xt_lower = (ln_n - L[1] + L[4]) / l2;
    b.ty_upper = (h_y - L[0] + L[2]) / l2;
    b.ty_lower = (h_y - L[1] + L[3]) / l2;
    return b;
}

/* The bounds over comm, this rank holding the replicas r = rank mod size. */
static int bounds_over(const problem *p, const float *acts, const int32_t *y, MPI_Comm comm,
                       ipm_kde_bounds *out, ipm_kde_stats *stats, char *err)
{
    int rank, size;
    MPI_Comm_rank(comm, &rank);
    MPI_Comm_size(comm, &size);
    const float *mine[8] = {0};
    for (int r = rank; r < p->n_replicas; r += size)
        mine[r / size] = acts + (size_t)r * p->n * p->width;
    ipm_kde_input in = {{p->n, p->n_replicas, p->width, p->var}, mine, y};
    return ipm_kde_bounds_mpi(&in, comm, out, stats, err);
}

static void dump(const char *dir, const problem *p, const float *acts, const int32_t *y,
                 const ipm_kde_bounds *b)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s.bin", dir, p->name);
    FILE *f = fopen(path, "wb");
    CHECK(f != NULL);
    if (!f)
        return;
    int32_t head[3] = {p->n_replicas, p->n, p->width};
    size_t count = (size_t)p->n_replicas * p->n * p->width;
    CHECK(fwrite(head, sizeof head, 1, f) == 1 && fwrite(&p->var, sizeof p->var, 1, f) == 1);
    CHECK(fwrite(y, sizeof *y, (size_t)p->n, f) == (size_t)p->n);
    CHECK(fwrite(acts, sizeof *acts, count, f) == count);
    CHECK(fwrite(b, sizeof *b, 1, f) == 1); /* the 10 doubles of ipm_kde_bounds */
    CHECK(fclose(f) == 0);
}

static void check_problem(const problem *p, MPI_Comm halves, const char *dump_dir)
{
    char err[IPM_ERRLEN];
    int rank;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    size_t count = (size_t)p->n_replicas * p->n * p->width;
    float *acts = malloc(count * sizeof *acts);
    int32_t *y = malloc((size_t)p->n * sizeof *y);
    make_problem(p, acts, y);
    ipm_kde_bounds all, alone, half;
    ipm_kde_stats stats;
    CHECK(bounds_over(p, acts, y, MPI_COMM_WORLD, &all, &stats, err) == 0);
    CHECK(bounds_over(p, acts, y, halves, &half, NULL, err) == 0);
    if (rank == 0) {
        CHECK(bounds_over(p, acts, y, MPI_COMM_SELF, &alone, NULL, err) == 0);
        ipm_kde_bounds ref = direct_bounds(p, acts, y);
        CHECK_NEAR(alone.xt_upper, ref.xt_upper, 1e-10);
        CHECK_NEAR(alone.xt_lower, ref.xt_lower, 1e-10);
        CHECK_NEAR(alone.ty_upper, ref.ty_upper, 1e-10);
        CHECK_NEAR(alone.ty_lower, ref.ty_lower, 1e-10);
    }
    MPI_Bcast(&alone, sizeof alone, MPI_BYTE, 0, MPI_COMM_WORLD);
    if (memcmp(&all, &alone, sizeof all) || memcmp(&half, &alone, sizeof all)) {
        fprintf(stderr,
                "%s, rank %d: rank counts differ: I(X;T) upper %a (all), %a (half), "
                "%a (rank 0 alone)\n",
                p->name, rank, all.xt_upper, half.xt_upper, alone.xt_upper);
        check_failures++;
    }
    CHECK(stats.workspace_bytes <=
          ipm_kde_workspace_bytes(&(ipm_kde_shape){p->n, p->n_replicas, p->width, p->var}, 1));
    if (rank == 0) {
        printf("%-9s R=%d n=%-5d I(X;T) [%.6f, %.6f]  I(T;Y) [%.6f, %.6f]\n", p->name,
               p->n_replicas, p->n, all.xt_lower, all.xt_upper, all.ty_lower, all.ty_upper);
        if (dump_dir)
            dump(dump_dir, p, acts, y, &all);
    }
    free(acts);
    free(y);
}

/* Every rank fails, with the failing rank's message. */
static void check_failures_agree(void)
{
    char err[IPM_ERRLEN];
    int rank, size;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    problem p = {"bad", 40, 2, 2, 2, 1e-3, 0};
    float acts[2 * 40 * 2];
    int32_t y[40];
    make_problem(&p, acts, y);
    ipm_kde_bounds b;
    p.var = -1;
    CHECK(bounds_over(&p, acts, y, MPI_COMM_WORLD, &b, NULL, err) == -1);
    CHECK(strstr(err, "variance") != NULL);
    p.var = 1e-3;
    if (rank == size - 1)
        y[7] = -2;
    CHECK(bounds_over(&p, acts, y, MPI_COMM_WORLD, &b, NULL, err) == -1);
    CHECK(strstr(err, "sample 7 has a negative label") != NULL);
    y[7] = 0;
    ipm_kde_input none = {{p.n, p.n_replicas, p.width, p.var}, NULL, y};
    CHECK(ipm_kde_bounds_mpi(&none, MPI_COMM_WORLD, &b, NULL, err) == -1);
    CHECK(strstr(err, "no activations for replica 0 on rank 0") != NULL);
}

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    char err[IPM_ERRLEN];
    int rank, size;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    CHECK(ipm_comm_prepare(MPI_COMM_WORLD, err) == 0 && ipm_comm_prepare(MPI_COMM_SELF, err) == 0);
    MPI_Comm halves;
    MPI_Comm_split(MPI_COMM_WORLD, rank < size / 2, rank, &halves);
    CHECK(ipm_comm_prepare(halves, err) == 0);
    const char *dump_dir = argc > 2 && strcmp(argv[1], "--dump") == 0 ? argv[2] : NULL;
    for (int k = 0; k < N_PROBLEMS; k++)
        check_problem(&problems[k], halves, dump_dir);
    check_failures_agree();
    MPI_Comm_free(&halves);
    int failed = check_failures, any = 0;
    MPI_Allreduce(&failed, &any, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    MPI_Finalize();
    return check_report("test_kde_mpi") || any;
}
