/* The monotonic clock in nanoseconds, for deadlines and durations: one
 * definition for the batcher, the connection guard and the HTTP layer. */
#ifndef VISIOND_CLOCK_H
#define VISIOND_CLOCK_H

#include <stdint.h>
#include <time.h>

static inline int64_t clock_monotonic_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

#endif
