# File transfer through the whole chain with the real OpenSSH programs: scp
# in its default (SFTP protocol) and legacy (-O, "scp -t/-f" exec) modes,
# sftp batch files with resumed transfers, a 1 GiB round trip, the refusal of
# subsystems other than sftp, and the policy action each transfer is audited
# under. The agents run on this machine, so the "remote" files are local
# files owned by the sandbox's unix user.
import hashlib
import os
import shlex
import subprocess

import pytest

MODES = {"sftp": [], "legacy": ["-O"]}


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def remote_sha256(sandbox, path, timeout=60):
    r = sandbox.ssh("web1", "sha256sum -- %s" % shlex.quote(path),
                    timeout=timeout, check_rc=0)
    return r.stdout.decode().split()[0]


def local_tree(top):
    """{relative path: sha256} of the files and the set of directories."""
    files, dirs = {}, set()
    for d, subdirs, names in os.walk(top):
        rel = os.path.relpath(d, top)
        dirs.update(os.path.normpath(os.path.join(rel, s)) for s in subdirs)
        for n in names:
            files[os.path.normpath(os.path.join(rel, n))] = sha256_file(
                os.path.join(d, n))
    return files, dirs


def remote_tree(sandbox, top):
    """local_tree() of a directory on web1, computed there."""
    r = sandbox.ssh("web1", "cd %s && find . -mindepth 1 -type d -printf "
                    "'D %%P\\n' && find . -type f -exec sha256sum -- {} +"
                    % shlex.quote(top), check_rc=0)
    files, dirs = {}, set()
    for line in r.stdout.decode().splitlines():
        if line.startswith("D "):
            dirs.add(line[2:])
        else:
            digest, name = line.split("  ", 1)
            files[os.path.normpath(name)] = digest
    return files, dirs


def scp(sandbox, mode, *args, timeout=60):
    cmd = ["scp", "-F", sandbox.ssh_config, "-o", "BatchMode=yes",
           *MODES[mode], *args]
    r = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=timeout)
    assert r.returncode == 0, "%s: exit %d\nstderr: %r" % (
        " ".join(cmd), r.returncode, r.stderr[-2000:])
    return r


def sftp_batch(sandbox, batch, tmp_path, timeout=60):
    path = tmp_path / "batch"
    path.write_text(batch)
    cmd = ["sftp", "-F", sandbox.ssh_config, "-o", "BatchMode=yes",
           "-b", str(path), "web1"]
    r = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=timeout)
    assert r.returncode == 0, "sftp -b: exit %d\nbatch:\n%s\nstdout: %r\n" \
        "stderr: %r" % (r.returncode, batch, r.stdout[-2000:], r.stderr[-2000:])
    return r.stdout.decode()


def remote(mode, path):
    """An scp operand for a path on web1: legacy scp hands it to the remote
    shell, so it is quoted; SFTP mode takes it as it is."""
    return "web1:" + (shlex.quote(path) if mode == "legacy" else path)


@pytest.fixture
def remote_dir(sandbox):
    """A fresh directory on web1, owned by the agent's user; removed after."""
    d = sandbox.ssh("web1", "mktemp -d /tmp/bz-files.XXXXXX",
                    check_rc=0).stdout.decode().strip()
    assert d.startswith("/tmp/bz-files."), d
    yield d
    sandbox.ssh("web1", "rm -rf -- %s" % shlex.quote(d), timeout=120)


@pytest.fixture
def local_dir(tmp_path):
    os.chmod(tmp_path, 0o755)
    return tmp_path


@pytest.mark.parametrize("mode", MODES)
def test_scp_upload_download(sandbox, remote_dir, local_dir, mode):
    src = local_dir / "data.bin"
    src.write_bytes(os.urandom(3 * 1024 * 1024 + 17))
    small = local_dir / "small.txt"
    small.write_text("line one\nline two\n")
    scp(sandbox, mode, str(src), str(small), remote(mode, remote_dir + "/"))
    assert remote_sha256(sandbox, remote_dir + "/data.bin") == sha256_file(src)
    assert remote_sha256(sandbox, remote_dir + "/small.txt") == sha256_file(small)
    # one file to a new name, then two into a directory
    back = local_dir / "back"
    back.mkdir()
    scp(sandbox, mode, remote(mode, remote_dir + "/data.bin"),
        str(back / "renamed.bin"))
    assert sha256_file(back / "renamed.bin") == sha256_file(src)
    scp(sandbox, mode, remote(mode, remote_dir + "/data.bin"),
        remote(mode, remote_dir + "/small.txt"), str(back))
    assert sha256_file(back / "data.bin") == sha256_file(src)
    assert (back / "small.txt").read_text() == "line one\nline two\n"


@pytest.mark.parametrize("mode", MODES)
def test_scp_recursive(sandbox, remote_dir, local_dir, mode):
    tree = local_dir / "tree"
    for sub in ("a", "a/b", "a/b/c", "d", "empty/inner"):
        (tree / sub).mkdir(parents=True)
    contents = {
        "top.txt": b"top\n",
        "a/one.bin": os.urandom(100000),
        "a/b/two.bin": os.urandom(70000),
        "a/b/c/three.txt": b"three\n" * 1000,
        "a/b/c/zero": b"",
        "d/four.bin": os.urandom(1 << 20),
    }
    for rel, data in contents.items():
        (tree / rel).write_bytes(data)
    want = local_tree(tree)
    assert len(want[0]) == 6 and "empty/inner" in want[1]
    scp(sandbox, mode, "-r", str(tree), remote(mode, remote_dir + "/"))
    assert remote_tree(sandbox, remote_dir + "/tree") == want
    dest = local_dir / "dest"
    dest.mkdir()
    scp(sandbox, mode, "-r", remote(mode, remote_dir + "/tree"), str(dest))
    assert local_tree(dest / "tree") == want


@pytest.mark.parametrize("mode", MODES)
def test_scp_preserve_times_and_mode(sandbox, remote_dir, local_dir, mode):
    src = local_dir / "kept.txt"
    src.write_bytes(b"preserve me\n")
    os.chmod(src, 0o640)
    os.utime(src, (1400000000, 1500000000))
    scp(sandbox, mode, "-p", str(src), remote(mode, remote_dir + "/"))
    st = os.stat(remote_dir + "/kept.txt")
    assert (st.st_mode & 0o7777, int(st.st_mtime)) == (0o640, 1500000000)
    assert remote_sha256(sandbox, remote_dir + "/kept.txt") == sha256_file(src)

    # the other way: a remote file with its own mode and times
    r = remote_dir + "/theirs.txt"
    sandbox.ssh("web1", "printf 'theirs\\n' >%s && chmod 604 %s && "
                "touch -m -d @1300000000 %s" % ((shlex.quote(r),) * 3),
                check_rc=0)
    scp(sandbox, mode, "-p", remote(mode, r), str(local_dir))
    st = os.stat(local_dir / "theirs.txt")
    assert (st.st_mode & 0o7777, int(st.st_mtime)) == (0o604, 1300000000)
    assert (local_dir / "theirs.txt").read_bytes() == b"theirs\n"


@pytest.mark.parametrize("mode", MODES)
def test_scp_odd_names_and_empty_file(sandbox, remote_dir, local_dir, mode):
    files = {
        "a b é.txt": b"spaces and an accent\n",
        "日本.bin": os.urandom(4099),
        "empty": b"",
    }
    up = local_dir / "up"
    up.mkdir()
    for name, data in files.items():
        (up / name).write_bytes(data)
    scp(sandbox, mode, *[str(up / n) for n in files],
        remote(mode, remote_dir + "/"))
    for name, data in files.items():
        assert remote_sha256(sandbox, remote_dir + "/" + name) == \
            hashlib.sha256(data).hexdigest(), name
    down = local_dir / "down"
    down.mkdir()
    # legacy scp checks that the names the server sends match the pattern
    # it asked for; a shell-quoted pattern never does, hence -T there
    extra = ["-T"] if mode == "legacy" else []
    for name, data in files.items():
        scp(sandbox, mode, *extra, remote(mode, remote_dir + "/" + name),
            str(down))
        assert (down / name).read_bytes() == data, name
    assert sorted(os.listdir(down)) == sorted(files)


def test_one_gib_round_trip(sandbox, remote_dir, local_dir):
    n = 1 << 30
    src = local_dir / "big.bin"
    h = hashlib.sha256()
    with open(src, "wb") as f:
        for _ in range(n // (64 << 20)):
            chunk = os.urandom(64 << 20)
            h.update(chunk)
            f.write(chunk)
    want = h.hexdigest()
    try:
        scp(sandbox, "sftp", str(src), remote("sftp", remote_dir + "/big.bin"),
            timeout=300)
        os.unlink(src)  # keep at most two copies on the disk
        assert os.path.getsize(remote_dir + "/big.bin") == n
        assert remote_sha256(sandbox, remote_dir + "/big.bin",
                             timeout=120) == want
        back = local_dir / "back.bin"
        scp(sandbox, "sftp", remote("sftp", remote_dir + "/big.bin"),
            str(back), timeout=300)
        assert os.path.getsize(back) == n
        assert sha256_file(back) == want
    finally:
        for p in (src, local_dir / "back.bin"):
            if os.path.exists(p):
                os.unlink(p)
        sandbox.ssh("web1", "rm -f %s" % shlex.quote(remote_dir + "/big.bin"))


def test_sftp_batch(sandbox, remote_dir, local_dir):
    src = local_dir / "file.bin"
    src.write_bytes(os.urandom(123457))
    batch = "\n".join([
        'cd "%s"' % remote_dir,
        'lcd "%s"' % local_dir,
        "mkdir sub",
        "cd sub",
        "put file.bin",
        "get file.bin got.bin",
        "ls -l",
        "rename file.bin renamed.bin",
        "ls -l",
        "rm renamed.bin",
        "cd ..",
        "rmdir sub",
        "ls -l",
    ]) + "\n"
    out = sftp_batch(sandbox, batch, local_dir)
    assert sha256_file(local_dir / "got.bin") == sha256_file(src)
    # three listings, each after its echoed command
    parts = out.split("sftp> ls -l\n")
    assert len(parts) == 4, out
    first, second, last = parts[1:]
    row = [l.split() for l in first.splitlines() if l.endswith(" file.bin")]
    assert row, out
    assert row[0][0].startswith("-rw") and row[0][4] == "123457", row
    assert row[0][2] == sandbox.unix_user, row
    assert "renamed.bin" in second and "file.bin" not in \
        second.replace("renamed.bin", ""), out
    assert "sub" not in last.split(), out
    assert sandbox.ssh("web1", "ls -A %s" % shlex.quote(remote_dir),
                       check_rc=0).stdout == b""


def test_sftp_reget_and_reput(sandbox, remote_dir, local_dir):
    data = os.urandom(5 * 1024 * 1024 + 321)
    want = hashlib.sha256(data).hexdigest()
    # reget: the whole file there, its first bytes here
    full_remote = remote_dir + "/full.bin"
    sandbox.ssh("web1", "cat >%s" % shlex.quote(full_remote), input=data,
                check_rc=0)
    (local_dir / "partial.bin").write_bytes(data[:1234567])
    # reput: the whole file here, its first bytes there
    (local_dir / "full.bin").write_bytes(data)
    part_remote = remote_dir + "/partial.bin"
    sandbox.ssh("web1", "cat >%s" % shlex.quote(part_remote),
                input=data[:2345679], check_rc=0)
    sftp_batch(sandbox, 'reget "%s" "%s"\nreput "%s" "%s"\n' % (
        full_remote, local_dir / "partial.bin",
        local_dir / "full.bin", part_remote), local_dir)
    assert sha256_file(local_dir / "partial.bin") == want
    assert remote_sha256(sandbox, part_remote) == want


def test_other_subsystem_refused_and_audited(sandbox):
    offset = sandbox.audit_mark()
    r = sandbox.ssh("-s", "web1", "netconf", check_rc=255)
    err = r.stderr.decode(errors="replace")
    assert "netconf" in err and "only sftp" in err, err
    ev = [o for o in sandbox.audit_events(offset, "channel")
          if o.get("subsystem") == "netconf"]
    assert len(ev) == 1, ev
    assert ev[0]["decision"] == "deny" and ev[0]["target"] == "web1", ev
    assert "only sftp" in ev[0].get("reason", ""), ev


@pytest.mark.parametrize("how,action", [
    ("scp-legacy", "scp"), ("scp", "sftp"), ("sftp", "sftp")])
def test_transfer_audited_action(sandbox, remote_dir, local_dir, how, action):
    src = local_dir / "audited.txt"
    src.write_bytes(b"audited\n")
    offset = sandbox.audit_mark()
    if how == "sftp":
        sftp_batch(sandbox, 'put "%s" "%s/"\n' % (src, remote_dir), local_dir)
    else:
        mode = "legacy" if how == "scp-legacy" else "sftp"
        scp(sandbox, mode, str(src), remote(mode, remote_dir + "/"))
    ev = sandbox.audit_events(offset, "channel")
    assert len(ev) == 1, ev
    assert ev[0]["action"] == action and ev[0]["decision"] == "allow", ev[0]
    assert ev[0]["target"] == "web1" and \
        ev[0]["unix_user"] == sandbox.unix_user, ev[0]
    if action == "scp":
        assert ev[0]["command"] == "scp -t %s/" % remote_dir, ev[0]
    else:
        assert ev[0]["subsystem"] == "sftp", ev[0]
    assert remote_sha256(sandbox, remote_dir + "/audited.txt") == \
        sha256_file(src)
