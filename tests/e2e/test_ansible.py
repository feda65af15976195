# Stock Ansible (Debian's ansible-core) over the bastion, against a fleet
# of 10 agents on this machine, each serving its own unix user (fleet01 ..
# fleet10): ad-hoc ping with Ansible's defaults (shared connections,
# smart transfer) and with pipelining, each transfer method and without
# ControlMaster, never a warning; examples/ansible/site.yml twice (the
# second run changes nothing), with become through sudo; a host the policy
# denies is UNREACHABLE with the denial's reason; the audit log has every
# task's command. Needs root (users, sudoers) and ansible-playbook.
import os
import pathlib
import re
import shutil
import signal
import subprocess
import tempfile
import time

import pytest

from conftest import free_port, is_listening, wait_until

N = 10
SRCDIR = os.environ.get("BZ_SRCDIR", os.path.join(
    os.path.dirname(__file__), "..", ".."))
EXAMPLE = os.path.join(SRCDIR, "examples", "ansible")
SUDOERS = "/etc/sudoers.d/bz-fleet-test"
NAMES = ["fleet%02d" % i for i in range(1, N + 1)]


def need(cond, why):
    if cond:
        return
    if os.environ.get("BZ_REQUIRE_ANSIBLE") == "1":
        pytest.fail(why, pytrace=False)
    pytest.skip(why)


def run(argv, **kw):
    return subprocess.run(argv, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, **kw)


def add_users():
    if run(["getent", "group", "bzfleet"]).returncode != 0:
        run(["groupadd", "bzfleet"], check=True)
    for u in NAMES:
        if run(["getent", "passwd", u]).returncode != 0:
            run(["useradd", "-m", "-s", "/bin/bash", "-G", "bzfleet", u],
                check=True)
    with open(SUDOERS + ".tmp", "w") as f:
        f.write("# bastion e2e test: the fleet's users may become root\n"
                "%bzfleet ALL=(ALL:ALL) NOPASSWD: ALL\n")
    os.chmod(SUDOERS + ".tmp", 0o440)
    run(["visudo", "-cf", SUDOERS + ".tmp"], check=True)
    os.rename(SUDOERS + ".tmp", SUDOERS)


def enrol(sandbox, name, workdir):
    """Enrol agent name in bzproxy (labels fleet=yes and host=NAME) and
    write its config: as the sandbox's web1, but serving only its own unix
    user."""
    r = run([sandbox.bzproxy, "-c", sandbox.proxy_config, "agent", "add",
             name, "--label", "fleet=yes", "--label", "host=" + name],
            timeout=30)
    assert r.returncode == 0, r.stdout
    token = [l for l in r.stdout.splitlines() if l.strip()][-1].strip()
    d = os.path.join(workdir, "agents", name)
    os.makedirs(d, mode=0o700)
    with open(sandbox.agent_web1_config) as f:
        base = f.read()
    cfg = []
    for line in base.splitlines():
        key = line.split(":", 1)[0]
        if key in ("name", "identity_key", "enrol_token", "unix_users",
                   "audit_log", "children_file"):
            continue
        cfg.append(line)
    cfg += ["name: " + name, "identity_key: agent_ed25519.key",
            "enrol_token: " + token, "unix_users: " + name]
    path = os.path.join(d, "bzagent.yaml")
    with open(path, "w") as f:
        f.write("\n".join(cfg) + "\n")
    os.chmod(path, 0o600)
    return path


FLEET_POLICY = """\
# The Ansible test's fleet: each agent's own user, commands, shells and
# file transfers; root is for no one (become goes through sudo).
version: 1
policies:
  - name: fleet-ops
    subjects: {groups: [ops]}
    targets: {labels: {fleet: "yes"}}
    unix_users: ["fleet*"]
    allow: [shell, exec, sftp, scp]
"""


class Fleet:
    def __init__(self, sandbox, workdir):
        self.sandbox = sandbox
        self.dir = workdir
        self.procs = []
        self.play = os.path.join(workdir, "play")
        # (copyfile: a read-only source tree must not make the copy so)
        shutil.copytree(EXAMPLE, self.play, ignore=shutil.ignore_patterns(
            "blob.bin", "fetched"), copy_function=shutil.copyfile)
        # as a user sets up: `bzsshd ssh-config --install`, into a config
        # that has a Host * of its own; twice changes nothing more
        self.ssh_config = os.path.join(workdir, "ssh_config")
        with open(self.ssh_config, "w") as f:
            f.write("Host *\n    ServerAliveInterval 30\n")
        texts = []
        for _ in range(2):
            r = run([sandbox.bzsshd, "--config-dir", sandbox.client_dir,
                     "ssh-config", "--domain", "bz", "--install", "--file",
                     self.ssh_config], timeout=30)
            assert r.returncode == 0, r.stdout
            with open(self.ssh_config) as f:
                texts.append(f.read())
        assert texts[0] == texts[1]
        assert texts[0].startswith("# >>> bzsshd ssh-config --domain bz")
        assert texts[0].count("\nHost *.bz\n") == 1
        assert texts[0].endswith("Host *\n    ServerAliveInterval 30\n")
        with open(os.path.join(self.play, "ansible.cfg")) as f:
            cfg = f.read()
        assert "-F ~/.ssh/config" in cfg
        with open(os.path.join(self.play, "ansible.cfg"), "w") as f:
            f.write(cfg.replace("-F ~/.ssh/config", "-F " + self.ssh_config))
        with open(os.path.join(self.play, "inventory.ini"), "w") as f:
            f.write("[fleet]\n")
            for n in NAMES:
                f.write("%s.bz ansible_user=%s\n" % (n, n))
            f.write("\n[fleet:vars]\nbz_example_dir_name = bz-example\n"
                    "\n# root on a role=db target: denied by the policy\n"
                    "[denied]\ndb1.bz ansible_user=root\n")
        self.home = os.path.join(workdir, "home")
        os.makedirs(self.home)

    def env(self, **extra):
        e = dict(os.environ, HOME=self.home,
                 ANSIBLE_CONFIG=os.path.join(self.play, "ansible.cfg"),
                 ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0")
        e.update(extra)
        return e

    def ansible(self, *args, timeout=300, **extra):
        return subprocess.run(["ansible"] + list(args), cwd=self.play,
                              env=self.env(**extra), stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True,
                              timeout=timeout)

    def playbook(self, *args, timeout=600, **extra):
        return subprocess.run(["ansible-playbook"] + list(args), cwd=self.play,
                              env=self.env(**extra), stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True,
                              timeout=timeout)

    def stop(self):
        # shared connections first: their ssh masters hold links
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


@pytest.fixture(scope="module")
def fleet(sandbox):
    need(os.geteuid() == 0, "needs root: adds unix users and a sudoers rule")
    need(shutil.which("ansible-playbook") is not None and
         shutil.which("sudo") is not None,
         "needs ansible-core and sudo (apt-get install ansible-core sudo)")
    add_users()
    workdir = tempfile.mkdtemp(prefix="bz-ansible.")
    fl = Fleet(sandbox, workdir)
    pol = os.path.join(sandbox.policy_dir, "fleet.yaml")
    try:
        with open(pol, "w") as f:
            f.write(FLEET_POLICY)
        os.kill(int(sandbox.proxy_pid), signal.SIGHUP)
        for n in NAMES:
            cfg = enrol(sandbox, n, workdir)
            log = open(os.path.join(workdir, n + ".log"), "w")
            fl.procs.append(subprocess.Popen([sandbox.bzagent, "-c", cfg],
                                             stdout=log, stderr=log))
        for n in NAMES:
            assert wait_until(lambda: sandbox.ssh(
                "-l", n, n + ".bz", "true", config=fl.ssh_config,
                timeout=20).returncode == 0, 30), \
                "agent %s does not serve" % n
        yield fl
    finally:
        fl.stop()
        if os.path.exists(pol):
            os.unlink(pol)
            os.kill(int(sandbox.proxy_pid), signal.SIGHUP)
        if os.path.exists(SUDOERS):
            os.unlink(SUDOERS)
        shutil.rmtree(workdir, ignore_errors=True)


def recap(out):
    """PLAY RECAP counters per host: {host: {ok: n, changed: n, ...}}."""
    res = {}
    for m in re.finditer(r"^(\S+)\s+:\s+((?:\w+=\d+\s*)+)$", out, re.M):
        res[m.group(1)] = {k: int(v) for k, v in
                           re.findall(r"(\w+)=(\d+)", m.group(2))}
    return res


MODES = {
    # Ansible's own defaults: ControlMaster=auto, no pipelining, smart
    # transfer (sftp, then scp)
    "defaults": {"ANSIBLE_PIPELINING": "False"},
    "pipelining": {"ANSIBLE_PIPELINING": "True"},
    "sftp": {"ANSIBLE_PIPELINING": "False",
             "ANSIBLE_SSH_TRANSFER_METHOD": "sftp"},
    "scp": {"ANSIBLE_PIPELINING": "False",
            "ANSIBLE_SSH_TRANSFER_METHOD": "scp"},
    "piped": {"ANSIBLE_PIPELINING": "False",
              "ANSIBLE_SSH_TRANSFER_METHOD": "piped"},
    "no-controlmaster": {"ANSIBLE_PIPELINING": "False",
                         "ANSIBLE_SSH_ARGS": "-C -o ControlMaster=no"},
}


@pytest.mark.parametrize("mode", list(MODES))
def test_ping_every_mode(fleet, mode):
    r = fleet.ansible("fleet", "-m", "ping", **MODES[mode])
    assert r.returncode == 0, r.stdout[-3000:]
    assert r.stdout.count("SUCCESS") == N, r.stdout[-3000:]
    assert "WARNING" not in r.stdout, r.stdout[-3000:]
    assert "UNREACHABLE" not in r.stdout


def test_playbook_twice_second_changes_nothing(fleet):
    sandbox = fleet.sandbox
    mark = sandbox.audit_mark()
    first = fleet.playbook("site.yml", "-e", "bz_become=true")
    assert first.returncode == 0, first.stdout[-4000:]
    assert "WARNING" not in first.stdout, first.stdout[-4000:]
    rc1 = recap(first.stdout)
    assert sorted(h for h in rc1 if h != "localhost") == \
        sorted(n + ".bz" for n in NAMES), first.stdout[-2000:]
    for h, c in rc1.items():
        assert c["failed"] == 0 and c["unreachable"] == 0, (h, c)
    # the files arrived under each user's own home, whole
    for n in NAMES:
        p = os.path.expanduser("~%s/bz-example/blob.bin" % n)
        assert os.path.getsize(p) == 10 * 1024 * 1024
        assert os.stat(p).st_uid == int(run(["id", "-u", n]).stdout)
        assert os.path.exists(os.path.join(fleet.play, "fetched",
                                           n + ".bz.motd"))
    second = fleet.playbook("site.yml", "-e", "bz_become=true")
    assert second.returncode == 0, second.stdout[-4000:]
    for h, c in recap(second.stdout).items():
        assert c["changed"] == 0 and c["failed"] == 0, (h, c)
    # every task's command is in the audit log, sudo's among them
    chans = [e for e in sandbox.audit_events(since=mark, event="channel")
             if e.get("target", "").startswith("fleet")]
    for n in NAMES:
        mine = [e for e in chans if e.get("target") == n]
        assert len(mine) >= 2 * 8, (n, len(mine))
        assert any("sudo" in e.get("command", "") for e in mine), n


def test_denied_host_is_unreachable_with_reason(fleet):
    r = fleet.ansible("denied", "-m", "ping")
    assert r.returncode != 0
    assert "UNREACHABLE" in r.stdout, r.stdout[-2000:]
    assert "no-root-on-db" in r.stdout, r.stdout[-2000:]


@pytest.mark.skipif(os.environ.get("BZ_ANSIBLE_STRESS") != "1",
                    reason="long: BZ_ANSIBLE_STRESS=1 (make fault-test)")
def test_stress(fleet):
    t0 = time.time()
    for i in range(20):
        r = fleet.ansible("fleet", "-m", "ping", "-f", "10")
        assert r.returncode == 0 and r.stdout.count("SUCCESS") == N, \
            (i, r.stdout[-3000:])
    blob = os.path.join(fleet.dir, "stress.bin")
    with open(blob, "wb") as f:
        f.write(os.urandom(10 * 1024 * 1024))
    for i in range(5):
        r = fleet.ansible("fleet", "-m", "copy", "-f", "10", "-a",
                          "src=%s dest=~/stress-%d.bin" % (blob, i))
        assert r.returncode == 0 and "UNREACHABLE" not in r.stdout and \
            "FAILED" not in r.stdout, (i, r.stdout[-3000:])
    print("stress: 20 pings + 5 copies of 10 MiB over %d hosts in %.1f s"
          % (N, time.time() - t0))


def jump_sshd(d):
    """An OpenSSH sshd on 127.0.0.1 that is both the jump host (root) and
    every target (the fleet's users), key auth: the bastion the chain
    replaces, with Ansible reaching fleetNN through `ssh -W`. sshd reads
    a user's keys as that user: d must be open to them."""
    for k in ("host_key", "user_key"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f",
                        str(d / k)], check=True)
    shutil.copy(d / "user_key.pub", d / "authorized_keys")
    os.chmod(d / "authorized_keys", 0o644)
    os.makedirs("/run/sshd", exist_ok=True)
    # without PAM, sshd refuses a locked account ('!' from useradd): no
    # password ('*') is what key-only users have
    for n in NAMES:
        run(["usermod", "-p", "*", n], check=True)
    port = free_port()
    (d / "sshd_config").write_text("\n".join([
        "ListenAddress 127.0.0.1", "Port %d" % port,
        "HostKey %s" % (d / "host_key"), "PidFile %s" % (d / "sshd.pid"),
        "AuthorizedKeysFile %s" % (d / "authorized_keys"), "UsePAM no",
        "StrictModes no", "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "PermitRootLogin prohibit-password",
        "AllowUsers root " + " ".join(NAMES), "PrintMotd no",
        "UseDNS no"]) + "\n")
    p = subprocess.Popen(["/usr/sbin/sshd", "-D", "-e", "-f",
                          str(d / "sshd_config")], stdin=subprocess.DEVNULL,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    assert wait_until(lambda: is_listening(port), 10)
    return p, port, str(d / "user_key")


@pytest.mark.skipif(os.environ.get("BZ_ANSIBLE_BENCH") != "1",
                    reason="a benchmark: bench/ansible.sh")
def test_bench_vs_proxyjump(fleet, tmp_path):
    """`ansible fleet -m ping` and site.yml over the 10 hosts, through the
    chain and through a jump sshd (ProxyJump's `ssh -W`), A B A B in one
    run; wall times, medians and ratios to stdout and BZ_BENCH_REPORT."""
    rounds = int(os.environ.get("BZ_BENCH_ROUNDS", "3"))
    jd = tempfile.mkdtemp(prefix="bz-jump.")  # not under pytest's 0700 tmp
    os.chmod(jd, 0o755)
    p, port, key = jump_sshd(pathlib.Path(jd))
    try:
        ssh = "ssh -F /dev/null -i %s -o StrictHostKeyChecking=no " \
              "-o UserKnownHostsFile=/dev/null" % key
        inv = tmp_path / "jump.ini"
        inv.write_text("[fleet]\n" + "".join(
            "%s.jump ansible_host=127.0.0.1 ansible_port=%d "
            "ansible_user=%s\n" % (n, port, n) for n in NAMES) +
            "\n[fleet:vars]\nbz_example_dir_name = bz-example-jump\n"
            "ansible_ssh_common_args = '-F /dev/null -i %s -o "
            "StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o "
            "ProxyCommand=\"%s -W %%h:%%p -p %d root@127.0.0.1\"'\n"
            % (key, ssh, port))
        ways = {
            "chain": {},
            "jump": {"ANSIBLE_INVENTORY": str(inv)},
        }
        jobs = {
            "ping": lambda env: fleet.ansible("fleet", "-m", "ping",
                                              "-i", env.get(
                                                  "ANSIBLE_INVENTORY",
                                                  "inventory.ini"), **env),
            "playbook": lambda env: fleet.playbook(
                "site.yml", "-e", "bz_become=true", "-i", env.get(
                    "ANSIBLE_INVENTORY", "inventory.ini"), **env),
        }
        times = {(j, w): [] for j in jobs for w in ways}
        for w, env in ways.items():  # warm: the first run copies files
            r = jobs["playbook"](env)
            assert r.returncode == 0, (w, r.stdout[:3000])
        for _ in range(rounds):
            for j, run_job in jobs.items():
                for w, env in ways.items():
                    t0 = time.time()
                    r = run_job(env)
                    times[(j, w)].append(time.time() - t0)
                    assert r.returncode == 0, (j, w, r.stdout[:3000])
        lines = ["ansible over %d hosts, %d rounds A B A B (seconds, median)"
                 % (N, rounds)]
        for j in jobs:
            c = sorted(times[(j, "chain")])[rounds // 2]
            jm = sorted(times[(j, "jump")])[rounds // 2]
            lines.append("%-9s chain %6.2f  jump sshd %6.2f  chain/jump %.2f"
                         % (j, c, jm, c / jm))
        print("\n" + "\n".join(lines))
        if os.environ.get("BZ_BENCH_REPORT"):
            with open(os.environ["BZ_BENCH_REPORT"], "a") as f:
                f.write("\n".join(lines) + "\n")
    finally:
        p.terminate()
        p.wait()
        shutil.rmtree(jd, ignore_errors=True)
