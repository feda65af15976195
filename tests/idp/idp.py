#!/usr/bin/python3
# A tiny OpenID Connect provider for tests and the demo: discovery, JWKS,
# authorization code + PKCE (S256) with a loopback redirect, approving one
# configured test user without a browser, RS256 ID tokens, refresh tokens
# (used once, each answer bringing the next; refreshed ID tokens carry no
# nonce unless --refresh-nonce), and test controls (POST /test/lifetime,
# /test/revoke); plus `mint`, which prints a signed (or deliberately
# broken) ID token for negative tests.
#
# Run with Debian's /usr/bin/python3 (it needs python3-cryptography).
#
#   idp.py serve --cert C --key K --port 0 --port-file F --key-file RSA.pem \
#                --client-id bz-cli --email alice@example.com --groups ops,dev
#   idp.py mint  --key-file RSA.pem --issuer https://127.0.0.1:PORT \
#                --client-id bz-cli --email alice@example.com --nonce N \
#                [--exp-offset S] [--aud A] [--iss I] [--alg RS256|none|HS256]
#
# Listens on 127.0.0.1 only. Everything is logged on stderr.

import argparse
import base64
import hashlib
import hmac
import http.server
import json
import os
import secrets
import socketserver
import ssl
import sys
import threading
import time
import urllib.parse

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

CODE_TTL = 120  # seconds an authorization code stays valid


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_uint(n):
    return b64url(n.to_bytes((n.bit_length() + 7) // 8 or 1, "big"))


def log(msg):
    sys.stderr.write("idp: %s\n" % msg)
    sys.stderr.flush()


# ---------------------------------------------------------------- keys

def load_or_create_key(path):
    """Load an RSA private key (PEM); create a 2048-bit one (0600) if missing."""
    if os.path.exists(path):
        with open(path, "rb") as f:
            return serialization.load_pem_private_key(f.read(), password=None)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM,
                            serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    fd = os.open(path + ".tmp", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    os.rename(path + ".tmp", path)
    log("created signing key %s" % path)
    return key


def jwk_of(key):
    pub = key.public_key().public_numbers()
    jwk = {"kty": "RSA", "e": b64url_uint(pub.e), "n": b64url_uint(pub.n)}
    # RFC 7638 thumbprint as kid, so `serve` and `mint` agree on it.
    canon = json.dumps(jwk, separators=(",", ":"), sort_keys=True).encode()
    jwk["kid"] = b64url(hashlib.sha256(canon).digest())[:16]
    jwk["use"] = "sig"
    jwk["alg"] = "RS256"
    return jwk


def sign_jwt(claims, key, kid, alg="RS256"):
    """Encode claims as a JWT. alg "none" and "HS256" (keyed with the RSA
    public key PEM: the classic algorithm-confusion attack) are for
    negative tests only."""
    header = {"alg": alg, "typ": "JWT"}
    if kid is not None:
        header["kid"] = kid
    h = b64url(json.dumps(header, separators=(",", ":")).encode())
    p = b64url(json.dumps(claims, separators=(",", ":")).encode())
    signing_input = ("%s.%s" % (h, p)).encode("ascii")
    if alg == "RS256":
        sig = key.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
    elif alg == "none":
        sig = b""
    elif alg == "HS256":
        secret = key.public_key().public_bytes(
            serialization.Encoding.PEM,
            serialization.PublicFormat.SubjectPublicKeyInfo)
        sig = hmac.new(secret, signing_input, hashlib.sha256).digest()
    else:
        raise ValueError("unsupported alg %r" % alg)
    return "%s.%s.%s" % (h, p, b64url(sig))


def make_claims(issuer, aud, sub, email, groups, nonce, lifetime,
                now=None, nbf=True, auth_time=None):
    now = int(time.time()) if now is None else now
    claims = {
        "iss": issuer,
        "aud": aud,
        "sub": sub,
        "email": email,
        "email_verified": True,
        "groups": list(groups),
        "iat": now,
        "exp": now + lifetime,
    }
    if nbf:
        claims["nbf"] = now
    if nonce is not None:
        claims["nonce"] = nonce
    if auth_time is not None:
        claims["auth_time"] = auth_time
    return claims


# ---------------------------------------------------------------- server

class State:
    def __init__(self, args, key):
        self.args = args
        self.key = key
        self.jwk = jwk_of(key)
        self.issuer = None  # set once the port is known
        self.codes = {}     # code -> dict
        self.refresh = {}   # refresh token -> the login it continues
        self.lifetime = args.lifetime  # POST /test/lifetime changes it
        self.lock = threading.Lock()


def loopback_redirect_ok(uri):
    """RFC 8252 loopback redirect: http://127.0.0.1:PORT/... only."""
    try:
        u = urllib.parse.urlsplit(uri)
        port = u.port
    except ValueError:
        return False
    return (u.scheme == "http" and u.hostname in ("127.0.0.1", "localhost", "::1")
            and port is not None and not u.fragment and u.username is None)


class Handler(http.server.BaseHTTPRequestHandler):
    server_version = "bz-test-idp/1"
    protocol_version = "HTTP/1.1"

    @property
    def st(self):
        return self.server.state

    def log_message(self, fmt, *a):
        log("%s %s" % (self.address_string(), fmt % a))

    def send_json(self, code, obj, extra=None):
        body = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Cache-Control", "no-store")
        self.send_header("Content-Length", str(len(body)))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def send_text(self, code, text):
        body = (text + "\n").encode()
        self.send_response(code)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def redirect(self, location):
        self.send_response(302)
        self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()

    # -- GET
    def do_GET(self):
        u = urllib.parse.urlsplit(self.path)
        if u.path == "/.well-known/openid-configuration":
            iss = self.st.issuer
            self.send_json(200, {
                "issuer": iss,
                "authorization_endpoint": iss + "/authorize",
                "token_endpoint": iss + "/token",
                "jwks_uri": iss + "/jwks",
                "response_types_supported": ["code"],
                "grant_types_supported": ["authorization_code",
                                          "refresh_token"],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "code_challenge_methods_supported": ["S256"],
                "token_endpoint_auth_methods_supported": ["none"],
                "scopes_supported": ["openid", "email", "profile", "groups",
                                     "offline_access"],
                "claims_supported": ["iss", "aud", "sub", "email", "groups",
                                     "nonce", "iat", "exp", "nbf",
                                     "auth_time"],
            })
        elif u.path == "/jwks":
            self.send_json(200, {"keys": [self.st.jwk]})
        elif u.path == "/authorize":
            self.authorize(urllib.parse.parse_qs(u.query))
        elif u.path == "/healthz":
            self.send_text(200, "ok")
        else:
            self.send_text(404, "not found")

    def authorize(self, q):
        a = self.st.args

        def one(name):
            v = q.get(name)
            return v[0] if v and len(v) == 1 else None

        client_id = one("client_id")
        redirect_uri = one("redirect_uri")
        # Errors before the redirect target is trusted are shown, not redirected.
        if client_id != a.client_id:
            return self.send_text(400, "unknown client_id %r" % client_id)
        if not redirect_uri or not loopback_redirect_ok(redirect_uri):
            return self.send_text(400, "redirect_uri must be http://127.0.0.1:PORT/...: %r"
                                  % redirect_uri)
        state = one("state")

        def fail(err, desc):
            log("authorize refused: %s: %s" % (err, desc))
            params = {"error": err, "error_description": desc}
            if state is not None:
                params["state"] = state
            sep = "&" if urllib.parse.urlsplit(redirect_uri).query else "?"
            self.redirect(redirect_uri + sep + urllib.parse.urlencode(params))

        if one("response_type") != "code":
            return fail("unsupported_response_type", "response_type must be code")
        scope = (one("scope") or "").split()
        if "openid" not in scope:
            return fail("invalid_scope", "scope must include openid")
        challenge = one("code_challenge")
        if one("code_challenge_method") != "S256" or not challenge:
            return fail("invalid_request", "PKCE with code_challenge_method=S256 is required")
        if len(challenge) != 43:
            return fail("invalid_request", "code_challenge must be base64url(SHA-256), 43 chars")
        code = secrets.token_urlsafe(32)
        with self.st.lock:
            self.st.codes[code] = {
                "client_id": client_id,
                "redirect_uri": redirect_uri,
                "challenge": challenge,
                "nonce": one("nonce"),
                "email": a.email,
                "auth_time": int(time.time()),
                "expires": time.time() + CODE_TTL,
            }
        params = {"code": code}
        if state is not None:
            params["state"] = state
        sep = "&" if urllib.parse.urlsplit(redirect_uri).query else "?"
        log("authorize: approved %s for %s" % (a.email, client_id))
        self.redirect(redirect_uri + sep + urllib.parse.urlencode(params))

    # -- POST
    def do_POST(self):
        u = urllib.parse.urlsplit(self.path)
        n = int(self.headers.get("Content-Length") or 0)
        if n > 65536:
            return self.send_json(413, {"error": "invalid_request"})
        body = self.rfile.read(n).decode("utf-8", "replace")
        q = urllib.parse.parse_qs(body, keep_blank_values=True)
        if u.path.startswith("/test/"):
            return self.test_control(u.path, q)
        if u.path != "/token":
            return self.send_text(404, "not found")

        def one(name):
            v = q.get(name)
            return v[0] if v and len(v) == 1 else None

        def err(code, e, desc):
            log("token refused: %s: %s" % (e, desc))
            self.send_json(code, {"error": e, "error_description": desc})

        if one("grant_type") == "refresh_token":
            return self.refresh_grant(one, err)
        if one("grant_type") != "authorization_code":
            return err(400, "unsupported_grant_type",
                       "grant_type must be authorization_code or refresh_token")
        code = one("code")
        with self.st.lock:
            entry = self.st.codes.pop(code, None) if code else None  # used once
        if entry is None:
            return err(400, "invalid_grant", "unknown or already used code")
        if time.time() > entry["expires"]:
            return err(400, "invalid_grant", "code expired")
        # client_id may come as HTTP basic auth from some clients
        client_id = one("client_id")
        authz = self.headers.get("Authorization", "")
        if client_id is None and authz.startswith("Basic "):
            try:
                client_id = urllib.parse.unquote(
                    base64.b64decode(authz[6:]).decode().split(":", 1)[0])
            except Exception:
                client_id = None
        if client_id != entry["client_id"]:
            return err(400, "invalid_client", "client_id does not match the code")
        if one("redirect_uri") != entry["redirect_uri"]:
            return err(400, "invalid_grant", "redirect_uri does not match the code")
        verifier = one("code_verifier")
        if not verifier or not (43 <= len(verifier) <= 128):
            return err(400, "invalid_grant", "code_verifier missing or of bad length")
        if b64url(hashlib.sha256(verifier.encode("ascii", "replace")).digest()) != entry["challenge"]:
            return err(400, "invalid_grant", "PKCE verification failed")
        login = {"client_id": client_id, "email": entry["email"],
                 "nonce": entry["nonce"], "auth_time": entry["auth_time"]}
        self.issue(login, entry["nonce"], "token")

    def issue(self, login, nonce, what):
        """An ID token (with nonce, or none), a fresh refresh token that
        continues login, and the answer."""
        a, lifetime = self.st.args, self.st.lifetime
        claims = make_claims(self.st.issuer, login["client_id"],
                             a.sub or a.email, login["email"], a.groups_list,
                             nonce, lifetime, auth_time=login["auth_time"])
        id_token = sign_jwt(claims, self.st.key, self.st.jwk["kid"])
        refresh = secrets.token_urlsafe(32)
        with self.st.lock:
            self.st.refresh[refresh] = login
        log("%s: issued ID token for %s (exp in %d s)" % (what, login["email"], lifetime))
        self.send_json(200, {
            "id_token": id_token,
            "refresh_token": refresh,
            "access_token": secrets.token_urlsafe(32),
            "token_type": "Bearer",
            "expires_in": lifetime,
            "scope": "openid email groups offline_access",
        })

    def refresh_grant(self, one, err):
        """OIDC Core 12: a refresh token (used once: each answer brings the
        next) gives a new ID token of the same login: same sub, aud and
        auth_time, and no nonce unless --refresh-nonce (many IdPs leave it
        out; OIDC Core 12.2)."""
        with self.st.lock:
            login = self.st.refresh.pop(one("refresh_token") or "", None)
        if login is None:
            return err(400, "invalid_grant", "unknown, used or revoked refresh token")
        if one("client_id") != login["client_id"]:
            return err(400, "invalid_client", "client_id does not match the refresh token")
        nonce = login["nonce"] if self.st.args.refresh_nonce else None
        self.issue(login, nonce, "refresh")

    def test_control(self, path, q):
        """For the tests only (the sandbox's IdP on 127.0.0.1): the
        lifetime of tokens issued from now on (lifetime=S), or every
        refresh token revoked (a user disabled at the IdP)."""
        if path == "/test/lifetime":
            v = q.get("seconds", [""])[0]
            if not v.isdigit() or not 10 <= int(v) <= 86400:
                return self.send_json(400, {"error": "seconds: 10 to 86400"})
            self.st.lifetime = int(v)
            log("test: tokens now live %d s" % self.st.lifetime)
            return self.send_json(200, {"lifetime": self.st.lifetime})
        if path == "/test/revoke":
            with self.st.lock:
                n = len(self.st.refresh)
                self.st.refresh.clear()
            log("test: %d refresh tokens revoked" % n)
            return self.send_json(200, {"revoked": n})
        return self.send_text(404, "not found")


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, addr, state, ctx):
        self.state = state
        self.ctx = ctx
        super().__init__(addr, Handler)

    def finish_request(self, request, client_address):
        # TLS handshake here, in the request's own thread, so a silent client
        # cannot stall accept().
        request.settimeout(30)
        try:
            tls = self.ctx.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError) as e:
            log("TLS handshake with %s failed: %s" % (client_address[0], e))
            return
        try:
            self.RequestHandlerClass(tls, client_address, self)
        finally:
            try:
                tls.close()
            except OSError:
                pass

    def handle_error(self, request, client_address):
        log("error serving %s: %s" % (client_address[0], sys.exc_info()[1]))


def cmd_serve(a):
    a.groups_list = [g for g in a.groups.split(",") if g]
    key = load_or_create_key(a.key_file)
    st = State(a, key)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(a.cert, a.key)
    srv = Server(("127.0.0.1", a.port), st, ctx)
    port = srv.server_address[1]
    st.issuer = "https://127.0.0.1:%d" % port
    if a.port_file:
        tmp = a.port_file + ".tmp"
        with open(tmp, "w") as f:
            f.write("%d\n" % port)
        os.rename(tmp, a.port_file)
    log("issuer %s client_id %s user %s groups %s kid %s" % (
        st.issuer, a.client_id, a.email, ",".join(a.groups_list), st.jwk["kid"]))
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


def cmd_mint(a):
    if a.key_file is None:
        sys.exit("mint: --key-file is required")
    key = load_or_create_key(a.key_file)
    kid = jwk_of(key)["kid"]
    if a.other_key:
        # Same kid, signed by a different key: the signature must not verify.
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    if a.kid is not None:
        kid = a.kid or None
    issuer = a.issuer
    if issuer is None and a.port_file:
        with open(a.port_file) as f:
            issuer = "https://127.0.0.1:%d" % int(f.read().strip())
    if a.iss is not None:
        issuer = a.iss
    if issuer is None:
        sys.exit("mint: give --issuer, --iss or --port-file")
    now = int(time.time()) + a.iat_offset
    claims = make_claims(issuer, a.aud if a.aud is not None else a.client_id,
                         a.sub or a.email, a.email,
                         [g for g in a.groups.split(",") if g], a.nonce,
                         0, now=now, nbf=a.nbf_offset is not None)
    claims["exp"] = int(time.time()) + a.exp_offset
    if a.nbf_offset is not None:
        claims["nbf"] = int(time.time()) + a.nbf_offset
    for kv in a.claim:
        k, _, v = kv.partition("=")
        try:
            claims[k] = json.loads(v)
        except ValueError:
            claims[k] = v
    for k in a.drop:
        claims.pop(k, None)
    print(sign_jwt(claims, key, kid, a.alg))
    return 0


def main(argv):
    # `idp.py --cert ...` (no subcommand) means serve.
    if argv and argv[0].startswith("-") and argv[0] not in ("-h", "--help"):
        argv = ["serve"] + argv
    p = argparse.ArgumentParser(prog="idp.py", description="test OIDC provider")
    sub = p.add_subparsers(dest="cmd", required=True)

    def common(sp):
        sp.add_argument("--key-file", help="RSA private key PEM (created when missing)")
        sp.add_argument("--client-id", default="bz-cli")
        sp.add_argument("--email", default="alice@example.com")
        sp.add_argument("--sub", default=None, help="subject (default: the email)")
        sp.add_argument("--groups", default="ops", help="comma-separated")

    s = sub.add_parser("serve", help="run the provider")
    common(s)
    s.add_argument("--cert", required=True)
    s.add_argument("--key", required=True, help="TLS private key")
    s.add_argument("--port", type=int, default=0, help="0 = pick a free port")
    s.add_argument("--port-file", help="write the chosen port here")
    s.add_argument("--lifetime", type=int, default=3600, help="ID token lifetime (s)")
    s.add_argument("--refresh-nonce", action="store_true",
                   help="refreshed ID tokens keep the login's nonce (default: none)")

    m = sub.add_parser("mint", help="print a signed ID token")
    common(m)
    m.add_argument("--issuer", help="the IdP's issuer URL")
    m.add_argument("--port-file", help="derive the issuer from a running IdP's port file")
    m.add_argument("--iss", help="override the iss claim")
    m.add_argument("--aud", help="override aud (default: --client-id)")
    m.add_argument("--nonce")
    m.add_argument("--exp-offset", type=int, default=3600, help="exp = now + this")
    m.add_argument("--iat-offset", type=int, default=0, help="iat = now + this")
    m.add_argument("--nbf-offset", type=int, default=None, help="add nbf = now + this")
    m.add_argument("--alg", default="RS256", choices=["RS256", "none", "HS256"])
    m.add_argument("--kid", default=None, help="override kid ('' = omit)")
    m.add_argument("--other-key", action="store_true",
                   help="sign with a fresh key under the real kid (bad signature)")
    m.add_argument("--claim", action="append", default=[], metavar="K=JSON",
                   help="set an extra claim")
    m.add_argument("--drop", action="append", default=[], metavar="K",
                   help="remove a claim")

    a = p.parse_args(argv)
    if a.cmd == "serve":
        if a.key_file is None:
            p.error("serve: --key-file is required")
        return cmd_serve(a)
    return cmd_mint(a)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
