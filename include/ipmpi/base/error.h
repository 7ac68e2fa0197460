/* error: one convention for every module: a kind plus a message.
 * Library code never prints or exits. A function that can fail returns 0 on
 * success and -1 on failure, after writing a one-line message (no trailing
 * newline) into a caller-owned buffer `char err[IPM_ERRLEN]`. The buffer's
 * last byte carries the failure's kind (enum ipm_error_kind), so the kind
 * travels wherever the message is copied or broadcast whole (ipm_agree), and
 * every rank ends with the same kind and message. Messages are at most
 * IPM_ERRLEN - 2 characters. The caller decides who prints the message
 * (rank 0), how every rank stops, and (main) which exit status a kind gets. */
#ifndef IPMPI_ERROR_H
#define IPMPI_ERROR_H

#define IPM_ERRLEN 1024

/* What went wrong, as a batch script needs to tell it apart. */
enum ipm_error_kind {
    IPM_ERR_UNSPECIFIED = 0, /* the caller's phase decides (ipm_error_default_kind) */
    IPM_ERR_INPUT,           /* command line, config or data: --check finds these */
    IPM_ERR_FAILED,          /* the run failed: divergence, memory, MPI, a lost rank */
    IPM_ERR_REFUSED,         /* output or checkpoint exists, or another run holds it */
    IPM_ERR_IO,              /* writing the output or the checkpoint failed (disk full, EIO) */
};

/* Formats the message into err (may be NULL), kind unspecified, and returns
 * -1, so that `return ipm_fail(err, "...", ...);` reads as one statement. */
int ipm_fail(char *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ipm_fail with a kind. */
int ipm_fail_as(char *err, enum ipm_error_kind kind, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* ipm_fail that keeps the kind of inner, an earlier message (usually quoted
 * by fmt) from another buffer. */
int ipm_fail_wrap(char *err, const char *inner, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* The kind err carries. */
enum ipm_error_kind ipm_error_kind(const char *err);

/* Gives err the kind when it has none yet: a phase's default (a failure
 * while reading the config or data is the input's; one while training is
 * the run's). */
void ipm_error_default_kind(char *err, enum ipm_error_kind kind);

#endif
