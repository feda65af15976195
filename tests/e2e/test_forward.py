# TCP forwarding through the whole chain with the real OpenSSH client:
# ssh -L (bulk, concurrent, server-speaks-first, half-close), ssh -W (also as
# the ProxyCommand of another ssh to a real sshd: a jump host), ssh -D
# (SOCKS, names resolved on the target side), destinations the policy denies
# or nobody listens on (refused promptly, bzsshd says why, audited), and
# ssh -R (refused, audited). The "target" services are servers this test
# process starts on 127.0.0.1 (the agents run on this machine).
import hashlib
import json
import http.server
import os
import random
import socket
import socketserver
import subprocess
import threading
import time

import pytest

from conftest import (bzsshd_of, bzsshd_pids, free_port, is_listening,
                      ppid, wait_until)

SSH_TIMEOUT = 60


# ------------------------------------------------------------------ helpers

def recv_all(sock, limit=None):
    """Read until EOF (or limit bytes); return the bytes."""
    chunks, n = [], 0
    while limit is None or n < limit:
        b = sock.recv(min(262144, limit - n) if limit is not None else 262144)
        if not b:
            break
        chunks.append(b)
        n += len(b)
    return b"".join(chunks)


class _Server(socketserver.ThreadingMixIn, socketserver.TCPServer):
    daemon_threads = True
    allow_reuse_address = True


class TcpServer:
    """A threaded TCP server on 127.0.0.1 (or ::1) running handle(sock) for
    each connection; counts connections seen and still open."""

    def __init__(self, handle, host="127.0.0.1"):
        outer = self
        self.accepted = 0
        self.active = 0
        self.errors = []
        self.lock = threading.Lock()

        class H(socketserver.BaseRequestHandler):
            def handle(self):
                with outer.lock:
                    outer.accepted += 1
                    outer.active += 1
                try:
                    self.request.settimeout(120)
                    handle(self.request)
                except Exception as e:  # reported by the test
                    with outer.lock:
                        outer.errors.append(repr(e))
                finally:
                    with outer.lock:
                        outer.active -= 1

        cls = _Server
        if ":" in host:
            cls = type("_Server6", (_Server,), {"address_family": socket.AF_INET6})
        self.srv = cls((host, 0), H)
        self.port = self.srv.server_address[1]
        self.thread = threading.Thread(target=self.srv.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.srv.shutdown()
        self.srv.server_close()


def echo_handler(sock):
    while True:
        b = sock.recv(262144)
        if not b:
            break
        sock.sendall(b)
    sock.shutdown(socket.SHUT_WR)


def sha_handler(sock):
    """Read to EOF, then answer the hex SHA-256 and the byte count."""
    h, n = hashlib.sha256(), 0
    while True:
        b = sock.recv(262144)
        if not b:
            break
        h.update(b)
        n += len(b)
    sock.sendall(("%s %d\n" % (h.hexdigest(), n)).encode())


@pytest.fixture
def echo_server():
    s = TcpServer(echo_handler)
    yield s
    s.close()


def start_ssh_bg(sandbox, args, errpath):
    cmd = ["ssh", "-F", sandbox.ssh_config, "-o", "BatchMode=yes"] + list(args)
    err = open(errpath, "wb")
    p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=err)
    err.close()
    p.errpath = errpath
    return p


def read_err(p):
    with open(p.errpath, "rb") as f:
        return f.read().decode(errors="replace")


def wait_listening(p, port, timeout=30):
    ok = wait_until(lambda: p.poll() is not None or is_listening(port), timeout)
    assert p.poll() is None and ok, "ssh (rc %r) does not listen on %d: %s" % (
        p.poll(), port, read_err(p))


def stop(p):
    if p.poll() is None:
        p.terminate()
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()




def wait_audit(sandbox, since, pred, timeout=10):
    return wait_until(lambda: [e for e in sandbox.audit_events(since) if pred(e)],
                      timeout)


# ------------------------------------------------------------------ ssh -L

def test_local_forward_bulk_banner_halfclose(sandbox, echo_server, tmp_path):
    banner = os.urandom(3 * 1024 * 1024 + 17) + b"end of banner\n"

    def banner_handler(sock):
        sock.sendall(banner)
        sock.close()

    banner_srv = TcpServer(banner_handler)
    sha_srv = TcpServer(sha_handler)
    servers = (echo_server, banner_srv, sha_srv)
    lports = [free_port() for _ in servers]
    args = ["-N", "-o", "ExitOnForwardFailure=yes"]
    for lp, s in zip(lports, servers):
        args += ["-L", "%d:127.0.0.1:%d" % (lp, s.port)]
    since = sandbox.audit_mark()
    before = bzsshd_pids()
    p = start_ssh_bg(sandbox, args + ["web1"], str(tmp_path / "ssh-L.err"))
    try:
        for lp in lports:
            wait_listening(p, lp)
        kids = bzsshd_of(p, before)
        assert kids, "bzsshd (ssh's ProxyCommand) not found"

        # 1. eight connections at once, 1-5 MiB each, echoed back intact
        results = {}

        def one(i):
            data = os.urandom(random.randint(1, 5) * 1024 * 1024 + i)
            c = socket.create_connection(("127.0.0.1", lports[0]), timeout=60)
            try:
                t = threading.Thread(target=c.sendall, args=(data,), daemon=True)
                t.start()
                got = recv_all(c, len(data))
                t.join(60)
                results[i] = (len(data), len(got), got == data)
            except Exception as e:
                results[i] = repr(e)
            finally:
                c.close()

        ts = [threading.Thread(target=one, args=(i,)) for i in range(8)]
        for t in ts:
            t.start()
        for t in ts:
            t.join(180)
        assert len(results) == 8, results
        for i, r in results.items():
            assert isinstance(r, tuple) and r[2], "connection %d: %r" % (i, r)
        assert p.poll() is None, read_err(p)

        # 2. the server speaks first, then closes: all of it, then EOF
        c = socket.create_connection(("127.0.0.1", lports[1]), timeout=30)
        got = recv_all(c)
        c.close()
        assert len(got) == len(banner) and got == banner, (len(got), len(banner))

        # 3. half-close: we shut our side; the server reads to EOF, answers
        data = os.urandom(2 * 1024 * 1024 + 3)
        c = socket.create_connection(("127.0.0.1", lports[2]), timeout=30)
        c.sendall(data)
        c.shutdown(socket.SHUT_WR)
        reply = recv_all(c)
        c.close()
        assert reply.decode() == "%s %d\n" % (hashlib.sha256(data).hexdigest(),
                                              len(data))

        # 4. the same ssh still forwards afterwards
        c = socket.create_connection(("127.0.0.1", lports[0]), timeout=30)
        c.sendall(b"still here")
        assert recv_all(c, 10) == b"still here"
        c.close()

        assert p.poll() is None, read_err(p)
        # target-side connections all closed once our ends are closed
        assert wait_until(lambda: all(s.active == 0 for s in servers), 10), \
            [s.active for s in servers]
        for s in servers:
            assert not s.errors, s.errors
        assert echo_server.accepted == 9 and banner_srv.accepted == 1 \
            and sha_srv.accepted == 1
        evs = wait_audit(sandbox, since, lambda e: e.get("event") == "channel"
                         and e.get("action") == "port_forward")
        fwd = {e.get("forward") for e in evs if e.get("decision") == "allow"}
        assert "127.0.0.1:%d" % echo_server.port in fwd, evs[-3:]
    finally:
        stop(p)
        banner_srv.close()
        sha_srv.close()
    # nothing left behind: bzsshd gone, local ports closed
    assert wait_until(lambda: not [k for k in kids if ppid(k) is not None], 10), \
        "bzsshd still running after ssh -L was killed: %r" % kids
    assert wait_until(lambda: not any(is_listening(lp) for lp in lports), 5)
    assert not bzsshd_of(p, before)


def test_local_forward_ipv6(sandbox, tmp_path):
    try:
        srv = TcpServer(echo_handler, host="::1")
    except OSError:
        pytest.skip("no ::1 on this machine")
    try:
        lp = free_port()
        p = start_ssh_bg(sandbox, ["-N", "-o", "ExitOnForwardFailure=yes",
                                   "-L", "%d:[::1]:%d" % (lp, srv.port), "web1"],
                         str(tmp_path / "ssh-L6.err"))
        try:
            wait_listening(p, lp)
            data = os.urandom(1024 * 1024)
            c = socket.create_connection(("127.0.0.1", lp), timeout=30)
            t = threading.Thread(target=c.sendall, args=(data,), daemon=True)
            t.start()
            got = recv_all(c, len(data))
            c.close()
            assert got == data, (len(got), len(data), read_err(p))
        finally:
            stop(p)
    finally:
        srv.close()


# ------------------------------------------------------------------ ssh -W

def test_stdio_forward_echo(sandbox, echo_server):
    data = os.urandom(4 * 1024 * 1024)
    # ssh -W closes the channel when stdin ends; the echo server then
    # closes too and ssh exits, having written everything back
    r = sandbox.ssh("-W", "127.0.0.1:%d" % echo_server.port, "web1",
                    input=data, timeout=SSH_TIMEOUT)
    assert r.returncode == 0, r.stderr
    assert len(r.stdout) == len(data) and r.stdout == data


def test_stdio_forward_as_jump_host(sandbox, plain_sshd):
    proxy = "ssh -F %s -o BatchMode=yes -W %%h:%%p web1" % sandbox.ssh_config
    base = ["ssh", "-F", "/dev/null", "-o", "BatchMode=yes",
            "-o", "ProxyCommand=" + proxy,
            "-i", plain_sshd["key"], "-o", "IdentitiesOnly=yes",
            "-o", "IdentityAgent=none",
            "-o", "UserKnownHostsFile=/dev/null",
            "-o", "StrictHostKeyChecking=no", "-o", "LogLevel=ERROR",
            "-p", str(plain_sshd["port"]),
            "%s@127.0.0.1" % plain_sshd["user"]]
    r = subprocess.run(base + ["echo through-jump"], stdin=subprocess.DEVNULL,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=SSH_TIMEOUT)
    assert r.returncode == 0, (r.stderr, open(plain_sshd["log"]).read()[-2000:])
    assert r.stdout == b"through-jump\n"
    # bulk data through the inner connection (carried by the outer -W)
    data = os.urandom(8 * 1024 * 1024)
    r = subprocess.run(base + ["sha256sum; exit 7"], input=data,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=SSH_TIMEOUT)
    assert r.returncode == 7, r.stderr
    assert r.stdout.decode().split()[0] == hashlib.sha256(data).hexdigest()


# ------------------------------------------------------------------ ssh -D

def test_dynamic_forward_socks(sandbox, tmp_path):
    root = tmp_path / "www"
    root.mkdir()
    body = os.urandom(512 * 1024)
    (root / "blob.bin").write_bytes(body)

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a, **kw):
            super().__init__(*a, directory=str(root), **kw)

        def log_message(self, *a):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    hport = httpd.server_address[1]
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    lp = free_port()
    p = start_ssh_bg(sandbox, ["-N", "-o", "ExitOnForwardFailure=yes",
                               "-D", "127.0.0.1:%d" % lp, "web1"],
                     str(tmp_path / "ssh-D.err"))
    env = {k: v for k, v in os.environ.items()
           if not k.lower().endswith("_proxy")}
    since = sandbox.audit_mark()
    try:
        wait_listening(p, lp)
        for host in ("127.0.0.1", "localhost"):
            out = tmp_path / ("got-" + host)
            r = subprocess.run(
                ["curl", "-sS", "--fail", "--max-time", "30",
                 "--socks5-hostname", "127.0.0.1:%d" % lp,
                 "-o", str(out), "http://%s:%d/blob.bin" % (host, hport)],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60,
                env=env)
            assert r.returncode == 0, (host, r.stderr, read_err(p))
            assert out.read_bytes() == body, host
        assert p.poll() is None, read_err(p)
        # curl sent the name; the forward the policy saw is "localhost:PORT"
        evs = wait_audit(sandbox, since, lambda e: e.get("event") == "channel"
                         and e.get("action") == "port_forward"
                         and e.get("forward") == "localhost:%d" % hport)
        assert evs and evs[0].get("decision") == "allow", evs
    finally:
        stop(p)
        httpd.shutdown()
        httpd.server_close()


# ------------------------------------------------------------------ refusals

def test_stdio_forward_denied_by_policy(sandbox):
    since = sandbox.audit_mark()
    t0 = time.time()
    r = sandbox.ssh("-W", "10.255.255.1:80", "web1", timeout=30)
    dt = time.time() - t0
    err = r.stderr.decode(errors="replace")
    assert r.returncode == 255, err
    assert dt < 10, "took %.1f s" % dt
    assert "open failed" in err or "stdio forwarding failed" in err, err
    assert "bzsshd: forward to 10.255.255.1 port 80 refused:" in err, err
    assert "access denied" in err, err
    evs = wait_audit(sandbox, since, lambda e: e.get("event") == "channel"
                     and e.get("forward") == "10.255.255.1:80")
    assert evs, sandbox.audit_events(since)
    assert evs[0].get("action") == "port_forward", evs
    assert evs[0].get("decision") == "deny", evs
    assert evs[0].get("target") == "web1", evs


def test_local_forward_denied_closes_connection(sandbox, echo_server, tmp_path):
    lp_bad, lp_good = free_port(), free_port()
    since = sandbox.audit_mark()
    p = start_ssh_bg(sandbox, ["-N", "-L", "%d:10.255.255.1:80" % lp_bad,
                               "-L", "%d:127.0.0.1:%d" % (lp_good, echo_server.port),
                               "web1"], str(tmp_path / "ssh-L-deny.err"))
    try:
        wait_listening(p, lp_bad)
        wait_listening(p, lp_good)
        for _ in range(2):
            c = socket.create_connection(("127.0.0.1", lp_bad), timeout=10)
            t0 = time.time()
            try:
                got = c.recv(100)
            except ConnectionResetError:
                got = b""
            dt = time.time() - t0
            c.close()
            assert got == b"" and dt < 5, (got, dt)
        time.sleep(0.5)
        assert p.poll() is None, "ssh exited: %s" % read_err(p)
        # the allowed forward of the same ssh still works
        c = socket.create_connection(("127.0.0.1", lp_good), timeout=30)
        c.sendall(b"ping")
        assert recv_all(c, 4) == b"ping"
        c.close()
        err = read_err(p)
        assert "access denied" in err, err
        evs = wait_audit(sandbox, since, lambda e: e.get("event") == "channel"
                         and e.get("forward") == "10.255.255.1:80"
                         and e.get("decision") == "deny")
        assert len(evs) == 2, evs
    finally:
        stop(p)


def test_stdio_forward_closed_port(sandbox):
    port = free_port()  # nobody listens there
    assert not is_listening(port)
    since = sandbox.audit_mark()
    t0 = time.time()
    r = sandbox.ssh("-W", "127.0.0.1:%d" % port, "web1", timeout=30)
    dt = time.time() - t0
    err = r.stderr.decode(errors="replace")
    assert r.returncode == 255, err
    assert dt < 5, "took %.1f s" % dt
    assert "Connection refused" in err, err
    assert "bzsshd: forward to 127.0.0.1 port %d refused:" % port in err, err
    # allowed by the policy (the agent then failed to connect)
    evs = wait_audit(sandbox, since, lambda e: e.get("event") == "channel"
                     and e.get("forward") == "127.0.0.1:%d" % port)
    assert evs and evs[0].get("decision") == "allow", evs
    # and the target's own log says the connect failed, for that request
    path = os.path.join(os.path.dirname(sandbox.agent_web1_config),
                        "audit.jsonl")
    with open(path) as f:
        failed = [o for o in map(json.loads, f)
                  if o.get("event") == "forward_failed"
                  and o.get("request_hash") == evs[0].get("request_hash")]
    assert len(failed) == 1 and "refused" in failed[0]["reason"], failed


def test_remote_forward_refused(sandbox):
    since = sandbox.audit_mark()
    t0 = time.time()
    r = sandbox.ssh("-N", "-R", "0:127.0.0.1:22", "-o", "ExitOnForwardFailure=yes",
                    "web1", timeout=30)
    dt = time.time() - t0
    err = r.stderr.decode(errors="replace")
    assert r.returncode == 255, err
    assert dt < 10, "took %.1f s" % dt
    assert "remote forwarding (ssh -R) is not available through bzproxy" in err, err
    evs = wait_audit(sandbox, since, lambda e: e.get("event") == "request_refused")
    assert evs, sandbox.audit_events(since)
    assert evs[0].get("decision") == "deny" and evs[0].get("target") == "web1", evs
