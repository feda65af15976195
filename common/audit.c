/*
 * audit.c: the hash-chained JSON-lines audit log; see audit.h. Each line's
 * "prev" is the SHA-256 of the line before it, and "seq" its number, so
 * editing, dropping or reordering lines breaks the chain at that point.
 * Writes are whole lines or nothing: a failed write is cut back off, and
 * a torn last line found at open is moved aside and recorded.
 */
#include "audit.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <sodium.h>

#include "buf.h"
#include "util.h"

#define HASH_HEX BZ_AUDIT_HASH_HEX
#define LINE_MAX_LEN BZ_JSON_MAX  /* every line must parse back */
#define READ_CHUNK (64u * 1024)

struct bz_audit {
	int fd;
	char *path;
	char head[HASH_HEX];  /* hash of the last line: the next "prev" */
	uint64_t seq;         /* lines in the file */
	off_t size;           /* file size after our last write or read */
	char *torn;           /* where a torn tail went at open, or NULL */
	char last_event[32];  /* "event" of the last line ("" for none) */
};

_Static_assert(BZ_AUDIT_HASH_HEX == crypto_hash_sha256_BYTES * 2 + 1,
    "hex of a SHA-256 and a NUL");

static const char zero_hash[HASH_HEX] =
    "0000000000000000000000000000000000000000000000000000000000000000";

static void
line_hash(const uint8_t *line, size_t n, char hex[HASH_HEX])
{
	uint8_t h[crypto_hash_sha256_BYTES];

	crypto_hash_sha256(h, line, n);
	sodium_bin2hex(hex, HASH_HEX, h, sizeof(h));
}

/* Check one line against the expected prev; reason in err on failure. */
static int
check_line(const uint8_t *line, size_t n, const char *want_prev, char *err,
    size_t errlen)
{
	char jerr[200];
	const char *prev;
	json_t *o;
	int r = BZ_ERR_FORMAT;

	if ((o = bz_json_parse_object(line, n, jerr, sizeof(jerr))) == NULL) {
		bz_errf(err, errlen, "not a JSON object: %s", jerr);
		return BZ_ERR_FORMAT;
	}
	if (bz_json_str(o, "time") == NULL || bz_json_str(o, "event") == NULL)
		bz_errf(err, errlen, "missing \"time\" or \"event\"");
	else if ((prev = bz_json_str(o, "prev")) == NULL)
		bz_errf(err, errlen, "missing \"prev\"");
	else if (want_prev != NULL && strcmp(prev, want_prev) != 0)
		bz_errf(err, errlen, "\"prev\" does not match the hash of the "
		    "previous line (a line was changed, removed or reordered)");
	else
		r = BZ_OK;
	json_decref(o);
	return r;
}

static int
pread_all(int fd, uint8_t *p, size_t n, off_t off)
{
	ssize_t got;

	while (n > 0) {
		if ((got = pread(fd, p, n, off)) < 0 && errno == EINTR)
			continue;
		if (got <= 0)
			return -1;
		p += got;
		n -= (size_t)got;
		off += got;
	}
	return 0;
}

/* Next line of b; returns whether a newline ended it (more may follow). */
static int
next_line(struct bz_buf *b, const uint8_t **p, size_t *n)
{
	size_t before = bz_buf_avail(b);

	bz_buf_get_until(b, '\n', p, n);
	return before - bz_buf_avail(b) > *n;
}

/* The number of lines in the file (a log written before lines had "seq"):
 * counted once, at open. */
static int
count_lines(struct bz_audit *a, off_t size, uint64_t *n)
{
	uint8_t chunk[READ_CHUNK];
	off_t off = 0;
	size_t len, i;

	*n = 0;
	while (off < size) {
		len = size - off < (off_t)sizeof(chunk) ? (size_t)(size - off) :
		    sizeof(chunk);
		if (pread_all(a->fd, chunk, len, off) != 0)
			return -1;
		for (i = 0; i < len; i++)
			*n += chunk[i] == '\n';
		off += (off_t)len;
	}
	return 0;
}

/* The "seq" of a line, or 0 when it has none; its "event" into ev. */
static uint64_t
line_seq(const uint8_t *line, size_t n, char *ev, size_t evlen)
{
	json_t *o = bz_json_parse_object(line, n, NULL, 0);
	json_t *v = json_object_get(o, "seq");
	uint64_t seq = json_is_integer(v) && json_integer_value(v) > 0 ?
	    (uint64_t)json_integer_value(v) : 0;
	const char *e = bz_json_str(o, "event");

	snprintf(ev, evlen, "%s", e != NULL ? e : "");
	json_decref(o);
	return seq;
}

/*
 * Read the end of the file: check its last line (and its link to the line
 * before, when that fits in what we read) and set a->head and a->seq.
 */
static int
load_head(struct bz_audit *a, char *err, size_t errlen)
{
	struct stat st;
	struct bz_buf b;
	uint8_t *chunk = NULL;
	const uint8_t *p, *last = NULL, *before = NULL;
	size_t n, lastn = 0, beforen = 0, len;
	char why[256], hex[HASH_HEX];
	int r = BZ_ERR_FORMAT, whole, more;

	if (fstat(a->fd, &st) != 0) {
		bz_errf(err, errlen, "%s: %s", a->path, strerror(errno));
		return BZ_ERR_INVALID;
	}
	a->size = st.st_size;
	if (st.st_size == 0) {
		memcpy(a->head, zero_hash, HASH_HEX);
		a->seq = 0;
		return BZ_OK;
	}
	/* Room for two whole lines and the newline before them. */
	len = 2 * (LINE_MAX_LEN + 1) + 1;
	if ((off_t)len > st.st_size)
		len = (size_t)st.st_size;
	whole = (off_t)len == st.st_size;
	if ((chunk = malloc(len)) == NULL)
		return BZ_ERR_ALLOC;
	if (pread_all(a->fd, chunk, len, st.st_size - (off_t)len) != 0) {
		bz_errf(err, errlen, "%s: read failed", a->path);
		r = BZ_ERR_INVALID;
		goto out;
	}
	if (chunk[len - 1] != '\n') {
		bz_errf(err, errlen, "%s: last line is incomplete (torn write "
		    "or tampering)", a->path);
		goto out;
	}
	bz_buf_view(&b, chunk, len - 1); /* without the final newline */
	if (!whole && !next_line(&b, &p, &n)) {
		/* The first piece may be part of a longer line; with no
		 * newline after it, the last line exceeds the limit. */
		bz_errf(err, errlen, "%s: last line too long", a->path);
		goto out;
	}
	do {
		before = last;
		beforen = lastn;
		more = next_line(&b, &last, &lastn);
	} while (more);
	if (lastn == 0) {
		bz_errf(err, errlen, "%s: last line is empty", a->path);
		goto out;
	}
	if (before != NULL)
		line_hash(before, beforen, hex);
	else if (whole)
		memcpy(hex, zero_hash, HASH_HEX);
	if (check_line(last, lastn, (before || whole) ? hex : NULL, why,
	    sizeof(why)) != 0) {
		bz_errf(err, errlen, "%s: last line: %s", a->path, why);
		goto out;
	}
	line_hash(last, lastn, a->head);
	if ((a->seq = line_seq(last, lastn, a->last_event,
	    sizeof(a->last_event))) == 0 &&
	    count_lines(a, st.st_size, &a->seq) != 0) {
		bz_errf(err, errlen, "%s: read failed", a->path);
		r = BZ_ERR_INVALID;
		goto out;
	}
	r = BZ_OK;
 out:
	free(chunk);
	return r;
}

/* "PATH.torn-20261129T101112Z", or with "-2", "-3"... when taken. */
static int
create_torn_file(const char *path, char **name, char *err, size_t errlen)
{
	char when[32];
	struct tm tm;
	time_t now = time(NULL);
	int fd = -1, i;

	gmtime_r(&now, &tm);
	strftime(when, sizeof(when), "%Y%m%dT%H%M%SZ", &tm);
	for (i = 1; i < 100 && fd < 0; i++) {
		*name = NULL;
		if ((i == 1 ? asprintf(name, "%s.torn-%s", path, when) :
		    asprintf(name, "%s.torn-%s-%d", path, when, i)) < 0)
			return -1;
		fd = open(*name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC |
		    O_NOFOLLOW, 0600);
		if (fd < 0 && errno != EEXIST)
			break;
		if (fd < 0)
			free(*name);
	}
	if (fd < 0) {
		bz_errf(err, errlen, "cannot create %s.torn-%s: %s", path, when,
		    strerror(errno));
		free(*name);
		*name = NULL;
	}
	return fd;
}

/*
 * A last line without its newline (a write cut short by a crash, or by a
 * disk that filled before the undo): move it into a file of its own, cut
 * it off, and say so in *event (malloc'ed fields for "audit_torn_tail").
 * Anything that does not look like one torn line is left for load_head to
 * refuse.
 */
static int
set_aside_torn_tail(struct bz_audit *a, json_t **event, char *err,
    size_t errlen)
{
	struct stat st;
	uint8_t *tail = NULL, *nl;
	char hex[HASH_HEX];
	size_t len;
	off_t keep;
	int fd = -1, r = BZ_OK;

	*event = NULL;
	if (fstat(a->fd, &st) != 0 || st.st_size == 0)
		return BZ_OK;
	len = st.st_size > (off_t)LINE_MAX_LEN + 1 ? LINE_MAX_LEN + 1 :
	    (size_t)st.st_size;
	if ((tail = malloc(len)) == NULL)
		return BZ_ERR_ALLOC;
	if (pread_all(a->fd, tail, len, st.st_size - (off_t)len) != 0 ||
	    tail[len - 1] == '\n')
		goto out; /* unreadable (load_head says so) or whole */
	if ((nl = memrchr(tail, '\n', len)) != NULL)
		keep = st.st_size - (off_t)len + (nl - tail) + 1;
	else if ((off_t)len == st.st_size)
		keep = 0; /* the only line, torn */
	else
		goto out; /* longer than any line: not a torn write */
	/* the torn bytes to the front of the buffer */
	memmove(tail, tail + (keep - (st.st_size - (off_t)len)),
	    (size_t)(st.st_size - keep));
	len = (size_t)(st.st_size - keep);
	r = BZ_ERR_INVALID;
	if ((fd = create_torn_file(a->path, &a->torn, err, errlen)) < 0)
		goto out;
	if (write(fd, tail, len) != (ssize_t)len || fsync(fd) != 0 ||
	    ftruncate(a->fd, keep) != 0 || fsync(a->fd) != 0) {
		bz_errf(err, errlen, "%s: cannot set its torn last line aside: "
		    "%s", a->path, strerror(errno));
		goto out;
	}
	line_hash(tail, len, hex);
	*event = json_pack("{s:s, s:I, s:s}", "moved_to", a->torn, "bytes",
	    (json_int_t)len, "sha256", hex);
	r = *event != NULL ? BZ_OK : BZ_ERR_ALLOC;
 out:
	if (fd >= 0)
		close(fd);
	free(tail);
	return r;
}

int
bz_audit_open(const char *path, struct bz_audit **out, char *err,
    size_t errlen)
{
	struct bz_audit *a;
	json_t *torn = NULL;
	int r;

	*out = NULL;
	if ((a = calloc(1, sizeof(*a))) == NULL ||
	    (a->path = strdup(path)) == NULL) {
		free(a);
		return BZ_ERR_ALLOC;
	}
	if ((a->fd = open(path, O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC,
	    0600)) < 0) {
		bz_errf(err, errlen, "%s: %s", path, strerror(errno));
		r = BZ_ERR_INVALID;
		goto fail;
	}
	if ((r = set_aside_torn_tail(a, &torn, err, errlen)) != 0 ||
	    (r = load_head(a, err, errlen)) != 0)
		goto fail;
	/* the cut is part of the record */
	if (torn != NULL && (r = bz_audit_write(a, "audit_torn_tail", torn,
	    err, errlen)) != 0)
		goto fail;
	json_decref(torn);
	*out = a;
	return BZ_OK;
 fail:
	json_decref(torn);
	bz_audit_close(a);
	return r;
}

const char *
bz_audit_last_event(const struct bz_audit *a)
{
	return a->last_event;
}

const char *
bz_audit_torn(const struct bz_audit *a)
{
	return a->torn;
}

void
bz_audit_head(const struct bz_audit *a, uint64_t *seq,
    char head[BZ_AUDIT_HASH_HEX])
{
	*seq = a->seq;
	memcpy(head, a->head, HASH_HEX);
}

void
bz_audit_close(struct bz_audit *a)
{
	if (a == NULL)
		return;
	if (a->fd >= 0)
		close(a->fd);
	free(a->path);
	free(a->torn);
	free(a);
}

/* RFC 3339 UTC with milliseconds: 2024-01-02T03:04:05.678Z */
static void
now_rfc3339(char *out, size_t outlen)
{
	struct timespec ts;
	struct tm tm;
	char base[32];

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(base, sizeof(base), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(out, outlen, "%.20s.%03dZ", base,
	    (int)((unsigned long)ts.tv_nsec / 1000000 % 1000));
}

/* The line for event: time, event, the caller's fields, seq, prev. */
static char *
build_line(const char *head, uint64_t seq, const char *event,
    const json_t *fields)
{
	json_t *o, *v;
	const char *k;
	char when[64], *line = NULL;

	now_rfc3339(when, sizeof(when));
	if ((o = json_object()) == NULL)
		return NULL;
	if (json_object_set_new(o, "time", json_string(when)) != 0 ||
	    json_object_set_new(o, "event", json_string(event)) != 0)
		goto out;
	if (fields != NULL) {
		/* jansson iterates non-const objects only; we do not modify. */
		json_object_foreach((json_t *)(uintptr_t)fields, k, v) {
			if (strcmp(k, "time") == 0 || strcmp(k, "event") == 0 ||
			    strcmp(k, "seq") == 0 || strcmp(k, "prev") == 0 ||
			    json_object_set(o, k, v))
				goto out;
		}
	}
	if (json_object_set_new(o, "seq", json_integer((json_int_t)seq)) != 0 ||
	    json_object_set_new(o, "prev", json_string(head)) != 0)
		goto out;
	line = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
 out:
	json_decref(o);
	return line;
}

int
bz_audit_write(struct bz_audit *a, const char *event, const json_t *fields,
    char *err, size_t errlen)
{
	struct stat st;
	char *line = NULL;
	size_t n;
	ssize_t w;
	int r = BZ_ERR_INVALID, locked = 0, e;

	if (a == NULL || event == NULL ||
	    (fields != NULL && !json_is_object(fields))) {
		bz_errf(err, errlen, "bad audit event");
		return BZ_ERR_INVALID;
	}
	/* Another process may append too (e.g. an admin command while the
	 * service runs): serialise and pick up its last line as our head. */
	if (flock(a->fd, LOCK_EX) != 0) {
		bz_errf(err, errlen, "%s: lock: %s", a->path, strerror(errno));
		return BZ_ERR_INVALID;
	}
	locked = 1;
	if (fstat(a->fd, &st) != 0) {
		bz_errf(err, errlen, "%s: %s", a->path, strerror(errno));
		goto out;
	}
	if (st.st_size != a->size && (r = load_head(a, err, errlen)) != 0)
		goto out;
	r = BZ_ERR_INVALID;
	if ((line = build_line(a->head, a->seq + 1, event, fields)) == NULL) {
		bz_errf(err, errlen, "out of memory, or a reserved member");
		goto out;
	}
	n = strlen(line);
	if (n > LINE_MAX_LEN) {
		bz_errf(err, errlen, "audit line too long");
		r = BZ_ERR_TOO_BIG;
		goto out;
	}
	line[n] = '\n'; /* write line and newline at once: one append */
	w = write(a->fd, line, n + 1);
	e = w < 0 ? errno : ENOSPC; /* a short append: the disk is full */
	line[n] = '\0';
	if (w == (ssize_t)(n + 1) && fdatasync(a->fd) != 0)
		e = errno, w = -1;
	if (w != (ssize_t)(n + 1)) {
		/* undo: no part of a line we report as not written */
		if (ftruncate(a->fd, st.st_size) != 0)
			bz_errf(err, errlen, "%s: %s (and the partial line "
			    "could not be cut off: %s)", a->path, strerror(e),
			    strerror(errno));
		else
			bz_errf(err, errlen, "%s: %s", a->path, strerror(e));
		(void)fdatasync(a->fd);
		goto out;
	}
	line_hash((const uint8_t *)line, n, a->head);
	a->seq++;
	snprintf(a->last_event, sizeof(a->last_event), "%s", event);
	a->size = st.st_size + (off_t)n + 1;
	r = BZ_OK;
 out:
	if (locked)
		flock(a->fd, LOCK_UN);
	free(line);
	return r;
}

/* Verify line number lineno (without its newline): its link to the one
 * before (prev), its number (seq, when it has one); advances prev. */
static int
verify_line(const char *path, uint64_t lineno, const uint8_t *p, size_t n,
    char prev[HASH_HEX], char *err, size_t errlen)
{
	char why[256], ev[32];
	uint64_t seq;

	if (check_line(p, n, NULL, why, sizeof(why)) != 0) {
		bz_errf(err, errlen, "%s:%llu: %s", path,
		    (unsigned long long)lineno, why);
		return BZ_ERR_FORMAT;
	}
	seq = line_seq(p, n, ev, sizeof(ev));
	if (seq != 0 && seq != lineno) {
		bz_errf(err, errlen, "%s:%llu: the line says it is line %llu: "
		    "lines before it were %s", path,
		    (unsigned long long)lineno, (unsigned long long)seq,
		    seq > lineno ? "removed" : "added or reordered");
		return BZ_ERR_FORMAT;
	}
	if (check_line(p, n, prev, why, sizeof(why)) != 0) {
		/* its own number is right: the line before it changed, or
		 * its prev did */
		if (lineno == 1)
			bz_errf(err, errlen, "%s:1: the first line does not "
			    "start the chain (lines before it were removed)",
			    path);
		else
			bz_errf(err, errlen, "%s:%llu: changed (line %llu's "
			    "\"prev\" is not its hash)", path,
			    (unsigned long long)lineno - 1,
			    (unsigned long long)lineno);
		return BZ_ERR_FORMAT;
	}
	line_hash(p, n, prev);
	return BZ_OK;
}

int
bz_audit_verify(const char *path, const struct bz_audit_mark *mark,
    uint64_t *lines, char *err, size_t errlen)
{
	struct bz_buf b;
	uint8_t chunk[READ_CHUNK];
	const uint8_t *p, *nl;
	char prev[HASH_HEX];
	uint64_t lineno = 0;
	size_t n;
	ssize_t got;
	int fd, r = BZ_ERR_FORMAT;

	memcpy(prev, zero_hash, HASH_HEX);
	bz_buf_init(&b);
	if (lines != NULL)
		*lines = 0;
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
		bz_errf(err, errlen, "%s: %s", path, strerror(errno));
		return BZ_ERR_INVALID;
	}
	for (;;) {
		if ((got = read(fd, chunk, sizeof(chunk))) < 0) {
			if (errno == EINTR)
				continue;
			bz_errf(err, errlen, "%s: %s", path, strerror(errno));
			r = BZ_ERR_INVALID;
			goto out;
		}
		if (got == 0)
			break;
		if ((r = bz_buf_put(&b, chunk, (size_t)got)) != 0)
			goto out;
		/* Consume every complete line now in the buffer. */
		while ((nl = memchr(bz_buf_peek(&b), '\n',
		    bz_buf_avail(&b))) != NULL) {
			n = (size_t)(nl - bz_buf_peek(&b));
			if ((r = bz_buf_get_ptr(&b, &p, n)) != 0 ||
			    (r = bz_buf_skip(&b, 1)) != 0 ||
			    (r = verify_line(path, ++lineno, p, n, prev, err,
			    errlen)) != 0)
				goto out;
			if (mark != NULL && lineno == mark->seq &&
			    strcmp(prev, mark->head) != 0) {
				bz_errf(err, errlen, "%s:%llu: not the line the "
				    "checkpoint vouches for (the log was "
				    "rewritten up to here)", path,
				    (unsigned long long)lineno);
				r = BZ_ERR_FORMAT;
				goto out;
			}
		}
		if (bz_buf_avail(&b) > LINE_MAX_LEN) {
			bz_errf(err, errlen, "%s:%llu: line too long", path,
			    (unsigned long long)lineno + 1);
			r = BZ_ERR_TOO_BIG;
			goto out;
		}
		bz_buf_compact(&b);
	}
	if (bz_buf_avail(&b) > 0) {
		bz_errf(err, errlen, "%s:%llu: incomplete last line (a torn "
		    "write: bzproxy moves it aside when it starts)", path,
		    (unsigned long long)lineno + 1);
		r = BZ_ERR_FORMAT;
		goto out;
	}
	if (mark != NULL && lineno < mark->seq) {
		bz_errf(err, errlen, "%s: cut: it has %llu lines, but a "
		    "checkpoint vouches for %llu (the last %llu are gone)",
		    path, (unsigned long long)lineno,
		    (unsigned long long)mark->seq,
		    (unsigned long long)(mark->seq - lineno));
		r = BZ_ERR_FORMAT;
		goto out;
	}
	if (lines != NULL)
		*lines = lineno;
	r = BZ_OK;
 out:
	close(fd);
	bz_buf_free(&b);
	return r;
}
