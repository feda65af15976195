# The audit log under faults (issue 9). A full disk fails closed (nothing
# runs unrecorded), leaves no part of a line, and the log goes on once
# there is room; a torn last line found at start is moved aside and
# recorded; a cut tail stops bzproxy, and `audit verify` names it against
# the signed checkpoints. (Restarts bzproxy: runs late, file names sort.)
import glob
import json
import os
import resource
import subprocess

from conftest import start_proxy, stop_proxy, wait_until


def ssh_works(sandbox):
    """Agents reconnect with a backoff after bzproxy was away."""
    return wait_until(lambda: sandbox.ssh("web1", "true", timeout=20)
                      .returncode == 0, 40, interval=1)


def verify(sandbox):
    return subprocess.run([sandbox.bzproxy, "-c", sandbox.proxy_config,
                           "audit", "verify"], stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, timeout=60)


def test_full_disk_fails_closed(sandbox):
    pid = int(sandbox.proxy_pid)
    size = os.path.getsize(sandbox.audit_log)
    marker = "/tmp/bz-full-disk-%d" % os.getpid()
    # the audit log's disk is full: no line of ours fits
    resource.prlimit(pid, resource.RLIMIT_FSIZE,
                     (size + 64, resource.RLIM_INFINITY))
    try:
        r = sandbox.ssh("web1", "touch %s" % marker, timeout=30)
        assert r.returncode == 255, r
        assert b"cannot write its audit log" in r.stderr, r.stderr
        assert not os.path.exists(marker)
        assert os.path.getsize(sandbox.audit_log) == size  # nothing partial
    finally:
        resource.prlimit(pid, resource.RLIMIT_FSIZE,
                         (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
    # the real cause is in bzproxy's log (a short append: the disk is
    # full; a write that got nothing in: the size limit itself)
    log = sandbox.log_tail("bzproxy", 200)
    assert "audit.jsonl: No space left on device" in log or \
        "audit.jsonl: File too large" in log, log
    # room again: the log goes on, whole
    r = sandbox.ssh("web1", "echo back", timeout=30)
    assert r.returncode == 0 and r.stdout == b"back\n", r.stderr
    v = verify(sandbox)
    assert v.returncode == 0, v.stdout


def test_torn_tail_moved_aside(sandbox):
    stop_proxy(sandbox)
    torn = b'{"time":"2026-11-29T23:59:59.999Z","event":"channel_cl'
    with open(sandbox.audit_log, "ab") as f:
        f.write(torn)
    r = start_proxy(sandbox, wait_ssh=False)
    assert r.returncode == 0, r.stdout
    assert "torn line" in sandbox.log_tail("bzproxy", 50)
    moved = glob.glob(sandbox.audit_log + ".torn-*")
    assert len(moved) == 1
    with open(moved[0], "rb") as f:
        assert f.read() == torn
    with open(sandbox.audit_log) as f:
        events = [json.loads(line) for line in f]
    cut = [e for e in events if e["event"] == "audit_torn_tail"]
    assert cut and cut[-1]["moved_to"] == moved[0], cut
    assert cut[-1]["bytes"] == len(torn)
    v = verify(sandbox)
    assert v.returncode == 0, v.stdout
    os.unlink(moved[0])
    assert ssh_works(sandbox)


def test_cut_tail_stops_bzproxy(sandbox):
    sandbox.ssh("web1", "true", check_rc=0)
    stop_proxy(sandbox)  # its last checkpoint covers every line
    with open(sandbox.audit_log, "rb") as f:
        whole = f.read()
    lines = whole.split(b"\n")[:-1]
    with open(sandbox.audit_log, "wb") as f:
        f.write(b"\n".join(lines[:-3]) + b"\n")
    try:
        v = verify(sandbox)
        assert v.returncode == 1, v.stdout
        assert b"cut: it has %d lines, but a checkpoint vouches for %d" % (
            len(lines) - 3, len(lines)) in v.stdout, v.stdout
        r = start_proxy(sandbox, wait_ssh=False)
        assert r.returncode != 0, r.stdout
        assert "was cut" in sandbox.log_tail("bzproxy", 30)
    finally:
        with open(sandbox.audit_log, "wb") as f:
            f.write(whole)
    r = start_proxy(sandbox, wait_ssh=False)
    assert r.returncode == 0, r.stdout
    v = verify(sandbox)
    assert v.returncode == 0 and b"holds the checkpoint" in v.stdout, v.stdout
    assert ssh_works(sandbox)
