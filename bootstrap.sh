#!/usr/bin/env bash
# One entry point for a fresh Debian 12 machine: install the Debian packages
# that are missing, build, then run the demo or the tests.
#
#   ./bootstrap.sh demo     install, build, run `make demo`
#   ./bootstrap.sh check    install, build, run `make check`
#   ./bootstrap.sh build    install and build only
#
# BZ_CONFIGURE_FLAGS adds configure options (CI passes --enable-werror and,
# for the sanitizer build, --enable-sanitizers). BZ_BUILD_DIR builds out of
# tree (default: in the source tree).
set -euo pipefail

srcdir=$(cd "$(dirname "$0")" && pwd)
goal=${1:-build}
case "$goal" in
demo|check|build|bench) ;;
*) echo "usage: $0 demo|check|build|bench" >&2; exit 2 ;;
esac

packages=(
	build-essential autoconf automake libtool pkg-config
	libssh-dev libssl-dev libwebsockets-dev libwebsockets-evlib-uv libuv1-dev
	libwslay-dev libyaml-dev libsodium-dev uthash-dev
	libjansson-dev libsqlite3-dev liboath-dev libqrencode-dev
	libcurl4-openssl-dev libcmocka-dev
	openssh-client openssh-server openssh-sftp-server openssl curl procps
	passwd git
	python3 python3-pytest python3-cryptography python3-yaml
	ansible-core sudo
)

missing=()
for p in "${packages[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
		missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	echo "bootstrap: installing ${missing[*]}"
	sudo_cmd=()
	[ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
	"${sudo_cmd[@]}" apt-get update -q
	"${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive \
		apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

builddir=${BZ_BUILD_DIR:-$srcdir}
cd "$srcdir"
[ -x configure ] || ./autogen.sh
mkdir -p "$builddir"
cd "$builddir"
# shellcheck disable=SC2086 # flags are words on purpose
[ -f Makefile ] || "$srcdir/configure" ${BZ_CONFIGURE_FLAGS:-}
make -j"$(nproc)"

case "$goal" in
demo) make demo ;;
check) make -j"$(nproc)" check || { cat tests/test-suite.log 2>/dev/null | tail -200; exit 1; } ;;
bench) make bench ;;
esac
