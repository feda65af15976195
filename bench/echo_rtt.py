#!/usr/bin/python3
"""Keystroke echo round trips through ssh sessions (bench/echo.sh).

    echo_rtt.py ROUNDS OUTDIR NAME SSH_ARGS... [-- NAME SSH_ARGS...]...

For each NAME, runs `ssh -tt SSH_ARGS... 'stty raw -echo; echo READY;
cat'` on a pty of its own (so ssh puts it in raw mode, as for a person at
a terminal) and waits for READY. Then ROUNDS times, for each session in
turn: writes one byte and waits until that byte comes back. The sessions
take turns round by round so that they share whatever else the machine
is doing. Writes each session's round trips in microseconds to
OUTDIR/NAME.us, one per line. A few untimed rounds first warm up.
"""
import os
import pty
import select
import signal
import sys
import time

WARMUP = 20
TIMEOUT_S = 10.0


def read_until(fd, want, deadline):
    """Read from fd until want (bytes) is in what was read."""
    got = b""
    while want not in got:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("no %r from ssh (got %r)" % (want, got[-200:]))
        r, _, _ = select.select([fd], [], [], left)
        if r:
            chunk = os.read(fd, 4096)
            if not chunk:
                raise EOFError("ssh ended (got %r)" % got[-200:])
            got += chunk
    return got


def start(args):
    argv = ["ssh", "-tt"] + args + ["stty raw -echo; echo READY; cat"]
    pid, fd = pty.fork()
    if pid == 0:
        try:
            os.execvp(argv[0], argv)
        finally:
            os._exit(127)
    return pid, fd


def stop(pid, fd):
    try:
        os.kill(pid, signal.SIGTERM)
        os.waitpid(pid, 0)
    except (ProcessLookupError, ChildProcessError):
        pass
    os.close(fd)


def main():
    if len(sys.argv) < 5:
        sys.exit("usage: echo_rtt.py ROUNDS OUTDIR NAME SSH_ARGS... "
                 "[-- NAME SSH_ARGS...]...")
    rounds = int(sys.argv[1])
    outdir = sys.argv[2]
    groups, cur = [], []
    for a in sys.argv[3:] + ["--"]:
        if a == "--":
            if len(cur) < 2:
                sys.exit("echo_rtt.py: each session needs NAME SSH_ARGS")
            groups.append(cur)
            cur = []
        else:
            cur.append(a)
    sessions = []
    try:
        for g in groups:
            pid, fd = start(g[1:])
            sessions.append((g[0], pid, fd, []))
            read_until(fd, b"READY", time.monotonic() + 30)
        # what may follow READY (its line end) is drained by the warm-up
        for i in range(WARMUP + rounds):
            b = bytes([ord("a") + i % 26])
            for _, _, fd, times in sessions:
                t0 = time.perf_counter_ns()
                os.write(fd, b)
                read_until(fd, b, time.monotonic() + TIMEOUT_S)
                t1 = time.perf_counter_ns()
                if i >= WARMUP:
                    times.append((t1 - t0) // 1000)
    finally:
        for _, pid, fd, _ in sessions:
            stop(pid, fd)
    for name, _, _, times in sessions:
        with open(os.path.join(outdir, name + ".us"), "w") as f:
            for t in times:
                f.write("%d\n" % t)


if __name__ == "__main__":
    main()
