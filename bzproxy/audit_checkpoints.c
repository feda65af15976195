/*
 * audit_checkpoints.c: bzproxy's signed checkpoints of its audit log
 * (common/audit_checkpoint.h, docs/audit.md). At start the log must hold
 * at least the lines the latest checkpoint vouches for (a cut log stops
 * bzproxy: someone must look); then, every audit_checkpoint_interval when
 * the log grew, and at shutdown, a new checkpoint goes to the checkpoint
 * file and to syslog (LOG_AUTHPRIV: journald keeps it apart from the log
 * file's storage).
 */
#include "bzproxy.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include "audit.h"
#include "audit_checkpoint.h"
#include "log.h"
#include "util.h"

int
bzp_checkpoint_check(struct bzp_server *s, char *err, size_t errlen)
{
	struct bz_audit_mark mark;
	char when[64], why[BZP_ERRLEN], head[BZ_AUDIT_HASH_HEX];
	uint64_t seq;
	int r;

	bz_audit_head(s->audit, &seq, head);
	r = bz_audit_checkpoint_latest(s->cfg->audit_checkpoints, s->pk,
	    &mark, when, sizeof(when), why, sizeof(why));
	if (r == BZ_ERR_SHORT || (r != 0 &&
	    access(s->cfg->audit_checkpoints, F_OK) != 0))
		return BZ_OK; /* none yet: the first comes now */
	if (r != 0) {
		bz_errf(err, errlen, "audit checkpoints unusable: %s (see "
		    "docs/audit.md)", why);
		return r;
	}
	if (seq < mark.seq) {
		bz_errf(err, errlen, "%s was cut: it has %llu lines, but the "
		    "checkpoint of %s vouches for %llu. Not starting: see "
		    "docs/audit.md, \"A cut or edited log\"", s->cfg->audit_log,
		    (unsigned long long)seq, when,
		    (unsigned long long)mark.seq);
		return BZ_ERR_INVALID;
	}
	s->checkpoint_seq = mark.seq;
	return BZ_OK;
}

void
bzp_checkpoint_now(struct bzp_server *s)
{
	char head[BZ_AUDIT_HASH_HEX], err[BZP_ERRLEN], *line;
	uint64_t seq;

	bz_audit_head(s->audit, &seq, head);
	if (s->checkpointed && seq == s->checkpoint_seq)
		return; /* nothing new to vouch for */
	if ((line = bz_audit_checkpoint_make(s->audit, s->sk)) == NULL) {
		bz_error("audit checkpoint: out of memory");
		return;
	}
	if (bz_audit_checkpoint_append(s->cfg->audit_checkpoints, line, err,
	    sizeof(err)) != 0)
		bz_error("audit checkpoint: %s", err);
	else {
		s->checkpoint_seq = seq;
		s->checkpointed = 1;
	}
	syslog(LOG_AUTHPRIV | LOG_INFO, "audit checkpoint %s", line);
	free(line);
}

static void
on_timer(lws_sorted_usec_list_t *sul)
{
	struct bzp_server *s = lws_container_of(sul, struct bzp_server,
	    checkpoint_timer);

	bzp_checkpoint_now(s);
	lws_sul_schedule(s->ctx, 0, &s->checkpoint_timer, on_timer,
	    (lws_usec_t)s->cfg->audit_checkpoint_interval * LWS_US_PER_SEC);
}

void
bzp_checkpoint_start(struct bzp_server *s)
{
	openlog("bzproxy", LOG_PID, LOG_AUTHPRIV);
	bzp_checkpoint_now(s);
	lws_sul_schedule(s->ctx, 0, &s->checkpoint_timer, on_timer,
	    (lws_usec_t)s->cfg->audit_checkpoint_interval * LWS_US_PER_SEC);
}
