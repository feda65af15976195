# No orphans: every process a channel started dies with a killed bzagent.
# The commands' first processes get SIGKILL from the kernel at once
# (PR_SET_PDEATHSIG); the rest of their sessions (background jobs,
# grandchildren) are ended by the agent's watcher process, or, if that was
# killed too, by the next agent at start, which records it in its audit
# log. A process outside those sessions is spared. (Runs late: it kills
# and restarts web1's agent.)
import json
import os
import signal
import subprocess
import time

from conftest import SANDBOX, pgrep, wait_until

ALL = "^sleep 301[1-5]$"


def agent_audit_path(sandbox):
    return os.path.join(os.path.dirname(sandbox.agent_web1_config),
                        "audit.jsonl")


def events(path, event):
    with open(path) as f:
        return [o for o in map(json.loads, f) if o.get("event") == event]


def agent_pid(sandbox):
    with open(sandbox.agent_web1_pidfile) as f:
        return int(f.read())


def watcher_of(pid):
    r = subprocess.run(["pgrep", "-P", str(pid), "-x", "bzagent-watch"],
                       stdout=subprocess.PIPE, text=True)
    return [int(p) for p in r.stdout.split()]


def start_sessions(sandbox):
    """Two channels, each with processes beyond its first: pipes with
    background jobs and a grandchild; a pty shell with a job."""
    procs = [subprocess.Popen(
        ["ssh", "-F", sandbox.ssh_config, "-o", "BatchMode=yes", "web1",
         "sleep 3011 & sleep 3012 & sh -c 'sleep 3013; :'"],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE), subprocess.Popen(
        ["ssh", "-tt", "-F", sandbox.ssh_config, "-o", "BatchMode=yes",
         "web1", "sleep 3014 & sleep 3015"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE)]
    assert wait_until(lambda: len(pgrep(ALL)) == 5, 20), pgrep("^sleep 301")
    return procs


def restart_web1(sandbox):
    subprocess.run([SANDBOX, "start-agent", sandbox.dir, "web1"],
                   check=True, timeout=30)
    sandbox.reload()


def cleanup(sandbox, procs, spare):
    for p in procs:
        if p.poll() is None:
            p.kill()
            p.wait()
    spare.kill()
    spare.wait()
    for pid in pgrep(ALL):
        os.kill(pid, signal.SIGKILL)
    if sandbox.ssh("web1", "true", timeout=10).returncode != 0:
        restart_web1(sandbox)


def test_agent_killed_its_channels_die(sandbox):
    spare = subprocess.Popen(["sleep", "3019"])  # same user, no channel
    procs = []
    try:
        procs = start_sessions(sandbox)
        pid = agent_pid(sandbox)
        assert watcher_of(pid), "no watcher process"
        os.kill(pid, signal.SIGKILL)
        t0 = time.time()
        rcs = [p.wait(timeout=20) for p in procs]
        took = time.time() - t0
        # nothing left, with no agent running
        assert wait_until(lambda: not pgrep(ALL), 5), \
            "outlived the agent: %r" % pgrep("^sleep 301")
        assert spare.poll() is None, "a process of no channel was ended"
        errs = [p.stderr.read() for p in procs]
        assert rcs == [255, 255], errs
        assert took < 10, "ssh took %.1f s to notice" % took
        restart_web1(sandbox)
    finally:
        cleanup(sandbox, procs, spare)
    assert wait_until(lambda: sandbox.ssh("web1", "echo back", timeout=10)
                      .stdout.strip() == b"back", 10)


def test_agent_and_watcher_killed_restart_ends_the_rest(sandbox):
    audit = agent_audit_path(sandbox)
    before = len(events(audit, "leftovers_ended"))
    spare = subprocess.Popen(["sleep", "3019"])
    procs = []
    try:
        procs = start_sessions(sandbox)
        pid = agent_pid(sandbox)
        for w in watcher_of(pid):
            os.kill(w, signal.SIGKILL)
        os.kill(pid, signal.SIGKILL)
        for p in procs:
            p.wait(timeout=20)
        # the kernel ended each channel's first process (and the pty's
        # foreground job had its hangup); background jobs remain
        assert wait_until(lambda: not pgrep("^sleep 301[5]$"), 5)
        time.sleep(0.5)
        left = pgrep(ALL)
        assert left, "nothing left to end: the test proves nothing"
        restart_web1(sandbox)
        assert wait_until(lambda: not pgrep(ALL), 5), \
            "left running after the restart: %r" % pgrep("^sleep 301")
        assert spare.poll() is None, "a process of no channel was ended"
    finally:
        cleanup(sandbox, procs, spare)
    ended = events(audit, "leftovers_ended")[before:]
    assert sum(o["processes"] for o in ended) >= len(left), ended
    assert wait_until(lambda: sandbox.ssh("web1", "echo back", timeout=10)
                      .stdout.strip() == b"back", 10)
