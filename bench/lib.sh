# shellcheck shell=bash
# Helpers shared by the bench/ scripts (sourced, not run): clock, port
# and cold-latency helpers, and throw-away plain OpenSSH sshds on 127.0.0.1
# with generated keys, to compare the bastion chain with.
#
# The sourcing script defines say() and die(), sets $W (its work folder)
# before calling plain_sshd_start, and calls plain_sshd_stop_all from its
# EXIT trap.

PY=/usr/bin/python3
PLAIN_SSHD_PIDS=()

now_ns() { date +%s%N; }

# cold_runs FILE N CMD...: N timings of a cold `CMD true` into FILE, in
# microseconds, one per line, sorted; best_ms and median_ms read it.
cold_runs() {
	local file=$1 n=$2 t0 t1 i
	shift 2
	for i in $(seq "$n"); do
		t0=$(now_ns)
		"$@" true </dev/null || die "${*: -1}: ssh true failed (run $i)"
		t1=$(now_ns)
		echo $(((t1 - t0) / 1000))
	done | sort -n >"$file"
}
best_ms() { head -n 1 "$1" | awk '{printf "%.1f", $1 / 1000}'; }
median_ms() { sort -n "$1" | awk '{a[NR] = $1} END {m = (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2; printf "%.1f", m / 1000}'; }

free_port() {
	$PY -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# plain_sshd_start NAME: start /usr/sbin/sshd on 127.0.0.1 (a free port) for
# the current user, key authentication only, and wait until
# `ssh -F $W/NAME/ssh_config NAME true` works; dies if it does not.
# Files in $W/NAME: host_key, user_key (ed25519, generated), authorized_keys,
# sshd_config, sshd.pid, sshd.log, known_hosts, port, and ssh_config with a
# "Host NAME" entry (127.0.0.1, BatchMode, no agent, no multiplexing).
plain_sshd_start() {
	local name=$1 d=$W/$1 me port rootlogin pid
	mkdir -p "$d" && chmod 700 "$d"
	ssh-keygen -q -t ed25519 -N '' -f "$d/host_key" || die "ssh-keygen (host key)"
	ssh-keygen -q -t ed25519 -N '' -f "$d/user_key" || die "ssh-keygen (user key)"
	cp "$d/user_key.pub" "$d/authorized_keys"
	chmod 600 "$d/authorized_keys"
	me=$(id -un)
	port=$(free_port)
	echo "$port" >"$d/port"
	if [ "$(id -u)" = 0 ]; then
		mkdir -p /run/sshd && chmod 755 /run/sshd   # sshd's privilege separation dir
		rootlogin="PermitRootLogin prohibit-password"
	else
		rootlogin="PermitRootLogin no"
	fi
	cat >"$d/sshd_config" <<-EOF
		ListenAddress 127.0.0.1
		Port $port
		HostKey $d/host_key
		PidFile $d/sshd.pid
		AuthorizedKeysFile $d/authorized_keys
		UsePAM no
		StrictModes no
		PubkeyAuthentication yes
		PasswordAuthentication no
		KbdInteractiveAuthentication no
		$rootlogin
		AllowUsers $me
		PrintMotd no
		PrintLastLog no
		UseDNS no
		Subsystem sftp /usr/lib/openssh/sftp-server
	EOF
	/usr/sbin/sshd -t -f "$d/sshd_config" || die "sshd rejects its config ($d/sshd_config)"
	/usr/sbin/sshd -D -f "$d/sshd_config" -e </dev/null >"$d/sshd.log" 2>&1 &
	pid=$!
	PLAIN_SSHD_PIDS+=("$pid")
	echo "[127.0.0.1]:$port $(cat "$d/host_key.pub")" >"$d/known_hosts"
	cat >"$d/ssh_config" <<-EOF
		Host $name
		    HostName 127.0.0.1
		    Port $port
		    User $me
		    IdentityFile $d/user_key
		    IdentitiesOnly yes
		    IdentityAgent none
		    UserKnownHostsFile $d/known_hosts
		    GlobalKnownHostsFile /dev/null
		    StrictHostKeyChecking yes
		    BatchMode yes
		    ControlMaster no
		    ControlPath none
		    LogLevel ERROR
	EOF
	for _ in $(seq 50); do
		ssh -F "$d/ssh_config" "$name" true </dev/null 2>/dev/null && break
		kill -0 "$pid" 2>/dev/null || { cat "$d/sshd.log" >&2; die "sshd exited"; }
		sleep 0.1
	done
	ssh -F "$d/ssh_config" "$name" true </dev/null || { cat "$d/sshd.log" >&2; die "cannot ssh to the plain sshd"; }
}

# Stop every sshd plain_sshd_start started (SIGTERM, then SIGKILL after 3 s).
plain_sshd_stop_all() {
	local pid
	for pid in "${PLAIN_SSHD_PIDS[@]}"; do
		kill -0 "$pid" 2>/dev/null || continue
		kill "$pid" 2>/dev/null
		for _ in $(seq 30); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$pid" 2>/dev/null
	done
	PLAIN_SSHD_PIDS=()
}

# jump_pair_start: plain sshds "target" and "jump" (plain_sshd_start), and
# JUMPCMD, the ProxyCommand reaching the target through the jump host as
# ProxyJump does (ssh -W); dies if that does not work.
jump_pair_start() {
	say "starting two plain OpenSSH sshds (target, jump host)"
	plain_sshd_start target
	plain_sshd_start jump
	JUMPCMD="ssh -F $(printf %q "$W/jump/ssh_config") -W %h:%p jump"
	ssh -F "$W/target/ssh_config" -o "ProxyCommand=$JUMPCMD" target true </dev/null ||
		die "cannot ssh to the target through the jump host"
}
