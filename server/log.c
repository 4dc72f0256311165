/* See log.h. */
#include "log.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static log_level max_level = LOG_INFO; /* written once by log_init, before threads */
static bool journald;

void log_init(log_level level)
{
    max_level = level;
    journald = getenv("JOURNAL_STREAM") != NULL;
}

int log_level_parse(const char *s)
{
    if (strcmp(s, "error") == 0)
        return LOG_ERROR;
    if (strcmp(s, "warn") == 0)
        return LOG_WARN;
    if (strcmp(s, "info") == 0)
        return LOG_INFO;
    if (strcmp(s, "debug") == 0)
        return LOG_DEBUG;
    return -1;
}

void log_msg(log_level level, const char *fmt, ...)
{
    if (level > max_level)
        return;
    char line[2048];
    int n;
    if (journald) {
        n = snprintf(line, sizeof line, "<%d>", (int)level);
    } else {
        struct timespec ts;
        struct tm tm;
        clock_gettime(CLOCK_REALTIME, &ts);
        gmtime_r(&ts.tv_sec, &tm);
        static const char *const names[] = {[LOG_ERROR] = "error", [LOG_WARN] = "warn",
                                            [LOG_INFO] = "info", [LOG_DEBUG] = "debug"};
        n = snprintf(line, sizeof line, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s ",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                     tm.tm_sec, ts.tv_nsec / 1000000, names[level]);
    }
    va_list ap;
    va_start(ap, fmt);
    if (n >= 0 && (size_t)n < sizeof line)
        vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
    va_end(ap);
    /* one write per line, so concurrent threads do not interleave */
    fprintf(stderr, "%s\n", line);
}
