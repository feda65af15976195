# Interactive use: `ssh -tt` shell on a pty of a given size, typed commands,
# and signals: Ctrl-C ends a remote sleep, killing ssh ends the remote command.
import random
import signal
import time

from conftest import PtyProc, pgrep, wait_until

ROWS, COLS = 37, 101


def ssh_argv(sandbox, *args):
    return ["ssh", "-F", sandbox.ssh_config, "-o", "BatchMode=yes", *args]


def test_shell_runs_typed_command_with_window_size(sandbox):
    p = PtyProc(ssh_argv(sandbox, "-tt", "web1"), rows=ROWS, cols=COLS)
    try:
        p.write("echo BZ-$((6*7)); stty size; exit\n")
        p.expect(rb"BZ-42")
        p.expect(rb"\b%d %d\b" % (ROWS, COLS))
        assert p.wait(20) == 0
    finally:
        p.close()


def test_exec_with_pty_sees_size(sandbox):
    p = PtyProc(ssh_argv(sandbox, "-tt", "web1", "stty size; tty"), rows=ROWS, cols=COLS)
    try:
        p.expect(rb"\b%d %d\b" % (ROWS, COLS))
        p.expect(rb"/dev/pts/")
        assert p.wait(20) == 0
    finally:
        p.close()


def test_ctrl_c_ends_remote_sleep(sandbox):
    secs = random.randint(100000, 999999)
    p = PtyProc(ssh_argv(sandbox, "-tt", "web1", "sleep %d" % secs))
    try:
        assert wait_until(lambda: pgrep("^sleep %d$" % secs), 15), \
            "remote sleep never started; output: %r" % p.buf
        time.sleep(0.3)
        t0 = time.time()
        p.write(b"\x03")
        rc = p.wait(10)
        assert time.time() - t0 < 5, "ssh took %.1fs to end after Ctrl-C" % (time.time() - t0)
        assert rc != 0
        assert wait_until(lambda: not pgrep("^sleep %d$" % secs), 5), "remote sleep survived Ctrl-C"
    finally:
        p.close()


def test_killing_ssh_ends_remote_command(sandbox):
    import subprocess
    secs = random.randint(100000, 999999)
    proc = subprocess.Popen(ssh_argv(sandbox, "web1", "sleep %d" % secs),
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    try:
        assert wait_until(lambda: pgrep("^sleep %d$" % secs), 15), "remote sleep never started"
        proc.send_signal(signal.SIGTERM)
        proc.wait(10)
        assert wait_until(lambda: not pgrep("^sleep %d$" % secs), 10), \
            "remote sleep still running 10 s after ssh was killed"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
