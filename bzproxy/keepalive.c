/*
 * keepalive.c: ping a link that has been silent for BZP_PING_AFTER_S and
 * drop it when nothing at all came for BZP_HANGUP_AFTER_S.
 *
 * Not lws's own validity timers: lws 4.1 keeps every timer of the thread
 * in one sorted list and re-inserts a link's validity timer, walking that
 * list from its head, at each frame the link receives. With 10,000 idle
 * agents that walk (cache misses over every link) took 70% of a core at
 * idle and starved a transfer (docs/scale.md). Here a link only records
 * when it last heard its peer, and one timer looks over all links every
 * BZP_KEEPALIVE_TICK_S.
 */
#include "bzproxy.h"

#include <string.h>
#include <libwebsockets.h>

#include "backoff.h"

/* For every piece lws hands us (at most 4 KiB), not once per message
 * (lws_is_final_fragment): a large message arriving slowly is the peer
 * speaking, and counting only its end would hang up on a link busy
 * sending one (a 4 MiB CONTROL frame at under 85 KB/s outlasts
 * BZP_HANGUP_AFTER_S). The clock read costs some 30 ns a piece. */
void
bzp_keepalive_heard(struct bzp_conn *c)
{
	c->heard_ms = bz_now_ms();
	c->ping_state = BZP_PING_NONE;
}

static void on_tick(lws_sorted_usec_list_t *sul);

/* The next look over all links, BZP_KEEPALIVE_TICK_S from now. */
static void
schedule(struct bzp_server *s)
{
	lws_sul_schedule(s->ctx, 0, &s->keepalive_timer, on_tick,
	    (lws_usec_t)BZP_KEEPALIVE_TICK_S * LWS_US_PER_SEC);
}

static void
on_tick(lws_sorted_usec_list_t *sul)
{
	struct bzp_server *s = lws_container_of(sul, struct bzp_server,
	    keepalive_timer);
	int64_t now = bz_now_ms(), idle;
	struct bzp_conn *c;

	for (c = s->conns; c != NULL; c = c->next) {
		if (c->closing)
			continue;
		idle = now - c->heard_ms;
		if (idle >= (int64_t)BZP_HANGUP_AFTER_S * 1000)
			bzp_conn_close(c, "keepalive timeout: nothing heard "
			    "for %d s", BZP_HANGUP_AFTER_S);
		else if (idle >= (int64_t)BZP_PING_AFTER_S * 1000 &&
		    c->ping_state == BZP_PING_NONE) {
			c->ping_state = BZP_PING_DUE;
			lws_callback_on_writable(c->wsi);
		}
	}
	schedule(s);
}

void
bzp_keepalive_start(struct bzp_server *s)
{
	schedule(s);
}

int
bzp_keepalive_write(struct bzp_conn *c)
{
	uint8_t buf[LWS_PRE + 4];

	if (c->ping_state != BZP_PING_DUE)
		return 0;
	c->ping_state = BZP_PING_SENT;
	/* not empty: lws 4.1 does not pass an empty pong on to us */
	memcpy(buf + LWS_PRE, "bzka", 4);
	/* a ping takes this WRITEABLE callback's one write (lws) */
	if (lws_write(c->wsi, buf + LWS_PRE, 4, LWS_WRITE_PING) < 0)
		return -1;
	return 1;
}
