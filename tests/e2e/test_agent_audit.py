# The target's own audit log (issue 8): what the agent ran, for whom, with
# the hash of the client's signed request that bzproxy's log names too;
# hash-chained like bzproxy's, on the target where bzproxy cannot edit it.
import hashlib
import json
import os
import random

from conftest import wait_until
from test_audit import read_chain


def agent_audit(sandbox):
    return os.path.join(os.path.dirname(sandbox.agent_web1_config),
                        "audit.jsonl")


def size(path):
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


def events(path, since):
    with open(path, "rb") as f:
        f.seek(since)
        data = f.read()
    return [json.loads(l) for l in data.split(b"\n")[:-1] if l.strip()]


def test_agent_records_what_it_ran(sandbox):
    path = agent_audit(sandbox)
    mark, pmark = size(path), sandbox.audit_mark()
    marker = "agent-audit-%d" % random.randint(10**8, 10**9)
    sandbox.ssh("web1", "echo %s" % marker, check_rc=0)
    assert wait_until(lambda: any(e["event"] == "channel_end"
                                  for e in events(path, mark)), 5)
    ev = events(path, mark)
    sess = [e for e in ev if e["event"] == "session"]
    assert sess and sess[0]["result"] == "accepted", ev
    assert sess[0]["user"] == sandbox.test_user
    assert sess[0]["unix_user"] == sandbox.unix_user
    req = [e for e in ev if e["event"] == "request"]
    assert len(req) == 1 and req[0]["result"] == "run", ev
    assert req[0]["command"] == "echo %s" % marker
    assert req[0]["user"] == sandbox.test_user
    assert req[0]["rule"] == "ops-sandbox" and req[0]["action"] == "exec"
    h = req[0]["request_hash"]
    # bzproxy's log names the same request
    assert any(p.get("request_hash") == h
               for p in sandbox.audit_events(pmark, "channel")), h
    end = [e for e in ev if e["event"] == "channel_end"]
    assert end[0]["request_hash"] == h and end[0]["status"] == 0, end
    assert end[0]["bytes_out"] == len(marker) + 1
    # hash-chained, and the file is the agent's alone
    prev = "0" * 64
    for raw in read_chain(path):
        assert json.loads(raw)["prev"] == prev
        prev = hashlib.sha256(raw).hexdigest()
    assert os.stat(path).st_mode & 0o777 == 0o600


def test_agent_records_a_denial(sandbox):
    # bzproxy says no to exec: the agent gets the signed request all the
    # same (its chain moves on) and writes down the denial
    path = agent_audit(sandbox)
    mark = size(path)
    with sandbox.policy_edited(lambda t: t.replace(
            "allow: [shell, exec, sftp, scp, port_forward]",
            "allow: [shell, sftp, scp, port_forward]")):
        r = sandbox.ssh("web1", "echo no")
    assert r.returncode == 255
    assert wait_until(lambda: any(e["event"] == "request"
                                  for e in events(path, mark)), 5)
    req = [e for e in events(path, mark) if e["event"] == "request"]
    assert req[0]["result"] == "denied" and req[0]["request"] == "exec"
    assert req[0]["proxy_decision"] == "deny"
