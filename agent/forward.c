/*
 * forward.c: the TCP connections of port-forward channels (ssh -L, -W,
 * -D). A name lookup and a connect can each take seconds, so each runs on
 * a short-lived worker thread, and the poll loop picks the result up after
 * a byte on its wake pipe: the loop never blocks, and one slow destination
 * never stalls the other channels.
 */
#include "agent.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "util.h"

struct fwd_job {
	struct fwd_job *next;
	struct fwd_pool *pool;
	uint32_t sid, ch;
	char host[256];
	uint16_t port;
	int done;
	int cancelled;
	struct fwd_result res;
};

struct fwd_pool {
	pthread_mutex_t mu;
	struct fwd_job *jobs;
	size_t live;         /* jobs not cancelled and not taken */
	unsigned refs;       /* the agent + each running thread */
	int wake_fd;         /* a dup, closed with the pool */
};

static void
pool_unref_locked(struct fwd_pool *p)
{
	struct fwd_job *j;

	if (--p->refs > 0) {
		pthread_mutex_unlock(&p->mu);
		return;
	}
	pthread_mutex_unlock(&p->mu);
	while ((j = p->jobs) != NULL) {
		p->jobs = j->next;
		if (j->res.fd >= 0)
			close(j->res.fd);
		free(j);
	}
	if (p->wake_fd >= 0)
		close(p->wake_fd);
	pthread_mutex_destroy(&p->mu);
	free(p);
}

struct fwd_pool *
fwd_pool_new(int wake_fd)
{
	struct fwd_pool *p = calloc(1, sizeof(*p));

	if (p == NULL)
		return NULL;
	if ((p->wake_fd = fcntl(wake_fd, F_DUPFD_CLOEXEC, 0)) < 0) {
		free(p);
		return NULL;
	}
	pthread_mutex_init(&p->mu, NULL);
	p->refs = 1;
	return p;
}

void
fwd_pool_free(struct fwd_pool *p)
{
	if (p == NULL)
		return;
	fwd_pool_cancel_all(p);
	pthread_mutex_lock(&p->mu);
	pool_unref_locked(p);
}

/* Wait for a non-blocking connect until deadline; 0 or an errno. */
static int
wait_connected(int fd, int64_t deadline)
{
	struct pollfd pfd = { fd, POLLOUT, 0 };
	socklen_t len = sizeof(int);
	int64_t left;
	int err = 0, r;

	for (;;) {
		if ((left = deadline - bz_now_ms()) <= 0)
			return ETIMEDOUT;
		r = poll(&pfd, 1, (int)left);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return errno;
		if (r > 0)
			break;
	}
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
		return errno;
	return err;
}

/* Look host up and connect to its addresses in turn, as ssh's
 * channel_connect_to_port does. */
static void
connect_job(struct fwd_job *j)
{
	struct addrinfo hints, *ai = NULL, *a;
	char port[8];
	int64_t deadline = bz_now_ms() + AGENT_FORWARD_TIMEOUT_MS;
	int fd, r, err = 0;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	snprintf(port, sizeof(port), "%u", (unsigned)j->port);
	if ((r = getaddrinfo(j->host, port, &hints, &ai)) != 0) {
		bz_errf(j->res.reason, sizeof(j->res.reason), "cannot resolve "
		    "%s: %s", j->host,
		    r == EAI_SYSTEM ? strerror(errno) : gai_strerror(r));
		return;
	}
	for (a = ai; a != NULL; a = a->ai_next) {
		fd = socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK |
		    SOCK_CLOEXEC, a->ai_protocol);
		if (fd < 0) {
			err = errno;
			continue;
		}
		if (connect(fd, a->ai_addr, a->ai_addrlen) == 0)
			err = 0;
		else if (errno == EINPROGRESS)
			err = wait_connected(fd, deadline);
		else
			err = errno;
		if (err == 0) {
			j->res.fd = fd;
			break;
		}
		close(fd);
		if (err == ETIMEDOUT)
			break;
	}
	freeaddrinfo(ai);
	if (j->res.fd < 0)
		bz_errf(j->res.reason, sizeof(j->res.reason), "connect to "
		    "%s port %u failed: %s", j->host, (unsigned)j->port,
		    strerror(err != 0 ? err : ECONNREFUSED));
}

static void *
job_thread(void *arg)
{
	struct fwd_job *j = arg;
	struct fwd_pool *p = j->pool;
	ssize_t w;

	connect_job(j);
	pthread_mutex_lock(&p->mu);
	j->done = 1;
	w = write(p->wake_fd, "f", 1); /* a full pipe already wakes it */
	(void)w;
	pool_unref_locked(p);
	return NULL;
}

int
fwd_pool_start(struct fwd_pool *p, uint32_t sid, uint32_t ch,
    const char *host, uint16_t port, const char *request_hash)
{
	struct fwd_job *j;
	pthread_attr_t attr;
	pthread_t th;
	int r;

	if (strlen(host) >= sizeof(j->host))
		return BZ_ERR_INVALID;
	if ((j = calloc(1, sizeof(*j))) == NULL)
		return BZ_ERR_ALLOC;
	j->pool = p;
	j->sid = j->res.sid = sid;
	j->ch = j->res.ch = ch;
	j->res.fd = -1;
	snprintf(j->res.request_hash, sizeof(j->res.request_hash), "%s",
	    request_hash);
	snprintf(j->host, sizeof(j->host), "%s", host);
	j->port = port;
	pthread_mutex_lock(&p->mu);
	if (p->live >= AGENT_FORWARD_PENDING_MAX) {
		pthread_mutex_unlock(&p->mu);
		free(j);
		return BZ_ERR_TOO_BIG;
	}
	p->refs++;
	j->next = p->jobs;
	p->jobs = j;
	p->live++;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&attr, 256u * 1024);
	r = pthread_create(&th, &attr, job_thread, j);
	pthread_attr_destroy(&attr);
	if (r != 0) {
		p->jobs = j->next;
		p->live--;
		p->refs--;
		pthread_mutex_unlock(&p->mu);
		free(j);
		return BZ_ERR_ALLOC;
	}
	pthread_mutex_unlock(&p->mu);
	return BZ_OK;
}

enum scope { ONE_CHANNEL, ONE_SESSION, EVERYTHING };

/* Mark the jobs of (sid, ch), of sid, or all, cancelled. */
static void
cancel(struct fwd_pool *p, uint32_t sid, uint32_t ch, enum scope sc)
{
	struct fwd_job *j;

	pthread_mutex_lock(&p->mu);
	for (j = p->jobs; j != NULL; j = j->next)
		if ((sc == EVERYTHING || (j->sid == sid && (sc == ONE_SESSION ||
		    j->ch == ch))) && !j->cancelled) {
			j->cancelled = 1;
			p->live--;
		}
	pthread_mutex_unlock(&p->mu);
}

void
fwd_pool_cancel(struct fwd_pool *p, uint32_t sid, uint32_t ch)
{
	cancel(p, sid, ch, ONE_CHANNEL);
}

void
fwd_pool_cancel_session(struct fwd_pool *p, uint32_t sid)
{
	cancel(p, sid, 0, ONE_SESSION);
}

void
fwd_pool_cancel_all(struct fwd_pool *p)
{
	cancel(p, 0, 0, EVERYTHING);
}

int
fwd_pool_has(struct fwd_pool *p, uint32_t sid, uint32_t ch)
{
	struct fwd_job *j;
	int found = 0;

	pthread_mutex_lock(&p->mu);
	for (j = p->jobs; j != NULL && !found; j = j->next)
		found = j->sid == sid && j->ch == ch && !j->cancelled;
	pthread_mutex_unlock(&p->mu);
	return found;
}

size_t
fwd_pool_count(struct fwd_pool *p)
{
	size_t n;

	pthread_mutex_lock(&p->mu);
	n = p->live;
	pthread_mutex_unlock(&p->mu);
	return n;
}

int
fwd_pool_take(struct fwd_pool *p, struct fwd_result *out)
{
	struct fwd_job **pp, *j;
	int got = 0;

	pthread_mutex_lock(&p->mu);
	for (pp = &p->jobs; (j = *pp) != NULL && !got;) {
		if (!j->done) {
			pp = &j->next;
			continue;
		}
		*pp = j->next;
		if (j->cancelled) {
			/* nobody waits for it any more */
			if (j->res.fd >= 0)
				close(j->res.fd);
		} else {
			*out = j->res;
			p->live--;
			got = 1;
		}
		free(j);
	}
	pthread_mutex_unlock(&p->mu);
	return got;
}
