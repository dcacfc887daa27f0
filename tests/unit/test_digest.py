"""Digest validation (a digest becomes a path only after it) and streaming verification."""

from __future__ import annotations

import hashlib
import io

import pytest

from berth.errors import DigestMismatch, InvalidDigest
from berth.oci import digest as d

H64 = "a" * 64
H128 = "b" * 128


@pytest.mark.parametrize("bad", [
    "", "sha256:", "sha256:" + H64[:-1], "sha256:" + H64 + "a", "sha256:" + H64.upper(),
    "sha256:../../../../etc/passwd", "sha256:" + "g" * 64, "md5:" + "a" * 32,
    "sha256:" + H64 + "\n", " sha256:" + H64, "sha256:" + H64 + "/x", "sha512:" + H64,
    "sha256:" + H128, H64, "sha256/" + H64,
])
def test_malformed_digests_refused(bad):
    with pytest.raises(InvalidDigest, match=r"^invalid digest: "):
        d.validate(bad)
    assert d.is_digest(bad) is False
    with pytest.raises(InvalidDigest):
        d.hex_of(bad)


def test_well_formed_digests():
    assert d.validate("sha256:" + H64) == "sha256:" + H64
    assert d.is_digest("sha256:" + H64) is True
    assert d.hex_of("sha256:" + H64) == H64
    # sha512 only where asked for: a path name, not the default sha256-only check
    with pytest.raises(InvalidDigest):
        d.validate("sha512:" + H128)
    assert d.validate("sha512:" + H128, algorithms=("sha256", "sha512")) == "sha512:" + H128
    assert d.hex_of("sha512:" + H128) == H128


def test_full_hex_id():
    assert d.is_full_hex_id(H64)
    for bad in (H64[:-1], H64 + "a", "sha256:" + H64, H64.upper(), H64[:-1] + "\n"):
        assert not d.is_full_hex_id(bad), bad


def test_hashing_helpers(tmp_path):
    data = b"x" * (d.CHUNK * 2 + 5)
    want = "sha256:" + hashlib.sha256(data).hexdigest()
    assert d.sha256_bytes(data) == want
    (tmp_path / "f").write_bytes(data)
    assert d.sha256_file(str(tmp_path / "f")) == (want, len(data))
    assert d.hasher("sha512:" + H128).name == "sha512"
    assert d.hasher().name == "sha256"
    with pytest.raises(InvalidDigest):
        d.hasher("md5")


def _reader(data: bytes, algorithm: str = "sha256") -> d.DigestingReader:
    return d.DigestingReader(io.BytesIO(data), algorithm)


def test_digesting_reader_counts_every_byte():
    data = bytes(range(256)) * 5000
    r = _reader(data)
    assert r.read(10) == data[:10]
    buf = bytearray(100)
    assert r.readinto(buf) == 100 and bytes(buf) == data[10:110]
    r.drain()
    assert r.size == len(data)
    assert r.digest == d.sha256_bytes(data)
    r.verify(d.sha256_bytes(data), len(data))
    r.verify(d.sha256_bytes(data))
    r.verify(d.sha256_bytes(data), -1)  # unknown size
    assert r.read() == b"" and r.readinto(bytearray(4)) == 0 and r.size == len(data)
    assert _reader(b"abc").read() == b"abc"  # no size: everything
    r512 = _reader(data, "sha512")
    r512.drain()
    assert r512.digest == "sha512:" + hashlib.sha512(data).hexdigest()


def test_digesting_reader_refuses_other_bytes():
    r = _reader(b"tampered")
    r.drain()
    with pytest.raises(DigestMismatch, match="digest mismatch"):
        r.verify(d.sha256_bytes(b"original"))
    with pytest.raises(DigestMismatch, match="size mismatch"):
        r.verify(d.sha256_bytes(b"tampered"), 9)
    with pytest.raises(DigestMismatch, match="size mismatch"):
        r.verify(d.sha256_bytes(b"tampered"), 0)
