"""Manifests and indexes: strict parsing of both families, byte-stable building."""

from __future__ import annotations

import json

import pytest

from berth.errors import InvalidManifest
from berth.oci import mediatypes as mt
from berth.oci.manifest import (
    Descriptor,
    Index,
    Manifest,
    build_index,
    build_manifest,
    normalize_arch,
    parse_manifest,
)

D1 = "sha256:" + "a" * 64
D2 = "sha256:" + "b" * 64
D3 = "sha256:" + "c" * 64


def _doc(**over):
    doc = {"schemaVersion": 2, "mediaType": mt.OCI_MANIFEST,
           "config": {"mediaType": mt.OCI_CONFIG, "digest": D1, "size": 10},
           "layers": [{"mediaType": mt.OCI_LAYER_GZIP, "digest": D2, "size": 20}]}
    doc.update(over)
    return json.dumps(doc).encode()


def test_parse_oci_manifest():
    m = parse_manifest(_doc())
    assert isinstance(m, Manifest)
    assert m.media_type == mt.OCI_MANIFEST
    assert m.config.digest == D1 and m.layers[0].size == 20


def test_parse_docker_manifest_from_body_and_header():
    raw = _doc(mediaType=mt.DOCKER_MANIFEST)
    assert parse_manifest(raw).media_type == mt.DOCKER_MANIFEST
    assert parse_manifest(raw, mt.DOCKER_MANIFEST + "; charset=utf-8").is_docker


def test_detect_without_media_type():
    doc = json.loads(_doc())
    del doc["mediaType"]
    assert parse_manifest(json.dumps(doc).encode()).media_type == mt.OCI_MANIFEST
    idx = parse_manifest(b'{"schemaVersion":2,"manifests":[]}')
    assert isinstance(idx, Index) and idx.media_type == mt.OCI_INDEX


@pytest.mark.parametrize("raw, needle", [
    (b"not json", "not valid JSON"),
    (b"[]", "JSON object"),
    (_doc(schemaVersion=1), "schema1"),
    (_doc(schemaVersion=3), "schemaVersion"),
    (_doc(schemaVersion=True), "schemaVersion"),
    (_doc(config=None), "config"),
    (_doc(layers={}), "layers"),
    (_doc(layers=[{"mediaType": mt.OCI_LAYER, "digest": "sha256:xyz", "size": 1}]), "digest"),
    (_doc(layers=[{"mediaType": mt.OCI_LAYER, "digest": "sha256:../../etc", "size": 1}]),
     "digest"),
    (_doc(layers=[{"mediaType": mt.OCI_LAYER, "digest": D2, "size": -1}]), "size"),
    (_doc(layers=[{"mediaType": mt.OCI_LAYER, "digest": D2, "size": "1"}]), "size"),
    (_doc(layers=[{"mediaType": mt.OCI_LAYER, "digest": D2, "size": 1.5}]), "size"),
    (_doc(layers=[{"digest": D2, "size": 1}]), "mediaType"),
    (_doc(annotations={"a": 1}), "annotations"),
    (_doc(mediaType="application/x-nope"), "unsupported"),
    (_doc(manifests=[]), "manifests"),
])
def test_invalid_manifests(raw, needle):
    with pytest.raises(InvalidManifest) as ei:
        parse_manifest(raw)
    assert needle in str(ei.value)
    assert "\n" not in str(ei.value)


def test_header_body_mismatch():
    with pytest.raises(InvalidManifest):
        parse_manifest(_doc(), mt.DOCKER_MANIFEST)


def test_too_large():
    with pytest.raises(InvalidManifest, match="too large"):
        parse_manifest(b" " * (4 * 1024 * 1024 + 1))


def test_build_is_stable_and_round_trips():
    cfg = Descriptor(mt.OCI_CONFIG, D1, 10)
    layers = [Descriptor(mt.OCI_LAYER_GZIP, D2, 20), Descriptor(mt.OCI_LAYER, D3, 30)]
    a = build_manifest(cfg, layers, annotations={"z": "1", "a": "2"})
    b = build_manifest(cfg, layers, annotations={"a": "2", "z": "1"})
    assert a == b
    assert a.startswith(b'{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest')
    assert list(json.loads(a)) == ["schemaVersion", "mediaType", "config", "layers", "annotations"]
    m = parse_manifest(a)
    assert [d.digest for d in m.layers] == [D2, D3]
    assert m.annotations == {"a": "2", "z": "1"}


def test_build_docker_converts_media_types():
    raw = build_manifest(Descriptor(mt.OCI_CONFIG, D1, 10), [Descriptor(mt.OCI_LAYER_GZIP, D2, 1)],
                         docker=True)
    m = parse_manifest(raw)
    assert m.media_type == mt.DOCKER_MANIFEST
    assert m.config.media_type == mt.DOCKER_CONFIG
    assert m.layers[0].media_type == mt.DOCKER_LAYER_GZIP
    with pytest.raises(InvalidManifest):
        build_manifest(Descriptor(mt.OCI_CONFIG, D1, 10), [], docker=True, annotations={"a": "b"})


def _index():
    return [
        Descriptor(mt.OCI_MANIFEST, D1, 1, platform={"architecture": "arm", "os": "linux",
                                                     "variant": "v7"}),
        Descriptor(mt.OCI_MANIFEST, D2, 1, platform={"architecture": "arm64", "os": "linux",
                                                     "variant": "v8"}),
        Descriptor(mt.OCI_MANIFEST, D3, 1, platform={"architecture": "amd64", "os": "linux"}),
        Descriptor(mt.OCI_MANIFEST, "sha256:" + "d" * 64, 1,
                   platform={"architecture": "unknown", "os": "unknown"}),
    ]


def test_build_index_and_select_platform():
    raw = build_index(_index())
    assert raw == build_index(_index())
    idx = parse_manifest(raw)
    assert isinstance(idx, Index) and len(idx.manifests) == 4
    assert idx.select_platform("linux", "amd64").digest == D3
    assert idx.select_platform("linux", "x86_64").digest == D3
    assert idx.select_platform("linux", "aarch64").digest == D2
    assert idx.select_platform("linux", "arm64").digest == D2
    assert idx.select_platform("linux", "arm", "v7").digest == D1
    with pytest.raises(InvalidManifest,
                       match="no matching manifest for linux/s390x in the manifest list entries"):
        idx.select_platform("linux", "s390x")
    docker = parse_manifest(build_index(_index(), docker=True))
    assert docker.media_type == mt.DOCKER_MANIFEST_LIST


def test_select_prefers_baseline_variant():
    idx = Index(mt.OCI_INDEX, [
        Descriptor(mt.OCI_MANIFEST, D1, 1, platform={"architecture": "amd64", "os": "linux",
                                                     "variant": "v3"}),
        Descriptor(mt.OCI_MANIFEST, D2, 1, platform={"architecture": "amd64", "os": "linux"}),
    ])
    assert idx.select_platform("linux", "amd64").digest == D2
    assert idx.select_platform("linux", "amd64", "v3").digest == D1


def test_arch_mapping():
    assert normalize_arch("x86_64") == ("amd64", None)
    assert normalize_arch("aarch64") == ("arm64", None)
    assert normalize_arch("armv7l") == ("arm", "v7")


def test_descriptor_json_round_trip():
    d = Descriptor(mt.OCI_MANIFEST, D1, 5, annotations={"k": "v"},
                   platform={"architecture": "amd64", "os": "linux"}, artifact_type="x/y")
    assert Descriptor.from_json(d.to_json()) == d


def test_mediatype_helpers():
    assert mt.is_manifest(mt.DOCKER_MANIFEST) and mt.is_index(mt.OCI_INDEX)
    assert not mt.is_manifest(mt.OCI_INDEX)
    assert mt.layer_compression(mt.DOCKER_LAYER_GZIP) == "gzip"
    assert mt.layer_compression(mt.OCI_LAYER_ZSTD) == "zstd"
    assert mt.layer_compression(mt.OCI_LAYER) == "none"
    assert mt.layer_compression(mt.DOCKER_FOREIGN_LAYER) == "gzip"
    assert mt.to_docker(mt.OCI_LAYER_GZIP) == mt.DOCKER_LAYER_GZIP
    assert mt.to_oci(mt.DOCKER_CONFIG) == mt.OCI_CONFIG
    assert mt.to_oci(mt.DOCKER_MANIFEST_LIST) == mt.OCI_INDEX
    assert mt.to_docker("x/unknown") == "x/unknown"
