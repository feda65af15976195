#!/usr/bin/python3
"""TCP sink, source and clients for bench/transfer.sh's `ssh -N -L` measure.
127.0.0.1 only; Debian's python3, standard library only.

  tcp_xfer.py sink PORTFILE BYTES [--hash]
      Accept connections one after another; from each, read BYTES bytes and
      answer "COUNT SHA256\\n" (SHA256 is "-" without --hash). A connection
      closed early gets no answer. Writes its port to PORTFILE.
  tcp_xfer.py source PORTFILE FILE BYTES
      Accept connections one after another; send each the first BYTES bytes
      of FILE, then close.
  tcp_xfer.py send PORT FILE BYTES [--hash]
      Connect, send the first BYTES bytes of FILE, wait for the sink's answer.
  tcp_xfer.py recv PORT BYTES [--hash]
      Connect and read BYTES bytes.
  tcp_xfer.py wait-listen PORT PID SECONDS
      Wait until something listens on 127.0.0.1:PORT (read from
      /proc/net/tcp: no connection is made) while process PID lives.

send and recv print "NANOSECONDS COUNT SHA256": the time from connect to the
last byte received (send: to the sink's answer, so the sink has all the
bytes), the bytes the receiving side got and their SHA-256 ("-" without
--hash); they exit 1 if COUNT is not BYTES.
"""

import hashlib
import os
import socket
import sys
import time

IO_TIMEOUT = 60  # seconds without progress before a client gives up
BUF = 1 << 20


def listener(portfile):
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", 0))
    ls.listen(8)
    tmp = portfile + ".tmp"
    with open(tmp, "w") as f:
        f.write("%d\n" % ls.getsockname()[1])
    os.rename(tmp, portfile)
    return ls


def read_n(s, n, do_hash):
    """Read up to n bytes from s (fewer on EOF); return (count, hexdigest or "-")."""
    h = hashlib.sha256() if do_hash else None
    buf = bytearray(BUF)
    view = memoryview(buf)
    got = 0
    while got < n:
        k = s.recv_into(view, min(BUF, n - got))
        if k == 0:
            break
        if h:
            h.update(view[:k])
        got += k
    return got, (h.hexdigest() if h else "-")


def serve_sink(portfile, n, do_hash):
    ls = listener(portfile)
    while True:
        c, _ = ls.accept()
        c.settimeout(IO_TIMEOUT)
        with c:
            try:
                got, digest = read_n(c, n, do_hash)
                if got == n:
                    c.sendall(("%d %s\n" % (got, digest)).encode())
                    c.shutdown(socket.SHUT_WR)
                    c.recv(1)  # until the client closes
                else:
                    print("sink: connection closed after %d of %d bytes" % (got, n),
                          file=sys.stderr, flush=True)
            except OSError as e:
                print("sink: %s" % e, file=sys.stderr, flush=True)


def serve_source(portfile, path, n):
    ls = listener(portfile)
    while True:
        c, _ = ls.accept()
        c.settimeout(IO_TIMEOUT)
        with c, open(path, "rb") as f:
            try:
                c.sendfile(f, 0, n)
                c.shutdown(socket.SHUT_WR)
                c.recv(1)  # until the client closes
            except OSError as e:
                print("source: %s" % e, file=sys.stderr, flush=True)


def connect(port):
    return socket.create_connection(("127.0.0.1", port), timeout=IO_TIMEOUT)


def client_send(port, path, n):
    t0 = time.monotonic_ns()
    with connect(port) as s, open(path, "rb") as f:
        s.sendfile(f, 0, n)
        answer = b""
        while not answer.endswith(b"\n"):
            k = s.recv(256)
            if not k:
                break
            answer += k
    t1 = time.monotonic_ns()
    parts = answer.decode(errors="replace").split()
    if len(parts) != 2:
        sys.exit("send: no answer from the sink (connection closed)")
    return t1 - t0, int(parts[0]), parts[1]


def client_recv(port, n, do_hash):
    t0 = time.monotonic_ns()
    with connect(port) as s:
        got, digest = read_n(s, n, do_hash)
        t1 = time.monotonic_ns()
    return t1 - t0, got, digest


def listening(port):
    want = {"0100007F:%04X" % port, "7F000001:%04X" % port}  # either byte order
    with open("/proc/net/tcp") as f:
        for line in f.readlines()[1:]:
            fields = line.split()
            if fields[1] in want and fields[3] == "0A":  # TCP_LISTEN
                return True
    return False


def wait_listen(port, pid, seconds):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if listening(port):
            return 0
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            sys.exit("wait-listen: process %d exited" % pid)
        time.sleep(0.02)
    sys.exit("wait-listen: nothing listens on 127.0.0.1:%d after %g s" % (port, seconds))


def main(argv):
    do_hash = "--hash" in argv
    a = [x for x in argv[1:] if x != "--hash"]
    try:
        cmd = a[0]
        if cmd == "sink":
            serve_sink(a[1], int(a[2]), do_hash)
        elif cmd == "source":
            serve_source(a[1], a[2], int(a[3]))
        elif cmd == "wait-listen":
            return wait_listen(int(a[1]), int(a[2]), float(a[3]))
        elif cmd in ("send", "recv"):
            n = int(a[3]) if cmd == "send" else int(a[2])
            try:
                if cmd == "send":
                    ns, got, digest = client_send(int(a[1]), a[2], n)
                else:
                    ns, got, digest = client_recv(int(a[1]), n, do_hash)
            except OSError as e:
                sys.exit("%s: %s" % (cmd, e))
            print(ns, got, digest)
            if got != n:
                sys.exit("%s: %d of %d bytes arrived" % (cmd, got, n))
        else:
            raise IndexError
    except (IndexError, ValueError):
        sys.exit(__doc__)
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
