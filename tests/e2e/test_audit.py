# The audit log: JSON lines, hash-chained (each line's "prev" is the hex
# SHA-256 of the previous line, 64 zeros for the first), covering a session;
# a channel whose client vanishes still ends on the record.
import hashlib
import json
import os
import random
import signal
import subprocess

from conftest import bzsshd_of, bzsshd_pids, wait_until


def read_chain(path):
    with open(path, "rb") as f:
        data = f.read()
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    elif lines:
        lines.pop()  # a line still being written
    return lines


def test_session_is_audited_and_chained(sandbox):
    marker = "audit-marker-%d" % random.randint(10**8, 10**9)
    sandbox.ssh("web1", "echo %s" % marker, check_rc=0)
    lines = read_chain(sandbox.audit_log)
    assert lines, "audit log is empty"
    prev = "0" * 64
    for i, raw in enumerate(lines, 1):
        obj = json.loads(raw)
        assert isinstance(obj, dict), "line %d is not an object" % i
        assert obj.get("prev") == prev, "line %d: prev %r, expected %r" % (i, obj.get("prev"), prev)
        assert "time" in obj and "event" in obj, "line %d lacks time/event" % i
        prev = hashlib.sha256(raw).hexdigest()
    mine = [json.loads(l) for l in lines if marker.encode() in l]
    assert mine, "no audit line carries the exec command %r" % marker
    assert any(o.get("target") == "web1" and o.get("user") == sandbox.test_user for o in mine), mine


def test_audit_verify_command(sandbox):
    r = subprocess.run([sandbox.bzproxy, "-c", sandbox.proxy_config, "audit", "verify"],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=30)
    assert r.returncode == 0, r.stdout


def test_channel_of_a_vanished_client_ends_on_the_record(sandbox):
    # bzsshd killed mid-command: its link is gone before the agent's exit
    # status could come, and bzproxy records the end itself
    since = sandbox.audit_mark()
    before = bzsshd_pids()
    p = subprocess.Popen(["ssh", "-F", sandbox.ssh_config, "-o",
                          "BatchMode=yes", "web1", "sleep 31"],
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    try:
        ran = wait_until(lambda: [
            e for e in sandbox.audit_events(since, "channel")
            if e.get("command") == "sleep 31"], 20)
        assert ran, sandbox.audit_events(since)
        sid, ch = ran[0]["sid"], ran[0]["ch"]
        mine = bzsshd_of(p, before)
        assert len(mine) == 1, mine
        os.kill(mine[0], signal.SIGKILL)
        closes = wait_until(lambda: [
            e for e in sandbox.audit_events(since, "channel_close")
            if e.get("sid") == sid and e.get("ch") == ch], 10)
        assert closes and closes[0]["reason"] == \
            "the client's link closed", closes
        ends = wait_until(lambda: [
            e for e in sandbox.audit_events(since, "session_close")
            if e.get("sid") == sid], 10)
        assert len(ends) == 1, ends
    finally:
        p.kill()
        p.wait()
