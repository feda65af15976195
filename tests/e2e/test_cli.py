# What a user asks outside of ssh: `bzsshd targets` lists what the
# policies let them reach (online or when last seen, the unix users the
# rules name, labels) and nothing else; `bzsshd status` shows identity,
# groups, MFA age and expiries.
import os
import signal
import subprocess
import time

from conftest import SANDBOX, wait_until


def bzsshd(sandbox, *args):
    return subprocess.run([sandbox.bzsshd, "--config-dir", sandbox.client_dir]
                          + list(args), stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, timeout=30)


def rows(out):
    lines = out.strip().splitlines()
    assert lines[0].split()[:2] == ["TARGET", "STATUS"], out
    return {l.split()[0]: l for l in lines[1:]}


def test_targets_lists_what_the_policies_allow(sandbox):
    r = bzsshd(sandbox, "targets")
    assert r.returncode == 0, r.stderr
    t = rows(r.stdout)
    assert sorted(t) == ["db1", "web1"], r.stdout
    assert "online" in t["web1"] and "deploy" in t["web1"]
    assert "env=prod" in t["web1"] and "role=db" in t["db1"]
    # a policy that names web1 alone: db1 is not listed
    with sandbox.policy_edited(lambda p: p.replace(
            'names: ["web1", "db1"]', 'names: ["web1"]')):
        assert wait_until(lambda: sorted(rows(bzsshd(
            sandbox, "targets").stdout)) == ["web1"], 10)


def test_targets_offline_since(sandbox):
    with open(sandbox.agent_db1_pidfile) as f:
        pid = int(f.read())
    os.kill(pid, signal.SIGTERM)
    try:
        assert wait_until(lambda: "offline, seen 0h 0m ago" in rows(
            bzsshd(sandbox, "targets").stdout).get("db1", ""), 10)
    finally:
        time.sleep(0.2)
        subprocess.run([SANDBOX, "start-agent", sandbox.dir, "db1"],
                       timeout=30, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT)
        sandbox.reload()
    assert wait_until(lambda: "online" in rows(
        bzsshd(sandbox, "targets").stdout).get("db1", ""), 30)


def test_status(sandbox):
    r = bzsshd(sandbox, "status")
    assert r.returncode == 0, r.stderr
    f = dict(l.split(":", 1) for l in r.stdout.splitlines())
    assert f["user"].strip() == sandbox.test_user
    assert f["groups"].split() == ["ops"]
    assert "TOTP checked" in f["mfa"] and "ago" in f["mfa"]
    assert "expires" in f["session"] and "expires" in f["id token"]


def test_status_and_targets_not_logged_in(sandbox, tmp_client_dir):
    for cmd in ("status", "targets"):
        r = subprocess.run([sandbox.bzsshd, "--config-dir", tmp_client_dir,
                            cmd], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True, timeout=30)
        assert r.returncode == 1
        assert "not logged in: run bzsshd login" in r.stdout, r.stdout
