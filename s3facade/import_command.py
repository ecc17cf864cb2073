"""`s3facade import`: register existing data (an S3 bucket's objects, a local directory tree)
as object versions, each recorded as an ObjectImported event with its source. The work is
registry.import_run's; this is its entry in the command table.

Offline (a stopped server's data dir) it imports a bucket or a directory; through a running
server (`--endpoint`) a bucket only: the server reads no directory of its host for a client.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from pathlib import Path
from typing import Any

import botocore.session
from botocore.exceptions import ProfileNotFound
from rich.console import Console
from rich.table import Table

from s3facade.backends import BackendError
from s3facade.backends.s3source import S3Source
from s3facade.backends.upstream import UpstreamCAS
from s3facade.command_table import Command, CommandFailed, Option, Params, Progress
from s3facade.registry import Provenance, Registry
from s3facade.registry.errors import NoSuchBucket, RegistryError
from s3facade.registry.import_run import (
    ImportReport,
    ImportTarget,
    copier_for,
    import_bucket,
    import_tree,
    list_bucket,
    list_tree,
)
from s3facade.registry.names import check_bucket_name
from s3facade.workspace import Workspace

ACCESS_KEY_ENV = "S3FACADE_IMPORT_ACCESS_KEY_ID"
SECRET_KEY_ENV = "S3FACADE_IMPORT_SECRET_ACCESS_KEY"
USER_AGENT = "s3facade-import/1"


def target(text: str) -> tuple[str, str]:
    """--to BUCKET[/PREFIX] -> (bucket, prefix ending in "/" or empty); ValueError."""
    bucket, _, prefix = text.removeprefix("s3://").partition("/")
    if prefix and not prefix.endswith("/"):
        prefix += "/"  # a folder, as `aws s3 cp --recursive` reads it
    try:
        check_bucket_name(bucket)
    except RegistryError as exc:
        raise ValueError(f"{text!r}: {exc}") from None
    return bucket, prefix


async def import_objects(ws: Workspace, p: Params, progress: Progress) -> dict[str, Any]:
    bucket, prefix = p.to
    if not p.source.startswith("s3://") and ws.online:
        raise CommandFailed(
            "InvalidRequest",
            "a directory is imported offline, on the machine that holds it (--data-dir)",
        )
    registry = await ws.registry()
    if ws.online:
        _check_online(p, registry)
    existing = registry.views.bucket(bucket)
    if existing is None and not p.create_bucket:
        raise CommandFailed(
            "NoSuchBucket", f"no bucket {bucket!r} (create it with --create-bucket)", 404
        )
    if ws.online:  # the events name the admin who asked, never someone chosen by them
        owner = ws.provenance().principal
    else:
        owner = p.owner or (existing.owner if existing is not None else ws.root_principal)
    provenance = Provenance(owner, "", USER_AGENT, secrets.token_hex(8).upper())
    if existing is None and p.dry_run:
        report = ImportReport(p.source, f"s3://{bucket}/{prefix}", True)
        report.how = f"would create bucket {bucket!r}"
        return report.as_dict()
    if existing is None:
        await registry.create_bucket(bucket, ws.region, provenance)
    goal = ImportTarget(bucket, prefix, provenance, p.dry_run)
    objects, size = progress.task("objects"), progress.task("bytes")

    def started(count: int, total: int) -> None:
        objects.update(0, count)
        size.update(0, total)

    def advance(count: int, amount: int) -> None:
        objects.advance(count)
        size.advance(amount)

    try:
        if p.source.startswith("s3://"):
            report = await _from_bucket(p, registry, goal, started, advance)
        else:
            report = await _from_tree(p, registry, goal, started, advance)
    except NoSuchBucket:
        raise CommandFailed("NoSuchBucket", f"no bucket {bucket!r}", 404) from None
    return report.as_dict()


def _check_online(p: Params, registry: Registry) -> None:
    """Through a server, an admin reaches only what the server is configured to reach: no
    other endpoint (the server's network is not theirs), no credentials of this machine's,
    and they cannot record writes in another principal's name."""
    upstreams = {
        backend.config.endpoint.rstrip("/")
        for backend in registry.backends.values()
        if isinstance(backend, UpstreamCAS)
    }
    if p.source_endpoint and p.source_endpoint.rstrip("/") not in upstreams:
        raise CommandFailed(
            "InvalidRequest",
            "through a server, sources are on its upstream backends' endpoints; import from "
            "another endpoint offline",
        )
    for given, name in ((p.source_profile, "--source-profile"), (p.owner, "--owner")):
        if given:
            raise CommandFailed("InvalidRequest", f"{name} is for offline imports")


async def _from_tree(
    p: Params, registry: Registry, goal: ImportTarget, started: Any, advance: Any
) -> ImportReport:
    root = Path(p.source)
    if not root.is_dir():
        raise CommandFailed("InvalidArgument", f"{p.source}: not a directory (or s3://bucket)")
    files, problems = await asyncio.to_thread(list_tree, root)
    started(len(files), sum(f.size for f in files))
    return await import_tree(registry, root, files, problems, goal, advance)


async def _from_bucket(
    p: Params, registry: Registry, goal: ImportTarget, started: Any, advance: Any
) -> ImportReport:
    source_bucket, _, prefix = p.source.removeprefix("s3://").partition("/")
    if not source_bucket:
        raise CommandFailed("InvalidArgument", f"expected s3://bucket[/prefix], got {p.source!r}")
    if prefix and not prefix.endswith("/"):
        prefix += "/"  # a folder: its keys, relative to it, go under the target's prefix
    backend = registry.backend_for(goal.bucket)
    upstream = backend if isinstance(backend, UpstreamCAS) else None
    endpoint = p.source_endpoint or (upstream.config.endpoint if upstream else None)
    if endpoint is None:
        raise CommandFailed(
            "InvalidArgument",
            "--source-endpoint is needed: the target's backend is not an upstream",
        )
    try:
        source = S3Source.connect(
            endpoint, source_bucket, _credentials(p, upstream, endpoint), region=p.source_region
        )
    except ValueError as exc:
        raise CommandFailed("InvalidArgument", str(exc)) from None
    copier = copier_for(registry, goal.bucket, source, allowed=not p.no_server_side_copy)
    try:
        listed = await list_bucket(source, prefix)
        started(len(listed), sum(o.size for o in listed))
        return await import_bucket(registry, source, prefix, listed, goal, copier, advance)
    except BackendError as exc:
        raise CommandFailed("SourceUnavailable", f"{p.source}: {exc}", 502) from None
    finally:
        await source.aclose()
        if copier is not None:
            await copier.aclose()


def _credentials(p: Params, upstream: UpstreamCAS | None, endpoint: str) -> tuple[str, str]:
    access_key, secret = os.environ.get(ACCESS_KEY_ENV), os.environ.get(SECRET_KEY_ENV)
    if access_key and secret:
        return access_key, secret
    if p.source_profile:
        try:
            found = botocore.session.Session(profile=p.source_profile).get_credentials()
        except ProfileNotFound as exc:
            raise CommandFailed("InvalidArgument", str(exc)) from None
        if found is not None:
            frozen = found.get_frozen_credentials()
            return frozen.access_key, frozen.secret_key
    if upstream is not None and upstream.config.endpoint.rstrip("/") == endpoint.rstrip("/"):
        return upstream.config.access_key_id, upstream.config.secret_access_key
    raise CommandFailed(
        "NoCredentials",
        f"no source credentials: set {ACCESS_KEY_ENV} and {SECRET_KEY_ENV}, or --source-profile",
    )


def render_import(data: dict[str, Any], console: Console, p: Params) -> None:
    verb = "would import" if data["dry_run"] else "imported"
    console.print(f"{data['source']} -> {data['target']}: bytes {data['how']}")
    console.print(
        f"{verb} {data['imported']}, already imported {data['already_imported']}, "
        f"failed {data['failed_count']}, skipped {data['skipped_count']}"
    )
    console.print(
        f"bytes hashed {data['bytes_hashed']}, copied server-side "
        f"{data['bytes_copied_server_side']}, through the gateway "
        f"{data['bytes_through_gateway']}, already stored {data['bytes_already_stored']}"
    )
    for title, rows in (("failed", data["failed"]), ("skipped", data["skipped"])):
        if not rows:
            continue
        table = Table(title=title)
        for column in ("key", "source", "reason"):
            table.add_column(column)
        for row in rows[:50]:
            table.add_row(repr(row["key"])[1:-1], row["source"], row["reason"])
        if len(rows) > 50:
            table.add_row("…", f"and {len(rows) - 50} more (see --json)", "")
        console.print(table)


IMPORT = Command(
    "import",
    "register existing data (an S3 bucket, a directory) as object versions",
    import_objects,
    render_import,
    options=(
        Option("source", "s3://bucket[/prefix], or a local directory (offline)", positional=True),
        Option(
            "to",
            "target bucket and key prefix",
            parse=target,
            metavar="BUCKET[/PREFIX]",
            required=True,
        ),
        Option("create-bucket", "create the target bucket if missing", flag=True),
        Option(
            "owner",
            "who the events name (default: the bucket's owner; a new bucket's: the root user)",
            metavar="ACCESS_KEY_ID",
        ),
        Option("dry-run", "report what would happen only", flag=True),
        Option(
            "source-endpoint",
            "the source's S3 endpoint (default: the target backend's, if an upstream)",
            metavar="URL",
        ),
        Option("source-region", "(us-east-1)", default="us-east-1", metavar="REGION"),
        Option("source-profile", "offline: source credentials from ~/.aws", metavar="NAME"),
        Option(
            "no-server-side-copy",
            "stream the bytes through the gateway even when the store could copy them",
            flag=True,
        ),
    ),
    examples=(
        "s3facade import ./build-output --to artifacts/builds/ --data-dir /srv/s3facade",
        "s3facade import s3://legacy-bucket/releases/ --to artifacts/releases/ --create-bucket",
        "s3facade import s3://old --to new --source-endpoint https://s3.example.com --dry-run",
        "s3facade import s3://legacy --to artifacts --endpoint http://127.0.0.1:9000",
    ),
    method="POST",
    path="/-/admin/import",
    opens="write-unless-dry-run",
    creates_with="create-bucket",
    long_running=True,
    exit_status=lambda data: 1 if data["failed_count"] else 0,
)
