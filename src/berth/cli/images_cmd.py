"""Image commands: images/image ls, import, load, save, tag, rmi, history, image prune."""

from __future__ import annotations

import os
import sys
from typing import Any

from berth.cli.common import confirm, out, run_group
from berth.cli.main import Ctx
from berth.cli.parser import Parser, add_filter, add_format, parse_filters
from berth.errors import BerthError, InvalidArgument

IMAGE_COLUMNS = [("REPOSITORY", "Repository"), ("TAG", "Tag"), ("IMAGE ID", "ID"),
                 ("CREATED", "CreatedSince"), ("SIZE", "Size")]
IMAGE_HEADERS = {"Repository": "REPOSITORY", "Tag": "TAG", "ID": "IMAGE ID",
                 "Digest": "DIGEST", "CreatedSince": "CREATED", "CreatedAt": "CREATED AT",
                 "Size": "SIZE", "Containers": "CONTAINERS", "VirtualSize": "SIZE",
                 "SharedSize": "SHARED SIZE", "UniqueSize": "UNIQUE SIZE"}


def image(ctx: Ctx, argv: list[str]) -> int:
    """``berth image SUBCOMMAND``: the management form of the image commands."""
    subs = {"ls": images, "list": images, "rm": rmi, "remove": rmi, "prune": prune,
            "inspect": _inspect_images, "history": history, "tag": tag, "import": import_,
            "load": load, "save": save}
    return run_group(ctx, argv, group="image", title="Manage images",
                     subs={**subs, **_extra_image_subcommands()})


def _extra_image_subcommands() -> dict[str, Any]:
    """``image pull/push/build`` come from the commands that own them (when installed)."""
    from berth.cli.main import COMMANDS, _resolve

    out: dict[str, Any] = {}
    for name in ("pull", "push", "build"):
        if name in COMMANDS:
            out[name] = lambda ctx, argv, n=name: _resolve(n)(ctx, argv)
    return out


def _inspect_images(ctx: Ctx, argv: list[str]) -> int:
    from berth.cli.inspect_cmd import inspect

    return inspect(ctx, ["--type", "image", *argv])


def image_rows(ctx: Ctx, recs: list[Any], *, digests: bool, no_trunc: bool,
               show_dangling: bool = True, references: list[str] | None = None
               ) -> list[dict[str, Any]]:
    """One row per (image, tag) as Docker lists them; untagged images as <none> <none>.

    With ``references`` (``images NAME``, ``--filter reference=``) only the tags matching
    one of them are rows, as in Docker: the image matched, its other tags did not."""
    from berth.images.filters import tag_matches
    from berth.oci import reference
    from berth.units import human_size, time_ago

    rows = []
    for rec in recs:
        base = {
            "ID": rec.id if no_trunc else rec.short_id,
            "CreatedSince": time_ago(rec.created) if rec.created else "N/A",
            "CreatedAt": _created_at(rec.created),
            "Size": human_size(rec.size), "VirtualSize": human_size(rec.size),
            "SharedSize": "N/A", "UniqueSize": "N/A",
            "Containers": str(rec.containers) if rec.containers else "N/A",
            "Labels": ",".join(f"{k}={v}" for k, v in sorted(rec.labels.items())),
        }
        by_repo: dict[str, list[str]] = {}
        for t in rec.tags:
            if references and not any(tag_matches(t, p) for p in references):
                continue
            r = reference.parse(t)
            by_repo.setdefault(r.familiar_repository, []).append(r.tag or "<none>")
        digest_of = {}
        for d in rec.repo_digests:
            repo, _, dg = d.partition("@")
            digest_of[reference.parse(repo).familiar_repository] = dg
        if not by_repo:
            for repo, dg in (digest_of.items() if digests else []):
                rows.append({**base, "Repository": repo, "Tag": "<none>", "Digest": dg})
            if not (digests and digest_of):
                rows.append({**base, "Repository": "<none>", "Tag": "<none>",
                             "Digest": "<none>"})
            continue
        for repo, tags in by_repo.items():
            for t in tags:
                rows.append({**base, "Repository": repo, "Tag": t,
                             "Digest": digest_of.get(repo, "<none>")})
    return rows


def _created_at(ts: float) -> str:
    import time

    return time.strftime("%Y-%m-%d %H:%M:%S %z %Z", time.localtime(ts)) if ts else ""


def images(ctx: Ctx, argv: list[str]) -> int:
    from berth.cli.output import format_rows
    from berth.images.filters import IMAGE_FILTERS

    p = Parser("berth images", "List images")
    p.add_argument("repository", nargs="?", help="REPOSITORY[:TAG]")
    p.add_argument("-a", "--all", action="store_true", help="Show all images")
    p.add_argument("-q", "--quiet", action="store_true", help="Only show image IDs")
    p.add_argument("--no-trunc", action="store_true", help="Don't truncate output")
    p.add_argument("--digests", action="store_true", help="Show digests")
    add_filter(p)
    add_format(p)
    a = p.parse(argv)
    filters = parse_filters(a.filter, IMAGE_FILTERS, p.prog)
    if a.repository:
        filters.setdefault("reference", []).append(a.repository)
    recs = ctx.engine.images(all=a.all, filters=filters)
    rows = image_rows(ctx, recs, digests=a.digests, no_trunc=a.no_trunc,
                      references=filters.get("reference"))
    if a.quiet:  # one line per row (per tag), as Docker prints them
        out("\n".join(r["ID"] for r in rows))
        return 0
    cols = list(IMAGE_COLUMNS)
    if a.digests:
        cols.insert(2, ("DIGEST", "Digest"))
    out(format_rows(rows, cols, a.format, headers=IMAGE_HEADERS))
    return 0


def import_(ctx: Ctx, argv: list[str]) -> int:
    p = Parser("berth import", "Import the contents from a tarball to create a filesystem image")
    p.add_argument("file", metavar="file|-")
    p.add_argument("reference", nargs="?", metavar="REPOSITORY[:TAG]")
    p.add_argument("-c", "--change", action="append", default=[],
                   help="Apply Dockerfile instruction to the created image")
    p.add_argument("-m", "--message", default="", help="Set commit message for imported image")
    p.add_argument("--platform", default=None, help="Set platform (os/arch)")
    a = p.parse(argv)
    if a.reference:  # validate before reading a possibly huge input
        from berth.images.ingest import parse_tag

        parse_tag(a.reference)
    src = sys.stdin.buffer if a.file == "-" else _open_input(a.file)
    try:
        image_id = ctx.engine.import_image(src, a.reference, changes=a.change,
                                           message=a.message)
    finally:
        if src is not sys.stdin.buffer:
            src.close()
    print(image_id)
    return 0


def _open_input(path: str):  # type: ignore[no-untyped-def]
    if "://" in path:
        raise InvalidArgument(f"importing from a URL is not supported: {path}")
    try:
        return open(path, "rb")
    except FileNotFoundError:
        raise BerthError(f"open {path}: no such file or directory") from None
    except IsADirectoryError:
        raise BerthError(f"open {path}: is a directory") from None


def load(ctx: Ctx, argv: list[str]) -> int:
    p = Parser("berth load", "Load an image from a tar archive or STDIN")
    p.add_argument("-i", "--input", default=None, help="Read from tar archive file")
    p.add_argument("-q", "--quiet", action="store_true", help="Suppress the load output")
    a = p.parse(argv)
    if a.input:
        if not os.path.exists(a.input):
            raise BerthError(f"open {a.input}: no such file or directory")
        res = ctx.engine.load(a.input)
    else:
        if sys.stdin.isatty():
            raise BerthError("requested load from stdin, but stdin is empty")
        res = ctx.engine.load(sys.stdin.buffer)
    if not a.quiet:
        out("\n".join(res.lines()))
    return 0


def save(ctx: Ctx, argv: list[str]) -> int:
    from berth.errors import is_no_space
    from berth.store.fsutil import fsync_dir

    p = Parser("berth save", "Save one or more images to a tar archive (streamed to STDOUT by default)")
    p.add_argument("images", nargs="+", metavar="IMAGE")
    p.add_argument("-o", "--output", default=None, help="Write to a file, instead of STDOUT")
    p.add_argument("--format", default="docker-archive",
                   choices=["docker-archive", "oci-archive"], help="Archive format")
    a = p.parse(argv)
    eng = ctx.engine
    for name in a.images:
        eng.image_service.resolve(name)  # fail before creating any file
    if not a.output:  # Docker: -o "" is standard output too
        if sys.stdout.isatty():
            raise BerthError("cowardly refusing to save to a terminal. "
                             "Use the -o flag or redirect")
        eng.save(a.images, sys.stdout.buffer, format=a.format)
        sys.stdout.buffer.flush()
        return 0
    out_dir = os.path.dirname(os.path.abspath(a.output))
    if not os.path.isdir(out_dir):  # Docker's words, before anything is written
        raise BerthError(f'failed to save image: invalid output path: directory "{out_dir}" '
                         "does not exist")
    if os.path.isdir(a.output):
        raise BerthError(f'failed to save image: invalid output path: "{a.output}" is a '
                         "directory")
    tmp = os.path.join(out_dir, f".{os.path.basename(a.output)}.berth-tmp-{os.getpid()}")
    try:
        try:
            f = open(tmp, "wb")  # noqa: SIM115 - closed by the with below
        except OSError as e:
            if is_no_space(e):
                raise
            raise BerthError(f"failed to save image: open {a.output}: "
                             f"{(e.strerror or str(e)).lower()}") from None
        with f:
            eng.save(a.images, f, format=a.format)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, a.output)
        fsync_dir(out_dir)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return 0


def tag(ctx: Ctx, argv: list[str]) -> int:
    p = Parser("berth tag", "Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE")
    p.add_argument("source", metavar="SOURCE_IMAGE[:TAG]")
    p.add_argument("target", metavar="TARGET_IMAGE[:TAG]")
    a = p.parse(argv)
    ctx.engine.tag(a.source, a.target)
    return 0


def rmi(ctx: Ctx, argv: list[str]) -> int:
    p = Parser("berth rmi", "Remove one or more images")
    p.add_argument("images", nargs="+", metavar="IMAGE")
    p.add_argument("-f", "--force", action="store_true", help="Force removal of the image")
    p.add_argument("--no-prune", action="store_true", help="Do not delete untagged parents")
    a = p.parse(argv)
    res, errors = ctx.engine.rmi(a.images, force=a.force, prune_parents=not a.no_prune)
    out("\n".join(res.lines()))
    for e in errors:
        sys.stderr.write(f"Error: {e}\n")
    return 1 if errors else 0


def prune(ctx: Ctx, argv: list[str]) -> int:
    from berth.units import human_size

    p = Parser("berth image prune", "Remove unused images")
    p.add_argument("-a", "--all", action="store_true",
                   help="Remove all unused images, not just dangling ones")
    p.add_argument("-f", "--force", action="store_true", help="Do not prompt for confirmation")
    add_filter(p, short=False)
    a = p.parse(argv)
    filters = parse_filters(a.filter, {"until", "label", "label!"}, p.prog)
    if not a.force and not confirm(
            "WARNING! This will remove all " + ("images without at least one container "
                                                "associated to them." if a.all else
                                                "dangling images.")):
        return 0
    res = ctx.engine.image_prune(all=a.all, filters=filters)
    if res.untagged or res.deleted:
        lines = ["Deleted Images:"] + [f"untagged: {t}" for t in res.untagged] + \
                [f"deleted: {d}" for d in res.deleted] + [""]
        out("\n".join(lines))
    out(f"Total reclaimed space: {human_size(res.reclaimed)}")
    return 0


def history(ctx: Ctx, argv: list[str]) -> int:
    from berth.cli.output import format_rows
    from berth.units import human_size, rfc3339_nano, time_ago

    p = Parser("berth history", "Show the history of an image")
    p.add_argument("image", metavar="IMAGE")
    p.add_argument("-H", "--human", default="true", help="Print sizes and dates in human readable format")
    p.add_argument("--no-trunc", action="store_true", help="Don't truncate output")
    p.add_argument("-q", "--quiet", action="store_true", help="Only show image IDs")
    add_format(p)
    a = p.parse(argv)
    human = a.human.lower() not in ("false", "0")
    rows = []
    for h in ctx.engine.history(a.image):
        img = h["ID"]
        if img != "<missing>" and not a.no_trunc:
            img = img.split(":", 1)[1][:12]
        created_by = h["CreatedBy"]
        if not a.no_trunc and len(created_by) > 45:
            created_by = created_by[:44] + "…"
        rows.append({"ID": img,
                     "CreatedSince": time_ago(h["Created"]) if human and h["Created"] else
                     (rfc3339_nano(h["Created"]) if h["Created"] else "N/A"),
                     "CreatedAt": rfc3339_nano(h["Created"]) if h["Created"] else "",
                     "CreatedBy": created_by,
                     "Size": human_size(h["Size"]) if human else str(h["Size"]),
                     "Comment": h["Comment"]})
    if a.quiet:
        out("\n".join(r["ID"] for r in rows))
        return 0
    cols = [("IMAGE", "ID"), ("CREATED", "CreatedSince"), ("CREATED BY", "CreatedBy"),
            ("SIZE", "Size"), ("COMMENT", "Comment")]
    out(format_rows(rows, cols, a.format,
                     headers={"ID": "IMAGE", "CreatedSince": "CREATED",
                              "CreatedAt": "CREATED AT", "CreatedBy": "CREATED BY",
                              "Size": "SIZE", "Comment": "COMMENT"}))
    return 0
