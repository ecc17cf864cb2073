"""Registry commands: provenance, log, sql, export, attest, retention; and `register`,
which adds them and the upkeep commands (s3facade.upkeep_commands) to the parser.

Each works two ways: against a running server through its admin API (`--endpoint`), or
offline on a stopped server's data dir (`--data-dir`, the default), since DuckDB lets
one process at a time hold the log. Each prints a table, or JSON with `--json`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from s3facade.admin_client import AdminError, object_path
from s3facade.command_common import (
    CommandError,
    OpenRegistry,
    add_source_arguments,
    admin_client,
    emit,
    offline,
    parse_s3_url,
)
from s3facade.config import load_config
from s3facade.registry.audit import (
    attestation,
    effective_retention,
    event_dict,
    export_parquet,
    log_events,
    object_history,
)
from s3facade.registry.errors import NoSuchBucket, NoSuchKey
from s3facade.registry.registry import LOG_FILE
from s3facade.registry.sql import SqlError, SqlLimits, SqlSandbox
from s3facade.upkeep_commands import gc, lifecycle_run, rebuild, verify


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
        data = admin_client(args).json("GET", object_path("/-/provenance", bucket, key), params)
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

    emit(args, data, render)
    return 0


def log(args: argparse.Namespace, open_registry: OpenRegistry) -> int:
    since = datetime.fromisoformat(args.since) if args.since else None
    if args.endpoint:
        params = {"limit": str(args.limit), "order": "oldest" if args.oldest else "newest"}
        params |= {"since": args.since} if args.since else {}
        params |= {"bucket": args.bucket} if args.bucket else {}
        data = admin_client(args).json("GET", "/-/admin/log", params)
    else:
        with offline(args, open_registry) as registry:
            events = log_events(
                registry.log,
                since=since,
                bucket=args.bucket,
                limit=args.limit,
                newest=not args.oldest,
            )
            data = {"events": [event_dict(e) for e in events]}
    emit(args, data, lambda d, c: c.print(_event_rows(d["events"], "event log")))
    return 0


def sql(args: argparse.Namespace, open_registry: OpenRegistry) -> int:
    if args.endpoint:
        data = admin_client(args).json("POST", "/-/admin/sql", body=args.query.encode())
    else:
        data = json.loads(asyncio.run(_sql_offline(args)))

    def render(data: dict[str, Any], console: Console) -> None:
        table = Table()
        for column in data["columns"]:
            table.add_column(column)
        for row in data["rows"]:
            table.add_row(*(json.dumps(v) if isinstance(v, dict | list) else str(v) for v in row))
        console.print(table)

    emit(args, data, render)
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
        target.write_bytes(admin_client(args).request("GET", "/-/admin/export"))
    else:
        with offline(args, open_registry) as registry:
            target = export_parquet(registry.log, Path(args.directory))
    emit(args, {"path": str(target)}, lambda d, c: c.print(f"wrote {d['path']}"))
    return 0


def attest(args: argparse.Namespace, open_registry: OpenRegistry) -> int:
    bucket, key = parse_s3_url(args.url)
    if args.endpoint:
        data = admin_client(args).json("GET", object_path("/-/admin/attest", bucket, key))
    else:
        with offline(args, open_registry) as registry:
            data = attestation(object_history(registry.log, bucket, key))
    print(json.dumps(data, indent=2, sort_keys=True))  # a statement is JSON either way
    return 0


def retention(args: argparse.Namespace, open_registry: OpenRegistry) -> int:
    bucket, key = parse_s3_url(args.url)
    if args.endpoint:
        data = admin_client(args).json("GET", object_path("/-/admin/retention", bucket, key))
    else:
        with offline(args, open_registry) as registry:
            try:
                data = effective_retention(registry, bucket, key)
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

    emit(args, data, render)
    return 0


def _short_time(iso: str | None) -> str:
    """2026-01-02T03:04:05.678901Z -> 2026-01-02 03:04:05Z."""
    return f"{iso[:10]} {iso[11:19]}Z" if iso else "-"


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
    parser.add_argument("--version-id", default=None, help="one version (default: the current)")
    parser = add("log", log, "the event log, newest first")
    parser.add_argument("--since", help="only events at or after this ISO time, UTC")
    parser.add_argument("--bucket", help="only this bucket's events")
    parser.add_argument("--limit", type=int, default=1000, help="at most this many (1000)")
    parser.add_argument(
        "--oldest", action="store_true", help="the oldest events first (from --since)"
    )
    parser = add("sql", sql, "read-only SQL over the log and its views")
    parser.add_argument("query", help="one read-only query (tables: docs/provenance.md)")
    parser = add("export", export, "the whole log as Parquet")
    parser.add_argument("--format", choices=["parquet"], default="parquet", help="(parquet)")
    parser.add_argument("directory", help="where events.parquet is written")
    parser = add("attest", attest, "an in-toto statement for an object")
    parser.add_argument("url", help="s3://bucket/key")
    parser = add("verify", verify, "check the hash chain, signed heads, anchor and every blob")
    parser.add_argument(
        "--head", metavar="SEQ:HASH", help="also prove the log extends this head, saved earlier"
    )
    parser.add_argument(
        "--incremental",
        action="store_true",
        help="only what came after the last clean verify (the whole walk is the default)",
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
