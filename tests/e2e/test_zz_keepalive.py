# bzproxy's keepalive (bzproxy/keepalive.c, not lws's validity timers,
# which cost O(links) per received frame): a link silent for 20 s gets a
# ping, one silent for 50 s in all is dropped. A frozen agent (SIGSTOP:
# its socket stays open, nothing answers) is dropped and its target shown
# offline; an idle agent that answers pings is kept; the frozen one comes
# back when it runs again.
import os
import signal
import subprocess
import time

from conftest import wait_until

HANGUP_S = 50


def ssh(sandbox, target, cmd="true"):
    return subprocess.run(
        ["ssh", "-F", sandbox.ssh_config, "-o", "BatchMode=yes", target, cmd],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, timeout=60)


def test_frozen_agent_dropped_idle_agent_kept(sandbox):
    # both agents up (an earlier test may have left one backing off)
    for t in ("web1", "db1"):
        assert wait_until(lambda: ssh(sandbox, t).returncode == 0, 60,
                          interval=1), t
    web1 = int(open(sandbox.agent_web1_pidfile).read())
    log = os.path.join(sandbox.dir, "logs", "bzproxy.log")
    start = os.path.getsize(log)

    def proxy_log():
        with open(log, errors="replace") as f:
            f.seek(start)
            return f.read()

    os.kill(web1, signal.SIGSTOP)
    t0 = time.time()
    try:
        assert wait_until(lambda: "keepalive timeout" in proxy_log(),
                          HANGUP_S + 20, interval=0.5), proxy_log()[-2000:]
        took = time.time() - t0
        # not before the hang-up time (a ping answered late is no reason)
        assert took >= HANGUP_S - 5, "dropped after %.1f s" % took
        r = ssh(sandbox, "web1")
        assert r.returncode == 255
        assert b"offline" in r.stderr or b"not connected" in r.stderr, \
            r.stderr
        # db1 was as idle, but answered the pings: still there
        closes = [l for l in proxy_log().splitlines() if "info: agent " in l and
                  ("closing" in l or "connection closed" in l)]
        assert len(closes) == 1, closes
        assert ssh(sandbox, "db1").returncode == 0
    finally:
        os.kill(web1, signal.SIGCONT)
    # it runs again: it finds its link gone and comes back
    assert wait_until(lambda: ssh(sandbox, "web1").returncode == 0, 60,
                      interval=1)
