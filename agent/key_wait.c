/*
 * key_wait.c: channel requests held while the IdP's keys are fetched. A
 * request whose ID token names a key we do not have waits (at most
 * BZ_JWKS_HOLD_MS) for the fetch that was running or due, instead of
 * failing at once after an IdP key rotation. bzproxy relays the client's
 * frames for the channel as soon as it has sent the request, so those are
 * queued behind it, in order, and handled once the request has been.
 * Other channels go on meanwhile. Every message is zeroed when freed (a
 * request holds the user's ID token).
 */
#include "agent.h"

#include <stdlib.h>
#include <sodium.h>

#include "buf.h"

struct held {
	struct held *next;
	uint32_t sid, ch;
	uint64_t fetches;           /* JWKS fetches ended when it was held */
	int64_t deadline_ms;
	struct bz_link_msg *msgs;   /* the request, then what followed it */
	struct bz_link_msg **tail;
};

struct key_wait {
	struct held *head;
	size_t n;
	size_t bytes;               /* of every held message */
};

static void
free_msgs(struct bz_link_msg *m)
{
	struct bz_link_msg *next;

	for (; m != NULL; m = next) {
		next = m->next;
		sodium_memzero(m->data, m->len);
		free(m);
	}
}

static size_t
msgs_bytes(const struct bz_link_msg *m)
{
	size_t n = 0;

	for (; m != NULL; m = m->next)
		n += m->len;
	return n;
}

struct key_wait *
key_wait_new(void)
{
	return calloc(1, sizeof(struct key_wait));
}

void
key_wait_free(struct key_wait *w)
{
	if (w == NULL)
		return;
	key_wait_drop_all(w);
	free(w);
}

size_t
key_wait_count(const struct key_wait *w)
{
	return w->n;
}

static struct held **
find(struct key_wait *w, uint32_t sid, uint32_t ch)
{
	struct held **pp;

	for (pp = &w->head; *pp != NULL; pp = &(*pp)->next)
		if ((*pp)->sid == sid && (*pp)->ch == ch)
			break;
	return pp;
}

/* Unlink *pp and return it. */
static struct held *
unlink_held(struct key_wait *w, struct held **pp)
{
	struct held *h = *pp;

	*pp = h->next;
	w->n--;
	w->bytes -= msgs_bytes(h->msgs);
	return h;
}

int
key_wait_add(struct key_wait *w, struct bz_link_msg *msg, uint32_t sid,
    uint32_t ch, uint64_t fetches, int64_t deadline_ms)
{
	struct held *h;

	if (w->n >= KEY_WAIT_MAX || w->bytes + msg->len > KEY_WAIT_BYTES_MAX)
		return BZ_ERR_TOO_BIG;
	if ((h = calloc(1, sizeof(*h))) == NULL)
		return BZ_ERR_ALLOC;
	h->sid = sid;
	h->ch = ch;
	h->fetches = fetches;
	h->deadline_ms = deadline_ms;
	msg->next = NULL;
	h->msgs = msg;
	h->tail = &msg->next;
	h->next = w->head;
	w->head = h;
	w->n++;
	w->bytes += msg->len;
	return BZ_OK;
}

int
key_wait_has(struct key_wait *w, uint32_t sid, uint32_t ch)
{
	return *find(w, sid, ch) != NULL;
}

int
key_wait_queue(struct key_wait *w, uint32_t sid, uint32_t ch,
    struct bz_link_msg *msg)
{
	struct held *h = *find(w, sid, ch);

	if (h == NULL)
		return BZ_ERR_INVALID;
	if (w->bytes + msg->len > KEY_WAIT_BYTES_MAX)
		return BZ_ERR_TOO_BIG;
	msg->next = NULL;
	*h->tail = msg;
	h->tail = &msg->next;
	w->bytes += msg->len;
	return BZ_OK;
}

void
key_wait_drop(struct key_wait *w, uint32_t sid, uint32_t ch)
{
	struct held **pp = find(w, sid, ch), *h;

	if (*pp == NULL)
		return;
	h = unlink_held(w, pp);
	free_msgs(h->msgs);
	free(h);
}

void
key_wait_drop_session(struct key_wait *w, uint32_t sid)
{
	struct held **pp = &w->head, *h;

	while (*pp != NULL) {
		if ((*pp)->sid != sid) {
			pp = &(*pp)->next;
			continue;
		}
		h = unlink_held(w, pp);
		free_msgs(h->msgs);
		free(h);
	}
}

void
key_wait_drop_all(struct key_wait *w)
{
	struct held *h;

	while (w->head != NULL) {
		h = unlink_held(w, &w->head);
		free_msgs(h->msgs);
		free(h);
	}
}

struct bz_link_msg *
key_wait_take_due(struct key_wait *w, uint64_t fetches, int64_t now_ms)
{
	struct held **pp, **due = NULL, *h;
	struct bz_link_msg *msgs;

	/* the oldest due one first: entries are pushed at the head */
	for (pp = &w->head; *pp != NULL; pp = &(*pp)->next)
		if ((*pp)->fetches != fetches || now_ms >= (*pp)->deadline_ms)
			due = pp;
	if (due == NULL)
		return NULL;
	h = unlink_held(w, due);
	msgs = h->msgs;
	free(h);
	return msgs;
}

int
key_wait_timeout(const struct key_wait *w, int64_t now_ms)
{
	const struct held *h;
	int64_t min = -1;

	for (h = w->head; h != NULL; h = h->next)
		if (min < 0 || h->deadline_ms < min)
			min = h->deadline_ms;
	if (min < 0)
		return -1;
	return min <= now_ms ? 0 : (int)(min - now_ms);
}

void
key_wait_free_msgs(struct bz_link_msg *m)
{
	free_msgs(m);
}
