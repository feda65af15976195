/*
 * ssh_config_file.c: our block in a user's ssh config, between marker
 * lines, so that `bzsshd ssh-config --install` can be run again (a new
 * domain, a moved binary) and only ever touches its own lines.
 *
 * The block goes first in a new file or in front of everything else:
 * ssh takes the first value it finds for an option, so a `Host *` block
 * further down must not override ours. The file is replaced whole (a new
 * file renamed over it) with its mode kept, 0600 when new.
 */
#include "bzsshd.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "util.h"

#define CONFIG_MAX (4u * 1024 * 1024) /* a larger ~/.ssh/config: refused */

/* Where text's line starting with prefix begins, searching from from;
 * NULL when none. */
static const char *
find_line(const char *text, const char *from, const char *prefix)
{
	const char *p = from;
	size_t n = strlen(prefix);

	while (p != NULL && *p != '\0') {
		if ((p == text || p[-1] == '\n') && strncmp(p, prefix, n) == 0)
			return p;
		p = strchr(p, '\n');
		if (p != NULL)
			p++;
	}
	return NULL;
}

int
bz_ssh_config_merge(const char *old, const char *begin, const char *end,
    const char *block, char **out)
{
	const char *b = old != NULL ? find_line(old, old, begin) : NULL;
	const char *e = b != NULL ? find_line(old, b, end) : NULL;
	const char *after;
	char *s = NULL;
	int n;

	*out = NULL;
	if (b != NULL && e == NULL)
		return BZ_ERR_FORMAT; /* a begin marker without its end */
	if (b == NULL) {
		/* ours first, then the rest untouched */
		n = asprintf(&s, "%s\n%s%s\n%s%s", begin, block, end,
		    old != NULL && old[0] != '\0' ? "\n" : "",
		    old != NULL ? old : "");
	} else {
		after = strchr(e, '\n');
		after = after != NULL ? after + 1 : e + strlen(e);
		n = asprintf(&s, "%.*s%s\n%s%s\n%s", (int)(b - old), old,
		    begin, block, end, after);
	}
	if (n < 0)
		return BZ_ERR_ALLOC;
	*out = s;
	return BZ_OK;
}

int
bz_ssh_config_install(const char *path, const char *begin, const char *end,
    const char *block, char *err, size_t errlen)
{
	char real[PATH_MAX], *merged = NULL, *old = NULL;
	uint8_t *data = NULL;
	size_t len = 0;
	struct stat st;
	mode_t mode = 0600;
	int r = BZ_ERR_INVALID;

	/* a symlinked config (dotfiles repositories) is edited where it is */
	if (realpath(path, real) == NULL) {
		if (errno != ENOENT) {
			bz_errf(err, errlen, "%s: %s", path, strerror(errno));
			return BZ_ERR_INVALID;
		}
		snprintf(real, sizeof(real), "%s", path);
	} else if (stat(real, &st) == 0)
		mode = st.st_mode & 07777;
	if (access(real, F_OK) == 0) {
		if (bz_read_file(real, CONFIG_MAX, &data, &len, err,
		    errlen) != 0)
			return BZ_ERR_INVALID;
		if (memchr(data, '\0', len) != NULL) {
			bz_errf(err, errlen, "%s: not a text file", real);
			goto out;
		}
		if ((old = strndup((const char *)data, len)) == NULL)
			goto oom;
	}
	if ((r = bz_ssh_config_merge(old, begin, end, block, &merged)) != 0) {
		if (r == BZ_ERR_FORMAT)
			bz_errf(err, errlen, "%s: has \"%s\" but not \"%s\": "
			    "fix it by hand", real, begin, end);
		else
			bz_errf(err, errlen, "out of memory");
		goto out;
	}
	if (old != NULL && strcmp(old, merged) == 0) {
		r = BZ_OK; /* already there, as it would be written */
		goto out;
	}
	r = bz_write_file_atomic(real, merged, strlen(merged), mode, 1, err,
	    errlen);
	goto out;
 oom:
	bz_errf(err, errlen, "out of memory");
	r = BZ_ERR_ALLOC;
 out:
	free(merged);
	free(old);
	free(data);
	return r;
}
