/* test_agent_hello.c: the agent's side of the agent link's handshake
 * (common/agent_hello.c): what a handshake frame from bzproxy is, and an
 * agent_hello only for the pinned bzproxy, signed over its nonce, with the
 * enrolment token when there is one. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <sodium.h>

#include "agent_hello.h"
#include "buf.h"
#include "chain.h"
#include "util.h"
#include "wire.h"

struct keys {
	uint8_t proxy_pk[32], proxy_sk[64], pk[32], sk[64];
	uint8_t nonce[BZ_AGENT_NONCE_LEN];
};

static json_t *
challenge(const struct keys *k, const uint8_t *proxy_pk)
{
	char *n = NULL, *p = NULL;
	json_t *o;

	assert_int_equal(bz_b64url_encode(k->nonce, sizeof(k->nonce), &n), 0);
	assert_int_equal(bz_b64url_encode(proxy_pk, 32, &p), 0);
	o = json_pack("{s:s, s:s, s:s}", "t", "challenge", "nonce", n,
	    "proxy_key", p);
	free(n);
	free(p);
	return o;
}

static void
setup_keys(struct keys *k)
{
	crypto_sign_keypair(k->proxy_pk, k->proxy_sk);
	crypto_sign_keypair(k->pk, k->sk);
	randombytes_buf(k->nonce, sizeof(k->nonce));
}

static void
test_hello_signed_over_the_nonce(void **state)
{
	struct keys k;
	struct bz_agent_id id = { "web1", NULL, NULL, NULL, "tok-123",
	    "1.0" };
	uint8_t sig[64], key[32];
	char why[128];
	json_t *ch, *h = NULL;

	setup_keys(&k);
	id.pk = k.pk;
	id.sk = k.sk;
	id.proxy_pk = k.proxy_pk;
	ch = challenge(&k, k.proxy_pk);
	assert_int_equal(bz_agent_hello_make(ch, &id, &h, why, sizeof(why)),
	    0);
	assert_string_equal(bz_json_str(h, "t"), "agent_hello");
	assert_string_equal(bz_json_str(h, "name"), "web1");
	assert_string_equal(bz_json_str(h, "enrol_token"), "tok-123");
	assert_int_equal(bz_json_b64(h, "key", key, sizeof(key)), 0);
	assert_memory_equal(key, k.pk, 32);
	assert_int_equal(bz_json_b64(h, "sig", sig, sizeof(sig)), 0);
	assert_int_equal(crypto_sign_verify_detached(sig, k.nonce,
	    sizeof(k.nonce), k.pk), 0);
	bz_agent_hello_free(h);
	/* no token once enrolled */
	id.enrol_token = NULL;
	assert_int_equal(bz_agent_hello_make(ch, &id, &h, why, sizeof(why)),
	    0);
	assert_null(json_object_get(h, "enrol_token"));
	bz_agent_hello_free(h);
	json_decref(ch);
}

static void
test_hello_refused_to_another_proxy(void **state)
{
	struct keys k, other;
	struct bz_agent_id id = { "web1", NULL, NULL, NULL, NULL, "1.0" };
	char why[128];
	json_t *ch, *h = NULL;

	setup_keys(&k);
	setup_keys(&other);
	id.pk = k.pk;
	id.sk = k.sk;
	id.proxy_pk = k.proxy_pk;
	ch = challenge(&k, other.proxy_pk);
	assert_int_equal(bz_agent_hello_make(ch, &id, &h, why, sizeof(why)),
	    BZ_ERR_INVALID);
	assert_null(h);
	assert_non_null(strstr(why, "mismatch"));
	json_decref(ch);
	/* malformed: a short nonce, no proxy_key */
	ch = json_pack("{s:s, s:s}", "t", "challenge", "nonce", "AAAA");
	assert_int_equal(bz_agent_hello_make(ch, &id, &h, why, sizeof(why)),
	    BZ_ERR_FORMAT);
	assert_null(h);
	json_decref(ch);
}

/* hs_read on a frame built from type, flags, channel and a payload. */
static enum bz_hs_kind
read_frame(uint8_t type, uint16_t flags, uint32_t ch, const char *payload,
    json_t **o, char *why, size_t wl)
{
	struct bz_buf b;
	struct bz_frame f;
	enum bz_hs_kind kind;

	bz_buf_init(&b);
	assert_int_equal(bz_frame_encode(&b, type, flags, 0, ch, 0, payload,
	    strlen(payload)), 0);
	assert_int_equal(bz_frame_decode(b.data, b.len, &f), 0);
	kind = bz_agent_hs_read(&f, o, why, wl);
	bz_buf_free(&b);
	return kind;
}

static void
test_handshake_frames_sorted(void **state)
{
	char why[256];
	json_t *o;

	assert_int_equal(read_frame(BZ_FRAME_CONTROL, 0, 0,
	    "{\"t\":\"challenge\",\"nonce\":\"x\"}", &o, why, sizeof(why)),
	    BZ_HS_CHALLENGE);
	assert_non_null(o);
	json_decref(o);
	assert_int_equal(read_frame(BZ_FRAME_CONTROL, 0, 0,
	    "{\"t\":\"agent_ok\",\"labels\":{}}", &o, why, sizeof(why)),
	    BZ_HS_AGENT_OK);
	json_decref(o);
	assert_int_equal(read_frame(BZ_FRAME_CONTROL, 0, 0,
	    "{\"t\":\"error\",\"reason\":\"agent x is not enrolled\"}", &o,
	    why, sizeof(why)), BZ_HS_REFUSED);
	assert_null(o);
	assert_string_equal(why, "agent x is not enrolled");
	/* anything else is a protocol error, with nothing to free */
	assert_int_equal(read_frame(BZ_FRAME_CONTROL, 0, 0,
	    "{\"t\":\"csm\"}", &o, why, sizeof(why)), BZ_HS_BAD);
	assert_null(o);
	assert_int_equal(read_frame(BZ_FRAME_CONTROL, 0, 0, "not json", &o,
	    why, sizeof(why)), BZ_HS_BAD);
	assert_int_equal(read_frame(BZ_FRAME_CONTROL, 0, 3,
	    "{\"t\":\"challenge\"}", &o, why, sizeof(why)), BZ_HS_BAD);
	assert_int_equal(read_frame(BZ_FRAME_CONTROL, BZ_FLAG_PROXY_SIGNED, 0,
	    "{\"t\":\"challenge\",\"pad\":\"...............................\"}"
	    "0123456789012345678901234567890123456789012345678901234567890123",
	    &o, why, sizeof(why)), BZ_HS_BAD);
	assert_int_equal(read_frame(BZ_FRAME_DATA, 0, 1, "{}", &o, why,
	    sizeof(why)), BZ_HS_BAD);
	assert_null(o);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hello_signed_over_the_nonce),
		cmocka_unit_test(test_hello_refused_to_another_proxy),
		cmocka_unit_test(test_handshake_frames_sorted),
	};

	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
