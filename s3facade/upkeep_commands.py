"""The commands that check and maintain the log and the store: verify, rebuild, gc and
lifecycle run, online (`--endpoint`) or offline (`--data-dir`, a stopped server's)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from contextlib import nullcontext
from datetime import timedelta
from typing import Any

from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from s3facade.admin_client import UPKEEP_TIMEOUT
from s3facade.backends.catalog import build_backend_set
from s3facade.command_common import (
    CommandError,
    OpenRegistry,
    admin_client,
    emit,
    offline,
    open_bare_log,
    open_writable,
)
from s3facade.config import load_config
from s3facade.registry import Registry
from s3facade.registry.anchor import AnchorDamaged, LogAnchor, default_anchor_path
from s3facade.registry.errors import CorruptLog, NoSuchBucket
from s3facade.registry.gc import collect, plan_collection
from s3facade.registry.heads import HeadKey
from s3facade.registry.sweeper import run as run_lifecycle
from s3facade.registry.verification import VerifiedPoint, record_verified, verify_log, verify_stored
from s3facade.registry.verify import (
    Finding,
    HeadAudit,
    VerifyReport,
    parse_head,
)
from s3facade.registry.views import Views


def verify(args: argparse.Namespace, open_registry: OpenRegistry) -> int:
    show_progress = not args.json and sys.stderr.isatty()
    if args.head:
        try:
            parse_head(args.head)
        except ValueError as exc:
            raise CommandError(str(exc)) from None
    if args.endpoint:
        params = {"head": args.head} if args.head else {}
        params |= {"incremental": "true"} if args.incremental else {}
        data = _on_server(args, "/-/admin/verify", params, "verifying on the server")
    else:
        data = _verify_offline(args, show_progress=show_progress)

    def render(data: dict[str, Any], console: Console) -> None:
        heads = data["signed_heads"]
        signed = (
            f"signed heads: {heads['checked']}, the last covering event {heads['last_signed_seq']}"
            if heads["trusted_keys"]
            else f"signed heads: {heads['checked']} (not checked: no trusted key)"
        )
        since = data.get("incremental_from")
        walked = f"after the verified event {since}" if since is not None else "from the first"
        console.print(
            f"events checked: {data['events_checked']} {walked} (head {data['last_seq']}:"
            f"{data['last_hash']})\n{signed}\nblobs checked: {data['blobs_checked']}"
        )
        for finding in data["findings"]:
            where = finding["kind"]
            if finding["seq"] is not None:
                where += f" at event {finding['seq']}"
            if finding["digest"] is not None:
                where = f"blob {finding['backend_id']}:{finding['digest']}"
            console.print(f"[red]FINDING[/] {where}: {finding['reason']}")
        console.print("[green]clean[/]" if data["ok"] else "[red]tampering detected[/]")

    emit(args, data, render)
    return 0 if data["ok"] else 1


def _verify_offline(args: argparse.Namespace, *, show_progress: bool) -> dict[str, Any]:
    """Chain, signed heads and anchor from the bare log; then the views (if they can be
    built from it) and the blobs (registry.verification)."""
    config = load_config(args.config, {"data_dir": args.data_dir})
    trusted = {*config.head_trusted_keys, *(args.trusted_key or ())}
    if config.head_key_file.exists():
        trusted.add(HeadKey.load(config.head_key_file).public_hex)
    audit = HeadAudit(
        frozenset(trusted),
        timedelta(seconds=config.head_signing_interval_seconds),
        parse_head(args.head) if args.head else None,
    )
    anchor_path = config.anchor_path or default_anchor_path(args.data_dir)
    state = VerifiedPoint.path_beside(anchor_path)
    since = VerifiedPoint.load(state) if args.incremental else None
    report = VerifyReport()
    log = open_bare_log(args.data_dir)
    try:
        with Progress(disable=not show_progress, transient=True) as progress:
            events = progress.add_task("hash chain", total=log.last_seq)
            try:
                anchor = LogAnchor.read(anchor_path)
            except AnchorDamaged as exc:
                report.findings.append(Finding("anchor", str(exc)))
                anchor = None
            advance = lambda n: progress.advance(events, n)  # noqa: E731
            verify_log(log, report, audit, anchor, since, advance)
            backends = build_backend_set(config.backends, config.placement, config.data_dir)
            views = Views.in_data_dir(args.data_dir)
            try:
                views.catch_up(log)
                data = progress.add_task("blobs", total=None)
                registry = Registry(log, backends, views)
                asyncio.run(verify_stored(registry, report, lambda n: progress.advance(data, n)))
            except CorruptLog as exc:
                report.findings.append(Finding("views", str(exc), seq=exc.seq))
            finally:
                views.close()
    finally:
        log.close_sync()
    record_verified(report, state)
    return report.as_dict()


def _on_server(
    args: argparse.Namespace, path: str, params: dict[str, str] | None, doing: str
) -> Any:
    """An upkeep request to a running server: it waits as long as the work takes, with a
    status line on a terminal meanwhile."""
    waiting = Console(stderr=True).status(doing)
    with waiting if not getattr(args, "json", False) and sys.stderr.isatty() else nullcontext():
        return admin_client(args, UPKEEP_TIMEOUT).json("POST", path, params)


def rebuild(args: argparse.Namespace, open_registry: OpenRegistry) -> int:
    if args.endpoint:
        params = {"force": "true"} if args.force else None
        data = _on_server(args, "/-/admin/rebuild", params, "rebuilding the views on the server")
    elif args.force:
        raise CommandError(
            "--force replaces a running server's views (use --endpoint); a stopped server "
            "builds fresh views from the log when it starts"
        )
    else:
        with offline(args, open_registry) as registry:
            compared = asyncio.run(registry.compare_views())
            data = {
                "identical": compared.identical,
                "swapped": False,
                "live": compared.live,
                "rebuilt": compared.rebuilt,
            }

    def render(d: dict[str, Any], c: Console) -> None:
        if d["identical"]:
            c.print(f"the views match the log: {d['rebuilt']}")
        elif d["swapped"]:
            c.print(f"[yellow]replaced[/] views {d['live']} with {d['rebuilt']} (recorded)")
        else:
            c.print(
                f"[red]the views DIFFER from the log[/]: live {d['live']}, from the log "
                f"{d['rebuilt']}; nothing changed (gc is refused until --force or a restart)"
            )

    emit(args, data, render)
    return 0 if data["identical"] or data["swapped"] else 1


def gc(args: argparse.Namespace, open_registry: OpenRegistry) -> int:
    show_progress = not args.json and sys.stderr.isatty()
    if args.endpoint:
        params = {"dry-run": "true"} if args.dry_run else None
        data = _on_server(args, "/-/admin/gc", params, "collecting garbage on the server")
    elif args.dry_run:  # reads only: the log may stay read-only
        with offline(args, open_registry) as registry:
            data = asyncio.run(_gc_offline(registry, dry_run=True, show_progress=show_progress))
    else:
        registry = open_writable(args)
        data = asyncio.run(_gc_offline(registry, dry_run=False, show_progress=show_progress))

    def render(data: dict[str, Any], console: Console) -> None:
        verb = "would remove" if data["dry_run"] else "removed"
        blobs = Table.grid(padding=(0, 2))  # no borders: a digest alone is 64 columns
        for blob in data["collected"][:50]:
            blobs.add_row(blob["backend_id"], blob["sha256"], f"{blob['size']} B")
        if len(data["collected"]) > 50:
            blobs.add_row("…", f"and {len(data['collected']) - 50} more (see --json)", "")
        console.print(blobs)
        console.print(
            f"{data['candidates']} candidate(s): {verb} {data['collected_count']} blob(s), "
            f"{data['collected_bytes']} bytes; {data['kept']} still referenced, "
            f"{data['absent']} already gone"
        )
        for problem in data["problems"]:
            where = f"{problem['backend_id']}:{problem['sha256']}"
            console.print(f"[red]PROBLEM[/] {where}: {problem['reason']}")

    emit(args, data, render)
    return 1 if data["problems"] else 0


async def _gc_offline(registry: Registry, *, dry_run: bool, show_progress: bool) -> dict[str, Any]:
    try:
        plan = await plan_collection(registry)
        with Progress(disable=not show_progress, transient=True) as progress:
            task = progress.add_task("blobs", total=len(plan.candidates))
            report = await collect(
                registry,
                plan,
                dry_run=dry_run,
                progress=lambda n: progress.advance(task, n),
                trigger="offline",
            )
        return report.as_dict()
    finally:
        if not dry_run:  # a read-only registry is closed by `offline()`
            await registry.close()
        for backend in registry.backends.values():
            close = getattr(backend, "aclose", None)  # upstream clients hold connections
            if close is not None:
                await close()


def lifecycle_run(args: argparse.Namespace, open_registry: OpenRegistry) -> int:
    show_progress = not args.json and sys.stderr.isatty()
    if args.endpoint:
        params = {"dry-run": "true"} if args.dry_run else {}
        params |= {"bucket": args.bucket} if args.bucket else {}
        doing = "applying the lifecycle rules on the server"
        data = _on_server(args, "/-/admin/lifecycle/run", params, doing)
    elif args.dry_run:  # plans only: the log may stay read-only
        with offline(args, open_registry) as registry:
            data = asyncio.run(_lifecycle_offline(registry, args, show_progress=show_progress))
    else:
        registry = open_writable(args)
        data = asyncio.run(_lifecycle_offline(registry, args, show_progress=show_progress))

    def render(data: dict[str, Any], console: Console) -> None:
        dry_run = " (dry run: nothing changed)" if data["dry_run"] else ""
        table = Table(title=f"lifecycle at {data['now']}{dry_run}")
        for column in ("action", "bucket/key", "version or upload", "rule", "status"):
            table.add_column(column)
        for step in data["steps"]:
            table.add_row(
                step["action"],
                f"{step['bucket']}/{step['key']}",
                step["version_id"] or step["upload_id"] or "",
                step["rule"],
                step["status"] + (f": {step['reason']}" if step["reason"] else ""),
            )
        if data["steps"]:
            console.print(table)
        counts = data["counts"]
        done = f"{counts['planned']} planned" if data["dry_run"] else f"{counts['applied']} applied"
        console.print(f"{done}, {counts['skipped']} skipped (protected, or changed meanwhile)")

    emit(args, data, render)
    return 0


async def _lifecycle_offline(
    registry: Registry, args: argparse.Namespace, *, show_progress: bool
) -> dict[str, Any]:
    try:
        with Progress(disable=not show_progress, transient=True) as progress:
            task = progress.add_task("lifecycle", total=None)
            result = await run_lifecycle(
                registry,
                dry_run=args.dry_run,
                buckets=[args.bucket] if args.bucket else None,
                progress=lambda done, total: progress.update(task, completed=done, total=total),
            )
        return result.as_dict()
    except NoSuchBucket:
        raise CommandError(f"no bucket {args.bucket!r}") from None
    finally:
        if not args.dry_run:  # a read-only registry is closed by `offline()`
            await registry.close()
