"""Docker's mount flag rules (-v, --mount, --volumes-from, image VOLUMEs), without root."""

from __future__ import annotations

import re

import pytest

from berth.errors import InvalidArgument
from berth.volumes import specs
from berth.volumes.filters import build_predicate
from berth.volumes.service import VolumeRecord, label_filter

HEX64 = re.compile(r"^[0-9a-f]{64}$")


# -- -v ----------------------------------------------------------------------------------
def test_v_bind_keeps_the_old_shape():
    assert specs.parse_volume_flag("/host/dir/:/ctr:ro") == {
        "Type": "bind", "Source": "/host/dir", "Destination": "/ctr", "Mode": "ro",
        "RW": False, "Propagation": "rprivate"}
    b = specs.parse_volume_flag("/h:/c:rw,rshared")
    assert b["RW"] and b["Propagation"] == "rshared"


def test_v_relative_host_path_with_dot_is_a_bind(tmp_path):
    b = specs.parse_volume_flag("./data:/d", cwd=str(tmp_path))
    assert b["Type"] == "bind" and b["Source"] == str(tmp_path / "data")


def test_v_named_volume():
    v = specs.parse_volume_flag("data:/var/lib/x")
    assert (v["Type"], v["Name"], v["Destination"], v["RW"], v["Anonymous"], v["Mode"]) == \
        ("volume", "data", "/var/lib/x", True, False, "z")
    v = specs.parse_volume_flag("data:/x:ro,nocopy")
    assert not v["RW"] and v["NoCopy"] and v["Mode"] == "ro,nocopy"


def test_v_anonymous_volume_gets_a_random_name():
    a, b = specs.parse_volume_flag("/data"), specs.parse_volume_flag("/data:ro")
    assert a["Anonymous"] and HEX64.match(a["Name"]) and a["Name"] != b["Name"]
    assert a["Destination"] == "/data" and b["RW"] is False


@pytest.mark.parametrize("spec, message", [
    ("relative:path", "invalid volume specification: 'relative:path': invalid mount config "
                      "for type \"volume\": invalid mount path: 'path' mount path must be "
                      "absolute"),
    ("relative", "mount path: 'relative' mount path must be absolute"),
    ("/h:rel", "invalid mount config for type \"bind\": invalid mount path: 'rel'"),
    ("a:b:c:d", "invalid volume specification: 'a:b:c:d'"),
    ("/h:/c:bogus", "invalid mode: bogus"),
    ("/h:/c:ro,rw", "invalid mode: ro,rw"),
    ("/h:/c:nocopy", "invalid mode: nocopy"),
    ("vol:/c:rshared", "invalid mode: rshared"),
    ("/h:/", "destination can't be '/'"),
    ("bad/name:/c", '"bad/name" includes invalid characters for a local volume name'),
    ("", "invalid empty volume spec"),
])
def test_v_errors(spec, message):
    with pytest.raises(InvalidArgument) as e:
        specs.parse_volume_flag(spec)
    assert message in str(e.value)
    assert "\n" not in str(e.value)


# -- --mount -----------------------------------------------------------------------------
def test_mount_volume_and_aliases():
    v = specs.parse_mount_flag("type=volume,src=cache,dst=/cache,readonly,"
                               "volume-opt=type=tmpfs,volume-label=a=b,volume-nocopy=true")
    assert (v["Name"], v["Destination"], v["RW"], v["NoCopy"], v["Mode"]) == \
        ("cache", "/cache", False, True, "")
    assert v["DriverOpts"] == {"type": "tmpfs"} and v["Labels"] == {"a": "b"}
    anon = specs.parse_mount_flag("target=/x")  # type defaults to volume
    assert anon["Type"] == "volume" and anon["Anonymous"] and HEX64.match(anon["Name"])
    assert specs.parse_mount_flag("source=vv,destination=/y,ro=false")["RW"] is True


def test_mount_bind_and_tmpfs():
    b = specs.parse_mount_flag("type=bind,source=/etc,target=/e,readonly,"
                               "bind-propagation=rslave")
    assert (b["Type"], b["Source"], b["RW"], b["Propagation"], b["Strict"]) == \
        ("bind", "/etc", False, "rslave", True)
    t = specs.parse_mount_flag("type=tmpfs,target=/t,tmpfs-size=10m,tmpfs-mode=1770")
    assert t == {"Type": "tmpfs", "Destination": "/t", "RW": True,
                 "Options": ["size=10485760", "mode=1770"], "Origin": "user"}
    assert specs.parse_mount_flag('"type=tmpfs","dst=/q",ro')["Options"] == ["ro"]


@pytest.mark.parametrize("spec, message", [
    ("type=volume,target=/x,color=red", "unexpected key 'color' in 'color=red'"),
    ("type=volume,target=/x,bogus", "invalid field 'bogus' must be a key=value pair"),
    ("type=volume,src=v", "target is required"),
    ("type=bind,target=/x", 'type "bind": field Source must not be empty'),
    ("type=bind,src=rel,target=/x", "invalid mount path: 'rel' mount path must be absolute"),
    ("type=tmpfs,src=x,target=/x", 'type "tmpfs": field Source must not be specified'),
    ("type=bind,src=/a,target=/x,volume-nocopy", "cannot mix 'volume-*' options with mount "
                                                 "type 'bind'"),
    ("type=volume,target=/x,tmpfs-size=1m", "cannot mix 'tmpfs-*' options"),
    ("type=nfs,target=/x", 'type "nfs": mount type unknown'),
    ("type=volume,target=x", "invalid mount path: 'x' mount path must be absolute"),
    ("type=volume,target=/x,readonly=maybe", "invalid value for readonly: maybe"),
    ("type=tmpfs,target=/x,tmpfs-mode=9", "invalid value for tmpfs-mode: 9"),
])
def test_mount_errors(spec, message):
    with pytest.raises(InvalidArgument) as e:
        specs.parse_mount_flag(spec)
    assert message in str(e.value)


# -- plan, inherit, image VOLUMEs -------------------------------------------------------------
def test_plan_precedence_and_duplicates():
    p = specs.plan(["/h:/a", "named:/b"], ["type=tmpfs,dst=/t"],
                   {"/a": {}, "/c": {}, "/t/": {}, "/d": {}}, ["/d"])
    assert [b["Destination"] for b in p.binds] == ["/a"]
    vols = {v["Destination"]: v for v in p.volumes}
    assert set(vols) == {"/b", "/t", "/c"}  # image /a, /t (user), /d (--tmpfs) dropped
    assert vols["/c"]["Anonymous"] and vols["/c"]["Origin"] == "image"
    assert vols["/c"]["Mode"] == ""
    with pytest.raises(InvalidArgument, match="Duplicate mount point: /a"):
        specs.plan(["/h:/a", "vv:/a/"], [], None)
    with pytest.raises(InvalidArgument, match="Duplicate mount point: /a"):
        specs.plan(["vv:/a"], [], None, ["/a"])


def test_volumes_from_parse_and_inherit():
    assert specs.parse_volumes_from("web") == ("web", None)
    assert specs.parse_volumes_from("web:ro") == ("web", "ro")
    with pytest.raises(InvalidArgument, match="invalid mode: rx"):
        specs.parse_volumes_from("web:rx")
    source = {"Mounts": [specs.parse_volume_flag("/h:/bind")],
              "VolumeMounts": [specs.parse_volume_flag("data:/data"),
                               specs.parse_volume_flag("/anon:ro"),
                               specs.parse_mount_flag("type=tmpfs,dst=/t")]}
    binds = [specs.parse_volume_flag("/mine:/bind")]
    image = specs.image_volumes({"/data": {}})
    volumes = list(image)
    specs.inherit(binds, volumes, source, "ro")
    assert [b["Source"] for b in binds] == ["/mine"]  # the user's own mount wins
    got = {v["Destination"]: v for v in volumes}
    assert set(got) == {"/data", "/anon"}  # tmpfs is not inherited; image /data gives way
    assert got["/data"]["Name"] == "data" and got["/data"]["RW"] is False
    assert got["/data"]["Origin"] == "volumes-from" and got["/data"]["NoCopy"]
    volumes = []
    specs.inherit([], volumes, source, None)
    assert {v["Destination"]: v["RW"] for v in volumes} == {"/data": True, "/anon": False}


def test_inspect_mounts_shape():
    m = specs.inspect_mounts([specs.parse_volume_flag("data:/d:ro"),
                              specs.parse_mount_flag("type=tmpfs,dst=/t")], "/r")
    assert m == [{"Type": "volume", "Name": "data", "Source": "/r/volumes/data/_data",
                  "Destination": "/d", "Driver": "local", "Mode": "ro", "RW": False,
                  "Propagation": ""},
                 {"Type": "tmpfs", "Source": "", "Destination": "/t", "Mode": "",
                  "RW": True, "Propagation": ""}]


def test_names_and_depth():
    assert specs.valid_name("my_vol.1-x") and not specs.valid_name("a")
    assert not specs.valid_name("-x") and not specs.valid_name("a/b")
    assert specs.depth("/") == 0 and specs.depth("/a/b/") == 2


# -- filters -------------------------------------------------------------------------------
def _vol(name, labels=None):
    return VolumeRecord(name=name, driver="local", mountpoint="/m", created=0,
                        labels=labels or {})


def test_ls_filters():
    vols = [_vol("rosemary", {"is-timelord": "yes"}), _vol("tyler", {"is-timelord": "no"}),
            _vol("plain")]

    def names(filters):
        pred = build_predicate(filters, lambda: {"tyler"})
        return [v.name for v in vols if pred(v)]

    assert names({"dangling": ["true"]}) == ["rosemary", "plain"]
    assert names({"dangling": ["0"]}) == ["tyler"]
    assert names({"name": ["rose", "ty"]}) == ["rosemary", "tyler"]
    assert names({"label": ["is-timelord"]}) == ["rosemary", "tyler"]
    assert names({"label": ["is-timelord=yes", "is-timelord=no"]}) == []
    assert names({"driver": ["local"], "name": ["pla"]}) == ["plain"]
    with pytest.raises(InvalidArgument):
        names({"dangling": ["maybe"]})
    assert label_filter({"a": "1"}, ["a", "!b"]) and not label_filter({"a": "1"}, ["!a=1"])
