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
