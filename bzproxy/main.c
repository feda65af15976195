/* main.c: bzproxy's command line; each command lives in its own file. */
#include "bzproxy.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <curl/curl.h>
#include <sodium.h>

#include "log.h"
#include "policy_cmd.h"
#include "util.h"

#define DEFAULT_CONFIG "/etc/bzproxy/bzproxy.yaml"

static void
usage(FILE *f)
{
	fprintf(f,
"usage: bzproxy [-c CONFIG] [-v] COMMAND [ARGS]\n"
"\n"
"bzproxy is the bastion service. bzsshd (on users' machines) and bzagent\n"
"(on targets) connect to it over wss; it checks the user's IdP token and\n"
"TOTP code, evaluates the policies, writes every decision to a hash-chained\n"
"audit log, signs what it allows, and relays the channels' bytes.\n"
"\n"
"Commands:\n"
"  serve\n"
"        Run the service in the foreground. SIGHUP reloads the policies (a\n"
"        set with errors is refused and the old one kept; the errors are\n"
"        logged as FILE:LINE:COLUMN); SIGTERM or SIGINT stops (open\n"
"        sessions and channels end on the audit record, their users told\n"
"        why). Writes its pid to STATE_DB.pid while running.\n"
"  user add EMAIL [--print-secret]\n"
"        Enrol a user (or re-enrol: a new TOTP seed replaces the old one).\n"
"        Prints the otpauth:// URI for their authenticator app, and a QR\n"
"        code when stdout is a terminal. --print-secret also prints the\n"
"        base32 seed alone on the last line (for tests).\n"
"  user totp EMAIL --i-am-a-test\n"
"        Print the user's current TOTP code. For test sandboxes only.\n"
"  agent add NAME [--label KEY=VALUE ...]\n"
"        Register a target. The one-time enrolment token is printed alone\n"
"        on the last line of stdout (only its SHA-256 is stored); the\n"
"        proxy's public key for the agent's config goes to stderr. The\n"
"        agent's key is pinned at its first connection. Adding an existing\n"
"        agent replaces its labels, issues a new token and unpins its key.\n"
"  agent add --from FILE\n"
"        Register many targets in one transaction (all or none): FILE (-\n"
"        for stdin) holds one \"NAME [KEY=VALUE ...]\" per line (# starts a\n"
"        comment line). Prints \"NAME TOKEN\" per agent on stdout.\n"
"  key\n"
"        Print the proxy's Ed25519 public key (base64url) on the last line,\n"
"        creating the key file (0600) when missing.\n"
"  policy check [--strict] [PATH]\n"
"        Load the policy set (PATH, else the configured policies) and print\n"
"        every error as FILE:LINE:COLUMN; exit 0 when it is valid.\n"
"  policy explain [PATH] --user U --target T --unix-user X --action A ...\n"
"        Print the decision for one request and the rule that made it.\n"
"  policy test [PATH] TESTS.yaml\n"
"        Run a policy repository's test cases (TAP output). Without PATH\n"
"        the configured policies are used. `bzproxy policy check --help`\n"
"        lists every option.\n"
"  policy reload\n"
"        Send SIGHUP to the running server (pid from STATE_DB.pid).\n"
"  audit verify [--checkpoints FILE]\n"
"        Check the audit log's hash chain from its first line, and its\n"
"        tail against the latest signed checkpoint in FILE (default\n"
"        audit_checkpoints): a cut or rewritten log is named.\n"
"\n"
"Options:\n"
"  -c CONFIG   The YAML config file (default $BZPROXY_CONFIG, else\n"
"              " DEFAULT_CONFIG "). Keys: listen (HOST:PORT, an IP\n"
"              address), tls_cert, tls_key, state_db, signing_key,\n"
"              policies, audit_log, oidc.issuer, oidc.audience,\n"
"              oidc.ca_file, oidc.groups_claim (default groups), session_ttl\n"
"              (default 12h), audit_checkpoints (default AUDIT_LOG\n"
"              .checkpoints), audit_checkpoint_interval (default 60s),\n"
"              limits.* (links, links not logged in yet, sessions).\n"
"              Relative paths are relative to the config\n"
"              file. See docs/commands.md.\n"
"  -v          Debug messages on stderr (never tokens, codes or keys).\n"
"  -h, --help  This help.   --version  Print the version.\n"
"\n"
"Exit status: 0 success, 1 failure, 2 usage error.\n");
}

/*
 * Does `policy SUB ARGS` lack the PATH that policy_cmd.c expects first?
 * Then the configured policies are meant.
 */
static int
policy_wants_path(int argc, char **argv)
{
	int i, positional = 0;

	for (i = 2; i < argc; i++) {
		if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0)
			return 0;
		if (argv[i][0] != '-')
			positional++;
	}
	if (strcmp(argv[1], "check") == 0)
		return positional == 0;
	if (strcmp(argv[1], "explain") == 0)
		return argc == 2 || argv[2][0] == '-';
	if (strcmp(argv[1], "test") == 0)
		return argc == 3 && positional == 1;
	return 0;
}

/* `policy ...`: check/explain/test are policy_cmd.c's; reload is ours. */
static int
cmd_policy(const char *config_path, int argc, char **argv)
{
	struct bzp_config cfg;
	char err[BZP_ERRLEN * 2], **av;
	int i, rc, reload;

	if (argc < 2) {
		fprintf(stderr, "bzproxy: policy check|explain|test|reload "
		    "(see --help)\n");
		return 2;
	}
	reload = strcmp(argv[1], "reload") == 0;
	if (!reload && !policy_wants_path(argc, argv))
		return bz_policy_cmd(argc - 1, argv + 1);
	if (reload && argc != 2) {
		fprintf(stderr, "bzproxy: policy reload takes no arguments\n");
		return 2;
	}
	if (bzp_config_load(config_path, &cfg, err, sizeof(err)) != 0) {
		fprintf(stderr, "bzproxy: %s\n", err);
		return 1;
	}
	if (reload)
		rc = bzp_cmd_policy_reload(&cfg);
	else if ((av = calloc((size_t)argc + 1, sizeof(*av))) == NULL)
		rc = 1;
	else {
		/* SUB PATH ARGS... */
		av[0] = argv[1];
		av[1] = cfg.policies;
		for (i = 2; i < argc; i++)
			av[i] = argv[i];
		av[argc] = NULL;
		rc = bz_policy_cmd(argc, av);
		free(av);
	}
	bzp_config_free(&cfg);
	return rc;
}

int
main(int argc, char **argv)
{
	struct bzp_config cfg;
	const char *config_path = getenv("BZPROXY_CONFIG");
	char err[BZP_ERRLEN * 2];
	int i, verbose = 0, rc;

	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "-c") == 0 && i + 1 < argc)
			config_path = argv[++i];
		else if (strcmp(argv[i], "-v") == 0)
			verbose = 1;
		else if (strcmp(argv[i], "-h") == 0 ||
		    strcmp(argv[i], "--help") == 0) {
			usage(stdout);
			return 0;
		} else if (strcmp(argv[i], "--version") == 0) {
			printf("bzproxy %s\n", BZP_VERSION);
			return 0;
		} else if (argv[i][0] == '-') {
			fprintf(stderr, "bzproxy: unknown option %s (see "
			    "--help)\n", argv[i]);
			return 2;
		} else
			break;
	}
	if (i >= argc) {
		usage(stderr);
		return 2;
	}
	if (config_path == NULL || config_path[0] == '\0')
		config_path = DEFAULT_CONFIG;
	bz_log_init("bzproxy", verbose ? BZ_LOG_DEBUG : BZ_LOG_INFO);
	signal(SIGPIPE, SIG_IGN);
	if (sodium_init() < 0 ||
	    curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		fprintf(stderr, "bzproxy: cannot initialise libraries\n");
		return 1;
	}
	argc -= i;
	argv += i;
	if (strcmp(argv[0], "policy") == 0) {
		rc = cmd_policy(config_path, argc, argv);
		goto out;
	}
	if (strcmp(argv[0], "serve") != 0 && strcmp(argv[0], "user") != 0 &&
	    strcmp(argv[0], "agent") != 0 && strcmp(argv[0], "key") != 0 &&
	    strcmp(argv[0], "audit") != 0) {
		fprintf(stderr, "bzproxy: unknown command %s (see --help)\n",
		    argv[0]);
		rc = 2;
		goto out;
	}
	if (bzp_config_load(config_path, &cfg, err, sizeof(err)) != 0) {
		fprintf(stderr, "bzproxy: %s\n", err);
		rc = 1;
		goto out;
	}
	if (strcmp(argv[0], "serve") == 0) {
		if (argc != 1) {
			fprintf(stderr, "bzproxy: serve takes no arguments\n");
			rc = 2;
		} else if (bz_totp_global_init() != 0) {
			fprintf(stderr, "bzproxy: cannot initialise liboath\n");
			rc = 1;
		} else if (bzp_fd_limit(&cfg.limits) != 0)
			rc = 1;
		else
			rc = bzp_serve(&cfg);
	} else if (strcmp(argv[0], "user") == 0)
		rc = bzp_cmd_user(&cfg, argc, argv);
	else if (strcmp(argv[0], "agent") == 0)
		rc = bzp_cmd_agent(&cfg, argc, argv);
	else if (strcmp(argv[0], "key") == 0)
		rc = bzp_cmd_key(&cfg, argc, argv);
	else
		rc = bzp_cmd_audit(&cfg, argc, argv);
	bzp_config_free(&cfg);
 out:
	/* no curl_global_cleanup: after serve a JWKS fetch may still be
	 * finishing on its thread (bz_jwks_cache_free does not wait) */
	return rc;
}
