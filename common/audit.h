/*
 * audit.h: the audit log, one JSON object per line, hash-chained.
 *
 * Each line carries "time" (RFC 3339 UTC with milliseconds), "event", the
 * caller's members, and "prev": the hex SHA-256 of the previous line's bytes
 * (without its newline; 64 zeros for the first line). Lines are appended
 * with O_APPEND and fsync'ed before bz_audit_write returns.
 */
#ifndef BZ_AUDIT_H
#define BZ_AUDIT_H

#include <stddef.h>
#include <jansson.h>

struct bz_audit;

/* Open (create 0600) path and read its last line to continue the chain. */
int bz_audit_open(const char *path, struct bz_audit **out, char *err,
    size_t errlen);
/*
 * Append one event. fields is borrowed (not stolen); it must not contain
 * "time", "event" or "prev". Returns 0 or a negative BZ_ERR_*.
 */
int bz_audit_write(struct bz_audit *a, const char *event, const json_t *fields);
void bz_audit_close(struct bz_audit *a);
/*
 * Verify a whole file's chain; returns 0, or a negative error with
 * "PATH:LINE: reason" in err.
 */
int bz_audit_verify(const char *path, char *err, size_t errlen);

#endif
