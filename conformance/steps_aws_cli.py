"""The aws cli (v1, from PyPI, pinned), unchanged, at its default settings."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from conformance.harness import (
    CREATE_MULTIPART_UPLOAD,
    MiB,
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
    md5_etag,
    multipart_etag,
    output_lines,
    run_tool,
)
from conformance.steps_boto3 import force_delete_bucket
from conformance.workload import TREE_FILES, UNICODE_NAME, Workload, tree_digests

MPU = CREATE_MULTIPART_UPLOAD
AWS_CLI_PART_SIZE = 8 * MiB  # multipart_chunksize default of the aws cli's s3 commands


def cli_env(ctx: RunContext) -> dict[str, str]:
    """The aws cli's environment: the run's credentials, and no file or instance metadata
    that could lend it others."""
    return {
        **base_env(ctx.home),
        "AWS_ACCESS_KEY_ID": ctx.access_key,
        "AWS_SECRET_ACCESS_KEY": ctx.secret_key,
        "AWS_DEFAULT_REGION": ctx.region,
        "AWS_CONFIG_FILE": "/dev/null",
        "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
        "AWS_EC2_METADATA_DISABLED": "true",
    }


class AwsCliBucket:
    """What the aws cli v1 and v2 steps share: the bucket they work in, made, emptied and
    removed with the cli itself (and by force after the run), and s3api's JSON."""

    ctx: RunContext
    bucket: str
    url: str  # s3://<bucket>
    objects: dict[str, int]  # key -> size of what the steps stored

    def cli(self, *args: str, timeout: float = 120.0) -> Ran:
        raise NotImplementedError

    def cleanup(self) -> None:
        force_delete_bucket(self.ctx, self.bucket)

    def s3api(self, *args: str, timeout: float = 120.0) -> Any:
        ran = self.cli("s3api", *args, "--output", "json", timeout=timeout)
        return json.loads(ran.stdout) if ran.stdout.strip() else {}

    def mb(self) -> None:
        ran = self.cli("s3", "mb", self.url)
        expect_in(f"make_bucket: {self.bucket}", ran.stdout, "s3 mb output")
        expect_in(self.bucket, self.cli("s3", "ls").stdout, "s3 ls of buckets")

    def rm_recursive(self) -> None:
        ran = self.cli("s3", "rm", "--recursive", self.url, timeout=180)
        deleted = {line.removeprefix("delete: ") for line in transfer_lines(ran.stdout, "delete:")}
        missing = sorted(key for key in self.objects if f"{self.url}/{key}" not in deleted)
        if missing:
            raise StepFailure(f"{len(missing)} stored keys not deleted, e.g. {missing[:3]}")
        left = self.cli("s3", "ls", "--recursive", self.url).stdout
        expect_equal(output_lines(left), [], "s3 ls --recursive after s3 rm --recursive")
        self.objects.clear()

    def rb(self) -> None:
        ran = self.cli("s3", "rb", self.url)
        expect_in(f"remove_bucket: {self.bucket}", ran.stdout, "s3 rb output")
        buckets = [line.split()[-1] for line in output_lines(self.cli("s3", "ls").stdout)]
        if self.bucket in buckets:
            raise StepFailure("the bucket is still listed after s3 rb")


class AwsCliSteps(AwsCliBucket):
    client = "aws cli"

    def __init__(self, ctx: RunContext, files: Workload) -> None:
        self.ctx = ctx
        self.files = files
        self.aws = find_tool("aws") or "aws (not found)"
        self.curl = shutil.which("curl") or "curl (not found)"
        self.bucket = "awscli-conformance"
        self.url = f"s3://{self.bucket}"
        self.out = ctx.work / "aws-cli"
        self.out.mkdir(parents=True, exist_ok=True)
        self.env = cli_env(ctx)
        self.unicode_key = f"unicode/{UNICODE_NAME}"
        self.huge_key = f"huge/{files.huge.name}"
        self.copy_key = f"copies/{UNICODE_NAME}"
        self.huge_copy_key = f"copies/{files.huge.name}"
        self.objects: dict[str, int] = {}  # what the steps so far stored: key -> size

    def steps(self) -> list[Step]:
        mb = "s3 mb"
        small = "s3 cp up 1 KiB file"
        uni = "s3 cp up unicode, space and plus named file"
        huge = "s3 cp up 100 MiB file (multipart)"
        sync = f"s3 sync up a tree of {TREE_FILES} files"
        sync_down = "s3 sync down the tree"
        return [
            Step(mb, self.mb),
            Step(small, self.cp_up_small, needs=(mb,)),
            Step("s3 cp down 1 KiB file", self.cp_down_small, needs=(small,)),
            Step(uni, self.cp_up_unicode, needs=(mb,)),
            Step(
                "s3 cp down unicode, space and plus named file", self.cp_down_unicode, needs=(uni,)
            ),
            Step(huge, self.cp_up_huge, needs=(mb,), timeout=300, sends=(MPU,)),
            Step("s3 cp down 100 MiB file (ranged GETs)", self.cp_down_huge, needs=(huge,)),
            Step("s3api head-object 1 KiB file", self.head_small, needs=(small,)),
            Step("s3api head-object 100 MiB file (multipart ETag)", self.head_huge, needs=(huge,)),
            Step("s3 ls --recursive", self.ls_recursive, needs=(small, uni)),
            Step("s3 ls with prefix", self.ls_prefix, needs=(uni,)),
            Step(sync, self.sync_up, needs=(mb,)),
            Step("s3 sync up again transfers nothing", self.sync_up_again, needs=(sync,)),
            Step(sync_down, self.sync_down, needs=(sync,)),
            Step("s3 sync down again transfers nothing", self.sync_down_again, needs=(sync_down,)),
            Step("s3 presign fetched with curl (1 KiB file)", self.presign_small, needs=(small,)),
            Step("s3 presign fetched with curl (unicode name)", self.presign_unicode, needs=(uni,)),
            Step("s3api copy-object (unicode name)", self.copy_object, needs=(uni,)),
            Step(
                "s3 cp s3-to-s3 100 MiB (UploadPartCopy)",
                self.cp_s3_to_s3,
                needs=(huge,),
                timeout=300,
                sends=(MPU,),
            ),
            Step("s3 rm --recursive", self.rm_recursive, needs=(mb,)),
            Step("s3 rb", self.rb, needs=(mb,)),
        ]

    def cli(self, *args: str, timeout: float = 120.0, cwd: Path | None = None) -> Ran:
        return run_tool(
            [self.aws, "--endpoint-url", self.ctx.endpoint, *args],
            self.env,
            timeout=timeout,
            cwd=cwd,
        )

    # ------------------------------------------------------------------ steps

    def cp_up_small(self) -> None:
        self._upload(self.files.small, "small.bin")

    def cp_down_small(self) -> None:
        self._download("small.bin", self.files.small)

    def cp_up_unicode(self) -> None:
        self._upload(self.files.unicode, self.unicode_key)

    def cp_down_unicode(self) -> None:
        self._download(self.unicode_key, self.files.unicode)

    def cp_up_huge(self) -> None:
        self._upload(self.files.huge, self.huge_key, timeout=240)

    def cp_down_huge(self) -> None:
        self._download(self.huge_key, self.files.huge, timeout=240)

    def head_small(self) -> None:
        head = self.s3api("head-object", "--bucket", self.bucket, "--key", "small.bin")
        expect_equal(head.get("ContentLength"), 1024, "ContentLength")
        expect_equal(head.get("ETag"), md5_etag(self.files.small), "ETag")

    def head_huge(self) -> None:
        head = self.s3api("head-object", "--bucket", self.bucket, "--key", self.huge_key)
        expect_equal(head.get("ContentLength"), self.files.huge.stat().st_size, "ContentLength")
        expected = multipart_etag(self.files.huge, AWS_CLI_PART_SIZE)
        expect_equal(head.get("ETag"), expected, "ETag")

    def ls_recursive(self) -> None:
        listed = parse_ls(self.cli("s3", "ls", "--recursive", self.url).stdout)
        expect_equal(listed, self.objects, "s3 ls --recursive (key -> size)")

    def ls_prefix(self) -> None:
        listed = parse_ls(self.cli("s3", "ls", f"{self.url}/unicode/").stdout)
        expect_equal(listed, {UNICODE_NAME: 3 * 1024}, "s3 ls s3://bucket/unicode/")
        partial = self.cli("s3", "ls", f"{self.url}/uni").stdout
        expect_equal(
            [line.split() for line in output_lines(partial)],
            [["PRE", "unicode/"]],
            "s3 ls s3://bucket/uni",
        )

    def sync_up(self) -> None:
        ran = self.cli("s3", "sync", str(self.files.tree), f"{self.url}/tree", timeout=180)
        uploads = transfer_lines(ran.stdout, "upload:")
        expect_equal(len(uploads), TREE_FILES, "'upload:' lines")
        for name, path in self._tree_sizes().items():
            self.objects[f"tree/{name}"] = path

    def sync_up_again(self) -> None:
        ran = self.cli("s3", "sync", str(self.files.tree), f"{self.url}/tree", timeout=180)
        uploads = transfer_lines(ran.stdout, "upload:")
        if uploads:
            raise StepFailure(f"second sync uploaded {len(uploads)} files, e.g. {uploads[:2]}")

    def sync_down(self) -> None:
        target = self.out / "tree-down"
        ran = self.cli("s3", "sync", f"{self.url}/tree", str(target), timeout=180)
        downloads = transfer_lines(ran.stdout, "download:")
        expect_equal(len(downloads), TREE_FILES, "'download:' lines")
        got = tree_digests(target)
        expect_same_names(got, self.files.tree_digests, "synced-down files")
        differing = sorted(name for name in got if got[name] != self.files.tree_digests[name])
        if differing:
            raise StepFailure(f"{len(differing)} files differ by SHA-256, e.g. {differing[:3]}")

    def sync_down_again(self) -> None:
        target = self.out / "tree-down"
        ran = self.cli("s3", "sync", f"{self.url}/tree", str(target), timeout=180)
        downloads = transfer_lines(ran.stdout, "download:")
        if downloads:
            raise StepFailure(
                f"second sync downloaded {len(downloads)} files, e.g. {downloads[:2]}"
            )

    def presign_small(self) -> None:
        self._presign_and_fetch("small.bin", self.files.small)

    def presign_unicode(self) -> None:
        self._presign_and_fetch(self.unicode_key, self.files.unicode)

    def copy_object(self) -> None:
        result = self.s3api(
            "copy-object",
            "--bucket", self.bucket,
            "--key", self.copy_key,
            "--copy-source", f"{self.bucket}/{self.unicode_key}",
        )  # fmt: skip
        etag = result.get("CopyObjectResult", {}).get("ETag")
        expect_equal(etag, md5_etag(self.files.unicode), "CopyObjectResult ETag")
        self.objects[self.copy_key] = self.files.unicode.stat().st_size
        self._download(self.copy_key, self.files.unicode)

    def cp_s3_to_s3(self) -> None:
        source, target = f"{self.url}/{self.huge_key}", f"{self.url}/{self.huge_copy_key}"
        ran = self.cli("s3", "cp", source, target, timeout=240)
        expect_in(f"copy: {source} to {target}", ran.stdout, "s3 cp output")
        self.objects[self.huge_copy_key] = self.files.huge.stat().st_size
        self._download(self.huge_copy_key, self.files.huge, timeout=240)

    # ------------------------------------------------------------------ helpers

    def _upload(self, source: Path, key: str, timeout: float = 120.0) -> None:
        ran = self.cli("s3", "cp", str(source), f"{self.url}/{key}", timeout=timeout)
        # "upload: <source, relative to the working directory> to s3://bucket/key"
        expect_in(f" to {self.url}/{key}", ran.stdout, "s3 cp output")
        self.objects[key] = source.stat().st_size

    def _download(self, key: str, source: Path, timeout: float = 120.0) -> None:
        target = self.out / "download.bin"
        target.unlink(missing_ok=True)
        ran = self.cli("s3", "cp", f"{self.url}/{key}", str(target), timeout=timeout)
        expect_in("download: ", ran.stdout, "s3 cp output")
        expect_same(self.files.sha256(source), target, f"s3 cp down of {key!r}")
        target.unlink()

    def _presign_and_fetch(self, key: str, source: Path) -> None:
        url = self.cli("s3", "presign", f"{self.url}/{key}", "--expires-in", "600").stdout.strip()
        target = self.out / "presigned.bin"
        target.unlink(missing_ok=True)
        ran = run_tool(
            [self.curl, "-sS", "--globoff", "--max-time", "60", "-o", str(target),
             "-w", "%{http_code}", url],
            self.env,
            timeout=90,
        )  # fmt: skip
        if ran.stdout.strip() != "200":
            body = target.read_text("utf-8", "replace") if target.exists() else ""
            raise StepFailure(
                f"curl of the presigned URL got HTTP {ran.stdout}: {error_summary(body)}"
            )
        expect_same(self.files.sha256(source), target, "curl of the presigned URL")
        target.unlink()

    def _tree_sizes(self) -> dict[str, int]:
        return {name: (self.files.tree / name).stat().st_size for name in self.files.tree_digests}


def expect_in(needle: str, haystack: str, what: str) -> None:
    if needle not in haystack:
        raise StepFailure(f"{what}: {needle!r} not in {error_summary(haystack)!r}")


def transfer_lines(stdout: str, verb: str) -> list[str]:
    """The 'upload: a to b' style lines of an aws cli s3 command (progress lines dropped)."""
    return [line.strip() for line in output_lines(stdout) if line.strip().startswith(verb)]


def parse_ls(stdout: str) -> dict[str, int]:
    """`aws s3 ls` object lines -> {key: size} (PRE lines are skipped)."""
    listed = {}
    for line in output_lines(stdout):
        fields = line.split(maxsplit=3)
        if len(fields) == 4 and fields[2].isdigit():
            listed[fields[3]] = int(fields[2])
    return listed
