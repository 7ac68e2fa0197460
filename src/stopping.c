#include "ipmpi/stopping.h"

#include <math.h>

void ipm_stopping_init(ipm_stopping *s, double beta, double tolerance, int patience)
{
    *s = (ipm_stopping){.beta = beta, .tolerance = tolerance, .patience = patience,
                        .best_epoch = -1, .stopped_epoch = -1};
}

double ipm_stopping_objective(const ipm_stopping *s, double i_xt, double i_ty)
{
    return i_ty - s->beta * i_xt;
}

static int improves(const ipm_stopping *s, double j)
{
    if (!isfinite(j))
        return 0;
    if (s->checks == 0)
        return 1;
    return j > s->best + s->tolerance * fabs(s->best);
}

int ipm_stopping_check(ipm_stopping *s, int epoch, double j)
{
    if (s->stopped_epoch >= 0)
        return 1;
    if (improves(s, j)) {
        s->best = j;
        s->best_epoch = epoch;
        s->stale = 0;
    } else {
        s->stale++;
    }
    s->checks++;
    if (s->stale >= s->patience) {
        s->stopped_epoch = epoch;
        return 1;
    }
    return 0;
}
