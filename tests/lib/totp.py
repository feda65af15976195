#!/usr/bin/python3
# Prints an RFC 6238 TOTP code (HMAC-SHA-1, 6 digits, 30 s) for a base32 seed,
# the way an authenticator app would; for the sandbox and the tests.
#
#   totp.py --seed-file F [--state-file S]   a code for a time step never
#        printed before with this state file (waits for the next step when
#        the current one was already used: bzproxy accepts each code once)
#   totp.py --seed-file F --any              the current code, no bookkeeping
#   totp.py --seed-file F --wrong            a code valid for none of the
#                                            steps now-5 .. now+5
import argparse
import base64
import fcntl
import hashlib
import hmac
import os
import struct
import sys
import time

STEP = 30


def code_at(key, step):
    mac = hmac.new(key, struct.pack(">Q", step), hashlib.sha1).digest()
    off = mac[-1] & 0x0F
    n = struct.unpack(">I", mac[off:off + 4])[0] & 0x7FFFFFFF
    return "%06d" % (n % 1000000)


def load_seed(path):
    with open(path) as f:
        s = f.read().strip().replace(" ", "").upper()
    s += "=" * (-len(s) % 8)
    return base64.b32decode(s)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--seed-file", required=True)
    p.add_argument("--state-file")
    p.add_argument("--any", action="store_true")
    p.add_argument("--wrong", action="store_true")
    a = p.parse_args()
    key = load_seed(a.seed_file)
    now = int(time.time()) // STEP
    if a.wrong:
        near = {code_at(key, now + d) for d in range(-5, 6)}
        c = 0
        while "%06d" % c in near:
            c += 1
        print("%06d" % c)
        return 0
    if a.any or not a.state_file:
        print(code_at(key, now))
        return 0
    fd = os.open(a.state_file, os.O_RDWR | os.O_CREAT, 0o600)
    with os.fdopen(fd, "r+") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        f.seek(0)
        try:
            last = int(f.read().strip() or "0")
        except ValueError:
            last = 0
        step = int(time.time()) // STEP
        if step <= last:
            time.sleep((last + 1) * STEP - time.time() + 0.2)
            step = int(time.time()) // STEP
        f.seek(0)
        f.truncate()
        f.write("%d\n" % step)
        f.flush()
        print(code_at(key, step))
    return 0


if __name__ == "__main__":
    sys.exit(main())
