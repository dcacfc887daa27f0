"""``images --filter`` and listing options, driven through the Engine and the CLI."""

from __future__ import annotations

import time


def _import(engine, tar, ref, *changes):  # type: ignore[no-untyped-def]
    with open(tar, "rb") as f:
        return engine.import_image(f, ref, changes=list(changes))


def test_before_since_label_reference(engine, busybox_tar, berth):  # type: ignore[no-untyped-def]
    a = _import(engine, busybox_tar, "app/one:1", "LABEL tier=web")
    time.sleep(1.1)  # created times have one-second resolution in configs
    b = _import(engine, busybox_tar, "app/two:2", "LABEL tier=db")
    time.sleep(1.1)
    c = _import(engine, busybox_tar, "other:3", "LABEL tier=web", "LABEL extra=yes")

    def ids(*args: str) -> list[str]:
        r = berth("images", "-q", "--no-trunc", *args)
        assert r.returncode == 0, r.stderr
        return r.stdout.split()

    assert ids() == [c, b, a]  # newest first
    assert ids("--filter", "before=app/two:2") == [a]
    assert ids("--filter", "since=app/two:2") == [c]
    assert ids("--filter", "label=tier=web") == [c, a]
    assert ids("--filter", "label=extra") == [c]
    assert ids("--filter", "label=tier=web", "--filter", "label=extra") == [c]
    assert ids("--filter", "reference=app/*") == [b, a]
    assert ids("--filter", "reference=app/one:1") == [a]
    assert ids("app/two") == [b]
    assert ids("--filter", "dangling=false") == [c, b, a]
    r = berth("images", "--filter", "dangling=maybe")
    assert r.returncode == 1 and "dangling=maybe" in r.stderr


def test_digests_column(engine, busybox_image, berth):  # type: ignore[no-untyped-def]
    from berth.oci import reference

    manifest = engine.image(busybox_image).manifest_digest
    with engine.store.db.tx() as tx:  # as a pull records it
        tx.execute("INSERT INTO repo_digests VALUES (?,?,?)",
                   (reference.parse("busybox").repository, manifest, busybox_image))
    r = berth("images", "--digests")
    header, row = r.stdout.splitlines()
    assert header.split()[:3] == ["REPOSITORY", "TAG", "DIGEST"]
    assert manifest in row
    r = berth("inspect", "--format", "{{json .RepoDigests}}", "busybox")
    assert r.stdout.strip() == f'["busybox@{manifest}"]'
    assert berth("images", "-q", f"busybox@{manifest}").stdout.strip() == busybox_image[7:19]


def test_engine_api_is_importable_and_quiet(engine, busybox_tar, capsys):  # type: ignore[no-untyped-def]
    import berth

    assert berth.Engine is type(engine)
    _import(engine, busybox_tar, "quiet:1")
    engine.rmi(["quiet:1"])
    assert capsys.readouterr() == ("", "")
