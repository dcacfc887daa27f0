"""Capability names and Docker's merge rule, without a container (the container tests in
tests/security/test_container_security.py read the real CapEff)."""

from __future__ import annotations

import pytest

from berth.container import caps
from berth.errors import InvalidArgument


@pytest.mark.parametrize("name", ["net_admin", "NET_ADMIN", "CAP_NET_ADMIN", " cap_net_admin "])
def test_normalize(name):
    assert caps.normalize(name) == "CAP_NET_ADMIN"


def test_normalize_all_and_unknown():
    assert caps.normalize("all") == "ALL"
    with pytest.raises(InvalidArgument, match="^invalid capability: 'CAP_BOGUS'$"):
        caps.normalize("CAP_BOGUS")


def test_effective_set_is_bounded_by_what_we_hold(monkeypatch):
    monkeypatch.setattr(caps, "host_capabilities", lambda: ["CAP_CHOWN", "CAP_KILL"])
    assert caps.effective_set([], [], False) == ["CAP_CHOWN", "CAP_KILL"]
    assert caps.effective_set(["NET_ADMIN"], [], False) == ["CAP_CHOWN", "CAP_KILL"]
    assert caps.effective_set([], [], True) == ["CAP_CHOWN", "CAP_KILL"]


def test_effective_set_order_and_duplicates():
    assert caps.effective_set(["CHOWN", "NET_ADMIN", "net_admin"], [], False) == [
        *caps.DEFAULT_CAPS, "CAP_NET_ADMIN"]
    assert caps.effective_set(["CHOWN"], ["ALL"], False) == ["CAP_CHOWN"]


def test_decode():
    assert caps.decode(0) == set()
    assert caps.decode(1 | 1 << 21) == {"CAP_CHOWN", "CAP_SYS_ADMIN"}
    assert caps.decode(0xA80425FB) == set(caps.DEFAULT_CAPS)


def test_without_proc_everything_the_kernel_table_knows(monkeypatch):
    """No /proc (or no CapBnd line): assume the full table rather than nothing."""
    def no_proc(*a, **k):  # type: ignore[no-untyped-def]
        raise OSError("no /proc here")
    monkeypatch.setattr(caps, "open", no_proc, raising=False)
    assert caps._bounding_mask() == (1 << len(caps.CAPABILITIES)) - 1
    assert caps.host_capabilities() == list(caps.CAPABILITIES)


def test_host_capabilities_follow_the_kernel_and_bounding_set(monkeypatch, tmp_path):
    files = {"/proc/sys/kernel/cap_last_cap": "3\n",
             "/proc/self/status": "Name:\tx\nCapBnd:\t000000000000001d\n"}
    real_open = open

    def fake_open(path, *a, **k):  # type: ignore[no-untyped-def]
        if path in files:
            p = tmp_path / "f"
            p.write_text(files[path])
            return real_open(p, *a, **k)
        return real_open(path, *a, **k)
    monkeypatch.setattr(caps, "open", fake_open, raising=False)
    assert caps._bounding_mask() == 0x1D
    # caps 0..3 exist (4 is in the bounding set, not in this kernel); 1 is not bounded
    assert caps.host_capabilities() == ["CAP_CHOWN", "CAP_DAC_READ_SEARCH", "CAP_FOWNER"]
    files["/proc/self/status"] = "Name:\tx\n"
    assert caps._bounding_mask() == (1 << len(caps.CAPABILITIES)) - 1
