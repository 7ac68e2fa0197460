/* error: one convention for every module.
 * Library code never prints or exits. A function that can fail returns 0 on
 * success and -1 on failure, after writing a one-line message (no trailing
 * newline) into a caller-owned buffer `char err[IPM_ERRLEN]`. The caller
 * decides who prints it (rank 0) and how every rank stops. */
#ifndef IPMPI_ERROR_H
#define IPMPI_ERROR_H

#define IPM_ERRLEN 1024

/* Formats the message into err (may be NULL) and returns -1, so that
 * `return ipm_fail(err, "...", ...);` reads as one statement. */
int ipm_fail(char *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#endif
