/*
 * agent_hello.c: the agent's side of the agent link's handshake:
 *   P->A challenge {nonce, proxy_key}
 *   A->P agent_hello {name, key, sig over the nonce, [enrol_token], version}
 *   P->A agent_ok {labels} | error {reason}
 * Only a bzproxy holding the pinned key gets our signature.
 */
#include "agent_hello.h"

#include <stdlib.h>
#include <string.h>
#include <sodium.h>

#include "buf.h"
#include "util.h"

enum bz_hs_kind
bz_agent_hs_read(const struct bz_frame *f, json_t **obj, char *why,
    size_t wl)
{
	char err[128];
	const char *t, *reason;
	json_t *o;

	*obj = NULL;
	if (f->type != BZ_FRAME_CONTROL || f->channel_id != 0 ||
	    f->flags != 0) {
		bz_errf(why, wl, "protocol error: %s frame during the "
		    "handshake", bz_frame_type_name(f->type));
		return BZ_HS_BAD;
	}
	if ((o = bz_json_parse_object(f->payload, f->length, err,
	    sizeof(err))) == NULL) {
		bz_errf(why, wl, "protocol error: %s", err);
		return BZ_HS_BAD;
	}
	t = bz_json_str(o, "t");
	if (t != NULL && strcmp(t, "error") == 0) {
		reason = bz_json_str(o, "reason");
		bz_errf(why, wl, "%.200s", reason != NULL ? reason :
		    "no reason given");
		json_decref(o);
		return BZ_HS_REFUSED;
	}
	if (t != NULL && strcmp(t, "challenge") == 0) {
		*obj = o;
		return BZ_HS_CHALLENGE;
	}
	if (t != NULL && strcmp(t, "agent_ok") == 0) {
		*obj = o;
		return BZ_HS_AGENT_OK;
	}
	bz_errf(why, wl, "protocol error: unexpected \"%.32s\" during the "
	    "handshake", t != NULL ? t : "?");
	json_decref(o);
	return BZ_HS_BAD;
}

int
bz_agent_hello_make(const json_t *challenge, const struct bz_agent_id *id,
    json_t **hello, char *why, size_t wl)
{
	const char *nonce_s = bz_json_str(challenge, "nonce"),
	    *key_s = bz_json_str(challenge, "proxy_key");
	uint8_t *nonce = NULL, *key = NULL, sig[crypto_sign_BYTES];
	size_t nlen = 0, klen = 0;
	char *pk_b64 = NULL, *sig_b64 = NULL;
	json_t *h = NULL;
	int r = BZ_ERR_ALLOC;

	*hello = NULL;
	if (nonce_s == NULL || key_s == NULL ||
	    bz_b64url_decode(nonce_s, strlen(nonce_s), 64, &nonce,
	    &nlen) != 0 || nlen != BZ_AGENT_NONCE_LEN ||
	    bz_b64url_decode(key_s, strlen(key_s), 64, &key, &klen) != 0 ||
	    klen != 32) {
		bz_errf(why, wl, "malformed challenge from bzproxy");
		r = BZ_ERR_FORMAT;
		goto out;
	}
	/* Only the pinned bzproxy may have our signature (and our jobs). */
	if (sodium_memcmp(key, id->proxy_pk, klen) != 0) {
		bz_errf(why, wl, "bzproxy key mismatch");
		r = BZ_ERR_INVALID;
		goto out;
	}
	crypto_sign_detached(sig, NULL, nonce, nlen, id->sk);
	if (bz_b64url_encode(id->pk, 32, &pk_b64) != 0 ||
	    bz_b64url_encode(sig, sizeof(sig), &sig_b64) != 0 ||
	    (h = json_pack("{s:s, s:s, s:s, s:s, s:s}", "t", "agent_hello",
	    "name", id->name, "key", pk_b64, "sig", sig_b64, "version",
	    id->version)) == NULL) {
		bz_errf(why, wl, "out of memory");
		goto out;
	}
	/* Sent every time: bzproxy ignores it once our key is pinned. */
	if (id->enrol_token != NULL && json_object_set_new(h, "enrol_token",
	    json_string(id->enrol_token)) != 0) {
		bz_errf(why, wl, "out of memory");
		goto out;
	}
	*hello = h;
	h = NULL;
	r = 0;
 out:
	bz_agent_hello_free(h);
	free(nonce);
	free(key);
	free(pk_b64);
	free(sig_b64);
	return r;
}

char *
bz_agent_hello_text(const json_t *hello)
{
	return bz_json_dump(hello);
}

void
bz_agent_hello_wipe(char *text)
{
	if (text == NULL)
		return;
	sodium_memzero(text, strlen(text)); /* it held the enrolment token */
	free(text);
}

void
bz_agent_hello_free(json_t *hello)
{
	if (hello == NULL)
		return;
	json_object_del(hello, "enrol_token");
	json_decref(hello);
}
