#!/bin/bash
# cpu_of.sh OUT CMD...: run CMD (a ProxyCommand: stdin and stdout are
# ssh's), then append its user and system CPU seconds to OUT as one line
# "USER SYS". ssh ends its ProxyCommand with SIGHUP: passed on to CMD, so
# that CMD's times are still counted.
out=$1
shift
"$@" <&0 &
child=$!
trap 'kill -HUP "$child" 2>/dev/null' HUP TERM
while kill -0 "$child" 2>/dev/null; do
	wait "$child"
done
# `times`: the shell's own line, then its waited-for children's (run in
# this shell, not in a pipeline's subshell, which has no children)
times > >(awk 'NR == 2 {
	split($1, u, /[ms]/); split($2, s, /[ms]/)
	printf "%.3f %.3f\n", u[1] * 60 + u[2], s[1] * 60 + s[2] }' >>"$out")
wait
