/* replica_util: training and evaluating a replica on an ipm_dataset in
 * tests, through the data view learn/ takes (app/learn_config.h). */
#ifndef IPMPI_TESTS_REPLICA_UTIL_H
#define IPMPI_TESTS_REPLICA_UTIL_H

#include "ipmpi/app/learn_config.h"

static inline void train_on(ipm_replica *rep, const ipm_dataset *d)
{
    ipm_data_view view = ipm_data_view_of(d);
    ipm_replica_train_epoch(rep, &view);
}

static inline void evaluate_on(const ipm_replica *rep, const ipm_dataset *d, ipm_workspace *ws,
                               double *loss, double *accuracy)
{
    ipm_data_view view = ipm_data_view_of(d);
    ipm_replica_evaluate(rep, &view, ws, loss, accuracy);
}

static inline void evaluate_block_on(const ipm_replica *rep, const ipm_dataset *d, int first,
                                     int rows, ipm_workspace *ws, ipm_eval_totals *sum)
{
    ipm_data_view view = ipm_data_view_of(d);
    ipm_replica_evaluate_block(rep, &view, first, rows, ws, sum);
}

#endif
