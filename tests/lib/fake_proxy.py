# A stand-in for a stolen bzproxy, for the attack tests: it holds what an
# attacker who took bzproxy's host would hold (its TLS key, its Ed25519
# signing key, its SQLite file with the users' ID tokens) and speaks the
# agent side of the wire protocol (docs/protocol.md) to a real bzagent:
# challenge, agent_hello, agent_ok, then whatever signed requests the test
# makes up. A minimal websocket server (RFC 6455) over TLS on 127.0.0.1;
# Debian's python3-cryptography signs.
import base64
import hashlib
import json
import os
import socket
import ssl
import struct
import threading
import time

from cryptography.hazmat.primitives.asymmetric.ed25519 import \
    Ed25519PrivateKey

from bzwire import FLAG_PROXY_SIGNED, FRAME_CONTROL, b64u, frame, \
    parse_frame, raw_public, unb64u

WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def load_signing_key(path):
    """bzproxy's key file: base64url of libsodium's 64-byte secret key
    (seed then public key)."""
    with open(path) as f:
        sk = unb64u(f.read().strip())
    return Ed25519PrivateKey.from_private_bytes(sk[:32])


class FakeProxy:
    """Accepts one agent connection and lets the test drive it."""

    def __init__(self, cert, key, signing_key_path, host="127.0.0.1"):
        self.key = load_signing_key(signing_key_path)
        self.pk = raw_public(self.key)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        self.ctx = ctx
        self.lsock = socket.socket()
        self.lsock.bind((host, 0))
        self.lsock.listen(4)
        self.port = self.lsock.getsockname()[1]
        self.conn = None
        self.buf = b""
        self.agent_hello = None
        self.ready = threading.Event()
        self.error = None
        threading.Thread(target=self._accept, daemon=True).start()

    # ---- websocket server ----

    def _accept(self):
        try:
            raw, _ = self.lsock.accept()
            raw.settimeout(30)
            self.conn = self.ctx.wrap_socket(raw, server_side=True)
            self._handshake()
            self._agent_handshake()
            self.ready.set()
        except Exception as e:  # surfaced by wait_ready
            self.error = e
            self.ready.set()

    def _read(self, n):
        while len(self.buf) < n:
            chunk = self.conn.recv(65536)
            if not chunk:
                raise EOFError("agent closed the connection")
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def _handshake(self):
        while b"\r\n\r\n" not in self.buf:
            chunk = self.conn.recv(4096)
            if not chunk:
                raise EOFError("no upgrade request")
            self.buf += chunk
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        hdrs = {}
        for line in head.split(b"\r\n")[1:]:
            k, _, v = line.partition(b":")
            hdrs[k.strip().lower()] = v.strip()
        accept = base64.b64encode(hashlib.sha1(
            hdrs[b"sec-websocket-key"] + WS_GUID).digest())
        self.conn.sendall(b"HTTP/1.1 101 Switching Protocols\r\n"
                          b"Upgrade: websocket\r\nConnection: Upgrade\r\n"
                          b"Sec-WebSocket-Accept: " + accept + b"\r\n"
                          b"Sec-WebSocket-Protocol: bz.v1\r\n\r\n")

    def send_ws(self, payload, opcode=2):
        n = len(payload)
        if n < 126:
            head = struct.pack(">BB", 0x80 | opcode, n)
        elif n < 65536:
            head = struct.pack(">BBH", 0x80 | opcode, 126, n)
        else:
            head = struct.pack(">BBQ", 0x80 | opcode, 127, n)
        self.conn.sendall(head + payload)

    def recv_ws(self):
        """The next whole message (binary payload), answering pings."""
        msg = b""
        while True:
            b0, b1 = self._read(2)
            op, n = b0 & 0x0f, b1 & 0x7f
            if n == 126:
                n = struct.unpack(">H", self._read(2))[0]
            elif n == 127:
                n = struct.unpack(">Q", self._read(8))[0]
            mask = self._read(4) if b1 & 0x80 else b"\0\0\0\0"
            data = bytes(c ^ mask[i % 4] for i, c in enumerate(self._read(n)))
            if op == 9:
                self.send_ws(data, 10)
                continue
            if op == 8:
                raise EOFError("agent sent a close")
            if op == 10:
                continue
            msg += data
            if b0 & 0x80:
                return msg

    # ---- the agent link, as bzproxy speaks it ----

    def _agent_handshake(self):
        nonce = os.urandom(32)
        self.send_control({"t": "challenge", "nonce": b64u(nonce),
                           "proxy_key": b64u(self.pk)})
        f = parse_frame(self.recv_ws())
        self.agent_hello = json.loads(f["payload"])
        self.send_control({"t": "agent_ok", "labels": {}})

    def wait_ready(self, timeout=30):
        if not self.ready.wait(timeout):
            raise TimeoutError("no agent connected to the fake bzproxy")
        if self.error is not None:
            raise self.error

    def send_control(self, obj, sid=0, ch=0):
        self.send_ws(frame(FRAME_CONTROL, json.dumps(obj).encode(), 0,
                           sid, ch))

    def send_signed(self, obj, sid, ch, raw=None):
        """A request signed with bzproxy's key, as bzproxy sends one (raw:
        exact JSON bytes to sign and send, for replays)."""
        body = raw if raw is not None else json.dumps(
            obj, separators=(",", ":"), sort_keys=True).encode()
        self.send_ws(frame(FRAME_CONTROL, body + self.key.sign(body),
                           FLAG_PROXY_SIGNED, sid, ch))
        return body

    def request(self, sid, ch, fields):
        """A complete exec/shell/... request with fresh ts and nonce."""
        obj = {"sid": sid, "ch": ch, "ts": int(time.time()),
               "nonce": b64u(os.urandom(16)), "rule": "stolen"}
        obj.update(fields)
        return self.send_signed(obj, sid, ch)

    def outcome(self, sid, ch, timeout=15):
        """What the agent answers on (sid, ch): ("failed", reason),
        ("exit", status or signal) or ("timeout", None); output ignored."""
        deadline = time.time() + timeout
        self.conn.settimeout(1)
        while time.time() < deadline:
            try:
                f = parse_frame(self.recv_ws())
            except (socket.timeout, TimeoutError, ssl.SSLWantReadError):
                continue
            if f["sid"] != sid or f["ch"] != ch:
                continue
            if f["type"] == FRAME_CONTROL:
                o = json.loads(f["payload"])
                if o.get("t") == "failed":
                    return ("failed", o.get("reason", ""))
                if o.get("t") == "exit":
                    return ("exit", o.get("status", o.get("signal")))
        return ("timeout", None)

    def close(self):
        for s in (self.conn, self.lsock):
            try:
                if s is not None:
                    s.close()
            except OSError:
                pass
