#!/usr/bin/python3
"""cpu_of.py OUT CMD...: run CMD as ssh's ProxyCommand and append the user
and system CPU seconds of CMD and every process it forks to OUT, as one
line "USER SYS", once they have all ended.

With ProxyUseFdpass (bzsshd --fdpass) CMD passes ssh a socket, exits, and
leaves a child serving it; ssh waits for its ProxyCommand to exit before
it speaks. So this process forks a monitor and exits at once; the monitor
makes itself a child subreaper (prctl), so that CMD's orphaned child is
reparented to it, waits for all of them, and counts their times
(RUSAGE_CHILDREN). Without fdpass the same works: CMD is the one child.
ssh ends a ProxyCommand still running with SIGHUP: passed on to CMD.
"""
import ctypes
import os
import resource
import signal
import sys

PR_SET_CHILD_SUBREAPER = 36


def monitor(out, cmd):
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        sys.exit("cpu_of: prctl: %s" % os.strerror(ctypes.get_errno()))
    pid = os.fork()
    if pid == 0:
        os.execvp(cmd[0], cmd)
    signal.signal(signal.SIGHUP, lambda *_: os.kill(pid, signal.SIGHUP))
    # ssh's end of the pipes or socket: only CMD keeps them
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    os.dup2(devnull, 1)
    while True:
        try:
            os.wait()
        except ChildProcessError:
            break
        except InterruptedError:
            continue
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    with open(out, "a") as f:
        f.write("%.3f %.3f\n" % (ru.ru_utime, ru.ru_stime))


def main():
    if len(sys.argv) < 3:
        sys.exit("usage: cpu_of.py OUT CMD...")
    out, cmd = sys.argv[1], sys.argv[2:]
    fdpass = any(a == "--fdpass" for a in cmd)
    if not fdpass:
        monitor(out, cmd)  # ssh's child until CMD ends
        return
    if os.fork() == 0:
        monitor(out, cmd)
        os._exit(0)
    # ssh waits for us once CMD has passed its socket: go now


if __name__ == "__main__":
    main()
