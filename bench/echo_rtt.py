#!/usr/bin/python3
"""Keystroke echo round trips through an ssh command (bench/echo.sh).

    echo_rtt.py ROUNDS OUT SSH_ARGS...

Runs `ssh -tt SSH_ARGS... 'stty raw -echo; echo READY; cat'` on a pty of
its own (so ssh puts it in raw mode, as for a person at a terminal), waits
for READY, then ROUNDS times: writes one byte and waits until that byte
comes back. Writes each round trip in microseconds to OUT, one per line.
A few untimed rounds first warm the path up.
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


def main():
    if len(sys.argv) < 4:
        sys.exit("usage: echo_rtt.py ROUNDS OUT SSH_ARGS...")
    rounds = int(sys.argv[1])
    out = sys.argv[2]
    argv = ["ssh", "-tt"] + sys.argv[3:] + ["stty raw -echo; echo READY; cat"]
    pid, fd = pty.fork()
    if pid == 0:
        os.execvp(argv[0], argv)
    times = []
    try:
        read_until(fd, b"READY", time.monotonic() + 30)
        # what may follow READY (its line end) is drained by the warm-up
        for i in range(WARMUP + rounds):
            b = bytes([ord("a") + i % 26])
            t0 = time.perf_counter_ns()
            os.write(fd, b)
            read_until(fd, b, time.monotonic() + TIMEOUT_S)
            t1 = time.perf_counter_ns()
            if i >= WARMUP:
                times.append((t1 - t0) // 1000)
    finally:
        os.kill(pid, signal.SIGTERM)
        try:
            os.waitpid(pid, 0)
        except ChildProcessError:
            pass
        os.close(fd)
    with open(out, "w") as f:
        for t in times:
            f.write("%d\n" % t)


if __name__ == "__main__":
    main()
