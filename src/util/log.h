/* log.h - the one logger hook. */
#ifndef RILL_UTIL_LOG_H
#define RILL_UTIL_LOG_H

void rill__log(int level, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

#endif
