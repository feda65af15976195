/*
 * test_jwks_cache.c: the IdP key cache shared by bzproxy and bzagent
 * (common/jwks_cache.c). Its schedule is driven with made-up times: the
 * first fetch, backoff while the IdP is down, one refresh per interval on
 * request, and a request made during that interval remembered and served
 * when it ends. Then the real thread runs against a fake IdP (an injected
 * fetch function: no network) with short intervals.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <time.h>
#include <cmocka.h>
#include <sodium.h>

#include "backoff.h"
#include "buf.h"
#include "jwks_cache.h"
#include "jwks_cache_int.h"
#include "jwt.h"

#define MIN 60000   /* the refresh interval in the schedule tests */
#define BASE 1000
#define CAP 8000
#define T0 ((int64_t)1000000)

/* ---- the schedule, on a made-up clock ---- */

static void
test_sched_first_fetch(void **state)
{
	struct bz_jwks_sched s;

	bz_jwks_sched_init(&s, MIN, BASE, CAP, T0);
	assert_int_equal(bz_jwks_sched_next(&s, T0), 0); /* at once */
	bz_jwks_sched_started(&s, T0);
	assert_int_equal(bz_jwks_sched_next(&s, T0), -1); /* running */
	assert_int_equal(bz_jwks_sched_finished(&s, 1, T0 + 50), 0);
	/* keys: nothing more until someone asks */
	assert_int_equal(bz_jwks_sched_next(&s, T0 + 50), -1);
	assert_int_equal(bz_jwks_sched_next(&s, T0 + 10 * MIN), -1);

	/* defaults */
	bz_jwks_sched_init(&s, 0, 0, 0, T0);
	assert_int_equal(s.refresh_min_ms, BZ_JWKS_REFRESH_MIN_MS);
	assert_int_equal(s.retry_base_ms, BZ_JWKS_RETRY_BASE_MS);
	assert_int_equal(s.retry_cap_ms, BZ_JWKS_RETRY_CAP_MS);
}

static void
test_sched_backoff_while_down(void **state)
{
	struct bz_jwks_sched s;
	int64_t now = T0;
	uint32_t d;
	unsigned i;

	bz_jwks_sched_init(&s, MIN, BASE, CAP, now);
	for (i = 0; i < 10; i++) {
		assert_int_equal(bz_jwks_sched_next(&s, now), 0);
		bz_jwks_sched_started(&s, now);
		d = bz_jwks_sched_finished(&s, 0, now);
		assert_true(d <= bz_backoff_ceiling(i, BASE, CAP));
		assert_int_equal(bz_jwks_sched_next(&s, now), d);
		if (d > 0)
			assert_int_equal(bz_jwks_sched_next(&s, now + d - 1),
			    1);
		now += d;
	}
	/* the IdP is back */
	bz_jwks_sched_started(&s, now);
	assert_int_equal(bz_jwks_sched_finished(&s, 1, now), 0);
	assert_int_equal(s.attempt, 0);
	assert_int_equal(bz_jwks_sched_next(&s, now), -1);
}

static void
test_sched_request_while_down(void **state)
{
	struct bz_jwks_sched s;
	int64_t now = T0;
	uint32_t d;

	bz_jwks_sched_init(&s, MIN, BASE, CAP, now);
	bz_jwks_sched_started(&s, now);
	/* a request while the first fetch runs: wait for that one */
	assert_int_equal(bz_jwks_sched_request(&s, now), 0);
	assert_int_equal(s.want, 0);
	bz_jwks_sched_finished(&s, 0, now);
	for (d = 0; d == 0; ) {  /* a backoff that is not 0 */
		bz_jwks_sched_started(&s, now);
		d = bz_jwks_sched_finished(&s, 0, now);
	}
	/* no keys and a request: the first one is served at once... */
	assert_int_equal(bz_jwks_sched_request(&s, now), 0);
	bz_jwks_sched_started(&s, now);
	d = bz_jwks_sched_finished(&s, 0, now);
	/* ...a second one within the interval waits for the backoff (which
	 * is shorter here) */
	assert_int_equal(bz_jwks_sched_request(&s, now + 1), d > 0 ? d - 1 :
	    0);
}

static void
test_sched_refresh_rate_limited(void **state)
{
	struct bz_jwks_sched s;
	int64_t now = T0;

	bz_jwks_sched_init(&s, MIN, BASE, CAP, now);
	bz_jwks_sched_started(&s, now);
	bz_jwks_sched_finished(&s, 1, now + 20);

	/* the initial fetch does not count: the first request goes at once */
	now += 1000;
	assert_int_equal(bz_jwks_sched_request(&s, now), 0);
	assert_int_equal(bz_jwks_sched_next(&s, now), 0);
	bz_jwks_sched_started(&s, now);
	assert_int_equal(bz_jwks_sched_request(&s, now + 5), 0); /* running */
	bz_jwks_sched_finished(&s, 1, now + 20);
	assert_int_equal(bz_jwks_sched_next(&s, now + 20), -1);

	/* 10 s later: rate limited, and remembered */
	assert_int_equal(bz_jwks_sched_request(&s, now + 10000), MIN - 10000);
	assert_int_equal(bz_jwks_sched_request(&s, now + 20000), MIN - 20000);
	assert_int_equal(bz_jwks_sched_next(&s, now + 30000), MIN - 30000);
	assert_int_equal(bz_jwks_sched_next(&s, now + MIN - 1), 1);
	/* served once the interval is over, with nobody asking again */
	assert_int_equal(bz_jwks_sched_next(&s, now + MIN), 0);
	bz_jwks_sched_started(&s, now + MIN + 3);
	assert_int_equal(s.want, 0);
	assert_int_equal(s.last_demand_ms, now + MIN + 3);
	bz_jwks_sched_finished(&s, 1, now + MIN + 40);
	/* the two requests made one fetch */
	assert_int_equal(bz_jwks_sched_next(&s, now + 3 * MIN), -1);

	/* the next interval starts at that fetch */
	now += MIN + 3;
	assert_int_equal(bz_jwks_sched_request(&s, now + MIN - 100), 100);
}

static void
test_sched_refresh_fails(void **state)
{
	struct bz_jwks_sched s;
	int64_t now = T0;

	bz_jwks_sched_init(&s, MIN, BASE, CAP, now);
	bz_jwks_sched_started(&s, now);
	bz_jwks_sched_finished(&s, 1, now);
	now += 5000;
	assert_int_equal(bz_jwks_sched_request(&s, now), 0);
	bz_jwks_sched_started(&s, now);
	/* a failed refresh keeps the keys and schedules nothing by itself */
	assert_int_equal(bz_jwks_sched_finished(&s, 0, now + 10), 0);
	assert_int_equal(s.have_keys, 1);
	assert_int_equal(bz_jwks_sched_next(&s, now + 10), -1);
	/* the next request is limited by the failed one */
	assert_int_equal(bz_jwks_sched_request(&s, now + 1000), MIN - 1000);
}

/* ---- the thread, against a fake IdP ---- */

#define KEY1 "{\"kty\":\"EC\",\"crv\":\"P-256\",\"kid\":\"k1\"," \
	"\"x\":\"2Q4UcHLlNjV4RSxQpn5zFp7oJDoF08rLpXudcB8Uhjc\"," \
	"\"y\":\"zVFk1DCuCdjqTKCOTzSvxmdP7bV194tAO1sEGo3WG38\"}"
#define KEY2 "{\"kty\":\"EC\",\"crv\":\"P-256\",\"kid\":\"k2\"," \
	"\"x\":\"n2ySxENzZTcKlJl5aNxR1I5kvL8a9EJIYl8TszrCFqM\"," \
	"\"y\":\"bpVtttSyN6MuxkpYIfSmCx1Md38jPVBOsQTPsA6WQQ0\"}"

static struct {
	pthread_mutex_t mu;
	int keys;          /* 0, 1 or 2 keys published */
	int down;          /* fetches fail */
	int slow_ms;       /* each fetch takes this long */
	int calls;
	int64_t start[32]; /* when each fetch started */
	int notified;
} idp = { .mu = PTHREAD_MUTEX_INITIALIZER };

static void
idp_reset(int keys)
{
	pthread_mutex_lock(&idp.mu);
	idp.keys = keys;
	idp.down = 0;
	idp.slow_ms = 0;
	idp.calls = 0;
	idp.notified = 0;
	pthread_mutex_unlock(&idp.mu);
}

static int
idp_get(int *field)
{
	int v;

	pthread_mutex_lock(&idp.mu);
	v = *field;
	pthread_mutex_unlock(&idp.mu);
	return v;
}

static void
idp_set(int *field, int v)
{
	pthread_mutex_lock(&idp.mu);
	*field = v;
	pthread_mutex_unlock(&idp.mu);
}

static void
sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

static int
fake_fetch(const char *issuer, const char *ca_file, struct bz_jwks **out,
    char *err, size_t errlen)
{
	const char *doc;
	int keys, down, slow;

	/* no cmocka asserts here: this runs on the cache's thread */
	if (strcmp(issuer, "https://idp.test") != 0)
		return BZ_ERR_INVALID;
	pthread_mutex_lock(&idp.mu);
	if (idp.calls < 32)
		idp.start[idp.calls] = bz_now_ms();
	idp.calls++;
	keys = idp.keys;
	down = idp.down;
	slow = idp.slow_ms;
	pthread_mutex_unlock(&idp.mu);
	if (slow > 0)
		sleep_ms(slow);
	*out = NULL;
	if (down) {
		snprintf(err, errlen, "IdP down (test)");
		return BZ_ERR_INVALID;
	}
	doc = keys == 0 ? "{\"keys\":[]}" : keys == 1 ?
	    "{\"keys\":[" KEY1 "]}" : "{\"keys\":[" KEY1 "," KEY2 "]}";
	return bz_jwks_parse(doc, strlen(doc), out, err, errlen);
}

static void
count_notify(void *arg)
{
	if (arg == &idp)
		idp_set(&idp.notified, idp_get(&idp.notified) + 1);
}

static struct bz_jwks_cache *
start(uint32_t min_ms, uint32_t base_ms, uint32_t cap_ms)
{
	struct bz_jwks_cache_cfg cfg;
	struct bz_jwks_cache *c;

	memset(&cfg, 0, sizeof(cfg));
	cfg.issuer = "https://idp.test";
	cfg.refresh_min_ms = min_ms;
	cfg.retry_base_ms = base_ms;
	cfg.retry_cap_ms = cap_ms;
	cfg.fetch = fake_fetch;
	assert_int_equal(bz_jwks_cache_start(&cfg, &c), 0);
	bz_jwks_cache_set_notify(c, count_notify, &idp);
	return c;
}

/* Wait (up to 5 s) until n fetches have ended. */
static void
wait_fetches(struct bz_jwks_cache *c, uint64_t n)
{
	int64_t end = bz_now_ms() + 5000;

	while (bz_jwks_cache_fetches(c) < n && bz_now_ms() < end)
		sleep_ms(2);
	assert_true(bz_jwks_cache_fetches(c) >= n);
}

static size_t
key_count(struct bz_jwks_cache *c)
{
	const struct bz_jwks *j = bz_jwks_cache_lock(c);
	size_t n = j != NULL ? bz_jwks_count(j) : (size_t)-1;

	bz_jwks_cache_unlock(c);
	return n;
}

static void
test_cache_first_keys_after_outage(void **state)
{
	struct bz_jwks_cache *c;
	char err[128];
	uint64_t f0;
	int n0;

	idp_reset(1);
	idp_set(&idp.down, 1);
	c = start(60000, 10, 20);
	/* no keys while the IdP is down; the last error is reported */
	assert_int_not_equal(bz_jwks_cache_wait(c, 100, err, sizeof(err)), 0);
	assert_non_null(strstr(err, "IdP down (test)"));
	assert_int_equal(key_count(c), (size_t)-1);
	assert_true(idp_get(&idp.calls) >= 3); /* it kept trying */
	idp_set(&idp.down, 0);
	assert_int_equal(bz_jwks_cache_wait(c, 5000, err, sizeof(err)), 0);
	assert_int_equal(key_count(c), 1);
	/* then quiet: no fetch without a request */
	wait_fetches(c, (uint64_t)idp_get(&idp.calls));
	idp_set(&idp.calls, 0);
	sleep_ms(100);
	assert_int_equal(idp_get(&idp.calls), 0);
	/* one notify per ended fetch (the first ones may have ended before
	 * start() set it) */
	f0 = bz_jwks_cache_fetches(c);
	n0 = idp_get(&idp.notified);
	assert_int_equal(bz_jwks_cache_refresh(c, NULL), 0);
	wait_fetches(c, f0 + 1);
	assert_int_equal(idp_get(&idp.notified), n0 + 1);
	bz_jwks_cache_free(c);
}

static void
test_cache_rotation_and_pending_refresh(void **state)
{
	struct bz_jwks_cache *c;
	uint64_t seen;
	int64_t ms;

	idp_reset(0);
	c = start(300, 10, 20);
	wait_fetches(c, 1);
	assert_int_equal(key_count(c), 0);

	/* the IdP rotates; a token names the new key: fetched at once */
	idp_set(&idp.keys, 1);
	assert_int_equal(bz_jwks_cache_refresh(c, &seen), 0);
	assert_int_equal(seen, 1);
	wait_fetches(c, 2);
	assert_int_equal(key_count(c), 1);

	/* rotates again at once: rate limited, but remembered */
	idp_set(&idp.keys, 2);
	ms = bz_jwks_cache_refresh(c, &seen);
	assert_true(ms > 0 && ms <= 300);
	assert_int_equal(seen, 2);
	assert_true(bz_jwks_cache_refresh(c, NULL) > 0);
	assert_int_equal(key_count(c), 1);
	/* nobody asks again: it is fetched when the interval ends */
	wait_fetches(c, 3);
	assert_int_equal(key_count(c), 2);
	pthread_mutex_lock(&idp.mu);
	/* (the limit runs from the start of fetch 2, a little before its
	 * fake_fetch noted the time) */
	assert_true(idp.start[2] - idp.start[1] >= 290);
	pthread_mutex_unlock(&idp.mu);
	/* two requests, one fetch */
	sleep_ms(400);
	assert_int_equal(idp_get(&idp.calls), 3);
	assert_int_equal(bz_jwks_cache_fetches(c), 3);
	assert_true(idp_get(&idp.notified) >= 2);

	/* a failed refresh keeps the keys */
	idp_set(&idp.down, 1);
	assert_true(bz_jwks_cache_refresh(c, &seen) >= 0);
	wait_fetches(c, seen + 1);
	assert_int_equal(key_count(c), 2);
	bz_jwks_cache_free(c);
}

static void
test_cache_notify_cleared(void **state)
{
	struct bz_jwks_cache *c;
	int n0;

	idp_reset(1);
	c = start(10, 10, 20);
	wait_fetches(c, 1);
	assert_int_equal(bz_jwks_cache_refresh(c, NULL), 0);
	wait_fetches(c, 2);
	n0 = idp_get(&idp.notified);
	assert_true(n0 >= 1 && n0 <= 2); /* the first: before start() set it */
	bz_jwks_cache_set_notify(c, NULL, NULL);
	sleep_ms(20);
	assert_int_equal(bz_jwks_cache_refresh(c, NULL), 0);
	wait_fetches(c, 3);
	assert_int_equal(idp_get(&idp.notified), n0);
	bz_jwks_cache_free(c);
}

static void
test_cache_free_while_fetching(void **state)
{
	struct bz_jwks_cache *c;
	int64_t t;

	idp_reset(1);
	idp_set(&idp.slow_ms, 300);
	c = start(10, 10, 20);
	while (idp_get(&idp.calls) == 0)
		sleep_ms(2);
	/* does not wait for the fetch; the thread frees the cache */
	t = bz_now_ms();
	bz_jwks_cache_free(c);
	assert_true(bz_now_ms() - t < 200);
	sleep_ms(500); /* let it finish before the process ends */
	assert_int_equal(idp_get(&idp.notified), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sched_first_fetch),
		cmocka_unit_test(test_sched_backoff_while_down),
		cmocka_unit_test(test_sched_request_while_down),
		cmocka_unit_test(test_sched_refresh_rate_limited),
		cmocka_unit_test(test_sched_refresh_fails),
		cmocka_unit_test(test_cache_first_keys_after_outage),
		cmocka_unit_test(test_cache_rotation_and_pending_refresh),
		cmocka_unit_test(test_cache_notify_cleared),
		cmocka_unit_test(test_cache_free_while_fetching),
	};

	if (sodium_init() < 0)  /* the backoff's jitter */
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
