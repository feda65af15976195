/*
 * known_targets.c: each target's agent key, pinned the first time bzsshd
 * reaches the target (trust on first use, as ssh's known_hosts).
 * CONFIGDIR/known_targets holds one "NAME KEY" line per target, KEY the
 * base64url Ed25519 public key that signed the target's SYNACK. Whoever
 * holds bzproxy can enrol an agent under any name; the pin is what makes
 * such a stand-in fail for a target this client has reached before.
 * Readers and writers take an flock, so parallel connections (Ansible's
 * forks) pin a new target once.
 */
#include "bzsshd.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>
#include <sodium.h>

#include "buf.h"
#include "log.h"
#include "util.h"

#define KNOWN_TARGETS "known_targets"
#define KNOWN_TARGETS_MAX (1024u * 1024)
#define KEY_B64_LEN 43 /* 32 bytes, base64url without padding */

/* A target name fit for a line of the file: no blanks, no controls. */
static int
name_ok(const char *name)
{
	size_t i, n = strlen(name);

	if (n == 0 || n > 255)
		return 0;
	for (i = 0; i < n; i++)
		if ((unsigned char)name[i] <= ' ' || name[i] == 0x7f)
			return 0;
	return 1;
}

/* Open and lock the file (created 0600); its whole text in *text. */
static int
open_locked(const char *dir, char **path, int *fd, struct bz_buf *text,
    char *err, size_t errlen)
{
	uint8_t chunk[4096];
	ssize_t n;

	*fd = -1;
	bz_buf_init(text);
	if ((*path = bz_config_dir_file(dir, KNOWN_TARGETS)) == NULL) {
		bz_errf(err, errlen, "out of memory");
		return BZ_ERR_ALLOC;
	}
	if ((*fd = open(*path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW,
	    0600)) < 0 || flock(*fd, LOCK_EX) != 0) {
		bz_errf(err, errlen, "%s: %s", *path, strerror(errno));
		return BZ_ERR_INVALID;
	}
	while ((n = read(*fd, chunk, sizeof(chunk))) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 || text->len + (size_t)n > KNOWN_TARGETS_MAX ||
		    bz_buf_put(text, chunk, (size_t)n) != 0) {
			bz_errf(err, errlen, "%s: %s", *path, n < 0 ?
			    strerror(errno) : "too large or out of memory");
			return BZ_ERR_INVALID;
		}
	}
	return BZ_OK;
}

static void
close_locked(char *path, int fd, struct bz_buf *text)
{
	if (fd >= 0)
		close(fd); /* drops the lock */
	bz_buf_free(text);
	free(path);
}

/* The next line of text from *off: name and key split in place (NULL
 * for a line that is not "NAME KEY"); 0 at the end. */
static int
next_line(struct bz_buf *text, size_t *off, char **name, char **key,
    size_t *lineno)
{
	char *line, *end, *sp;
	size_t len;

	if (*off >= text->len)
		return 0;
	line = (char *)text->data + *off;
	len = text->len - *off;
	if ((end = memchr(line, '\n', len)) == NULL)
		end = line + len; /* a last line without newline */
	*off += (size_t)(end - line) + 1;
	(*lineno)++;
	*name = *key = NULL;
	if (end == line + len)
		return 1; /* unterminated: written half, ignore it */
	*end = '\0';
	if ((sp = strchr(line, ' ')) == NULL)
		return 1;
	*sp = '\0';
	*name = line;
	*key = sp + 1;
	return 1;
}

/* The text's last line ends with a newline (or there is none). */
static int
ends_clean(const struct bz_buf *text)
{
	return text->len == 0 || text->data[text->len - 1] == '\n';
}

int
bz_known_target_check(const char *dir, const char *name,
    const uint8_t key[32], char *err, size_t errlen)
{
	struct bz_buf text;
	char *path = NULL, *want = NULL, *n, *k, line[512];
	size_t off = 0, lineno = 0;
	int fd = -1, r;

	if (!name_ok(name)) {
		bz_errf(err, errlen, "target name \"%.64s\" cannot be pinned "
		    "(blank or control characters)", name);
		return BZ_ERR_INVALID;
	}
	if ((r = bz_b64url_encode(key, 32, &want)) != 0) {
		bz_errf(err, errlen, "out of memory");
		return r;
	}
	if ((r = open_locked(dir, &path, &fd, &text, err, errlen)) != 0)
		goto out;
	while (next_line(&text, &off, &n, &k, &lineno)) {
		if (n == NULL || strcmp(n, name) != 0)
			continue;
		if (strlen(k) == KEY_B64_LEN && sodium_memcmp(k, want,
		    KEY_B64_LEN) == 0)
			goto out; /* r == 0: the pinned key */
		bz_errf(err, errlen, "%s answered with agent key %s, not the "
		    "key %.43s pinned for it (%s:%zu): bzproxy, or whoever "
		    "answered, may be standing in for %s. If %s was "
		    "re-enrolled on purpose: bzsshd forget-target %s",
		    name, want, k, path, lineno, name, name, name);
		r = BZ_ERR_INVALID;
		goto out;
	}
	/* first contact: pin it (after a torn last line, on a new line) */
	snprintf(line, sizeof(line), "%s%s %s\n", ends_clean(&text) ? "" :
	    "\n", name, want);
	if (lseek(fd, 0, SEEK_END) < 0 ||
	    write(fd, line, strlen(line)) != (ssize_t)strlen(line)) {
		bz_errf(err, errlen, "%s: %s", path, strerror(errno));
		r = BZ_ERR_INVALID;
		goto out;
	}
	bz_debug("pinned %s's agent key %s in %s", name, want, path);
 out:
	close_locked(path, fd, &text);
	free(want);
	return r;
}

/* Keep every line but NAME's: rewrite the file in place, under the
 * lock. *found: whether NAME had a line. */
static int
forget(const char *dir, const char *name, int *found, char *err,
    size_t errlen)
{
	struct bz_buf text, keep;
	char *path = NULL, *n, *k;
	size_t off = 0, lineno = 0;
	int fd = -1, r;

	*found = 0;
	bz_buf_init(&keep);
	if ((r = open_locked(dir, &path, &fd, &text, err, errlen)) != 0)
		goto out;
	while (next_line(&text, &off, &n, &k, &lineno)) {
		if (n != NULL && strcmp(n, name) == 0) {
			*found = 1;
			continue;
		}
		if (n == NULL)
			continue; /* torn or blank: drop it */
		if (bz_buf_put(&keep, n, strlen(n)) != 0 ||
		    bz_buf_put(&keep, " ", 1) != 0 ||
		    bz_buf_put(&keep, k, strlen(k)) != 0 ||
		    bz_buf_put(&keep, "\n", 1) != 0) {
			bz_errf(err, errlen, "out of memory");
			r = BZ_ERR_ALLOC;
			goto out;
		}
	}
	if (ftruncate(fd, 0) != 0 || lseek(fd, 0, SEEK_SET) != 0 ||
	    (keep.len > 0 && write(fd, keep.data, keep.len) !=
	    (ssize_t)keep.len)) {
		bz_errf(err, errlen, "%s: %s", path, strerror(errno));
		r = BZ_ERR_INVALID;
	}
 out:
	close_locked(path, fd, &text);
	bz_buf_free(&keep);
	return r;
}

int
bz_cmd_forget_target(const struct bzsshd_opts *o, int argc, char **argv)
{
	char err[BZSSHD_ERRLEN];
	int found;

	if (argc != 2 || !name_ok(argv[1])) {
		fprintf(stderr, "usage: bzsshd forget-target TARGET\n");
		return 2;
	}
	if (forget(o->config_dir, argv[1], &found, err, sizeof(err)) != 0) {
		fprintf(stderr, "bzsshd: %s\n", err);
		return 1;
	}
	if (found)
		printf("forgot %s's agent key: the next connection pins the "
		    "key it meets\n", argv[1]);
	else
		printf("no key pinned for %s\n", argv[1]);
	return 0;
}
