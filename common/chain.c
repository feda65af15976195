/* chain.c: signed messages and their hashes (chain.h). */
#include "chain.h"

#include <stdlib.h>
#include <string.h>
#include <sodium.h>

#include "util.h"

int
bz_signed_split(const uint8_t *p, size_t n, const uint8_t **json,
    size_t *jlen, const uint8_t **sig)
{
	if (p == NULL || n <= crypto_sign_BYTES)
		return BZ_ERR_FORMAT;
	*jlen = n - crypto_sign_BYTES;
	*json = p;
	*sig = p + *jlen;
	return BZ_OK;
}

int
bz_signed_make(const json_t *o, const uint8_t sk[64], uint8_t **out,
    size_t *outlen)
{
	char *js;
	size_t n;
	uint8_t *p;

	*out = NULL;
	if ((js = bz_json_dump(o)) == NULL)
		return BZ_ERR_ALLOC;
	n = strlen(js);
	if ((p = malloc(n + crypto_sign_BYTES)) == NULL) {
		sodium_memzero(js, n);
		free(js);
		return BZ_ERR_ALLOC;
	}
	memcpy(p, js, n);
	crypto_sign_detached(p + n, NULL, p, n, sk);
	sodium_memzero(js, n); /* may hold an ID token */
	free(js);
	*out = p;
	*outlen = n + crypto_sign_BYTES;
	return BZ_OK;
}

int
bz_signed_verify(const uint8_t *p, size_t n, const uint8_t pk[32])
{
	const uint8_t *json, *sig;
	size_t jlen;

	if (bz_signed_split(p, n, &json, &jlen, &sig) != 0 ||
	    crypto_sign_verify_detached(sig, json, jlen, pk) != 0)
		return BZ_ERR_INVALID;
	return BZ_OK;
}

char *
bz_hash_b64(const uint8_t *p, size_t n)
{
	uint8_t h[crypto_hash_sha256_BYTES];
	char *out = NULL;

	crypto_hash_sha256(h, p, n);
	if (bz_b64url_encode(h, sizeof(h), &out) != 0)
		return NULL;
	return out;
}

char *
bz_key_nonce(const char *client_key_b64, const char *salt_b64)
{
	uint8_t *k = NULL, *sl = NULL, h[crypto_hash_sha256_BYTES];
	size_t kn, sn;
	crypto_hash_sha256_state st;
	char *out = NULL;

	if (client_key_b64 == NULL || salt_b64 == NULL ||
	    bz_b64url_decode(client_key_b64, strlen(client_key_b64),
	    crypto_sign_PUBLICKEYBYTES, &k, &kn) != 0 ||
	    kn != crypto_sign_PUBLICKEYBYTES ||
	    bz_b64url_decode(salt_b64, strlen(salt_b64), BZ_SALT_MAX, &sl,
	    &sn) != 0 || sn < BZ_SALT_MIN)
		goto out;
	crypto_hash_sha256_init(&st);
	crypto_hash_sha256_update(&st, k, kn);
	crypto_hash_sha256_update(&st, sl, sn);
	crypto_hash_sha256_final(&st, h);
	(void)bz_b64url_encode(h, sizeof(h), &out);
 out:
	free(k);
	free(sl);
	return out;
}

int
bz_json_b64(const json_t *o, const char *key, uint8_t *out, size_t n)
{
	return bz_b64_exact(bz_json_str(o, key), out, n);
}

int
bz_b64_exact(const char *v, uint8_t *out, size_t n)
{
	uint8_t *d = NULL;
	size_t dn = 0;
	int r = BZ_ERR_INVALID;

	if (v != NULL && bz_b64url_decode(v, strlen(v), n, &d, &dn) == 0 &&
	    dn == n) {
		memcpy(out, d, n);
		r = BZ_OK;
	}
	free(d);
	return r;
}
