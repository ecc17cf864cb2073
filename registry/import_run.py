"""Running an import: a local directory tree, or the objects of an S3 bucket, into a bucket of
the registry, one object at a time, with a report. `s3facade import` is its command line.

Each object is committed (its ObjectImported event appended and acknowledged) before the next
one starts, so an import killed at any moment has recorded whole objects only, and a re-run
skips them (registry.imports.ImportedBefore) and imports the rest: exactly once in the end.
Bytes stored for an object whose event never committed are unreferenced and left to gc
(a re-run finds them stored and does not copy them again).

Where the bytes go: into the target bucket's backend. From an S3 bucket on the same endpoint
as an upstream (S3/RGW) target backend, each object is read once to hash it, then copied
server-side under its digest (backends.s3source.ServerSideCopier); otherwise, and for local
files, the bytes stream through this process into the backend's normal put path.
"""

from __future__ import annotations

import hashlib
import mimetypes
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from s3facade.backends import BackendError, BlobReceipt, StorageBackend
from s3facade.backends.s3source import (
    S3Source,
    ServerSideCopier,
    SourceObject,
    addressable,
    plain_md5,
)
from s3facade.backends.tree import TreeFile, TreeProblem, read, walk
from s3facade.backends.upstream import UpstreamCAS
from s3facade.registry.core import RegistryCore
from s3facade.registry.errors import RegistryError
from s3facade.registry.imports import (
    ImportedBefore,
    ImportOrigin,
    ImportRefused,
    Transfer,
    import_placed,
    import_stream,
)
from s3facade.registry.model import ObjectSpec, Provenance, stored_headers
from s3facade.registry.names import check_key

Progress = Callable[[int, int], None]  # (objects, bytes) done since the last call
_EPOCH = datetime(1970, 1, 1)


@dataclass(frozen=True)
class ImportTarget:
    bucket: str
    prefix: str  # put before each object's relative key ("" or ending in "/", as given)
    provenance: Provenance  # who the events name
    dry_run: bool = False


@dataclass
class ImportReport:
    source: str
    target: str
    dry_run: bool
    how: str = ""  # how the bytes travel, in words
    imported: int = 0  # (would be, in a dry run)
    already_imported: int = 0
    failed: list[dict[str, str]] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)  # not importable by design
    bytes_hashed: int = 0
    bytes_copied_server_side: int = 0
    bytes_through_gateway: int = 0
    bytes_already_stored: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "target": self.target,
            "dry_run": self.dry_run,
            "how": self.how,
            "imported": self.imported,
            "already_imported": self.already_imported,
            "failed_count": len(self.failed),
            "failed": self.failed,
            "skipped_count": len(self.skipped),
            "skipped": self.skipped,
            "bytes_hashed": self.bytes_hashed,
            "bytes_copied_server_side": self.bytes_copied_server_side,
            "bytes_through_gateway": self.bytes_through_gateway,
            "bytes_already_stored": self.bytes_already_stored,
        }

    def fail(self, key: str, source: str, exc: BaseException | str) -> None:
        reason = exc if isinstance(exc, str) else f"{type(exc).__name__}: {exc}"
        self.failed.append({"key": key, "source": source, "reason": reason})


def _nothing(objects: int, size: int) -> None:
    pass


# -- a local directory tree --------------------------------------------------------------


def list_tree(root: Path) -> tuple[list[TreeFile], list[TreeProblem]]:
    files: list[TreeFile] = []
    problems: list[TreeProblem] = []
    for found in walk(root):
        if isinstance(found, TreeFile):
            files.append(found)
        else:
            problems.append(found)
    return files, problems


async def import_tree(
    core: RegistryCore,
    root: Path,
    files: Sequence[TreeFile],
    problems: Sequence[TreeProblem],
    target: ImportTarget,
    progress: Progress = _nothing,
) -> ImportReport:
    """Import the files `list_tree(root)` found; `problems` go into the report."""
    root = root.resolve()
    report = ImportReport(str(root), f"s3://{target.bucket}/{target.prefix}", target.dry_run)
    report.how = f"through the gateway into backend {core.backend_for(target.bucket).backend_id}"
    for problem in problems:
        entry = {"key": target.prefix + problem.relative, "source": str(root / problem.relative)}
        entry["reason"] = problem.reason
        (report.skipped if problem.skipped else report.failed).append(entry)
    log = core.log  # one pass over the log, off the event loop
    known = await log.run_query(lambda: ImportedBefore.load(log, target.bucket, target.prefix))
    for file in files:
        key = target.prefix + file.relative
        modified = _EPOCH + timedelta(microseconds=file.mtime_ns // 1000)
        origin = ImportOrigin(str(root / file.relative), modified)
        if known.has(key, origin, file.size):
            report.already_imported += 1
        elif _checked(report, key, origin.source):
            if target.dry_run:
                report.imported += 1
            else:
                await _import_file(core, report, key, file, origin, target)
        progress(1, file.size)
    return report


async def _import_file(
    core: RegistryCore,
    report: ImportReport,
    key: str,
    file: TreeFile,
    origin: ImportOrigin,
    target: ImportTarget,
) -> None:
    guessed, encoding = mimetypes.guess_type(file.relative, strict=False)
    spec = ObjectSpec(
        content_type=guessed if guessed and not encoding else "binary/octet-stream",
    )
    try:
        async with read(file) as body:
            version = await import_stream(
                core, target.bucket, key, body,
                origin=origin, spec=spec, provenance=target.provenance,
            )  # fmt: skip
    except (RegistryError, BackendError, OSError) as exc:
        report.fail(key, origin.source, exc)
        return
    report.imported += 1
    report.bytes_hashed += version.size
    report.bytes_through_gateway += version.size


def _checked(report: ImportReport, key: str, source: str) -> bool:
    try:
        check_key(key)
    except RegistryError as exc:
        report.fail(key, source, exc)
        return False
    return True


# -- an S3 bucket ---------------------------------------------------------------------------


async def list_bucket(source: S3Source, prefix: str) -> list[SourceObject]:
    """The source's current objects under `prefix` (held in memory: the progress bar's total)."""
    return [obj async for obj in source.objects(prefix)]


def copier_for(
    core: RegistryCore, bucket: str, source: S3Source, *, allowed: bool = True
) -> ServerSideCopier | None:
    """A server-side copier if the bucket's backend is an upstream on the source's endpoint."""
    backend = core.backend_for(bucket)
    if not allowed or not isinstance(backend, UpstreamCAS):
        return None
    copier = ServerSideCopier(backend)
    return copier if copier.same_endpoint(source.endpoint.url) else None


async def import_bucket(
    core: RegistryCore,
    source: S3Source,
    prefix: str,
    objects: Sequence[SourceObject],
    target: ImportTarget,
    copier: ServerSideCopier | None,
    progress: Progress = _nothing,
) -> ImportReport:
    """Import the `objects` listed under `prefix` of `source` (list_bucket)."""
    bucket = source.endpoint.bucket
    report = ImportReport(
        f"s3://{bucket}/{prefix}", f"s3://{target.bucket}/{target.prefix}", target.dry_run
    )
    backend = core.backend_for(target.bucket)
    if copier is not None and copier.backend is not backend:
        raise ValueError(f"the copier places into {copier.backend!r}, not {backend!r}")
    if copier is not None:
        report.how = (
            f"copied server-side within {source.endpoint.url} (backend {backend.backend_id})"
        )
    else:
        report.how = (
            f"through the gateway into backend {backend.backend_id} (not an upstream on the "
            "source's endpoint, or server-side copies were turned off)"
        )
    log = core.log  # one pass over the log, off the event loop
    known = await log.run_query(lambda: ImportedBefore.load(log, target.bucket, target.prefix))
    for obj in objects:
        key = target.prefix + obj.key.removeprefix(prefix)
        origin = ImportOrigin(
            f"s3://{bucket}/{obj.key}", obj.last_modified,
            endpoint=source.endpoint.url, etag=obj.etag, version_id=obj.version_id,
        )  # fmt: skip
        if known.has(key, origin, obj.size):
            report.already_imported += 1
        elif not addressable(obj.key):
            report.fail(key, origin.source, "the key has a '.' or '..' segment (not importable)")
        elif _checked(report, key, origin.source):
            if target.dry_run:
                report.imported += 1
            else:
                await _import_object(core, report, source, obj, key, origin, target, copier)
        progress(1, obj.size)
    return report


async def _import_object(
    core: RegistryCore,
    report: ImportReport,
    source: S3Source,
    obj: SourceObject,
    key: str,
    origin: ImportOrigin,
    target: ImportTarget,
    copier: ServerSideCopier | None,
) -> None:
    try:
        async with source.read(obj) as got:
            spec = ObjectSpec(got.content_type, stored_headers(got.headers), got.metadata)
            if copier is None:
                version = await import_stream(
                    core, target.bucket, key, got.body, origin=origin, spec=spec,
                    provenance=target.provenance, check=_matches(obj),
                )  # fmt: skip
                transfer: Transfer = "through-gateway"
            else:
                core.check_writable(target.bucket, key, spec, None)
                sha256, md5, size = await _hash(got.body)
        if copier is not None:
            _matches(obj)(BlobReceipt(size, sha256), md5)

            placed: list[Transfer] = []

            async def place(backend: StorageBackend) -> Transfer:
                copied = await copier.place(source.endpoint.bucket, obj, sha256, md5)
                placed.append("server-side-copy" if copied else "already-stored")
                return placed[-1]

            version = await import_placed(
                core, target.bucket, key, place, sha256=sha256, md5=md5, size=size,
                origin=origin, spec=spec, provenance=target.provenance,
            )  # fmt: skip
            transfer = placed[-1]
    except (RegistryError, BackendError, OSError) as exc:
        report.fail(key, origin.source, exc)
        return
    report.imported += 1
    report.bytes_hashed += version.size
    if transfer == "server-side-copy":
        report.bytes_copied_server_side += version.size
    elif transfer == "already-stored":
        report.bytes_already_stored += version.size
    else:
        report.bytes_through_gateway += version.size


def _matches(obj: SourceObject) -> Callable[[BlobReceipt, str], None]:
    """Refuse bytes that are not the listed object's: another size, or another MD5 than an
    ETag that is one."""

    def check(receipt: BlobReceipt, md5: str) -> None:
        if receipt.size != obj.size:
            raise ImportRefused(f"{obj.key}: read {receipt.size} bytes, listed {obj.size}")
        if plain_md5(obj.etag) and md5 != obj.etag:
            raise ImportRefused(f"{obj.key}: the bytes read have MD5 {md5}, the ETag is {obj.etag}")

    return check


async def _hash(body: AsyncIterator[bytes]) -> tuple[str, str, int]:
    sha256, md5, size = hashlib.sha256(), hashlib.md5(), 0
    async for block in body:
        sha256.update(block)
        md5.update(block)
        size += len(block)
    return sha256.hexdigest(), md5.hexdigest(), size
