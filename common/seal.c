/* seal.c: the AEAD of sealed frames (seal.h). */
#include "seal.h"

#include <string.h>
#include <sodium.h>

#include "util.h"

_Static_assert(crypto_aead_aes256gcm_ABYTES == BZ_SEALED_TAG &&
    crypto_aead_xchacha20poly1305_ietf_ABYTES == BZ_SEALED_TAG,
    "both AEADs add BZ_SEALED_TAG bytes");
_Static_assert(crypto_kx_PUBLICKEYBYTES == BZ_SEAL_KX_LEN &&
    crypto_kx_SESSIONKEYBYTES == 32, "X25519 sizes");

void
bz_kx_new(struct bz_kx *kx)
{
	crypto_kx_keypair(kx->pk, kx->sk);
}

const char *
bz_aead_name(enum bz_aead a)
{
	switch (a) {
	case BZ_AEAD_AES256GCM: return "aes256gcm";
	case BZ_AEAD_XCHACHA20POLY1305: return "xchacha20poly1305";
	default: return "none";
	}
}

enum bz_aead
bz_aead_parse(const char *name)
{
	if (name == NULL)
		return BZ_AEAD_NONE;
	if (strcmp(name, "aes256gcm") == 0)
		return BZ_AEAD_AES256GCM;
	if (strcmp(name, "xchacha20poly1305") == 0)
		return BZ_AEAD_XCHACHA20POLY1305;
	return BZ_AEAD_NONE;
}

enum bz_aead
bz_aead_best(void)
{
	return crypto_aead_aes256gcm_is_available() ? BZ_AEAD_AES256GCM :
	    BZ_AEAD_XCHACHA20POLY1305;
}

int
bz_seal_init(struct bz_seal *s, int client, struct bz_kx *kx,
    const uint8_t peer_pk[BZ_SEAL_KX_LEN], enum bz_aead aead)
{
	int r;

	memset(s, 0, sizeof(*s));
	if (aead == BZ_AEAD_NONE ||
	    (aead == BZ_AEAD_AES256GCM && !crypto_aead_aes256gcm_is_available()))
		r = -1;
	else if (client)
		r = crypto_kx_client_session_keys(s->rx, s->tx, kx->pk, kx->sk,
		    peer_pk);
	else
		r = crypto_kx_server_session_keys(s->rx, s->tx, kx->pk, kx->sk,
		    peer_pk);
	sodium_memzero(kx, sizeof(*kx));
	if (r != 0) {
		bz_seal_clear(s);
		return BZ_ERR_INVALID;
	}
	s->aead = aead;
	return BZ_OK;
}

void
bz_seal_clear(struct bz_seal *s)
{
	sodium_memzero(s, sizeof(*s));
}

/* The nonce: zeros, then the channel and the frame count, big-endian,
 * at the end. */
static void
make_nonce(uint8_t *nonce, size_t len, uint32_t ch, uint64_t n)
{
	size_t i;

	memset(nonce, 0, len);
	for (i = 0; i < 8; i++)
		nonce[len - 1 - i] = (uint8_t)(n >> (8 * i));
	for (i = 0; i < 4; i++)
		nonce[len - 9 - i] = (uint8_t)(ch >> (8 * i));
}

static void
make_ad(uint8_t ad[5], uint8_t type, uint32_t ch)
{
	ad[0] = type;
	ad[1] = (uint8_t)(ch >> 24);
	ad[2] = (uint8_t)(ch >> 16);
	ad[3] = (uint8_t)(ch >> 8);
	ad[4] = (uint8_t)ch;
}

int
bz_seal(const struct bz_seal *s, uint8_t type, uint32_t ch,
    uint64_t *count, const uint8_t *in, size_t n, uint8_t *out)
{
	uint8_t nonce[crypto_aead_xchacha20poly1305_ietf_NPUBBYTES], ad[5];
	unsigned long long clen;
	int r;

	if (s->aead == BZ_AEAD_NONE || *count == UINT64_MAX)
		return BZ_ERR_INVALID;
	make_ad(ad, type, ch);
	if (s->aead == BZ_AEAD_AES256GCM) {
		make_nonce(nonce, crypto_aead_aes256gcm_NPUBBYTES, ch, *count);
		r = crypto_aead_aes256gcm_encrypt(out, &clen, in, n, ad,
		    sizeof(ad), NULL, nonce, s->tx);
	} else {
		make_nonce(nonce, sizeof(nonce), ch, *count);
		r = crypto_aead_xchacha20poly1305_ietf_encrypt(out, &clen, in,
		    n, ad, sizeof(ad), NULL, nonce, s->tx);
	}
	if (r != 0)
		return BZ_ERR_INVALID;
	(*count)++;
	return BZ_OK;
}

int
bz_seal_open(const struct bz_seal *s, uint8_t type, uint32_t ch,
    uint64_t *count, const uint8_t *in, size_t n, uint8_t *out)
{
	uint8_t nonce[crypto_aead_xchacha20poly1305_ietf_NPUBBYTES], ad[5];
	unsigned long long plen;
	int r;

	if (s->aead == BZ_AEAD_NONE || n < BZ_SEALED_TAG || *count == UINT64_MAX)
		return BZ_ERR_INVALID;
	make_ad(ad, type, ch);
	if (s->aead == BZ_AEAD_AES256GCM) {
		make_nonce(nonce, crypto_aead_aes256gcm_NPUBBYTES, ch, *count);
		r = crypto_aead_aes256gcm_decrypt(out, &plen, NULL, in, n, ad,
		    sizeof(ad), nonce, s->rx);
	} else {
		make_nonce(nonce, sizeof(nonce), ch, *count);
		r = crypto_aead_xchacha20poly1305_ietf_decrypt(out, &plen, NULL,
		    in, n, ad, sizeof(ad), nonce, s->rx);
	}
	if (r != 0)
		return BZ_ERR_INVALID;
	(*count)++;
	return BZ_OK;
}
