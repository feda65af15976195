/*
 * admin_cmd.c: the commands an admin runs next to the service: enrol users
 * (TOTP seed) and agents (one-time token, labels), print the proxy key,
 * verify the audit chain, ask the running server to reload its policies.
 * They share the SQLite file with `serve` (WAL, busy timeout).
 */
#include "bzproxy.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <qrencode.h>
#include <sodium.h>

#include "audit.h"
#include "audit_checkpoint.h"
#include "buf.h"
#include "log.h"
#include "util.h"

#define TOTP_ISSUER "bastion"
#define QR_QUIET 2 /* modules of light border around the code */

static int
open_store(const struct bzp_config *cfg, struct bzp_store **s)
{
	char err[BZP_ERRLEN];

	if (bzp_store_open(cfg->state_db, s, err, sizeof(err)) != 0) {
		fprintf(stderr, "bzproxy: %s\n", err);
		return -1;
	}
	return 0;
}

/* A plausible email: local@domain, printable, no spaces or quotes. */
static int
email_ok(const char *e)
{
	const char *at = strchr(e, '@');
	size_t i, n = strlen(e);

	if (n < 3 || n > BZP_EMAIL_MAX || at == NULL || at == e ||
	    at[1] == '\0' || strchr(at + 1, '@') != NULL)
		return 0;
	for (i = 0; i < n; i++)
		if (e[i] <= ' ' || e[i] > '~' || e[i] == '"' || e[i] == '\\')
			return 0;
	return 1;
}

/* The QR code as text: two modules per character cell, light drawn as a
 * block (like `qrencode -t UTF8`), so it scans on a dark terminal. */
static void
print_qr(const char *text)
{
	QRcode *q;
	int x, y, w;

	if ((q = QRcode_encodeString(text, 0, QR_ECLEVEL_M, QR_MODE_8,
	    1)) == NULL)
		return;
	w = q->width;
	for (y = -QR_QUIET; y < w + QR_QUIET; y += 2) {
		for (x = -QR_QUIET; x < w + QR_QUIET; x++) {
			int top = y >= 0 && y < w && x >= 0 && x < w &&
			    (q->data[y * w + x] & 1);
			int bot = y + 1 >= 0 && y + 1 < w && x >= 0 && x < w &&
			    (q->data[(y + 1) * w + x] & 1);

			fputs(!top && !bot ? "\xe2\x96\x88" : /* full */
			    !top ? "\xe2\x96\x80" :            /* upper */
			    !bot ? "\xe2\x96\x84" : " ", stdout); /* lower */
		}
		putchar('\n');
	}
	QRcode_free(q);
}

static int
user_add(const struct bzp_config *cfg, const char *email, int print_secret)
{
	struct bzp_store *s = NULL;
	uint8_t seed[BZ_TOTP_SECRET_LEN];
	char *uri = NULL, *b32 = NULL;
	int rc = 1;

	if (open_store(cfg, &s) != 0)
		return 1;
	bz_totp_new_secret(seed);
	if ((uri = bz_totp_uri(TOTP_ISSUER, email, seed, sizeof(seed))) ==
	    NULL || (b32 = bz_totp_base32(seed, sizeof(seed))) == NULL) {
		fprintf(stderr, "bzproxy: out of memory\n");
		goto out;
	}
	if (bzp_store_user_put(s, email, seed, sizeof(seed), time(NULL)) != 0) {
		fprintf(stderr, "bzproxy: cannot store user %s: %s\n", email,
		    bzp_store_errmsg(s));
		goto out;
	}
	printf("Enrolled %s. Add this TOTP seed to their authenticator app "
	    "(it is shown once):\n%s\n", email, uri);
	if (isatty(STDOUT_FILENO))
		print_qr(uri);
	if (print_secret)
		printf("%s\n", b32);
	fflush(stdout);
	rc = 0;
 out:
	if (uri != NULL)
		sodium_memzero(uri, strlen(uri));
	if (b32 != NULL)
		sodium_memzero(b32, strlen(b32));
	free(uri);
	free(b32);
	sodium_memzero(seed, sizeof(seed));
	bzp_store_close(s);
	return rc;
}

static int
user_totp(const struct bzp_config *cfg, const char *email)
{
	struct bzp_store *s = NULL;
	struct bzp_user u;
	char code[BZ_TOTP_DIGITS + 1];
	int r, rc = 1;

	if (open_store(cfg, &s) != 0)
		return 1;
	if ((r = bzp_store_user_get(s, email, &u)) != 0)
		fprintf(stderr, "bzproxy: %s\n", r == BZP_NOT_FOUND ?
		    "no such user" : bzp_store_errmsg(s));
	else if (bz_totp_code(u.seed, u.seed_len, time(NULL), code) != 0)
		fprintf(stderr, "bzproxy: cannot compute the code\n");
	else {
		printf("%s\n", code);
		rc = 0;
	}
	sodium_memzero(&u, sizeof(u));
	bzp_store_close(s);
	return rc;
}

int
bzp_cmd_user(const struct bzp_config *cfg, int argc, char **argv)
{
	int i, print_secret = 0, test = 0;

	/* argv[0] = "user", argv[1] = add|totp, argv[2] = EMAIL */
	if (argc < 3 || !email_ok(argv[2])) {
		fprintf(stderr, "bzproxy: user add|totp EMAIL (see --help)\n");
		return 2;
	}
	for (i = 3; i < argc; i++) {
		if (strcmp(argv[i], "--print-secret") == 0)
			print_secret = 1;
		else if (strcmp(argv[i], "--i-am-a-test") == 0)
			test = 1;
		else {
			fprintf(stderr, "bzproxy: unknown option %s\n",
			    argv[i]);
			return 2;
		}
	}
	if (bz_totp_global_init() != 0) {
		fprintf(stderr, "bzproxy: cannot initialise liboath\n");
		return 1;
	}
	if (strcmp(argv[1], "add") == 0 && !test)
		return user_add(cfg, argv[2], print_secret);
	if (strcmp(argv[1], "totp") == 0 && !print_secret) {
		if (!test) {
			fprintf(stderr, "bzproxy: user totp prints a user's "
			    "current code: it exists for test sandboxes only "
			    "and needs --i-am-a-test\n");
			return 2;
		}
		return user_totp(cfg, argv[2]);
	}
	fprintf(stderr, "bzproxy: user add EMAIL [--print-secret] | user totp "
	    "EMAIL --i-am-a-test\n");
	return 2;
}

/* --label k=v: key a name, value a sane token; no duplicates. */
static int
add_label(json_t *labels, const char *kv)
{
	const char *eq = strchr(kv, '=');
	char key[BZP_NAME_MAX + 1];
	size_t kn;

	if (eq == NULL || (kn = (size_t)(eq - kv)) == 0 || kn > BZP_NAME_MAX) {
		fprintf(stderr, "bzproxy: --label wants KEY=VALUE, got \"%s\"\n",
		    kv);
		return -1;
	}
	memcpy(key, kv, kn);
	key[kn] = '\0';
	if (!bzp_name_ok(key, BZP_NAME_MAX) ||
	    !bzp_label_value_ok(eq + 1, BZP_LABEL_VALUE_MAX)) {
		fprintf(stderr, "bzproxy: label \"%s\": keys are letters, "
		    "digits, '.', '_', '-'; values also ':/@+=' (at most %d)\n",
		    kv, BZP_LABEL_VALUE_MAX);
		return -1;
	}
	if (json_object_get(labels, key) != NULL) {
		fprintf(stderr, "bzproxy: label %s given twice\n", key);
		return -1;
	}
	if (json_object_size(labels) >= BZP_LABELS_MAX) {
		fprintf(stderr, "bzproxy: at most %d labels\n", BZP_LABELS_MAX);
		return -1;
	}
	return json_object_set_new(labels, key, json_string(eq + 1));
}

/* One agent of a --from file: its name and labels (JSON text). */
struct enrol_line {
	char *name;
	char *labels;
	char *token;
};

#define ENROL_LINE_MAX 8192

/* Free what read_enrol_lines made; tokens are wiped. */
static void
free_enrol_lines(struct enrol_line *v, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if (v[i].token != NULL)
			sodium_memzero(v[i].token, strlen(v[i].token));
		free(v[i].token);
		free(v[i].name);
		free(v[i].labels);
	}
	free(v);
}

/* One line "NAME [KEY=VALUE ...]" into e; -1 with the reason on stderr. */
static int
parse_enrol_line(char *line, struct enrol_line *e)
{
	char *save = NULL, *w, *name;
	json_t *labels;
	int r = -1;

	if ((name = strtok_r(line, " \t\r\n", &save)) == NULL)
		return -1;
	if (!bzp_name_ok(name, BZP_NAME_MAX)) {
		fprintf(stderr, "bzproxy: agent names are 1-%d letters, "
		    "digits, '.', '_', '-'\n", BZP_NAME_MAX);
		return -1;
	}
	if ((labels = json_object()) == NULL)
		return -1;
	while ((w = strtok_r(NULL, " \t\r\n", &save)) != NULL)
		if (add_label(labels, w) != 0)
			goto out;
	if ((e->name = strdup(name)) == NULL ||
	    (e->labels = bz_json_dump(labels)) == NULL)
		goto out;
	r = 0;
 out:
	json_decref(labels);
	return r;
}

/* Every agent of path ("-": stdin), checked before anything is stored: a
 * bad line or a name given twice stops the whole run. */
static int
read_enrol_lines(const char *path, struct enrol_line **out, size_t *count)
{
	FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "r");
	struct enrol_line *v = NULL, *nv;
	char *line = NULL, *p;
	size_t cap = 0, n = 0, lcap = 0, i, lineno = 0;
	ssize_t len;
	int r = -1;

	if (f == NULL) {
		fprintf(stderr, "bzproxy: %s: %s\n", path, strerror(errno));
		return -1;
	}
	while ((len = getline(&line, &lcap, f)) >= 0) {
		lineno++;
		p = line + strspn(line, " \t\r\n");
		if (*p == '\0' || *p == '#')
			continue;
		if (len > ENROL_LINE_MAX) {
			fprintf(stderr, "bzproxy: %s:%zu: line longer than %d "
			    "bytes\n", path, lineno, ENROL_LINE_MAX);
			goto out;
		}
		if (n == cap) {
			cap = cap ? cap * 2 : 64;
			if ((nv = realloc(v, cap * sizeof(*v))) == NULL)
				goto out;
			v = nv;
		}
		memset(&v[n], 0, sizeof(v[n]));
		if (parse_enrol_line(p, &v[n]) != 0) {
			n++;
			fprintf(stderr, "bzproxy: %s:%zu: bad line: nothing "
			    "was added\n", path, lineno);
			goto out;
		}
		for (i = 0; i < n; i++)
			if (strcmp(v[i].name, v[n].name) == 0) {
				fprintf(stderr, "bzproxy: %s:%zu: agent %s is "
				    "named twice: nothing was added\n", path,
				    lineno, v[n].name);
				n++;
				goto out;
			}
		n++;
	}
	if (ferror(f)) {
		fprintf(stderr, "bzproxy: cannot read %s\n", path);
		goto out;
	}
	r = 0;
 out:
	free(line);
	if (f != stdin)
		fclose(f);
	if (r != 0) {
		free_enrol_lines(v, n);
		v = NULL;
		n = 0;
	}
	*out = v;
	*count = n;
	return r;
}

/*
 * agent add --from FILE: many agents in one run and one transaction (all
 * or none), for a fleet's enrolment. Prints "NAME TOKEN" per agent, in
 * the file's order, once everything is stored.
 */
static int
agent_add_many(const struct bzp_config *cfg, const char *path)
{
	struct enrol_line *v = NULL;
	struct bzp_store *s = NULL;
	uint8_t hash[32], pk[32], sk[64];
	char *pkb = NULL, err[BZP_ERRLEN];
	size_t n = 0, i;
	time_t now = time(NULL);
	int rc = 1;

	if (read_enrol_lines(path, &v, &n) != 0)
		return 2;
	if (bz_ed25519_load_or_create(cfg->signing_key, pk, sk, err,
	    sizeof(err)) != 0) {
		fprintf(stderr, "bzproxy: %s\n", err);
		goto out;
	}
	if (bz_b64url_encode(pk, sizeof(pk), &pkb) != 0 ||
	    open_store(cfg, &s) != 0)
		goto out;
	if (bzp_store_begin(s) != 0) {
		fprintf(stderr, "bzproxy: cannot start a transaction: %s\n",
		    bzp_store_errmsg(s));
		goto out;
	}
	for (i = 0; i < n; i++) {
		if (bz_random_b64url(32, &v[i].token) != 0)
			break;
		crypto_hash_sha256(hash, (const uint8_t *)v[i].token,
		    strlen(v[i].token));
		if (bzp_store_agent_put(s, v[i].name, v[i].labels, hash,
		    now) != 0) {
			fprintf(stderr, "bzproxy: cannot store agent %s: %s\n",
			    v[i].name, bzp_store_errmsg(s));
			break;
		}
	}
	if (i < n || bzp_store_commit(s) != 0) {
		if (i == n)
			fprintf(stderr, "bzproxy: cannot commit: %s\n",
			    bzp_store_errmsg(s));
		bzp_store_rollback(s);
		fprintf(stderr, "bzproxy: nothing was added\n");
		goto out;
	}
	fprintf(stderr, "Added %zu agents. Their one-time enrolment tokens are "
	    "on stdout, one \"NAME TOKEN\" line each (only their hashes are "
	    "kept; agents added before got new tokens and unpinned keys).\n"
	    "proxy_public_key for their bzagent.yaml: %s\n", n, pkb);
	for (i = 0; i < n; i++)
		printf("%s %s\n", v[i].name, v[i].token);
	rc = fflush(stdout) == 0 ? 0 : 1;
 out:
	sodium_memzero(sk, sizeof(sk));
	free(pkb);
	free_enrol_lines(v, n);
	bzp_store_close(s);
	return rc;
}

int
bzp_cmd_agent(const struct bzp_config *cfg, int argc, char **argv)
{
	struct bzp_store *s = NULL;
	json_t *labels = NULL;
	uint8_t hash[32], pk[32], sk[64];
	char *token = NULL, *text = NULL, *pkb = NULL, err[BZP_ERRLEN];
	int i, rc = 2;

	/* argv[0] = "agent", argv[1] = add, argv[2] = NAME */
	if (argc < 3 || strcmp(argv[1], "add") != 0) {
		fprintf(stderr, "bzproxy: agent add NAME [--label KEY=VALUE "
		    "...] | agent add --from FILE\n");
		return 2;
	}
	if (strcmp(argv[2], "--from") == 0) {
		if (argc != 4) {
			fprintf(stderr, "bzproxy: agent add --from FILE (one "
			    "\"NAME [KEY=VALUE ...]\" per line; - for "
			    "stdin)\n");
			return 2;
		}
		return agent_add_many(cfg, argv[3]);
	}
	if (!bzp_name_ok(argv[2], BZP_NAME_MAX)) {
		fprintf(stderr, "bzproxy: agent names are 1-%d letters, "
		    "digits, '.', '_', '-'\n", BZP_NAME_MAX);
		return 2;
	}
	if ((labels = json_object()) == NULL)
		return 1;
	for (i = 3; i < argc; i++) {
		if (strcmp(argv[i], "--label") == 0 && i + 1 < argc) {
			if (add_label(labels, argv[++i]) != 0)
				goto out;
		} else {
			fprintf(stderr, "bzproxy: unknown option %s\n",
			    argv[i]);
			goto out;
		}
	}
	rc = 1;
	if (bz_ed25519_load_or_create(cfg->signing_key, pk, sk, err,
	    sizeof(err)) != 0) {
		fprintf(stderr, "bzproxy: %s\n", err);
		goto out;
	}
	if ((text = bz_json_dump(labels)) == NULL ||
	    bz_random_b64url(32, &token) != 0 ||
	    bz_b64url_encode(pk, sizeof(pk), &pkb) != 0)
		goto out;
	crypto_hash_sha256(hash, (const uint8_t *)token, strlen(token));
	if (open_store(cfg, &s) != 0)
		goto out;
	if (bzp_store_agent_put(s, argv[2], text, hash, time(NULL)) != 0) {
		fprintf(stderr, "bzproxy: cannot store agent %s: %s\n",
		    argv[2], bzp_store_errmsg(s));
		goto out;
	}
	fprintf(stderr, "Agent %s added with labels %s. Its one-time "
	    "enrolment token is on stdout (only its hash is kept; adding the "
	    "agent again issues a new one and unpins its key).\n"
	    "proxy_public_key for its bzagent.yaml: %s\n", argv[2], text, pkb);
	printf("%s\n", token);
	fflush(stdout);
	rc = 0;
 out:
	if (token != NULL)
		sodium_memzero(token, strlen(token));
	sodium_memzero(sk, sizeof(sk));
	free(token);
	free(text);
	free(pkb);
	json_decref(labels);
	bzp_store_close(s);
	return rc;
}

int
bzp_cmd_key(const struct bzp_config *cfg, int argc, char **argv)
{
	uint8_t pk[32], sk[64];
	char err[BZP_ERRLEN], *b = NULL;
	int rc = 1;

	if (argc != 1) {
		fprintf(stderr, "bzproxy: key takes no arguments\n");
		return 2;
	}
	if (bz_ed25519_load_or_create(cfg->signing_key, pk, sk, err,
	    sizeof(err)) != 0)
		fprintf(stderr, "bzproxy: %s\n", err);
	else if (bz_b64url_encode(pk, sizeof(pk), &b) == 0) {
		printf("%s\n", b);
		rc = 0;
	}
	sodium_memzero(sk, sizeof(sk));
	free(b);
	return rc;
}

int
bzp_cmd_audit(const struct bzp_config *cfg, int argc, char **argv)
{
	struct bz_audit_mark mark;
	char err[BZP_ERRLEN * 2], when[64] = "";
	const char *cps = cfg->audit_checkpoints;
	uint8_t pk[32], sk[64];
	uint64_t lines = 0;
	int r, have_mark = 0;

	if (argc == 4 && strcmp(argv[1], "verify") == 0 &&
	    strcmp(argv[2], "--checkpoints") == 0)
		cps = argv[3];
	else if (argc != 2 || strcmp(argv[1], "verify") != 0) {
		fprintf(stderr, "usage: bzproxy audit verify "
		    "[--checkpoints FILE]\n");
		return 2;
	}
	/* the checkpoints must be signed by this bzproxy's key */
	if (bz_ed25519_load_or_create(cfg->signing_key, pk, sk, err,
	    sizeof(err)) != 0) {
		fprintf(stderr, "bzproxy: %s\n", err);
		return 1;
	}
	sodium_memzero(sk, sizeof(sk));
	r = bz_audit_checkpoint_latest(cps, pk, &mark, when, sizeof(when), err,
	    sizeof(err));
	if (r == 0)
		have_mark = 1;
	else if (r != BZ_ERR_SHORT && access(cps, F_OK) == 0) {
		fprintf(stderr, "bzproxy: audit checkpoints unusable: %s\n",
		    err);
		return 1;
	} else
		fprintf(stderr, "bzproxy: warning: no checkpoint in %s: a cut "
		    "tail would go unseen\n", cps);
	if (bz_audit_verify(cfg->audit_log, have_mark ? &mark : NULL, &lines,
	    err, sizeof(err)) != 0) {
		fprintf(stderr, "bzproxy: audit log tampered or damaged: %s\n",
		    err);
		return 1;
	}
	printf("%s: hash chain intact, %llu lines", cfg->audit_log,
	    (unsigned long long)lines);
	if (have_mark)
		printf("; holds the checkpoint of %s (%llu lines), %llu "
		    "written since", when, (unsigned long long)mark.seq,
		    (unsigned long long)(lines - mark.seq));
	printf("\n");
	return 0;
}

int
bzp_cmd_policy_reload(const struct bzp_config *cfg)
{
	uint8_t *d = NULL;
	size_t n;
	char err[BZP_ERRLEN], *end;
	long pid;
	int ok;

	if (bz_read_file(cfg->pid_file, 64, &d, &n, err, sizeof(err)) != 0) {
		fprintf(stderr, "bzproxy: is the server running? %s\n", err);
		return 1;
	}
	pid = strtol((char *)d, &end, 10);
	ok = pid > 1 && end != (char *)d && (*end == '\n' || *end == '\0');
	free(d);
	if (!ok) {
		fprintf(stderr, "bzproxy: %s does not hold a pid\n",
		    cfg->pid_file);
		return 1;
	}
	if (kill((pid_t)pid, SIGHUP) != 0) {
		fprintf(stderr, "bzproxy: cannot signal pid %ld (%s): %s\n",
		    pid, cfg->pid_file, strerror(errno));
		return 1;
	}
	printf("asked bzproxy (pid %ld) to reload its policies; its log says "
	    "whether the new set was taken\n", pid);
	return 0;
}
