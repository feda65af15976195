# A slow reader among fast ones (issue 11): one client reads a long
# download at 100 KiB/s while FAST other SSH connections to the same agent
# each pull SIZE bytes at full speed. Flow control is per channel and end
# to end (a 2 MiB window, docs/protocol.md), so bzproxy holds at most a
# window's worth for the slow one and never pauses the agent's link for
# it: the fast sessions take about as long as they do alone, the slow one
# keeps going at its pace, and bzproxy's memory stays bounded
# (docs/scale.md: "Slow readers").
import os
import signal
import subprocess
import time

from conftest import proc_kb

FAST = int(os.environ.get("BZ_SLOW_READER_FAST", "50"))
SIZE = 8 * 1024 * 1024
RATE = 100 * 1024            # the slow reader's bytes per second
# bzproxy's growth allowed: the slow channel's window (2 MiB) plus, for
# each fast link, its queue's high-water mark (4 MiB) and one frame
GROWTH_BOUND_KB = (2 * 1024 + FAST * (4 * 1024 + 256)) + 32 * 1024

# reads stdin at RATE bytes per second and prints how many it read
SLOW_READER = r"""
import sys, time
rate = int(sys.argv[1]); n = 0; t0 = time.time()
f = sys.stdin.buffer
while True:
    d = f.read1(rate // 10) if hasattr(f, "read1") else f.read(rate // 10)
    if not d:
        break
    n += len(d)
    ahead = n / rate - (time.time() - t0)
    if ahead > 0:
        time.sleep(ahead)
    sys.stdout.write("%d\n" % n); sys.stdout.flush()
"""


def ssh(sandbox):
    return ["ssh", "-F", sandbox.ssh_config, "-o", "BatchMode=yes"]


def fast_round(sandbox):
    """FAST connections at once, each pulling SIZE bytes: seconds taken."""
    t0 = time.time()
    procs = [subprocess.Popen(
        ["bash", "-c", '"$@" | wc -c', "x"] + ssh(sandbox) +
        ["web1", "head -c %d /dev/zero" % SIZE], stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
        for _ in range(FAST)]
    bad = []
    for p in procs:
        out, err = p.communicate(timeout=300)
        if p.returncode != 0 or out.strip() != str(SIZE).encode():
            bad.append((p.returncode, out[-100:], err[-300:]))
    assert not bad, "%d of %d fast sessions failed: %r" % (len(bad), FAST,
                                                           bad[:3])
    return time.time() - t0


def test_slow_reader_does_not_slow_others(sandbox):
    proxy = int(sandbox.proxy_pid)
    alone = fast_round(sandbox)
    before = proc_kb(proxy)
    slow = subprocess.Popen(
        ["bash", "-c", '"$@" | /usr/bin/python3 -c "$SLOW" %d' % RATE, "x"]
        + ssh(sandbox) + ["web1", "head -c 1G /dev/zero"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL, env=dict(os.environ, SLOW=SLOW_READER),
        start_new_session=True)
    try:
        time.sleep(3)  # its window fills up in bzproxy's queue
        assert slow.poll() is None, slow.communicate()[1][-500:]
        peak = proc_kb(proxy)
        t0 = time.time()
        together = fast_round(sandbox)
        peak = max(peak, proc_kb(proxy))
        # it is still there and still reading at its pace
        assert slow.poll() is None, slow.communicate()[1][-500:]
        time.sleep(2)
        peak = max(peak, proc_kb(proxy))
        took = time.time() - t0
    finally:
        os.killpg(slow.pid, signal.SIGTERM)  # ssh and the reader too
        out, err = slow.communicate(timeout=30)
    lines = out.split()
    got = int(lines[-1]) if lines else 0
    # about RATE per second since it started (3 s + the fast round + 2 s)
    expect = RATE * (took + 3)
    assert got > expect * 0.5, "slow reader got %d bytes, expected ~%d " \
        "(stalled?)" % (got, expect)
    print("\nfast sessions: %.1f s alone, %.1f s beside a slow reader; "
          "bzproxy RSS %d -> %d kB" % (alone, together, before, peak))
    assert together < alone * 2 + 5, "the slow reader slowed the others: " \
        "%.1f s alone, %.1f s beside it" % (alone, together)
    grew = peak - before
    assert grew < GROWTH_BOUND_KB, "bzproxy grew %d kB (bound %d)" % (
        grew, GROWTH_BOUND_KB)
