/*
 * client_link.c: a /v1/client link after hello_ok: its channels and
 * frames. A channel's one request, signed by the client, is
 * client_request.c's; the other frames are relayed unchanged except for
 * the header's session_id (0 here, the link's sid toward the agent).
 */
#include "bzproxy.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sodium.h>

#include "buf.h"
#include "classify.h"
#include "log.h"
#include "util.h"

#define NOTE_MAX 200
#define KIND_MAX 32

struct bzp_client *
bzp_client_new(struct bzp_conn *c)
{
	struct bzp_client *cl;
	char *nonce = NULL;
	json_t *o = NULL;

	if ((cl = calloc(1, sizeof(*cl))) == NULL)
		return NULL;
	cl->conn = c;
	/* what login, hello and whoami sign with the client key (pop.h) */
	randombytes_buf(cl->challenge, sizeof(cl->challenge));
	if (bz_b64url_encode(cl->challenge, sizeof(cl->challenge),
	    &nonce) != 0 || (o = json_pack("{s:s, s:s}", "t", "challenge",
	    "nonce", nonce)) == NULL || bzp_conn_send_json(c, 0, 0, o) != 0) {
		free(cl);
		cl = NULL;
	}
	json_decref(o);
	free(nonce);
	return cl;
}

void
bzp_client_policy_req(const struct bzp_client *cl,
    struct bz_policy_request *req, enum bz_action action,
    const char *command)
{
	memset(req, 0, sizeof(*req));
	req->user = cl->user;
	req->groups = cl->group_v;
	req->ngroups = cl->ngroups;
	req->target = cl->target;
	req->labels = cl->label_v;
	req->nlabels = cl->nlabels;
	req->unix_user = cl->unix_user;
	req->action = action;
	req->command = command;
	req->now = time(NULL);
}

static struct bzp_chan *
chan_find(struct bzp_client *cl, uint32_t id)
{
	struct bzp_chan *ch;

	for (ch = cl->chans; ch != NULL; ch = ch->next)
		if (ch->id == id)
			return ch;
	return NULL;
}

/* Forget a channel both sides have closed (or that never ran). */
static void
chan_maybe_free(struct bzp_client *cl, struct bzp_chan *ch)
{
	struct bzp_chan **pp;

	if (!ch->client_closed || (ch->running && !ch->agent_closed))
		return;
	for (pp = &cl->chans; *pp != NULL; pp = &(*pp)->next)
		if (*pp == ch) {
			*pp = ch->next;
			cl->nchans--;
			free(ch);
			return;
		}
}

/* Tell the client its channel cannot run (it ends the channel). */
void
bzp_chan_refuse(struct bzp_client *cl, uint32_t id, const char *t,
    const char *reason)
{
	json_t *o = json_pack("{s:s, s:s}", "t", t, "reason", reason);

	if (o != NULL)
		(void)bzp_conn_send_json(cl->conn, 0, id, o);
	json_decref(o);
}

/* A channel open we refuse: the client is told why, the audit log has
 * it (limit: the config key of the limit it is over, or NULL). */
static void
refuse_open(struct bzp_client *cl, uint32_t id, const char *kind,
    const char *t, const char *why, const char *limit)
{
	json_t *ev;

	if ((ev = bzp_audit_client(cl)) != NULL) {
		json_object_set_new(ev, "ch", json_integer(id));
		json_object_set_new(ev, "request", json_string("open"));
		if (kind != NULL && strlen(kind) <= KIND_MAX)
			json_object_set_new(ev, "kind", json_string(kind));
		if (limit != NULL)
			json_object_set_new(ev, "limit", json_string(limit));
	}
	bzp_audit(cl->conn->srv, "request_refused", bzp_audit_decision(ev,
	    "open", 0, "", why));
	bzp_chan_refuse(cl, id, t, why);
}

/* Something bzsshd refused on its own (agent or X11 forwarding, -R, ...):
 * it only tells us so that the audit log has it. */
static void
on_refused_note(struct bzp_client *cl, uint32_t id, const json_t *o)
{
	const char *what = bz_json_str(o, "request"), *why;
	json_t *ev;

	if (what == NULL || strlen(what) > NOTE_MAX)
		return;
	why = bz_json_str(o, "reason");
	if ((ev = bzp_audit_client(cl)) == NULL)
		return;
	if (id != 0)
		json_object_set_new(ev, "ch", json_integer(id));
	json_object_set_new(ev, "request", json_string(what));
	bzp_audit(cl->conn->srv, "request_refused", bzp_audit_decision(ev,
	    what, 0, "", why != NULL && strlen(why) <= NOTE_MAX ? why :
	    "refused by bzsshd"));
}

/* Forward a control message as is, for a channel that runs. */
static void
forward(struct bzp_client *cl, struct bzp_chan *ch, struct bzp_out **msg)
{
	if (ch == NULL || !ch->running || ch->agent_closed ||
	    cl->agent == NULL)
		return;
	if (bzp_conn_relay(cl->agent->conn, msg, cl->sid) == 0)
		bzp_conn_hold(cl->conn, cl->agent->conn, &cl->held_by_agent);
}

static void
on_control(struct bzp_client *cl, struct bzp_chan *ch, uint32_t id,
    const struct bz_frame *f, struct bzp_out **msg)
{
	char err[BZP_ERRLEN], why[BZP_ERRLEN];
	const char *t, *kind;
	json_t *o;

	if ((o = bz_json_parse_object(f->payload, f->length, err,
	    sizeof(err))) == NULL) {
		/* not err: jansson quotes the input, which may hold a token */
		bzp_conn_close(cl->conn, "protocol violation: malformed JSON");
		return;
	}
	if ((t = bz_json_str(o, "t")) == NULL)
		t = "";
	kind = bz_json_str(o, "kind");
	if (strcmp(t, "open") == 0) {
		int fwd = kind != NULL && strcmp(kind, "direct-tcpip") == 0;

		if (ch != NULL)
			bzp_conn_close(cl->conn, "protocol violation: channel "
			    "%u opened twice", id);
		else if (bzp_limit_channels(cl, why, sizeof(why)) != 0)
			refuse_open(cl, id, kind, "denied", why,
			    BZP_LIMIT_CHANNELS);
		else if (!fwd && (kind == NULL ||
		    strcmp(kind, "session") != 0))
			refuse_open(cl, id, kind, "denied", "unknown channel "
			    "kind", NULL);
		else if ((ch = calloc(1, sizeof(*ch))) == NULL)
			refuse_open(cl, id, kind, "failed", "out of memory",
			    NULL);
		else {
			ch->id = id;
			ch->forward = fwd;
			ch->next = cl->chans;
			cl->chans = ch;
			cl->nchans++;
		}
	} else if (strcmp(t, "window_change") == 0 || strcmp(t, "eow") == 0)
		forward(cl, ch, msg); /* a resize; ssh's reader gone */
	else if (strcmp(t, "refused") == 0)
		on_refused_note(cl, id, o);
	else
		bz_debug("%s: channel %u: ignored \"%.32s\"", cl->conn->peer,
		    id, t);
	json_decref(o);
}

/* A request signed with the client key: it must be the session's key,
 * or the link is over (the agent would refuse it anyway). */
static void
on_signed(struct bzp_client *cl, struct bzp_chan *ch, uint32_t id,
    const struct bz_frame *f)
{
	struct bzp_signed m;

	if (bzp_signed_parse(f->payload, f->length, cl->client_key,
	    &m) != 0) {
		bzp_conn_close(cl->conn, "protocol violation: a request not "
		    "signed by the session's key");
		return;
	}
	bzp_client_request(cl, ch, id, &m);
	bzp_signed_free(&m);
}

/* A signed message on channel 0: the session's refreshed ID token. */
static void
on_signed_token(struct bzp_client *cl, const struct bz_frame *f)
{
	struct bzp_signed m;
	const char *t;

	if (bzp_signed_parse(f->payload, f->length, cl->client_key,
	    &m) != 0) {
		bzp_conn_close(cl->conn, "protocol violation: a message not "
		    "signed by the session's key");
		return;
	}
	if ((t = bz_json_str(m.json, "t")) != NULL && strcmp(t, "token") == 0)
		bzp_client_token(cl, &m);
	else
		bzp_conn_close(cl->conn, "protocol violation: a signed "
		    "\"%.32s\" on channel 0", t != NULL ? t : "?");
	bzp_signed_free(&m);
}

/* Channel 0 after hello_ok: only notes of what bzsshd refused (-R). */
static void
on_conn_control(struct bzp_client *cl, const struct bz_frame *f)
{
	const char *t;
	json_t *o;

	if ((o = bz_json_parse_object(f->payload, f->length, NULL, 0)) ==
	    NULL) {
		bzp_conn_close(cl->conn, "protocol violation: malformed JSON");
		return;
	}
	if ((t = bz_json_str(o, "t")) != NULL && strcmp(t, "refused") == 0)
		on_refused_note(cl, 0, o);
	else
		bz_debug("%s: ignored \"%.32s\" on channel 0", cl->conn->peer,
		    t != NULL ? t : "?");
	json_decref(o);
}

void
bzp_client_frame(struct bzp_client *cl, const struct bz_frame *f,
    struct bzp_out **msg)
{
	struct bzp_chan *ch;

	if (cl->state != BZP_CL_READY) {
		if ((cl->state == BZP_CL_START || cl->state == BZP_CL_MFA) &&
		    f->channel_id == 0 && f->type == BZ_FRAME_CONTROL &&
		    f->flags == 0)
			bzp_client_auth(cl, f);
		else if (cl->state != BZP_CL_DONE)
			bzp_conn_close(cl->conn, "protocol violation: %s frame "
			    "on channel %u before hello_ok",
			    bz_frame_type_name(f->type), f->channel_id);
		return;
	}
	/* a signed request (a channel's, or the session's new ID token on
	 * channel 0), a channel's sealed bytes (relayed unread) */
	if (f->flags != 0 && f->flags != BZ_FLAG_CLIENT_SIGNED &&
	    (f->flags != BZ_FLAG_SEALED || f->channel_id == 0)) {
		bzp_conn_close(cl->conn, "protocol violation: flags 0x%x from "
		    "a client", f->flags);
		return;
	}
	if (f->channel_id == 0) {
		if (f->type != BZ_FRAME_CONTROL)
			bzp_conn_close(cl->conn, "protocol violation: %s frame "
			    "on channel 0", bz_frame_type_name(f->type));
		else if (f->flags == BZ_FLAG_CLIENT_SIGNED)
			on_signed_token(cl, f);
		else
			on_conn_control(cl, f);
		return;
	}
	ch = chan_find(cl, f->channel_id);
	switch (f->type) {
	case BZ_FRAME_CONTROL:
		if (f->flags == BZ_FLAG_CLIENT_SIGNED)
			on_signed(cl, ch, f->channel_id, f);
		else
			on_control(cl, ch, f->channel_id, f, msg);
		break;
	case BZ_FRAME_DATA:
	case BZ_FRAME_EOF:
	case BZ_FRAME_WINDOW:
		forward(cl, ch, msg);
		break;
	case BZ_FRAME_CLOSE:
		if (ch == NULL)
			break;
		ch->client_closed = 1;
		forward(cl, ch, msg);
		chan_maybe_free(cl, ch);
		break;
	default:
		bzp_conn_close(cl->conn, "protocol violation: %s frame from a "
		    "client", bz_frame_type_name(f->type));
		break;
	}
}

void
bzp_client_drained(struct bzp_client *cl)
{
	if (cl->agent != NULL)
		bzp_conn_release(cl->agent->conn, &cl->agent_held);
}

void
bzp_client_free(struct bzp_client *cl)
{
	struct bzp_server *s = cl->conn->srv;
	struct bzp_chan *ch;
	json_t *o;

	if (cl->agent != NULL) {
		/* the agent kills what this session still runs */
		if (!s->stop && (o = json_pack("{s:s}", "t",
		    "session_closed")) != NULL) {
			(void)bzp_conn_send_json(cl->agent->conn, cl->sid, 0, o);
			json_decref(o);
		}
		bzp_conn_release(cl->agent->conn, &cl->agent_held);
		bzp_agent_detach(cl->agent, cl);
	}
	bzp_client_gone(cl);
	while ((ch = cl->chans) != NULL) {
		cl->chans = ch->next;
		free(ch);
	}
	json_decref(cl->pending_login);
	bzp_signed_free(&cl->syn);
	free(cl->client_key);
	bz_free_secret(&cl->id_token);
	bz_free_secret(&cl->login_token);
	free(cl->user);
	free(cl->target);
	free(cl->unix_user);
	json_decref(cl->groups);
	free(cl->group_v);
	json_decref(cl->labels);
	free(cl->label_v);
	cl->conn->client = NULL;
	free(cl);
}

void
bzp_client_from_agent(struct bzp_client *cl, const struct bz_frame *f,
    struct bzp_out **msg)
{
	struct bzp_chan *ch = chan_find(cl, f->channel_id);

	if (ch == NULL || !ch->running || ch->agent_closed)
		return; /* late frames for a channel already finished */
	if (f->type == BZ_FRAME_CONTROL)
		bzp_chan_end_from_agent(cl, ch, f); /* audited first */
	if (f->type == BZ_FRAME_CLOSE)
		ch->agent_closed = 1;
	if (bzp_conn_relay(cl->conn, msg, 0) == 0 && cl->agent != NULL)
		bzp_conn_hold(cl->agent->conn, cl->conn, &cl->agent_held);
	if (f->type == BZ_FRAME_CLOSE)
		chan_maybe_free(cl, ch);
}
