/* main.c: bzsshd's command line; each command lives in its own file. */
#include "bzsshd.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <curl/curl.h>
#include <libssh/libssh.h>
#include <sodium.h>

#include "buf.h"
#include "log.h"
#include "util.h"


static void
usage(FILE *f)
{
	fprintf(f,
"usage: bzsshd [--config-dir DIR] [-v] COMMAND\n"
"       bzsshd [--config-dir DIR] [-v] --stdio USER@TARGET[:PORT]\n"
"\n"
"bzsshd lets unmodified OpenSSH reach machines that run bzagent, through\n"
"bzproxy. It runs on your machine as ssh's ProxyCommand and speaks SSH to\n"
"ssh on stdin/stdout; every SSH channel travels over one wss connection\n"
"to bzproxy, which checks your login, TOTP and the policies.\n"
"\n"
"Commands:\n"
"  login --issuer URL --client-id ID --proxy wss://HOST:PORT\n"
"        [--ca FILE] [--totp-stdin]\n"
"        Sign in with your identity provider (OIDC authorization code\n"
"        with PKCE; the URL to open is printed on stderr and opened with\n"
"        $BROWSER, else xdg-open when $DISPLAY is set), then type the\n"
"        TOTP code (read from stdin with --totp-stdin). --ca names the\n"
"        CA file that verifies the IdP and bzproxy.\n"
"  logout      Delete the saved session.\n"
"  status      Print user, groups, proxy, MFA age and expiries (bzproxy\n"
"              is asked); exit 1 when not logged in.\n"
"  targets     List the targets your policies let you reach: online or\n"
"              when last seen, the unix users the rules name, labels.\n"
"  ssh-config [--user NAME] [--domain DOMAIN] [--self PATH]\n"
"             [--install [--file FILE]]\n"
"        Print a Host block (Host *.DOMAIN, default bz) for ~/.ssh/config\n"
"        and pin bzsshd's host key in CONFIGDIR/known_hosts. User is NAME,\n"
"        or the unix user your policies name if they name exactly one\n"
"        (bzproxy is asked). PATH is this program (default: the running\n"
"        binary). --install puts the block into FILE (default\n"
"        ~/.ssh/config) between marker lines, first in the file; run\n"
"        again, it replaces only that block.\n"
"  forget-target TARGET\n"
"        Forget the agent key pinned for TARGET (CONFIGDIR/known_targets,\n"
"        pinned the first time you reach it): after a legitimate\n"
"        re-enrolment of the target, the next connection pins its new key.\n"
"  --stdio USER@TARGET[:PORT]\n"
"        Serve one SSH connection on stdin/stdout (the ProxyCommand:\n"
"        ProxyCommand bzsshd --stdio %%r@%%h:%%p). A trailing \".bz\" on\n"
"        TARGET is dropped. PORT is the target's SSH_CONNECTION port.\n"
"  --fdpass --stdio USER@TARGET[:PORT]\n"
"        The same for ssh's ProxyUseFdpass (what ssh-config writes): hand\n"
"        ssh a socket and serve it from a child process, without copying\n"
"        between pipes and a socket.\n"
"\n"
"Options:\n"
"  --config-dir DIR  Files: session (0600), host_ed25519_key (0600),\n"
"                    known_hosts, known_targets, bzsshd.yaml (optional\n"
"                    settings: \"proxy_retry: 30s\", how long --stdio keeps\n"
"                    trying to reach bzproxy; 0 never). Default\n"
"                    $BZ_CONFIG_DIR, else $XDG_CONFIG_HOME/bz, else\n"
"                    ~/.config/bz.\n"
"  -v                Debug messages on stderr (never secrets).\n"
"  -h, --help        This help.  --version  Print the version.\n"
"\n"
"Exit status: 0 success, 1 failure (not logged in, access denied, lost\n"
"connection), 2 usage error. ssh itself exits 255 when bzsshd fails.\n");
}

/* USER@TARGET[:PORT] */
static int
parse_target(const char *arg, struct bz_target *t)
{
	const char *at, *colon;
	size_t hl;
	int port = 22;

	memset(t, 0, sizeof(*t));
	if ((at = strrchr(arg, '@')) == NULL || at == arg || at[1] == '\0')
		return -1;
	if ((colon = strchr(at + 1, ':')) != NULL) {
		if (bz_parse_int_range(colon + 1, 1, 65535, &port) != 0)
			return -1;
		hl = (size_t)(colon - (at + 1));
	} else
		hl = strlen(at + 1);
	/* ssh_config "Host *.bz" gives us web1.bz: the target is web1 */
	if (hl > 3 && strncmp(at + 1 + hl - 3, ".bz", 3) == 0)
		hl -= 3;
	if (hl == 0 || hl > 255 || (size_t)(at - arg) > 64)
		return -1;
	t->user = strndup(arg, (size_t)(at - arg));
	t->host = strndup(at + 1, hl);
	t->port = port;
	if (t->user == NULL || t->host == NULL) {
		free(t->user);
		free(t->host);
		return -1;
	}
	return 0;
}

int
main(int argc, char **argv)
{
	struct bzsshd_opts o;
	struct bz_target t;
	const char *dir = NULL, *stdio_arg = NULL;
	char err[BZSSHD_ERRLEN];
	int i, rc = 2;

	memset(&o, 0, sizeof(o));
	signal(SIGPIPE, SIG_IGN);
	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--config-dir") == 0 && i + 1 < argc) {
			dir = argv[++i];
		} else if (strcmp(argv[i], "-v") == 0) {
			o.verbose = 1;
		} else if (strcmp(argv[i], "-h") == 0 ||
		    strcmp(argv[i], "--help") == 0) {
			usage(stdout);
			return 0;
		} else if (strcmp(argv[i], "--version") == 0) {
			printf("bzsshd %s\n", BZSSHD_VERSION);
			return 0;
		} else if (strcmp(argv[i], "--fdpass") == 0) {
			o.fdpass = 1;
		} else if (strcmp(argv[i], "--stdio") == 0 && i + 1 < argc) {
			stdio_arg = argv[++i];
		} else
			break;
	}
	bz_log_init("bzsshd", o.verbose ? BZ_LOG_DEBUG : BZ_LOG_INFO);
	if (stdio_arg == NULL && i >= argc) {
		usage(stderr);
		return 2;
	}
	if (stdio_arg != NULL && i < argc) {
		fprintf(stderr, "bzsshd: unexpected argument %s\n", argv[i]);
		return 2;
	}
	if (sodium_init() < 0 || ssh_init() != SSH_OK ||
	    curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		fprintf(stderr, "bzsshd: cannot initialise libraries\n");
		return 1;
	}
	o.config_dir_given = dir != NULL || getenv("BZ_CONFIG_DIR") != NULL;
	if (bz_config_dir_resolve(dir, &o.config_dir, err, sizeof(err)) != 0) {
		fprintf(stderr, "bzsshd: %s\n", err);
		rc = 1;
		goto out;
	}
	if (stdio_arg != NULL) {
		if (bz_settings_load(&o, err, sizeof(err)) != 0) {
			fprintf(stderr, "bzsshd: %s\n", err);
			rc = 1;
			goto out;
		}
		if (parse_target(stdio_arg, &t) != 0) {
			fprintf(stderr, "bzsshd: --stdio wants "
			    "USER@TARGET[:PORT], got \"%s\"\n", stdio_arg);
			goto out;
		}
		rc = bz_serve_stdio(&o, &t);
		free(t.user);
		free(t.host);
	} else if (strcmp(argv[i], "login") == 0)
		rc = bz_cmd_login(&o, argc - i, argv + i);
	else if (strcmp(argv[i], "logout") == 0)
		rc = bz_cmd_logout(&o, argc - i, argv + i);
	else if (strcmp(argv[i], "status") == 0)
		rc = bz_cmd_status(&o, argc - i, argv + i);
	else if (strcmp(argv[i], "targets") == 0)
		rc = bz_cmd_targets(&o, argc - i, argv + i);
	else if (strcmp(argv[i], "ssh-config") == 0)
		rc = bz_cmd_ssh_config(&o, argc - i, argv + i);
	else if (strcmp(argv[i], "forget-target") == 0)
		rc = bz_cmd_forget_target(&o, argc - i, argv + i);
	else if (strcmp(argv[i], "--listen") == 0) {
		fprintf(stderr, "bzsshd: --listen is not implemented yet\n");
		rc = 2;
	} else {
		fprintf(stderr, "bzsshd: unknown command %s (see --help)\n",
		    argv[i]);
		rc = 2;
	}
 out:
	free(o.config_dir);
	free(o.ciphers);
	curl_global_cleanup();
	ssh_finalize();
	return rc;
}
