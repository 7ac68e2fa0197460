#include "ipmpi/base/error.h"

#include <stdarg.h>
#include <stdio.h>

/* The kind's byte: vsnprintf never reaches it (the message gets one byte
 * less), so a message and its kind never overwrite each other. */
#define KIND_AT (IPM_ERRLEN - 1)

/* One line whatever the message quotes (a path or an argument may hold a
 * line break): control characters become '?'. */
static int vfail(char *err, enum ipm_error_kind kind, const char *fmt, va_list ap)
{
    if (err) {
        vsnprintf(err, KIND_AT, fmt, ap);
        for (char *c = err; *c; c++)
            if ((unsigned char)*c < 0x20)
                *c = '?';
        err[KIND_AT] = (char)kind;
    }
    return -1;
}

int ipm_fail(char *err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfail(err, IPM_ERR_UNSPECIFIED, fmt, ap);
    va_end(ap);
    return -1;
}

int ipm_fail_as(char *err, enum ipm_error_kind kind, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfail(err, kind, fmt, ap);
    va_end(ap);
    return -1;
}

int ipm_fail_wrap(char *err, const char *inner, const char *fmt, ...)
{
    enum ipm_error_kind kind = ipm_error_kind(inner); /* before err, which may be inner */
    va_list ap;
    va_start(ap, fmt);
    vfail(err, kind, fmt, ap);
    va_end(ap);
    return -1;
}

enum ipm_error_kind ipm_error_kind(const char *err)
{
    if (!err)
        return IPM_ERR_UNSPECIFIED;
    unsigned char k = (unsigned char)err[KIND_AT];
    return k <= IPM_ERR_IO ? (enum ipm_error_kind)k : IPM_ERR_UNSPECIFIED;
}

void ipm_error_default_kind(char *err, enum ipm_error_kind kind)
{
    if (err && ipm_error_kind(err) == IPM_ERR_UNSPECIFIED)
        err[KIND_AT] = (char)kind;
}

#ifndef NDEBUG
#include <stdlib.h>

#include "ipmpi/base/assert.h"

_Noreturn void ipm_assert_failed(const char *cond, const char *file, int line)
{
    fprintf(stderr, "%s:%d: internal error: assertion '%s' failed\n", file, line, cond);
    abort();
}
#endif
