"""Volumes as a user sees them: volume commands, -v/--mount/--volumes-from, seeding, rm -v,
prune, system df, and bad input that leaves nothing behind."""

from __future__ import annotations

import io
import json
import os
import re
import tarfile

import pytest
from tests.tarfactory import dir as tdir
from tests.tarfactory import file as tfile
from tests.tarfactory import hardlink, symlink

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")
HEX64 = re.compile(r"^[0-9a-f]{64}$")


def _image_with(engine, busybox_tar, ref, members, changes=()):
    """busybox plus ``members`` (tarfactory dicts) as a one-layer image named ``ref``."""
    from tests.tarfactory import make_tar

    extra = tarfile.open(fileobj=io.BytesIO(make_tar(members)))
    buf = io.BytesIO()
    with tarfile.open(busybox_tar) as base, tarfile.open(fileobj=buf, mode="w",
                                                         format=tarfile.PAX_FORMAT) as out:
        for ti in base.getmembers():
            out.addfile(ti, base.extractfile(ti) if ti.isfile() else None)
        for ti in extra.getmembers():
            out.addfile(ti, extra.extractfile(ti) if ti.isfile() else None)
    buf.seek(0)
    return engine.import_image(buf, ref, changes=['CMD ["sh"]', *changes])


def _ok(r):
    assert r.returncode == 0, (r.returncode, r.stdout, r.stderr)
    return r.stdout


def _names(berth, *args):
    return _ok(berth("volume", "ls", "-q", *args)).split()


def test_named_volume_outlives_its_container(berth, busybox_image, berth_env):
    _ok(berth("run", "--name", "writer", "-v", "data:/data", "busybox", "sh", "-c",
              "echo hello > /data/f"))
    _ok(berth("rm", "writer"))
    assert _ok(berth("run", "--rm", "-v", "data:/data:ro", "busybox", "cat", "/data/f")) == \
        "hello\n"
    info = json.loads(_ok(berth("volume", "inspect", "data")))
    assert info == [{"CreatedAt": info[0]["CreatedAt"], "Driver": "local", "Labels": {},
                     "Mountpoint": os.path.join(berth_env["root"], "volumes/data/_data"),
                     "Name": "data", "Options": {}, "Scope": "local"}]
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$", info[0]["CreatedAt"])
    assert _ok(berth("volume", "inspect", "-f", "{{.Mountpoint}}", "data")).strip() == \
        info[0]["Mountpoint"]
    r = berth("volume", "inspect", "nope")
    assert r.returncode == 1 and r.stderr == "Error: No such volume: nope\n"


def test_seeding_copies_the_image_path_once(berth, engine, busybox_tar, berth_env):
    _image_with(engine, busybox_tar, "seeded:latest", [
        tdir("data", mode=0o750, uid=7, gid=8),
        tfile("data/hello", b"from image\n", mode=0o640, uid=1000, gid=1001,
              xattrs={"user.kind": b"seed"}),
        tdir("data/sub", mode=0o700),
        tfile("data/sub/deep", b"deep\n"),
        hardlink("data/sub/again", "data/hello"),
        symlink("data/abs", "/etc/passwd"),
        symlink("data/escape", "../../../../../../etc"),
    ])
    out = _ok(berth("run", "--rm", "-v", "fresh:/data", "seeded", "sh", "-c",
                    "cat /data/hello; stat -c '%u:%g %a' /data/hello /data; "
                    "readlink /data/abs; readlink /data/escape; cat /data/sub/deep"))
    assert out == ("from image\n1000:1001 640\n7:8 750\n/etc/passwd\n../../../../../../etc\n"
                   "deep\n")
    data = os.path.join(berth_env["root"], "volumes/fresh/_data")
    assert os.getxattr(os.path.join(data, "hello"), "user.kind") == b"seed"
    assert os.stat(os.path.join(data, "hello")).st_ino == \
        os.stat(os.path.join(data, "sub/again")).st_ino
    assert os.path.islink(os.path.join(data, "escape"))  # copied as a link, never followed
    # a volume with content is never overwritten by seeding
    _ok(berth("volume", "create", "full"))
    _ok(berth("run", "--rm", "-v", "full:/x", "seeded", "sh", "-c", "echo mine > /x/own"))
    assert _ok(berth("run", "--rm", "-v", "full:/data", "seeded", "ls", "/data")) == "own\n"
    # nocopy skips seeding
    assert _ok(berth("run", "--rm", "-v", "bare:/data:nocopy", "seeded", "ls", "/data")) == ""


def test_seeding_stays_inside_the_rootfs(berth, engine, busybox_tar, berth_env):
    """/data is a symlink climbing out: the copy comes from the container's /etc."""
    _image_with(engine, busybox_tar, "sneaky:latest",
                [symlink("data", "../../../../../../../etc")])
    _ok(berth("run", "--rm", "-v", "grab:/data", "sneaky", "true"))
    data = os.path.join(berth_env["root"], "volumes/grab/_data")
    got = set(os.listdir(data))
    assert "passwd" in got and "os-release" not in got and "debian_version" not in got


def test_image_volume_is_anonymous_and_rm_v_removes_it(berth, engine, busybox_tar,
                                                       berth_env):
    _image_with(engine, busybox_tar, "volimg:latest",
                [tdir("data"), tfile("data/seed", b"s\n")], changes=["VOLUME /data"])
    cid = _ok(berth("create", "--name", "aa", "volimg", "cat", "/data/seed")).strip()
    mounts = json.loads(_ok(berth("inspect", "-f", "{{json .Mounts}}", "aa")))
    assert len(mounts) == 1
    m = mounts[0]
    assert HEX64.match(m["Name"]) and m["Type"] == "volume" and m["Destination"] == "/data"
    assert m["Source"] == os.path.join(berth_env["root"], "volumes", m["Name"], "_data")
    assert (m["Driver"], m["Mode"], m["RW"], m["Propagation"]) == ("local", "", True, "")
    assert _names(berth) == [m["Name"]]
    labels = json.loads(_ok(berth("volume", "inspect", "-f", "{{json .Labels}}", m["Name"])))
    assert labels == {"com.docker.volume.anonymous": ""}
    assert _ok(berth("start", "-a", "aa")) == "s\n"
    r = berth("volume", "rm", m["Name"])
    assert r.returncode == 1
    assert r.stderr == f"Error: remove {m['Name']}: volume is in use - [{cid}]\n"
    _ok(berth("rm", "-v", "aa"))
    assert _names(berth) == []
    # --rm drops the anonymous volume too; the named one stays
    _ok(berth("run", "--rm", "-v", "keep:/keep", "volimg", "true"))
    assert _names(berth) == ["keep"]
    # rm without -v keeps it; prune (anonymous only by default) takes it
    _ok(berth("run", "--name", "bb", "volimg", "true"))
    _ok(berth("rm", "bb"))
    anon = [n for n in _names(berth) if n != "keep"]
    assert len(anon) == 1
    out = _ok(berth("volume", "prune", "-f"))
    assert out.startswith(f"Deleted Volumes:\n{anon[0]}\n\nTotal reclaimed space: ")
    assert _names(berth) == ["keep"]


def test_user_mount_overrides_image_volume(berth, engine, busybox_tar):
    _image_with(engine, busybox_tar, "volimg:latest", [tdir("data")],
                changes=["VOLUME /data"])
    _ok(berth("create", "--name", "cc", "-v", "mine:/data", "volimg", "true"))
    assert _names(berth) == ["mine"]


def test_volumes_from(berth, busybox_image):
    _ok(berth("create", "--name", "src", "-v", "shared:/shared", "-v", "/anon", "busybox",
              "true"))
    _ok(berth("run", "--rm", "--volumes-from", "src", "busybox", "sh", "-c",
              "echo x > /shared/f && touch /anon/g"))
    assert _ok(berth("run", "--rm", "--volumes-from", "src", "busybox", "ls", "/shared",
                     "/anon")) == "/anon:\ng\n\n/shared:\nf\n"
    r = berth("run", "--rm", "--volumes-from", "src:ro", "busybox", "touch", "/shared/h")
    assert r.returncode == 1 and "Read-only file system" in r.stderr
    mounts = json.loads(_ok(berth("inspect", "-f", "{{json .Mounts}}", "src")))
    anon = next(m["Name"] for m in mounts if m["Destination"] == "/anon")
    _ok(berth("create", "--name", "user", "--volumes-from", "src", "busybox", "true"))
    _ok(berth("rm", "-v", "src"))  # the inherited anonymous volume is still in use
    assert set(_names(berth)) == {"shared", anon}
    r = berth("run", "--rm", "--volumes-from", "ghost", "busybox", "true")
    assert r.returncode == 125 and r.stderr == "Error: No such container: ghost\n"


def test_readonly_volume_refuses_writes(berth, busybox_image):
    r = berth("run", "--rm", "-v", "data:/data:ro", "busybox", "touch", "/data/x")
    assert r.returncode == 1 and "Read-only file system" in r.stderr
    r = berth("run", "--rm", "--mount", "src=data,dst=/data,readonly", "busybox", "touch",
              "/data/x")
    assert r.returncode == 1 and "Read-only file system" in r.stderr


def test_mount_forms(berth, busybox_image, berth_env):
    host = berth_env["tmp"] / "hostdir"
    host.mkdir()
    (host / "note").write_text("on host\n")
    out = _ok(berth(
        "run", "--rm", "--mount", "type=volume,source=mvol,target=/m",
        "--mount", f"type=bind,src={host},dst=/b,readonly",
        "--mount", "type=tmpfs,destination=/t,tmpfs-size=1m,tmpfs-mode=1770",
        "busybox", "sh", "-c",
        "echo v > /m/v && cat /b/note && grep ' /t ' /proc/mounts && stat -c %a /t; "
        "touch /b/x 2>/dev/null || echo robind"))
    lines = out.splitlines()
    assert lines[0] == "on host" and lines[-1] == "robind" and lines[-2] == "1770"
    assert lines[1].startswith("tmpfs /t tmpfs ") and "size=1024k" in lines[1]
    assert _names(berth) == ["mvol"]
    r = berth("run", "--rm", "--mount", "type=bind,src=/does/not/exist,dst=/x", "busybox",
              "true")
    assert r.returncode == 125
    assert r.stderr == ('Error: invalid mount config for type "bind": bind source path does '
                        "not exist: /does/not/exist\n")
    # the local driver's tmpfs volumes
    _ok(berth("volume", "create", "--driver", "local", "--opt", "type=tmpfs", "--opt",
              "device=tmpfs", "--opt", "o=size=10m", "tvol"))
    line = _ok(berth("run", "--rm", "-v", "tvol:/tv", "busybox", "grep", " /tv ",
                     "/proc/mounts"))
    assert line.startswith("tmpfs /tv tmpfs ") and "size=10240k" in line
    opts = json.loads(_ok(berth("volume", "inspect", "-f", "{{json .Options}}", "tvol")))
    assert opts == {"device": "tmpfs", "o": "size=10m", "type": "tmpfs"}
    mounts = json.loads(_ok(berth("inspect", "-f", "{{json .Mounts}}", _ok(berth(
        "create", "--mount", "type=tmpfs,dst=/t", "busybox", "true")).strip())))
    assert mounts == [{"Type": "tmpfs", "Source": "", "Destination": "/t", "Mode": "",
                       "RW": True, "Propagation": ""}]


def test_volume_create_ls_filters_and_format(berth, busybox_image):
    assert _ok(berth("volume", "create", "rosemary", "--label", "is-timelord=yes")) == \
        "rosemary\n"
    _ok(berth("volume", "create", "tyler", "--label", "is-timelord=no"))
    assert _ok(berth("volume", "create", "tyler")) == "tyler\n"  # existing: reused
    anon = _ok(berth("volume", "create")).strip()
    assert HEX64.match(anon)
    _ok(berth("create", "-v", "tyler:/t", "busybox", "true"))
    out = _ok(berth("volume", "ls")).splitlines()
    assert out[0] == "DRIVER    VOLUME NAME"
    assert out[1:] == [f"local     {n}" for n in sorted([anon, "rosemary", "tyler"])]
    assert _names(berth, "-f", "dangling=true") == sorted([anon, "rosemary"])
    assert _names(berth, "--filter", "dangling=false") == ["tyler"]
    assert _names(berth, "-f", "name=ros", "-f", "name=yle") == ["rosemary", "tyler"]
    assert _names(berth, "-f", "label=is-timelord") == ["rosemary", "tyler"]
    assert _names(berth, "-f", "label=is-timelord=yes") == ["rosemary"]
    assert _names(berth, "-f", "driver=local", "-f", "name=tyler") == ["tyler"]
    assert _ok(berth("volume", "ls", "-f", "name=rose", "--format",
                     "{{.Name}}: {{.Driver}} {{.Labels}}")) == \
        "rosemary: local is-timelord=yes\n"
    row = json.loads(_ok(berth("volume", "ls", "-f", "name=tyler", "--format", "json")))
    assert row["Name"] == "tyler" and row["Scope"] == "local" and row["Size"] == "N/A"
    assert _ok(berth("volume", "ls", "-f", "name=tyler", "--format",
                     "table {{.Name}}\t{{.Scope}}")).splitlines() == \
        ["VOLUME NAME   SCOPE", "tyler         local"]
    r = berth("volume", "ls", "-f", "colour=red")
    assert (r.returncode, r.stderr) == (1, "Error: invalid filter 'colour'\n")
    r = berth("volume", "create", "--driver", "fake", "x1")
    assert r.returncode == 1 and 'plugin "fake" not found' in r.stderr
    r = berth("volume", "create", "--opt", "color=red", "x2")
    assert r.returncode == 1 and 'invalid option key: "color"' in r.stderr
    r = berth("volume", "create", "bad/name")
    assert r.returncode == 1 and "includes invalid characters" in r.stderr
    assert "x1" not in _names(berth) and "x2" not in _names(berth)


def test_volume_rm_and_prune(berth, busybox_image):
    for n in ("one", "two", "three"):
        _ok(berth("volume", "create", "--label", f"n={n}", n))
    cid = _ok(berth("create", "-v", "one:/one", "busybox", "true")).strip()
    r = berth("volume", "rm", "one", "two", "ghost")
    assert r.returncode == 1 and r.stdout == "two\n"
    assert r.stderr == (f"Error: remove one: volume is in use - [{cid}]\n"
                        "Error: get ghost: no such volume\n")
    assert _ok(berth("volume", "rm", "-f", "ghost")) == "ghost\n"
    r = berth("volume", "rm", "-f", "one")
    assert r.returncode == 1 and "volume is in use" in r.stderr
    # default prune takes only anonymous volumes; -a takes every unused one
    assert _ok(berth("volume", "prune", "-f")) == "Total reclaimed space: 0B\n"
    out = _ok(berth("volume", "prune", "-a", "-f", "--filter", "label=n=nine"))
    assert out == "Total reclaimed space: 0B\n"
    out = _ok(berth("volume", "prune", "-a", "-f", "--filter", "label!=n=nine"))
    assert out.startswith("Deleted Volumes:\nthree\n\n")
    assert _names(berth) == ["one"]
    _ok(berth("rm", cid))
    r = berth("volume", "prune", "-a", input="n\n")
    assert "WARNING! This will remove all local volumes not used by at least one container." \
        in r.stdout
    assert _names(berth) == ["one"]
    _ok(berth("volume", "rm", "one"))
    assert _names(berth) == []


def test_system_df_and_prune_count_volumes(berth, busybox_image):
    _ok(berth("run", "--name", "ww", "-v", "used:/u", "-v", "/anon", "busybox", "sh", "-c",
              "head -c 4000 /dev/zero > /u/f; head -c 1000 /dev/zero > /anon/f"))
    _ok(berth("volume", "create", "idle"))
    rows = [json.loads(line) for line in _ok(berth("system", "df", "--format",
                                                   "json")).splitlines()]
    vol = next(r for r in rows if r["Type"] == "Local Volumes")
    assert (vol["TotalCount"], vol["Active"], vol["Size"]) == ("3", "2", "5kB")
    assert vol["Reclaimable"] == "0B (0%)"
    _ok(berth("rm", "ww"))
    out = _ok(berth("system", "prune", "-f", "--volumes"))
    assert "Deleted Volumes:\n" in out
    assert _names(berth) == ["idle", "used"]


@pytest.mark.parametrize("args, message", [
    (["-v", "keep1:/k", "-v", "relative:path"],
     "Error: invalid volume specification: 'relative:path': invalid mount config for type "
     "\"volume\": invalid mount path: 'path' mount path must be absolute\n"),
    (["--mount", "type=volume,src=keep1,dst=/x,color=red"],
     "Error: invalid argument \"type=volume,src=keep1,dst=/x,color=red\" for \"--mount\" "
     "flag: unexpected key 'color' in 'color=red'\n"),
    (["-v", "keep1:/a", "--mount", "src=keep2,dst=/a"], "Error: Duplicate mount point: /a\n"),
    (["-v", "bad/name:/a"], None),
    (["--volumes-from", "src:rx"], "Error: invalid mode: rx\n"),
])
def test_bad_input_leaves_nothing(berth, busybox_image, args, message):
    for cmd in ("create", "run"):
        r = berth(cmd, *args, "busybox", "true")
        assert r.returncode == 125, r.stderr
        assert r.stderr.startswith("Error: ") and r.stderr.count("\n") == 1
        if message:
            assert r.stderr == message
    assert _ok(berth("ps", "-aq")) == ""
    assert _names(berth) == []
