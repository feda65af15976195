# Rolling bzagent out with Ansible (examples/ansible/rollout.yml), tested
# as far as one machine allows: "hosts" reached the old way (3 in CI,
# BZ_ROLLOUT_HOSTS=10 for a fleet's worth, ~5 minutes), through a
# real OpenSSH sshd on 127.0.0.1 (root, key auth), each with a folder of
# its own for its agent. The playbook installs the bzagent package (the
# .deb tests/deb-test.sh built: BZ_DEBS_DIR), enrols each host with the
# sandbox's bzproxy (a token per host), writes its config and starts it
# (start-stop-daemon: no systemd here); then the same inventory with
# bz_via=chain pings every host through the bastion, and a second run
# changes nothing and enrols nobody again. Runs in tests/deb-test.sh.
import glob
import os
import shutil
import signal
import subprocess
import tempfile

import pytest

from conftest import wait_until

N = int(os.environ.get("BZ_ROLLOUT_HOSTS", "3"))
SRCDIR = os.environ.get("BZ_SRCDIR", os.path.join(
    os.path.dirname(__file__), "..", ".."))
EXAMPLE = os.path.join(SRCDIR, "examples", "ansible")
NAMES = ["roll%02d" % i for i in range(1, N + 1)]

POLICY = """\
version: 1
policies:
  - name: rollout-ops
    subjects: {groups: [ops]}
    targets: {labels: {rollout: "yes"}}
    unix_users: [%s]
    allow: [exec, shell, sftp, scp]
"""


def debs_dir():
    d = os.environ.get("BZ_DEBS_DIR")
    if not d or not glob.glob(os.path.join(d, "bzagent_*.deb")):
        pytest.skip("needs BZ_DEBS_DIR with bzagent_*.deb (tests/deb-test.sh)")
    if os.geteuid() != 0 or shutil.which("ansible-playbook") is None:
        pytest.fail("needs root and ansible-core", pytrace=False)
    return d


def web1_config(sandbox, key):
    with open(sandbox.agent_web1_config) as f:
        for line in f:
            if line.startswith(key + ":"):
                return line.split(":", 1)[1].strip().strip("'\"")
    raise KeyError(key)


def inventory(sandbox, work, deb, sshd):
    lines = ["[rollout]"] + NAMES + ["", "[rollout:vars]", "bz_via = old"]
    v = {
        "ansible_host": "\"{{ inventory_hostname ~ '.bz' if bz_via == "
                        "'chain' else '127.0.0.1' }}\"",
        "ansible_port": "\"{{ 22 if bz_via == 'chain' else %d }}\""
                        % sshd["port"],
        "ansible_user": "\"{{ '%s' if bz_via == 'chain' else 'root' }}\""
                        % sandbox.unix_user,
        "ansible_ssh_private_key_file": sshd["key"],
        "bz_agent_name": "\"{{ inventory_hostname }}\"",
        "bz_agent_dir": os.path.join(work, "agents") +
                        "/{{ inventory_hostname }}",
        "bz_agent_labels": '["rollout=yes"]',
        "bz_agent_deb": deb,
        "bz_install_throttle": "1",
        "bz_unix_users": sandbox.unix_user,
        "bz_service_manager": "none",
        "bz_proxy_admin_host": "localhost",
        "bz_proxy_cli": sandbox.bzproxy,
        "bz_proxy_config": sandbox.proxy_config,
        "bz_proxy_url": web1_config(sandbox, "proxy_url"),
        "bz_proxy_public_key": web1_config(sandbox, "proxy_public_key"),
        "bz_ca_file": sandbox.ca,
        "bz_oidc_issuer": sandbox.issuer,
        "bz_oidc_audience": sandbox.client_id,
        "bz_oidc_ca_file": sandbox.ca,
    }
    lines += ["%s = %s" % kv for kv in v.items()]
    path = os.path.join(work, "rollout.ini")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return path


def test_rollout_then_through_the_chain(sandbox, plain_sshd):
    d = debs_dir()
    assert plain_sshd["user"] == "root"  # the old way is root's
    deb = sorted(glob.glob(os.path.join(d, "bzagent_*.deb")))[-1]
    work = tempfile.mkdtemp(prefix="bz-rollout.")
    play = os.path.join(work, "play")
    shutil.copytree(EXAMPLE, play, copy_function=shutil.copyfile,
                    ignore=shutil.ignore_patterns("blob.bin", "fetched"))
    inv = inventory(sandbox, work, deb, plain_sshd)
    ssh_config = os.path.join(work, "ssh_config")
    r = subprocess.run([sandbox.bzsshd, "--config-dir", sandbox.client_dir,
                        "ssh-config", "--install", "--file", ssh_config],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       text=True, timeout=30)
    assert r.returncode == 0, r.stdout
    env = dict(os.environ, HOME=work, ANSIBLE_NOCOLOR="1",
               ANSIBLE_CONFIG=os.path.join(play, "ansible.cfg"),
               ANSIBLE_HOST_KEY_CHECKING="False",
               ANSIBLE_SSH_COMMON_ARGS="-F " + ssh_config)
    pol = os.path.join(sandbox.policy_dir, "rollout.yaml")
    mark = sandbox.audit_mark()

    def playbook(*args):
        return subprocess.run(["ansible-playbook", "-i", inv, "rollout.yml"]
                              + list(args), cwd=play, env=env,
                              stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True,
                              timeout=600)
    try:
        with open(pol, "w") as f:
            f.write(POLICY % sandbox.unix_user)
        os.kill(int(sandbox.proxy_pid), signal.SIGHUP)
        first = playbook()
        assert first.returncode == 0, first.stdout[-4000:]
        # the same inventory, now through the bastion
        def pings():
            return subprocess.run(
                ["ansible", "-i", inv, "rollout", "-m", "ping", "-e",
                 "bz_via=chain"], cwd=play, env=env,
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                timeout=300)
        assert wait_until(lambda: pings().stdout.count("SUCCESS") == N, 60,
                          interval=2), pings().stdout[-3000:]
        second = playbook()
        assert second.returncode == 0, second.stdout[-4000:]
        assert "changed=0" in second.stdout and \
            second.stdout.count("changed=0") == N, second.stdout[-3000:]
        enrolled = [e for e in sandbox.audit_events(since=mark,
                                                    event="agent_enrol")
                    if e.get("target", "").startswith("roll")]
        assert sorted(e["target"] for e in enrolled) == NAMES, enrolled
    finally:
        for n in NAMES:
            pidfile = os.path.join(work, "agents", n, "bzagent.pid")
            if os.path.exists(pidfile):
                subprocess.run(["start-stop-daemon", "--stop", "--oknodo",
                                "--retry", "5", "--pidfile", pidfile])
        if os.path.exists(pol):
            os.unlink(pol)
            os.kill(int(sandbox.proxy_pid), signal.SIGHUP)
        shutil.rmtree(work, ignore_errors=True)
