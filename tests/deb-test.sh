#!/bin/bash
# The Debian packages, end to end (CI, as root, on the Debian 12 machine
# itself): `make deb`, lintian without errors, examples/ansible/rollout.yml
# rolling bzagent out to hosts reached the old way (test_rollout.py; 3,
# or BZ_ROLLOUT_HOSTS),
# install them with apt (bzproxy's system user made, units in place and
# valid), then the chain
# from the installed programs: the end-to-end tests of tests/e2e/test_exec.py
# with /usr/sbin/bzproxy, /usr/sbin/bzagent and /usr/bin/bzsshd. Removes
# the packages at the end.
#
# usage: tests/deb-test.sh BUILDDIR     (a configured build tree)
set -euo pipefail
BUILDDIR=$(cd "${1:?usage: tests/deb-test.sh BUILDDIR}" && pwd)
SRCDIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
say() { echo "deb-test: $*"; }

[ "$(id -u)" = 0 ] || { say "needs root (installs the packages)"; exit 1; }
need=()
for p in debhelper lintian; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
		need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
	apt-get update -q
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need[@]}"
fi

make -C "$BUILDDIR" deb
debs=("$BUILDDIR"/deb/bzproxy_*.deb "$BUILDDIR"/deb/bzagent_*.deb \
	"$BUILDDIR"/deb/bzsshd_*.deb)
say "built: $(cd "$BUILDDIR/deb" && echo *.deb)"
# errors fail; warnings are shown
lintian --fail-on error --tag-display-limit 0 "$BUILDDIR"/deb/*.deb

# a fleet's rollout: the playbook installs bzagent itself, enrols the
# hosts and starts their agents; then they answer through the chain
PYTHONDONTWRITEBYTECODE=1 BZ_DEBS_DIR=$BUILDDIR/deb BZ_BUILDDIR=$BUILDDIR \
	BZ_SRCDIR=$SRCDIR /usr/bin/pytest-3 -q -p no:cacheprovider \
	"$SRCDIR/tests/e2e/test_rollout.py"

cleanup() {
	DEBIAN_FRONTEND=noninteractive apt-get purge -y -q bzproxy bzagent bzsshd >/dev/null 2>&1 || true
	rm -rf "${fake:-}"
}
trap cleanup EXIT
DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${debs[@]}"
for f in /usr/sbin/bzproxy /usr/sbin/bzagent /usr/bin/bzsshd \
	/lib/systemd/system/bzproxy.service /lib/systemd/system/bzagent.service \
	/usr/share/man/man8/bzproxy.8.gz /usr/share/man/man8/bzagent.8.gz \
	/usr/share/man/man1/bzsshd.1.gz /usr/share/man/man5/bastion-policy.5.gz; do
	[ -e "$f" ] || { say "missing after install: $f"; exit 1; }
done
getent passwd bzproxy >/dev/null || { say "no bzproxy user"; exit 1; }
systemd-analyze verify /lib/systemd/system/bzproxy.service \
	/lib/systemd/system/bzagent.service
/usr/sbin/bzproxy --version && /usr/sbin/bzagent --version && /usr/bin/bzsshd --version

# the chain from the installed files: a build tree of links to them
fake=$(mktemp -d)
mkdir -p "$fake/bzproxy" "$fake/agent" "$fake/bzsshd"
ln -s /usr/sbin/bzproxy "$fake/bzproxy/bzproxy"
ln -s /usr/sbin/bzagent "$fake/agent/bzagent"
ln -s /usr/bin/bzsshd "$fake/bzsshd/bzsshd"
PYTHONDONTWRITEBYTECODE=1 BZ_BUILDDIR=$fake BZ_SRCDIR=$SRCDIR \
	/usr/bin/pytest-3 -q -p no:cacheprovider "$SRCDIR/tests/e2e/test_exec.py"
say "packages built, lint-clean, installed, and the chain ran from them"
