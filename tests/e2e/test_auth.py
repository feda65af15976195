# Who may connect: policy denials (default deny, a deny rule), a missing
# login, a wrong TOTP code at login, and the MFA re-prompt through SSH
# keyboard-interactive when the policy's mfa_max_age has passed.
import os
import re
import time

from conftest import PtyProc

DENY_RX = re.compile(r"den(y|ied)|not allowed|no policy|forbidden|policy", re.I)


def audit_lines_after(sandbox, n_before):
    with open(sandbox.audit_log, errors="replace") as f:
        return f.readlines()[n_before:]


def audit_count(sandbox):
    try:
        with open(sandbox.audit_log, errors="replace") as f:
            return len(f.readlines())
    except FileNotFoundError:
        return 0


def test_root_on_web1_denied(sandbox):
    n = audit_count(sandbox)
    r = sandbox.ssh("root@web1", "id")
    assert r.returncode == 255, r
    assert r.stdout == b""
    err = r.stderr.decode(errors="replace")
    assert DENY_RX.search(err), "no reason on stderr: %r" % err
    new = "".join(audit_lines_after(sandbox, n))
    assert '"root"' in new, "denial not audited: %r" % new


def test_root_on_db_denied_by_deny_rule(sandbox):
    n = audit_count(sandbox)
    r = sandbox.ssh("root@db1", "id")
    assert r.returncode == 255, r
    assert DENY_RX.search(r.stderr.decode(errors="replace")), r.stderr
    new = "".join(audit_lines_after(sandbox, n))
    assert "no-root-on-db" in new, "deny rule not named in the audit log: %r" % new


def test_unknown_target_refused(sandbox):
    r = sandbox.ssh("nosuchhost-%d" % os.getpid(), "true",
                    "-o", "ProxyCommand=%s --config-dir %s --stdio %%r@%%h:%%p"
                    % (sandbox.bzsshd, sandbox.client_dir),
                    "-o", "UserKnownHostsFile=%s" % os.path.join(sandbox.client_dir, "known_hosts"),
                    "-o", "HostKeyAlias=bzsshd", "-o", "User=%s" % sandbox.unix_user)
    assert r.returncode == 255, r


def test_missing_login_says_run_login(sandbox, tmp_client_dir, tmp_path):
    cfg = sandbox.ssh_config_for(tmp_client_dir, str(tmp_path / "ssh_config"), strict=False)
    r = sandbox.ssh("web1", "true", config=cfg)
    assert r.returncode == 255, r
    assert b"bzsshd login" in r.stderr, r.stderr


def test_wrong_totp_refused(sandbox, tmp_client_dir, tmp_path):
    r = sandbox.login(tmp_client_dir, sandbox.totp("--wrong"))
    assert r.returncode != 0, "login with a wrong TOTP code succeeded: %r" % r.stderr
    assert not os.path.exists(os.path.join(tmp_client_dir, "session")), \
        "a session file was written after a refused login"
    cfg = sandbox.ssh_config_for(tmp_client_dir, str(tmp_path / "ssh_config"), strict=False)
    r = sandbox.ssh("web1", "true", config=cfg)
    assert r.returncode == 255, r


def short_mfa(text):
    return re.sub(r"mfa_max_age: \S+", "mfa_max_age: 1s", text)


def test_mfa_reprompt_keyboard_interactive(sandbox):
    pid = int(sandbox.proxy_pid)
    with sandbox.policy_edited(short_mfa):
        time.sleep(2.5)  # reload, and let the login's MFA grow older than 1 s
        p = PtyProc(["ssh", "-F", sandbox.ssh_config, "-tt", "web1", "echo MFA-$((40+2))"])
        try:
            p.expect(rb"(?i)verification code|code:", timeout=30)
            p.write(sandbox.totp() + "\n")
            p.expect(rb"MFA-42", timeout=30)
            assert p.wait(20) == 0
        finally:
            p.close()
    assert os.path.exists("/proc/%d" % pid), "bzproxy died on SIGHUP"
    # back to 12 h: no prompt (BatchMode would fail on one)
    sandbox.ssh("web1", "true", check_rc=0)
