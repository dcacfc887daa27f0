"""Subordinate ID files: lookup by name or uid, the maps made from them, the errors."""

from __future__ import annotations

import os
import pwd

import pytest

from berth.rootless import idmaps


def _me() -> tuple[int, str]:
    uid = os.geteuid()
    return uid, pwd.getpwuid(uid).pw_name


def test_range_by_name_or_number_first_wins(tmp_path):
    uid, name = _me()
    f = tmp_path / "subuid"
    f.write_text(f"other:1:65536\n# comment\nbad line\n{uid}:200000:65536\n"
                 f"{name}:300000:65536\n")
    assert idmaps.sub_range(str(f), uid) == (200000, 65536)
    maps = idmaps.maps_for(str(f), "uid", 1234, uid)
    assert maps == [idmaps.IdMap(0, 1234, 1), idmaps.IdMap(1, 200000, 65535)]
    assert idmaps.argv("newuidmap", 42, maps) == ["newuidmap", "42", "0", "1234", "1",
                                                  "1", "200000", "65535"]


def test_missing_and_short_ranges_name_the_file(tmp_path):
    uid, name = _me()
    f = tmp_path / "subgid"
    f.write_text("other:1:65536\n")
    with pytest.raises(idmaps.IdMapError, match=f"no subordinate GID range for user {name} "
                       f"in {f}"):
        idmaps.maps_for(str(f), "gid", 0, uid)
    f.write_text(f"{name}:100000:65534\n")
    with pytest.raises(idmaps.IdMapError, match="has 65534 IDs, 65535 are needed"):
        idmaps.maps_for(str(f), "gid", 0, uid)
    assert idmaps.IdMapError("x").exit_code == 125
    assert idmaps.sub_range(str(tmp_path / "absent"), uid) is None
