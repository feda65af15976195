/* test_store.c: bzproxy's SQLite state: users and their TOTP state, agent
 * enrolment (token burnt once, key pinned), sessions found by hash,
 * session id blocks never handed out twice. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>
#include <sodium.h>
#include <sqlite3.h>

#include "bzproxy.h"

static char tmpdir[256], path[512];

static int
setup(void **state)
{
	const char *t = getenv("TMPDIR");

	snprintf(tmpdir, sizeof(tmpdir), "%s/bz-store-XXXXXX", t ? t : "/tmp");
	if (mkdtemp(tmpdir) == NULL)
		return -1;
	snprintf(path, sizeof(path), "%s/state.db", tmpdir);
	return 0;
}

static int
teardown(void **state)
{
	char cmd[300];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

static struct bzp_store *
open_db(void)
{
	struct bzp_store *s = NULL;
	char err[256];

	assert_int_equal(bzp_store_open(path, &s, err, sizeof(err)), 0);
	assert_non_null(s);
	return s;
}

static void
test_file_is_private(void **state)
{
	struct bzp_store *s = open_db();
	struct stat st;

	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	bzp_store_close(s);
}

static void
test_refuses_readable_file(void **state)
{
	struct bzp_store *s = NULL;
	char err[256];

	bzp_store_close(open_db());
	assert_int_equal(chmod(path, 0644), 0);
	assert_int_not_equal(bzp_store_open(path, &s, err, sizeof(err)), 0);
	assert_null(s);
}

static void
test_user_and_totp_state(void **state)
{
	struct bzp_store *s = open_db();
	struct bz_totp_state st = { 123456789, 1700000000, 3 };
	struct bzp_user u;
	uint8_t seed[20];

	memset(seed, 0x5a, sizeof(seed));
	assert_int_equal(bzp_store_user_get(s, "bob@example.com", &u),
	    BZP_NOT_FOUND);
	assert_int_equal(bzp_store_user_put(s, "bob@example.com", seed,
	    sizeof(seed), 1000), 0);
	assert_int_equal(bzp_store_user_get(s, "bob@example.com", &u), 0);
	assert_int_equal(u.seed_len, sizeof(seed));
	assert_memory_equal(u.seed, seed, sizeof(seed));
	assert_int_equal(u.totp.last_step, 0);
	assert_int_equal(u.totp.fail_count, 0);
	assert_int_equal(bzp_store_user_set_totp(s, "bob@example.com", &st), 0);
	bzp_store_close(s);

	/* survives a reopen */
	s = open_db();
	assert_int_equal(bzp_store_user_get(s, "bob@example.com", &u), 0);
	assert_int_equal(u.totp.last_step, st.last_step);
	assert_int_equal(u.totp.fail_start, st.fail_start);
	assert_int_equal(u.totp.fail_count, st.fail_count);
	/* re-enrolment: new seed, fresh state */
	seed[0] = 1;
	assert_int_equal(bzp_store_user_put(s, "bob@example.com", seed,
	    sizeof(seed), 2000), 0);
	assert_int_equal(bzp_store_user_get(s, "bob@example.com", &u), 0);
	assert_int_equal(u.seed[0], 1);
	assert_int_equal(u.totp.last_step, 0);
	bzp_store_close(s);
}

static void
test_agent_token_burnt_once_and_key_pinned(void **state)
{
	struct bzp_store *s = open_db();
	struct bzp_agent_rec a;
	uint8_t hash[32], other[32], key[32], key2[32];

	memset(hash, 1, sizeof(hash));
	memset(other, 2, sizeof(other));
	memset(key, 3, sizeof(key));
	memset(key2, 4, sizeof(key2));
	assert_int_equal(bzp_store_agent_get(s, "web1", &a), BZP_NOT_FOUND);
	assert_int_equal(bzp_store_agent_put(s, "web1", "{\"env\":\"prod\"}",
	    hash, 1000), 0);
	assert_int_equal(bzp_store_agent_get(s, "web1", &a), 0);
	assert_string_equal(a.labels, "{\"env\":\"prod\"}");
	assert_true(a.has_token);
	assert_memory_equal(a.token_hash, hash, 32);
	assert_false(a.pinned);
	bzp_agent_rec_clear(&a);

	/* a wrong token pins nothing */
	assert_int_equal(bzp_store_agent_pin(s, "web1", other, key, 1001),
	    BZP_NOT_FOUND);
	assert_int_equal(bzp_store_agent_pin(s, "web1", hash, key, 1002), 0);
	assert_int_equal(bzp_store_agent_get(s, "web1", &a), 0);
	assert_false(a.has_token);
	assert_true(a.pinned);
	assert_memory_equal(a.key, key, 32);
	assert_int_equal(a.enrolled_at, 1002);
	bzp_agent_rec_clear(&a);

	/* the same token cannot pin again (burnt), not even another key */
	assert_int_equal(bzp_store_agent_pin(s, "web1", hash, key2, 1003),
	    BZP_NOT_FOUND);
	assert_int_equal(bzp_store_agent_get(s, "web1", &a), 0);
	assert_memory_equal(a.key, key, 32);
	bzp_agent_rec_clear(&a);

	/* agent add again: new token, key unpinned */
	assert_int_equal(bzp_store_agent_put(s, "web1", "{}", other, 1004), 0);
	assert_int_equal(bzp_store_agent_get(s, "web1", &a), 0);
	assert_true(a.has_token);
	assert_false(a.pinned);
	assert_string_equal(a.labels, "{}");
	bzp_agent_rec_clear(&a);
	assert_int_equal(bzp_store_agent_pin(s, "web1", other, key2, 1005), 0);
	bzp_store_close(s);
}

static void
test_session_by_hash(void **state)
{
	struct bzp_store *s = open_db();
	struct bzp_session_rec r, got;
	const char *token = "session-token";
	uint8_t h[32], h2[32];

	crypto_hash_sha256(h, (const uint8_t *)token, strlen(token));
	memset(h2, 9, sizeof(h2));
	memset(&r, 0, sizeof(r));
	r.user = "alice@example.com";
	r.groups = "[\"ops\"]";
	r.id_token = "a.b.c";
	r.client_key = "KEY";
	r.expires = 5000;
	r.mfa_at = 1000;
	assert_int_equal(bzp_store_session_put(s, h, &r), 0);
	assert_int_equal(bzp_store_session_get(s, h2, &got), BZP_NOT_FOUND);
	assert_int_equal(bzp_store_session_get(s, h, &got), 0);
	assert_string_equal(got.user, "alice@example.com");
	assert_string_equal(got.groups, "[\"ops\"]");
	assert_string_equal(got.id_token, "a.b.c");
	assert_string_equal(got.client_key, "KEY");
	assert_int_equal(got.expires, 5000);
	assert_int_equal(got.mfa_at, 1000);
	bzp_session_rec_clear(&got);

	assert_int_equal(bzp_store_session_set_mfa(s, h, 4000), 0);
	assert_int_equal(bzp_store_session_get(s, h, &got), 0);
	assert_int_equal(got.mfa_at, 4000);
	bzp_session_rec_clear(&got);

	/* purge drops only what expired */
	assert_int_equal(bzp_store_session_purge(s, 4999), 0);
	assert_int_equal(bzp_store_session_get(s, h, &got), 0);
	bzp_session_rec_clear(&got);
	assert_int_equal(bzp_store_session_purge(s, 5001), 0);
	assert_int_equal(bzp_store_session_get(s, h, &got), BZP_NOT_FOUND);
	bzp_store_close(s);
}

/* Blocks follow each other, also after the database is closed and opened
 * again (a restart), start at 1, and never hold 0. */
static void
test_sid_blocks_unique_across_restarts(void **state)
{
	struct bzp_store *s = open_db();
	uint32_t a, b, c;

	assert_int_equal(bzp_store_sid_block(s, 1024, &a), 0);
	assert_int_equal(a, 1);
	assert_int_equal(bzp_store_sid_block(s, 10, &b), 0);
	assert_int_equal(b, 1025);
	bzp_store_close(s);
	s = open_db();
	assert_int_equal(bzp_store_sid_block(s, 1024, &c), 0);
	assert_int_equal(c, 1035);
	assert_int_not_equal(bzp_store_sid_block(s, 0, &c), 0);
	assert_int_not_equal(bzp_store_sid_block(s, BZP_SID_BLOCK_MAX + 1,
	    &c), 0);
	bzp_store_close(s);
}

/* Set the stored next id, as 4 billion sessions would. */
static void
set_next_sid(sqlite3_int64 v)
{
	sqlite3 *db;
	char sql[128];

	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	snprintf(sql, sizeof(sql), "UPDATE counters SET value = %lld WHERE "
	    "name = 'sid'", (long long)v);
	assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_changes(db), 1);
	sqlite3_close(db);
}

/* A block that would pass 2^32-1 starts over at 1: ids stay 32-bit and
 * are never 0. */
static void
test_sid_blocks_wrap_past_zero(void **state)
{
	struct bzp_store *s = open_db();
	uint32_t first;

	assert_int_equal(bzp_store_sid_block(s, 1, &first), 0);
	bzp_store_close(s);
	/* a block that ends on 2^32-1 exactly is handed out */
	set_next_sid((sqlite3_int64)UINT32_MAX - 1023);
	s = open_db();
	assert_int_equal(bzp_store_sid_block(s, 1024, &first), 0);
	assert_int_equal(first, UINT32_MAX - 1023);
	/* the next would hold 0: it starts over at 1 */
	assert_int_equal(bzp_store_sid_block(s, 1024, &first), 0);
	assert_int_equal(first, 1);
	assert_int_equal(bzp_store_sid_block(s, 1, &first), 0);
	assert_int_equal(first, 1025);
	bzp_store_close(s);
	set_next_sid((sqlite3_int64)UINT32_MAX - 10);
	s = open_db();
	assert_int_equal(bzp_store_sid_block(s, 1024, &first), 0);
	assert_int_equal(first, 1);
	bzp_store_close(s);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_file_is_private, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_refuses_readable_file,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_user_and_totp_state,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_agent_token_burnt_once_and_key_pinned, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(
		    test_sid_blocks_unique_across_restarts, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sid_blocks_wrap_past_zero,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_session_by_hash, setup,
		    teardown),
	};

	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
