"""Image archives: write→read round trips, the classic docker layout, malformed input."""

from __future__ import annotations

import gzip
import io
import json
import os
import tarfile

import pytest

from berth.errors import DigestMismatch, InvalidArchive
from berth.oci import mediatypes as mt
from berth.oci.archive_read import open_archive
from berth.oci.archive_write import ExportImage, ExportLayer, write_docker_archive, write_oci_archive
from berth.oci.digest import hex_of, sha256_bytes
from berth.oci.image_config import new_config
from berth.oci.manifest import Descriptor, build_index, build_manifest, host_arch

CREATED = "2024-01-01T00:00:00Z"


def _layer_tar(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for name, data in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _export_image(layer_tars: list[bytes], tags: list[str], *, compress: bool = False,
                  label: str = "") -> ExportImage:
    layers = []
    for raw in layer_tars:
        blob = gzip.compress(raw, mtime=0) if compress else raw
        layers.append(ExportLayer(mt.OCI_LAYER_GZIP if compress else mt.OCI_LAYER,
                                  sha256_bytes(blob), len(blob), sha256_bytes(raw),
                                  lambda b=blob: io.BytesIO(b)))
    config = new_config(diff_ids=[x.diff_id for x in layers], architecture="amd64",
                        created=CREATED, config={"Cmd": ["sh"], "Labels": {"l": label}},
                        history=[{"created_by": "x"} for _ in layers])
    manifest = build_manifest(Descriptor(mt.OCI_CONFIG, sha256_bytes(config), len(config)),
                              [Descriptor(x.media_type, x.digest, x.size) for x in layers])
    return ExportImage(config, sha256_bytes(config), manifest, sha256_bytes(manifest),
                       mt.OCI_MANIFEST, layers, tags)


L1 = _layer_tar({"bin/a": b"a" * 1000})
L2 = _layer_tar({"etc/b": b"bbb"})
L3 = _layer_tar({"etc/c": b"ccc"})


class _Pipe(io.RawIOBase):
    """A write-only, non-seekable sink, like stdout piped to another process."""

    def __init__(self) -> None:
        self.buf = bytearray()

    def writable(self) -> bool:
        return True

    def write(self, b) -> int:  # type: ignore[no-untyped-def]
        self.buf += bytes(b)
        return len(b)

    def seekable(self) -> bool:
        return False

    def tell(self) -> int:
        raise OSError("illegal seek")


def _save(tmp_path, writer, images, name="out.tar") -> str:
    sink = _Pipe()
    if writer is write_docker_archive:
        writer(sink, images, str(tmp_path))
    else:
        writer(sink, images)
    path = os.path.join(tmp_path, name)
    with open(path, "wb") as f:
        f.write(sink.buf)
    return path


def _read_all(layer) -> bytes:
    with layer.open() as f:
        return f.read()


def test_docker_archive_round_trip(tmp_path):
    a = _export_image([L1, L2], ["busybox:latest", "example.com/x/y:1"], compress=True)
    b = _export_image([L1, L3], [], label="b")
    path = _save(tmp_path, write_docker_archive, [a, b])
    with open_archive(path) as arc:
        assert arc.format == "docker-archive"
        assert [i.config_digest for i in arc.images] == [a.config_digest, b.config_digest]
        ia, ib = arc.images
        assert ia.repo_tags == ["busybox:latest", "example.com/x/y:1"] and ib.repo_tags == []
        assert [x.diff_id for x in ia.layers] == [x.diff_id for x in a.layers]
        assert _read_all(ia.layers[0]) == L1 and _read_all(ia.layers[1]) == L2
        assert ia.layers[0].digest == sha256_bytes(L1)
        assert ia.layers[0].media_type == mt.OCI_LAYER
        assert ia.manifest is not None and ia.manifest_media_type == mt.OCI_MANIFEST
    with tarfile.open(path) as tf:
        names = tf.getnames()
        assert names == sorted(names)
        assert names.count(f"blobs/sha256/{hex_of(sha256_bytes(L1))}") == 1
        assert {"manifest.json", "index.json", "oci-layout", "repositories"} <= set(names)
        assert all(m.mtime == 0 and m.uid == 0 for m in tf.getmembers())
        manifest = json.load(tf.extractfile("manifest.json"))
        assert manifest[0]["Config"] == f"blobs/sha256/{hex_of(a.config_digest)}"
        repos = json.load(tf.extractfile("repositories"))
        assert repos["busybox"]["latest"] == hex_of(sha256_bytes(L2))
        index = json.load(tf.extractfile("index.json"))
        names_ann = [m.get("annotations", {}) for m in index["manifests"]]
        assert names_ann[0] == {"io.containerd.image.name": "docker.io/library/busybox:latest",
                                "org.opencontainers.image.ref.name": "latest"}
    # deterministic
    again = _save(tmp_path, write_docker_archive, [a, b], name="again.tar")
    assert open(again, "rb").read() == open(path, "rb").read()
    assert not [n for n in os.listdir(tmp_path) if n.startswith("berth-save-")]


def test_docker_archive_refuses_bad_layer(tmp_path):
    img = _export_image([L1], ["a:b"], compress=True)
    img.layers[0].diff_id = sha256_bytes(b"other")
    with pytest.raises(DigestMismatch):
        write_docker_archive(_Pipe(), [img], str(tmp_path))


def test_oci_archive_round_trip(tmp_path):
    a = _export_image([L1, L2], ["busybox:latest"], compress=True)
    b = _export_image([L1], ["busybox:old", "other:1"], label="b")
    path = _save(tmp_path, write_oci_archive, [a, b])
    with open_archive(path) as arc:
        assert arc.format == "oci-archive"
        ia, ib = arc.images
        assert ia.config_digest == a.config_digest and ia.manifest == a.manifest
        assert ia.manifest_digest == a.manifest_digest
        assert ia.repo_tags == ["busybox:latest"]
        assert ib.repo_tags == ["busybox:old", "other:1"]
        assert ia.layers[0].media_type == mt.OCI_LAYER_GZIP
        assert ia.layers[0].digest == a.layers[0].digest
        assert gzip.decompress(_read_all(ia.layers[1])) == L2
        assert ia.layers[1].diff_id == sha256_bytes(L2)
    assert open(_save(tmp_path, write_oci_archive, [a, b], "2.tar"), "rb").read() == \
        open(path, "rb").read()


def _unpack(tar_path: str, dest) -> None:
    """Unpack a trusted test tar member by member (extractall is banned in this project)."""
    with tarfile.open(tar_path) as tf:
        for m in tf.getmembers():
            target = os.path.join(dest, m.name)
            if m.isdir():
                os.makedirs(target, exist_ok=True)
            elif m.isfile():
                os.makedirs(os.path.dirname(target), exist_ok=True)
                with open(target, "wb") as f:
                    f.write(tf.extractfile(m).read())


def test_oci_dir(tmp_path):
    a = _export_image([L1], ["busybox:latest"])
    _unpack(_save(tmp_path, write_oci_archive, [a]), tmp_path / "dir")
    with open_archive(str(tmp_path / "dir")) as arc:
        assert arc.format == "oci-dir"
        assert arc.images[0].config_digest == a.config_digest
        assert _read_all(arc.images[0].layers[0]) == L1


def test_compressed_archive(tmp_path):
    a = _export_image([L1], ["busybox:latest"])
    path = _save(tmp_path, write_docker_archive, [a])
    gz = tmp_path / "x.tar.gz"
    gz.write_bytes(gzip.compress(open(path, "rb").read()))
    with open_archive(str(gz)) as arc:
        assert arc.images[0].config_digest == a.config_digest
        assert _read_all(arc.images[0].layers[0]) == L1
    assert sorted(os.listdir(tmp_path)) == ["out.tar", "x.tar.gz"]


# --- hand-made archives -----------------------------------------------------------------------

def _tar(tmp_path, entries: dict[str, object], name: str = "a.tar") -> str:
    """Build a tar: bytes → file, ("sym", target) → symlink, ("dir",) → directory."""
    path = str(tmp_path / name)
    with tarfile.open(path, "w") as tf:
        for n, v in entries.items():
            info = tarfile.TarInfo(n)
            if isinstance(v, tuple) and v[0] == "sym":
                info.type, info.linkname = tarfile.SYMTYPE, v[1]
                tf.addfile(info)
            elif isinstance(v, tuple):
                info.type = tarfile.DIRTYPE
                tf.addfile(info)
            else:
                data = v if isinstance(v, bytes) else json.dumps(v).encode()
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
    return path


def _classic(layers=(L1, L2), *, layer_names=None, config=None, cfg_name=None, extra=None):
    diff_ids = [sha256_bytes(x) for x in layers]
    cfg = config or new_config(diff_ids=diff_ids, architecture="amd64", created=CREATED)
    cfg_name = cfg_name or hex_of(sha256_bytes(cfg)) + ".json"
    ids = [hex_of(sha256_bytes(f"id{i}".encode())) for i in range(len(layers))]
    entries: dict[str, object] = {cfg_name: cfg}
    for i, raw in zip(ids, layers):
        entries[f"{i}/"] = ("dir",)
        entries[f"{i}/VERSION"] = b"1.0"
        entries[f"{i}/layer.tar"] = raw
    names = layer_names or [f"{i}/layer.tar" for i in ids]
    entries["manifest.json"] = [{"Config": cfg_name, "RepoTags": ["busybox:latest"],
                                 "Layers": names}]
    entries["repositories"] = {"busybox": {"latest": ids[-1]}}
    entries.update(extra or {})
    return entries, sha256_bytes(cfg), ids


def test_classic_docker_layout_with_legacy_symlink(tmp_path):
    entries, digest, ids = _classic(layers=(L1, L1))
    # docker's legacy archives link a repeated layer to the first copy
    entries[f"{ids[1]}/layer.tar"] = ("sym", f"../{ids[0]}/layer.tar")
    with open_archive(_tar(tmp_path, entries)) as arc:
        img = arc.images[0]
        assert arc.format == "docker-archive" and img.config_digest == digest
        assert img.repo_tags == ["busybox:latest"] and img.manifest is None
        assert [_read_all(x) for x in img.layers] == [L1, L1]
        assert img.layers[1].diff_id == sha256_bytes(L1) and img.layers[1].digest is None


def test_compressed_layer_in_docker_archive_is_sniffed(tmp_path):
    entries, _, ids = _classic(layers=(L1,))
    entries[f"{ids[0]}/layer.tar"] = gzip.compress(L1)
    with open_archive(_tar(tmp_path, entries)) as arc:
        assert arc.images[0].layers[0].media_type == mt.OCI_LAYER_GZIP


def _expect(tmp_path, entries, needle, exc=InvalidArchive):
    with pytest.raises(exc) as ei:
        open_archive(_tar(tmp_path, entries))
    assert needle in str(ei.value), str(ei.value)
    assert "\n" not in str(ei.value)


def test_missing_manifest(tmp_path):
    entries, _, _ = _classic()
    del entries["manifest.json"]
    _expect(tmp_path, entries, "not a docker-archive or OCI layout")


def test_bad_json(tmp_path):
    entries, _, _ = _classic()
    entries["manifest.json"] = b"[{nope"
    _expect(tmp_path, entries, "manifest.json is not valid JSON")
    entries["manifest.json"] = {"Config": "x"}
    _expect(tmp_path, entries, "must be a JSON list")


def test_layer_path_escape(tmp_path):
    entries, _, ids = _classic(layer_names=["../../etc/passwd", "x/layer.tar"])
    _expect(tmp_path, entries, "escapes the archive")
    entries, _, ids = _classic(layer_names=["/etc/passwd", "x/layer.tar"])
    _expect(tmp_path, entries, "absolute path")


def test_symlink_escape(tmp_path):
    entries, _, ids = _classic()
    entries[f"{ids[0]}/layer.tar"] = ("sym", "../../../etc/passwd")
    _expect(tmp_path, entries, "links outside the archive")
    entries[f"{ids[0]}/layer.tar"] = ("sym", "/etc/passwd")
    _expect(tmp_path, entries, "links outside the archive")


def test_config_digest_mismatch(tmp_path):
    entries, _, _ = _classic(cfg_name="f" * 64 + ".json")
    _expect(tmp_path, entries, "does not match its digest", DigestMismatch)
    entries, _, _ = _classic(cfg_name="blobs/sha256/" + "f" * 64)
    _expect(tmp_path, entries, "does not match its digest")


def test_invalid_digest_names(tmp_path):
    entries, _, _ = _classic(cfg_name="blobs/sha256/nothex")
    _expect(tmp_path, entries, "invalid digest in path")


def test_layer_count_mismatch(tmp_path):
    cfg = new_config(diff_ids=[sha256_bytes(L1)], architecture="amd64", created=CREATED)
    entries, _, _ = _classic(config=cfg)
    _expect(tmp_path, entries, "has 1 diff_ids but manifest.json lists 2 layers")


def test_missing_layer_member(tmp_path):
    entries, _, ids = _classic()
    del entries[f"{ids[1]}/layer.tar"]
    _expect(tmp_path, entries, "not found in archive")


def test_bad_config(tmp_path):
    cfg = b'{"rootfs": {"type": "layers", "diff_ids": ["sha256:bad"]}}'
    entries, _, _ = _classic(config=cfg)
    _expect(tmp_path, entries, "invalid diff_id")


def test_not_a_tar(tmp_path):
    p = tmp_path / "junk.tar"
    p.write_bytes(b"hello world" * 100)
    with pytest.raises(InvalidArchive):
        open_archive(str(p))
    with pytest.raises(InvalidArchive):
        open_archive(str(tmp_path / "missing.tar"))


# --- OCI layouts by hand ----------------------------------------------------------------------

def _oci_entries(index_entries, blobs: dict[str, bytes]):
    entries: dict[str, object] = {"oci-layout": {"imageLayoutVersion": "1.0.0"},
                                  "index.json": {"schemaVersion": 2, "manifests": index_entries}}
    for d, data in blobs.items():
        entries[f"blobs/sha256/{hex_of(d)}"] = data
    return entries


def _oci_image():
    cfg = new_config(diff_ids=[sha256_bytes(L1)], architecture=host_arch(), created=CREATED)
    man = build_manifest(Descriptor(mt.OCI_CONFIG, sha256_bytes(cfg), len(cfg)),
                         [Descriptor(mt.OCI_LAYER, sha256_bytes(L1), len(L1))])
    blobs = {sha256_bytes(cfg): cfg, sha256_bytes(man): man, sha256_bytes(L1): L1}
    return cfg, man, blobs


def test_oci_nested_index_and_ref_name(tmp_path):
    cfg, man, blobs = _oci_image()
    inner = build_index([
        Descriptor(mt.OCI_MANIFEST, sha256_bytes(man), len(man),
                   platform={"architecture": host_arch(), "os": "linux"}),
        Descriptor(mt.OCI_MANIFEST, "sha256:" + "e" * 64, 5,
                   platform={"architecture": "unknown", "os": "unknown"})])
    blobs[sha256_bytes(inner)] = inner
    top = [{"mediaType": mt.OCI_INDEX, "digest": sha256_bytes(inner), "size": len(inner),
            "annotations": {"org.opencontainers.image.ref.name": "example.com/app:2"}}]
    with open_archive(_tar(tmp_path, _oci_entries(top, blobs))) as arc:
        assert arc.images[0].config_digest == sha256_bytes(cfg)
        assert arc.images[0].repo_tags == ["example.com/app:2"]


def test_oci_bare_ref_name_is_not_a_name(tmp_path):
    cfg, man, blobs = _oci_image()
    top = [{"mediaType": mt.OCI_MANIFEST, "digest": sha256_bytes(man), "size": len(man),
            "annotations": {"org.opencontainers.image.ref.name": "latest"}}]
    with open_archive(_tar(tmp_path, _oci_entries(top, blobs))) as arc:
        assert arc.images[0].repo_tags == []


def test_oci_invalid_digest_and_mismatch(tmp_path):
    cfg, man, blobs = _oci_image()
    top = [{"mediaType": mt.OCI_MANIFEST, "digest": "sha256:../../../etc/passwd", "size": 3}]
    _expect(tmp_path, _oci_entries(top, blobs), "digest")
    wrong = dict(blobs)
    wrong[sha256_bytes(man)] = man + b" "
    top = [{"mediaType": mt.OCI_MANIFEST, "digest": sha256_bytes(man), "size": len(man)}]
    _expect(tmp_path, _oci_entries(top, wrong), "mismatch", DigestMismatch)
    missing = {k: v for k, v in blobs.items() if v is not L1}
    _expect(tmp_path, _oci_entries(top, missing), "is missing")
    entries = _oci_entries(top, blobs)
    entries["oci-layout"] = {"imageLayoutVersion": "2.0.0"}
    _expect(tmp_path, entries, "oci-layout version")
