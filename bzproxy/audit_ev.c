/*
 * audit_ev.c: audit events with the members every reader looks for (user,
 * groups, target, unix_user, action, decision, rule, reason, sid). The
 * log itself (hash chain, fsync) is common/audit.c.
 */
#include "bzproxy.h"

#include "audit.h"
#include "log.h"

int
bzp_audit(struct bzp_server *s, const char *event, json_t *fields)
{
	char err[256] = "";
	int r;

	if (fields == NULL) {
		bz_error("audit %s: out of memory", event);
		return BZ_ERR_ALLOC;
	}
	if ((r = bz_audit_write(s->audit, event, fields, err,
	    sizeof(err))) != 0)
		bz_error("cannot append the %s event to the audit log: %s",
		    event, err);
	json_decref(fields);
	return r;
}

/* Set a string member when the value is known. */
static void
set_str(json_t *o, const char *key, const char *v)
{
	if (v != NULL)
		json_object_set_new(o, key, json_string(v));
}

json_t *
bzp_audit_client(const struct bzp_client *cl)
{
	json_t *o = json_object();

	if (o == NULL)
		return NULL;
	set_str(o, "user", cl->user);
	if (cl->groups != NULL)
		json_object_set(o, "groups", cl->groups);
	set_str(o, "target", cl->target);
	set_str(o, "unix_user", cl->unix_user);
	if (cl->sid != 0)
		json_object_set_new(o, "sid", json_integer(cl->sid));
	set_str(o, "peer", cl->conn->peer);
	return o;
}

json_t *
bzp_audit_decision(json_t *o, const char *action, int allowed,
    const char *rule, const char *reason)
{
	if (o == NULL)
		return NULL;
	set_str(o, "action", action);
	set_str(o, "decision", allowed ? "allow" : "deny");
	set_str(o, "rule", rule != NULL ? rule : "");
	if (reason != NULL && reason[0] != '\0')
		set_str(o, "reason", reason);
	return o;
}
