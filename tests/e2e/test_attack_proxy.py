# Attack: a stolen bzproxy (issue 8). The attacker holds what bzproxy's host
# holds -- its TLS key, its Ed25519 signing key, its SQLite file with the
# ID tokens and public client keys of users who logged in -- and takes
# over the agents' and the users' network paths to bzproxy.
# tests/lib/fake_proxy.py plays that bzproxy to real agents (web1, db1)
# and to a real bzsshd. The user runs one legitimate command through it;
# the attacker records everything the client signed and then tries to
# run commands of its own: a session of its making, the captured request
# replayed, altered, moved to another target or unix user. Each would
# create a marker file; none may appear. Then it meddles with the sealed
# bytes it relays (attack 3), and answers for web1 with an agent of its
# own (attack 5).
import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import \
    Ed25519PrivateKey

from conftest import SRCDIR, wait_until

sys.path.insert(0, os.path.join(SRCDIR, "tests", "lib"))
from bzwire import b64u, raw_public  # noqa: E402
from fake_proxy import FakeProxy, compact  # noqa: E402


def agent_config(sandbox, name, port, tmp_path):
    with open(getattr(sandbox, "agent_%s_config" % name)) as f:
        cfg = f.read()
    cfg = "\n".join("proxy_url: wss://127.0.0.1:%d/v1/agent" % port
                    if line.startswith("proxy_url:") else line
                    for line in cfg.splitlines()) + "\n"
    cfg += "audit_log: '%s'\n" % (tmp_path / ("%s-audit.jsonl" % name))
    path = tmp_path / ("%s.yaml" % name)
    path.write_text(cfg)
    path.chmod(0o600)
    return str(path)


@pytest.fixture(scope="module")
def stolen(sandbox, tmp_path_factory):
    """The fake bzproxy, web1 and db1 agents talking to it, a bzsshd
    config pointing at it, and the stolen SQLite session row."""
    tmp = tmp_path_factory.mktemp("stolen")
    d = sandbox.sandbox_dir
    fp = FakeProxy(os.path.join(d, "pki", "server.pem"),
                   os.path.join(d, "pki", "server.key"),
                   os.path.join(d, "proxy", "proxy_ed25519.key"))
    agents = []
    for name in ("web1", "db1"):
        log = open(tmp / ("%s.log" % name), "wb")
        agents.append((subprocess.Popen(
            [sandbox.bzagent, "-v", "-c",
             agent_config(sandbox, name, fp.port, tmp)],
            stdout=log, stderr=subprocess.STDOUT), log))
    # the user's bzsshd, its way to bzproxy taken over too
    client = tmp / "client"
    client.mkdir(mode=0o700)
    with open(os.path.join(sandbox.client_dir, "session")) as f:
        sess = json.load(f)
    sess["proxy"] = "wss://127.0.0.1:%d" % fp.port
    (client / "session").write_text(json.dumps(sess))
    (client / "session").chmod(0o600)
    for name in ("host_ed25519_key", "known_hosts"):
        src = os.path.join(sandbox.client_dir, name)
        (client / name).write_bytes(open(src, "rb").read())
        (client / name).chmod(0o600)
    cfg = sandbox.ssh_config_for(str(client), str(tmp / "ssh_config"))
    db = sqlite3.connect(os.path.join(d, "proxy", "state.db"))
    row = db.execute("SELECT user, id_token, client_key FROM sessions "
                     "ORDER BY expires DESC LIMIT 1").fetchone()
    db.close()
    # where any unix user could create a marker (pytest's folders are
    # root's alone)
    markers = tempfile.mkdtemp(prefix="bz-markers.", dir="/tmp")
    os.chmod(markers, 0o777)
    try:
        fp.wait_agent("web1")
        fp.wait_agent("db1")
        yield {"fp": fp, "cfg": cfg, "user": row[0], "token": row[1],
               "client_key": row[2], "markers": markers, "tmp": tmp,
               "client": str(client), "port": fp.port}
    finally:
        for p, log in agents:
            p.terminate()
            p.wait(10)
            log.close()
        fp.close()
        shutil.rmtree(markers, ignore_errors=True)


def legit_run(sandbox, st, command):
    """The user's own command through the stolen bzproxy; returns what the
    client signed for it: [SYN, request]."""
    n = len(st["fp"].captured)
    r = sandbox.ssh("web1", command, config=st["cfg"], timeout=30)
    assert r.returncode == 0, r.stderr
    assert wait_until(lambda: len(st["fp"].captured) >= n + 2, 5)
    return st["fp"].captured[n:n + 2]


def csm_json(signed):
    return json.loads(signed[:-64])


def resign(signed, changes, key):
    """The client's message with changes, signed by key (the attacker's:
    the client's is out of reach)."""
    o = csm_json(signed)
    o.update(changes)
    body = compact(o)
    return body + key.sign(body)


def agent_audit(st, event, name="web1"):
    """The events of one kind in an agent's own audit log."""
    try:
        with open(st["tmp"] / ("%s-audit.jsonl" % name)) as f:
            return [e for e in map(json.loads, f) if e["event"] == event]
    except FileNotFoundError:
        return []


def ran(st, name):
    path = os.path.join(st["markers"], name)
    time.sleep(0.3)
    found = os.path.exists(path)
    if found:
        os.unlink(path)
    return found


def test_legit_command_through_it_runs(sandbox, stolen):
    # the control: what the user asks for does run (the attacker relays)
    m = os.path.join(stolen["markers"], "legit")
    legit_run(sandbox, stolen, "touch %s" % m)
    assert ran(stolen, "legit")


def test_own_session_with_a_stolen_token(stolen):
    fp, attacker = stolen["fp"], Ed25519PrivateKey.generate()
    for key_b64 in (stolen["client_key"], b64u(raw_public(attacker))):
        # the victim's public key (signature fails) or the attacker's own
        # (the token's nonce commits to another key)
        syn = {"t": "syn", "seq": 0, "ch": 0, "ts": int(time.time()),
               "target": "web1", "unix_user": "deploy",
               "id_token": stolen["token"], "nonce_salt": b64u(os.urandom(16)),
               "client_key": key_b64, "client_random": b64u(os.urandom(32))}
        body = compact(syn)
        sid = fp.new_sid()
        fp.envelope("web1", sid, 0, body + attacker.sign(body),
                    action="connect")
        kind, why = fp.outcome("web1", sid, 0)
        assert kind == "failed", (kind, why)
        # and a request for that session all the same
        m = os.path.join(stolen["markers"], "own")
        req = {"t": "exec", "seq": 1, "prev": "x", "ch": 1,
               "ts": int(time.time()), "command": "touch %s" % m}
        body = compact(req)
        fp.envelope("web1", sid, 1, body + attacker.sign(body))
        kind, why = fp.outcome("web1", sid, 1)
        assert kind == "failed" and "no session" in why, (kind, why)
        assert not ran(stolen, "own")


def test_captured_request_replayed(sandbox, stolen):
    fp = stolen["fp"]
    m = os.path.join(stolen["markers"], "replay")
    syn, req = legit_run(sandbox, stolen, "touch %s" % m)
    assert ran(stolen, "replay")  # the user's own run
    # the SYN replayed (still fresh) gets a new session with the agent's
    # new random; the captured request does not chain to it
    sid = fp.new_sid()
    fp.envelope("web1", sid, 0, syn, action="connect")
    kind, _ = fp.outcome("web1", sid, 0)
    assert kind == "synack"
    fp.envelope("web1", sid, csm_json(req)["ch"], req)
    kind, why = fp.outcome("web1", sid, csm_json(req)["ch"])
    assert kind == "failed" and "chain" in why, (kind, why)
    assert not ran(stolen, "replay")
    # the target's own record: the user's run, and the replay refused
    runs = [e for e in agent_audit(stolen, "request")
            if "replay" in e.get("command", "")]
    assert runs[0]["result"] == "run"
    assert any(e["sid"] == sid and e["result"] == "refused" and
               "chain" in e["reason"]
               for e in agent_audit(stolen, "request"))


def test_captured_request_altered(sandbox, stolen):
    fp = stolen["fp"]
    syn, req = legit_run(sandbox, stolen, "true")
    m = os.path.join(stolen["markers"], "altered")
    sid = fp.new_sid()
    fp.envelope("web1", sid, 0, syn, action="connect")
    kind, synack = fp.outcome("web1", sid, 0)
    assert kind == "synack"
    prev = b64u(hashlib.sha256(synack).digest())
    # the command changed and chained right, the client's signature kept
    o = csm_json(req)
    o.update({"command": "touch %s" % m, "prev": prev})
    body = compact(o)
    fp.envelope("web1", sid, o["ch"], body + req[-64:])
    kind, why = fp.outcome("web1", sid, o["ch"])
    assert kind == "failed" and "not signed" in why, (kind, why)
    assert not ran(stolen, "altered")


def test_captured_session_moved(sandbox, stolen):
    fp = stolen["fp"]
    syn, _ = legit_run(sandbox, stolen, "true")
    # to another target: the SYN names web1
    sid = fp.new_sid()
    fp.envelope("db1", sid, 0, syn, action="connect")
    kind, why = fp.outcome("db1", sid, 0)
    assert kind == "failed" and "another target" in why, (kind, why)
    # to another unix user, or root: the client's signature breaks
    for user in ("daemon", "root"):
        sid = fp.new_sid()
        fp.envelope("web1", sid, 0, resign(syn, {"unix_user": user},
                                           Ed25519PrivateKey.generate()),
                    action="connect")
        kind, why = fp.outcome("web1", sid, 0)
        assert kind == "failed" and "not signed" in why, (kind, why)


# ---- attack 3: a relay that meddles with the sealed bytes ----

SEQ_OUT = b"".join(b"%d\n" % i for i in range(1, 300001))  # ~2 MB


def told_proxy(st, request):
    """bzsshd's note for bzproxy's audit log (a "refused" control)."""
    return any(n.get("t") == "refused" and n.get("request") == request
               for n in st["fp"].notes)


@pytest.mark.parametrize("kind", ["flip", "drop", "replay", "swap"])
def test_sealed_output_meddled_with(sandbox, stolen, kind):
    # the agent's output, on its way to the client: bzsshd finds out, ends
    # the connection, and ssh got only bytes the agent sent, in order
    fp = stolen["fp"]
    fp.set_tamper("to_client", kind)
    r = sandbox.ssh("web1", "seq 1 300000", config=stolen["cfg"], timeout=30)
    assert fp.tamper_done()
    assert r.returncode == 255, (r.returncode, r.stderr)
    assert b"failed its end-to-end integrity check" in r.stderr, r.stderr
    assert len(r.stdout) < len(SEQ_OUT)
    assert SEQ_OUT.startswith(r.stdout), "a corrupted byte reached ssh"
    assert wait_until(lambda: told_proxy(stolen, "sealed-data"), 5)
    fp.notes.clear()


@pytest.mark.parametrize("kind", ["flip", "drop", "replay", "swap"])
def test_sealed_input_meddled_with(sandbox, stolen, kind):
    # the client's input, on its way to the process: the agent finds out,
    # ends the session, and the process got only bytes the client sent
    fp = stolen["fp"]
    data = os.urandom(2 << 20)
    out = os.path.join(stolen["markers"], "input-" + kind)
    n = len(agent_audit(stolen, "integrity"))
    fp.set_tamper("to_agent", kind)
    r = sandbox.ssh("web1", "cat > %s" % out, input=data,
                    config=stolen["cfg"], timeout=30)
    assert fp.tamper_done()
    assert r.returncode == 255, (r.returncode, r.stderr)
    assert b"integrity check at the target" in r.stderr, r.stderr
    # on the target's own record too
    assert wait_until(lambda: len(agent_audit(stolen, "integrity")) > n, 5)
    try:
        with open(out, "rb") as f:
            got = f.read()
        os.unlink(out)
    except FileNotFoundError:
        got = b""  # the shell was hung up on before its redirection
    assert len(got) < len(data)
    assert data.startswith(got), "a corrupted byte reached the process"


def test_forged_exit_status(sandbox, stolen):
    # the "exit" control is bzproxy's to read, not to change: ssh reports
    # the status sealed in the agent's EOF
    fp = stolen["fp"]
    fp.forge_exit = 0
    try:
        r = sandbox.ssh("web1", "exit 3", config=stolen["cfg"], timeout=30)
        assert r.returncode == 3, (r.returncode, r.stderr)
        r = sandbox.ssh("web1", "kill -TERM $$", config=stolen["cfg"],
                        timeout=30)
        assert r.returncode == 255, (r.returncode, r.stderr)
    finally:
        fp.forge_exit = None


def test_sealed_big_stream_intact(sandbox, stolen):
    # the control: 64 MiB both ways through the same relay, untouched
    fp = stolen["fp"]
    fp.tamper = None
    data = os.urandom(64 << 20)
    r = sandbox.ssh("web1", "sha256sum; cat /dev/zero | head -c 1000000",
                    input=data, config=stolen["cfg"], timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(hashlib.sha256(data).hexdigest().encode())
    assert r.stdout.endswith(b"\0" * 1000000)


# ---- attack 5: another agent answering for web1 ----

def test_impostor_agent_refused(sandbox, stolen):
    fp = stolen["fp"]
    legit_run(sandbox, stolen, "true")  # the client has pinned web1
    pinned = open(os.path.join(stolen["client"], "known_targets")).read()
    assert pinned.startswith("web1 ")
    real = fp.agents["web1"]
    cfg = agent_config(sandbox, "web1", stolen["port"], stolen["tmp"])
    with open(cfg) as f:
        text = f.read()
    key = stolen["tmp"] / "impostor_ed25519.key"
    text = "\n".join("identity_key: '%s'" % key
                     if line.startswith("identity_key:") else line
                     for line in text.splitlines()) + "\n"
    icfg = stolen["tmp"] / "impostor.yaml"
    icfg.write_text(text)
    icfg.chmod(0o600)
    log = open(stolen["tmp"] / "impostor.log", "wb")
    imp = subprocess.Popen([sandbox.bzagent, "-v", "-c", str(icfg)],
                           stdout=log, stderr=subprocess.STDOUT)
    try:
        assert wait_until(lambda: fp.agents["web1"] is not real, 20)
        m = os.path.join(stolen["markers"], "impostor")
        r = sandbox.ssh("web1", "touch %s" % m, config=stolen["cfg"],
                        timeout=30)
        assert r.returncode == 255
        assert b"not the key" in r.stderr and \
            b"bzsshd forget-target web1" in r.stderr, r.stderr
        assert not ran(stolen, "impostor")
        assert wait_until(lambda: told_proxy(stolen, "target-key"), 5)
        # the pin is unchanged
        assert open(os.path.join(stolen["client"],
                                 "known_targets")).read() == pinned
        # a re-enrolment the user accepts: forget, and the next connection
        # pins the key it meets
        f = subprocess.run([sandbox.bzsshd, "--config-dir", stolen["client"],
                            "forget-target", "web1"],
                           stdout=subprocess.PIPE, timeout=10)
        assert f.returncode == 0 and b"forgot web1" in f.stdout
        r = sandbox.ssh("web1", "true", config=stolen["cfg"], timeout=30)
        assert r.returncode == 0, r.stderr
        assert open(os.path.join(stolen["client"],
                                 "known_targets")).read() != pinned
    finally:
        imp.terminate()
        imp.wait(10)
        log.close()
        fp.agents["web1"] = real
        subprocess.run([sandbox.bzsshd, "--config-dir", stolen["client"],
                        "forget-target", "web1"], stdout=subprocess.DEVNULL,
                       timeout=10)
