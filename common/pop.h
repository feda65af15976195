/*
 * pop.h: proof of possession of the client key (docs/protocol.md, "Client
 * link"). bzproxy opens every /v1/client link with a random challenge;
 * login, hello and whoami carry an Ed25519 signature by the client key
 * over the challenge and what the message asks for, so a copied session
 * token or ID token without the key gets nothing.
 */
#ifndef BZ_POP_H
#define BZ_POP_H

#include <stddef.h>
#include <stdint.h>

#define BZ_POP_CHALLENGE_LEN 32
#define BZ_POP_FIELDS_MAX 4

/*
 * Sign "bz.v1 pop\n" T "\n" b64url(challenge), then "\n" and each field,
 * with the 64-byte secret key sk: *sig_b64 (malloc'ed, base64url). Fields
 * may not hold a newline. 0 or BZ_ERR_*.
 */
int bz_pop_sign(const uint8_t sk[64], const char *t,
    const uint8_t challenge[BZ_POP_CHALLENGE_LEN], const char *const *fields,
    size_t n, char **sig_b64);
/* A login's one field: b64url(SHA-256(id_token)), malloc'ed (or NULL). */
char *bz_pop_token_field(const char *id_token);
/* Check sig_b64 over the same bytes with the 32-byte public key pk: 0, or
 * BZ_ERR_INVALID for a missing, malformed or wrong signature. */
int bz_pop_verify(const uint8_t pk[32], const char *t,
    const uint8_t challenge[BZ_POP_CHALLENGE_LEN], const char *const *fields,
    size_t n, const char *sig_b64);

#endif
