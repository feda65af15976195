#!/bin/bash
# End-to-end tests (automake TESTS entry): Debian's pytest-3 runs tests/e2e,
# which drive the real OpenSSH client through bzsshd -> bzproxy -> bzagent in
# a sandbox on 127.0.0.1. Fails when a test fails AND when no test ran.
#
# Environment: BZ_BUILDDIR (built binaries; default: the source tree),
# BZ_SRCDIR (default: this script's tree), BZ_E2E_ARGS (extra pytest args split on
# spaces, e.g. "-x --tb=short"; for -k EXPR with spaces use PYTEST_ADDOPTS),
# BZ_E2E_KEEP=1 keeps the sandbox folder for inspection.

set -u
SRCDIR=${BZ_SRCDIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
export BZ_SRCDIR=$SRCDIR
export BZ_BUILDDIR=${BZ_BUILDDIR:-$SRCDIR}
PYTEST=${PYTEST:-/usr/bin/pytest-3}

[ -x "$PYTEST" ] || { echo "e2e: $PYTEST missing: apt-get install python3-pytest" >&2; exit 1; }
for b in bzproxy/bzproxy agent/bzagent bzsshd/bzsshd; do
	[ -x "$BZ_BUILDDIR/$b" ] || { echo "e2e: $BZ_BUILDDIR/$b is missing (build first)" >&2; exit 1; }
done

report=$(mktemp "${TMPDIR:-/tmp}/bz-e2e-junit.XXXXXX.xml") || exit 1
trap 'rm -f "$report"' EXIT

# No cache or bytecode in the (possibly read-only) source tree.
export PYTHONDONTWRITEBYTECODE=1
# shellcheck disable=SC2086
"$PYTEST" -v -p no:cacheprovider --junitxml="$report" ${BZ_E2E_ARGS:-} "$SRCDIR/tests/e2e"
rc=$?
if [ $rc -eq 5 ]; then
	echo "e2e: pytest collected no tests" >&2
	exit 1
fi
[ $rc -eq 0 ] || exit $rc

# pytest exits 0 when every test was skipped: that is not a pass.
/usr/bin/python3 - "$report" <<'EOF'
import sys, xml.etree.ElementTree as ET
root = ET.parse(sys.argv[1]).getroot()
suites = [root] if root.tag == "testsuite" else root.findall("testsuite")
tests = sum(int(s.get("tests", 0)) for s in suites)
skipped = sum(int(s.get("skipped", 0)) for s in suites)
ran = tests - skipped
print("e2e: %d test(s) ran, %d skipped" % (ran, skipped))
sys.exit(0 if ran > 0 else 1)
EOF
