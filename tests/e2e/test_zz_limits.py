# bzproxy's limits (limits.* in its config, docs/commands.md), set small
# here: a link over max_links is refused at the handshake (HTTP 503 with
# the reason), a session over sessions_per_user, a channel over
# channels_per_session and a command line over command_bytes are refused
# with a reason the user reads; each names the limit and its config key,
# and each refusal is in the audit log. (Restarts bzproxy with the limits
# and again without: runs late, file names sort.)
import os
import shutil
import subprocess
import sys
import tempfile

import pytest

from conftest import SRCDIR, proxy_with_limits, wait_until

sys.path.insert(0, os.path.join(SRCDIR, "tests", "lib"))
from bzwire import WS  # noqa: E402

LIMITS = {"max_links": 8, "sessions_per_user": 2, "channels_per_session": 2,
          "command_bytes": 1000}


@pytest.fixture(scope="module")
def limited(sandbox):
    with proxy_with_limits(sandbox, LIMITS) as sb:
        yield sb


def popen_ssh(sandbox, *args):
    return subprocess.Popen(["ssh", "-F", sandbox.ssh_config, "-o",
                             "BatchMode=yes", *args],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)


def running(sandbox, since, command, n):
    """Wait until n channels running command were allowed."""
    return wait_until(lambda: len([
        e for e in sandbox.audit_events(since, "channel")
        if e.get("command") == command and e.get("decision") == "allow"])
        >= n, 20)


def finish(procs):
    out = []
    for p in procs:
        try:
            p.wait(timeout=30)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
        out.append((p.returncode, p.stderr.read()))
    return out


def test_bad_limit_stops_bzproxy_start(sandbox, tmp_path):
    # checked at load, naming the file and the key
    with open(sandbox.proxy_config) as f:
        text = f.read()
    bad = tmp_path / "bzproxy.yaml"
    bad.write_text(text + "limits:\n  channels_per_session: 5000\n")
    r = subprocess.run([sandbox.bzproxy, "-c", str(bad), "serve"],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       text=True, timeout=30)
    assert r.returncode != 0
    assert "%s: limits.channels_per_session must be a whole number from 1 " \
        "to 4096, got \"5000\"" % bad in r.stdout, r.stdout


def test_sessions_per_user(limited):
    sb = limited
    since = sb.audit_mark()
    first = [popen_ssh(sb, "web1", "sleep 5") for _ in range(2)]
    try:
        assert running(sb, since, "sleep 5", 2), sb.audit_events(since)
        r = sb.ssh("web1", "echo third", timeout=30)
    finally:
        done = finish(first)
    assert [rc for rc, _ in done] == [0, 0], done
    assert r.returncode == 255, r
    assert b"already has 2 sessions open" in r.stderr, r.stderr
    assert b"limits.sessions_per_user" in r.stderr, r.stderr
    refused = [e for e in sb.audit_events(since, "session_open")
               if e.get("decision") == "deny"]
    assert len(refused) == 1, refused
    assert refused[0]["limit"] == "limits.sessions_per_user"
    assert refused[0]["user"] == sb.test_user
    # below the limit again: a session opens
    sb.ssh("web1", "true", check_rc=0)


def test_channels_per_session(limited):
    sb = limited
    d = tempfile.mkdtemp(prefix="bzlim.", dir="/tmp")
    opts = ["-o", "ControlMaster=auto", "-o", "ControlPath=%s/cm" % d,
            "-o", "ControlPersist=30"]
    try:
        sb.ssh(*opts, "web1", "true", check_rc=0)  # the master
        since = sb.audit_mark()
        two = [popen_ssh(sb, *opts, "web1", "sleep 4") for _ in range(2)]
        try:
            assert running(sb, since, "sleep 4", 2), sb.audit_events(since)
            r = sb.ssh(*opts, "web1", "echo third", timeout=30)
        finally:
            done = finish(two)
        assert [rc for rc, _ in done] == [0, 0], done
        assert r.returncode == 255, r
        assert b"already has 2 channels open" in r.stderr, r.stderr
        assert b"limits.channels_per_session" in r.stderr, r.stderr
        refused = [e for e in sb.audit_events(since, "request_refused")
                   if e.get("limit") == "limits.channels_per_session"]
        assert len(refused) == 1 and refused[0]["decision"] == "deny", \
            sb.audit_events(since)
        # channels that ended make room on the same connection
        r = sb.ssh(*opts, "web1", "echo again", check_rc=0)
        assert r.stdout == b"again\n"
    finally:
        sb.ssh(*opts, "-O", "exit", "web1", timeout=20)
        shutil.rmtree(d, ignore_errors=True)


def test_command_bytes(limited):
    sb = limited
    since = sb.audit_mark()
    ok = "echo " + "x" * 990
    r = sb.ssh("web1", ok, check_rc=0)
    assert r.stdout == b"x" * 990 + b"\n"
    long = "echo " + "y" * 1200
    r = sb.ssh("web1", long, timeout=30)
    assert r.returncode == 255, r
    assert b"the command line has 1205 bytes, more than the 1000 bzproxy " \
        b"allows (limits.command_bytes" in r.stderr, r.stderr
    refused = [e for e in sb.audit_events(since, "channel")
               if e.get("decision") == "deny"]
    assert len(refused) == 1, refused
    assert refused[0]["limit"] == "limits.command_bytes"
    assert refused[0]["command_bytes"] == 1205
    assert "command" not in refused[0] and refused[0]["request_hash"]


def test_max_links(limited):
    sb = limited
    since = sb.audit_mark()
    held, refused = [], None
    yaml = os.path.join(sb.client_dir, "bzsshd.yaml")
    try:
        # agents and what else is connected hold some; fill the rest
        for _ in range(LIMITS["max_links"] + 1):
            ws = WS(sb, "/v1/client")
            if not ws.upgraded:
                refused = ws
                break
            held.append(ws)
        assert refused is not None, "no link refused"
        assert " 503 " in refused.status, refused.status
        body = refused.buf
        while b"</html>" not in body:
            d = refused.s.recv(4096)
            if not d:
                break
            body += d
        assert b"limits.max_links" in body, body
        assert len(held) <= LIMITS["max_links"] - 2  # web1 and db1
        # bzsshd takes a 503 for a passing state and tries again, for
        # its proxy_retry (shortened here), naming the limit each time
        with open(yaml, "w") as f:
            f.write("proxy_retry: 3s\n")
        r = sb.ssh("web1", "true", timeout=30)
        assert r.returncode == 255, r
        assert b"limits.max_links" in r.stderr, r.stderr
        assert b"retrying in" in r.stderr and b"gave up after 3s" in \
            r.stderr, r.stderr
    finally:
        if os.path.exists(yaml):
            os.unlink(yaml)
        for ws in held:
            ws.s.close()
    recs = wait_until(lambda: sb.audit_events(since, "link_refused"), 5)
    assert recs and recs[0]["limit"] == "limits.max_links", recs
    assert "limits.max_links" in sb.log_tail("bzproxy", 100)
    # room again once they are gone
    assert wait_until(lambda: sb.ssh("web1", "true", timeout=20)
                      .returncode == 0, 10, interval=0.5)
