/* mi: plug-in entropies from count tables and the plane coordinates. */
#include "ipmpi/info/mi.h"

#include "ipmpi/base/error.h"

int ipm_layer_tables_init(ipm_layer_tables *lt, size_t expected_keys, char *err)
{
    lt->t = lt->xt = lt->yt = (ipm_table){0};
    if (ipm_table_init(&lt->t, expected_keys, err) || ipm_table_init(&lt->xt, expected_keys, err) ||
        ipm_table_init(&lt->yt, expected_keys, err)) {
        ipm_layer_tables_free(lt);
        return -1;
    }
    return 0;
}

void ipm_layer_tables_clear(ipm_layer_tables *lt)
{
    ipm_table_clear(&lt->t);
    ipm_table_clear(&lt->xt);
    ipm_table_clear(&lt->yt);
}

void ipm_layer_tables_free(ipm_layer_tables *lt)
{
    ipm_table_free(&lt->t);
    ipm_table_free(&lt->xt);
    ipm_table_free(&lt->yt);
}

/* One table at a time keeps each one hot in cache. */
int ipm_layer_tables_add(ipm_layer_tables *lt, const ipm_pattern *p, const int32_t *x_id,
                         const int32_t *y, int n, const uint8_t *keep, char *err)
{
    if (ipm_table_add_patterns(&lt->t, NULL, p, n, keep, err) ||
        ipm_table_add_patterns(&lt->xt, x_id, p, n, keep, err) ||
        ipm_table_add_patterns(&lt->yt, y, p, n, keep, err))
        return -1;
    return 0;
}

/* Round-off can push a zero information a few ulps below 0. */
static double clamp_roundoff(double v)
{
    return v < 0 && v > -1e-12 ? 0.0 : v;
}

void ipm_plane_point_from(double h_t, double h_xt, double h_yt, double h_x, double h_y,
                          double *i_xt, double *i_ty)
{
    *i_xt = clamp_roundoff(h_t + h_x - h_xt);
    *i_ty = clamp_roundoff(h_t + h_y - h_yt);
}

void ipm_plane_point(const ipm_layer_tables *lt, double h_x, double h_y, double *i_xt, double *i_ty)
{
    ipm_plane_point_from(ipm_table_entropy(&lt->t), ipm_table_entropy(&lt->xt),
                         ipm_table_entropy(&lt->yt), h_x, h_y, i_xt, i_ty);
}

/* Counts x ids (group 0), labels (group y, empty pattern) and (x, y) pairs. */
static int count_data(ipm_table tab[3], const int32_t *x_id, const int32_t *y, int n, char *err)
{
    for (int i = 0; i < n; i++) {
        if (x_id[i] < 0 || y[i] < 0)
            return ipm_fail(err, "sample %d: negative x id (%d) or label (%d)", i, (int)x_id[i],
                            (int)y[i]);
        ipm_pattern x = {(uint64_t)x_id[i], 0}, none = {0, 0};
        if (ipm_table_add(&tab[0], 0, x, 1, err) ||
            ipm_table_add(&tab[1], (uint32_t)y[i], none, 1, err) ||
            ipm_table_add(&tab[2], (uint32_t)y[i], x, 1, err))
            return -1;
    }
    return 0;
}

int ipm_data_information(const int32_t *x_id, const int32_t *y, int n, double *h_x, double *h_y,
                         double *i_xy, char *err)
{
    if (n < 1)
        return ipm_fail(err, "information of an empty data set");
    ipm_table tab[3] = {{0}, {0}, {0}};
    int rc = 0;
    for (int k = 0; k < 3 && rc == 0; k++)
        rc = ipm_table_init(&tab[k], (size_t)n, err);
    if (rc == 0)
        rc = count_data(tab, x_id, y, n, err);
    if (rc == 0) {
        *h_x = ipm_table_entropy(&tab[0]);
        *h_y = ipm_table_entropy(&tab[1]);
        *i_xy = clamp_roundoff(*h_x + *h_y - ipm_table_entropy(&tab[2]));
    }
    for (int k = 0; k < 3; k++)
        ipm_table_free(&tab[k]);
    return rc;
}
