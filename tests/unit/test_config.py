"""berth.toml: sizes, percentages, durations, merging of the two files, extension sections."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from berth import config
from berth.errors import InvalidArgument


@pytest.fixture
def files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    system = tmp_path / "etc-berth.toml"
    monkeypatch.setenv("BERTH_CONFIG", str(system))
    root = tmp_path / "root"
    root.mkdir()
    return system, root


def test_defaults_without_files(files: tuple[Path, Path]) -> None:
    _, root = files
    cfg = config.load(str(root))
    assert cfg.storage.max_size is None and cfg.gc.images == "dangling"
    assert cfg.gc.containers_after is None and cfg.gc.build_cache is True


def test_root_file_overrides_the_host_file_key_by_key(files: tuple[Path, Path]) -> None:
    system, root = files
    system.write_text('[storage]\nmax_size = "20GB"\nmin_free = "2GB"\n'
                      '[gc]\nkeep_duration = "7d"\n')
    (root / "berth.toml").write_text('[storage]\nmax_size = "50%"\n'
                                     '[gc]\ncontainers_after = "12h"\n')
    cfg = config.load(str(root))
    assert cfg.storage.max_size is not None and cfg.storage.max_size.percent == 50
    assert cfg.storage.min_free is not None and cfg.storage.min_free.bytes == 2 << 30
    assert cfg.gc.keep_duration == 7 * 86400 and cfg.gc.containers_after == 12 * 3600
    fs = os.statvfs(str(root))
    assert cfg.storage.max_size.resolve(str(root)) == fs.f_blocks * fs.f_frsize // 2


@pytest.mark.parametrize("text", ['[storage]\nmax_size = "big"\n', '[storage]\nmax_size = "0%"\n',
                                  '[gc]\nkeep_duration = "7 days"\n', '[gc]\nbuild_cache = "yes"\n',
                                  "[storage\n", "storage = 3\n"])
def test_bad_values_name_the_file(files: tuple[Path, Path], text: str) -> None:
    _, root = files
    (root / "berth.toml").write_text(text)
    with pytest.raises(InvalidArgument, match="berth.toml"):
        config.load(str(root))


def test_other_sections_register_their_own_parser(files: tuple[Path, Path]) -> None:
    _, root = files
    # a section of this test's own: the real [push] parser (registered by push_layers when
    # it is imported) must not be replaced or removed for the tests that run after this one
    (root / "berth.toml").write_text('[probe]\ncompression = "zstd"\n[unknown]\nx = 1\n')
    config.register_section("probe", lambda d: ("parsed", d["compression"]))
    try:
        cfg = config.load(str(root))
        assert cfg.section("probe") == ("parsed", "zstd")
        assert cfg.section("unknown") == {"x": 1}  # kept raw, never an error
    finally:
        del config.SECTIONS["probe"]


def test_a_section_registered_after_loading_is_parsed_on_first_use(
        files: tuple[Path, Path]) -> None:
    _, root = files
    (root / "berth.toml").write_text('[late]\nvalue = "x"\n')
    cfg = config.load(str(root))
    config.register_section("late", lambda d: ("parsed", d["value"]))
    try:
        assert cfg.section("late") == ("parsed", "x")
    finally:
        del config.SECTIONS["late"]


def test_current_rereads_a_changed_file(files: tuple[Path, Path]) -> None:
    _, root = files
    assert config.current(str(root)).storage.max_size is None
    (root / "berth.toml").write_text('[storage]\nmax_size = "1GB"\n')
    cfg = config.current(str(root))
    assert cfg.storage.max_size is not None and cfg.storage.max_size.bytes == 1 << 30
