/* pop.c: the proof-of-possession signature (pop.h). */
#include "pop.h"

#include <stdlib.h>
#include <string.h>
#include <sodium.h>

#include "buf.h"
#include "util.h"

/* The signed bytes, in b (initialised by the caller). */
static int
pop_message(struct bz_buf *b, const char *t,
    const uint8_t challenge[BZ_POP_CHALLENGE_LEN], const char *const *fields,
    size_t n)
{
	char *c64 = NULL;
	size_t i;
	int r;

	if (n > BZ_POP_FIELDS_MAX || strchr(t, '\n') != NULL)
		return BZ_ERR_INVALID;
	if ((r = bz_b64url_encode(challenge, BZ_POP_CHALLENGE_LEN, &c64)) != 0)
		return r;
	if ((r = bz_buf_put(b, "bz.v1 pop\n", 10)) != 0 ||
	    (r = bz_buf_put(b, t, strlen(t))) != 0 ||
	    (r = bz_buf_put(b, "\n", 1)) != 0 ||
	    (r = bz_buf_put(b, c64, strlen(c64))) != 0)
		goto out;
	for (i = 0; i < n; i++) {
		if (fields[i] == NULL || strchr(fields[i], '\n') != NULL) {
			r = BZ_ERR_INVALID;
			goto out;
		}
		if ((r = bz_buf_put(b, "\n", 1)) != 0 ||
		    (r = bz_buf_put(b, fields[i], strlen(fields[i]))) != 0)
			goto out;
	}
 out:
	free(c64);
	return r;
}

int
bz_pop_sign(const uint8_t sk[64], const char *t,
    const uint8_t challenge[BZ_POP_CHALLENGE_LEN], const char *const *fields,
    size_t n, char **sig_b64)
{
	uint8_t sig[crypto_sign_BYTES];
	struct bz_buf b;
	int r;

	*sig_b64 = NULL;
	bz_buf_init(&b);
	if ((r = pop_message(&b, t, challenge, fields, n)) == 0) {
		crypto_sign_detached(sig, NULL, bz_buf_peek(&b), bz_buf_avail(&b),
		    sk);
		r = bz_b64url_encode(sig, sizeof(sig), sig_b64);
	}
	bz_buf_free(&b);
	return r;
}

char *
bz_pop_token_field(const char *id_token)
{
	uint8_t h[crypto_hash_sha256_BYTES];
	char *out = NULL;

	crypto_hash_sha256(h, (const uint8_t *)id_token, strlen(id_token));
	if (bz_b64url_encode(h, sizeof(h), &out) != 0)
		return NULL;
	return out;
}

int
bz_pop_verify(const uint8_t pk[32], const char *t,
    const uint8_t challenge[BZ_POP_CHALLENGE_LEN], const char *const *fields,
    size_t n, const char *sig_b64)
{
	uint8_t *sig = NULL;
	size_t slen = 0;
	struct bz_buf b;
	int r = BZ_ERR_INVALID;

	if (sig_b64 == NULL || bz_b64url_decode(sig_b64, strlen(sig_b64),
	    crypto_sign_BYTES, &sig, &slen) != 0 ||
	    slen != crypto_sign_BYTES)
		goto out;
	bz_buf_init(&b);
	if (pop_message(&b, t, challenge, fields, n) == 0 &&
	    crypto_sign_verify_detached(sig, bz_buf_peek(&b), bz_buf_avail(&b),
	    pk) == 0)
		r = BZ_OK;
	bz_buf_free(&b);
 out:
	free(sig);
	return r;
}
