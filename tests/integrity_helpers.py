"""Damaging stored blobs and looking at what a running server made of it (test_integrity,
test_scrub)."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

import httpx

from s3facade.admin_client import AdminClient
from tests.conftest import ACCESS_KEY, SECRET_KEY, RunningServer
from tests.rawhttp import parse_raw, raw_exchange, request_head, sign

MiB = 1 << 20


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def blob_path(server: RunningServer, data: bytes) -> Path:
    digest = sha(data)
    return server.data_dir / "blobs" / "sha256" / digest[:2] / digest[2:4] / digest


def flip_byte(path: Path, offset: int) -> None:
    path.chmod(0o644)  # blobs are read-only
    with path.open("r+b") as f:
        f.seek(offset)
        byte = f.read(1)
        f.seek(offset)
        f.write(bytes([byte[0] ^ 0x01]))


def admin(server: RunningServer) -> AdminClient:
    return AdminClient(server.endpoint, credentials=(ACCESS_KEY, SECRET_KEY))


def events(server: RunningServer, kind: str) -> list[dict[str, Any]]:
    log = admin(server).json("GET", "/-/admin/log", {"limit": "100000", "oldest": "true"})
    return [event for event in log["events"] if event["type"] == kind]


def damage_events(server: RunningServer, digest: str) -> list[dict[str, Any]]:
    return [e["data"] for e in events(server, "BlobDamaged") if e["data"]["sha256"] == digest]


def ready(server: RunningServer) -> dict[str, Any]:
    """/-/ready as an admin sees it (the details); anyone else sees its status only."""
    public = httpx.get(f"{server.endpoint}/-/ready", timeout=10)
    assert public.status_code == 200, public.text
    body: dict[str, Any] = admin(server).json("GET", "/-/ready")
    assert public.json() == {"status": body["status"]}
    return body


def damage_metric(server: RunningServer, detected_by: str) -> float:
    text = httpx.get(f"{server.endpoint}/-/metrics", timeout=10).text
    pattern = rf'^s3facade_blob_damage_total{{detected_by="{detected_by}"}} (\S+)$'
    match = re.search(pattern, text, re.MULTILINE)
    return 0.0 if match is None else float(match.group(1))  # absent: nothing counted


def raw_get(
    server: RunningServer, bucket: str, key: str, headers: dict[str, str] | None = None
) -> tuple[int, int | None, bytes]:
    """A GET on a bare socket, read until the server closes it or the declared length is
    in: (status, Content-Length, the body bytes that arrived)."""
    path = f"/{bucket}/{key}"
    signed = sign(server.port, "GET", path, headers=headers or {})
    answer = raw_exchange(
        server.port, request_head(server.port, "GET", path, signed), half_close=False, timeout=20
    )
    reply = parse_raw(answer)
    assert reply is not None, "no answer"
    declared = reply.headers.get("content-length")
    return reply.status, None if declared is None else int(declared), reply.body


def server_lines(server: RunningServer, needle: str) -> list[str]:
    assert server.log_path is not None
    return [line for line in server.log_path.read_text().splitlines() if needle in line]


def server_log(server: RunningServer) -> str:
    assert server.log_path is not None
    return server.log_path.read_text()
