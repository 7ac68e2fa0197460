/* points: a plane's estimates made from entropies. Each estimator's point
 * of a layer, I(X;T) and I(T;Y) in bits, goes to its slots in the plane's
 * ipm_estimates: the plug-in values from H(T), H(X,T), H(Y,T) and the
 * data's H(X), H(Y), and with miller_madow the corrected ones from the same
 * counts' numbers of distinct cells (info/miller_madow.h). Whether the
 * entropies came from one rank's counts, the partitioned reduce's
 * histograms or the tree's tables, the same counts give the same bits. */
#ifndef IPMPI_APP_POINTS_H
#define IPMPI_APP_POINTS_H

#include <stdint.h>

#include "ipmpi/info/count.h"
#include "ipmpi/info/estimates.h"
#include "ipmpi/info/mi.h"

/* What every point of a plane is made with. */
typedef struct ipm_plane_terms {
    double h_x, h_y;   /* the data's entropies */
    uint64_t m_x, m_y; /* miller_madow: its distinct x ids and labels */
    int miller_madow;  /* also the corrected points */
} ipm_plane_terms;

/* Where one estimator's point of a layer goes: plug-in and corrected. */
typedef struct ipm_point_slots {
    double *xt, *ty, *xt_mm, *ty_mm;
} ipm_point_slots;

ipm_point_slots ipm_points_simple(ipm_estimates *est, int n_layers, int replica, int layer);
ipm_point_slots ipm_points_pooled(ipm_estimates *est, int layer);
ipm_point_slots ipm_points_sampled(ipm_estimates *est, int layer);

/* The point of the entropies h (and, with miller_madow, of its cells). */
void ipm_points_store(const ipm_plane_terms *k, const ipm_entropies *h, ipm_point_slots at);

/* The point of whole count tables (the tree reduce's, on rank 0). */
void ipm_points_from_tables(const ipm_plane_terms *k, const ipm_layer_tables *lt,
                            ipm_point_slots at);

#endif
