/*
 * libssh_log.c: libssh's log lines, and the two things we learn from them.
 *
 * libssh 0.10 hands a channel request it does not know to our message
 * callback without its name (SSH_CHANNEL_REQUEST_UNKNOWN), and OpenSSH's
 * ssh sends one that matters: eow@openssh.com, when the reader of the
 * channel's stdout is gone (`ssh host yes | head -1`). sshd then closes
 * the command's stdout (serverloop.c, nchan.c chan_rcvd_eow); without it
 * the command runs on and ssh never exits. libssh logs each request's
 * name, at SSH_LOG_PACKET, just before it queues the message: we keep
 * that name in the connection, and ssh_requests.c reads it. Likewise
 * no-more-sessions@openssh.com, a global request libssh answers itself,
 * after which sshd opens no more session channels. The log level this
 * needs has libssh format a few lines per packet: about 0.6 CPU s per GiB
 * in bzsshd (3 %), measured against SSH_LOG_WARN.
 */
#include "ssh_conn.h"

#include <stdio.h>
#include <string.h>

#include "log.h"

#define CHAN_REQ_MARK "Received a "
#define CHAN_REQ_TAIL " channel_request for channel"
/* libssh answers unknown global requests itself; this one sshd obeys */
#define NO_MORE_SESSIONS "GLOBAL_REQUEST no-more-sessions@openssh.com"

static void
on_log(int priority, const char *function, const char *buffer, void *ud)
{
	struct bz_conn *c = ud;
	const char *p, *e;

	(void)function;
	if ((p = strstr(buffer, CHAN_REQ_MARK)) != NULL &&
	    (e = strstr(p, CHAN_REQ_TAIL)) != NULL) {
		p += strlen(CHAN_REQ_MARK);
		snprintf(c->chan_req, sizeof(c->chan_req), "%.*s",
		    (int)(e - p), p);
		return;
	}
	if (strstr(buffer, NO_MORE_SESSIONS) != NULL) {
		c->no_more_sessions = 1;
		return;
	}
	/* libssh says this after answering any global request it does not
	 * know (no-more-sessions): not worth a line */
	if (priority <= SSH_LOG_WARN &&
	    strstr(buffer, "Invalid SSH_MSG_GLOBAL_REQUEST") == NULL)
		bz_debug("libssh: %s", buffer);
}

void
bz_libssh_log_init(struct bz_conn *c)
{
	ssh_set_log_userdata(c);
	ssh_set_log_callback(on_log);
	ssh_set_log_level(SSH_LOG_PACKET);
}
