/*
 * tz.h: UTC offsets of a named time zone, read once from the system's
 * compiled zone files (TZif, RFC 8536) with their POSIX TZ footer for times
 * after the last transition. Unlike setenv("TZ") + localtime_r it touches
 * no process-wide state, so threads may evaluate policies concurrently.
 */
#ifndef BZ_TZ_H
#define BZ_TZ_H

#include <stddef.h>
#include <time.h>

struct bz_tz;

#define BZ_TZ_FILE_MAX (256u * 1024) /* largest zone file we read */

/*
 * Load zone NAME (e.g. "Europe/Paris", "UTC") from $TZDIR or
 * /usr/share/zoneinfo. Names with "..", a leading '/' or characters outside
 * [A-Za-z0-9/_+-] are refused. Returns 0 or a negative BZ_ERR_* with a
 * one-line reason in err.
 */
int bz_tz_load(const char *name, struct bz_tz **out, char *err,
    size_t errlen);
/* Parse a zone from TZif bytes (exposed for tests and fuzzing). */
int bz_tz_parse(const unsigned char *p, size_t n, struct bz_tz **out,
    char *err, size_t errlen);
void bz_tz_free(struct bz_tz *tz);

/* Seconds east of UTC in force at t. */
long bz_tz_offset(const struct bz_tz *tz, time_t t);

/* Broken-down local time at t (tm_wday 0 = Sunday); tz NULL means UTC. */
void bz_tz_localtime(const struct bz_tz *tz, time_t t, struct tm *out);

#endif
