/*
 * agent_hello.h: the agent's side of the agent link's handshake
 * (docs/protocol.md "Agent link"): read bzproxy's challenge, agent_ok or
 * error, and build the signed agent_hello. Used by bzagent and by the load
 * tool (bench/bzload), so both speak the handshake with one piece of code.
 */
#ifndef BZ_AGENT_HELLO_H
#define BZ_AGENT_HELLO_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

#include "wire.h"

#define BZ_AGENT_NONCE_LEN 32

/* What a handshake frame from bzproxy is. */
enum bz_hs_kind {
	BZ_HS_BAD = 0,      /* not a handshake message: why says what */
	BZ_HS_CHALLENGE,
	BZ_HS_AGENT_OK,
	BZ_HS_REFUSED,      /* {"t":"error"}: why holds its reason */
};

/* The agent's identity, as its config gives it. */
struct bz_agent_id {
	const char *name;
	const uint8_t *pk;        /* 32 bytes */
	const uint8_t *sk;        /* 64 bytes */
	const uint8_t *proxy_pk;  /* 32 bytes: the pinned bzproxy key */
	const char *enrol_token;  /* NULL once not needed */
	const char *version;
};

/*
 * Sort one frame received during the handshake. *obj gets the parsed
 * JSON (caller decrefs) for CHALLENGE and AGENT_OK, NULL otherwise; why
 * gets the reason of BAD and REFUSED.
 */
enum bz_hs_kind bz_agent_hs_read(const struct bz_frame *f, json_t **obj,
    char *why, size_t wl);

/*
 * The agent_hello answering challenge: our name, key and signature over
 * the nonce, and the enrolment token when given. 0, or BZ_ERR_FORMAT (a
 * malformed challenge) or BZ_ERR_INVALID (bzproxy's key is not the pinned
 * one) or BZ_ERR_ALLOC, with why filled. Free *hello with
 * bz_agent_hello_free (it may hold the token).
 */
int bz_agent_hello_make(const json_t *challenge, const struct bz_agent_id *id,
    json_t **hello, char *why, size_t wl);
/* The agent_hello's frame payload, wiped and freed by the caller
 * (bz_agent_hello_wipe). NULL when out of memory. */
char *bz_agent_hello_text(const json_t *hello);
void bz_agent_hello_wipe(char *text);
void bz_agent_hello_free(json_t *hello);

#endif
