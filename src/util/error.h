/* error.h - error messages kept on handles, internal assertions. */
#ifndef RILL_UTIL_ERROR_H
#define RILL_UTIL_ERROR_H

#include <stdarg.h>

#define RILL__ERRMSG_MAX 512

/* Format a message into buf (RILL__ERRMSG_MAX bytes). */
void rill__fmt(char *buf, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
void rill__vfmt(char *buf, const char *fmt, va_list ap);

/* Internal invariant: never fails on bad user input, only on a rill bug. */
void rill__assert_fail(const char *expr, const char *file, int line);
#define RILL__ASSERT(e) ((e) ? (void)0 : rill__assert_fail(#e, __FILE__, __LINE__))

#endif
