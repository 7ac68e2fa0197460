/* kde (parallel): the blocked pair loop over the ranks; see the header. */
#include "ipmpi/parallel/kde.h"

#include <cblas.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "ipmpi/base/error.h"
#include "ipmpi/parallel/comm.h"

typedef struct kde_plan {
    ipm_kde_shape s;
    int rank, size;
    int g0, g1;       /* this rank's row blocks [g0, g1) */
    float *rows;      /* block g at (g - g0) ROW_BLOCK width */
    float *row_norm2; /* (g1 - g0) ROW_BLOCK */
    double *sums;     /* (g1 - g0) ROW_BLOCK IPM_KDE_N_SUMS */
    float *replica;   /* n x width: the replica broadcast last */
    float *col_norm2; /* n: its norms */
    float *dots;      /* ROW_BLOCK x COL_BLOCK */
    double *logs;     /* every row block's IPM_KDE_N_SUMS sums of logs */
    size_t bytes;
    long long pairs;
} kde_plan;

static int owned_blocks(int n_blocks, int rank, int size, int *g0, int *g1)
{
    *g0 = (int)((long long)n_blocks * rank / size);
    *g1 = (int)((long long)n_blocks * (rank + 1) / size);
    return *g1 - *g0;
}

size_t ipm_kde_workspace_bytes(const ipm_kde_shape *s, int n_ranks)
{
    size_t nb = (size_t)ipm_kde_row_blocks(s), w = (size_t)s->width;
    size_t most = (nb + (size_t)n_ranks - 1) / (size_t)n_ranks;
    return 4 * (size_t)IPM_KDE_ROW_BLOCK * IPM_KDE_COL_BLOCK + 4 * (size_t)s->n * (w + 1) +
           (4 * (w + 1) + 8 * IPM_KDE_N_SUMS) * IPM_KDE_ROW_BLOCK * most + 8 * IPM_KDE_N_SUMS * nb;
}

static void *plan_alloc(kde_plan *p, size_t count, size_t size)
{
    p->bytes += count * size;
    return calloc(count ? count : 1, size);
}

static void plan_free(kde_plan *p)
{
    free(p->rows);
    free(p->row_norm2);
    free(p->sums);
    free(p->replica);
    free(p->col_norm2);
    free(p->dots);
    free(p->logs);
}

/* The checks every rank can make alone: shape, labels, local inputs. */
static int check_input(const ipm_kde_input *in, int rank, int size, char *err)
{
    const ipm_kde_shape *s = &in->shape;
    if (ipm_kde_check_shape(s, err))
        return -1;
    if ((long long)s->n * s->width > INT_MAX)
        return ipm_fail(err, "KDE bounds: %d samples x %d units do not fit one broadcast", s->n,
                        s->width);
    for (int i = 0; i < s->n; i++)
        if (in->y[i] < 0)
            return ipm_fail(err, "KDE bounds: sample %d has a negative label (%d)", i,
                            (int)in->y[i]);
    for (int r = rank; r < s->n_replicas; r += size)
        if (!in->acts || !in->acts[r / size])
            return ipm_fail(err, "KDE bounds: no activations for replica %d on rank %d", r, rank);
    return 0;
}

static int plan_init(kde_plan *p, const ipm_kde_input *in, MPI_Comm comm, char *err)
{
    memset(p, 0, sizeof *p);
    p->s = in->shape;
    if (ipm_comm_rank_size(comm, &p->rank, &p->size, err) || check_input(in, p->rank, p->size, err))
        return -1;
    size_t n_blocks = (size_t)ipm_kde_row_blocks(&p->s), w = (size_t)p->s.width;
    size_t rows =
        (size_t)owned_blocks((int)n_blocks, p->rank, p->size, &p->g0, &p->g1) * IPM_KDE_ROW_BLOCK;
    p->rows = plan_alloc(p, rows * w, sizeof *p->rows);
    p->row_norm2 = plan_alloc(p, rows, sizeof *p->row_norm2);
    p->sums = plan_alloc(p, rows * IPM_KDE_N_SUMS, sizeof *p->sums);
    p->replica = plan_alloc(p, (size_t)p->s.n * w, sizeof *p->replica);
    p->col_norm2 = plan_alloc(p, (size_t)p->s.n, sizeof *p->col_norm2);
    p->dots = plan_alloc(p, (size_t)IPM_KDE_ROW_BLOCK * IPM_KDE_COL_BLOCK, sizeof *p->dots);
    p->logs = plan_alloc(p, n_blocks * IPM_KDE_N_SUMS, sizeof *p->logs);
    if (!p->rows || !p->row_norm2 || !p->sums || !p->replica || !p->col_norm2 || !p->dots ||
        !p->logs)
        return ipm_fail(err, "out of memory for the KDE workspace (%zu bytes)", p->bytes);
    return 0;
}

/* Replica s from its owner into every rank's p->replica. */
static int broadcast_replica(kde_plan *p, const ipm_kde_input *in, int s, MPI_Comm comm, char *err)
{
    int owner = s % p->size, count = p->s.n * p->s.width;
    if (p->rank == owner)
        memcpy(p->replica, in->acts[s / p->size], (size_t)count * sizeof *p->replica);
    return ipm_mpi_check(MPI_Bcast(p->replica, count, MPI_FLOAT, owner, comm),
                         "MPI_Bcast of a replica's activations (KDE)", err);
}

/* Copies the rows of this rank's blocks of replica s. */
static void keep_rows(kde_plan *p, int s)
{
    size_t w = (size_t)p->s.width;
    for (int g = p->g0; g < p->g1; g++) {
        int replica, first, count;
        ipm_kde_row_block(&p->s, g, &replica, &first, &count);
        if (replica != s)
            continue;
        float *dst = p->rows + (size_t)(g - p->g0) * IPM_KDE_ROW_BLOCK * w;
        memcpy(dst, p->replica + (size_t)first * w, (size_t)count * w * sizeof *dst);
        ipm_kde_norms(dst, count, p->s.width,
                      p->row_norm2 + (size_t)(g - p->g0) * IPM_KDE_ROW_BLOCK);
    }
}

/* Every row block of this rank against one column block. */
static void run_column_block(kde_plan *p, const ipm_kde_input *in, int s, int first, int count)
{
    int w = p->s.width;
    for (int g = p->g0; g < p->g1; g++) {
        ipm_kde_block b = {.col_replica = s, .col_first = first, .n_cols = count};
        ipm_kde_row_block(&p->s, g, &b.row_replica, &b.row_first, &b.n_rows);
        size_t row0 = (size_t)(g - p->g0) * IPM_KDE_ROW_BLOCK;
        ipm_kde_points pts = {w,
                              p->rows + row0 * (size_t)w,
                              p->replica + (size_t)first * w,
                              p->row_norm2 + row0,
                              p->col_norm2 + first,
                              p->dots,
                              IPM_KDE_COL_BLOCK};
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, b.n_rows, count, w, 1.0f, pts.rows, w,
                    pts.cols, w, 0.0f, p->dots, IPM_KDE_COL_BLOCK);
        ipm_kde_add_block(&b, &pts, in->y, p->s.var, p->sums + row0 * IPM_KDE_N_SUMS);
        p->pairs += (long long)b.n_rows * count;
    }
}

/* This rank's rows against every point of replica s (in p->replica). */
static void run_replica(kde_plan *p, const ipm_kde_input *in, int s)
{
    ipm_kde_norms(p->replica, p->s.n, p->s.width, p->col_norm2);
    for (int first = 0; first < p->s.n; first += IPM_KDE_COL_BLOCK) {
        int count = p->s.n - first < IPM_KDE_COL_BLOCK ? p->s.n - first : IPM_KDE_COL_BLOCK;
        run_column_block(p, in, s, first, count);
    }
}

/* Both passes over the replicas. Every rank makes every broadcast, even
 * after a failure, so that no rank waits on one that left. */
static int run_pairs(kde_plan *p, const ipm_kde_input *in, MPI_Comm comm, char *err)
{
    int rc = 0;
    for (int s = 0; s < p->s.n_replicas; s++)
        if (broadcast_replica(p, in, s, comm, err) == 0 && rc == 0)
            keep_rows(p, s);
        else
            rc = -1;
    for (int s = 0; s < p->s.n_replicas; s++)
        if (broadcast_replica(p, in, s, comm, err) == 0 && rc == 0)
            run_replica(p, in, s);
        else
            rc = -1;
    return rc;
}

/* Every block's sums of logs onto every rank: each slot is filled by
 * exactly one rank and 0 elsewhere, so the reduction is exact. */
static int share_logs(kde_plan *p, MPI_Comm comm, char *err)
{
    for (int g = p->g0; g < p->g1; g++) {
        int replica, first, count;
        ipm_kde_row_block(&p->s, g, &replica, &first, &count);
        ipm_kde_row_logs(p->sums + (size_t)(g - p->g0) * IPM_KDE_ROW_BLOCK * IPM_KDE_N_SUMS, count,
                         p->logs + (size_t)g * IPM_KDE_N_SUMS);
    }
    int n = ipm_kde_row_blocks(&p->s) * IPM_KDE_N_SUMS;
    return ipm_mpi_check(MPI_Allreduce(MPI_IN_PLACE, p->logs, n, MPI_DOUBLE, MPI_SUM, comm),
                         "MPI_Allreduce of the KDE sums", err);
}

int ipm_kde_bounds_mpi(const ipm_kde_input *in, MPI_Comm comm, ipm_kde_bounds *out,
                       ipm_kde_stats *stats, char *err)
{
    kde_plan p;
    int rc = ipm_agree(plan_init(&p, in, comm, err), err, comm);
    if (rc == 0)
        rc = ipm_agree(run_pairs(&p, in, comm, err), err, comm);
    if (rc == 0)
        rc = ipm_agree(share_logs(&p, comm, err), err, comm);
    if (rc == 0)
        rc = ipm_agree(ipm_kde_combine(&p.s, p.logs, in->y, out, err), err, comm);
    if (rc == 0 && stats)
        *stats = (ipm_kde_stats){p.bytes, p.g1 - p.g0, p.pairs};
    plan_free(&p);
    return rc;
}
