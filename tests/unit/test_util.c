/* test_util.c: base64url, durations, bounded integers, JSON parsing,
 * secret files, key files. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "util.h"

static char tmpdir[256];

static int
setup(void **state)
{
	const char *t = getenv("TMPDIR");

	snprintf(tmpdir, sizeof(tmpdir), "%s/bz-util-XXXXXX", t ? t : "/tmp");
	return mkdtemp(tmpdir) == NULL ? -1 : 0;
}

static int
teardown(void **state)
{
	char cmd[300];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

static void
test_b64url(void **state)
{
	static const uint8_t bin[] = { 0xfb, 0xff, 0xfe, 0x00, 0x41 };
	uint8_t *out;
	size_t n;
	char *s;

	assert_int_equal(bz_b64url_encode(bin, sizeof(bin), &s), 0);
	assert_string_equal(s, "-__-AEE"); /* '-' and '_', no padding */
	assert_int_equal(bz_b64url_decode(s, strlen(s), 64, &out, &n), 0);
	assert_int_equal(n, sizeof(bin));
	assert_memory_equal(out, bin, n);
	free(out);
	free(s);
	assert_int_equal(bz_b64url_encode(bin, 0, &s), 0);
	assert_string_equal(s, "");
	free(s);
	/* RFC 4648 test vector. */
	assert_int_equal(bz_b64url_encode((const uint8_t *)"foobar", 6, &s), 0);
	assert_string_equal(s, "Zm9vYmFy");
	free(s);
}

static void
test_b64url_rejects(void **state)
{
	uint8_t *out = (uint8_t *)"unchanged";
	size_t n = 99;

	/* Padding, standard alphabet, whitespace, junk. */
	assert_int_equal(bz_b64url_decode("Zm8=", 4, 64, &out, &n),
	    BZ_ERR_FORMAT);
	assert_null(out);
	assert_int_equal(n, 0);
	assert_int_equal(bz_b64url_decode("+/8", 3, 64, &out, &n),
	    BZ_ERR_FORMAT);
	assert_int_equal(bz_b64url_decode("Zm 8", 4, 64, &out, &n),
	    BZ_ERR_FORMAT);
	assert_int_equal(bz_b64url_decode("Zm8!", 4, 64, &out, &n),
	    BZ_ERR_FORMAT);
	/* A lone trailing character cannot be base64. */
	assert_int_equal(bz_b64url_decode("Zm9vY", 5, 64, &out, &n),
	    BZ_ERR_FORMAT);
	/* Length bound. */
	assert_int_equal(bz_b64url_decode("Zm9vYmFy", 8, 5, &out, &n),
	    BZ_ERR_TOO_BIG);
	assert_int_equal(bz_b64url_decode("Zm9vYmFy", 8, 6, &out, &n), 0);
	assert_int_equal(n, 6);
	assert_memory_equal(out, "foobar", 6);
	free(out);
	/* Only len bytes are read, not up to the NUL. */
	assert_int_equal(bz_b64url_decode("Zm9v!!!", 4, 8, &out, &n), 0);
	assert_int_equal(n, 3);
	free(out);
}

static void
test_random(void **state)
{
	char *a, *b;

	assert_int_equal(bz_random_b64url(32, &a), 0);
	assert_int_equal(bz_random_b64url(32, &b), 0);
	assert_int_equal(strlen(a), 43);
	assert_string_not_equal(a, b);
	free(a);
	free(b);
}

/* The bounded decimal parser used for options, config values and ports. */
static void
test_int_range(void **state)
{
	int v = 7;

	(void)state;
	assert_int_equal(bz_parse_int_range("12", 1, 100, &v), 0);
	assert_int_equal(v, 12);
	assert_int_equal(bz_parse_int_range("1", 1, 65535, &v), 0);
	assert_int_equal(v, 1);
	assert_int_equal(bz_parse_int_range("65535", 1, 65535, &v), 0);
	assert_int_equal(v, 65535);
	assert_int_equal(bz_parse_int_range("0", 0, 10, &v), 0);
	assert_int_equal(v, 0);
	assert_int_equal(bz_parse_int_range("-3", -5, 5, &v), 0);
	assert_int_equal(v, -3);
	/* strtol's leading blanks and sign, as the copies it replaced */
	assert_int_equal(bz_parse_int_range(" 42", 1, 100, &v), 0);
	assert_int_equal(v, 42);
	assert_int_equal(bz_parse_int_range("+42", 1, 100, &v), 0);
	assert_int_equal(v, 42);
	v = 7;
	assert_int_equal(bz_parse_int_range("", 1, 100, &v), -1);
	assert_int_equal(bz_parse_int_range(" ", 1, 100, &v), -1);
	assert_int_equal(bz_parse_int_range("+", 1, 100, &v), -1);
	assert_int_equal(bz_parse_int_range("x", 0, 100, &v), -1);
	assert_int_equal(bz_parse_int_range("12x", 1, 100, &v), -1);
	assert_int_equal(bz_parse_int_range("12 ", 1, 100, &v), -1);
	assert_int_equal(bz_parse_int_range("1.5", 1, 100, &v), -1);
	assert_int_equal(bz_parse_int_range("0", 1, 65535, &v), -1);
	assert_int_equal(bz_parse_int_range("65536", 1, 65535, &v), -1);
	assert_int_equal(bz_parse_int_range("-1", 0, 10, &v), -1);
	/* beyond int, and beyond long (strtol's ERANGE) */
	assert_int_equal(bz_parse_int_range("2147483648", 1, 2147483647, &v),
	    -1);
	assert_int_equal(bz_parse_int_range("99999999999999999999999", 1,
	    2147483647, &v), -1);
	assert_int_equal(bz_parse_int_range("-99999999999999999999999",
	    -2147483647 - 1, 0, &v), -1);
	assert_int_equal(bz_parse_int_range(NULL, 1, 100, &v), -1);
	assert_int_equal(v, 7); /* failures leave *out alone */
	assert_int_equal(bz_parse_int_range("2147483647", 1, 2147483647, &v),
	    0);
	assert_int_equal(v, 2147483647);
}

static void
test_duration(void **state)
{
	assert_int_equal(bz_parse_duration("30s"), 30);
	assert_int_equal(bz_parse_duration("15m"), 900);
	assert_int_equal(bz_parse_duration("12h"), 43200);
	assert_int_equal(bz_parse_duration("2d"), 172800);
	assert_int_equal(bz_parse_duration("0s"), -1);
	assert_int_equal(bz_parse_duration("-5m"), -1);
	assert_int_equal(bz_parse_duration("+5m"), -1);
	assert_int_equal(bz_parse_duration("5"), -1);
	assert_int_equal(bz_parse_duration("5x"), -1);
	assert_int_equal(bz_parse_duration("5mm"), -1);
	assert_int_equal(bz_parse_duration("m"), -1);
	assert_int_equal(bz_parse_duration(""), -1);
	assert_int_equal(bz_parse_duration(" 5m"), -1);
	assert_int_equal(bz_parse_duration(NULL), -1);
	assert_int_equal(bz_parse_duration("99999999999999999999s"), -1);
	assert_int_equal(bz_parse_duration("9223372036854775807s"),
	    9223372036854775807L);
	assert_int_equal(bz_parse_duration("9223372036854775807d"), -1);
	assert_int_equal(bz_parse_duration("106751991167300d"),
	    106751991167300L * 86400);
	assert_int_equal(bz_parse_duration("106751991167301d"), -1);
}

static void
test_json(void **state)
{
	char err[256];
	json_t *o;
	char *s, *big;

#define P(str) bz_json_parse_object((const uint8_t *)(str), strlen(str), \
    err, sizeof(err))
	o = P("{\"b\":1,\"a\":\"x\"}");
	assert_non_null(o);
	assert_string_equal(bz_json_str(o, "a"), "x");
	assert_null(bz_json_str(o, "b")); /* not a string */
	assert_null(bz_json_str(o, "c"));
	s = bz_json_dump(o);
	assert_string_equal(s, "{\"a\":\"x\",\"b\":1}");
	free(s);
	json_decref(o);

	assert_null(P("{\"a\":1,\"a\":2}"));
	assert_non_null(strstr(err, "duplicate"));
	assert_null(P("[1,2]"));
	assert_string_equal(err, "JSON document is not an object");
	assert_null(P("\"str\""));
	assert_non_null(strstr(err, "invalid JSON"));
	assert_null(P("{\"a\":1} x"));
	assert_non_null(strstr(err, "invalid JSON"));
	assert_null(P("{\"a\":1}{}"));
	assert_non_null(strstr(err, "invalid JSON"));
	assert_null(P("{\"a\":"));
	assert_non_null(strstr(err, "invalid JSON"));
	assert_null(P(""));
	assert_string_equal(err, "empty JSON document");
	/* An embedded NUL is not accepted as the end of the document. */
	assert_null(bz_json_parse_object((const uint8_t *)"{}\0{}", 5, err,
	    sizeof(err)));

	big = malloc(BZ_JSON_MAX + 2);
	assert_non_null(big);
	memset(big, ' ', BZ_JSON_MAX + 1);
	big[0] = '{';
	big[BZ_JSON_MAX - 1] = '}';
	assert_non_null(o = bz_json_parse_object((uint8_t *)big, BZ_JSON_MAX,
	    err, sizeof(err)));
	json_decref(o);
	big[BZ_JSON_MAX - 1] = ' ';
	big[BZ_JSON_MAX] = '}';
	assert_null(bz_json_parse_object((uint8_t *)big, BZ_JSON_MAX + 1, err,
	    sizeof(err)));
	assert_non_null(strstr(err, "too large"));
	free(big);
#undef P
}

static int
count_entries(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;

	assert_non_null(d);
	while ((e = readdir(d)) != NULL)
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
			n++;
	closedir(d);
	return n;
}

static void
test_secret_file(void **state)
{
	char path[600], dir[700], err[256];
	struct stat st;
	uint8_t *data;
	size_t len;

	snprintf(dir, sizeof(dir), "%s/a/b", tmpdir);
	snprintf(path, sizeof(path), "%.500s/secret", dir);
	/* Parents are created 0700. */
	assert_int_equal(bz_write_secret_file(path, "one", 3, err,
	    sizeof(err)), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	assert_int_equal(stat(dir, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(st.st_mode & 077, 0);
	assert_int_equal(bz_check_secret_mode(path, err, sizeof(err)), 0);
	/* Replacing keeps 0600 even if the old file was loosened, and
	 * leaves no temporary file behind. */
	assert_int_equal(chmod(path, 0644), 0);
	assert_int_equal(bz_write_secret_file(path, "second", 6, err,
	    sizeof(err)), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	assert_int_equal(count_entries(dir), 1);
	assert_int_equal(bz_read_file(path, 100, &data, &len, err,
	    sizeof(err)), 0);
	assert_int_equal(len, 6);
	assert_string_equal((char *)data, "second");
	free(data);
	assert_int_equal(bz_read_file(path, 5, &data, &len, err, sizeof(err)),
	    BZ_ERR_TOO_BIG);
	assert_null(data);
	assert_non_null(strstr(err, "larger than 5 bytes"));
	assert_int_equal(bz_read_file(path, 6, &data, &len, err, sizeof(err)),
	    0);
	free(data);
	/* Unwritable directory: an error, and the old content stays. */
	snprintf(dir, sizeof(dir), "%.600s/nodir/x", path);
	assert_int_not_equal(bz_write_secret_file(dir, "x", 1, err,
	    sizeof(err)), 0);
	assert_non_null(strstr(err, "not a directory"));
}

static void
test_check_mode(void **state)
{
	char path[512], err[256];
	FILE *f;

	snprintf(path, sizeof(path), "%s/loose", tmpdir);
	assert_non_null(f = fopen(path, "w"));
	fclose(f);
	assert_int_equal(chmod(path, 0644), 0);
	assert_int_equal(bz_check_secret_mode(path, err, sizeof(err)),
	    BZ_ERR_INVALID);
	assert_non_null(strstr(err, "mode 0644 is too open"));
	assert_int_equal(chmod(path, 0640), 0);
	assert_int_equal(bz_check_secret_mode(path, err, sizeof(err)),
	    BZ_ERR_INVALID);
	assert_int_equal(chmod(path, 0600), 0);
	assert_int_equal(bz_check_secret_mode(path, err, sizeof(err)), 0);
	assert_int_equal(chmod(path, 0400), 0);
	assert_int_equal(bz_check_secret_mode(path, err, sizeof(err)), 0);
	snprintf(path, sizeof(path), "%s/missing", tmpdir);
	assert_int_equal(bz_check_secret_mode(path, err, sizeof(err)),
	    BZ_ERR_INVALID);
	assert_non_null(strstr(err, "No such file"));
}

static void
test_mkdir_p(void **state)
{
	char path[512], err[256];
	struct stat st;

	snprintf(path, sizeof(path), "%s/x/y/z/", tmpdir);
	assert_int_equal(bz_mkdir_p(path, 0700, err, sizeof(err)), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(bz_mkdir_p(path, 0700, err, sizeof(err)), 0);
	assert_int_equal(bz_mkdir_p("", 0700, err, sizeof(err)),
	    BZ_ERR_INVALID);
}

static void
test_ed25519(void **state)
{
	uint8_t pk1[32], sk1[64], pk2[32], sk2[64];
	char path[512], err[256];
	struct stat st;
	FILE *f;

	snprintf(path, sizeof(path), "%s/keys/id_ed25519", tmpdir);
	assert_int_equal(bz_ed25519_load_or_create(path, pk1, sk1, err,
	    sizeof(err)), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	assert_int_equal(bz_ed25519_load_or_create(path, pk2, sk2, err,
	    sizeof(err)), 0);
	assert_memory_equal(pk1, pk2, 32);
	assert_memory_equal(sk1, sk2, 64);
	assert_memory_equal(sk1 + 32, pk1, 32);
	/* A key file others can read is refused, not used. */
	assert_int_equal(chmod(path, 0644), 0);
	assert_int_equal(bz_ed25519_load_or_create(path, pk2, sk2, err,
	    sizeof(err)), BZ_ERR_INVALID);
	assert_non_null(strstr(err, "too open"));
	/* A damaged key file is refused, not replaced. */
	assert_non_null(f = fopen(path, "w"));
	fputs("not-a-key\n", f);
	fclose(f);
	assert_int_equal(chmod(path, 0600), 0);
	assert_int_equal(bz_ed25519_load_or_create(path, pk2, sk2, err,
	    sizeof(err)), BZ_ERR_FORMAT);
	assert_non_null(strstr(err, "not a base64url Ed25519 secret key"));
}

static void
test_secret_equal(void **state)
{
	assert_int_equal(bz_secret_equal("abc", "abc"), 1);
	assert_int_equal(bz_secret_equal("", ""), 1);
	assert_int_equal(bz_secret_equal("abc", "abd"), 0);
	assert_int_equal(bz_secret_equal("abc", "abcd"), 0);
	assert_int_equal(bz_secret_equal("abcd", "abc"), 0);
	assert_int_equal(bz_secret_equal("abc", ""), 0);
	assert_int_equal(bz_secret_equal(NULL, "abc"), 0);
	assert_int_equal(bz_secret_equal("abc", NULL), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_b64url),
		cmocka_unit_test(test_b64url_rejects),
		cmocka_unit_test(test_random),
		cmocka_unit_test(test_duration),
		cmocka_unit_test(test_int_range),
		cmocka_unit_test(test_json),
		cmocka_unit_test(test_secret_file),
		cmocka_unit_test(test_check_mode),
		cmocka_unit_test(test_mkdir_p),
		cmocka_unit_test(test_ed25519),
		cmocka_unit_test(test_secret_equal),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
