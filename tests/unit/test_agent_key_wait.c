/*
 * test_agent_key_wait.c: bzagent's channel requests held while the IdP's
 * keys are fetched (agent/key_wait.c): released when a fetch ends or the
 * deadline passes, later frames kept behind their request in order,
 * dropped with their channel or session, and bounded.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "agent.h"

#define NOW ((int64_t)500000)

static struct bz_link_msg *
msg(const char *text)
{
	size_t n = strlen(text);
	struct bz_link_msg *m = malloc(sizeof(*m) + n);

	assert_non_null(m);
	m->next = NULL;
	m->len = n;
	memcpy(m->data, text, n);
	return m;
}

/* The list's texts joined with "|", for comparisons. */
static const char *
texts(const struct bz_link_msg *m)
{
	static char buf[256];
	size_t used = 0;

	buf[0] = '\0';
	for (; m != NULL; m = m->next)
		used += (size_t)snprintf(buf + used, sizeof(buf) - used,
		    "%s%.*s", used ? "|" : "", (int)m->len,
		    (const char *)m->data);
	return buf;
}

static void
test_release_on_fetch_or_deadline(void **state)
{
	struct key_wait *w = key_wait_new();
	struct bz_link_msg *m;

	assert_non_null(w);
	assert_int_equal(key_wait_timeout(w, NOW), -1);
	assert_null(key_wait_take_due(w, 0, NOW));
	assert_int_equal(key_wait_add(w, msg("req-a"), 1, 1, 7, NOW + 5000), 0);
	assert_int_equal(key_wait_add(w, msg("req-b"), 1, 2, 7, NOW + 3000), 0);
	assert_int_equal(key_wait_count(w), 2);
	assert_true(key_wait_has(w, 1, 1));
	assert_true(key_wait_has(w, 1, 2));
	assert_false(key_wait_has(w, 2, 1));
	assert_int_equal(key_wait_timeout(w, NOW), 3000);
	assert_int_equal(key_wait_timeout(w, NOW + 4000), 0);

	/* nothing due: same fetch count, deadlines ahead */
	assert_null(key_wait_take_due(w, 7, NOW + 2999));
	/* the deadline of b */
	m = key_wait_take_due(w, 7, NOW + 3000);
	assert_string_equal(texts(m), "req-b");
	key_wait_free_msgs(m);
	assert_null(key_wait_take_due(w, 7, NOW + 3000));
	assert_false(key_wait_has(w, 1, 2));
	/* a fetch ended: a goes at once */
	m = key_wait_take_due(w, 8, NOW + 1);
	assert_string_equal(texts(m), "req-a");
	key_wait_free_msgs(m);
	assert_int_equal(key_wait_count(w), 0);

	/* the oldest first when several are due */
	assert_int_equal(key_wait_add(w, msg("one"), 1, 1, 7, NOW), 0);
	assert_int_equal(key_wait_add(w, msg("two"), 1, 2, 7, NOW), 0);
	assert_int_equal(key_wait_add(w, msg("three"), 1, 3, 7, NOW), 0);
	m = key_wait_take_due(w, 9, NOW);
	assert_string_equal(texts(m), "one");
	key_wait_free_msgs(m);
	m = key_wait_take_due(w, 9, NOW);
	assert_string_equal(texts(m), "two");
	key_wait_free_msgs(m);
	key_wait_free(w); /* frees "three" */
}

static void
test_queue_in_order(void **state)
{
	struct key_wait *w = key_wait_new();
	struct bz_link_msg *m;

	assert_int_equal(key_wait_add(w, msg("req"), 3, 1, 0, NOW + 100), 0);
	assert_int_equal(key_wait_queue(w, 3, 1, msg("data1")), 0);
	assert_int_equal(key_wait_queue(w, 3, 1, msg("winch")), 0);
	assert_int_equal(key_wait_queue(w, 3, 1, msg("eof")), 0);
	/* not for a channel that is not held: the caller keeps it */
	m = msg("other");
	assert_int_equal(key_wait_queue(w, 3, 2, m), BZ_ERR_INVALID);
	free(m);
	m = key_wait_take_due(w, 1, NOW);
	assert_string_equal(texts(m), "req|data1|winch|eof");
	key_wait_free_msgs(m);
	key_wait_free(w);
}

static void
test_drop(void **state)
{
	struct key_wait *w = key_wait_new();

	assert_int_equal(key_wait_add(w, msg("a"), 1, 1, 0, NOW), 0);
	assert_int_equal(key_wait_add(w, msg("b"), 1, 2, 0, NOW), 0);
	assert_int_equal(key_wait_add(w, msg("c"), 2, 1, 0, NOW), 0);
	assert_int_equal(key_wait_queue(w, 1, 2, msg("b-data")), 0);
	key_wait_drop(w, 1, 1);
	assert_false(key_wait_has(w, 1, 1));
	key_wait_drop(w, 9, 9); /* not held: nothing */
	assert_int_equal(key_wait_count(w), 2);
	key_wait_drop_session(w, 1);
	assert_int_equal(key_wait_count(w), 1);
	assert_true(key_wait_has(w, 2, 1));
	key_wait_drop_all(w);
	assert_int_equal(key_wait_count(w), 0);
	assert_int_equal(key_wait_timeout(w, NOW), -1);
	key_wait_free(w);
	key_wait_free(NULL);
}

static void
test_bounds(void **state)
{
	struct key_wait *w = key_wait_new();
	struct bz_link_msg *m, *big;
	unsigned i;

	for (i = 0; i < KEY_WAIT_MAX; i++)
		assert_int_equal(key_wait_add(w, msg("r"), 1, i + 1, 0,
		    NOW), 0);
	m = msg("one too many");
	assert_int_equal(key_wait_add(w, m, 1, 999, 0, NOW), BZ_ERR_TOO_BIG);
	free(m);
	key_wait_drop_all(w);

	/* bytes: a queue that would pass KEY_WAIT_BYTES_MAX is refused and
	 * the message stays the caller's */
	assert_int_equal(key_wait_add(w, msg("req"), 1, 1, 0, NOW), 0);
	big = malloc(sizeof(*big) + KEY_WAIT_BYTES_MAX);
	assert_non_null(big);
	big->next = NULL;
	big->len = KEY_WAIT_BYTES_MAX;
	memset(big->data, 'x', big->len);
	assert_int_equal(key_wait_queue(w, 1, 1, big), BZ_ERR_TOO_BIG);
	big->len = KEY_WAIT_BYTES_MAX - 3; /* "req" is held */
	assert_int_equal(key_wait_queue(w, 1, 1, big), 0);
	m = msg("1");
	assert_int_equal(key_wait_queue(w, 1, 1, m), BZ_ERR_TOO_BIG);
	free(m);
	/* released: the bytes are free again */
	key_wait_free_msgs(key_wait_take_due(w, 1, NOW));
	assert_int_equal(key_wait_add(w, msg("again"), 1, 1, 0, NOW), 0);
	key_wait_free(w);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_release_on_fetch_or_deadline),
		cmocka_unit_test(test_queue_in_order),
		cmocka_unit_test(test_drop),
		cmocka_unit_test(test_bounds),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
