/*
 * client_end.c: how a client's channels and session end on the record
 * (docs/audit.md, "How sessions and channels end"). A channel that ran
 * ends with one channel_close or channel_failed line: the agent's exit
 * status or failure, or bzproxy's reason when the channel is cut (its
 * target went away, the client's link closed, bzproxy stops). A session
 * that opened ends with one session_close line, with a reason when
 * bzproxy ended it. Channels relayed after an exit only close; forwards
 * end with the agent's CLOSE and have no line of their own.
 */
#include "bzproxy.h"

#include <string.h>

#include "buf.h"
#include "log.h"
#include "util.h"

#define END_REASON_MAX 512

/* channel_close for a running channel we cut: why instead of a status. */
static int
record_cut(struct bzp_client *cl, struct bzp_chan *ch, const char *why)
{
	json_t *ev = bzp_audit_client(cl);

	ch->ended = 1;
	if (ev != NULL) {
		json_object_set_new(ev, "ch", json_integer(ch->id));
		json_object_set_new(ev, "reason", json_string(why));
	}
	return bzp_audit(cl->conn->srv, "channel_close", ev);
}

/*
 * Every channel still running ends now with why: its record, and unless
 * the link is gone, "failed" (ssh shows why on the channel's stderr) and
 * CLOSE to the client.
 */
static void
cut_channels(struct bzp_client *cl, const char *why, int tell_client)
{
	struct bzp_chan *ch;

	for (ch = cl->chans; ch != NULL; ch = ch->next) {
		if (!ch->running || ch->agent_closed)
			continue;
		if (!ch->ended)
			(void)record_cut(cl, ch, why);
		if (tell_client) {
			bzp_chan_refuse(cl, ch->id, "failed", why);
			(void)bzp_conn_send(cl->conn, BZ_FRAME_CLOSE, 0, 0,
			    ch->id, NULL, 0);
		}
		ch->agent_closed = 1;
	}
}

void
bzp_chan_end_from_agent(struct bzp_client *cl, struct bzp_chan *ch,
    const struct bz_frame *f)
{
	json_t *o, *ev, *v;
	const char *t;

	if (ch->ended || (o = bz_json_parse_object(f->payload, f->length,
	    NULL, 0)) == NULL)
		return;
	t = bz_json_str(o, "t");
	if (t != NULL && (strcmp(t, "exit") == 0 || strcmp(t, "failed") == 0)) {
		ch->ended = 1;
		ev = bzp_audit_client(cl);
		if (ev != NULL) {
			json_object_set_new(ev, "ch", json_integer(ch->id));
			if ((v = json_object_get(o, "status")) != NULL &&
			    json_is_integer(v))
				json_object_set(ev, "status", v);
			if ((v = json_object_get(o, "signal")) != NULL &&
			    json_is_string(v) && json_string_length(v) < 32)
				json_object_set(ev, "signal", v);
			if ((v = json_object_get(o, "reason")) != NULL &&
			    json_is_string(v) &&
			    json_string_length(v) < END_REASON_MAX)
				json_object_set(ev, "reason", v);
		}
		/* a session whose records cannot be made goes on no
		 * further */
		if (bzp_audit(cl->conn->srv, strcmp(t, "exit") == 0 ?
		    "channel_close" : "channel_failed", ev) != 0)
			bzp_conn_fail(cl->conn, BZP_NO_AUDIT);
	}
	json_decref(o);
}

void
bzp_client_session_end(struct bzp_client *cl, const char *why)
{
	json_t *ev;

	if (!cl->opened || cl->ended)
		return;
	cl->ended = 1;
	if ((ev = bzp_audit_client(cl)) != NULL && why != NULL &&
	    why[0] != '\0')
		json_object_set_new(ev, "reason", json_string(why));
	if (why != NULL && why[0] != '\0')
		bz_info("%s: session %u closed: %s", cl->conn->peer, cl->sid,
		    why);
	else
		bz_info("%s: session %u closed", cl->conn->peer, cl->sid);
	bzp_audit(cl->conn->srv, "session_close", ev);
}

void
bzp_client_agent_gone(struct bzp_client *cl, const char *reason)
{
	cut_channels(cl, reason, 1);
	cl->agent = NULL;
	cl->agent_held = 0;      /* that pause died with the agent */
	bzp_conn_release(cl->conn, &cl->held_by_agent);
	bzp_client_session_end(cl, reason);
	cl->state = BZP_CL_DONE;
	bzp_conn_fail(cl->conn, reason);
}

void
bzp_client_stop(struct bzp_client *cl, const char *reason)
{
	json_t *o;

	if (cl->conn->closing)
		return; /* ending already: its records come when it is gone */
	if (cl->state == BZP_CL_READY) {
		cut_channels(cl, reason, 1);
		/* the agent stops what the session still runs */
		if (cl->agent != NULL && (o = json_pack("{s:s}", "t",
		    "session_closed")) != NULL) {
			(void)bzp_conn_send_json(cl->agent->conn, cl->sid, 0, o);
			json_decref(o);
		}
		bzp_client_session_end(cl, reason);
	} else if (cl->state == BZP_CL_MFA || cl->state == BZP_CL_WAIT_SYNACK)
		/* a hello this far along is a decision the log must end */
		bzp_audit(cl->conn->srv, "session_open", bzp_audit_decision(
		    bzp_audit_client(cl), "connect", 0, cl->rule, reason));
	cl->state = BZP_CL_DONE;
	bzp_conn_fail(cl->conn, reason);
}

void
bzp_client_gone(struct bzp_client *cl)
{
	const char *why = cl->conn->closing ? cl->conn->why :
	    "the client's link closed";

	cut_channels(cl, why, 0);
	bzp_client_session_end(cl, cl->conn->closing ? cl->conn->why : NULL);
}
