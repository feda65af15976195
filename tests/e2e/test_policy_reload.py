# Policies as code: a policy change plus SIGHUP takes effect for the next ssh
# without restarting bzproxy, and a broken file leaves access exactly as it
# was (the whole new set is rejected, the reason is logged).
import os
import signal
import time

import pytest

from conftest import wait_until

DENY_EXEC = """\
version: 1
policies:
  - name: reload-test-deny
    subjects: {users: ["*"]}
    targets: {names: [web1]}
    unix_users: [%s]
    deny: [exec]
"""

BROKEN = """\
version: 1
policies:
  - name: reload-test-broken
    subjects: {users: [alice@example.com]
"""


def ssh_ok(sandbox):
    return sandbox.ssh("web1", "true", timeout=30).returncode == 0


def reload_proxy(sandbox):
    os.kill(int(sandbox.proxy_pid), signal.SIGHUP)


@pytest.fixture
def extra_policies(sandbox):
    made = []

    def write(name, text):
        p = os.path.join(sandbox.policy_dir, name)
        with open(p, "w") as f:
            f.write(text)
        made.append(p)
        return p

    yield write
    for p in made:
        try:
            os.unlink(p)
        except FileNotFoundError:
            pass
    reload_proxy(sandbox)
    assert wait_until(lambda: ssh_ok(sandbox), 10), \
        "access did not come back after removing the test policies"


def test_sighup_applies_change_and_broken_set_keeps_old(sandbox, extra_policies):
    assert ssh_ok(sandbox)
    pid_before = int(sandbox.proxy_pid)

    deny = extra_policies("zz-reload-deny.yaml", DENY_EXEC % sandbox.unix_user)
    reload_proxy(sandbox)
    assert wait_until(lambda: not ssh_ok(sandbox), 5), \
        "the new deny rule did not take effect after SIGHUP"
    r = sandbox.ssh("web1", "true", timeout=30)
    assert r.returncode == 255
    assert b"reload-test-deny" in r.stderr or b"denied" in r.stderr.lower(), r.stderr

    # A broken file and the removal of the deny rule in one change: the
    # set is rejected whole, so the deny rule must still be in force.
    extra_policies("zz-reload-broken.yaml", BROKEN)
    os.unlink(deny)
    reload_proxy(sandbox)
    assert wait_until(
        lambda: "zz-reload-broken.yaml" in sandbox.log_tail("bzproxy", 200), 5), \
        "bzproxy did not log why the new policy set was rejected"
    time.sleep(0.5)
    r = sandbox.ssh("web1", "true", timeout=30)
    assert r.returncode == 255, "a broken policy set changed access: %r" % r
    assert sandbox.ssh("db1", "true", timeout=30).returncode == 0, \
        "a broken policy set changed access to db1"

    # bzproxy was never restarted
    os.kill(pid_before, 0)
