# A fleet on one bzproxy, short (issue 11; bench/scale.sh measures the
# long run): 1,000 agents enrolled in one `bzproxy agent add --from` run
# and connected at once by bench/bzload (real wss, TLS and the agent
# handshake), all of them held while 100 real `ssh web1 'echo ok'` run
# together: no agent refused or dropped, no session failed, and bzproxy's
# memory for them stays bounded. Behaviour only: no speed is asserted.
import json
import os
import subprocess
import sys
import time

import pytest

from conftest import SRCDIR, sanitized, wait_until

AGENTS = 1000
SESSIONS = 100
# bzproxy's RSS for AGENTS idle links and SESSIONS sessions: ~25 KiB a link
# is measured; this only catches a leak or a buffer held per link.
RSS_BOUND_KIB = 100 * 1024


def bzload(sandbox, agents_file, json_file, *extra, stdin=None):
    with open(os.path.join(sandbox.dir, "proxy", "public_key")) as f:
        key = f.read().strip()
    return subprocess.Popen(
        [os.path.join(sandbox.bin, "bench", "bzload"), "--url",
         sandbox.proxy_url, "--ca", sandbox.ca, "--proxy-key", key,
         "--agents", str(agents_file), "--proxy-pid", sandbox.proxy_pid,
         "--json", str(json_file), "--window", "1", *extra],
        stdin=stdin if stdin is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def enrol(sandbox, lines):
    return subprocess.run(
        [sandbox.bzproxy, "-c", sandbox.proxy_config, "agent", "add",
         "--from", "-"], input="".join(l + "\n" for l in lines),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        timeout=60)


@pytest.fixture(scope="module")
def fleet(sandbox, tmp_path_factory):
    names = ["fleet%d" % i for i in range(AGENTS)]
    r = enrol(sandbox, ["# the fleet", ""] +
              ["%s env=fleet n=%d" % (n, i) for i, n in enumerate(names)])
    assert r.returncode == 0, r.stderr
    d = tmp_path_factory.mktemp("fleet")
    tokens = d / "tokens"
    tokens.write_text(r.stdout)
    return names, r.stdout.splitlines(), tokens


def test_bulk_enrol_prints_a_token_per_agent_in_order(fleet):
    names, lines, _ = fleet
    assert [l.split(" ")[0] for l in lines] == names
    toks = [l.split(" ")[1] for l in lines]
    assert len(set(toks)) == AGENTS and all(len(t) >= 40 for t in toks)


def test_bulk_enrol_is_all_or_none(sandbox, tmp_path):
    # a bad line anywhere: nothing is added, the earlier lines neither
    r = enrol(sandbox, ["bulk-ok1", "bulk-ok2 env=x", "bad/name"])
    assert r.returncode == 2 and r.stdout == ""
    assert "-:3: bad line: nothing was added" in r.stderr, r.stderr
    r = enrol(sandbox, ["bulk-dup", "bulk-dup"])
    assert r.returncode == 2 and "named twice" in r.stderr, r.stderr
    # so bulk-ok1 is not enrolled: bzload's agent is refused, with why
    (tmp_path / "a").write_text("bulk-ok1 sometoken\n")
    p = bzload(sandbox, tmp_path / "a", tmp_path / "a.json")
    out = p.communicate(timeout=60)[0]
    assert p.returncode == 1, out
    rep = json.loads((tmp_path / "a.json").read_text())
    assert rep["connected"] == 0 and rep["failed"] == 1
    assert any("bulk-ok1 is not enrolled" in k
               for k in rep["failure_reasons"]), rep


def test_thousand_agents_and_hundred_concurrent_sessions(sandbox, fleet,
                                                         tmp_path):
    _, _, tokens = fleet
    rep_file = tmp_path / "load.json"
    p = bzload(sandbox, tokens, rep_file, "--hold", "--connect-timeout",
               "60", stdin=subprocess.PIPE)
    try:
        assert wait_until(lambda: rep_file.exists() or p.poll() is not None,
                          90), "bzload wrote no report in 90 s"
        assert p.poll() is None, p.communicate()[0]
        rep = json.loads(rep_file.read_text())
        assert rep["connected"] == AGENTS and rep["failed"] == 0, rep
        assert rep["dropped"] == 0, rep
        assert rep["ping_rtt_us"]["samples"] > 0, rep

        # 100 sessions at once through the chain while the fleet is held
        r = subprocess.run(
            [sys.executable, os.path.join(SRCDIR, "bench", "concurrent.py"),
             str(SESSIONS), "ok", "60", "ssh", "-F", sandbox.ssh_config,
             "-o", "BatchMode=yes", "web1", "echo ok"],
            stdout=subprocess.PIPE, text=True, timeout=120)
        sess = json.loads(r.stdout)
        assert sess["failures"] == 0, sess
    finally:
        # closing its stdin ends the hold; the report is written again
        p.stdin.close()
        try:
            p.wait(timeout=60)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
        out = p.stdout.read()
    assert p.returncode == 0, out
    rep = json.loads(rep_file.read_text())
    hold = rep["hold"]
    assert hold["dropped"] == 0 and hold["connected"] == AGENTS, rep
    grown = hold["proxy_rss_max_kib"] - rep["proxy"]["rss_base_kib"]
    assert grown < RSS_BOUND_KIB or sanitized(int(sandbox.proxy_pid)), rep
    # the fleet went away with bzload; the chain still works
    time.sleep(0.5)
    sandbox.ssh("web1", "true", check_rc=0)
