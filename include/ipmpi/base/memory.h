/* memory: how much memory this process may take, for bounding sizes before
 * they are allocated: the smaller of the machine's physical memory and the
 * address-space limit (ulimit -v, RLIMIT_AS). A size above it cannot be
 * allocated or would be killed, so it is refused with a message naming the
 * key that asked for it, instead of failing (or hanging) later. */
#ifndef IPMPI_BASE_MEMORY_H
#define IPMPI_BASE_MEMORY_H

#include <stddef.h>

/* Bytes; SIZE_MAX when neither is known. */
size_t ipm_memory_available(void);

/* Human-readable bytes ("1.5 GB", "300 MB", "12 kB") into buf. */
void ipm_memory_format(double bytes, char *buf, size_t cap);

#endif
