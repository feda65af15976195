# The fault suite (issue 9): an operator's bad day, driven through the
# real chain. Each process is killed (-9) in the middle of a transfer both
# ways, stopped (SIGSTOP) and continued, bzproxy restarts under open
# sessions, and the audit disk fills during a transfer. What must hold:
# no byte is delivered wrongly (what arrived is a prefix of what was
# sent), ssh ends with a clear message and status 255 instead of hanging,
# the chain serves again, and `audit verify` passes.
#
# `make check` runs it short (64 MiB, 3 s stops, 10 sessions);
# `make fault-test` runs it long (1 GiB, 20 s stops, 50 sessions) and
# writes the figures (what the user saw, time to recovery, audit records,
# verify) to BZ_FAULT_REPORT as JSON lines.
import json
import os
import resource
import shutil
import signal
import subprocess
import tempfile
import time

import pytest

from conftest import (SANDBOX, alive, bzsshd_of, bzsshd_pids, pgrep,
                      wait_until)

MiB = 1024 * 1024
BYTES = int(os.environ.get("BZ_FAULT_BYTES", 64 * MiB))
STOP_S = float(os.environ.get("BZ_FAULT_STOP_S", 3))
SESSIONS = int(os.environ.get("BZ_FAULT_SESSIONS", 10))
REPORT = os.environ.get("BZ_FAULT_REPORT")


def report(**fig):
    if REPORT:
        with open(REPORT, "a") as f:
            f.write(json.dumps(fig) + "\n")


@pytest.fixture(scope="module")
def data():
    """A random source file the target's unix user can read, in a folder
    it can write."""
    d = tempfile.mkdtemp(prefix="bz-fault.")
    os.chmod(d, 0o777)
    src = os.path.join(d, "src")
    with open(src, "wb") as f:
        left = BYTES
        while left:
            n = min(left, 8 * MiB)
            f.write(os.urandom(n))
            left -= n
    os.chmod(src, 0o644)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def is_prefix(part, whole):
    """Every byte of part is whole's byte at the same place."""
    n = os.path.getsize(part)
    if n > os.path.getsize(whole):
        return False
    return subprocess.run(["cmp", "-s", "-n", str(n), part, whole]).returncode == 0


def ssh_argv(sandbox, *cmd):
    return ["ssh", "-F", sandbox.ssh_config, "-o", "BatchMode=yes",
            "web1"] + list(cmd)


class Transfer:
    """1 of BYTES through `ssh web1 cat`, down (to a local file) or up
    (to a file on the target)."""

    def __init__(self, sandbox, data, direction):
        self.before = bzsshd_pids()
        self.src = os.path.join(data, "src")
        self.dst = os.path.join(data, "dst-" + direction)
        if os.path.exists(self.dst):
            os.unlink(self.dst)
        if direction == "down":
            self.out = open(self.dst, "wb")
            self.p = subprocess.Popen(ssh_argv(sandbox, "cat " + self.src),
                                      stdin=subprocess.DEVNULL,
                                      stdout=self.out, stderr=subprocess.PIPE)
        else:
            self.out = open(self.src, "rb")
            self.p = subprocess.Popen(ssh_argv(sandbox, "cat > " + self.dst),
                                      stdin=self.out,
                                      stdout=subprocess.DEVNULL,
                                      stderr=subprocess.PIPE)

    def got(self):
        try:
            return os.path.getsize(self.dst)
        except OSError:
            return 0

    def wait_for(self, fraction):
        assert wait_until(lambda: self.got() >= BYTES * fraction or
                          self.p.poll() is not None, 120, interval=0.02)
        assert self.p.poll() is None, "ended before the fault: %r" % \
            self.p.stderr.read()

    def bzsshd_pid(self):
        pids = bzsshd_of(self.p, self.before)
        assert len(pids) == 1, pids
        return pids[0]

    def finish(self, timeout):
        try:
            rc = self.p.wait(timeout=timeout)
        finally:
            if self.p.poll() is None:
                self.p.kill()
                self.p.wait()
            self.out.close()
        return rc, self.p.stderr.read().decode(errors="replace").strip()


def pid_of(sandbox, proc, t):
    sandbox.reload()
    if proc == "bzsshd":
        return t.bzsshd_pid()
    if proc == "bzproxy":
        return int(sandbox.proxy_pid)
    with open(sandbox.agent_web1_pidfile) as f:
        return int(f.read())


def restart(sandbox, proc, pid):
    if proc == "bzsshd":
        return  # one per ssh: the next ssh starts its own
    assert wait_until(lambda: not alive(pid), 10)
    cmd = ["start-proxy", sandbox.dir] if proc == "bzproxy" else \
        ["start-agent", sandbox.dir, "web1"]
    subprocess.run([SANDBOX] + cmd, check=True, timeout=60,
                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    sandbox.reload()


def serves_again(sandbox, since):
    """Seconds from since until `ssh web1 true` works again."""
    assert wait_until(lambda: sandbox.ssh("web1", "true", timeout=20)
                      .returncode == 0, 60, interval=0.2), \
        "the chain does not serve again"
    return time.time() - since


def verify(sandbox):
    v = subprocess.run([sandbox.bzproxy, "-c", sandbox.proxy_config,
                        "audit", "verify"], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True, timeout=120)
    return v.returncode, v.stdout.strip().splitlines()[-1:]


def events_since(sandbox, mark):
    return [e.get("event") for e in sandbox.audit_events(since=mark)]


def proxy_starts(sandbox, mark):
    return [e.get("previous_stop") for e in
            sandbox.audit_events(since=mark, event="proxy_start")]


def last_line(err):
    lines = [l for l in err.splitlines() if l.strip()]
    return lines[-1] if lines else ""


@pytest.mark.parametrize("direction", ["down", "up"])
@pytest.mark.parametrize("proc", ["bzsshd", "bzproxy", "bzagent"])
def test_kill9_mid_transfer(sandbox, data, proc, direction):
    mark = sandbox.audit_mark()
    t = Transfer(sandbox, data, direction)
    t.wait_for(0.3)
    pid = pid_of(sandbox, proc, t)
    os.kill(pid, signal.SIGKILL)
    t0 = time.time()
    rc, err = t.finish(30)
    exit_s = time.time() - t0
    restart(sandbox, proc, pid)
    recovery_s = serves_again(sandbox, t0)
    v_rc, v_out = verify(sandbox)
    report(fault="kill -9 " + proc, direction=direction, user_saw=last_line(err),
           rc=rc, exit_s=round(exit_s, 2), recovery_s=round(recovery_s, 2),
           delivered=t.got(), audit=events_since(sandbox, mark),
           verify=v_out)
    assert is_prefix(t.dst, t.src), "a byte was delivered wrongly"
    assert t.got() < BYTES, "the fault came too late to prove anything"
    assert rc == 255, err
    assert exit_s < 15, "ssh took %.1f s to end" % exit_s
    if proc != "bzsshd":
        # ssh's own side is whole; the message says what went away
        assert "bzsshd" in err, err
    if proc == "bzproxy":
        # the log says its previous run ended without closing anything
        assert proxy_starts(sandbox, mark) == ["unclean"]
    else:
        # the cut channel and its session are closed on the record
        ev = events_since(sandbox, mark)
        assert ev.index("channel_close") < ev.index("session_close"), ev
    assert v_rc == 0, v_out


@pytest.mark.parametrize("proc", ["bzsshd", "bzproxy", "bzagent"])
def test_sigstop_mid_transfer(sandbox, data, proc):
    mark = sandbox.audit_mark()
    t = Transfer(sandbox, data, "down")
    t.wait_for(0.2)
    pid = pid_of(sandbox, proc, t)
    os.kill(pid, signal.SIGSTOP)
    t0 = time.time()
    try:
        time.sleep(STOP_S)
    finally:
        os.kill(pid, signal.SIGCONT)
    rc, err = t.finish(max(120, BYTES / (5 * MiB)))
    took = time.time() - t0
    v_rc, v_out = verify(sandbox)
    report(fault="SIGSTOP %s %gs" % (proc, STOP_S), direction="down",
           user_saw=last_line(err), rc=rc, after_cont_s=round(took - STOP_S, 2),
           delivered=t.got(), audit=events_since(sandbox, mark),
           verify=v_out)
    # a pause is not a failure: the transfer completes, whole
    assert rc == 0, err
    assert t.got() == BYTES and is_prefix(t.dst, t.src)
    assert v_rc == 0, v_out


def test_bzproxy_restart_with_open_sessions(sandbox):
    mark = sandbox.audit_mark()
    procs = [subprocess.Popen(ssh_argv(sandbox, "echo up; sleep 3021"),
                              stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for _ in range(SESSIONS)]
    try:
        assert wait_until(lambda: len(pgrep("^sleep 3021$")) == SESSIONS,
                          60, interval=0.2), len(pgrep("^sleep 3021$"))
        pid = int(sandbox.proxy_pid)
        t0 = time.time()
        os.kill(pid, signal.SIGTERM)
        rcs = [p.wait(timeout=30) for p in procs]
        exit_s = time.time() - t0
        errs = [p.stderr.read().decode(errors="replace") for p in procs]
        restart(sandbox, "bzproxy", pid)
        recovery_s = serves_again(sandbox, t0)
        # the targets ended the cut channels' commands
        assert wait_until(lambda: not pgrep("^sleep 3021$"), 10)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    v_rc, v_out = verify(sandbox)
    ev = events_since(sandbox, mark)
    report(fault="bzproxy restart (SIGTERM) with %d sessions" % SESSIONS,
           user_saw=last_line(errs[0]), rc=sorted(set(rcs)),
           exit_s=round(exit_s, 2), recovery_s=round(recovery_s, 2),
           audit={e: ev.count(e) for e in set(ev)}, verify=v_out)
    assert rcs == [255] * SESSIONS, errs[:3]
    assert all("bzproxy" in e for e in errs), errs[:3]
    # every cut channel closed on the record, then a clean stop and start
    assert ev.count("channel_close") >= SESSIONS, ev
    assert ev.index("proxy_stop") < ev.index("proxy_start"), ev
    assert proxy_starts(sandbox, mark) == ["clean"]
    assert v_rc == 0, v_out


def test_audit_disk_full_mid_transfer(sandbox, data):
    """The disk fills while a transfer runs: the transfer's end cannot be
    recorded, new sessions are refused with the reason, and once there is
    room the log goes on and verifies."""
    mark = sandbox.audit_mark()
    t = Transfer(sandbox, data, "down")
    t.wait_for(0.2)
    pid = int(sandbox.proxy_pid)
    size = os.path.getsize(sandbox.audit_log)
    resource.prlimit(pid, resource.RLIMIT_FSIZE,
                     (size + 64, resource.RLIM_INFINITY))
    try:
        refused = sandbox.ssh("web1", "true", timeout=30)
        rc, err = t.finish(max(120, BYTES / (5 * MiB)))
        assert os.path.getsize(sandbox.audit_log) == size
    finally:
        resource.prlimit(pid, resource.RLIMIT_FSIZE,
                         (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
    t0 = time.time()
    recovery_s = serves_again(sandbox, t0)
    v_rc, v_out = verify(sandbox)
    report(fault="audit disk full mid-transfer", direction="down",
           user_saw=last_line(err), new_session_saw=last_line(
               refused.stderr.decode(errors="replace")), rc=rc,
           delivered=t.got(), recovery_s=round(recovery_s, 2),
           audit=events_since(sandbox, mark), verify=v_out)
    assert refused.returncode == 255
    assert b"cannot write its audit log" in refused.stderr
    assert is_prefix(t.dst, t.src)
    assert v_rc == 0, v_out
