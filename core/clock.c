/*
 * clock.c: the one monotonic clock of userpipe.  Deadlines, lingers,
 * Retry-After waits and rates are measured on CLOCK_MONOTONIC, which
 * neither NTP steps nor a changed wall clock move; wall-clock time is only
 * written (log lines, dead-letter headers), never subtracted.
 */
#include "core.h"

#include <time.h>

int64_t core_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}
