/*
 * ssh_forward.c: ssh -L, -W and -D arrive as direct-tcpip channel opens;
 * -R as a tcpip-forward global request.
 *
 * A direct-tcpip open is answered only once bzproxy has decided (policy
 * action port_forward, checked against the destination) and the agent
 * has connected, so that a refused destination ends in ssh's "open
 * failed", never in a channel that opens and then hangs up. libssh 0.10
 * must have its answer before the message callback returns (the message
 * is freed after it), so we wait here, routing every other frame as
 * usual, for at most FORWARD_WAIT_MS; the agent gives up connecting
 * before that (AGENT_FORWARD_TIMEOUT_MS). libssh can only refuse with an
 * empty description, so our reason goes to stderr, which a plain ssh
 * shows the user.
 *
 * -R would make the target listen for connections that travel back to
 * the user: bzproxy's policies have no such action, so it is refused.
 */
#include "ssh_conn.h"

#include <stdio.h>
#include <string.h>

#include "backoff.h"
#include "log.h"
#include "util.h"

#define FORWARD_WAIT_MS 15000
#define HOST_MAX 255

static int
host_ok(const char *h)
{
	size_t i, n = h != NULL ? strlen(h) : 0;

	if (n == 0 || n > HOST_MAX)
		return 0;
	for (i = 0; i < n; i++)
		if ((unsigned char)h[i] <= ' ' || h[i] == 0x7f)
			return 0;
	return 1;
}

/* Wait until the forward opened or failed, or FORWARD_WAIT_MS. */
static void
wait_open(struct bz_conn *c, struct bz_chan *ch)
{
	int64_t deadline = bz_now_ms() + FORWARD_WAIT_MS;

	for (;;) {
		bz_conn_drain(c);
		if (ch->opened || ch->ending)
			return;
		if (c->link_lost) {
			bz_chan_fail(ch, c->reason[0] ? c->reason :
			    "connection to bzproxy lost");
			return;
		}
		if (bz_now_ms() >= deadline) {
			bz_chan_fail(ch, "no answer from the target in time");
			return;
		}
		bz_link_wait(c->link, 200);
	}
}

int
bz_forward_open(struct bz_conn *c, ssh_message m)
{
	const char *host = ssh_message_channel_request_open_destination(m);
	const char *orig = ssh_message_channel_request_open_originator(m);
	int port = ssh_message_channel_request_open_destination_port(m);
	int oport = ssh_message_channel_request_open_originator_port(m);
	struct bz_chan *ch;
	ssh_channel sc;
	json_t *o;

	if (!c->authed)
		return 1;
	if (!host_ok(host) || port < 1 || port > 65535) {
		fprintf(stderr, "bzsshd: forward refused: not a host name and "
		    "port\n");
		return 1;
	}
	if (c->refused || c->link_lost) {
		fprintf(stderr, "bzsshd: forward to %s port %d refused: %s\n",
		    host, port, c->reason[0] ? c->reason : "no connection to "
		    "bzproxy");
		c->refused_told = 1;
		return 1;
	}
	if ((ch = bz_chan_new(c, BZ_CHAN_FORWARD)) == NULL)
		return 1;
	bz_chan_send_json(ch, json_pack("{s:s, s:s}", "t", "open", "kind",
	    "direct-tcpip"));
	o = json_pack("{s:s, s:s, s:i}", "t", "forward", "host", host, "port",
	    port);
	if (o != NULL && host_ok(orig) && oport >= 0 && oport <= 65535) {
		json_object_set_new(o, "orig_host", json_string(orig));
		json_object_set_new(o, "orig_port", json_integer(oport));
	}
	if (bz_chan_send_signed(ch, o) == 0)
		wait_open(c, ch);
	else
		bz_chan_fail(ch, "cannot sign the forward request");
	if (ch->opened && !ch->ending &&
	    (sc = ssh_message_channel_request_open_reply_accept(m)) != NULL) {
		bz_chan_attach(ch, sc);
		return 0;
	}
	fprintf(stderr, "bzsshd: forward to %s port %d refused: %s\n", host,
	    port, ch->why != NULL ? ch->why : "cannot open the SSH channel");
	/* bzproxy (and the agent, if it connected) forget it */
	bz_chan_send_frame(ch, BZ_FRAME_CLOSE, NULL, 0);
	bz_chan_discard(ch);
	return 1;
}

int
bz_global_request(struct bz_conn *c, ssh_message m)
{
	const char *text = "remote forwarding (ssh -R) is not available "
	    "through bzproxy: a target takes no connections back to you";

	if (ssh_message_subtype(m) == SSH_GLOBAL_REQUEST_TCPIP_FORWARD) {
		fprintf(stderr, "bzsshd: %s (-R %s:%d refused)\n", text,
		    ssh_message_global_request_address(m) != NULL ?
		    ssh_message_global_request_address(m) : "",
		    ssh_message_global_request_port(m));
		bz_conn_note_refused(c, 0, "tcpip-forward", text);
	}
	return 1;
}
