"""The aws cli v2 (Debian's awscli package, /usr/bin/aws), unchanged, at its default settings.

Always run by its absolute path: the venv's aws cli v1 comes first on PATH. The steps go
after what v2 does differently from v1: flexible checksums asked for per request (2.9.19
predates default checksums, and over plain http it sends them as headers, not as
aws-chunked trailers), response checksum validation (`--checksum-mode ENABLED`), SigV4
presigned URLs, and its own pagination options.
"""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import time
import zlib
from collections.abc import Callable
from pathlib import Path

import httpx

from conformance.harness import (
    CREATE_MULTIPART_UPLOAD,
    MiB,
    Ran,
    RunContext,
    Step,
    StepFailure,
    error_summary,
    expect_equal,
    expect_same,
    expect_same_names,
    md5_etag,
    multipart_etag,
    run_tool,
)
from conformance.steps_aws_cli import AwsCliBucket, cli_env, expect_in, parse_ls, transfer_lines
from conformance.workload import TREE_FILES, UNICODE_NAME, Workload, tree_digests
from tests.debian_packages import ensure_installed

MPU = CREATE_MULTIPART_UPLOAD
AWS_V2 = "/usr/bin/aws"  # never `aws` from PATH: that is the venv's v1
PART_SIZE = 8 * MiB  # multipart_chunksize default of the s3 commands (v1 and v2 alike)

# Local changes between the two `s3 sync` uploads: removed, rewritten (another size, so
# the size-and-mtime comparison of sync must notice), added.
SYNC_REMOVED = ("d0/e0/file-000.dat", "d1/e1/file-001.dat", "special/plus+sign.txt")
SYNC_REWRITTEN = ("d2/e2/file-002.dat", "special/ünïcødé ✓.txt")
SYNC_ADDED = "new dir/added file ✓.txt"
# Remote changes before the second `s3 sync` down.
REMOTE_REMOVED = "d3/e3/file-003.dat"
REMOTE_ADDED = "remote only/put by s3api +1.txt"


def crc32(data: bytes) -> bytes:
    return zlib.crc32(data).to_bytes(4, "big")


def crc32c(data: bytes) -> bytes:
    from awscrt import checksums

    return int(checksums.crc32c(data)).to_bytes(4, "big")


# name -> digest function, as S3 computes the x-amz-checksum-<name> values
CHECKSUMS: dict[str, Callable[[bytes], bytes]] = {
    "CRC32": crc32,
    "CRC32C": crc32c,
    "SHA1": lambda data: hashlib.sha1(data).digest(),
    "SHA256": lambda data: hashlib.sha256(data).digest(),
}


def checksum_b64(algorithm: str, data: bytes) -> str:
    return base64.b64encode(CHECKSUMS[algorithm](data)).decode()


def composite_checksum(algorithm: str, parts: list[bytes]) -> str:
    """S3's COMPOSITE checksum of a multipart object: the checksum of the parts' checksums."""
    digests = b"".join(CHECKSUMS[algorithm](part) for part in parts)
    return f"{checksum_b64(algorithm, digests)}-{len(parts)}"


class AwsCliV2Steps(AwsCliBucket):
    client = "aws-cli-v2"

    def __init__(self, ctx: RunContext, files: Workload) -> None:
        self.ctx = ctx
        self.files = files
        self.aws = ensure_installed(AWS_V2, "awscli")
        self.bucket = "awscli-v2-conformance"
        self.url = f"s3://{self.bucket}"
        self.out = ctx.work / "aws-cli-v2"
        self.out.mkdir(parents=True, exist_ok=True)
        # v2 pipes output through a pager unless told not to
        self.env = {**cli_env(ctx), "AWS_PAGER": ""}
        version = run_tool([self.aws, "--version"], self.env, timeout=30).stdout.strip()
        if not version.startswith("aws-cli/2."):
            raise RuntimeError(f"{self.aws} is not aws cli v2: {version!r}")
        self.version = version
        # key -> checksum algorithm and its expected x-amz-checksum-* value
        self.checksummed: dict[str, tuple[str, str]] = {}
        self.large_key = f"large/{files.large.name}"
        self.stream_key = "streams/twenty MiB from a pipe.bin"
        self.composite_key = f"composite/{UNICODE_NAME}"
        self.local_tree = self.out / "tree-local"  # a copy: the steps change it
        self.down_tree = self.out / "tree-down"
        self.objects: dict[str, int] = {}  # what the steps so far stored: key -> size

    def steps(self) -> list[Step]:
        mb = "s3 mb"
        crc = "s3api put-object --checksum-algorithm CRC32 (12 MiB)"
        crc_c = "s3api put-object --checksum-algorithm CRC32C"
        sha1 = "s3api put-object --checksum-algorithm SHA1"
        sha256 = "s3api put-object --checksum-algorithm SHA256 (unicode name)"
        composite = "s3api multipart upload with CRC32 part checksums (composite)"
        large = "s3 cp up 20 MiB file (multipart, 8 MiB parts)"
        sync = f"s3 sync up a tree of {TREE_FILES} files"
        sync_delete = "s3 sync up --delete after local changes"
        sync_down = "s3 sync down the tree"
        sync_remote = "s3 sync down --delete after remote changes"
        stream = "s3 cp up 20 MiB from a pipe with --expected-size (non-seekable multipart)"
        # the listing steps compare with what the steps before them stored
        stored = (crc, crc_c, sha1, sha256, composite, large, stream, sync_remote)
        return [
            Step(mb, self.mb),
            Step(crc, self.put_crc32, needs=(mb,)),
            Step(crc_c, self.put_crc32c, needs=(mb,)),
            Step(sha1, self.put_sha1, needs=(mb,)),
            Step(sha256, self.put_sha256, needs=(mb,)),
            Step(
                "s3api put-object with a wrong CRC32 is refused (BadDigest)",
                self.put_bad_checksum,
                needs=(mb,),
            ),
            Step(composite, self.multipart_composite, needs=(mb,), sends=(MPU,)),
            Step(
                "s3api head-object --checksum-mode ENABLED",
                self.head_checksums,
                needs=(crc, crc_c, sha1, sha256, composite),
            ),
            Step(
                "s3api get-object --checksum-mode ENABLED (validated by the cli)",
                self.get_checksums,
                needs=(crc, crc_c, sha1, sha256),
            ),
            Step(large, self.cp_up_large, needs=(mb,), sends=(MPU,)),
            Step("s3api head-object 20 MiB file (multipart ETag)", self.head_large, needs=(large,)),
            Step("s3 cp down 20 MiB file (ranged GETs)", self.cp_down_large, needs=(large,)),
            Step(stream, self.cp_up_stream, needs=(mb,), sends=(MPU,)),
            Step(
                "s3api get-object --range across a part boundary and a suffix range",
                self.get_ranges,
                needs=(large,),
            ),
            Step(sync, self.sync_up, needs=(mb,)),
            Step(sync_delete, self.sync_up_delete, needs=(sync,)),
            Step(sync_down, self.sync_down, needs=(sync_delete,)),
            Step(sync_remote, self.sync_down_delete, needs=(sync_down,)),
            Step("s3 ls --recursive", self.ls_recursive, needs=stored),
            Step(
                "s3api list-objects-v2 paginated by the cli (--page-size 7)",
                self.list_page_size,
                needs=(sync_remote,),
            ),
            Step(
                "s3api list-objects-v2 page by page (--max-keys, --continuation-token)",
                self.list_by_hand,
                needs=(sync_remote,),
            ),
            Step(
                "s3api list-objects-v2 with --max-items and --starting-token",
                self.list_max_items,
                needs=(sync_remote,),
            ),
            Step(
                "s3api list-objects-v2 with a delimiter",
                self.list_delimiter,
                needs=(sync_remote,),
            ),
            Step(
                "s3 presign (SigV4) fetched with httpx (unicode name)",
                self.presign_fetch,
                needs=(sha256,),
            ),
            Step(
                "s3 presign (SigV4) of a 20 MiB file fetched with httpx",
                self.presign_fetch_large,
                needs=(large,),
            ),
            Step("s3 presign expired is refused", self.presign_expired, needs=(crc_c,)),
            Step(
                "s3api put-object-tagging, get-object-tagging, delete-object-tagging",
                self.tagging,
                needs=(crc_c,),
            ),
            Step("s3api put-object --tagging", self.put_with_tagging, needs=(mb,)),
            Step("s3 rm --recursive", self.rm_recursive, needs=(mb,)),
            Step("s3 rb", self.rb, needs=(mb,)),
        ]

    def cli(
        self,
        *args: str,
        timeout: float = 120.0,
        check: bool = True,
        stdin: bytes | None = None,
    ) -> Ran:
        return run_tool(
            [self.aws, "--endpoint-url", self.ctx.endpoint, *args],
            self.env,
            timeout=timeout,
            check=check,
            stdin=stdin,
        )

    # ------------------------------------------------------------------ steps

    def put_crc32(self) -> None:
        self._put_with_checksum("CRC32", self.files.medium, "checksums/crc32-12MiB.bin")

    def put_crc32c(self) -> None:
        self._put_with_checksum("CRC32C", self.files.small, "checksums/crc32c.bin")

    def put_sha1(self) -> None:
        self._put_with_checksum("SHA1", self.files.small, "checksums/sha1.bin")

    def put_sha256(self) -> None:
        self._put_with_checksum("SHA256", self.files.unicode, f"checksums/{UNICODE_NAME}")

    def put_bad_checksum(self) -> None:
        key = "checksums/refused.bin"
        wrong = checksum_b64("CRC32", b"not the body")
        ran = self.cli(
            "s3api", "put-object",
            "--bucket", self.bucket,
            "--key", key,
            "--body", str(self.files.small),
            "--checksum-crc32", wrong,
            check=False,
        )  # fmt: skip
        if ran.returncode == 0:
            raise StepFailure("a PUT whose x-amz-checksum-crc32 does not match was accepted")
        expect_in("BadDigest", ran.stderr, "put-object error")
        head = self.cli(
            "s3api", "head-object", "--bucket", self.bucket, "--key", key, check=False
        )  # fmt: skip
        if head.returncode == 0:
            raise StepFailure("the refused object was stored all the same")
        expect_in("Not Found", head.stderr, "head-object of the refused key")

    def multipart_composite(self) -> None:
        data = self.files.large.read_bytes()
        parts = [data[start : start + PART_SIZE] for start in range(0, len(data), PART_SIZE)]
        key = self.composite_key
        created = self.s3api(
            "create-multipart-upload",
            "--bucket", self.bucket,
            "--key", key,
            "--checksum-algorithm", "CRC32",
        )  # fmt: skip
        upload_id = created["UploadId"]
        expect_equal(created.get("ChecksumAlgorithm"), "CRC32", "CreateMultipartUpload algorithm")
        completed_parts = []
        for number, part in enumerate(parts, start=1):
            body = self.out / f"part-{number}.bin"
            body.write_bytes(part)
            uploaded = self.s3api(
                "upload-part",
                "--bucket", self.bucket,
                "--key", key,
                "--upload-id", upload_id,
                "--part-number", str(number),
                "--body", str(body),
                "--checksum-algorithm", "CRC32",
            )  # fmt: skip
            body.unlink()
            expected = checksum_b64("CRC32", part)
            expect_equal(uploaded.get("ChecksumCRC32"), expected, f"part {number} ChecksumCRC32")
            completed_parts.append(
                {"PartNumber": number, "ETag": uploaded["ETag"], "ChecksumCRC32": expected}
            )
        listed = self.s3api(
            "list-parts", "--bucket", self.bucket, "--key", key, "--upload-id", upload_id
        )  # fmt: skip
        expect_equal(
            [(p.get("PartNumber"), p.get("ChecksumCRC32")) for p in listed.get("Parts", [])],
            [(p["PartNumber"], p["ChecksumCRC32"]) for p in completed_parts],
            "list-parts (PartNumber, ChecksumCRC32)",
        )
        manifest = self.out / "parts.json"
        manifest.write_text(json.dumps({"Parts": completed_parts}))
        completed = self.s3api(
            "complete-multipart-upload",
            "--bucket", self.bucket,
            "--key", key,
            "--upload-id", upload_id,
            "--multipart-upload", f"file://{manifest}",
        )  # fmt: skip
        composite = composite_checksum("CRC32", parts)
        expect_equal(completed.get("ChecksumCRC32"), composite, "CompleteMultipartUpload CRC32")
        expect_equal(
            completed.get("ETag"), multipart_etag(self.files.large, PART_SIZE), "multipart ETag"
        )
        self.checksummed[key] = ("CRC32", composite)
        self.objects[key] = len(data)

    def head_checksums(self) -> None:
        for key, (algorithm, expected) in self.checksummed.items():
            head = self.s3api(
                "head-object",
                "--bucket", self.bucket,
                "--key", key,
                "--checksum-mode", "ENABLED",
            )  # fmt: skip
            expect_equal(head.get(f"Checksum{algorithm}"), expected, f"{key!r} {algorithm}")
        # checksums only when asked for
        plain = self.s3api("head-object", "--bucket", self.bucket, "--key", self.composite_key)
        fields = sorted(name for name in plain if name.startswith("Checksum"))
        expect_equal(fields, [], "checksum fields without --checksum-mode")

    def get_checksums(self) -> None:
        sources = {
            "checksums/crc32-12MiB.bin": self.files.medium,
            "checksums/crc32c.bin": self.files.small,
            "checksums/sha1.bin": self.files.small,
            f"checksums/{UNICODE_NAME}": self.files.unicode,
        }
        target = self.out / "checksummed.bin"
        for key, source in sources.items():
            algorithm, expected = self.checksummed[key]
            target.unlink(missing_ok=True)
            # the cli checks the body against the x-amz-checksum-* header it gets back
            got = self.s3api(
                "get-object",
                "--bucket", self.bucket,
                "--key", key,
                "--checksum-mode", "ENABLED",
                str(target),
            )  # fmt: skip
            expect_equal(got.get(f"Checksum{algorithm}"), expected, f"{key!r} {algorithm}")
            expect_same(self.files.sha256(source), target, f"get-object of {key!r}")
        target.unlink(missing_ok=True)

    def cp_up_large(self) -> None:
        ran = self.cli("s3", "cp", str(self.files.large), f"{self.url}/{self.large_key}")
        expect_in(f" to {self.url}/{self.large_key}", ran.stdout, "s3 cp output")
        self.objects[self.large_key] = self.files.large.stat().st_size

    def head_large(self) -> None:
        head = self.s3api("head-object", "--bucket", self.bucket, "--key", self.large_key)
        expect_equal(head.get("ContentLength"), self.files.large.stat().st_size, "ContentLength")
        expect_equal(head.get("ETag"), multipart_etag(self.files.large, PART_SIZE), "ETag")

    def cp_down_large(self) -> None:
        target = self.out / "large-back.bin"
        ran = self.cli("s3", "cp", f"{self.url}/{self.large_key}", str(target))
        expect_in("download: ", ran.stdout, "s3 cp output")
        expect_same(self.files.sha256(self.files.large), target, "s3 cp down")
        target.unlink()

    def cp_up_stream(self) -> None:
        data = self.files.large.read_bytes()
        self.cli(
            "s3", "cp", "-", f"{self.url}/{self.stream_key}",
            "--expected-size", str(len(data)),
            stdin=data,
        )  # fmt: skip
        head = self.s3api("head-object", "--bucket", self.bucket, "--key", self.stream_key)
        expect_equal(head.get("ContentLength"), len(data), "ContentLength")
        # the multipart ETag is the MD5 of the parts' MD5s: it vouches for every byte
        expect_equal(head.get("ETag"), multipart_etag(self.files.large, PART_SIZE), "ETag")
        self.objects[self.stream_key] = len(data)

    def get_ranges(self) -> None:
        data = self.files.large.read_bytes()
        size = len(data)
        first, last = PART_SIZE - 100, PART_SIZE + 99  # the last 100 bytes of part 1, 100 of 2
        for spec, expected_range, piece in (
            (f"bytes={first}-{last}", f"bytes {first}-{last}/{size}", data[first : last + 1]),
            ("bytes=-1000", f"bytes {size - 1000}-{size - 1}/{size}", data[-1000:]),
        ):
            target = self.out / "range.bin"
            target.unlink(missing_ok=True)
            got = self.s3api(
                "get-object",
                "--bucket", self.bucket,
                "--key", self.large_key,
                "--range", spec,
                str(target),
            )  # fmt: skip
            expect_equal(got.get("ContentRange"), expected_range, f"ContentRange for {spec}")
            expect_equal(got.get("ContentLength"), len(piece), f"ContentLength for {spec}")
            if target.read_bytes() != piece:
                raise StepFailure(f"the bytes of {spec} differ from the source's")
            target.unlink()

    def sync_up(self) -> None:
        shutil.rmtree(self.local_tree, ignore_errors=True)
        shutil.copytree(self.files.tree, self.local_tree)  # copy2: mtimes kept
        ran = self.cli("s3", "sync", str(self.local_tree), f"{self.url}/tree", timeout=180)
        uploaded = self._synced_keys(transfer_lines(ran.stdout, "upload:"))
        expect_same_names(uploaded, self.files.tree_digests, "keys uploaded by s3 sync")
        self._track_tree()

    def sync_up_delete(self) -> None:
        for name in SYNC_REMOVED:
            (self.local_tree / name).unlink()
        for index, name in enumerate(SYNC_REWRITTEN):
            (self.local_tree / name).write_bytes(bytes([index]) * 5000)  # sizes <= 4096 before
        added = self.local_tree / SYNC_ADDED
        added.parent.mkdir(parents=True, exist_ok=True)
        added.write_bytes(b"added after the first sync\n")
        ran = self.cli(
            "s3", "sync", "--delete", str(self.local_tree), f"{self.url}/tree", timeout=180
        )
        uploaded = self._synced_keys(transfer_lines(ran.stdout, "upload:"))
        deleted = self._synced_keys(transfer_lines(ran.stdout, "delete:"))
        expect_same_names(uploaded, [*SYNC_REWRITTEN, SYNC_ADDED], "keys uploaded")
        expect_same_names(deleted, SYNC_REMOVED, "keys deleted")
        self._track_tree()

    def sync_down(self) -> None:
        shutil.rmtree(self.down_tree, ignore_errors=True)
        ran = self.cli("s3", "sync", f"{self.url}/tree", str(self.down_tree), timeout=180)
        downloads = transfer_lines(ran.stdout, "download:")
        expected = tree_digests(self.local_tree)
        expect_equal(len(downloads), len(expected), "'download:' lines")
        self._expect_tree(self.down_tree, expected)

    def sync_down_delete(self) -> None:
        self.cli("s3", "rm", f"{self.url}/tree/{REMOTE_REMOVED}")
        added = self.out / "remote-added.txt"
        added.write_bytes(b"put by s3api, to be synced down\n")
        self.s3api(
            "put-object", "--bucket", self.bucket, "--key", f"tree/{REMOTE_ADDED}",
            "--body", str(added),
        )  # fmt: skip
        ran = self.cli(
            "s3", "sync", "--delete", f"{self.url}/tree", str(self.down_tree), timeout=180
        )
        downloads = transfer_lines(ran.stdout, "download:")
        deletes = transfer_lines(ran.stdout, "delete:")
        expect_equal(len(downloads), 1, f"'download:' lines {downloads[:3]}")
        expect_equal(len(deletes), 1, f"'delete:' lines {deletes[:3]}")
        expected = tree_digests(self.local_tree)
        del expected[REMOTE_REMOVED]
        expected[REMOTE_ADDED] = hashlib.sha256(added.read_bytes()).hexdigest()
        self._expect_tree(self.down_tree, expected)
        # the bucket's tree now matches down_tree, no longer local_tree
        self.objects.pop(f"tree/{REMOTE_REMOVED}")
        self.objects[f"tree/{REMOTE_ADDED}"] = added.stat().st_size

    def ls_recursive(self) -> None:
        listed = parse_ls(self.cli("s3", "ls", "--recursive", self.url).stdout)
        expect_equal(len(listed), len(self.objects), "number of keys listed")
        expect_equal(listed, self.objects, "s3 ls --recursive (key -> size)")

    def list_page_size(self) -> None:
        # 7 keys a request: the cli follows ~43 continuation tokens and merges the pages
        listed = self.s3api(
            "list-objects-v2", "--bucket", self.bucket, "--prefix", "tree/", "--page-size", "7"
        )  # fmt: skip
        keys = [item["Key"] for item in listed.get("Contents", [])]
        expected = sorted(key for key in self.objects if key.startswith("tree/"))
        expect_equal(len(keys), len(expected), "number of keys")
        expect_equal(keys, expected, "keys in order")
        sizes = {item["Key"]: item["Size"] for item in listed["Contents"]}
        expect_equal(sizes, {key: self.objects[key] for key in expected}, "sizes")

    def list_by_hand(self) -> None:
        prefix = "tree/d0/"  # ~50 keys: 3 pages of 20, each a cli call
        token: str | None = None
        keys: list[str] = []
        for page in range(1, 10):
            paging = ["--continuation-token", token] if token else []
            listed = self.s3api(
                "list-objects-v2",
                "--bucket", self.bucket,
                "--prefix", prefix,
                "--max-keys", "20",
                "--no-paginate",
                *paging,
            )  # fmt: skip
            contents = [item["Key"] for item in listed.get("Contents", [])]
            expect_equal(listed.get("KeyCount"), len(contents), f"page {page} KeyCount")
            expect_equal(listed.get("MaxKeys"), 20, f"page {page} MaxKeys")
            keys += contents
            if not listed.get("IsTruncated"):
                break
            expect_equal(len(contents), 20, f"keys on the truncated page {page}")
            token = listed.get("NextContinuationToken")
            if not token:
                raise StepFailure(f"page {page} IsTruncated without a NextContinuationToken")
        else:
            raise StepFailure("still truncated after 9 pages of 20")
        expected = sorted(key for key in self.objects if key.startswith(prefix))
        expect_equal(keys, expected, "keys of all pages, in order")

    def list_max_items(self) -> None:
        # the cli's own paging: NextToken resumes inside a page of --page-size keys
        token: str | None = None
        keys: list[str] = []
        for _ in range(20):
            resume = ["--starting-token", token] if token else []
            listed = self.s3api(
                "list-objects-v2",
                "--bucket", self.bucket,
                "--prefix", "tree/",
                "--max-items", "110",
                "--page-size", "40",
                *resume,
            )  # fmt: skip
            contents = [item["Key"] for item in listed.get("Contents", [])]
            keys += contents
            token = listed.get("NextToken")
            if not token:
                break
            expect_equal(len(contents), 110, "keys in a --max-items 110 answer")
        else:
            raise StepFailure("still a NextToken after 20 calls")
        expected = sorted(key for key in self.objects if key.startswith("tree/"))
        expect_equal(len(keys), len(expected), "number of keys over all calls")
        expect_equal(keys, expected, "keys over all calls, in order")

    def list_delimiter(self) -> None:
        listed = self.s3api(
            "list-objects-v2", "--bucket", self.bucket, "--prefix", "tree/", "--delimiter", "/"
        )  # fmt: skip
        prefixes = [item["Prefix"] for item in listed.get("CommonPrefixes", [])]
        below = [key.removeprefix("tree/") for key in self.objects if key.startswith("tree/")]
        expected = sorted({f"tree/{name.split('/')[0]}/" for name in below if "/" in name})
        expect_equal(prefixes, expected, "CommonPrefixes")
        expect_equal(listed.get("Contents", []), [], "Contents beside the common prefixes")

    def presign_fetch(self) -> None:
        self._fetch_presigned(f"checksums/{UNICODE_NAME}", self.files.unicode)

    def presign_fetch_large(self) -> None:
        self._fetch_presigned(self.large_key, self.files.large)

    def presign_expired(self) -> None:
        url = self._presign("checksums/crc32c.bin", expires_in=1)
        time.sleep(2.2)  # past X-Amz-Date + X-Amz-Expires, whose unit is the second
        with httpx.Client(trust_env=False, timeout=30) as http:
            response = http.get(url)
        if response.status_code != 403:
            raise StepFailure(f"an expired presigned URL got HTTP {response.status_code}")
        expect_in("AccessDenied", response.text, "the error of an expired URL")

    def tagging(self) -> None:
        key = "checksums/crc32c.bin"
        tags = {"project": "s3facade conformance", "owner:team": "storage/ü + é"}
        tag_set = [{"Key": name, "Value": value} for name, value in tags.items()]
        self.s3api(
            "put-object-tagging", "--bucket", self.bucket, "--key", key,
            "--tagging", json.dumps({"TagSet": tag_set}),
        )  # fmt: skip
        expect_equal(self._tags(key), tags, "get-object-tagging")
        target = self.out / "tagged.bin"
        got = self.s3api("get-object", "--bucket", self.bucket, "--key", key, str(target))
        target.unlink(missing_ok=True)
        expect_equal(got.get("TagCount"), 2, "get-object TagCount")
        self.s3api("delete-object-tagging", "--bucket", self.bucket, "--key", key)
        expect_equal(self._tags(key), {}, "get-object-tagging after delete-object-tagging")

    def put_with_tagging(self) -> None:
        key = "tagged/at upload.bin"
        self.s3api(
            "put-object", "--bucket", self.bucket, "--key", key,
            "--body", str(self.files.small),
            "--tagging", "tier=cold&kind=test%20run",  # a URL-encoded query, as S3 takes it
        )  # fmt: skip
        self.objects[key] = self.files.small.stat().st_size
        expect_equal(self._tags(key), {"tier": "cold", "kind": "test run"}, "get-object-tagging")

    # ------------------------------------------------------------------ helpers

    def _put_with_checksum(self, algorithm: str, source: Path, key: str) -> None:
        data = source.read_bytes()
        expected = checksum_b64(algorithm, data)
        put = self.s3api(
            "put-object",
            "--bucket", self.bucket,
            "--key", key,
            "--body", str(source),
            "--checksum-algorithm", algorithm,
        )  # fmt: skip
        expect_equal(put.get(f"Checksum{algorithm}"), expected, f"PutObject Checksum{algorithm}")
        expect_equal(put.get("ETag"), md5_etag(source), "PutObject ETag")
        self.checksummed[key] = (algorithm, expected)
        self.objects[key] = len(data)

    def _presign(self, key: str, expires_in: int = 600) -> str:
        url = self.cli(
            "s3", "presign", f"{self.url}/{key}", "--expires-in", str(expires_in)
        ).stdout.strip()
        # v1 signs presigned URLs with SigV2 by default; v2 always with SigV4
        expect_in("X-Amz-Algorithm=AWS4-HMAC-SHA256", url, "the presigned URL")
        return url

    def _fetch_presigned(self, key: str, source: Path) -> None:
        url = self._presign(key)
        target = self.out / "presigned.bin"
        with httpx.Client(trust_env=False, timeout=60) as http, http.stream("GET", url) as got:
            if got.status_code != 200:
                got.read()
                raise StepFailure(
                    f"GET of the presigned URL got HTTP {got.status_code}: "
                    f"{error_summary(got.text)}"
                )
            with target.open("wb") as sink:
                for chunk in got.iter_bytes(MiB):
                    sink.write(chunk)
        expect_same(self.files.sha256(source), target, "GET of the presigned URL")
        target.unlink()

    def _tags(self, key: str) -> dict[str, str]:
        got = self.s3api("get-object-tagging", "--bucket", self.bucket, "--key", key)
        return {tag["Key"]: tag["Value"] for tag in got.get("TagSet", [])}

    def _synced_keys(self, lines: list[str]) -> list[str]:
        """'upload: <local> to s3://bucket/tree/<key>' or 'delete: s3://…' -> <key>s."""
        prefix = f"{self.url}/tree/"
        keys = []
        for line in lines:
            target = line.split(" to ", 1)[1] if line.startswith("upload:") else line[8:]
            keys.append(target.removeprefix(prefix))
        return keys

    def _track_tree(self) -> None:
        for name in list(self.objects):
            if name.startswith("tree/"):
                del self.objects[name]
        for path in self.local_tree.rglob("*"):
            if path.is_file():
                self.objects[f"tree/{path.relative_to(self.local_tree).as_posix()}"] = (
                    path.stat().st_size
                )

    def _expect_tree(self, root: Path, expected: dict[str, str]) -> None:
        got = tree_digests(root)
        expect_same_names(got, expected, f"files under {root.name}")
        differing = sorted(name for name in got if got[name] != expected[name])
        if differing:
            raise StepFailure(f"{len(differing)} files differ by SHA-256, e.g. {differing[:3]}")
