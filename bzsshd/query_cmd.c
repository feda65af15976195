/*
 * query_cmd.c: questions a logged-in user asks bzproxy outside of ssh:
 * `bzsshd status` (who, groups, MFA age, expiries) and `bzsshd targets`
 * (what the policies let them reach, online or not). Each is one request
 * on a fresh link, signed with the session's client key over bzproxy's
 * challenge (as a hello is), answered, then closed.
 */
#include "bzsshd.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sodium.h>

#include "log.h"
#include "util.h"

struct query {
	const struct bz_session *s;
	const char *t;              /* "whoami" or "targets" */
};

static json_t *
build_query(const uint8_t challenge[BZ_POP_CHALLENGE_LEN], void *arg)
{
	const struct query *q = arg;
	uint8_t sk[64];
	json_t *req = NULL;

	if (bz_session_client_key(q->s, sk) == 0 &&
	    (req = json_pack("{s:s, s:s, s:s?}", "t", q->t, "session",
	    q->s->session, "id_token", q->s->id_token)) != NULL &&
	    bz_sign_pop(req, sk, q->t, challenge, NULL, 0) != 0) {
		json_decref(req);
		req = NULL;
	}
	sodium_memzero(sk, sizeof(sk));
	return req;
}

int
bz_session_query(const char *dir, struct bz_session *s, const char *t,
    json_t **ans, char *err, size_t errlen)
{
	struct query q = { s, t };
	char ok[32], e2[BZSSHD_ERRLEN];
	const char *got;

	*ans = NULL;
	if (bz_token_refresh_at(s) != 0 && time(NULL) >=
	    bz_token_refresh_at(s) && bz_session_refresh(dir, s, e2,
	    sizeof(e2)) != 0)
		bz_warn("cannot refresh the ID token: %s", e2);
	if (bz_proxy_ask(s->proxy, s->ca_file, build_query, &q, ans, err,
	    errlen) != 0)
		return -1;
	snprintf(ok, sizeof(ok), "%s_ok", t);
	if ((got = bz_json_str(*ans, "t")) != NULL && strcmp(got, ok) == 0)
		return 0;
	bz_errf(err, errlen, "%.300s", bz_json_str(*ans, "reason") != NULL ?
	    bz_json_str(*ans, "reason") : "unexpected answer from bzproxy");
	json_decref(*ans);
	*ans = NULL;
	return -1;
}

/* d seconds as "3d 4h", or "2h 5m" under a day. */
static void
span(long d, char *buf, size_t len)
{
	if (d >= 86400)
		snprintf(buf, len, "%ldd %ldh", d / 86400, d % 86400 / 3600);
	else
		snprintf(buf, len, "%ldh %ldm", d / 3600, d % 3600 / 60);
}

/* "2026-11-30 10:00:00 UTC (in 3h 12m)" or "(0h 5m ago)". */
static void
when(time_t t, time_t now, char *buf, size_t len)
{
	char abs[64] = "?", s[32];
	struct tm tm;

	if (localtime_r(&t, &tm) != NULL)
		strftime(abs, sizeof(abs), "%Y-%m-%d %H:%M:%S %Z", &tm);
	span((long)(t > now ? t - now : now - t), s, sizeof(s));
	snprintf(buf, len, "%s (%s%s%s)", abs, t > now ? "in " : "", s,
	    t > now ? "" : " ago");
}

int
bz_cmd_status(const struct bzsshd_opts *o, int argc, char **argv)
{
	char err[BZSSHD_ERRLEN], buf[128];
	struct bz_session s;
	json_t *ans = NULL, *g;
	time_t now = time(NULL), tok;
	size_t i;
	int rc = 1;

	if (argc > 1) {
		fprintf(stderr, "usage: bzsshd status\n");
		return 2;
	}
	if (bz_session_load(o->config_dir, &s, err, sizeof(err)) != 0) {
		bz_debug("%s", err);
		printf("not logged in: run bzsshd login\n");
		return 1;
	}
	when(s.expires, now, buf, sizeof(buf));
	if (s.expires <= now) {
		printf("not logged in: the session of %s expired %s; run "
		    "bzsshd login\n", s.user, buf);
		goto out;
	}
	printf("user:     %s\nproxy:    %s\nsession:  expires %s\n", s.user,
	    s.proxy, buf);
	if ((tok = bz_token_expiry(&s)) != 0) {
		when(tok, now, buf, sizeof(buf));
		printf("id token: %s %s%s\n", tok > now ? "expires" : "expired",
		    buf, s.refresh_token != NULL ? " (refreshed as needed)" :
		    "");
	}
	if (bz_session_query(o->config_dir, &s, "whoami", &ans, err,
	    sizeof(err)) != 0) {
		printf("bzproxy:  cannot ask it (%s)\n", err);
		goto out;
	}
	printf("groups:  ");
	g = json_object_get(ans, "groups");
	for (i = 0; json_is_array(g) && i < json_array_size(g); i++)
		printf(" %.128s", json_string_value(json_array_get(g, i)) ?
		    json_string_value(json_array_get(g, i)) : "?");
	printf("%s\n", json_array_size(g) == 0 ? " (none)" : "");
	if (json_integer_value(json_object_get(ans, "mfa_at")) > 0) {
		when((time_t)json_integer_value(json_object_get(ans,
		    "mfa_at")), now, buf, sizeof(buf));
		printf("mfa:      TOTP checked %s\n", buf);
	}
	rc = 0;
 out:
	json_decref(ans);
	bz_session_clear(&s);
	return rc;
}

/* One target's labels as "k=v k=v" (sorted by jansson's key order). */
static void
labels_text(const json_t *labels, char *buf, size_t len)
{
	const char *k;
	json_t *v;
	size_t used = 0;

	buf[0] = '\0';
	json_object_foreach((json_t *)labels, k, v) {
		if (!json_is_string(v) || used >= len)
			continue;
		used += (size_t)snprintf(buf + used, len - used, "%s%.64s=%.128s",
		    used ? " " : "", k, json_string_value(v));
	}
}

int
bz_cmd_targets(const struct bzsshd_opts *o, int argc, char **argv)
{
	char err[BZSSHD_ERRLEN], labels[512], users[256], seen[128];
	struct bz_session s;
	json_t *ans = NULL, *list, *t, *u;
	time_t now = time(NULL);
	size_t i, j, used;
	int rc = 1;

	if (argc > 1) {
		fprintf(stderr, "usage: bzsshd targets\n");
		return 2;
	}
	if (bz_session_load(o->config_dir, &s, err, sizeof(err)) != 0) {
		fprintf(stderr, "bzsshd: not logged in: run bzsshd login\n");
		return 1;
	}
	if (bz_session_query(o->config_dir, &s, "targets", &ans, err,
	    sizeof(err)) != 0) {
		fprintf(stderr, "bzsshd: %s\n", err);
		goto out;
	}
	list = json_object_get(ans, "targets");
	if (!json_is_array(list) || json_array_size(list) == 0) {
		printf("no targets: your policies let you reach none\n");
		rc = 0;
		goto out;
	}
	printf("%-20s %-28s %-20s %s\n", "TARGET", "STATUS", "UNIX USERS",
	    "LABELS");
	json_array_foreach(list, i, t) {
		const char *name = bz_json_str(t, "name");
		json_int_t ls = json_integer_value(json_object_get(t,
		    "last_seen"));

		if (name == NULL || strlen(name) > 64)
			continue;
		labels_text(json_object_get(t, "labels"), labels,
		    sizeof(labels));
		users[0] = '\0';
		used = 0;
		json_array_foreach(json_object_get(t, "unix_users"), j, u)
			if (json_is_string(u) && used < sizeof(users))
				used += (size_t)snprintf(users + used,
				    sizeof(users) - used, "%s%.32s",
				    used ? "," : "", json_string_value(u));
		if (json_is_true(json_object_get(t, "online")))
			snprintf(seen, sizeof(seen), "online");
		else if (ls > 0 && ls <= now) {
			char ago[32];

			span((long)(now - ls), ago, sizeof(ago));
			snprintf(seen, sizeof(seen), "offline, seen %s ago", ago);
		} else
			snprintf(seen, sizeof(seen), "offline, never seen");
		printf("%-20s %-28s %-20s %s\n", name, seen, users, labels);
	}
	rc = 0;
 out:
	json_decref(ans);
	bz_session_clear(&s);
	return rc;
}
