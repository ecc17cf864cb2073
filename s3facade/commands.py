"""Registry commands: provenance, log, sql, export, attest, verify, rebuild, gc, retention.

Each works two ways: against a running server through its admin API (`--endpoint`), or
offline on a stopped server's data dir (`--data-dir`, the default), since DuckDB lets
one process at a time hold the log. Each prints a table, or JSON with `--json`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from backends.catalog import build_backend_set
from registry import Registry
from registry.anchor import AnchorDamaged, LogAnchor, default_anchor_path
from registry.audit import (
    attestation,
    event_dict,
    export_parquet,
    log_events,
    object_history,
)
from registry.errors import CorruptLog, LogInUse, LogUntrusted, NoSuchBucket, NoSuchKey
from registry.gc import collect, live_blobs, plan_collection
from registry.heads import HeadKey
from registry.log import EventLog
from registry.registry import LOG_FILE, open_log_read_only
from registry.sql import SqlError, SqlLimits, SqlSandbox
from registry.sweeper import run as run_lifecycle
from registry.verify import (
    Finding,
    HeadAudit,
    VerifyReport,
    check_anchor,
    parse_head,
    verify_blobs,
    verify_chain,
)
from s3facade.admin import retention_of
from s3facade.admin_client import AdminClient, AdminError, object_path
from s3facade.config import load_config

OpenRegistry = Callable[[argparse.Namespace], Registry]


class CommandError(Exception):
    """Printed without a traceback; exit status 2."""


def add_source_arguments(parser: argparse.ArgumentParser) -> None:
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--endpoint", help="a running server (credentials from the env)")
    where.add_argument("--data-dir", type=Path, default=Path("./data"), help="offline data dir")
    parser.add_argument("--config", type=Path, default=None, help="TOML config (offline)")
    parser.add_argument("--json", action="store_true", help="machine-readable output")


def parse_s3_url(url: str) -> tuple[str, str]:
    if not url.startswith("s3://"):
        raise CommandError(f"expected s3://bucket/key, got {url!r}")
    bucket, _, key = url[5:].partition("/")
    if not bucket or not key:
        raise CommandError(f"expected s3://bucket/key, got {url!r}")
    return bucket, key


@contextmanager
def offline(args: argparse.Namespace, open_registry: OpenRegistry) -> Iterator[Registry]:
    try:
        registry = open_registry(args)
    except FileNotFoundError:
        raise CommandError(f"no registry in {args.data_dir} (see --data-dir)") from None
    except LogInUse as exc:
        raise CommandError(
            f"{args.data_dir} is in use, probably by a running server: use --endpoint URL ({exc})"
        ) from None
    except (LogUntrusted, CorruptLog) as exc:
        raise CommandError(str(exc)) from None
    try:
        yield registry
    finally:
        registry.log.close_sync()


def _emit(args: argparse.Namespace, data: Any, render: Callable[[Any, Console], None]) -> None:
    if args.json:
        print(json.dumps(data, indent=2, sort_keys=True, default=str))
    else:
        render(data, Console())


def _event_rows(events: list[dict[str, Any]], title: str) -> Table:
    table = Table(title=title)
    for column in ("seq", "time", "event", "bucket/key", "principal", "tool", "details"):
        table.add_column(column)
    for event in events:
        data = event["data"]
        tool = data.get("tool") or {}
        details = ""
        if "sha256" in data and event["type"] != "ObjectRead":
            details = f"sha256 {data['sha256'][:16]}… {data.get('size', '')} B"
        if event["type"] == "ObjectRead":
            details = f"{data.get('method')} {data.get('status')} {data.get('bytes_sent')} B"
            details += "" if data.get("completed") else " (client hung up)"
        if event["type"] == "BlobsCollected":
            details = f"{data.get('count')} blob(s), {data.get('bytes')} B reclaimed"
        if event["type"] == "BlobDamaged":
            found = str(data.get("found", ""))
            found = f"{found[:16]}…" if len(found) == 64 else found  # a digest, or what is there
            details = f"sha256 {data['sha256'][:16]}… found {found} (by {data.get('detected_by')})"
        if event["type"] == "ScrubPassCompleted":
            details = f"{data.get('blobs_checked')} blob(s), {data.get('damaged_count')} damaged"
        if data.get("attached"):
            details += " " + ", ".join(f"{k}={v}" for k, v in data["attached"].items())
        if data.get("derived_from"):
            src = data["derived_from"]
            details += f" from s3://{src['bucket']}/{src['key']}"
        table.add_row(
            str(event["seq"]),
            event["time"][:23],
            event["type"],
            f"{event['bucket']}/{event['key'] or ''}",
            data.get("principal", ""),
            f"{tool.get('name', '')} {tool.get('version', '')}".strip(),
            details.strip(),
        )
    return table


def provenance(args: argparse.Namespace, open_registry: OpenRegistry) -> int:
    bucket, key = parse_s3_url(args.url)
    if args.endpoint:
        params = {"version-id": args.version_id} if args.version_id else None
        data = AdminClient(args.endpoint).json(
            "GET", object_path("/-/provenance", bucket, key), params
        )
    else:
        with offline(args, open_registry) as registry:
            history = object_history(registry.log, bucket, key, args.version_id)
            if not history.events:
                raise CommandError(f"nothing recorded for {args.url}")
            data = history.as_dict()

    def render(data: dict[str, Any], console: Console) -> None:
        current = data["current"]
        if current:
            d = current["data"]
            console.print(f"[bold]{args.url}[/] sha256 {d['sha256']} ({d['size']} bytes)")
            console.print(
                f"written by {d['principal']} with {d['tool']['name']} "
                f"{d['tool']['version']} at {current['time']}"
            )
        else:
            console.print(f"[bold]{args.url}[/]: no current version")
        console.print(_event_rows(data["derived_from"], "derived from"))
        console.print(_event_rows(data["events"], "history"))
        console.print(_event_rows(data["copied_to"], "copied to"))

    _emit(args, data, render)
    return 0


def log(args: argparse.Namespace, open_registry: OpenRegistry) -> int:
    since = datetime.fromisoformat(args.since) if args.since else None
    if args.endpoint:
        params = {"limit": str(args.limit)}
        params |= {"since": args.since} if args.since else {}
        params |= {"bucket": args.bucket} if args.bucket else {}
        data = AdminClient(args.endpoint).json("GET", "/-/admin/log", params)
    else:
        with offline(args, open_registry) as registry:
            events = log_events(registry.log, since=since, bucket=args.bucket, limit=args.limit)
            data = {"events": [event_dict(e) for e in events]}
    _emit(args, data, lambda d, c: c.print(_event_rows(d["events"], "event log")))
    return 0


def sql(args: argparse.Namespace, open_registry: OpenRegistry) -> int:
    if args.endpoint:
        data = AdminClient(args.endpoint).json("POST", "/-/admin/sql", body=args.query.encode())
    else:
        data = json.loads(asyncio.run(_sql_offline(args)))

    def render(data: dict[str, Any], console: Console) -> None:
        table = Table()
        for column in data["columns"]:
            table.add_column(column)
        for row in data["rows"]:
            table.add_row(*(json.dumps(v) if isinstance(v, dict | list) else str(v) for v in row))
        console.print(table)

    _emit(args, data, render)
    return 0


async def _sql_offline(args: argparse.Namespace) -> bytes:
    """The query in the same sandboxed child as on a server, over the stopped server's log
    file, which the child attaches read-only (so this process does not open it)."""
    database = args.data_dir / LOG_FILE
    if not database.exists():
        raise CommandError(f"no registry in {args.data_dir} (see --data-dir)")
    config = load_config(args.config, {"data_dir": args.data_dir})
    limits = SqlLimits(
        timeout_seconds=config.sql_timeout_seconds,
        memory_mib=config.sql_memory_mib,
        threads=config.sql_threads,
        concurrency=1,
    )
    try:
        return await SqlSandbox.offline(database, limits).query(args.query)
    except SqlError as exc:
        if exc.code == "LogInUse":
            raise CommandError(
                f"{args.data_dir} is in use, probably by a running server: use --endpoint URL"
            ) from None
        raise CommandError(str(exc)) from None


def export(args: argparse.Namespace, open_registry: OpenRegistry) -> int:
    target = Path(args.directory) / "events.parquet"
    if args.endpoint:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(AdminClient(args.endpoint).request("GET", "/-/admin/export"))
    else:
        with offline(args, open_registry) as registry:
            target = export_parquet(registry.log, Path(args.directory))
    _emit(args, {"path": str(target)}, lambda d, c: c.print(f"wrote {d['path']}"))
    return 0


def attest(args: argparse.Namespace, open_registry: OpenRegistry) -> int:
    bucket, key = parse_s3_url(args.url)
    if args.endpoint:
        data = AdminClient(args.endpoint).json("GET", object_path("/-/admin/attest", bucket, key))
    else:
        with offline(args, open_registry) as registry:
            data = attestation(object_history(registry.log, bucket, key))
    print(json.dumps(data, indent=2, sort_keys=True))  # a statement is JSON either way
    return 0


def verify(args: argparse.Namespace, open_registry: OpenRegistry) -> int:
    show_progress = not args.json and sys.stderr.isatty()
    if args.head:
        try:
            parse_head(args.head)
        except ValueError as exc:
            raise CommandError(str(exc)) from None
    if args.endpoint:
        params = {"head": args.head} if args.head else None
        data = AdminClient(args.endpoint).json("POST", "/-/admin/verify", params)
    else:
        data = _verify_offline(args, show_progress=show_progress)

    def render(data: dict[str, Any], console: Console) -> None:
        heads = data["signed_heads"]
        signed = (
            f"signed heads: {heads['checked']}, the last covering event {heads['last_signed_seq']}"
            if heads["trusted_keys"]
            else f"signed heads: {heads['checked']} (not checked: no trusted key)"
        )
        console.print(
            f"events checked: {data['events_checked']} (head {data['last_seq']}:"
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

    _emit(args, data, render)
    return 0 if data["ok"] else 1


def _verify_offline(args: argparse.Namespace, *, show_progress: bool) -> dict[str, Any]:
    """Chain, signed heads and anchor from the bare log; then the views (if they can be
    built from it) for the list of blobs to re-hash."""
    config = load_config(args.config, {"data_dir": args.data_dir})
    trusted = {*config.head_trusted_keys, *(args.trusted_key or ())}
    if config.head_key_file.exists():
        trusted.add(HeadKey.load(config.head_key_file).public_hex)
    audit = HeadAudit(
        frozenset(trusted),
        timedelta(seconds=config.head_signing_interval_seconds),
        parse_head(args.head) if args.head else None,
    )
    report = VerifyReport()
    log = _open_bare_log(args.data_dir)
    try:
        with Progress(disable=not show_progress, transient=True) as progress:
            events = progress.add_task("hash chain", total=log.last_seq)
            verify_chain(log.select_raw(), report, lambda n: progress.advance(events, n), audit)
            try:
                anchor = LogAnchor.read(config.anchor_path or default_anchor_path(args.data_dir))
                check_anchor(report, anchor, log.stored_hash(anchor.seq) if anchor else None)
            except AnchorDamaged as exc:
                report.findings.append(Finding("anchor", str(exc)))
            try:
                backends = build_backend_set(config.backends, config.placement, config.data_dir)
                blobs = live_blobs(Registry(log, backends).namespace)
            except CorruptLog as exc:
                report.findings.append(Finding("views", str(exc), seq=exc.seq))
                blobs = {}
            data = progress.add_task("blobs", total=sum(blobs.values()))
            asyncio.run(verify_blobs(blobs, backends, report, lambda n: progress.advance(data, n)))
    finally:
        log.close_sync()
    return report.as_dict()


def _open_bare_log(data_dir: Path) -> EventLog:
    try:
        return open_log_read_only(data_dir)
    except FileNotFoundError:
        raise CommandError(f"no registry in {data_dir} (see --data-dir)") from None
    except LogInUse as exc:
        raise CommandError(
            f"{data_dir} is in use, probably by a running server: use --endpoint URL ({exc})"
        ) from None
    except LogUntrusted as exc:
        raise CommandError(str(exc)) from None


def rebuild(args: argparse.Namespace, open_registry: OpenRegistry) -> int:
    if args.endpoint:
        params = {"force": "true"} if args.force else None
        data = AdminClient(args.endpoint).json("POST", "/-/admin/rebuild", params)
    elif args.force:
        raise CommandError(
            "--force replaces a running server's views (use --endpoint); a stopped server "
            "builds fresh views from the log when it starts"
        )
    else:
        with offline(args, open_registry) as registry:
            _, before, after = registry.compare_views()
            identical = before == after
            data = {"identical": identical, "swapped": False, "live": before, "rebuilt": after}

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

    _emit(args, data, render)
    return 0 if data["identical"] or data["swapped"] else 1


def gc(args: argparse.Namespace, open_registry: OpenRegistry) -> int:
    show_progress = not args.json and sys.stderr.isatty()
    if args.endpoint:
        params = {"dry-run": "true"} if args.dry_run else None
        waiting = Console(stderr=True).status("collecting garbage on the server")
        with waiting if show_progress else nullcontext():
            data = AdminClient(args.endpoint).json("POST", "/-/admin/gc", params)
    elif args.dry_run:  # reads only: the log may stay read-only
        with offline(args, open_registry) as registry:
            data = asyncio.run(_gc_offline(registry, dry_run=True, show_progress=show_progress))
    else:
        registry = _open_writable(args)
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

    _emit(args, data, render)
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


def _open_writable(args: argparse.Namespace) -> Registry:
    """The stopped server's registry with a writable log: gc records what it removed.
    (The other offline commands open it read-only.)"""
    from s3facade.cli import open_registry as open_configured  # cli imports this module

    if not (args.data_dir / LOG_FILE).exists():
        raise CommandError(f"no registry in {args.data_dir} (see --data-dir)")
    try:
        return open_configured(load_config(args.config, {"data_dir": args.data_dir}))
    except LogInUse as exc:
        raise CommandError(
            f"{args.data_dir} is in use, probably by a running server: use --endpoint URL ({exc})"
        ) from None
    except LogUntrusted as exc:  # the same checks as a server's start: no gc on a lost log
        raise CommandError(str(exc)) from None


def retention(args: argparse.Namespace, open_registry: OpenRegistry) -> int:
    bucket, key = parse_s3_url(args.url)
    if args.endpoint:
        data = AdminClient(args.endpoint).json(
            "GET", object_path("/-/admin/retention", bucket, key)
        )
    else:
        with offline(args, open_registry) as registry:
            try:
                data = retention_of(registry, bucket, key)
            except NoSuchBucket:
                raise CommandError(f"no bucket {bucket!r}") from None
            except NoSuchKey:
                raise CommandError(f"no versions of {args.url}") from None

    def render(data: dict[str, Any], console: Console) -> None:
        # One block per version: version ids are long, a wide table would not fit.
        console.print(f"[bold]{args.url}[/] (now {_short_time(data['now'])})")
        for v in data["versions"]:
            state = ["latest" if v["is_latest"] else "noncurrent"]
            state += ["delete marker"] if v["delete_marker"] else []
            console.print(f"\nversion [bold]{v['version_id']}[/] ({', '.join(state)})")
            rows = Table.grid(padding=(0, 2))
            lock = "none"
            if v["lock_mode"]:
                lock = f"{v['lock_mode']} until {_short_time(v['retain_until'])}"
            rows.add_row("  retention", lock)
            rows.add_row("  legal hold", "ON" if v["legal_hold"] else "off")
            rows.add_row("  protected", "[bold red]yes[/]" if v["protected"] else "no")
            rows.add_row("  set by", v["retention_source"] or "-")
            rows.add_row("  policy", v["retention_policy"] or "-")
            console.print(rows)

    _emit(args, data, render)
    return 0


def _short_time(iso: str | None) -> str:
    """2026-01-02T03:04:05.678901Z -> 2026-01-02 03:04:05Z."""
    return f"{iso[:10]} {iso[11:19]}Z" if iso else "-"


def lifecycle_run(args: argparse.Namespace, open_registry: OpenRegistry) -> int:
    show_progress = not args.json and sys.stderr.isatty()
    if args.endpoint:
        params = {"dry-run": "true"} if args.dry_run else {}
        params |= {"bucket": args.bucket} if args.bucket else {}
        waiting = Console(stderr=True).status("applying the lifecycle rules on the server")
        with waiting if show_progress else nullcontext():
            data = AdminClient(args.endpoint).json("POST", "/-/admin/lifecycle/run", params)
    elif args.dry_run:  # plans only: the log may stay read-only
        with offline(args, open_registry) as registry:
            data = asyncio.run(_lifecycle_offline(registry, args, show_progress=show_progress))
    else:
        registry = _open_writable(args)
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

    _emit(args, data, render)
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


def register(commands: Any, open_registry: OpenRegistry) -> None:
    """Add the registry commands to the `s3facade` parser."""

    def add(
        name: str, run: Callable[[argparse.Namespace, OpenRegistry], int], text: str
    ) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = commands.add_parser(name, help=text)
        add_source_arguments(parser)
        parser.set_defaults(run=lambda args: _guard(run, args, open_registry))
        return parser

    parser = add("provenance", provenance, "an object's full history")
    parser.add_argument("url", help="s3://bucket/key")
    parser.add_argument("--version-id", default=None)
    parser = add("log", log, "the event log")
    parser.add_argument("--since", help="ISO time, UTC")
    parser.add_argument("--bucket")
    parser.add_argument("--limit", type=int, default=1000)
    parser = add("sql", sql, "read-only SQL over the log and its views")
    parser.add_argument("query")
    parser = add("export", export, "the whole log as Parquet")
    parser.add_argument("--format", choices=["parquet"], default="parquet")
    parser.add_argument("directory")
    parser = add("attest", attest, "an in-toto statement for an object")
    parser.add_argument("url", help="s3://bucket/key")
    parser = add("verify", verify, "check the hash chain, signed heads, anchor and every blob")
    parser.add_argument(
        "--head", metavar="SEQ:HASH", help="also prove the log extends this head, saved earlier"
    )
    parser.add_argument(
        "--trusted-key",
        action="append",
        metavar="HEX",
        help="an Ed25519 public key whose signed heads count (besides the configured key's)",
    )
    parser = add("rebuild", rebuild, "replay the log into fresh views and compare")
    parser.add_argument(
        "--force", action="store_true", help="replace a running server's views if they differ"
    )
    lifecycle = commands.add_parser("lifecycle", help="bucket lifecycle rules")
    parser = lifecycle.add_subparsers(dest="lifecycle_command", required=True).add_parser(
        "run", help="apply the lifecycle rules and retention expiry now"
    )
    add_source_arguments(parser)
    parser.add_argument("--dry-run", action="store_true", help="list what would happen only")
    parser.add_argument("--bucket", help="only this bucket")
    parser.set_defaults(run=lambda args: _guard(lifecycle_run, args, open_registry))
    parser = add("gc", gc, "remove blobs no version or upload references")
    parser.add_argument("--dry-run", action="store_true", help="report, remove nothing")
    parser = add("retention", retention, "the effective retention of each version of a key")
    parser.add_argument("url", help="s3://bucket/key")


def _guard(
    run: Callable[[argparse.Namespace, OpenRegistry], int],
    args: argparse.Namespace,
    open_registry: OpenRegistry,
) -> int:
    try:
        return run(args, open_registry)
    except (CommandError, AdminError) as exc:
        print(f"s3facade {args.command}: {exc}", file=sys.stderr)
        return 2
