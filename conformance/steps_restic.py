"""restic (Debian's restic package), unchanged, backing up to a repository in a bucket.

restic talks S3 through minio-go: path-style requests to an IP endpoint, one PUT per pack
file, ListObjectsV2 to enumerate the repository, DELETE when it prunes. The repository
lives under a prefix of the bucket, as `s3:http://127.0.0.1:<port>/<bucket>/<prefix>`.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from conformance.harness import (
    MiB,
    Ran,
    RunContext,
    Step,
    StepFailure,
    base_env,
    error_summary,
    expect_equal,
    expect_same_names,
    run_tool,
)
from conformance.steps_boto3 import force_delete_bucket, make_client
from conformance.workload import UNICODE_NAME, Workload, tree_digests, write_random
from tests.debian_packages import ensure_installed

REPOSITORY_PREFIX = "hosts/build 01"  # a space: the prefix is part of every key restic sends
LINK = "links/to the space name"
LINK_TARGET = "../tree/special/space name.txt"
EMPTY_DIR = "empty dir"
# Changes between the two backups: a file grown, a file rewritten, one removed, one added.
GROWN = "media/medium-12MiB.bin"
REWRITTEN = "tree/special/ünïcødé ✓.txt"
REMOVED = "tree/d0/e0/file-000.dat"
ADDED = "added after the first backup ✓.txt"
# restic's chunker cuts blobs of 512 KiB to 8 MiB: growing a file re-uploads at most its
# last chunk, so the second backup adds well under this (the first adds ~21 MiB)
SECOND_BACKUP_MAX_ADDED = 9 * MiB


class ResticSteps:
    client = "restic"

    def __init__(self, ctx: RunContext, files: Workload) -> None:
        self.ctx = ctx
        self.files = files
        self.restic = ensure_installed("restic")
        self.bucket = "restic-conformance"
        self.repository = f"s3:{ctx.endpoint}/{self.bucket}/{REPOSITORY_PREFIX}"
        self.out = ctx.work / "restic"
        self.out.mkdir(parents=True, exist_ok=True)
        self.source = self.out / "source"
        self.env = {
            **base_env(ctx.home),
            "RESTIC_PASSWORD": "conformance run, not a secret",
            "RESTIC_CACHE_DIR": str(self.out / "cache"),
            "AWS_ACCESS_KEY_ID": ctx.access_key,
            "AWS_SECRET_ACCESS_KEY": ctx.secret_key,
            "AWS_DEFAULT_REGION": ctx.region,
        }
        self.version = run_tool([self.restic, "version"], self.env, timeout=30).stdout.strip()
        self.snapshots: list[str] = []  # short ids of the backups, oldest first
        self.first_added = 0

    def steps(self) -> list[Step]:
        init = "init a repository under a bucket prefix"
        backup = "backup a tree of small and multi-MiB files"
        second = "second backup after changes (deduplicated)"
        forget = "forget --keep-last 1 --prune"
        return [
            Step(init, self.init),
            Step(backup, self.backup, needs=(init,)),
            Step(second, self.second_backup, needs=(backup,)),
            Step("snapshots", self.list_snapshots, needs=(second,)),
            Step("check --read-data", self.check, needs=(backup,)),
            Step("restore latest, byte for byte", self.restore, needs=(second,)),
            Step(forget, self.forget_prune, needs=(second,)),
            Step("check --read-data after prune", self.check, needs=(forget,)),
            Step("restore latest after prune, byte for byte", self.restore, needs=(forget,)),
        ]

    def cleanup(self) -> None:
        force_delete_bucket(self.ctx, self.bucket)

    def run(self, *args: str, timeout: float = 120.0, cwd: Path | None = None) -> Ran:
        return run_tool(
            [self.restic, "--repo", self.repository, *args], self.env, timeout=timeout, cwd=cwd
        )

    # ------------------------------------------------------------------ steps

    def init(self) -> None:
        ran = self.run("init")
        if "created restic repository" not in ran.stdout:
            raise StepFailure(f"restic init: {error_summary(ran.output)}")
        keys = self._repository_keys()
        for expected in ("config", "keys/"):
            if not any(key == expected or key.startswith(expected) for key in keys):
                raise StepFailure(f"no {expected!r} under {REPOSITORY_PREFIX!r}: {sorted(keys)}")

    def backup(self) -> None:
        self._make_source()
        summary = self._backup()
        regular = self._regular_files()
        expect_equal(summary.get("files_new"), len(regular), "files_new")
        size = sum(path.stat().st_size for path in regular)
        expect_equal(summary.get("total_bytes_processed"), size, "total_bytes_processed")
        self.first_added = int(summary.get("data_added", 0))
        if self.first_added < size * 0.9:  # random data: nothing to deduplicate or compress
            raise StepFailure(f"the first backup of {size} bytes added {self.first_added}")

    def second_backup(self) -> None:
        with (self.source / GROWN).open("ab") as grown:
            grown.write(os.urandom(64 * 1024))
        (self.source / REWRITTEN).write_bytes(b"rewritten between the backups\n")
        (self.source / REMOVED).unlink()
        (self.source / ADDED).write_bytes(b"new in the second backup\n")
        summary = self._backup()
        expect_equal(summary.get("files_new"), 1, "files_new")
        expect_equal(summary.get("files_changed"), 2, "files_changed")
        unmodified = len(self._regular_files()) - 3
        expect_equal(summary.get("files_unmodified"), unmodified, "files_unmodified")
        added = int(summary.get("data_added", 0))
        limit = min(SECOND_BACKUP_MAX_ADDED, self.first_added // 2)
        if added > limit:
            raise StepFailure(
                f"the second backup added {added} bytes (first: {self.first_added}): "
                "unchanged data was stored again"
            )

    def list_snapshots(self) -> None:
        listed = self._snapshots()
        expect_equal([snapshot["short_id"] for snapshot in listed], self.snapshots, "snapshots")

    def check(self) -> None:
        ran = self.run("check", "--read-data", timeout=180)
        if "no errors were found" not in ran.stdout:
            raise StepFailure(f"restic check: {error_summary(ran.output)}")

    def restore(self) -> None:
        target = self.out / "restored"
        shutil.rmtree(target, ignore_errors=True)
        self.run("restore", "latest", "--target", str(target), timeout=180)
        got, expected = tree_digests(target), tree_digests(self.source)
        expect_same_names(got, expected, "restored files")
        differing = sorted(name for name in got if got[name] != expected[name])
        if differing:
            raise StepFailure(f"{len(differing)} files differ by SHA-256, e.g. {differing[:3]}")
        link = target / LINK
        if not link.is_symlink() or os.readlink(link) != LINK_TARGET:
            raise StepFailure(f"{LINK!r} was not restored as a symlink to {LINK_TARGET!r}")
        if not (target / EMPTY_DIR).is_dir():
            raise StepFailure(f"the empty directory {EMPTY_DIR!r} was not restored")
        moved = sorted(
            name
            for name in got
            if not (target / name).is_symlink()
            and (target / name).stat().st_mtime_ns != (self.source / name).stat().st_mtime_ns
        )
        if moved:
            raise StepFailure(f"{len(moved)} files restored with another mtime: {moved[:3]}")

    def forget_prune(self) -> None:
        before = self._repository_keys()
        # --max-unused 0: repack every pack holding data only the forgotten snapshot used,
        # so packs are deleted whatever the random data's chunking left unused
        self.run("forget", "--keep-last", "1", "--prune", "--max-unused", "0", timeout=180)
        after = self._repository_keys()
        forgotten, kept = self.snapshots[:-1], self.snapshots[-1:]
        expect_equal([s["short_id"] for s in self._snapshots()], kept, "snapshots left")
        removed = before - after
        for kind in ("snapshots/", "index/", "data/"):
            if not any(key.startswith(kind) for key in removed):
                raise StepFailure(
                    f"prune deleted nothing under {kind} (removed: {sorted(removed)})"
                )
        gone = {key.split("/")[-1][:8] for key in removed if key.startswith("snapshots/")}
        expect_equal(sorted(gone), forgotten, "snapshot files deleted")
        self.snapshots = kept

    # ------------------------------------------------------------------ helpers

    def _make_source(self) -> None:
        """The workload's tree of ~300 small files with awkward names, beside a few MiB-sized
        files, an empty file, an empty directory and a relative symlink."""
        shutil.rmtree(self.source, ignore_errors=True)
        shutil.copytree(self.files.tree, self.source / "tree")
        (self.source / "media").mkdir()
        shutil.copy2(self.files.medium, self.source / GROWN)
        write_random(self.source / "media" / "three MiB.bin", 3 * MiB)
        write_random(self.source / "media" / "five MiB+.bin", 5 * MiB)
        (self.source / "names").mkdir()
        shutil.copy2(self.files.unicode, self.source / "names" / UNICODE_NAME)
        shutil.copy2(self.files.empty, self.source / "names" / "empty.bin")
        (self.source / EMPTY_DIR).mkdir()
        (self.source / LINK).parent.mkdir()
        (self.source / LINK).symlink_to(LINK_TARGET)

    def _regular_files(self) -> list[Path]:
        """The source's files, not its symlink: restic does not count that as a file."""
        return [p for p in self.source.rglob("*") if p.is_file() and not p.is_symlink()]

    def _backup(self) -> dict[str, Any]:
        # "." from inside the source: the snapshot holds the tree itself, not its absolute path
        ran = self.run("backup", "--json", ".", cwd=self.source, timeout=180)
        summaries = [
            message
            for message in _json_lines(ran.stdout)
            if message.get("message_type") == "summary"
        ]
        if not summaries:
            raise StepFailure(f"restic backup printed no summary: {error_summary(ran.output)}")
        summary = summaries[-1]
        # restic 0.14 reports the short id here; later versions the full one
        self.snapshots.append(str(summary.get("snapshot_id"))[:8])
        return summary

    def _snapshots(self) -> list[dict[str, Any]]:
        listed = json.loads(self.run("snapshots", "--json").stdout or "[]")
        return sorted(listed, key=lambda snapshot: snapshot["time"])

    def _repository_keys(self) -> set[str]:
        s3 = make_client(self.ctx)
        prefix = f"{REPOSITORY_PREFIX}/"
        pages = s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix)
        return {
            item["Key"].removeprefix(prefix) for page in pages for item in page.get("Contents", [])
        }


def _json_lines(stdout: str) -> list[dict[str, Any]]:
    messages = []
    for line in stdout.splitlines():
        line = line.strip()
        if line.startswith("{"):
            try:
                messages.append(json.loads(line))
            except json.JSONDecodeError:
                continue  # not a whole message; only the summary matters
    return messages
