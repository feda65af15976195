# bzproxy stopped and started again (issue 9): the session ids of the
# audit log are never handed out again after a restart. (Restarts
# bzproxy: runs late, file names sort.)
import os
import signal
import subprocess

from conftest import SANDBOX, wait_until


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


def sids(sandbox, since=0):
    return {e["sid"] for e in sandbox.audit_events(since) if "sid" in e}


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
