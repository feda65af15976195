/*
 * store.c: bzproxy's state in SQLite: users (TOTP seed and acceptance
 * state), agents (labels, enrolment token hash, pinned key) and sessions
 * (by the SHA-256 of their token), and the session ids handed out (in
 * blocks: docs/audit.md). Only prepared statements with bound
 * values; the file is created 0600 before SQLite opens it (its -wal and
 * -shm files inherit that mode).
 */
#include "bzproxy.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <sodium.h>
#include <sqlite3.h>

#include "buf.h"
#include "util.h"

#define BUSY_TIMEOUT_MS 5000

struct bzp_store {
	sqlite3 *db;
};

static const char schema[] =
	"CREATE TABLE IF NOT EXISTS users ("
	" email TEXT PRIMARY KEY,"
	" seed BLOB NOT NULL,"
	" last_step INTEGER NOT NULL DEFAULT 0,"
	" fail_start INTEGER NOT NULL DEFAULT 0,"
	" fail_count INTEGER NOT NULL DEFAULT 0,"
	" created_at INTEGER NOT NULL);"
	"CREATE TABLE IF NOT EXISTS agents ("
	" name TEXT PRIMARY KEY,"
	" labels TEXT NOT NULL,"
	" token_hash BLOB,"          /* NULL once burnt */
	" pinned_key BLOB,"          /* NULL until enrolled */
	" enrolled_at INTEGER,"
	" created_at INTEGER NOT NULL,"
	" last_seen INTEGER);"       /* link up or down, for `targets` */
	"CREATE TABLE IF NOT EXISTS sessions ("
	" token_hash BLOB PRIMARY KEY,"
	" user TEXT NOT NULL,"
	" groups TEXT NOT NULL,"
	" id_token TEXT NOT NULL,"
	" client_key TEXT NOT NULL,"
	" expires INTEGER NOT NULL,"
	" mfa_at INTEGER NOT NULL);"
	"CREATE INDEX IF NOT EXISTS sessions_expires ON sessions(expires);"
	"CREATE TABLE IF NOT EXISTS counters ("
	" name TEXT PRIMARY KEY,"
	" value INTEGER NOT NULL);";

/* State files from before last_seen get the column (NULL: never seen). */
static int
add_last_seen(sqlite3 *db, char **emsg)
{
	if (sqlite3_exec(db, "SELECT last_seen FROM agents LIMIT 0;", NULL,
	    NULL, NULL) == SQLITE_OK)
		return SQLITE_OK;
	return sqlite3_exec(db, "ALTER TABLE agents ADD COLUMN last_seen "
	    "INTEGER;", NULL, NULL, emsg);
}

const char *
bzp_store_errmsg(struct bzp_store *s)
{
	return s != NULL && s->db != NULL ? sqlite3_errmsg(s->db) : "no db";
}

/* Create the file 0600 if missing; refuse one others may read. */
static int
prepare_file(const char *path, char *err, size_t errlen)
{
	int fd;

	if ((fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW,
	    0600)) < 0) {
		bz_errf(err, errlen, "cannot open %s: %s", path,
		    strerror(errno));
		return BZ_ERR_INVALID;
	}
	close(fd);
	return bz_check_secret_mode(path, err, errlen);
}

int
bzp_store_open(const char *path, struct bzp_store **out, char *err,
    size_t errlen)
{
	struct bzp_store *s;
	char *emsg = NULL;
	int r;

	*out = NULL;
	if ((r = prepare_file(path, err, errlen)) != 0)
		return r;
	if ((s = calloc(1, sizeof(*s))) == NULL)
		return BZ_ERR_ALLOC;
	if (sqlite3_open_v2(path, &s->db, SQLITE_OPEN_READWRITE |
	    SQLITE_OPEN_FULLMUTEX, NULL) != SQLITE_OK) {
		bz_errf(err, errlen, "cannot open %s: %s", path,
		    bzp_store_errmsg(s));
		goto fail;
	}
	sqlite3_busy_timeout(s->db, BUSY_TIMEOUT_MS);
	/* WAL: the CLI can enrol while serve reads. Schema text is constant. */
	if (sqlite3_exec(s->db, "PRAGMA journal_mode=WAL;"
	    "PRAGMA synchronous=NORMAL;PRAGMA foreign_keys=ON;", NULL, NULL,
	    &emsg) != SQLITE_OK ||
	    sqlite3_exec(s->db, schema, NULL, NULL, &emsg) != SQLITE_OK ||
	    add_last_seen(s->db, &emsg) != SQLITE_OK ||
	    sqlite3_exec(s->db, "PRAGMA user_version=1;", NULL, NULL,
	    &emsg) != SQLITE_OK) {
		bz_errf(err, errlen, "%s: %s", path,
		    emsg != NULL ? emsg : bzp_store_errmsg(s));
		sqlite3_free(emsg);
		goto fail;
	}
	*out = s;
	return BZ_OK;
 fail:
	bzp_store_close(s);
	return BZ_ERR_INVALID;
}

void
bzp_store_close(struct bzp_store *s)
{
	if (s == NULL)
		return;
	sqlite3_close(s->db);
	free(s);
}

static sqlite3_stmt *
prep(struct bzp_store *s, const char *sql)
{
	sqlite3_stmt *st = NULL;

	if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK)
		return NULL;
	return st;
}

/* Run a statement that returns no rows; 0 or BZ_ERR_INVALID. */
static int
run(sqlite3_stmt *st)
{
	int rc = sqlite3_step(st);

	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? BZ_OK : BZ_ERR_INVALID;
}

static char *
col_strdup(sqlite3_stmt *st, int i)
{
	const unsigned char *t = sqlite3_column_text(st, i);

	return strdup(t != NULL ? (const char *)t : "");
}

/* Copy a BLOB column of exactly n bytes; 1 copied, 0 NULL/wrong size. */
static int
col_blob(sqlite3_stmt *st, int i, uint8_t *out, size_t n)
{
	const void *p = sqlite3_column_blob(st, i);

	if (p == NULL || (size_t)sqlite3_column_bytes(st, i) != n)
		return 0;
	memcpy(out, p, n);
	return 1;
}

/* ---- transactions (bulk commands) ---- */

int
bzp_store_begin(struct bzp_store *s)
{
	return sqlite3_exec(s->db, "BEGIN IMMEDIATE;", NULL, NULL, NULL) ==
	    SQLITE_OK ? BZ_OK : BZ_ERR_INVALID;
}

int
bzp_store_commit(struct bzp_store *s)
{
	return sqlite3_exec(s->db, "COMMIT;", NULL, NULL, NULL) == SQLITE_OK ?
	    BZ_OK : BZ_ERR_INVALID;
}

void
bzp_store_rollback(struct bzp_store *s)
{
	(void)sqlite3_exec(s->db, "ROLLBACK;", NULL, NULL, NULL);
}

/* ---- users ---- */

int
bzp_store_user_put(struct bzp_store *s, const char *email,
    const uint8_t *seed, size_t len, time_t now)
{
	sqlite3_stmt *st;

	if ((st = prep(s, "INSERT INTO users(email, seed, last_step, "
	    "fail_start, fail_count, created_at) VALUES(?1, ?2, 0, 0, 0, ?3) "
	    "ON CONFLICT(email) DO UPDATE SET seed = ?2, last_step = 0, "
	    "fail_start = 0, fail_count = 0, created_at = ?3")) == NULL)
		return BZ_ERR_INVALID;
	sqlite3_bind_text(st, 1, email, -1, SQLITE_TRANSIENT);
	sqlite3_bind_blob(st, 2, seed, (int)len, SQLITE_TRANSIENT);
	sqlite3_bind_int64(st, 3, (sqlite3_int64)now);
	return run(st);
}

int
bzp_store_user_get(struct bzp_store *s, const char *email,
    struct bzp_user *u)
{
	sqlite3_stmt *st;
	const void *p;
	int rc, n, r = BZ_ERR_INVALID;

	memset(u, 0, sizeof(*u));
	if ((st = prep(s, "SELECT seed, last_step, fail_start, fail_count "
	    "FROM users WHERE email = ?1")) == NULL)
		return BZ_ERR_INVALID;
	sqlite3_bind_text(st, 1, email, -1, SQLITE_TRANSIENT);
	if ((rc = sqlite3_step(st)) == SQLITE_DONE)
		r = BZP_NOT_FOUND;
	else if (rc == SQLITE_ROW) {
		p = sqlite3_column_blob(st, 0);
		n = sqlite3_column_bytes(st, 0);
		if (p != NULL && n > 0 && (size_t)n <= sizeof(u->seed)) {
			memcpy(u->seed, p, (size_t)n);
			u->seed_len = (size_t)n;
			u->totp.last_step =
			    (uint64_t)sqlite3_column_int64(st, 1);
			u->totp.fail_start = sqlite3_column_int64(st, 2);
			u->totp.fail_count =
			    (unsigned)sqlite3_column_int64(st, 3);
			r = BZ_OK;
		} else
			r = BZ_ERR_FORMAT;
	}
	sqlite3_finalize(st);
	return r;
}

int
bzp_store_user_set_totp(struct bzp_store *s, const char *email,
    const struct bz_totp_state *t)
{
	sqlite3_stmt *st;

	if ((st = prep(s, "UPDATE users SET last_step = ?2, fail_start = ?3, "
	    "fail_count = ?4 WHERE email = ?1")) == NULL)
		return BZ_ERR_INVALID;
	sqlite3_bind_text(st, 1, email, -1, SQLITE_TRANSIENT);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)t->last_step);
	sqlite3_bind_int64(st, 3, (sqlite3_int64)t->fail_start);
	sqlite3_bind_int64(st, 4, (sqlite3_int64)t->fail_count);
	return run(st);
}

/* ---- agents ---- */

int
bzp_store_agent_put(struct bzp_store *s, const char *name,
    const char *labels_json, const uint8_t token_hash[32], time_t now)
{
	sqlite3_stmt *st;

	if ((st = prep(s, "INSERT INTO agents(name, labels, token_hash, "
	    "pinned_key, enrolled_at, created_at) "
	    "VALUES(?1, ?2, ?3, NULL, NULL, ?4) "
	    "ON CONFLICT(name) DO UPDATE SET labels = ?2, token_hash = ?3, "
	    "pinned_key = NULL, enrolled_at = NULL, created_at = ?4")) ==
	    NULL)
		return BZ_ERR_INVALID;
	sqlite3_bind_text(st, 1, name, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(st, 2, labels_json, -1, SQLITE_TRANSIENT);
	sqlite3_bind_blob(st, 3, token_hash, 32, SQLITE_TRANSIENT);
	sqlite3_bind_int64(st, 4, (sqlite3_int64)now);
	return run(st);
}

int
bzp_store_agent_get(struct bzp_store *s, const char *name,
    struct bzp_agent_rec *a)
{
	sqlite3_stmt *st;
	int rc, r = BZ_ERR_INVALID;

	memset(a, 0, sizeof(*a));
	if ((st = prep(s, "SELECT labels, token_hash, pinned_key, "
	    "enrolled_at, last_seen FROM agents WHERE name = ?1")) == NULL)
		return BZ_ERR_INVALID;
	sqlite3_bind_text(st, 1, name, -1, SQLITE_TRANSIENT);
	if ((rc = sqlite3_step(st)) == SQLITE_DONE)
		r = BZP_NOT_FOUND;
	else if (rc == SQLITE_ROW) {
		a->labels = col_strdup(st, 0);
		a->has_token = col_blob(st, 1, a->token_hash, 32);
		a->pinned = col_blob(st, 2, a->key, 32);
		a->enrolled_at = sqlite3_column_int64(st, 3);
		a->last_seen = sqlite3_column_int64(st, 4);
		r = a->labels != NULL ? BZ_OK : BZ_ERR_ALLOC;
	}
	sqlite3_finalize(st);
	return r;
}

void
bzp_agent_rec_clear(struct bzp_agent_rec *a)
{
	free(a->labels);
	sodium_memzero(a, sizeof(*a));
}

int
bzp_store_agent_pin(struct bzp_store *s, const char *name,
    const uint8_t token_hash[32], const uint8_t key[32], time_t now)
{
	sqlite3_stmt *st;
	int rc;

	/* One statement: burning the token and pinning cannot come apart. */
	if ((st = prep(s, "UPDATE agents SET token_hash = NULL, "
	    "pinned_key = ?3, enrolled_at = ?4 WHERE name = ?1 AND "
	    "pinned_key IS NULL AND token_hash = ?2")) == NULL)
		return BZ_ERR_INVALID;
	sqlite3_bind_text(st, 1, name, -1, SQLITE_TRANSIENT);
	sqlite3_bind_blob(st, 2, token_hash, 32, SQLITE_TRANSIENT);
	sqlite3_bind_blob(st, 3, key, 32, SQLITE_TRANSIENT);
	sqlite3_bind_int64(st, 4, (sqlite3_int64)now);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return BZ_ERR_INVALID;
	return sqlite3_changes(s->db) == 1 ? BZ_OK : BZP_NOT_FOUND;
}

/* ---- sessions ---- */

int
bzp_store_session_put(struct bzp_store *s, const uint8_t hash[32],
    const struct bzp_session_rec *r)
{
	sqlite3_stmt *st;

	if ((st = prep(s, "INSERT INTO sessions(token_hash, user, groups, "
	    "id_token, client_key, expires, mfa_at) "
	    "VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7)")) == NULL)
		return BZ_ERR_INVALID;
	sqlite3_bind_blob(st, 1, hash, 32, SQLITE_TRANSIENT);
	sqlite3_bind_text(st, 2, r->user, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(st, 3, r->groups, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(st, 4, r->id_token, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(st, 5, r->client_key, -1, SQLITE_TRANSIENT);
	sqlite3_bind_int64(st, 6, r->expires);
	sqlite3_bind_int64(st, 7, r->mfa_at);
	return run(st);
}

int
bzp_store_session_get(struct bzp_store *s, const uint8_t hash[32],
    struct bzp_session_rec *r)
{
	sqlite3_stmt *st;
	int rc, ret = BZ_ERR_INVALID;

	memset(r, 0, sizeof(*r));
	if ((st = prep(s, "SELECT user, groups, id_token, client_key, "
	    "expires, mfa_at FROM sessions WHERE token_hash = ?1")) == NULL)
		return BZ_ERR_INVALID;
	sqlite3_bind_blob(st, 1, hash, 32, SQLITE_TRANSIENT);
	if ((rc = sqlite3_step(st)) == SQLITE_DONE)
		ret = BZP_NOT_FOUND;
	else if (rc == SQLITE_ROW) {
		r->user = col_strdup(st, 0);
		r->groups = col_strdup(st, 1);
		r->id_token = col_strdup(st, 2);
		r->client_key = col_strdup(st, 3);
		r->expires = sqlite3_column_int64(st, 4);
		r->mfa_at = sqlite3_column_int64(st, 5);
		ret = r->user && r->groups && r->id_token && r->client_key ?
		    BZ_OK : BZ_ERR_ALLOC;
		if (ret != BZ_OK)
			bzp_session_rec_clear(r);
	}
	sqlite3_finalize(st);
	return ret;
}

int
bzp_store_session_set_mfa(struct bzp_store *s, const uint8_t hash[32],
    int64_t mfa_at)
{
	sqlite3_stmt *st;

	if ((st = prep(s, "UPDATE sessions SET mfa_at = ?2 "
	    "WHERE token_hash = ?1")) == NULL)
		return BZ_ERR_INVALID;
	sqlite3_bind_blob(st, 1, hash, 32, SQLITE_TRANSIENT);
	sqlite3_bind_int64(st, 2, mfa_at);
	return run(st);
}

int
bzp_store_session_purge(struct bzp_store *s, time_t now)
{
	sqlite3_stmt *st;

	if ((st = prep(s, "DELETE FROM sessions WHERE expires < ?1")) == NULL)
		return BZ_ERR_INVALID;
	sqlite3_bind_int64(st, 1, (sqlite3_int64)now);
	return run(st);
}

void
bzp_session_rec_clear(struct bzp_session_rec *r)
{
	if (r->id_token != NULL)
		sodium_memzero(r->id_token, strlen(r->id_token));
	free(r->user);
	free(r->groups);
	free(r->id_token);
	free(r->client_key);
	memset(r, 0, sizeof(*r));
}

/* ---- session ids ---- */

int
bzp_store_sid_block(struct bzp_store *s, uint32_t n, uint32_t *first)
{
	sqlite3_stmt *st = NULL;
	sqlite3_int64 next = 1;
	int rc, r = BZ_ERR_INVALID;

	if (n == 0 || n > BZP_SID_BLOCK_MAX)
		return BZ_ERR_INVALID;
	/* This commit must survive a power cut too, or a block could be
	 * handed out twice: FULL syncs the WAL at commit. */
	if (sqlite3_exec(s->db, "PRAGMA synchronous=FULL;BEGIN IMMEDIATE;",
	    NULL, NULL, NULL) != SQLITE_OK)
		goto out;
	if ((st = prep(s, "SELECT value FROM counters WHERE name = 'sid'")) ==
	    NULL)
		goto rollback;
	if ((rc = sqlite3_step(st)) == SQLITE_ROW)
		next = sqlite3_column_int64(st, 0);
	else if (rc != SQLITE_DONE)
		goto rollback;
	sqlite3_finalize(st);
	/* ids are 1..2^32-1: a block that would reach past it starts over
	 * at 1 (after 4 billion sessions) */
	if (next < 1 || next > (sqlite3_int64)UINT32_MAX - n + 1)
		next = 1;
	if ((st = prep(s, "INSERT INTO counters(name, value) VALUES('sid', ?1) "
	    "ON CONFLICT(name) DO UPDATE SET value = ?1")) == NULL)
		goto rollback;
	sqlite3_bind_int64(st, 1, next + n);
	rc = run(st);
	st = NULL;
	if (rc != BZ_OK ||
	    sqlite3_exec(s->db, "COMMIT;", NULL, NULL, NULL) != SQLITE_OK)
		goto rollback;
	*first = (uint32_t)next;
	r = BZ_OK;
	goto out;
 rollback:
	sqlite3_finalize(st);
	(void)sqlite3_exec(s->db, "ROLLBACK;", NULL, NULL, NULL);
 out:
	(void)sqlite3_exec(s->db, "PRAGMA synchronous=NORMAL;", NULL, NULL,
	    NULL);
	return r;
}

int
bzp_store_agent_seen(struct bzp_store *s, const char *name, time_t when)
{
	sqlite3_stmt *st;
	int rc;

	if ((st = prep(s, "UPDATE agents SET last_seen = ?2 WHERE name = "
	    "?1")) == NULL)
		return BZ_ERR_INVALID;
	sqlite3_bind_text(st, 1, name, -1, SQLITE_TRANSIENT);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)when);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? BZ_OK : BZ_ERR_INVALID;
}

int
bzp_store_agent_each(struct bzp_store *s,
    int (*fn)(const char *name, const char *labels, int64_t last_seen,
    void *arg), void *arg)
{
	sqlite3_stmt *st;
	int rc, r = BZ_OK;

	if ((st = prep(s, "SELECT name, labels, last_seen FROM agents WHERE "
	    "pinned_key IS NOT NULL ORDER BY name")) == NULL)
		return BZ_ERR_INVALID;
	while (r == BZ_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *name = (const char *)sqlite3_column_text(st, 0);
		const char *labels = (const char *)sqlite3_column_text(st, 1);

		if (name != NULL && labels != NULL)
			r = fn(name, labels, sqlite3_column_int64(st, 2), arg);
	}
	if (r == BZ_OK && rc != SQLITE_DONE)
		r = BZ_ERR_INVALID;
	sqlite3_finalize(st);
	return r;
}
