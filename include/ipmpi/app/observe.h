/* observe: what a logged epoch looks at. Every local replica is forwarded
 * over each plane (train, then test) in blocks of samples; each block is
 * binned at once (measure.h) and, at a stored epoch, its training-set
 * activations kept; the blocks' losses give the replica's loss and
 * accuracy. When the bins come from the data (range = adaptive, binning =
 * width) a first pass over every local replica finds each layer's range,
 * agreed over all ranks (or kept per replica, scope = replica) before
 * anything is binned. Counting and merging are ipm_merge_finish (app/merge.h). */
#ifndef IPMPI_APP_OBSERVE_H
#define IPMPI_APP_OBSERVE_H

#include "ipmpi/app/activations.h"
#include "ipmpi/app/ensemble.h"
#include "ipmpi/app/measure.h"
#include "ipmpi/app/plan.h"

/* The planes measured at this epoch (NULL entries are not measured). */
typedef struct ipm_observation {
    const ipm_plan *plan;
    ipm_ensemble *ensemble;
    ipm_measure *plane[IPM_N_PLANES];
    ipm_activation_store *store; /* NULL: nothing stored this epoch */
} ipm_observation;

/* Forwards, bins and (store) keeps; fills the ensemble's loss slots of the
 * local replicas. Collective only when the bins come from the data (range =
 * adaptive, binning = width). */
int ipm_observe_epoch(const ipm_observation *o, int epoch, char *err);

#endif
