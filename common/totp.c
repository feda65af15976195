/* totp.c: RFC 6238 codes (liboath) and the acceptance rules; see totp.h. */
#include "totp.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <liboath/oath.h>
#include <sodium.h>

#include "buf.h"

int
bz_totp_global_init(void)
{
	return oath_init() == OATH_OK ? BZ_OK : BZ_ERR_INVALID;
}

void
bz_totp_new_secret(uint8_t secret[BZ_TOTP_SECRET_LEN])
{
	randombytes_buf(secret, BZ_TOTP_SECRET_LEN);
}

int
bz_totp_code(const uint8_t *secret, size_t len, time_t when,
    char code[BZ_TOTP_DIGITS + 1])
{
	if (secret == NULL || len == 0 || when < 0)
		return BZ_ERR_INVALID;
	if (oath_totp_generate((const char *)secret, len, when, BZ_TOTP_STEP, 0,
	    BZ_TOTP_DIGITS, code) != OATH_OK)
		return BZ_ERR_INVALID;
	return BZ_OK;
}

static int
well_formed(const char *code)
{
	int i;

	if (code == NULL)
		return 0;
	for (i = 0; i < BZ_TOTP_DIGITS; i++)
		if (code[i] < '0' || code[i] > '9')
			return 0;
	return code[BZ_TOTP_DIGITS] == '\0';
}

/*
 * Count a failure. The window starts at the first failure; the failure that
 * reaches the limit restarts it, so a lock-out always lasts a full window.
 */
static void
record_failure(struct bz_totp_state *st, time_t now)
{
	if (st->fail_count == 0 ||
	    now - st->fail_start >= BZ_TOTP_FAIL_WINDOW) {
		st->fail_start = now;
		st->fail_count = 0;
	}
	if (++st->fail_count >= BZ_TOTP_MAX_FAILURES)
		st->fail_start = now;
}

enum bz_totp_result
bz_totp_attempt(const uint8_t *secret, size_t len, struct bz_totp_state *st,
    time_t now, const char *code)
{
	char want[BZ_TOTP_DIGITS + 1];
	uint64_t step, s, matched = 0, replayed = 0;

	if (st->fail_count >= BZ_TOTP_MAX_FAILURES &&
	    now - st->fail_start < BZ_TOTP_FAIL_WINDOW)
		return BZ_TOTP_LOCKED;
	if (!well_formed(code)) {
		record_failure(st, now);
		return BZ_TOTP_MALFORMED;
	}
	step = now < 0 ? 0 : (uint64_t)now / BZ_TOTP_STEP;
	/* Check every candidate step (no early exit) in constant time. */
	for (s = step > 0 ? step - 1 : 0; s <= step + 1; s++) {
		if (bz_totp_code(secret, len, (time_t)(s * BZ_TOTP_STEP),
		    want) != 0)
			continue;
		if (sodium_memcmp(want, code, BZ_TOTP_DIGITS) != 0)
			continue;
		if (s > st->last_step)
			matched = s;
		else
			replayed = 1;
	}
	sodium_memzero(want, sizeof(want));
	if (matched != 0) {
		st->last_step = matched;
		st->fail_count = 0;
		st->fail_start = 0;
		return BZ_TOTP_OK;
	}
	/* A replay is a code someone already saw, not a guess: not counted. */
	if (replayed)
		return BZ_TOTP_REPLAY;
	record_failure(st, now);
	return BZ_TOTP_WRONG;
}

const char *
bz_totp_result_str(enum bz_totp_result r)
{
	switch (r) {
	case BZ_TOTP_OK: return "accepted";
	case BZ_TOTP_WRONG: return "wrong code";
	case BZ_TOTP_REPLAY: return "code already used";
	case BZ_TOTP_LOCKED: return "too many failed attempts; try again later";
	case BZ_TOTP_MALFORMED: return "code must be 6 digits";
	default: return "unknown result";
	}
}

char *
bz_totp_base32(const uint8_t *secret, size_t len)
{
	char *out = NULL, *pad;
	size_t olen;

	if (oath_base32_encode((const char *)secret, len, &out, &olen) !=
	    OATH_OK)
		return NULL;
	if ((pad = strchr(out, '=')) != NULL)
		*pad = '\0';
	return out;
}

int
bz_totp_base32_decode(const char *b32, uint8_t *out, size_t max)
{
	char *up = NULL, *bin = NULL;
	size_t i, n, binlen = 0;
	int r = -1;

	if (b32 == NULL || (n = strlen(b32)) == 0 || n > 1024)
		return -1;
	/* Authenticator apps print lower case too; liboath wants upper. */
	if ((up = strdup(b32)) == NULL)
		return -1;
	for (i = 0; i < n; i++)
		up[i] = (char)toupper((unsigned char)up[i]);
	if (oath_base32_decode(up, n, &bin, &binlen) != OATH_OK ||
	    binlen == 0 || binlen > max)
		goto out;
	memcpy(out, bin, binlen);
	r = (int)binlen;
 out:
	if (bin != NULL) {
		sodium_memzero(bin, binlen);
		free(bin);
	}
	sodium_memzero(up, n);
	free(up);
	return r;
}

/* Percent-encode everything but RFC 3986 unreserved characters. */
static int
pct_encode(struct bz_buf *b, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	const unsigned char *p;
	int r = 0;

	for (p = (const unsigned char *)s; *p != '\0' && r == 0; p++) {
		if ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
		    (*p >= '0' && *p <= '9') || *p == '-' || *p == '.' ||
		    *p == '_' || *p == '~')
			r = bz_buf_put_u8(b, *p);
		else if ((r = bz_buf_put_u8(b, '%')) == 0 &&
		    (r = bz_buf_put_u8(b, hex[*p >> 4])) == 0)
			r = bz_buf_put_u8(b, hex[*p & 15]);
	}
	return r;
}

static int
put_str(struct bz_buf *b, const char *s)
{
	return bz_buf_put(b, s, strlen(s));
}

char *
bz_totp_uri(const char *issuer, const char *account, const uint8_t *secret,
    size_t len)
{
	struct bz_buf b;
	char *b32, *uri = NULL, tail[64];

	if ((b32 = bz_totp_base32(secret, len)) == NULL)
		return NULL;
	snprintf(tail, sizeof(tail), "&algorithm=SHA1&digits=%d&period=%d",
	    BZ_TOTP_DIGITS, BZ_TOTP_STEP);
	bz_buf_init(&b);
	if (put_str(&b, "otpauth://totp/") != 0 ||
	    pct_encode(&b, issuer) != 0 || put_str(&b, ":") != 0 ||
	    pct_encode(&b, account) != 0 || put_str(&b, "?secret=") != 0 ||
	    put_str(&b, b32) != 0 || put_str(&b, "&issuer=") != 0 ||
	    pct_encode(&b, issuer) != 0 || put_str(&b, tail) != 0)
		goto out;
	if ((uri = malloc(bz_buf_avail(&b) + 1)) == NULL)
		goto out;
	memcpy(uri, bz_buf_peek(&b), bz_buf_avail(&b));
	uri[bz_buf_avail(&b)] = '\0';
 out:
	sodium_memzero(b32, strlen(b32));
	free(b32);
	bz_buf_free(&b);
	return uri;
}
