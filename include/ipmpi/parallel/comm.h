/* comm: the one module that speaks MPI for the rest of ipmpi's agreements.
 * Every message tag ipmpi uses is in enum ipm_tag, so no two exchanges can
 * mistake each other's messages. Every MPI call's return code is checked:
 * the communicators run with MPI_ERRORS_RETURN (ipm_comm_prepare), and a
 * failed call becomes an ordinary error with MPI's own reason.
 * Agreement: a collective step that can fail locally ends in ipm_agree, after
 * which every rank holds the same status and the same message (the lowest
 * failing rank's), so rank 0 alone prints it and every rank stops. */
#ifndef IPMPI_PARALLEL_COMM_H
#define IPMPI_PARALLEL_COMM_H

#include <mpi.h>
#include <stddef.h>
#include <stdint.h>

/* Message tags of every point-to-point exchange. */
enum ipm_tag {
    IPM_TAG_TABLE_HEADER = 0x1e51, /* tree reduce: a child's table lengths */
    IPM_TAG_TABLE_CHUNK,           /* tree reduce: entries */
    IPM_TAG_REPLICA_STATE,         /* a replica's packed state (checkpoint, restart) */
    IPM_TAG_ACTIVATIONS,           /* a replica's stored activations, to rank 0 */
    IPM_TAG_HISTS,                 /* partitioned reduce: count histograms, towards rank 0 */
};

/* Bytes of the information exchange this rank sent and received (tables,
 * patterns, histograms, estimates; not the few bytes of agreements). */
typedef struct ipm_traffic {
    uint64_t sent, received;
} ipm_traffic;

/* MPI_Init, after readying a process started without a launcher (no
 * mpirun, srun or other PMI/PMIx parent in its environment) to run alone:
 * with Open MPI it sets, where the environment does not set them already,
 * ess_singleton_isolated = 1, pml = ob1 and btl = self, so MPI_Init starts
 * no daemon and probes no network transport for a process that has no one
 * to talk to (about 0.4 s of start-up on this machine's kind). The MPI
 * return code. */
int ipm_comm_init(int *argc, char ***argv);

/* Makes MPI calls on comm return their errors instead of aborting. */
int ipm_comm_prepare(MPI_Comm comm, char *err);

/* This rank's number in comm and comm's size (either pointer may be NULL):
 * MPI_Comm_rank and MPI_Comm_size, checked like every other call. */
int ipm_comm_rank_size(MPI_Comm comm, int *rank, int *size, char *err);

/* 0 when mpi_rc is MPI_SUCCESS; otherwise -1 with err = "what: MPI's reason". */
int ipm_mpi_check(int mpi_rc, const char *what, char *err);

/* Collective: if any rank's rc is non-zero, copies the lowest failing rank's
 * err to every rank and returns -1 everywhere; else 0. */
int ipm_agree(int rc, char *err, MPI_Comm comm);

/* Collective: the lowest rank with failed != 0, or the communicator's size
 * when none failed (or the size cannot be agreed: then this rank's own). */
int ipm_first_failure(int failed, MPI_Comm comm);

/* Collective: 1 when ok is non-zero on every rank. */
int ipm_all_ok(int ok, MPI_Comm comm);

/* Collective: v[0..n) summed over the ranks into rank 0's v (others' v are
 * left as they were). Exact whenever every slot is non-zero on at most one
 * rank, as for per-replica values that only the owning rank fills. With
 * traffic (may be NULL), the bytes are counted as a binomial tree moves
 * them: each rank but 0 sends v once, rank 0 receives it from each of its
 * ceil(log2 P) children. */
int ipm_sum_to_root(double *v, int n, MPI_Comm comm, ipm_traffic *traffic, char *err);

/* Collective: rank root's blob (size bytes) copied to every rank; *blob is
 * malloc'd on the others (free it; NULL with size 0). Ends in agreement. */
int ipm_bcast_blob(unsigned char **blob, size_t *size, int root, MPI_Comm comm, char *err);

/* Collective: the largest value over the ranks, element by element for n
 * values. */
int ipm_max_ints(const int *values, int *max, int n, MPI_Comm comm, char *err);
int ipm_max_double(double value, MPI_Comm comm, double *max, char *err);

/* Collective: min[i] the smallest lo[i] and max[i] the largest hi[i] over
 * the ranks, for i < n (exact: no rounding in a min or a max). */
int ipm_min_max_floats(const float *lo, const float *hi, float *min, float *max, int n,
                       MPI_Comm comm, char *err);

#endif
