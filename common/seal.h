/*
 * seal.h: end-to-end sealing of a session's bytes between bzsshd and the
 * agent (docs/protocol.md, "Sealed data"). Both ends put an ephemeral
 * X25519 key in the signed SYN and SYNACK; libsodium's crypto_kx turns
 * them into one key per direction. Every DATA, EXT_DATA and EOF frame is
 * then sealed with an AEAD (AES-256-GCM where both CPUs have it, else
 * XChaCha20-Poly1305) whose nonce is the channel and the count of frames
 * sealed before on that channel in that direction, and whose additional
 * data is the frame's type and channel: bzproxy relays what it can neither
 * read nor alter, and a frame it drops, replays, reorders or moves to
 * another channel fails to open. Counting per channel, not per session,
 * lets an honest bzproxy drop the frames of a channel that ended without
 * breaking the others; channel numbers are never reused in a session, so
 * a nonce never repeats under one key.
 */
#ifndef BZ_SEAL_H
#define BZ_SEAL_H

#include <stddef.h>
#include <stdint.h>

#include "wire.h" /* BZ_SEALED_TAG: the bytes sealing adds */

#define BZ_SEAL_KX_LEN 32       /* an X25519 public key */

enum bz_aead {
	BZ_AEAD_NONE = 0,
	BZ_AEAD_AES256GCM,
	BZ_AEAD_XCHACHA20POLY1305,
};

/* One side's ephemeral key exchange key pair (secret: wipe it). */
struct bz_kx {
	uint8_t pk[BZ_SEAL_KX_LEN];
	uint8_t sk[32];
};

struct evp_cipher_ctx_st;

/*
 * A session's data keys. AES-256-GCM runs on OpenSSL contexts keyed at
 * first use (about twice libsodium's speed on the same CPU, which counts
 * on a 1 GiB copy), so a bz_seal owns memory: copy one with bz_seal_copy,
 * never by assignment, and end it with bz_seal_clear. Not for two threads
 * at once.
 */
struct bz_seal {
	enum bz_aead aead;      /* BZ_AEAD_NONE: no keys yet */
	uint8_t tx[32], rx[32]; /* secret */
	struct evp_cipher_ctx_st *tx_ctx, *rx_ctx; /* AES-GCM, keyed */
};

/* A fresh key pair. */
void bz_kx_new(struct bz_kx *kx);
/* "aes256gcm" / "xchacha20poly1305", and back (BZ_AEAD_NONE: unknown). */
const char *bz_aead_name(enum bz_aead a);
enum bz_aead bz_aead_parse(const char *name);
/* What this machine can do fast: AES-256-GCM when the CPU has it. */
enum bz_aead bz_aead_best(void);
/*
 * The session keys: client 1 for bzsshd (the SYN's side), 0 for the
 * agent; peer_pk the other side's public key from the signed SYN or
 * SYNACK. kx is wiped. 0 or BZ_ERR_INVALID (a bad peer key).
 */
int bz_seal_init(struct bz_seal *s, int client, struct bz_kx *kx,
    const uint8_t peer_pk[BZ_SEAL_KX_LEN], enum bz_aead aead);
/* The same keys in dst (its own contexts, made at first use). */
void bz_seal_copy(struct bz_seal *dst, const struct bz_seal *src);
/* Wipe the keys and free the contexts. */
void bz_seal_clear(struct bz_seal *s);
/* Seal n bytes of frame (type, ch) into out (n + BZ_SEALED_TAG bytes);
 * *count: frames sealed on ch so far, moved on. 0 or BZ_ERR_INVALID. */
int bz_seal(struct bz_seal *s, uint8_t type, uint32_t ch,
    uint64_t *count, const uint8_t *in, size_t n, uint8_t *out);
/* Open a sealed payload (n >= BZ_SEALED_TAG) into out (n - BZ_SEALED_TAG
 * bytes); *count: frames opened on ch so far, moved on. 0, or
 * BZ_ERR_INVALID when it was not the next frame sealed for us on ch,
 * whole and unchanged. */
int bz_seal_open(struct bz_seal *s, uint8_t type, uint32_t ch,
    uint64_t *count, const uint8_t *in, size_t n, uint8_t *out);

#endif
