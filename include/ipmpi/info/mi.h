/* mi: information-plane coordinates from count tables, in bits.
 * For one layer, tables of T, (X, T) and (Y, T) over a set of (sample,
 * replica) pairs give
 *   I(X;T) = H(T) - H(T|X) = H(T) + H(X) - H(X,T)
 *   I(T;Y) = H(T) - H(T|Y) = H(T) + H(Y) - H(Y,T)
 * with H(X), H(Y) those of the data (every pair set used here weights each
 * sample equally). The same code serves the simple (one replica), pooled
 * (all replicas) and sampled (one drawn replica per sample) estimators. */
#ifndef IPMPI_MI_H
#define IPMPI_MI_H

#include <stdint.h>

#include "ipmpi/info/bins.h"
#include "ipmpi/info/table.h"

typedef struct ipm_layer_tables {
    ipm_table t, xt, yt;
} ipm_layer_tables;

int ipm_layer_tables_init(ipm_layer_tables *lt, size_t expected_keys, char *err);
void ipm_layer_tables_clear(ipm_layer_tables *lt);
void ipm_layer_tables_free(ipm_layer_tables *lt);

/* Counts the n samples' patterns; keep[i] == 0 skips sample i (keep may be NULL). */
int ipm_layer_tables_add(ipm_layer_tables *lt, const ipm_pattern *p, const int32_t *x_id,
                         const int32_t *y, int n, const uint8_t *keep, char *err);

/* I(X;T) and I(T;Y) of the counted pairs; h_x and h_y of the data. */
void ipm_plane_point(const ipm_layer_tables *lt, double h_x, double h_y, double *i_xt,
                     double *i_ty);

/* The same from the entropies H(T), H(X,T), H(Y,T) of some pair set, for
 * callers that count without tables. */
void ipm_plane_point_from(double h_t, double h_xt, double h_yt, double h_x, double h_y,
                          double *i_xt, double *i_ty);

/* H(X), H(Y) and I(X;Y) of a data set's (x id, label) pairs. */
int ipm_data_information(const int32_t *x_id, const int32_t *y, int n, double *h_x, double *h_y,
                         double *i_xy, char *err);

#endif
