/* test_seal.c: the sealing of session data (common/seal.c): what bzproxy
 * could do to a sealed frame (flip a bit, drop, replay, swap, move it to
 * another channel or frame type, cut it) fails to open, with both AEADs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>
#include <sodium.h>

#include "buf.h"
#include "seal.h"

#define CH 5u

struct pair {
	struct bz_seal client, agent;
};

/* Both ends' keys, from one exchange, for aead. */
static void
pair_init(struct pair *p, enum bz_aead aead)
{
	struct bz_kx c, a;
	uint8_t c_pk[BZ_SEAL_KX_LEN], a_pk[BZ_SEAL_KX_LEN];

	bz_kx_new(&c);
	bz_kx_new(&a);
	memcpy(c_pk, c.pk, sizeof(c_pk));
	memcpy(a_pk, a.pk, sizeof(a_pk));
	assert_int_equal(bz_seal_init(&p->client, 1, &c, a_pk, aead), 0);
	assert_int_equal(bz_seal_init(&p->agent, 0, &a, c_pk, aead), 0);
	/* bz_seal_init wipes the secret half */
	assert_true(sodium_is_zero(c.sk, sizeof(c.sk)));
}

static void
attacks(enum bz_aead aead)
{
	struct pair p;
	const char *msg[3] = { "first frame", "second frame", "third" };
	uint8_t s[3][32], out[32];
	size_t n[3];
	uint64_t tx = 0, rx = 0, other = 0;
	int i;

	pair_init(&p, aead);
	for (i = 0; i < 3; i++) {
		n[i] = strlen(msg[i]) + BZ_SEALED_TAG;
		assert_int_equal(bz_seal(&p.client, BZ_FRAME_DATA, CH, &tx,
		    (const uint8_t *)msg[i], strlen(msg[i]), s[i]), 0);
	}
	assert_int_equal(tx, 3);
	/* the ciphertext does not show the bytes */
	assert_null(memmem(s[0], n[0], "first", 5));
	/* one bit flipped, in the ciphertext or in the tag */
	s[0][2] ^= 0x10;
	assert_int_equal(bz_seal_open(&p.agent, BZ_FRAME_DATA, CH, &rx, s[0],
	    n[0], out), BZ_ERR_INVALID);
	s[0][2] ^= 0x10;
	s[0][n[0] - 1] ^= 0x01;
	assert_int_equal(bz_seal_open(&p.agent, BZ_FRAME_DATA, CH, &rx, s[0],
	    n[0], out), BZ_ERR_INVALID);
	s[0][n[0] - 1] ^= 0x01;
	/* cut short; the tag alone of a data frame */
	assert_int_equal(bz_seal_open(&p.agent, BZ_FRAME_DATA, CH, &rx, s[0],
	    n[0] - 1, out), BZ_ERR_INVALID);
	assert_int_equal(bz_seal_open(&p.agent, BZ_FRAME_DATA, CH, &rx, s[0],
	    BZ_SEALED_TAG - 1, out), BZ_ERR_INVALID);
	/* moved to another channel, or to stderr, or the wrong direction */
	assert_int_equal(bz_seal_open(&p.agent, BZ_FRAME_DATA, CH + 1, &rx,
	    s[0], n[0], out), BZ_ERR_INVALID);
	assert_int_equal(bz_seal_open(&p.agent, BZ_FRAME_EXT_DATA, CH, &rx,
	    s[0], n[0], out), BZ_ERR_INVALID);
	assert_int_equal(bz_seal_open(&p.client, BZ_FRAME_DATA, CH, &other,
	    s[0], n[0], out), BZ_ERR_INVALID);
	/* the second before the first (swapped), or the first dropped */
	assert_int_equal(bz_seal_open(&p.agent, BZ_FRAME_DATA, CH, &rx, s[1],
	    n[1], out), BZ_ERR_INVALID);
	/* nothing failed moved the count on */
	assert_int_equal(rx, 0);
	/* in order: each opens once */
	assert_int_equal(bz_seal_open(&p.agent, BZ_FRAME_DATA, CH, &rx, s[0],
	    n[0], out), 0);
	assert_memory_equal(out, msg[0], strlen(msg[0]));
	/* replayed */
	assert_int_equal(bz_seal_open(&p.agent, BZ_FRAME_DATA, CH, &rx, s[0],
	    n[0], out), BZ_ERR_INVALID);
	assert_int_equal(bz_seal_open(&p.agent, BZ_FRAME_DATA, CH, &rx, s[1],
	    n[1], out), 0);
	assert_memory_equal(out, msg[1], strlen(msg[1]));
	assert_int_equal(bz_seal_open(&p.agent, BZ_FRAME_DATA, CH, &rx, s[2],
	    n[2], out), 0);
	assert_int_equal(rx, 3);
	/* an EOF is the tag alone, and opens only as an EOF */
	assert_int_equal(bz_seal(&p.agent, BZ_FRAME_EOF, CH, &other, NULL, 0,
	    s[0]), 0);
	rx = 0;
	assert_int_equal(bz_seal_open(&p.client, BZ_FRAME_DATA, CH, &rx, s[0],
	    BZ_SEALED_TAG, out), BZ_ERR_INVALID);
	assert_int_equal(bz_seal_open(&p.client, BZ_FRAME_EOF, CH, &rx, s[0],
	    BZ_SEALED_TAG, out), 0);
	/* a count at its end seals nothing (no nonce twice) */
	tx = UINT64_MAX;
	assert_int_equal(bz_seal(&p.client, BZ_FRAME_DATA, CH, &tx,
	    (const uint8_t *)"x", 1, s[0]), BZ_ERR_INVALID);
	/* wiped keys seal nothing */
	bz_seal_clear(&p.client);
	tx = 0;
	assert_int_equal(bz_seal(&p.client, BZ_FRAME_DATA, CH, &tx,
	    (const uint8_t *)"x", 1, s[0]), BZ_ERR_INVALID);
	assert_true(sodium_is_zero((const uint8_t *)&p.client,
	    sizeof(p.client)));
	bz_seal_clear(&p.agent);
}

static void
test_xchacha(void **state)
{
	(void)state;
	attacks(BZ_AEAD_XCHACHA20POLY1305);
}

static void
test_aes_gcm(void **state)
{
	(void)state;
	if (bz_aead_best() != BZ_AEAD_AES256GCM)
		skip(); /* this CPU has no AES-NI */
	attacks(BZ_AEAD_AES256GCM);
}

/* The nonce of frame count n on channel ch, as seal.h describes it. */
static void
gcm_nonce(uint8_t nonce[12], uint32_t ch, uint64_t n)
{
	int i;

	memset(nonce, 0, 12);
	for (i = 0; i < 8; i++)
		nonce[11 - i] = (uint8_t)(n >> (8 * i));
	for (i = 0; i < 4; i++)
		nonce[3 - i] = (uint8_t)(ch >> (8 * i));
}

/*
 * AES-256-GCM runs on OpenSSL, where it ran on libsodium: the bytes on
 * the wire are the same both ways, so a bzsshd and an agent of either
 * kind still talk to each other (a fleet is upgraded one host at a time).
 */
static void
test_aes_gcm_as_libsodium(void **state)
{
	struct pair p, copy;
	uint8_t msg[3000], s[sizeof(msg) + BZ_SEALED_TAG], out[sizeof(msg)];
	uint8_t nonce[12], ad[5] = { BZ_FRAME_DATA, 0, 0, 0, CH };
	unsigned long long len;
	uint64_t tx = 0, rx = 0;
	size_t i;

	(void)state;
	if (bz_aead_best() != BZ_AEAD_AES256GCM)
		skip();
	for (i = 0; i < sizeof(msg); i++)
		msg[i] = (uint8_t)(i * 7);
	pair_init(&p, BZ_AEAD_AES256GCM);
	/* ours sealed, libsodium opens; twice, the second on count 1 */
	for (i = 0; i < 2; i++) {
		assert_int_equal(bz_seal(&p.client, BZ_FRAME_DATA, CH, &tx, msg,
		    sizeof(msg), s), 0);
		gcm_nonce(nonce, CH, i);
		assert_int_equal(crypto_aead_aes256gcm_decrypt(out, &len, NULL,
		    s, sizeof(s), ad, sizeof(ad), nonce, p.client.tx), 0);
		assert_int_equal(len, sizeof(msg));
		assert_memory_equal(out, msg, sizeof(msg));
	}
	/* libsodium sealed, ours opens (in place, as bzsshd does) */
	gcm_nonce(nonce, CH, 0);
	assert_int_equal(crypto_aead_aes256gcm_encrypt(s, &len, msg,
	    sizeof(msg), ad, sizeof(ad), NULL, nonce, p.client.tx), 0);
	assert_int_equal(bz_seal_open(&p.agent, BZ_FRAME_DATA, CH, &rx, s,
	    sizeof(s), s), 0);
	assert_memory_equal(s, msg, sizeof(msg));
	/* a copy has its own contexts: it opens what the original opens,
	 * and both end without a leak (the sanitizer build checks) */
	bz_seal_copy(&copy.agent, &p.agent);
	assert_int_equal(bz_seal(&p.client, BZ_FRAME_DATA, CH, &tx, msg, 10,
	    s), 0);
	rx = 2;
	assert_int_equal(bz_seal_open(&copy.agent, BZ_FRAME_DATA, CH, &rx, s,
	    10 + BZ_SEALED_TAG, out), 0);
	assert_memory_equal(out, msg, 10);
	/* a forged tag leaves no plaintext behind */
	s[10 + BZ_SEALED_TAG - 1] ^= 1;
	rx = 2;
	memset(out, 0xaa, sizeof(out));
	assert_int_equal(bz_seal_open(&p.agent, BZ_FRAME_DATA, CH, &rx, s,
	    10 + BZ_SEALED_TAG, out), BZ_ERR_INVALID);
	for (i = 0; i < 10; i++)
		assert_int_equal(out[i], 0);
	bz_seal_clear(&copy.agent);
	bz_seal_clear(&p.client);
	bz_seal_clear(&p.agent);
}

static void
test_keys(void **state)
{
	struct bz_seal s;
	struct bz_kx kx;
	uint8_t zero[BZ_SEAL_KX_LEN] = { 0 };

	(void)state;
	assert_int_equal(bz_aead_parse("aes256gcm"), BZ_AEAD_AES256GCM);
	assert_int_equal(bz_aead_parse("xchacha20poly1305"),
	    BZ_AEAD_XCHACHA20POLY1305);
	assert_int_equal(bz_aead_parse("none"), BZ_AEAD_NONE);
	assert_int_equal(bz_aead_parse(NULL), BZ_AEAD_NONE);
	/* a low-order peer key gives no shared secret */
	bz_kx_new(&kx);
	assert_int_equal(bz_seal_init(&s, 1, &kx, zero,
	    BZ_AEAD_XCHACHA20POLY1305), BZ_ERR_INVALID);
	bz_kx_new(&kx);
	assert_int_equal(bz_seal_init(&s, 1, &kx, kx.pk, BZ_AEAD_NONE),
	    BZ_ERR_INVALID);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_xchacha),
		cmocka_unit_test(test_aes_gcm),
		cmocka_unit_test(test_aes_gcm_as_libsodium),
		cmocka_unit_test(test_keys),
	};

	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
