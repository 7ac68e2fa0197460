/* assert: internal invariants, checked in debug and sanitizer builds and
 * compiled out of release builds (meson's b_ndebug=if-release defines
 * NDEBUG there), as p4est's P4EST_ASSERT. An invariant is something no
 * input can break, only a bug; anything a user's input or the machine can
 * cause is an error with a message (base/error.h), never an assertion. */
#ifndef IPMPI_BASE_ASSERT_H
#define IPMPI_BASE_ASSERT_H

#ifdef NDEBUG
#define IPM_ASSERT(cond) ((void)0)
#else
/* Prints "FILE:LINE: internal error: COND" and aborts. */
_Noreturn void ipm_assert_failed(const char *cond, const char *file, int line);
#define IPM_ASSERT(cond) ((cond) ? (void)0 : ipm_assert_failed(#cond, __FILE__, __LINE__))
#endif

#endif
