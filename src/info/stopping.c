#include "ipmpi/info/stopping.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ipmpi/base/assert.h"
#include "ipmpi/base/bytes.h"
#include "ipmpi/base/error.h"

void ipm_stopping_init(ipm_stopping *s, double beta, double tolerance, double min_rise,
                       int patience)
{
    *s = (ipm_stopping){.beta = beta,
                        .tolerance = tolerance,
                        .min_rise = min_rise,
                        .patience = patience,
                        .best_epoch = -1,
                        .stopped_epoch = -1};
}

double ipm_stopping_objective(const ipm_stopping *s, double i_xt, double i_ty)
{
    return i_ty - s->beta * i_xt;
}

static int improves(const ipm_stopping *s, double j)
{
    if (!isfinite(j))
        return 0;
    if (s->best_epoch < 0)
        return 1;
    double rise = s->tolerance * fabs(s->best);
    return j > s->best + (rise > s->min_rise ? rise : s->min_rise);
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

/* ---- the run's monitor ----------------------------------------------- */

enum { MONITOR_MAGIC = 0x314d5349 /* "ISM1" */ };

int ipm_stop_monitor_init(ipm_stop_monitor *m, const ipm_stop_settings *set, int n_replicas,
                          char *err)
{
    memset(m, 0, sizeof *m);
    m->enabled = set->criterion == IPM_STOP_MI;
    m->scope = set->scope;
    m->check_every = set->check_every;
    m->layer = set->layer;
    m->n_layers = set->n_layers;
    m->estimator = set->estimator;
    m->n_replicas = n_replicas;
    m->n_rules = m->scope == IPM_SCOPE_REPLICA ? n_replicas : 1;
    m->rule = calloc((size_t)m->n_rules, sizeof *m->rule);
    m->j = calloc((size_t)m->n_rules, sizeof *m->j);
    m->stop_epoch = calloc((size_t)n_replicas, sizeof *m->stop_epoch);
    if (!m->rule || !m->j || !m->stop_epoch) {
        ipm_stop_monitor_free(m);
        return ipm_fail(err, "out of memory for the stopping state of %d replicas", n_replicas);
    }
    for (int i = 0; i < m->n_rules; i++) {
        ipm_stopping_init(&m->rule[i], set->beta, set->tolerance, set->min_rise, set->patience);
        m->j[i] = NAN;
    }
    for (int r = 0; r < n_replicas; r++)
        m->stop_epoch[r] = -1;
    return 0;
}

void ipm_stop_monitor_free(ipm_stop_monitor *m)
{
    free(m->rule);
    free(m->j);
    free(m->stop_epoch);
    memset(m, 0, sizeof *m);
}

int ipm_stop_monitor_is_check(const ipm_stop_monitor *m, int epoch)
{
    return m->enabled && epoch > 0 && epoch % m->check_every == 0;
}

int ipm_stop_monitor_apply(ipm_stop_monitor *m, int epoch, const double *i_xt, const double *i_ty)
{
    IPM_ASSERT(m->enabled && m->n_rules >= 1);
    int stopped_now = 0;
    for (int i = 0; i < m->n_rules; i++) {
        if (m->rule[i].stopped_epoch >= 0) {
            m->j[i] = NAN; /* a stopped replica's J is no longer checked */
            continue;
        }
        m->j[i] = ipm_stopping_objective(&m->rule[i], i_xt[i], i_ty[i]);
        if (!ipm_stopping_check(&m->rule[i], epoch, m->j[i]))
            continue;
        int first = m->n_rules == 1 ? 0 : i, last = m->n_rules == 1 ? m->n_replicas : i + 1;
        for (int r = first; r < last; r++)
            if (m->stop_epoch[r] < 0) {
                m->stop_epoch[r] = epoch;
                stopped_now++;
            }
    }
    return stopped_now;
}

/* The layer's point for each rule, as the estimator chosen gives it. */
static void rule_inputs(const ipm_stop_monitor *m, const ipm_estimates *t, double *xt, double *ty)
{
    int l = m->layer, L = m->n_layers;
    if (m->scope == IPM_SCOPE_REPLICA) {
        for (int r = 0; r < m->n_replicas; r++) {
            xt[r] = t->simple_xt[r * L + l];
            ty[r] = t->simple_ty[r * L + l];
        }
    } else if (m->estimator == IPM_EST_POOLED) {
        xt[0] = t->pooled_xt[l];
        ty[0] = t->pooled_ty[l];
    } else if (m->estimator == IPM_EST_SAMPLED) {
        xt[0] = t->sampled_xt[l];
        ty[0] = t->sampled_ty[l];
    } else {
        xt[0] = ty[0] = 0;
        for (int r = 0; r < m->n_replicas; r++) {
            xt[0] += t->simple_xt[r * L + l] / m->n_replicas;
            ty[0] += t->simple_ty[r * L + l] / m->n_replicas;
        }
    }
}

int ipm_stop_monitor_observe(ipm_stop_monitor *m, int epoch, const ipm_estimates *train)
{
    double *xt = malloc(2 * (size_t)m->n_rules * sizeof *xt);
    if (!xt)
        return -1;
    rule_inputs(m, train, xt, xt + m->n_rules);
    int stopped = ipm_stop_monitor_apply(m, epoch, xt, xt + m->n_rules);
    free(xt);
    return stopped;
}

const char *ipm_stop_monitor_estimator(const ipm_stop_monitor *m)
{
    if (m->scope == IPM_SCOPE_REPLICA || m->estimator == IPM_EST_SIMPLE)
        return "simple";
    return m->estimator == IPM_EST_POOLED ? "pooled" : "sampled";
}

int ipm_stop_monitor_all_stopped(const ipm_stop_monitor *m)
{
    if (!m->enabled)
        return 0;
    for (int r = 0; r < m->n_replicas; r++)
        if (m->stop_epoch[r] < 0)
            return 0;
    return 1;
}

/* The state in base/bytes.h's encoding: a header (magic, scope, rules,
 * replicas), every rule's fields in declaration order, J per rule and the
 * stop epochs. On a little-endian machine it is byte for byte the layout
 * that checkpoints of version 0.1 stored. */
static void put_rule(ipm_bytes *c, const ipm_stopping *s)
{
    ipm_put_f64(c, s->beta);
    ipm_put_f64(c, s->tolerance);
    ipm_put_le(c, (uint32_t)s->patience, 4);
    ipm_put_le(c, (uint32_t)s->checks, 4);
    ipm_put_f64(c, s->best);
    ipm_put_le(c, (uint32_t)s->best_epoch, 4);
    ipm_put_le(c, (uint32_t)s->stale, 4);
    ipm_put_le(c, (uint32_t)s->stopped_epoch, 4);
    ipm_put_le(c, (uint32_t)s->reserved, 4);
}

static void get_rule(ipm_bytes *c, ipm_stopping *s)
{
    s->beta = ipm_get_f64(c);
    s->tolerance = ipm_get_f64(c);
    s->patience = (int32_t)ipm_get_le(c, 4);
    s->checks = (int32_t)ipm_get_le(c, 4);
    s->best = ipm_get_f64(c);
    s->best_epoch = (int32_t)ipm_get_le(c, 4);
    s->stale = (int32_t)ipm_get_le(c, 4);
    s->stopped_epoch = (int32_t)ipm_get_le(c, 4);
    s->reserved = (int32_t)ipm_get_le(c, 4);
}

static void put_state(ipm_bytes *c, const ipm_stop_monitor *m)
{
    ipm_put_le(c, MONITOR_MAGIC, 4);
    ipm_put_le(c, (uint32_t)m->scope, 4);
    ipm_put_le(c, (uint32_t)m->n_rules, 4);
    ipm_put_le(c, (uint32_t)m->n_replicas, 4);
    for (int i = 0; i < m->n_rules; i++)
        put_rule(c, &m->rule[i]);
    for (int i = 0; i < m->n_rules; i++)
        ipm_put_f64(c, m->j[i]);
    for (int r = 0; r < m->n_replicas; r++)
        ipm_put_le(c, (uint32_t)m->stop_epoch[r], 4);
}

size_t ipm_stop_monitor_state_size(const ipm_stop_monitor *m)
{
    ipm_bytes count = ipm_bytes_writer(NULL);
    put_state(&count, m);
    return count.pos;
}

void ipm_stop_monitor_pack(const ipm_stop_monitor *m, unsigned char *blob)
{
    ipm_bytes c = ipm_bytes_writer(blob);
    put_state(&c, m);
}

int ipm_stop_monitor_unpack(ipm_stop_monitor *m, const unsigned char *blob, size_t size, char *err)
{
    ipm_bytes c = ipm_bytes_reader(blob, size);
    uint32_t header[4];
    for (int i = 0; i < 4; i++)
        header[i] = (uint32_t)ipm_get_le(&c, 4);
    if (size != ipm_stop_monitor_state_size(m) || header[0] != MONITOR_MAGIC ||
        header[1] != (uint32_t)m->scope || header[2] != (uint32_t)m->n_rules ||
        header[3] != (uint32_t)m->n_replicas)
        return ipm_fail(err,
                        "stopping state of %zu bytes does not fit [stopping] scope = %s "
                        "with %d replicas",
                        size, m->scope == IPM_SCOPE_REPLICA ? "replica" : "ensemble",
                        m->n_replicas);
    for (int i = 0; i < m->n_rules; i++) {
        double min_rise = m->rule[i].min_rise;
        get_rule(&c, &m->rule[i]);
        m->rule[i].min_rise = min_rise;
    }
    for (int i = 0; i < m->n_rules; i++)
        m->j[i] = ipm_get_f64(&c);
    for (int r = 0; r < m->n_replicas; r++)
        m->stop_epoch[r] = (int32_t)ipm_get_le(&c, 4);
    return 0;
}
