/*
 * test_agent_verify.c: bzagent's own checks (agent/request_verify.c,
 * agent/session.c): bzproxy's envelope, the client's SYN with its ID token
 * and key, the session's hash chain, what a request asks for, the
 * target's own rules (permit.c), and the reconnect backoff. Every message
 * here is really signed (Ed25519: the client key, bzproxy's, the agent's)
 * and the ID tokens are real RS256 tokens made with OpenSSL, as in
 * test_jwt.c, so each refusal is tested against an otherwise valid one.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pwd.h>
#include <cmocka.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <sodium.h>

#include "agent.h"
#include "chain.h"
#include "util.h"

#define NOW ((time_t)1700000000)
#define ISS "https://idp.example"
#define AUD "bz-cli"
#define NAME "web1"
#define EMAIL "alice@example.com"
#define SID 7u
#define CH 3u

static struct {
	EVP_PKEY *rsa;                 /* the IdP, kid "rsa1" */
	struct bz_jwks *jwks;
	uint8_t proxy_pk[32], proxy_sk[64];
	uint8_t other_pk[32], other_sk[64];
	uint8_t client_pk[32], client_sk[64];
	uint8_t agent_pk[32], agent_sk[64];
	char *client_pk_b64, *salt_b64, *nonce;
	struct bz_kx kx;               /* the client's key exchange half */
	char *kx_b64;
	uid_t daemon_uid;
} K;

/* ---- helpers: tokens (as in test_jwt.c) ---- */

static char *
b64(const void *p, size_t n)
{
	char *s;

	assert_int_equal(bz_b64url_encode(p, n, &s), 0);
	return s;
}

static char *
bn_b64(const EVP_PKEY *k, const char *param)
{
	BIGNUM *bn = NULL;
	uint8_t buf[1024];
	int n;

	assert_int_equal(EVP_PKEY_get_bn_param(k, param, &bn), 1);
	n = BN_bn2bin(bn, buf);
	BN_free(bn);
	return b64(buf, (size_t)n);
}

/* An RS256 token for email, expiring at exp, under key id kid, with
 * nonce (NULL: none). */
static char *
make_token_of(const char *email, const char *sub, time_t iat, time_t exp,
    const char *kid, const char *nonce)
{
	char *hdr, *pay, *h, *p, *input, *sig, *t;
	uint8_t sb[512];
	size_t slen = sizeof(sb);
	EVP_MD_CTX *md;

	assert_true(asprintf(&hdr, "{\"alg\":\"RS256\",\"kid\":\"%s\"}",
	    kid) > 0);
	assert_true(asprintf(&pay, "{\"iss\":\"%s\",\"aud\":\"%s\","
	    "\"sub\":\"%s\",\"email\":\"%s\",\"iat\":%lld,\"exp\":%lld%s%s%s}",
	    ISS, AUD, sub, email, (long long)iat, (long long)exp,
	    nonce != NULL ? ",\"nonce\":\"" : "", nonce != NULL ? nonce : "",
	    nonce != NULL ? "\"" : "") > 0);
	h = b64(hdr, strlen(hdr));
	p = b64(pay, strlen(pay));
	assert_true(asprintf(&input, "%s.%s", h, p) > 0);
	md = EVP_MD_CTX_new();
	assert_int_equal(EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL,
	    K.rsa), 1);
	assert_int_equal(EVP_DigestSign(md, sb, &slen, (uint8_t *)input,
	    strlen(input)), 1);
	EVP_MD_CTX_free(md);
	sig = b64(sb, slen);
	assert_true(asprintf(&t, "%s.%s", input, sig) > 0);
	free(hdr);
	free(pay);
	free(h);
	free(p);
	free(input);
	free(sig);
	return t;
}

static char *
make_token(const char *email, time_t exp, const char *kid, const char *nonce)
{
	return make_token_of(email, "u1", NOW - 30, exp, kid, nonce);
}

static int
setup(void **state)
{
	char *n, *e, *text, err[256];
	json_t *doc;
	struct passwd *pw;

	if (sodium_init() < 0 || (K.rsa = EVP_RSA_gen(2048)) == NULL)
		return -1;
	n = bn_b64(K.rsa, OSSL_PKEY_PARAM_RSA_N);
	e = bn_b64(K.rsa, OSSL_PKEY_PARAM_RSA_E);
	doc = json_pack("{s:[{s:s,s:s,s:s,s:s,s:s}]}", "keys", "kty", "RSA",
	    "kid", "rsa1", "alg", "RS256", "n", n, "e", e);
	text = json_dumps(doc, 0);
	json_decref(doc);
	free(n);
	free(e);
	if (bz_jwks_parse(text, strlen(text), &K.jwks, err, sizeof(err)) != 0) {
		fprintf(stderr, "jwks: %s\n", err);
		free(text);
		return -1;
	}
	free(text);
	crypto_sign_keypair(K.proxy_pk, K.proxy_sk);
	crypto_sign_keypair(K.other_pk, K.other_sk);
	crypto_sign_keypair(K.client_pk, K.client_sk);
	crypto_sign_keypair(K.agent_pk, K.agent_sk);
	{
		uint8_t salt[16];

		randombytes_buf(salt, sizeof(salt));
		K.client_pk_b64 = b64(K.client_pk, 32);
		K.salt_b64 = b64(salt, sizeof(salt));
		K.nonce = bz_key_nonce(K.client_pk_b64, K.salt_b64);
	}
	bz_kx_new(&K.kx);
	K.kx_b64 = b64(K.kx.pk, sizeof(K.kx.pk));
	if ((pw = getpwnam("daemon")) == NULL)
		return -1;
	K.daemon_uid = pw->pw_uid;
	return 0;
}

static int
teardown(void **state)
{
	bz_jwks_free(K.jwks);
	EVP_PKEY_free(K.rsa);
	free(K.client_pk_b64);
	free(K.kx_b64);
	free(K.salt_b64);
	free(K.nonce);
	return 0;
}

/* ---- helpers: messages ---- */

/* extra (JSON text) merged into o: members replaced, "null" ones removed. */
static void
merge(json_t *o, const char *extra)
{
	json_t *x, *v;
	const char *k;

	if (extra == NULL)
		return;
	x = json_loads(extra, 0, NULL);
	assert_non_null(x);
	json_object_foreach(x, k, v) {
		if (json_is_null(v))
			json_object_del(o, k);
		else
			json_object_set(o, k, v);
	}
	json_decref(x);
}

/* A valid SYN for the daemon account on NAME, signed by sk (the client's
 * key unless given). *n gets its length. */
static uint8_t *
syn_msg(const char *extra, const uint8_t *sk, size_t *n)
{
	char *tok = make_token(EMAIL, NOW + 300, "rsa1", K.nonce);
	uint8_t *m = NULL;
	json_t *o;

	o = json_pack("{s:s,s:i,s:i,s:I,s:s,s:s,s:s,s:s,s:s,s:s,s:s,"
	    "s:[s,s]}", "t", "syn", "seq", 0, "ch", 0, "ts", (json_int_t)NOW,
	    "target", NAME, "unix_user", "daemon", "id_token", tok,
	    "nonce_salt", K.salt_b64, "client_key", K.client_pk_b64,
	    "client_random", "cmFuZG9t", "kx", K.kx_b64, "aead", "aes256gcm",
	    "xchacha20poly1305");
	assert_non_null(o);
	merge(o, extra);
	assert_int_equal(bz_signed_make(o, sk != NULL ? sk : K.client_sk, &m,
	    n), 0);
	json_decref(o);
	free(tok);
	return m;
}

/* A client request: t and extra, chained to prev (b64url), seq. */
static uint8_t *
req_msg(const char *t, uint64_t seq, const char *prev, uint32_t ch,
    const char *extra, const uint8_t *sk, size_t *n)
{
	uint8_t *m = NULL;
	json_t *o;

	o = json_pack("{s:s,s:I,s:s,s:I,s:I}", "t", t, "seq", (json_int_t)seq,
	    "prev", prev, "ch", (json_int_t)ch, "ts", (json_int_t)NOW);
	assert_non_null(o);
	merge(o, extra);
	assert_int_equal(bz_signed_make(o, sk != NULL ? sk : K.client_sk, &m,
	    n), 0);
	json_decref(o);
	return m;
}

/* bzproxy's envelope around msg, for (sid, ch), as a frame over buf. */
struct framed {
	uint8_t *buf;
	struct bz_frame f;
};

static void
envelope(struct framed *fr, const uint8_t *msg, size_t n, uint32_t sid,
    uint32_t ch, const char *extra, const uint8_t *proxy_sk)
{
	char *csm = b64(msg, n);
	size_t len;
	json_t *o;

	o = json_pack("{s:s,s:I,s:I,s:s,s:s,s:s,s:s,s:s,s:I,s:I}", "t", "csm",
	    "sid", (json_int_t)sid, "ch", (json_int_t)ch, "csm", csm,
	    "decision", "allow", "action", ch == 0 ? "connect" : "exec",
	    "rule", "ops", "user", EMAIL, "mfa_at", (json_int_t)NOW,
	    "exp", (json_int_t)NOW + 120);
	assert_non_null(o);
	merge(o, extra);
	assert_int_equal(bz_signed_make(o, proxy_sk != NULL ? proxy_sk :
	    K.proxy_sk, &fr->buf, &len), 0);
	json_decref(o);
	free(csm);
	memset(&fr->f, 0, sizeof(fr->f));
	fr->f.version = BZ_WIRE_VERSION;
	fr->f.type = BZ_FRAME_CONTROL;
	fr->f.flags = BZ_FLAG_PROXY_SIGNED;
	fr->f.session_id = sid;
	fr->f.channel_id = ch;
	fr->f.payload = fr->buf;
	fr->f.length = (uint32_t)len;
}

static struct verify_ctx
ctx(uid_t euid)
{
	struct verify_ctx v = {
		.proxy_pk = K.proxy_pk, .name = NAME, .issuer = ISS,
		.audience = AUD, .jwks = K.jwks, .now = NOW, .euid = euid,
		.login_max_age = 24 * 3600,
	};

	return v;
}

/* A session as the tests start it: a table, a SYN accepted, and the
 * b64url hash the first request must chain to. */
struct sess {
	struct session_table *t;
	struct agent_session *s;
	char *prev;
	uint64_t seq;
};

/* Open envelope fr under v: VERIFY_OK expected. */
static void
open_ok(const struct verify_ctx *v, struct framed *fr, struct envelope *e)
{
	char reason[AGENT_ERRLEN];

	if (envelope_open(v, &fr->f, e, reason, sizeof(reason)) != VERIFY_OK)
		fail_msg("envelope refused: %s", reason);
}

/* The SYNACK's kx and aead give the client the keys the agent now holds
 * for the session: bytes sealed on one side open on the other, once, on
 * their channel only. */
static void
check_data_keys(const json_t *synack, const struct sess *ss)
{
	struct bz_kx kx = K.kx;
	struct bz_seal client;
	uint8_t agent_kx[BZ_SEAL_KX_LEN], sealed[5 + BZ_SEALED_TAG], out[5];
	uint64_t c_tx = 0, a_rx = 0, a_tx = 0, c_rx = 0, again = 0;
	struct bz_seal *agent = &sessions_find(ss->t, SID)->seal;

	assert_string_equal(bz_json_str(synack, "aead"),
	    bz_aead_name(bz_aead_best()));
	assert_int_equal(bz_json_b64(synack, "kx", agent_kx,
	    sizeof(agent_kx)), 0);
	assert_int_equal(bz_seal_init(&client, 1, &kx, agent_kx,
	    bz_aead_best()), 0);
	/* client -> agent */
	assert_int_equal(bz_seal(&client, BZ_FRAME_DATA, CH, &c_tx,
	    (const uint8_t *)"hello", 5, sealed), 0);
	assert_int_equal(bz_seal_open(agent, BZ_FRAME_DATA, CH + 1, &again,
	    sealed, sizeof(sealed), out), BZ_ERR_INVALID);
	assert_int_equal(bz_seal_open(agent, BZ_FRAME_DATA, CH, &a_rx, sealed,
	    sizeof(sealed), out), 0);
	assert_memory_equal(out, "hello", 5);
	assert_int_equal(bz_seal_open(agent, BZ_FRAME_DATA, CH, &a_rx, sealed,
	    sizeof(sealed), out), BZ_ERR_INVALID); /* replayed */
	/* agent -> client: the other key */
	assert_int_equal(bz_seal(agent, BZ_FRAME_DATA, CH, &a_tx,
	    (const uint8_t *)"world", 5, sealed), 0);
	again = 0;
	assert_int_equal(bz_seal_open(agent, BZ_FRAME_DATA, CH, &again,
	    sealed, sizeof(sealed), out), BZ_ERR_INVALID);
	assert_int_equal(bz_seal_open(&client, BZ_FRAME_DATA, CH, &c_rx,
	    sealed, sizeof(sealed), out), 0);
	assert_memory_equal(out, "world", 5);
	bz_seal_clear(&client);
}

static void
start_with(struct sess *ss, const struct verify_ctx *v, const char *extra)
{
	struct framed fr;
	struct envelope e;
	uint8_t *m, *synack;
	size_t n, an;
	char reason[AGENT_ERRLEN];
	json_t *o;
	const uint8_t *json, *sig;
	size_t jlen;

	memset(ss, 0, sizeof(*ss));
	ss->t = sessions_new();
	m = syn_msg(extra, NULL, &n);
	envelope(&fr, m, n, SID, 0, NULL, NULL);
	open_ok(v, &fr, &e);
	if (session_syn(ss->t, v, &e, K.agent_pk, K.agent_sk, &synack, &an,
	    reason, sizeof(reason)) != VERIFY_OK)
		fail_msg("SYN refused: %s", reason);
	/* the SYNACK: signed by the agent's key, naming the SYN's hash */
	assert_int_equal(bz_signed_verify(synack, an, K.agent_pk), 0);
	assert_int_equal(bz_signed_split(synack, an, &json, &jlen, &sig), 0);
	o = json_loadb((const char *)json, jlen, 0, NULL);
	assert_non_null(o);
	{
		char *h = bz_hash_b64(m, n);

		assert_string_equal(bz_json_str(o, "syn"), h);
		free(h);
	}
	assert_string_equal(bz_json_str(o, "t"), "synack");
	assert_string_equal(bz_json_str(o, "target"), NAME);
	check_data_keys(o, ss);
	json_decref(o);
	ss->s = sessions_find(ss->t, SID);
	assert_non_null(ss->s);
	assert_string_equal(ss->s->user, EMAIL);
	assert_string_equal(ss->s->unix_user, "daemon");
	ss->prev = bz_hash_b64(synack, an);
	envelope_free(&e);
	free(fr.buf);
	free(m);
	free(synack);
}

static void
start(struct sess *ss, const struct verify_ctx *v)
{
	start_with(ss, v, NULL);
}

static void
stop(struct sess *ss)
{
	sessions_free(ss->t);
	free(ss->prev);
}

/* Send request t on ch in session ss, chained properly unless told
 * otherwise; returns what session_next says, and moves ss on when it
 * passed. */
static int
next(struct sess *ss, const struct verify_ctx *v, const char *t, uint32_t ch,
    const char *extra, struct envelope *e, char *reason, size_t rl)
{
	struct framed fr;
	uint8_t *m;
	size_t n;
	int r;

	m = req_msg(t, ss->seq + 1, ss->prev, ch, extra, NULL, &n);
	envelope(&fr, m, n, SID, ch, NULL, NULL);
	open_ok(v, &fr, e);
	if ((r = session_next(ss->s, v, e, reason, rl)) == 0) {
		ss->seq++;
		free(ss->prev);
		ss->prev = bz_hash_b64(m, n);
	}
	free(fr.buf);
	free(m);
	return r;
}

/* The SYN built from extra (signed by sk), refused with reason_part. */
static void
syn_refused_env(const struct verify_ctx *v, const char *extra,
    const uint8_t *sk, const char *env_extra, const char *reason_part)
{
	struct session_table *t = sessions_new();
	struct framed fr;
	struct envelope e;
	uint8_t *m, *synack = NULL;
	size_t n, an;
	char reason[AGENT_ERRLEN] = "";
	enum verify_result r;

	m = syn_msg(extra, sk, &n);
	envelope(&fr, m, n, SID, 0, env_extra, NULL);
	open_ok(v, &fr, &e);
	r = session_syn(t, v, &e, K.agent_pk, K.agent_sk, &synack, &an,
	    reason, sizeof(reason));
	if (r == VERIFY_OK)
		fail_msg("SYN %s accepted", extra != NULL ? extra : "");
	if (strstr(reason, reason_part) == NULL)
		fail_msg("reason \"%s\" lacks \"%s\"", reason, reason_part);
	assert_null(synack);
	assert_int_equal(sessions_count(t), 0);
	envelope_free(&e);
	sessions_free(t);
	free(fr.buf);
	free(m);
}

static void
syn_refused(const struct verify_ctx *v, const char *extra, const uint8_t *sk,
    const char *reason_part)
{
	syn_refused_env(v, extra, sk, NULL, reason_part);
}

/* ---- tests ---- */

static void
test_good_session_and_exec(void **state)
{
	struct verify_ctx v = ctx(0);
	struct agent_request req;
	struct envelope e;
	struct sess ss;
	char reason[AGENT_ERRLEN];

	start(&ss, &v);
	assert_int_equal(next(&ss, &v, "exec", CH, "{\"command\":\"echo hi\","
	    "\"env\":{\"LANG\":\"C.UTF-8\",\"LD_PRELOAD\":\"/tmp/evil.so\"}}",
	    &e, reason, sizeof(reason)), 0);
	assert_true(e.allowed);
	assert_int_equal(session_request(ss.s, &v, &e, &req, reason,
	    sizeof(reason)), VERIFY_OK);
	assert_int_equal(req.sid, SID);
	assert_int_equal(req.ch, CH);
	assert_int_equal(req.kind, REQ_EXEC);
	assert_string_equal(req.command, "echo hi");
	assert_string_equal(req.user, EMAIL);
	assert_string_equal(req.unix_user, "daemon");
	assert_int_equal(req.uid, K.daemon_uid);
	assert_string_equal(req.rule, "ops");
	assert_false(req.pty);
	/* accept_env's default takes the locale, not LD_PRELOAD */
	assert_string_equal(req.env[0], "LANG=C.UTF-8");
	assert_null(req.env[1]);
	assert_string_equal(req.env_refused, "LD_PRELOAD");
	agent_request_free(&req);
	envelope_free(&e);
	stop(&ss);
}

static void
test_shell_pty_and_login_env(void **state)
{
	struct verify_ctx v = ctx(0);
	struct agent_request req;
	struct envelope e;
	struct sess ss;
	char reason[AGENT_ERRLEN], **env;
	int i, term = 0, path = 0, tty = 0;

	start(&ss, &v);
	assert_int_equal(next(&ss, &v, "shell", CH, "{\"pty\":{\"term\":"
	    "\"xterm\",\"cols\":101,\"rows\":37,\"width\":0,\"height\":0}}",
	    &e, reason, sizeof(reason)), 0);
	v.now = NOW;
	/* the envelope says "exec": the action must match the kind */
	assert_int_equal(session_request(ss.s, &v, &e, &req, reason,
	    sizeof(reason)), VERIFY_REFUSED);
	assert_non_null(strstr(reason, "says action exec for a shell"));
	agent_request_free(&req);
	free(e.action);
	e.action = strdup("shell");
	assert_int_equal(session_request(ss.s, &v, &e, &req, reason,
	    sizeof(reason)), VERIFY_OK);
	assert_int_equal(req.kind, REQ_SHELL);
	assert_null(req.command);
	assert_true(req.pty);
	assert_string_equal(req.term, "xterm");
	assert_int_equal(req.cols, 101);
	assert_int_equal(req.rows, 37);
	env = child_build_env(&req, "/dev/pts/7");
	assert_non_null(env);
	for (i = 0; env[i] != NULL; i++) {
		tty |= strcmp(env[i], "SSH_TTY=/dev/pts/7") == 0;
		term |= strcmp(env[i], "TERM=xterm") == 0;
		path |= strncmp(env[i], "PATH=", 5) == 0;
	}
	assert_true(term);
	assert_true(path);
	assert_true(tty);
	child_free_env(env);
	agent_request_free(&req);
	envelope_free(&e);
	stop(&ss);
}

static void
test_envelope(void **state)
{
	struct verify_ctx v = ctx(0);
	struct framed fr;
	struct envelope e;
	char reason[AGENT_ERRLEN];
	uint8_t *m;
	size_t n;

	m = req_msg("exec", 1, "x", CH, "{\"command\":\"id\"}", NULL, &n);
#define REFUSED(extra, sk, part) do { \
	envelope(&fr, m, n, SID, CH, extra, sk); \
	assert_int_equal(envelope_open(&v, &fr.f, &e, reason, \
	    sizeof(reason)), VERIFY_REFUSED); \
	if (strstr(reason, part) == NULL) \
		fail_msg("reason \"%s\" lacks \"%s\"", reason, part); \
	envelope_free(&e); \
	free(fr.buf); \
} while (0)
	/* signed by anyone else than the pinned bzproxy */
	REFUSED(NULL, K.other_sk, "not signed by bzproxy");
	REFUSED(NULL, K.client_sk, "not signed by bzproxy");
	/* for another session or channel than the frame says */
	REFUSED("{\"sid\":8}", NULL, "another session or channel");
	REFUSED("{\"ch\":4}", NULL, "another session or channel");
	/* expired, or far in the future */
	REFUSED("{\"exp\":1699999999}", NULL, "expired");
	REFUSED("{\"exp\":1700001000}", NULL, "expired");
	REFUSED("{\"decision\":\"maybe\"}", NULL, "decision");
	REFUSED("{\"decision\":null}", NULL, "decision");
	REFUSED("{\"t\":\"exec\"}", NULL, "unknown message");
	REFUSED("{\"csm\":\"bm90IHNpZ25lZA\"}", NULL, "client's signed");
#undef REFUSED
	/* altered after bzproxy signed it */
	envelope(&fr, m, n, SID, CH, NULL, NULL);
	fr.buf[10] ^= 1;
	assert_int_equal(envelope_open(&v, &fr.f, &e, reason, sizeof(reason)),
	    VERIFY_REFUSED);
	envelope_free(&e);
	free(fr.buf);
	/* unsigned */
	envelope(&fr, m, n, SID, CH, NULL, NULL);
	fr.f.flags = 0;
	assert_int_equal(envelope_open(&v, &fr.f, &e, reason, sizeof(reason)),
	    VERIFY_REFUSED);
	envelope_free(&e);
	free(fr.buf);
	free(m);
}

static void
test_syn(void **state)
{
	struct verify_ctx v = ctx(0);
	char *tok;
	char extra[8192];

	/* signed by another key than the one it names */
	syn_refused(&v, NULL, K.other_sk, "not signed by its client key");
	/* naming another key than the token's nonce commits to */
	syn_refused(&v, "{\"client_key\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\"}",
	    NULL, "not signed by its client key");
	/* for another target, stale, from the future, not a SYN */
	syn_refused(&v, "{\"target\":\"db1\"}", NULL, "another target");
	syn_refused(&v, "{\"ts\":1699999000}", NULL, "stale");
	syn_refused(&v, "{\"ts\":1700001000}", NULL, "stale");
	syn_refused(&v, "{\"seq\":1}", NULL, "stale");
	/* a token without the nonce, or with another key's */
	tok = make_token(EMAIL, NOW + 300, "rsa1", NULL);
	snprintf(extra, sizeof(extra), "{\"id_token\":\"%s\"}", tok);
	syn_refused(&v, extra, NULL, "nonce");
	free(tok);
	tok = make_token(EMAIL, NOW + 300, "rsa1", "c29tZW9uZSBlbHNl");
	snprintf(extra, sizeof(extra), "{\"id_token\":\"%s\"}", tok);
	syn_refused(&v, extra, NULL, "nonce");
	free(tok);
	/* an expired token, a token of an unknown key */
	tok = make_token(EMAIL, NOW - 600, "rsa1", K.nonce);
	snprintf(extra, sizeof(extra), "{\"id_token\":\"%s\"}", tok);
	syn_refused(&v, extra, NULL, "expired");
	free(tok);
	tok = make_token(EMAIL, NOW + 300, "rsa9", K.nonce);
	snprintf(extra, sizeof(extra), "{\"id_token\":\"%s\"}", tok);
	syn_refused(&v, extra, NULL, "unknown key id");
	free(tok);
	syn_refused(&v, "{\"id_token\":null}", NULL, "no ID token");
	syn_refused(&v, "{\"nonce_salt\":\"c2hvcnQ\"}", NULL, "salt");
	/* no key exchange, a broken one, no AEAD we run */
	syn_refused(&v, "{\"kx\":null}", NULL, "key exchange");
	syn_refused(&v, "{\"kx\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\"}",
	    NULL, "key exchange");
	syn_refused(&v, "{\"aead\":[\"rot13\"]}", NULL, "no AEAD");
	syn_refused(&v, "{\"aead\":\"aes256gcm\"}", NULL, "no AEAD");
	/* the unix user: root only when our config says so, never a glob */
	syn_refused(&v, "{\"unix_user\":\"root\"}", NULL, "allow_root");
	syn_refused(&v, "{\"unix_user\":\"no-such-user-bz\"}", NULL,
	    "no such user");
	syn_refused(&v, "{\"unix_user\":\"\"}", NULL, "no unix user");
	v.unix_users = "app-*";
	syn_refused(&v, NULL, NULL, "does not serve unix user daemon");
	v.unix_users = "*";
	syn_refused(&v, "{\"unix_user\":\"root\"}", NULL, "allow_root");
	/* an agent that runs as daemon serves daemon only */
	v = ctx(K.daemon_uid);
	syn_refused(&v, "{\"unix_user\":\"nobody\"}", NULL,
	    "runs as daemon and can only serve daemon");
}

/* A SYN after refreshes: the login's token (expired, its nonce binding the
 * key) and a refreshed one without a nonce; then a "token" message. */
static void
test_refreshed_login(void **state)
{
	struct verify_ctx v = ctx(0);
	char *login = make_token_of(EMAIL, "u1", NOW - 4000, NOW - 400, "rsa1",
	    K.nonce);
	char *cur = make_token_of(EMAIL, "u1", NOW - 30, NOW + 300, "rsa1",
	    NULL), *tok, extra[16384], reason[AGENT_ERRLEN];
	struct envelope e;
	struct sess ss;

	(void)state;
	snprintf(extra, sizeof(extra), "{\"login_token\":\"%s\","
	    "\"id_token\":\"%s\"}", login, cur);
	start_with(&ss, &v, extra);
	assert_int_equal(ss.s->token_exp, NOW + 300);
	assert_string_equal(ss.s->sub, "u1");
	/* a later refresh, in the session's chain */
	tok = make_token_of(EMAIL, "u1", NOW, NOW + 900, "rsa1", NULL);
	snprintf(extra, sizeof(extra), "{\"id_token\":\"%s\"}", tok);
	assert_int_equal(next(&ss, &v, "token", 0, extra, &e, reason,
	    sizeof(reason)), 0);
	assert_int_equal(session_token(ss.s, &v, &e, reason, sizeof(reason)),
	    0);
	assert_int_equal(ss.s->token_exp, NOW + 900);
	envelope_free(&e);
	free(tok);
	/* someone else's token (another sub) does not extend it */
	tok = make_token_of(EMAIL, "u2", NOW, NOW + 1800, "rsa1", NULL);
	snprintf(extra, sizeof(extra), "{\"id_token\":\"%s\"}", tok);
	assert_int_equal(next(&ss, &v, "token", 0, extra, &e, reason,
	    sizeof(reason)), 0);
	assert_int_not_equal(session_token(ss.s, &v, &e, reason,
	    sizeof(reason)), 0);
	assert_non_null(strstr(reason, "not of this session's login"));
	assert_int_equal(ss.s->token_exp, NOW + 900);
	envelope_free(&e);
	free(tok);
	/* and "token" is the only message of channel 0 */
	assert_int_not_equal(next(&ss, &v, "exec", 0, "{\"command\":\"id\"}",
	    &e, reason, sizeof(reason)), 0);
	envelope_free(&e);
	stop(&ss);
	free(login);
	free(cur);
}

static void
test_refreshed_login_refused(void **state)
{
	struct verify_ctx v = ctx(0);
	char *login = make_token_of(EMAIL, "u1", NOW - 4000, NOW - 400, "rsa1",
	    K.nonce), *cur, extra[16384];

	(void)state;
	/* a refreshed token of another subject */
	cur = make_token_of(EMAIL, "u2", NOW - 30, NOW + 300, "rsa1", NULL);
	snprintf(extra, sizeof(extra), "{\"login_token\":\"%s\","
	    "\"id_token\":\"%s\"}", login, cur);
	syn_refused(&v, extra, NULL, "another subject");
	free(cur);
	/* an expired current token */
	cur = make_token_of(EMAIL, "u1", NOW - 900, NOW - 300, "rsa1", NULL);
	snprintf(extra, sizeof(extra), "{\"login_token\":\"%s\","
	    "\"id_token\":\"%s\"}", login, cur);
	syn_refused(&v, extra, NULL, "expired");
	free(cur);
	/* a login older than our login_max_age */
	cur = make_token_of(EMAIL, "u1", NOW - 30, NOW + 300, "rsa1", NULL);
	snprintf(extra, sizeof(extra), "{\"login_token\":\"%s\","
	    "\"id_token\":\"%s\"}", login, cur);
	v.login_max_age = 3600;
	syn_refused(&v, extra, NULL, "login too old");
	v.login_max_age = 24 * 3600;
	free(login);
	/* a "login" token whose nonce binds no key of ours */
	login = make_token_of(EMAIL, "u1", NOW - 4000, NOW - 400, "rsa1",
	    NULL);
	snprintf(extra, sizeof(extra), "{\"login_token\":\"%s\","
	    "\"id_token\":\"%s\"}", login, cur);
	syn_refused(&v, extra, NULL, "nonce");
	free(login);
	free(cur);
}

static void
test_syn_root_and_twice(void **state)
{
	struct verify_ctx v = ctx(0);
	struct framed fr;
	struct envelope e;
	struct sess ss;
	uint8_t *m, *synack = NULL;
	size_t n, an;
	char reason[AGENT_ERRLEN];

	/* a second SYN for a running session */
	start(&ss, &v);
	m = syn_msg(NULL, NULL, &n);
	envelope(&fr, m, n, SID, 0, NULL, NULL);
	open_ok(&v, &fr, &e);
	assert_int_equal(session_syn(ss.t, &v, &e, K.agent_pk, K.agent_sk,
	    &synack, &an, reason, sizeof(reason)), VERIFY_REFUSED);
	assert_non_null(strstr(reason, "started already"));
	envelope_free(&e);
	free(fr.buf);
	free(m);
	stop(&ss);
	/* root where allow_root says yes */
	v.allow_root = 1;
	m = syn_msg("{\"unix_user\":\"root\"}", NULL, &n);
	envelope(&fr, m, n, SID, 0, NULL, NULL);
	open_ok(&v, &fr, &e);
	ss.t = sessions_new();
	assert_int_equal(session_syn(ss.t, &v, &e, K.agent_pk, K.agent_sk,
	    &synack, &an, reason, sizeof(reason)), VERIFY_OK);
	free(synack);
	sessions_free(ss.t);
	envelope_free(&e);
	free(fr.buf);
	free(m);
	/* a SYN bzproxy denied */
	syn_refused_env(&v, NULL, NULL, "{\"decision\":\"deny\","
	    "\"reason\":\"no policy\"}", "did not allow the session: no "
	    "policy");
}

static void
test_chain(void **state)
{
	struct verify_ctx v = ctx(0);
	struct framed fr;
	struct envelope e;
	struct sess ss;
	char reason[AGENT_ERRLEN], *first_prev;
	uint8_t *m;
	size_t n;

	start(&ss, &v);
	first_prev = strdup(ss.prev);
	assert_int_equal(next(&ss, &v, "exec", 1, "{\"command\":\"a\"}", &e,
	    reason, sizeof(reason)), 0);
	envelope_free(&e);
	/* the same message again (a replay): seq and prev are used up */
	m = req_msg("exec", 1, first_prev, 1, "{\"command\":\"a\"}", NULL, &n);
	envelope(&fr, m, n, SID, 1, NULL, NULL);
	open_ok(&v, &fr, &e);
	assert_int_equal(session_next(ss.s, &v, &e, reason, sizeof(reason)),
	    BZ_ERR_INVALID);
	assert_non_null(strstr(reason, "chain"));
	envelope_free(&e);
	free(fr.buf);
	free(m);
	/* a broken session runs nothing more, even a good next message */
	assert_int_equal(next(&ss, &v, "exec", 2, "{\"command\":\"b\"}", &e,
	    reason, sizeof(reason)), BZ_ERR_INVALID);
	assert_non_null(strstr(reason, "broke its chain"));
	envelope_free(&e);
	stop(&ss);
	free(first_prev);
}

/* Each way a later message can be wrong, in a fresh session each time. */
static void
test_chain_violations(void **state)
{
	struct verify_ctx v = ctx(0);
	const char *parts[] = { "chain", "chain", "chain", "another channel",
	    "not signed by the session", "stale" };
	struct framed fr;
	struct envelope e;
	struct sess ss;
	char reason[AGENT_ERRLEN];
	uint8_t *m;
	size_t n;
	int i;

	for (i = 0; i < 6; i++) {
		start(&ss, &v);
		switch (i) {
		case 0: /* a skipped sequence number (one dropped) */
			m = req_msg("exec", 2, ss.prev, 1, "{\"command\":\"a\"}",
			    NULL, &n);
			break;
		case 1: /* chained to something else */
			m = req_msg("exec", 1, "AAAA", 1, "{\"command\":\"a\"}",
			    NULL, &n);
			break;
		case 2: /* no prev at all */
			m = req_msg("exec", 1, ss.prev, 1, "{\"command\":\"a\","
			    "\"prev\":null}", NULL, &n);
			break;
		case 3: /* moved to another channel by bzproxy */
			m = req_msg("exec", 1, ss.prev, 2, "{\"command\":\"a\"}",
			    NULL, &n);
			break;
		case 4: /* signed by another key (another user's client) */
			m = req_msg("exec", 1, ss.prev, 1, "{\"command\":\"a\"}",
			    K.other_sk, &n);
			break;
		default: /* too old */
			m = req_msg("exec", 1, ss.prev, 1, "{\"command\":\"a\","
			    "\"ts\":1699990000}", NULL, &n);
			break;
		}
		envelope(&fr, m, n, SID, 1, NULL, NULL);
		open_ok(&v, &fr, &e);
		assert_int_equal(session_next(ss.s, &v, &e, reason,
		    sizeof(reason)), BZ_ERR_INVALID);
		if (strstr(reason, parts[i]) == NULL)
			fail_msg("case %d: \"%s\" lacks \"%s\"", i, reason,
			    parts[i]);
		envelope_free(&e);
		free(fr.buf);
		free(m);
		stop(&ss);
	}
}

static void
test_denied_moves_the_chain(void **state)
{
	struct verify_ctx v = ctx(0);
	struct framed fr;
	struct envelope e;
	struct sess ss;
	char reason[AGENT_ERRLEN];
	uint8_t *m;
	size_t n;

	start(&ss, &v);
	/* bzproxy denied #1: it still counts, so #2 chains to it */
	m = req_msg("exec", 1, ss.prev, 1, "{\"command\":\"rm -rf /\"}", NULL,
	    &n);
	envelope(&fr, m, n, SID, 1, "{\"decision\":\"deny\",\"reason\":"
	    "\"no\"}", NULL);
	open_ok(&v, &fr, &e);
	assert_false(e.allowed);
	assert_string_equal(e.reason, "no");
	assert_int_equal(session_next(ss.s, &v, &e, reason, sizeof(reason)),
	    0);
	free(ss.prev);
	ss.prev = bz_hash_b64(m, n);
	ss.seq = 1;
	envelope_free(&e);
	free(fr.buf);
	free(m);
	assert_int_equal(next(&ss, &v, "exec", 2, "{\"command\":\"id\"}", &e,
	    reason, sizeof(reason)), 0);
	envelope_free(&e);
	stop(&ss);
}

static void
test_subsystem_and_forward(void **state)
{
	struct verify_ctx v = ctx(0);
	struct agent_request req;
	struct envelope e;
	struct sess ss;
	char reason[AGENT_ERRLEN];

	start(&ss, &v);
	v.sftp_server = "/usr/lib/openssh/sftp-server";
	assert_int_equal(next(&ss, &v, "subsystem", 1, "{\"name\":\"sftp\"}",
	    &e, reason, sizeof(reason)), 0);
	free(e.action);
	e.action = strdup("sftp");
	assert_int_equal(session_request(ss.s, &v, &e, &req, reason,
	    sizeof(reason)), VERIFY_OK);
	/* runs our program, never a name from the request */
	assert_string_equal(req.command, "/usr/lib/openssh/sftp-server");
	agent_request_free(&req);
	envelope_free(&e);
	assert_int_equal(next(&ss, &v, "subsystem", 2, "{\"name\":\"netconf\"}",
	    &e, reason, sizeof(reason)), 0);
	free(e.action);
	e.action = strdup("sftp");
	assert_int_equal(session_request(ss.s, &v, &e, &req, reason,
	    sizeof(reason)), VERIFY_REFUSED);
	assert_non_null(strstr(reason, "not served here"));
	agent_request_free(&req);
	envelope_free(&e);
	v.sftp_server = NULL;
	assert_int_equal(next(&ss, &v, "subsystem", 3, "{\"name\":\"sftp\"}",
	    &e, reason, sizeof(reason)), 0);
	free(e.action);
	e.action = strdup("sftp");
	assert_int_equal(session_request(ss.s, &v, &e, &req, reason,
	    sizeof(reason)), VERIFY_REFUSED);
	assert_non_null(strstr(reason, "no sftp-server"));
	agent_request_free(&req);
	envelope_free(&e);
	/* forwards: permit_open has the last word */
	v.permit_open = "127.0.0.1:* db*.internal:5432";
	assert_int_equal(next(&ss, &v, "forward", 4, "{\"host\":\"db.internal\","
	    "\"port\":5432}", &e, reason, sizeof(reason)), 0);
	free(e.action);
	e.action = strdup("port_forward");
	assert_int_equal(session_request(ss.s, &v, &e, &req, reason,
	    sizeof(reason)), VERIFY_OK);
	assert_int_equal(req.kind, REQ_FORWARD);
	assert_string_equal(req.fwd_host, "db.internal");
	assert_int_equal(req.fwd_port, 5432);
	agent_request_free(&req);
	envelope_free(&e);
	assert_int_equal(next(&ss, &v, "forward", 5, "{\"host\":\"db.internal\","
	    "\"port\":22}", &e, reason, sizeof(reason)), 0);
	free(e.action);
	e.action = strdup("port_forward");
	assert_int_equal(session_request(ss.s, &v, &e, &req, reason,
	    sizeof(reason)), VERIFY_REFUSED);
	assert_non_null(strstr(reason, "permit_open"));
	agent_request_free(&req);
	envelope_free(&e);
	stop(&ss);
}

static void
test_env_and_client(void **state)
{
	struct verify_ctx v = ctx(0);
	struct agent_request req;
	struct envelope e;
	struct sess ss;
	char reason[AGENT_ERRLEN], **env;
	int i, git = 0, path = 0, conn = 0, cli = 0, mine = 0;

	start(&ss, &v);
	assert_int_equal(next(&ss, &v, "exec", 1, "{\"command\":\"env\","
	    "\"env\":{\"GIT_PROTOCOL\":\"version=2\",\"PATH\":\"/tmp/evil\","
	    "\"MY_VAR\":\"x\",\"SSH_TTY\":\"t\"},\"client\":{\"addr\":"
	    "\"192.0.2.7\",\"port\":40001,\"server_port\":2222}}", &e, reason,
	    sizeof(reason)), 0);
	assert_int_equal(session_request(ss.s, &v, &e, &req, reason,
	    sizeof(reason)), VERIFY_OK);
	assert_non_null(strstr(req.env_refused, "PATH"));
	assert_non_null(strstr(req.env_refused, "MY_VAR"));
	assert_non_null(strstr(req.env_refused, "SSH_TTY"));
	req.server_addr = strdup("198.51.100.1");
	env = child_build_env(&req, NULL);
	for (i = 0; env[i] != NULL; i++) {
		git |= strcmp(env[i], "GIT_PROTOCOL=version=2") == 0;
		path += strncmp(env[i], "PATH=", 5) == 0;
		assert_string_not_equal(env[i], "PATH=/tmp/evil");
		conn |= strcmp(env[i], "SSH_CONNECTION=192.0.2.7 40001 "
		    "198.51.100.1 2222") == 0;
		cli |= strcmp(env[i], "SSH_CLIENT=192.0.2.7 40001 2222") == 0;
		assert_null(strstr(env[i], "SSH_TTY"));
	}
	assert_true(git);
	assert_int_equal(path, 1);
	assert_true(conn);
	assert_true(cli);
	child_free_env(env);
	agent_request_free(&req);
	envelope_free(&e);
	/* a target that takes more names */
	v.accept_env = "LANG MY_*";
	assert_int_equal(next(&ss, &v, "exec", 2, "{\"command\":\"env\","
	    "\"env\":{\"MY_VAR\":\"x\"}}", &e, reason, sizeof(reason)), 0);
	assert_int_equal(session_request(ss.s, &v, &e, &req, reason,
	    sizeof(reason)), VERIFY_OK);
	for (i = 0; req.env[i] != NULL; i++)
		mine |= strcmp(req.env[i], "MY_VAR=x") == 0;
	assert_true(mine);
	agent_request_free(&req);
	envelope_free(&e);
	/* malformed: refused, the chain moved on all the same */
	assert_int_equal(next(&ss, &v, "exec", 3, "{\"command\":\"env\","
	    "\"env\":{\"BAD NAME\":\"x\"}}", &e, reason, sizeof(reason)), 0);
	assert_int_equal(session_request(ss.s, &v, &e, &req, reason,
	    sizeof(reason)), VERIFY_REFUSED);
	assert_non_null(strstr(reason, "env"));
	agent_request_free(&req);
	envelope_free(&e);
	assert_int_equal(next(&ss, &v, "exec", 4, "{\"command\":\"env\","
	    "\"client\":{\"addr\":\"not-an-ip\",\"port\":1,"
	    "\"server_port\":22}}", &e, reason, sizeof(reason)), 0);
	assert_int_equal(session_request(ss.s, &v, &e, &req, reason,
	    sizeof(reason)), VERIFY_REFUSED);
	assert_non_null(strstr(reason, "client address"));
	agent_request_free(&req);
	envelope_free(&e);
	assert_int_equal(next(&ss, &v, "exec", 5, "{\"command\":null}", &e,
	    reason, sizeof(reason)), 0);
	assert_int_equal(session_request(ss.s, &v, &e, &req, reason,
	    sizeof(reason)), VERIFY_REFUSED);
	assert_non_null(strstr(reason, "no command"));
	agent_request_free(&req);
	envelope_free(&e);
	stop(&ss);
}

static void
test_permit_lists(void **state)
{
	char err[128];

	assert_true(permit_open(NULL, "any.host", 1));
	assert_true(permit_open("any", "any.host", 1));
	assert_false(permit_open("none", "127.0.0.1", 80));
	assert_true(permit_open("127.0.0.1:80 [::1]:*", "::1", 9));
	assert_true(permit_open("*.Example.com:443", "www.example.COM", 443));
	assert_false(permit_open("*.example.com:443", "example.com", 443));
	assert_false(permit_open("127.0.0.1:80", "127.0.0.1", 8080));
	assert_int_equal(permit_open_check("127.0.0.1:80 h:*", err,
	    sizeof(err)), 0);
	assert_int_equal(permit_open_check("127.0.0.1", err, sizeof(err)),
	    BZ_ERR_INVALID);
	assert_non_null(strstr(err, "\"127.0.0.1\""));
	assert_int_equal(permit_open_check("h:0", err, sizeof(err)),
	    BZ_ERR_INVALID);
	assert_int_equal(permit_open_check("h:65536", err, sizeof(err)),
	    BZ_ERR_INVALID);
	assert_true(permit_env(NULL, "LC_ALL"));
	assert_true(permit_env(NULL, "GIT_PROTOCOL"));
	assert_false(permit_env(NULL, "LD_PRELOAD"));
	assert_false(permit_env("*", "PATH"));
	assert_false(permit_env("*", "SSH_CONNECTION"));
	assert_true(permit_env("*", "ANYTHING"));
	assert_false(permit_env("*", "1ABC"));
}

static void
test_backoff(void **state)
{
	uint32_t d, max = 0;
	unsigned a;
	int i;

	assert_int_equal(bz_backoff_ceiling(0, 500, 30000), 500);
	assert_int_equal(bz_backoff_ceiling(1, 500, 30000), 1000);
	assert_int_equal(bz_backoff_ceiling(5, 500, 30000), 16000);
	assert_int_equal(bz_backoff_ceiling(6, 500, 30000), 30000);
	assert_int_equal(bz_backoff_ceiling(1000, 500, 30000), 30000);
	assert_int_equal(bz_backoff_ceiling(UINT32_MAX, 500, 30000), 30000);
	for (a = 0; a < 10; a++)
		for (i = 0; i < 200; i++) {
			d = bz_backoff_delay(a, 500, 30000);
			assert_true(d <= bz_backoff_ceiling(a, 500, 30000));
		}
	/* full jitter: spread over the range, not pinned to the top */
	for (i = 0; i < 200; i++) {
		d = bz_backoff_delay(6, 500, 30000);
		if (d > max)
			max = d;
		assert_true(d <= 30000);
	}
	assert_true(max > 15000);
	for (i = 0, d = 0; i < 50; i++)
		d |= bz_backoff_delay(6, 500, 30000) < 15000;
	assert_true(d);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_good_session_and_exec),
		cmocka_unit_test(test_shell_pty_and_login_env),
		cmocka_unit_test(test_envelope),
		cmocka_unit_test(test_syn),
		cmocka_unit_test(test_syn_root_and_twice),
		cmocka_unit_test(test_refreshed_login),
		cmocka_unit_test(test_refreshed_login_refused),
		cmocka_unit_test(test_chain),
		cmocka_unit_test(test_chain_violations),
		cmocka_unit_test(test_denied_moves_the_chain),
		cmocka_unit_test(test_subsystem_and_forward),
		cmocka_unit_test(test_env_and_client),
		cmocka_unit_test(test_permit_lists),
		cmocka_unit_test(test_backoff),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
