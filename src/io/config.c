/* config: INI file (libinih) + "section.key=value" overrides -> ipm_config.
 *
 * One table (`keys`) lists every key with how it is parsed and printed, so
 * the file, --set and ipm_config_format cannot drift apart. A value is
 * parsed into temporaries and stored only when all of it is valid.
 *
 * Line numbers: Debian's libinih has no per-handler line numbers, so we feed
 * ini_parse_stream through our own line reader, which counts lines, refuses
 * lines longer than inih's buffer (inih would silently split them into two
 * "lines" and shift every later number) and mirrors inih's rule for
 * continuation lines. Our handler never returns 0: it records the first
 * error itself, so a positive ini_parse_stream result always means a line
 * inih could not parse (a syntax error).
 *
 * Continuation lines (inih's multi-line values, as Python's configparser):
 * an indented line after a key continues that key's value; list items may so
 * span several lines. Parsing of a key is deferred until its last
 * continuation line has been read. */
#include "ipmpi/io/config.h"

#include "ipmpi/base/error.h"

#include <ctype.h>
#include <errno.h>
#include <float.h>
#include <ini.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

/* Enum fields are read and written as an int through memcpy. */
_Static_assert(sizeof(enum ipm_data_source) == sizeof(int), "enum size");
_Static_assert(sizeof(enum ipm_optimizer) == sizeof(int), "enum size");
_Static_assert(sizeof(enum ipm_loss) == sizeof(int), "enum size");
_Static_assert(sizeof(unsigned) == sizeof(int), "enum size");

/* Formatted lists wrap before this column, well inside inih's 200-char lines. */
enum { WRAP_COLUMN = 96 };

/* ------------------------------------------------------------------------ */
/* Growing text buffer for ipm_config_format and continuation lines. */

typedef struct strbuf {
    char *s;
    size_t len, cap;
    int oom;
} strbuf;

static void sb_printf(strbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void sb_printf(strbuf *b, const char *fmt, ...)
{
    if (b->oom)
        return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) {
        b->oom = 1;
        return;
    }
    size_t need = b->len + (size_t)n + 1;
    if (need > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < need)
            cap *= 2;
        char *s = realloc(b->s, cap);
        if (!s) {
            b->oom = 1;
            return;
        }
        b->s = s;
        b->cap = cap;
    }
    va_start(ap, fmt);
    vsnprintf(b->s + b->len, b->cap - b->len, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

static size_t sb_column(const strbuf *b)
{
    size_t i = b->len;
    while (i > 0 && b->s[i - 1] != '\n')
        i--;
    return b->len - i;
}

/* Appends item to a comma-separated list, wrapping onto an indented
 * continuation line when the current line would grow too long. */
static void sb_list_item(strbuf *b, int index, const char *item)
{
    if (index == 0)
        sb_printf(b, "%s", item);
    else if (sb_column(b) + 2 + strlen(item) > WRAP_COLUMN)
        sb_printf(b, ",\n    %s", item);
    else
        sb_printf(b, ", %s", item);
}

/* The shortest %g form that reads back as exactly v. */
static void format_double(double v, char buf[40])
{
    for (int precision = 1; precision <= 17; precision++) {
        snprintf(buf, 40, "%.*g", precision, v);
        if (strtod(buf, NULL) == v)
            return;
    }
}

/* ------------------------------------------------------------------------ */
/* Strict scalar parsing. Values arrive trimmed; `why` gets the reason. */

static int parse_long(const char *s, long lo, long hi, long *out, char *why)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (end == s || *end || isspace((unsigned char)*s))
        return ipm_fail(why, "bad number '%s' (expected an integer)", s);
    if (errno == ERANGE || v < lo || v > hi) {
        int too_big = errno == ERANGE ? v > 0 : v > hi;
        if ((hi == LONG_MAX || hi == INT_MAX) && !too_big)
            return ipm_fail(why, "'%s' out of range (must be >= %ld)", s, lo);
        if (hi == LONG_MAX || hi == INT_MAX)
            return ipm_fail(why, "'%s' out of range (must be at most %ld)", s, hi);
        return ipm_fail(why, "'%s' out of range (must be between %ld and %ld)", s, lo, hi);
    }
    *out = v;
    return 0;
}

static int parse_int(const char *s, int lo, int hi, int *out, char *why)
{
    long v = 0;
    if (parse_long(s, lo, hi, &v, why))
        return -1;
    *out = (int)v;
    return 0;
}

static int parse_u64(const char *s, uint64_t *out, char *why)
{
    char *end;
    errno = 0;
    /* strtoull would accept "-1" as 2^64 - 1. */
    unsigned long long v = strtoull(s, &end, 10);
    if (end == s || *end || !isdigit((unsigned char)*s))
        return ipm_fail(why, "bad number '%s' (expected an unsigned integer)", s);
    if (errno == ERANGE)
        return ipm_fail(why, "'%s' out of range (must be below 2^64)", s);
    *out = (uint64_t)v;
    return 0;
}

static int parse_double(const char *s, double *out, char *why)
{
    char *end;
    double v = strtod(s, &end);
    if (end == s || *end || isspace((unsigned char)*s))
        return ipm_fail(why, "bad number '%s'", s);
    if (!isfinite(v))
        return ipm_fail(why, "bad number '%s' (must be finite)", s);
    *out = v;
    return 0;
}

static void append_name(char *list, size_t cap, const char *name)
{
    size_t len = strlen(list);
    snprintf(list + len, cap - len, "%s%s", len ? ", " : "", name);
}

/* names[value] spells each value; NULL entries are not valid values. */
static int parse_word(const char *s, const char *const *names, int n, int *out, char *why)
{
    for (int i = 0; i < n; i++)
        if (names[i] && strcmp(s, names[i]) == 0) {
            *out = i;
            return 0;
        }
    char choices[256] = "";
    for (int i = 0; i < n; i++)
        if (names[i])
            append_name(choices, sizeof choices, names[i]);
    return ipm_fail(why, "unknown value '%s' (expected one of: %s)", s, choices);
}

/* ------------------------------------------------------------------------ */
/* Comma-separated lists: one copy of the value, split and trimmed in place. */

typedef struct item_list {
    char *buf;
    char **item;
    int n;
} item_list;

static char *trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    char *end = s + strlen(s);
    while (end > s && isspace((unsigned char)end[-1]))
        *--end = '\0';
    return s;
}

static void free_items(item_list *l)
{
    free(l->buf);
    free(l->item);
    *l = (item_list){0};
}

static int split_items(const char *value, char sep, item_list *l, char *why)
{
    *l = (item_list){0};
    int n = 1;
    for (const char *p = value; *p; p++)
        n += *p == sep;
    l->buf = strdup(value);
    l->item = malloc((size_t)n * sizeof *l->item);
    if (!l->buf || !l->item) {
        free_items(l);
        return ipm_fail(why, "out of memory");
    }
    char *p = l->buf;
    for (int i = 0; i < n; i++) {
        char *next = strchr(p, sep);
        if (next)
            *next = '\0';
        l->item[i] = trim(p);
        p = next ? next + 1 : p + strlen(p);
    }
    l->n = n;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Names of enum values (index = value). */

static const char *const source_names[] = {"tishby12", "simple", "complicated", "netcdf", "idx"};
static const char *const optimizer_names[] = {"sgd", "momentum", "adam"};
static const char *const loss_names[] = {"cross_entropy", "mse"};
static const char *const plane_names[] = {NULL, "train", "test", "all", "whole"};
/* Index i is the estimator bit 1 << i; the first N_BINNED_ESTIMATORS are
 * the plug-in ones a stopping rule can watch and `all` names. */
static const char *const estimator_names[] = {"simple", "pooled", "sampled", "kde", "miller_madow"};
enum { N_BINNED_ESTIMATORS = 3 };
static const char *const bool_names[] = {"false", "true"};
static const char *const criterion_names[] = {"none", "mi"};
static const char *const scope_names[] = {"ensemble", "replica"};
static const char *const binning_names[] = {"range", "width", "quantile"};
static const char *const quantiles_names[] = {"layer", "unit"};
static const char *const range_scope_names[] = {"pooled", "replica"};
static const char *const reduce_names[] = {"partitioned", "tree"};

#define COUNT(a) ((int)(sizeof(a) / sizeof((a)[0])))

/* ------------------------------------------------------------------------ */
/* Keys whose values are more than a number or a word. */

/* "KHxKW" with both sides in 1..4096. */
static int parse_kernel(const char *v, int *kh, int *kw, char *why)
{
    item_list sides;
    if (split_items(v, 'x', &sides, why))
        return -1;
    int rc = sides.n == 2 ? 0 : -1;
    if (rc == 0)
        rc =
            parse_int(sides.item[0], 1, 4096, kh, why) || parse_int(sides.item[1], 1, 4096, kw, why)
                ? -1
                : 0;
    free_items(&sides);
    return rc;
}

static int parse_activation(const char *v, int is_last, enum ipm_activation *out, char *why)
{
    int act = 0;
    if (parse_word(v, ipm_activation_names, IPM_N_ACTIVATIONS, &act, why))
        return ipm_fail(why, "unknown activation '%s' (tanh, relu, sigmoid, linear, softmax)", v);
    if (act == IPM_ACT_SOFTMAX && !is_last)
        return ipm_fail(why, "softmax is only allowed on the last layer");
    *out = (enum ipm_activation)act;
    return 0;
}

/* The parts of one item split at ':' into kind and fields. */
static int parse_layer_parts(char **part, int n, int is_last, ipm_layer_spec *out, char *why)
{
    *out = (ipm_layer_spec){0, IPM_ACT_LINEAR, IPM_LAYER_DENSE, 0, 0};
    if (strcmp(part[0], "dense") == 0) {
        if (n != 3)
            return ipm_fail(why, "expected dense:UNITS:ACTIVATION");
        if (parse_int(part[1], 1, 1 << 24, &out->units, why))
            return ipm_fail(why, "units must be an integer from 1 to %d", 1 << 24);
        return parse_activation(part[2], is_last, &out->activation, why);
    }
    if (strcmp(part[0], "conv") == 0) {
        out->kind = IPM_LAYER_CONV;
        if (n != 3 && n != 4)
            return ipm_fail(why, "expected conv:CHANNELS:KHxKW[:ACTIVATION]");
        if (parse_int(part[1], 1, 1 << 16, &out->units, why))
            return ipm_fail(why, "channels must be an integer from 1 to %d", 1 << 16);
        if (parse_kernel(part[2], &out->kernel_h, &out->kernel_w, why))
            return ipm_fail(why, "kernel '%s' must be KHxKW, e.g. 5x5", part[2]);
        return n == 4 ? parse_activation(part[3], is_last, &out->activation, why) : 0;
    }
    if (strcmp(part[0], "maxpool") == 0) {
        out->kind = IPM_LAYER_MAXPOOL;
        if (n != 2)
            return ipm_fail(why, "expected maxpool:KHxKW");
        if (parse_kernel(part[1], &out->kernel_h, &out->kernel_w, why))
            return ipm_fail(why, "window '%s' must be KHxKW, e.g. 2x2", part[1]);
        return 0;
    }
    return ipm_fail(why, "unknown layer kind '%s' (dense, conv or maxpool)", part[0]);
}

static int parse_layer(char *item, int index, int is_last, ipm_layer_spec *out, char *why)
{
    char text[128];
    snprintf(text, sizeof text, "%s", item);
    item_list parts;
    if (split_items(item, ':', &parts, why))
        return -1;
    char reason[IPM_ERRLEN] = "";
    int rc = parse_layer_parts(parts.item, parts.n, is_last, out, reason);
    if (rc)
        ipm_fail(why, "item %d '%s': %s", index, text, reason);
    free_items(&parts);
    return rc;
}

static int set_layers(ipm_config *c, const char *v, char *why)
{
    item_list items;
    if (split_items(v, ',', &items, why))
        return -1;
    ipm_layer_spec layers[IPM_MAX_LAYERS];
    int rc = 0;
    if (items.n > IPM_MAX_LAYERS)
        rc = ipm_fail(why, "%d layers, at most %d", items.n, IPM_MAX_LAYERS);
    /* Empty items first: a trailing comma would otherwise make the real
     * last layer look like a middle one. */
    for (int i = 0; rc == 0 && i < items.n; i++)
        if (!*items.item[i])
            rc = ipm_fail(why, "item %d is empty (%s)", i + 1,
                          i == items.n - 1 ? "a comma at the end?" : "two commas in a row?");
    for (int i = 0; rc == 0 && i < items.n; i++)
        rc = parse_layer(items.item[i], i + 1, i == items.n - 1, &layers[i], why);
    if (rc == 0) {
        memcpy(c->layers, layers, (size_t)items.n * sizeof layers[0]);
        c->n_layers = items.n;
    }
    free_items(&items);
    return rc;
}

static void fmt_layers(const ipm_config *c, strbuf *b)
{
    for (int i = 0; i < c->n_layers; i++) {
        const ipm_layer_spec *l = &c->layers[i];
        char item[64];
        ipm_layer_spec_format(l, item, sizeof item);
        sb_list_item(b, i, item);
    }
}

static int set_init(ipm_config *c, const char *v, char *why)
{
    static const char prefix[] = "truncated_normal";
    if (strcmp(v, "xavier") == 0 || strcmp(v, "glorot") == 0) {
        c->init = IPM_INIT_XAVIER;
        return 0;
    }
    if (strcmp(v, "he") == 0) {
        c->init = IPM_INIT_HE;
        return 0;
    }
    if (strncmp(v, prefix, sizeof prefix - 1) != 0)
        return ipm_fail(why,
                        "unknown value '%s' (expected xavier, glorot, he, "
                        "truncated_normal:STDDEV, truncated_normal:fan_in or "
                        "truncated_normal:fan_out)",
                        v);
    const char *rest = v + sizeof prefix - 1;
    if (*rest != ':')
        return ipm_fail(why,
                        "'%s' needs a standard deviation, e.g. truncated_normal:0.1 "
                        "or truncated_normal:fan_in",
                        v);
    if (strcmp(rest + 1, "fan_in") == 0) {
        c->init = IPM_INIT_TRUNCATED_FAN_IN;
        return 0;
    }
    if (strcmp(rest + 1, "fan_out") == 0) {
        c->init = IPM_INIT_TRUNCATED_FAN_OUT;
        return 0;
    }
    double stddev = 0;
    if (parse_double(rest + 1, &stddev, why))
        return -1;
    if (!(stddev > 0))
        return ipm_fail(why, "standard deviation '%s' must be > 0", rest + 1);
    c->init = IPM_INIT_TRUNCATED_NORMAL;
    c->init_stddev = stddev;
    return 0;
}

static void fmt_init(const ipm_config *c, strbuf *b)
{
    char num[40];
    switch (c->init) {
    case IPM_INIT_HE:
        sb_printf(b, "he");
        break;
    case IPM_INIT_TRUNCATED_NORMAL:
        format_double(c->init_stddev, num);
        sb_printf(b, "truncated_normal:%s", num);
        break;
    case IPM_INIT_TRUNCATED_FAN_IN:
        sb_printf(b, "truncated_normal:fan_in");
        break;
    case IPM_INIT_TRUNCATED_FAN_OUT:
        sb_printf(b, "truncated_normal:fan_out");
        break;
    default:
        sb_printf(b, "xavier");
        break;
    }
}

static int compare_int(const void *a, const void *b)
{
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

int ipm_sort_unique(int *v, int n)
{
    if (n == 0)
        return 0;
    qsort(v, (size_t)n, sizeof *v, compare_int);
    int m = 1;
    for (int i = 1; i < n; i++)
        if (v[i] != v[m - 1])
            v[m++] = v[i];
    return m;
}

static int parse_epoch_list(const char *v, ipm_epoch_spec *out, char *why)
{
    item_list items;
    if (split_items(v, ',', &items, why))
        return -1;
    int *list = malloc((size_t)items.n * sizeof *list);
    int rc = list ? 0 : ipm_fail(why, "out of memory");
    for (int i = 0; rc == 0 && i < items.n; i++)
        if (parse_int(items.item[i], 0, INT_MAX, &list[i], why)) {
            char reason[IPM_ERRLEN];
            snprintf(reason, sizeof reason, "%s", why);
            rc = ipm_fail(why, "item %d: %s", i + 1, reason);
        }
    if (rc == 0)
        *out = (ipm_epoch_spec){IPM_EPOCHS_LIST, 0, list, ipm_sort_unique(list, items.n)};
    else
        free(list);
    free_items(&items);
    return rc;
}

/* all | every:K | log:N | a list of epochs (| none when allow_none). */
static int parse_epoch_spec(const char *v, int allow_none, ipm_epoch_spec *out, char *why)
{
    const char *forms = allow_none ? "none, all, every:K, log:N or a list of epochs"
                                   : "all, every:K, log:N or a list of epochs";
    if (allow_none && strcmp(v, "none") == 0) {
        *out = (ipm_epoch_spec){IPM_EPOCHS_LIST, 0, NULL, 0};
        return 0;
    }
    if (strcmp(v, "all") == 0) {
        *out = (ipm_epoch_spec){IPM_EPOCHS_ALL, 0, NULL, 0};
        return 0;
    }
    int is_every = strncmp(v, "every:", 6) == 0, is_log = strncmp(v, "log:", 4) == 0;
    if (is_every || is_log) {
        const char *num = v + (is_every ? 6 : 4);
        int param;
        if (parse_int(num, 1, INT_MAX, &param, why))
            return -1;
        *out = (ipm_epoch_spec){is_every ? IPM_EPOCHS_EVERY : IPM_EPOCHS_LOG, param, NULL, 0};
        return 0;
    }
    if (!isdigit((unsigned char)*v) && *v != '-' && *v != '+')
        return ipm_fail(why, "unknown value '%s' (expected %s)", v, forms);
    return parse_epoch_list(v, out, why);
}

static void replace_epoch_spec(ipm_epoch_spec *dst, ipm_epoch_spec src)
{
    free(dst->list);
    *dst = src;
}

static int set_info_epochs(ipm_config *c, const char *v, char *why)
{
    ipm_epoch_spec spec;
    if (parse_epoch_spec(v, 0, &spec, why))
        return -1;
    replace_epoch_spec(&c->info_epochs, spec);
    return 0;
}

static int set_activations(ipm_config *c, const char *v, char *why)
{
    ipm_epoch_spec spec;
    if (parse_epoch_spec(v, 1, &spec, why))
        return -1;
    replace_epoch_spec(&c->activation_epochs, spec);
    return 0;
}

static void fmt_epoch_spec(const ipm_epoch_spec *s, strbuf *b)
{
    switch (s->rule) {
    case IPM_EPOCHS_ALL:
        sb_printf(b, "all");
        return;
    case IPM_EPOCHS_EVERY:
        sb_printf(b, "every:%d", s->param);
        return;
    case IPM_EPOCHS_LOG:
        sb_printf(b, "log:%d", s->param);
        return;
    case IPM_EPOCHS_LIST:
        break;
    }
    if (s->n_list == 0)
        sb_printf(b, "none");
    for (int i = 0; i < s->n_list; i++) {
        char item[16];
        snprintf(item, sizeof item, "%d", s->list[i]);
        sb_list_item(b, i, item);
    }
}

static void fmt_info_epochs(const ipm_config *c, strbuf *b)
{
    fmt_epoch_spec(&c->info_epochs, b);
}

static void fmt_activations(const ipm_config *c, strbuf *b)
{
    fmt_epoch_spec(&c->activation_epochs, b);
}

static int set_range(ipm_config *c, const char *v, char *why)
{
    if (strcmp(v, "adaptive") == 0 || strcmp(v, "whole") == 0) {
        c->range_adaptive = v[0] == 'a';
        c->range_whole = v[0] == 'w';
        return 0;
    }
    item_list items;
    if (split_items(v, ',', &items, why))
        return -1;
    double lo = 0, hi = 0;
    int rc = 0;
    if (items.n != 2)
        rc = ipm_fail(why, "expected 'lo, hi', got '%s'", v);
    else if (parse_double(items.item[0], &lo, why) || parse_double(items.item[1], &hi, why))
        rc = -1;
    else if (!(lo < hi))
        rc = ipm_fail(why, "lo must be below hi (got '%s')", v);
    if (rc == 0) {
        c->range_lo = lo;
        c->range_hi = hi;
        c->range_adaptive = 0;
        c->range_whole = 0;
    }
    free_items(&items);
    return rc;
}

static void fmt_range(const ipm_config *c, strbuf *b)
{
    if (c->range_adaptive || c->range_whole) {
        sb_printf(b, c->range_adaptive ? "adaptive" : "whole");
        return;
    }
    char lo[40], hi[40];
    format_double(c->range_lo, lo);
    format_double(c->range_hi, hi);
    sb_printf(b, "%s, %s", lo, hi);
}

static int set_estimators(ipm_config *c, const char *v, char *why)
{
    item_list items;
    if (split_items(v, ',', &items, why))
        return -1;
    unsigned mask = 0;
    int rc = 0;
    for (int i = 0; rc == 0 && i < items.n; i++) {
        int which = 0;
        if (strcmp(items.item[i], "all") == 0)
            mask = IPM_EST_SIMPLE | IPM_EST_POOLED | IPM_EST_SAMPLED;
        else if (parse_word(items.item[i], estimator_names, COUNT(estimator_names), &which, why))
            rc = ipm_fail(why,
                          "unknown estimator '%s' (expected simple, pooled, sampled, kde, "
                          "miller_madow or all)",
                          items.item[i]);
        else
            mask |= 1u << which;
    }
    if (rc == 0)
        c->estimators = mask;
    free_items(&items);
    return rc;
}

static void fmt_estimators(const ipm_config *c, strbuf *b)
{
    int n = 0;
    for (int i = 0; i < COUNT(estimator_names); i++)
        if (c->estimators & (1u << i))
            sb_list_item(b, n++, estimator_names[i]);
}

/* all | a list of 1-based layer numbers. */
static int set_info_layers(ipm_config *c, const char *v, char *why)
{
    if (strcmp(v, "all") == 0) {
        c->n_info_layers = 0;
        return 0;
    }
    item_list items;
    if (split_items(v, ',', &items, why))
        return -1;
    int list[IPM_MAX_LAYERS];
    int rc = items.n > IPM_MAX_LAYERS ? ipm_fail(why, "more than %d layers", IPM_MAX_LAYERS) : 0;
    for (int i = 0; rc == 0 && i < items.n; i++)
        if (parse_int(items.item[i], 1, IPM_MAX_LAYERS, &list[i], why))
            rc = ipm_fail(why, "item %d '%s': expected all or layer numbers 1..%d", i + 1,
                          items.item[i], IPM_MAX_LAYERS);
    if (rc == 0) {
        c->n_info_layers = ipm_sort_unique(list, items.n);
        memcpy(c->info_layers, list, (size_t)c->n_info_layers * sizeof list[0]);
    }
    free_items(&items);
    return rc;
}

static void fmt_info_layers(const ipm_config *c, strbuf *b)
{
    if (c->n_info_layers == 0)
        sb_printf(b, "all");
    for (int i = 0; i < c->n_info_layers; i++) {
        char item[16];
        snprintf(item, sizeof item, "%d", c->info_layers[i]);
        sb_list_item(b, i, item);
    }
}

static int set_stop_estimator(ipm_config *c, const char *v, char *why)
{
    int which = 0;
    if (parse_word(v, estimator_names, N_BINNED_ESTIMATORS, &which, why))
        return -1;
    c->stop_estimator = 1 << which;
    return 0;
}

static void fmt_stop_estimator(const ipm_config *c, strbuf *b)
{
    for (int i = 0; i < N_BINNED_ESTIMATORS; i++)
        if (c->stop_estimator == 1 << i)
            sb_printf(b, "%s", estimator_names[i]);
}

/* ------------------------------------------------------------------------ */
/* The key table. */

enum key_kind { K_INT, K_U64, K_DOUBLE, K_STRING, K_ENUM, K_CUSTOM };

typedef struct key_def {
    const char *section, *name;
    enum key_kind kind;
    size_t offset;
    long lo, hi;              /* K_INT bounds */
    double dlo, dhi;          /* K_DOUBLE bounds */
    int open_lo, open_hi;     /* K_DOUBLE: bound excluded */
    const char *const *names; /* K_ENUM spellings, index = value */
    int n_names;
    int allow_empty;                                     /* K_STRING: "" is a valid value */
    int (*parse)(ipm_config *, const char *, char *why); /* K_CUSTOM */
    void (*format)(const ipm_config *, strbuf *);        /* K_CUSTOM */
    const char *comment;                                 /* printed above the key */
} key_def;

#define AT(field) offsetof(ipm_config, field)
#define INT_KEY(sec, key, field, low, high)                                                        \
    {                                                                                              \
        .section = sec, .name = key, .kind = K_INT, .offset = AT(field), .lo = low, .hi = high     \
    }
#define DOUBLE_KEY(sec, key, field, low, olow, high, ohigh)                                        \
    {                                                                                              \
        .section = sec, .name = key, .kind = K_DOUBLE, .offset = AT(field), .dlo = low,            \
        .open_lo = olow, .dhi = high, .open_hi = ohigh                                             \
    }
#define ENUM_KEY(sec, key, field, spellings)                                                       \
    {                                                                                              \
        .section = sec, .name = key, .kind = K_ENUM, .offset = AT(field), .names = spellings,      \
        .n_names = COUNT(spellings)                                                                \
    }
#define CUSTOM_KEY(sec, key, set, fmt)                                                             \
    {                                                                                              \
        .section = sec, .name = key, .kind = K_CUSTOM, .parse = set, .format = fmt                 \
    }

static const key_def keys[] = {
    {.section = "run", .name = "seed", .kind = K_U64, .offset = AT(seed)},
    {.section = "run",
     .name = "replicas",
     .kind = K_INT,
     .offset = AT(replicas),
     .lo = 0,
     .hi = INT_MAX,
     .comment = "replicas = 0: one replica per MPI rank"},
    {.section = "run", .name = "output", .kind = K_STRING, .offset = AT(output)},
    INT_KEY("run", "threads", threads, 1, 1024),
    {.section = "run",
     .name = "checkpoint",
     .kind = K_STRING,
     .offset = AT(checkpoint),
     .allow_empty = 1,
     .comment = "checkpoint: the restart file (empty: the output path with .nc replaced by .ckpt)"},
    {.section = "run",
     .name = "checkpoint_every",
     .kind = K_INT,
     .offset = AT(checkpoint_every),
     .lo = 0,
     .hi = INT_MAX,
     .comment = "checkpoint_every = 0: checkpoint only on a signal and at the end"},
    {.section = "run",
     .name = "reduce",
     .kind = K_ENUM,
     .offset = AT(reduce),
     .names = reduce_names,
     .n_names = COUNT(reduce_names),
     .comment = "reduce: how counts meet on several ranks (same results either way)"},
    ENUM_KEY("data", "source", source, source_names),
    {.section = "data",
     .name = "path",
     .kind = K_STRING,
     .offset = AT(data_path),
     .allow_empty = 1,
     .comment = "path: the NetCDF file of source = netcdf (empty: none)"},
    INT_KEY("data", "samples", samples, 1, INT_MAX),
    DOUBLE_KEY("data", "train_fraction", train_fraction, 0, 1, 1, 0),
    {.section = "data",
     .name = "images",
     .kind = K_STRING,
     .offset = AT(images),
     .allow_empty = 1,
     .comment = "images, labels: the IDX files of source = idx (raw or .gz)"},
    {.section = "data", .name = "labels", .kind = K_STRING, .offset = AT(labels), .allow_empty = 1},
    {.section = "data",
     .name = "test_images",
     .kind = K_STRING,
     .offset = AT(test_images),
     .allow_empty = 1,
     .comment = "test_images, test_labels: optional held-out IDX files"},
    {.section = "data",
     .name = "test_labels",
     .kind = K_STRING,
     .offset = AT(test_labels),
     .allow_empty = 1},
    {.section = "data",
     .name = "subset",
     .kind = K_INT,
     .offset = AT(subset),
     .lo = 0,
     .hi = INT_MAX,
     .comment = "subset = 0: every training image"},
    INT_KEY("data", "pool", pool, 1, 64),
    INT_KEY("data", "quantize", quantize, 1, INT_MAX),
    ENUM_KEY("data", "scale", scale, bool_names),
    CUSTOM_KEY("network", "layers", set_layers, fmt_layers),
    CUSTOM_KEY("network", "init", set_init, fmt_init),
    INT_KEY("training", "epochs", epochs, 0, INT_MAX - 1),
    INT_KEY("training", "batch_size", batch_size, 1, INT_MAX),
    ENUM_KEY("training", "optimizer", optimizer, optimizer_names),
    DOUBLE_KEY("training", "learning_rate", learning_rate, 0, 1, INFINITY, 1),
    DOUBLE_KEY("training", "momentum", momentum, 0, 0, 1, 1),
    ENUM_KEY("training", "loss", loss, loss_names),
    INT_KEY("training", "batches_per_epoch", batches_per_epoch, 0, INT_MAX),
    CUSTOM_KEY("information", "epochs", set_info_epochs, fmt_info_epochs),
    INT_KEY("information", "bins", bins, 2, 65535),
    INT_KEY("information", "max_table_mb", max_table_mb, 1, INT_MAX),
    {.section = "information",
     .name = "range",
     .kind = K_CUSTOM,
     .parse = set_range,
     .format = fmt_range,
     .comment = "range = adaptive: each layer's min..max at each epoch, over all replicas"},
    {.section = "information",
     .name = "range_from",
     .kind = K_STRING,
     .offset = AT(range_from),
     .allow_empty = 1,
     .comment = "range_from: with range = whole, an earlier run's output (range = adaptive)"},
    {.section = "information",
     .name = "binning",
     .kind = K_ENUM,
     .offset = AT(binning),
     .names = binning_names,
     .n_names = COUNT(binning_names),
     .comment = "binning = width: bins [k w, (k+1) w) anchored at 0, no range"},
    DOUBLE_KEY("information", "width", bin_width, 0, 1, INFINITY, 1),
    {.section = "information",
     .name = "quantiles",
     .kind = K_ENUM,
     .offset = AT(quantiles),
     .names = quantiles_names,
     .n_names = COUNT(quantiles_names),
     .comment = "quantiles: binning = quantile's edges per layer or per unit, each replica's own"},
    {.section = "information",
     .name = "scope",
     .kind = K_ENUM,
     .offset = AT(range_scope),
     .names = range_scope_names,
     .n_names = COUNT(range_scope_names),
     .comment = "scope = replica: each replica's adaptive range from its own activations"},
    {.section = "information",
     .name = "layers",
     .kind = K_CUSTOM,
     .parse = set_info_layers,
     .format = fmt_info_layers,
     .comment = "layers = all: every layer with an activation (all but maxpool)"},
    {.section = "information",
     .name = "estimators",
     .kind = K_CUSTOM,
     .parse = set_estimators,
     .format = fmt_estimators,
     .comment =
         "estimators: all = simple, pooled, sampled; kde and miller_madow are added by name"},
    /* at least the smallest normal double: runs flush subnormals to zero */
    DOUBLE_KEY("information", "kde_variance", kde_variance, DBL_MIN, 0, INFINITY, 1),
    ENUM_KEY("information", "on", on, plane_names),
    CUSTOM_KEY("output", "activations", set_activations, fmt_activations),
    {.section = "output",
     .name = "gradients",
     .kind = K_ENUM,
     .offset = AT(gradient_stats),
     .names = bool_names,
     .n_names = COUNT(bool_names),
     .comment = "gradients: per layer, the norms of the mean and std of the minibatch gradients"},
    ENUM_KEY("stopping", "criterion", stop_criterion, criterion_names),
    DOUBLE_KEY("stopping", "beta", stop_beta, 0, 0, INFINITY, 1),
    {.section = "stopping",
     .name = "layer",
     .kind = K_INT,
     .offset = AT(stop_layer),
     .lo = 0,
     .hi = IPM_MAX_LAYERS,
     .comment = "layer = 0: the last layer"},
    CUSTOM_KEY("stopping", "estimator", set_stop_estimator, fmt_stop_estimator),
    INT_KEY("stopping", "check_every", stop_check_every, 1, INT_MAX),
    DOUBLE_KEY("stopping", "tolerance", stop_tolerance, 0, 0, INFINITY, 1),
    DOUBLE_KEY("stopping", "min_rise", stop_min_rise, 0, 0, INFINITY, 1),
    INT_KEY("stopping", "patience", stop_patience, 1, INT_MAX),
    ENUM_KEY("stopping", "scope", stop_scope, scope_names),
};

enum { N_KEYS = COUNT(keys) };
_Static_assert(N_KEYS <= IPM_CONFIG_MAX_KEYS, "raise IPM_CONFIG_MAX_KEYS");

static const char *const sections[] = {"run",         "data",   "network", "training",
                                       "information", "output", "stopping"};

static int int_get(const ipm_config *c, const key_def *k)
{
    int v;
    memcpy(&v, (const char *)c + k->offset, sizeof v);
    return v;
}

static int double_in_range(const key_def *k, const char *s, double v, char *why)
{
    int low_ok = k->open_lo ? v > k->dlo : v >= k->dlo;
    int high_ok = k->open_hi ? v < k->dhi : v <= k->dhi;
    if (low_ok && high_ok)
        return 0;
    if (isinf(k->dhi))
        return ipm_fail(why, "'%s' out of range (must be %s %g)", s,
                        k->open_lo ? ">" : ">=", k->dlo);
    return ipm_fail(why, "'%s' out of range (must be in %c%g, %g%c)", s, k->open_lo ? '(' : '[',
                    k->dlo, k->dhi, k->open_hi ? ')' : ']');
}

/* inih ends a value at a ';' that follows whitespace; ipm_config_format
 * writes "key = value", so a leading ';' would end it too. */
static int starts_inline_comment(const char *v)
{
    for (const char *p = v; *p; p++)
        if (*p == ';' && (p == v || isspace((unsigned char)p[-1])))
            return 1;
    return 0;
}

/* Parses v (trimmed) into c; on error writes the reason into why. */
static int apply_key(ipm_config *c, const key_def *k, const char *v, char *why)
{
    char *field = (char *)c + k->offset;
    if (!*v && !k->allow_empty)
        return ipm_fail(why, "empty value");
    switch (k->kind) {
    case K_INT: {
        long x;
        if (parse_long(v, k->lo, k->hi, &x, why))
            return -1;
        int i = (int)x;
        memcpy(field, &i, sizeof i);
        return 0;
    }
    case K_U64:
        return parse_u64(v, (uint64_t *)(void *)field, why);
    case K_DOUBLE: {
        double x = 0;
        if (parse_double(v, &x, why) || double_in_range(k, v, x, why))
            return -1;
        memcpy(field, &x, sizeof x);
        return 0;
    }
    case K_STRING:
        if (strlen(v) >= IPM_PATH_MAX)
            return ipm_fail(why, "longer than %d characters", IPM_PATH_MAX - 1);
        if (starts_inline_comment(v))
            return ipm_fail(why,
                            "'%s': a ';' at the start or after a space begins a comment in "
                            "INI files, so this value could not be written back",
                            v);
        memcpy(field, v, strlen(v) + 1);
        return 0;
    case K_ENUM: {
        int x;
        if (parse_word(v, k->names, k->n_names, &x, why))
            return -1;
        memcpy(field, &x, sizeof x);
        return 0;
    }
    case K_CUSTOM:
        return k->parse(c, v, why);
    }
    return ipm_fail(why, "internal error: key kind");
}

static void format_key(const ipm_config *c, const key_def *k, strbuf *b)
{
    const char *field = (const char *)c + k->offset;
    char num[40];
    switch (k->kind) {
    case K_INT:
        sb_printf(b, "%d", int_get(c, k));
        break;
    case K_U64: {
        uint64_t v = 0;
        memcpy(&v, field, sizeof v);
        sb_printf(b, "%llu", (unsigned long long)v);
        break;
    }
    case K_DOUBLE: {
        double v = 0;
        memcpy(&v, field, sizeof v);
        format_double(v, num);
        sb_printf(b, "%s", num);
        break;
    }
    case K_STRING:
        sb_printf(b, "%s", field);
        break;
    case K_ENUM: {
        int v = int_get(c, k);
        sb_printf(b, "%s", v >= 0 && v < k->n_names && k->names[v] ? k->names[v] : "?");
        break;
    }
    case K_CUSTOM:
        k->format(c, b);
        break;
    }
}

/* Index of [section] name, or -1 with why = "[section] name: ...". */
static int find_key(const char *section, const char *name, char *why)
{
    int known_section = 0;
    for (int i = 0; i < N_KEYS; i++) {
        if (strcmp(keys[i].section, section) != 0)
            continue;
        known_section = 1;
        if (strcmp(keys[i].name, name) == 0)
            return i;
    }
    if (!*section)
        return ipm_fail(why, "%s: key outside any [section]", name);
    char list[512] = "";
    if (known_section) {
        for (int i = 0; i < N_KEYS; i++)
            if (strcmp(keys[i].section, section) == 0)
                append_name(list, sizeof list, keys[i].name);
        return ipm_fail(why, "[%s] %s: unknown key (keys of [%s]: %s)", section, name, section,
                        list);
    }
    for (int i = 0; i < COUNT(sections); i++)
        append_name(list, sizeof list, sections[i]);
    return ipm_fail(why, "[%s] %s: unknown section [%s] (sections: %s)", section, name, section,
                    list);
}

/* ------------------------------------------------------------------------ */
/* Defaults, free, format. */

void ipm_config_defaults(ipm_config *cfg)
{
    static const int units[] = {10, 7, 5, 4, 3, 2};
    memset(cfg, 0, sizeof *cfg);
    cfg->seed = 0;
    cfg->replicas = 0;
    snprintf(cfg->output, sizeof cfg->output, "ipmpi.nc");
    cfg->threads = 1;
    cfg->source = IPM_DATA_TISHBY12;
    cfg->samples = 1000;
    cfg->train_fraction = 1.0;
    cfg->n_layers = COUNT(units);
    for (int i = 0; i < cfg->n_layers; i++)
        cfg->layers[i] = (ipm_layer_spec){.units = units[i], .activation = IPM_ACT_TANH};
    cfg->layers[cfg->n_layers - 1].activation = IPM_ACT_SOFTMAX;
    cfg->init = IPM_INIT_XAVIER;
    cfg->init_stddev = 0.1; /* used only by truncated_normal */
    cfg->epochs = 1000;
    cfg->batch_size = 32;
    cfg->optimizer = IPM_OPT_ADAM;
    cfg->learning_rate = 0.001;
    cfg->momentum = 0.9;
    cfg->loss = IPM_LOSS_CROSS_ENTROPY;
    cfg->batches_per_epoch = 0;
    cfg->info_epochs = (ipm_epoch_spec){IPM_EPOCHS_LOG, 100, NULL, 0};
    cfg->bins = 30;
    cfg->max_table_mb = 4096;
    cfg->reduce = IPM_REDUCE_PARTITIONED;
    cfg->range_lo = -1.0;
    cfg->range_hi = 1.0;
    cfg->bin_width = 0.07;
    cfg->estimators = IPM_EST_SIMPLE | IPM_EST_POOLED | IPM_EST_SAMPLED;
    cfg->kde_variance = 1e-3;
    cfg->on = IPM_ON_TRAIN;
    cfg->activation_epochs = (ipm_epoch_spec){IPM_EPOCHS_LIST, 0, NULL, 0};
    cfg->gradient_stats = 1;
    cfg->pool = 1;
    cfg->quantize = 1;
    cfg->stop_criterion = IPM_STOP_NONE;
    cfg->stop_beta = 1.0;
    cfg->stop_estimator = IPM_EST_POOLED;
    cfg->stop_check_every = 10;
    cfg->stop_tolerance = 0.0;
    cfg->stop_min_rise = 1e-3;
    cfg->stop_patience = 10;
    cfg->stop_scope = IPM_SCOPE_ENSEMBLE;
}

int ipm_config_measures_layer(const ipm_config *cfg, int l)
{
    if (cfg->n_info_layers == 0)
        return cfg->layers[l].kind != IPM_LAYER_MAXPOOL;
    for (int i = 0; i < cfg->n_info_layers; i++)
        if (cfg->info_layers[i] == l + 1)
            return 1;
    return 0;
}

int ipm_config_stop_layer(const ipm_config *cfg)
{
    return cfg->stop_layer ? cfg->stop_layer - 1 : cfg->n_layers - 1;
}

ipm_stop_settings ipm_config_stop_settings(const ipm_config *cfg)
{
    return (ipm_stop_settings){
        .criterion = cfg->stop_criterion,
        .scope = cfg->stop_scope,
        .beta = cfg->stop_beta,
        .tolerance = cfg->stop_tolerance,
        .min_rise = cfg->stop_min_rise,
        .patience = cfg->stop_patience,
        .check_every = cfg->stop_check_every,
        .layer = ipm_config_stop_layer(cfg),
        .n_layers = cfg->n_layers,
        .estimator = (unsigned)cfg->stop_estimator,
    };
}

void ipm_config_free(ipm_config *cfg)
{
    ipm_epoch_spec *specs[] = {&cfg->info_epochs, &cfg->activation_epochs};
    for (int i = 0; i < COUNT(specs); i++) {
        free(specs[i]->list);
        specs[i]->list = NULL;
        specs[i]->n_list = 0;
    }
}

char *ipm_config_format(const ipm_config *cfg)
{
    strbuf b = {0};
    sb_printf(&b, "# ipmpi configuration: every key, defaults included\n");
    const char *section = "";
    for (int i = 0; i < N_KEYS; i++) {
        const key_def *k = &keys[i];
        if (strcmp(k->section, section) != 0) {
            sb_printf(&b, "%s[%s]\n", i ? "\n" : "", k->section);
            section = k->section;
        }
        if (k->comment)
            sb_printf(&b, "# %s\n", k->comment);
        sb_printf(&b, "%s = ", k->name);
        format_key(cfg, k, &b);
        sb_printf(&b, "\n");
    }
    if (b.oom) {
        free(b.s);
        return NULL;
    }
    return b.s;
}

/* ------------------------------------------------------------------------ */
/* Loading. */

typedef struct loader {
    ipm_config *cfg;
    const char *file;
    const char *const *overrides;
    FILE *f;
    char *raw; /* the physical line just read */
    size_t raw_cap;
    int line; /* its number */
    int read_errno;
    int after_key;    /* inih's prev_name is set: indented lines continue it */
    int continuation; /* inih will pass this line as a continuation */
    int pending;      /* key whose value is still being read, or -1 */
    int pending_line;
    strbuf pending_value;
    int err_line; /* first error we found (0: none) */
    char err_msg[IPM_ERRLEN];
    int oom;
} loader;

static void record_error(loader *L, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Keeps the error of the earliest line, whatever order they are found in. */
static void record_error(loader *L, int line, const char *fmt, ...)
{
    if (L->err_line && L->err_line <= line)
        return;
    L->err_line = line;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(L->err_msg, sizeof L->err_msg, fmt, ap);
    va_end(ap);
}

/* What inih passes over in a section header: the text after its ']' (it
 * takes "[run] seed = 7" as [run] alone), and a section without keys (no
 * handler call). Both are refused here, where the line is known. */
static void check_section_header(loader *L, const char *s)
{
    const char *close = strchr(s, ']');
    const char *rest = close + 1;
    while (isspace((unsigned char)*rest))
        rest++;
    if (*rest && *rest != ';' && *rest != '#') {
        record_error(L, L->line,
                     "text after the section header's ']': '%.*s' (a key goes on a "
                     "line of its own)",
                     (int)strcspn(rest, "\r\n"), rest);
        return;
    }
    /* inih keeps the name as written between the brackets */
    char section[64], list[512] = "";
    snprintf(section, sizeof section, "%.*s", (int)(close - s - 1), s + 1);
    for (int i = 0; i < COUNT(sections); i++) {
        if (strcmp(sections[i], section) == 0)
            return;
        append_name(list, sizeof list, sections[i]);
    }
    record_error(L, L->line, "unknown section [%s] (sections: %s)", section, list);
}

/* Mirrors inih's reading of one line (ini.c, ini_parse_stream) far enough to
 * know whether inih will treat it as a continuation of the previous key. */
static void track_inih_state(loader *L, const char *line)
{
    const char *s = line;
    while (isspace((unsigned char)*s))
        s++;
    int blank_or_comment = *s == '\0' || *s == ';' || *s == '#';
    L->continuation = !blank_or_comment && L->after_key && s > line;
    if (blank_or_comment || L->continuation)
        return;
    if (*s == '[') {
        if (strchr(s, ']')) {
            L->after_key = 0;
            check_section_header(L, s);
        }
    } else if (strpbrk(s, "=:")) {
        L->after_key = 1;
    }
}

/* A carriage return anywhere but at the line's end: getline splits lines at
 * \n only, so a file with old Mac line ends (\r alone) would reach inih as
 * one line, and all but its first would be lost. */
static int stray_carriage_return(const char *line, size_t len)
{
    const char *cr = memchr(line, '\r', len);
    return cr && cr + 1 < line + len && cr[1] != '\n';
}

/* fgets-style reader for ini_parse_stream: exactly one physical line per call. */
static char *read_line(char *str, int num, void *stream)
{
    loader *L = stream;
    errno = 0;
    ssize_t len = getline(&L->raw, &L->raw_cap, L->f);
    if (len < 0) {
        if (ferror(L->f))
            L->read_errno = errno ? errno : EIO;
        return NULL;
    }
    L->line++;
    if (len >= num) {
        /* Handing inih a blank line instead keeps its line count right. */
        int chars = (int)len - (L->raw[len - 1] == '\n');
        record_error(L, L->line, "line too long (%d characters, at most %d)", chars, num - 2);
        L->continuation = 0;
        snprintf(str, (size_t)num, "\n");
        return str;
    }
    if (memchr(L->raw, '\0', (size_t)len)) {
        /* inih would read the line only up to the NUL: "25\0 6" as 25. */
        record_error(L, L->line, "a NUL byte in the line (is this a text file?)");
        L->continuation = 0;
        snprintf(str, (size_t)num, "\n");
        return str;
    }
    if (stray_carriage_return(L->raw, (size_t)len)) {
        record_error(L, L->line,
                     "a carriage return inside the line (a file with old Mac line "
                     "ends? save it with \\n line ends)");
        L->continuation = 0;
        snprintf(str, (size_t)num, "\n");
        return str;
    }
    memcpy(str, L->raw, (size_t)len + 1);
    track_inih_state(L, str);
    return str;
}

static void flush_pending(loader *L)
{
    if (L->pending < 0)
        return;
    const key_def *k = &keys[L->pending];
    char why[IPM_ERRLEN];
    if (L->pending_value.oom)
        L->oom = 1;
    else if (apply_key(L->cfg, k, L->pending_value.s ? L->pending_value.s : "", why))
        record_error(L, L->pending_line, "[%s] %s: %s", k->section, k->name, why);
    L->cfg->key_origin[L->pending] = L->pending_line;
    L->pending = -1;
    L->pending_value.len = 0;
    if (L->pending_value.s)
        L->pending_value.s[0] = '\0';
}

static void continue_pending(loader *L, const char *value)
{
    if (L->pending < 0)
        return; /* continuation of an unknown key, already reported */
    const key_def *k = &keys[L->pending];
    if (k->kind == K_STRING) {
        /* A path has no list items to continue; joining would invent ", ". */
        record_error(L, L->line,
                     "[%s] %s: indented line '%s' would continue this value, which "
                     "is not a list (remove its indentation)",
                     k->section, k->name, value);
        return;
    }
    if (strchr(value, '=')) {
        record_error(L, L->line,
                     "[%s] %s: indented line '%s' continues this value "
                     "(remove its indentation)",
                     k->section, k->name, value);
        return;
    }
    /* inih strips " ;" comments from a key's first line only */
    const char *comment = strstr(value, " ;");
    int len = comment ? (int)(comment - value) : (int)strlen(value);
    while (len > 0 && isspace((unsigned char)value[len - 1]))
        len--;
    strbuf *b = &L->pending_value;
    int ends_with_comma = b->len > 0 && b->s[b->len - 1] == ',';
    /* "layers =" and the items on the lines below: nothing to join to yet */
    sb_printf(b, "%s%.*s", b->len == 0 ? "" : ends_with_comma ? " " : ", ", len, value);
}

/* inih handler. A key given twice in the file is an error naming both
 * lines, as Python's configparser has it: the later line would otherwise
 * silently win over the one a reader of the file sees first (--set is the
 * way to override). Always returns 1; errors are recorded with their line. */
static int on_key(void *user, const char *section, const char *name, const char *value)
{
    loader *L = user;
    if (L->continuation) {
        continue_pending(L, value);
        return 1;
    }
    flush_pending(L);
    char why[IPM_ERRLEN];
    int k = find_key(section, name, why);
    if (k < 0) {
        record_error(L, L->line, "%s", why);
        return 1;
    }
    if (L->cfg->key_origin[k] > 0) {
        record_error(L, L->line, "[%s] %s: given a second time (first at line %d); keep one",
                     section, name, L->cfg->key_origin[k]);
        return 1;
    }
    L->pending = k;
    L->pending_line = L->line;
    sb_printf(&L->pending_value, "%s", value);
    return 1;
}

/* Reads the INI text of f, called name in messages. */
static int load_stream(loader *L, FILE *f, const char *name, char *err)
{
    L->f = f;
    int rc = ini_parse_stream(read_line, L, on_key, L);
    flush_pending(L);
    L->f = NULL;
    if (L->read_errno)
        return ipm_fail(err, "%s: cannot read: %s", name, strerror(L->read_errno));
    if (L->oom || rc < 0)
        return ipm_fail(err, "%s: out of memory", name);
    if (rc > 0 && (L->err_line == 0 || rc < L->err_line))
        return ipm_fail(err, "%s:%d: syntax error (expected [section] or key = value)", name, rc);
    if (L->err_line)
        return ipm_fail(err, "%s:%d: %s", name, L->err_line, L->err_msg);
    return 0;
}

static int load_file(loader *L, const char *path, char *err)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return ipm_fail(err, "%s: cannot open: %s", path, strerror(errno));
    int rc = load_stream(L, f, path, err);
    fclose(f);
    return rc;
}

/* Copies s[0..n) trimmed into out (truncating to cap - 1 characters). */
static void copy_trimmed(const char *s, size_t n, char *out, size_t cap)
{
    while (n > 0 && isspace((unsigned char)*s))
        s++, n--;
    while (n > 0 && isspace((unsigned char)s[n - 1]))
        n--;
    snprintf(out, cap, "%.*s", (int)(n < cap ? n : cap - 1), s);
}

static int apply_override(loader *L, int index, char *err)
{
    const char *text = L->overrides[index];
    const char *eq = strchr(text, '='), *dot = strchr(text, '.');
    if (!eq || !dot || dot > eq)
        return ipm_fail(err, "--set %s: expected section.key=value", text);
    /* A config file's line cannot hold them, so the effective config could
     * not be written back. */
    for (const char *c = text; *c; c++)
        if ((unsigned char)*c < 0x20 && *c != '\t')
            return ipm_fail(err, "--set %s: a control character (a line break?) in the value",
                            text);
    char section[64], name[64], why[IPM_ERRLEN];
    copy_trimmed(text, (size_t)(dot - text), section, sizeof section);
    copy_trimmed(dot + 1, (size_t)(eq - dot - 1), name, sizeof name);
    int k = find_key(section, name, why);
    if (k < 0)
        return ipm_fail(err, "--set %s: %s", text, why);
    char *value = strdup(eq + 1);
    if (!value)
        return ipm_fail(err, "out of memory");
    int rc = apply_key(L->cfg, &keys[k], trim(value), why);
    free(value);
    if (rc)
        return ipm_fail(err, "--set %s: [%s] %s: %s", text, section, name, why);
    L->cfg->key_origin[k] = -(index + 1);
    return 0;
}

static int key_index(const char *section, const char *name)
{
    for (int i = 0; i < N_KEYS; i++)
        if (strcmp(keys[i].section, section) == 0 && strcmp(keys[i].name, name) == 0)
            return i;
    return -1;
}

/* "FILE:LINE", "--set section.key" or "FILE": where key k got its value. */
static void key_place(const ipm_config *c, int k, char *out, size_t cap)
{
    const char *file = *c->file ? c->file : "defaults";
    int o = k >= 0 ? c->key_origin[k] : 0;
    if (o > 0) /* a long path is cut, keeping room for the reason */
        snprintf(out, cap, "%.400s:%d", file, o);
    else if (o < 0)
        snprintf(out, cap, "--set %s.%s", keys[k].section, keys[k].name);
    else
        snprintf(out, cap, "%.400s", file);
}

/* As key_place, but an override is quoted whole ("--set x.y=z") while its text is at hand. */
static void origin_text(const loader *L, int k, char *out, size_t cap)
{
    int o = k >= 0 ? L->cfg->key_origin[k] : 0;
    if (o < 0)
        snprintf(out, cap, "--set %s", L->overrides[-o - 1]);
    else
        key_place(L->cfg, k, out, cap);
}

static int check_epoch_list(const loader *L, const char *section, const char *name,
                            const ipm_epoch_spec *s, char *err)
{
    if (s->rule != IPM_EPOCHS_LIST || s->n_list == 0)
        return 0;
    int last = s->list[s->n_list - 1]; /* sorted */
    if (last >= 0 && last <= L->cfg->epochs)
        return 0;
    char where[IPM_ERRLEN / 2];
    origin_text(L, key_index(section, name), where, sizeof where);
    return ipm_fail(err, "%s: [%s] %s: epoch %d is beyond [training] epochs = %d", where, section,
                    name, last, L->cfg->epochs);
}

/* "where: [section] name" + sep + the formatted reason. */
static void vkey_error(const char *where, const char *section, const char *name, const char *sep,
                       char *err, const char *fmt, va_list ap)
{
    char reason[IPM_ERRLEN / 2];
    vsnprintf(reason, sizeof reason, fmt, ap);
    ipm_fail(err, "%s: [%s] %s%s%s", where, section, name, sep, reason);
}

/* "where: [section] name: " + reason, where = the key's origin. */
static int key_error(const loader *L, const char *section, const char *name, char *err,
                     const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static int key_error(const loader *L, const char *section, const char *name, char *err,
                     const char *fmt, ...)
{
    char where[IPM_ERRLEN / 2];
    origin_text(L, key_index(section, name), where, sizeof where);
    va_list ap;
    va_start(ap, fmt);
    vkey_error(where, section, name, ": ", err, fmt, ap);
    va_end(ap);
    return -1;
}

int ipm_config_fail(const ipm_config *cfg, const char *section, const char *name, char *err,
                    const char *fmt, ...)
{
    char where[IPM_ERRLEN / 2];
    key_place(cfg, key_index(section, name), where, sizeof where);
    va_list ap;
    va_start(ap, fmt);
    vkey_error(where, section, name, "", err, fmt, ap);
    va_end(ap);
    return -1;
}

static int check_data(const loader *L, char *err)
{
    const ipm_config *c = L->cfg;
    if (c->source == IPM_DATA_NETCDF && !c->data_path[0]) {
        char where[IPM_ERRLEN / 2];
        origin_text(L, key_index("data", "source"), where, sizeof where);
        return ipm_fail(err, "%s: [data] path: required when source = netcdf", where);
    }
    int held_out = c->train_fraction < 1 || (c->source == IPM_DATA_IDX && c->test_images[0]);
    if ((c->on & IPM_ON_TEST || c->on == IPM_ON_WHOLE) && !held_out)
        return key_error(L, "information", "on", err,
                         "%s needs a test set: [data] "
                         "train_fraction < 1 (or test_images with source = idx)",
                         c->on == IPM_ON_ALL     ? "all"
                         : c->on == IPM_ON_WHOLE ? "whole"
                                                 : "test");
    if (c->source != IPM_DATA_IDX)
        return 0;
    if (!c->images[0] || !c->labels[0])
        return key_error(L, "data", "source", err, "source = idx needs [data] images and labels");
    if (!c->test_images[0] != !c->test_labels[0])
        return key_error(L, "data", c->test_images[0] ? "test_images" : "test_labels", err,
                         "test_images and test_labels go together");
    if (c->test_images[0] && c->train_fraction < 1)
        return key_error(L, "data", "train_fraction", err,
                         "with test_images the held-out set is given; keep train_fraction = 1");
    return 0;
}

/* scope chooses whose extremes make an adaptive range; a fixed range and
 * width bins (anchored at 0) are the same for every replica already. */
/* Activations are binned in float32 with subnormal numbers flushed to zero
 * (learn/kernels_dispatch.c), so an edge below FLT_MIN in magnitude would
 * act as 0 and the bins would differ from numpy's. Such tiny ranges and
 * widths are refused. */
static int check_normal_edges(const loader *L, char *err)
{
    const ipm_config *c = L->cfg;
    if (c->binning == IPM_BINNING_WIDTH && c->bin_width < FLT_MIN)
        return key_error(L, "information", "width", err,
                         "%g is below float32's smallest normal number (%g): its edges would be "
                         "flushed to zero",
                         c->bin_width, (double)FLT_MIN);
    if (c->binning != IPM_BINNING_RANGE || c->range_adaptive || c->range_whole)
        return 0;
    /* the edges as info/bins.c makes them (numpy.linspace) */
    double step = (c->range_hi - c->range_lo) / (double)(c->bins - 1);
    for (int i = 0; i < c->bins; i++) {
        float edge = (float)(i == c->bins - 1 ? c->range_hi : (double)i * step + c->range_lo);
        if (edge != 0 && fabsf(edge) < FLT_MIN)
            return key_error(L, "information", "range", err,
                             "with bins = %d, edge %d is %g, below float32's smallest normal "
                             "number (%g), which binning flushes to zero: widen the range",
                             c->bins, i + 1, (double)edge, (double)FLT_MIN);
    }
    return 0;
}

static int check_binning(const loader *L, char *err)
{
    const ipm_config *c = L->cfg;
    if (c->range_scope == IPM_RANGE_PER_REPLICA && c->binning == IPM_BINNING_WIDTH &&
        !c->range_whole)
        return key_error(L, "information", "scope", err,
                         "replica applies to range = adaptive; "
                         "binning = width gives every replica the same bins already");
    if (c->range_scope == IPM_RANGE_PER_REPLICA && !c->range_adaptive && !c->range_whole &&
        c->binning != IPM_BINNING_QUANTILE)
        return key_error(L, "information", "scope", err,
                         "replica needs range = adaptive or "
                         "whole (a fixed range is the same for all)");
    if ((c->range_whole || c->range_adaptive) && c->binning != IPM_BINNING_RANGE)
        return key_error(L, "information", "range", err, "%s: binning = %s takes no range",
                         c->range_whole ? "whole" : "adaptive", binning_names[c->binning]);
    if (c->range_whole && !c->range_from[0])
        return key_error(L, "information", "range", err,
                         "whole needs [information] "
                         "range_from, the output of an earlier run with range = adaptive");
    if (!c->range_whole && c->range_from[0])
        return key_error(L, "information", "range_from", err, "applies to range = whole");
    return check_normal_edges(L, err);
}

static int check_layers(const loader *L, char *err)
{
    const ipm_config *c = L->cfg;
    for (int i = 0; i < c->n_info_layers; i++)
        if (c->info_layers[i] > c->n_layers)
            return key_error(L, "information", "layers", err,
                             "layer %d does not exist ([network] layers has %d)", c->info_layers[i],
                             c->n_layers);
    if (c->layers[c->n_layers - 1].kind != IPM_LAYER_DENSE)
        return key_error(L, "network", "layers", err, "the last layer must be dense");
    return 0;
}

/* Miller-Madow corrects the binned estimates, so it needs one beside it. */
static int check_estimators(const loader *L, char *err)
{
    const ipm_config *c = L->cfg;
    if (!c->estimators)
        return key_error(L, "information", "estimators", err, "no estimator listed");
    if ((c->estimators & IPM_EST_MILLER_MADOW) && !(c->estimators & IPM_EST_BINNED))
        return key_error(L, "information", "estimators", err,
                         "miller_madow corrects the binned estimates: list simple, pooled or "
                         "sampled with it");
    return 0;
}

static int check_stopping(const loader *L, char *err)
{
    const ipm_config *c = L->cfg;
    if (c->stop_criterion == IPM_STOP_NONE)
        return 0;
    if (c->stop_layer > c->n_layers)
        return key_error(L, "stopping", "layer", err,
                         "layer %d does not exist ([network] layers "
                         "has %d)",
                         c->stop_layer, c->n_layers);
    if (!ipm_config_measures_layer(c, ipm_config_stop_layer(c)))
        return key_error(L, "stopping", "layer", err,
                         "layer %d is not measured ([information] "
                         "layers)",
                         ipm_config_stop_layer(c) + 1);
    if (!(c->estimators & (unsigned)c->stop_estimator))
        return key_error(L, "stopping", "estimator", err,
                         "the run does not compute it ([information] estimators)");
    if (c->stop_scope == IPM_SCOPE_REPLICA && c->stop_estimator != IPM_EST_SIMPLE)
        return key_error(L, "stopping", "scope", err,
                         "scope = replica stops each replica on "
                         "its own estimate: set [stopping] estimator = simple");
    if (!(c->on & IPM_ON_TRAIN))
        return key_error(L, "stopping", "criterion", err,
                         "the objective is measured on the training set: [information] on "
                         "must be train or all");
    return 0;
}

static int cross_checks(const loader *L, char *err)
{
    const ipm_config *c = L->cfg;
    if (check_data(L, err) || check_layers(L, err) || check_binning(L, err) ||
        check_estimators(L, err) || check_stopping(L, err))
        return -1;
    if (check_epoch_list(L, "information", "epochs", &c->info_epochs, err) ||
        check_epoch_list(L, "output", "activations", &c->activation_epochs, err))
        return -1;
    return 0;
}

int ipm_config_load(ipm_config *cfg, const char *path, const char *const *overrides,
                    int n_overrides, char *err)
{
    ipm_config_defaults(cfg);
    if (path && strlen(path) >= sizeof cfg->file)
        return ipm_fail(err, "config path longer than %d characters", IPM_PATH_MAX - 1);
    if (path)
        memcpy(cfg->file, path, strlen(path) + 1);
    loader L = {.cfg = cfg, .file = cfg->file, .overrides = overrides, .pending = -1};
    int rc = path ? load_file(&L, path, err) : 0;
    for (int i = 0; rc == 0 && i < n_overrides; i++)
        rc = apply_override(&L, i, err);
    if (rc == 0)
        rc = cross_checks(&L, err);
    free(L.raw);
    free(L.pending_value.s);
    return rc;
}

int ipm_config_load_text(ipm_config *cfg, const char *text, const char *name, char *err)
{
    ipm_config_defaults(cfg);
    snprintf(cfg->file, sizeof cfg->file, "%s", name);
    loader L = {.cfg = cfg, .file = cfg->file, .pending = -1};
    FILE *f = fmemopen((void *)text, strlen(text), "r");
    int rc = f ? load_stream(&L, f, name, err) : ipm_fail(err, "%s: out of memory", name);
    if (f)
        fclose(f);
    if (rc == 0)
        rc = cross_checks(&L, err);
    free(L.raw);
    free(L.pending_value.s);
    return rc;
}

/* key k's formatted value (malloc'd), NULL on OOM. */
static char *key_value(const ipm_config *cfg, int k)
{
    strbuf b = {0};
    format_key(cfg, &keys[k], &b);
    sb_printf(&b, "%s", "");
    if (b.oom) {
        free(b.s);
        return NULL;
    }
    return b.s;
}

static int is_listed(const key_def *k, const char *const *names)
{
    for (; names && *names; names++) {
        size_t n = strlen(k->section);
        if (strncmp(*names, k->section, n) == 0 && (*names)[n] == '.' &&
            (strcmp(*names + n + 1, k->name) == 0 || strcmp(*names + n + 1, "*") == 0))
            return 1;
    }
    return 0;
}

int ipm_config_first_difference(const ipm_config *a, const ipm_config *b,
                                const char *const *ignored, ipm_config_difference *d)
{
    memset(d, 0, sizeof *d);
    for (int k = 0; k < N_KEYS; k++) {
        if (is_listed(&keys[k], ignored))
            continue;
        char *va = key_value(a, k), *vb = key_value(b, k);
        int same = va && vb && strcmp(va, vb) == 0;
        if (!va || !vb) {
            free(va);
            free(vb);
            return -1;
        }
        if (!same) {
            *d = (ipm_config_difference){keys[k].section, keys[k].name, va, vb};
            return 1;
        }
        free(va);
        free(vb);
    }
    return 0;
}

void ipm_config_difference_free(ipm_config_difference *d)
{
    free(d->a);
    free(d->b);
    memset(d, 0, sizeof *d);
}

/* ------------------------------------------------------------------------ */
/* Epoch selections. */

/* With N - 1 >= 2 (L+1)(ln(L+1) + 1) points on [1, L+1], successive values
 * differ by less than one, so every epoch 0..L is hit: the answer is all of
 * them, found without N pow() calls (N may be 2^31 - 1). */
static int log_covers_all(int n_points, int last)
{
    double span = (double)last + 1.0;
    return (double)n_points - 1.0 >= 2.0 * span * (log(span) + 1.0);
}

/* log:N as the original code's
 *   np.unique(np.logspace(np.log2(1), np.log2(last+1), N, base=2, dtype=int)) - 1
 * i.e. trunc(2^(i * log2(last+1) / (N-1))) - 1 computed in double, except
 * that the endpoint is last itself: numpy's 2^log2(last+1) often rounds just
 * below last+1 (e.g. last = 1000 ends at 999). N = 1 gives {last}. */
static int expand_log(int n_points, int last, int *out)
{
    if (log_covers_all(n_points, last)) {
        for (int e = 0; e <= last; e++)
            out[e] = e;
        return last + 1;
    }
    int n = 0;
    double step = n_points > 1 ? log2((double)last + 1.0) / (n_points - 1) : 0;
    for (int i = 0; i < n_points - 1; i++) {
        double v = pow(2.0, i * step);
        long long epoch = (long long)v - 1;
        /* v never decreases, so a repeat can only follow its equal */
        if (epoch >= 0 && epoch <= last && (n == 0 || out[n - 1] != epoch))
            out[n++] = (int)epoch;
    }
    out[n++] = last;
    return ipm_sort_unique(out, n);
}

int ipm_epochs_expand(const ipm_epoch_spec *spec, int last, int **epochs, int *n, char *err)
{
    *epochs = NULL;
    *n = 0;
    if (last < 0 || last == INT_MAX)
        return ipm_fail(err, "epoch selection: last epoch %d out of range", last);
    if ((spec->rule == IPM_EPOCHS_EVERY || spec->rule == IPM_EPOCHS_LOG) && spec->param < 1)
        return ipm_fail(err, "epoch selection: %s:%d needs a positive number",
                        spec->rule == IPM_EPOCHS_EVERY ? "every" : "log", spec->param);
    size_t cap = 1;
    switch (spec->rule) {
    case IPM_EPOCHS_ALL:
        cap = (size_t)last + 1;
        break;
    case IPM_EPOCHS_EVERY:
        cap = (size_t)(last / spec->param) + 2;
        break;
    case IPM_EPOCHS_LOG: /* distinct epochs, plus the endpoint */
        cap = (size_t)(spec->param < last ? spec->param : last) + 2;
        break;
    case IPM_EPOCHS_LIST:
        cap = (size_t)spec->n_list + 1;
        break;
    }
    int *out = malloc(cap * sizeof *out);
    if (!out)
        return ipm_fail(err, "epoch selection: out of memory");
    int count = 0;
    switch (spec->rule) {
    case IPM_EPOCHS_ALL:
        for (int e = 0; e <= last; e++)
            out[count++] = e;
        break;
    case IPM_EPOCHS_EVERY:
        for (long long e = 0; e <= last; e += spec->param)
            out[count++] = (int)e;
        if (last % spec->param)
            out[count++] = last;
        break;
    case IPM_EPOCHS_LOG:
        count = expand_log(spec->param, last, out);
        break;
    case IPM_EPOCHS_LIST:
        for (int i = 0; i < spec->n_list; i++)
            if (spec->list[i] >= 0 && spec->list[i] <= last)
                out[count++] = spec->list[i];
        count = ipm_sort_unique(out, count);
        break;
    }
    *epochs = out;
    *n = count;
    return 0;
}
