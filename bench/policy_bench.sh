#!/bin/sh
# policy_bench.sh [BUILDDIR] [RULES] [ITERATIONS]: build bench/policy_bench.c
# against BUILDDIR's common/libbzcommon.a (default: the source tree) with
# -O2 and run it: load time of 10,000 generated rules and the time of one
# request's evaluation against them. `make policy-bench` runs it too.
set -eu
src=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$src}
shift || true
lib="$build/common/libbzcommon.a"
[ -f "$lib" ] || { echo "policy_bench: no $lib (run make -C common first)" >&2; exit 2; }
out=$(mktemp -d "${TMPDIR:-/tmp}/bz-policy-bench.XXXXXX")
trap 'rm -rf "$out"' EXIT
${CC:-cc} -O2 -D_GNU_SOURCE -Wall -Wextra -I"$src/common" \
    "$src/bench/policy_bench.c" "$lib" \
    $(pkg-config --libs yaml-0.1 libsodium jansson openssl) \
    -o "$out/policy_bench"
"$out/policy_bench" "$@"
