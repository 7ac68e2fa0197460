#include "ipmpi/base/error.h"

#include <stdarg.h>
#include <stdio.h>

int ipm_fail(char *err, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, IPM_ERRLEN, fmt, ap);
        va_end(ap);
    }
    return -1;
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
