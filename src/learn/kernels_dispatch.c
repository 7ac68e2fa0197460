/* kernels_dispatch: picks the set of kernels.c this CPU runs. */
#include <string.h>
#if defined(__x86_64__)
#include <pmmintrin.h>
#include <xmmintrin.h>
#endif

#include "ipmpi/learn/kernels.h"

extern const ipm_kernels ipm_kernels_portable;
#if defined(__x86_64__)
extern const ipm_kernels ipm_kernels_avx2, ipm_kernels_avx512;
#endif

static int runs_here(const ipm_kernels *k)
{
#if defined(__x86_64__)
    __builtin_cpu_init();
    if (k == &ipm_kernels_avx2)
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    if (k == &ipm_kernels_avx512)
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
               __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512bw") &&
               __builtin_cpu_supports("fma");
#endif
    return k == &ipm_kernels_portable;
}

/* Fastest first. */
static const ipm_kernels *const all[] = {
#if defined(__x86_64__)
    &ipm_kernels_avx512,
    &ipm_kernels_avx2,
#endif
    &ipm_kernels_portable,
};

const ipm_kernels *ipm_kernels_named(const char *name)
{
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        if (strcmp(all[i]->name, name) == 0)
            return runs_here(all[i]) ? all[i] : NULL;
    return NULL;
}

const ipm_kernels *ipm_kernels_best(void)
{
    static const ipm_kernels *best;
    if (!best)
        for (size_t i = 0; i < sizeof all / sizeof all[0] && !best; i++)
            if (runs_here(all[i]))
                best = all[i];
    return best;
}

void ipm_kernels_flush_subnormals(void)
{
#if defined(__x86_64__)
    _MM_SET_FLUSH_ZERO_MODE(_MM_FLUSH_ZERO_ON);
    _MM_SET_DENORMALS_ZERO_MODE(_MM_DENORMALS_ZERO_ON);
#endif
}
