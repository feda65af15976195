# Attacks on the client side of the login (issue 8): a copied session file
# without its client key, a login signature replayed over another link's
# challenge, an ID token whose nonce commits to someone else's key, a
# stolen IdP signing key without the user's TOTP, and a stolen IdP key
# trying to pose as bzproxy to an agent. Each is refused.
import hashlib
import json
import os
import subprocess
import sys

from cryptography.hazmat.primitives.asymmetric.ed25519 import \
    Ed25519PrivateKey

from conftest import SRCDIR

sys.path.insert(0, os.path.join(SRCDIR, "tests", "lib"))
from bzwire import WS, b64u, control, raw_public, sodium_secret, \
    unb64u  # noqa: E402
from fake_proxy import FakeProxy  # noqa: E402

IDP = os.path.join(SRCDIR, "tests", "idp", "idp.py")


class ClientKey:
    """A client key pair and the nonce an ID token must carry for it."""

    def __init__(self):
        self.sk = Ed25519PrivateKey.generate()
        self.pk = raw_public(self.sk)
        self.salt = os.urandom(16)
        self.nonce = b64u(hashlib.sha256(self.pk + self.salt).digest())

    def pop(self, t, challenge, fields):
        """The proof of possession (common/pop.h) over challenge."""
        msg = "bz.v1 pop\n%s\n%s" % (t, b64u(challenge))
        for f in fields:
            msg += "\n" + f
        return b64u(self.sk.sign(msg.encode()))


def mint(sandbox, nonce, email=None):
    """An ID token signed with the IdP's own key (what a stolen IdP
    holds)."""
    r = subprocess.run(["/usr/bin/python3", IDP, "mint", "--key-file",
                        sandbox.idp_key, "--port-file",
                        sandbox.idp_port_file, "--email",
                        email or sandbox.test_user, "--nonce=" + nonce],
                       stdout=subprocess.PIPE, check=True, text=True,
                       timeout=30)
    return r.stdout.strip()


def login_msg(key, token, totp, challenge, signer=None):
    th = b64u(hashlib.sha256(token.encode()).digest())
    return {"t": "login", "id_token": token, "nonce_salt": b64u(key.salt),
            "client_key": b64u(key.pk), "totp": totp,
            "sig": (signer or key).pop("login", challenge, [th])}


def open_link(sandbox):
    ws = WS(sandbox, "/v1/client")
    ch = ws.control()
    assert ch["t"] == "challenge", ch
    return ws, unb64u(ch["nonce"])


def test_copied_session_file_without_its_key(sandbox, tmp_client_dir,
                                             tmp_path):
    with open(os.path.join(sandbox.client_dir, "session")) as f:
        sess = json.load(f)
    # the thief has the file but not the key: any other key is a guess
    sess["client_key"] = b64u(sodium_secret(Ed25519PrivateKey.generate()))
    path = os.path.join(tmp_client_dir, "session")
    with open(path, "w") as f:
        json.dump(sess, f)
    os.chmod(path, 0o600)
    cfg = sandbox.ssh_config_for(tmp_client_dir, str(tmp_path / "cfg"),
                                 strict=False)
    r = sandbox.ssh("web1", "echo ran", config=cfg, timeout=30)
    assert r.returncode == 255
    assert r.stdout == b""
    assert b"not signed by the key of your login" in r.stderr, r.stderr


def test_login_replayed_over_another_challenge(sandbox):
    key = ClientKey()
    token = mint(sandbox, key.nonce)
    ws1, ch1 = open_link(sandbox)
    ws2, _ = open_link(sandbox)
    # a login signed for link 1, sent on link 2
    ws2.send(control(login_msg(key, token, "000000", ch1)))
    ans = ws2.control()
    assert ans["t"] == "error" and "challenge" in ans["reason"], ans


def test_token_nonce_for_another_key(sandbox):
    victim, thief = ClientKey(), ClientKey()
    token = mint(sandbox, victim.nonce)
    ws, ch = open_link(sandbox)
    # the thief signs for its own key with the victim's token
    m = login_msg(thief, token, "000000", ch)
    ws.send(control(m))
    ans = ws.control()
    assert ans["t"] == "error" and "nonce" in ans["reason"], ans


def test_stolen_idp_key_without_totp(sandbox):
    key = ClientKey()
    token = mint(sandbox, key.nonce)
    ws, ch = open_link(sandbox)
    ws.send(control(login_msg(key, token, sandbox.totp("--wrong"), ch)))
    ans = ws.control()
    assert ans["t"] == "error" and "TOTP" in ans["reason"], ans


def test_stolen_idp_key_cannot_pose_as_bzproxy(sandbox, tmp_path):
    # what an IdP thief lacks is bzproxy's key: an agent pinned to the
    # real one will not even say who it is
    other = tmp_path / "not_the_proxy.key"
    other.write_text(b64u(sodium_secret(Ed25519PrivateKey.generate())) +
                     "\n")
    d = sandbox.sandbox_dir
    fp = FakeProxy(os.path.join(d, "pki", "server.pem"),
                   os.path.join(d, "pki", "server.key"), str(other))
    with open(sandbox.agent_web1_config) as f:
        cfg = "\n".join("proxy_url: wss://127.0.0.1:%d/v1/agent" % fp.port
                        if line.startswith("proxy_url:") else line
                        for line in f.read().splitlines()) + "\n"
    path = tmp_path / "bzagent.yaml"
    path.write_text(cfg)
    path.chmod(0o600)
    agent = subprocess.Popen([sandbox.bzagent, "-c", str(path)],
                             stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE)
    try:
        fp.wait_agent("web1", 5)
        answered = True
    except TimeoutError:  # it hung up instead of agent_hello
        answered = False
    finally:
        agent.terminate()
        _, err = agent.communicate(timeout=10)
        fp.close()
    assert not answered, "the agent answered a bzproxy it does not pin"
    assert b"not the one pinned" in err, err[-2000:]
