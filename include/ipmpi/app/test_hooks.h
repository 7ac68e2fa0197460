/* test_hooks: ways for the tests to reach inside a run, compiled in only
 * with meson's -Dtest_hooks=true (the sanitizer build); in other builds
 * they do nothing and the environment is never read.
 *   IPMPI_INJECT_FAULT=setup:RANK        that rank fails during setup
 *   IPMPI_INJECT_FAULT=epoch:RANK:EPOCH  that rank fails at that logged epoch
 *                                        (as a failed read or allocation would)
 *   IPMPI_INJECT_FAULT=count:RANK        that rank's counting fails, at every
 *                                        logged epoch, before the reduce
 *   IPMPI_EVAL_BLOCK_ROWS=N              evaluation blocks of N samples */
#ifndef IPMPI_APP_TEST_HOOKS_H
#define IPMPI_APP_TEST_HOOKS_H

/* 1 when the hooks are compiled in. */
int ipm_test_hooks_enabled(void);

/* -1 with a message when the injected fault is for (where, rank, epoch);
 * epoch -1 outside the epochs. */
int ipm_test_fault(const char *where, int rank, int epoch, char *err);

/* The forced evaluation block (0: none). */
int ipm_test_eval_block_rows(void);

#endif
