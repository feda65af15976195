/* audit_checkpoint.c: signed checkpoints of the audit log; see
 * audit_checkpoint.h. */
#include "audit_checkpoint.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sodium.h>

#include "buf.h"
#include "chain.h"
#include "util.h"

#define CHECKPOINTS_MAX (64u * 1024 * 1024) /* a file we read whole */
#define LINE_MAX_LEN 1024

/* The bytes signed: the compact, sorted JSON of seq, head, time, key. */
static char *
signed_text(json_int_t seq, const char *head, const char *when,
    const char *key)
{
	json_t *o = json_pack("{s:I, s:s, s:s, s:s}", "seq", seq, "head", head,
	    "time", when, "key", key);
	char *s = o != NULL ? json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS) :
	    NULL;

	json_decref(o);
	return s;
}

char *
bz_audit_checkpoint_make(const struct bz_audit *a, const uint8_t sk[64])
{
	char head[BZ_AUDIT_HASH_HEX], when[32], *key = NULL, *sig_b64 = NULL;
	char *text = NULL, *line = NULL;
	uint8_t pk[32], sig[crypto_sign_BYTES];
	uint64_t seq;
	struct tm tm;
	time_t now = time(NULL);
	json_t *o = NULL;

	bz_audit_head(a, &seq, head);
	gmtime_r(&now, &tm);
	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
	crypto_sign_ed25519_sk_to_pk(pk, sk);
	if (bz_b64url_encode(pk, sizeof(pk), &key) != 0 ||
	    (text = signed_text((json_int_t)seq, head, when, key)) == NULL)
		goto out;
	crypto_sign_detached(sig, NULL, (const uint8_t *)text, strlen(text),
	    sk);
	if (bz_b64url_encode(sig, sizeof(sig), &sig_b64) == 0 &&
	    (o = json_pack("{s:I, s:s, s:s, s:s, s:s}", "seq",
	    (json_int_t)seq, "head", head, "time", when, "key", key, "sig",
	    sig_b64)) != NULL)
		line = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
 out:
	json_decref(o);
	free(key);
	free(sig_b64);
	free(text);
	return line;
}

int
bz_audit_checkpoint_append(const char *file, const char *line, char *err,
    size_t errlen)
{
	size_t n = strlen(line);
	int fd, r = BZ_OK;

	if ((fd = open(file, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC |
	    O_NOFOLLOW, 0600)) < 0) {
		bz_errf(err, errlen, "%s: %s", file, strerror(errno));
		return BZ_ERR_INVALID;
	}
	if (write(fd, line, n) != (ssize_t)n || write(fd, "\n", 1) != 1 ||
	    fsync(fd) != 0) {
		bz_errf(err, errlen, "%s: %s", file, strerror(errno));
		r = BZ_ERR_INVALID;
	}
	close(fd);
	return r;
}

/* One checkpoint line, signed by pk: into mark and when. */
static int
parse_line(const uint8_t *p, size_t n, const uint8_t pk[32],
    struct bz_audit_mark *mark, char *when, size_t whenlen)
{
	json_t *o = bz_json_parse_object(p, n, NULL, 0);
	const char *head = bz_json_str(o, "head"), *t = bz_json_str(o, "time");
	const char *key = bz_json_str(o, "key"), *sig_b64 = bz_json_str(o,
	    "sig");
	json_t *seq = json_object_get(o, "seq");
	uint8_t kpk[32], *sig = NULL;
	size_t siglen = 0;
	char *text = NULL;
	int r = BZ_ERR_INVALID;

	if (head == NULL || strlen(head) != BZ_AUDIT_HASH_HEX - 1 ||
	    t == NULL || key == NULL || sig_b64 == NULL ||
	    !json_is_integer(seq) || json_integer_value(seq) < 0 ||
	    bz_b64_exact(key, kpk, sizeof(kpk)) != 0 ||
	    sodium_memcmp(kpk, pk, sizeof(kpk)) != 0 ||
	    bz_b64url_decode(sig_b64, strlen(sig_b64), 128, &sig,
	    &siglen) != 0 || siglen != crypto_sign_BYTES ||
	    (text = signed_text(json_integer_value(seq), head, t,
	    key)) == NULL ||
	    crypto_sign_verify_detached(sig, (const uint8_t *)text,
	    strlen(text), pk) != 0)
		goto out;
	mark->seq = (uint64_t)json_integer_value(seq);
	memcpy(mark->head, head, BZ_AUDIT_HASH_HEX);
	snprintf(when, whenlen, "%s", t);
	r = BZ_OK;
 out:
	json_decref(o);
	free(sig);
	free(text);
	return r;
}

int
bz_audit_checkpoint_latest(const char *file, const uint8_t pk[32],
    struct bz_audit_mark *mark, char *when, size_t whenlen, char *err,
    size_t errlen)
{
	struct bz_audit_mark m;
	struct bz_buf b;
	uint8_t *data = NULL;
	const uint8_t *p;
	size_t len = 0, n, lineno = 0;
	char t[64];
	int r;

	memset(mark, 0, sizeof(*mark));
	if ((r = bz_read_file(file, CHECKPOINTS_MAX, &data, &len, err,
	    errlen)) != 0)
		return r;
	bz_buf_view(&b, data, len);
	while (bz_buf_avail(&b) > 0) {
		lineno++;
		if (bz_buf_get_until(&b, '\n', &p, &n) == 0 &&
		    bz_buf_avail(&b) == 0 && data[len - 1] != '\n' &&
		    parse_line(p, n, pk, &m, t, sizeof(t)) != 0)
			break; /* a last line cut by a crash: not a lie */
		if (n == 0 || n > LINE_MAX_LEN) {
			bz_errf(err, errlen, "%s:%zu: not a checkpoint line",
			    file, lineno);
			r = BZ_ERR_FORMAT;
			goto out;
		}
		if (parse_line(p, n, pk, &m, t, sizeof(t)) != 0) {
			bz_errf(err, errlen, "%s:%zu: not a checkpoint signed "
			    "by this bzproxy's key", file, lineno);
			r = BZ_ERR_FORMAT;
			goto out;
		}
		if (m.seq < mark->seq) {
			bz_errf(err, errlen, "%s:%zu: vouches for fewer lines "
			    "than the checkpoint before it", file, lineno);
			r = BZ_ERR_FORMAT;
			goto out;
		}
		*mark = m;
		snprintf(when, whenlen, "%s", t);
	}
	if (lineno == 0) {
		bz_errf(err, errlen, "%s: no checkpoint yet", file);
		r = BZ_ERR_SHORT;
		goto out;
	}
	r = BZ_OK;
 out:
	free(data);
	return r;
}
