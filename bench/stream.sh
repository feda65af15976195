#!/bin/bash
# Stream benchmark: one or more builds of the bastion chain (ssh -> bzsshd
# -> bzproxy -> bzagent) and a plain OpenSSH sshd, same machine, same run,
# 127.0.0.1 only. For each: an `ssh cat` stream of N bytes each way
# (upload `cat >/dev/null`, download `head -c N /dev/zero`), best of M
# runs in MB/s (10^6 bytes/s); for the chain also the CPU seconds per GiB
# that bzsshd, bzproxy and bzagent spent on the best run (bzsshd's from
# bench/cpu_of.py around it, the daemons' from /proc/PID/stat), and cold
# `ssh web1 true` (median of R runs, ms); the same for plain OpenSSH
# through a jump sshd (ProxyCommand ssh -W, as bench/transfer.sh) and
# direct. Give two builds (say, before and after a change) to see what
# the change costs: column last/first is the last build over the first,
# last/jump the last build over the jump host.
#
#   bench/stream.sh BUILDDIR [BUILDDIR...]     (default: this tree)
# Environment: BZ_BENCH_STREAM_BYTES (default 1073741824), BZ_BENCH_XFER_RUNS
# (default 2), BZ_BENCH_RUNS (cold runs, default 10).

set -u
set -o pipefail

SRCDIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export BZ_SANDBOX_VERBOSE=0     # no debug logging while measuring
SANDBOX=$SRCDIR/tests/sandbox
BYTES=${BZ_BENCH_STREAM_BYTES:-1073741824}
XRUNS=${BZ_BENCH_XFER_RUNS:-2}
RUNS=${BZ_BENCH_RUNS:-10}
BUILDS=("$@")
[ ${#BUILDS[@]} -gt 0 ] || BUILDS=("$SRCDIR")

say() { printf 'bench: %s\n' "$*" >&2; }
die() { printf 'bench: error: %s\n' "$*" >&2; exit 1; }

case $BYTES in '' | *[!0-9]* | 0) die "BZ_BENCH_STREAM_BYTES must be a positive number of bytes" ;; esac
case $XRUNS in '' | *[!0-9]* | 0) die "BZ_BENCH_XFER_RUNS must be a positive number" ;; esac
case $RUNS in '' | *[!0-9]* | 0) die "BZ_BENCH_RUNS must be a positive number" ;; esac
for b in "${BUILDS[@]}"; do
	[ -x "$b/bzsshd/bzsshd" ] || die "$b: no bzsshd/bzsshd (build it first)"
done

W=$(mktemp -d "${TMPDIR:-/tmp}/bz-stream.XXXXXX") || exit 1
SB=

# shellcheck source=bench/lib.sh
. "$SRCDIR/bench/lib.sh"

cleanup() {
	local rc=$?
	plain_sshd_stop_all
	[ -z "$SB" ] || "$SANDBOX" down "$SB" >/dev/null 2>&1
	if [ $rc -eq 0 ]; then rm -rf "$W"; else say "work files kept in $W"; fi
	exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

TICK=$(getconf CLK_TCK)
# cpu_ticks PID: user + system clock ticks so far (fields 14 and 15; the
# command name, field 2, may hold blanks: cut after its closing paren)
cpu_ticks() { sed 's/.*) //' "/proc/$1/stat" | awk '{print $12 + $13}'; }

# stream NAME DIR CMD...: one transfer; prints "SECONDS BZSSHD_CPU" (the
# latter from $W/NAME.cpu, written by cpu_of.py; "-" for plain ssh)
stream() {
	local name=$1 dir=$2 t0 t1 n cpu=-
	shift 2
	# with ProxyUseFdpass bzsshd outlives ssh a little: an earlier run's
	# times must not land in this run's file
	while pgrep -f "cpu_of.py $W/$name.cpu" >/dev/null; do sleep 0.1; done
	rm -f "$W/$name.cpu"
	t0=$(now_ns)
	if [ "$dir" = up ]; then
		head -c "$BYTES" /dev/zero | "$@" 'cat >/dev/null' || return 1
	else
		n=$("$@" "head -c $BYTES /dev/zero" </dev/null | wc -c) || return 1
		[ "$n" = "$BYTES" ] || { say "$name download: got $n bytes"; return 1; }
	fi
	t1=$(now_ns)
	# ssh may return before its ProxyCommand wrote its times
	for _ in $(seq 50); do [ -s "$W/$name.cpu" ] && break; sleep 0.1; done
	[ -s "$W/$name.cpu" ] && cpu=$(awk '{print $1 + $2}' "$W/$name.cpu")
	echo "$(((t1 - t0) / 1000)) $cpu"
}

# measure KEY DIR CMD...: best of XRUNS; sets R[KEY.DIR.mbs] and, for the
# chain (PROXY_PID and AGENT_PID set), the CPU s/GiB of the best run.
declare -A R
measure() {
	local key=$1 dir=$2 best=0 i out us cpu p0 a0 p1 a1
	shift 2
	for i in $(seq "$XRUNS"); do
		if [ -n "${PROXY_PID:-}" ]; then
			p0=$(cpu_ticks "$PROXY_PID")
			a0=$(cpu_ticks "$AGENT_PID")
		fi
		out=$(stream "$key" "$dir" "$@") || die "$key $dir failed (run $i)"
		read -r us cpu <<<"$out"
		if [ -n "${PROXY_PID:-}" ]; then
			p1=$(cpu_ticks "$PROXY_PID")
			a1=$(cpu_ticks "$AGENT_PID")
		fi
		if [ "$best" = 0 ] || [ "$us" -lt "$best" ]; then
			best=$us
			R[$key.$dir.mbs]=$(awk -v n="$BYTES" -v us="$us" 'BEGIN {printf "%.1f", n / us}')
			if [ -n "${PROXY_PID:-}" ]; then
				R[$key.$dir.bzsshd]=$(per_gib "$cpu")
				R[$key.$dir.bzproxy]=$(per_gib "$(awk -v t=$((p1 - p0)) -v hz="$TICK" 'BEGIN {print t / hz}')")
				R[$key.$dir.bzagent]=$(per_gib "$(awk -v t=$((a1 - a0)) -v hz="$TICK" 'BEGIN {print t / hz}')")
			fi
		fi
	done
}
per_gib() {
	case $1 in -) echo - ;; *) awk -v s="$1" -v n="$BYTES" 'BEGIN {printf "%.2f", s * 1073741824 / n}' ;; esac
}

# ------------------------------------------------------------ the builds
KEYS=()
i=0
for b in "${BUILDS[@]}"; do
	i=$((i + 1))
	key=build$i
	KEYS+=("$key")
	SB=$W/sandbox$i
	say "build $i ($b): starting a sandbox"
	BZ_BUILDDIR=$b "$SANDBOX" up "$SB" >"$W/sandbox$i-up.log" 2>&1 ||
		{ cat "$W/sandbox$i-up.log" >&2; die "sandbox up failed for $b"; }
	# shellcheck disable=SC1090,SC1091
	. "$SB/env"
	# bzsshd under cpu_of.py, which writes its CPU times to $W/KEY.cpu
	sed "s|ProxyCommand |ProxyCommand $SRCDIR/bench/cpu_of.py $W/$key.cpu |" \
		"$BZ_SSH_CONFIG" >"$W/$key.ssh_config"
	CHAIN=(ssh -F "$W/$key.ssh_config" -o BatchMode=yes web1)
	"${CHAIN[@]}" true </dev/null || die "cannot ssh through the chain of $b"
	PROXY_PID=$BZ_PROXY_PID
	AGENT_PID=$BZ_AGENT_WEB1_PID
	say "build $i: cold ssh true x $RUNS, $BYTES bytes each way x $XRUNS"
	cold_runs "$W/cold-$key" "$RUNS" "${CHAIN[@]}"
	R[$key.cold]=$(median_ms "$W/cold-$key")
	measure "$key" up "${CHAIN[@]}"
	measure "$key" down "${CHAIN[@]}"
	"$SANDBOX" down "$SB" >/dev/null 2>&1
	SB=
	R[$key.name]=$b
done

# ------------------------------------------------------------ plain sshd
unset PROXY_PID AGENT_PID
say "plain OpenSSH sshd, direct and through a jump sshd (ssh -W)"
plain_sshd_start plain
plain_sshd_start jump
PLAIN=(ssh -F "$W/plain/ssh_config" plain)
JUMP=(ssh -F "$W/plain/ssh_config" -o "ProxyCommand=ssh -F $(printf %q "$W/jump/ssh_config") -W %h:%p jump" plain)
cold_runs "$W/cold-plain" "$RUNS" "${PLAIN[@]}"
R[plain.cold]=$(median_ms "$W/cold-plain")
cold_runs "$W/cold-jump" "$RUNS" "${JUMP[@]}"
R[jump.cold]=$(median_ms "$W/cold-jump")
measure plain up "${PLAIN[@]}"
measure plain down "${PLAIN[@]}"
measure jump up "${JUMP[@]}"
measure jump down "${JUMP[@]}"

# ------------------------------------------------------------ the table
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {if (a != "-" && b != "-" && b > 0) printf "%.2f", a / b; else print "-"}'; }
FIRST=${KEYS[0]}
LAST=${KEYS[${#KEYS[@]} - 1]}
row() { # LABEL FIELD [plain]
	local label=$1 f=$2 k line
	line=$(printf '%-30s' "$label")
	for k in "${KEYS[@]}"; do line+=$(printf ' %10s' "${R[$k.$f]:--}"); done
	line+=$(printf ' %10s %10s' "${R[jump.$f]:--}" "${R[plain.$f]:--}")
	line+=$(printf ' %10s' "$(ratio "${R[$LAST.$f]:--}" "${R[$FIRST.$f]:--}")")
	line+=$(printf ' %10s' "$(ratio "${R[$LAST.$f]:--}" "${R[jump.$f]:--}")")
	echo "$line"
}

echo
echo "bastion chain builds vs plain OpenSSH, 127.0.0.1, $(date -u '+%F %T') UTC"
echo "$(ssh -V 2>&1); $(nproc) CPUs; $BYTES bytes per stream, best of $XRUNS"
i=0
for k in "${KEYS[@]}"; do i=$((i + 1)); echo "build$i: ${R[$k.name]}"; done
echo
head=$(printf '%-30s' measure)
for k in "${KEYS[@]}"; do head+=$(printf ' %10s' "$k"); done
head+=$(printf ' %10s %10s %10s %10s' jump plain "last/first" "last/jump")
echo "$head"
row "cold ssh true, median (ms)" cold
row "upload (MB/s)" up.mbs
row "download (MB/s)" down.mbs
for p in bzsshd bzproxy bzagent; do
	row "upload: $p CPU s/GiB" "up.$p"
	row "download: $p CPU s/GiB" "down.$p"
done
