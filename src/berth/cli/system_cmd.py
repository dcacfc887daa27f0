"""``version``, ``info`` and ``system df|prune|check|info``."""

from __future__ import annotations

import json
import sys

from berth.cli.common import Command, confirm, run_group
from berth.cli.main import Ctx
from berth.cli.parser import Parser, add_format, parse_filters


def version(ctx: Ctx, argv: list[str]) -> int:
    import platform

    from berth import __version__

    p = Parser("berth version", "Show the berth version information")
    p.add_argument("--short", action="store_true", help=None)
    add_format(p)
    a = p.parse(argv)
    if a.short:
        print(f"berth version {__version__}")
        return 0
    data = {"Client": {"Version": __version__, "Os": "linux", "Arch": platform.machine(),
                       "PythonVersion": platform.python_version()}}
    if a.format:
        from berth.cli.gotemplate import render

        print(json.dumps(data) if a.format == "json" else render(a.format, data))
        return 0
    print(f"berth version {__version__}\n Python:  {platform.python_version()}\n"
          f" OS/Arch: linux/{platform.machine()}")
    return 0


def info(ctx: Ctx, argv: list[str]) -> int:
    p = Parser("berth info", "Display system-wide information")
    add_format(p)
    a = p.parse(argv)
    data = ctx.engine.info()
    if a.format:
        from berth.cli.gotemplate import render

        print(json.dumps(data) if a.format == "json" else render(a.format, data))
        return 0
    labels = [("Server Version", "ServerVersion"), ("Root Dir", "Root"),
              ("Run Root", "RunRoot"), ("Storage Driver", "Driver"),
              ("Runtime", "Runtime"), ("Cgroup Version", "CgroupVersion"),
              ("Default Network", "DefaultNetwork"), ("Kernel Version", "KernelVersion"),
              ("Operating System", "OperatingSystem"), ("Architecture", "Architecture")]
    out = [f" Containers: {data['Containers']}",
           f"  Running: {data['ContainersRunning']}",
           f"  Stopped: {data['ContainersStopped']}",
           f" Images: {data['Images']}", f" Layers: {data['Layers']}"]
    out += [f" {label}: {data[key]}" for label, key in labels if key in data]
    out += [f" WARNING: {w}" for w in data.get("Warnings", [])]
    print("\n".join(out))
    return 0


def system(ctx: Ctx, argv: list[str]) -> int:
    subs: dict[str, Command] = {"df": df, "check": check, "info": info, "prune": prune,
                                "boot": boot}
    return run_group(ctx, argv, group="system", title="Manage berth", subs=subs)


def df(ctx: Ctx, argv: list[str]) -> int:
    from berth.cli.output import format_rows
    from berth.units import human_size

    p = Parser("berth system df", "Show berth disk usage")
    p.add_argument("-v", "--verbose", action="store_true", help="Show detailed information")
    add_format(p)
    a = p.parse(argv)
    rows = []
    for r in ctx.engine.df():
        pct = f" ({100 * r['Reclaimable'] // r['Size']}%)" if r["Size"] else ""
        rows.append({"Type": r["Type"], "TotalCount": str(r["TotalCount"]),
                     "Active": str(r["Active"]), "Size": human_size(r["Size"]),
                     "Reclaimable": human_size(r["Reclaimable"]) + pct})
    cols = [("TYPE", "Type"), ("TOTAL", "TotalCount"), ("ACTIVE", "Active"), ("SIZE", "Size"),
            ("RECLAIMABLE", "Reclaimable")]
    sys.stdout.write(format_rows(rows, cols, a.format) + "\n")
    return 0


def check(ctx: Ctx, argv: list[str]) -> int:
    p = Parser("berth system check", "Verify the store: blob digests and every reference")
    p.add_argument("--repair", action="store_true", help="Remove garbage and damaged images")
    p.add_argument("-q", "--quiet", action="store_true", help="Only print problems")
    a = p.parse(argv)
    rep = ctx.engine.system_check(repair=a.repair)
    for d in rep.damage:
        print(f"damage: {d}")
    for g in rep.garbage:
        print(f"garbage: {g}")
    for r in rep.repaired:
        print(f"repaired: {r}")
    if not a.quiet:
        state = "ok" if rep.ok else "DAMAGED"
        print(f"checked {rep.blobs_checked} blobs and {rep.images_checked} images: {state}"
              f" ({len(rep.damage)} damaged, {len(rep.garbage)} garbage)")
    return 0 if rep.ok or a.repair else 1


def boot(ctx: Ctx, argv: list[str]) -> int:
    p = Parser("berth system boot", "Start the containers whose restart policy wants them "
               "running (run once at boot, see contrib/systemd/berth-restart.service)")
    p.parse(argv)
    res = ctx.engine.system_boot()
    for name in res.started:
        print(name)
    for name, err in res.failed:
        print(f"Error: starting {name}: {err}", file=sys.stderr)
    return 1 if res.failed else 0


def prune(ctx: Ctx, argv: list[str]) -> int:
    from berth.units import human_size

    p = Parser("berth system prune", "Remove unused data")
    p.add_argument("-a", "--all", action="store_true", help="Remove all unused images")
    p.add_argument("-f", "--force", action="store_true", help="Do not prompt for confirmation")
    p.add_argument("--volumes", action="store_true", help="Prune anonymous volumes")
    p.add_argument("--filter", action="append", default=[], help="Provide filter values")
    a = p.parse(argv)
    filters = parse_filters(a.filter, {"until", "label", "label!"}, p.prog)
    if not a.force:
        if not confirm("WARNING! This will remove:\n  - all stopped containers\n"
                        "  - all " + ("images without at least one container associated "
                                      "to them" if a.all else "dangling images") +
                        "\n  - all " + ("build cache" if a.all else "dangling build cache") +
                        ("\n  - anonymous volumes not used by at least one container"
                         if a.volumes else "")):
            return 0
    eng = ctx.engine
    total = 0
    pruner = getattr(eng, "container_prune", None)
    if pruner is not None:
        removed, space = pruner(filters=filters)
        if removed:
            print("Deleted Containers:\n" + "\n".join(removed) + "\n")
        total += space
    if a.volumes:  # Docker's order: containers, networks, volumes, images
        names, space = eng.volume_prune(filters={k: v for k, v in filters.items()
                                                 if k != "until"})
        if names:
            print("Deleted Volumes:\n" + "\n".join(names) + "\n")
        total += space
    res = eng.image_prune(all=a.all, filters=filters)
    if res.untagged or res.deleted:
        print("Deleted Images:\n" + "\n".join(
            [f"untagged: {t}" for t in res.untagged] + [f"deleted: {d}" for d in res.deleted])
            + "\n")
    total += res.reclaimed
    cache = eng.builder_prune(all=a.all)  # dangling build cache (all of it with -a)
    if cache.removed:
        print("Deleted build cache objects:\n" + "\n".join(
            k.split(":", 1)[-1][:25] for k in cache.removed) + "\n")
    total += cache.reclaimed
    print(f"Total reclaimed space: {human_size(total)}")
    return 0
