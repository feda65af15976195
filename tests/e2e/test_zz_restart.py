# Resilience: an agent killed and started again with the same command line
# serves ssh again within 5 s, and one that dies mid-transfer ends ssh with a
# reason and its channel and session on the record. (Runs last: file names
# sort after the others.)
import os
import signal
import subprocess
import time

from conftest import SANDBOX, wait_until


def alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().split()[2] != "Z"
    except OSError:
        return False


def test_agent_restart(sandbox):
    sandbox.ssh("web1", "true", check_rc=0)
    with open(sandbox.agent_web1_pidfile) as f:
        pid = int(f.read())
    os.kill(pid, signal.SIGTERM)
    if not wait_until(lambda: not alive(pid), 5):
        os.kill(pid, signal.SIGKILL)
        assert wait_until(lambda: not alive(pid), 5)
    # while it is down, ssh fails (and does not hang)
    r = sandbox.ssh("web1", "true", timeout=30)
    assert r.returncode != 0
    subprocess.run([SANDBOX, "start-agent", sandbox.dir, "web1"], check=True, timeout=30)
    sandbox.reload()
    t0 = time.time()
    last = None
    while time.time() - t0 < 5:
        last = sandbox.ssh("web1", "echo back", timeout=10)
        if last.returncode == 0:
            break
        time.sleep(0.2)
    assert last is not None and last.returncode == 0, \
        "ssh to web1 still failing %.1fs after restart: %r" % (time.time() - t0, last.stderr)
    assert last.stdout.strip() == b"back"


def test_target_gone_mid_transfer(sandbox):
    # an agent that dies during a download: ssh ends at once with a reason
    # and a non-zero status, no hang; the agent comes back as before
    since = sandbox.audit_mark()
    p = subprocess.Popen(["ssh", "-F", sandbox.ssh_config, "-o",
                          "BatchMode=yes", "web1", "cat /dev/zero"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         stdin=subprocess.DEVNULL)
    try:
        got = len(p.stdout.read(4 * 1024 * 1024))
        assert got == 4 * 1024 * 1024, p.stderr.read()
        with open(sandbox.agent_web1_pidfile) as f:
            os.kill(int(f.read()), signal.SIGKILL)
        t0 = time.time()
        while p.stdout.read(1024 * 1024):
            pass
        rc = p.wait(timeout=15)
        took = time.time() - t0
        err = p.stderr.read()
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        subprocess.run([SANDBOX, "start-agent", sandbox.dir, "web1"],
                       timeout=30)
        sandbox.reload()
    assert rc == 255, err
    assert took < 10, "ssh took %.1f s to notice" % took
    assert err == b"bzsshd: failed: target web1 disconnected\r\n", err
    # the channel and the session it cut end on the record, with why
    evs = sandbox.audit_events(since)
    sid = [e for e in evs if e["event"] == "channel" and
           e.get("command") == "cat /dev/zero"][0]["sid"]
    why = "target web1 disconnected"
    assert [e.get("reason") for e in evs if e["event"] == "channel_close"
            and e.get("sid") == sid] == [why], evs
    assert [e.get("reason") for e in evs if e["event"] == "session_close"
            and e.get("sid") == sid] == [why], evs
    assert wait_until(lambda: sandbox.ssh("web1", "true", timeout=10)
                      .returncode == 0, 10)
