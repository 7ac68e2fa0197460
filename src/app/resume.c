/* resume: moving replica states between the ranks and rank 0's checkpoint
 * file. Point-to-point messages, one per replica, in replica order: MPI keeps
 * each pair's messages in order, so no sizes need agreeing beforehand
 * (MPI_Probe tells the receiver). */
#include "ipmpi/app/resume.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ipmpi/app/plan.h"
#include "ipmpi/io/checkpoint.h"
#include "ipmpi/parallel/comm.h"

static void free_blobs(unsigned char **blob, int n)
{
    for (int i = 0; blob && i < n; i++)
        free(blob[i]);
    free(blob);
}

/* Every local replica's packed state; blob[k] for local[k]. */
static int pack_local(const ipm_ensemble *e, unsigned char **blob, size_t *size, char *err)
{
    for (int k = 0; k < e->n_local; k++) {
        size[k] = ipm_replica_state_size(&e->local[k]);
        blob[k] = malloc(size[k]);
        if (!blob[k])
            return ipm_fail(err, "out of memory packing replica %d (%zu bytes)", e->local[k].index,
                            size[k]);
        if (ipm_replica_pack(&e->local[k], blob[k], size[k], err))
            return -1;
    }
    return 0;
}

static int receive_blob(int source, MPI_Comm comm, unsigned char **blob, size_t *size, char *err)
{
    MPI_Status st;
    int count = 0;
    *blob = NULL;
    *size = 0;
    if (ipm_mpi_check(MPI_Probe(source, IPM_TAG_REPLICA_STATE, comm, &st),
                      "MPI_Probe of a replica state", err) ||
        ipm_mpi_check(MPI_Get_count(&st, MPI_BYTE, &count), "MPI_Get_count of a replica state",
                      err))
        return -1;
    *size = (size_t)count;
    *blob = malloc(*size ? *size : 1);
    /* Receive even without memory, so the sender is not left blocked. */
    if (!*blob) {
        unsigned char sink;
        ipm_mpi_check(
            MPI_Recv(&sink, 0, MPI_BYTE, source, IPM_TAG_REPLICA_STATE, comm, MPI_STATUS_IGNORE),
            "MPI_Recv of a replica state", NULL);
        return ipm_fail(err, "out of memory receiving a replica state (%d bytes)", count);
    }
    return ipm_mpi_check(
        MPI_Recv(*blob, count, MPI_BYTE, source, IPM_TAG_REPLICA_STATE, comm, MPI_STATUS_IGNORE),
        "MPI_Recv of a replica state", err);
}

/* Sends blob to rank to; keeps rc's first failure (every blob is still
 * sent, so the receiver is not left waiting for one skipped). */
static int send_blob(const unsigned char *blob, size_t size, int to, MPI_Comm comm, int rc,
                     char *err)
{
    int sent = ipm_mpi_check(MPI_Send(blob, (int)size, MPI_BYTE, to, IPM_TAG_REPLICA_STATE, comm),
                             "MPI_Send of a replica state", rc ? NULL : err);
    return rc ? rc : sent;
}

/* Rank 0: every replica's blob in replica order, its own moved, others received. */
static int gather_blobs(const ipm_ensemble *e, unsigned char **local, size_t *local_size,
                        unsigned char **all, size_t *all_size, char *err)
{
    int size = e->size, rc = 0;
    for (int r = 0; r < e->n_replicas; r++) {
        if (r % size == 0) {
            all[r] = local[r / size];
            all_size[r] = local_size[r / size];
            local[r / size] = NULL;
        } else if (receive_blob(r % size, e->comm, &all[r], &all_size[r], err)) {
            rc = -1;
        }
    }
    return rc;
}

static int write_checkpoint(const char *path, const ipm_resume_extra *extra, int n,
                            unsigned char **blob, size_t *size, char *err)
{
    ipm_checkpoint ck = {
        .config_text = (char *)extra->config_text,
        .epoch = extra->epoch,
        .records = extra->records,
        .run_id = extra->run_id,
        .n_replicas = n,
        .replica = (const unsigned char **)blob,
        .replica_size = size,
        .stop = extra->stop,
        .stop_size = extra->stop_size,
    };
    return ipm_checkpoint_write(path, &ck, err);
}

int ipm_resume_check_epochs(const ipm_config *cfg, const char *path, int epoch, char *err)
{
    if (epoch <= cfg->epochs)
        return 0;
    char why[IPM_ERRLEN];
    ipm_fail(why, "the checkpoint %s is at epoch %d, beyond it: give at least %d", path, epoch,
             epoch);
    ipm_config_fail(cfg, "training", "epochs", err, " = %d: %s", cfg->epochs, why);
    ipm_error_default_kind(err, IPM_ERR_INPUT);
    return -1;
}

int ipm_resume_save(const ipm_ensemble *e, const char *path, const ipm_resume_extra *extra,
                    char *err)
{
    int rank = e->rank;
    int n = e->n_local + 1, all_n = rank == 0 ? e->n_replicas : 0;
    unsigned char **blob = calloc((size_t)n, sizeof *blob), **all = NULL;
    size_t *size = calloc((size_t)n, sizeof *size), *all_size = NULL;
    int rc = blob && size ? pack_local(e, blob, size, err) : ipm_fail(err, "out of memory");
    if (rc == 0 && rank == 0) {
        all = calloc((size_t)all_n, sizeof *all);
        all_size = calloc((size_t)all_n, sizeof *all_size);
        if (!all || !all_size)
            rc = ipm_fail(err, "out of memory gathering %d replica states", all_n);
    }
    /* Nobody sends unless every rank packed and rank 0 can receive. */
    if (ipm_agree(rc, err, e->comm) == 0) {
        if (rank != 0)
            for (int k = 0; k < e->n_local; k++)
                rc = send_blob(blob[k], size[k], 0, e->comm, rc, err);
        else if ((rc = gather_blobs(e, blob, size, all, all_size, err)) == 0)
            rc = write_checkpoint(path, extra, all_n, all, all_size, err);
        rc = ipm_agree(rc, err, e->comm);
    } else {
        rc = -1;
    }
    free_blobs(blob, n);
    free(size);
    free_blobs(all, all_n);
    free(all_size);
    return rc;
}

/* Rank 0 sends replica r's blob to rank r mod P, keeping its own. */
static int scatter_blobs(const ipm_ensemble *e, const ipm_checkpoint *ck, char *err)
{
    int size = e->size, rc = 0;
    for (int r = 0; r < ck->n_replicas; r++)
        if (r % size != 0)
            rc = send_blob(ck->replica[r], ck->replica_size[r], r % size, e->comm, rc, err);
    return rc;
}

static int unpack_local(const ipm_ensemble *e, const ipm_checkpoint *ck, char *err)
{
    int rank = e->rank, size = e->size, rc = 0;
    for (int k = 0; k < e->n_local; k++) {
        unsigned char *blob = NULL;
        size_t n = 0;
        if (rank == 0) {
            rc = rc ? rc
                    : ipm_replica_unpack(&e->local[k], ck->replica[k * size],
                                         ck->replica_size[k * size], err);
            continue;
        }
        int got = receive_blob(0, e->comm, &blob, &n, err);
        if (rc == 0)
            rc = got ? got : ipm_replica_unpack(&e->local[k], blob, n, err);
        free(blob);
    }
    return rc;
}

/* Every rank gets a copy of rank 0's stopping-state blob. Collective; ends
 * in agreement. */
static int share_stop_state(const ipm_checkpoint *ck, ipm_resume_point *at, int rank, MPI_Comm comm,
                            char *err)
{
    at->stop_size = rank == 0 ? ck->stop_size : 0;
    at->stop = rank == 0 && ck->stop_size ? malloc(ck->stop_size) : NULL;
    int rc = rank != 0 || !ck->stop_size || at->stop
                 ? 0
                 : ipm_fail(err, "out of memory for the stopping state (%zu bytes)", ck->stop_size);
    if (ipm_agree(rc, err, comm))
        return -1;
    if (at->stop)
        memcpy(at->stop, ck->stop, ck->stop_size);
    return ipm_bcast_blob(&at->stop, &at->stop_size, 0, comm, err);
}

/* Rank 0's epoch, record count and run id, on every rank. Collective; ends
 * in agreement. */
static int share_point(ipm_resume_point *at, MPI_Comm comm, char *err)
{
    int64_t point[3] = {at->epoch, at->records, (int64_t)at->run_id};
    int rc = ipm_mpi_check(MPI_Bcast(point, 3, MPI_INT64_T, 0, comm),
                           "MPI_Bcast of the resume point", err);
    if (ipm_agree(rc, err, comm))
        return -1;
    at->epoch = (int)point[0];
    at->records = (long)point[1];
    at->run_id = (uint64_t)point[2];
    return 0;
}

int ipm_resume_load(const ipm_ensemble *e, const char *path, const ipm_config *cfg,
                    ipm_resume_point *at, char *err)
{
    int rank = e->rank;
    ipm_checkpoint ck;
    memset(&ck, 0, sizeof ck);
    memset(at, 0, sizeof *at);
    int rc = 0;
    if (rank == 0 && (rc = ipm_checkpoint_load(path, cfg, e->n_replicas, &ck, err)) == 0) {
        at->epoch = ck.epoch;
        at->records = ck.records;
        at->run_id = ck.run_id;
        at->used_prev = ck.used_prev;
        memcpy(at->refused, ck.refused, IPM_ERRLEN);
    }
    if (ipm_agree(rc, err, e->comm) == 0 && share_point(at, e->comm, err) == 0) {
        rc = share_stop_state(&ck, at, rank, e->comm, err);
        int sent = rc == 0 && rank == 0 ? scatter_blobs(e, &ck, err) : 0;
        if (rc == 0)
            rc = ipm_agree(sent ? sent : unpack_local(e, &ck, err), err, e->comm);
    } else {
        rc = -1;
    }
    ipm_checkpoint_free(&ck);
    return rc;
}

uint64_t ipm_resume_new_run_id(void)
{
    uint64_t id = 0;
    FILE *f = fopen("/dev/urandom", "rb");
    if (!f || fread(&id, sizeof id, 1, f) != 1)
        id = (uint64_t)time(NULL) * 0x9E3779B97F4A7C15ULL ^ (uint64_t)getpid();
    if (f)
        fclose(f);
    return id ? id : 1;
}

int ipm_resume_replicas(const ipm_config *cfg, MPI_Comm comm, int *replicas, char *err)
{
    int rank = 0, n = 0;
    if (ipm_comm_rank_size(comm, &rank, NULL, err))
        return -1;
    char path[IPM_PATH_MAX];
    ipm_plan_checkpoint_path(cfg, path);
    int rc = rank == 0 ? ipm_checkpoint_replicas(path, &n, err) : 0;
    if (ipm_agree(rc, err, comm) ||
        ipm_agree(ipm_mpi_check(MPI_Bcast(&n, 1, MPI_INT, 0, comm), "MPI_Bcast", err), err, comm))
        return -1;
    *replicas = n;
    return 0;
}
