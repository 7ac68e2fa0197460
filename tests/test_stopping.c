/* The stopping rule on scripted sequences of J, worked by hand. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ipmpi/base/error.h"
#include "ipmpi/info/stopping.h"
#include "check.h"

/* Feeds j[0..n) at epochs 10, 20, ...; returns the epoch it stopped at, -1 if never. */
static int run_script(ipm_stopping *s, const double *j, int n)
{
    for (int k = 0; k < n; k++)
        if (ipm_stopping_check(s, 10 * (k + 1), j[k]))
            return 10 * (k + 1);
    return -1;
}

/* The last of six layers, beta 0.5, patience 2, a check every 5 epochs. */
static ipm_stop_settings monitor_settings(enum ipm_stop_scope scope)
{
    return (ipm_stop_settings){
        .criterion = IPM_STOP_MI,
        .scope = scope,
        .beta = 0.5,
        .tolerance = 0,
        .min_rise = 0,
        .patience = 2,
        .check_every = 5,
        .layer = 5,
        .n_layers = 6,
        .estimator = scope == IPM_SCOPE_REPLICA ? IPM_EST_SIMPLE : IPM_EST_POOLED,
    };
}

/* Ensemble: one rule stops every replica at once; checks every 5 epochs. */
static void test_monitor_ensemble(void)
{
    ipm_stop_settings set = monitor_settings(IPM_SCOPE_ENSEMBLE);
    ipm_stop_monitor m;
    char err[IPM_ERRLEN];
    CHECK(ipm_stop_monitor_init(&m, &set, 3, err) == 0);
    CHECK(m.n_rules == 1 && m.layer == set.n_layers - 1);
    CHECK(!ipm_stop_monitor_is_check(&m, 0) && ipm_stop_monitor_is_check(&m, 5));
    CHECK(!ipm_stop_monitor_is_check(&m, 7) && ipm_stop_monitor_is_check(&m, 10));
    CHECK(strcmp(ipm_stop_monitor_estimator(&m), "pooled") == 0);
    /* J = I(T;Y) - 0.5 I(X;T): 0.5, 0.75, 0.75, 0.7 -> best at 10, stale at
     * 15 and 20: the ensemble stops at epoch 20. */
    const double xt[] = {1.0, 0.5, 0.5, 0.6}, ty[] = {1.0, 1.0, 1.0, 1.0};
    for (int k = 0; k < 3; k++) {
        CHECK(ipm_stop_monitor_apply(&m, 5 * (k + 1), &xt[k], &ty[k]) == 0);
        CHECK(!ipm_stop_monitor_all_stopped(&m));
    }
    CHECK(m.j[0] == 0.75);
    CHECK(ipm_stop_monitor_apply(&m, 20, &xt[3], &ty[3]) == 3);
    CHECK(ipm_stop_monitor_all_stopped(&m) && m.j[0] == 0.7);
    for (int r = 0; r < 3; r++)
        CHECK(m.stop_epoch[r] == 20);
    ipm_stop_monitor_free(&m);
}

/* Replica: each stops on its own J; a stopped one's J becomes NaN; the
 * state survives pack/unpack and refuses a monitor of another shape. */
static void test_monitor_replicas(void)
{
    ipm_stop_settings set = monitor_settings(IPM_SCOPE_REPLICA);
    ipm_stop_monitor m, copy, other;
    char err[IPM_ERRLEN];
    CHECK(ipm_stop_monitor_init(&m, &set, 2, err) == 0 && m.n_rules == 2);
    /* Replica 0 flat from the start (stops at the third check, 15);
     * replica 1 keeps rising. */
    double xt[2] = {0, 0}, ty[2][3] = {{1, 1, 1}, {1, 2, 3}};
    for (int k = 0; k < 3; k++) {
        double t[2] = {ty[0][k], ty[1][k]};
        int stopped = ipm_stop_monitor_apply(&m, 5 * (k + 1), xt, t);
        CHECK(stopped == (k == 2));
    }
    CHECK(m.stop_epoch[0] == 15 && m.stop_epoch[1] == -1 && !ipm_stop_monitor_all_stopped(&m));
    double t[2] = {5, 3};
    CHECK(ipm_stop_monitor_apply(&m, 20, xt, t) == 0);
    CHECK(isnan(m.j[0]) && m.j[1] == 3);

    size_t size = ipm_stop_monitor_state_size(&m);
    unsigned char *blob = malloc(size);
    CHECK(blob != NULL);
    if (blob) {
        ipm_stop_monitor_pack(&m, blob);
        CHECK(ipm_stop_monitor_init(&copy, &set, 2, err) == 0);
        CHECK(ipm_stop_monitor_unpack(&copy, blob, size, err) == 0);
        CHECK(copy.stop_epoch[0] == 15 && copy.rule[1].stale == 1 && copy.j[1] == 3);
        CHECK(memcmp(copy.rule, m.rule, 2 * sizeof *m.rule) == 0);
        ipm_stop_monitor_free(&copy);
        CHECK(ipm_stop_monitor_init(&other, &set, 3, err) == 0);
        CHECK(ipm_stop_monitor_unpack(&other, blob, size, err) == -1);
        CHECK(strstr(err, "scope = replica with 3 replicas") != NULL);
        ipm_stop_monitor_free(&other);
        CHECK(ipm_stop_monitor_unpack(&m, blob, size - 1, err) == -1);
    }
    free(blob);
    ipm_stop_monitor_free(&m);
}

int main(void)
{
    ipm_stopping s;
    test_monitor_ensemble();
    test_monitor_replicas();

    /* Rises, then flat: best 0.5 at epoch 30; checks 4, 5, 6 do not improve
     * (patience 3), so the stop comes at the sixth check, epoch 60. */
    ipm_stopping_init(&s, 1.0, 0.01, 0.0, 3);
    const double flat[] = {0.1, 0.3, 0.5, 0.5, 0.49, 0.502, 0.9};
    CHECK(run_script(&s, flat, 7) == 60);
    CHECK(s.best == 0.5 && s.best_epoch == 30 && s.stopped_epoch == 60);
    CHECK(ipm_stopping_check(&s, 70, 0.9) == 1); /* stays stopped */

    /* 0.502 is a rise of 0.4%, below tolerance 1%: no improvement. With
     * tolerance 0 it is one, and restarts the count: stop at epoch 70+. */
    ipm_stopping_init(&s, 1.0, 0.0, 0.0, 3);
    CHECK(run_script(&s, flat, 7) == -1);
    CHECK(s.best == 0.9 && s.best_epoch == 70 && s.stale == 0);

    /* Negative J (beta large): tolerance is relative to |J_best|. */
    ipm_stopping_init(&s, 2.0, 0.1, 0.0, 2);
    CHECK(ipm_stopping_objective(&s, 1.5, 1.0) == -2.0);
    const double negative[] = {-2.0, -1.9, -1.7, -1.6, -1.55};
    /* -1.9 > -2.0 + 0.2? no (-1.8): stale 1; -1.7 > -1.8: best -1.7, stale 0;
     * -1.6 > -1.7 + 0.17 = -1.53? no: stale 1; -1.55 no: stale 2: stop at 50. */
    CHECK(run_script(&s, negative, 5) == 50);
    CHECK(s.best == -1.7 && s.best_epoch == 30);

    /* NaN never improves; patience 1 stops at the first NaN after a best. */
    ipm_stopping_init(&s, 1.0, 0.0, 0.0, 1);
    const double with_nan[] = {0.2, NAN};
    CHECK(run_script(&s, with_nan, 2) == 20);

    /* Patience 0 would stop at once; the config refuses it, but the rule is
     * still defined: the first check stops. */
    ipm_stopping_init(&s, 1.0, 0.0, 0.0, 0);
    CHECK(ipm_stopping_check(&s, 5, 1.0) == 1 && s.stopped_epoch == 5);

    /* A first check with a NaN J does not seed J_best = 0: a later J of
     * -0.5 (below 0) is the first best, and -0.4 then improves on it. */
    ipm_stopping_init(&s, 1.0, 0.0, 0.0, 3);
    const double nan_first[] = {NAN, -0.5, -0.4};
    CHECK(run_script(&s, nan_first, 3) == -1);
    CHECK(s.best == -0.4 && s.best_epoch == 30 && s.stale == 0 && s.checks == 3);

    /* Near J_best = 0 a relative tolerance vanishes; the absolute floor
     * min_rise does not: rises of 1e-4 under a floor of 1e-3 are no
     * improvement, and patience 2 stops at the third check. Without the
     * floor every one of them improves. */
    const double creep[] = {0.0, 1e-4, 2e-4, 3e-4};
    ipm_stopping_init(&s, 1.0, 0.01, 1e-3, 2);
    CHECK(run_script(&s, creep, 4) == 30);
    CHECK(s.best == 0.0 && s.best_epoch == 10);
    ipm_stopping_init(&s, 1.0, 0.01, 0.0, 2);
    CHECK(run_script(&s, creep, 4) == -1 && s.best == 3e-4);

    /* The floor and the relative tolerance: the larger one counts. With
     * J_best = 2, tolerance 0.01 asks a rise above 0.02 > floor 0.001. */
    ipm_stopping_init(&s, 1.0, 0.01, 1e-3, 1);
    const double big[] = {2.0, 2.015};
    CHECK(run_script(&s, big, 2) == 20);
    return check_report("test_stopping");
}
