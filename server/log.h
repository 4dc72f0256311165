/* Logging to stderr, one line per event, for journald or a terminal.
 *
 * Under systemd (JOURNAL_STREAM set) lines carry the "<N>" priority prefix
 * journald understands; elsewhere they start with a timestamp. The level
 * is set once at start-up, before any thread exists, and only read after.
 */
#ifndef VISIOND_LOG_H
#define VISIOND_LOG_H

typedef enum { LOG_ERROR = 3, LOG_WARN = 4, LOG_INFO = 6, LOG_DEBUG = 7 } log_level;

void log_init(log_level level);
/* "error", "warn", "info", "debug"; returns -1 for anything else */
int log_level_parse(const char *s);
void log_msg(log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
