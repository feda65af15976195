/* util.c: base64url, JSON of untrusted bytes, secret files; see util.h. */
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <sodium.h>

#define B64 sodium_base64_VARIANT_URLSAFE_NO_PADDING
#define KEY_FILE_MAX 256 /* an Ed25519 key file is one 86-char line */

void
bz_errf(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

int
bz_b64url_encode(const uint8_t *in, size_t len, char **out)
{
	size_t olen;

	*out = NULL;
	if (len > BZ_BUF_SIZE_MAX)
		return BZ_ERR_TOO_BIG;
	olen = sodium_base64_ENCODED_LEN(len, B64);
	if ((*out = malloc(olen)) == NULL)
		return BZ_ERR_ALLOC;
	/* libsodium wants a non-NULL input pointer even for zero bytes. */
	sodium_bin2base64(*out, olen, len ? in : (const uint8_t *)"", len, B64);
	return BZ_OK;
}

int
bz_b64url_decode(const char *in, size_t len, size_t max, uint8_t **out,
    size_t *outlen)
{
	const char *end = NULL;
	size_t cap, n = 0;
	uint8_t *p;

	*out = NULL;
	*outlen = 0;
	if (len > BZ_BUF_SIZE_MAX)
		return BZ_ERR_TOO_BIG;
	cap = len / 4 * 3 + 3;
	if (cap > max)
		cap = max;
	if ((p = malloc(cap + 1)) == NULL)
		return BZ_ERR_ALLOC;
	/* Any byte outside the alphabet (padding included) stops decoding
	 * early; end then points before the input's end and we reject it. */
	errno = 0;
	if (sodium_base642bin(p, cap, len ? in : "", len, NULL, &n, &end,
	    B64) != 0 || end != in + len) {
		sodium_memzero(p, cap + 1);
		free(p);
		return errno == ERANGE ? BZ_ERR_TOO_BIG : BZ_ERR_FORMAT;
	}
	*out = p;
	*outlen = n;
	return BZ_OK;
}

int
bz_random_b64url(size_t nbytes, char **out)
{
	uint8_t *p;
	int r;

	*out = NULL;
	if (nbytes > 4096)
		return BZ_ERR_TOO_BIG;
	if ((p = malloc(nbytes + 1)) == NULL)
		return BZ_ERR_ALLOC;
	randombytes_buf(p, nbytes);
	r = bz_b64url_encode(p, nbytes, out);
	sodium_memzero(p, nbytes + 1);
	free(p);
	return r;
}

json_t *
bz_json_parse_object(const uint8_t *p, size_t n, char *err, size_t errlen)
{
	json_error_t jerr;
	json_t *o;

	if (n == 0 || p == NULL) {
		bz_errf(err, errlen, "empty JSON document");
		return NULL;
	}
	if (n > BZ_JSON_MAX) {
		bz_errf(err, errlen, "JSON document too large (%zu bytes, "
		    "max %u)", n, BZ_JSON_MAX);
		return NULL;
	}
	/* json_loadb also rejects trailing data (no JSON_DISABLE_EOF_CHECK). */
	if ((o = json_loadb((const char *)p, n, JSON_REJECT_DUPLICATES,
	    &jerr)) == NULL) {
		bz_errf(err, errlen, "invalid JSON at line %d column %d: %s",
		    jerr.line, jerr.column, jerr.text);
		return NULL;
	}
	if (!json_is_object(o)) {
		json_decref(o);
		bz_errf(err, errlen, "JSON document is not an object");
		return NULL;
	}
	return o;
}

char *
bz_json_dump(const json_t *obj)
{
	return json_dumps(obj, JSON_COMPACT | JSON_SORT_KEYS);
}

const char *
bz_json_str(const json_t *obj, const char *key)
{
	json_t *v;

	if (obj == NULL || (v = json_object_get(obj, key)) == NULL)
		return NULL;
	return json_is_string(v) ? json_string_value(v) : NULL;
}

const char *
bz_json_str_max(const json_t *o, const char *key, size_t max)
{
	json_t *v = json_object_get(o, key);

	if (!json_is_string(v) || json_string_length(v) > max ||
	    strlen(json_string_value(v)) != json_string_length(v))
		return NULL;
	return json_string_value(v);
}

int
bz_json_int_range(const json_t *o, const char *key, json_int_t lo,
    json_int_t hi, json_int_t *out)
{
	json_t *v = json_object_get(o, key);

	if (!json_is_integer(v) || json_integer_value(v) < lo ||
	    json_integer_value(v) > hi)
		return -1;
	*out = json_integer_value(v);
	return 0;
}

int
bz_env_name_ok(const char *name)
{
	size_t n = strlen(name);

	return n > 0 && n <= BZ_ENV_NAME_MAX && !(name[0] >= '0' &&
	    name[0] <= '9') && strspn(name, "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
	    "abcdefghijklmnopqrstuvwxyz0123456789_") == n;
}

int
bz_mkdir_p(const char *path, mode_t mode, char *err, size_t errlen)
{
	char *p, *s;
	struct stat st;
	int r = BZ_ERR_INVALID;

	if (path[0] == '\0') {
		bz_errf(err, errlen, "mkdir: empty path");
		return BZ_ERR_INVALID;
	}
	if ((p = strdup(path)) == NULL)
		return BZ_ERR_ALLOC;
	for (s = p + 1; ; s++) {
		if (*s != '/' && *s != '\0')
			continue;
		char c = *s;
		*s = '\0';
		if (mkdir(p, mode) != 0 && errno != EEXIST) {
			bz_errf(err, errlen, "mkdir %s: %s", p,
			    strerror(errno));
			goto out;
		}
		if (stat(p, &st) != 0 || !S_ISDIR(st.st_mode)) {
			bz_errf(err, errlen, "%s: not a directory", p);
			goto out;
		}
		*s = c;
		if (c == '\0')
			break;
	}
	r = BZ_OK;
 out:
	free(p);
	return r;
}

/* Directory part of path ("." when there is none); malloc'ed. */
static char *
dir_of(const char *path)
{
	const char *slash = strrchr(path, '/');

	if (slash == NULL)
		return strdup(".");
	if (slash == path)
		return strdup("/");
	return strndup(path, (size_t)(slash - path));
}

static int
write_all(int fd, const void *data, size_t len)
{
	const uint8_t *p = data;
	ssize_t w;

	while (len > 0) {
		if ((w = write(fd, p, len)) < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += w;
		len -= (size_t)w;
	}
	return 0;
}

/*
 * Create a 0600 temporary file next to path holding data, fsync'ed.
 * *tmp (malloc'ed) names it; the caller renames or links it into place.
 */
static int
write_temp(const char *path, const void *data, size_t len, mode_t mode,
    int durable, char **tmp, char *err, size_t errlen)
{
	char *dir = NULL, *t = NULL;
	int fd = -1, r;

	*tmp = NULL;
	if ((dir = dir_of(path)) == NULL)
		return BZ_ERR_ALLOC;
	if ((r = bz_mkdir_p(dir, 0700, err, errlen)) != 0)
		goto out;
	r = BZ_ERR_ALLOC;
	if (asprintf(&t, "%s.tmpXXXXXX", path) < 0) {
		t = NULL;
		goto out;
	}
	r = BZ_ERR_INVALID;
	if ((fd = mkstemp(t)) < 0) {
		bz_errf(err, errlen, "create %s: %s", t, strerror(errno));
		goto out;
	}
	if (fchmod(fd, mode) != 0 || write_all(fd, data, len) != 0 ||
	    (durable && fsync(fd) != 0)) {
		bz_errf(err, errlen, "write %s: %s", t, strerror(errno));
		goto out;
	}
	if (close(fd) != 0) {
		fd = -1;
		bz_errf(err, errlen, "close %s: %s", t, strerror(errno));
		goto out;
	}
	fd = -1;
	*tmp = t;
	t = NULL;
	r = BZ_OK;
 out:
	if (fd >= 0)
		close(fd);
	if (t != NULL) {
		unlink(t);
		free(t);
	}
	free(dir);
	return r;
}

/* fsync the directory holding path so a rename survives a crash. */
static void
sync_dir(const char *path)
{
	char *dir = dir_of(path);
	int fd;

	if (dir != NULL && (fd = open(dir, O_RDONLY | O_DIRECTORY)) >= 0) {
		(void)fsync(fd);
		close(fd);
	}
	free(dir);
}

int
bz_write_file_atomic(const char *path, const void *data, size_t len,
    mode_t mode, int durable, char *err, size_t errlen)
{
	char *tmp = NULL;
	int r;

	if ((r = write_temp(path, data, len, mode, durable, &tmp, err,
	    errlen)) != 0)
		return r;
	if (rename(tmp, path) != 0) {
		bz_errf(err, errlen, "rename to %s: %s", path, strerror(errno));
		unlink(tmp);
		free(tmp);
		return BZ_ERR_INVALID;
	}
	free(tmp);
	if (durable)
		sync_dir(path);
	return BZ_OK;
}

int
bz_write_secret_file(const char *path, const void *data, size_t len,
    char *err, size_t errlen)
{
	return bz_write_file_atomic(path, data, len, 0600, 1, err, errlen);
}

int
bz_read_file(const char *path, size_t max, uint8_t **data, size_t *len,
    char *err, size_t errlen)
{
	uint8_t *p = NULL, *np;
	size_t n = 0, cap = 0;
	struct stat st;
	ssize_t got;
	int fd, r = BZ_ERR_INVALID;

	*data = NULL;
	*len = 0;
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
		bz_errf(err, errlen, "%s: %s", path, strerror(errno));
		return BZ_ERR_INVALID;
	}
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		bz_errf(err, errlen, "%s: not a regular file", path);
		goto out;
	}
	for (;;) {
		if (n == cap) {
			/* Grow by copying: the old block is zeroed first. */
			size_t ncap = cap ? cap * 2 : 4096;
			if (ncap > max + 1)
				ncap = max + 1;
			if (ncap <= cap) {
				bz_errf(err, errlen, "%s: larger than %zu "
				    "bytes", path, max);
				r = BZ_ERR_TOO_BIG;
				goto out;
			}
			if ((np = malloc(ncap + 1)) == NULL) {
				r = BZ_ERR_ALLOC;
				goto out;
			}
			if (p != NULL) {
				memcpy(np, p, n);
				sodium_memzero(p, cap + 1);
				free(p);
			}
			p = np;
			cap = ncap;
		}
		if ((got = read(fd, p + n, cap - n)) < 0) {
			if (errno == EINTR)
				continue;
			bz_errf(err, errlen, "read %s: %s", path,
			    strerror(errno));
			goto out;
		}
		if (got == 0)
			break;
		n += (size_t)got;
		if (n > max) {
			bz_errf(err, errlen, "%s: larger than %zu bytes", path,
			    max);
			r = BZ_ERR_TOO_BIG;
			goto out;
		}
	}
	if (p == NULL && (p = malloc(1)) == NULL) {
		r = BZ_ERR_ALLOC;
		goto out;
	}
	p[n] = '\0';
	*data = p;
	*len = n;
	p = NULL;
	r = BZ_OK;
 out:
	if (p != NULL) {
		sodium_memzero(p, cap + 1);
		free(p);
	}
	close(fd);
	return r;
}

int
bz_check_secret_mode(const char *path, char *err, size_t errlen)
{
	struct stat st;

	if (stat(path, &st) != 0) {
		bz_errf(err, errlen, "%s: %s", path, strerror(errno));
		return BZ_ERR_INVALID;
	}
	if (st.st_uid != geteuid()) {
		bz_errf(err, errlen, "%s: owned by uid %u, not by us (uid %u)",
		    path, (unsigned)st.st_uid, (unsigned)geteuid());
		return BZ_ERR_INVALID;
	}
	if ((st.st_mode & 077) != 0) {
		bz_errf(err, errlen, "%s: mode %04o is too open (must not be "
		    "accessible by group or others: chmod 600)", path,
		    (unsigned)(st.st_mode & 07777));
		return BZ_ERR_INVALID;
	}
	return BZ_OK;
}

static int
ed25519_load(const char *path, uint8_t pk[32], uint8_t sk[64], char *err,
    size_t errlen)
{
	uint8_t *text = NULL, *key = NULL, xpk[32], xsk[64];
	size_t len, klen = 0;
	int r;

	if ((r = bz_check_secret_mode(path, err, errlen)) != 0 ||
	    (r = bz_read_file(path, KEY_FILE_MAX, &text, &len, err,
	    errlen)) != 0)
		goto out;
	while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == '\r'))
		len--;
	if (bz_b64url_decode((const char *)text, len, 64, &key, &klen) != 0 ||
	    klen != 64) {
		bz_errf(err, errlen, "%s: not a base64url Ed25519 secret key",
		    path);
		r = BZ_ERR_FORMAT;
		goto out;
	}
	/* The secret key is seed || public key: re-derive to catch damage. */
	crypto_sign_seed_keypair(xpk, xsk, key);
	if (sodium_memcmp(xpk, key + 32, 32) != 0) {
		bz_errf(err, errlen, "%s: public half does not match the seed",
		    path);
		r = BZ_ERR_FORMAT;
		goto out;
	}
	memcpy(pk, xpk, 32);
	memcpy(sk, xsk, 64);
	r = BZ_OK;
 out:
	sodium_memzero(xsk, sizeof(xsk));
	if (key != NULL) {
		sodium_memzero(key, klen);
		free(key);
	}
	if (text != NULL) {
		sodium_memzero(text, len);
		free(text);
	}
	return r;
}

int
bz_ed25519_load_or_create(const char *path, uint8_t pk[32], uint8_t sk[64],
    char *err, size_t errlen)
{
	uint8_t npk[32], nsk[64];
	char *b64 = NULL, *line = NULL, *tmp = NULL;
	size_t llen = 0;
	int r;

	if (access(path, F_OK) == 0 || errno != ENOENT)
		return ed25519_load(path, pk, sk, err, errlen);
	crypto_sign_keypair(npk, nsk);
	if ((r = bz_b64url_encode(nsk, sizeof(nsk), &b64)) != 0)
		goto out;
	llen = strlen(b64) + 1;
	r = BZ_ERR_ALLOC;
	if ((line = malloc(llen + 1)) == NULL)
		goto out;
	snprintf(line, llen + 1, "%s\n", b64);
	if ((r = write_temp(path, line, llen, 0600, 1, &tmp, err,
	    errlen)) != 0)
		goto out;
	/* link() never replaces: if another process created the key first,
	 * use theirs so both agree on one identity. */
	if (link(tmp, path) != 0) {
		if (errno != EEXIST) {
			bz_errf(err, errlen, "create %s: %s", path,
			    strerror(errno));
			r = BZ_ERR_INVALID;
			goto out;
		}
		r = ed25519_load(path, pk, sk, err, errlen);
		goto out;
	}
	sync_dir(path);
	memcpy(pk, npk, 32);
	memcpy(sk, nsk, 64);
	r = BZ_OK;
 out:
	if (tmp != NULL) {
		unlink(tmp);
		free(tmp);
	}
	sodium_memzero(nsk, sizeof(nsk));
	if (b64 != NULL) {
		sodium_memzero(b64, strlen(b64));
		free(b64);
	}
	if (line != NULL) {
		sodium_memzero(line, llen);
		free(line);
	}
	return r;
}

void
bz_free_secret(char **p)
{
	if (*p == NULL)
		return;
	sodium_memzero(*p, strlen(*p));
	free(*p);
	*p = NULL;
}

int
bz_secret_equal(const char *a, const char *b)
{
	size_t la, lb;

	if (a == NULL || b == NULL)
		return 0;
	la = strlen(a);
	lb = strlen(b);
	/* Only the length may leak; the contents are compared in constant
	 * time. */
	if (la != lb)
		return 0;
	return sodium_memcmp(a, b, la) == 0;
}

long
bz_parse_duration(const char *s)
{
	long v = 0, mult;
	size_t i;

	if (s == NULL || s[0] < '0' || s[0] > '9')
		return -1;
	for (i = 0; s[i] >= '0' && s[i] <= '9'; i++) {
		if (v > (LONG_MAX - (s[i] - '0')) / 10)
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	switch (s[i]) {
	case 's': mult = 1; break;
	case 'm': mult = 60; break;
	case 'h': mult = 3600; break;
	case 'd': mult = 86400; break;
	default: return -1;
	}
	if (s[i + 1] != '\0' || v <= 0 || v > LONG_MAX / mult)
		return -1;
	return v * mult;
}

int
bz_parse_int_range(const char *s, int lo, int hi, int *out)
{
	char *end;
	long v;

	if (s == NULL)
		return -1;
	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v < lo || v > hi)
		return -1;
	*out = (int)v;
	return 0;
}
