#!/bin/bash
# Demo (`make demo`): brings up a sandbox on 127.0.0.1 (test IdP, bzproxy, agents
# web1 and db1, a logged-in test user), runs the real OpenSSH client through
# the chain, shows the audit log lines it produced, shows a denied root login
# with its reason, and stops everything. Exits non-zero if any step fails.
#
#   tests/demo.sh [BUILDDIR]     (BUILDDIR defaults to $BZ_BUILDDIR, then the source tree)

set -u
set -o pipefail

SRCDIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export BZ_BUILDDIR=${1:-${BZ_BUILDDIR:-$SRCDIR}}
SANDBOX=$SRCDIR/tests/sandbox
DIR=$(mktemp -d "${TMPDIR:-/tmp}/bz-demo.XXXXXX") || exit 1
STEP=0
FAILED=0

if [ -t 1 ]; then B=$'\e[1m' G=$'\e[32m' R=$'\e[31m' N=$'\e[0m'; else B='' G='' R='' N=''; fi

step() { STEP=$((STEP + 1)); printf '\n%s== %d. %s%s\n' "$B" "$STEP" "$*" "$N"; }
ok() { printf '%s   ok:%s %s\n' "$G" "$N" "$*"; }
fail() { printf '%s   FAILED:%s %s\n' "$R" "$N" "$*"; FAILED=1; }
show() { printf '   $ %s\n' "$*"; }

cleanup() {
	local rc=$?
	step "Stop everything"
	"$SANDBOX" down "$DIR"
	if [ $rc -ne 0 ] || [ $FAILED -ne 0 ]; then
		echo "   logs kept in $DIR/logs"
		printf '\n%sDemo FAILED.%s\n' "$R" "$N"
		[ $rc -ne 0 ] || rc=1
	else
		rm -rf "$DIR"
		printf '\n%sDemo passed.%s\n' "$G" "$N"
	fi
	exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

step "Start a sandbox in $DIR: test IdP, bzproxy, agents web1 + db1; log alice in (OIDC + TOTP)"
show "tests/sandbox up $DIR"
"$SANDBOX" up "$DIR" || { fail "sandbox up"; exit 1; }
# shellcheck disable=SC1091
. "$DIR/env"
ok "sandbox is up; bzsshd session for $BZ_TEST_USER in $BZ_CLIENT_DIR"
echo "   generated ssh config ($BZ_SSH_CONFIG):"
sed 's/^/     | /' "$BZ_SSH_CONFIG"

step "Real OpenSSH through the chain: ssh -> bzsshd -> bzproxy -> bzagent(web1)"
lines_before=$(wc -l <"$BZ_AUDIT_LOG" 2>/dev/null || echo 0)
show "ssh -F $BZ_SSH_CONFIG $BZ_UNIX_USER@web1 'id -un; hostname'"
out=$(ssh -F "$BZ_SSH_CONFIG" "$BZ_UNIX_USER@web1" 'id -un; hostname' </dev/null 2>"$DIR/ssh.err")
rc=$?
printf '%s\n' "$out" | sed 's/^/     > /'
sed 's/^/     ! /' "$DIR/ssh.err"
if [ $rc -eq 0 ] && [ "$(printf '%s\n' "$out" | head -n 1)" = "$BZ_UNIX_USER" ]; then
	ok "ran as $BZ_UNIX_USER on web1 (exit 0)"
else
	fail "expected exit 0 and first line '$BZ_UNIX_USER'; got exit $rc"
fi

step "Audit log lines for that session ($BZ_AUDIT_LOG)"
if [ -s "$BZ_AUDIT_LOG" ]; then
	tail -n +"$((lines_before + 1))" "$BZ_AUDIT_LOG" | sed 's/^/     /'
	n=$(tail -n +"$((lines_before + 1))" "$BZ_AUDIT_LOG" | grep -c '"web1"')
	if [ "$n" -gt 0 ]; then ok "$n new line(s) mention web1"; else fail "no new audit line mentions web1"; fi
	show "bzproxy -c \$BZ_PROXY_CONFIG audit verify"
	if "$BZ_BZPROXY" -c "$BZ_PROXY_CONFIG" audit verify 2>&1 | sed 's/^/     > /'; then
		ok "hash chain verifies"
	else
		fail "bzproxy audit verify"
	fi
else
	fail "audit log is missing or empty"
fi

step "A denied attempt: root@web1 (no policy allows root)"
lines_before=$(wc -l <"$BZ_AUDIT_LOG" 2>/dev/null || echo 0)
show "ssh -F $BZ_SSH_CONFIG root@web1 id"
ssh -F "$BZ_SSH_CONFIG" -o BatchMode=yes root@web1 id </dev/null >"$DIR/deny.out" 2>"$DIR/deny.err"
rc=$?
sed 's/^/     > /' "$DIR/deny.out"
sed 's/^/     ! /' "$DIR/deny.err"
if [ $rc -eq 255 ] && [ -s "$DIR/deny.err" ] && [ ! -s "$DIR/deny.out" ]; then
	ok "refused: ssh exit 255 with the reason on stderr"
else
	fail "expected ssh exit 255, nothing on stdout and a reason on stderr; got exit $rc"
fi
echo "   audit:"
tail -n +"$((lines_before + 1))" "$BZ_AUDIT_LOG" 2>/dev/null | sed 's/^/     /'
if tail -n +"$((lines_before + 1))" "$BZ_AUDIT_LOG" 2>/dev/null | grep -q '"root"'; then
	ok "the denial is in the audit log"
else
	fail "no audit line for the root attempt"
fi

[ $FAILED -eq 0 ]
