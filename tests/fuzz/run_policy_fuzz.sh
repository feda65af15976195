#!/bin/sh
# run_policy_fuzz.sh SECONDS: build the policy fuzzer (libFuzzer with
# AddressSanitizer and UndefinedBehaviorSanitizer) and run it for SECONDS
# (default 60) on a corpus seeded with policies/examples. Needs clang
# (apt-get install -y clang) and the Debian -dev packages of the build.
# Environment: FUZZ_DIR (build and corpus directory, default
# /tmp/bz-fuzz-policy), FUZZ_JOBS (parallel jobs, default 1).
set -eu
seconds=${1:-60}
src=$(cd "$(dirname "$0")/../.." && pwd)
out=${FUZZ_DIR:-/tmp/bz-fuzz-policy}
jobs=${FUZZ_JOBS:-1}
command -v clang >/dev/null || { echo "clang missing: apt-get install -y clang" >&2; exit 2; }
mkdir -p "$out/corpus"
c="$src/common"
clang -g -O1 -D_GNU_SOURCE -fsanitize=fuzzer,address,undefined \
    -fno-sanitize-recover=undefined -Wall -Wextra -Werror \
    -I"$c" "$src/tests/fuzz/fuzz_policy.c" \
    "$c/policy.c" "$c/policy_eval.c" "$c/policy_lint.c" "$c/tz.c" \
    "$c/util.c" "$c/buf.c" \
    $(pkg-config --cflags --libs yaml-0.1 libsodium jansson) \
    -o "$out/fuzz_policy"
cp "$src"/policies/examples/*.yaml "$src/policies/examples-tests.yaml" \
    "$out/corpus/" 2>/dev/null || true
cp /usr/share/zoneinfo/Europe/Paris "$out/corpus/tz-paris" 2>/dev/null || true
cd "$out"
par=
[ "$jobs" -gt 1 ] && par="-fork=$jobs"
exec ./fuzz_policy -max_total_time="$seconds" -max_len=65536 -timeout=10 \
    -rss_limit_mb=2048 $par -dict="$src/tests/fuzz/policy.dict" corpus
