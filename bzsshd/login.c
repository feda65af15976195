/*
 * login.c: `bzsshd login`. OIDC authorization code with PKCE (S256) and a
 * loopback redirect on 127.0.0.1, then a TOTP code, then bzproxy's login
 * message (docs/protocol.md). The OIDC nonce commits to a fresh Ed25519
 * client key: nonce = b64url(SHA-256(pk || salt)).
 */
#include "bzsshd.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>
#include <sodium.h>

#include "buf.h"
#include "log.h"
#include "util.h"
#include "wire.h"

#define LOGIN_TIMEOUT_S 120     /* wait for the browser redirect */
#define REQ_MAX 8192            /* one redirect request */
#define PARAM_MAX 4096

struct login_args {
	const char *issuer, *client_id, *proxy, *ca;
	int totp_stdin;
};

struct oidc {
	char *auth_ep, *token_ep;
	uint8_t pk[crypto_sign_PUBLICKEYBYTES];
	uint8_t sk[crypto_sign_SECRETKEYBYTES];
	uint8_t salt[32];
	char *nonce, *state, *verifier, *challenge;
	char *redirect_uri;
};

static char *
b64(const uint8_t *p, size_t n)
{
	char *s = NULL;

	(void)bz_b64url_encode(p, n, &s);
	return s;
}

static char *
sha256_b64(const void *p, size_t n)
{
	uint8_t h[crypto_hash_sha256_BYTES];

	crypto_hash_sha256(h, p, n);
	return b64(h, sizeof(h));
}

static int
make_secrets(struct oidc *o)
{
	uint8_t buf[crypto_sign_PUBLICKEYBYTES + sizeof(o->salt)];

	crypto_sign_keypair(o->pk, o->sk);
	randombytes_buf(o->salt, sizeof(o->salt));
	memcpy(buf, o->pk, sizeof(o->pk));
	memcpy(buf + sizeof(o->pk), o->salt, sizeof(o->salt));
	o->nonce = sha256_b64(buf, sizeof(buf));
	if (bz_random_b64url(32, &o->state) != 0 ||
	    bz_random_b64url(32, &o->verifier) != 0 || o->nonce == NULL)
		return BZ_ERR_ALLOC;
	o->challenge = sha256_b64(o->verifier, strlen(o->verifier));
	return o->challenge != NULL ? BZ_OK : BZ_ERR_ALLOC;
}

static int
listen_loopback(int *fd, int *port, char *err, size_t errlen)
{
	struct sockaddr_in sa;
	socklen_t sl = sizeof(sa);
	int s;

	if ((s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
		goto fail;
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sa.sin_port = 0;
	if (bind(s, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
	    listen(s, 8) != 0 ||
	    getsockname(s, (struct sockaddr *)&sa, &sl) != 0) {
		close(s);
		goto fail;
	}
	*fd = s;
	*port = ntohs(sa.sin_port);
	return BZ_OK;
 fail:
	bz_errf(err, errlen, "cannot listen on 127.0.0.1: %s",
	    strerror(errno));
	return BZ_ERR_INVALID;
}

static char *
auth_url(const struct login_args *a, const struct oidc *o)
{
	char *cid = bz_url_escape(a->client_id);
	char *ru = bz_url_escape(o->redirect_uri);
	char *url = NULL;

	if (cid != NULL && ru != NULL &&
	    asprintf(&url, "%s%cresponse_type=code&client_id=%s"
	    "&redirect_uri=%s&scope=openid%%20email%%20profile%%20"
	    "offline_access&state=%s"
	    "&nonce=%s&code_challenge=%s&code_challenge_method=S256",
	    o->auth_ep, strchr(o->auth_ep, '?') ? '&' : '?', cid, ru,
	    o->state, o->nonce, o->challenge) < 0)
		url = NULL;
	free(cid);
	free(ru);
	return url;
}

/* $BROWSER through sh with the URL as "$1" (never interpolated). */
static pid_t
open_browser(const char *url)
{
	const char *browser = getenv("BROWSER");
	int use_xdg = browser == NULL && getenv("DISPLAY") != NULL;
	pid_t pid;
	int nul;

	if ((browser == NULL || *browser == '\0') && !use_xdg)
		return -1;
	if ((pid = fork()) != 0)
		return pid;
	if ((nul = open("/dev/null", O_RDWR)) >= 0) {
		dup2(nul, STDIN_FILENO);
		dup2(nul, STDOUT_FILENO);
		close(nul);
	}
	if (use_xdg)
		execlp("xdg-open", "xdg-open", url, (char *)NULL);
	else
		execl("/bin/sh", "sh", "-c", "$BROWSER \"$1\"", "sh", url,
		    (char *)NULL);
	_exit(127);
}

static int
hexval(int ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -1;
}

/* Value of name in a query string, percent-decoded (malloc'ed) or NULL. */
static char *
query_param(const char *q, size_t qlen, const char *name)
{
	size_t nl = strlen(name), i = 0, j, end;
	char *v;
	int h, l;

	while (i < qlen) {
		end = i;
		while (end < qlen && q[end] != '&')
			end++;
		if (end - i > nl && strncmp(q + i, name, nl) == 0 &&
		    q[i + nl] == '=') {
			if (end - i - nl - 1 > PARAM_MAX ||
			    (v = malloc(end - i - nl)) == NULL)
				return NULL;
			for (i += nl + 1, j = 0; i < end; i++) {
				if (q[i] == '+')
					v[j++] = ' ';
				else if (q[i] == '%' && i + 2 < end + 1 &&
				    (h = hexval(q[i + 1])) >= 0 &&
				    (l = hexval(q[i + 2])) >= 0) {
					v[j++] = (char)(h * 16 + l);
					i += 2;
				} else
					v[j++] = q[i];
				if (v[j - 1] == '\0') { /* no embedded NULs */
					free(v);
					return NULL;
				}
			}
			v[j] = '\0';
			return v;
		}
		i = end + 1;
	}
	return NULL;
}

static void
reply(int fd, int status, const char *msg)
{
	char page[512], resp[1024];
	int n, m;

	n = snprintf(page, sizeof(page), "<!DOCTYPE html><html><head>"
	    "<meta charset=\"utf-8\"><title>bzsshd</title></head><body>"
	    "<p>%s</p></body></html>\n", msg);
	m = snprintf(resp, sizeof(resp), "HTTP/1.1 %d %s\r\n"
	    "Content-Type: text/html; charset=utf-8\r\n"
	    "Cache-Control: no-store\r\nConnection: close\r\n"
	    "Content-Length: %d\r\n\r\n%s", status,
	    status == 200 ? "OK" : status == 404 ? "Not Found" : "Bad Request",
	    n, page);
	if (m > 0)
		(void)!write(fd, resp, (size_t)m < sizeof(resp) ? (size_t)m :
		    sizeof(resp) - 1);
}

/*
 * Serve one connection. Returns 1 when the redirect was handled (*code set
 * or err filled), 0 to keep waiting (other paths, broken requests).
 */
static int
handle_request(int fd, const struct oidc *o, char **code, int *failed,
    char *err, size_t errlen)
{
	char req[REQ_MAX + 1], *sp, *path, *q;
	char *state = NULL, *c = NULL, *e = NULL, *ed = NULL;
	struct timeval tv = { 5, 0 };
	size_t len = 0, qlen;
	ssize_t n;
	int done = 0;

	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	while (len < REQ_MAX) {
		if ((n = read(fd, req + len, REQ_MAX - len)) <= 0)
			break;
		len += (size_t)n;
		req[len] = '\0';
		if (strstr(req, "\r\n\r\n") != NULL)
			break;
	}
	req[len] = '\0';
	if (strncmp(req, "GET ", 4) != 0 || (sp = strchr(req + 4, ' ')) ==
	    NULL) {
		reply(fd, 400, "Bad request.");
		return 0;
	}
	*sp = '\0';
	path = req + 4;
	if (strncmp(path, "/callback", 9) != 0 ||
	    (path[9] != '\0' && path[9] != '?')) {
		reply(fd, 404, "Not found.");
		return 0;
	}
	q = path[9] == '?' ? path + 10 : path + 9;
	qlen = strlen(q);
	state = query_param(q, qlen, "state");
	c = query_param(q, qlen, "code");
	e = query_param(q, qlen, "error");
	ed = query_param(q, qlen, "error_description");
	done = 1;
	*failed = 1;
	if (state == NULL || !bz_secret_equal(state, o->state)) {
		bz_errf(err, errlen, "login failed: the redirect's state "
		    "does not match (stale or forged request)");
		reply(fd, 400, "Login failed: state mismatch.");
	} else if (e != NULL) {
		bz_errf(err, errlen, "the identity provider refused: %.100s"
		    "%s%.200s", e, ed ? ": " : "", ed ? ed : "");
		reply(fd, 400, "Login failed; see the terminal.");
	} else if (c == NULL || *c == '\0') {
		bz_errf(err, errlen, "login failed: no code in the redirect");
		reply(fd, 400, "Login failed: no code.");
	} else {
		*code = c;
		c = NULL;
		*failed = 0;
		reply(fd, 200, "Login complete, you can close this window.");
	}
	free(state);
	free(c);
	free(e);
	free(ed);
	return done;
}

static int
wait_redirect(int lfd, const struct oidc *o, char **code, char *err,
    size_t errlen)
{
	time_t deadline = time(NULL) + LOGIN_TIMEOUT_S;
	struct pollfd pfd;
	int fd, failed = 0, left;

	*code = NULL;
	for (;;) {
		if ((left = (int)(deadline - time(NULL))) <= 0) {
			bz_errf(err, errlen, "login timed out after %d s "
			    "waiting for the browser", LOGIN_TIMEOUT_S);
			return BZ_ERR_INVALID;
		}
		pfd.fd = lfd;
		pfd.events = POLLIN;
		if (poll(&pfd, 1, left * 1000) <= 0)
			continue;
		if ((fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC)) < 0)
			continue;
		if (handle_request(fd, o, code, &failed, err, errlen)) {
			close(fd);
			return failed ? BZ_ERR_INVALID : BZ_OK;
		}
		close(fd);
	}
}

/* The token's nonce must be ours: it binds the token to our key. */
static int
check_nonce(const char *id_token, const char *nonce, char *err,
    size_t errlen)
{
	json_t *o = bz_oidc_peek(id_token);
	const char *tn = bz_json_str(o, "nonce");
	int r = BZ_OK;

	if (o == NULL) {
		bz_errf(err, errlen, "the ID token is malformed");
		r = BZ_ERR_FORMAT;
	} else if (tn == NULL || !bz_secret_equal(tn, nonce)) {
		bz_errf(err, errlen, "the ID token's nonce is not ours");
		r = BZ_ERR_FORMAT;
	}
	json_decref(o);
	return r;
}

/* The code for tokens: the ID token (its nonce ours) and, when the IdP
 * gives one, a refresh token (long sessions). */
static int
exchange_code(const struct login_args *a, const struct oidc *o,
    const char *code, char **id_token, char **refresh_token, char *err,
    size_t errlen)
{
	char *c = bz_url_escape(code), *ru = bz_url_escape(o->redirect_uri);
	char *cid = bz_url_escape(a->client_id), *form = NULL;
	int r = BZ_ERR_ALLOC;

	*id_token = *refresh_token = NULL;
	if (c == NULL || ru == NULL || cid == NULL ||
	    asprintf(&form, "grant_type=authorization_code&code=%s"
	    "&redirect_uri=%s&client_id=%s&code_verifier=%s", c, ru, cid,
	    o->verifier) < 0) {
		form = NULL;
		goto out;
	}
	if ((r = bz_oidc_token(o->token_ep, a->ca, form, id_token,
	    refresh_token, err, errlen)) == 0 &&
	    (r = check_nonce(*id_token, o->nonce, err, errlen)) != 0) {
		bz_free_secret(id_token);
		bz_free_secret(refresh_token);
	}
 out:
	bz_free_secret(&form);
	free(c);
	free(ru);
	free(cid);
	return r;
}

/* One line from fd into buf, without the newline. */
static int
read_line(int fd, char *buf, size_t len)
{
	size_t n = 0;
	ssize_t r;
	char ch;

	while (n + 1 < len) {
		if ((r = read(fd, &ch, 1)) < 0 && errno == EINTR)
			continue;
		if (r <= 0 || ch == '\n')
			break;
		if (ch != '\r')
			buf[n++] = ch;
	}
	buf[n] = '\0';
	return n > 0 ? 0 : -1;
}

static int
read_totp(int from_stdin, char *code, size_t len, char *err, size_t errlen)
{
	struct termios old, noecho;
	int fd, r, restore = 0;

	if (from_stdin)
		r = read_line(STDIN_FILENO, code, len);
	else {
		if ((fd = open("/dev/tty", O_RDWR | O_CLOEXEC)) < 0) {
			bz_errf(err, errlen, "no terminal for the TOTP code "
			    "(use --totp-stdin)");
			return BZ_ERR_INVALID;
		}
		(void)!write(fd, "Verification code (TOTP): ", 26);
		if (tcgetattr(fd, &old) == 0) {
			noecho = old;
			noecho.c_lflag &= ~(tcflag_t)ECHO;
			restore = tcsetattr(fd, TCSAFLUSH, &noecho) == 0;
		}
		r = read_line(fd, code, len);
		if (restore)
			tcsetattr(fd, TCSAFLUSH, &old);
		(void)!write(fd, "\n", 1);
		close(fd);
	}
	if (r != 0 || strspn(code, "0123456789") != strlen(code) ||
	    strlen(code) < 6 || strlen(code) > 10) {
		bz_errf(err, errlen, "the TOTP code must be 6 to 10 digits");
		return BZ_ERR_INVALID;
	}
	return BZ_OK;
}

struct login_req {
	const struct oidc *o;
	const char *id_token, *totp;
};

/* The login, signed over bzproxy's challenge with the key the ID token's
 * nonce commits to. */
static json_t *
build_login(const uint8_t challenge[BZ_POP_CHALLENGE_LEN], void *arg)
{
	const struct login_req *l = arg;
	char *salt = b64(l->o->salt, sizeof(l->o->salt));
	char *pk = b64(l->o->pk, sizeof(l->o->pk));
	char *th = bz_pop_token_field(l->id_token);
	json_t *req = NULL;

	if (salt != NULL && pk != NULL && th != NULL &&
	    (req = json_pack("{s:s, s:s, s:s, s:s, s:s}", "t", "login",
	    "id_token", l->id_token, "nonce_salt", salt, "client_key", pk,
	    "totp", l->totp)) != NULL &&
	    bz_sign_pop(req, l->o->sk, "login", challenge,
	    (const char *const[]){ th }, 1) != 0) {
		json_decref(req);
		req = NULL;
	}
	free(salt);
	free(pk);
	free(th);
	return req;
}

/* Send login to bzproxy and wait for login_ok; fills s. */
static int
proxy_login(const struct login_args *a, const struct oidc *o,
    const char *id_token, const char *totp, struct bz_session *s,
    char *err, size_t errlen)
{
	struct login_req lr = { o, id_token, totp };
	json_t *ans = NULL, *exp;
	const char *t, *v;
	int r;

	if ((r = bz_proxy_ask(a->proxy, a->ca, build_login, &lr, &ans, err,
	    errlen)) != 0)
		goto out;
	r = BZ_ERR_INVALID;
	t = bz_json_str(ans, "t");
	if (t != NULL && strcmp(t, "error") == 0) {
		v = bz_json_str(ans, "reason");
		bz_errf(err, errlen, "bzproxy refused the login: %.200s",
		    v ? v : "no reason given");
		goto out;
	}
	exp = json_object_get(ans, "expires");
	if (t == NULL || strcmp(t, "login_ok") != 0 ||
	    bz_json_str(ans, "session") == NULL ||
	    bz_json_str(ans, "user") == NULL || !json_is_integer(exp)) {
		bz_errf(err, errlen, "unexpected answer from bzproxy");
		goto out;
	}
	r = BZ_ERR_ALLOC;
	s->session = strdup(bz_json_str(ans, "session"));
	s->user = strdup(bz_json_str(ans, "user"));
	s->expires = (time_t)json_integer_value(exp);
	if (s->session == NULL || s->user == NULL)
		goto out;
	r = BZ_OK;
 out:
	json_decref(ans);
	return r;
}

static int
parse_args(int argc, char **argv, struct login_args *a)
{
	int i;

	memset(a, 0, sizeof(*a));
	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--issuer") == 0 && i + 1 < argc)
			a->issuer = argv[++i];
		else if (strcmp(argv[i], "--client-id") == 0 && i + 1 < argc)
			a->client_id = argv[++i];
		else if (strcmp(argv[i], "--proxy") == 0 && i + 1 < argc)
			a->proxy = argv[++i];
		else if (strcmp(argv[i], "--ca") == 0 && i + 1 < argc)
			a->ca = argv[++i];
		else if (strcmp(argv[i], "--totp-stdin") == 0)
			a->totp_stdin = 1;
		else
			return -1;
	}
	if (a->issuer == NULL || a->client_id == NULL || a->proxy == NULL)
		return -1;
	return 0;
}

static void
oidc_clear(struct oidc *o)
{
	free(o->auth_ep);
	free(o->token_ep);
	free(o->nonce);
	free(o->state);
	if (o->verifier != NULL) {
		sodium_memzero(o->verifier, strlen(o->verifier));
		free(o->verifier);
	}
	free(o->challenge);
	free(o->redirect_uri);
	sodium_memzero(o, sizeof(*o));
}

int
bz_cmd_login(const struct bzsshd_opts *opts, int argc, char **argv)
{
	char err[BZSSHD_ERRLEN] = "", totp[16] = "", *ca = NULL;
	char *url = NULL, *code = NULL, *id_token = NULL, *refresh = NULL;
	struct login_args a;
	struct oidc o;
	struct bz_session s;
	int lfd = -1, port, rc = 1;
	pid_t browser = -1;

	memset(&o, 0, sizeof(o));
	memset(&s, 0, sizeof(s));
	if (parse_args(argc, argv, &a) != 0) {
		fprintf(stderr, "usage: bzsshd login --issuer URL --client-id "
		    "ID --proxy wss://HOST:PORT [--ca FILE] [--totp-stdin]\n");
		return 2;
	}
	if (strncmp(a.proxy, "wss://", 6) != 0) {
		fprintf(stderr, "bzsshd: --proxy must be a wss:// URL\n");
		return 2;
	}
	if (a.ca != NULL) {
		if ((ca = realpath(a.ca, NULL)) == NULL) {
			fprintf(stderr, "bzsshd: %s: %s\n", a.ca,
			    strerror(errno));
			return 1;
		}
		a.ca = ca;
	}
	if (bz_oidc_discover(a.issuer, a.ca, &o.auth_ep, &o.token_ep, err,
	    sizeof(err)) != 0 ||
	    make_secrets(&o) != 0 ||
	    listen_loopback(&lfd, &port, err, sizeof(err)) != 0)
		goto out;
	if (asprintf(&o.redirect_uri, "http://127.0.0.1:%d/callback",
	    port) < 0 || (url = auth_url(&a, &o)) == NULL) {
		o.redirect_uri = NULL;
		snprintf(err, sizeof(err), "out of memory");
		goto out;
	}
	fprintf(stderr, "To log in, open this URL in your browser:\n\n"
	    "  %s\n\nWaiting for the identity provider (%d s)...\n", url,
	    LOGIN_TIMEOUT_S);
	browser = open_browser(url);
	if (wait_redirect(lfd, &o, &code, err, sizeof(err)) != 0 ||
	    exchange_code(&a, &o, code, &id_token, &refresh, err,
	    sizeof(err)) != 0 ||
	    read_totp(a.totp_stdin, totp, sizeof(totp), err,
	    sizeof(err)) != 0 ||
	    proxy_login(&a, &o, id_token, totp, &s, err, sizeof(err)) != 0)
		goto out;
	if ((s.proxy = strdup(a.proxy)) == NULL ||
	    (s.issuer = strdup(a.issuer)) == NULL ||
	    (a.ca != NULL && (s.ca_file = strdup(a.ca)) == NULL) ||
	    (s.id_token = strdup(id_token)) == NULL ||
	    (s.login_token = strdup(id_token)) == NULL ||
	    (s.client_id = strdup(a.client_id)) == NULL ||
	    (s.client_key = b64(o.sk, sizeof(o.sk))) == NULL ||
	    (s.nonce_salt = b64(o.salt, sizeof(o.salt))) == NULL) {
		snprintf(err, sizeof(err), "out of memory");
		goto out;
	}
	s.refresh_token = refresh; /* the session owns it now */
	refresh = NULL;
	if (bz_session_save(opts->config_dir, &s, err, sizeof(err)) != 0 ||
	    bz_known_hosts_write(opts->config_dir, err, sizeof(err)) != 0)
		goto out;
	printf("Logged in as %s\n", s.user);
	rc = 0;
 out:
	if (rc != 0)
		fprintf(stderr, "bzsshd: %s\n", err[0] ? err : "login failed");
	if (browser > 0)
		(void)waitpid(browser, NULL, WNOHANG);
	if (lfd >= 0)
		close(lfd);
	bz_free_secret(&id_token);
	bz_free_secret(&refresh);
	bz_free_secret(&code);
	sodium_memzero(totp, sizeof(totp));
	bz_session_clear(&s);
	oidc_clear(&o);
	free(url);
	free(ca);
	return rc;
}
