/*
 * client_chain.c: this connection's signed messages (docs/protocol.md,
 * "Two roots of trust"). The SYN names the target, the unix user, the ID
 * token and the key its nonce commits to; the agent answers it with a
 * SYNACK holding a fresh random of its own. Every request after that is
 * signed with the client key and carries a sequence number and the hash
 * of the message before it (the SYNACK for the first), so the agent runs
 * only what this bzsshd asked, once, in order, in this session.
 */
#include "bzsshd.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sodium.h>

#include "chain.h"
#include "util.h"
#include "wire.h"

void
bz_chain_init(struct bz_chain *c, const uint8_t sk[64])
{
	memset(c, 0, sizeof(*c));
	memcpy(c->sk, sk, sizeof(c->sk));
	bz_kx_new(&c->kx);
}

void
bz_chain_clear(struct bz_chain *c)
{
	bz_seal_clear(&c->seal);
	free(c->prev);
	free(c->syn_hash);
	sodium_memzero(c, sizeof(*c));
}

/* Sign o and move the chain on: *out (malloc'ed) is the message. */
static int
sign_next(struct bz_chain *c, json_t *o, uint8_t **out, size_t *n)
{
	char *h;
	int r;

	if ((r = bz_signed_make(o, c->sk, out, n)) != 0)
		return r;
	if ((h = bz_hash_b64(*out, *n)) == NULL) {
		free(*out);
		*out = NULL;
		return BZ_ERR_ALLOC;
	}
	free(c->prev);
	c->prev = h;
	return BZ_OK;
}

char *
bz_chain_syn(struct bz_chain *c, const struct bz_session *s,
    const struct bz_target *t)
{
	uint8_t rnd[BZ_CHAIN_RANDOM_LEN], pk[32], *msg = NULL;
	char *rnd_b64 = NULL, *pk_b64 = NULL, *kx_b64 = NULL, *out = NULL;
	size_t n = 0;
	json_t *o = NULL;

	randombytes_buf(rnd, sizeof(rnd));
	crypto_sign_ed25519_sk_to_pk(pk, c->sk);
	/* the data keys: our X25519 half, and the AEADs we take, the fast
	 * one first */
	if (s->id_token == NULL || s->nonce_salt == NULL ||
	    bz_b64url_encode(rnd, sizeof(rnd), &rnd_b64) != 0 ||
	    bz_b64url_encode(pk, sizeof(pk), &pk_b64) != 0 ||
	    bz_b64url_encode(c->kx.pk, sizeof(c->kx.pk), &kx_b64) != 0 ||
	    (o = json_pack("{s:s, s:i, s:i, s:I, s:s, s:s, s:s, s:s, s:s, "
	    "s:s, s:s, s:[s, s]}", "t", "syn", "seq", 0, "ch", 0, "ts",
	    (json_int_t)time(NULL), "target", t->host, "unix_user", t->user,
	    "id_token", s->id_token, "nonce_salt", s->nonce_salt,
	    "client_key", pk_b64, "client_random", rnd_b64, "kx", kx_b64,
	    "aead", bz_aead_name(bz_aead_best()),
	    bz_aead_name(BZ_AEAD_XCHACHA20POLY1305))) == NULL ||
	    /* after a refresh, the login's own token too: its nonce binds
	     * our key */
	    (s->login_token != NULL && strcmp(s->login_token,
	    s->id_token) != 0 && json_object_set_new(o, "login_token",
	    json_string(s->login_token)) != 0) ||
	    sign_next(c, o, &msg, &n) != 0 ||
	    (c->syn_hash = strdup(c->prev)) == NULL ||
	    bz_b64url_encode(msg, n, &out) != 0)
		out = NULL;
	if (msg != NULL)
		sodium_memzero(msg, n); /* holds the ID token */
	free(msg);
	if (o != NULL)
		json_object_clear(o);
	json_decref(o);
	free(rnd_b64);
	free(pk_b64);
	free(kx_b64);
	return out;
}

int
bz_chain_anchor(struct bz_chain *c, const char *synack_b64)
{
	uint8_t *m = NULL, kx[BZ_SEAL_KX_LEN];
	const uint8_t *json, *sig;
	size_t n = 0, jlen;
	json_t *o = NULL;
	const char *t, *syn;
	char *h = NULL;
	int r = BZ_ERR_INVALID;

	if (synack_b64 == NULL || c->syn_hash == NULL ||
	    bz_b64url_decode(synack_b64, strlen(synack_b64),
	    BZ_WIRE_MAX_CONTROL, &m, &n) != 0 ||
	    bz_signed_split(m, n, &json, &jlen, &sig) != 0 ||
	    (o = bz_json_parse_object(json, jlen, NULL, 0)) == NULL)
		goto out;
	t = bz_json_str(o, "t");
	syn = bz_json_str(o, "syn");
	/* it must answer our SYN, signed by the key it names (the caller
	 * checks that key against its pin) */
	if (t == NULL || strcmp(t, "synack") != 0 || syn == NULL ||
	    strcmp(syn, c->syn_hash) != 0 ||
	    bz_json_b64(o, "agent_key", c->agent_key,
	    sizeof(c->agent_key)) != 0 ||
	    bz_signed_verify(m, n, c->agent_key) != 0 ||
	    bz_json_b64(o, "kx", kx, sizeof(kx)) != 0 ||
	    bz_seal_init(&c->seal, 1, &c->kx, kx,
	    bz_aead_parse(bz_json_str(o, "aead"))) != 0 ||
	    (h = bz_hash_b64(m, n)) == NULL)
		goto out;
	free(c->prev);
	c->prev = h;
	c->anchored = 1;
	r = BZ_OK;
 out:
	json_decref(o);
	free(m);
	return r;
}

int
bz_chain_request(struct bz_chain *c, uint32_t ch, json_t *o, uint8_t **out,
    size_t *n)
{
	*out = NULL;
	if (!c->anchored)
		return BZ_ERR_INVALID;
	if (json_object_set_new(o, "seq", json_integer((json_int_t)
	    (c->seq + 1))) != 0 ||
	    json_object_set_new(o, "prev", json_string(c->prev)) != 0 ||
	    json_object_set_new(o, "ch", json_integer(ch)) != 0 ||
	    json_object_set_new(o, "ts", json_integer((json_int_t)
	    time(NULL))) != 0)
		return BZ_ERR_ALLOC;
	if (sign_next(c, o, out, n) != 0)
		return BZ_ERR_ALLOC;
	c->seq++;
	return BZ_OK;
}
