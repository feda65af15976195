/*
 * bzload_link.c: the simulated agents' links. Each is a real wss
 * connection to bzproxy (TLS verified against the given CA) that does the
 * agent's handshake with bzagent's own code (common/agent_hello.c):
 * challenge -> signed agent_hello (enrolment token on first use) ->
 * agent_ok. All of them live on one lws client context on our libuv loop;
 * lws answers bzproxy's keepalive pings (it sends none of its own: see
 * keepalive below).
 *
 * A handshake refused for load (HTTP 503, a cut connection, a reason
 * naming a limit) is retried with backoff and counted as a refusal; any
 * other refusal, or too many retries, is a failure.
 */
#include "bzload.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sodium.h>

#include "agent_hello.h"
#include "backoff.h"
#include "buf.h"
#include "util.h"
#include "wire.h"

#define RX_MAX 16384           /* a handshake message is small */
#define RETRY_BASE_MS 100
#define RETRY_CAP_MS 5000
#define LOAD_VERSION "bzload"

/*
 * No lws validity timers: lws 4.1 re-inserts a link's timer into one
 * sorted list of all of them at every frame received, which with 10,000
 * links costs more than the links themselves (docs/scale.md). bzproxy
 * pings every link silent for 20 s and lws answers; a link bzproxy drops
 * is seen as closed.
 */
static const lws_retry_bo_t keepalive = {
	.secs_since_valid_ping = 0,
	.secs_since_valid_hangup = 0,
};

static void
sim_reset(struct sim *s)
{
	free(s->rx);
	s->rx = NULL;
	s->rx_len = 0;
	if (s->out != NULL) {
		sodium_memzero(s->out, LWS_PRE + s->out_len); /* the token */
		free(s->out);
	}
	s->out = NULL;
	s->out_len = 0;
	s->want_ping = 0;
	s->ping_us = 0;
}

/*
 * The attempt ended: a refusal is retried (up to max_retries), anything
 * else fails the agent; a ready link that goes is a drop.
 */
static void
sim_gone(struct load *L, struct sim *s, int refused, const char *why)
{
	uint32_t delay;

	if (s->wsi != NULL)
		lws_set_opaque_user_data(s->wsi, NULL);
	s->wsi = NULL;
	sim_reset(s);
	if (s->state == SIM_READY) {
		s->state = SIM_FAILED;
		L->ready--;
		L->dropped++;
		bzl_count(&L->drops, why);
		return;
	}
	L->inflight--;
	if (refused && s->attempts <= L->o.max_retries) {
		bzl_count(&L->refusals, why);
		delay = bz_backoff_delay(s->attempts, RETRY_BASE_MS,
		    RETRY_CAP_MS);
		s->state = SIM_WAIT;
		s->retry_at = bz_now_ms() + delay;
		L->rq[(L->rq_head + L->rq_len) % L->n] =
		    (uint32_t)(s - L->sims);
		L->rq_len++;
		return;
	}
	s->state = SIM_FAILED;
	L->failed++;
	bzl_count(&L->fails, why);
}

static void
sim_start(struct load *L, struct sim *s)
{
	struct lws_client_connect_info ci;
	struct lws *wsi;

	memset(&ci, 0, sizeof(ci));
	ci.context = L->ctx;
	ci.address = L->o.host;
	ci.port = L->o.port;
	ci.path = L->o.path;
	ci.host = L->o.host;
	ci.origin = L->o.host;
	ci.protocol = "bz.v1";
	ci.ssl_connection = LCCSCF_USE_SSL;
	ci.retry_and_idle_policy = &keepalive;
	ci.opaque_user_data = s;
	s->attempts++;
	s->attempt_ms = bz_now_ms();
	if (s->first_ms == 0)
		s->first_ms = s->attempt_ms;
	s->state = SIM_CONNECTING;
	s->wsi = NULL;
	s->cert_bad = 0;
	s->peer_closed = 0;
	L->inflight++;
	wsi = lws_client_connect_via_info(&ci);
	/* it may have failed already, through the callback */
	if (s->state != SIM_CONNECTING)
		return;
	if (wsi == NULL)
		sim_gone(L, s, 1, "cannot start a connection");
	else
		s->wsi = wsi;
}

void
bzl_launch(struct load *L, int64_t now)
{
	struct sim *s;

	while (L->inflight < L->o.inflight && L->phase != PH_STOP) {
		if (L->rq_len > 0 &&
		    L->sims[L->rq[L->rq_head]].retry_at <= now) {
			s = &L->sims[L->rq[L->rq_head]];
			L->rq_head = (L->rq_head + 1) % L->n;
			L->rq_len--;
		} else if (L->next_fresh < L->n)
			s = &L->sims[L->next_fresh++];
		else
			break;
		sim_start(L, s);
	}
}

void
bzl_reap_slow(struct load *L, int64_t now)
{
	int64_t limit = (int64_t)L->o.handshake_s * 1000;
	size_t i;

	for (i = 0; i < L->n; i++) {
		struct sim *s = &L->sims[i];

		if (s->state >= SIM_CONNECTING && s->state < SIM_READY &&
		    s->wsi != NULL && now - s->attempt_ms > limit) {
			struct lws *wsi = s->wsi;

			sim_gone(L, s, 1, "no handshake in time");
			lws_set_timeout(wsi, PENDING_TIMEOUT_USER_OK,
			    LWS_TO_KILL_ASYNC);
		}
	}
}

void
bzl_give_up(struct load *L, const char *why)
{
	size_t i;

	for (i = 0; i < L->n; i++) {
		struct sim *s = &L->sims[i];
		struct lws *wsi = s->wsi;

		if (s->state == SIM_READY || s->state == SIM_FAILED)
			continue;
		if (s->state != SIM_WAIT)
			L->inflight--;
		if (wsi != NULL) {
			lws_set_opaque_user_data(wsi, NULL);
			lws_set_timeout(wsi, PENDING_TIMEOUT_USER_OK,
			    LWS_TO_KILL_ASYNC);
		}
		s->wsi = NULL;
		sim_reset(s);
		s->state = SIM_FAILED;
		L->failed++;
		bzl_count(&L->fails, why);
	}
	L->rq_len = 0;
	L->next_fresh = L->n;
}

void
bzl_ping_one(struct load *L)
{
	size_t k;

	for (k = 0; k < L->n; k++) {
		struct sim *s = &L->sims[L->ping_next];

		L->ping_next = (L->ping_next + 1) % L->n;
		if (s->state == SIM_READY && s->wsi != NULL &&
		    s->ping_us == 0) {
			s->want_ping = 1;
			lws_callback_on_writable(s->wsi);
			return;
		}
	}
}

/* challenge -> agent_hello, queued for the next WRITEABLE. */
static int
on_challenge(struct load *L, struct sim *s, const json_t *ch, char *why,
    size_t wl)
{
	uint8_t kseed[32], pk[32], sk[64];
	struct bz_agent_id id = {
		.name = s->name, .pk = pk, .sk = sk,
		.proxy_pk = L->o.proxy_pk, .enrol_token = s->token,
		.version = LOAD_VERSION,
	};
	struct bz_buf b;
	json_t *hello = NULL;
	char *text = NULL;
	int r = -1;

	/* the agent's key from the seed and its name: no key files */
	crypto_generichash(kseed, sizeof(kseed), (const uint8_t *)s->name,
	    strlen(s->name), L->o.seed, sizeof(L->o.seed));
	crypto_sign_seed_keypair(pk, sk, kseed);
	bz_buf_init(&b);
	if (bz_agent_hello_make(ch, &id, &hello, why, wl) != 0)
		goto out;
	if ((text = bz_agent_hello_text(hello)) == NULL ||
	    bz_buf_put(&b, (uint8_t[LWS_PRE]){ 0 }, LWS_PRE) != 0 ||
	    bz_frame_encode(&b, BZ_FRAME_CONTROL, 0, 0, 0, 0, text,
	    strlen(text)) != 0) {
		bz_errf(why, wl, "out of memory");
		goto out;
	}
	s->out = b.data; /* the buffer's storage is the sim's now */
	s->out_len = b.len - LWS_PRE;
	bz_buf_init(&b);
	s->state = SIM_HELLO;
	lws_callback_on_writable(s->wsi);
	r = 0;
 out:
	bz_agent_hello_wipe(text);
	bz_agent_hello_free(hello);
	if (b.data != NULL)
		sodium_memzero(b.data, b.len);
	bz_buf_free(&b);
	sodium_memzero(sk, sizeof(sk));
	sodium_memzero(kseed, sizeof(kseed));
	return r;
}

/* One whole handshake message. 0, or -1 (the link goes; sim_gone done). */
static int
on_message(struct load *L, struct sim *s, const uint8_t *m, size_t len)
{
	char why[BZL_REASON_LEN + 40];
	struct bz_frame f;
	json_t *o = NULL;
	int r;

	if ((r = bz_frame_decode(m, len, &f)) != 0) {
		snprintf(why, sizeof(why), "bad frame (%s)", bz_err_str(r));
		sim_gone(L, s, 0, why);
		return -1;
	}
	switch (bz_agent_hs_read(&f, &o, why, sizeof(why))) {
	case BZ_HS_CHALLENGE:
		r = -1;
		if (s->state != SIM_CHALLENGE)
			snprintf(why, sizeof(why), "unexpected challenge");
		else
			r = on_challenge(L, s, o, why, sizeof(why));
		json_decref(o);
		if (r != 0) {
			sim_gone(L, s, 0, why);
			return -1;
		}
		return 0;
	case BZ_HS_AGENT_OK:
		json_decref(o);
		if (s->state != SIM_HELLO) {
			sim_gone(L, s, 0, "unexpected agent_ok");
			return -1;
		}
		sim_reset(s);
		s->state = SIM_READY;
		L->inflight--;
		L->ready++;
		(void)bzl_sample(&L->hs_ms,
		    (uint32_t)(bz_now_ms() - s->first_ms));
		return 0;
	case BZ_HS_REFUSED:
		/* a limit is load: try again later; any other is final */
		sim_gone(L, s, strstr(why, "limit") != NULL, why);
		return -1;
	case BZ_HS_BAD:
		sim_gone(L, s, 0, why);
		return -1;
	}
	json_decref(o);
	return 0;
}

static int
on_receive(struct load *L, struct sim *s, struct lws *wsi, const void *in,
    size_t len)
{
	if (s->state == SIM_READY)
		return 0; /* nobody opens sessions to us: nothing to do */
	if (!lws_frame_is_binary(wsi) || len > RX_MAX - s->rx_len) {
		sim_gone(L, s, 0, "text or oversized message in the handshake");
		return -1;
	}
	if (s->rx == NULL && (s->rx = malloc(RX_MAX)) == NULL) {
		sim_gone(L, s, 0, "out of memory");
		return -1;
	}
	memcpy(s->rx + s->rx_len, in, len);
	s->rx_len += (uint32_t)len;
	if (!lws_is_final_fragment(wsi))
		return 0;
	len = s->rx_len;
	s->rx_len = 0;
	return on_message(L, s, s->rx, len);
}

static int
on_writeable(struct load *L, struct sim *s, struct lws *wsi)
{
	uint8_t ping[LWS_PRE + 8];

	if (s->out != NULL) {
		if (lws_write(wsi, s->out + LWS_PRE, s->out_len,
		    LWS_WRITE_BINARY) < (int)s->out_len) {
			sim_gone(L, s, 1, "cannot write agent_hello");
			return -1;
		}
		sodium_memzero(s->out, LWS_PRE + s->out_len);
		free(s->out);
		s->out = NULL;
		if (s->want_ping)
			lws_callback_on_writable(wsi);
		return 0;
	}
	if (s->want_ping && s->state == SIM_READY) {
		s->want_ping = 0;
		memset(ping, 0, sizeof(ping));
		s->ping_us = bzl_now_us();
		if (lws_write(wsi, ping + LWS_PRE, 8, LWS_WRITE_PING) < 8) {
			sim_gone(L, s, 0, "cannot write a ping");
			return -1;
		}
	}
	return 0;
}

/* Why a connection attempt failed, and whether it is worth a retry. */
static void
on_connect_error(struct load *L, struct sim *s, struct lws *wsi,
    const char *in)
{
	char why[BZL_REASON_LEN];
	unsigned status = lws_http_client_http_response(wsi);

	if (status >= 200 && status != 101) {
		snprintf(why, sizeof(why), "HTTP %u at the upgrade", status);
		sim_gone(L, s, status == 503, why);
	} else if (s->cert_bad)
		sim_gone(L, s, 0, "bzproxy's certificate did not verify");
	else {
		snprintf(why, sizeof(why), "connection failed (%.80s)",
		    in != NULL ? in : "?");
		sim_gone(L, s, 1, why);
	}
}

static int
load_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user,
    void *in, size_t len)
{
	struct load *L = lws_context_user(lws_get_context(wsi));
	struct sim *s = lws_get_opaque_user_data(wsi);

	if (L == NULL || s == NULL || (s->wsi != NULL && s->wsi != wsi))
		return 0;
	switch (reason) {
	case LWS_CALLBACK_OPENSSL_PERFORM_SERVER_CERT_VERIFICATION:
		if (!len)
			s->cert_bad = 1; /* for on_connect_error */
		break;
	case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
		if (s->state != SIM_WAIT && s->state != SIM_FAILED)
			on_connect_error(L, s, wsi, in);
		lws_set_opaque_user_data(wsi, NULL);
		break;
	case LWS_CALLBACK_CLIENT_ESTABLISHED:
		s->wsi = wsi;
		s->rx_len = 0;
		s->state = SIM_CHALLENGE;
		break;
	case LWS_CALLBACK_CLIENT_RECEIVE:
		return on_receive(L, s, wsi, in, len);
	case LWS_CALLBACK_CLIENT_RECEIVE_PONG:
		if (s->ping_us != 0) {
			(void)bzl_sample(&L->rtt,
			    (uint32_t)(bzl_now_us() - s->ping_us));
			s->ping_us = 0;
		}
		break;
	case LWS_CALLBACK_CLIENT_WRITEABLE:
		return on_writeable(L, s, wsi);
	case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
		s->peer_closed = 1;
		break;
	case LWS_CALLBACK_CLIENT_CLOSED:
	case LWS_CALLBACK_WSI_DESTROY:
		if (s->state != SIM_WAIT && s->state != SIM_FAILED)
			/* cut before agent_ok: bzproxy is shedding load */
			sim_gone(L, s, 1, s->state != SIM_READY ?
			    "closed during the handshake" : s->peer_closed ?
			    "closed by bzproxy" : "connection lost (or a "
			    "keepalive timeout)");
		lws_set_opaque_user_data(wsi, NULL);
		break;
	default:
		break;
	}
	(void)user;
	return 0;
}

static const struct lws_protocols protocols[] = {
	{ "bz.v1", load_callback, 0, 4096, 0, NULL, 0 },
	{ NULL, NULL, 0, 0, 0, NULL, 0 },
};

int
bzl_ctx_create(struct load *L, int fd_limit)
{
	struct lws_context_creation_info info;
	void *loops[1] = { &L->loop };

	lws_set_log_level(LLL_ERR, NULL);
	memset(&info, 0, sizeof(info));
	info.port = CONTEXT_PORT_NO_LISTEN;
	info.protocols = protocols;
	info.options = LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT |
	    LWS_SERVER_OPTION_LIBUV | LWS_SERVER_OPTION_UV_NO_SIGSEGV_SIGFPE_SPIN |
	    LWS_SERVER_OPTION_DISABLE_OS_CA_CERTS;
	info.foreign_loops = loops;
	info.client_ssl_ca_filepath = L->o.ca_file;
	info.user = L;
	info.fd_limit_per_thread = (unsigned)fd_limit;
	info.count_threads = 1;
	info.pcontext = &L->ctx; /* lws sets it NULL when the context is freed */
	return (L->ctx = lws_create_context(&info)) != NULL ? 0 : -1;
}

/*
 * lws 4.1 on a foreign loop: the first call closes the links and lws's
 * handles; once the loop has run them closed, a second call frees the
 * context (and sets L->ctx NULL).
 */
void
bzl_ctx_destroy(struct load *L)
{
	if (L->ctx != NULL)
		lws_context_destroy(L->ctx);
}
