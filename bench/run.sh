#!/bin/bash
# Benchmark (`make bench`): the bastion chain (ssh -> bzsshd -> bzproxy -> bzagent)
# against a plain OpenSSH sshd, same machine, same run, 127.0.0.1 only.
# Measures cold `ssh HOST true` latency (best and median of N runs) and
# 100 MiB upload (`cat >/dev/null`) / download (`head -c ... /dev/zero`)
# throughput (best of M runs), then prints a table with chain/plain ratios.
#
#   bench/run.sh [BUILDDIR]
# Environment: BZ_BENCH_RUNS (cold runs, default 10), BZ_BENCH_XFER_RUNS
# (transfer runs, default 3), BZ_BENCH_BYTES (default 104857600).

set -u
set -o pipefail

SRCDIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export BZ_BUILDDIR=${1:-${BZ_BUILDDIR:-$SRCDIR}}
export BZ_SANDBOX_VERBOSE=0     # no debug logging while measuring
SANDBOX=$SRCDIR/tests/sandbox
RUNS=${BZ_BENCH_RUNS:-10}
XRUNS=${BZ_BENCH_XFER_RUNS:-3}
BYTES=${BZ_BENCH_BYTES:-104857600}

W=$(mktemp -d "${TMPDIR:-/tmp}/bz-bench.XXXXXX") || exit 1
SB=$W/sandbox

say() { printf 'bench: %s\n' "$*" >&2; }
die() { printf 'bench: error: %s\n' "$*" >&2; exit 1; }

# shellcheck source=bench/lib.sh
. "$SRCDIR/bench/lib.sh"

cleanup() {
	local rc=$?
	plain_sshd_stop_all
	"$SANDBOX" down "$SB" >/dev/null 2>&1
	if [ $rc -eq 0 ]; then rm -rf "$W"; else say "work files kept in $W"; fi
	exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ------------------------------------------------------------ the chain
say "starting the sandbox (chain)"
"$SANDBOX" up "$SB" >"$W/sandbox-up.log" 2>&1 || { cat "$W/sandbox-up.log" >&2; die "sandbox up failed"; }
# shellcheck disable=SC1091
. "$SB/env"
CHAIN=(ssh -F "$BZ_SSH_CONFIG" -o BatchMode=yes web1)

# ------------------------------------------------------------ plain sshd
say "starting a plain OpenSSH sshd"
plain_sshd_start plain
PLAIN=(ssh -F "$W/plain/ssh_config" plain)
"${CHAIN[@]}" true </dev/null || die "cannot ssh through the chain"

# ------------------------------------------------------------ measures
# xfer NAME DIRECTION CMD...: best MB/s (10^6 bytes/s) of XRUNS runs.
xfer() {
	local name=$1 dir=$2 t0 t1 best=0 us i n
	shift 2
	for i in $(seq "$XRUNS"); do
		t0=$(now_ns)
		if [ "$dir" = up ]; then
			head -c "$BYTES" /dev/zero | "$@" 'cat >/dev/null' || die "$name upload failed (run $i)"
		else
			n=$("$@" "head -c $BYTES /dev/zero" </dev/null | wc -c) || die "$name download failed (run $i)"
			[ "$n" = "$BYTES" ] || die "$name download: got $n bytes, expected $BYTES"
		fi
		t1=$(now_ns)
		us=$(((t1 - t0) / 1000))
		best=$(awk -v b="$best" -v us="$us" -v n="$BYTES" 'BEGIN {v = n / us; printf "%.1f", (v > b) ? v : b}')
	done
	echo "$best"
}

say "cold ssh true: $RUNS runs each"
cold_runs "$W/cold-chain" "$RUNS" "${CHAIN[@]}"
cold_runs "$W/cold-plain" "$RUNS" "${PLAIN[@]}"
say "upload/download of $BYTES bytes: best of $XRUNS runs each"
UP_CHAIN=$(xfer chain up "${CHAIN[@]}") || exit 1
UP_PLAIN=$(xfer plain up "${PLAIN[@]}") || exit 1
DOWN_CHAIN=$(xfer chain down "${CHAIN[@]}") || exit 1
DOWN_PLAIN=$(xfer plain down "${PLAIN[@]}") || exit 1

ratio() { awk -v a="$1" -v b="$2" 'BEGIN {if (b > 0) printf "%.2f", a / b; else print "-"}'; }
row() { printf '%-34s %12s %12s %12s\n' "$1" "$2" "$3" "$(ratio "$2" "$3")"; }

echo
echo "bastion chain vs plain OpenSSH sshd, 127.0.0.1, $(date -u '+%F %T') UTC"
echo "$(ssh -V 2>&1); $(nproc) CPUs; build: $BZ_BUILDDIR"
echo
printf '%-34s %12s %12s %12s\n' "measure" "chain" "plain" "chain/plain"
printf '%-34s %12s %12s %12s\n' "----------------------------------" "------------" "------------" "------------"
row "cold ssh true, best (ms)" "$(best_ms "$W/cold-chain")" "$(best_ms "$W/cold-plain")"
row "cold ssh true, median of $RUNS (ms)" "$(median_ms "$W/cold-chain")" "$(median_ms "$W/cold-plain")"
row "upload $((BYTES / 1048576)) MiB (MB/s)" "$UP_CHAIN" "$UP_PLAIN"
row "download $((BYTES / 1048576)) MiB (MB/s)" "$DOWN_CHAIN" "$DOWN_PLAIN"
echo
echo "(latency: chain/plain < 1 means the chain is faster; throughput: > 1 means faster)"
