/*
 * test_agent_verify.c: bzagent's own checks of a channel request
 * (agent/request_verify.c), its replay set and its reconnect backoff.
 * Every request here is really signed (Ed25519, like bzproxy) and carries
 * a real RS256 ID token made with OpenSSL, as in test_jwt.c, so each
 * refusal is tested against an otherwise valid request.
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

/* An RS256 token for email, expiring at exp, under key id kid. */
static char *
make_token(const char *email, time_t exp, const char *kid)
{
	char *hdr, *pay, *h, *p, *input, *sig, *t;
	uint8_t sb[512];
	size_t slen = sizeof(sb);
	EVP_MD_CTX *md;

	assert_true(asprintf(&hdr, "{\"alg\":\"RS256\",\"kid\":\"%s\"}",
	    kid) > 0);
	assert_true(asprintf(&pay, "{\"iss\":\"%s\",\"aud\":\"%s\","
	    "\"sub\":\"u1\",\"email\":\"%s\",\"iat\":%lld,\"exp\":%lld}", ISS,
	    AUD, email, (long long)NOW - 30, (long long)exp) > 0);
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
	return 0;
}

/* ---- helpers: requests ---- */

/* A valid exec request as JSON; extra (JSON text) replaces members. */
static json_t *
request(const char *extra)
{
	char *tok = make_token(EMAIL, NOW + 300, "rsa1"), *nonce;
	json_t *o, *x;

	assert_int_equal(bz_random_b64url(32, &nonce), 0);
	o = json_pack("{s:s,s:s,s:I,s:I,s:s,s:s,s:s,s:s,s:s,s:n,"
	    "s:{s:s,s:s},s:s,s:I,s:s}",
	    "t", "exec", "action", "exec", "sid", (json_int_t)SID,
	    "ch", (json_int_t)CH,
	    "target", NAME, "unix_user", "nobody", "user", EMAIL,
	    "id_token", tok, "command", "echo hi",
	    "pty", "env", "LANG", "C.UTF-8", "LD_PRELOAD", "/tmp/evil.so",
	    "rule", "ops", "ts", (json_int_t)NOW, "nonce", nonce);
	assert_non_null(o);
	if (extra != NULL) {
		x = json_loads(extra, 0, NULL);
		assert_non_null(x);
		assert_int_equal(json_object_update(o, x), 0);
		json_decref(x);
	}
	free(tok);
	free(nonce);
	return o;
}

struct signed_req {
	uint8_t buf[BZ_WIRE_MAX_PAYLOAD];
	struct bz_frame f;
};

/* Frame carrying o signed with sk (NULL: unsigned, no flag). */
static void
frame_for(struct signed_req *s, const json_t *o, const uint8_t *sk,
    uint32_t sid, uint32_t ch)
{
	char *text = json_dumps(o, JSON_COMPACT);
	size_t n = strlen(text);

	assert_true(n + BZ_SIG_LEN <= sizeof(s->buf));
	memcpy(s->buf, text, n);
	memset(&s->f, 0, sizeof(s->f));
	s->f.version = BZ_WIRE_VERSION;
	s->f.type = BZ_FRAME_CONTROL;
	s->f.session_id = sid;
	s->f.channel_id = ch;
	s->f.payload = s->buf;
	s->f.length = (uint32_t)n;
	if (sk != NULL) {
		crypto_sign_detached(s->buf + n, NULL, s->buf, n, sk);
		s->f.length += BZ_SIG_LEN;
		s->f.flags = BZ_FLAG_PROXY_SIGNED;
	}
	free(text);
}

static struct verify_ctx
ctx(struct replay_cache *rc, uid_t euid)
{
	struct verify_ctx v = {
		.proxy_pk = K.proxy_pk, .name = NAME, .issuer = ISS,
		.audience = AUD, .jwks = K.jwks, .replay = rc, .now = NOW,
		.euid = euid,
	};

	return v;
}

/* Verify frame s under v: expect result want, and reason containing
 * reason_part when refused. */
static void
expect(const struct verify_ctx *v, const struct signed_req *s,
    enum verify_result want, const char *reason_part)
{
	struct agent_request req;
	char reason[AGENT_ERRLEN] = "";
	enum verify_result r;

	r = agent_request_verify(v, &s->f, &req, reason, sizeof(reason));
	if (r != want)
		fail_msg("result %d, want %d (reason: %s)", r, want, reason);
	if (want != VERIFY_OK && strstr(reason, reason_part) == NULL)
		fail_msg("reason \"%s\" lacks \"%s\"", reason, reason_part);
	agent_request_free(&req);
}

/* Build from extra, sign with the proxy key, verify as root. */
static void
check(const char *extra, enum verify_result want, const char *reason_part)
{
	struct replay_cache *rc = replay_new();
	struct verify_ctx v = ctx(rc, 0);
	struct signed_req s;
	json_t *o = request(extra);

	frame_for(&s, o, K.proxy_sk, SID, CH);
	expect(&v, &s, want, reason_part);
	json_decref(o);
	replay_free(rc);
}

/* ---- tests ---- */

static void
test_good_exec(void **state)
{
	struct replay_cache *rc = replay_new();
	struct verify_ctx v = ctx(rc, 0);
	struct agent_request req;
	struct signed_req s;
	char reason[AGENT_ERRLEN];
	json_t *o = request(NULL);

	frame_for(&s, o, K.proxy_sk, SID, CH);
	assert_int_equal(agent_request_verify(&v, &s.f, &req, reason,
	    sizeof(reason)), VERIFY_OK);
	assert_int_equal(req.sid, SID);
	assert_int_equal(req.ch, CH);
	assert_int_equal(req.kind, REQ_EXEC);
	assert_string_equal(req.action, "exec");
	assert_string_equal(req.command, "echo hi");
	assert_string_equal(req.user, EMAIL);
	assert_string_equal(req.unix_user, "nobody");
	assert_int_equal(req.uid, 65534);
	assert_string_equal(req.rule, "ops");
	assert_false(req.pty);
	/* accept_env's default takes the locale, not LD_PRELOAD */
	assert_non_null(req.env[0]);
	assert_string_equal(req.env[0], "LANG=C.UTF-8");
	assert_null(req.env[1]);
	assert_string_equal(req.env_refused, "LD_PRELOAD");
	agent_request_free(&req);
	json_decref(o);
	replay_free(rc);
}

static void
test_good_shell_pty(void **state)
{
	struct replay_cache *rc = replay_new();
	struct verify_ctx v = ctx(rc, 0);
	struct agent_request req;
	struct signed_req s;
	char reason[AGENT_ERRLEN], **env;
	json_t *o = request("{\"t\":\"shell\",\"action\":\"shell\","
	    "\"pty\":{\"term\":\"xterm\",\"cols\":101,\"rows\":37,"
	    "\"width\":0,\"height\":0}}");
	int i, term = 0, path = 0, tty = 0;

	json_object_del(o, "command");
	frame_for(&s, o, K.proxy_sk, SID, CH);
	assert_int_equal(agent_request_verify(&v, &s.f, &req, reason,
	    sizeof(reason)), VERIFY_OK);
	assert_int_equal(req.kind, REQ_SHELL);
	assert_null(req.command);
	assert_true(req.pty);
	assert_string_equal(req.term, "xterm");
	assert_int_equal(req.cols, 101);
	assert_int_equal(req.rows, 37);
	/* the login environment */
	env = child_build_env(&req, "/dev/pts/7");
	assert_non_null(env);
	for (i = 0; env[i] != NULL; i++) {
		tty |= strcmp(env[i], "SSH_TTY=/dev/pts/7") == 0;
		term |= strcmp(env[i], "TERM=xterm") == 0;
		path |= strcmp(env[i], "PATH=/usr/local/bin:/usr/bin:/bin") ==
		    0;
		assert_null(strstr(env[i], "LD_PRELOAD"));
	}
	assert_true(term);
	assert_true(path);
	assert_true(tty);
	child_free_env(env);
	agent_request_free(&req);
	json_decref(o);
	replay_free(rc);
}

static void
test_signature(void **state)
{
	struct replay_cache *rc = replay_new();
	struct verify_ctx v = ctx(rc, 0);
	struct signed_req s;
	json_t *o = request(NULL);

	/* unsigned */
	frame_for(&s, o, NULL, SID, CH);
	expect(&v, &s, VERIFY_REFUSED, "not signed by bzproxy");
	/* signed by another key */
	frame_for(&s, o, K.other_sk, SID, CH);
	expect(&v, &s, VERIFY_REFUSED, "bad bzproxy signature");
	/* altered after signing (unix_user nobody -> nobodx) */
	frame_for(&s, o, K.proxy_sk, SID, CH);
	{
		char *p = memmem(s.buf, s.f.length - BZ_SIG_LEN, "nobody", 6);

		assert_non_null(p);
		p[5] = 'x';
	}
	expect(&v, &s, VERIFY_REFUSED, "bad bzproxy signature");
	/* signature damaged */
	frame_for(&s, o, K.proxy_sk, SID, CH);
	s.buf[s.f.length - 1] ^= 1;
	expect(&v, &s, VERIFY_REFUSED, "bad bzproxy signature");
	/* too short to hold a signature */
	frame_for(&s, o, K.proxy_sk, SID, CH);
	s.f.length = 10;
	expect(&v, &s, VERIFY_REFUSED, "not signed by bzproxy");
	json_decref(o);
	replay_free(rc);
}

static void
test_target_and_channel(void **state)
{
	struct replay_cache *rc = replay_new();
	struct verify_ctx v = ctx(rc, 0);
	struct signed_req s;
	json_t *o;

	check("{\"target\":\"db1\"}", VERIFY_REFUSED, "another target");
	check("{\"t\":\"sftp\"}", VERIFY_REFUSED, "unknown request type");
	/* JSON sid/ch must equal the frame header */
	o = request(NULL);
	frame_for(&s, o, K.proxy_sk, SID + 1, CH);
	expect(&v, &s, VERIFY_REFUSED, "another session or channel");
	frame_for(&s, o, K.proxy_sk, SID, CH + 1);
	expect(&v, &s, VERIFY_REFUSED, "another session or channel");
	json_decref(o);
	/* channel 0 is the connection, never a channel */
	o = request("{\"ch\":0}");
	frame_for(&s, o, K.proxy_sk, SID, 0);
	expect(&v, &s, VERIFY_REFUSED, "another session or channel");
	json_decref(o);
	check("{\"sid\":\"7\"}", VERIFY_REFUSED, "another session");
	replay_free(rc);
}

static void
test_freshness(void **state)
{
	char extra[64];

	snprintf(extra, sizeof(extra), "{\"ts\":%lld}", (long long)NOW - 121);
	check(extra, VERIFY_REFUSED, "stale");
	snprintf(extra, sizeof(extra), "{\"ts\":%lld}", (long long)NOW + 121);
	check(extra, VERIFY_REFUSED, "stale");
	snprintf(extra, sizeof(extra), "{\"ts\":%lld}", (long long)NOW - 120);
	check(extra, VERIFY_OK, NULL);
	snprintf(extra, sizeof(extra), "{\"ts\":%lld}", (long long)NOW + 120);
	check(extra, VERIFY_OK, NULL);
	check("{\"ts\":\"now\"}", VERIFY_REFUSED, "stale");
	check("{\"nonce\":\"\"}", VERIFY_REFUSED, "no nonce");
}

static void
test_replay(void **state)
{
	struct replay_cache *rc = replay_new();
	struct verify_ctx v = ctx(rc, 0);
	struct signed_req s;
	json_t *o = request(NULL);

	frame_for(&s, o, K.proxy_sk, SID, CH);
	expect(&v, &s, VERIFY_OK, NULL);
	expect(&v, &s, VERIFY_REFUSED, "replayed");
	/* still refused later while its timestamp could pass */
	v.now = NOW + 100;
	expect(&v, &s, VERIFY_REFUSED, "replayed");
	json_decref(o);
	replay_free(rc);
}

static void
test_token(void **state)
{
	struct replay_cache *rc = replay_new();
	struct verify_ctx v = ctx(rc, 0);
	struct signed_req s;
	char *tok, *extra;
	json_t *o;

	/* a valid token, but for someone else */
	tok = make_token("mallory@example.com", NOW + 300, "rsa1");
	assert_true(asprintf(&extra, "{\"id_token\":\"%s\"}", tok) > 0);
	check(extra, VERIFY_REFUSED, "ID token is not for " EMAIL);
	free(tok);
	free(extra);
	/* expired */
	tok = make_token(EMAIL, NOW - 3600, "rsa1");
	assert_true(asprintf(&extra, "{\"id_token\":\"%s\"}", tok) > 0);
	check(extra, VERIFY_REFUSED, "token expired");
	free(tok);
	free(extra);
	/* a kid we do not know: refetch the keys */
	tok = make_token(EMAIL, NOW + 300, "rotated");
	assert_true(asprintf(&extra, "{\"id_token\":\"%s\"}", tok) > 0);
	check(extra, VERIFY_NEED_KEYS, "unknown key id");
	free(tok);
	free(extra);
	check("{\"id_token\":\"not.a.token\"}", VERIFY_REFUSED,
	    "ID token rejected");
	check("{\"id_token\":null}", VERIFY_REFUSED, "no ID token");
	/* no JWKS fetched yet */
	o = request(NULL);
	v.jwks = NULL;
	frame_for(&s, o, K.proxy_sk, SID, CH);
	expect(&v, &s, VERIFY_NEED_KEYS, "no IdP keys yet");
	/* held for the keys, then checked again: its nonce was recorded
	 * the first time, which is no replay... */
	v.jwks = K.jwks;
	v.recheck = 1;
	expect(&v, &s, VERIFY_OK, NULL);
	/* ...but the same frame coming in again is */
	v.recheck = 0;
	expect(&v, &s, VERIFY_REFUSED, "replayed request");
	json_decref(o);
	replay_free(rc);
}

static void
test_unix_user(void **state)
{
	struct replay_cache *rc = replay_new();
	struct verify_ctx v;
	struct signed_req s;
	json_t *o;

	check("{\"unix_user\":\"root\"}", VERIFY_REFUSED, "root is not "
	    "allowed");
	/* the request cannot ask for root: only our own config says so */
	check("{\"unix_user\":\"root\",\"root_allowed\":true}",
	    VERIFY_REFUSED, "allow_root");
	v = ctx(rc, 0);
	v.allow_root = 1;
	o = request("{\"unix_user\":\"root\"}");
	frame_for(&s, o, K.proxy_sk, SID, CH);
	expect(&v, &s, VERIFY_OK, NULL);
	json_decref(o);
	/* unix_users: only the users this target serves */
	v = ctx(rc, 0);
	v.unix_users = "daemon app-*";
	o = request(NULL); /* nobody */
	frame_for(&s, o, K.proxy_sk, SID, CH);
	expect(&v, &s, VERIFY_REFUSED, "does not serve unix user nobody");
	json_decref(o);
	o = request("{\"unix_user\":\"daemon\"}");
	frame_for(&s, o, K.proxy_sk, SID, CH);
	expect(&v, &s, VERIFY_OK, NULL);
	json_decref(o);
	/* a glob never serves root without allow_root */
	v.unix_users = "*";
	o = request("{\"unix_user\":\"root\"}");
	frame_for(&s, o, K.proxy_sk, SID, CH);
	expect(&v, &s, VERIFY_REFUSED, "allow_root");
	json_decref(o);
	check("{\"unix_user\":\"no-such-user-bz\"}", VERIFY_REFUSED,
	    "no such user");
	check("{\"unix_user\":\"\"}", VERIFY_REFUSED, "no unix_user");
	/* not root: only our own user */
	v = ctx(rc, K.daemon_uid);
	o = request(NULL);
	frame_for(&s, o, K.proxy_sk, SID, CH);
	expect(&v, &s, VERIFY_REFUSED,
	    "this agent runs as daemon and can only serve daemon");
	json_decref(o);
	o = request("{\"unix_user\":\"daemon\"}");
	frame_for(&s, o, K.proxy_sk, SID, CH);
	expect(&v, &s, VERIFY_OK, NULL);
	json_decref(o);
	replay_free(rc);
}

static void
test_malformed(void **state)
{
	check("{\"command\":null}", VERIFY_REFUSED, "no command");
	check("{\"pty\":{\"term\":\"xterm\"}}", VERIFY_REFUSED, "pty");
	check("{\"pty\":{\"term\":\"xterm\",\"cols\":-1,\"rows\":1,"
	    "\"width\":0,\"height\":0}}", VERIFY_REFUSED, "pty");
	check("{\"env\":[1]}", VERIFY_REFUSED, "env");
	check("{\"user\":7}", VERIFY_REFUSED, "no user");
}

static void
test_replay_cache(void **state)
{
	struct replay_cache *rc = replay_new();
	char nonce[32];
	int i;

	assert_int_equal(replay_check_and_add(rc, "a", NOW), 0);
	assert_int_equal(replay_check_and_add(rc, "a", NOW + REPLAY_KEEP_S),
	    BZ_ERR_FORMAT);
	/* forgotten after REPLAY_KEEP_S */
	assert_int_equal(replay_check_and_add(rc, "a",
	    NOW + REPLAY_KEEP_S + 1), 0);
	/* bounded: when full of live entries, refuse (never evict) */
	for (i = 1; i < REPLAY_MAX; i++) {
		snprintf(nonce, sizeof(nonce), "n%d", i);
		assert_int_equal(replay_check_and_add(rc, nonce, NOW + 300),
		    0);
	}
	assert_int_equal(replay_check_and_add(rc, "one-more", NOW + 300),
	    BZ_ERR_TOO_BIG);
	assert_int_equal(replay_check_and_add(rc, "n5", NOW + 300),
	    BZ_ERR_FORMAT);
	/* later they expire and make room */
	assert_int_equal(replay_check_and_add(rc, "one-more",
	    NOW + 300 + REPLAY_KEEP_S + 1), 0);
	replay_free(rc);
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

/* Verify o (signed) under v; the request is left in *req. */
static enum verify_result
verify_obj(const struct verify_ctx *v, json_t *o, struct agent_request *req,
    char *reason, size_t len)
{
	struct signed_req s;

	frame_for(&s, o, K.proxy_sk, SID, CH);
	return agent_request_verify(v, &s.f, req, reason, len);
}

static void
test_subsystem(void **state)
{
	struct replay_cache *rc = replay_new();
	struct verify_ctx v = ctx(rc, 0);
	struct agent_request req;
	char reason[AGENT_ERRLEN];
	json_t *o = request("{\"t\":\"subsystem\",\"action\":\"sftp\","
	    "\"subsystem\":\"sftp\"}");

	json_object_del(o, "command");
	v.sftp_server = "/usr/lib/openssh/sftp-server";
	assert_int_equal(verify_obj(&v, o, &req, reason, sizeof(reason)),
	    VERIFY_OK);
	assert_int_equal(req.kind, REQ_SUBSYSTEM);
	assert_string_equal(req.subsystem, "sftp");
	/* runs our program, never a name from the request */
	assert_string_equal(req.command, "/usr/lib/openssh/sftp-server");
	agent_request_free(&req);
	json_decref(o);
	replay_free(rc);

	/* no sftp-server on this machine */
	check("{\"t\":\"subsystem\",\"action\":\"sftp\","
	    "\"subsystem\":\"sftp\"}", VERIFY_REFUSED, "no sftp-server");
	/* other subsystems are not served */
	rc = replay_new();
	v = ctx(rc, 0);
	v.sftp_server = "/usr/lib/openssh/sftp-server";
	o = request("{\"t\":\"subsystem\",\"action\":\"sftp\","
	    "\"subsystem\":\"netconf\"}");
	assert_int_equal(verify_obj(&v, o, &req, reason, sizeof(reason)),
	    VERIFY_REFUSED);
	assert_non_null(strstr(reason, "not served here"));
	agent_request_free(&req);
	json_decref(o);
	replay_free(rc);
}

static void
test_forward(void **state)
{
	struct replay_cache *rc = replay_new();
	struct verify_ctx v = ctx(rc, 0);
	struct agent_request req;
	char reason[AGENT_ERRLEN];
	json_t *o = request("{\"t\":\"forward\",\"action\":\"port_forward\","
	    "\"host\":\"db.internal\",\"port\":5432}");

	json_object_del(o, "command");
	json_object_del(o, "env");
	v.permit_open = "127.0.0.1:* db*.internal:5432";
	assert_int_equal(verify_obj(&v, o, &req, reason, sizeof(reason)),
	    VERIFY_OK);
	assert_int_equal(req.kind, REQ_FORWARD);
	assert_string_equal(req.fwd_host, "db.internal");
	assert_int_equal(req.fwd_port, 5432);
	assert_null(req.env);
	agent_request_free(&req);
	json_decref(o);

	/* permit_open has the last word */
	o = request("{\"t\":\"forward\",\"action\":\"port_forward\","
	    "\"host\":\"db.internal\",\"port\":22}");
	assert_int_equal(verify_obj(&v, o, &req, reason, sizeof(reason)),
	    VERIFY_REFUSED);
	assert_non_null(strstr(reason, "permit_open"));
	agent_request_free(&req);
	json_decref(o);
	v.permit_open = "none";
	o = request("{\"t\":\"forward\",\"action\":\"port_forward\","
	    "\"host\":\"127.0.0.1\",\"port\":80}");
	assert_int_equal(verify_obj(&v, o, &req, reason, sizeof(reason)),
	    VERIFY_REFUSED);
	agent_request_free(&req);
	json_decref(o);
	replay_free(rc);

	check("{\"t\":\"forward\",\"action\":\"port_forward\","
	    "\"host\":\"h\",\"port\":0}", VERIFY_REFUSED, "host and port");
	check("{\"t\":\"forward\",\"action\":\"port_forward\","
	    "\"port\":80}", VERIFY_REFUSED, "host and port");
}

static void
test_action_matches_kind(void **state)
{
	check("{\"action\":\"shell\"}", VERIFY_REFUSED, "says action");
	check("{\"command\":\"scp -t /tmp\"}", VERIFY_REFUSED, "says action");
	check("{\"command\":\"scp -t /tmp\",\"action\":\"scp\"}", VERIFY_OK,
	    NULL);
	check("{\"t\":\"shell\",\"action\":\"exec\"}", VERIFY_REFUSED,
	    "says action");
	check("{\"action\":null}", VERIFY_REFUSED, "no action");
	check("{\"t\":\"tunnel\"}", VERIFY_REFUSED, "unknown request type");
}

static void
test_env_and_client(void **state)
{
	struct replay_cache *rc = replay_new();
	struct verify_ctx v = ctx(rc, 0);
	struct agent_request req;
	char reason[AGENT_ERRLEN], **env;
	json_t *o = request("{\"env\":{\"GIT_PROTOCOL\":\"version=2\","
	    "\"PATH\":\"/tmp/evil\",\"MY_VAR\":\"x\",\"SSH_TTY\":\"t\"},"
	    "\"client\":{\"addr\":\"192.0.2.7\",\"port\":40001,"
	    "\"server_port\":2222}}");
	int i, git = 0, path = 0, conn = 0, cli = 0, mine = 0;

	assert_int_equal(verify_obj(&v, o, &req, reason, sizeof(reason)),
	    VERIFY_OK);
	assert_non_null(req.env_refused);
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
	json_decref(o);

	/* a target that takes more names */
	v.accept_env = "LANG MY_*";
	o = request("{\"env\":{\"MY_VAR\":\"x\"}}");
	assert_int_equal(verify_obj(&v, o, &req, reason, sizeof(reason)),
	    VERIFY_OK);
	for (i = 0; req.env[i] != NULL; i++)
		mine |= strcmp(req.env[i], "MY_VAR=x") == 0;
	assert_true(mine);
	agent_request_free(&req);
	json_decref(o);
	replay_free(rc);

	check("{\"env\":{\"BAD NAME\":\"x\"}}", VERIFY_REFUSED, "env");
	check("{\"client\":{\"addr\":\"not-an-ip\",\"port\":1,"
	    "\"server_port\":22}}", VERIFY_REFUSED, "client address");
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

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_good_exec),
		cmocka_unit_test(test_good_shell_pty),
		cmocka_unit_test(test_signature),
		cmocka_unit_test(test_target_and_channel),
		cmocka_unit_test(test_freshness),
		cmocka_unit_test(test_replay),
		cmocka_unit_test(test_token),
		cmocka_unit_test(test_unix_user),
		cmocka_unit_test(test_malformed),
		cmocka_unit_test(test_replay_cache),
		cmocka_unit_test(test_backoff),
		cmocka_unit_test(test_subsystem),
		cmocka_unit_test(test_forward),
		cmocka_unit_test(test_action_matches_kind),
		cmocka_unit_test(test_env_and_client),
		cmocka_unit_test(test_permit_lists),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
