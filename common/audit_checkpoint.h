/*
 * audit_checkpoint.h: signed checkpoints of the audit log's tail.
 *
 * The hash chain (audit.h) shows an edited, removed or reordered line, but
 * not a cut tail: drop the last lines, or all of them, and what is left
 * still chains. So, like Certificate Transparency's signed tree heads,
 * bzproxy signs now and then (and at shutdown) "the log had SEQ lines, the
 * last one hashing to HEAD, at TIME" with its Ed25519 key, and keeps these
 * checkpoints outside the log file: in a file the operator can put on
 * other storage, and in syslog. `bzproxy audit verify` then holds the log
 * to the latest checkpoint: fewer lines, or another line at SEQ, is
 * reported. What it does not give (docs/audit.md): lines written after
 * the last checkpoint can still be cut unnoticed, and whoever holds the
 * signing key can sign a checkpoint of a rewritten log.
 *
 * A checkpoint is one JSON line: {"seq":N,"head":HEX,"time":RFC3339,
 * "key":B64URL,"sig":B64URL}, sig the Ed25519 signature over the compact
 * JSON, keys sorted, of the other four members.
 */
#ifndef BZ_AUDIT_CHECKPOINT_H
#define BZ_AUDIT_CHECKPOINT_H

#include <stddef.h>
#include <stdint.h>

#include "audit.h"

/* The checkpoint line (malloc'ed, no newline) of a's head, signed by sk
 * (libsodium's 64-byte secret key), or NULL. */
char *bz_audit_checkpoint_make(const struct bz_audit *a,
    const uint8_t sk[64]);
/* Append line and a newline to file (created 0600), and fsync it. */
int bz_audit_checkpoint_append(const char *file, const char *line,
    char *err, size_t errlen);
/*
 * The last checkpoint in file: *mark, and its time in when. Every line
 * must be a checkpoint signed by pk (a line that is not, or a later one
 * that vouches for fewer lines, is an error: someone wrote into the file).
 * 0, or BZ_ERR_* with err (BZ_ERR_SHORT: the file holds none).
 */
int bz_audit_checkpoint_latest(const char *file, const uint8_t pk[32],
    struct bz_audit_mark *mark, char *when, size_t whenlen, char *err,
    size_t errlen);

#endif
