# The audit log: JSON lines, hash-chained (each line's "prev" is the hex
# SHA-256 of the previous line, 64 zeros for the first), covering a session.
import hashlib
import json
import random
import subprocess


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
