#include "ipmpi/parallel/comm.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "ipmpi/base/error.h"

/* Variables a launcher leaves in its processes' environment: Open MPI's
 * mpirun, a PMIx server (srun --mpi=pmix, prterun), PMI-1/PMI-2 (srun
 * --mpi=pmi2, MPICH's Hydra), and any srun step. */
static const char *const launcher_variables[] = {
    "OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK", "PMI_FD", "PMI_SIZE", "SLURM_STEP_ID",
};

static int started_by_launcher(void)
{
    for (size_t i = 0; i < sizeof launcher_variables / sizeof *launcher_variables; i++)
        if (getenv(launcher_variables[i]))
            return 1;
    return 0;
}

int ipm_comm_init(int *argc, char ***argv)
{
#ifdef OPEN_MPI
    if (!started_by_launcher()) { /* setenv's 0: what the user set stays */
        setenv("OMPI_MCA_ess_singleton_isolated", "1", 0);
        setenv("OMPI_MCA_pml", "ob1", 0);
        setenv("OMPI_MCA_btl", "self", 0);
    }
#endif
    return MPI_Init(argc, argv);
}

int ipm_comm_prepare(MPI_Comm comm, char *err)
{
    return ipm_mpi_check(MPI_Comm_set_errhandler(comm, MPI_ERRORS_RETURN),
                         "MPI_Comm_set_errhandler", err);
}

int ipm_comm_rank_size(MPI_Comm comm, int *rank, int *size, char *err)
{
    if (rank && ipm_mpi_check(MPI_Comm_rank(comm, rank), "MPI_Comm_rank", err))
        return -1;
    return size ? ipm_mpi_check(MPI_Comm_size(comm, size), "MPI_Comm_size", err) : 0;
}

int ipm_mpi_check(int mpi_rc, const char *what, char *err)
{
    if (mpi_rc == MPI_SUCCESS)
        return 0;
    char reason[MPI_MAX_ERROR_STRING] = "";
    int len = 0;
    if (MPI_Error_string(mpi_rc, reason, &len) != MPI_SUCCESS)
        strcpy(reason, "unknown MPI error");
    return ipm_fail(err, "%s failed: %s", what, reason);
}

int ipm_first_failure(int failed, MPI_Comm comm)
{
    int rank = 0, size = 0;
    if (MPI_Comm_rank(comm, &rank) != MPI_SUCCESS || MPI_Comm_size(comm, &size) != MPI_SUCCESS)
        return failed ? 0 : INT_MAX;
    int mine = failed ? rank : size, first = size;
    if (MPI_Allreduce(&mine, &first, 1, MPI_INT, MPI_MIN, comm) != MPI_SUCCESS)
        return failed ? rank : size;
    return first;
}

int ipm_agree(int rc, char *err, MPI_Comm comm)
{
    int size = 0;
    if (ipm_comm_rank_size(comm, NULL, &size, err))
        return -1;
    int first = ipm_first_failure(rc != 0, comm);
    if (first >= size)
        return 0;
    if (MPI_Bcast(err, IPM_ERRLEN, MPI_CHAR, first, comm) != MPI_SUCCESS && rc == 0)
        ipm_fail(err, "rank %d failed; MPI_Bcast of its message failed", first);
    return -1;
}

int ipm_all_ok(int ok, MPI_Comm comm)
{
    int mine = ok ? 1 : 0, all = 0;
    if (MPI_Allreduce(&mine, &all, 1, MPI_INT, MPI_MIN, comm) != MPI_SUCCESS)
        return 0;
    return all;
}

static void count_reduce(ipm_traffic *traffic, uint64_t bytes, int rank, int size)
{
    if (!traffic || size < 2)
        return;
    if (rank != 0) {
        traffic->sent += bytes;
        return;
    }
    for (int reach = 1; reach < size; reach <<= 1)
        traffic->received += bytes;
}

int ipm_sum_to_root(double *v, int n, MPI_Comm comm, ipm_traffic *traffic, char *err)
{
    int rank = 0, size = 0;
    if (ipm_comm_rank_size(comm, &rank, &size, err))
        return -1;
    count_reduce(traffic, (uint64_t)n * sizeof *v, rank, size);
    void *send = rank == 0 ? MPI_IN_PLACE : (void *)v;
    return ipm_mpi_check(MPI_Reduce(send, v, n, MPI_DOUBLE, MPI_SUM, 0, comm),
                         "MPI_Reduce (sum onto rank 0)", err);
}

int ipm_bcast_blob(unsigned char **blob, size_t *size, int root, MPI_Comm comm, char *err)
{
    int rank = 0;
    if (ipm_comm_rank_size(comm, &rank, NULL, err))
        return -1;
    unsigned long long n = rank == root ? (unsigned long long)*size : 0;
    if (ipm_agree(ipm_mpi_check(MPI_Bcast(&n, 1, MPI_UNSIGNED_LONG_LONG, root, comm),
                                "MPI_Bcast of a blob's size", err),
                  err, comm))
        return -1;
    int rc = n > INT_MAX ? ipm_fail(err, "a blob of %llu bytes is too large to broadcast", n) : 0;
    if (rc == 0 && rank != root) {
        *size = (size_t)n;
        *blob = n ? malloc((size_t)n) : NULL;
        if (n && !*blob)
            rc = ipm_fail(err, "out of memory for a broadcast blob of %llu bytes", n);
    }
    if (ipm_agree(rc, err, comm))
        return -1;
    if (n == 0)
        return 0;
    return ipm_agree(
        ipm_mpi_check(MPI_Bcast(*blob, (int)n, MPI_BYTE, root, comm), "MPI_Bcast of a blob", err),
        err, comm);
}

int ipm_max_ints(const int *values, int *max, int n, MPI_Comm comm, char *err)
{
    return ipm_mpi_check(MPI_Allreduce(values, max, n, MPI_INT, MPI_MAX, comm),
                         "MPI_Allreduce (max)", err);
}

int ipm_max_double(double value, MPI_Comm comm, double *max, char *err)
{
    return ipm_mpi_check(MPI_Allreduce(&value, max, 1, MPI_DOUBLE, MPI_MAX, comm),
                         "MPI_Allreduce (max)", err);
}

int ipm_min_max_floats(const float *lo, const float *hi, float *min, float *max, int n,
                       MPI_Comm comm, char *err)
{
    return ipm_mpi_check(MPI_Allreduce(lo, min, n, MPI_FLOAT, MPI_MIN, comm), "MPI_Allreduce (min)",
                         err) ||
           ipm_mpi_check(MPI_Allreduce(hi, max, n, MPI_FLOAT, MPI_MAX, comm), "MPI_Allreduce (max)",
                         err);
}
