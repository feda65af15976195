# Long sessions without a browser (issue 8): with 60-second ID tokens,
# bzsshd trades the OIDC refresh token for new ones (the test IdP, like many
# IdPs, puts no nonce in a refreshed token), and both a ControlMaster
# connection (as Ansible keeps) and new connections go on working past
# three expiries. The agent takes each refreshed token only as the
# continuation of the login whose nonce bound the client key.
import base64
import json
import os
import ssl
import subprocess
import time
import urllib.parse
import urllib.request

import pytest

from conftest import wait_until

LIFETIME = 60


def idp_post(sandbox, path, **form):
    ctx = ssl.create_default_context(cafile=sandbox.ca)
    req = urllib.request.Request(sandbox.issuer + path,
                                 data=urllib.parse.urlencode(form).encode())
    with urllib.request.urlopen(req, context=ctx, timeout=10) as r:
        return json.load(r)


def claims(jwt):
    p = jwt.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(p + "=" * (-len(p) % 4)))


def session(client_dir):
    with open(os.path.join(client_dir, "session")) as f:
        return json.load(f)


def agent_events(sandbox, event):
    path = os.path.join(os.path.dirname(sandbox.agent_web1_config),
                        "audit.jsonl")
    with open(path) as f:
        return [e for e in map(json.loads, f) if e["event"] == event]


@pytest.fixture
def short_tokens(sandbox):
    idp_post(sandbox, "/test/lifetime", seconds=LIFETIME)
    yield
    idp_post(sandbox, "/test/lifetime", seconds=3600)


def test_session_outlives_three_token_expiries(sandbox, short_tokens,
                                               tmp_client_dir, tmp_path):
    r = sandbox.login(tmp_client_dir, sandbox.totp())
    assert r.returncode == 0, r.stderr
    first = session(tmp_client_dir)
    c = claims(first["id_token"])
    assert c["exp"] - c["iat"] == LIFETIME and "nonce" in c
    assert first.get("refresh_token")
    cfg = sandbox.ssh_config_for(tmp_client_dir, str(tmp_path / "cfg"),
                                 strict=False)
    sock = str(tmp_path / "cm")
    # one SSH connection that stays, as Ansible's ControlMaster does
    master = subprocess.Popen(
        ["ssh", "-F", cfg, "-o", "BatchMode=yes", "-o", "ControlMaster=yes",
         "-o", "ControlPath=" + sock, "-N", "web1"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE)
    tokens_before = len([e for e in agent_events(sandbox, "request")
                         if e["request"] == "token"])
    try:
        assert wait_until(lambda: os.path.exists(sock), 20)
        start, n = time.time(), 0
        # past three expiries, and the verifiers' 60 s of clock leeway
        while time.time() - start < 3 * LIFETIME + 30:
            r = subprocess.run(
                ["ssh", "-F", cfg, "-o", "ControlPath=" + sock, "web1",
                 "echo mux-%d" % n], stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
            assert r.returncode == 0 and r.stdout == b"mux-%d\n" % n, (
                "after %d s: %r" % (time.time() - start, r.stderr))
            n += 1
            time.sleep(20)
        # a new connection: its SYN carries a refreshed token (no nonce)
        # beside the login's own, long expired
        r = sandbox.ssh("web1", "echo fresh", config=cfg, timeout=30)
        assert r.returncode == 0 and r.stdout == b"fresh\n", r.stderr
    finally:
        master.terminate()
        master.wait(10)
    now = session(tmp_client_dir)
    assert now["login_token"] == first["id_token"]
    assert now["id_token"] != first["id_token"]
    assert "nonce" not in claims(now["id_token"])
    assert claims(now["id_token"])["auth_time"] == c["auth_time"]
    assert now["refresh_token"] != first["refresh_token"]  # rotated
    # the master's session got the refreshes in its chain, each taken
    took = [e for e in agent_events(sandbox, "request")
            if e["request"] == "token"][tokens_before:]
    assert len(took) >= 3 and all(e["result"] == "run" for e in took), took
