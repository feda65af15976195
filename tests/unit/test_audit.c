/* test_audit.c: the hash-chained audit log: chain, reopen, tampering. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>
#include <sodium.h>

#include "audit.h"
#include "audit_checkpoint.h"
#include "util.h"

static char tmpdir[256], path[512];

static int
setup(void **state)
{
	const char *t = getenv("TMPDIR");

	snprintf(tmpdir, sizeof(tmpdir), "%s/bz-audit-XXXXXX", t ? t : "/tmp");
	if (mkdtemp(tmpdir) == NULL)
		return -1;
	snprintf(path, sizeof(path), "%s/audit.jsonl", tmpdir);
	return 0;
}

static int
teardown(void **state)
{
	char cmd[300];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

/* Read the whole log into a malloc'ed string. */
static char *
slurp(void)
{
	uint8_t *d = NULL;
	size_t n;
	char err[256];
	int r;

	r = bz_read_file(path, 1 << 20, &d, &n, err, sizeof(err));
	assert_int_equal(r, 0);
	assert_non_null(d);
	return (char *)d;
}

static void
spit(const char *text)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	assert_int_equal(chmod(path, 0600), 0);
}

static void
write_event(struct bz_audit *a, const char *event, const char *user)
{
	json_t *f = json_pack("{s:s,s:s}", "user", user, "decision", "allow");

	assert_int_equal(bz_audit_write(a, event, f, NULL, 0), 0);
	json_decref(f);
}

static void
sha_hex(const char *p, size_t n, char out[65])
{
	uint8_t h[32];

	crypto_hash_sha256(h, (const uint8_t *)p, n);
	sodium_bin2hex(out, 65, h, 32);
}

/* End the line at s and return the next one (the test fails without one). */
static char *
cut_line(char *s)
{
	char *nl = strchr(s, '\n');

	assert_non_null(nl);
	*nl = '\0';
	return nl + 1;
}

static void
test_chain_and_reopen(void **state)
{
	struct bz_audit *a;
	struct stat st;
	char err[256], hex[65], *text, *l1, *l2, *l3, *nl;
	json_t *o;
	json_error_t jerr;

	unlink(path);
	assert_int_equal(bz_audit_open(path, &a, err, sizeof(err)), 0);
	write_event(a, "login", "alice@example.com");
	write_event(a, "mfa", "alice@example.com");
	bz_audit_close(a);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	/* Reopening continues the chain. */
	assert_int_equal(bz_audit_open(path, &a, err, sizeof(err)), 0);
	write_event(a, "session_open", "alice@example.com");
	bz_audit_close(a);
	assert_int_equal(bz_audit_verify(path, NULL, NULL, err, sizeof(err)), 0);

	text = slurp();
	l1 = text;
	l2 = cut_line(l1);
	l3 = cut_line(l2);
	nl = cut_line(l3);
	assert_string_equal(nl, "");
	/* Members in order: time, event, caller's, seq, prev last. */
	assert_int_equal(strncmp(l1, "{\"time\":\"", 9), 0);
	assert_non_null(strstr(l1, "\",\"event\":\"login\",\"user\":"
	    "\"alice@example.com\",\"decision\":\"allow\",\"seq\":1,"
	    "\"prev\":\""
	    "0000000000000000000000000000000000000000000000000000000000000000"
	    "\"}"));
	assert_non_null(strstr(l3, "\"seq\":3,"));
	/* RFC 3339 UTC with milliseconds. */
	assert_non_null(o = json_loads(l1, 0, &jerr));
	assert_int_equal(strlen(json_string_value(json_object_get(o, "time"))),
	    24);
	assert_int_equal(json_string_value(json_object_get(o, "time"))[23],
	    'Z');
	assert_int_equal(json_string_value(json_object_get(o, "time"))[19],
	    '.');
	json_decref(o);
	sha_hex(l1, strlen(l1), hex);
	assert_non_null(o = json_loads(l2, 0, &jerr));
	assert_string_equal(json_string_value(json_object_get(o, "prev")), hex);
	json_decref(o);
	sha_hex(l2, strlen(l2), hex);
	assert_non_null(o = json_loads(l3, 0, &jerr));
	assert_string_equal(json_string_value(json_object_get(o, "prev")), hex);
	assert_string_equal(json_string_value(json_object_get(o, "event")),
	    "session_open");
	json_decref(o);
	free(text);
}

static void
test_reserved_fields(void **state)
{
	struct bz_audit *a;
	char err[256];
	json_t *f;

	unlink(path);
	assert_int_equal(bz_audit_open(path, &a, err, sizeof(err)), 0);
	f = json_pack("{s:s}", "prev", "x");
	assert_int_equal(bz_audit_write(a, "login", f, NULL, 0), BZ_ERR_INVALID);
	json_decref(f);
	f = json_pack("{s:s}", "time", "x");
	assert_int_equal(bz_audit_write(a, "login", f, NULL, 0), BZ_ERR_INVALID);
	json_decref(f);
	f = json_pack("[s]", "x");
	assert_int_equal(bz_audit_write(a, "login", f, NULL, 0), BZ_ERR_INVALID);
	json_decref(f);
	/* No fields is fine; nothing was written before. */
	assert_int_equal(bz_audit_write(a, "start", NULL, NULL, 0), 0);
	bz_audit_close(a);
	assert_int_equal(bz_audit_verify(path, NULL, NULL, err, sizeof(err)), 0);
}

/* Write n events to a fresh log and return its text. */
static char *
fresh_log(int n)
{
	struct bz_audit *a;
	char err[256], user[32];
	int i;

	unlink(path);
	assert_int_equal(bz_audit_open(path, &a, err, sizeof(err)), 0);
	for (i = 0; i < n; i++) {
		snprintf(user, sizeof(user), "user%d@example.com", i);
		write_event(a, "login", user);
	}
	bz_audit_close(a);
	return slurp();
}

static void
test_tamper_edit(void **state)
{
	struct bz_audit *a;
	char err[256], *text, *p;

	text = fresh_log(4);
	/* Change one byte of line 2: named as line 2 (line 3's prev no
	 * longer matches it). */
	assert_non_null(p = strstr(text, "user1@"));
	p[4] = '9';
	spit(text);
	assert_int_equal(bz_audit_verify(path, NULL, NULL, err, sizeof(err)),
	    BZ_ERR_FORMAT);
	assert_non_null(strstr(err, "audit.jsonl:2: changed"));
	free(text);

	/* Editing the last line is caught when the log is reopened. */
	text = fresh_log(3);
	assert_non_null(p = strstr(text, "user2@"));
	p[4] = '9';
	spit(text);
	assert_int_equal(bz_audit_verify(path, NULL, NULL, err, sizeof(err)), 0);
	assert_int_equal(bz_audit_open(path, &a, err, sizeof(err)), 0);
	bz_audit_close(a);
	free(text);
	/* ... but not its link to the line before. Edit prev itself: */
	text = fresh_log(3);
	assert_non_null(p = strrchr(text, ':'));
	p[2] = p[2] == 'a' ? 'b' : 'a';
	spit(text);
	assert_int_equal(bz_audit_verify(path, NULL, NULL, err, sizeof(err)),
	    BZ_ERR_FORMAT);
	assert_non_null(strstr(err, ":2: changed"));
	assert_int_equal(bz_audit_open(path, &a, err, sizeof(err)),
	    BZ_ERR_FORMAT);
	assert_non_null(strstr(err, "last line: \"prev\" does not match"));
	free(text);
}

static void
test_tamper_remove_reorder(void **state)
{
	char err[256], *text, *l2, *l3;

	/* Drop line 2. */
	text = fresh_log(3);
	l2 = strchr(text, '\n') + 1;
	l3 = strchr(l2, '\n') + 1;
	memmove(l2, l3, strlen(l3) + 1);
	spit(text);
	assert_int_equal(bz_audit_verify(path, NULL, NULL, err, sizeof(err)),
	    BZ_ERR_FORMAT);
	assert_non_null(strstr(err, "audit.jsonl:2: the line says it is line "
	    "3: lines before it were removed"));
	free(text);
	/* Drop line 1: the new first line's prev is not zeros. */
	text = fresh_log(2);
	spit(strchr(text, '\n') + 1);
	assert_int_equal(bz_audit_verify(path, NULL, NULL, err, sizeof(err)),
	    BZ_ERR_FORMAT);
	assert_non_null(strstr(err, "audit.jsonl:1: the line says it is line "
	    "2"));
	free(text);
}

static void
test_bad_lines(void **state)
{
	struct bz_audit *a;
	char err[256], *text, *buf;
	size_t n;

	text = fresh_log(2);
	n = strlen(text);
	buf = malloc(n + 64);
	/* A line that is not JSON. */
	snprintf(buf, n + 64, "%sgarbage\n", text);
	spit(buf);
	assert_int_equal(bz_audit_verify(path, NULL, NULL, err, sizeof(err)),
	    BZ_ERR_FORMAT);
	assert_non_null(strstr(err, "audit.jsonl:3: not a JSON object"));
	assert_int_equal(bz_audit_open(path, &a, err, sizeof(err)),
	    BZ_ERR_FORMAT);
	/* A torn last line (no newline): verify names it; opening moves it
	 * aside and says so in the log */
	memcpy(buf, text, n);
	buf[n - 1] = '\0';
	spit(buf);
	assert_int_equal(bz_audit_verify(path, NULL, NULL, err, sizeof(err)),
	    BZ_ERR_FORMAT);
	assert_non_null(strstr(err, "audit.jsonl:2: incomplete last line"));
	assert_int_equal(bz_audit_open(path, &a, err, sizeof(err)), 0);
	assert_non_null(bz_audit_torn(a));
	{
		uint8_t *d = NULL;
		size_t dn = 0;
		char *moved = strdup(bz_audit_torn(a)), *now;
		const char *l2 = strchr(text, '\n') + 1;

		bz_audit_close(a);
		assert_int_equal(bz_read_file(moved, 1 << 20, &d, &dn, err,
		    sizeof(err)), 0);
		/* the torn bytes, and nothing else */
		assert_int_equal(dn, strlen(l2) - 1);
		assert_memory_equal(d, l2, dn);
		free(d);
		now = slurp();
		assert_non_null(strstr(now, "\"event\":\"audit_torn_tail\","
		    "\"moved_to\":"));
		assert_non_null(strstr(now, "\"seq\":2,"));
		assert_int_equal(bz_audit_verify(path, NULL, NULL, err,
		    sizeof(err)), 0);
		unlink(moved);
		free(moved);
		free(now);
	}
	/* An empty line. */
	snprintf(buf, n + 64, "%s\n", text);
	spit(buf);
	assert_int_equal(bz_audit_verify(path, NULL, NULL, err, sizeof(err)),
	    BZ_ERR_FORMAT);
	assert_non_null(strstr(err, "audit.jsonl:3: not a JSON object"));
	assert_int_equal(bz_audit_open(path, &a, err, sizeof(err)),
	    BZ_ERR_FORMAT);
	assert_non_null(strstr(err, "last line is empty"));
	free(buf);
	free(text);
	/* Missing file. */
	unlink(path);
	assert_int_equal(bz_audit_verify(path, NULL, NULL, err, sizeof(err)),
	    BZ_ERR_INVALID);
}

/* A disk that fills: the write fails with its cause, leaves no part of a
 * line behind, and the log goes on once there is room. RLIMIT_FSIZE
 * stands in for a full disk (short writes, then EFBIG). */
static void
test_full_disk(void **state)
{
	struct bz_audit *a;
	struct rlimit old, lim;
	struct stat st;
	char err[256] = "", big[600];
	json_t *f;

	(void)state;
	signal(SIGXFSZ, SIG_IGN);
	free(fresh_log(2));
	assert_int_equal(bz_audit_open(path, &a, err, sizeof(err)), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
	lim = old;
	lim.rlim_cur = (rlim_t)st.st_size + 100; /* part of a line fits */
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	f = json_pack("{s:s}", "note", big);
	assert_int_not_equal(bz_audit_write(a, "login", f, err, sizeof(err)),
	    0);
	assert_non_null(strstr(err, "audit.jsonl: "));
	assert_non_null(strstr(err, "File too large") != NULL ? err :
	    strstr(err, "No space"));
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
	/* nothing of it stayed */
	struct stat st2;
	assert_int_equal(stat(path, &st2), 0);
	assert_int_equal(st2.st_size, st.st_size);
	/* room again: the next line continues the chain */
	assert_int_equal(bz_audit_write(a, "login", f, err, sizeof(err)), 0);
	json_decref(f);
	bz_audit_close(a);
	assert_int_equal(bz_audit_verify(path, NULL, NULL, err, sizeof(err)),
	    0);
	signal(SIGXFSZ, SIG_DFL);
}

/* Checkpoints: a cut tail, an edited line before the checkpoint, a
 * checkpoint file written by someone else. */
static void
test_checkpoints(void **state)
{
	struct bz_audit *a;
	struct bz_audit_mark mark;
	uint8_t pk[32], sk[64], opk[32], osk[64];
	char err[256], when[64], cps[600], *line, *text, *p;
	uint64_t lines;
	FILE *fp;

	(void)state;
	crypto_sign_keypair(pk, sk);
	crypto_sign_keypair(opk, osk);
	snprintf(cps, sizeof(cps), "%s.checkpoints", path);
	unlink(cps);
	free(fresh_log(3));
	assert_int_equal(bz_audit_checkpoint_latest(cps, pk, &mark, when,
	    sizeof(when), err, sizeof(err)), BZ_ERR_INVALID); /* no file */
	assert_int_equal(bz_audit_open(path, &a, err, sizeof(err)), 0);
	assert_non_null(line = bz_audit_checkpoint_make(a, sk));
	assert_int_equal(bz_audit_checkpoint_append(cps, line, err,
	    sizeof(err)), 0);
	free(line);
	write_event(a, "login", "after@example.com");
	bz_audit_close(a);
	assert_int_equal(bz_audit_checkpoint_latest(cps, pk, &mark, when,
	    sizeof(when), err, sizeof(err)), 0);
	assert_int_equal(mark.seq, 3);
	assert_int_equal(bz_audit_verify(path, &mark, &lines, err,
	    sizeof(err)), 0);
	assert_int_equal(lines, 4);
	/* the last two lines cut: the chain alone sees nothing */
	text = slurp();
	p = strchr(strchr(text, '\n') + 1, '\n') + 1;
	*p = '\0';
	spit(text);
	assert_int_equal(bz_audit_verify(path, NULL, NULL, err, sizeof(err)),
	    0);
	assert_int_equal(bz_audit_verify(path, &mark, NULL, err,
	    sizeof(err)), BZ_ERR_FORMAT);
	assert_non_null(strstr(err, "cut: it has 2 lines, but a checkpoint "
	    "vouches for 3"));
	free(text);
	/* a log rewritten up to the checkpoint, chain and all */
	unlink(path);
	free(fresh_log(4));
	assert_int_equal(bz_audit_verify(path, &mark, NULL, err,
	    sizeof(err)), BZ_ERR_FORMAT);
	assert_non_null(strstr(err, ":3: not the line the checkpoint vouches "
	    "for"));
	/* a checkpoint signed by another key, appended to the file */
	assert_int_equal(bz_audit_open(path, &a, err, sizeof(err)), 0);
	assert_non_null(line = bz_audit_checkpoint_make(a, osk));
	bz_audit_close(a);
	assert_int_equal(bz_audit_checkpoint_append(cps, line, err,
	    sizeof(err)), 0);
	free(line);
	assert_int_equal(bz_audit_checkpoint_latest(cps, pk, &mark, when,
	    sizeof(when), err, sizeof(err)), BZ_ERR_FORMAT);
	assert_non_null(strstr(err, ":2: not a checkpoint signed by this "
	    "bzproxy's key"));
	/* a torn last checkpoint line is not held against the file */
	unlink(cps);
	assert_int_equal(bz_audit_open(path, &a, err, sizeof(err)), 0);
	assert_non_null(line = bz_audit_checkpoint_make(a, sk));
	bz_audit_close(a);
	assert_int_equal(bz_audit_checkpoint_append(cps, line, err,
	    sizeof(err)), 0);
	assert_non_null(fp = fopen(cps, "a"));
	fputs("{\"seq\":9,\"he", fp);
	fclose(fp);
	free(line);
	assert_int_equal(bz_audit_checkpoint_latest(cps, pk, &mark, when,
	    sizeof(when), err, sizeof(err)), 0);
	assert_int_equal(mark.seq, 4);
	unlink(cps);
}

static void
test_two_writers(void **state)
{
	struct bz_audit *a, *b;
	char err[256];

	/* Two handles (as two processes would have) keep one chain. */
	unlink(path);
	assert_int_equal(bz_audit_open(path, &a, err, sizeof(err)), 0);
	assert_int_equal(bz_audit_open(path, &b, err, sizeof(err)), 0);
	write_event(a, "login", "a");
	write_event(b, "login", "b");
	write_event(a, "login", "a");
	bz_audit_close(a);
	bz_audit_close(b);
	assert_int_equal(bz_audit_verify(path, NULL, NULL, err, sizeof(err)), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_chain_and_reopen),
		cmocka_unit_test(test_reserved_fields),
		cmocka_unit_test(test_tamper_edit),
		cmocka_unit_test(test_full_disk),
		cmocka_unit_test(test_checkpoints),
		cmocka_unit_test(test_tamper_remove_reorder),
		cmocka_unit_test(test_bad_lines),
		cmocka_unit_test(test_two_writers),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
