/* error.c - error codes, their names and messages; versions. */
#include "util/error.h"

#include <stdio.h>
#include <stdlib.h>

#include "rill.h"
#include "util/log.h"

RILL_API const char *rill_strerror(int code)
{
    switch (code) {
#define XX(name, value, msg) \
    case value:              \
        return msg;
        RILL_ERRNO_MAP(XX)
#undef XX
    default:
        return "unknown error";
    }
}

RILL_API const char *rill_err_name(int code)
{
    switch (code) {
#define XX(name, value, msg) \
    case value:              \
        return "RILL_" #name;
        RILL_ERRNO_MAP(XX)
#undef XX
    default:
        return "RILL_UNKNOWN";
    }
}

#define STR_(x) #x
#define STR(x) STR_(x)

RILL_API const char *rill_version_string(void)
{
    return STR(RILL_VERSION_MAJOR) "." STR(RILL_VERSION_MINOR) "." STR(RILL_VERSION_PATCH);
}

RILL_API unsigned rill_version(void) { return RILL_VERSION_HEX; }

void rill__vfmt(char *buf, const char *fmt, va_list ap)
{
    vsnprintf(buf, RILL__ERRMSG_MAX, fmt, ap);
}

void rill__fmt(char *buf, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    rill__vfmt(buf, fmt, ap);
    va_end(ap);
}

void rill__assert_fail(const char *expr, const char *file, int line)
{
    rill__log(RILL_LOG_ERROR, "internal error: assertion '%s' failed at %s:%d", expr, file,
              line);
    abort();
}
