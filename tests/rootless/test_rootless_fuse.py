"""fuse-overlayfs upper dirs (rootless fallback): commit, diff and build see OCI whiteouts.

fuse-overlayfs marks an opaque directory with a ``.wh..wh..opq`` file (plus an xattr when it
may set one) and a deletion with a 0/0 char device or, where mknod is refused, a ``.wh.NAME``
file. These tests force the fallback (``BERTH_OVERLAY=fuse-overlayfs``) as a real user.
"""

from __future__ import annotations

import io
import os
import tarfile

import pytest

FUSE = {"BERTH_OVERLAY": "fuse-overlayfs"}
CHANGE = ("rm -rf /sbin && mkdir /sbin && touch /sbin/new && rm /bin/ls && "
          "mkdir -p /var/spool/x && rm -rf /root")


@pytest.fixture
def fuse_user(rootless_busybox):  # type: ignore[no-untyped-def]
    if not os.access("/dev/fuse", os.R_OK | os.W_OK) or \
            os.stat("/dev/fuse").st_mode & 0o006 != 0o006:
        pytest.skip("/dev/fuse is not usable by other users here (make test sets 0666)")
    return rootless_busybox


def _layer_members(u, image: str) -> list[tarfile.TarInfo]:  # type: ignore[no-untyped-def]
    """The members of ``image``'s top layer, read from ``save`` (docker-archive)."""
    p = u.berth("save", image, input=b"")
    assert p.returncode == 0, p.stderr
    outer = tarfile.open(fileobj=io.BytesIO(p.stdout))
    import json

    manifest = json.load(outer.extractfile("manifest.json"))  # type: ignore[arg-type]
    top = manifest[0]["Layers"][-1]
    inner = tarfile.open(fileobj=outer.extractfile(top))  # type: ignore[arg-type]
    return inner.getmembers()


def test_commit_and_diff_of_fuse_upper(fuse_user):
    u = fuse_user
    p = u.berth("run", "--name", "fc", "--network", "none", "busybox", "sh", "-c", CHANGE,
                env=FUSE)
    assert p.returncode == 0, p.stderr
    p = u.berth("diff", "fc")
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert "D /bin/ls" in lines and "C /sbin" in lines and "A /sbin/new" in lines, lines
    assert "D /root" in lines and "A /var/spool/x" in lines, lines
    assert not [x for x in lines if ".wh." in x], lines
    p = u.berth("commit", "fc", "fimg")
    assert p.returncode == 0, p.stderr
    members = {m.name: m for m in _layer_members(u, "fimg")}
    assert "sbin/.wh..wh..opq" in members and "bin/.wh.ls" in members, sorted(members)
    assert ".wh.root" in members, sorted(members)
    for name, m in members.items():   # markers are empty OCI whiteouts, nothing else
        if ".wh." in name:
            assert m.isreg() and m.size == 0 and name.rpartition("/")[2].startswith(".wh.")
        assert not any(k.startswith(("SCHILY.xattr.user.fuseoverlayfs",
                                     "SCHILY.xattr.user.overlay", "SCHILY.xattr.trusted"))
                       for k in m.pax_headers), (name, m.pax_headers)
    # the committed image reads right under fuse-overlayfs and kernel overlay alike
    for env in (FUSE, {}):
        p = u.berth("run", "--rm", "--network", "none", "fimg", "sh", "-c",
                    "ls -a /sbin; test -e /bin/ls || echo gone; test -e /root || "
                    "echo gone2", env=env)
        assert p.stdout == ".\n..\nnew\ngone\ngone2\n", (env, p.stdout, p.stderr)
    assert u.berth("rm", "fc").returncode == 0


def test_build_run_steps_on_fuse(fuse_user):
    u = fuse_user
    ctx = os.path.join(u.home, "ctx")
    df = f"FROM busybox\\nRUN {CHANGE}\\nRUN rm /sbin/new && echo hi > /hello\\n"
    assert u.sh(f"mkdir {ctx} && printf '{df}' > {ctx}/Dockerfile").returncode == 0
    p = u.berth("build", "-t", "fbuilt", ctx, env=FUSE)
    assert p.returncode == 0, p.stderr
    p = u.berth("run", "--rm", "--network", "none", "fbuilt", "sh", "-c",
                "ls -a /sbin; cat /hello; test -e /bin/ls || echo gone", env=FUSE)
    assert p.stdout == ".\n..\nhi\ngone\n", p.stderr
    names = [m.name for m in _layer_members(u, "fbuilt")]
    assert names and "sbin/.wh.new" in names, names
