/*
 * totp.h: RFC 6238 TOTP (HMAC-SHA-1, 6 digits, 30 s steps) through liboath,
 * plus the acceptance rules bzproxy enforces per user:
 *  - a code is accepted within +-1 step of now;
 *  - each step is accepted at most once (a step <= the last accepted step is
 *    a replay);
 *  - after BZ_TOTP_MAX_FAILURES wrong codes within BZ_TOTP_FAIL_WINDOW
 *    seconds, every attempt is refused until the window has passed.
 */
#ifndef BZ_TOTP_H
#define BZ_TOTP_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define BZ_TOTP_SECRET_LEN 20
#define BZ_TOTP_DIGITS 6
#define BZ_TOTP_STEP 30
#define BZ_TOTP_MAX_FAILURES 5
#define BZ_TOTP_FAIL_WINDOW 60

/* Per-user state kept by the caller (bzproxy stores it in SQLite). */
struct bz_totp_state {
	uint64_t last_step;      /* highest step accepted so far, 0 = none */
	int64_t fail_start;      /* start of the current failure window */
	unsigned fail_count;     /* failures since fail_start */
};

enum bz_totp_result {
	BZ_TOTP_OK = 0,
	BZ_TOTP_WRONG = 1,       /* not a valid code for now +-1 step */
	BZ_TOTP_REPLAY = 2,      /* valid, but that step was already used */
	BZ_TOTP_LOCKED = 3,      /* too many failures; not even checked */
	BZ_TOTP_MALFORMED = 4,   /* not exactly 6 digits */
};

/* Must be called once before the others (oath_init). */
int bz_totp_global_init(void);
/* Fresh random secret. */
void bz_totp_new_secret(uint8_t secret[BZ_TOTP_SECRET_LEN]);
/* The code for a given time (for tests and the sandbox's BZ_TOTP_CMD). */
int bz_totp_code(const uint8_t *secret, size_t len, time_t when,
    char code[BZ_TOTP_DIGITS + 1]);
/*
 * Check one attempt and update st (failures counted, step recorded).
 * Returns an enum bz_totp_result.
 */
enum bz_totp_result bz_totp_attempt(const uint8_t *secret, size_t len,
    struct bz_totp_state *st, time_t now, const char *code);
const char *bz_totp_result_str(enum bz_totp_result r);
/* otpauth://totp/ISSUER:ACCOUNT?secret=BASE32&issuer=ISSUER&... malloc'ed. */
char *bz_totp_uri(const char *issuer, const char *account,
    const uint8_t *secret, size_t len);
/* Base32 (RFC 4648, no padding) of the secret, malloc'ed. */
char *bz_totp_base32(const uint8_t *secret, size_t len);
/* Decode base32 seed (as printed) into secret; returns length or -1. */
int bz_totp_base32_decode(const char *b32, uint8_t *out, size_t max);

#endif
