/*
 * sids.c: session ids (the audit log's "sid", the wire's session_id)
 * unique across restarts. They come from blocks the store reserves
 * durably before the first id of a block is used, so neither a restart
 * nor a crash hands one out twice; a restart only skips the rest of its
 * block.
 */
#include "bzproxy.h"

#include "log.h"

#define SID_BLOCK 1024

/* Is sid in use by a live client link? (only after 2^32-1 ids wrapped) */
static int
in_use(const struct bzp_server *s, uint32_t sid)
{
	const struct bzp_conn *c;

	for (c = s->conns; c != NULL; c = c->next)
		if (c->client != NULL && c->client->sid == sid)
			return 1;
	return 0;
}

uint32_t
bzp_sid_new(struct bzp_server *s)
{
	uint32_t sid, first;

	do {
		if (s->sid_left == 0) {
			if (bzp_store_sid_block(s->store, SID_BLOCK,
			    &first) != 0) {
				bz_error("cannot reserve session ids: %s",
				    bzp_store_errmsg(s->store));
				return 0;
			}
			s->next_sid = first;
			s->sid_left = SID_BLOCK;
		}
		sid = s->next_sid++;
		s->sid_left--;
	} while (in_use(s, sid));
	return sid;
}
