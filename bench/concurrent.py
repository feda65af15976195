#!/usr/bin/python3
"""Start M copies of a command at once (an ssh running a short command)
and report how many failed and their wall times, as JSON on stdout:
{"m", "failures", "p50_ms", "p99_ms", "max_ms", "wall_s", "errors"}.
A run fails when it exits non-zero or its stdout is not EXPECT.

  bench/concurrent.py M EXPECT TIMEOUT_S CMD [ARG...]
"""
import json
import os
import sys
import tempfile
import threading
import time


def pct(v, p):
    if not v:
        return None
    v = sorted(v)
    return v[min(len(v) - 1, int(p / 100.0 * (len(v) - 1) + 0.5))]


def main():
    if len(sys.argv) < 5:
        sys.exit(__doc__)
    m, expect, timeout = int(sys.argv[1]), sys.argv[2], float(sys.argv[3])
    cmd = sys.argv[4:]
    work = tempfile.mkdtemp(prefix="bz-concurrent.")
    devnull = os.open(os.devnull, os.O_RDONLY)
    started = {}
    t_all = time.monotonic()
    for i in range(m):
        out = os.open(os.path.join(work, "%d.out" % i),
                      os.O_WRONLY | os.O_CREAT, 0o600)
        err = os.open(os.path.join(work, "%d.err" % i),
                      os.O_WRONLY | os.O_CREAT, 0o600)
        pid = os.fork()
        if pid == 0:
            os.dup2(devnull, 0)
            os.dup2(out, 1)
            os.dup2(err, 2)
            try:
                os.execvp(cmd[0], cmd)
            finally:
                os._exit(127)
        os.close(out)
        os.close(err)
        started[pid] = (i, time.monotonic())
    left = dict(started)

    def watchdog():
        # whatever still runs at the deadline is killed: a failure
        time.sleep(timeout)
        for pid in list(left):
            try:
                os.kill(pid, 9)
            except OSError:
                pass
    threading.Thread(target=watchdog, daemon=True).start()
    times, failures, errors = [], 0, []
    while left:
        pid, status = os.waitpid(-1, 0)
        if pid not in left:
            continue
        i, t0 = left.pop(pid)
        ms = (time.monotonic() - t0) * 1000.0
        with open(os.path.join(work, "%d.out" % i), errors="replace") as f:
            out = f.read()
        ok = os.waitstatus_to_exitcode(status) == 0 and out.strip() == expect
        if ok:
            times.append(ms)
        else:
            failures += 1
            if len(errors) < 5:
                with open(os.path.join(work, "%d.err" % i),
                          errors="replace") as f:
                    errors.append("exit %d: %s" % (
                        os.waitstatus_to_exitcode(status),
                        " ".join(f.read().split())[-300:]))
    for name in os.listdir(work):
        os.unlink(os.path.join(work, name))
    os.rmdir(work)
    all_ms = times
    print(json.dumps({
        "m": m, "failures": failures,
        "p50_ms": pct(all_ms, 50), "p99_ms": pct(all_ms, 99),
        "max_ms": max(all_ms) if all_ms else None,
        "wall_s": time.monotonic() - t_all, "errors": errors}))


if __name__ == "__main__":
    main()
