/*
 * stdio_relay.c: libssh wants a socket (recv/send), ssh gives us two pipes.
 * A socketpair joins them: libssh gets one end, two threads copy with plain
 * blocking read/write (blocking splice() deadlocked, see DESIGN.md).
 */
#include "bzsshd.h"

#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "buf.h"
#include "log.h"
#include "util.h"

#define RELAY_CHUNK (64 * 1024)

struct bz_relay {
	int sock;            /* our end of the socketpair */
	pthread_t in_thread; /* stdin -> sock */
	pthread_t out_thread;/* sock -> stdout */
	int out_started;
};

static int
write_all(int fd, const uint8_t *p, size_t n)
{
	ssize_t w;

	while (n > 0) {
		if ((w = write(fd, p, n)) < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/*
 * from_sock: wait in poll(POLLIN) rather than in read(). A reader blocked
 * in read() on a unix socket sleeps on the queue that also hears "room to
 * write" on it: each time libssh read what the other thread wrote, this
 * thread woke for nothing (a context switch per keystroke). poll() waits
 * for input only.
 */
static void
copy(int from, int to, int from_sock)
{
	struct pollfd pfd;
	uint8_t *buf;
	ssize_t n;

	if ((buf = malloc(RELAY_CHUNK)) == NULL)
		return;
	for (;;) {
		if (from_sock) {
			pfd.fd = from;
			pfd.events = POLLIN;
			pfd.revents = 0;
			if (poll(&pfd, 1, -1) < 0 && errno != EINTR)
				break;
		}
		if ((n = read(from, buf, RELAY_CHUNK)) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (n == 0 || write_all(to, buf, (size_t)n) != 0)
			break;
	}
	free(buf);
}

/* Gets the fd by value: it may outlive struct bz_relay. */
static void *
stdin_to_sock(void *arg)
{
	int sock = (int)(intptr_t)arg;

	copy(STDIN_FILENO, sock, 0);
	/* ssh closed its end: libssh sees EOF on the socket. */
	shutdown(sock, SHUT_WR);
	return NULL;
}

static void *
sock_to_stdout(void *arg)
{
	struct bz_relay *r = arg;

	copy(r->sock, STDOUT_FILENO, 1);
	close(STDOUT_FILENO);
	return NULL;
}

int
bz_relay_start(struct bz_relay **out, int *ssh_fd, char *err, size_t errlen)
{
	struct bz_relay *r;
	int sp[2] = { -1, -1 };

	*out = NULL;
	*ssh_fd = -1;
	if ((r = calloc(1, sizeof(*r))) == NULL)
		return BZ_ERR_ALLOC;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) != 0) {
		bz_errf(err, errlen, "socketpair: %s", strerror(errno));
		goto fail;
	}
	r->sock = sp[1];
	if (pthread_create(&r->out_thread, NULL, sock_to_stdout, r) != 0) {
		bz_errf(err, errlen, "cannot start the stdout relay thread");
		goto fail;
	}
	r->out_started = 1;
	/* The stdin thread may sit in read(0) forever: never joined. */
	if (pthread_create(&r->in_thread, NULL, stdin_to_sock,
	    (void *)(intptr_t)r->sock) != 0) {
		bz_errf(err, errlen, "cannot start the stdin relay thread");
		close(sp[0]); /* ends the stdout thread */
		pthread_join(r->out_thread, NULL);
		close(sp[1]);
		free(r);
		return BZ_ERR_INVALID;
	}
	pthread_detach(r->in_thread);
	*ssh_fd = sp[0];
	*out = r;
	return BZ_OK;
 fail:
	if (sp[0] >= 0)
		close(sp[0]);
	if (sp[1] >= 0)
		close(sp[1]);
	free(r);
	return BZ_ERR_INVALID;
}

void
bz_relay_finish(struct bz_relay *r)
{
	if (r == NULL)
		return;
	/* libssh has closed its end by now; the copy loop sees EOF. */
	if (r->out_started)
		pthread_join(r->out_thread, NULL);
	/* r->sock stays open: the detached stdin thread may still use it.
	 * The process exits right after this. */
	free(r);
}
