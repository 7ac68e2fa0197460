#include "ipmpi/app/test_hooks.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ipmpi/base/error.h"

#ifdef IPMPI_TEST_HOOKS

int ipm_test_hooks_enabled(void)
{
    return 1;
}

int ipm_test_fault(const char *where, int rank, int epoch, char *err)
{
    const char *spec = getenv("IPMPI_INJECT_FAULT");
    char kind[16];
    int at_rank = -1, at_epoch = -1;
    if (!spec || sscanf(spec, "%15[a-z]:%d:%d", kind, &at_rank, &at_epoch) < 2)
        return 0;
    if (strcmp(kind, where) != 0 || at_rank != rank || (at_epoch >= 0 && at_epoch != epoch))
        return 0;
    return ipm_fail(err, "rank %d: injected fault in %s (IPMPI_INJECT_FAULT=%s)", rank, where,
                    spec);
}

int ipm_test_eval_block_rows(void)
{
    const char *forced = getenv("IPMPI_EVAL_BLOCK_ROWS");
    int rows = forced ? atoi(forced) : 0;
    return rows > 0 ? rows : 0;
}

#else

int ipm_test_hooks_enabled(void)
{
    return 0;
}

int ipm_test_fault(const char *where, int rank, int epoch, char *err)
{
    (void)where, (void)rank, (void)epoch, (void)err;
    return 0;
}

int ipm_test_eval_block_rows(void)
{
    return 0;
}

#endif
