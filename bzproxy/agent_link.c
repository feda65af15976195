/*
 * agent_link.c: a /v1/agent link. bzproxy sends a challenge; the agent
 * answers with its name, its Ed25519 key and a signature over the nonce,
 * plus the one-time enrolment token on its first connection. A pinned key
 * must match; an unpinned agent burns its token and gets its key pinned.
 * After agent_ok, frames are routed by the header's session_id to the
 * client link that owns it.
 */
#include "bzproxy.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sodium.h>

#include "buf.h"
#include "chain.h"
#include "log.h"
#include "util.h"

#define TOKEN_MAX 256

struct bzp_agent *
bzp_agent_new(struct bzp_conn *c)
{
	struct bzp_agent *a;
	json_t *o = NULL;
	char *nonce = NULL;

	if ((a = calloc(1, sizeof(*a))) == NULL)
		return NULL;
	a->conn = c;
	randombytes_buf(a->nonce, sizeof(a->nonce));
	if (bz_b64url_encode(a->nonce, sizeof(a->nonce), &nonce) != 0 ||
	    (o = json_pack("{s:s, s:s, s:s}", "t", "challenge", "nonce",
	    nonce, "proxy_key", c->srv->pk_b64)) == NULL ||
	    bzp_conn_send_json(c, 0, 0, o) != 0) {
		free(a);
		a = NULL;
	}
	json_decref(o);
	free(nonce);
	return a;
}

/*
 * Ready agents are a hash table by name, and each agent's sessions one by
 * session id: a fleet of 10,000 agents made `bzsshd targets` (a look-up
 * per target) and every connect walk them all, and every frame from an
 * agent walked its sessions.
 */
struct bzp_agent *
bzp_agent_find(struct bzp_server *s, const char *name)
{
	struct bzp_agent *a;

	HASH_FIND_STR(s->agents, name, a);
	return a;
}

int
bzp_agent_attach(struct bzp_agent *a, struct bzp_client *cl)
{
	int hash_oom = 0;

	HASH_ADD(agent_hh, a->clients, sid, sizeof(cl->sid), cl);
	if (hash_oom)
		return -1;
	cl->agent = a;
	return 0;
}

void
bzp_agent_detach(struct bzp_agent *a, struct bzp_client *cl)
{
	if (cl->agent == a)
		HASH_DELETE(agent_hh, a->clients, cl);
	cl->agent = NULL;
}

void
bzp_agent_drained(struct bzp_agent *a)
{
	struct bzp_client *cl, *tmp;

	HASH_ITER(agent_hh, a->clients, cl, tmp)
		bzp_conn_release(cl->conn, &cl->held_by_agent);
}

/* Leave the list of ready agents and end the sessions that used it. */
static void
agent_unlist(struct bzp_agent *a, const char *why)
{
	struct bzp_server *s = a->conn->srv;
	struct bzp_client *cl, *tmp;

	if (!a->ready)
		return;
	a->ready = 0;
	HASH_DEL(s->agents, a);
	HASH_ITER(agent_hh, a->clients, cl, tmp) {
		HASH_DELETE(agent_hh, a->clients, cl);
		if (s->stop) /* shutting down: every link closes anyway */
			cl->agent = NULL;
		else
			bzp_client_agent_gone(cl, why);
	}
	(void)bzp_store_agent_seen(s->store, a->name, time(NULL));
	bzp_audit(s, "agent_disconnect", json_pack("{s:s, s:s, s:s}",
	    "target", a->name, "peer", a->conn->peer, "reason", why));
}

static void
agent_refused(struct bzp_agent *a, const char *name, const char *reason)
{
	bzp_audit(a->conn->srv, "agent_connect", bzp_audit_decision(
	    json_pack("{s:s?, s:s}", "target", name, "peer", a->conn->peer),
	    "agent_connect", 0, NULL, reason));
	bzp_conn_fail(a->conn, reason);
}

/*
 * The key is known to be the agent's (it signed our nonce). Check it
 * against the pin, or enrol with the one-time token. 0 or -1 (refused,
 * reason in why).
 */
static int
check_identity(struct bzp_agent *a, const char *name, const uint8_t key[32],
    const char *token, struct bzp_agent_rec *rec, char *why, size_t len)
{
	struct bzp_server *s = a->conn->srv;
	uint8_t hash[32];
	int r;

	if ((r = bzp_store_agent_get(s->store, name, rec)) != 0) {
		snprintf(why, len, r == BZP_NOT_FOUND ? "agent %s is not "
		    "enrolled: ask an admin to run bzproxy agent add %s" :
		    "bzproxy cannot read its state", name, name);
		return -1;
	}
	if (rec->pinned) {
		/* enrolled: the token (maybe still in its config) is moot */
		if (sodium_memcmp(key, rec->key, 32) != 0) {
			snprintf(why, len, "agent %s presented a key that is "
			    "not the one pinned for it (re-enrol it with "
			    "bzproxy agent add %s)", name, name);
			return -1;
		}
		return 0;
	}
	if (token == NULL) {
		snprintf(why, len, "agent %s is not enrolled yet: start it "
		    "with the token from bzproxy agent add", name);
		return -1;
	}
	crypto_hash_sha256(hash, (const uint8_t *)token, strlen(token));
	if (!rec->has_token || sodium_memcmp(hash, rec->token_hash, 32) != 0 ||
	    bzp_store_agent_pin(s->store, name, hash, key, time(NULL)) != 0) {
		snprintf(why, len, "the enrolment token for %s is wrong or "
		    "already used", name);
		return -1;
	}
	bz_info("%s: agent %s enrolled, key pinned", a->conn->peer, name);
	bzp_audit(s, "agent_enrol", json_pack("{s:s, s:s, s:s}", "target",
	    name, "peer", a->conn->peer, "decision", "allow"));
	return 0;
}

static void
on_hello(struct bzp_agent *a, const json_t *o)
{
	struct bzp_server *s = a->conn->srv;
	struct bzp_agent_rec rec;
	struct bzp_agent *old;
	uint8_t key[32], sig[64];
	const char *name = bz_json_str(o, "name");
	const char *token = bz_json_str(o, "enrol_token");
	const char *version = bz_json_str(o, "version");
	char why[BZP_ERRLEN + 64], old_why[BZP_ERRLEN];
	int hash_oom = 0;
	json_t *labels = NULL, *ans = NULL;

	memset(&rec, 0, sizeof(rec));
	if (name == NULL || !bzp_name_ok(name, BZP_NAME_MAX)) {
		agent_refused(a, NULL, "agent_hello without a valid name");
		return;
	}
	if (token != NULL && strlen(token) > TOKEN_MAX)
		token = NULL;
	if (bz_json_b64(o, "key", key, sizeof(key)) != 0 ||
	    bz_json_b64(o, "sig", sig, sizeof(sig)) != 0) {
		agent_refused(a, name, "agent_hello needs key and sig "
		    "(base64url)");
		return;
	}
	if (crypto_sign_verify_detached(sig, a->nonce, sizeof(a->nonce),
	    key) != 0) {
		agent_refused(a, name, "bad signature over the challenge");
		return;
	}
	if (check_identity(a, name, key, token, &rec, why, sizeof(why)) != 0) {
		agent_refused(a, name, why);
		goto out;
	}
	memcpy(a->key, key, sizeof(a->key)); /* it signs its SYNACKs */
	if ((labels = json_loads(rec.labels, 0, NULL)) == NULL ||
	    (a->name = strdup(name)) == NULL) {
		agent_refused(a, name, "bzproxy cannot read the agent's labels");
		goto out;
	}
	/* one live connection per agent: the newest wins */
	if ((old = bzp_agent_find(s, name)) != NULL) {
		snprintf(old_why, sizeof(old_why), "target %s reconnected",
		    name);
		agent_unlist(old, old_why);
		bzp_conn_close(old->conn, "replaced by a newer connection of "
		    "agent %s", name);
	}
	if ((ans = json_pack("{s:s, s:O}", "t", "agent_ok", "labels",
	    labels)) == NULL || bzp_conn_send_json(a->conn, 0, 0, ans) != 0) {
		bzp_conn_close(a->conn, "cannot answer agent_hello");
		goto out;
	}
	HASH_ADD_KEYPTR(hh, s->agents, a->name, strlen(a->name), a);
	if (hash_oom) {
		bzp_conn_close(a->conn, "out of memory");
		goto out;
	}
	a->ready = 1;
	bzp_conn_authenticated(a->conn);
	snprintf(a->conn->peer + strlen(a->conn->peer),
	    sizeof(a->conn->peer) - strlen(a->conn->peer), " (%s)", name);
	bz_info("%s: agent %s connected (version %.32s)", a->conn->peer, name,
	    version != NULL ? version : "?");
	(void)bzp_store_agent_seen(s->store, name, time(NULL));
	bzp_audit(s, "agent_connect", bzp_audit_decision(json_pack(
	    "{s:s, s:s, s:O}", "target", name, "peer", a->conn->peer,
	    "labels", labels), "agent_connect", 1, NULL, NULL));
 out:
	json_decref(labels);
	json_decref(ans);
	bzp_agent_rec_clear(&rec);
}

void
bzp_agent_frame(struct bzp_agent *a, const struct bz_frame *f,
    struct bzp_out **msg)
{
	struct bzp_client *cl;
	char err[BZP_ERRLEN];
	json_t *o;
	const char *t;

	if (!a->ready) {
		if (f->type != BZ_FRAME_CONTROL || f->channel_id != 0 ||
		    f->flags != 0 || (o = bz_json_parse_object(f->payload,
		    f->length, err, sizeof(err))) == NULL) {
			bzp_conn_close(a->conn, "protocol violation: expected "
			    "agent_hello");
			return;
		}
		if ((t = bz_json_str(o, "t")) != NULL &&
		    strcmp(t, "agent_hello") == 0)
			on_hello(a, o);
		else
			bzp_conn_close(a->conn, "protocol violation: expected "
			    "agent_hello");
		json_decref(o);
		return;
	}
	if (f->flags != 0 && (f->flags != BZ_FLAG_AGENT_SIGNED ||
	    f->channel_id != 0) && (f->flags != BZ_FLAG_SEALED ||
	    f->channel_id == 0)) {
		/* only its answer to a SYN is signed; a channel's bytes are
		 * sealed (relayed unread) */
		bzp_conn_close(a->conn, "protocol violation: flags 0x%x from "
		    "an agent", f->flags);
		return;
	}
	switch (f->type) {
	case BZ_FRAME_CONTROL:
	case BZ_FRAME_DATA:
	case BZ_FRAME_EXT_DATA:
	case BZ_FRAME_EOF:
	case BZ_FRAME_CLOSE:
	case BZ_FRAME_WINDOW:
		break;
	default:
		bzp_conn_close(a->conn, "protocol violation: %s frame from an "
		    "agent", bz_frame_type_name(f->type));
		return;
	}
	if (f->session_id == 0 || (f->channel_id == 0 &&
	    f->type != BZ_FRAME_CONTROL)) {
		bz_debug("%s: ignored %s frame on session %u channel %u",
		    a->conn->peer, bz_frame_type_name(f->type), f->session_id,
		    f->channel_id);
		return;
	}
	HASH_FIND(agent_hh, a->clients, &f->session_id,
	    sizeof(f->session_id), cl);
	if (cl == NULL)
		return; /* the session ended while this was in flight */
	if (f->channel_id == 0) {
		bzp_client_agent_answer(cl, f);
		return;
	}
	bzp_client_from_agent(cl, f, msg);
}

void
bzp_agent_free(struct bzp_agent *a)
{
	char why[BZP_ERRLEN];

	if (a->ready) {
		if (a->conn->srv->stop)
			snprintf(why, sizeof(why), "%s", BZP_STOPPING);
		else
			snprintf(why, sizeof(why), "target %s disconnected",
			    a->name);
		bz_info("%s: agent %s disconnected", a->conn->peer, a->name);
		agent_unlist(a, why);
	}
	a->conn->agent = NULL;
	free(a->name);
	free(a);
}
