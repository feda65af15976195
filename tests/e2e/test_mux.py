# Connection sharing (ssh ControlMaster/ControlPath/ControlPersist, as Ansible
# uses it) over the whole chain: many sessions at once and one after another
# on one master connection, every exit status and output right, bulk output
# on parallel channels, and the master really shared (one bzproxy session).
import concurrent.futures
import hashlib
import os
import shutil
import socket
import subprocess
import tempfile
import time

import pytest

from conftest import wait_until


def count_session_opens(sandbox):
    return sum(1 for e in sandbox.audit_events() if e.get("event") == "session_open")


class Master:
    def __init__(self, sandbox):
        self.sandbox = sandbox
        # the socket path must fit in sun_path: a short folder under /tmp
        self.dir = tempfile.mkdtemp(prefix="bzcm.", dir="/tmp")
        self.opts = ["-o", "ControlMaster=auto",
                     "-o", "ControlPath=%s/cm-%%C" % self.dir,
                     "-o", "ControlPersist=60"]
        self.errpath = os.path.join(self.dir, "master.err")

    def start(self):
        # the first ssh becomes the master and stays in the background with
        # the stdout/stderr it was given: not pipes we wait on
        with open(self.errpath, "wb") as err:
            r = subprocess.run(["ssh", "-F", self.sandbox.ssh_config, "-o",
                                "BatchMode=yes"] + self.opts + ["web1", "true"],
                               stdin=subprocess.DEVNULL,
                               stdout=subprocess.DEVNULL, stderr=err, timeout=60)
        assert r.returncode == 0, self.err()
        assert self.check(), "no master after the first ssh: %s" % self.err()

    def err(self):
        try:
            with open(self.errpath, errors="replace") as f:
                return f.read()[-2000:]
        except OSError:
            return ""

    def ssh(self, *args, **kw):
        return self.sandbox.ssh(*(self.opts + list(args)), **kw)

    def check(self):
        return self.ssh("-O", "check", "web1", timeout=20).returncode == 0

    def pid(self):
        r = self.ssh("-O", "check", "web1", timeout=20)
        # "Master running (pid=N)"
        s = r.stderr.decode(errors="replace")
        if "pid=" in s:
            return int(s.split("pid=")[1].split(")")[0])
        return None

    def exit(self):
        pid = self.pid()
        r = self.ssh("-O", "exit", "web1", timeout=20)
        gone = True
        if pid is not None:
            gone = wait_until(lambda: not os.path.exists("/proc/%d" % pid) or
                              _state(pid) == "Z", 10)
        shutil.rmtree(self.dir, ignore_errors=True)
        return r, gone


def _state(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return None


@pytest.fixture
def master(sandbox):
    m = Master(sandbox)
    m.start()
    yield m
    r, gone = m.exit()
    assert r.returncode == 0, r.stderr
    assert gone, "the master is still running after ssh -O exit"


def _cmd(i):
    if i % 25 == 3:
        return "echo out-%d; exit 42" % i, ("out-%d\n" % i).encode(), 42
    return ("i=%d; echo line-$i; echo err-$i >&2; exit $((i %% 7))" % i,
            ("line-%d\n" % i).encode(), i % 7)


def test_mux_parallel_exit_statuses(sandbox, master):
    def run(i):
        cmd, out, rc = _cmd(i)
        r = master.ssh("web1", cmd, timeout=120)
        return i, r, out, rc

    bad = []
    with concurrent.futures.ThreadPoolExecutor(10) as ex:
        for i, r, out, rc in ex.map(run, range(200)):
            if r.returncode != rc or r.stdout != out:
                bad.append((i, "rc %d (want %d)" % (r.returncode, rc), r.stdout,
                            r.stderr[-300:]))
            elif rc != 42 and ("err-%d" % i).encode() not in r.stderr:
                bad.append((i, "stderr", r.stderr[-300:]))
    assert not bad, "%d of 200 wrong, first ones: %r\nmaster: %s" % (
        len(bad), bad[:10], master.err())
    assert master.check(), master.err()


def test_mux_sequential_and_parallel_bulk(sandbox, master):
    for i in range(50):
        cmd, out, rc = _cmd(i)
        r = master.ssh("web1", cmd, timeout=60)
        assert (r.returncode, r.stdout) == (rc, out), (i, r.stderr, master.err())

    n = 2 * 1024 * 1024

    def bulk(i):
        r = master.ssh("web1", "head -c %d /dev/zero; exit %d" % (n + i, i % 5),
                       timeout=180)
        return i, r

    with concurrent.futures.ThreadPoolExecutor(10) as ex:
        for i, r in ex.map(bulk, range(10)):
            assert r.returncode == i % 5, (i, r.stderr, master.err())
            assert len(r.stdout) == n + i, (i, len(r.stdout))
            assert r.stdout.count(b"\0") == n + i

    # stdin up through mux clients too (Ansible's pipelining), 5 at once
    def upload(i):
        data = os.urandom(1024 * 1024 + i)
        r = master.ssh("web1", "sha256sum", input=data, timeout=180)
        return i, r, hashlib.sha256(data).hexdigest()

    with concurrent.futures.ThreadPoolExecutor(5) as ex:
        for i, r, want in ex.map(upload, range(5)):
            assert r.returncode == 0, (i, r.stderr, master.err())
            assert r.stdout.decode().split()[0] == want, i
    assert master.check(), master.err()


def test_mux_master_is_shared(sandbox, master):
    before = count_session_opens(sandbox)
    assert before >= 1
    for i in range(20):
        r = master.ssh("web1", "echo %d" % i, timeout=60)
        assert r.returncode == 0 and r.stdout == ("%d\n" % i).encode(), r.stderr
    time.sleep(0.5)
    assert count_session_opens(sandbox) == before, \
        "the commands opened bzproxy sessions of their own"
    # and the audit did see the 20 commands (as channels of one session)
    chans = [e for e in sandbox.audit_events() if e.get("event") == "channel"
             and e.get("command", "").startswith("echo ")
             and e.get("decision") == "allow"]
    sids = {e.get("sid") for e in chans[-20:]}
    assert len(sids) == 1, sids


def test_mux_forward_added_to_master(sandbox, master):
    # ssh -O forward -L: a forward added to the running master, then removed
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    sport = srv.getsockname()[1]
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    lport = s.getsockname()[1]
    s.close()
    spec = "%d:127.0.0.1:%d" % (lport, sport)
    try:
        r = master.ssh("-O", "forward", "-L", spec, "web1", timeout=20)
        assert r.returncode == 0, r.stderr
        c = socket.create_connection(("127.0.0.1", lport), timeout=10)
        srv.settimeout(10)
        a, _ = srv.accept()
        c.sendall(b"via-master")
        a.settimeout(10)
        assert a.recv(100) == b"via-master"
        a.sendall(b"back")
        c.settimeout(10)
        assert c.recv(100) == b"back"
        a.close()
        c.close()
        r = master.ssh("-O", "cancel", "-L", spec, "web1", timeout=20)
        assert r.returncode == 0, r.stderr
        assert master.check(), master.err()
    finally:
        srv.close()
