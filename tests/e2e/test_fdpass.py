# bzsshd --fdpass with ssh's ProxyUseFdpass (what `bzsshd ssh-config` and
# the sandbox write): bzsshd hands ssh one end of a socket pair, its parent
# exits, a child serves the other end and ends with ssh. The older way
# (ssh's two pipes, relayed to libssh's socket) keeps working.
import hashlib
import os
import re
import signal
import subprocess
import time

from conftest import bzsshd_of, bzsshd_pids, ppid, wait_until


def test_fdpass_child_serves_and_ends_with_ssh(sandbox):
    since = sandbox.audit_mark()
    before = bzsshd_pids()
    p = subprocess.Popen(["ssh", "-F", sandbox.ssh_config, "-o",
                          "BatchMode=yes", "web1", "echo up; sleep 30"],
                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    try:
        assert p.stdout.readline() == b"up\n"
        kids = bzsshd_of(p, before)
        assert len(kids) == 1, kids
        # the process ssh started is gone (ssh waited for it); the one
        # serving is not ssh's child
        assert ppid(kids[0]) != p.pid
        p.send_signal(signal.SIGKILL)
        p.wait(10)
        # ssh's end of the socket closed: the child ends, the session too
        assert wait_until(lambda: ppid(kids[0]) is None, 10), \
            "bzsshd outlived ssh: %d" % kids[0]
        ends = wait_until(lambda: [
            e for e in sandbox.audit_events(since, "session_close")], 15)
        assert ends, sandbox.audit_events(since)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


def test_fdpass_needs_proxyusefdpass(sandbox, tmp_path):
    cfg = str(tmp_path / "ssh_config")
    sandbox.relay_ssh_config(cfg)
    with open(cfg) as f:
        text = f.read().replace(" --stdio", " --fdpass --stdio")
    with open(cfg, "w") as f:
        f.write(text)
    r = sandbox.ssh("web1", "true", config=cfg, timeout=30)
    assert r.returncode == 255, r
    assert b"--fdpass: stdout is not a socket: it wants `ProxyUseFdpass " \
        b"yes`" in r.stderr, r.stderr


def test_relay_without_fdpass(sandbox, tmp_path):
    # a ProxyCommand without --fdpass: ssh's pipes, relayed
    cfg = sandbox.relay_ssh_config(str(tmp_path / "ssh_config"))
    with open(cfg) as f:
        assert "ProxyUseFdpass" not in f.read()
    before = bzsshd_pids()
    p = subprocess.Popen(["ssh", "-F", cfg, "-o", "BatchMode=yes", "web1",
                          "echo up; sleep 30"], stdin=subprocess.DEVNULL,
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        assert p.stdout.readline() == b"up\n"
        assert [k for k in bzsshd_of(p, before) if ppid(k) == p.pid], \
            "bzsshd is not ssh's ProxyCommand child"
    finally:
        p.kill()
        p.wait()
    data = os.urandom(8 * 1024 * 1024 + 3)
    r = sandbox.ssh("web1", "sha256sum; exit 7", config=cfg, input=data,
                    timeout=60)
    assert r.returncode == 7, r.stderr
    assert r.stdout.split()[0].decode() == hashlib.sha256(data).hexdigest()
    r = sandbox.ssh("web1", "seq 700000; seq 1000 >&2", config=cfg,
                    timeout=60, check_rc=0)
    assert r.stdout == "".join("%d\n" % i for i in range(1, 700001)).encode()
    assert r.stderr == "".join("%d\n" % i for i in range(1, 1001)).encode()
    # the reader going away ends the command (eow@openssh.com)
    t = time.monotonic()
    r = subprocess.run("ssh -F %s -o BatchMode=yes web1 yes | head -1" % cfg,
                       shell=True, stdout=subprocess.PIPE, timeout=30)
    assert r.stdout == b"y\n" and time.monotonic() - t < 10
    assert re.match(rb"^\d+$", sandbox.ssh("web1", "echo $$", config=cfg,
                                           check_rc=0).stdout.strip())
