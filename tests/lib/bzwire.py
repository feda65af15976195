# The bastion's wire protocol (docs/protocol.md) for the Python tests: frame
# encoding, base64url, and a bare websocket client over TLS that can send
# any bytes at all (to bzproxy, as bzsshd or bzagent would, or worse).
import base64
import json
import os
import socket
import ssl
import struct

from cryptography.hazmat.primitives.serialization import Encoding, \
    NoEncryption, PrivateFormat, PublicFormat

FRAME_CONTROL, FRAME_DATA, FRAME_EXT_DATA, FRAME_EOF, FRAME_CLOSE, \
    FRAME_WINDOW = 1, 2, 3, 4, 5, 6
FLAG_PROXY_SIGNED, FLAG_CLIENT_SIGNED, FLAG_AGENT_SIGNED, FLAG_SEALED = \
    1, 2, 4, 8
WIRE_VERSION = 2


def raw_public(key):
    """The 32 bytes of an Ed25519 public key (of a private or public key
    object; Debian 12's python3-cryptography has no public_bytes_raw)."""
    if hasattr(key, "public_key"):
        key = key.public_key()
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw)


def sodium_secret(key):
    """libsodium's 64-byte secret key (seed, then public key)."""
    return key.private_bytes(Encoding.Raw, PrivateFormat.Raw,
                             NoEncryption()) + raw_public(key)


def parse_frame(data):
    """A frame's header fields and payload, as a dict."""
    v, t, flags, sid, ch, seq, n = struct.unpack("!BBHIIQI", data[:24])
    return {"type": t, "flags": flags, "sid": sid, "ch": ch,
            "payload": data[24:24 + n]}


def b64u(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def unb64u(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


class WS:
    """A bare websocket client: enough to send any bytes we like."""

    def __init__(self, sandbox, path, proto="bz.v1"):
        ctx = ssl.create_default_context(cafile=sandbox.ca)
        ctx.check_hostname = False
        raw = socket.create_connection(("127.0.0.1", int(sandbox.proxy_port)),
                                       timeout=10)
        self.s = ctx.wrap_socket(raw, server_hostname="127.0.0.1")
        req = ("GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
               "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
               "Sec-WebSocket-Version: 13\r\n"
               % (path, base64.b64encode(os.urandom(16)).decode()))
        if proto:
            req += "Sec-WebSocket-Protocol: %s\r\n" % proto
        self.s.sendall((req + "\r\n").encode())
        resp = b""
        while b"\r\n\r\n" not in resp:
            d = self.s.recv(4096)
            if not d:
                break
            resp += d
        head, _, self.buf = resp.partition(b"\r\n\r\n")
        self.status = head.split(b"\r\n")[0].decode(errors="replace")
        self.upgraded = " 101 " in self.status

    def send(self, payload, opcode=2, fin=True):
        mask = os.urandom(4)
        n = len(payload)
        b0 = (0x80 if fin else 0) | opcode
        if n < 126:
            hdr = struct.pack("!BB", b0, 0x80 | n)
        elif n < 65536:
            hdr = struct.pack("!BBH", b0, 0x80 | 126, n)
        else:
            hdr = struct.pack("!BBQ", b0, 0x80 | 127, n)
        self.s.sendall(hdr + mask + bytes(c ^ mask[i % 4] for i, c in enumerate(payload)))

    def _need(self, n):
        while len(self.buf) < n:
            d = self.s.recv(65536)
            if not d:
                raise EOFError
            self.buf += d

    def recv(self):
        """(opcode, payload); pings are answered."""
        while True:
            self._need(2)
            op, n, off = self.buf[0] & 0x0F, self.buf[1] & 0x7F, 2
            if n == 126:
                self._need(4)
                n, off = struct.unpack("!H", self.buf[2:4])[0], 4
            elif n == 127:
                self._need(10)
                n, off = struct.unpack("!Q", self.buf[2:10])[0], 10
            self._need(off + n)
            data, self.buf = self.buf[off:off + n], self.buf[off + n:]
            if op == 9:
                self.send(data, opcode=10)
                continue
            return op, data

    def control(self):
        """Next CONTROL frame's JSON, or ("close", reason) / ("eof", None)."""
        try:
            op, data = self.recv()
        except (EOFError, OSError):
            return ("eof", None)
        if op == 8:
            return ("close", data[2:].decode(errors="replace"))
        assert op == 2 and data[1] == 1, (op, data[:24])
        return json.loads(data[24:])

    def close_reason(self):
        """Skip frames until the close; its reason ('' on a bare EOF)."""
        while True:
            m = self.control()
            if isinstance(m, tuple):
                return m[1] or ""


def frame(t, payload=b"", flags=0, sid=0, ch=0):
    return struct.pack("!BBHIIQI", WIRE_VERSION, t, flags, sid, ch, 0,
                       len(payload)) + payload


def control(obj, ch=0, sid=0):
    return frame(FRAME_CONTROL, json.dumps(obj).encode(), ch=ch, sid=sid)
