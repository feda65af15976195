/*
 * session.c: the sessions bzsshd opened to us, one per SSH connection
 * (docs/protocol.md, "Two roots of trust"). A session starts with the
 * client's SYN, which we check on our own: signed by the client key, for
 * us, fresh, with an ID token that our own copy of the IdP's keys
 * verifies and whose nonce commits to that very key, for a unix user our
 * config serves. We answer with a SYNACK signed by our identity key,
 * holding a random of our own. From then on every message must be signed
 * by the same client key and name the hash of the message before it
 * (the SYNACK for the first) with the next sequence number: bzproxy can
 * pass them on or not, never make, change, replay or reorder one. A
 * session that breaks the chain is dead.
 */
#include "agent.h"

#include <errno.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sodium.h>

#include "chain.h"
#include "util.h"

#define NAME_MAX_LEN 256

struct session_table {
	struct agent_session *head;
	size_t n;
};

struct session_table *
sessions_new(void)
{
	return calloc(1, sizeof(struct session_table));
}

static void
session_free(struct agent_session *s)
{
	free(s->sub);
	bz_seal_clear(&s->seal);
	free(s->user);
	free(s->unix_user);
	free(s->home);
	free(s->shell);
	sodium_memzero(s, sizeof(*s));
	free(s);
}

void
sessions_drop(struct session_table *t, uint32_t sid)
{
	struct agent_session **pp, *s;

	for (pp = &t->head; (s = *pp) != NULL; pp = &s->next)
		if (s->sid == sid) {
			*pp = s->next;
			t->n--;
			session_free(s);
			return;
		}
}

void
sessions_drop_all(struct session_table *t)
{
	struct agent_session *s;

	while ((s = t->head) != NULL) {
		t->head = s->next;
		session_free(s);
	}
	t->n = 0;
}

void
sessions_free(struct session_table *t)
{
	if (t == NULL)
		return;
	sessions_drop_all(t);
	free(t);
}

size_t
sessions_count(const struct session_table *t)
{
	return t->n;
}

struct agent_session *
sessions_find(struct session_table *t, uint32_t sid)
{
	struct agent_session *s;

	for (s = t->head; s != NULL; s = s->next)
		if (s->sid == sid)
			return s;
	return NULL;
}

#define REFUSE(...) do { bz_errf(reason, rl, __VA_ARGS__); goto out; } \
    while (0)

/* getpwnam_r / getpwuid_r into a malloc'ed buffer (*buf, freed by caller). */
static struct passwd *
lookup_user(const char *name, uid_t uid, struct passwd *pw, char **buf)
{
	struct passwd *res = NULL;
	size_t len = 16384;
	char *b;
	int r;

	for (;;) {
		if ((b = realloc(*buf, len)) == NULL)
			return NULL;
		*buf = b;
		r = name != NULL ? getpwnam_r(name, pw, b, len, &res) :
		    getpwuid_r(uid, pw, b, len, &res);
		if (r != ERANGE || len >= 1024 * 1024)
			return r == 0 ? res : NULL;
		len *= 2;
	}
}

/*
 * The unix user: one this target serves (its own config decides, never
 * bzproxy: a bzproxy that asks for root gets no further than its policy
 * would), existing, ours when we are not root.
 */
static enum verify_result
check_unix_user(const struct verify_ctx *v, struct agent_session *s,
    char *reason, size_t rl)
{
	struct passwd pw, *p, me, *pme;
	char *buf = NULL, *mebuf = NULL;
	enum verify_result res = VERIFY_REFUSED;

	if (strcmp(s->unix_user, "root") == 0 && !v->allow_root)
		REFUSE("root is not allowed here (the agent's allow_root)");
	if (!permit_unix_user(v->unix_users, s->unix_user))
		REFUSE("%s does not serve unix user %s (the agent's "
		    "unix_users)", v->name, s->unix_user);
	if ((p = lookup_user(s->unix_user, 0, &pw, &buf)) == NULL)
		REFUSE("no such user \"%s\" on %s", s->unix_user, v->name);
	/* another name for uid 0 is still root */
	if (p->pw_uid == 0 && !v->allow_root)
		REFUSE("user %s has uid 0 and root is not allowed here (the "
		    "agent's allow_root)", s->unix_user);
	if (v->euid != 0 && p->pw_uid != v->euid) {
		const char *self = "uid?";

		if ((pme = lookup_user(NULL, v->euid, &me, &mebuf)) != NULL)
			self = pme->pw_name;
		REFUSE("this agent runs as %s and can only serve %s", self,
		    self);
	}
	s->uid = p->pw_uid;
	s->gid = p->pw_gid;
	if ((s->home = strdup(p->pw_dir != NULL && p->pw_dir[0] != '\0' ?
	    p->pw_dir : "/")) == NULL ||
	    (s->shell = strdup(p->pw_shell != NULL &&
	    p->pw_shell[0] == '/' ? p->pw_shell : "/bin/sh")) == NULL)
		REFUSE("out of memory");
	res = VERIFY_OK;
 out:
	free(buf);
	free(mebuf);
	return res;
}

/* Verify token against our JWKS (nonce: the one it must carry; max_age >
 * 0: a login's token, which may have expired): claims, or NULL with
 * reason (*res VERIFY_NEED_KEYS when the IdP may have rotated its keys). */
static json_t *
verify_token(const struct verify_ctx *v, const char *token, const char *nonce,
    long max_age, const char *what, enum verify_result *res, char *reason,
    size_t rl)
{
	struct bz_jwt_expect ex = { v->issuer, v->audience, nonce, v->now,
	    max_age };
	char err[AGENT_ERRLEN] = "";
	json_t *claims = NULL;

	*res = VERIFY_REFUSED;
	if (v->jwks == NULL) {
		*res = VERIFY_NEED_KEYS;
		snprintf(reason, rl, "agent has no IdP keys yet");
		return NULL;
	}
	if (bz_jwt_verify(v->jwks, token, &ex, &claims, err,
	    sizeof(err)) != 0) {
		if (strstr(err, "unknown key id") != NULL)
			*res = VERIFY_NEED_KEYS;
		snprintf(reason, rl, "%s rejected: %s", what, err);
		return NULL;
	}
	return claims;
}

/* The login a session runs on: its sub and auth_time (a refreshed token
 * must name the same), the user (email), until when. */
static enum verify_result
take_login(struct agent_session *s, const json_t *login, const json_t *cur,
    char *reason, size_t rl)
{
	const char *email = bz_json_str_max(cur, "email", NAME_MAX_LEN);
	const char *sub = bz_json_str_max(login, "sub", NAME_MAX_LEN);
	json_t *exp = json_object_get(cur, "exp");
	json_t *at = json_object_get(login, "auth_time");
	enum verify_result res = VERIFY_REFUSED;

	if (email == NULL || email[0] == '\0')
		REFUSE("ID token has no email claim");
	if (sub == NULL)
		REFUSE("ID token has no subject (sub)");
	if ((s->user = strdup(email)) == NULL ||
	    (s->sub = strdup(sub)) == NULL)
		REFUSE("out of memory");
	s->auth_time = json_is_integer(at) ? json_integer_value(at) : 0;
	s->token_exp = json_is_integer(exp) ? json_integer_value(exp) : 0;
	res = VERIFY_OK;
 out:
	return res;
}

/*
 * The SYN's ID tokens, against our own JWKS. The login's token (the SYN's
 * "login_token", or its "id_token" when there is none) must carry a nonce
 * that commits to the SYN's client key; it may have expired, if issued
 * within login_max_age. The current one ("id_token") must be valid now
 * and continue that login (same sub and auth_time). docs/protocol.md
 * "Long sessions".
 */
static enum verify_result
check_token(const struct verify_ctx *v, const json_t *syn,
    struct agent_session *s, char *reason, size_t rl)
{
	char err[AGENT_ERRLEN] = "", *nonce = NULL;
	const char *token, *login;
	json_t *cur = NULL, *lc = NULL;
	enum verify_result res = VERIFY_REFUSED;

	if ((token = bz_json_str_max(syn, "id_token", BZ_JWT_MAX_LEN)) == NULL)
		REFUSE("the session has no ID token");
	login = bz_json_str_max(syn, "login_token", BZ_JWT_MAX_LEN);
	if ((nonce = bz_key_nonce(bz_json_str(syn, "client_key"),
	    bz_json_str(syn, "nonce_salt"))) == NULL)
		REFUSE("the session has no client key and salt");
	if (login == NULL) {
		if ((cur = verify_token(v, token, nonce, 0, "ID token", &res,
		    reason, rl)) == NULL)
			goto out;
		res = take_login(s, cur, cur, reason, rl);
		goto out;
	}
	if ((lc = verify_token(v, login, nonce, v->login_max_age,
	    "login ID token", &res, reason, rl)) == NULL ||
	    (cur = verify_token(v, token, NULL, 0, "refreshed ID token", &res,
	    reason, rl)) == NULL)
		goto out;
	res = VERIFY_REFUSED;
	if (bz_jwt_same_login(lc, cur, err, sizeof(err)) != 0)
		REFUSE("%s", err);
	res = take_login(s, lc, cur, reason, rl);
 out:
	json_decref(cur);
	json_decref(lc);
	free(nonce);
	return res;
}

int
session_token(struct agent_session *s, const struct verify_ctx *v,
    const struct envelope *e, char *reason, size_t rl)
{
	const char *token = bz_json_str_max(e->msg, "id_token",
	    BZ_JWT_MAX_LEN), *sub, *email;
	enum verify_result vr;
	json_t *cur = NULL, *at, *exp;
	int r = BZ_ERR_INVALID;

	if (token == NULL)
		REFUSE("a token message without an ID token");
	if ((cur = verify_token(v, token, NULL, 0, "refreshed ID token", &vr,
	    reason, rl)) == NULL)
		goto out;
	sub = bz_json_str(cur, "sub");
	email = bz_json_str(cur, "email");
	at = json_object_get(cur, "auth_time");
	exp = json_object_get(cur, "exp");
	if (sub == NULL || strcmp(sub, s->sub) != 0 || email == NULL ||
	    strcmp(email, s->user) != 0 || (s->auth_time != 0 &&
	    json_is_integer(at) && json_integer_value(at) != s->auth_time))
		REFUSE("the refreshed ID token is not of this session's login");
	if (!json_is_integer(exp))
		REFUSE("the refreshed ID token has no expiry");
	s->token_exp = json_integer_value(exp);
	r = BZ_OK;
 out:
	json_decref(cur);
	return r;
}

/* Our SYNACK: the SYN's hash, a random of ours, our half of the key
 * exchange and the AEAD we took, signed by our key. */
static int
make_synack(const struct verify_ctx *v, const struct envelope *e,
    const uint8_t agent_pk[32], const uint8_t agent_sk[64],
    const uint8_t kx_pk[BZ_SEAL_KX_LEN], enum bz_aead aead,
    uint8_t **out, size_t *n)
{
	uint8_t rnd[BZ_CHAIN_RANDOM_LEN];
	char *rnd_b64 = NULL, *pk_b64 = NULL, *kx_b64 = NULL, *syn = NULL;
	json_t *o = NULL;
	int r = BZ_ERR_ALLOC;

	randombytes_buf(rnd, sizeof(rnd));
	if (bz_b64url_encode(rnd, sizeof(rnd), &rnd_b64) == 0 &&
	    bz_b64url_encode(agent_pk, 32, &pk_b64) == 0 &&
	    bz_b64url_encode(kx_pk, BZ_SEAL_KX_LEN, &kx_b64) == 0 &&
	    (syn = bz_hash_b64(e->csm, e->csm_len)) != NULL &&
	    (o = json_pack("{s:s, s:I, s:s, s:s, s:s, s:s, s:I, s:s, s:s}",
	    "t", "synack", "sid", (json_int_t)e->sid, "syn", syn,
	    "agent_random", rnd_b64, "agent_key", pk_b64, "target", v->name,
	    "ts", (json_int_t)v->now, "kx", kx_b64, "aead",
	    bz_aead_name(aead))) != NULL)
		r = bz_signed_make(o, agent_sk, out, n);
	json_decref(o);
	free(rnd_b64);
	free(pk_b64);
	free(kx_b64);
	free(syn);
	return r;
}

/* The first AEAD of the SYN's list (the client's preference) that we
 * can run, or BZ_AEAD_NONE. */
static enum bz_aead
pick_aead(const json_t *syn)
{
	const json_t *list = json_object_get(syn, "aead");
	enum bz_aead a;
	size_t i;

	if (!json_is_array(list) || json_array_size(list) > 8)
		return BZ_AEAD_NONE;
	for (i = 0; i < json_array_size(list); i++) {
		a = bz_aead_parse(json_string_value(json_array_get(list, i)));
		if (a == BZ_AEAD_XCHACHA20POLY1305 ||
		    (a == BZ_AEAD_AES256GCM && bz_aead_best() == a))
			return a;
	}
	return BZ_AEAD_NONE;
}

enum verify_result
session_syn(struct session_table *t, const struct verify_ctx *v,
    const struct envelope *e, const uint8_t agent_pk[32],
    const uint8_t agent_sk[64], uint8_t **synack, size_t *synack_len,
    char *reason, size_t rl)
{
	struct agent_session *s = NULL;
	const char *str;
	uint8_t pk[32], peer_kx[BZ_SEAL_KX_LEN], kx_pk[BZ_SEAL_KX_LEN];
	struct bz_kx kx;
	enum bz_aead aead;
	json_int_t seq, ts;
	enum verify_result res = VERIFY_REFUSED;

	*synack = NULL;
	if (e->ch != 0 || strcmp(e->t, "syn") != 0)
		REFUSE("a session starts with a SYN on channel 0");
	if (!e->allowed)
		REFUSE("bzproxy did not allow the session: %s",
		    e->reason != NULL ? e->reason : "no reason given");
	if (sessions_find(t, e->sid) != NULL)
		REFUSE("session %u has started already", e->sid);
	if (sessions_count(t) >= AGENT_MAX_SESSIONS)
		REFUSE("too many sessions on this agent");
	/* the client's own signature, by the key the SYN names */
	if (bz_json_b64(e->msg, "client_key", pk, sizeof(pk)) != 0 ||
	    bz_signed_verify(e->csm, e->csm_len, pk) != 0)
		REFUSE("the SYN is not signed by its client key");
	if (bz_json_int_range(e->msg, "seq", 0, 0, &seq) != 0 ||
	    bz_json_int_range(e->msg, "ts", 0, INT64_MAX, &ts) != 0 ||
	    ts < (json_int_t)v->now - REQUEST_MAX_SKEW_S ||
	    ts > (json_int_t)v->now + REQUEST_MAX_SKEW_S)
		REFUSE("the SYN is stale or from the future (check the "
		    "clocks)");
	if ((str = bz_json_str_max(e->msg, "target", NAME_MAX_LEN)) == NULL ||
	    strcmp(str, v->name) != 0)
		REFUSE("the session is for another target, not %s", v->name);
	if ((s = calloc(1, sizeof(*s))) == NULL)
		REFUSE("out of memory");
	s->sid = e->sid;
	memcpy(s->client_pk, pk, sizeof(pk));
	if ((str = bz_json_str_max(e->msg, "unix_user", NAME_MAX_LEN)) ==
	    NULL || str[0] == '\0' || (s->unix_user = strdup(str)) == NULL)
		REFUSE("the SYN names no unix user");
	if ((res = check_token(v, e->msg, s, reason, rl)) != VERIFY_OK)
		goto out;
	res = VERIFY_REFUSED;
	if (check_unix_user(v, s, reason, rl) != VERIFY_OK)
		goto out;
	/* the data keys: the SYN's X25519 half and a fresh one of ours */
	if ((aead = pick_aead(e->msg)) == BZ_AEAD_NONE)
		REFUSE("the SYN offers no AEAD this agent runs");
	bz_kx_new(&kx);
	memcpy(kx_pk, kx.pk, sizeof(kx_pk));
	if (bz_json_b64(e->msg, "kx", peer_kx, sizeof(peer_kx)) != 0 ||
	    bz_seal_init(&s->seal, 0, &kx, peer_kx, aead) != 0)
		REFUSE("the SYN carries no usable key exchange (kx)");
	if (make_synack(v, e, agent_pk, agent_sk, kx_pk, aead, synack,
	    synack_len) != 0)
		REFUSE("out of memory");
	crypto_hash_sha256(s->last_hash, *synack, *synack_len);
	s->next = t->head;
	t->head = s;
	t->n++;
	s = NULL;
	res = VERIFY_OK;
 out:
	sodium_memzero(&kx, sizeof(kx));
	if (s != NULL)
		session_free(s);
	return res;
}

int
session_next(struct agent_session *s, const struct verify_ctx *v,
    const struct envelope *e, char *reason, size_t rl)
{
	char *prev = NULL;
	json_int_t seq, ch, ts;
	int r = BZ_ERR_INVALID;

	if (s->broken)
		REFUSE("this session broke its chain before: reconnect");
	if (bz_signed_verify(e->csm, e->csm_len, s->client_pk) != 0)
		REFUSE("a request not signed by the session's client key");
	if (bz_b64url_encode(s->last_hash, sizeof(s->last_hash), &prev) != 0)
		REFUSE("out of memory");
	if (bz_json_int_range(e->msg, "seq", 1, INT64_MAX, &seq) != 0 ||
	    (uint64_t)seq != s->last_seq + 1 ||
	    bz_json_str(e->msg, "prev") == NULL ||
	    strcmp(bz_json_str(e->msg, "prev"), prev) != 0)
		REFUSE("a request out of the session's chain (replayed, "
		    "reordered or one missing)");
	/* channel 0: the session's own messages (a refreshed token) */
	if (bz_json_int_range(e->msg, "ch", strcmp(e->t, "token") == 0 ? 0 :
	    1, UINT32_MAX, &ch) != 0 || (uint32_t)ch != e->ch)
		REFUSE("a request for another channel");
	if (bz_json_int_range(e->msg, "ts", 0, INT64_MAX, &ts) != 0 ||
	    ts < (json_int_t)v->now - REQUEST_MAX_SKEW_S ||
	    ts > (json_int_t)v->now + REQUEST_MAX_SKEW_S)
		REFUSE("a request stale or from the future (check the clocks)");
	crypto_hash_sha256(s->last_hash, e->csm, e->csm_len);
	s->last_seq = (uint64_t)seq;
	r = BZ_OK;
 out:
	if (r != BZ_OK)
		s->broken = 1;
	free(prev);
	return r;
}
