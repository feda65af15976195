/*
 * audit.h: the audit log, one JSON object per line, hash-chained.
 *
 * Each line carries "time" (RFC 3339 UTC with milliseconds), "event", the
 * caller's members, "seq" (its line number, from 1) and "prev": the hex
 * SHA-256 of the previous line's bytes (without its newline; 64 zeros for
 * the first line). A line is appended whole (O_APPEND, one write) and
 * fdatasync'ed before bz_audit_write returns; a failed or short write is
 * undone, so the file never keeps part of a line that we report as lost.
 *
 * The chain shows an edited, removed or reordered line, but not a cut
 * tail: checkpoints (audit_checkpoint.h), signed and kept elsewhere, do.
 */
#ifndef BZ_AUDIT_H
#define BZ_AUDIT_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

#define BZ_AUDIT_HASH_HEX 65 /* 64 hex digits and a NUL */

struct bz_audit;

/*
 * Open (create 0600) path and read its last line to continue the chain.
 * A torn last line (no newline: a write cut by a crash or a full disk) is
 * moved aside into PATH.torn-TIME (0600), and an "audit_torn_tail" event
 * saying where is appended (bz_audit_torn names the file).
 */
int bz_audit_open(const char *path, struct bz_audit **out, char *err,
    size_t errlen);
/* The file a torn tail was moved to at open, or NULL. */
const char *bz_audit_torn(const struct bz_audit *a);
/* The "event" of the log's last line: "" for an empty log. */
const char *bz_audit_last_event(const struct bz_audit *a);
/*
 * Append one event. fields is borrowed (not stolen); it must not contain
 * "time", "event", "seq" or "prev". Returns 0, or a negative BZ_ERR_* with
 * err naming the cause ("No space left on device").
 */
int bz_audit_write(struct bz_audit *a, const char *event,
    const json_t *fields, char *err, size_t errlen);
/* The number of lines and the hash of the last one (zeros: none). */
void bz_audit_head(const struct bz_audit *a, uint64_t *seq,
    char head[BZ_AUDIT_HASH_HEX]);
void bz_audit_close(struct bz_audit *a);

/* What a checkpoint vouches for: line seq has hash head. */
struct bz_audit_mark {
	uint64_t seq;
	char head[BZ_AUDIT_HASH_HEX];
};
/*
 * Verify a whole file's chain; *lines gets its number of lines. With mark
 * (not NULL), the file must also hold line mark->seq with hash mark->head:
 * fewer lines is a cut tail, another hash an edited log. 0, or a negative
 * error with "PATH:LINE: reason" in err.
 */
int bz_audit_verify(const char *path, const struct bz_audit_mark *mark,
    uint64_t *lines, char *err, size_t errlen);

#endif
