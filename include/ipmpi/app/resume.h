/* resume: an ensemble's checkpoint over MPI. Replica r lives on rank
 * r mod P; its state blob (ipm_replica_pack) travels to rank 0, which alone
 * touches the file, and back to the owning rank on restart, where P may
 * differ from the run that wrote it. Both calls are collective and end in
 * agreement (ipm_agree): every rank returns the same status and err. */
#ifndef IPMPI_RESUME_H
#define IPMPI_RESUME_H

#include <mpi.h>
#include <stdint.h>

#include "ipmpi/app/ensemble.h"
#include "ipmpi/base/error.h"
#include "ipmpi/io/config.h"

/* Where a run resumes from, as rank 0 read it (broadcast to every rank). */
typedef struct ipm_resume_point {
    int epoch;                /* epochs completed */
    long records;             /* NetCDF records logged */
    uint64_t run_id;          /* the run's id (0: a checkpoint from before run ids) */
    int used_prev;            /* rank 0: PATH was refused, PATH.prev used */
    char refused[IPM_ERRLEN]; /* rank 0: why PATH was refused */
    unsigned char *stop;      /* every rank: the stopping-state blob (malloc'd; free it) */
    size_t stop_size;
} ipm_resume_point;

/* What the checkpoint holds besides the replicas (rank 0's values count). */
typedef struct ipm_resume_extra {
    const char *config_text;
    int epoch;
    long records;
    uint64_t run_id;
    const unsigned char *stop; /* stopping-state blob */
    size_t stop_size;
} ipm_resume_extra;

/* The checkpoint at path completed epoch epochs: cfg's [training] epochs
 * must reach it (else kind IPM_ERR_INPUT, naming the key). No MPI: the run
 * and --check --restart both ask. */
int ipm_resume_check_epochs(const ipm_config *cfg, const char *path, int epoch, char *err);

/* Gathers every replica's state to rank 0, which writes the checkpoint. */
int ipm_resume_save(const ipm_ensemble *e, const char *path, const ipm_resume_extra *extra,
                    char *err);

/* Rank 0 loads path (falling back to path.prev, see ipm_checkpoint_load)
 * against cfg; every rank unpacks its replicas' states into e->local, which
 * must be freshly initialised from the same config. */
int ipm_resume_load(const ipm_ensemble *e, const char *path, const ipm_config *cfg,
                    ipm_resume_point *at, char *err);

/* Collective: the replica count the checkpoint of cfg's run holds (rank 0
 * reads it). replicas = 0 means the rank count of a run's first start, so a
 * restart on another rank count continues the same ensemble with it. */
int ipm_resume_replicas(const ipm_config *cfg, MPI_Comm comm, int *replicas, char *err);

/* A fresh run's id (never 0, which marks checkpoints from before run ids):
 * rank 0 draws it once; the output and every checkpoint carry it, and a
 * restart refuses an output whose id differs. */
uint64_t ipm_resume_new_run_id(void);

#endif
