"""Docker CLI details users trip over (each as Docker 20.10 prints it): image listing by
name, hex-looking tags, ``{{.Label}}``, image/container inspect shapes, ``info`` keys."""

from __future__ import annotations

import json
import os
import re

from berth.cli.gotemplate import compile_template
from berth.cli.output import LabeledRow


def _spec_keys(definition: str) -> list[str]:
    """Property names of one Engine API definition (with its allOf parts)."""
    import yaml  # type: ignore[import-untyped]

    path = "/work/shared/specs/docker-engine-api-v1.41.yaml"
    if not os.path.exists(path):
        import pytest

        pytest.skip("Engine API spec not available")
    with open(path) as f:
        defs = yaml.safe_load(f)["definitions"]

    def props(name: str) -> dict:  # type: ignore[type-arg]
        sch, out = defs[name], {}
        for part in sch.get("allOf", [sch]):
            if "$ref" in part:
                out.update(props(part["$ref"].rsplit("/", 1)[-1]))
            else:
                out.update(part.get("properties", {}))
        return out
    return list(props(definition))


def test_images_by_name_lists_matching_tags_and_q_one_line_per_tag(berth, busybox_image):
    berth("tag", "busybox", "other:1")
    berth("tag", "busybox", "other:2")
    short = busybox_image.split(":")[1][:12]
    r = berth("images", "--format", "{{.Repository}}:{{.Tag}}")
    assert sorted(r.stdout.split()) == ["busybox:latest", "other:1", "other:2"]
    r = berth("images", "--format", "{{.Repository}}:{{.Tag}}", "busybox")
    assert r.stdout == "busybox:latest\n"
    r = berth("images", "--format", "{{.Repository}}:{{.Tag}}", "--filter", "reference=other:2")
    assert r.stdout == "other:2\n"
    r = berth("images", "--format", "{{.Tag}}", "--filter", "reference=oth*")
    assert sorted(r.stdout.split()) == ["1", "2"]
    assert berth("images", "-q").stdout == f"{short}\n" * 3
    assert berth("images", "-q", "other").stdout == f"{short}\n" * 2


def test_rmi_hex_looking_tag_and_reference_errors(berth, busybox_image):
    berth("tag", "busybox", "cafe")
    berth("tag", "busybox", "other:1")  # a second repository: deleting by ID is refused
    r = berth("rmi", "cafe")
    assert (r.returncode, r.stdout) == (0, "Untagged: cafe:latest\n"), r.stderr
    assert "cafe" not in berth("images").stdout
    r = berth("rmi", "Bad:Ref")
    assert r.returncode == 1
    assert r.stderr.startswith("Error: invalid reference format: repository name")
    r = berth("tag", "busybox", "sha256:abc")
    assert (r.returncode, r.stderr) == (
        1, "Error: refusing to create an ambiguous tag using digest algorithm as name\n")
    # an ID prefix is still an ID
    short = busybox_image.split(":")[1][:12]
    r = berth("rmi", short)
    assert r.returncode == 1 and "referenced in multiple repositories" in r.stderr


def test_label_method_in_ps_volume_and_network_formats(berth, busybox_image, berth_env):
    berth("create", "--name", "c1", "--label", "com.example.tier=web", "busybox", "true")
    r = berth("ps", "-a", "--format", '{{.Names}} {{.Label "com.example.tier"}}|'
              '{{.Label "nope"}}|')
    assert r.stdout == "c1 web||\n", r.stderr
    r = berth("ps", "-a", "--format", 'table {{.Names}}\t{{.Label "com.example.tier"}}')
    assert r.stdout.splitlines()[0].split() == ["NAMES", "tier"]
    assert berth("volume", "create", "--label", "k=v", "vol1").returncode == 0
    assert berth("volume", "ls", "--format", '{{.Name}} {{.Label "k"}}').stdout == "vol1 v\n"
    assert berth("network", "create", "--label", "team=a", "n1").returncode == 0
    r = berth("network", "ls", "--filter", "name=n1", "--format", '{{.Name}} {{.Label "team"}}')
    assert r.stdout == "n1 a\n"
    # json output stays the plain row; a field is still not a function
    row = json.loads(berth("ps", "-a", "--format", "json").stdout)
    assert row["Labels"] == "com.example.tier=web"
    r = berth("ps", "-a", "--format", '{{.Names "x"}}')
    assert r.returncode != 0 and "cannot be invoked as function" in r.stderr
    berth("rm", "c1")
    berth("network", "rm", "n1")


def test_label_method_needs_a_row_that_offers_it() -> None:
    t = compile_template('{{.Label "a"}}-{{.Labels}}')
    assert t.render(LabeledRow({"Labels": "a=1"}, {"a": "1"})) == "1-a=1"


def test_image_inspect_shapes_as_docker(berth, busybox_image):
    img = json.loads(berth("image", "inspect", "busybox").stdout)[0]
    assert img["Container"] == "" and img["VirtualSize"] == img["Size"]
    assert list(img["ContainerConfig"])[:3] == ["Hostname", "Domainname", "User"]
    assert img["Config"]["Labels"] is None and img["Config"]["Cmd"] == ["sh"]
    r = berth("image", "inspect", "--format",
              "{{.Config.Labels}}|{{.Config.Env}}|{{.Config.Volumes}}|{{json .Config.Labels}}",
              "busybox")
    assert r.stdout == "map[]|[]|map[]|null\n", r.stderr


def test_container_inspect_hostconfig_keys_and_sizes(berth, busybox_image):
    berth("run", "--name", "sz", "busybox", "sh", "-c", "head -c 5000 /dev/zero > /f")
    info = json.loads(berth("inspect", "sz").stdout)[0]
    omitempty = {"Mounts", "StorageOpt", "Sysctls"}  # Docker omits these when empty
    assert set(_spec_keys("HostConfig")) - set(info["HostConfig"]) - omitempty == set()
    assert "SizeRw" not in info
    sized = json.loads(berth("inspect", "-s", "sz").stdout)[0]
    assert sized["SizeRw"] >= 5000
    assert sized["SizeRootFs"] >= sized["SizeRw"] + 1_000_000  # plus busybox
    r = berth("inspect", "-s", "--format", "{{.HostConfig.ShmSize}} {{.HostConfig.CpusetCpus}}|",
              "sz")
    assert r.stdout == "67108864 |\n"
    berth("rm", "sz")


def test_info_has_dockers_keys(berth, berth_env):
    data = json.loads(berth("info", "--format", "json").stdout)
    assert set(_spec_keys("SystemInfo")) - set(data) == set()
    r = berth("info", "--format", "{{.OSType}} {{.NCPU}} {{.MemTotal}} {{.Swarm.LocalNodeState}}")
    os_type, ncpu, mem, swarm = r.stdout.split()
    assert (os_type, int(ncpu), swarm) == ("linux", os.cpu_count(), "inactive")
    assert int(mem) > 100 << 20
    assert re.fullmatch(r"([0-9A-F]{4}:){11}[0-9A-F]{4}",
                        berth("info", "--format", "{{.ID}}").stdout.strip())
