# bzproxy stopped and started again (issue 9): SIGTERM ends every open
# channel and session on the record (channel_close, session_close, with
# the reason) before the final checkpoint, and tells the user why, ssh
# ending at once; the session ids of the audit log are never handed out
# again after a restart. (Restarts bzproxy: runs late, file names sort.)
import os
import signal
import subprocess
import time

from conftest import SANDBOX, wait_until

STOPPING = "bzproxy is shutting down"


def alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().split()[2] != "Z"
    except OSError:
        return False


def stop_proxy(sandbox, sig=signal.SIGTERM):
    pid = int(sandbox.proxy_pid)
    os.kill(pid, sig)
    assert wait_until(lambda: not alive(pid), 10)


def start_proxy(sandbox):
    r = subprocess.run([SANDBOX, "start-proxy", sandbox.dir],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       timeout=60)
    sandbox.reload()
    assert r.returncode == 0, r.stdout
    # agents come back within a second or so of bzproxy
    assert wait_until(lambda: sandbox.ssh("web1", "true", timeout=20)
                      .returncode == 0, 40, interval=0.5)


def verify(sandbox):
    return subprocess.run([sandbox.bzproxy, "-c", sandbox.proxy_config,
                           "audit", "verify"], stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, timeout=60)


def sids(sandbox, since=0):
    return {e["sid"] for e in sandbox.audit_events(since) if "sid" in e}


def test_sigterm_closes_sessions_on_the_record(sandbox):
    since = sandbox.audit_mark()
    p = subprocess.Popen(["ssh", "-F", sandbox.ssh_config, "-o",
                          "BatchMode=yes", "web1", "sleep 60"],
                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    try:
        ran = wait_until(lambda: [
            e for e in sandbox.audit_events(since, "channel")
            if e.get("command") == "sleep 60" and
            e.get("decision") == "allow"], 20)
        assert ran, sandbox.audit_events(since)
        sid, ch = ran[0]["sid"], ran[0]["ch"]
        t0 = time.time()
        stop_proxy(sandbox)
        rc = p.wait(timeout=15)
        took = time.time() - t0
        err = p.stderr.read()
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert rc == 255, (rc, err)
    assert took < 8, "ssh took %.1f s to end" % took
    assert STOPPING.encode() in err, err
    evs = sandbox.audit_events(since)
    closes = [e for e in evs if e["event"] == "channel_close" and
              e.get("sid") == sid and e.get("ch") == ch]
    assert len(closes) == 1 and closes[0]["reason"] == STOPPING, evs
    ends = [e for e in evs if e["event"] == "session_close" and
            e.get("sid") == sid]
    assert len(ends) == 1 and ends[0]["reason"] == STOPPING, evs
    assert evs.index(closes[0]) < evs.index(ends[0])
    # the final checkpoint was written after them: it vouches for every
    # line, close records included
    v = verify(sandbox)
    assert v.returncode == 0, v.stdout
    assert b"holds the checkpoint" in v.stdout and \
        b", 0 written since" in v.stdout, v.stdout
    start_proxy(sandbox)


def test_sids_never_repeat_after_restart(sandbox):
    sandbox.ssh("web1", "true", check_rc=0)
    before = sids(sandbox)
    assert before
    stop_proxy(sandbox)
    start_proxy(sandbox)  # its probe is a session too
    mark = sandbox.audit_mark()
    for _ in range(3):
        sandbox.ssh("web1", "true", check_rc=0)
    after = [e["sid"] for e in sandbox.audit_events(mark, "session_open")]
    assert len(after) == 3, after
    assert not set(after) & before, (sorted(after), sorted(before))
    # and unique over the whole log
    allowed = [e["sid"] for e in sandbox.audit_events(0, "session_open")
               if e.get("decision") == "allow"]
    assert len(allowed) == len(set(allowed)), sorted(allowed)
    assert all(0 < s < 2 ** 32 for s in allowed)
