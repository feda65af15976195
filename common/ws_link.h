/*
 * ws_link.h: one client websocket (wss) to bzproxy, served by its own
 * thread, used by bzsshd and bzagent. Other threads talk to it through two
 * locked queues: frames to send, whole messages received.
 */
#ifndef BZ_WS_LINK_H
#define BZ_WS_LINK_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

#include "link_fail.h"

#define BZ_LINK_REASON_LEN 256

enum bz_link_state {
	BZ_LINK_CONNECTING = 0,
	BZ_LINK_OPEN = 1,
	BZ_LINK_CLOSED = 2,
};

/* One complete websocket message as received (frame not yet decoded). */
struct bz_link_msg {
	struct bz_link_msg *next;
	size_t len;
	uint8_t data[];
};

struct bz_link;
/* A sender that pauses while bz_link_pending() is high is woken (a byte on
 * wake_fd) when the send queue falls below this mark from at or above it. */
#define BZ_LINK_DRAIN_MARK (2u * 1024 * 1024)

/*
 * Start the link thread and connect to url (wss://HOST:PORT, path appended).
 * wake_fd (or -1) gets one byte written whenever a message arrives, the
 * state changes, or the send queue drains below BZ_LINK_DRAIN_MARK.
 */
int bz_link_start(const char *url, const char *path, const char *ca_file,
    int wake_fd, struct bz_link **out, char *err, size_t errlen);
/*
 * The same, but once the link is open its thread leaves it to the caller,
 * which serves it from its own poll loop: each round, bz_link_poll_want
 * (the socket and events to poll, fd -1 for none, and the longest wait in
 * ms, -1 for none: until then wake_fd says when it opens), then
 * bz_link_serve with poll's revents (0 when it timed out), then
 * bz_link_recv until NULL. Sends then write at once: only the caller's
 * thread may send. bz_link_wait serves it too.
 */
int bz_link_start_served(const char *url, const char *path,
    const char *ca_file, int wake_fd, struct bz_link **out, char *err,
    size_t errlen);
struct pollfd;
void bz_link_poll_want(struct bz_link *l, struct pollfd *p, int *timeout_ms);
void bz_link_serve(struct bz_link *l, short revents);
/* Queue one frame on channel with session_id 0 and no flags (thread-safe). */
int bz_link_send(struct bz_link *l, uint8_t type, uint32_t channel,
    const void *payload, size_t len);
/* Queue one frame with every header field chosen (thread-safe). */
int bz_link_send_frame(struct bz_link *l, uint8_t type, uint16_t flags,
    uint32_t session_id, uint32_t channel, const void *payload, size_t len);
/* Bytes queued for sending and not yet written (for backpressure). */
size_t bz_link_pending(struct bz_link *l);
/* Queue a CONTROL frame holding obj (thread-safe). */
int bz_link_send_json(struct bz_link *l, uint32_t channel, const json_t *obj);
/* Pop the next received message (caller frees) or NULL. */
struct bz_link_msg *bz_link_recv(struct bz_link *l);
/* Current state; reason of a close copied into reason. */
enum bz_link_state bz_link_get_state(struct bz_link *l, char *reason,
    size_t len);
/* Why the link closed (kind BZ_LINK_FAIL_NONE while it has not). */
void bz_link_get_failure(struct bz_link *l, struct bz_link_failure *f);
/* Our end of the connection (numeric address, port) once it is open:
 * 0, or BZ_ERR_INVALID before that. */
int bz_link_local_addr(struct bz_link *l, char *addr, size_t len,
    uint16_t *port);
/* Block until a message is queued, the state changes, or timeout_ms. */
void bz_link_wait(struct bz_link *l, int timeout_ms);
/* Flush queued frames (bounded time), close, join the thread, free. */
void bz_link_free(struct bz_link *l);

#endif
