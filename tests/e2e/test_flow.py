# Flow control end to end: a reader that stops (`ssh web1 'cat /dev/zero' |
# (sleep 5; head -c 1M)`) grows neither bzsshd, bzproxy nor bzagent past a
# fixed bound, and does not stall another channel of the same connection
# (a ControlMaster shares one websocket between them).
import os
import re
import shutil
import subprocess
import tempfile
import time

from conftest import pgrep, proc_kb, wait_until

BOUND_KB = 48 * 1024  # growth allowed while the reader sleeps


def test_stopped_reader_bounded_and_not_blocking(sandbox):
    d = tempfile.mkdtemp(prefix="bzf", dir="/tmp")
    mux = ["-o", "ControlMaster=auto", "-o", "ControlPath=%s/cm" % d,
           "-o", "ControlPersist=60"]
    base = ["ssh", "-F", sandbox.ssh_config, "-o", "BatchMode=yes"] + mux
    # an ASan build keeps freed memory in quarantine: not what this measures
    env = dict(os.environ)
    env["ASAN_OPTIONS"] = ":".join(
        x for x in (env.get("ASAN_OPTIONS"), "quarantine_size_mb=1") if x)
    slow = None
    # this sandbox's bzsshd only: other test runs may share the machine
    mine = r"bzsshd --config-dir %s (--fdpass )?--stdio" % re.escape(
        sandbox.client_dir)
    old = set(pgrep(mine))
    try:
        subprocess.run(base + ["web1", "true"], check=True, timeout=30,
                       env=env, stdin=subprocess.DEVNULL)
        # the master's ProxyCommand: the bzsshd that stays
        new = set(pgrep(mine)) - old
        assert len(new) == 1, "bzsshd of the ControlMaster: %r" % new
        bzsshd = new.pop()
        procs = {"bzsshd": bzsshd, "bzproxy": int(sandbox.proxy_pid),
                 "bzagent": int(open(sandbox.agent_web1_pidfile).read())}
        before = {k: proc_kb(p) for k, p in procs.items()}
        slow = subprocess.Popen(
            ["bash", "-c", '"$@" | (sleep 5; head -c 1048576 | wc -c)', "x"]
            + base + ["web1", "cat /dev/zero"], stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, env=env)
        time.sleep(1.5)
        # another channel of the same connection answers meanwhile
        t0 = time.time()
        r = subprocess.run(base + ["web1", "echo other"], timeout=20,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           env=env, stdin=subprocess.DEVNULL)
        took = time.time() - t0
        assert r.returncode == 0, r.stderr
        assert r.stdout == b"other\n"
        assert took < 3, "second channel stalled %.1f s" % took
        peak = dict(before)
        while slow.poll() is None and time.time() - t0 < 6:
            for k, p in procs.items():
                v = proc_kb(p)
                if v is not None and peak[k] is not None:
                    peak[k] = max(peak[k], v)
            time.sleep(0.2)
        out, err = slow.communicate(timeout=30)
        assert out.strip() == b"1048576", err
        for k in procs:
            grew = peak[k] - before[k]
            assert grew < BOUND_KB, "%s grew %d kB while the reader slept " \
                "(%d -> %d)" % (k, grew, before[k], peak[k])
    finally:
        if slow is not None and slow.poll() is None:
            slow.kill()
            slow.wait()
        subprocess.run(base + ["-O", "exit", "web1"],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       timeout=30)
        shutil.rmtree(d, ignore_errors=True)
    # the remote cat ended with its reader
    assert wait_until(lambda: not pgrep(r"^cat /dev/zero$",
                                        sandbox.unix_user), 10)
