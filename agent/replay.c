/*
 * replay.c: the nonces of recent channel requests, so a captured signed
 * request cannot be run twice. A request older than REQUEST_MAX_SKEW_S is
 * refused by its timestamp anyway, so each nonce is kept REPLAY_KEEP_S
 * (twice that) and then forgotten; the set never grows past REPLAY_MAX.
 */
#include "agent.h"

#include <stdlib.h>
#include <string.h>
#include <sodium.h>

#define HASH_LEN 16 /* BLAKE2b-128 of the nonce text: fixed-size entries */

struct replay_entry {
	uint8_t hash[HASH_LEN];
	time_t seen;
};

struct replay_cache {
	struct replay_entry *e;
	size_t n;
};

struct replay_cache *
replay_new(void)
{
	return calloc(1, sizeof(struct replay_cache));
}

void
replay_free(struct replay_cache *r)
{
	if (r == NULL)
		return;
	free(r->e);
	free(r);
}

/* Drop entries older than REPLAY_KEEP_S (order is not kept). */
static void
expire(struct replay_cache *r, time_t now)
{
	size_t i = 0;

	while (i < r->n) {
		if (now - r->e[i].seen > REPLAY_KEEP_S ||
		    r->e[i].seen > now + REPLAY_KEEP_S) /* clock stepped back */
			r->e[i] = r->e[--r->n];
		else
			i++;
	}
}

int
replay_check_and_add(struct replay_cache *r, const char *nonce, time_t now)
{
	uint8_t h[HASH_LEN];
	size_t i;

	crypto_generichash(h, sizeof(h), (const uint8_t *)nonce,
	    strlen(nonce), NULL, 0);
	expire(r, now);
	for (i = 0; i < r->n; i++)
		if (memcmp(r->e[i].hash, h, HASH_LEN) == 0)
			return BZ_ERR_FORMAT;
	if (r->n >= REPLAY_MAX)
		return BZ_ERR_TOO_BIG;
	if (r->e == NULL &&
	    (r->e = calloc(REPLAY_MAX, sizeof(*r->e))) == NULL)
		return BZ_ERR_ALLOC;
	memcpy(r->e[r->n].hash, h, HASH_LEN);
	r->e[r->n].seen = now;
	r->n++;
	return BZ_OK;
}
