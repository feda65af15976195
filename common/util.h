/*
 * util.h: small helpers shared by the three programs: base64url, secret
 * files (0600), JSON parsing of untrusted bytes, Ed25519 key files.
 * Every function returns 0 on success or a negative BZ_ERR_* code, and
 * writes a one-line reason into err (when err is not NULL) on failure.
 */
#ifndef BZ_UTIL_H
#define BZ_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <jansson.h>

#include "buf.h"

#define BZ_JSON_MAX (4u * 1024 * 1024) /* largest JSON document we parse: a
                                     * CONTROL frame (BZ_WIRE_MAX_CONTROL) */

/* base64url without padding (libsodium). *out is malloc'ed, NUL-terminated. */
int bz_b64url_encode(const uint8_t *in, size_t len, char **out);
/* Decode base64url (padding rejected). *out malloc'ed; at most max bytes. */
int bz_b64url_decode(const char *in, size_t len, size_t max, uint8_t **out,
    size_t *outlen);

/* Fill buf with random bytes and return them base64url-encoded (malloc'ed). */
int bz_random_b64url(size_t nbytes, char **out);

/*
 * Parse untrusted bytes as one JSON object (duplicates rejected, at most
 * BZ_JSON_MAX bytes, no trailing data). Returns a new reference or NULL with
 * the reason in err.
 */
json_t *bz_json_parse_object(const uint8_t *p, size_t n, char *err,
    size_t errlen);
/* Serialise compactly with sorted keys; malloc'ed string or NULL. */
char *bz_json_dump(const json_t *obj);
/* Member as string if present and a string, else NULL. */
const char *bz_json_str(const json_t *obj, const char *key);

/* A string member with no NUL inside and at most max bytes, else NULL. */
const char *bz_json_str_max(const json_t *obj, const char *key, size_t max);
/* An integer member in [lo, hi] into *out: 0, or -1. */
int bz_json_int_range(const json_t *obj, const char *key, json_int_t lo,
    json_int_t hi, json_int_t *out);

#define BZ_ENV_NAME_MAX 64
/* An environment variable name as clients may send one: letters, digits
 * and '_', not starting with a digit, 1 to BZ_ENV_NAME_MAX bytes. */
int bz_env_name_ok(const char *name);

/*
 * Write data to path atomically with mode 0600 (temp file + fsync + rename),
 * creating parent directories 0700 as needed.
 */
int bz_write_secret_file(const char *path, const void *data, size_t len,
    char *err, size_t errlen);
/* The same with the file's mode given, and fsync'ed (file and folder)
 * only when durable: a file whose loss a crash makes moot may skip it. */
int bz_write_file_atomic(const char *path, const void *data, size_t len,
    mode_t mode, int durable, char *err, size_t errlen);
/* Read a whole file of at most max bytes; *data malloc'ed, NUL-terminated. */
int bz_read_file(const char *path, size_t max, uint8_t **data, size_t *len,
    char *err, size_t errlen);
/* Refuse secret files readable by group/other or not owned by us. */
int bz_check_secret_mode(const char *path, char *err, size_t errlen);
/* mkdir -p with mode for each created component. */
int bz_mkdir_p(const char *path, mode_t mode, char *err, size_t errlen);

/*
 * Load an Ed25519 key pair from path (base64url of the 64-byte libsodium
 * secret key, one line), or create it 0600 if the file does not exist.
 */
int bz_ed25519_load_or_create(const char *path, uint8_t pk[32],
    uint8_t sk[64], char *err, size_t errlen);

/* Wipe and free a secret string, and set *p to NULL (NULL is fine). */
void bz_free_secret(char **p);

/* Constant-time comparison of two NUL-terminated secrets: 1 when equal. */
int bz_secret_equal(const char *a, const char *b);

/* Parse "15m", "12h", "30s", "2d" (positive) into seconds; -1 when invalid. */
long bz_parse_duration(const char *s);

/* A whole decimal number from lo to hi into *out: 0, or -1 (and *out
 * untouched) when s is empty, has anything after the digits, overflows or
 * is out of range. As strtol, leading blanks and a sign are accepted. */
int bz_parse_int_range(const char *s, int lo, int hi, int *out);

/* Format a one-line reason into err (no-op when err is NULL or errlen 0). */
void bz_errf(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
