/* claim: a run makes its files its own before it writes anything. Rank 0
 * locks the output and the checkpoint for the run's life (io/lock.h), so a
 * second run on either is refused at once and truncates nothing; then it
 * checks what the start needs. A fresh start refuses an existing output or
 * checkpoint (or the checkpoint's PATH.prev): an earlier run is never lost
 * by starting again by mistake. The way out is named: --restart continues
 * it, --overwrite replaces it. A restart needs them and leaves them to the
 * resume. A path that is a symbolic link is locked as the file it names
 * (io/lock.h), so a run given the link and a run given the file exclude
 * each other; an existing output with several names (hard links) is refused, since
 * another run may hold it under another name. Refusals have kind
 * IPM_ERR_REFUSED. */
#ifndef IPMPI_APP_CLAIM_H
#define IPMPI_APP_CLAIM_H

#include "ipmpi/io/config.h"
#include "ipmpi/io/lock.h"

typedef struct ipm_claim {
    ipm_lock *output, *checkpoint;
} ipm_claim;

/* Rank 0 only: cfg's output and the resolved checkpoint path. On failure
 * nothing is held; a lock file that cannot be created is named with the
 * config line of its key (kind IPM_ERR_INPUT). */
int ipm_claim_files(ipm_claim *c, const ipm_config *cfg, const char *checkpoint, int restart,
                    int overwrite, char *err);

/* Drops both locks (and their lock files); a zeroed claim is fine. */
void ipm_claim_release(ipm_claim *c);

#endif
