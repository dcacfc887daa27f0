"""Instructions that only change the image config: ENV LABEL CMD ENTRYPOINT EXPOSE VOLUME
USER WORKDIR (the config half) STOPSIGNAL HEALTHCHECK ONBUILD MAINTAINER SHELL.

Each is a pure edit of the config document, so it is trivially cached and needs no
container. The rules are Docker's: shell forms are wrapped in the stage's SHELL, an
ENTRYPOINT resets a CMD inherited from the base image, EXPOSE ranges become one entry per
port, HEALTHCHECK durations are nanoseconds.
"""

from __future__ import annotations

import posixpath
from typing import Any

from berth.build.parser import parse_duration_ns
from berth.build.plan import Step
from berth.errors import DockerfileError

DEFAULT_SHELL = ["/bin/sh", "-c"]
META = frozenset({"ENV", "LABEL", "CMD", "ENTRYPOINT", "EXPOSE", "VOLUME", "USER",
                  "STOPSIGNAL", "HEALTHCHECK", "ONBUILD", "MAINTAINER", "SHELL"})


def shell_of(config: dict[str, Any]) -> list[str]:
    return list(config.get("Shell") or DEFAULT_SHELL)


def command_words(step: Step, config: dict[str, Any]) -> list[str]:
    """CMD/ENTRYPOINT/RUN words: exec form as written, shell form wrapped in SHELL."""
    if step.json:
        return list(step.args)
    return [*shell_of(config), step.args[0]]


def join_workdir(current: str | None, path: str) -> str:
    """WORKDIR semantics: a relative path is taken from the previous WORKDIR."""
    return posixpath.normpath(posixpath.join(current or "/", path))


def _set_env(env: list[str], key: str, value: str) -> list[str]:
    out = [e for e in env if e.partition("=")[0] != key]
    out.append(f"{key}={value}")
    return out


def _ports(words: list[str]) -> list[str]:
    out = []
    for w in words:
        port, _, proto = w.partition("/")
        proto = (proto or "tcp").lower()
        lo, _, hi = port.partition("-")
        for p in range(int(lo), int(hi or lo) + 1):
            out.append(f"{p}/{proto}")
    return out


def _healthcheck(step: Step) -> dict[str, Any]:
    kind = step.args[0].upper()
    if kind == "NONE":
        return {"Test": ["NONE"]}
    test = ["CMD", *step.args[1:]] if step.json else ["CMD-SHELL", step.args[1]]
    hc: dict[str, Any] = {"Test": test}
    for flag, key in (("interval", "Interval"), ("timeout", "Timeout"),
                      ("start-period", "StartPeriod"), ("start-interval", "StartInterval")):
        if step.flags.get(flag):
            hc[key] = parse_duration_ns(step.flags[flag][-1])
    if step.flags.get("retries"):
        hc["Retries"] = int(step.flags["retries"][-1])
    return hc


def apply_meta(step: Step, doc: dict[str, Any], *, cmd_set_in_stage: bool) -> None:
    """Apply one config-only instruction to the config document ``doc`` in place."""
    cfg = doc.setdefault("config", {})
    n = step.name
    if n == "ENV":
        env = list(cfg.get("Env") or [])
        for k, v in step.pairs:
            env = _set_env(env, k, v or "")
        cfg["Env"] = env
    elif n == "LABEL":
        cfg["Labels"] = {**(cfg.get("Labels") or {}), **{k: v or "" for k, v in step.pairs}}
    elif n == "CMD":
        cfg["Cmd"] = command_words(step, cfg)
    elif n == "ENTRYPOINT":
        cfg["Entrypoint"] = command_words(step, cfg)
        if not cmd_set_in_stage:
            cfg["Cmd"] = None
    elif n == "EXPOSE":
        ports = dict(cfg.get("ExposedPorts") or {})
        for p in _ports(step.args):
            ports[p] = {}
        cfg["ExposedPorts"] = ports
    elif n == "VOLUME":
        vols = dict(cfg.get("Volumes") or {})
        for v in step.args:
            vols[v] = {}
        cfg["Volumes"] = vols
    elif n == "USER":
        cfg["User"] = step.args[0]
    elif n == "STOPSIGNAL":
        cfg["StopSignal"] = step.args[0]
    elif n == "HEALTHCHECK":
        cfg["Healthcheck"] = _healthcheck(step)
    elif n == "ONBUILD":
        trigger = step.instruction.trigger
        if trigger is None:
            raise DockerfileError(f"line {step.line}: ONBUILD requires a trigger")
        cfg["OnBuild"] = [*(cfg.get("OnBuild") or []), trigger.original]
    elif n == "MAINTAINER":
        doc["author"] = step.args[0]
    elif n == "SHELL":
        cfg["Shell"] = list(step.args)
    else:  # pragma: no cover - the executor only sends META names here
        raise DockerfileError(f"{step.name} is not a config instruction")
