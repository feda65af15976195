# What a user sees while bzproxy restarts (issue 9): ssh started while
# bzproxy is down waits for it, saying on stderr that bzproxy is not
# reachable and that bzsshd is retrying, and gives up after proxy_retry
# (bzsshd.yaml) with a line naming bzproxy and its address; a TOTP prompt
# outlives the restart; bzproxy killed under a running command ends ssh at
# once with a line naming bzproxy. What waiting cannot fix (bzproxy's
# certificate, HTTP 403) fails at once. (Restarts bzproxy: runs late, file
# names sort; bzproxy runs again after each test.)
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import threading
import time

from conftest import PtyProc, alive, start_proxy, stop_proxy, wait_until


def proxy_pid(sandbox):
    try:
        with open(os.path.join(sandbox.dir, "pids", "bzproxy.pid")) as f:
            pid = int(f.read())
    except (OSError, ValueError):
        return None
    return pid if alive(pid) else None


def start_proxy_now(sandbox):
    """Started; whether agents are back yet is the test's business."""
    r = start_proxy(sandbox, wait_ssh=False)
    assert r.returncode == 0, r.stdout


def proxy_back(sandbox):
    """For the tests after us: bzproxy running, and web1 reachable (agents
    reconnect with a backoff after bzproxy was away)."""
    if proxy_pid(sandbox) is None:
        start_proxy_now(sandbox)
    sandbox.reload()
    assert wait_until(lambda: sandbox.ssh("web1", "true", timeout=20)
                      .returncode == 0, 60, interval=1)


def client_copy(sandbox, tmp_path, settings=None, proxy=None):
    """The sandbox's bzsshd config dir, copied (same login), with its own
    bzsshd.yaml and, when given, another bzproxy URL: an ssh_config for
    it."""
    d = str(tmp_path / "client")
    shutil.copytree(sandbox.client_dir, d)
    if settings is not None:
        with open(os.path.join(d, "bzsshd.yaml"), "w") as f:
            f.write(settings)
    if proxy is not None:
        p = os.path.join(d, "session")
        with open(p) as f:
            text = f.read()
        with open(p, "w") as f:
            f.write(text.replace(sandbox.proxy_url, proxy))
    return sandbox.ssh_config_for(d, str(tmp_path / "ssh_config"))


def retry_line(sandbox):
    return re.compile(
        rb"bzsshd: bzproxy \(%s\) is not reachable: connection refused; "
        rb"retrying in [0-9.]+s \(gives up after [0-9]+s\)\r?\n"
        % re.escape(sandbox.proxy_url.encode()))


def test_ssh_waits_for_a_restarting_bzproxy(sandbox, tmp_path):
    # a wide window: agents reconnect with a backoff of their own
    cfg = client_copy(sandbox, tmp_path, "proxy_retry: 60s\n")
    stop_proxy(sandbox)
    try:
        p = subprocess.Popen(["ssh", "-F", cfg, "-o", "BatchMode=yes",
                              "web1", "echo ok"], stdin=subprocess.DEVNULL,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        time.sleep(3)
        assert p.poll() is None, p.communicate()
        start_proxy_now(sandbox)
        out, err = p.communicate(timeout=75)
    finally:
        if p.poll() is None:
            p.kill()
            p.communicate()
        proxy_back(sandbox)
    assert p.returncode == 0, err
    assert out == b"ok\n"
    assert retry_line(sandbox).search(err), err


def test_ssh_gives_up_naming_bzproxy(sandbox, tmp_path):
    cfg = client_copy(sandbox, tmp_path, "proxy_retry: 3s\n")
    stop_proxy(sandbox)
    try:
        t0 = time.time()
        r = sandbox.ssh("web1", "echo ok", config=cfg, timeout=30)
        took = time.time() - t0
    finally:
        proxy_back(sandbox)
    assert r.returncode == 255, r
    assert 2.5 < took < 10, "gave up after %.1f s" % took
    assert retry_line(sandbox).search(r.stderr), r.stderr
    last = r.stderr.splitlines()[-1]
    assert last == (b"bzsshd: bzproxy (%s) is not reachable: connection "
                    b"refused; gave up after 3s" %
                    sandbox.proxy_url.encode()), r.stderr
    assert b"kex_exchange_identification" not in r.stderr


def test_bzproxy_killed_under_a_command(sandbox):
    p = subprocess.Popen(["ssh", "-F", sandbox.ssh_config, "-o",
                          "BatchMode=yes", "web1", "echo started; sleep 30"],
                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    try:
        assert p.stdout.readline() == b"started\n", p.stderr.read()
        stop_proxy(sandbox, signal.SIGKILL)
        t0 = time.time()
        out, err = p.communicate(timeout=15)
        took = time.time() - t0
    finally:
        if p.poll() is None:
            p.kill()
            p.communicate()
        proxy_back(sandbox)
    assert p.returncode == 255, err
    assert took < 5, "ssh took %.1f s to notice" % took
    assert err == (b"bzsshd: lost the link to bzproxy (%s: connection "
                   b"closed); the remote command's state is unknown\r\n" %
                   sandbox.proxy_url.encode()), err


def test_totp_prompt_outlives_a_restart(sandbox):
    # a rule that wants a fresh code: ssh prompts; bzproxy restarts while
    # it does; the code typed then goes to the new link
    pol = os.path.join(sandbox.policy_dir, "sandbox.yaml")
    with open(pol) as f:
        orig = f.read()
    short = re.sub(r"mfa_max_age: \S+", "mfa_max_age: 1s", orig)
    assert short != orig

    def put(text):
        with open(pol + ".tmp", "w") as f:
            f.write(text)
        os.rename(pol + ".tmp", pol)
        os.kill(int(sandbox.proxy_pid), signal.SIGHUP)

    put(short)
    p = None
    try:
        time.sleep(2.5)  # reload, and let the login's code grow old
        p = PtyProc(["ssh", "-F", sandbox.ssh_config, "-tt", "web1",
                     "echo MFA-$((40+2))"])
        p.expect(rb"Verification code", timeout=30)
        stop_proxy(sandbox)
        start_proxy_now(sandbox)  # with the short rule still
        p.write(sandbox.totp() + "\n")
        p.expect(rb"MFA-42", timeout=60)
        assert p.wait(20) == 0
        assert b"retrying" in p.buf, p.buf
        assert b"Permission denied" not in p.buf, p.buf
    finally:
        if p is not None:
            p.close()
        if proxy_pid(sandbox) is None:
            start_proxy_now(sandbox)
        sandbox.reload()
        put(orig)
        time.sleep(1)
        proxy_back(sandbox)


class FakeProxy:
    """A TLS server on 127.0.0.1 that answers every websocket upgrade with
    one HTTP status (or only completes the TLS handshake with its cert)."""

    def __init__(self, cert, key, status):
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(cert, key)
        self.status = status
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.conns = 0
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        while True:
            try:
                s, _ = self.sock.accept()
            except OSError:
                return
            self.conns += 1
            try:
                t = self.ctx.wrap_socket(s, server_side=True)
                head = b""
                while b"\r\n\r\n" not in head:
                    chunk = t.recv(4096)
                    if not chunk:
                        break
                    head += chunk
                t.sendall(b"HTTP/1.1 %s\r\nContent-Length: 0\r\n"
                          b"Connection: close\r\n\r\n" % self.status)
                t.close()
            except (OSError, ssl.SSLError):
                s.close()

    def close(self):
        self.sock.close()


def fake_proxy_ssh(sandbox, tmp_path, status, cert=None, key=None,
                   retry="30s"):
    pki = os.path.join(sandbox.dir, "pki")
    fake = FakeProxy(cert or os.path.join(pki, "server.pem"),
                     key or os.path.join(pki, "server.key"), status)
    url = "wss://127.0.0.1:%d" % fake.port
    try:
        cfg = client_copy(sandbox, tmp_path, "proxy_retry: %s\n" % retry,
                          proxy=url)
        t0 = time.time()
        r = sandbox.ssh("web1", "true", config=cfg, timeout=60)
        return r, time.time() - t0, url, fake.conns
    finally:
        fake.close()


def test_bad_certificate_is_not_retried(sandbox, tmp_path):
    cert, key = str(tmp_path / "self.pem"), str(tmp_path / "self.key")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-keyout", key,
                    "-out", cert, "-days", "2", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1"], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    r, took, url, conns = fake_proxy_ssh(sandbox, tmp_path, b"101 X", cert,
                                         key)
    assert r.returncode == 255, r
    assert took < 5 and conns == 1, (took, conns)
    assert r.stderr == (b"bzsshd: cannot use bzproxy (%s): its certificate "
                        b"did not verify: self-signed certificate\r\n" %
                        url.encode()), r.stderr


def test_http_403_is_not_retried(sandbox, tmp_path):
    r, took, url, conns = fake_proxy_ssh(sandbox, tmp_path, b"403 Forbidden")
    assert r.returncode == 255, r
    assert took < 5 and conns == 1, (took, conns)
    assert r.stderr == (b"bzsshd: cannot use bzproxy (%s): HTTP 403 at the "
                        b"websocket upgrade\r\n" % url.encode()), r.stderr


def test_http_503_is_retried(sandbox, tmp_path):
    r, took, url, conns = fake_proxy_ssh(sandbox, tmp_path,
                                         b"503 Service Unavailable",
                                         retry="2s")
    assert r.returncode == 255, r
    assert conns >= 2, conns
    assert (b"bzsshd: bzproxy (%s) is not reachable: HTTP 503 at the "
            b"websocket upgrade (bzproxy is stopping, or at a link limit: "
            b"limits.max_links, preauth_links or preauth_per_address); "
            b"retrying in" % url.encode()) in \
        r.stderr
    assert r.stderr.splitlines()[-1].endswith(b"gave up after 2s"), r.stderr


def test_bad_setting_named(sandbox, tmp_path):
    cfg = client_copy(sandbox, tmp_path, "proxy_retry: soon\n")
    r = sandbox.ssh("web1", "true", config=cfg, timeout=30)
    assert r.returncode == 255, r
    assert b"proxy_retry must be a duration like 30s" in r.stderr, r.stderr
