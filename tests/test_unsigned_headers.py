"""Finding 3 of the trust issue: x-amz-* headers added to a captured SigV4 request after it
was signed must not be honoured (AWS: AccessDenied, "There were headers present in the
request which were not signed")."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.conftest import RunningServer
from tests.rawhttp import crc32_b64, send, sign


@pytest.fixture
def locked_version(s3: Any) -> tuple[str, str, str]:
    bucket = f"unsigned-{datetime.now(UTC).strftime('%H%M%S%f')}"
    s3.create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=True)
    until = datetime.now(UTC) + timedelta(days=1)
    put = s3.put_object(
        Bucket=bucket,
        Key="release.bin",
        Body=b"artifact",
        ObjectLockMode="GOVERNANCE",
        ObjectLockRetainUntilDate=until,
    )
    return bucket, "release.bin", put["VersionId"]


def _with(headers: dict[str, str], **added: str) -> dict[str, str]:
    return {**headers, **{name.replace("_", "-"): value for name, value in added.items()}}


def _send_signed(
    server: RunningServer, method: str, path: str, query: str, headers: dict[str, str]
) -> Any:
    """Send already-signed headers unchanged (no re-signing)."""
    return send(server.port, method, path, query, headers, signed=False)


def test_unsigned_bypass_header_does_not_delete_a_governance_version(
    server: RunningServer, s3: Any, locked_version: tuple[str, str, str]
) -> None:
    bucket, key, version_id = locked_version
    path, query = f"/{bucket}/{key}", f"versionId={version_id}"
    captured = sign(server.port, "DELETE", path, query)
    assert _send_signed(server, "DELETE", path, query, captured).status == 403  # locked

    replayed = _with(captured, x_amz_bypass_governance_retention="true")
    reply = _send_signed(server, "DELETE", path, query, replayed)
    assert reply.status == 403
    assert reply.code == "AccessDenied"
    assert reply.field("HeadersNotSigned") == "x-amz-bypass-governance-retention"
    assert s3.head_object(Bucket=bucket, Key=key, VersionId=version_id)["ContentLength"] == 8

    # The same header, signed by a principal allowed to bypass, is honoured.
    signed = sign(server.port, "DELETE", path, query, {"x-amz-bypass-governance-retention": "true"})
    assert _send_signed(server, "DELETE", path, query, signed).status == 204


@pytest.mark.parametrize(
    "added",
    [
        {"x-amz-copy-source": "/elsewhere/secret.txt"},
        {"x-amz-meta-approved-by": "security"},
        {"x-amz-object-lock-legal-hold": "ON"},
        {
            "x-amz-object-lock-mode": "COMPLIANCE",
            "x-amz-object-lock-retain-until-date": "2999-01-01T00:00:00Z",
        },
        {"x-amz-tagging": "release=yes"},
        {"x-amz-storage-class": "STANDARD"},
    ],
    ids=["copy-source", "metadata", "legal-hold", "compliance-lock", "tagging", "storage-class"],
)
def test_unsigned_headers_on_a_put_are_refused(
    server: RunningServer, s3: Any, bucket: str, added: dict[str, str]
) -> None:
    body = b"the signed body"
    path = f"/{bucket}/signed.txt"
    captured = sign(server.port, "PUT", path, "", {"Content-Length": str(len(body))}, body)
    tampered = {**captured, **added}
    reply = send(server.port, "PUT", path, "", tampered, body, signed=False)
    assert reply.status == 403, reply.body
    assert reply.code == "AccessDenied"
    assert set(str(reply.field("HeadersNotSigned")).split(", ")) == set(added)
    assert s3.list_objects_v2(Bucket=bucket).get("KeyCount") == 0  # nothing stored

    # Untampered, the captured request does what its signer asked.
    assert send(server.port, "PUT", path, "", captured, body, signed=False).status == 200
    head = s3.head_object(Bucket=bucket, Key="signed.txt")
    assert head["Metadata"] == {}
    assert "ObjectLockMode" not in head


def test_unsigned_checksum_and_payload_headers_are_tolerated(
    server: RunningServer, s3: Any, bucket: str
) -> None:
    """Headers that only add integrity checks stay allowed unsigned, as on presigned URLs."""
    body = b"checked"
    path = f"/{bucket}/checked.txt"
    captured = sign(server.port, "PUT", path, "", {"Content-Length": str(len(body))}, body)
    right = {**captured, "x-amz-checksum-crc32": crc32_b64(body)}
    assert send(server.port, "PUT", path, "", right, body, signed=False).status == 200
    wrong = {**captured, "x-amz-checksum-crc32": crc32_b64(b"other")}
    reply = send(server.port, "PUT", path, "", wrong, body, signed=False)
    assert (reply.status, reply.code) == (400, "BadDigest")
