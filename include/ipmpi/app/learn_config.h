/* learn_config: the config and data set as learn/ takes them. Builds the
 * training spec from [network] and [training] and a data view of a data
 * set, and turns learn's plain messages about a key ("[network] layers:
 * ...", "[training] loss = ...") into messages that name the config line
 * the key was set on (ipm_config_fail). learn/ itself knows nothing of the
 * config file. */
#ifndef IPMPI_APP_LEARN_CONFIG_H
#define IPMPI_APP_LEARN_CONFIG_H

#include "ipmpi/io/config.h"
#include "ipmpi/io/dataset.h"
#include "ipmpi/learn/replica.h"

/* cfg's [network] and [training] keys and [run] seed. */
void ipm_train_spec_from_config(const ipm_config *cfg, ipm_train_spec *spec);

/* A view of d (which must outlive it): its rows, labels and input shape. */
ipm_data_view ipm_data_view_of(const ipm_dataset *d);

/* cfg's network on train's input with the weights of replica `index`; a
 * shape that does not fit is an error naming the config line of
 * [network] layers and the item. */
int ipm_net_for_config(ipm_net *net, const ipm_config *cfg, const ipm_dataset *train, int index,
                       char *err);

/* Whether cfg's loss and output layer fit each other and n_classes
 * (ipm_loss_fits); the error names the config line of [training] loss or
 * [network] layers. */
int ipm_loss_check(const ipm_config *cfg, int n_classes, char *err);

/* Replica `index` of cfg on train (ipm_replica_init); errors about a key
 * name its config line. */
int ipm_replica_for_config(ipm_replica *rep, const ipm_config *cfg, const ipm_dataset *train,
                           int index, char *err);

#endif
