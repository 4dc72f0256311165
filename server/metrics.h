/* The metrics registry and its Prometheus text exposition (format 0.0.4).
 *
 * Written here rather than taken from a library: Debian carries no C
 * Prometheus client, and what visiond needs is small (counters, gauges
 * and histograms with a few labels, rendered on scrape). The registry is
 * the process's one piece of global state: metric families are created at
 * start-up, children (one per label combination) on first use; updates take
 * a per-family mutex, never the scrape path's.
 */
#ifndef VISIOND_METRICS_H
#define VISIOND_METRICS_H

#include <stdbool.h>
#include <stddef.h>

typedef struct metric metric;

/* `labels` is a comma-separated list of label names ("" for none). */
metric *metric_counter(const char *name, const char *help, const char *labels);
metric *metric_gauge(const char *name, const char *help, const char *labels);
metric *metric_histogram(const char *name, const char *help, const char *labels,
                         const double *upper_bounds, int n_bounds);

/* The label values follow `v`, one const char * per label name. */
/* The process's virtual and resident sizes in bytes (/proc/self/statm);
 * false where that cannot be read. */
bool process_memory(unsigned long long *vsize, unsigned long long *rss);

void metric_add(metric *m, double v, ...);
void metric_set(metric *m, double v, ...);
void metric_observe(metric *m, double v, ...);

/* The whole registry plus process metrics (RSS, CPU, fds, start time), as
 * a malloc'd NUL-terminated text. */
char *metrics_render(size_t *len);

/* Buckets shared by the latency histograms (seconds) and the batch sizes. */
extern const double metrics_latency_buckets[];
extern const int metrics_latency_buckets_n;

#endif
