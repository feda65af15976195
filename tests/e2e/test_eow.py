# When ssh's reader goes away (issue 9): OpenSSH's ssh sends
# eow@openssh.com and sshd closes the command's stdout, so `ssh host yes |
# head -1` ends at once (plain sshd: about 0.5 s, exit 255). Through the
# chain it used to run until killed while the remote `yes` pushed data.
# And the client's keepalives are answered.
import subprocess
import time

LIMIT_S = 3.0  # plain sshd needs ~0.5 s here; a second more at most, and ASan


def timed_pipeline(sandbox, remote, reader, timeout=60):
    t0 = time.time()
    r = subprocess.run(
        "ssh -F %s -o BatchMode=yes web1 %s | %s; echo \"rc=${PIPESTATUS[0]}\""
        % (sandbox.ssh_config, remote, reader), shell=True,
        executable="/bin/bash", stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, timeout=timeout)
    return time.time() - t0, r


def test_yes_into_head(sandbox):
    took, r = timed_pipeline(sandbox, "yes", "head -1")
    assert r.stdout == b"y\nrc=255\n", (r.stdout, r.stderr)
    assert took < LIMIT_S, took


def test_big_download_into_short_reader(sandbox):
    took, r = timed_pipeline(sandbox, "'head -c 1G /dev/zero'",
                             "head -c 1M | wc -c")
    assert r.stdout.startswith(b"1048576\n"), (r.stdout, r.stderr)
    assert took < LIMIT_S, took


def test_slow_reader_killed(sandbox):
    # a rate-limited reader that a timeout ends (`| timeout 40 pv -L 2m`)
    reader = ("timeout 4 /usr/bin/python3 -c 'import sys, time\n"
              "while sys.stdin.buffer.read(100000): time.sleep(0.05)'"
              " >/dev/null")
    took, r = timed_pipeline(sandbox, "'head -c 1G /dev/zero'", reader)
    assert r.stdout.endswith(b"rc=255\n"), (r.stdout, r.stderr)
    assert took < 4 + LIMIT_S, took


def test_keepalives_answered(sandbox):
    r = sandbox.ssh("-o", "ServerAliveInterval=1", "-o",
                    "ServerAliveCountMax=2", "web1", "sleep 4; echo alive",
                    timeout=30)
    assert r.returncode == 0 and r.stdout == b"alive\n", r.stderr
