# Shared fixtures for the end-to-end tests: one sandbox (tests/sandbox up) for
# the whole session, and helpers that run the real OpenSSH client through it,
# with or without a pseudo-terminal.
import contextlib
import json
import os
import re
import select
import signal
import socket
import shutil
import struct
import subprocess
import tempfile
import time

import fcntl
import pytest
import termios

SRCDIR = os.environ.get("BZ_SRCDIR") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", ".."))
SANDBOX = os.path.join(SRCDIR, "tests", "sandbox")


def read_env(path):
    """Parse DIR/env by letting bash print it (values are %q-quoted)."""
    out = subprocess.run(
        ["bash", "-c", 'set -a; . "$1"; env -0', "bash", path],
        check=True, stdout=subprocess.PIPE).stdout
    env = {}
    for item in out.split(b"\0"):
        k, sep, v = item.decode(errors="replace").partition("=")
        if sep and k.startswith("BZ_"):
            env[k] = v
    return env


class Sandbox:
    def __init__(self, d):
        self.dir = d
        self.reload()

    def reload(self):
        self.env = read_env(os.path.join(self.dir, "env"))

    def __getattr__(self, name):
        key = "BZ_" + name.upper()
        try:
            return self.__dict__["env"][key]
        except KeyError:
            raise AttributeError(name)

    def log_tail(self, name, n=30):
        p = os.path.join(self.dir, "logs", name + ".log")
        try:
            with open(p, errors="replace") as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return ""

    def audit_mark(self):
        """Where the audit log ends now (for audit_events)."""
        try:
            return os.path.getsize(self.audit_log)
        except OSError:
            return 0

    def audit_events(self, since=0, event=None):
        """Audit events written after byte offset since (whole lines only),
        of one kind when event is given."""
        try:
            with open(self.audit_log, "rb") as f:
                f.seek(since)
                data = f.read()
        except FileNotFoundError:
            return []
        lines = data.split(b"\n")[:-1]  # not a line still being written
        out = [json.loads(l) for l in lines if l.strip()]
        return [e for e in out if event is None or e.get("event") == event]

    @contextlib.contextmanager
    def policy_edited(self, edit):
        """Run the block with the sandbox policy rewritten by edit(text)
        and reloaded (SIGHUP); the original is back, reloaded, after."""
        pol = os.path.join(self.policy_dir, "sandbox.yaml")
        with open(pol) as f:
            orig = f.read()
        changed = edit(orig)
        assert changed != orig, "the edit changed nothing"
        pid = int(self.proxy_pid)

        def put(text):
            with open(pol + ".tmp", "w") as f:
                f.write(text)
            os.rename(pol + ".tmp", pol)
            os.kill(pid, signal.SIGHUP)

        put(changed)
        try:
            yield
        finally:
            try:
                put(orig)
            except ProcessLookupError:
                pass
            time.sleep(1)

    def totp(self, *args):
        return subprocess.run([self.env["BZ_TOTP_CMD"], *args], check=True,
                              stdout=subprocess.PIPE, text=True,
                              timeout=60).stdout.strip()

    def ssh_config_for(self, client_dir, path, strict=True):
        """An ssh_config like the sandbox's, using another bzsshd config dir."""
        with open(self.ssh_config) as f:
            text = f.read()
        text = text.replace(self.client_dir, client_dir)
        if not strict:
            text = re.sub(r"(?m)^(\s*)StrictHostKeyChecking .*$",
                          r"\1StrictHostKeyChecking no", text)
            text = re.sub(r"(?m)^(\s*)UserKnownHostsFile .*$",
                          r"\1UserKnownHostsFile /dev/null", text)
        with open(path, "w") as f:
            f.write(text)
        return path

    def relay_ssh_config(self, path):
        """The sandbox's ssh_config without ProxyUseFdpass: bzsshd serves
        ssh's two pipes through its relay (a ProxyCommand as users wrote
        it before `ssh-config` wrote --fdpass)."""
        with open(self.ssh_config) as f:
            text = f.read()
        text = re.sub(r"(?m)^\s*ProxyUseFdpass .*\n", "", text)
        text = text.replace(" --fdpass --stdio", " --stdio")
        with open(path, "w") as f:
            f.write(text)
        return path

    def ssh(self, *args, config=None, input=None, timeout=60, batch=True,
            check_rc=None):
        cmd = ["ssh", "-F", config or self.ssh_config]
        if batch:
            cmd += ["-o", "BatchMode=yes"]
        cmd += list(args)
        r = subprocess.run(cmd, input=input, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=timeout,
                           stdin=None if input is not None else subprocess.DEVNULL)
        if check_rc is not None:
            assert r.returncode == check_rc, (
                "%s: exit %d, expected %d\nstdout: %r\nstderr: %r" % (
                    " ".join(cmd), r.returncode, check_rc, r.stdout[-500:],
                    r.stderr[-2000:]))
        return r

    def login(self, client_dir, code, timeout=60):
        """Run `bzsshd login` into client_dir with this TOTP code."""
        os.makedirs(client_dir, mode=0o700, exist_ok=True)
        env = dict(os.environ, BROWSER=self.browser)
        return subprocess.run(
            [self.bzsshd, "--config-dir", client_dir, "login",
             "--issuer", self.issuer, "--client-id", self.client_id,
             "--proxy", self.proxy_url, "--ca", self.ca, "--totp-stdin"],
            input=(code + "\n").encode(), stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, timeout=timeout, env=env)


class PtyProc:
    """A process on its own pseudo-terminal (its controlling tty, so ssh
    prompts there and puts it in raw mode), of a given size."""

    def __init__(self, argv, rows=24, cols=80, env=None):
        self.master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ,
                    struct.pack("HHHH", rows, cols, 0, 0))

        def child_setup():
            os.setsid()
            fcntl.ioctl(0, termios.TIOCSCTTY, 0)

        self.proc = subprocess.Popen(argv, stdin=slave, stdout=slave,
                                     stderr=slave, preexec_fn=child_setup,
                                     close_fds=True, env=env)
        os.close(slave)
        self.buf = b""

    def write(self, data):
        if isinstance(data, str):
            data = data.encode()
        os.write(self.master, data)

    def _read_some(self, timeout):
        r, _, _ = select.select([self.master], [], [], timeout)
        if not r:
            return False
        try:
            chunk = os.read(self.master, 65536)
        except OSError:  # EIO: the other side is gone
            return None
        if not chunk:
            return None
        self.buf += chunk
        return True

    def expect(self, pattern, timeout=20):
        """Wait for a regex (bytes) in the output; return the match."""
        rx = re.compile(pattern if isinstance(pattern, bytes) else pattern.encode())
        deadline = time.time() + timeout
        while True:
            m = rx.search(self.buf)
            if m:
                return m
            left = deadline - time.time()
            if left <= 0:
                raise AssertionError("timed out waiting for %r; output so far: %r"
                                     % (rx.pattern, self.buf[-2000:]))
            if self._read_some(min(left, 0.5)) is None:
                m = rx.search(self.buf)
                if m:
                    return m
                raise AssertionError("process ended (rc %r) before %r; output: %r"
                                     % (self.proc.poll(), rx.pattern, self.buf[-2000:]))

    def wait(self, timeout=20):
        """Drain output until the process exits; return its status."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            rc = self.proc.poll()
            if rc is not None:
                while self._read_some(0.1):
                    pass
                return rc
            self._read_some(0.2)
        raise AssertionError("process still running after %ss; output: %r"
                             % (timeout, self.buf[-2000:]))

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        try:
            os.close(self.master)
        except OSError:
            pass


def ppid(pid):
    """Parent of a process, or None once it is gone."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return int(f.read().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return None


def proc_kb(pid, field="VmRSS"):
    """A memory figure of /proc/PID/status in kB (VmRSS now, VmHWM the
    peak), or None once the process is gone."""
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return None


def sanitized(pid):
    """Is the process an AddressSanitizer build (--enable-sanitizers)? Its
    RSS then holds ASan's shadow memory and quarantine of freed blocks
    (256 MiB): bounds on RSS are for the real build only."""
    try:
        with open("/proc/%d/maps" % pid) as f:
            return "libasan" in f.read()
    except OSError:
        return False


def pgrep(pattern, user=None):
    cmd = ["pgrep", "-f", pattern]
    if user:
        cmd[1:1] = ["-u", user]
    r = subprocess.run(cmd, stdout=subprocess.PIPE, text=True)
    return [int(p) for p in r.stdout.split()]


def bzsshd_pids():
    """Every bzsshd serving an ssh now (take it before starting one)."""
    return set(pgrep(r"bzsshd .*--stdio"))


def bzsshd_of(ssh_proc, before):
    """The bzsshd serving ssh_proc: ssh's ProxyCommand child, or, with
    ProxyUseFdpass (the sandbox's ssh_config), the child it forked to serve
    the socket it passed, which outlives it: a bzsshd not in before (tests
    run one at a time)."""
    return [k for k in pgrep(r"bzsshd .*--stdio")
            if k not in before or ppid(k) == ssh_proc.pid]


def alive(pid):
    """Running (not gone, not a zombie)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def stop_proxy(sandbox, sig=signal.SIGTERM):
    pid = int(sandbox.proxy_pid)
    os.kill(pid, sig)
    assert wait_until(lambda: not alive(pid), 10)


def start_proxy(sandbox, wait_ssh=True):
    """(Re)start the sandbox's bzproxy with its usual command line; the
    result of tests/sandbox. With wait_ssh it must start, and web1 serve
    again (agents come back with a backoff)."""
    r = subprocess.run([SANDBOX, "start-proxy", sandbox.dir],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       timeout=60)
    sandbox.reload()
    if wait_ssh:
        assert r.returncode == 0, r.stdout
        assert wait_until(lambda: sandbox.ssh("web1", "true", timeout=20)
                          .returncode == 0, 40, interval=0.5)
    return r


def restart_proxy(sandbox):
    stop_proxy(sandbox)
    start_proxy(sandbox)


@contextlib.contextmanager
def proxy_with_limits(sandbox, limits):
    """bzproxy restarted with these limits.* in its config, and restarted
    with its own config again after."""
    with open(sandbox.proxy_config) as f:
        orig = f.read()
    with open(sandbox.proxy_config, "w") as f:
        f.write(orig + "limits:\n" + "".join(
            "  %s: %d\n" % kv for kv in limits.items()))
    try:
        restart_proxy(sandbox)
        yield sandbox
    finally:
        with open(sandbox.proxy_config, "w") as f:
            f.write(orig)
        restart_proxy(sandbox)


def wait_until(pred, timeout, interval=0.1):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(interval)
    return pred()


@pytest.fixture(scope="session")
def sandbox():
    d = tempfile.mkdtemp(prefix="bz-e2e.")
    r = subprocess.run([SANDBOX, "up", d], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True, timeout=300)
    if r.returncode != 0:
        subprocess.run([SANDBOX, "down", d])
        pytest.fail("tests/sandbox up %s failed (exit %d):\n%s"
                    % (d, r.returncode, r.stdout), pytrace=False)
    sb = Sandbox(d)
    yield sb
    subprocess.run([SANDBOX, "down", d])
    if os.environ.get("BZ_E2E_KEEP") == "1":
        print("\nsandbox kept in %s" % d)
    else:
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def tmp_client_dir(tmp_path):
    d = tmp_path / "client"
    d.mkdir(mode=0o700)
    return str(d)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """On failure, attach the sandbox's recent logs to the report."""
    outcome = yield
    rep = outcome.get_result()
    if rep.when == "call" and rep.failed and "sandbox" in item.fixturenames:
        sb = item.funcargs.get("sandbox")
        if sb is not None:
            for name in ("bzproxy", "web1", "db1", "idp"):
                rep.sections.append(("log %s (tail)" % name, sb.log_tail(name)))


def free_port(family=socket.AF_INET, host="127.0.0.1"):
    s = socket.socket(family)
    s.bind((host, 0))
    port = s.getsockname()[1]
    s.close()
    return port


def _listening_ports():
    """Ports in LISTEN state on this machine (IPv4 and IPv6)."""
    ports = set()
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(name) as f:
                next(f)
                for line in f:
                    parts = line.split()
                    if parts[3] == "0A":
                        ports.add(int(parts[1].rsplit(":", 1)[1], 16))
        except OSError:
            pass
    return ports


def is_listening(port):
    return port in _listening_ports()


@pytest.fixture
def plain_sshd(tmp_path):
    """A real OpenSSH sshd on 127.0.0.1 for the current user, key auth."""
    if not os.path.exists("/usr/sbin/sshd"):
        pytest.skip("no /usr/sbin/sshd")
    d = tmp_path / "plain"
    d.mkdir(mode=0o700)
    for k in ("host_key", "user_key"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f",
                        str(d / k)], check=True)
    shutil.copy(d / "user_key.pub", d / "authorized_keys")
    os.chmod(d / "authorized_keys", 0o600)
    me = subprocess.run(["id", "-un"], stdout=subprocess.PIPE, text=True,
                        check=True).stdout.strip()
    if os.getuid() == 0:
        os.makedirs("/run/sshd", exist_ok=True)
        os.chmod("/run/sshd", 0o755)
        rootlogin = "PermitRootLogin prohibit-password"
    else:
        rootlogin = "PermitRootLogin no"
    port = free_port()
    cfg = d / "sshd_config"
    cfg.write_text("\n".join([
        "ListenAddress 127.0.0.1",
        "Port %d" % port,
        "HostKey %s" % (d / "host_key"),
        "PidFile %s" % (d / "sshd.pid"),
        "AuthorizedKeysFile %s" % (d / "authorized_keys"),
        "UsePAM no",
        "StrictModes no",
        "PubkeyAuthentication yes",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        rootlogin,
        "AllowUsers %s" % me,
        "PrintMotd no",
        "PrintLastLog no",
        "UseDNS no",
    ]) + "\n")
    subprocess.run(["/usr/sbin/sshd", "-t", "-f", str(cfg)], check=True)
    log = open(d / "sshd.log", "wb")
    p = subprocess.Popen(["/usr/sbin/sshd", "-D", "-e", "-f", str(cfg)],
                         stdin=subprocess.DEVNULL, stdout=log, stderr=log)
    log.close()
    try:
        ok = wait_until(lambda: p.poll() is not None or is_listening(port), 10)
        assert ok and p.poll() is None, (d / "sshd.log").read_text()
        yield {"port": port, "key": str(d / "user_key"), "user": me,
               "log": str(d / "sshd.log")}
    finally:
        p.terminate()
        try:
            p.wait(5)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
