/*
 * fdpass.c: --fdpass, for ssh's ProxyUseFdpass. Without it ssh gives its
 * ProxyCommand two pipes, and libssh, which reads and writes one fd, needs
 * stdio_relay.c's two threads and socketpair between them: every byte is
 * copied twice more and every keystroke wakes one more thread each way.
 * With ProxyUseFdpass ssh waits for the ProxyCommand to hand back one
 * connected socket over its stdout (SCM_RIGHTS, one byte with it, as
 * OpenSSH's mm_send_fd) and to exit, then speaks SSH on that socket. We
 * make a socketpair, keep one end in a child that serves the connection,
 * pass the other, and the parent exits: libssh and ssh then share one
 * unix socket and nothing else. The child keeps ssh's stderr for what it
 * says to the user, and ends when ssh closes the socket.
 */
#include "bzsshd.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "log.h"
#include "util.h"

/* Send fd over sock as OpenSSH's mm_receive_fd expects it. */
static int
send_fd(int sock, int fd)
{
	union {
		struct cmsghdr hdr;
		char buf[CMSG_SPACE(sizeof(int))];
	} cmsgbuf;
	struct msghdr msg;
	struct cmsghdr *cmsg;
	struct iovec vec;
	char ch = '\0';
	ssize_t n;

	memset(&msg, 0, sizeof(msg));
	memset(&cmsgbuf, 0, sizeof(cmsgbuf));
	msg.msg_control = cmsgbuf.buf;
	msg.msg_controllen = sizeof(cmsgbuf.buf);
	cmsg = CMSG_FIRSTHDR(&msg);
	cmsg->cmsg_len = CMSG_LEN(sizeof(int));
	cmsg->cmsg_level = SOL_SOCKET;
	cmsg->cmsg_type = SCM_RIGHTS;
	memcpy(CMSG_DATA(cmsg), &fd, sizeof(int));
	vec.iov_base = &ch;
	vec.iov_len = 1;
	msg.msg_iov = &vec;
	msg.msg_iovlen = 1;
	while ((n = sendmsg(sock, &msg, MSG_NOSIGNAL)) < 0 && errno == EINTR)
		;
	return n == 1 ? 0 : -1;
}

int
bz_fdpass_handoff(int *ssh_fd, char *err, size_t errlen)
{
	struct stat st;
	int sp[2], devnull;
	pid_t pid;

	*ssh_fd = -1;
	if (fstat(STDOUT_FILENO, &st) != 0 || !S_ISSOCK(st.st_mode)) {
		bz_errf(err, errlen, "--fdpass: stdout is not a socket: it "
		    "wants `ProxyUseFdpass yes` next to the ProxyCommand in "
		    "your ssh config (`bzsshd ssh-config` writes both)");
		return BZ_ERR_INVALID;
	}
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) != 0) {
		bz_errf(err, errlen, "socketpair: %s", strerror(errno));
		return BZ_ERR_INVALID;
	}
	if ((pid = fork()) < 0) {
		bz_errf(err, errlen, "fork: %s", strerror(errno));
		close(sp[0]);
		close(sp[1]);
		return BZ_ERR_INVALID;
	}
	if (pid > 0) {
		/* ssh waits for us to exit once it has the socket */
		int rc = send_fd(STDOUT_FILENO, sp[1]) == 0 ? 0 : 1;

		if (rc != 0)
			bz_error("--fdpass: cannot pass the socket to ssh: %s",
			    strerror(errno));
		_exit(rc);
	}
	close(sp[1]);
	/* ssh closes its end of stdin/stdout once it has the socket */
	if ((devnull = open("/dev/null", O_RDWR)) >= 0) {
		dup2(devnull, STDIN_FILENO);
		dup2(devnull, STDOUT_FILENO);
		if (devnull > STDERR_FILENO)
			close(devnull);
	}
	*ssh_fd = sp[0];
	return BZ_OK;
}
