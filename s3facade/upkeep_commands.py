"""The commands that check and maintain the log and the store: verify, rebuild, gc and
lifecycle run (their entries in the command table, s3facade.command_table)."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from s3facade.command_table import Command, CommandFailed, Option, Params, Progress
from s3facade.registry.anchor import AnchorDamaged
from s3facade.registry.errors import CorruptLog, NoSuchBucket
from s3facade.registry.gc import collect, plan_collection
from s3facade.registry.sweeper import run as run_lifecycle
from s3facade.registry.verification import VerifiedPoint, record_verified, verify_log, verify_stored
from s3facade.registry.verify import Finding, HeadAudit, VerifyReport, parse_head
from s3facade.workspace import Workspace


async def verify(ws: Workspace, p: Params, progress: Progress) -> dict[str, Any]:
    """The chain with its signed heads (and that the log extends `--head`), the anchor,
    the views and every blob in use; `--incremental`: only what came after the last
    verified point (registry.verification)."""
    report = VerifyReport()
    audit = HeadAudit(ws.trusted_keys | set(p.trusted_key), ws.signing_interval, p.head)
    state = ws.verified_state
    since = VerifiedPoint.load(state) if p.incremental and state is not None else None
    try:
        anchor = ws.anchor()
    except AnchorDamaged as exc:
        report.findings.append(Finding("anchor", str(exc)))
        anchor = None
    chain = progress.task("hash chain", total=ws.log.last_seq)
    await ws.query(lambda: verify_log(ws.log, report, audit, anchor, since, chain.advance))
    try:
        registry = await ws.registry()
        await verify_stored(registry, report, progress.task("blob bytes").advance)
    except CorruptLog as exc:  # the log does not replay into views
        report.findings.append(Finding("views", str(exc), seq=exc.seq))
    if state is not None:
        record_verified(report, state)
    return report.as_dict()


def render_verify(data: dict[str, Any], console: Console, p: Params) -> None:
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


async def rebuild(ws: Workspace, p: Params, progress: Progress) -> dict[str, Any]:
    """Compare the views with the log; `--force` replaces a running server's views when
    they differ (recorded in the log)."""
    if p.force and ws.read_only:
        raise CommandFailed(
            "InvalidRequest",
            "--force replaces a running server's views (use --endpoint); a stopped server "
            "builds fresh views from the log when it starts",
        )
    registry = await ws.registry()
    return await registry.rebuild(ws.provenance(), force=p.force)


def render_rebuild(d: dict[str, Any], c: Console, p: Params) -> None:
    live, rebuilt = _counted(d["live"]), _counted(d["rebuilt"])
    if d["identical"]:
        c.print(f"the views match the log: {rebuilt}")
    elif d["swapped"]:
        c.print(f"[yellow]replaced[/] the views ({live}) with the log's ({rebuilt}); recorded")
    else:
        c.print(
            f"[red]the views DIFFER from the log[/]: live {live}; from the log {rebuilt}; "
            "nothing changed (gc is refused until --force or a restart)"
        )


def _counted(fingerprint: dict[str, Any]) -> str:
    """A views fingerprint in words: its counts, then its digest."""
    counts = [f"{k} {v}" for k, v in fingerprint.items() if k != "sha256"]
    return f"{', '.join(counts)} (fingerprint {str(fingerprint.get('sha256', ''))[:16]})"


async def gc(ws: Workspace, p: Params, progress: Progress) -> dict[str, Any]:
    """One blob gc pass (registry.gc); `--dry-run`: report only."""
    registry = await ws.registry()
    plan = await plan_collection(registry)
    task = progress.task("blobs", total=len(plan.candidates))
    report = await collect(
        registry, plan, dry_run=p.dry_run, progress=task.advance, trigger=ws.trigger
    )
    return report.as_dict()


def render_gc(data: dict[str, Any], console: Console, p: Params) -> None:
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


async def lifecycle_run(ws: Workspace, p: Params, progress: Progress) -> dict[str, Any]:
    """Apply the lifecycle rules and retention expiry now; `--dry-run`: plan only."""
    registry = await ws.registry()
    task = progress.task("lifecycle")
    try:
        result = await run_lifecycle(
            registry,
            dry_run=p.dry_run,
            buckets=[p.bucket] if p.bucket else None,
            progress=task.update,
        )
    except NoSuchBucket:
        raise CommandFailed("NoSuchBucket", f"no bucket {p.bucket!r}", 404) from None
    return result.as_dict()


def render_lifecycle(data: dict[str, Any], console: Console, p: Params) -> None:
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


DRY_RUN = Option("dry-run", "report what would happen, change nothing", flag=True)

UPKEEP_COMMANDS = (
    Command(
        "verify",
        "check the hash chain, signed heads, anchor, views and every blob",
        verify,
        render_verify,
        options=(
            Option(
                "head",
                "also prove the log extends this head, saved earlier",
                parse=parse_head,
                metavar="SEQ:HASH",
            ),
            Option(
                "incremental",
                "only what came after the last clean verify (the whole walk is the default)",
                flag=True,
            ),
            Option(
                "trusted-key",
                "an Ed25519 public key whose signed heads count (besides the configured key's)",
                repeated=True,
                metavar="HEX",
            ),
        ),
        examples=(
            "s3facade verify",
            "s3facade verify --endpoint http://127.0.0.1:9000 --head 1042:9f86d081…",
        ),
        method="POST",
        path="/-/admin/verify",
        opens="log",
        long_running=True,
        exit_status=lambda data: 0 if data["ok"] else 1,
    ),
    Command(
        "rebuild",
        "replay the log into fresh views and compare them with the live ones",
        rebuild,
        render_rebuild,
        options=(Option("force", "replace a running server's views if they differ", flag=True),),
        examples=("s3facade rebuild", "s3facade rebuild --endpoint http://127.0.0.1:9000 --force"),
        method="POST",
        path="/-/admin/rebuild",
        long_running=True,
        exit_status=lambda data: 0 if data["identical"] or data["swapped"] else 1,
    ),
    Command(
        "gc",
        "remove blobs no version or upload references",
        gc,
        render_gc,
        options=(DRY_RUN,),
        examples=("s3facade gc --dry-run", "s3facade gc --endpoint http://127.0.0.1:9000"),
        method="POST",
        path="/-/admin/gc",
        opens="write-unless-dry-run",
        long_running=True,
        exit_status=lambda data: 1 if data["problems"] else 0,
    ),
    Command(
        "lifecycle run",
        "apply the lifecycle rules and retention expiry now",
        lifecycle_run,
        render_lifecycle,
        options=(DRY_RUN, Option("bucket", "only this bucket", metavar="NAME")),
        examples=("s3facade lifecycle run --dry-run", "s3facade lifecycle run --bucket logs"),
        method="POST",
        path="/-/admin/lifecycle/run",
        opens="write-unless-dry-run",
        long_running=True,
    ),
)
