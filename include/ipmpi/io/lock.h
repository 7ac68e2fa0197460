/* lock: one run's exclusive claim on a file it writes, for as long as the
 * run lasts. The claim is an fcntl write lock on a lock file beside the
 * file, PATH.lock, never on PATH itself: HDF5 takes flock locks on the
 * NetCDF file it opens, which on NFS become byte-range locks that would
 * conflict with ours. fcntl locks are the ones NFS carries to the server
 * (NLM for NFSv3, in the protocol for NFSv4), so two runs on different
 * nodes of a cluster exclude each other too, unless the file system is
 * mounted without locking (nolock, local_lock=all): then only runs on one
 * node do. The kernel drops the lock when the process dies, so a lock file
 * left by a killed run claims nothing. The holder's "pid@host" is written
 * into the lock file so that a refused run can say who holds it.
 * Locks are per process (POSIX): taking the same lock twice in one process
 * succeeds, so one process must not claim one path twice. */
#ifndef IPMPI_IO_LOCK_H
#define IPMPI_IO_LOCK_H

typedef struct ipm_lock ipm_lock;

/* Locks PATH.lock (creating it), without waiting, where PATH is path with
 * the symbolic links of its last component followed: a link and the file it
 * names share one lock. When another process
 * holds it, fails with kind IPM_ERR_REFUSED naming path and the holder;
 * other failures (the folder cannot be written) name the lock file and the
 * OS's reason, with kind IPM_ERR_IO. */
int ipm_lock_acquire(ipm_lock **lock, const char *path, char *err);

/* Whether a run holds path's lock, without taking it or creating any file:
 * 0 when none does; -1 (kind IPM_ERR_REFUSED, the message ipm_lock_acquire
 * would give) when another process holds it. --check asks, so that a batch
 * script learns of a live run before it touches that run's files. */
int ipm_lock_probe(const char *path, char *err);

/* Removes the lock file and drops the lock; NULL is allowed. */
void ipm_lock_release(ipm_lock *lock);

#endif
