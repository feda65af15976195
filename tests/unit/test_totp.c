/* test_totp.c: RFC 6238 vectors and bzproxy's TOTP acceptance rules. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "totp.h"

static const uint8_t rfc_seed[] = "12345678901234567890";
#define SEED rfc_seed, 20
#define T0 ((time_t)1700000010) /* the start of step 56666667 */

static int
setup(void **state)
{
	return bz_totp_global_init();
}

static void
code_at(time_t t, char out[7])
{
	assert_int_equal(bz_totp_code(SEED, t, out), 0);
}

static void
test_rfc6238_vectors(void **state)
{
	/* RFC 6238 appendix B, SHA-1: last 6 of the 8-digit values. */
	static const struct { time_t t; const char *code; } v[] = {
		{ 59, "287082" },
		{ 1111111109, "081804" },
		{ 1111111111, "050471" },
		{ 1234567890, "005924" },
		{ 2000000000, "279037" },
		{ (time_t)20000000000LL, "353130" },
	};
	char c[7];
	size_t i;

	for (i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		code_at(v[i].t, c);
		assert_string_equal(c, v[i].code);
	}
}

static void
test_window(void **state)
{
	struct bz_totp_state st;
	char c[7];

	/* Each of -1, 0, +1 step accepted (fresh state each time). */
	memset(&st, 0, sizeof(st));
	code_at(T0 - 30, c);
	assert_int_equal(bz_totp_attempt(SEED, &st, T0, c), BZ_TOTP_OK);
	assert_true(st.last_step == (uint64_t)(T0 / 30 - 1));
	memset(&st, 0, sizeof(st));
	code_at(T0, c);
	assert_int_equal(bz_totp_attempt(SEED, &st, T0, c), BZ_TOTP_OK);
	assert_true(st.last_step == (uint64_t)(T0 / 30));
	memset(&st, 0, sizeof(st));
	code_at(T0 + 30, c);
	assert_int_equal(bz_totp_attempt(SEED, &st, T0, c), BZ_TOTP_OK);
	assert_true(st.last_step == (uint64_t)(T0 / 30 + 1));
	/* -2 and +2 steps are wrong and counted as failures. */
	memset(&st, 0, sizeof(st));
	code_at(T0 - 60, c);
	assert_int_equal(bz_totp_attempt(SEED, &st, T0, c), BZ_TOTP_WRONG);
	code_at(T0 + 60, c);
	assert_int_equal(bz_totp_attempt(SEED, &st, T0, c), BZ_TOTP_WRONG);
	assert_int_equal(st.fail_count, 2);
	assert_true(st.last_step == 0);
}

static void
test_replay(void **state)
{
	struct bz_totp_state st;
	char c[7], earlier[7];

	memset(&st, 0, sizeof(st));
	code_at(T0, c);
	assert_int_equal(bz_totp_attempt(SEED, &st, T0, c), BZ_TOTP_OK);
	/* Same code again, even seconds later within the step. */
	assert_int_equal(bz_totp_attempt(SEED, &st, T0 + 5, c),
	    BZ_TOTP_REPLAY);
	/* An earlier step after a later one was accepted. */
	code_at(T0 - 30, earlier);
	assert_int_equal(bz_totp_attempt(SEED, &st, T0, earlier),
	    BZ_TOTP_REPLAY);
	/* The next step's code is fine. */
	code_at(T0 + 30, c);
	assert_int_equal(bz_totp_attempt(SEED, &st, T0 + 30, c), BZ_TOTP_OK);
	/* After accepting step+1, the current step's code is a replay too. */
	memset(&st, 0, sizeof(st));
	code_at(T0 + 30, c);
	assert_int_equal(bz_totp_attempt(SEED, &st, T0, c), BZ_TOTP_OK);
	code_at(T0, c);
	assert_int_equal(bz_totp_attempt(SEED, &st, T0, c), BZ_TOTP_REPLAY);
}

/* A 6-digit code that is wrong for every step near t. */
static void
wrong_code(time_t t, char out[7])
{
	char a[7], b[7], c[7];
	int i;

	code_at(t - 30, a);
	code_at(t, b);
	code_at(t + 30, c);
	for (i = 0; i < 1000000; i++) {
		snprintf(out, 7, "%06d", i);
		if (strcmp(out, a) && strcmp(out, b) && strcmp(out, c))
			return;
	}
	fail();
}

static void
test_lockout(void **state)
{
	struct bz_totp_state st;
	char good[7], bad[7];
	int i;

	memset(&st, 0, sizeof(st));
	wrong_code(T0, bad);
	for (i = 0; i < BZ_TOTP_MAX_FAILURES; i++)
		assert_int_equal(bz_totp_attempt(SEED, &st, T0 + i, bad),
		    BZ_TOTP_WRONG);
	/* Locked: even the right code is refused, and nothing is consumed. */
	code_at(T0 + 10, good);
	assert_int_equal(bz_totp_attempt(SEED, &st, T0 + 10, good),
	    BZ_TOTP_LOCKED);
	assert_true(st.last_step == 0);
	assert_int_equal(bz_totp_attempt(SEED, &st, T0 + 4 + 59, good),
	    BZ_TOTP_LOCKED);
	/* A full window after the locking failure: unlocked. */
	code_at(T0 + 4 + 60, good);
	assert_int_equal(bz_totp_attempt(SEED, &st, T0 + 4 + 60, good),
	    BZ_TOTP_OK);
	assert_int_equal(st.fail_count, 0);
}

static void
test_lockout_counts_malformed(void **state)
{
	struct bz_totp_state st;
	char good[7], bad[7];

	memset(&st, 0, sizeof(st));
	wrong_code(T0, bad);
	assert_int_equal(bz_totp_attempt(SEED, &st, T0, "12345"),
	    BZ_TOTP_MALFORMED);
	assert_int_equal(bz_totp_attempt(SEED, &st, T0, "abcdef"),
	    BZ_TOTP_MALFORMED);
	assert_int_equal(bz_totp_attempt(SEED, &st, T0, bad), BZ_TOTP_WRONG);
	assert_int_equal(bz_totp_attempt(SEED, &st, T0, bad), BZ_TOTP_WRONG);
	assert_int_equal(bz_totp_attempt(SEED, &st, T0, NULL),
	    BZ_TOTP_MALFORMED);
	assert_int_equal(st.fail_count, 5);
	code_at(T0, good);
	assert_int_equal(bz_totp_attempt(SEED, &st, T0 + 1, good),
	    BZ_TOTP_LOCKED);
	/* While locked, attempts are not even checked. */
	assert_int_equal(bz_totp_attempt(SEED, &st, T0 + 1, "x"),
	    BZ_TOTP_LOCKED);
}

static void
test_failures_expire(void **state)
{
	struct bz_totp_state st;
	char good[7], bad[7];
	int i;

	/* 4 failures, then a window later 4 more: never locked. */
	memset(&st, 0, sizeof(st));
	wrong_code(T0, bad);
	for (i = 0; i < 4; i++)
		assert_int_equal(bz_totp_attempt(SEED, &st, T0, bad),
		    BZ_TOTP_WRONG);
	wrong_code(T0 + 61, bad);
	for (i = 0; i < 4; i++)
		assert_int_equal(bz_totp_attempt(SEED, &st, T0 + 61, bad),
		    BZ_TOTP_WRONG);
	assert_int_equal(st.fail_count, 4);
	code_at(T0 + 61, good);
	assert_int_equal(bz_totp_attempt(SEED, &st, T0 + 61, good),
	    BZ_TOTP_OK);
}

static void
test_malformed(void **state)
{
	static const char *bad[] = {
		"", "1", "12345", "1234567", "12345a", " 12345", "123456 ",
		"12 456", "-12345", "+12345", "１２３４５６",
	};
	struct bz_totp_state st;
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		memset(&st, 0, sizeof(st));
		assert_int_equal(bz_totp_attempt(SEED, &st, T0, bad[i]),
		    BZ_TOTP_MALFORMED);
		assert_int_equal(st.fail_count, 1);
	}
	assert_string_equal(bz_totp_result_str(BZ_TOTP_MALFORMED),
	    "code must be 6 digits");
	assert_string_equal(bz_totp_result_str(BZ_TOTP_REPLAY),
	    "code already used");
}

static void
test_base32(void **state)
{
	uint8_t s[BZ_TOTP_SECRET_LEN], back[64];
	char *b32, lower[64];
	size_t i;

	b32 = bz_totp_base32(SEED);
	assert_string_equal(b32, "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ");
	free(b32);
	/* 5 bytes need no padding; 1 byte would have 6 '=' */
	b32 = bz_totp_base32((const uint8_t *)"f", 1);
	assert_string_equal(b32, "MY");
	free(b32);

	bz_totp_new_secret(s);
	b32 = bz_totp_base32(s, sizeof(s));
	assert_int_equal(strlen(b32), 32);
	assert_int_equal(bz_totp_base32_decode(b32, back, sizeof(back)), 20);
	assert_memory_equal(back, s, 20);
	for (i = 0; b32[i] != '\0'; i++)
		lower[i] = (char)(b32[i] >= 'A' && b32[i] <= 'Z' ?
		    b32[i] - 'A' + 'a' : b32[i]);
	lower[i] = '\0';
	assert_int_equal(bz_totp_base32_decode(lower, back, sizeof(back)), 20);
	assert_memory_equal(back, s, 20);
	/* Too small an output, bad characters, empty. */
	assert_int_equal(bz_totp_base32_decode(b32, back, 19), -1);
	assert_int_equal(bz_totp_base32_decode("GEZ1", back, sizeof(back)),
	    -1);
	assert_int_equal(bz_totp_base32_decode("", back, sizeof(back)), -1);
	free(b32);
}

static void
test_uri(void **state)
{
	char *u;

	u = bz_totp_uri("bastion", "alice@example.com", SEED);
	assert_string_equal(u, "otpauth://totp/bastion:alice%40example.com"
	    "?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=bastion"
	    "&algorithm=SHA1&digits=6&period=30");
	free(u);
	u = bz_totp_uri("Acme Corp", "bob:x&y=z", SEED);
	assert_string_equal(u, "otpauth://totp/Acme%20Corp:bob%3Ax%26y%3Dz"
	    "?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=Acme%20Corp"
	    "&algorithm=SHA1&digits=6&period=30");
	free(u);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rfc6238_vectors),
		cmocka_unit_test(test_window),
		cmocka_unit_test(test_replay),
		cmocka_unit_test(test_lockout),
		cmocka_unit_test(test_lockout_counts_malformed),
		cmocka_unit_test(test_failures_expire),
		cmocka_unit_test(test_malformed),
		cmocka_unit_test(test_base32),
		cmocka_unit_test(test_uri),
	};

	return cmocka_run_group_tests(tests, setup, NULL);
}
