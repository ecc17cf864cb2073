"""boto3 at its default settings: managed transfers, streams, managed copy, pagination."""

from __future__ import annotations

import os
import random
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from conformance.harness import (
    CREATE_MULTIPART_UPLOAD,
    MiB,
    RunContext,
    Step,
    StepFailure,
    expect_equal,
    expect_same,
    multipart_etag,
    sha256_chunks,
)
from conformance.workload import UNICODE_NAME, Workload

MANY_KEYS = 2500
PIPE_SMALL = 100 * 1024
PIPE_LARGE = 17 * MiB  # above the default 8 MiB threshold: a non-seekable multipart upload
COPY_PART = 5 * MiB  # managed copy threshold and part size: 20 MiB -> 4 UploadPartCopy


def make_client(ctx: RunContext) -> Any:
    """A boto3 S3 client at its default settings (checksums, retries, addressing, pools)."""
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=ctx.endpoint,
        aws_access_key_id=ctx.access_key,
        aws_secret_access_key=ctx.secret_key,
        region_name=ctx.region,
    )


def force_delete_bucket(ctx: RunContext, bucket: str) -> None:
    """Best effort: remove a bucket whatever a failed step left in it."""
    from botocore.exceptions import ClientError

    s3 = make_client(ctx)
    try:
        s3.head_bucket(Bucket=bucket)
    except ClientError:
        return
    try:
        uploads = s3.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
        for upload in uploads:
            s3.abort_multipart_upload(Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"])
    except ClientError:
        pass  # ListMultipartUploads may not be served (yet)
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        keys = [{"Key": obj["Key"]} for obj in page.get("Contents", [])]
        if keys:
            s3.delete_objects(Bucket=bucket, Delete={"Objects": keys, "Quiet": True})
    s3.delete_bucket(Bucket=bucket)


class Boto3Steps:
    client = "boto3"

    def __init__(self, ctx: RunContext, files: Workload) -> None:
        self.ctx = ctx
        self.files = files
        self.bucket = "boto3-conformance"
        self.out = ctx.work / "boto3"
        self.out.mkdir(parents=True, exist_ok=True)
        self.s3 = make_client(ctx)
        self.large_key = f"multipart/twenty MiB+{UNICODE_NAME}"
        self.copy_key = f"copies/copy of twenty MiB+{UNICODE_NAME}"
        self.many_keys = [f"many/{i % 50:02d}/{i:05d}.txt" for i in range(MANY_KEYS)]

    def steps(self) -> list[Step]:
        mb = "create_bucket"
        upload = "upload_file 20 MiB (default TransferConfig, multipart)"
        many = f"put_object {MANY_KEYS} keys from a thread pool"
        return [
            Step(mb, self.create_bucket),
            Step(upload, self.upload_file, needs=(mb,), sends=(CREATE_MULTIPART_UPLOAD,)),
            Step("head_object multipart ETag", self.head_multipart_etag, needs=(upload,)),
            Step(
                "download_file 20 MiB (default TransferConfig, ranged GETs)",
                self.download_file,
                needs=(upload,),
            ),
            Step("upload_fileobj from a pipe 100 KiB", self.upload_pipe_small, needs=(mb,)),
            Step(
                "upload_fileobj from a pipe 17 MiB (non-seekable multipart)",
                self.upload_pipe_large,
                needs=(mb,),
                sends=(CREATE_MULTIPART_UPLOAD,),
            ),
            Step(
                "copy 20 MiB managed (UploadPartCopy)",
                self.managed_copy,
                needs=(upload,),
                sends=(CREATE_MULTIPART_UPLOAD,),
            ),
            Step(many, self.put_many, needs=(mb,)),
            Step(f"list_objects_v2 paginated over {MANY_KEYS} keys", self.list_v2, needs=(many,)),
            Step("list_objects_v2 paginated with delimiter", self.list_v2_delimiter, needs=(many,)),
            Step(f"list_objects (v1) paginated over {MANY_KEYS} keys", self.list_v1, needs=(many,)),
            Step("delete_objects in batches and delete_bucket", self.delete_all, needs=(mb,)),
        ]

    def cleanup(self) -> None:
        force_delete_bucket(self.ctx, self.bucket)

    # ------------------------------------------------------------------ steps

    def create_bucket(self) -> None:
        self.s3.create_bucket(Bucket=self.bucket)
        self.s3.head_bucket(Bucket=self.bucket)

    def upload_file(self) -> None:
        self.s3.upload_file(str(self.files.large), self.bucket, self.large_key)
        head = self.s3.head_object(Bucket=self.bucket, Key=self.large_key)
        expect_equal(head["ContentLength"], self.files.large.stat().st_size, "ContentLength")

    def head_multipart_etag(self) -> None:
        head = self.s3.head_object(Bucket=self.bucket, Key=self.large_key)
        # TransferConfig's default: 8 MiB parts, so 20 MiB -> 3 parts
        expect_equal(head["ETag"], multipart_etag(self.files.large, 8 * MiB), "ETag")

    def download_file(self) -> None:
        target = self.out / "large-back.bin"
        self.s3.download_file(self.bucket, self.large_key, str(target))
        expect_same(self.files.sha256(self.files.large), target, "download_file")
        target.unlink()

    def upload_pipe_small(self) -> None:
        self._upload_from_pipe("streams/pipe-100KiB.bin", PIPE_SMALL)

    def upload_pipe_large(self) -> None:
        self._upload_from_pipe("streams/pipe-17MiB.bin", PIPE_LARGE)

    def _upload_from_pipe(self, key: str, size: int) -> None:
        chunks = list(_pattern_chunks(size, seed=size))
        expected, _ = sha256_chunks(chunks)
        read_fd, write_fd = os.pipe()

        def writer() -> None:
            try:
                with os.fdopen(write_fd, "wb") as pipe:
                    for chunk in chunks:
                        pipe.write(chunk)
            except BrokenPipeError:
                pass  # the upload gave up; its error is what the step reports

        thread = threading.Thread(target=writer, daemon=True)
        thread.start()
        with os.fdopen(read_fd, "rb") as stream:
            if stream.seekable():
                raise StepFailure("the pipe unexpectedly claims to be seekable")
            self.s3.upload_fileobj(stream, self.bucket, key)
        thread.join(10)
        self._expect_object(key, expected, size)

    def managed_copy(self) -> None:
        from boto3.s3.transfer import TransferConfig

        config = TransferConfig(multipart_threshold=COPY_PART, multipart_chunksize=COPY_PART)
        self.s3.copy(
            {"Bucket": self.bucket, "Key": self.large_key},
            self.bucket,
            self.copy_key,
            Config=config,
        )
        size = self.files.large.stat().st_size
        self._expect_object(self.copy_key, self.files.sha256(self.files.large), size)
        head = self.s3.head_object(Bucket=self.bucket, Key=self.copy_key)
        expect_equal(head["ETag"], multipart_etag(self.files.large, COPY_PART), "copy's ETag")

    def put_many(self) -> None:
        def put(key: str) -> None:
            self.s3.put_object(Bucket=self.bucket, Key=key, Body=key.encode())

        # 8 workers: below botocore's default pool of 10 connections
        with ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(put, self.many_keys))

    def list_v2(self) -> None:
        pages = list(
            self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix="many/")
        )
        keys = [obj["Key"] for page in pages for obj in page.get("Contents", [])]
        expect_equal(len(pages), -(-MANY_KEYS // 1000), "number of pages")
        expect_equal(sum(page["KeyCount"] for page in pages), MANY_KEYS, "sum of KeyCount")
        expect_equal(keys, sorted(self.many_keys), "keys in order")

    def list_v2_delimiter(self) -> None:
        pages = list(
            self.s3.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket,
                Prefix="many/",
                Delimiter="/",
                PaginationConfig={"PageSize": 7},
            )
        )
        prefixes = [p["Prefix"] for page in pages for p in page.get("CommonPrefixes", [])]
        contents = [obj["Key"] for page in pages for obj in page.get("Contents", [])]
        expect_equal(prefixes, [f"many/{i:02d}/" for i in range(50)], "CommonPrefixes")
        expect_equal(contents, [], "Contents beside the common prefixes")
        expect_equal(len(pages), -(-50 // 7), "number of pages of 7")

    def list_v1(self) -> None:
        pages = list(
            self.s3.get_paginator("list_objects").paginate(Bucket=self.bucket, Prefix="many/")
        )
        keys = [obj["Key"] for page in pages for obj in page.get("Contents", [])]
        expect_equal(len(pages), -(-MANY_KEYS // 1000), "number of pages")
        expect_equal(keys, sorted(self.many_keys), "keys in order")

    def delete_all(self) -> None:
        from botocore.exceptions import ClientError

        keys = [
            obj["Key"]
            for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket)
            for obj in page.get("Contents", [])
        ]
        for start in range(0, len(keys), 1000):
            batch = [{"Key": key} for key in keys[start : start + 1000]]
            result = self.s3.delete_objects(Bucket=self.bucket, Delete={"Objects": batch})
            if result.get("Errors"):
                raise StepFailure(f"delete_objects errors: {result['Errors'][:3]}")
            expect_equal(len(result.get("Deleted", [])), len(batch), "Deleted entries")
        left = self.s3.list_objects_v2(Bucket=self.bucket).get("KeyCount")
        expect_equal(left, 0, "keys left after delete_objects")
        self.s3.delete_bucket(Bucket=self.bucket)
        try:
            self.s3.head_bucket(Bucket=self.bucket)
        except ClientError as exc:
            code = exc.response["Error"]["Code"]
            expect_equal(code, "404", "head_bucket after delete_bucket")
        else:
            raise StepFailure("the bucket still exists after delete_bucket")

    # ------------------------------------------------------------------ helpers

    def _expect_object(self, key: str, sha256: str, size: int) -> None:
        body = self.s3.get_object(Bucket=self.bucket, Key=key)["Body"]
        actual, got = sha256_chunks(body.iter_chunks(MiB))
        if (actual, got) != (sha256, size):
            raise StepFailure(
                f"get_object {key!r}: {got} bytes, SHA-256 {actual[:16]}… "
                f"!= source {size} bytes, {sha256[:16]}…"
            )


def _pattern_chunks(size: int, seed: int) -> Iterator[bytes]:
    """size pseudo-random bytes in 1 MiB chunks (fast, reproducible)."""
    rng = random.Random(seed)
    remaining = size
    while remaining:
        chunk = rng.randbytes(min(remaining, MiB))
        remaining -= len(chunk)
        yield chunk
