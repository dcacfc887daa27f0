"""What must hold for rootless berth, checked as a real unprivileged user.

Container root is the user: what it writes on a bind mount is the user's, what host root
keeps private stays private, the store is the user's alone, and berth brings no setuid
helper (only the distribution's newuidmap/newgidmap do privileged work).
"""

from __future__ import annotations

import os
import stat
import subprocess

import berth


def test_file_written_by_container_root_is_owned_by_the_user(rootless_busybox):
    u = rootless_busybox
    shared = os.path.join(u.home, "shared")
    assert u.sh(f"mkdir {shared}").returncode == 0
    p = u.berth("run", "--rm", "--network", "none", "-v", f"{shared}:/data", "busybox",
                "sh", "-c", "id -u && echo x > /data/byroot && mkdir /data/d")
    assert p.returncode == 0, p.stderr
    assert p.stdout == "0\n"
    for name in ("byroot", "d"):
        st = os.stat(os.path.join(shared, name))
        assert (st.st_uid, st.st_gid) == (u.uid, u.gid), name


def test_root_only_host_file_stays_unreadable(rootless_busybox, tmp_path):
    u = rootless_busybox
    secret_dir = f"/tmp/brl-secret-{u.uid}"
    os.makedirs(secret_dir, exist_ok=True)
    os.chmod(secret_dir, 0o755)
    secret = os.path.join(secret_dir, "secret")
    try:
        with open(secret, "w", encoding="utf-8") as f:
            f.write("top secret\n")
        os.chmod(secret, 0o600)
        p = u.berth("run", "--rm", "--network", "none", "-v", f"{secret}:/s", "busybox",
                    "sh", "-c", "cat /s; ls -ln /s; echo root-attempt > /s")
        assert "top secret" not in p.stdout
        assert "Permission denied" in p.stderr
        assert " 65534 " in p.stdout   # host root is unmapped: shown as nobody
        with open(secret, encoding="utf-8") as f:
            assert f.read() == "top secret\n"
        assert os.stat(secret).st_uid == 0
    finally:
        os.unlink(secret)
        os.rmdir(secret_dir)


def test_store_is_private_to_its_user(rootless_busybox):
    u = rootless_busybox
    for d in (u.store, u.runroot):
        assert stat.S_IMODE(os.stat(d).st_mode) == 0o700, d
        assert os.stat(d).st_uid == u.uid
    other = subprocess.run(["runuser", "-u", "nobody", "--", "ls", u.store],
                           capture_output=True, text=True)
    assert other.returncode != 0 and "Permission denied" in other.stderr
    other = subprocess.run(["runuser", "-u", "nobody", "--", "cat",
                            os.path.join(u.store, "berth.db")], capture_output=True, text=True)
    assert other.returncode != 0


def test_no_setuid_helper_of_berths_own(rootless_busybox):
    """Nothing berth ships or writes is setuid/setgid; the namespace is the distribution's."""
    u = rootless_busybox
    assert u.berth("run", "--rm", "--network", "none", "busybox", "true").returncode == 0
    pkg = os.path.dirname(os.path.abspath(berth.__file__))
    found = []
    for top in (pkg, u.runroot, os.path.join(u.store, "containers")):
        for dirpath, _dirs, files in os.walk(top):
            for f in files:
                st = os.lstat(os.path.join(dirpath, f))
                if stat.S_ISREG(st.st_mode) and st.st_mode & (stat.S_ISUID | stat.S_ISGID):
                    found.append(os.path.join(dirpath, f))
    assert found == []
    # the user's processes hold no more than the user's own credentials on the host
    pause = int(open(os.path.join(u.runroot, "pause.pid")).read().split()[0])
    status = open(f"/proc/{pause}/status").read()
    uids = next(line for line in status.splitlines() if line.startswith("Uid:")).split()[1:]
    assert set(uids) == {str(u.uid)}


def test_tmp_run_root_made_by_someone_else_is_refused(rootless_user):
    """Without XDG_RUNTIME_DIR the run root is /tmp/berth-UID: never one another user made."""
    u = rootless_user
    os.symlink("/tmp", u.runroot)  # another user's trap (here: root's symlink)
    try:
        p = u.berth("images")
        assert p.returncode == 125
        assert p.stderr == (f"Error: run root {u.runroot} is not a directory owned by uid "
                            f"{u.uid} with mode 0700: remove it or set XDG_RUNTIME_DIR\n")
    finally:
        os.unlink(u.runroot)
    os.mkdir(u.runroot, 0o755)  # a plain directory of someone else's
    p = u.berth("images")
    assert p.returncode == 125 and "is not a directory owned by uid" in p.stderr
