/* miller_madow: Miller-Madow bias-corrected plug-in entropies, in bits.
 * The plug-in entropy of N observations that fall into m non-empty cells is
 * low by about (m - 1) / (2N) nats (Miller 1955); the corrected value is
 *   H_MM = H_plugin + (m - 1) / (2 N ln 2)  bits.
 * A plane point is corrected term by term. H(T), H(X,T), H(Y,T), H(X) and
 * H(Y) are all marginals of one sample, the (sample, replica) pairs counted,
 * so one N serves every term: n for the simple and sampled estimators, n R
 * for the pooled one. Then
 *   I_MM(X;T) = H_MM(T) + H_MM(X) - H_MM(X,T)
 *             = I(X;T) + (m_T + m_X - m_XT - 1) / (2 N ln 2),
 *   I_MM(T;Y) = I(T;Y) + (m_T + m_Y - m_YT - 1) / (2 N ln 2).
 * H(X) and H(Y) are the data's (the pair set weights every sample equally,
 * so its marginals are the data's); m_X and m_Y are the data's distinct x ids
 * and labels (ipm_data_cells) when every sample is counted. A correction can
 * be negative, and can take an information below 0; it is reported as it is.
 * The cell counts are integers (a table's len, or the number of keys in a
 * count histogram), so the corrected values are as bitwise independent of
 * merge order and rank count as the plug-in ones. Pure computation. */
#ifndef IPMPI_INFO_MILLER_MADOW_H
#define IPMPI_INFO_MILLER_MADOW_H

#include <stdint.h>

#include "ipmpi/info/hist.h"
#include "ipmpi/info/mi.h"

/* H_plugin + (cells - 1) / (2 total ln 2); h_plugin itself when total or
 * cells is 0. */
double ipm_mm_entropy(double h_plugin, uint64_t cells, uint64_t total);

/* The non-empty cells of a count histogram: sum of hist[c] for 1 <= c <= top
 * (hist[c] = keys with count c, as ipm_sum_clog2c_hist takes it; call this
 * before that sum, which clears the histogram). */
uint64_t ipm_hist_cells(const uint32_t *hist, uint64_t top);

/* The non-empty cells of a sparse count histogram (info/hist.h): the sum
 * of its bins' keys (its count-1 bin included). */
uint64_t ipm_mm_hist_cells(const ipm_hist *h);

/* One pair set's plug-in entropies (bits), their cells, and its size. */
typedef struct ipm_mm_terms {
    double h_t, h_xt, h_yt, h_x, h_y;
    uint64_t m_t, m_xt, m_yt, m_x, m_y;
    uint64_t total; /* pairs counted */
} ipm_mm_terms;

/* I_MM(X;T) and I_MM(T;Y). */
void ipm_mm_plane_point(const ipm_mm_terms *terms, double *i_xt, double *i_ty);

/* The same from count tables (cells: each table's len; N: the T table's
 * total) and the data's H(X), H(Y) and cells m_x, m_y. */
void ipm_mm_plane_point_tables(const ipm_layer_tables *lt, double h_x, double h_y, uint64_t m_x,
                               uint64_t m_y, double *i_xt, double *i_ty);

/* The data's distinct x ids *m_x and labels *m_y (ids and labels >= 0). */
int ipm_data_cells(const int32_t *x_id, const int32_t *y, int n, uint64_t *m_x, uint64_t *m_y,
                   char *err);

#endif
