# What a session looks like from inside and out, as with OpenSSH's sshd:
# the environment (SendEnv/SetEnv per the agent's accept_env, GIT_PROTOCOL
# and git protocol v2, SSH_CONNECTION, SSH_CLIENT, SSH_TTY), -t/-T/-n,
# stdin EOF, exit-signal, a 100 KB command line, every byte value, agent
# and X11 forwarding refused with a line the user sees, refusals as one
# line with status 255, and `bzsshd ssh-config`.
import os
import re
import shutil
import subprocess
import time

import pytest


def test_accept_env_and_refused_names_logged(sandbox):
    # ssh takes the first SetEnv given: one list
    r = sandbox.ssh("-o", "SetEnv=GIT_PROTOCOL=version=2 BZ_NOT_TAKEN=1 "
                    "LC_TIME=C.UTF-8", "web1", "echo $GIT_PROTOCOL; echo ${BZ_NOT_TAKEN-unset};"
                    " echo $LC_TIME", check_rc=0)
    assert r.stdout.decode().splitlines() == ["version=2", "unset", "C.UTF-8"]
    log = sandbox.log_tail("web1", 200)
    assert re.search(r"environment refused \(not in accept_env\): .*"
                     r"BZ_NOT_TAKEN", log), log[-2000:]


def test_client_cannot_set_path_or_ssh_vars(sandbox):
    r = sandbox.ssh("-o", "SetEnv=PATH=/tmp/evil SSH_CONNECTION=x",
                    "web1", "echo $PATH; echo $SSH_CONNECTION", check_rc=0)
    path, conn = r.stdout.decode().splitlines()
    assert path == "/usr/local/bin:/usr/bin:/bin"
    assert conn != "x"


def test_ssh_connection_and_client(sandbox):
    r = sandbox.ssh("-p", "2222", "web1",
                    "echo $SSH_CONNECTION; echo $SSH_CLIENT; "
                    "echo ${SSH_TTY-none}", check_rc=0)
    conn, client, tty = r.stdout.decode().splitlines()
    c = conn.split()
    assert len(c) == 4, conn
    assert c[0] == "127.0.0.1" and c[2] == "127.0.0.1", conn
    assert 0 < int(c[1]) < 65536
    assert c[3] == "2222", "the port ssh asked for: %s" % conn
    assert client.split() == [c[0], c[1], c[3]]
    assert tty == "none"


def test_tty_only_with_t(sandbox):
    r = sandbox.ssh("-tt", "web1", "tty; echo $SSH_TTY; stat -c %U:%a $(tty)",
                    check_rc=0)
    tty, ssh_tty, owner = r.stdout.decode().replace("\r", "").splitlines()[:3]
    assert tty.startswith("/dev/pts/"), tty
    assert ssh_tty == tty
    # the user's own terminal, as sshd leaves it (screen, write need it)
    assert owner in ("%s:620" % sandbox.unix_user,
                     "%s:600" % sandbox.unix_user), owner
    r = sandbox.ssh("-T", "web1", "tty", timeout=30)
    assert r.returncode == 1
    assert r.stdout.strip() == b"not a tty"


def test_n_gives_empty_stdin(sandbox):
    r = subprocess.run(["ssh", "-F", sandbox.ssh_config, "-o", "BatchMode=yes",
                        "-n", "web1", "wc -c"], input=b"not read",
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=30)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == b"0"


def test_stdin_eof_and_stderr_apart(sandbox):
    r = sandbox.ssh("web1", "cat; echo err >&2", input=b"hi\n", check_rc=0)
    assert r.stdout == b"hi\n"
    assert r.stderr == b"err\n"


def test_exit_signal(sandbox):
    r = sandbox.ssh("-v", "web1", "kill -TERM $$", timeout=30)
    # ssh has no status to give for a signal: 255, as with sshd
    assert r.returncode == 255
    assert b"exit-signal" in r.stderr, r.stderr[-2000:]


def test_long_command_line(sandbox):
    # sshd takes what fits in one SSH packet (256 KiB); so do we, although
    # Linux takes at most 128 KiB in one argument: 100 KB and 250 KB
    # (ssh joins its arguments with spaces; each must fit in Linux's)
    for words in ([100000], [100000, 100000, 49998]):
        n = sum(words) + len(words) - 1
        r = sandbox.ssh("web1", "echo", *["x" * w for w in words],
                        "| wc -c; echo $0 $#", timeout=30)
        assert r.returncode == 0, r.stderr[-500:]
        out = r.stdout.split()
        # as with -c: $0 the shell's name, no positional parameters
        assert out[0] == b"%d" % (n + 1) and out[2] == b"0", r.stdout[:200]
        assert out[1] in (b"bash", b"sh", b"dash"), out[1]
    # and the audit log has the whole command
    assert any(len(o.get("command", "")) > 250000
               for o in sandbox.audit_events())


def test_command_line_too_long_says_why(sandbox):
    # ssh joins its arguments with spaces: 270,007 bytes, over 256 KiB
    r = sandbox.ssh("web1", "echo", "y" * 90000, "y" * 90000, "y" * 90000,
                    timeout=30)
    assert r.returncode == 255
    assert b"256 KiB" in r.stderr, r.stderr[-500:]


def test_every_byte_value_both_ways(sandbox):
    data = bytes(range(256)) * 4096
    path = sandbox.ssh("web1", "mktemp /tmp/bz-bytes.XXXXXX",
                       check_rc=0).stdout.decode().strip()
    try:
        sandbox.ssh("web1", "cat > %s" % path, input=data, check_rc=0)
        r = sandbox.ssh("web1", "cat %s" % path, check_rc=0)
        assert r.stdout == data
    finally:
        sandbox.ssh("web1", "rm -f %s" % path)


def test_git_negotiates_protocol_v2(sandbox, tmp_path):
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    repo = sandbox.ssh("web1", "d=$(mktemp -d /tmp/bz-git.XXXXXX) && "
                       "git init -q --bare $d/r.git && cd $d && "
                       "git init -q w && cd w && echo v2 > f && git add f && "
                       "git -c user.email=t@t -c user.name=t commit -qm one && "
                       "git push -q ../r.git HEAD:refs/heads/main && echo $d",
                       check_rc=0).stdout.decode().strip()
    try:
        env = dict(os.environ, GIT_TRACE_PACKET="1", GIT_SSH_COMMAND=(
            "ssh -F %s -o BatchMode=yes" % sandbox.ssh_config))
        r = subprocess.run(["git", "clone", "-q", "-b", "main",
                            "web1:%s/r.git" % repo, str(tmp_path / "c")],
                           env=env, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=60)
        assert r.returncode == 0, r.stderr[-2000:]
        assert re.search(rb"clone< version 2", r.stderr), \
            "git fell back to protocol v0: %r" % r.stderr[-1000:]
        assert (tmp_path / "c" / "f").read_text() == "v2\n"
    finally:
        sandbox.ssh("web1", "rm -rf %s" % repo)


def test_agent_forwarding_refused_with_a_line(sandbox, tmp_path):
    sock = str(tmp_path / "agent.sock")
    a = subprocess.Popen(["ssh-agent", "-D", "-a", sock],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(50):
            if os.path.exists(sock):
                break
            subprocess.run(["sleep", "0.1"])
        env = dict(os.environ, SSH_AUTH_SOCK=sock)
        r = subprocess.run(["ssh", "-F", sandbox.ssh_config, "-o",
                            "BatchMode=yes", "-A", "web1",
                            "echo ${SSH_AUTH_SOCK-none}"], env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           stdin=subprocess.DEVNULL, timeout=30)
    finally:
        a.kill()
        a.wait()
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == b"none"
    assert b"agent forwarding (ssh -A) is not available" in r.stderr


def test_x11_forwarding_refused_with_a_line(sandbox):
    env = dict(os.environ, DISPLAY=":99")
    r = subprocess.run(["ssh", "-F", sandbox.ssh_config, "-o", "BatchMode=yes",
                        "-o", "LogLevel=INFO", "-X", "web1", "echo ran"],
                       env=env, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                       timeout=30)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == b"ran"
    assert b"X11 forwarding (ssh -X, -Y) is not available" in r.stderr


def test_refusal_is_one_line_and_255(sandbox):
    # default LogLevel (INFO): ssh adds nothing of its own
    r = sandbox.ssh("-o", "LogLevel=INFO", "root@web1", "true", timeout=30)
    assert r.returncode == 255
    lines = r.stderr.decode().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("bzsshd: access denied: "), lines


def test_ssh_config_writes_user_and_works(sandbox, tmp_path):
    r = subprocess.run([sandbox.bzsshd, "--config-dir", sandbox.client_dir,
                        "ssh-config"], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=30)
    assert r.returncode == 0, r.stderr
    text = r.stdout.decode()
    assert re.search(r"(?m)^Host \*\.bz$", text), text
    # the one unix user the sandbox policy names for alice
    assert re.search(r"(?m)^\s+User %s$" % re.escape(sandbox.unix_user),
                     text), text
    # ssh and libssh share one socket (bzsshd --fdpass)
    assert re.search(r"(?m)^\s+ProxyCommand \S+ .*--fdpass --stdio %r@%h:%p$",
                     text), text
    assert re.search(r"(?m)^\s+ProxyUseFdpass yes$", text), text
    cfg = tmp_path / "config"
    cfg.write_text(text + "    GlobalKnownHostsFile /dev/null\n")
    r = subprocess.run(["ssh", "-F", str(cfg), "-o", "BatchMode=yes",
                        "web1.bz", "id -un"], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                       timeout=30)
    assert r.returncode == 0, r.stderr
    assert r.stdout.decode().strip() == sandbox.unix_user
    r = subprocess.run([sandbox.bzsshd, "--config-dir", sandbox.client_dir,
                        "ssh-config", "--user", "ops1", "--domain", "corp"],
                       stdout=subprocess.PIPE, timeout=30)
    assert b"Host *.corp\n    User ops1\n" in r.stdout
    r = subprocess.run([sandbox.bzsshd, "ssh-config", "--user", "a b"],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=30)
    assert r.returncode == 2


def test_mfa_prompt_impossible_in_batch_mode_says_why(sandbox):
    # a BatchMode ssh cannot answer keyboard-interactive: bzsshd says what
    # it wanted instead of a bare "Permission denied"
    with sandbox.policy_edited(lambda t: re.sub(r"mfa_max_age: \S+",
                                                "mfa_max_age: 1s", t)):
        time.sleep(2.5)
        r = sandbox.ssh("web1", "true", timeout=30)
        assert r.returncode == 255
        assert b"TOTP code is needed" in r.stderr, r.stderr


def _cipher(stderr):
    m = re.search(rb"kex: server->client cipher: (\S+)", stderr)
    return m and m.group(1).decode()


def test_ciphers_default_and_bzsshd_yaml(sandbox):
    # with AES-NI bzsshd offers AES-GCM only (ssh would pick its first
    # choice, chacha20, which costs libssh more per GiB); the user's
    # bzsshd.yaml may widen the list, and a name libssh lacks is refused
    with open("/proc/cpuinfo") as f:
        aesni = re.search(r"^flags\s*:.*\baes\b", f.read(), re.M)
    r = sandbox.ssh("-v", "web1", "true", check_rc=0)
    if aesni:
        assert _cipher(r.stderr) == "aes128-gcm@openssh.com", r.stderr[-3000:]
        r = sandbox.ssh("-o", "LogLevel=INFO", "-c",
                        "chacha20-poly1305@openssh.com", "web1", "true")
        assert r.returncode == 255 and b"no matching cipher" in r.stderr, r
    else:
        assert _cipher(r.stderr) == "chacha20-poly1305@openssh.com", r.stderr[-3000:]
    yaml = os.path.join(sandbox.client_dir, "bzsshd.yaml")
    try:
        with open(yaml, "w") as f:
            f.write("ciphers: chacha20-poly1305@openssh.com,aes256-ctr\n")
        r = sandbox.ssh("-v", "-c", "chacha20-poly1305@openssh.com", "web1",
                        "echo ok", check_rc=0)
        assert r.stdout == b"ok\n"
        assert _cipher(r.stderr) == "chacha20-poly1305@openssh.com"
        r = sandbox.ssh("-v", "-c", "aes256-ctr", "web1", "echo ok", check_rc=0)
        assert _cipher(r.stderr) == "aes256-ctr"
        with open(yaml, "w") as f:
            f.write("ciphers: aes128-gcm@openssh.com,des-cbc\n")
        r = sandbox.ssh("web1", "true")
        assert r.returncode == 255
        assert ("%s: ciphers: \"des-cbc\" is not a cipher bzsshd offers" %
                yaml).encode() in r.stderr, r.stderr
    finally:
        os.unlink(yaml)
