/*
 * ssh_channel_map.c: each SSH channel becomes one wire channel
 * (docs/protocol.md); its requests are ssh_requests.c's and
 * ssh_forward.c's, its bytes are here: DATA/EOF/CLOSE frames, and two
 * credit windows bound memory:
 *  - agent -> client: the agent sends at most recv_window; we grant it back
 *    (WINDOW) only as bytes go into the SSH channel.
 *  - client -> agent: we send at most send_window; beyond it the data
 *    callback consumes nothing, libssh keeps the bytes and holds back the
 *    SSH window, so ssh itself slows down.
 *
 * Reading what libssh kept (libssh 0.10 channels.c): ssh_channel_read*()
 * tops the SSH window back up to 1.28 MB after every read while it is
 * under 640 KB, however much libssh still buffers. Reading the backlog a
 * credit's worth at a time would so let ssh send ~1.28 MB per read, the
 * backlog grows without end, and at 256 MB ssh_buffer_add_data fails:
 * libssh frees the channel's buffer (bytes lost) and leaves it NULL (the
 * next ssh_channel_poll crashes). So we take the whole backlog at once
 * into ch->in, and only when ch->in is empty: libssh then holds at most
 * ~1.9 MB (it grows the window on a packet only while window + buffered
 * < 640 KB), and ch->in at most what libssh held. Bytes leave in order:
 * ch->in first, then what libssh holds.
 */
#include "ssh_conn.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sodium.h>

#include "log.h"
#include "util.h"

#define SSH_WRITE_CHUNK (32u * 1024)
/* Grant credit back once this much was consumed (<= half a window). */
#define GRANT_THRESHOLD (BZ_WIRE_INITIAL_WINDOW / 4)
#define COMPACT_AT (512u * 1024)
/* libssh holds ~1.9 MB at most for a client that keeps to its window;
 * past this the client ignores it and the channel ends (libssh's own
 * limit, 256 MB, would lose data and crash). */
#define HELD_MAX (8u * 1024 * 1024)
#define PULL_CHUNK (64u * 1024)

struct bz_chan *
bz_chan_find(struct bz_conn *c, uint32_t id)
{
	struct bz_chan *ch;

	for (ch = c->chans; ch != NULL; ch = ch->next)
		if (ch->id == id)
			return ch;
	return NULL;
}

/* Is there a bzproxy to tell? (Not when access was refused.) */
static int
can_tell_proxy(const struct bz_chan *ch)
{
	return ch->conn->link != NULL && !ch->conn->refused;
}

void
bz_chan_send_json(struct bz_chan *ch, json_t *o)
{
	if (o == NULL || !can_tell_proxy(ch) ||
	    bz_link_send_json(ch->conn->link, ch->id, o) != 0)
		bz_debug("channel %u: cannot queue a control message", ch->id);
	json_decref(o);
}

int
bz_chan_send_signed(struct bz_chan *ch, json_t *o)
{
	uint8_t *msg = NULL;
	size_t n = 0;
	int r = BZ_ERR_INVALID;

	if (o != NULL && can_tell_proxy(ch) &&
	    (r = bz_chain_request(&ch->conn->chain, ch->id, o, &msg,
	    &n)) == 0)
		r = bz_link_send_frame(ch->conn->link, BZ_FRAME_CONTROL,
		    BZ_FLAG_CLIENT_SIGNED, 0, ch->id, msg, n);
	if (r != 0)
		bz_debug("channel %u: cannot queue a signed request", ch->id);
	if (msg != NULL)
		sodium_memzero(msg, n);
	free(msg);
	json_decref(o);
	return r;
}

static int
is_sealed_type(uint8_t type)
{
	return type == BZ_FRAME_DATA || type == BZ_FRAME_EXT_DATA ||
	    type == BZ_FRAME_EOF;
}

void
bz_chan_send_frame(struct bz_chan *ch, uint8_t type, const void *p, size_t n)
{
	uint8_t sealed[BZ_WIRE_MAX_PAYLOAD];
	int r = BZ_ERR_INVALID;

	if (!can_tell_proxy(ch))
		;
	else if (!is_sealed_type(type))
		r = bz_link_send(ch->conn->link, type, ch->id, p, n);
	else if (n <= sizeof(sealed) - BZ_SEALED_TAG &&
	    bz_seal(&ch->conn->chain.seal, type, ch->id, &ch->sealed_n, p, n,
	    sealed) == 0)
		r = bz_link_send_frame(ch->conn->link, type, BZ_FLAG_SEALED, 0,
		    ch->id, sealed, n + BZ_SEALED_TAG);
	if (r != 0)
		bz_debug("channel %u: cannot queue a %s frame", ch->id,
		    bz_frame_type_name(type));
}

void
bz_chan_eow(struct bz_chan *ch)
{
	if (ch->client_eow || ch->kind != BZ_CHAN_SESSION || !ch->started)
		return;
	bz_debug("channel %u: ssh's reader is gone (eow)", ch->id);
	ch->client_eow = 1;
	/* what ssh will not read: dropped, its credit given back */
	ch->consumed += (uint32_t)bz_buf_avail(&ch->out);
	bz_buf_reset(&ch->out);
	bz_chan_send_json(ch, json_pack("{s:s}", "t", "eow"));
}

void
bz_chan_fail(struct bz_chan *ch, const char *reason)
{
	char line[BZSSHD_ERRLEN + 16];
	int n;

	if (ch->ending)
		return; /* the first reason is the one ssh shows */
	if (ch->why == NULL)
		ch->why = strdup(reason);
	n = snprintf(line, sizeof(line), "bzsshd: %s\r\n", reason);
	if (n > 0 && !ch->close_sent && ch->kind == BZ_CHAN_SESSION)
		(void)bz_buf_put(&ch->err, line, strlen(line));
	if (!ch->have_exit && ch->kind == BZ_CHAN_SESSION) {
		ch->have_exit = 1;
		ch->exit_status = 255;
	}
	ch->ending = 1;
}

/* ---- libssh callbacks (client -> agent) ---- */

static void
send_client_data(struct bz_chan *ch, const uint8_t *p, uint32_t n)
{
	uint32_t k;

	while (n > 0) {
		k = n < BZ_WIRE_DATA_CHUNK ? n : BZ_WIRE_DATA_CHUNK;
		bz_chan_send_frame(ch, BZ_FRAME_DATA, p, k);
		ch->send_window -= k;
		p += k;
		n -= k;
	}
}

/* Can client bytes go to the agent now (credit aside)? */
static int
can_send_client(const struct bz_chan *ch)
{
	return ch->started && !ch->ending && !ch->client_closed &&
	    !ch->close_sent && !ch->agent_closed && !ch->eof_frame_sent &&
	    !ch->close_frame_sent && !ch->conn->link_lost;
}

/* Send what ch->in holds, within the agent's window. */
static void
send_queued(struct bz_chan *ch)
{
	size_t n = bz_buf_avail(&ch->in);

	if (n > ch->send_window)
		n = ch->send_window;
	if (n > 0 && can_send_client(ch)) {
		send_client_data(ch, bz_buf_peek(&ch->in), (uint32_t)n);
		(void)bz_buf_skip(&ch->in, n);
	}
	if (bz_buf_avail(&ch->in) == 0)
		bz_buf_reset(&ch->in);
}

/*
 * libssh calls this for every data packet (and may do so inside any
 * libssh call that handles packets: ssh_channel_write's flush, send_eof,
 * close...), with len = everything it holds for us, old bytes included.
 * It keeps what we do not consume.
 */
static int
on_data(ssh_session s, ssh_channel channel, void *data, uint32_t len,
    int is_stderr, void *ud)
{
	struct bz_chan *ch = ud;
	uint32_t n = 0;

	if (is_stderr)
		return (int)len; /* clients send no stderr: drop it */
	if (ch->ending || ch->conn->link_lost) {
		n = len; /* nobody will read it: drop */
	} else if (len > HELD_MAX) {
		bz_warn("channel %u: ssh sent past its window", ch->id);
		bz_chan_fail(ch, "protocol error from ssh (window exceeded)");
		n = len;
	} else if (can_send_client(ch)) {
		send_queued(ch); /* older bytes first */
		if (bz_buf_avail(&ch->in) == 0) {
			n = len < ch->send_window ? len : ch->send_window;
			send_client_data(ch, data, n);
		}
	}
	ch->held = len - n;
	return (int)n;
}

static void
on_eof(ssh_session s, ssh_channel channel, void *ud)
{
	struct bz_chan *ch = ud;

	ch->client_eof = 1;
}

static void
on_close(ssh_session s, ssh_channel channel, void *ud)
{
	struct bz_chan *ch = ud;

	ch->client_closed = 1;
}

struct bz_chan *
bz_chan_new(struct bz_conn *c, enum bz_chan_kind kind)
{
	struct bz_chan *ch;

	if (c->next_id == UINT32_MAX || (ch = calloc(1, sizeof(*ch))) == NULL)
		return NULL;
	ch->conn = c;
	ch->kind = kind;
	ch->id = ++c->next_id;
	bz_buf_init(&ch->out);
	bz_buf_init(&ch->err);
	bz_buf_init(&ch->in);
	ch->recv_window = BZ_WIRE_INITIAL_WINDOW;
	ch->send_window = BZ_WIRE_INITIAL_WINDOW;
	ch->cb.userdata = ch;
	ch->cb.channel_data_function = on_data;
	ch->cb.channel_eof_function = on_eof;
	ch->cb.channel_close_function = on_close;
	ch->next = c->chans;
	c->chans = ch;
	return ch;
}

void
bz_chan_attach(struct bz_chan *ch, ssh_channel sc)
{
	ch->ch = sc;
	ssh_callbacks_init(&ch->cb);
	ssh_set_channel_callbacks(sc, &ch->cb);
	bz_debug("channel %u: opened (%s)", ch->id,
	    ch->kind == BZ_CHAN_SESSION ? "session" : "direct-tcpip");
}

/* ---- frames from bzproxy (agent -> client) ---- */

static void
on_control(struct bz_chan *ch, const struct bz_frame *f)
{
	char err[BZSSHD_ERRLEN], why[BZSSHD_ERRLEN];
	const char *t, *reason;
	json_t *o;

	if ((o = bz_json_parse_object(f->payload, f->length, err,
	    sizeof(err))) == NULL) {
		bz_warn("channel %u: bad control message: %s", ch->id, err);
		bz_chan_fail(ch, "protocol error from bzproxy");
		return;
	}
	t = bz_json_str(o, "t");
	reason = bz_json_str(o, "reason");
	if (t == NULL) {
		bz_chan_fail(ch, "protocol error from bzproxy");
	} else if (strcmp(t, "denied") == 0 || strcmp(t, "failed") == 0) {
		snprintf(why, sizeof(why), "%s%s%.200s",
		    strcmp(t, "denied") == 0 ? "access denied" : "failed",
		    reason != NULL ? ": " : "", reason != NULL ? reason : "");
		bz_chan_fail(ch, why);
	} else if (strcmp(t, "open_ok") == 0 && ch->kind == BZ_CHAN_FORWARD &&
	    !ch->opened) {
		ch->opened = ch->started = 1;
	} else if (strcmp(t, "exit") == 0) {
		/* bzproxy's copy, for its audit: ours comes sealed in the
		 * agent's EOF */
		bz_debug("channel %u: exit status on its way", ch->id);
	} else
		bz_debug("channel %u: ignored control \"%.32s\"", ch->id, t);
	json_decref(o);
}

/*
 * The agent's EOF of a session channel carries the exit status, sealed
 * (docs/protocol.md "Sealed data"): {"status":N} or {"signal":"TERM",
 * "core":false}. Only this one reaches ssh: bzproxy reads the "exit"
 * control beside it, and cannot change what ssh reports. 0, or -1 when
 * it is missing or malformed.
 */
static int
take_exit(struct bz_chan *ch, const struct bz_frame *f)
{
	const char *sig;
	json_t *o, *v;
	int r = -1;

	if (f->length == 0)
		return ch->kind == BZ_CHAN_SESSION ? -1 : 0;
	if (ch->kind != BZ_CHAN_SESSION || ch->have_exit ||
	    (o = bz_json_parse_object(f->payload, f->length, NULL, 0)) == NULL)
		return -1;
	if ((sig = bz_json_str(o, "signal")) != NULL && strlen(sig) < 32) {
		ch->exit_signal = strdup(sig);
		ch->exit_core = json_is_true(json_object_get(o, "core"));
		ch->have_exit = ch->exit_signal != NULL;
		r = ch->have_exit ? 0 : -1;
	} else if (json_is_integer(v = json_object_get(o, "status"))) {
		json_int_t st = json_integer_value(v);

		ch->exit_status = st < 0 || st > 255 ? 255 : (int)st;
		ch->have_exit = 1;
		r = 0;
	}
	json_decref(o);
	return r;
}

static void
on_agent_bytes(struct bz_chan *ch, const struct bz_frame *f)
{
	struct bz_buf *b = f->type == BZ_FRAME_DATA ? &ch->out : &ch->err;
	/* f is opened: its payload is the agent's plaintext */

	if (ch->ending)
		return; /* we are closing it; bytes in flight are dropped */
	if (ch->agent_eof || ch->agent_closed) {
		bz_chan_fail(ch, "protocol error from bzproxy (data after EOF)");
		return;
	}
	if (f->length > ch->recv_window) {
		bz_chan_fail(ch, "protocol error from bzproxy (window exceeded)");
		return;
	}
	ch->recv_window -= f->length;
	if (ch->close_sent || ch->client_closed ||
	    (ch->client_eow && f->type == BZ_FRAME_DATA)) {
		ch->consumed += f->length; /* nobody reads: grant it back */
		return;
	}
	if (bz_buf_put(b, f->payload, f->length) != 0)
		bz_chan_fail(ch, "out of memory");
}

void
bz_chan_frame(struct bz_conn *c, const struct bz_frame *f)
{
	uint8_t opened[BZ_WIRE_MAX_PAYLOAD];
	struct bz_frame plain;
	struct bz_chan *ch;
	uint32_t credit;

	if ((ch = bz_chan_find(c, f->channel_id)) == NULL) {
		/* late frames for a channel we already freed */
		bz_debug("frame %s for unknown channel %u",
		    bz_frame_type_name(f->type), f->channel_id);
		return;
	}
	if (f->flags != (is_sealed_type(f->type) ? BZ_FLAG_SEALED : 0)) {
		/* data the agent did not seal is data the agent did not send */
		bz_conn_integrity_failed(c, ch);
		return;
	}
	if (f->flags == BZ_FLAG_SEALED) {
		if (bz_seal_open(&c->chain.seal, f->type, ch->id, &ch->opened_n,
		    f->payload, f->length, opened) != 0) {
			bz_conn_integrity_failed(c, ch);
			return;
		}
		plain = *f;
		plain.payload = opened;
		plain.length = f->length - BZ_SEALED_TAG;
		f = &plain;
	}
	switch (f->type) {
	case BZ_FRAME_CONTROL:
		on_control(ch, f);
		break;
	case BZ_FRAME_DATA:
	case BZ_FRAME_EXT_DATA:
		on_agent_bytes(ch, f);
		break;
	case BZ_FRAME_EOF:
		if (!ch->agent_eof && !ch->ending && take_exit(ch, f) != 0) {
			bz_chan_fail(ch, "protocol error from the agent (its "
			    "EOF carries no exit status)");
			break;
		}
		ch->agent_eof = 1;
		break;
	case BZ_FRAME_CLOSE:
		ch->agent_eof = 1;
		ch->agent_closed = 1;
		break;
	case BZ_FRAME_WINDOW:
		if (bz_frame_window_credit(f, &credit) != 0 ||
		    credit > UINT32_MAX - ch->send_window) {
			bz_chan_fail(ch, "protocol error from bzproxy (window)");
			break;
		}
		ch->send_window += credit;
		break;
	default:
		bz_chan_fail(ch, "protocol error from bzproxy (frame type)");
		break;
	}
}

/* ---- pump: move bytes when windows allow ---- */

/* Write pending agent bytes into the SSH channel within its window. */
static int
flush_to_ssh(struct bz_chan *ch, struct bz_buf *b, int is_stderr)
{
	uint32_t win, n;
	int w;

	while (bz_buf_avail(b) > 0) {
		if ((win = ssh_channel_window_size(ch->ch)) == 0)
			break;
		n = bz_buf_avail(b) < win ? (uint32_t)bz_buf_avail(b) : win;
		if (n > SSH_WRITE_CHUNK)
			n = SSH_WRITE_CHUNK;
		w = is_stderr ? ssh_channel_write_stderr(ch->ch,
		    bz_buf_peek(b), n) : ssh_channel_write(ch->ch,
		    bz_buf_peek(b), n);
		if (w < 0)
			return -1;
		if (w == 0)
			break;
		(void)bz_buf_skip(b, (size_t)w);
		ch->consumed += (uint32_t)w;
	}
	if (bz_buf_avail(b) == 0)
		bz_buf_reset(b); /* all read: reuse the storage */
	else if (b->off > COMPACT_AT)
		bz_buf_compact(b); /* keep storage near the window */
	return 0;
}

/*
 * Take everything libssh held back while the agent's window was shut into
 * ch->in (see the top of this file for why all of it). ch->held is exact,
 * so each read finds bytes buffered and handles no packets; should one
 * still run on_data, that sets ch->held afresh before the read takes its
 * bytes, which come after the ones on_data consumed.
 */
static int
pull_held(struct bz_chan *ch)
{
	uint8_t buf[PULL_CHUNK];
	uint32_t want;
	int n;

	while (ch->held > 0 && can_send_client(ch)) {
		want = ch->held < sizeof(buf) ? ch->held : sizeof(buf);
		n = ssh_channel_read_nonblocking(ch->ch, buf, want, 0);
		if (n <= 0 || (uint32_t)n > want) {
			bz_error("channel %u: libssh holds fewer bytes than "
			    "it said (%d of %u)", ch->id, n, want);
			ch->held = 0;
			return -1;
		}
		if (bz_buf_put(&ch->in, buf, (size_t)n) != 0) {
			bz_error("channel %u: out of memory", ch->id);
			ch->held = 0;
			return -1;
		}
		ch->held -= (uint32_t)n < ch->held ? (uint32_t)n : ch->held;
	}
	return 0;
}

/* Client bytes to the agent, in order, as its window allows. */
static void
pump_client_data(struct bz_chan *ch)
{
	send_queued(ch);
	if (bz_buf_avail(&ch->in) == 0 && ch->held > 0 &&
	    ch->send_window > 0 && can_send_client(ch)) {
		if (pull_held(ch) != 0) {
			bz_buf_reset(&ch->in);
			bz_chan_fail(ch, "client data lost");
			return;
		}
		send_queued(ch);
	}
}

static void
grant(struct bz_chan *ch, int force)
{
	uint8_t p[4];

	if (ch->consumed == 0 || ch->agent_closed || ch->close_frame_sent ||
	    (!force && ch->consumed < GRANT_THRESHOLD))
		return;
	p[0] = (uint8_t)(ch->consumed >> 24);
	p[1] = (uint8_t)(ch->consumed >> 16);
	p[2] = (uint8_t)(ch->consumed >> 8);
	p[3] = (uint8_t)ch->consumed;
	bz_chan_send_frame(ch, BZ_FRAME_WINDOW, p, sizeof(p));
	ch->recv_window += ch->consumed;
	ch->consumed = 0;
}

/*
 * Send ssh the channel's CLOSE. libssh 0.10's ssh_channel_close first
 * sends an EOF if none went, and when that EOF is not flushed at once
 * (the socket to ssh is full) it returns SSH_AGAIN without the CLOSE: ssh
 * then waited for ever (`ssh host yes | head -1`, about one run in a
 * hundred). Called again on the next pump until the channel is closed.
 */
static void
close_ssh_channel(struct bz_chan *ch)
{
	if (ssh_channel_close(ch->ch) == SSH_AGAIN &&
	    ssh_channel_is_open(ch->ch))
		return; /* the EOF only: the CLOSE next time */
	ch->close_sent = 1;
}

/*
 * Tell ssh: exit-status, EOF, close, in that order, once drained. A
 * session's EOF waits for its exit status (or the agent's CLOSE): an ssh
 * ControlMaster closes the channel when EOF arrives, and would report an
 * exit status that came after that as 255.
 */
static void
finish_ssh_side(struct bz_chan *ch)
{
	int drained = bz_buf_avail(&ch->out) == 0 &&
	    bz_buf_avail(&ch->err) == 0;

	if (ch->close_sent || !drained)
		return;
	if (ch->kind == BZ_CHAN_SESSION && !ch->have_exit &&
	    !ch->agent_closed && !ch->ending)
		return;
	if (ch->have_exit && !ch->exit_sent && !ch->client_closed &&
	    (ch->agent_eof || ch->ending)) {
		if (ch->exit_signal != NULL)
			ssh_channel_request_send_exit_signal(ch->ch,
			    ch->exit_signal, ch->exit_core, "", "");
		else
			ssh_channel_request_send_exit_status(ch->ch,
			    ch->exit_status);
		ch->exit_sent = 1;
	}
	if ((ch->agent_eof || ch->ending) && !ch->eof_sent &&
	    !ch->client_closed) {
		/* after eow, sshd sends no EOF either (nchan.c) */
		if (!ch->client_eow)
			ssh_channel_send_eof(ch->ch);
		ch->eof_sent = 1;
	}
	if (ch->agent_closed || ch->ending)
		close_ssh_channel(ch);
}

static void
pump_one(struct bz_conn *c, struct bz_chan *ch)
{
	if (ch->ch == NULL)
		return; /* a forward still being opened */
	if (!ch->client_closed && !ch->close_sent) {
		if (flush_to_ssh(ch, &ch->err, 1) != 0 ||
		    flush_to_ssh(ch, &ch->out, 0) != 0) {
			bz_buf_reset(&ch->out);
			bz_buf_reset(&ch->err);
			ch->ending = 1;
		}
	}
	grant(ch, 0);
	if (ch->ending || c->link_lost)
		bz_buf_reset(&ch->in); /* nobody will read it */
	else
		pump_client_data(ch);
	/* client EOF goes after every byte, ours and libssh's */
	if (ch->client_eof && ch->held == 0 && bz_buf_avail(&ch->in) == 0 &&
	    can_send_client(ch)) {
		/* ssh_channel_is_eof: true once libssh's buffers are empty
		 * (it handles no packets) */
		if (!ssh_channel_is_eof(ch->ch)) {
			bz_error("channel %u: libssh holds bytes we did not "
			    "count", ch->id);
			bz_chan_fail(ch, "client data lost");
		} else {
			bz_chan_send_frame(ch, BZ_FRAME_EOF, NULL, 0);
			ch->eof_frame_sent = 1;
		}
	}
	if (ch->client_closed) {
		/* ssh is done with it: drop what it will never read */
		bz_buf_reset(&ch->out);
		bz_buf_reset(&ch->err);
	}
	finish_ssh_side(ch);
	if ((ch->client_closed || ch->close_sent) && !ch->close_frame_sent) {
		if (ch->started && !ch->eof_frame_sent)
			bz_chan_send_frame(ch, BZ_FRAME_EOF, NULL, 0);
		bz_chan_send_frame(ch, BZ_FRAME_CLOSE, NULL, 0);
		ch->eof_frame_sent = ch->close_frame_sent = 1;
	}
	if (ch->client_closed && !ch->close_sent)
		close_ssh_channel(ch);
}

static void
chan_free(struct bz_chan *ch, int free_ssh)
{
	if (free_ssh && ch->ch != NULL)
		ssh_channel_free(ch->ch);
	bz_buf_free(&ch->out);
	bz_buf_free(&ch->err);
	bz_buf_free(&ch->in);
	json_decref(ch->env);
	free(ch->term);
	free(ch->exit_signal);
	free(ch->why);
	free(ch);
}

void
bz_chan_discard(struct bz_chan *ch)
{
	struct bz_chan **pp;

	for (pp = &ch->conn->chans; *pp != NULL; pp = &(*pp)->next)
		if (*pp == ch) {
			*pp = ch->next;
			break;
		}
	chan_free(ch, 0);
}

void
bz_chan_pump(struct bz_conn *c)
{
	struct bz_chan **pp, *ch;

	for (ch = c->chans; ch != NULL; ch = ch->next)
		pump_one(c, ch);
	/* free channels closed on both SSH sides */
	for (pp = &c->chans; (ch = *pp) != NULL;) {
		if (ch->client_closed && ch->close_sent) {
			*pp = ch->next;
			bz_debug("channel %u: freed", ch->id);
			chan_free(ch, 1);
		} else
			pp = &ch->next;
	}
}

void
bz_chan_end_all(struct bz_conn *c, const char *reason)
{
	struct bz_chan *ch;

	for (ch = c->chans; ch != NULL; ch = ch->next)
		if (!ch->close_sent)
			bz_chan_fail(ch, reason);
}

void
bz_chan_free_all(struct bz_conn *c)
{
	struct bz_chan *ch;

	while ((ch = c->chans) != NULL) {
		c->chans = ch->next;
		chan_free(ch, 0);
	}
}

size_t
bz_chan_count(const struct bz_conn *c)
{
	const struct bz_chan *ch;
	size_t n = 0;

	for (ch = c->chans; ch != NULL; ch = ch->next)
		n++;
	return n;
}
