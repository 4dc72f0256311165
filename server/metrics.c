/* Metrics registry and exposition; see metrics.h. */
#include "metrics.h"

#include <dirent.h>
#include <stdbool.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#define MAX_FAMILIES 64
#define MAX_LABELS 4
#define MAX_BOUNDS 32

typedef enum { KIND_COUNTER, KIND_GAUGE, KIND_HISTOGRAM } metric_kind;

typedef struct child {
    struct child *next;
    char *values[MAX_LABELS];
    double value;                    /* counter, gauge */
    double sum;                      /* histogram */
    unsigned long long count;
    unsigned long long buckets[MAX_BOUNDS];
} child;

struct metric {
    char name[96], help[256];
    metric_kind kind;
    int n_labels;
    char label_names[MAX_LABELS][32];
    double bounds[MAX_BOUNDS];
    int n_bounds;
    pthread_mutex_t mu;
    child *children;
};

const double metrics_latency_buckets[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                          0.1,    0.25,  0.5,    1,     2.5,  5,     10};
const int metrics_latency_buckets_n = 14;

/* The registry: the one global the design allows besides the signal flag. */
static struct {
    pthread_mutex_t mu;
    metric *families[MAX_FAMILIES];
    int n;
    double start_time;
} registry = {.mu = PTHREAD_MUTEX_INITIALIZER};

static metric *family(const char *name, const char *help, const char *labels, metric_kind kind)
{
    metric *m = calloc(1, sizeof *m);
    if (!m)
        return NULL;
    snprintf(m->name, sizeof m->name, "%s", name);
    snprintf(m->help, sizeof m->help, "%s", help);
    m->kind = kind;
    pthread_mutex_init(&m->mu, NULL);
    const char *p = labels;
    while (p && *p && m->n_labels < MAX_LABELS) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        snprintf(m->label_names[m->n_labels++], sizeof m->label_names[0], "%.*s", (int)len, p);
        p = comma ? comma + 1 : NULL;
    }
    pthread_mutex_lock(&registry.mu);
    if (registry.start_time == 0) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        registry.start_time = (double)ts.tv_sec + ts.tv_nsec / 1e9;
    }
    if (registry.n < MAX_FAMILIES)
        registry.families[registry.n++] = m;
    pthread_mutex_unlock(&registry.mu);
    return m;
}

metric *metric_counter(const char *name, const char *help, const char *labels)
{
    return family(name, help, labels, KIND_COUNTER);
}

metric *metric_gauge(const char *name, const char *help, const char *labels)
{
    return family(name, help, labels, KIND_GAUGE);
}

metric *metric_histogram(const char *name, const char *help, const char *labels,
                         const double *upper_bounds, int n_bounds)
{
    metric *m = family(name, help, labels, KIND_HISTOGRAM);
    if (m) {
        m->n_bounds = n_bounds < MAX_BOUNDS ? n_bounds : MAX_BOUNDS;
        memcpy(m->bounds, upper_bounds, sizeof(double) * (size_t)m->n_bounds);
    }
    return m;
}

/* Caller holds m->mu. */
static child *find_child(metric *m, va_list ap)
{
    const char *values[MAX_LABELS];
    for (int i = 0; i < m->n_labels; i++) {
        values[i] = va_arg(ap, const char *);
        if (!values[i])
            values[i] = "";
    }
    for (child *c = m->children; c; c = c->next) {
        bool same = true;
        for (int i = 0; i < m->n_labels && same; i++)
            same = strcmp(c->values[i], values[i]) == 0;
        if (same)
            return c;
    }
    child *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    for (int i = 0; i < m->n_labels; i++)
        if (!(c->values[i] = strdup(values[i]))) {
            for (int k = 0; k < i; k++)
                free(c->values[k]);
            free(c);
            return NULL;
        }
    c->next = m->children;
    m->children = c;
    return c;
}

void metric_add(metric *m, double v, ...)
{
    if (!m)
        return;
    va_list ap;
    va_start(ap, v);
    pthread_mutex_lock(&m->mu);
    child *c = find_child(m, ap);
    if (c)
        c->value += v;
    pthread_mutex_unlock(&m->mu);
    va_end(ap);
}

void metric_set(metric *m, double v, ...)
{
    if (!m)
        return;
    va_list ap;
    va_start(ap, v);
    pthread_mutex_lock(&m->mu);
    child *c = find_child(m, ap);
    if (c)
        c->value = v;
    pthread_mutex_unlock(&m->mu);
    va_end(ap);
}

void metric_observe(metric *m, double v, ...)
{
    if (!m)
        return;
    va_list ap;
    va_start(ap, v);
    pthread_mutex_lock(&m->mu);
    child *c = find_child(m, ap);
    if (c) {
        for (int i = 0; i < m->n_bounds; i++)
            if (v <= m->bounds[i])
                c->buckets[i]++;
        c->sum += v;
        c->count++;
    }
    pthread_mutex_unlock(&m->mu);
    va_end(ap);
}

/* --- rendering --- */

typedef struct {
    char *buf;
    size_t len, cap;
    bool failed;
} text;

static void put(text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(text *t, const char *fmt, ...)
{
    if (t->failed)
        return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        /* no buffer yet: measure only (NULL + 0 is undefined behaviour) */
        int n = vsnprintf(t->buf ? t->buf + t->len : NULL, t->cap - t->len, fmt, ap);
        va_end(ap);
        if (n < 0) {
            t->failed = true;
            return;
        }
        if ((size_t)n < t->cap - t->len) {
            t->len += (size_t)n;
            return;
        }
        size_t cap = (t->cap + (size_t)n + 1) * 2;
        char *nb = realloc(t->buf, cap);
        if (!nb) {
            t->failed = true;
            return;
        }
        t->buf = nb;
        t->cap = cap;
    }
}

static void put_value(text *t, double v)
{
    if (isnan(v))
        put(t, "NaN");
    else if (isinf(v))
        put(t, v > 0 ? "+Inf" : "-Inf");
    else
        put(t, "%.17g", v);
}

static void put_escaped(text *t, const char *s)
{
    for (; *s; s++) {
        if (*s == '\\')
            put(t, "\\\\");
        else if (*s == '"')
            put(t, "\\\"");
        else if (*s == '\n')
            put(t, "\\n");
        else
            put(t, "%c", *s);
    }
}

/* {a="x",b="y"} plus an optional extra label (le for buckets). */
static void put_labels(text *t, const metric *m, const child *c, const char *extra_name,
                       const char *extra_value)
{
    if (m->n_labels == 0 && !extra_name)
        return;
    put(t, "{");
    for (int i = 0; i < m->n_labels; i++) {
        put(t, "%s%s=\"", i ? "," : "", m->label_names[i]);
        put_escaped(t, c->values[i]);
        put(t, "\"");
    }
    if (extra_name)
        put(t, "%s%s=\"%s\"", m->n_labels ? "," : "", extra_name, extra_value);
    put(t, "}");
}

static void render_family(text *t, metric *m)
{
    static const char *const types[] = {"counter", "gauge", "histogram"};
    pthread_mutex_lock(&m->mu);
    if (!m->children && m->n_labels > 0) { /* nothing observed yet */
        pthread_mutex_unlock(&m->mu);
        return;
    }
    put(t, "# HELP %s %s\n# TYPE %s %s\n", m->name, m->help, m->name, types[m->kind]);
    if (!m->children) { /* an unlabelled metric still shows its zero */
        put(t, "%s%s 0\n", m->name, m->kind == KIND_HISTOGRAM ? "_count" : "");
        if (m->kind == KIND_HISTOGRAM)
            put(t, "%s_sum 0\n%s_bucket{le=\"+Inf\"} 0\n", m->name, m->name);
    }
    for (child *c = m->children; c; c = c->next) {
        if (m->kind != KIND_HISTOGRAM) {
            put(t, "%s", m->name);
            put_labels(t, m, c, NULL, NULL);
            put(t, " ");
            put_value(t, c->value);
            put(t, "\n");
            continue;
        }
        for (int i = 0; i < m->n_bounds; i++) {
            char le[32];
            snprintf(le, sizeof le, "%g", m->bounds[i]);
            put(t, "%s_bucket", m->name);
            put_labels(t, m, c, "le", le);
            put(t, " %llu\n", c->buckets[i]);
        }
        put(t, "%s_bucket", m->name);
        put_labels(t, m, c, "le", "+Inf");
        put(t, " %llu\n%s_sum", c->count, m->name);
        put_labels(t, m, c, NULL, NULL);
        put(t, " ");
        put_value(t, c->sum);
        put(t, "\n%s_count", m->name);
        put_labels(t, m, c, NULL, NULL);
        put(t, " %llu\n", c->count);
    }
    pthread_mutex_unlock(&m->mu);
}

bool process_memory(unsigned long long *vsize, unsigned long long *rss)
{
    unsigned long long page = (unsigned long long)sysconf(_SC_PAGESIZE), v = 0, r = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f)
        return false;
    bool ok = fscanf(f, "%llu %llu", &v, &r) == 2;
    fclose(f);
    *vsize = v * page;
    *rss = r * page;
    return ok;
}

static void render_process(text *t)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) == 0) {
        double cpu = (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
                     (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
        put(t, "# HELP process_cpu_seconds_total Total user and system CPU time spent in "
               "seconds.\n# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total ");
        put_value(t, cpu);
        put(t, "\n");
    }
    unsigned long long vsize, rss;
    if (process_memory(&vsize, &rss)) {
        put(t, "# HELP process_resident_memory_bytes Resident memory size in bytes.\n"
               "# TYPE process_resident_memory_bytes gauge\n"
               "process_resident_memory_bytes %llu\n",
            rss);
        put(t, "# HELP process_virtual_memory_bytes Virtual memory size in bytes.\n"
               "# TYPE process_virtual_memory_bytes gauge\n"
               "process_virtual_memory_bytes %llu\n",
            vsize);
    }
    DIR *d = opendir("/proc/self/fd");
    if (d) {
        int n = 0;
        for (struct dirent *e; (e = readdir(d));)
            if (e->d_name[0] != '.')
                n++;
        closedir(d);
        put(t, "# HELP process_open_fds Number of open file descriptors.\n"
               "# TYPE process_open_fds gauge\nprocess_open_fds %d\n",
            n - 1 /* the directory stream itself */);
    }
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
        put(t, "# HELP process_max_fds Maximum number of open file descriptors.\n"
               "# TYPE process_max_fds gauge\nprocess_max_fds %llu\n",
            (unsigned long long)rl.rlim_cur);
    put(t, "# HELP process_start_time_seconds Start time of the process since unix epoch in "
           "seconds.\n# TYPE process_start_time_seconds gauge\nprocess_start_time_seconds ");
    put_value(t, registry.start_time);
    put(t, "\n");
}

char *metrics_render(size_t *len)
{
    text t = {0};
    pthread_mutex_lock(&registry.mu);
    int n = registry.n;
    metric *fams[MAX_FAMILIES];
    memcpy(fams, registry.families, sizeof(metric *) * (size_t)n);
    pthread_mutex_unlock(&registry.mu);
    for (int i = 0; i < n; i++)
        render_family(&t, fams[i]);
    render_process(&t);
    if (t.failed) {
        free(t.buf);
        return NULL;
    }
    if (!t.buf)
        put(&t, "%s", "");
    *len = t.len;
    return t.buf;
}
