/*
 * client_chain.c: the client's signed messages on their way to the agent
 * (docs/protocol.md, "Two roots of trust"). bzsshd signs the session's
 * SYN (in hello) and every request with the client key; bzproxy checks
 * what it can (the key is the session's, the SYN names what hello asked
 * for), decides, and passes each one on inside an envelope it signs with
 * its own key: the countersignature (decision, rule, MFA time, expiry).
 * Denied requests go on too, marked so: the agent keeps the chain whole.
 * The agent answers the SYN with a SYNACK signed by its own key, which
 * bzsshd receives in hello_ok and chains its first request to.
 */
#include "bzproxy.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sodium.h>

#include "chain.h"
#include "jwt.h"
#include "log.h"
#include "util.h"

#define ENVELOPE_TTL_S 120   /* how long an agent may act on one */

void
bzp_signed_free(struct bzp_signed *m)
{
	if (m->bytes != NULL)
		sodium_memzero(m->bytes, m->len);
	free(m->bytes);
	json_decref(m->json);
	memset(m, 0, sizeof(*m));
}

int
bzp_signed_parse(const uint8_t *p, size_t n, const char *client_key,
    struct bzp_signed *m)
{
	const uint8_t *json, *sig;
	uint8_t pk[32];
	size_t jlen;

	memset(m, 0, sizeof(*m));
	if (bz_signed_split(p, n, &json, &jlen, &sig) != 0 ||
	    (m->json = bz_json_parse_object(json, jlen, NULL, 0)) == NULL)
		return BZ_ERR_FORMAT;
	/* a SYN names its key: the caller checks it is the session's */
	if (client_key == NULL)
		client_key = bz_json_str(m->json, "client_key");
	if (bz_b64_exact(client_key, pk, sizeof(pk)) != 0 ||
	    bz_signed_verify(p, n, pk) != 0 ||
	    (m->bytes = malloc(n)) == NULL) {
		bzp_signed_free(m);
		return BZ_ERR_INVALID;
	}
	memcpy(m->bytes, p, n);
	m->len = n;
	return BZ_OK;
}

int
bzp_send_envelope(struct bzp_client *cl, uint32_t ch,
    const struct bzp_signed *m, const struct bzp_verdict *v)
{
	struct bzp_server *s = cl->conn->srv;
	char *csm = NULL;
	uint8_t *out = NULL;
	size_t n = 0;
	json_t *e = NULL;
	time_t now = time(NULL);
	int r = BZ_ERR_ALLOC;

	if (cl->agent == NULL)
		return BZ_ERR_INVALID;
	if (bz_b64url_encode(m->bytes, m->len, &csm) != 0 ||
	    (e = json_pack("{s:s, s:I, s:I, s:s, s:s, s:s, s:s, s:s, s:I, "
	    "s:I}", "t", "csm", "sid", (json_int_t)cl->sid, "ch",
	    (json_int_t)ch, "csm", csm, "decision", v->allowed ? "allow" :
	    "deny", "action", v->action, "rule", v->rule != NULL ? v->rule :
	    "", "user", cl->user, "mfa_at", (json_int_t)cl->mfa_at, "exp",
	    (json_int_t)(now + ENVELOPE_TTL_S))) == NULL)
		goto out;
	if (!v->allowed && v->reason != NULL &&
	    json_object_set_new(e, "reason", json_string(v->reason)) != 0)
		goto out;
	if ((r = bz_signed_make(e, s->sk, &out, &n)) != 0)
		goto out;
	r = n > BZ_WIRE_MAX_CONTROL ? BZ_ERR_TOO_BIG : bzp_conn_send(
	    cl->agent->conn, BZ_FRAME_CONTROL, BZ_FLAG_PROXY_SIGNED, cl->sid,
	    ch, out, n);
	if (r == 0)
		bzp_conn_hold(cl->conn, cl->agent->conn, &cl->held_by_agent);
 out:
	if (out != NULL)
		sodium_memzero(out, n); /* a SYN holds the ID token */
	free(out);
	if (csm != NULL)
		sodium_memzero(csm, strlen(csm));
	free(csm);
	json_decref(e);
	return r;
}

/* A string member equal to want (a SYN must name what hello asked). */
static int
member_is(const json_t *o, const char *key, const char *want)
{
	const char *v = bz_json_str(o, key);

	return v != NULL && want != NULL && strcmp(v, want) == 0;
}

int
bzp_syn_check(struct bzp_client *cl, const char *syn_b64,
    const char *client_key, const char *login_token, char *why, size_t wl)
{
	const char *current, *login;
	uint8_t *p = NULL;
	size_t n = 0;
	json_t *seq, *ts;
	int64_t now = (int64_t)time(NULL);
	int r = BZ_ERR_INVALID;

	if (syn_b64 == NULL || bz_b64url_decode(syn_b64, strlen(syn_b64),
	    BZ_WIRE_MAX_CONTROL, &p, &n) != 0 ||
	    bzp_signed_parse(p, n, client_key, &cl->syn) != 0) {
		snprintf(why, wl, "hello without a SYN signed by the key of "
		    "your login: run bzsshd login");
		goto out;
	}
	seq = json_object_get(cl->syn.json, "seq");
	ts = json_object_get(cl->syn.json, "ts");
	if (!member_is(cl->syn.json, "t", "syn") || !json_is_integer(seq) ||
	    json_integer_value(seq) != 0 ||
	    !member_is(cl->syn.json, "target", cl->target) ||
	    !member_is(cl->syn.json, "unix_user", cl->unix_user) ||
	    !member_is(cl->syn.json, "client_key", client_key) ||
	    !json_is_integer(ts) || json_integer_value(ts) < now - 300 ||
	    json_integer_value(ts) > now + 300) {
		snprintf(why, wl, "the SYN does not match the hello (or the "
		    "clocks differ): run bzsshd login");
		goto fail;
	}
	/* the login's token, and the one it runs on now */
	current = bz_json_str_max(cl->syn.json, "id_token", BZ_JWT_MAX_LEN);
	login = bz_json_str_max(cl->syn.json, "login_token", BZ_JWT_MAX_LEN);
	if (current == NULL || (login != NULL ? strcmp(login, login_token) :
	    strcmp(current, login_token)) != 0) {
		snprintf(why, wl, "the SYN names another login: run bzsshd "
		    "login");
		goto fail;
	}
	if (bzp_token_check(cl->conn->srv, login_token, current, cl->user,
	    why, wl) != 0)
		goto fail;
	bz_free_secret(&cl->id_token);
	if ((cl->id_token = strdup(current)) == NULL) {
		snprintf(why, wl, "out of memory");
		goto fail;
	}
	r = BZ_OK;
	goto out;
 fail:
	bzp_signed_free(&cl->syn);
 out:
	if (p != NULL)
		sodium_memzero(p, n);
	free(p);
	return r;
}

int
bzp_synack_check(struct bzp_client *cl, const struct bz_frame *f,
    char **synack_b64)
{
	const uint8_t *json, *sig;
	size_t jlen;
	json_t *o = NULL;
	char *h = NULL;
	int r = BZ_ERR_INVALID;

	*synack_b64 = NULL;
	if (f->flags != BZ_FLAG_AGENT_SIGNED || cl->agent == NULL ||
	    bz_signed_verify(f->payload, f->length, cl->agent->key) != 0 ||
	    bz_signed_split(f->payload, f->length, &json, &jlen, &sig) != 0 ||
	    (o = bz_json_parse_object(json, jlen, NULL, 0)) == NULL ||
	    (h = bz_hash_b64(cl->syn.bytes, cl->syn.len)) == NULL ||
	    !member_is(o, "t", "synack") || !member_is(o, "syn", h))
		goto out;
	r = bz_b64url_encode(f->payload, f->length, synack_b64);
 out:
	json_decref(o);
	free(h);
	return r;
}
