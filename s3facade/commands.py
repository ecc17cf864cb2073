"""The registry's questions as commands: provenance, log, sql, export, attest, retention
(their entries in the command table, s3facade.command_table; upkeep in
s3facade.upkeep_commands). Each `run` is the registry call; each `render` prints its result.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from rich.console import Console
from rich.table import Table

from s3facade.command_table import (
    Command,
    CommandFailed,
    FileResult,
    Option,
    Params,
    Progress,
    parse_s3_url,
)
from s3facade.registry.audit import (
    NoHistory,
    attestation,
    effective_retention,
    event_dict,
    export_parquet,
    log_events,
    object_history,
)
from s3facade.registry.errors import NoSuchBucket, NoSuchKey
from s3facade.registry.sql import SqlError
from s3facade.workspace import Workspace

MAX_LOG_EVENTS = 100_000  # one log answer; page with --since
MAX_SQL_BYTES = 64 * 1024
# SqlError code -> HTTP status. A query that hits a limit is the query's doing (400: the
# same query fails again); only a full house or a shutdown is worth retrying (503).
SQL_STATUS = {
    "InvalidRequest": 400,
    "InvalidQuery": 400,
    "QueryTimeout": 400,
    "QueryMemoryLimit": 400,
    "ResultTooLarge": 400,
    "SlowDown": 503,
    "ServiceUnavailable": 503,
    "LogInUse": 409,
}

URL = Option("url", "s3://bucket/key", parse=parse_s3_url, positional=True, where="path")


def event_rows(events: list[dict[str, Any]], title: str) -> Table:
    table = Table(title=title)
    for column in ("seq", "time", "event", "bucket/key", "principal", "tool", "details"):
        table.add_column(column)
    for event in events:
        data = event["data"]
        tool = data.get("tool") or {}
        table.add_row(
            str(event["seq"]),
            event["time"][:23],
            event["type"],
            f"{event['bucket']}/{event['key'] or ''}",
            data.get("principal", ""),
            f"{tool.get('name', '')} {tool.get('version', '')}".strip(),
            _details(event["type"], data),
        )
    return table


def _details(kind: str, data: dict[str, Any]) -> str:
    details = ""
    if "sha256" in data and kind != "ObjectRead":
        details = f"sha256 {data['sha256'][:16]}… {data.get('size', '')} B"
    if kind == "ObjectRead":
        details = f"{data.get('method')} {data.get('status')} {data.get('bytes_sent')} B"
        details += "" if data.get("completed") else " (client hung up)"
    if kind == "BlobsCollected":
        details = f"{data.get('count')} blob(s), {data.get('bytes')} B reclaimed"
    if kind == "BlobDamaged":
        found = str(data.get("found", ""))
        found = f"{found[:16]}…" if len(found) == 64 else found  # a digest, or what is there
        details = f"sha256 {data['sha256'][:16]}… found {found} (by {data.get('detected_by')})"
    if kind == "ScrubPassCompleted":
        details = f"{data.get('blobs_checked')} blob(s), {data.get('damaged_count')} damaged"
    if data.get("attached"):
        details += " " + ", ".join(f"{k}={v}" for k, v in data["attached"].items())
    if data.get("derived_from"):
        src = data["derived_from"]
        details += f" from s3://{src['bucket']}/{src['key']}"
    if kind == "ObjectImported":
        details += f" imported from {data.get('source')} ({data.get('transfer')})"
    return details.strip()


async def provenance(ws: Workspace, p: Params, progress: Progress) -> dict[str, Any]:
    bucket, key = p.url
    history = await ws.query(lambda: object_history(ws.log, bucket, key, p.version_id))
    if not history.events:
        raise CommandFailed("NoSuchKey", f"nothing recorded for s3://{bucket}/{key}", 404)
    return history.as_dict()


def render_provenance(data: dict[str, Any], console: Console, p: Params) -> None:
    url = f"s3://{data['bucket']}/{data['key']}"
    current = data["current"]
    if current:
        d = current["data"]
        console.print(f"[bold]{url}[/] sha256 {d['sha256']} ({d['size']} bytes)")
        console.print(
            f"written by {d['principal']} with {d['tool']['name']} "
            f"{d['tool']['version']} at {current['time']}"
        )
    else:
        console.print(f"[bold]{url}[/]: no current version")
    console.print(event_rows(data["derived_from"], "derived from"))
    console.print(event_rows(data["events"], "history"))
    console.print(event_rows(data["copied_to"], "copied to"))


async def log(ws: Workspace, p: Params, progress: Progress) -> dict[str, Any]:
    if not 1 <= p.limit <= MAX_LOG_EVENTS:
        raise CommandFailed("InvalidArgument", f"limit must be from 1 to {MAX_LOG_EVENTS}")
    events = await ws.query(
        lambda: log_events(
            ws.log, since=p.since, bucket=p.bucket, limit=p.limit, newest=not p.oldest
        )
    )
    return {"events": [event_dict(e) for e in events]}


async def sql(ws: Workspace, p: Params, progress: Progress) -> Any:
    """One read-only query in a sandboxed child (registry.sql), on a server or over a stopped
    server's log file, which the child attaches read-only."""
    if len(p.query.encode()) > MAX_SQL_BYTES:
        raise CommandFailed("InvalidRequest", "query too long")
    try:
        return json.loads(await ws.sql().query(p.query))
    except SqlError as exc:
        message = exc.message
        if exc.code == "LogInUse":
            message = "the data dir is in use, probably by a running server: use --endpoint URL"
        raise CommandFailed(exc.code, message, SQL_STATUS.get(exc.code, 500)) from None


def render_sql(data: dict[str, Any], console: Console, p: Params) -> None:
    table = Table()
    for column in data["columns"]:
        table.add_column(column)
    for row in data["rows"]:
        table.add_row(*(json.dumps(v) if isinstance(v, dict | list) else str(v) for v in row))
    console.print(table)


async def export(ws: Workspace, p: Params, progress: Progress) -> FileResult:
    assert ws.output_dir is not None  # the CLI's directory offline, a scratch dir online
    directory = ws.output_dir
    return FileResult(await ws.query(lambda: export_parquet(ws.log, directory)))


async def attest(ws: Workspace, p: Params, progress: Progress) -> dict[str, Any]:
    bucket, key = p.url
    history = await ws.query(lambda: object_history(ws.log, bucket, key))
    try:
        return attestation(history)
    except NoHistory as exc:
        raise CommandFailed("NoSuchKey", f"no current version of {exc}", 404) from None


def render_statement(data: dict[str, Any], console: Console, p: Params) -> None:
    print(json.dumps(data, indent=2, sort_keys=True))  # a statement is JSON either way


async def retention(ws: Workspace, p: Params, progress: Progress) -> dict[str, Any]:
    bucket, key = p.url
    registry = await ws.registry()
    try:
        return effective_retention(registry, bucket, key)
    except NoSuchBucket:
        raise CommandFailed("NoSuchBucket", f"no bucket {bucket!r}", 404) from None
    except NoSuchKey:
        raise CommandFailed("NoSuchKey", f"no versions of s3://{bucket}/{key}", 404) from None


def render_retention(data: dict[str, Any], console: Console, p: Params) -> None:
    # One block per version: version ids are long, a wide table would not fit.
    console.print(f"[bold]s3://{data['bucket']}/{data['key']}[/] (now {short_time(data['now'])})")
    for v in data["versions"]:
        state = ["latest" if v["is_latest"] else "noncurrent"]
        state += ["delete marker"] if v["delete_marker"] else []
        console.print(f"\nversion [bold]{v['version_id']}[/] ({', '.join(state)})")
        rows = Table.grid(padding=(0, 2))
        lock = "none"
        if v["lock_mode"]:
            lock = f"{v['lock_mode']} until {short_time(v['retain_until'])}"
        rows.add_row("  retention", lock)
        rows.add_row("  legal hold", "ON" if v["legal_hold"] else "off")
        rows.add_row("  protected", "[bold red]yes[/]" if v["protected"] else "no")
        rows.add_row("  set by", v["retention_source"] or "-")
        rows.add_row("  policy", v["retention_policy"] or "-")
        console.print(rows)


def short_time(iso: str | None) -> str:
    """2026-01-02T03:04:05.678901Z -> 2026-01-02 03:04:05Z."""
    return f"{iso[:10]} {iso[11:19]}Z" if iso else "-"


QUERY_COMMANDS = (
    Command(
        "provenance",
        "an object's full history: writes, reads, copies in and out",
        provenance,
        render_provenance,
        options=(
            URL,
            Option("version-id", "one version (default: the current)", metavar="ID"),
        ),
        examples=(
            "s3facade provenance s3://releases/app.tar.gz",
            "s3facade provenance s3://releases/app.tar.gz --endpoint http://127.0.0.1:9000 --json",
        ),
        path="/-/provenance",
    ),
    Command(
        "log",
        "the event log, newest first",
        log,
        lambda data, console, p: console.print(event_rows(data["events"], "event log")),
        options=(
            Option(
                "since",
                "only events at or after this ISO time, UTC",
                parse=datetime.fromisoformat,
                metavar="TIME",
            ),
            Option("bucket", "only this bucket's events", metavar="NAME"),
            Option("limit", "at most this many (1000)", parse=int, default=1000, metavar="N"),
            Option("oldest", "the oldest events first (from --since)", flag=True),
        ),
        examples=(
            "s3facade log --limit 20",
            "s3facade log --bucket releases --since 2026-11-01T00:00:00 --oldest --json",
        ),
        path="/-/admin/log",
    ),
    Command(
        "sql",
        "read-only SQL over the log and its views, in a sandbox",
        sql,
        render_sql,
        options=(
            Option(
                "query",
                "one read-only query (tables: docs/provenance.md)",
                positional=True,
                where="body",
            ),
        ),
        examples=(
            's3facade sql "SELECT principal, count(*) FROM reads GROUP BY principal"',
            's3facade sql --endpoint http://127.0.0.1:9000 --json "SELECT * FROM objects"',
        ),
        method="POST",
        path="/-/admin/sql",
        opens="nothing",
        cancel_on_hangup=True,
    ),
    Command(
        "export",
        "the whole log as Parquet (DIRECTORY/events.parquet)",
        export,
        lambda data, console, p: console.print(f"wrote {data['path']}"),
        options=(
            Option("directory", "where events.parquet is written", positional=True, where="local"),
            Option("format", "(parquet)", default="parquet", choices=("parquet",), where="local"),
        ),
        examples=("s3facade export ./evidence", "s3facade export --endpoint URL ./evidence"),
        path="/-/admin/export",
        long_running=True,
        writes_file="events.parquet",
    ),
    Command(
        "attest",
        "an in-toto statement for an object's current version (JSON)",
        attest,
        render_statement,
        options=(URL,),
        examples=("s3facade attest s3://releases/app.tar.gz > app.intoto.json",),
        path="/-/admin/attest",
    ),
    Command(
        "retention",
        "the effective retention of each version of a key",
        retention,
        render_retention,
        options=(URL,),
        examples=("s3facade retention s3://records/2026/ledger.csv",),
        path="/-/admin/retention",
    ),
)
