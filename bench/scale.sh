#!/bin/bash
# Scale benchmark (issue 11): one bzproxy holding a fleet. In a sandbox
# (tests/sandbox), with bench/bzload as the fleet (real wss links, TLS and
# handshakes from one process):
#   (a) N idle agents: time to connect them all, bzproxy's RSS and RSS per
#       agent, its idle CPU, and a ping's round trip through its loop;
#   (b) a 1 GiB `ssh web1` stream each way with and without the N idle
#       agents connected, and the ratio;
#   (c) M real `ssh web1 'echo ok'` started together with 100 agents
#       connected: failures and p50/p99 wall time; and the same M through
#       a plain OpenSSH jump sshd with default settings (ssh -W).
# Also the time to enrol the N agents (bzproxy agent add --from) against
# one `agent add` run. Prints a table, the knobs it had to turn, and with
# BZ_SCALE_JSON=FILE writes every figure as JSON.
#
#   bench/scale.sh [--short] [BUILDDIR]     (default: this tree)
# --short: 1,000 agents and 100 sessions (default 10,000 and 1,000).
# Environment: BZ_SCALE_AGENTS, BZ_SCALE_SESSIONS, BZ_SCALE_SESSION_AGENTS
# (default 100), BZ_BENCH_STREAM_BYTES (default 1073741824),
# BZ_SCALE_WINDOW (idle and ping windows, s, default 25: at least one
# keepalive round, 20 s, of every idle link), BZ_SCALE_JSON.

set -u
set -o pipefail

SRCDIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SHORT=0
if [ "${1:-}" = --short ]; then SHORT=1; shift; fi
BUILD=$(cd "${1:-$SRCDIR}" && pwd) || exit 2
export BZ_SANDBOX_VERBOSE=0
SANDBOX=$SRCDIR/tests/sandbox
if [ $SHORT = 1 ]; then N_DEF=1000 M_DEF=100; else N_DEF=10000 M_DEF=1000; fi
N=${BZ_SCALE_AGENTS:-$N_DEF}
M=${BZ_SCALE_SESSIONS:-$M_DEF}
NS=${BZ_SCALE_SESSION_AGENTS:-100}
BYTES=${BZ_BENCH_STREAM_BYTES:-1073741824}
WIN=${BZ_SCALE_WINDOW:-25}
BZLOAD=$BUILD/bench/bzload

say() { printf 'scale: %s\n' "$*" >&2; }
die() { printf 'scale: error: %s\n' "$*" >&2; exit 1; }

for v in N M NS BYTES WIN; do
	case ${!v} in '' | *[!0-9]* | 0) die "$v must be a positive number" ;; esac
done
[ -x "$BZLOAD" ] || die "$BZLOAD missing: run make"
[ "$NS" -le "$N" ] || NS=$N

W=$(mktemp -d "${TMPDIR:-/tmp}/bz-scale.XXXXXX") || exit 1
SB=$W/sandbox
LOAD_PID=
SAMPLER_PID=

# shellcheck source=bench/lib.sh
. "$SRCDIR/bench/lib.sh"

cleanup() {
	local rc=$?
	[ -z "$LOAD_PID" ] || kill "$LOAD_PID" 2>/dev/null
	[ -z "$SAMPLER_PID" ] || kill "$SAMPLER_PID" 2>/dev/null
	plain_sshd_stop_all
	"$SANDBOX" down "$SB" >/dev/null 2>&1
	if [ $rc -eq 0 ]; then rm -rf "$W"; else say "work files kept in $W"; fi
	exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# One link per agent and per session, in bzproxy and in bzload.
ulimit -n "$(ulimit -Hn)" 2>/dev/null
[ "$(ulimit -n)" -gt $((N + M + 200)) ] ||
	die "ulimit -Hn $(ulimit -Hn) is too low for $N agents and $M sessions"

KNOBS=()
declare -A R

jget() { # FILE EXPR: a figure of a JSON file (python expression on j)
	$PY -c 'import json, sys; j = json.load(open(sys.argv[1])); v = eval(sys.argv[2]); print("-" if v is None else (("%.1f" % v) if isinstance(v, float) else v))' "$1" "$2"
}

ssh_chain() { ssh -F "$BZ_SSH_CONFIG" -o BatchMode=yes web1 "$@"; }

wait_ssh() {
	for _ in $(seq 100); do
		ssh_chain true </dev/null 2>/dev/null && return 0
		sleep 0.3
	done
	die "ssh web1 through the chain does not work"
}

restart_web1() {
	kill "$BZ_AGENT_WEB1_PID" 2>/dev/null
	for _ in $(seq 50); do kill -0 "$BZ_AGENT_WEB1_PID" 2>/dev/null || break; sleep 0.1; done
	kill -KILL "$BZ_AGENT_WEB1_PID" 2>/dev/null && sleep 0.2
	"$SANDBOX" start-agent "$SB" web1 >>"$W/sandbox.log" 2>&1 || die "web1 did not restart"
	# shellcheck disable=SC1091
	. "$SB/env"
}

restart_proxy() {
	kill "$BZ_PROXY_PID" 2>/dev/null
	for _ in $(seq 100); do kill -0 "$BZ_PROXY_PID" 2>/dev/null || break; sleep 0.1; done
	"$SANDBOX" start-proxy "$SB" >>"$W/sandbox.log" 2>&1 || die "bzproxy did not restart"
	# shellcheck disable=SC1091
	. "$SB/env"
	wait_ssh
}

# stream DIR: one transfer of BYTES; prints MB/s (10^6 bytes/s), or
# "failed" (the run goes on: the table says so)
stream() {
	local t0 t1 n
	t0=$(now_ns)
	if [ "$1" = up ]; then
		head -c "$BYTES" /dev/zero | ssh_chain 'cat >/dev/null' ||
			{ say "upload failed"; echo failed; return; }
	else
		n=$(ssh_chain "head -c $BYTES /dev/zero" </dev/null | wc -c)
		[ "$n" = "$BYTES" ] || { say "download: got $n bytes"; echo failed; return; }
	fi
	t1=$(now_ns)
	awk -v n="$BYTES" -v ns=$((t1 - t0)) 'BEGIN {printf "%.1f", n / (ns / 1000)}'
}

# load_start COUNT JSON: bzload holding COUNT agents; returns once JSON is
# written (connected, idle and ping windows measured)
load_start() {
	rm -f "$2"
	"$BZLOAD" --url "$BZ_PROXY_URL" --ca "$BZ_CA" --proxy-key "$(cat "$SB/proxy/public_key")" \
		--agents "$W/agents.tokens" --count "$1" --proxy-pid "$BZ_PROXY_PID" \
		--window "$3" --json "$2" --hold </dev/null >"$2.log" 2>&1 &
	LOAD_PID=$!
	for _ in $(seq $((10 * (180 + 2 * $3)))); do
		[ -s "$2" ] && { cat "$2.log" >&2; return 0; }
		kill -0 "$LOAD_PID" 2>/dev/null || { cat "$2.log" >&2; die "bzload exited"; }
		sleep 0.1
	done
	die "bzload wrote no report in time"
}
load_stop() {
	kill -TERM "$LOAD_PID" 2>/dev/null
	wait "$LOAD_PID" 2>/dev/null
	LOAD_PID=
	tail -n 2 "$1.log" >&2
}

# ------------------------------------------------------------ set-up
say "sandbox: starting (logs in $W)"
BZ_BUILDDIR=$BUILD "$SANDBOX" up "$SB" >"$W/sandbox.log" 2>&1 ||
	{ tail -n 30 "$W/sandbox.log" >&2; die "sandbox up failed"; }
# shellcheck disable=SC1091
. "$SB/env"
MAXL=$((N + M + 100))
if [ "$MAXL" -gt 16384 ]; then
	printf 'limits:\n  max_links: %d\n' "$MAXL" >>"$BZ_PROXY_CONFIG"
	KNOBS+=("bzproxy limits.max_links: $MAXL (default 16384): $N agents + $M sessions + spare")
fi
if [ "$M" -gt 200 ]; then
	MC=$((M + 24 > 1024 ? 1024 : M + 24))
	echo "max_channels: $MC" >>"$BZ_AGENT_WEB1_CONFIG"
	KNOBS+=("bzagent (web1) max_channels: $MC (default 256): $M sessions on one agent")
	restart_web1
fi
[ "$M" -le 2048 ] || KNOBS+=("(sessions_per_user 2048 would refuse more than 2048 of one user's sessions)")
KNOBS+=("soft RLIMIT_NOFILE of the bench's processes: $(ulimit -n) (ulimit -n)")
restart_proxy

# ------------------------------------------------------------ enrolment
say "enrolling $N simulated agents"
t0=$(now_ns)
"$BZ_BZPROXY" -c "$BZ_PROXY_CONFIG" agent add scale-probe >/dev/null 2>&1 || die "agent add failed"
t1=$(now_ns)
R[enrol_one_ms]=$(awk -v ns=$((t1 - t0)) 'BEGIN {printf "%.1f", ns / 1e6}')
for i in $(seq 1 "$N"); do echo "sim$i env=load"; done >"$W/agents.list"
t0=$(now_ns)
"$BZ_BZPROXY" -c "$BZ_PROXY_CONFIG" agent add --from "$W/agents.list" >"$W/agents.tokens" 2>"$W/enrol.log" ||
	{ cat "$W/enrol.log" >&2; die "agent add --from failed"; }
t1=$(now_ns)
R[enrol_bulk_s]=$(awk -v ns=$((t1 - t0)) 'BEGIN {printf "%.2f", ns / 1e9}')
[ "$(wc -l <"$W/agents.tokens")" = "$N" ] || die "agent add --from printed $(wc -l <"$W/agents.tokens") lines, not $N"

# ------------------------------------------------------------ (a) and (b)
say "(b) $BYTES bytes each way without the idle agents"
R[down0]=$(stream down)
R[up0]=$(stream up)
say "(a) connecting $N agents"
load_start "$N" "$W/idle.json" "$WIN"
for k in connected failed refusals connect_s connect_rate; do
	R[a.$k]=$(jget "$W/idle.json" "j['$k']")
done
R[a.rss0]=$(jget "$W/idle.json" "j['proxy']['rss_base_kib']")
R[a.rss]=$(jget "$W/idle.json" "j['proxy']['rss_connected_kib']")
R[a.per]=$(jget "$W/idle.json" "j['proxy']['rss_per_agent_kib']")
R[a.cpu]=$(jget "$W/idle.json" "j['proxy']['idle_cpu_pct']")
R[a.p50]=$(jget "$W/idle.json" "j['ping_rtt_us']['p50']")
R[a.p99]=$(jget "$W/idle.json" "j['ping_rtt_us']['p99']")
R[a.self]=$(jget "$W/idle.json" "'%.1f CPU s, %d MiB' % (j['bzload']['cpu_s'], j['bzload']['rss_max_kib'] // 1024)")
R[a.reasons]=$(jget "$W/idle.json" "'; '.join('%d x %s' % (v, k) for k, v in j['failure_reasons'].items()) or None")
say "(b) $BYTES bytes each way with $N idle agents connected"
R[down1]=$(stream down)
R[up1]=$(stream up)
load_stop "$W/idle.json"
R[b.dropped]=$(jget "$W/idle.json" "j['hold']['dropped']")
R[b.p99]=$(jget "$W/idle.json" "j['hold']['ping_rtt_us']['p99']")
R[b.rssmax]=$(jget "$W/idle.json" "j['hold']['proxy_rss_max_kib']")

# ------------------------------------------------------------ (c)
say "(c) $M concurrent ssh web1 'echo ok' with $NS agents connected"
# a fresh bzproxy (its memory held for the fleet is not this test's) and
# web1 (whatever the fleet did to its link)
restart_web1
restart_proxy
load_start "$NS" "$W/sess.json" 1
( max=0; while :; do
	r=$(awk '/^VmRSS:/ {print $2}' "/proc/$BZ_PROXY_PID/status" 2>/dev/null) || break
	[ -n "$r" ] && [ "$r" -gt "$max" ] && { max=$r; echo "$max" >"$W/sess.rss"; }
	sleep 0.2
done ) &
SAMPLER_PID=$!
"$SRCDIR/bench/concurrent.py" "$M" ok 600 ssh -F "$BZ_SSH_CONFIG" -o BatchMode=yes web1 'echo ok' \
	>"$W/chain.json" || die "concurrent.py failed"
kill "$SAMPLER_PID" 2>/dev/null
SAMPLER_PID=
load_stop "$W/sess.json"
R[c.rss]=$(cat "$W/sess.rss" 2>/dev/null || echo -)
for k in failures p50_ms p99_ms wall_s; do R[c.$k]=$(jget "$W/chain.json" "j['$k']"); done
R[c.errors]=$(jget "$W/chain.json" "' | '.join(j['errors']) or None")

say "(c) the same $M through a plain OpenSSH jump sshd (default settings)"
jump_pair_start
"$SRCDIR/bench/concurrent.py" "$M" ok 600 ssh -F "$W/target/ssh_config" -o "ProxyCommand=$JUMPCMD" \
	target 'echo ok' >"$W/jump.json" || die "concurrent.py failed"
for k in failures p50_ms p99_ms wall_s; do R[j.$k]=$(jget "$W/jump.json" "j['$k']"); done
R[j.errors]=$(jget "$W/jump.json" "' | '.join(j['errors'][:2]) or None")

# ------------------------------------------------------------ the table
ratio() {
	case $1/$2 in *[!0-9./]* | */ | /*) echo - ;;
	*) awk -v a="$1" -v b="$2" 'BEGIN {if (b + 0 > 0) printf "%.2f", a / b; else print "-"}' ;;
	esac
}
row() { printf '%-58s %s\n' "$1" "$2"; }
echo
echo "bzproxy at scale, 127.0.0.1, $(date -u '+%F %T') UTC; $(nproc) CPUs; build $BUILD"
echo
row "enrol $N agents: agent add --from (one transaction)" "${R[enrol_bulk_s]} s"
row "enrol one agent: one agent add run" "${R[enrol_one_ms]} ms"
echo "(a) idle agents"
row "  agents connected / failed / refusals retried" "${R[a.connected]} / ${R[a.failed]} / ${R[a.refusals]}"
[ "${R[a.reasons]}" = - ] || row "  failure reasons" "${R[a.reasons]}"
row "  time to connect all (target 30 s)" "${R[a.connect_s]} s (${R[a.connect_rate]} agents/s)"
row "  bzproxy RSS before / with the agents" "${R[a.rss0]} / ${R[a.rss]} KiB"
row "  RSS per connected agent (target < 30 KiB)" "${R[a.per]} KiB"
row "  bzproxy CPU at idle, ${WIN} s (target < 5%)" "${R[a.cpu]} %"
row "  ping RTT through bzproxy's loop, p50 / p99" "${R[a.p50]} / ${R[a.p99]} us"
row "  bzload's own cost (connect + windows)" "${R[a.self]}"
echo "(b) $BYTES bytes through ssh web1, MB/s (target with/without >= 0.9)"
row "  download: without / with $N idle agents / ratio" "${R[down0]} / ${R[down1]} / $(ratio "${R[down1]}" "${R[down0]}")"
row "  upload:   without / with $N idle agents / ratio" "${R[up0]} / ${R[up1]} / $(ratio "${R[up1]}" "${R[up0]}")"
row "  agents dropped during the transfers" "${R[b.dropped]}"
row "  ping RTT p99 during the transfers; bzproxy peak RSS" "${R[b.p99]} us; ${R[b.rssmax]} KiB"
echo "(c) $M concurrent ssh 'echo ok' (target 0 failures)"
row "  chain ($NS agents): failures / p50 / p99 / all done" "${R[c.failures]} / ${R[c.p50_ms]} ms / ${R[c.p99_ms]} ms / ${R[c.wall_s]} s"
row "  chain: bzproxy peak RSS" "${R[c.rss]} KiB"
[ "${R[c.errors]}" = - ] || row "  chain errors (first)" "${R[c.errors]}"
row "  jump sshd (defaults): failures / p50 / p99 / all done" "${R[j.failures]} / ${R[j.p50_ms]} ms / ${R[j.p99_ms]} ms / ${R[j.wall_s]} s"
[ "${R[j.errors]}" = - ] || row "  jump errors (first)" "${R[j.errors]}"
echo "knobs turned for this run:"
for k in "${KNOBS[@]}"; do echo "  - $k"; done

if [ -n "${BZ_SCALE_JSON:-}" ]; then
	for k in "${!R[@]}"; do printf '%s\t%s\n' "$k" "${R[$k]}"; done |
		$PY -c 'import json, sys; print(json.dumps(dict(l.rstrip("\n").split("\t", 1) for l in sys.stdin), indent=1, sort_keys=True))' \
		>"$BZ_SCALE_JSON"
fi
[ "${R[a.failed]}" = 0 ] && [ "${R[c.failures]}" = 0 ]
