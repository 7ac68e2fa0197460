/* points: a plane's estimates from entropies, into their slots. */
#include "ipmpi/app/points.h"

#include "ipmpi/info/miller_madow.h"

ipm_point_slots ipm_points_simple(ipm_estimates *est, int n_layers, int replica, int layer)
{
    size_t at = (size_t)replica * (size_t)n_layers + (size_t)layer;
    return (ipm_point_slots){&est->simple_xt[at], &est->simple_ty[at], &est->simple_xt_mm[at],
                             &est->simple_ty_mm[at]};
}

ipm_point_slots ipm_points_pooled(ipm_estimates *est, int layer)
{
    return (ipm_point_slots){&est->pooled_xt[layer], &est->pooled_ty[layer],
                             &est->pooled_xt_mm[layer], &est->pooled_ty_mm[layer]};
}

ipm_point_slots ipm_points_sampled(ipm_estimates *est, int layer)
{
    return (ipm_point_slots){&est->sampled_xt[layer], &est->sampled_ty[layer],
                             &est->sampled_xt_mm[layer], &est->sampled_ty_mm[layer]};
}

void ipm_points_store(const ipm_plane_terms *k, const ipm_entropies *h, ipm_point_slots at)
{
    ipm_plane_point_from(h->t, h->xt, h->yt, k->h_x, k->h_y, at.xt, at.ty);
    if (!k->miller_madow)
        return;
    ipm_mm_terms t = {.h_t = h->t,
                      .h_xt = h->xt,
                      .h_yt = h->yt,
                      .h_x = k->h_x,
                      .h_y = k->h_y,
                      .m_t = h->cells_t,
                      .m_xt = h->cells_xt,
                      .m_yt = h->cells_yt,
                      .m_x = k->m_x,
                      .m_y = k->m_y,
                      .total = h->total};
    ipm_mm_plane_point(&t, at.xt_mm, at.ty_mm);
}

void ipm_points_from_tables(const ipm_plane_terms *k, const ipm_layer_tables *lt,
                            ipm_point_slots at)
{
    ipm_plane_point(lt, k->h_x, k->h_y, at.xt, at.ty);
    if (k->miller_madow)
        ipm_mm_plane_point_tables(lt, k->h_x, k->h_y, k->m_x, k->m_y, at.xt_mm, at.ty_mm);
}
