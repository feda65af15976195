/* seal.c: the AEAD of sealed frames (seal.h). */
#include "seal.h"

#include <limits.h>
#include <string.h>
#include <openssl/evp.h>
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
bz_seal_copy(struct bz_seal *dst, const struct bz_seal *src)
{
	memset(dst, 0, sizeof(*dst));
	dst->aead = src->aead;
	memcpy(dst->tx, src->tx, sizeof(dst->tx));
	memcpy(dst->rx, src->rx, sizeof(dst->rx));
}

void
bz_seal_clear(struct bz_seal *s)
{
	EVP_CIPHER_CTX_free(s->tx_ctx); /* wipes its key schedule */
	EVP_CIPHER_CTX_free(s->rx_ctx);
	sodium_memzero(s, sizeof(*s));
}

/* *ctx keyed with key for AES-256-GCM, made at its first use; 0 or -1. */
static int
gcm_ctx(struct evp_cipher_ctx_st **ctx, const uint8_t key[32], int enc)
{
	if (*ctx != NULL)
		return 0;
	if ((*ctx = EVP_CIPHER_CTX_new()) == NULL)
		return -1;
	if (EVP_CipherInit_ex(*ctx, EVP_aes_256_gcm(), NULL, key, NULL,
	    enc) != 1) {
		EVP_CIPHER_CTX_free(*ctx);
		*ctx = NULL;
		return -1;
	}
	return 0;
}

/*
 * AES-256-GCM as libsodium's crypto_aead_aes256gcm (the same bytes: a
 * 12-byte nonce, the tag after the ciphertext), on a keyed context:
 * encrypt n bytes of in into out and the tag after them, or open n bytes
 * of ciphertext (tag after them) into out. 0, or -1 (out wiped when
 * opening).
 */
static int
gcm_run(EVP_CIPHER_CTX *ctx, int enc, const uint8_t nonce[12],
    const uint8_t *ad, size_t adlen, const uint8_t *in, size_t n,
    uint8_t *out)
{
	uint8_t tag[BZ_SEALED_TAG];
	int len, ok;

	if (n > INT_MAX)
		return -1;
	if (!enc)
		memcpy(tag, in + n, sizeof(tag));
	ok = EVP_CipherInit_ex(ctx, NULL, NULL, NULL, nonce, enc) == 1 &&
	    EVP_CipherUpdate(ctx, NULL, &len, ad, (int)adlen) == 1 &&
	    (n == 0 || EVP_CipherUpdate(ctx, out, &len, in, (int)n) == 1) &&
	    (enc || EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG,
	    BZ_SEALED_TAG, tag) == 1) &&
	    EVP_CipherFinal_ex(ctx, out + n, &len) == 1 &&
	    (!enc || EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG,
	    BZ_SEALED_TAG, tag) == 1);
	if (ok && enc)
		memcpy(out + n, tag, sizeof(tag));
	if (!ok && !enc && n > 0)
		sodium_memzero(out, n);
	return ok ? 0 : -1;
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
bz_seal(struct bz_seal *s, uint8_t type, uint32_t ch,
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
		r = gcm_ctx(&s->tx_ctx, s->tx, 1) != 0 ? -1 :
		    gcm_run(s->tx_ctx, 1, nonce, ad, sizeof(ad), in, n, out);
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
bz_seal_open(struct bz_seal *s, uint8_t type, uint32_t ch,
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
		r = gcm_ctx(&s->rx_ctx, s->rx, 0) != 0 ? -1 :
		    gcm_run(s->rx_ctx, 0, nonce, ad, sizeof(ad), in,
		    n - BZ_SEALED_TAG, out);
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
