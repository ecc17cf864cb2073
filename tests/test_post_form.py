"""Browser-based POST uploads, the pure parts: the streamed form, the policy, the signature.

Forms come from requests' multipart encoder and boto3's generate_presigned_post (fixed clock,
no network); bodies are fed in odd chunk sizes. No server runs here.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import random
import tracemalloc
from collections.abc import AsyncIterator, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

import boto3
import botocore.auth
import botocore.signers
import pytest
import requests
from botocore.config import Config

from s3facade.errors import S3Error
from s3facade.post_form import PostForm, read_post_form
from s3facade.post_policy import (
    PostPolicy,
    check_length,
    check_post_policy,
    content_length_range,
    parse_post_policy,
    post_signer,
)

AK = "AKIAIOSFODNN7EXAMPLE"
SK = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
REGION = "us-east-1"
CLOCK = datetime(2015, 12, 29, tzinfo=UTC)  # what botocore sees as "now"
URL = "http://127.0.0.1:9/bucket"


def secret_for(access_key: str) -> str | None:
    return SK if access_key == AK else None


# --- building and reading forms ----------------------------------------------------------


def encode(
    data: Mapping[str, str] | None = None,
    files: Any = None,
) -> tuple[bytes, str]:
    prepared = requests.Request("POST", URL, data=data or {}, files=files).prepare()
    assert isinstance(prepared.body, bytes)
    return prepared.body, str(prepared.headers["Content-Type"])


async def pieces(body: bytes, low: int, high: int, seed: int = 7) -> AsyncIterator[bytes]:
    rng = random.Random(seed)
    start = 0
    while start < len(body):
        size = rng.randint(low, high)
        yield body[start : start + size]
        start += size


def read(
    body: bytes, content_type: str, low: int = 1, high: int = 7, **kw: int
) -> tuple[PostForm, bytes]:
    async def run() -> tuple[PostForm, bytes]:
        form = await read_post_form(pieces(body, low, high), content_type, **kw)
        return form, b"".join([chunk async for chunk in form.file])

    return asyncio.run(run())


def error_of(body: bytes, content_type: str, **kw: int) -> S3Error:
    with pytest.raises(S3Error) as caught:
        read(body, content_type, **kw)
    return caught.value


# Bytes that look like a boundary's start, CRs, LFs, NULs: a parser must pass them through.
TRICKY = b"\r\n--\r\n-\r--x\r\n\r\n\x00\xff" * 50 + bytes(range(256)) * 4


CHUNKINGS = [(1, 1), (1, 7), (64 * 1024, 64 * 1024), (10**9, 10**9)]


@pytest.mark.parametrize(("low", "high"), CHUNKINGS)
def test_fields_and_file_in_any_chunking(low: int, high: int) -> None:
    data = {"key": "uploads/${filename}", "Content-Type": "text/plain", "X-Amz-Meta-Note": "é ü"}
    body, ctype = encode(data, {"file": ("photo.jpg", TRICKY, "image/jpeg")})
    form, content = read(body, ctype, low, high)
    assert form.fields == {
        "key": "uploads/${filename}",
        "content-type": "text/plain",
        "x-amz-meta-note": "é ü",
    }
    assert form.field_names == {
        "key": "key",
        "content-type": "Content-Type",
        "x-amz-meta-note": "X-Amz-Meta-Note",
    }
    assert form.filename == "photo.jpg"
    assert form.file_content_type == "image/jpeg"
    assert content == TRICKY


@pytest.mark.parametrize("payload", [b"", b"x", b"\r\n", b"--"])
def test_tiny_files(payload: bytes) -> None:
    body, ctype = encode({"key": "k"}, {"file": ("a", payload)})
    assert read(body, ctype)[1] == payload


def test_fields_after_the_file_are_ignored() -> None:
    files = [("key", (None, "k")), ("file", ("a.txt", b"data")), ("submit", (None, "Upload"))]
    body, ctype = encode(files=files)
    form, content = read(body, ctype)
    assert form.fields == {"key": "k"}
    assert content == b"data"


def test_only_the_part_named_file_is_the_file() -> None:
    # requests gives every part a filename; only the name "file" (any case) makes the file.
    files = [("key", ("key", b"k")), ("File", (None, b"content"))]
    body, ctype = encode(files=files)
    form, content = read(body, ctype)
    assert form.fields == {"key": "k"}
    assert (form.filename, form.file_content_type, content) == ("", None, b"content")


def test_repeated_fields_are_joined_with_commas() -> None:
    # AWS: "if you have two fields named x-amz-meta-tag ... Ninja,Stallman".
    files = [
        ("x-amz-meta-tag", (None, "Ninja")),
        ("X-Amz-Meta-Tag", (None, "Stallman")),
        ("file", ("f", b"z")),
    ]
    form, _ = read(*encode(files=files))
    assert form.fields == {"x-amz-meta-tag": "Ninja,Stallman"}
    assert form.field_names == {"x-amz-meta-tag": "x-amz-meta-tag"}


@pytest.mark.parametrize(
    ("sent", "expected"),
    [("C:\\Users\\eric\\a.txt", "a.txt"), ("dir/sub/b.txt", "b.txt"), ("naïve.txt", "naïve.txt")],
)
def test_filename_keeps_only_the_last_path_segment(sent: str, expected: str) -> None:
    form, _ = read(*encode({"key": "k"}, {"file": (sent, b"x")}))
    assert form.filename == expected


def test_read_returns_before_the_file_is_read() -> None:
    body, ctype = encode({"key": "k"}, {"file": ("f", b"y" * 100_000)})
    pulled = 0

    async def counted() -> AsyncIterator[bytes]:
        nonlocal pulled
        async for chunk in pieces(body, 1000, 1000):
            pulled += 1
            yield chunk

    async def run() -> bytes:
        form = await read_post_form(counted(), ctype)
        assert pulled <= 2  # the fields and the file's headers fit in the first kilobyte
        return b"".join([chunk async for chunk in form.file])

    assert asyncio.run(run()) == b"y" * 100_000
    assert pulled == -(-len(body) // 1000)


def test_large_file_streams_in_bounded_memory() -> None:
    size, block = 8 * 1024 * 1024, 64 * 1024
    marker = b"\x00MARKER\x00"
    body, ctype = encode({"key": "big", "acl": "private"}, {"file": ("big.bin", marker)})
    head, _, tail = body.partition(marker)

    async def stream() -> AsyncIterator[bytes]:
        yield head
        for i in range(size // block):
            yield bytes([i % 251]) * block  # made on the fly: the body never exists whole
        yield tail

    async def run() -> tuple[int, str]:
        form = await read_post_form(stream(), ctype)
        digest, total = hashlib.sha256(), 0
        async for chunk in form.file:
            digest.update(chunk)
            total += len(chunk)
        return total, digest.hexdigest()

    expected = hashlib.sha256()
    for i in range(size // block):
        expected.update(bytes([i % 251]) * block)
    tracemalloc.start()
    try:
        total, digest = asyncio.run(run())
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert (total, digest) == (size, expected.hexdigest())
    assert peak < size // 16, peak  # a few network chunks, never the file


# --- form errors -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "ctype", ["application/x-www-form-urlencoded", "text/html", "multipart/mixed; boundary=x", ""]
)
def test_not_multipart_form_data(ctype: str) -> None:
    body, _ = encode({"key": "k"}, {"file": ("f", b"x")})
    err = error_of(body, ctype)
    assert (err.code, err.status) == ("PreconditionFailed", 412)
    assert err.extra == {
        "Condition": "Bucket POST must be of the enclosure-type multipart/form-data"
    }


@pytest.mark.parametrize(
    "ctype", ['multipart/form-data; boundary="B"', "Multipart/Form-Data;Boundary=B; charset=utf-8"]
)
def test_content_type_spellings(ctype: str) -> None:
    body = b"--B\r\nContent-Disposition: form-data; name=file\r\n\r\nxyz\r\n--B--\r\n"
    assert read(body, ctype)[1] == b"xyz"


def test_no_boundary_is_malformed() -> None:
    body, _ = encode({"key": "k"}, {"file": ("f", b"x")})
    assert error_of(body, "multipart/form-data").code == "MalformedPOSTRequest"


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"\r\n\r\n",
        b"hello world",
        b"--otherboundary\r\nContent-Disposition: form-data; name=key\r\n\r\nk\r\n",
        b"--B\r\nContent-Disposition: form-data; name=key\r\nbad header line\r\n\r\nk\r\n--B--",
        b"--B\r\nContent-Disposition: form-data\r\n\r\nno name\r\n--B--\r\n",
        b"--B\r\nContent-Disposition: attachment; name=k\r\n\r\nv\r\n--B--\r\n",
        b"--B\r\nContent-Disposition: form-data; name=k\r\n\r\n\xff\xfe\r\n--B--\r\n",
    ],
)
def test_garbage_is_malformed(body: bytes) -> None:
    assert error_of(body, "multipart/form-data; boundary=B").code == "MalformedPOSTRequest"


def test_garbage_after_the_file_fails_the_file() -> None:
    body = b"--B\r\nContent-Disposition: form-data; name=file\r\n\r\ndata\r\n--B\r\n:bad\r\n"
    assert error_of(body, "multipart/form-data; boundary=B").code == "MalformedPOSTRequest"


def test_no_file_part() -> None:
    err = error_of(*encode(files=[("key", (None, "k")), ("policy", (None, "p"))]))
    assert (err.code, err.status) == ("InvalidArgument", 400)
    assert err.message == "POST requires exactly one file upload per request."
    assert err.extra == {"ArgumentName": "file", "ArgumentValue": "0"}


def test_fields_before_the_file_are_limited() -> None:
    file = {"file": ("f", b"x" * 100_000)}  # the file's own size never counts
    read(*encode({"key": "k", "pad": "p" * 20_000}, file))
    for data in ({"pad": "p" * 20_500}, {f"x-amz-meta-{i}": "v" * 100 for i in range(200)}):
        err = error_of(*encode(data, file))
        assert (err.code, err.status) == ("MaxPostPreDataLengthExceededError", 400)
        assert err.extra == {"MaxPostPreDataLengthBytes": "20480"}
    # A file part under another name is a field: its content counts (as S3 reports it).
    err = error_of(*encode(files={"upload": ("f", b"x" * 30_000)}))
    assert err.code == "MaxPostPreDataLengthExceededError"
    assert read(*encode({"k": "v" * 60}, file), max_fields_bytes=1000)[0].fields == {"k": "v" * 60}
    assert error_of(*encode({"k": "v" * 1000}, file), max_fields_bytes=1000).code == (
        "MaxPostPreDataLengthExceededError"
    )


def test_truncated_bodies_are_incomplete() -> None:
    body, ctype = encode({"key": "k"}, {"file": ("f", TRICKY)})
    file_at = body.index(TRICKY)
    for cut in (file_at - 5, file_at + 100, len(body) - 3):  # in the fields, file, trailer
        assert error_of(body[:cut], ctype).code == "IncompleteBody"


def test_incomplete_body_is_raised_by_the_file_iterator() -> None:
    body, ctype = encode({"key": "k"}, {"file": ("f", TRICKY)})

    async def run() -> list[bytes]:
        form = await read_post_form(pieces(body[:-10], 50, 50), ctype)
        got: list[bytes] = []
        with pytest.raises(S3Error) as caught:
            async for chunk in form.file:
                got.append(chunk)
        assert caught.value.code == "IncompleteBody"
        return got

    assert b"".join(asyncio.run(run())) == TRICKY  # every byte, then the error


# --- boto3's presigned POST --------------------------------------------------------------


@cache
def s3_client(signature_version: str) -> Any:
    return boto3.client(
        "s3",
        region_name=REGION,
        aws_access_key_id=AK,
        aws_secret_access_key=SK,
        endpoint_url="http://127.0.0.1:9",
        config=Config(signature_version=signature_version),
    )


@pytest.fixture
def frozen_clock(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    def now(remove_tzinfo: bool = True) -> datetime:
        return CLOCK.replace(tzinfo=None) if remove_tzinfo else CLOCK

    monkeypatch.setattr(botocore.signers, "get_current_datetime", now)
    monkeypatch.setattr(botocore.auth, "get_current_datetime", now)
    yield


def presign(
    version: str = "s3v4",
    key: str = "user/user1/photo.jpg",
    bucket: str = "examplebucket",
    **kw: Any,
) -> dict[str, str]:
    post = s3_client(version).generate_presigned_post(bucket, key, **kw)
    fields: dict[str, str] = post["fields"]
    return fields


def test_boto3_sigv4_post_verifies(frozen_clock: None) -> None:
    fields = presign(bucket="sigv4examplebucket")
    # The signature botocore makes for this clock and these keys (an independent vector).
    assert fields["x-amz-signature"] == (
        "3364624b39010d9b06f5d9b8c9a18a6e478d261c048159c92f2fd6fa885f14e6"
    )
    form, content = read(*encode(fields, {"file": ("photo.jpg", b"jpeg")}))
    assert form.fields == fields
    assert post_signer(form.fields, secret_for, REGION) == AK
    policy = parse_post_policy(form.fields["policy"])
    assert policy.expiration == CLOCK + timedelta(hours=1)
    check_post_policy(policy, form.fields, "sigv4examplebucket", CLOCK)
    check_length(policy, len(content))
    assert content_length_range(policy) is None


def test_boto3_sigv2_post_verifies(frozen_clock: None) -> None:
    fields = presign("s3", bucket="b")
    assert set(fields) == {"key", "AWSAccessKeyId", "policy", "signature"}
    form, _ = read(*encode(fields, {"file": ("f", b"x")}))
    assert post_signer(form.fields, secret_for, REGION) == AK
    check_post_policy(parse_post_policy(form.fields["policy"]), form.fields, "b", CLOCK)


@pytest.mark.parametrize("version", ["s3v4", "s3"])
def test_tampered_forms_fail(frozen_clock: None, version: str) -> None:
    fields = {k.lower(): v for k, v in presign(version).items()}
    sig = "x-amz-signature" if version == "s3v4" else "signature"
    flipped = fields[sig][:-2] + ("A" if fields[sig][-2] != "A" else "B") + fields[sig][-1]
    other = presign(version, key="other")["policy"]
    for change in ({sig: flipped}, {"policy": other}, {"policy": fields["policy"][:-2]}):
        with pytest.raises(S3Error) as caught:
            post_signer({**fields, **change}, secret_for, REGION)
        err = caught.value
        assert (err.code, err.status) == ("SignatureDoesNotMatch", 403)
        policy = change.get("policy", fields["policy"])
        assert err.extra == {
            "AWSAccessKeyId": AK,
            "StringToSign": policy,
            "SignatureProvided": change.get(sig, fields[sig]),
            "StringToSignBytes": " ".join(f"{b:02x}" for b in policy.encode()),
        }
    with pytest.raises(S3Error) as caught:
        post_signer(fields, lambda ak: None, REGION)
    assert (caught.value.code, caught.value.extra) == ("InvalidAccessKeyId", {"AWSAccessKeyId": AK})


def test_field_names_are_case_insensitive(frozen_clock: None) -> None:
    fields = presign()
    shouted = {("Policy" if k == "policy" else k.upper()): v for k, v in fields.items()}
    form, _ = read(*encode(shouted, {"file": ("f", b"x")}))
    assert post_signer(form.fields, secret_for, REGION) == AK
    assert post_signer(shouted, secret_for, REGION) == AK
    check_post_policy(parse_post_policy(fields["policy"]), shouted, "examplebucket", CLOCK)


# AWS's own example (sigv4-post-example): policy with CRLFs, and its stated signature.
AWS_POLICY = (
    "eyAiZXhwaXJhdGlvbiI6ICIyMDE1LTEyLTMwVDEyOjAwOjAwLjAwMFoiLA0KICAiY29uZGl0aW9ucyI6IFsNCiAg"
    "ICB7ImJ1Y2tldCI6ICJzaWd2NGV4YW1wbGVidWNrZXQifSwNCiAgICBbInN0YXJ0cy13aXRoIiwgIiRrZXkiLCAi"
    "dXNlci91c2VyMS8iXSwNCiAgICB7ImFjbCI6ICJwdWJsaWMtcmVhZCJ9LA0KICAgIHsic3VjY2Vzc19hY3Rpb25f"
    "cmVkaXJlY3QiOiAiaHR0cDovL3NpZ3Y0ZXhhbXBsZWJ1Y2tldC5zMy5hbWF6b25hd3MuY29tL3N1Y2Nlc3NmdWxf"
    "dXBsb2FkLmh0bWwifSwNCiAgICBbInN0YXJ0cy13aXRoIiwgIiRDb250ZW50LVR5cGUiLCAiaW1hZ2UvIl0sDQog"
    "ICAgeyJ4LWFtei1tZXRhLXV1aWQiOiAiMTQzNjUxMjM2NTEyNzQifSwNCiAgICB7IngtYW16LXNlcnZlci1zaWRl"
    "LWVuY3J5cHRpb24iOiAiQUVTMjU2In0sDQogICAgWyJzdGFydHMtd2l0aCIsICIkeC1hbXotbWV0YS10YWciLCAi"
    "Il0sDQoNCiAgICB7IngtYW16LWNyZWRlbnRpYWwiOiAiQUtJQUlPU0ZPRE5ON0VYQU1QTEUvMjAxNTEyMjkvdXMt"
    "ZWFzdC0xL3MzL2F3czRfcmVxdWVzdCJ9LA0KICAgIHsieC1hbXotYWxnb3JpdGhtIjogIkFXUzQtSE1BQy1TSEEy"
    "NTYifSwNCiAgICB7IngtYW16LWRhdGUiOiAiMjAxNTEyMjlUMDAwMDAwWiIgfQ0KICBdDQp9"
)
AWS_FORM = {
    "key": "user/user1/${filename}",
    "acl": "public-read",
    "success_action_redirect": "http://sigv4examplebucket.s3.amazonaws.com/successful_upload.html",
    "Content-Type": "image/jpeg",
    "x-amz-meta-uuid": "14365123651274",
    "x-amz-server-side-encryption": "AES256",
    "X-Amz-Credential": f"{AK}/20151229/us-east-1/s3/aws4_request",
    "X-Amz-Algorithm": "AWS4-HMAC-SHA256",
    "X-Amz-Date": "20151229T000000Z",
    "x-amz-meta-tag": "",
    "Policy": AWS_POLICY,
    "X-Amz-Signature": "8afdbf4008c03f22c2cd3cdb72e4afbb1f6a588f3255ac628749a66d7f09699e",
}


def test_aws_documented_example() -> None:
    form, _ = read(*encode(AWS_FORM, {"file": ("MyPicture.jpg", b"\xff\xd8", "image/jpeg")}))
    assert post_signer(form.fields, secret_for, REGION) == AK
    policy = parse_post_policy(form.fields["policy"])
    assert policy.expiration == datetime(2015, 12, 30, 12, tzinfo=UTC)
    assert len(policy.conditions) == 11
    expanded = {**form.fields, "key": form.fields["key"].replace("${filename}", form.filename)}
    check_post_policy(policy, expanded, "sigv4examplebucket", CLOCK)
    with pytest.raises(S3Error) as caught:
        check_post_policy(policy, expanded, "otherbucket", CLOCK)
    assert caught.value.message == (
        'Invalid according to Policy: Policy Condition failed: ["eq", "$bucket", '
        '"sigv4examplebucket"]'
    )


# --- signature field errors --------------------------------------------------------------


def argument_error(fields: Mapping[str, str]) -> tuple[str, str, dict[str, str]]:
    with pytest.raises(S3Error) as caught:
        post_signer(fields, secret_for, REGION)
    assert caught.value.status == 400
    return caught.value.code, caught.value.message, caught.value.extra


def without(fields: Mapping[str, str], *names: str) -> dict[str, str]:
    return {k: v for k, v in fields.items() if k not in names}


def test_anonymous_and_half_signed_forms(frozen_clock: None) -> None:
    assert post_signer({"key": "k", "acl": "public-read"}, secret_for, REGION) is None
    with pytest.raises(S3Error) as caught:  # a policy nobody signed
        post_signer({"key": "k", "policy": "e30="}, secret_for, REGION)
    assert (caught.value.code, caught.value.message) == ("AccessDenied", "Access Denied")
    v4, v2 = presign(), presign("s3")
    cases = [
        (without(v4, "x-amz-signature"), "X-Amz-Signature"),
        (without(v4, "x-amz-algorithm", "x-amz-credential"), "X-Amz-Algorithm"),
        (without(v4, "x-amz-date"), "X-Amz-Date"),
        (without(v4, "policy"), "Policy"),
        (without(v2, "AWSAccessKeyId"), "AWSAccessKeyId"),
        (without(v2, "signature"), "Signature"),
        (without(v2, "policy"), "Policy"),
    ]
    for fields, missing in cases:
        assert argument_error(fields) == (
            "InvalidArgument",
            f"Bucket POST must contain a field named '{missing}'.  "
            "If it is specified, please check the order of the fields.",
            {"ArgumentName": missing, "ArgumentValue": ""},
        )


@pytest.mark.parametrize(
    ("credential", "message"),
    [
        (f"{AK}/20151229/us-east-1/s3", "the Credential is mal-formed; expecting "
         '"<YOUR-AKID>/YYYYMMDD/REGION/SERVICE/aws4_request".'),
        ("/20151229/us-east-1/s3/aws4_request",
         "a non-empty Access Key (AKID) must be provided in the credential."),
        (f"{AK}/2015-12-29/us-east-1/s3/aws4_request", 'incorrect date format "2015-12-29". '
         'This date in the credential must be in the format "yyyyMMdd".'),
        (f"{AK}/20151229/eu-west-1/s3/aws4_request",
         "the region 'eu-west-1' is wrong; expecting 'us-east-1'"),
        (f"{AK}/20151229/us-east-1/ec2/aws4_request",
         'incorrect service "ec2". This endpoint belongs to "s3".'),
        (f"{AK}/20151229/us-east-1/s3/aws5_request",
         'incorrect terminal "aws5_request". This endpoint uses "aws4_request".'),
    ],
)  # fmt: skip
def test_bad_credentials(frozen_clock: None, credential: str, message: str) -> None:
    code, got, extra = argument_error({**presign(), "x-amz-credential": credential})
    assert (code, got) == ("InvalidArgument", message)
    assert extra["ArgumentName"] == "X-Amz-Credential"
    assert extra["ArgumentValue"] == credential
    assert extra.get("Region") == ("us-east-1" if "eu-west-1" in credential else None)


def test_bad_algorithm_and_date(frozen_clock: None) -> None:
    fields = presign()
    assert argument_error({**fields, "x-amz-algorithm": "AWS4-HMAC-SHA1"}) == (
        "InvalidArgument",
        'X-Amz-Algorithm only supports "AWS4-HMAC-SHA256"',
        {"ArgumentName": "X-Amz-Algorithm", "ArgumentValue": "AWS4-HMAC-SHA1"},
    )
    assert argument_error({**fields, "x-amz-date": "2015-12-29"}) == (
        "InvalidArgument",
        "X-Amz-Date must be formated via ISO8601 Long format",
        {"ArgumentName": "X-Amz-Date", "ArgumentValue": "2015-12-29"},
    )


# --- the policy document -----------------------------------------------------------------


def b64(doc: object) -> str:
    text = doc if isinstance(doc, str) else json.dumps(doc)
    return base64.b64encode(text.encode()).decode()


EXPIRES = "2030-01-01T00:00:00Z"


def policy_of(*conditions: object, expiration: str = EXPIRES) -> PostPolicy:
    return parse_post_policy(b64({"expiration": expiration, "conditions": list(conditions)}))


@pytest.mark.parametrize(
    ("document", "detail"),
    [
        ("not base64!", "Invalid JSON."),
        (base64.b64encode(b"\xff\xfe{}").decode(), "Invalid JSON."),
        (b64("{'expiration': 1}"), "Invalid JSON."),
        (b64("[1, 2]"), "Invalid JSON."),
        (b64({"conditions": []}), "Policy missing expiration."),
        (b64({"expiration": EXPIRES}), "Policy missing conditions."),
        (b64({"EXPIRATION": EXPIRES, "conditions": []}), "Unexpected: 'expiration'"),
        (b64({"expiration": EXPIRES, "Statement": []}), "Unexpected: 'statement'"),
        (b64({"expiration": "2030-01-01T00:00:00+02:00", "conditions": []}),
         "Invalid 'expiration' value: '2030-01-01T00:00:00+02:00'"),
        (b64({"expiration": "2030-01-01 00:00:00Z", "conditions": []}),
         "Invalid 'expiration' value: '2030-01-01 00:00:00Z'"),
        (b64({"expiration": "2030-02-31T00:00:00Z", "conditions": []}),
         "Invalid 'expiration' value: '2030-02-31T00:00:00Z'"),
        (b64({"expiration": EXPIRES, "conditions": {}}),
         "Invalid 'conditions' value: must be a List."),
        (b64({"expiration": EXPIRES, "conditions": [{}]}),
         "Invalid Simple-Condition: Simple-Conditions must have exactly one property specified."),
        (b64({"expiration": EXPIRES, "conditions": [{"a": "1", "b": "2"}]}),
         "Invalid Simple-Condition: Simple-Conditions must have exactly one property specified."),
        (b64({"expiration": EXPIRES, "conditions": [{"Content-Length": 5}]}),
         "Invalid Simple-Condition: value must be a string."),
        (b64({"expiration": EXPIRES, "conditions": [{"success_action_redirect": None}]}),
         "Invalid JSON."),
        (b64({"expiration": EXPIRES, "conditions": [[]]}),
         "Invalid Condition: missing operation identifier."),
        (b64({"expiration": EXPIRES, "conditions": [["matches", "$key", "a"]]}),
         "Invalid Condition: unknown operation 'matches'."),
        (b64({"expiration": EXPIRES, "conditions": [["eq", "$key"]]}),
         "Invalid eq: wrong number of arguments."),
        (b64({"expiration": EXPIRES, "conditions": [["content-length-range", 0]]}),
         "Invalid content-length-range: wrong number of arguments."),
        (b64({"expiration": EXPIRES, "conditions": [["content-length-range", 0, 512.0]]}),
         "Invalid JSON."),
        (b64({"expiration": EXPIRES, "conditions": [["eq", "$key", 5]]}), "Invalid JSON."),
        (b64({"expiration": EXPIRES, "conditions": ["key"]}),
         "Invalid condition test: must be a List or Object."),
        (b64('{"expiration": "' + EXPIRES + '", "conditions": [["eq", "$a", NaN]]}'),
         "Invalid JSON."),
    ],
)  # fmt: skip
def test_invalid_policy_documents(document: str, detail: str) -> None:
    with pytest.raises(S3Error) as caught:
        parse_post_policy(document)
    err = caught.value
    assert (err.code, err.status, err.message) == (
        "InvalidPolicyDocument",
        400,
        f"Invalid Policy: {detail}",
    )


def test_expiration_formats_and_wrapped_base64() -> None:
    assert policy_of(expiration="2030-01-01T00:00:00.250Z").expiration == datetime(
        2030, 1, 1, 0, 0, 0, 250_000, tzinfo=UTC
    )
    text = b64({"expiration": EXPIRES, "conditions": []})
    wrapped = "\n".join(text[i : i + 20] for i in range(0, len(text), 20))
    assert parse_post_policy(wrapped).expiration == datetime(2030, 1, 1, tzinfo=UTC)


def test_expiration() -> None:
    policy = policy_of(expiration="2030-01-01T00:00:00.000Z")
    check_post_policy(policy, {}, "b", datetime(2030, 1, 1, tzinfo=UTC))
    with pytest.raises(S3Error) as caught:
        check_post_policy(policy, {}, "b", datetime(2030, 1, 1, 0, 0, 1, tzinfo=UTC))
    err = caught.value
    assert (err.code, err.status) == ("AccessDenied", 403)
    assert err.message == "Invalid according to Policy: Policy expired."


# --- conditions --------------------------------------------------------------------------

NOW = datetime(2029, 1, 1, tzinfo=UTC)


def failure(condition: object, fields: Mapping[str, str], bucket: str = "b") -> str | None:
    """None if the form meets the condition, else S3's message."""
    try:
        check_post_policy(policy_of(condition), fields, bucket, NOW)
    except S3Error as err:
        assert (err.code, err.status) == ("AccessDenied", 403)
        return err.message
    return None


@pytest.mark.parametrize(
    ("condition", "fields", "passes"),
    [
        ({"acl": "public-read"}, {"acl": "public-read"}, True),
        ({"acl": "public-read"}, {"acl": "Public-Read"}, False),  # values are case-sensitive
        ({"ACL": "private"}, {"Acl": "private"}, True),  # names are not
        (["eq", "$key", "uploads/a"], {"key": "uploads/a"}, True),
        (["eq", "$key", "uploads/a"], {"key": "uploads/ab"}, False),
        (["EQ", "$Key", "a"], {"KEY": "a"}, True),
        (["eq", "key", "a"], {"key": "a"}, False),  # no "$": never met
        (["eq", "$x-amz-meta-a", ""], {}, False),  # an absent field fails
        (["eq", "$x-amz-meta-a", ""], {"x-amz-meta-a": ""}, True),
        (["starts-with", "$key", "user/"], {"key": "user/eric/a.jpg"}, True),
        (["starts-with", "$key", "user/"], {"key": "User/eric"}, False),
        (["starts-with", "$key", ""], {"key": "anything"}, True),
        (["starts-with", "$success_action_redirect", ""], {}, False),  # absent, even with ""
        (["StArTs-WiTh", "$CoNtEnT-TyPe", "text/"], {"content-type": "text/plain"}, True),
        (["starts-with", "$Content-Type", "image/"], {"Content-Type": "image/jpg,image/png"}, True),
        (["starts-with", "$Content-Type", "image/"], {"content-type": "image/a, image/b"}, True),
        (["starts-with", "$Content-Type", "image/"], {"content-type": "image/a,text/plain"}, False),
        (["starts-with", "$x-amz-meta-tag", "a"], {"x-amz-meta-tag": "a,b"}, True),  # not a list
        (["starts-with", "$x-amz-meta-tag", "a"], {"x-amz-meta-tag": "b,a"}, False),
        ({"bucket": "b"}, {}, True),  # the request's bucket, not a field
        ({"bucket": "b"}, {"bucket": "b"}, True),
        ({"bucket": "other"}, {"bucket": "other"}, False),
        (["starts-with", "$bucket", "b"], {}, True),
        (["content-length-range", 0, 10], {}, True),  # the length is check_length's
        (["content-length-range", "5", "10"], {}, True),
        (["content-length-range", "test", "10"], {}, False),
    ],
)  # fmt: skip
def test_conditions(condition: object, fields: dict[str, str], passes: bool) -> None:
    covered = {name: value for name, value in fields.items() if name.lower() != "bucket"}
    message = failure(condition, covered if passes else fields)
    if passes:
        assert message is None
    else:
        quoted = json.dumps(
            ["eq", "$" + next(iter(condition)), *condition.values()]
            if isinstance(condition, dict)
            else condition
        )
        assert message == f"Invalid according to Policy: Policy Condition failed: {quoted}"


def test_failed_condition_quotes_the_policy() -> None:
    message = failure(["eq", "$Content-Disposition", 'filename="a.png"'], {})
    assert message == (
        "Invalid according to Policy: Policy Condition failed: "
        '["eq", "$Content-Disposition", "filename=\\"a.png\\""]'
    )
    assert failure({"key": "ключ"}, {"key": "x"}) == (
        'Invalid according to Policy: Policy Condition failed: ["eq", "$key", "ключ"]'
    )


def test_every_field_needs_a_condition() -> None:
    policy = policy_of({"key": "k"}, ["starts-with", "$Content-Type", ""])
    exempt = {
        "key": "k",
        "content-type": "text/plain",
        "policy": "p",
        "x-amz-signature": "s",
        "signature": "s",
        "AWSAccessKeyId": "a",
        "x-ignore-tracker": "1",
        "X-Ignore-Other": "2",
    }
    check_post_policy(policy, exempt, "b", NOW)
    for extra in ({"x-amz-meta-note": "n"}, {"bucket": "b"}, {"x-amz-credential": "c"}):
        with pytest.raises(S3Error) as caught:
            check_post_policy(policy, {**exempt, **extra}, "b", NOW)
        name = next(iter(extra))
        assert caught.value.code == "AccessDenied"
        assert caught.value.message == f"Invalid according to Policy: Extra input fields: {name}"
    data = {"key": "k", "Content-Type": "a/b", "StorageClass": "X", "Zeta": "z"}
    form, _ = read(*encode(data, {"file": ("f", b"")}))
    with pytest.raises(S3Error) as caught:
        check_post_policy(policy, form.fields, "b", NOW, field_names=form.field_names)
    assert caught.value.message == (
        "Invalid according to Policy: Extra input fields: StorageClass, Zeta"
    )


def test_content_length_range() -> None:
    policy = policy_of(["content-length-range", 5, 10])
    assert content_length_range(policy) == (5, 10)
    for size in (5, 7, 10):  # bounds are inclusive
        check_length(policy, size)
    with pytest.raises(S3Error) as caught:
        check_length(policy, 4)
    err = caught.value
    assert (err.code, err.status) == ("EntityTooSmall", 400)
    assert err.message == "Your proposed upload is smaller than the minimum allowed size"
    assert err.extra == {"ProposedSize": "4", "MinSizeAllowed": "5"}
    with pytest.raises(S3Error) as caught:
        check_length(policy, 11)
    err = caught.value
    assert (err.code, err.status) == ("EntityTooLarge", 400)
    assert err.message == "Your proposed upload exceeds the maximum allowed size"
    assert err.extra == {"ProposedSize": "11", "MaxSizeAllowed": "10"}

    both = policy_of(["content-length-range", "1", "100"], ["content-length-range", 50, 200])
    assert content_length_range(both) == (50, 100)
    with pytest.raises(S3Error):
        check_length(both, 150)
    assert content_length_range(policy_of({"key": "k"})) is None
    check_length(policy_of({"key": "k"}), 10**12)
    assert content_length_range(policy_of(["content-length-range", "x", 5])) is None


def test_boto3_conditions_end_to_end(frozen_clock: None) -> None:
    fields = presign(
        key="uploads/${filename}",
        Fields={"acl": "public-read", "Content-Type": "image/png"},
        Conditions=[
            {"acl": "public-read"},
            ["starts-with", "$Content-Type", "image/"],
            ["content-length-range", 1, 1024],
        ],
    )
    body, ctype = encode(fields, {"file": ("cat.png", b"\x89PNG" * 10, "image/png")})
    form, content = read(body, ctype, 64 * 1024, 64 * 1024)
    assert post_signer(form.fields, secret_for, REGION) == AK
    policy = parse_post_policy(form.fields["policy"])
    expanded = {**form.fields, "key": form.fields["key"].replace("${filename}", form.filename)}
    check_post_policy(policy, expanded, "examplebucket", CLOCK)
    assert content_length_range(policy) == (1, 1024)
    check_length(policy, len(content))
    with pytest.raises(S3Error) as caught:
        check_post_policy(policy, {**expanded, "acl": "private"}, "examplebucket", CLOCK)
    assert caught.value.message == (
        'Invalid according to Policy: Policy Condition failed: ["eq", "$acl", "public-read"]'
    )
    with pytest.raises(S3Error) as caught:
        check_post_policy(policy, expanded, "examplebucket", CLOCK + timedelta(hours=2))
    assert caught.value.message == "Invalid according to Policy: Policy expired."
