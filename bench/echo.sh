#!/bin/bash
# Interactive latency benchmark: keystroke echo, one byte at a time, through
# `ssh -tt HOST 'stty raw -echo; cat'` on a pty (bench/echo_rtt.py), same
# machine, same run, 127.0.0.1 only, for:
#   chain   the bastion (tests/sandbox, host web1), once per build given,
#           each build in a sandbox of its own;
#   jump    plain OpenSSH through a jump host (ProxyCommand 'ssh -W %h:%p
#           jump', a second plain sshd), as bench/transfer.sh;
#   direct  plain OpenSSH straight to the target sshd.
# All sessions are opened first, then take turns byte by byte, so that
# they share whatever else the machine does meanwhile. Prints the median
# and the 99th percentile of R round trips in microseconds for each, the
# ratios of the last build's to the jump host's and to direct OpenSSH,
# and its median minus the jump host's. Only the echo is timed, not the
# session set-up.
#
#   bench/echo.sh [BUILDDIR...]          (default: this tree)
# Environment: BZ_BENCH_ECHO_ROUNDS (default 300).

set -u
set -o pipefail

SRCDIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export BZ_SANDBOX_VERBOSE=0     # no debug logging while measuring
SANDBOX=$SRCDIR/tests/sandbox
ROUNDS=${BZ_BENCH_ECHO_ROUNDS:-300}
BUILDS=("$@")
[ ${#BUILDS[@]} -gt 0 ] || BUILDS=("$SRCDIR")

say() { printf 'bench: %s\n' "$*" >&2; }
die() { printf 'bench: error: %s\n' "$*" >&2; exit 1; }

case $ROUNDS in '' | *[!0-9]* | 0) die "BZ_BENCH_ECHO_ROUNDS must be a positive number" ;; esac
for b in "${BUILDS[@]}"; do
	[ -x "$b/bzsshd/bzsshd" ] || die "$b: no bzsshd/bzsshd (build it first)"
done

W=$(mktemp -d "${TMPDIR:-/tmp}/bz-echo.XXXXXX") || exit 1
SBS=()

# shellcheck source=bench/lib.sh
. "$SRCDIR/bench/lib.sh"

cleanup() {
	local rc=$?
	plain_sshd_stop_all
	for sb in "${SBS[@]}"; do "$SANDBOX" down "$sb" >/dev/null 2>&1; done
	if [ $rc -eq 0 ]; then rm -rf "$W"; else say "work files kept in $W"; fi
	exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# pct FILE P: the P-th percentile (nearest rank) of the numbers in FILE
pct() {
	sort -n "$1" | awk -v p="$2" '{a[NR] = $1} END {
		r = int(NR * p / 100 + 0.999999); if (r < 1) r = 1; if (r > NR) r = NR
		print a[r] }'
}

jump_pair_start

declare -A R
KEYS=()
SESSIONS=()
i=0
for b in "${BUILDS[@]}"; do
	i=$((i + 1))
	key=chain$i
	KEYS+=("$key")
	sb=$W/sandbox$i
	SBS+=("$sb")
	say "build $i ($b): starting a sandbox"
	BZ_BUILDDIR=$b "$SANDBOX" up "$sb" >"$W/sandbox$i-up.log" 2>&1 ||
		{ cat "$W/sandbox$i-up.log" >&2; die "sandbox up failed for $b"; }
	# shellcheck disable=SC1091
	cfg=$(. "$sb/env" && echo "$BZ_SSH_CONFIG")
	ssh -F "$cfg" web1 true </dev/null || die "cannot ssh through the chain of $b"
	SESSIONS+=("$key" -F "$cfg" web1 --)
	R[$key.name]=$b
done
SESSIONS+=(jump -F "$W/target/ssh_config" -o "ProxyCommand=$JUMPCMD" target --)
SESSIONS+=(direct -F "$W/target/ssh_config" target)
say "$ROUNDS echo rounds, the sessions taking turns"
$PY "$SRCDIR/bench/echo_rtt.py" "$ROUNDS" "$W" "${SESSIONS[@]}" || die "the echo run failed"
for k in "${KEYS[@]}" jump direct; do
	R[$k.med]=$(pct "$W/$k.us" 50)
	R[$k.p99]=$(pct "$W/$k.us" 99)
done

ratio() { awk -v a="$1" -v b="$2" 'BEGIN {if (b > 0) printf "%.2f", a / b; else print "-"}'; }
LAST=${KEYS[${#KEYS[@]} - 1]}
echo
echo "keystroke echo (1 byte, ssh -tt, raw pty), 127.0.0.1, $(date -u '+%F %T') UTC"
echo "$(ssh -V 2>&1); $(nproc) CPUs; $ROUNDS rounds each"
i=0
for k in "${KEYS[@]}"; do i=$((i + 1)); echo "chain$i: ${R[$k.name]}"; done
echo
printf '%-16s %12s %12s\n' path "median (us)" "p99 (us)"
for k in "${KEYS[@]}" jump direct; do
	printf '%-16s %12s %12s\n' "$k" "${R[$k.med]}" "${R[$k.p99]}"
done
printf '%-16s %12s %12s\n' "$LAST/jump" "$(ratio "${R[$LAST.med]}" "${R[jump.med]}")" \
	"$(ratio "${R[$LAST.p99]}" "${R[jump.p99]}")"
printf '%-16s %12s %12s\n' "$LAST/direct" "$(ratio "${R[$LAST.med]}" "${R[direct.med]}")" \
	"$(ratio "${R[$LAST.p99]}" "${R[direct.p99]}")"
printf '%-16s %12s\n' "$LAST-jump (us)" "$(awk -v a="${R[$LAST.med]}" -v b="${R[jump.med]}" 'BEGIN {print a - b}')"
