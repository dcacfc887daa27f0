"""Parsed Dockerfile + build args + target → what to build, in which order, with what values.

This is the last pure step before the executor touches images and containers. It decides:

* the stages (``FROM ... AS name``), their bases (an image, ``scratch`` or an earlier stage)
  and their dependencies (``FROM <stage>``, ``COPY --from``, ``RUN --mount=from=``);
* which stages ``--target`` needs — only those, in dependency order, target last;
* ARG scoping: global ARGs (before the first FROM) feed FROM lines only; inside a stage an
  ARG must be (re)declared to be visible; ENV beats ARG; a stage based on another stage
  inherits that stage's ENV and declared ARGs. The predefined proxy ARGs work undeclared
  but stay out of history and cache keys unless declared;
* the expanded arguments of every step (ADD COPY ENV EXPOSE FROM LABEL STOPSIGNAL USER
  VOLUME WORKDIR; RUN/CMD/ENTRYPOINT are left to the shell), typed RUN mounts, and
  ``COPY --from`` resolved to a stage index or an image reference;
* which ``--build-arg`` values nothing consumed (Docker warns about them).

A base image's own ENV matters for expansion (``ENV PATH=$PATH:/x``); the plan cannot read
images, so the executor passes ``image_env(ref, platform)`` to supply it.
"""

from __future__ import annotations

import json
import platform as _platform
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace

from berth.build.cachekey import step_cache_key
from berth.build.expand import ExpansionError, expand, expand_heredoc, expand_words
from berth.build.mounts import MountSpec, parse_mount
from berth.build.parser import Dockerfile, Heredoc, Instruction, check_ports
from berth.errors import DockerfileError

__all__ = ["BuildPlan", "Stage", "Step", "MountSpec", "plan", "PROXY_ARGS", "DEFAULT_PATH",
           "platform_args", "default_platform"]

# Docker's builders (classic and BuildKit) set this at FROM when the base has no PATH, so
# ``ENV PATH=/opt/x:$PATH`` on such a base still finds /bin/sh (issue 10).
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

PROXY_ARGS = frozenset({"HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy",
                        "FTP_PROXY", "ftp_proxy", "NO_PROXY", "no_proxy", "ALL_PROXY",
                        "all_proxy"})
_BUILTIN_ARGS = frozenset({"BUILDKIT_BUILD_NAME", "BUILDKIT_CACHE_MOUNT_NS",
                           "BUILDKIT_CONTEXT_KEEP_GIT_DIR", "BUILDKIT_INLINE_CACHE",
                           "BUILDKIT_MULTI_PLATFORM", "BUILDKIT_SANDBOX_HOSTNAME",
                           "BUILDKIT_SYNTAX", "SOURCE_DATE_EPOCH"})
_EXPANDED_FLAGS = {"COPY": ("from", "chown", "chmod", "exclude"),
                   "ADD": ("chown", "chmod", "exclude", "checksum"),
                   "RUN": ("mount",)}
_ARCH = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64",
         "armv7l": "arm/v7", "armv6l": "arm/v6", "i686": "386", "i386": "386",
         "ppc64le": "ppc64le", "s390x": "s390x", "riscv64": "riscv64"}

ImageEnv = Callable[[str, str | None], Mapping[str, str] | list[str] | None]


def default_platform() -> str:
    """The host as an OCI platform string (``linux/amd64``)."""
    machine = _platform.machine().lower()
    return "linux/" + _ARCH.get(machine, machine)


def platform_args(target: str, build: str) -> dict[str, str]:
    """The automatic TARGET*/BUILD* args for a target and a build platform."""
    out: dict[str, str] = {}
    for prefix, value in (("TARGET", target), ("BUILD", build)):
        parts = value.split("/")
        out[prefix + "PLATFORM"] = value
        out[prefix + "OS"] = parts[0]
        out[prefix + "ARCH"] = parts[1] if len(parts) > 1 else ""
        out[prefix + "VARIANT"] = parts[2] if len(parts) > 2 else ""
    return out


@dataclass(frozen=True)
class Step:
    """One instruction of a stage, with everything the executor needs already worked out.

    ``args`` are expanded for instructions Docker expands, raw otherwise. ``pairs`` holds
    ENV/LABEL ``(key, value)`` and ARG ``(name, value or None)``. ``build_args`` are the
    declared ARGs in scope with values — the RUN environment and what history records;
    ``proxy_args`` are undeclared predefined proxy args, given to RUN but never recorded.
    ``env`` is the image ENV before this step runs. ``text`` is the expanded instruction
    (history / cache input); ``cache_args`` the build args that count for the cache.
    """

    instruction: Instruction
    name: str
    args: list[str]
    json: bool
    flags: dict[str, list[str]]
    env: dict[str, str]
    build_args: dict[str, str]
    proxy_args: dict[str, str]
    text: str
    pairs: list[tuple[str, str | None]] = field(default_factory=list)
    mounts: list[MountSpec] = field(default_factory=list)
    copy_from: int | str | None = None
    heredocs: list[Heredoc] = field(default_factory=list)
    cache_args: dict[str, str] = field(default_factory=dict)

    @property
    def line(self) -> int:
        return self.instruction.line

    def run_env(self) -> dict[str, str]:
        """The environment a RUN sees: proxies, then build args, then ENV (ENV wins)."""
        return {**self.proxy_args, **self.build_args, **self.env}

    def cache_key(self, parent: str, sources_hash: str | None = None,
                  extra: Mapping[str, object] | None = None) -> str:
        """This step's cache key on top of ``parent`` (see :mod:`berth.build.cachekey`)."""
        return step_cache_key(parent, self.text, self.cache_args, sources_hash, extra)


@dataclass
class Stage:
    """A build stage. ``base`` is the expanded image reference (``scratch`` for none) or,
    when ``base_stage`` is set, the name of the earlier stage it builds on."""

    index: int
    name: str | None
    base: str
    base_stage: int | None
    platform: str | None
    from_instruction: Instruction
    instructions: list[Instruction]
    deps: set[int] = field(default_factory=set)
    image_deps: list[str] = field(default_factory=list)
    steps: list[Step] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    args: dict[str, str | None] = field(default_factory=dict)

    @property
    def display_name(self) -> str:
        return self.name or str(self.index)


@dataclass
class BuildPlan:
    """The stages of a Dockerfile and the ordered subset a build needs."""

    dockerfile: Dockerfile
    stages: list[Stage]
    order: list[int]
    global_args: dict[str, str | None]
    platform: str
    unused_build_args: list[str] = field(default_factory=list)

    @property
    def target(self) -> Stage:
        return self.stages[self.order[-1]]

    @property
    def build_stages(self) -> list[Stage]:
        """The stages to build, dependencies first, the target last."""
        return [self.stages[i] for i in self.order]

    @property
    def warnings(self) -> list[str]:
        if not self.unused_build_args:
            return []
        return [f"[Warning] One or more build-args [{' '.join(self.unused_build_args)}] "
                "were not consumed"]


class _Planner:
    def __init__(self, df: Dockerfile, build_args: Mapping[str, str], target_platform: str,
                 build_platform: str, image_env: ImageEnv | None) -> None:
        self.df = df
        self.build_args = dict(build_args)
        self.esc = df.escape
        self.auto = platform_args(target_platform, build_platform)
        self.image_env = image_env
        self.consumed: set[str] = set()
        self.global_args: dict[str, str | None] = {}
        self.stages: list[Stage] = []

    def fail(self, ins: Instruction, msg: str) -> DockerfileError:
        return DockerfileError(f"{self.df.filename}:{ins.line}: {msg}")

    def x(self, ins: Instruction, word: str, env: Mapping[str, str]) -> str:
        try:
            return expand(word, env, self.esc)
        except ExpansionError as exc:
            raise self.fail(ins, exc.message) from None

    # -- pass 1: stages, globals, dependencies ---------------------------------------------
    def split(self) -> None:
        current: list[Instruction] | None = None
        for ins in self.df.instructions:
            if ins.name == "FROM":
                current = []
                self._new_stage(ins, current)
            elif current is None:  # global ARG (the parser allows only ARG here)
                env = self._global_env()
                for word in ins.args:
                    name, eq, default = word.partition("=")
                    self.consumed.add(name)
                    if name in self.build_args:
                        self.global_args[name] = self.build_args[name]
                    elif eq:
                        self.global_args[name] = self.x(ins, default, env)
                    else:
                        self.global_args[name] = None
                    env = self._global_env()
            else:
                current.append(ins)

    def _global_env(self) -> dict[str, str]:
        return {**self.auto, **{k: v for k, v in self.global_args.items() if v is not None}}

    def _new_stage(self, ins: Instruction, body: list[Instruction]) -> None:
        env = self._global_env()
        base = self.x(ins, ins.args[0], env)
        if not base:
            raise self.fail(ins, f"base name ({ins.args[0]}) should not be blank")
        platform = ins.flag("platform")
        if platform is not None:
            platform = self.x(ins, platform, env)
        name = ins.args[2].lower() if len(ins.args) == 3 else None
        if name is not None and any(s.name == name for s in self.stages):
            raise self.fail(ins, f'duplicate stage name "{name}"')
        base_stage = next((s.index for s in self.stages if s.name == base.lower()), None)
        stage = Stage(index=len(self.stages), name=name, base=base, base_stage=base_stage,
                      platform=platform, from_instruction=ins, instructions=body)
        if base_stage is not None:
            stage.deps.add(base_stage)
        self.stages.append(stage)

    def resolve_from(self, stage: Stage, ins: Instruction, ref: str) -> int | str:
        """A ``--from`` value: a stage (by name or earlier index) or an image reference."""
        for s in self.stages:
            if s.name is not None and s.name == ref.lower():
                if s.index == stage.index:
                    raise self.fail(ins, f"circular dependency detected on stage: {s.name}")
                return s.index
        if ref.isdigit():
            idx = int(ref)
            if idx >= stage.index:
                raise self.fail(ins, f"invalid from flag value {ref}: refers to current or "
                                "future build stage")
            return idx
        return ref

    def dependencies(self) -> None:
        """COPY --from / mount from= edges, expanded with each stage's declared ARGs."""
        for stage in self.stages:
            args = self._inherited_args(stage)
            for ins in stage.instructions:
                env = {k: v for k, v in args.items() if v is not None}
                if ins.name == "ARG":
                    for word in ins.args:
                        name, eq, default = word.partition("=")
                        args[name] = self._arg_value(name, eq, default, env, ins)
                refs = []
                if ins.name == "COPY" and ins.flag("from"):
                    refs.append(self.x(ins, ins.flag("from") or "", env))
                for raw in ins.flags.get("mount", []) if ins.name == "RUN" else []:
                    try:
                        spec = parse_mount(self.x(ins, raw, env))
                    except DockerfileError as exc:
                        raise self.fail(ins, exc.message) from None
                    if spec.from_:
                        refs.append(spec.from_)
                for ref in refs:
                    got = self.resolve_from(stage, ins, ref)
                    if isinstance(got, int):
                        stage.deps.add(got)
                    elif ref not in stage.image_deps:
                        stage.image_deps.append(ref)
            stage.args = args

    def _inherited_args(self, stage: Stage) -> dict[str, str | None]:
        if stage.base_stage is not None:
            return dict(self.stages[stage.base_stage].args)
        return {}

    def _arg_value(self, name: str, eq: str, default: str, env: Mapping[str, str],
                   ins: Instruction) -> str | None:
        if name in self.build_args:
            return self.build_args[name]
        if eq:
            return self.x(ins, default, env)
        if self.global_args.get(name) is not None:
            return self.global_args[name]
        return self.auto.get(name)

    def order(self, target: str | None) -> list[int]:
        if target is None:
            goal = self.stages[-1].index
        else:
            found = [s.index for s in self.stages if s.name == target.lower()]
            if not found:
                raise DockerfileError(f'target stage "{target}" could not be found')
            goal = found[0]
        out: list[int] = []
        visiting: set[int] = set()

        def visit(i: int) -> None:
            if i in out:
                return
            if i in visiting:
                raise DockerfileError("circular dependency detected on stage: "
                                      f"{self.stages[i].display_name}")
            visiting.add(i)
            for dep in sorted(self.stages[i].deps):
                visit(dep)
            visiting.discard(i)
            out.append(i)

        visit(goal)
        return out

    # -- pass 2: expanded steps -------------------------------------------------------------
    def expand_stage(self, stage: Stage) -> None:
        if stage.base_stage is not None:
            parent = self.stages[stage.base_stage]
            env, args = dict(parent.env), dict(parent.args)
        else:
            env, args = self._base_env(stage), {}
        steps: list[Step] = []
        for ins in stage.instructions:
            step, env, args = self._step(stage, ins, env, args)
            steps.append(step)
        stage.steps, stage.env, stage.args = steps, env, args

    def _base_env(self, stage: Stage) -> dict[str, str]:
        """The base's ENV, with Docker's default PATH when it has none (see DEFAULT_PATH)."""
        got = None
        if self.image_env is not None and stage.base != "scratch":
            got = self.image_env(stage.base, stage.platform)
        if got is None:
            env: dict[str, str] = {}
        elif isinstance(got, Mapping):
            env = dict(got)
        else:
            env = dict(item.partition("=")[::2] for item in got)
        env.setdefault("PATH", DEFAULT_PATH)
        return env

    def _step(self, stage: Stage, ins: Instruction, env: dict[str, str],
              args: dict[str, str | None]) -> tuple[Step, dict[str, str], dict[str, str | None]]:
        declared = {k: v for k, v in args.items() if v is not None}
        xenv = {**declared, **env}
        proxies = {k: v for k, v in self.build_args.items()
                   if k in PROXY_ARGS and k not in args}
        n = ins.name
        out_args: list[str] = list(ins.args)
        pairs: list[tuple[str, str | None]] = []
        mounts: list[MountSpec] = []
        copy_from: int | str | None = None
        heredocs = list(ins.heredocs)
        new_env, new_args = env, args
        flags = {k: list(v) for k, v in ins.flags.items()}
        for key in _EXPANDED_FLAGS.get(n, ()):
            if key in flags:
                flags[key] = [self.x(ins, v, xenv) for v in flags[key]]
        if n in ("ENV", "LABEL"):
            pairs = [(self.x(ins, k, xenv), self.x(ins, v, xenv))
                     for k, v in zip(ins.args[0::2], ins.args[1::2])]
            if n == "ENV":
                new_env = {**env, **{k: v for k, v in pairs if v is not None}}
        elif n == "ARG":
            new_args = dict(args)
            for word in ins.args:
                name, eq, default = word.partition("=")
                self.consumed.add(name)
                value = self._arg_value(name, eq, default,
                                        {**{k: v for k, v in new_args.items()
                                            if v is not None}, **env}, ins)
                new_args[name] = value
                pairs.append((name, value))
        elif n in ("COPY", "ADD"):
            out_args = [a if a.startswith("<<") else self.x(ins, a, xenv) for a in ins.args]
            heredocs = [replace(h, content=expand_heredoc(h.content, xenv, self.esc))
                        if h.expand else h for h in ins.heredocs]
            if n == "COPY" and flags.get("from"):
                copy_from = self.resolve_from(stage, ins, flags["from"][-1])
        elif n == "EXPOSE":
            try:
                out_args = [w for a in ins.args for w in expand_words(a, xenv, self.esc)]
                check_ports(tuple(out_args))
            except DockerfileError as exc:
                raise self.fail(ins, exc.message) from None
        elif n == "VOLUME":
            out_args = [self.x(ins, a, xenv) for a in ins.args]
            if any(not a.strip() for a in out_args):
                raise self.fail(ins, "VOLUME specified can not be an empty string")
        elif n in ("WORKDIR", "USER", "STOPSIGNAL"):
            out_args = [self.x(ins, ins.args[0], xenv)]
        elif n == "RUN":
            for raw in flags.get("mount", []):
                try:
                    spec = parse_mount(raw)
                except DockerfileError as exc:
                    raise self.fail(ins, exc.message) from None
                if spec.from_:
                    got = self.resolve_from(stage, ins, spec.from_)
                    if isinstance(got, int):
                        spec = replace(spec, from_stage=got)
                mounts.append(spec)
        cache_args = dict(sorted(declared.items())) if n == "RUN" else {}
        text = _text(n, flags, out_args, ins.json, pairs, heredocs)
        step = Step(instruction=ins, name=n, args=out_args, json=ins.json, flags=flags,
                    env=dict(env), build_args=declared, proxy_args=proxies, text=text,
                    pairs=pairs, mounts=mounts, copy_from=copy_from, heredocs=heredocs,
                    cache_args=cache_args)
        return step, new_env, new_args


def _text(name: str, flags: Mapping[str, list[str]], args: list[str], is_json: bool,
          pairs: list[tuple[str, str | None]], heredocs: list[Heredoc]) -> str:
    """A canonical one-instruction string: flags sorted, values expanded, bodies appended."""
    parts = [name]
    for key in sorted(flags):
        parts += [f"--{key}={v}" for v in flags[key]]
    if name in ("ENV", "LABEL"):
        parts += [f"{k}={v}" for k, v in pairs]
    elif name == "ARG":
        parts += [k if v is None else f"{k}={v}" for k, v in pairs]
    elif is_json:
        parts.append(json.dumps(args))
    else:
        parts += args
    text = " ".join(parts)
    for doc in heredocs:
        text += f"\n<<{doc.name}\n{doc.content}{doc.name}"
    return text


def plan(df: Dockerfile, build_args: Mapping[str, str] | None = None,
         target: str | None = None, platform: str | None = None, *,
         build_platform: str | None = None, image_env: ImageEnv | None = None) -> BuildPlan:
    """Work out the build: stages, the ordered subset ``target`` needs, expanded steps.

    ``platform`` is the target platform (default: the host); ``image_env(ref, platform)``
    returns a base image's ENV (mapping or ``K=V`` list) so expansions see it; without it
    base images are taken to have no ENV.
    """
    target_platform = platform or default_platform()
    p = _Planner(df, build_args or {}, target_platform, build_platform or default_platform(),
                 image_env)
    p.split()
    p.dependencies()
    order = p.order(target)
    for stage in p.stages:
        stage.args = {}
    for i in sorted(order):
        p.expand_stage(p.stages[i])
    unused = sorted(k for k in p.build_args
                    if k not in p.consumed and k not in PROXY_ARGS and k not in _BUILTIN_ARGS)
    return BuildPlan(dockerfile=df, stages=p.stages, order=order, global_args=p.global_args,
                     platform=target_platform, unused_build_args=unused)
