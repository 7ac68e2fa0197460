/* checkpoint: the file a run continues from, bit for bit.
 * It holds the effective config text, the epochs completed, the NetCDF
 * records logged so far, one opaque state blob per replica (every replica,
 * whatever the rank count: see ipm_replica_pack) and an opaque stopping-state
 * blob. Pure file I/O: gathering the blobs onto rank 0 is the driver's job.
 *
 * Format version 2, every integer little-endian, fixed width:
 *   "IPMPICK1"                 8 bytes magic
 *   u32 version (2), u32 0     reserved flags, must be 0
 *   u64 L, L bytes             config text (no NUL)
 *   u32 epoch, u64 records     epochs completed, NetCDF records logged
 *   u64 run id                 the run's id, also in its NetCDF file
 *   u32 R                      replicas (the resolved count: never 0)
 *   R x (u64 L, L bytes)       replica blobs, in replica order
 *   u64 L, L bytes             stopping-state blob (may be empty)
 *   u64 checksum               FNV-1a 64 over every byte before it
 * FNV-1a steps (h ^ byte) * prime are bijective in h, so any single changed
 * byte always changes the checksum.
 *
 * Writing is atomic: PATH.tmp is written, flushed and fsynced, an existing
 * PATH is renamed to PATH.prev, PATH.tmp to PATH, and the directory fsynced.
 * A reader that finds PATH missing or bad falls back to PATH.prev.
 * Version 1 (written before run ids) is read too, with run id 0. */
#ifndef IPMPI_CHECKPOINT_H
#define IPMPI_CHECKPOINT_H

#include <stddef.h>
#include <stdint.h>

#include "ipmpi/base/error.h"
#include "ipmpi/io/config.h"

#define IPM_CHECKPOINT_VERSION 2

/* "section.key" of every key a restart may change without being refused:
 * [training] epochs (to extend a run) and where and how often output and
 * checkpoints go, BLAS threads and [output] gradients (results do not
 * depend on them: the gradient norms only watch training); and
 * [run] replicas, whose resolved count is compared instead (0 means the
 * checkpoint's count on a restart). NULL-terminated. */
extern const char *const ipm_checkpoint_mutable_keys[];

typedef struct ipm_checkpoint {
    char *config_text; /* NUL-terminated */
    int epoch;         /* epochs completed */
    long records;      /* NetCDF records logged so far */
    uint64_t run_id;   /* the run's id (0: unknown, a version 1 file) */
    int n_replicas;
    const unsigned char **replica; /* n_replicas blobs */
    size_t *replica_size;
    const unsigned char *stop; /* stopping state; may be NULL when stop_size is 0 */
    size_t stop_size;
    /* Set by ipm_checkpoint_load: */
    int used_prev;            /* 1: PATH was refused, PATH.prev was loaded */
    char refused[IPM_ERRLEN]; /* why PATH was refused, when used_prev */
    unsigned char *storage;   /* what read allocated for the blobs */
} ipm_checkpoint;

/* Writes ck to path atomically (see above). On failure path and path.prev
 * are as they were, unless the failure came after the first rename (then
 * path.prev holds the old checkpoint and path.tmp the new, complete one). */
int ipm_checkpoint_write(const char *path, const ipm_checkpoint *ck, char *err);

/* Reads and fully validates path: magic, version, checksum, every length
 * against the file's size before anything is allocated. Fills ck (release it
 * with ipm_checkpoint_free, also after a failure). Errors name path. */
int ipm_checkpoint_read(const char *path, ipm_checkpoint *ck, char *err);

/* 0 when a run with config current may continue from a checkpoint made with
 * saved_config (its text as ipm_config_format wrote it): both read by the
 * config parser and compared key by key on their values, ignoring
 * ipm_checkpoint_mutable_keys. Otherwise -1 with err naming the first
 * differing key where current set it (FILE:LINE or --set) and both values. */
int ipm_checkpoint_config_check(const char *saved_config, const ipm_config *current, char *err);

/* Reads path, checks its config against current and its replica count
 * against n_replicas; when any of that fails, tries path.prev the same way
 * (ck->used_prev = 1, ck->refused says why path was not used). If both fail,
 * err gives both reasons. Release ck with ipm_checkpoint_free either way. */
int ipm_checkpoint_load(const char *path, const ipm_config *current, int n_replicas,
                        ipm_checkpoint *ck, char *err);

/* The replica count of path (or, when unreadable, path.prev), from its
 * header alone: what replicas = 0 resolves to on a restart. The full load
 * still validates everything. */
int ipm_checkpoint_replicas(const char *path, int *n, char *err);

/* Releases what read/load allocated and zeroes ck. Do not call it on a
 * checkpoint whose pointers you filled yourself for writing. */
void ipm_checkpoint_free(ipm_checkpoint *ck);

#endif
