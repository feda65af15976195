# Exec through the whole chain with the real OpenSSH client: output, stderr,
# exit status, and bulk data in both directions (stdin piped through).
import hashlib
import os


def test_exec_output_and_status(sandbox):
    r = sandbox.ssh("web1", "echo hello; echo oops >&2; id -un; exit 42")
    assert r.returncode == 42, r.stderr
    assert r.stdout.decode().splitlines() == ["hello", sandbox.unix_user]
    assert b"oops" in r.stderr


def test_exec_on_db1(sandbox):
    r = sandbox.ssh("db1", "id -un", check_rc=0)
    assert r.stdout.decode().strip() == sandbox.unix_user


def test_explicit_user_at_host(sandbox):
    r = sandbox.ssh("%s@web1" % sandbox.unix_user, "true", check_rc=0)
    assert r.stdout == b""


def test_stdin_piped_through(sandbox):
    data = os.urandom(10 * 1024 * 1024)
    r = sandbox.ssh("web1", "sha256sum", input=data, timeout=120, check_rc=0)
    assert r.stdout.decode().split()[0] == hashlib.sha256(data).hexdigest()


def test_download(sandbox):
    n = 10 * 1024 * 1024
    r = sandbox.ssh("web1", "head -c %d /dev/zero" % n, timeout=120, check_rc=0)
    assert len(r.stdout) == n
    assert r.stdout == b"\0" * n


def test_stdin_eof_reaches_command(sandbox):
    r = sandbox.ssh("web1", "wc -c", input=b"abc", check_rc=0)
    assert r.stdout.decode().strip() == "3"


def test_several_channels_one_after_another(sandbox):
    for i in range(5):
        r = sandbox.ssh("web1", "echo %d" % i, check_rc=0)
        assert r.stdout.decode().strip() == str(i)
