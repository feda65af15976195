# Resilience: an agent killed and started again with the same command line
# serves ssh again within 5 s. (Runs last: file names sort after the others.)
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
