"""The build executor: a plan in, an image out, one step at a time, cache first.

For each step the executor computes the cache key (parent image, expanded instruction,
build args it uses, a content hash of COPY/ADD sources, and what else changes the result)
and looks it up. A hit costs one SQLite query — no container, no mount, no copy of the
context — so a fully cached rebuild is hashing COPY sources (often not even that, see
:mod:`berth.build.sourcehash`) plus a tag write. A miss does the work on an overlay of the
current image (RUN in a container, COPY/ADD through the merged view, config edits in
memory) and commits the result as an intermediate image with ``parent`` set, recorded
under the key.

Failure leaves nothing half-made: a step's image is committed only after the step
succeeded, every workspace is unmounted and removed on every path out, and a RUN's
container is killed and deleted if we are interrupted. Steps that did succeed stay cached
(as Docker's classic builder keeps them), which is what makes the retry after a fix fast.
"""

from __future__ import annotations

import dataclasses
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from berth.build.cache import BuildCache
from berth.build.context import BuildContext
from berth.build.imagestate import ImageState, commit_step, created_at
from berth.build.parser import Dockerfile, parse_dockerfile
from berth.build.plan import BuildPlan, Stage, Step, plan
from berth.build.progress import BuildProgress, NullProgress, StepRef
from berth.build.sourcehash import SourceHasher
from berth.errors import BerthError, DockerfileError, NotFound
from berth.store.store import Store

_MAGIC = set("*?[")
_LINE_PREFIX = re.compile(r"^\S+:\d+: ")


@dataclass
class BuildOptions:
    """What ``berth build`` flags ask for (Docker's names)."""

    dockerfile: str = "Dockerfile"
    tags: list[str] = field(default_factory=list)
    build_args: dict[str, str] = field(default_factory=dict)
    target: str | None = None
    no_cache: bool = False
    pull: bool = False
    labels: dict[str, str] = field(default_factory=dict)
    secrets: dict[str, str] = field(default_factory=dict)   # id -> host file
    network: str = "default"  # RUN's network: default (= bridge, as run), none, host, NAME
    source_date_epoch: int | None = None


@dataclass
class BuildResult:
    image_id: str
    tags: list[str]
    warnings: list[str]
    cached_steps: int = 0
    total_steps: int = 0


class BuildSession:
    """One build: the services steps use, and the stages' results so far."""

    def __init__(self, store: Store, images: Any, runtime: Callable[[], Any],
                 pull: Callable[[str], Any], ctx: BuildContext, opts: BuildOptions,
                 progress: BuildProgress | None = None) -> None:
        if opts.network not in ("none", "host", "default", "bridge"):
            from berth.build.stepnet import resolve_mode

            resolve_mode(store, opts.network)  # a missing network fails now, not at RUN
        self.store = store
        self.images = images
        self._runtime_factory = runtime
        self._runtime: Any = None
        self._pull = pull
        self.ctx = ctx
        self.opts = opts
        self.progress = progress or NullProgress()
        self.network = "bridge" if opts.network == "default" else opts.network
        self.epoch = opts.source_date_epoch
        self.secrets = dict(opts.secrets)
        self.cache = BuildCache(store)
        self.hasher = SourceHasher(self.cache)
        self.results: dict[int, ImageState] = {}
        self._bases: dict[str, str] = {}
        self._mounted: dict[str | None, Any] = {}  # image -> mounted Workspace
        self._held: list[int] = []
        self.cached_steps = 0

    @property
    def _filename(self) -> str:
        """How errors name the Dockerfile (``Dockerfile:7: ...``)."""
        name = self.opts.dockerfile
        return "Dockerfile" if name in ("-", "") else os.path.basename(name)

    # -- services for steps ---------------------------------------------------------------
    @property
    def runtime(self) -> Any:
        if self._runtime is None:
            self._runtime = self._runtime_factory()
        return self._runtime

    def context_path(self, rel: str) -> str:
        return self.ctx.host_path(rel)

    @staticmethod
    def scoped(root: str | None, path: str) -> str:
        """Host path of an existing node of a mounted image, resolved inside it.

        Every symlink is followed by ``openat2(RESOLVE_IN_ROOT)`` and the answer is the
        node's real path, which has no symlink left in it; a mounted image changes under
        no one, so handing that path to the runtime cannot lead elsewhere. A missing
        node (a dangling link, say) is FileNotFoundError, never the host's file.
        """
        from berth.container.rootpath import RootFS

        assert root is not None
        with RootFS(root) as fs:
            return fs.host_path(path)

    def stage_image(self, index: int) -> str | None:
        return self.results[index].image_id

    def image_for(self, ref: str) -> str:
        """An image named in the Dockerfile: local, or pulled when missing (or --pull)."""
        if ref in self._bases:
            return self._bases[ref]
        image_id = None
        if not self.opts.pull:
            try:
                image_id = self.images.resolve(ref)
            except NotFound:
                pass
        if image_id is None:
            try:
                self._pull(ref)
                image_id = self.images.resolve(ref)
            except BerthError as e:
                raise NotFound(f"failed to resolve image {ref}: {e}") from None
        self._bases[ref] = image_id
        return image_id

    def mounted_image(self, image_id: str | None) -> str:
        """A mounted view of an image for ``COPY --from`` and ``RUN --mount from=``."""
        from berth.build.workspace import Workspace, image_lowers

        ws = self._mounted.get(image_id)
        if ws is None:
            ws = Workspace(self.store, image_lowers(self.store, image_id), kind="from")
            try:
                ws.mount()
            except BaseException:
                ws.close()
                raise
            self._mounted[image_id] = ws
        return ws.merged

    def cache_mount(self, cache_id: str, mode: int | None, uid: int | None,
                    gid: int | None, *, seed: str | None = None) -> str:
        """The cache dir for ``cache_id``, made on first use (from ``seed``, a directory
        with no symlink in its path, when given); swapped in by rename, so a killed
        build never leaves a half-made cache under the real name."""
        from berth.build.mounts_run import cache_dir_name

        path = os.path.join(cache_mounts_dir(self.store), cache_dir_name(cache_id))
        if not os.path.isdir(path):
            os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
            import shutil

            tmp = f"{path}.{os.getpid()}"
            seeded = seed is not None and os.path.isdir(seed)
            if seed is not None and seeded:
                shutil.copytree(seed, tmp, symlinks=True)  # links copied, never followed
            else:
                os.mkdir(tmp, 0o755 if mode is None else mode)
            if not seeded or uid is not None or gid is not None:
                os.chown(tmp, uid or 0, gid or 0)
            if not seeded or mode is not None:
                os.chmod(tmp, 0o755 if mode is None else mode)
            try:
                os.rename(tmp, path)
            except OSError:
                shutil.rmtree(tmp)  # another build made it first
        return path

    def hold(self, fd: int) -> None:
        self._held.append(fd)

    def _release(self) -> None:
        while self._held:
            os.close(self._held.pop())

    def close(self) -> None:
        self._release()
        while self._mounted:
            _, ws = self._mounted.popitem()
            ws.close()

    # -- planning -----------------------------------------------------------------------
    def plan(self) -> BuildPlan:
        """Parse and plan; bases with ONBUILD triggers get them spliced in after FROM."""
        df = parse_dockerfile(self.ctx.read_dockerfile(self.opts.dockerfile), self._filename)
        args = dict(self.opts.build_args)
        bp = plan(df, args, self.opts.target, image_env=self._image_env)
        triggers = {s.index: self._onbuild(s) for s in bp.build_stages}
        if any(triggers.values()):
            bp = plan(_splice(df, bp, triggers), args, self.opts.target,
                      image_env=self._image_env)
        return bp

    def _image_env(self, ref: str, platform: str | None) -> list[str]:
        cfg = self.images.config(self.image_for(ref))
        return list((cfg.get("config") or {}).get("Env") or [])

    def _onbuild(self, stage: Stage) -> list[str]:
        if stage.base_stage is not None or stage.base == "scratch":
            return []
        cfg = self.images.config(self.image_for(stage.base))
        return list((cfg.get("config") or {}).get("OnBuild") or [])

    # -- running ------------------------------------------------------------------------
    def run(self) -> BuildResult:
        from berth.build.stepnet import sweep

        try:
            sweep(self.store)  # what a killed build's RUN left on a network
            bp = self.plan()
            for w in bp.warnings:
                self.progress.warning(w)
            stages = bp.build_stages
            total = sum(1 + len(s.steps) for s in stages)
            number = 0
            state: ImageState | None = None
            for stage in stages:
                state = self._stage(stage, number, total, len(stages) > 1)
                number += 1 + len(stage.steps)
                self.results[stage.index] = state
                self._release()
            assert state is not None
            state = self._finish(state)
            image_id = state.image_id
            assert image_id is not None
            tags = self._tag(image_id)
            self.cache.touch_used()
            self.hasher.flush()
            self.progress.built(image_id, tags)
            return BuildResult(image_id, tags, bp.warnings, self.cached_steps, total)
        finally:
            self.close()

    def _ref(self, stage: Stage, number: int, total: int, index: int, text: str,
             line: int, multi: bool) -> StepRef:
        name = stage.name or (f"stage-{stage.index}" if multi else "")
        return StepRef(number, total, name, index, 1 + len(stage.steps),
                       text.split("\n", 1)[0], line)

    def _stage(self, stage: Stage, offset: int, total: int, multi: bool) -> ImageState:
        ins = stage.from_instruction
        ref = self._ref(stage, offset + 1, total, 1, ins.original, ins.line, multi)
        self.progress.step(ref)
        if stage.base_stage is not None:
            state = self.results[stage.base_stage]
        elif stage.base == "scratch":
            from berth.oci.manifest import host_arch

            state = ImageState.scratch(host_arch())
        else:
            image_id = self.image_for(stage.base)
            state = ImageState.load(self.store, image_id, self.images.layers(image_id))
        self.progress.base(ref, state.image_id)
        if state.config.get("OnBuild"):  # triggers run once; children do not inherit them
            state = state.derive()
            state.config["OnBuild"] = None
        if stage.base_stage is None and not any(
                e.startswith("PATH=") for e in state.config.get("Env") or []):
            from berth.build.plan import DEFAULT_PATH

            state = state.derive()  # Docker's builders do this at FROM (the planner too)
            state.config["Env"] = [*(state.config.get("Env") or []), f"PATH={DEFAULT_PATH}"]
        cmd_set = False
        for i, step in enumerate(stage.steps, start=2):
            ref = self._ref(stage, offset + i, total, i, step.instruction.original,
                            step.line, multi)
            self.progress.step(ref)
            state = self._step(ref, step, state, cmd_set)
            cmd_set = cmd_set or step.name == "CMD"
        return state

    def _step(self, ref: StepRef, step: Step, state: ImageState, cmd_set: bool) -> ImageState:
        from berth.build.steps_meta import META

        if step.name == "ARG":
            self.progress.done(ref, state.image_id or "", 0.0)
            return state
        started = time.monotonic()
        downloads: list[Any] = []
        try:
            prep = self._prepare(step, state, cmd_set, downloads)
            parent = state.image_id or "scratch"
            key = step.cache_key(parent, prep.get("sources"), prep["extra"])
            if not self.opts.no_cache:
                hit = self.cache.lookup(key)
                if hit is not None:
                    self.cached_steps += 1
                    self.progress.cached(ref, hit)
                    return ImageState.load(self.store, hit, self.images.layers(hit))
            after = state.derive()
            layer = None
            with self.store.ingesting():
                if step.name in META:
                    from berth.build.steps_meta import apply_meta

                    apply_meta(step, after.doc, cmd_set_in_stage=cmd_set)
                elif step.name == "WORKDIR":
                    layer = self._workdir(step, state, after)
                elif step.name == "RUN":
                    from berth.build.steps_run import run_step

                    layer = run_step(self, ref, state, step)
                elif step.name in ("COPY", "ADD"):
                    from berth.build.steps_copy import copy_step

                    layer = copy_step(self, state, step, prep["copy_sources"],
                                      prep["heredocs"])
                else:
                    raise DockerfileError(f"Dockerfile:{step.line}: unknown instruction: "
                                          f"{step.name}")
                new = commit_step(self.store, state, after,
                                  created_by=prep.get("created_by") or _created_by(step),
                                  layer=layer, created=created_at(self.epoch))
            self.cache.record(key, new.image_id or "")
            self.progress.done(ref, new.image_id or "", time.monotonic() - started)
            return new
        except DockerfileError as e:
            if _LINE_PREFIX.match(e.message):
                raise
            raise type(e)(f"{self._filename}:{step.line}: {e.message}") from None
        finally:
            self._release()
            for d in downloads:
                try:
                    os.unlink(d.path)
                except FileNotFoundError:
                    pass

    def _prepare(self, step: Step, state: ImageState, cmd_set: bool,
                 downloads: list[Any]) -> dict[str, Any]:
        """What the cache key needs beyond the instruction, and what the step will copy."""
        extra: dict[str, Any] = {}
        if self.epoch is not None:
            extra["epoch"] = self.epoch
        out: dict[str, Any] = {"extra": extra}
        if step.name == "ENTRYPOINT":
            extra["cmd_set"] = cmd_set
        elif step.name == "RUN":
            from berth.build.steps_run import argv_of, history_text, run_network

            extra["network"] = run_network(step, self.network)
            binds = []
            for m in step.mounts:
                if m.type != "bind":
                    continue
                if m.from_stage is not None:
                    binds.append(["stage", self.stage_image(m.from_stage), m.source])
                elif m.from_:
                    binds.append(["image", self.image_for(m.from_), m.source])
                else:
                    src = m.source or "."
                    binds.append(["context", src, self.hasher.hash_entries(
                        self.ctx.iter_files(self.ctx.resolve_sources([src], "RUN")[0]))])
            if binds:
                extra["binds"] = binds
            out["created_by"] = history_text(step, argv_of(step, state.config)[0])
        elif step.name in ("COPY", "ADD"):
            self._copy_inputs(step, out, downloads)
        return out

    def _copy_inputs(self, step: Step, out: dict[str, Any], downloads: list[Any]) -> None:
        from berth.build.steps_copy import Source, is_archive, is_url

        extra = out["extra"]
        docs = {h.name: h for h in step.heredocs}
        heredocs: list[tuple[str, bytes]] = []
        sources: list[Source] = []
        patterns: list[str] = []
        for arg in step.args[:-1]:
            if arg.startswith("<<") and arg.lstrip("<-").strip("\"'") in docs:
                doc = docs[arg.lstrip("<-").strip("\"'")]
                heredocs.append((doc.name, doc.content.encode("utf-8", "surrogateescape")))
            elif step.name == "ADD" and (arg.startswith(("git@", "git://")) or
                                         (is_url(arg) and arg.endswith(".git"))):
                raise DockerfileError(f"ADD from git is not supported: {arg}")
            elif step.name == "ADD" and is_url(arg):
                from berth.build.remote import fetch  # urllib: only when needed

                sums = step.flags.get("checksum")
                checksum = sums[-1] if sums else None
                d = fetch(arg, self.store.tmp, checksum)
                downloads.append(d)
                sources.append(Source(d.name, d.path, mode=0o600, mtime_ns=d.mtime_ns))
                extra.setdefault("urls", []).append([arg, d.digest, d.name, d.mtime_ns])
            else:
                patterns.append(arg)
        if patterns and step.copy_from is not None:
            if isinstance(step.copy_from, int):
                image_id = self.stage_image(step.copy_from)
            else:
                image_id = self.image_for(step.copy_from)
            extra["from"] = image_id or "scratch"
            root = self.mounted_image(image_id)
            sources += _image_sources(self, root, patterns, step.name)
        elif patterns:
            names = self.ctx.resolve_sources(patterns, step.name)
            entries: list[tuple[str, str]] = []
            for name in names:
                listing = list(self.ctx.iter_files(name))
                entries += listing
                top = listing[0][1]
                children = [(r[len(name) + 1:] if name != "." else r, p)
                            for r, p in listing[1:]]
                archive = step.name == "ADD" and os.path.isfile(top) and is_archive(top)
                sources.append(Source(name, top, iter(children), extract=archive))
            out["sources"] = self.hasher.hash_entries(entries)
        out["copy_sources"] = sources
        out["heredocs"] = heredocs

    def _workdir(self, step: Step, state: ImageState, after: ImageState) -> Any:
        """WORKDIR sets the config and creates the directory when the image lacks it
        (through the image's symlinks as Docker does, but always inside the rootfs)."""
        from berth.build.steps_meta import join_workdir
        from berth.build.workspace import Workspace, image_lowers
        from berth.container.rootpath import DirAttrs, RootFS

        path = join_workdir(state.config.get("WorkingDir"), step.args[0])
        after.config["WorkingDir"] = path
        ws = Workspace(self.store, image_lowers(self.store, state.image_id), kind="workdir")
        try:
            with RootFS(ws.mount()) as fs:
                try:
                    fd, _ = fs.open_dir(path, create=DirAttrs())
                except (NotADirectoryError, FileExistsError):
                    raise DockerfileError(f"Dockerfile:{step.line}: cannot create WORKDIR "
                                          f"{path}: a file is in the way") from None
                except OSError as e:
                    raise DockerfileError(f"Dockerfile:{step.line}: cannot create WORKDIR "
                                          f"{path}: {e.strerror}") from None
                os.close(fd)
            return ws.layer(state.top_chain, epoch=self.epoch)
        finally:
            ws.close()

    def _finish(self, state: ImageState) -> ImageState:
        """``--label`` values, and an image even for a bare ``FROM scratch``."""
        if not self.opts.labels and state.image_id is not None:
            return state
        from berth.build.cachekey import step_cache_key

        extra = {"epoch": self.epoch} if self.epoch is not None else {}
        key = step_cache_key(state.image_id or "scratch", "LABEL (build flags)",
                             self.opts.labels, None, extra)
        hit = None if self.opts.no_cache else self.cache.lookup(key)
        if hit is not None:
            return ImageState.load(self.store, hit, self.images.layers(hit))
        after = state.derive()
        if self.opts.labels:
            after.config["Labels"] = {**(after.config.get("Labels") or {}),
                                      **self.opts.labels}
        with self.store.ingesting():
            new = commit_step(self.store, state, after, created_by="", layer=None,
                              created=created_at(self.epoch), history=False)
        self.cache.record(key, new.image_id or "")
        return new

    def _tag(self, image_id: str) -> list[str]:
        from berth.images.ingest import parse_tag, set_tag

        refs = [parse_tag(t) for t in self.opts.tags]
        if not refs:
            return []
        now = time.time()
        with self.store.db.tx() as tx:
            for r in refs:
                set_tag(tx, r, image_id, now)
        return [r.with_default_tag().familiar for r in refs]


def cache_mounts_dir(store: Store) -> str:
    return os.path.join(store.root, "build", "cache-mounts")


def _created_by(step: Step) -> str:
    return step.text


def _splice(df: Dockerfile, bp: BuildPlan, triggers: dict[int, list[str]]) -> Dockerfile:
    """The Dockerfile with each base image's ONBUILD triggers right after its FROM."""
    at = {bp.stages[i].from_instruction.line: t for i, t in triggers.items() if t}
    out = []
    for ins in df.instructions:
        out.append(ins)
        if ins.name == "FROM" and ins.line in at:
            text = "FROM scratch\n" + "\n".join(at[ins.line]) + "\n"
            try:
                parsed = parse_dockerfile(text, df.filename).instructions[1:]
            except DockerfileError as e:
                raise DockerfileError(f"{df.filename}:{ins.line}: invalid ONBUILD trigger in "
                                      f"base image: {e.message}") from None
            out += [dataclasses.replace(t, line=ins.line, end_line=ins.line) for t in parsed]
    return dataclasses.replace(df, instructions=out)


def _image_sources(s: BuildSession, root: str, patterns: list[str],
                   instruction: str) -> list[Any]:
    """``COPY --from`` sources inside a mounted image, wildcards per path component.

    Each source is opened inside the image (``openat2(RESOLVE_IN_ROOT)``: its symlinks
    followed but clamped to the image) and read through that fd's ``/proc/self/fd`` link,
    held open until the step ends, so no host path walk ever sees the image's links.
    """
    import fnmatch
    import posixpath
    import stat

    from berth.build.steps_copy import Source, walk_tree
    from berth.container.rootpath import RootFS

    out = []
    with RootFS(root) as fs:
        for pattern in patterns:
            clean = posixpath.normpath("/" + pattern)
            if not _MAGIC & set(clean):
                names = [clean]
            else:
                names = ["/"]
                for part in [p for p in clean.split("/") if p]:
                    nxt = []
                    for base in names:
                        if not _MAGIC & set(part):
                            nxt.append(posixpath.join(base, part))
                            continue
                        try:
                            dfd = fs.open(base, os.O_RDONLY | os.O_DIRECTORY)
                        except OSError:
                            continue
                        try:
                            entries = sorted(os.listdir(dfd))
                        finally:
                            os.close(dfd)
                        nxt += [posixpath.join(base, n) for n in entries
                                if fnmatch.fnmatchcase(n, part)]
                    names = nxt
                if not names:
                    raise DockerfileError(f"{instruction} failed: no source files were "
                                          "specified")
            for name in names:
                try:
                    fd = fs.open(name, os.O_PATH)
                except OSError:
                    raise NotFound(f"{instruction} failed: stat {pattern}: file does not "
                                   "exist") from None
                s.hold(fd)
                host = f"/proc/self/fd/{fd}"
                listing = walk_tree(host) if stat.S_ISDIR(os.fstat(fd).st_mode) else None
                out.append(Source(name, host, listing))
    return out
