#!/bin/bash
# File-transfer benchmark: three paths to the same machine, same run,
# 127.0.0.1 only:
#   chain   the bastion: ssh -> bzsshd (ProxyCommand) -> bzproxy -> bzagent
#           (tests/sandbox, host web1, user $BZ_UNIX_USER);
#   jump    plain OpenSSH through a jump host: ssh -o ProxyCommand='ssh -W
#           %h:%p jump' to a plain sshd ("target"), the jump host being a
#           second, separate plain sshd;
#   direct  plain OpenSSH straight to that target sshd.
# For each path, on a file of N bytes (a 64 MiB random block repeated):
# scp upload/download in its default mode (the SFTP protocol since OpenSSH
# 9.0) and with -O (legacy scp protocol), sftp -b put/get, and an
# `ssh -N -L` forward: bytes sent through it to a local TCP sink, and
# received through it from a local TCP source (bench/tcp_xfer.py).
# Prints MB/s (10^6 bytes/s), best of M runs, and the ratios chain/jump and
# chain/direct. scp/sftp times are of the whole command (connection set-up
# included); -L times run from the connect to the forwarded port until the
# last byte has arrived (the ssh session is already up). Each transferred
# file is checked once with sha256 (the -L streams in an extra, untimed
# run), then by size. A measure that fails prints "failed" and the run goes on.
#
#   bench/transfer.sh [BUILDDIR]
# Environment: BZ_BENCH_XFER_BYTES (default 1073741824), BZ_BENCH_XFER_RUNS
# (default 2), BZ_BENCH_XFER_TIMEOUT (s per transfer, default 60 + 1 s per
# 10 MB). Needs about 2 times N bytes of free space in TMPDIR (default /tmp).
# If the sandbox does not come up, the chain's rows say "failed" too. Exit
# status 1 if the sandbox did not come up or a jump or direct measure failed
# (the table is printed anyway, and the work files are kept).

# shellcheck disable=SC2317  # cleanup() and what it calls run from the EXIT trap
set -u
set -o pipefail

SRCDIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export BZ_BUILDDIR=${1:-${BZ_BUILDDIR:-$SRCDIR}}
export BZ_SANDBOX_VERBOSE=0     # no debug logging while measuring
SANDBOX=$SRCDIR/tests/sandbox
TCPX=$SRCDIR/bench/tcp_xfer.py
BYTES=${BZ_BENCH_XFER_BYTES:-1073741824}
XRUNS=${BZ_BENCH_XFER_RUNS:-2}

say() { printf 'bench: %s\n' "$*" >&2; }
die() { printf 'bench: error: %s\n' "$*" >&2; exit 1; }

case $BYTES in '' | *[!0-9]* | 0) die "BZ_BENCH_XFER_BYTES must be a positive number of bytes" ;; esac
case $XRUNS in '' | *[!0-9]* | 0) die "BZ_BENCH_XFER_RUNS must be a positive number" ;; esac
TMO=${BZ_BENCH_XFER_TIMEOUT:-$((60 + BYTES / 10000000))}
case $TMO in '' | *[!0-9]* | 0) die "BZ_BENCH_XFER_TIMEOUT must be a positive number of seconds" ;; esac

W=$(mktemp -d "${TMPDIR:-/tmp}/bz-xfer.XXXXXX") || exit 1
SB=$W/sandbox
SERVER_PIDS=()
FWD_PID=

# shellcheck source=bench/lib.sh
. "$SRCDIR/bench/lib.sh"

stop_pid() {
	kill -0 "$1" 2>/dev/null || return 0
	kill "$1" 2>/dev/null
	for _ in $(seq 30); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
	kill -KILL "$1" 2>/dev/null
	wait "$1" 2>/dev/null
	return 0
}

cleanup() {
	local rc=$? pid
	[ -n "$FWD_PID" ] && stop_pid "$FWD_PID"
	for pid in "${SERVER_PIDS[@]}"; do stop_pid "$pid"; done
	plain_sshd_stop_all
	"$SANDBOX" down "$SB" >/dev/null 2>&1
	# the big files go in any case
	rm -rf "$W/data" "$W/dl" "$W"/remote-*
	if [ "$rc" -eq 0 ]; then rm -rf "$W"; else say "work files kept in $W"; fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

for t in scp sftp ssh ssh-keygen sha256sum timeout /usr/sbin/sshd /usr/lib/openssh/sftp-server "$PY"; do
	command -v "$t" >/dev/null || die "$t is missing"
done

# ------------------------------------------------------------ test file
# $W stays traversable (not listable) so the chain's unix user can reach
# its folder and the source file.
chmod 711 "$W"
mkdir -p "$W/data" "$W/dl" "$W/logs" && chmod 755 "$W/data"
SRC=$W/data/src
say "writing a test file of $BYTES bytes"
CHUNK=$((64 * 1048576))
[ "$BYTES" -lt "$CHUNK" ] && CHUNK=$BYTES
head -c "$CHUNK" /dev/urandom >"$W/data/block" || die "cannot write $W/data/block"
{
	for _ in $(seq $((BYTES / CHUNK))); do cat "$W/data/block"; done
	head -c $((BYTES % CHUNK)) "$W/data/block"
} >"$SRC" || die "cannot write $SRC"
rm -f "$W/data/block"
chmod 644 "$SRC"
[ "$(stat -c %s "$SRC")" = "$BYTES" ] || die "$SRC does not have $BYTES bytes"
SRC_SHA=$(sha256sum <"$SRC" | cut -d' ' -f1) || die "sha256sum $SRC"

# ------------------------------------------------------------ the chain
say "starting the sandbox (chain)"
CHAIN_UP=0
if "$SANDBOX" up "$SB" >"$W/sandbox-up.log" 2>&1; then
	# shellcheck disable=SC1091
	. "$SB/env"
	if ssh -F "$BZ_SSH_CONFIG" -o BatchMode=yes web1 true </dev/null; then
		CHAIN_UP=1
	else
		say "cannot ssh through the chain: its measures will say failed"
	fi
else
	tail -n 40 "$W/sandbox-up.log" >&2
	say "sandbox up failed (log: $W/sandbox-up.log): the chain's measures will say failed"
fi

# ------------------------------------------------------------ plain sshds
jump_pair_start

PATHS=(chain jump direct)
mkdir -p "$W/remote-chain" "$W/remote-jump" "$W/remote-direct"
if [ $CHAIN_UP = 1 ]; then
	chown "$BZ_UNIX_USER" "$W/remote-chain" 2>/dev/null || [ "$(id -un)" = "$BZ_UNIX_USER" ] ||
		die "cannot give $W/remote-chain to $BZ_UNIX_USER"
fi

# use PATH: the ssh/scp/sftp options (OPTS), host (HOST) and folder for
# uploads (RDIR) of one path.
use() {
	case $1 in
	chain) OPTS=(-F "$BZ_SSH_CONFIG" -o BatchMode=yes); HOST=web1 ;;
	jump) OPTS=(-F "$W/target/ssh_config" -o "ProxyCommand=$JUMPCMD"); HOST=target ;;
	direct) OPTS=(-F "$W/target/ssh_config"); HOST=target ;;
	esac
	RDIR=$W/remote-$1
}

# ------------------------------------------------------------ local TCP sink and source
# sink: timed -L runs; sink-hash: the verification run; source: -L receive.
start_server() { # NAME ARGS...
	local name=$1 t
	shift
	rm -f "$W/$name.port"
	$PY "$TCPX" "$@" </dev/null >>"$W/logs/$name.log" 2>&1 &
	SERVER_PIDS+=($!)
	for t in $(seq 50); do
		[ -s "$W/$name.port" ] && return 0
		[ "$t" = 50 ] || sleep 0.1
	done
	cat "$W/logs/$name.log" >&2
	die "the TCP $name did not start"
}
start_server sink sink "$W/sink.port" "$BYTES"
start_server sink-hash sink "$W/sink-hash.port" "$BYTES" --hash
start_server source source "$W/source.port" "$SRC" "$BYTES"
SINK_PORT=$(cat "$W/sink.port")
SINK_HASH_PORT=$(cat "$W/sink-hash.port")
SOURCE_PORT=$(cat "$W/source.port")

# ------------------------------------------------------------ measures
# Each sets NS (elapsed nanoseconds) or WHY (the reason it failed) and
# returns non-zero on failure. CHECK=sha256 or size: how to check the result.

# check_file FILE: is FILE the source file (sha256 or size, per $CHECK)?
check_file() {
	local n h
	[ -f "$1" ] || { WHY="no file $1 after the transfer"; return 1; }
	n=$(stat -c %s "$1")
	[ "$n" = "$BYTES" ] || { WHY="$1 has $n bytes, expected $BYTES"; return 1; }
	if [ "$CHECK" = sha256 ]; then
		h=$(sha256sum <"$1" | cut -d' ' -f1)
		[ "$h" = "$SRC_SHA" ] || { WHY="$1: sha256 $h, expected $SRC_SHA"; return 1; }
	fi
	return 0
}

# run_cmd LOG CMD...: time CMD (with the timeout), output to LOG.
run_cmd() {
	local log=$1 t0 t1 rc
	shift
	t0=$(now_ns)
	timeout --foreground -k 5 "$TMO" "$@" </dev/null >"$log" 2>&1
	rc=$?
	t1=$(now_ns)
	NS=$((t1 - t0))
	[ "$rc" -eq 0 ] && return 0
	WHY="exit $rc"
	[ "$rc" = 124 ] && WHY="timed out after $TMO s"
	[ -s "$log" ] && WHY="$WHY: $(grep -v '^[[:space:]]*$' "$log" | tail -n 1)"
	return 1
}

# file_xfer TEST LOG: one scp/sftp transfer of the source file.
file_xfer() {
	local test=$1 log=$2 dst batch
	case $test in
	*-up | sftp-put) dst=$RDIR/file ;;
	*) dst=$W/dl/file ;;
	esac
	rm -f "$dst"
	batch=$W/logs/$test.batch
	case $test in
	scp-up) run_cmd "$log" scp "${OPTS[@]}" -q "$SRC" "$HOST:$dst" ;;
	scp-down) run_cmd "$log" scp "${OPTS[@]}" -q "$HOST:$SRC" "$dst" ;;
	scpO-up) run_cmd "$log" scp -O "${OPTS[@]}" -q "$SRC" "$HOST:$dst" ;;
	scpO-down) run_cmd "$log" scp -O "${OPTS[@]}" -q "$HOST:$SRC" "$dst" ;;
	sftp-put)
		printf 'put "%s" "%s"\n' "$SRC" "$dst" >"$batch"
		run_cmd "$log" sftp "${OPTS[@]}" -q -b "$batch" "$HOST" ;;
	sftp-get)
		printf 'get "%s" "%s"\n' "$SRC" "$dst" >"$batch"
		run_cmd "$log" sftp "${OPTS[@]}" -q -b "$batch" "$HOST" ;;
	esac || { rm -f "$dst"; return 1; }
	check_file "$dst" || { rm -f "$dst"; return 1; }
	rm -f "$dst"
}

# fwd_xfer TEST LOG: one transfer through a fresh `ssh -N -L`: to the sink
# (fwd-send) or from the source (fwd-recv); sha256 of the stream when
# CHECK=sha256 (then into the hashing sink: slower, not timed).
fwd_xfer() {
	local test=$1 log=$2 lport rport out rc ns n h hash=()
	[ "$CHECK" = sha256 ] && hash=(--hash)
	case $test in
	fwd-send) rport=$SINK_PORT; [ "$CHECK" = sha256 ] && rport=$SINK_HASH_PORT ;;
	fwd-recv) rport=$SOURCE_PORT ;;
	esac
	lport=$(free_port)
	ssh "${OPTS[@]}" -N -o ExitOnForwardFailure=yes -L "127.0.0.1:$lport:127.0.0.1:$rport" "$HOST" \
		</dev/null >"$log.ssh" 2>&1 &
	FWD_PID=$!
	if ! $PY "$TCPX" wait-listen "$lport" "$FWD_PID" 30 >"$log" 2>&1; then
		WHY="ssh -L: $(tail -n 1 "$log")"
		[ -s "$log.ssh" ] && WHY="$WHY: $(tail -n 1 "$log.ssh")"
		stop_pid "$FWD_PID"; FWD_PID=
		return 1
	fi
	if [ "$test" = fwd-send ]; then
		out=$(timeout --foreground -k 5 "$TMO" "$PY" "$TCPX" send "$lport" "$SRC" "$BYTES" 2>>"$log")
	else
		out=$(timeout --foreground -k 5 "$TMO" "$PY" "$TCPX" recv "$lport" "$BYTES" "${hash[@]}" 2>>"$log")
	fi
	rc=$?
	stop_pid "$FWD_PID"; FWD_PID=
	read -r ns n h <<<"$out"
	if [ "$rc" -ne 0 ]; then
		WHY="exit $rc"
		[ "$rc" = 124 ] && WHY="timed out after $TMO s"
		[ -s "$log" ] && WHY="$WHY: $(tail -n 1 "$log")"
		[ -s "$log.ssh" ] && WHY="$WHY (ssh: $(grep -v '^[[:space:]]*$' "$log.ssh" | tail -n 1))"
		return 1
	fi
	[ "${n:-}" = "$BYTES" ] || { WHY="${n:-no} bytes arrived, expected $BYTES"; return 1; }
	if [ "$CHECK" = sha256 ] && [ "$h" != "$SRC_SHA" ]; then
		WHY="sha256 of the stream $h, expected $SRC_SHA"
		return 1
	fi
	NS=$ns
}

xfer() { case $1 in fwd-*) fwd_xfer "$@" ;; *) file_xfer "$@" ;; esac; }

# measure TEST: best MB/s of XRUNS runs on every path, runs interleaved
# across paths; into RES[PATH/TEST] ("failed" once a run or check fails).
declare -A RES
measure() {
	local test=$1 run p mbps
	for p in "${PATHS[@]}"; do
		RES[$p/$test]=0
		[ "$p" = chain ] && [ $CHAIN_UP = 0 ] && RES[$p/$test]=failed
		[ "${RES[$p/$test]}" = failed ] && continue
		case $test in fwd-*) ;; *) continue ;; esac
		# the -L stream is checked in an extra, untimed run
		use "$p"
		CHECK=sha256
		fwd_xfer "$test" "$W/logs/$p-$test-check.log" ||
			{ RES[$p/$test]=failed; say "$p $test: failed: $WHY"; }
	done
	for run in $(seq "$XRUNS"); do
		for p in "${PATHS[@]}"; do
			[ "${RES[$p/$test]}" = failed ] && continue
			use "$p"
			CHECK=size
			case $test in fwd-*) false ;; *) [ "$run" = 1 ] ;; esac && CHECK=sha256
			if ! xfer "$test" "$W/logs/$p-$test-$run.log"; then
				RES[$p/$test]=failed
				say "$p $test: failed (run $run): $WHY"
				continue
			fi
			mbps=$(awk -v n="$BYTES" -v ns="$NS" 'BEGIN {printf "%.1f", n * 1000 / ns}')
			RES[$p/$test]=$(awk -v a="$mbps" -v b="${RES[$p/$test]}" 'BEGIN {print (a + 0 > b + 0) ? a : b}')
		done
	done
}

TESTS=(scp-up scp-down scpO-up scpO-down sftp-put sftp-get fwd-send fwd-recv)
declare -A LABEL=(
	[scp-up]="scp upload"
	[scp-down]="scp download"
	[scpO-up]="scp -O upload (legacy protocol)"
	[scpO-down]="scp -O download (legacy protocol)"
	[sftp-put]="sftp -b put"
	[sftp-get]="sftp -b get"
	[fwd-send]="ssh -N -L, send to a TCP sink"
	[fwd-recv]="ssh -N -L, receive from a source"
)
say "transfers of $BYTES bytes: best of $XRUNS runs each (timeout $TMO s)"
for t in "${TESTS[@]}"; do
	say "${LABEL[$t]}"
	measure "$t"
done

# ------------------------------------------------------------ table
ratio() {
	case "$1/$2" in *failed*) echo - ;; *) awk -v a="$1" -v b="$2" 'BEGIN {if (b > 0) printf "%.2f", a / b; else print "-"}' ;; esac
}
line() { printf '%-34s %9s %9s %9s %11s %12s\n' "$@"; }

echo
echo "file transfer: bastion chain vs OpenSSH via a jump sshd vs OpenSSH direct, 127.0.0.1, $(date -u '+%F %T') UTC"
echo "$(ssh -V 2>&1); $(nproc) CPUs; build: $BZ_BUILDDIR"
echo "$BYTES bytes ($((BYTES / 1048576)) MiB) per transfer, MB/s (10^6 bytes/s), best of $XRUNS runs"
echo
line "measure (MB/s)" chain jump direct chain/jump chain/direct
line "----------------------------------" --------- --------- --------- ----------- ------------
FAILED_REF=0
for t in "${TESTS[@]}"; do
	line "${LABEL[$t]}" "${RES[chain/$t]}" "${RES[jump/$t]}" "${RES[direct/$t]}" \
		"$(ratio "${RES[chain/$t]}" "${RES[jump/$t]}")" "$(ratio "${RES[chain/$t]}" "${RES[direct/$t]}")"
	case "${RES[jump/$t]}/${RES[direct/$t]}" in *failed*) FAILED_REF=1 ;; esac
done
echo
echo "(scp without -O uses the SFTP protocol; ratio > 1 means the chain is faster; \"failed\": see the bench: lines above)"
[ $CHAIN_UP = 1 ] || { say "the chain did not come up (see $W/sandbox-up.log)"; exit 1; }
[ $FAILED_REF = 0 ] || { say "a jump or direct measure failed: the benchmark itself is broken"; exit 1; }
exit 0
