/*
 * chain.h: the signed messages of a session (docs/protocol.md, "Two roots
 * of trust"): a JSON text followed by a 64-byte Ed25519 signature over
 * it, each linked to the one before by its SHA-256 hash. bzsshd signs a
 * session's requests with the client key, the agent its answer to the
 * session's first message with its identity key, bzproxy its
 * countersignature with its own.
 */
#ifndef BZ_CHAIN_H
#define BZ_CHAIN_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

#define BZ_HASH_LEN 32
#define BZ_HASH_B64_LEN 43 /* b64url of BZ_HASH_LEN bytes, no padding */
#define BZ_CHAIN_RANDOM_LEN 32
#define BZ_SALT_MIN 16
#define BZ_SALT_MAX 64

/* Split a signed message p (n bytes) into its JSON text (*json, *jlen)
 * and its 64-byte signature (*sig). 0 or BZ_ERR_FORMAT. */
int bz_signed_split(const uint8_t *p, size_t n, const uint8_t **json,
    size_t *jlen, const uint8_t **sig);
/* Serialise o (bz_json_dump) and append its signature by sk: *out
 * malloc'ed, *outlen bytes. 0 or BZ_ERR_*. */
int bz_signed_make(const json_t *o, const uint8_t sk[64], uint8_t **out,
    size_t *outlen);
/* Is p (n bytes) a message signed by pk? 0 or BZ_ERR_INVALID. */
int bz_signed_verify(const uint8_t *p, size_t n, const uint8_t pk[32]);
/* b64url(SHA-256(p)), malloc'ed, or NULL. */
char *bz_hash_b64(const uint8_t *p, size_t n);
/* The ID token nonce that commits to a client key: b64url(SHA-256(key ||
 * salt)), from the b64url key (32 bytes) and salt (BZ_SALT_MIN to
 * BZ_SALT_MAX bytes); malloc'ed, or NULL when either is malformed. */
char *bz_key_nonce(const char *client_key_b64, const char *salt_b64);
/* b64url text s of exactly n bytes into out: 0 or BZ_ERR_INVALID. */
int bz_b64_exact(const char *s, uint8_t *out, size_t n);
/* The same for a string member of o. */
int bz_json_b64(const json_t *o, const char *key, uint8_t *out, size_t n);

#endif
