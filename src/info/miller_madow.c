/* miller_madow: the correction and the corrected plane point. */
#include "ipmpi/info/miller_madow.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ipmpi/base/error.h"

double ipm_mm_entropy(double h_plugin, uint64_t cells, uint64_t total)
{
    if (total == 0 || cells == 0)
        return h_plugin;
    return h_plugin + (double)(cells - 1) / (2.0 * (double)total * log(2.0));
}

uint64_t ipm_hist_cells(const uint32_t *hist, uint64_t top)
{
    uint64_t cells = 0;
    for (uint64_t c = 1; c <= top; c++)
        cells += hist[c];
    return cells;
}

uint64_t ipm_mm_hist_cells(const ipm_hist *h)
{
    uint64_t cells = 0;
    for (size_t k = 0; k < h->len; k++)
        cells += h->bin[k].keys;
    return cells;
}

void ipm_mm_plane_point(const ipm_mm_terms *t, double *i_xt, double *i_ty)
{
    ipm_plane_point_from(
        ipm_mm_entropy(t->h_t, t->m_t, t->total), ipm_mm_entropy(t->h_xt, t->m_xt, t->total),
        ipm_mm_entropy(t->h_yt, t->m_yt, t->total), ipm_mm_entropy(t->h_x, t->m_x, t->total),
        ipm_mm_entropy(t->h_y, t->m_y, t->total), i_xt, i_ty);
}

void ipm_mm_plane_point_tables(const ipm_layer_tables *lt, double h_x, double h_y, uint64_t m_x,
                               uint64_t m_y, double *i_xt, double *i_ty)
{
    ipm_mm_terms t = {
        .h_t = ipm_table_entropy(&lt->t),
        .h_xt = ipm_table_entropy(&lt->xt),
        .h_yt = ipm_table_entropy(&lt->yt),
        .h_x = h_x,
        .h_y = h_y,
        .m_t = lt->t.len,
        .m_xt = lt->xt.len,
        .m_yt = lt->yt.len,
        .m_x = m_x,
        .m_y = m_y,
        .total = lt->t.total,
    };
    ipm_mm_plane_point(&t, i_xt, i_ty);
}

static int compare_ids(const void *a, const void *b)
{
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

/* Distinct values of v[0..n) (sorts a copy in scratch). */
static uint64_t distinct(const int32_t *v, int n, int32_t *scratch)
{
    memcpy(scratch, v, (size_t)n * sizeof *scratch);
    qsort(scratch, (size_t)n, sizeof *scratch, compare_ids);
    uint64_t count = 0;
    for (int i = 0; i < n; i++)
        count += i == 0 || scratch[i] != scratch[i - 1];
    return count;
}

int ipm_data_cells(const int32_t *x_id, const int32_t *y, int n, uint64_t *m_x, uint64_t *m_y,
                   char *err)
{
    if (n < 1)
        return ipm_fail(err, "cells of an empty data set");
    for (int i = 0; i < n; i++)
        if (x_id[i] < 0 || y[i] < 0)
            return ipm_fail(err, "sample %d: negative x id (%d) or label (%d)", i, (int)x_id[i],
                            (int)y[i]);
    int32_t *scratch = malloc((size_t)n * sizeof *scratch);
    if (!scratch)
        return ipm_fail(err, "out of memory counting the cells of %d samples", n);
    *m_x = distinct(x_id, n, scratch);
    *m_y = distinct(y, n, scratch);
    free(scratch);
    return 0;
}
