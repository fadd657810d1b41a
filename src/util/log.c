/* log.c - process-wide logger hook; rill never prints on its own. */
#include "util/log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>

#include "rill.h"

static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;
static rill_log_fn log_fn;
static int log_level;
static void *log_ud;

RILL_API int rill_set_logger(rill_log_fn fn, rill_log_level max_level, void *user_data)
{
    if ((int)max_level < RILL_LOG_ERROR || (int)max_level > RILL_LOG_DEBUG)
        return RILL_EINVAL;
    pthread_mutex_lock(&log_mu);
    log_fn = fn;
    log_level = max_level;
    log_ud = user_data;
    pthread_mutex_unlock(&log_mu);
    return RILL_OK;
}

void rill__log(int level, const char *fmt, ...)
{
    char msg[512];
    pthread_mutex_lock(&log_mu);
    rill_log_fn fn = log_fn;
    void *ud = log_ud;
    int max = log_level;
    pthread_mutex_unlock(&log_mu);
    if (!fn || level > max)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fn(level, msg, ud);
}
