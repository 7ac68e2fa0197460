/* table_util: comparing count tables in tests, independently of slot order. */
#ifndef IPMPI_TESTS_TABLE_UTIL_H
#define IPMPI_TESTS_TABLE_UTIL_H

#include <stdlib.h>

#include "ipmpi/info/table.h"

static int compare_count(const void *a, const void *b)
{
    const ipm_count *x = a, *y = b;
    if (x->group != y->group)
        return x->group < y->group ? -1 : 1;
    if (x->hi != y->hi)
        return x->hi < y->hi ? -1 : 1;
    if (x->lo != y->lo)
        return x->lo < y->lo ? -1 : 1;
    return (x->count > y->count) - (x->count < y->count);
}

/* The table's entries sorted by key (malloc'd). */
static inline ipm_count *sorted_export(const ipm_table *t)
{
    ipm_count *out = malloc(sizeof *out * (t->len ? t->len : 1));
    ipm_table_export(t, out);
    qsort(out, t->len, sizeof *out, compare_count);
    return out;
}

/* 1 when both tables hold the same keys with the same counts. */
static inline int same_tables(const ipm_table *a, const ipm_table *b)
{
    if (a->len != b->len || a->total != b->total)
        return 0;
    ipm_count *ea = sorted_export(a), *eb = sorted_export(b);
    int same = 1;
    for (size_t k = 0; k < a->len; k++)
        same &= compare_count(&ea[k], &eb[k]) == 0;
    free(ea);
    free(eb);
    return same;
}

#endif
