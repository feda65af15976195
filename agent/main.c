/* main.c: bzagent's command line, configuration and signals. */
#include "agent.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>
#include <curl/curl.h>
#include <sodium.h>

#include "config.h"
#include "log.h"
#include "util.h"

#define AGENT_PATH "/v1/agent"

static void
usage(FILE *f)
{
	fprintf(f,
"usage: bzagent -c CONFIG [--enrol-token TOKEN] [-v]\n"
"       bzagent --help | --version\n"
"\n"
"bzagent runs on a target machine and lets users reach it through\n"
"bzproxy with their usual ssh, scp and Ansible. It only connects out: one\n"
"wss connection to bzproxy, kept up with keepalive pings and re-made with\n"
"jittered exponential backoff (0.5 s up to 30 s) when it drops. It needs\n"
"no open port and no sshd.\n"
"\n"
"For every channel it checks, on its own and before running anything:\n"
"bzproxy's signature on the request (the key pinned in CONFIG), that the\n"
"request is for this machine, fresh and not replayed, the user's ID token\n"
"against the IdP's published keys, and the unix user (one it serves: never\n"
"root unless its own allow_root says yes). Then it runs a login shell or SHELL -c COMMAND as\n"
"that user, on a pseudo-terminal when the client asked for one, the\n"
"sftp-server for sftp and scp, or a TCP connection for ssh -L/-W/-D.\n"
"When not run as root it can serve only its own user.\n"
"\n"
"Options:\n"
"  -c, --config CONFIG   YAML configuration (required); see below.\n"
"  --enrol-token TOKEN   The one-time token from `bzproxy agent add NAME`,\n"
"                        used until bzproxy has pinned this agent's key.\n"
"                        Overrides enrol_token in CONFIG.\n"
"  -v, --verbose         Debug messages on stderr (never tokens or keys).\n"
"  -h, --help            This help.\n"
"  --version             Print the version.\n"
"\n"
"Configuration (paths are relative to the configuration file):\n"
"  name: web1                      this target's name in the policies\n"
"  proxy_url: wss://HOST:PORT/v1/agent\n"
"  ca_file: ca.pem                 verifies bzproxy's TLS (default: system)\n"
"  proxy_public_key: BASE64URL     pinned bzproxy key (`bzproxy key`)\n"
"  identity_key: agent_ed25519.key our Ed25519 key, created 0600 if missing\n"
"  enrol_token: TOKEN              optional, as --enrol-token\n"
"  oidc:\n"
"    issuer: https://idp.example   the IdP whose tokens users present\n"
"    audience: bz-cli              the OIDC client id tokens are for\n"
"    ca_file: ca.pem               verifies the IdP's TLS (optional)\n"
"  accept_env: \"LANG LC_* ...\"     client variables taken, as sshd's\n"
"                                  AcceptEnv (default: LANG LC_* LANGUAGE\n"
"                                  TERM COLORTERM TERM_PROGRAM\n"
"                                  TERM_PROGRAM_VERSION GIT_PROTOCOL\n"
"                                  NO_COLOR); others are logged, dropped\n"
"  permit_open: any                forward destinations, as sshd's\n"
"                                  PermitOpen: any, none, or HOST:PORT\n"
"                                  entries (HOST a glob, PORT or *)\n"
"  sftp_server: PATH               program for sftp (default: OpenSSH's\n"
"                                  sftp-server where the system has it)\n"
"  unix_users: \"deploy app-*\"     the only unix users served (globs;\n"
"                                  default: any)\n"
"  allow_root: no                  serve root (uid 0) at all (default no):\n"
"                                  this machine's word, whatever bzproxy\n"
"                                  and its policies say\n"
"  login_max_age: 24h              how long a login (IdP + TOTP) lasts here\n"
"                                  through refreshed ID tokens (default 24h)\n"
"  audit_log: audit.jsonl          this target's own record of what it ran,\n"
"                                  for whom (hash-chained JSON lines, 0600;\n"
"                                  default: audit.jsonl beside the config)\n"
"  children_file: children.state   the sessions of running channels; a\n"
"                                  restarted agent ends what a killed one\n"
"                                  left (default: beside the config)\n"
"  max_channels: 256               channels (commands, shells, forwards)\n"
"                                  running at once, all users (1-1024)\n"
"\n"
"Signals: SIGTERM and SIGINT end every running session (SIGHUP, then\n"
"SIGKILL after 1 s; then every process left in their sessions) and\n"
"exit 0. SIGHUP is ignored. A killed agent's children get SIGKILL from\n"
"the kernel; what they started is ended when the agent starts again.\n"
"\n"
"Exit status: 0 after SIGTERM/SIGINT, 1 on a runtime failure (bad\n"
"configuration, unreadable key), 2 on a usage error.\n");
}

/* Usage errors: the synopsis only, not the whole manual. */
static void
short_usage(void)
{
	fprintf(stderr,
"usage: bzagent -c CONFIG [--enrol-token TOKEN] [-v]\n"
"Try 'bzagent --help' for more information.\n");
}

static const char *const config_keys[] = {
	"name", "proxy_url", "ca_file", "proxy_public_key", "identity_key",
	"enrol_token", "oidc.issuer", "oidc.audience", "oidc.ca_file",
	"accept_env", "permit_open", "sftp_server", "allow_root", "unix_users",
	"audit_log", "login_max_age", "children_file", "max_channels", NULL,
};

static void
config_free(struct agent_config *c)
{
	free(c->path);
	free(c->name);
	free(c->proxy_url);
	free(c->proxy_path);
	free(c->ca_file);
	if (c->enrol_token != NULL) {
		sodium_memzero(c->enrol_token, strlen(c->enrol_token));
		free(c->enrol_token);
	}
	free(c->oidc_issuer);
	free(c->oidc_audience);
	free(c->oidc_ca_file);
	free(c->accept_env);
	free(c->permit_open);
	free(c->sftp_server);
	free(c->unix_users);
	free(c->audit_log);
	free(c->children_file);
	sodium_memzero(c, sizeof(*c));
}

static void
wipe_config(void *c)
{
	config_free(c);
}

/* wss://HOST:PORT/PATH -> "wss://HOST:PORT" and "/PATH" ("/v1/agent"
 * when there is no path: ws_link takes them apart). */
static int
split_url(const char *url, struct agent_config *c, char *err, size_t el)
{
	const char *slash;

	if (strncmp(url, "wss://", 6) != 0) {
		bz_errf(err, el, "proxy_url must start with wss://: %s", url);
		return -1;
	}
	slash = strchr(url + 6, '/');
	if (slash == NULL || slash[1] == '\0') {
		c->proxy_url = slash == NULL ? strdup(url) :
		    strndup(url, (size_t)(slash - url));
		c->proxy_path = strdup(AGENT_PATH);
	} else {
		c->proxy_url = strndup(url, (size_t)(slash - url));
		c->proxy_path = strdup(slash);
	}
	if (c->proxy_url == NULL || c->proxy_path == NULL) {
		bz_errf(err, el, "out of memory");
		return -1;
	}
	return 0;
}

/* Copy a setting (absent -> NULL). Returns -1 on allocation failure. */
static int
dup_opt(const struct bz_config *cfg, const char *key, char **out)
{
	const char *v = bz_config_get(cfg, key);

	*out = NULL;
	if (v == NULL)
		return 0;
	return (*out = strdup(v)) == NULL ? -1 : 0;
}

/* yes/true -> 1, no/false -> 0, else -1. */
static int
yes_no(const char *v)
{
	if (strcmp(v, "yes") == 0 || strcmp(v, "true") == 0)
		return 1;
	if (strcmp(v, "no") == 0 || strcmp(v, "false") == 0)
		return 0;
	return -1;
}

/* sftp_server, or the first of AGENT_SFTP_SERVER_PATHS that exists
 * (NULL when none: sftp is then refused with a reason). */
static int
find_sftp_server(const struct bz_config *cfg, char **out, char *err,
    size_t el)
{
	static const char *const paths[] = { AGENT_SFTP_SERVER_PATHS, NULL };
	const char *v = bz_config_get(cfg, "sftp_server");
	size_t i;

	*out = NULL;
	if (v != NULL) {
		if (v[0] != '/' || access(v, X_OK) != 0) {
			bz_errf(err, el, "sftp_server: %s is not an executable "
			    "absolute path", v);
			return -1;
		}
		return (*out = strdup(v)) == NULL ? -1 : 0;
	}
	for (i = 0; paths[i] != NULL; i++)
		if (access(paths[i], X_OK) == 0)
			return (*out = strdup(paths[i])) == NULL ? -1 : 0;
	return 0;
}

/* The path option key (relative to the config's folder), else dflt in
 * that folder; malloc'ed, or NULL when out of memory. */
static char *
path_opt(const struct bz_config *cfg, const char *cfg_path, const char *key,
    const char *dflt)
{
	const char *slash = strrchr(cfg_path, '/');
	char *p;

	if (bz_config_get(cfg, key) != NULL)
		return bz_config_path(cfg, key);
	if (asprintf(&p, "%.*s%s", slash != NULL ?
	    (int)(slash - cfg_path + 1) : 0, cfg_path, dflt) < 0)
		return NULL;
	return p;
}

static int
load_config(const char *path, const char *enrol_token,
    struct agent_config *c, char *err, size_t el)
{
	struct bz_config *cfg = NULL;
	const char *url, *pk_s, *v;
	uint8_t *pk = NULL;
	size_t pklen = 0;
	char *key_path = NULL;
	int r = -1;

	memset(c, 0, sizeof(*c));
	if ((c->path = strdup(path)) == NULL)
		goto oom;
	if (bz_config_load(path, config_keys, &cfg, err, el) != 0)
		goto out;
	if ((v = bz_config_require(cfg, "name", err, el)) == NULL ||
	    (url = bz_config_require(cfg, "proxy_url", err, el)) == NULL ||
	    (pk_s = bz_config_require(cfg, "proxy_public_key", err,
	    el)) == NULL ||
	    bz_config_require(cfg, "oidc.issuer", err, el) == NULL ||
	    bz_config_require(cfg, "oidc.audience", err, el) == NULL)
		goto out;
	if (v[0] == '\0' || strlen(v) > 255) {
		bz_errf(err, el, "%s: name must be 1 to 255 characters", path);
		goto out;
	}
	if ((c->name = strdup(v)) == NULL)
		goto oom;
	if (split_url(url, c, err, el) != 0)
		goto out;
	if (bz_b64url_decode(pk_s, strlen(pk_s), 64, &pk, &pklen) != 0 ||
	    pklen != sizeof(c->proxy_pk)) {
		bz_errf(err, el, "%s: proxy_public_key is not a base64url "
		    "Ed25519 public key (see `bzproxy key`)", path);
		goto out;
	}
	memcpy(c->proxy_pk, pk, sizeof(c->proxy_pk));
	if (dup_opt(cfg, "oidc.issuer", &c->oidc_issuer) != 0 ||
	    dup_opt(cfg, "oidc.audience", &c->oidc_audience) != 0)
		goto oom;
	if ((bz_config_get(cfg, "ca_file") != NULL &&
	    (c->ca_file = bz_config_path(cfg, "ca_file")) == NULL) ||
	    (bz_config_get(cfg, "oidc.ca_file") != NULL &&
	    (c->oidc_ca_file = bz_config_path(cfg, "oidc.ca_file")) == NULL))
		goto oom;
	if (dup_opt(cfg, "accept_env", &c->accept_env) != 0 ||
	    dup_opt(cfg, "permit_open", &c->permit_open) != 0 ||
	    dup_opt(cfg, "unix_users", &c->unix_users) != 0)
		goto oom;
	if ((v = bz_config_get(cfg, "allow_root")) != NULL &&
	    (c->allow_root = yes_no(v)) < 0) {
		bz_errf(err, el, "%s: allow_root must be yes or no", path);
		goto out;
	}
	c->max_channels = AGENT_MAX_CHANNELS_DEFAULT;
	if ((v = bz_config_get(cfg, "max_channels")) != NULL &&
	    bz_parse_int_range(v, 1, AGENT_MAX_CHANNELS,
	    &c->max_channels) != 0) {
		bz_errf(err, el, "%s: max_channels must be a number from 1 "
		    "to %d, got \"%s\"", path, AGENT_MAX_CHANNELS, v);
		goto out;
	}
	c->login_max_age = AGENT_LOGIN_MAX_AGE_S;
	if ((v = bz_config_get(cfg, "login_max_age")) != NULL &&
	    (c->login_max_age = bz_parse_duration(v)) <= 0) {
		bz_errf(err, el, "%s: login_max_age must be a duration such "
		    "as 24h", path);
		goto out;
	}
	if (permit_open_check(c->permit_open, err, el) != 0)
		goto out;
	if (find_sftp_server(cfg, &c->sftp_server, err, el) != 0)
		goto out;
	if (enrol_token != NULL)
		c->enrol_token = strdup(enrol_token);
	else if (dup_opt(cfg, "enrol_token", &c->enrol_token) != 0)
		goto oom;
	if (enrol_token != NULL && c->enrol_token == NULL)
		goto oom;
	/* identity_key, audit_log and children_file default to files
	 * beside the config */
	if ((key_path = path_opt(cfg, c->path, "identity_key",
	    "agent_ed25519.key")) == NULL ||
	    (c->audit_log = path_opt(cfg, c->path, "audit_log",
	    "audit.jsonl")) == NULL ||
	    (c->children_file = path_opt(cfg, c->path, "children_file",
	    "children.state")) == NULL)
		goto oom;
	if (bz_ed25519_load_or_create(key_path, c->pk, c->sk, err, el) != 0)
		goto out;
	r = 0;
	goto out;
 oom:
	bz_errf(err, el, "out of memory");
 out:
	free(pk);
	free(key_path);
	bz_config_free(cfg);
	if (r != 0)
		config_free(c);
	return r;
}

/* Children and pipes must never land on fds 0-2: keep them open. */
static int
ensure_stdio(void)
{
	int fd;

	while ((fd = open("/dev/null", O_RDWR)) >= 0 && fd <= 2)
		;
	if (fd < 0)
		return -1;
	close(fd);
	return 0;
}

/*
 * SIGCHLD, SIGTERM, SIGINT and SIGHUP arrive on a signalfd, read by the
 * poll loop; they are blocked before any thread starts so that every
 * thread inherits the mask. Children unblock them before exec.
 */
static int
setup_signals(void)
{
	struct sigaction sa;
	sigset_t set;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_IGN;
	if (sigaction(SIGXFSZ, &sa, NULL) != 0 ||
	    sigaction(SIGPIPE, &sa, NULL) != 0)
		return -1;
	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	if (sigprocmask(SIG_BLOCK, &set, NULL) != 0)
		return -1;
	return signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "enrol-token", required_argument, NULL, 'e' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	struct agent_config cfg;
	const char *config = NULL, *token = NULL;
	char err[AGENT_ERRLEN];
	int c, verbose = 0, sig_fd, watch_fd, rc;

	while ((c = getopt_long(argc, argv, "c:vh", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			config = optarg;
			break;
		case 'e':
			token = optarg;
			break;
		case 'v':
			verbose = 1;
			break;
		case 'h':
			usage(stdout);
			return 0;
		case 'V':
			printf("bzagent %s\n", AGENT_VERSION);
			return 0;
		default:
			short_usage();
			return 2;
		}
	}
	if (optind != argc || config == NULL) {
		fprintf(stderr, "bzagent: %s\n", optind != argc ?
		    "unexpected argument" : "missing -c CONFIG");
		short_usage();
		return 2;
	}
	if (token != NULL && token[0] == '\0') {
		fprintf(stderr, "bzagent: --enrol-token is empty\n");
		return 2;
	}
	bz_log_init("bzagent", verbose ? BZ_LOG_DEBUG : BZ_LOG_INFO);
	if (ensure_stdio() != 0 || sodium_init() < 0 ||
	    curl_global_init(CURL_GLOBAL_DEFAULT) != 0) {
		bz_error("cannot initialise (stdio, libsodium or libcurl)");
		return 1;
	}
	if (load_config(config, token, &cfg, err, sizeof(err)) != 0) {
		bz_error("%s", err);
		curl_global_cleanup();
		return 1;
	}
	/* before any thread: a watcher ends the channels' processes should
	 * this process be killed */
	if ((watch_fd = leftovers_watch(cfg.children_file, wipe_config,
	    &cfg)) < 0) {
		bz_error("cannot start the watcher process: %s",
		    strerror(errno));
		config_free(&cfg);
		curl_global_cleanup();
		return 1;
	}
	if ((sig_fd = setup_signals()) < 0) {
		bz_error("cannot set up signals: %s", strerror(errno));
		config_free(&cfg);
		curl_global_cleanup();
		return 1;
	}
	rc = agent_run(&cfg, sig_fd);
	close(sig_fd);
	close(watch_fd); /* the watcher finds nothing left, and exits */
	config_free(&cfg);
	/* no curl_global_cleanup: a JWKS fetch may still be finishing on
	 * its thread (bz_jwks_cache_free does not wait for it) */
	return rc;
}
