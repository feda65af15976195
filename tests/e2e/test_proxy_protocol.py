# bzproxy's side of the wire protocol, spoken raw over wss: paths and
# subprotocol, violations closed with a reason, hello without a login, and
# agent enrolment (one-time token, pinned key).
import os
import subprocess
import sys

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from conftest import SRCDIR

sys.path.insert(0, os.path.join(SRCDIR, "tests", "lib"))
from bzwire import WS, b64u, control, frame, unb64u  # noqa: E402


def proxy_cli(sandbox, *args):
    return subprocess.run([sandbox.bzproxy, "-c", sandbox.proxy_config, *args],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True, timeout=30)


class Agent:
    """An agent identity: a key pair, answering the challenge."""

    def __init__(self):
        self.sk = Ed25519PrivateKey.generate()
        self.pk = self.sk.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)

    def hello(self, sandbox, name, token=None):
        ws = WS(sandbox, "/v1/agent")
        assert ws.upgraded, ws.status
        ch = ws.control()
        assert ch["t"] == "challenge", ch
        msg = {"t": "agent_hello", "name": name, "key": b64u(self.pk),
               "sig": b64u(self.sk.sign(unb64u(ch["nonce"]))), "version": "test"}
        if token:
            msg["enrol_token"] = token
        ws.send(control(msg))
        return ws, ch, ws.control()


def test_only_our_paths_and_subprotocol(sandbox):
    assert not WS(sandbox, "/v1/other").upgraded
    assert not WS(sandbox, "/v1/client", proto=None).upgraded
    assert WS(sandbox, "/v1/client").upgraded
    assert WS(sandbox, "/v1/agent").upgraded


@pytest.mark.parametrize("what", ["text", "oversize", "short", "type", "early-data",
                                  "two-frames", "bad-json"])
def test_violations_close_with_reason(sandbox, what):
    ws = WS(sandbox, "/v1/client")
    try:
        if what == "text":
            ws.send(b"hello", opcode=1)
        elif what == "oversize":
            ws.send(frame(2, b"x" * (64 * 1024 + 1)))
        elif what == "short":
            ws.send(b"\x01\x01")
        elif what == "type":
            ws.send(frame(0x33))
        elif what == "early-data":
            ws.send(frame(2, b"abc", ch=1))
        elif what == "two-frames":
            ws.send(control({"t": "x"}) + control({"t": "y"}))
        elif what == "bad-json":
            ws.send(frame(1, b"{not json"))
    except OSError:
        return  # closed while we were still sending: also a refusal
    reason = ws.close_reason()
    if what != "oversize":  # may be cut off mid-send: EOF is enough
        assert "protocol violation" in reason, reason


def test_fragmented_message_is_reassembled(sandbox):
    ws = WS(sandbox, "/v1/client")
    assert ws.control()["t"] == "challenge"
    m = control({"t": "hello", "session": "no-such-session", "target": "web1",
                 "unix_user": sandbox.unix_user})
    ws.send(m[:10], fin=False)
    ws.send(m[10:30], opcode=0, fin=False)
    ws.send(m[30:], opcode=0)
    ans = ws.control()
    assert ans["t"] == "error" and "bzsshd login" in ans["reason"], ans


def test_challenge_names_the_proxy_key(sandbox):
    key = proxy_cli(sandbox, "key").stdout.split()[-1]
    ws = WS(sandbox, "/v1/agent")
    ch = ws.control()
    assert ch["proxy_key"] == key
    assert len(unb64u(ch["nonce"])) == 32


def test_agent_enrolment_token_once_and_key_pinned(sandbox):
    name = "e2e-enrol-%d" % os.getpid()
    r = proxy_cli(sandbox, "agent", "add", name, "--label", "env=test")
    assert r.returncode == 0, r.stderr
    token = r.stdout.split()[-1]

    a = Agent()
    ws, _, ans = a.hello(sandbox, name)  # no token yet
    assert ans["t"] == "error" and "not enrolled yet" in ans["reason"], ans
    ws, _, ans = a.hello(sandbox, name, token + "x")
    assert ans["t"] == "error" and "wrong or already used" in ans["reason"], ans

    ws, _, ans = a.hello(sandbox, name, token)
    assert ans == {"t": "agent_ok", "labels": {"env": "test"}}, ans
    # a newer connection of the same agent replaces it; the token is moot
    ws2, _, ans2 = a.hello(sandbox, name, token)
    assert ans2["t"] == "agent_ok", ans2
    assert "replaced" in ws.close_reason()

    b = Agent()  # the token is burnt: another key cannot use it
    _, _, ans = b.hello(sandbox, name, token)
    assert ans["t"] == "error" and "pinned" in ans["reason"], ans
    _, _, ans = b.hello(sandbox, "e2e-nobody-%d" % os.getpid())
    assert ans["t"] == "error" and "bzproxy agent add" in ans["reason"], ans


def test_agent_bad_signature_refused(sandbox):
    a = Agent()
    ws = WS(sandbox, "/v1/agent")
    ws.control()
    ws.send(control({"t": "agent_hello", "name": "web1", "key": b64u(a.pk),
                     "sig": b64u(a.sk.sign(b"not the nonce"))}))
    ans = ws.control()
    assert ans["t"] == "error" and "signature" in ans["reason"], ans
