# A stand-in for a stolen bzproxy, for the attack tests: it holds what an
# attacker who took bzproxy's host would hold (its TLS key, its Ed25519
# signing key, its SQLite file with the users' ID tokens and public client
# keys) and speaks the wire protocol (docs/protocol.md) to real agents and
# to a real bzsshd: a small bzproxy that allows everything, relays what
# the client sends, records every message the client signed, and lets the
# test send whatever it makes up or replays. A minimal websocket server
# (RFC 6455) over TLS on 127.0.0.1; Debian's python3-cryptography signs.
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

from bzwire import FLAG_AGENT_SIGNED, FLAG_CLIENT_SIGNED, FLAG_PROXY_SIGNED, \
    FLAG_SEALED, FRAME_CONTROL, FRAME_DATA, b64u, frame, parse_frame, \
    raw_public, unb64u

WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def load_signing_key(path):
    """bzproxy's key file: base64url of libsodium's 64-byte secret key
    (seed then public key)."""
    with open(path) as f:
        sk = unb64u(f.read().strip())
    return Ed25519PrivateKey.from_private_bytes(sk[:32])


def compact(obj):
    return json.dumps(obj, separators=(",", ":"), sort_keys=True).encode()


class Conn:
    """One websocket (server side) over TLS."""

    def __init__(self, sock):
        self.s = sock
        self.buf = b""
        self.lock = threading.Lock()
        self.path = None

    def _read(self, n):
        while len(self.buf) < n:
            chunk = self.s.recv(65536)
            if not chunk:
                raise EOFError("peer closed the connection")
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def handshake(self):
        while b"\r\n\r\n" not in self.buf:
            chunk = self.s.recv(4096)
            if not chunk:
                raise EOFError("no upgrade request")
            self.buf += chunk
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.split(b"\r\n")
        self.path = lines[0].split()[1].decode()
        hdrs = {}
        for line in lines[1:]:
            k, _, v = line.partition(b":")
            hdrs[k.strip().lower()] = v.strip()
        accept = base64.b64encode(hashlib.sha1(
            hdrs[b"sec-websocket-key"] + WS_GUID).digest())
        self.s.sendall(b"HTTP/1.1 101 Switching Protocols\r\n"
                       b"Upgrade: websocket\r\nConnection: Upgrade\r\n"
                       b"Sec-WebSocket-Accept: " + accept + b"\r\n"
                       b"Sec-WebSocket-Protocol: bz.v1\r\n\r\n")

    def send(self, payload, opcode=2):
        n = len(payload)
        if n < 126:
            head = struct.pack(">BB", 0x80 | opcode, n)
        elif n < 65536:
            head = struct.pack(">BBH", 0x80 | opcode, 126, n)
        else:
            head = struct.pack(">BBQ", 0x80 | opcode, 127, n)
        with self.lock:
            self.s.sendall(head + payload)

    def recv(self):
        """The next whole message (a frame), answering pings."""
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
                self.send(data, 10)
                continue
            if op == 8:
                raise EOFError("peer sent a close")
            if op == 10:
                continue
            msg += data
            if b0 & 0x80:
                return parse_frame(msg)


class FakeProxy:
    """A bzproxy in the attacker's hands (see the top of the file)."""

    def __init__(self, cert, key, signing_key_path, host="127.0.0.1"):
        self.key = load_signing_key(signing_key_path)
        self.pk = raw_public(self.key)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        self.ctx = ctx
        self.lsock = socket.socket()
        self.lsock.bind((host, 0))
        self.lsock.listen(8)
        self.port = self.lsock.getsockname()[1]
        self.agents = {}          # name -> Conn
        self.agent_ready = threading.Condition()
        self.answers = []         # (agent, frame) the agents sent
        self.answered = threading.Condition()
        self.captured = []        # bytes the client signed, in order
        self.next_sid = 100
        self.sessions = {}        # sid -> client Conn
        self.notes = []           # unsigned control messages from clients
        self.tamper = None        # see set_tamper
        self.forge_exit = None    # an exit status to claim instead
        self.tamper_lock = threading.Lock()
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    # ---- connections ----

    def _accept(self):
        while not self.closed:
            try:
                raw, _ = self.lsock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(raw,),
                             daemon=True).start()

    def _serve(self, raw):
        try:
            raw.settimeout(60)
            c = Conn(self.ctx.wrap_socket(raw, server_side=True))
            c.handshake()
            c.s.settimeout(None)
            if c.path == "/v1/agent":
                self._serve_agent(c)
            elif c.path == "/v1/client":
                self._serve_client(c)
        except (EOFError, OSError, ssl.SSLError, ValueError, KeyError):
            pass

    def send_control(self, c, obj, sid=0, ch=0):
        c.send(frame(FRAME_CONTROL, json.dumps(obj).encode(), 0, sid, ch))

    # ---- the agent side, as bzproxy speaks it ----

    def _serve_agent(self, c):
        nonce = os.urandom(32)
        self.send_control(c, {"t": "challenge", "nonce": b64u(nonce),
                              "proxy_key": b64u(self.pk)})
        hello = json.loads(c.recv()["payload"])
        self.send_control(c, {"t": "agent_ok", "labels": {}})
        name = hello["name"]
        with self.agent_ready:
            self.agents[name] = c
            self.agent_ready.notify_all()
        while True:
            f = c.recv()
            with self.answered:
                self.answers.append((name, f))
                self.answered.notify_all()
            client = self.sessions.get(f["sid"])
            if client is None:
                continue
            try:
                if f["ch"] == 0 and f["flags"] == FLAG_AGENT_SIGNED:
                    # the SYNACK: the client's hello_ok
                    self.send_control(client, {
                        "t": "hello_ok", "user": "stolen", "target": name,
                        "synack": b64u(f["payload"])})
                elif f["ch"] != 0:
                    self._relay("to_client", client, self._forged(f), 0,
                                f["sid"])
            except OSError:
                # that client left; the agent's other sessions go on
                self.sessions.pop(f["sid"], None)

    def wait_agent(self, name, timeout=30):
        with self.agent_ready:
            if not self.agent_ready.wait_for(lambda: name in self.agents,
                                             timeout):
                raise TimeoutError("agent %s did not connect" % name)

    def envelope(self, agent, sid, ch, csm, decision="allow",
                 action="exec", **extra):
        """csm (the client's signed bytes) to agent in an envelope signed
        with the stolen key: what a stolen bzproxy can countersign."""
        e = {"t": "csm", "sid": sid, "ch": ch, "csm": b64u(csm),
             "decision": decision, "action": action, "rule": "stolen",
             "user": "stolen", "mfa_at": int(time.time()),
             "exp": int(time.time()) + 60}
        e.update(extra)
        body = compact(e)
        self.agents[agent].send(frame(FRAME_CONTROL,
                                      body + self.key.sign(body),
                                      FLAG_PROXY_SIGNED, sid, ch))

    def outcome(self, agent, sid, ch, timeout=10):
        """The agent's answer on (sid, ch): ("synack", bytes),
        ("failed", reason), ("exit", status) or ("timeout", None)."""
        deadline = time.time() + timeout
        with self.answered:
            while True:
                for i, (name, f) in enumerate(self.answers):
                    if name != agent or f["sid"] != sid or f["ch"] != ch:
                        continue
                    if f["type"] != FRAME_CONTROL:
                        continue
                    del self.answers[i]
                    if f["flags"] == FLAG_AGENT_SIGNED:
                        return ("synack", f["payload"])
                    o = json.loads(f["payload"])
                    if o.get("t") == "failed":
                        return ("failed", o.get("reason", ""))
                    if o.get("t") == "exit":
                        return ("exit", o.get("status", o.get("signal")))
                left = deadline - time.time()
                if left <= 0:
                    return ("timeout", None)
                self.answered.wait(left)

    def new_sid(self):
        self.next_sid += 1
        return self.next_sid

    # ---- the client side: a bzproxy that allows everything ----

    def _serve_client(self, c):
        self.send_control(c, {"t": "challenge",
                              "nonce": b64u(os.urandom(32))})
        hello = json.loads(c.recv()["payload"])
        syn = unb64u(hello["syn"])
        self.captured.append(syn)
        sid = self.new_sid()
        self.sessions[sid] = c
        target = hello["target"]
        self.wait_agent(target)
        self.envelope(target, sid, 0, syn, action="connect")
        while True:
            f = c.recv()
            if f["flags"] == FLAG_CLIENT_SIGNED:
                self.captured.append(f["payload"])
                self.envelope(target, sid, f["ch"], f["payload"],
                              action=_action(f["payload"]))
            else:
                if f["type"] == FRAME_CONTROL:
                    self.notes.append(json.loads(f["payload"]))
                if f["type"] != FRAME_CONTROL or f["ch"] != 0:
                    self._relay("to_agent", self.agents[target], f, sid,
                                sid)

    # ---- a relay that meddles with sealed data ----

    def set_tamper(self, direction, kind, at=3):
        """Meddle once with the at-th sealed DATA frame relayed in
        direction ("to_agent" or "to_client"): kind "flip" (one bit of it),
        "drop" (not sent), "replay" (sent twice) or "swap" (sent after the
        next one). Only sessions that start from now on count: a client
        that is still leaving sends frames of its own."""
        with self.tamper_lock:
            self.tamper = {"dir": direction, "kind": kind, "at": at,
                           "seen": 0, "held": None, "done": False,
                           "from_sid": self.next_sid + 1}

    def tamper_done(self):
        with self.tamper_lock:
            return self.tamper is not None and self.tamper["done"]

    def _forged(self, f):
        """f, or its "exit" control claiming forge_exit instead."""
        if self.forge_exit is None or f["type"] != FRAME_CONTROL or \
                f["flags"] != 0:
            return f
        o = json.loads(f["payload"])
        if o.get("t") != "exit":
            return f
        o.pop("signal", None)
        o["status"] = self.forge_exit
        return dict(f, payload=json.dumps(o).encode())

    def _relay(self, direction, dest, f, sid, session):
        """Pass f (of session) on to dest as it came (flags kept), with
        sid in its header."""
        out = frame(f["type"], f["payload"], f["flags"], sid, f["ch"])
        with self.tamper_lock:
            t = self.tamper
            if t is None or t["done"] or t["dir"] != direction or \
                    session < t["from_sid"] or \
                    f["type"] != FRAME_DATA or f["flags"] != FLAG_SEALED:
                dest.send(out)
                return
            t["seen"] += 1
            if t["held"] is not None:
                # swap: this one first, then the one held back
                dest.send(out)
                dest.send(t["held"])
                t["done"] = True
            elif t["seen"] != t["at"]:
                dest.send(out)
            elif t["kind"] == "flip":
                p = bytearray(f["payload"])
                p[len(p) // 2] ^= 0x04
                dest.send(frame(f["type"], bytes(p), f["flags"], sid,
                                f["ch"]))
                t["done"] = True
            elif t["kind"] == "drop":
                t["done"] = True
            elif t["kind"] == "replay":
                dest.send(out)
                dest.send(out)
                t["done"] = True
            elif t["kind"] == "swap":
                t["held"] = out

    def close(self):
        self.closed = True
        try:
            self.lsock.close()
        except OSError:
            pass
        for c in list(self.agents.values()) + list(self.sessions.values()):
            try:
                c.s.close()
            except OSError:
                pass


def _action(signed):
    """The policy action of a client's request (bzproxy's classify)."""
    t = json.loads(signed[:-64]).get("t")
    return {"shell": "shell", "subsystem": "sftp",
            "forward": "port_forward"}.get(t, "exec")
