"""A throwaway overlay of an image for one build step, and the layer it leaves behind.

RUN, COPY, ADD and WORKDIR all change files the same way: mount the image's layers
read-only under a fresh upper dir, let the step write through the merged view, then turn
the upper dir into a layer (the same writer ``commit`` uses, so overlay whiteouts become
OCI whiteouts). Everything lives in one directory under the store's ``tmp/`` named with
our pid, so a crash leaves only what the next start's ``clean_tmp`` removes, and
:meth:`Workspace.close` undoes every mount this workspace made on every path out.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from berth.container.rootfs import mount_overlay, unmount
from berth.images.ingest import IngestedLayer
from berth.store.fsutil import remove_tree
from berth.store.store import Store

_LINKS_ABOVE = 20  # as ContainerService: deep images mount through the short links


def image_lowers(store: Store, image_id: str | None) -> list[str]:
    """The image's layer dirs, topmost first; lazily pulled layers are unpacked first."""
    if image_id is None:
        return []
    from berth.images.unpack import ensure_unpacked

    ensure_unpacked(store, image_id)
    rows = store.db.query("SELECT chain_id FROM image_layers WHERE image_id=? ORDER BY idx",
                          (image_id,))
    return [store.layers.diff_dir(r["chain_id"]) for r in reversed(rows)]


class Workspace:
    """``dir/`` holds ``upper work merged empty`` plus any files a step needs (bundle)."""

    def __init__(self, store: Store, lowers: list[str], *, kind: str = "step") -> None:
        self.store = store
        self.lowers = list(lowers)
        self.dir = os.path.join(store.tmp, f"build-{os.getpid()}-{kind}-{os.urandom(6).hex()}")
        self.upper = os.path.join(self.dir, "upper")
        self.work = os.path.join(self.dir, "work")
        self.merged = os.path.join(self.dir, "merged")
        self._mounts: list[str] = []
        for d in (self.upper, self.work, self.merged):
            os.makedirs(d, mode=0o755)
        os.chmod(self.dir, 0o700)

    def mount(self) -> str:
        """Mount the overlay; returns the merged dir (the step's view of ``/``)."""
        lowers = self.lowers
        if not lowers:  # scratch: overlay still wants a lower
            empty = os.path.join(self.dir, "empty")
            os.makedirs(empty, mode=0o755, exist_ok=True)
            lowers = [empty]
        links = self.store.layers.links if len(lowers) > _LINKS_ABOVE else None
        mount_overlay(lowers, self.upper, self.work, self.merged, links_dir=links)
        self._mounts.append(self.merged)
        return self.merged

    def track(self, target: str) -> None:
        """Unmount ``target`` (a mount a step added) when the workspace closes."""
        self._mounts.append(target)

    def path(self, name: str) -> str:
        return os.path.join(self.dir, name)

    def close(self) -> None:
        errors = []
        for target in reversed(self._mounts):
            try:
                unmount(target)
            except Exception as e:  # noqa: BLE001 - keep undoing, report the first
                errors.append(e)
        self._mounts.clear()
        if not errors:
            remove_tree(self.dir)
        if errors:
            raise errors[0]

    def __enter__(self) -> Workspace:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def has_changes(self, exclude: Callable[[str], bool] | None = None) -> bool:
        """Whether the upper dir holds anything that would go into a layer."""
        return _any_entry(self.upper, "", exclude)

    def layer(self, parent_chain: str | None, *, epoch: int | None,
              exclude: Callable[[str], bool] | None = None) -> IngestedLayer | None:
        """The upper dir as a stored layer (None when the step changed nothing).

        The caller holds ``store.ingesting()`` and hands the result to ``commit_step``.
        """
        from berth.container.commit import layer_from_upper

        if not self.has_changes(exclude):
            return None
        return layer_from_upper(self.store, self.upper, parent_chain, exclude,
                                source_date_epoch=epoch)


def _any_entry(root: str, prefix: str, exclude: Callable[[str], bool] | None) -> bool:
    try:
        names = os.listdir(os.path.join(root, prefix) if prefix else root)
    except OSError:
        return False
    for name in names:
        rel = prefix + name
        if exclude is None or not exclude(rel):
            return True
    return False
