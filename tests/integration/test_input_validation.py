"""Bad input through the real CLI: one clear ``Error:`` line, Docker's exit code, no leftovers.

Each case is a value a user (or a fuzzer) can type: flags out of range or not numbers at
all, files that are not UTF-8, names too long for the filesystem, paths that are no
directory or live in /proc, subnets that would hijack the host's own addresses, archives
whose tags are no tags. After every failure the store must look as it did before.
"""

from __future__ import annotations

import io
import ipaddress
import json
import os
import shutil
import struct
import tarfile
from pathlib import Path

import pytest


def _one_error(r, code: int, text: str) -> None:  # type: ignore[no-untyped-def]
    lines = r.stderr.strip().splitlines()
    assert r.returncode == code, (r.returncode, r.stderr)
    assert len(lines) == 1 and lines[0].startswith("Error: ") and text in lines[0], r.stderr
    assert "internal error" not in r.stderr


@pytest.mark.parametrize("value, text", [
    ("nan", 'invalid argument "nan" for "--cpus" flag'),
    ("inf", 'invalid argument "inf" for "--cpus" flag'),
    ("-1", "Range of CPUs is from 0.01 to"),
    ("0.0000001", "Range of CPUs is from 0.01 to"),
    ("many", 'invalid argument "many" for "--cpus" flag'),
])
def test_cpus_out_of_range(busybox_image, berth, value: str, text: str) -> None:  # type: ignore[no-untyped-def]
    _one_error(berth("run", "--rm", "--network", "none", "--cpus", value, "busybox", "true"),
               125, text)
    assert berth("ps", "-aq").stdout == ""


@pytest.mark.parametrize("flags, text", [
    (["-m", "1k"], "Minimum memory limit allowed is 6MB"),
    (["--cpu-shares", "-5"], "invalid CPU shares (-5)"),
    (["--pids-limit", "99999999999999999999"], '"--pids-limit" flag: value out of range'),
    (["-v", ":/x"], "empty section between colons"),
    (["-h", "h" * 65], "a hostname is at most 64 characters"),
    # argv bytes that are not UTF-8 (Python keeps them as surrogates)
    (["-h", "bad\udcff"], 'invalid argument "bad\\xff" for "--hostname" flag: not valid UTF-8'),
    (["--add-host", "a\udcff:1.2.3.4"], 'for "--add-host" flag: not valid UTF-8'),
    (["-v", "/tmp/berth-\udcff:/x"], 'for "--volume" flag: not valid UTF-8'),
])
def test_resource_and_volume_flags(busybox_image, berth, flags: list[str], text: str) -> None:  # type: ignore[no-untyped-def]
    _one_error(berth("create", "--network", "none", *flags, "busybox", "true"), 125, text)
    assert berth("ps", "-aq").stdout == "" and berth("volume", "ls", "-q").stdout == ""


def test_cpus_in_range_still_works(busybox_image, berth) -> None:  # type: ignore[no-untyped-def]
    r = berth("create", "--network", "none", "--cpus", "0.5", "busybox", "true")
    assert r.returncode == 0, r.stderr
    assert berth("inspect", "-f", "{{.HostConfig.NanoCpus}}", r.stdout.strip()).stdout.strip() \
        == "500000000"


def test_env_file_with_invalid_utf8(busybox_image, berth, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    env = tmp_path / "bad.env"
    env.write_bytes(b"GOOD=1\nBAD=\xff\xfe\n")
    _one_error(berth("run", "--rm", "--network", "none", "--env-file", str(env), "busybox",
                     "true"), 125, f"env file {env} contains invalid utf8 bytes at line 2")
    assert berth("ps", "-aq").stdout == ""


def test_volume_name_too_long(busybox_image, berth, berth_env) -> None:  # type: ignore[no-untyped-def]
    name = "v" * 300
    _one_error(berth("volume", "create", name), 1, "volume name is too long (300 bytes")
    _one_error(berth("run", "--rm", "--network", "none", "-v", f"{name}:/data", "busybox",
                     "true"), 125, "volume name is too long")
    assert berth("volume", "ls", "-q").stdout == ""
    vols = Path(berth_env["root"], "volumes")
    assert not vols.exists() or os.listdir(vols) == []


def test_save_into_a_missing_directory(busybox_image, berth, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "missing" / "x.tar"
    _one_error(berth("save", "-o", str(out), "busybox"), 1,
               f'invalid output path: directory "{out.parent}" does not exist')
    _one_error(berth("save", "-o", str(tmp_path), "busybox"), 1, "is a directory")
    assert not out.parent.exists()


@pytest.mark.parametrize("flag, path, text", [
    ("--root", "/dev/null", 'invalid --root "/dev/null": not a directory'),
    ("--runroot", "/proc/self", 'invalid --runroot "/proc/self": /proc is a kernel pseudo'),
    ("--root", "/sys/kernel/berth", "/sys is a kernel pseudo filesystem"),
])
def test_root_and_runroot_must_be_directories_we_own(berth, flag: str, path: str,
                                                     text: str) -> None:  # type: ignore[no-untyped-def]
    _one_error(berth(flag, path, "ps"), 125, text)
    assert not os.path.exists("/sys/kernel/berth")


def test_root_under_a_file(berth, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    f = tmp_path / "file"
    f.write_text("x")
    _one_error(berth("--root", str(f / "sub"), "images"), 125, "not a directory")


def _host_route() -> str | None:
    """A (non-default) IPv4 route of this host, as /proc/net/route lists it."""
    with open("/proc/net/route") as f:
        next(f)
        for line in f:
            fields = line.split()
            dest = ipaddress.IPv4Address(struct.pack("<I", int(fields[1], 16)))
            mask = ipaddress.IPv4Address(struct.pack("<I", int(fields[7], 16)))
            net = ipaddress.IPv4Network(f"{dest}/{mask}", strict=False)
            if net.prefixlen:
                return str(net)
    return None


@pytest.mark.parametrize("subnet, text", [
    ("127.0.0.0/8", "loopback"),
    ("127.42.0.0/16", "loopback"),
    ("169.254.0.0/24", "link-local"),
    ("224.0.0.0/24", "multicast"),
    ("0.0.0.0/1", '"this network"'),
    ("0.0.0.0/0", '"this network"'),
    ("255.255.255.0/24", "reserved and broadcast"),
    ("host-route", "Pool overlaps with the host's route or address"),
])
def test_network_subnets_that_would_hijack_host_addresses(berth, subnet: str,
                                                          text: str) -> None:  # type: ignore[no-untyped-def]
    if subnet == "host-route":
        subnet = _host_route() or pytest.skip("this host has no non-default route")
    before = _addresses()
    _one_error(berth("network", "create", "--subnet", subnet, "evil"), 1, text)
    assert "evil" not in berth("network", "ls", "--format", "{{.Name}}").stdout.split()
    net = ipaddress.ip_network(subnet)
    if net.prefixlen < 8:
        return  # holds every address: other tests' bridges may come and go meanwhile
    new = [(dev, a) for dev, a in _addresses() - before if ipaddress.ip_address(a) in net]
    assert new == [], "an address of the refused subnet appeared on the host"


def _addresses() -> set[tuple[str, str]]:
    """(interface, IPv4 address) pairs of the host, from ``ip -4 -o addr``."""
    import subprocess

    out = subprocess.run(["ip", "-4", "-o", "addr", "show"], capture_output=True, text=True,
                         check=True).stdout
    return {(f[1], f[3].split("/")[0]) for f in (ln.split() for ln in out.splitlines())}


def _archive_with_tags(src: Path, dst: Path, tags: object) -> Path:
    """A copy of a docker-archive whose manifest.json says ``RepoTags: tags``."""
    with tarfile.open(src) as t_in, tarfile.open(dst, "w") as t_out:
        for m in t_in.getmembers():
            data = t_in.extractfile(m).read() if m.isfile() else None  # type: ignore[union-attr]
            if m.name == "manifest.json":
                entries = json.loads(data)  # type: ignore[arg-type]
                entries[0]["RepoTags"] = tags
                data = json.dumps(entries).encode()
                m.size = len(data)
            t_out.addfile(m, io.BytesIO(data) if data is not None else None)
    return dst


@pytest.mark.parametrize("tags, text", [
    ("a", "bad RepoTags"),
    (["saved@sha256:" + "a" * 64], "invalid tag"),
    (["saved:1@sha256:" + "a" * 64], "invalid tag"),
    (["Not A Name"], "invalid tag"),
    (["good:1", 7], "bad RepoTags"),
])
def test_load_refuses_tags_that_are_no_tags(engine, busybox_image, berth, tmp_path: Path,
                                            tags: object, text: str) -> None:  # type: ignore[no-untyped-def]
    saved = tmp_path / "saved.tar"
    assert berth("save", "-o", str(saved), "busybox").returncode == 0
    assert berth("rmi", "busybox").returncode == 0
    bad = _archive_with_tags(saved, tmp_path / "bad.tar", tags)
    _one_error(berth("load", "-i", str(bad)), 1, text)
    assert berth("images", "-aq").stdout == ""
    blobs = Path(engine.root, "blobs", "sha256")
    assert os.listdir(blobs) == [] and os.listdir(Path(engine.root, "tmp")) == []


def test_import_refuses_a_digest_as_tag(busybox_tar, berth) -> None:  # type: ignore[no-untyped-def]
    _one_error(berth("import", str(busybox_tar), "x@sha256:" + "b" * 64), 1,
               "refusing to create a tag with a digest reference")
    assert berth("images", "-aq").stdout == ""


def test_start_goes_on_past_failures(busybox_image, berth, berth_env) -> None:  # type: ignore[no-untyped-def]
    """``start aa bad nosuch cc``: aa and cc run, one error line per failure, then exit 1."""
    ids = {}
    for n in ("aa", "bad", "cc"):
        r = berth("create", "--name", n, "--network", "none", "busybox", "sleep", "30")
        assert r.returncode == 0, r.stderr
        ids[n] = r.stdout.strip()
    # break "bad" with an error that is no BerthError: its run dir is a file
    run_dir = Path(berth_env["runroot"], "containers", ids["bad"])
    shutil.rmtree(run_dir)
    run_dir.write_text("not a directory")
    r = berth("start", "aa", "bad", "nosuch", "cc")
    assert r.returncode == 1
    assert r.stdout.split() == ["aa", "cc"]
    err = r.stderr.strip().splitlines()
    assert len(err) == 3 and all(e.startswith("Error: ") for e in err), r.stderr
    assert err[1] == "Error: No such container: nosuch"
    assert err[2] == "Error: failed to start containers: bad, nosuch"
    running = berth("ps", "--format", "{{.Names}}").stdout.split()
    assert sorted(running) == ["aa", "cc"]


def test_fuzzed_flags_found_by_trying(busybox_image, berth, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Values a little fuzzing found that used to end in an internal error."""
    r = berth("run", "--name", "lg", "--network", "none", "busybox", "echo", "hi")
    assert r.returncode == 0, r.stderr
    for flag, value, shown in (("--since", "99999999999999999999", ""),
                               ("--until", "99999999999999999999", "hi\n"),
                               ("--since", "999999999h", "hi\n")):
        r = berth("logs", flag, value, "lg")
        assert (r.returncode, r.stdout, r.stderr) == (0, shown, ""), (flag, value)
    # -o "" is standard output, as in Docker
    r = berth("save", "-o", "", "busybox", input=b"")
    assert r.returncode == 0 and r.stdout[257:262] == b"ustar" and r.stderr == b""
    # a file bind-mounted over a directory: the runtime's one-line error, exit 125
    src = tmp_path / "file"
    src.write_text("x")
    r = berth("run", "--rm", "--network", "none", "-v", f"{src}:/etc", "busybox", "true")
    _one_error(r, 125, "not a directory")
