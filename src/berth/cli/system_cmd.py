"""``version``, ``info`` and ``system df|prune|check|info``."""

from __future__ import annotations

import json
import sys
from typing import Any

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
    if data.get("Rootless"):  # rootless: ID mappings (berth.rootless.info)
        from berth.rootless.info import format_maps

        out += format_maps(data)
    out += _storage_lines(data["Storage"])
    out += [f" WARNING: {w}" for w in data.get("Warnings", [])]
    print("\n".join(out))
    return 0


def system(ctx: Ctx, argv: list[str]) -> int:
    from berth.cli.service_cmd import service

    subs: dict[str, Command] = {"df": df, "check": check, "info": info, "prune": prune,
                                "reset": reset, "gc": gc, "boot": boot, "service": service,
                                "migrate": migrate}
    return run_group(ctx, argv, group="system", title="Manage berth", subs=subs)


def migrate(ctx: Ctx, argv: list[str]) -> int:
    """Rootless: stop running containers and the pause process (Podman's ``system migrate``)."""
    p = Parser("berth system migrate",
               "Stop running containers and the rootless pause process, so the next command "
               "makes a new user namespace")
    p.parse(argv)
    for cid in ctx.engine.system_migrate():
        print(cid[:12])
    return 0


def df(ctx: Ctx, argv: list[str]) -> int:
    from berth.cli.output import format_rows
    from berth.units import human_size

    p = Parser("berth system df", "Show berth disk usage")
    p.add_argument("-v", "--verbose", action="store_true", help="Show detailed information")
    add_format(p)
    a = p.parse(argv)
    if a.verbose:
        return _df_verbose(ctx, a.format)
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


def _df_verbose(ctx: Ctx, fmt: str | None) -> int:
    """Docker's four ``system df -v`` tables; ``--format`` gets one object of four lists."""
    import time

    from berth.cli.output import format_rows
    from berth.container.views import ps_row
    from berth.oci import reference
    from berth.units import human_duration, human_size, time_ago

    data = ctx.engine.df_verbose()
    now = time.time()
    images = []
    for i in data["Images"]:
        names: list[reference.Reference | None] = [reference.parse(t) for t in i["RepoTags"]]
        for ref in names or [None]:
            images.append({
                "Repository": ref.familiar_repository if ref else "<none>",
                "Tag": (ref.tag or "<none>") if ref else "<none>",
                "ID": i["Id"].split(":", 1)[-1][:12], "CreatedSince": time_ago(i["Created"], now),
                "Size": human_size(i["Size"]), "SharedSize": human_size(i["SharedSize"]),
                "UniqueSize": human_size(i["UniqueSize"]), "Containers": str(i["Containers"])})
    containers = []
    for c in data["Containers"]:
        row = ps_row(c["Record"], c["Record"].image_name, trunc=True, now=now)
        containers.append({"ID": row["ID"], "Image": row["Image"], "Command": row["Command"],
                           "LocalVolumes": str(c["LocalVolumes"]),
                           "Size": human_size(c["SizeRw"]), "RunningFor": row["RunningFor"],
                           "Status": row["Status"], "Names": row["Names"]})
    volumes = [{"Name": v["Name"], "Links": str(v["Links"]), "Size": human_size(v["Size"])}
               for v in data["Volumes"]]
    cache = [{"ID": b["ID"], "CacheType": b["CacheType"], "Size": human_size(b["Size"]),
              "CreatedSince": time_ago(b["CreatedAt"], now),
              "LastUsedSince": human_duration(now - b["LastUsedAt"]) + " ago",
              "UsageCount": "1", "Shared": str(b["Shared"]).lower()} for b in data["BuildCache"]]
    if fmt:
        from berth.cli.gotemplate import go_json, render

        doc = {"Images": images, "Containers": containers, "Volumes": volumes,
               "BuildCache": cache}
        print(go_json(doc, escape_html=True, sort_keys=True) if fmt == "json"
              else render(fmt, doc))
        return 0
    cache_total = sum(b["Size"] for b in data["BuildCache"])
    out = ["Images space usage:\n", format_rows(images, [
        ("REPOSITORY", "Repository"), ("TAG", "Tag"), ("IMAGE ID", "ID"),
        ("CREATED", "CreatedSince"), ("SIZE", "Size"), ("SHARED SIZE", "SharedSize"),
        ("UNIQUE SIZE", "UniqueSize"), ("CONTAINERS", "Containers")], None),
        "\nContainers space usage:\n", format_rows(containers, [
            ("CONTAINER ID", "ID"), ("IMAGE", "Image"), ("COMMAND", "Command"),
            ("LOCAL VOLUMES", "LocalVolumes"), ("SIZE", "Size"), ("CREATED", "RunningFor"),
            ("STATUS", "Status"), ("NAMES", "Names")], None),
        "\nLocal Volumes space usage:\n", format_rows(volumes, [
            ("VOLUME NAME", "Name"), ("LINKS", "Links"), ("SIZE", "Size")], None),
        f"\nBuild cache usage: {human_size(cache_total)}\n", format_rows(cache, [
            ("CACHE ID", "ID"), ("CACHE TYPE", "CacheType"), ("SIZE", "Size"),
            ("CREATED", "CreatedSince"), ("LAST USED", "LastUsedSince"),
            ("USAGE", "UsageCount"), ("SHARED", "Shared")], None)]
    sys.stdout.write("\n".join(out) + "\n")
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
    warning = ("WARNING! This will remove:\n  - all stopped containers\n"
               "  - all networks not used by at least one container\n"
               "  - all " + ("images without at least one container associated to them"
                             if a.all else "dangling images") +
               "\n  - all " + ("build cache" if a.all else "dangling build cache") +
               ("\n  - anonymous volumes not used by at least one container"
                if a.volumes else ""))
    if not a.force and not confirm(warning):
        return 0
    eng = ctx.engine
    total = 0
    pruner = getattr(eng, "container_prune", None)
    if pruner is not None:
        removed, space = pruner(filters=filters)
        if removed:
            print("Deleted Containers:\n" + "\n".join(removed) + "\n")
        total += space
    nets = eng.network_prune(filters=filters)
    if nets:
        print("Deleted Networks:\n" + "\n".join(nets) + "\n")
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


def reset(ctx: Ctx, argv: list[str]) -> int:
    """Podman's ``system reset``: the way to delete a store without leaving host state."""
    p = Parser("berth system reset", "Reset berth storage back to its initial state")
    p.add_argument("-f", "--force", action="store_true", help="Do not prompt for confirmation")
    a = p.parse(argv)
    if not a.force and not confirm(
            "WARNING! This will remove:\n        - all containers\n"
            "        - all images\n        - all networks\n"
            "        - all build cache\n        - all volumes\n"
            f"and the store itself ({_paths(ctx)})"):
        return 0
    ctx.engine.system_reset()
    return 0


def _paths(ctx: Ctx) -> str:
    """Root and run root as the engine would resolve them, without creating either."""
    import os

    from berth.store.store import DEFAULT_ROOT, DEFAULT_RUNROOT

    return ", ".join(os.path.abspath(p) for p in (ctx.root or DEFAULT_ROOT,
                                                    ctx.runroot or DEFAULT_RUNROOT))


def _storage_lines(st: dict[str, Any]) -> list[str]:
    """``info``: the storage budget, what the store uses, and the last GC."""
    import time

    from berth.units import human_duration, human_size

    limit = st["StorageBudgetBytes"]
    lines = [f" Storage Used: {human_size(st['StorageUsed'])}",
             f" Storage Budget: {st['StorageBudget']}"
             + (f" ({human_size(limit)})" if limit is not None else "")]
    last = st["LastGC"]
    lines.append(" Last GC: " + (
        f"{human_duration(time.time() - last['time'])} ago, freed "
        f"{human_size(last['freed'])} ({int(last['removed'])} removed)" if last else "never"))
    return lines


def gc(ctx: Ctx, argv: list[str]) -> int:
    """The automatic storage GC, by hand: what goes (least recently used first) and bytes."""
    from berth.units import human_size

    p = Parser("berth system gc", "Collect unused data down to the storage budget "
               "(everything collectable when no budget is set)")
    p.add_argument("--dry-run", action="store_true", help="Only print what would be removed")
    a = p.parse(argv)
    res = ctx.engine.system_gc(dry_run=a.dry_run)
    verb = "Would remove" if a.dry_run else "Removed"
    for v in res.removed:
        ident = v.id.split(":", 1)[-1][:12]
        print(f"{verb} {v.kind} {ident} ({v.name}): {human_size(v.freed)}")
    total = "Would reclaim" if a.dry_run else "Total reclaimed space"
    print(f"{total}: {human_size(res.freed)}")
    return 0
