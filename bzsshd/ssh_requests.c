/*
 * ssh_requests.c: a session channel's requests (RFC 4254 section 6) as
 * docs/protocol.md messages. pty-req and env are collected until the one
 * exec, shell or subsystem request, which goes to bzproxy with them;
 * window-change and signal follow a running channel. What bzproxy and the
 * agent cannot serve (agent and X11 forwarding) is refused here with a
 * line the user reads on the channel's stderr, and noted in the audit log.
 */
#include "ssh_conn.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "util.h"

#define TERM_MAX 64
#define ENV_MAX 64            /* variables per channel */
#define ENV_VALUE_MAX 4096
#define SUBSYSTEM_MAX 64

/* Something we do not forward: tell the user once per channel (on its
 * stderr, before any output) and bzproxy's audit log. */
static void
refuse_note(struct bz_chan *ch, int note, const char *request,
    const char *text)
{
	char line[BZSSHD_ERRLEN];

	if (ch->notes & note)
		return;
	ch->notes |= note;
	snprintf(line, sizeof(line), "bzsshd: %s\r\n", text);
	(void)bz_buf_put(&ch->err, line, strlen(line));
	bz_conn_note_refused(ch->conn, ch->id, request, text);
}

static void
on_signal(ssh_session s, ssh_channel channel, const char *sig, void *ud)
{
	struct bz_chan *ch = ud;

	if (ch->started && sig != NULL && strlen(sig) < 32)
		(void)bz_chan_send_signed(ch, json_pack("{s:s, s:s}", "t",
		    "signal", "name", sig));
}

static int
on_pty(ssh_session s, ssh_channel channel, const char *term, int cols,
    int rows, int pxw, int pxh, void *ud)
{
	struct bz_chan *ch = ud;

	if (ch->started || ch->have_pty || term == NULL ||
	    strlen(term) > TERM_MAX || cols < 0 || rows < 0 || pxw < 0 ||
	    pxh < 0)
		return -1;
	if ((ch->term = strdup(term)) == NULL)
		return -1;
	ch->have_pty = 1;
	ch->cols = cols;
	ch->rows = rows;
	ch->pxw = pxw;
	ch->pxh = pxh;
	return 0;
}

static int
on_window_change(ssh_session s, ssh_channel channel, int cols, int rows,
    int pxw, int pxh, void *ud)
{
	struct bz_chan *ch = ud;

	if (cols < 0 || rows < 0 || pxw < 0 || pxh < 0)
		return -1;
	ch->cols = cols;
	ch->rows = rows;
	ch->pxw = pxw;
	ch->pxh = pxh;
	if (ch->started)
		bz_chan_send_json(ch, json_pack("{s:s, s:i, s:i, s:i, s:i}",
		    "t", "window_change", "cols", cols, "rows", rows,
		    "width", pxw, "height", pxh));
	return 0;
}

/* SendEnv / SetEnv: every well-formed variable goes to the target, which
 * decides which names it takes (bzagent's accept_env) and logs the rest. */
static int
on_env(ssh_session s, ssh_channel channel, const char *name,
    const char *value, void *ud)
{
	struct bz_chan *ch = ud;

	if (ch->started || name == NULL || value == NULL ||
	    !bz_env_name_ok(name) || strlen(value) > ENV_VALUE_MAX) {
		bz_debug("channel %u: environment variable refused (name or "
		    "size)", ch->id);
		return 1;
	}
	if (ch->env == NULL && (ch->env = json_object()) == NULL)
		return 1;
	if (json_object_size(ch->env) >= ENV_MAX ||
	    json_object_set_new(ch->env, name, json_string(value)) != 0) {
		bz_debug("channel %u: %s refused (over %d variables)", ch->id,
		    name, ENV_MAX);
		return 1;
	}
	return 0;
}

/* Where ssh is, as we see it, and the port it asked for: the target's
 * SSH_CLIENT and SSH_CONNECTION. ssh talks to us over a pipe, so its
 * address is our end of the connection to bzproxy. */
static json_t *
ssh_client_info(struct bz_conn *c)
{
	char addr[64];
	uint16_t port;

	if (c->link == NULL ||
	    bz_link_local_addr(c->link, addr, sizeof(addr), &port) != 0)
		return json_null();
	return json_pack("{s:s, s:i, s:i}", "addr", addr, "port", (int)port,
	    "server_port", c->target->port);
}

/* Send open + the request (t: exec, shell, subsystem; arg: the command
 * or the subsystem's name). */
static int
start_request(struct bz_chan *ch, const char *t, const char *arg)
{
	struct bz_conn *c = ch->conn;
	json_t *pty = json_null(), *env, *req;

	if (ch->started)
		return 1;
	if (c->refused) {
		/* no access: the reason is this channel's whole output */
		ch->started = 1;
		c->refused_told = 1;
		bz_chan_fail(ch, c->reason);
		return 0;
	}
	if (c->link_lost)
		return 1;
	if (ch->have_pty)
		pty = json_pack("{s:s, s:i, s:i, s:i, s:i}", "term", ch->term,
		    "cols", ch->cols, "rows", ch->rows, "width", ch->pxw,
		    "height", ch->pxh);
	env = ch->env != NULL ? json_incref(ch->env) : json_object();
	req = json_pack("{s:s, s:o, s:o, s:o}", "t", t, "pty", pty, "env",
	    env, "client", ssh_client_info(c));
	if (req == NULL || (arg != NULL && json_object_set_new(req,
	    strcmp(t, "exec") == 0 ? "command" : "name",
	    json_string(arg)) != 0)) {
		json_decref(req);
		return 1;
	}
	bz_chan_send_json(ch, json_pack("{s:s, s:s}", "t", "open", "kind",
	    "session"));
	if (bz_chan_send_signed(ch, req) != 0)
		return 1;
	ch->started = 1;
	bz_debug("channel %u: %s requested", ch->id, t);
	return 0;
}

static int
on_shell(ssh_session s, ssh_channel channel, void *ud)
{
	return start_request(ud, "shell", NULL);
}

static int
on_exec(ssh_session s, ssh_channel channel, const char *command, void *ud)
{
	struct bz_chan *ch = ud;

	if (command == NULL)
		return 1;
	if (strlen(command) > BZ_WIRE_COMMAND_MAX) {
		/* accepted, so that ssh shows why it ends */
		ch->started = 1;
		bz_chan_fail(ch, "command line over 256 KiB (as sshd, we take "
		    "no longer one)");
		return 0;
	}
	return start_request(ch, "exec", command);
}

/* bzproxy decides (and audits) every subsystem: sftp, or a refusal with
 * its reason on stderr. */
static int
on_subsystem(ssh_session s, ssh_channel channel, const char *name, void *ud)
{
	if (name == NULL || strlen(name) > SUBSYSTEM_MAX)
		return 1;
	return start_request(ud, "subsystem", name);
}

/* ssh -A (ForwardAgent): the request wants no reply. */
static void
on_auth_agent_req(ssh_session s, ssh_channel channel, void *ud)
{
	refuse_note(ud, BZ_NOTE_AGENT, "auth-agent-req",
	    "agent forwarding (ssh -A) is not available through bzproxy; "
	    "continuing without it");
}

ssh_channel
bz_session_open(struct bz_conn *c)
{
	struct bz_chan *ch;
	ssh_channel sc;

	if ((!c->refused && c->link_lost) || !c->authed)
		return NULL;
	if (c->no_more_sessions) {
		/* ssh said it would open none (sshd: "possible attack") */
		bz_warn("a session opened after no-more-sessions@openssh.com: "
		    "refused");
		return NULL;
	}
	if ((ch = bz_chan_new(c, BZ_CHAN_SESSION)) == NULL)
		return NULL;
	if ((sc = ssh_channel_new(c->session)) == NULL) {
		bz_chan_discard(ch);
		return NULL;
	}
	ch->cb.channel_signal_function = on_signal;
	ch->cb.channel_pty_request_function = on_pty;
	ch->cb.channel_shell_request_function = on_shell;
	ch->cb.channel_pty_window_change_function = on_window_change;
	ch->cb.channel_exec_request_function = on_exec;
	ch->cb.channel_env_request_function = on_env;
	ch->cb.channel_subsystem_request_function = on_subsystem;
	ch->cb.channel_auth_agent_req_function = on_auth_agent_req;
	bz_chan_attach(ch, sc);
	return sc;
}

int
bz_session_unhandled(struct bz_conn *c, ssh_message m)
{
	struct bz_chan *ch;
	ssh_channel sc = ssh_message_channel_request_channel(m);

	for (ch = c->chans; ch != NULL && ch->ch != sc; ch = ch->next)
		;
	if (ch == NULL)
		return 1;
	if (ssh_message_subtype(m) == SSH_CHANNEL_REQUEST_X11)
		refuse_note(ch, BZ_NOTE_X11, "x11-req", "X11 forwarding (ssh "
		    "-X, -Y) is not available through bzproxy; continuing "
		    "without it");
	else if (strcmp(c->chan_req, "eow@openssh.com") == 0) {
		/* no reply (sshd's serverloop.c): ssh asks for none */
		bz_chan_eow(ch);
		return 0; /* libssh frees m */
	} else
		bz_debug("channel %u: request \"%s\" refused", ch->id,
		    c->chan_req[0] ? c->chan_req : "?");
	return 1;
}
