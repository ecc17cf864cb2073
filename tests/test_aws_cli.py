"""The README's walk-through with the real aws cli (from PyPI, pinned), unchanged."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import httpx

from tests.clients import aws
from tests.conftest import RunningServer


def test_mb_cp_ls_cp_rm_rb(server: RunningServer, tmp_path: Path) -> None:
    source = tmp_path / "report 1+1 ü.txt"
    source.write_bytes(os.urandom(1024))
    aws(server, "s3", "mb", "s3://cli-walkthrough")
    aws(server, "s3", "cp", str(source), "s3://cli-walkthrough/reports/")
    listing = aws(server, "s3", "ls", "s3://cli-walkthrough/reports/")
    assert "report 1+1 ü.txt" in listing
    assert " 1024 " in listing
    recursive = aws(server, "s3", "ls", "--recursive", "s3://cli-walkthrough")
    assert "reports/report 1+1 ü.txt" in recursive
    target = tmp_path / "back.txt"
    aws(server, "s3", "cp", "s3://cli-walkthrough/reports/report 1+1 ü.txt", str(target))
    assert (
        hashlib.sha256(target.read_bytes()).digest() == hashlib.sha256(source.read_bytes()).digest()
    )
    url = aws(server, "s3", "presign", "s3://cli-walkthrough/reports/report 1+1 ü.txt").strip()
    fetched = httpx.get(url)
    assert fetched.status_code == 200, fetched.text
    assert fetched.content == source.read_bytes()
    head = aws(
        server, "s3api", "head-object", "--bucket", "cli-walkthrough",
        "--key", "reports/report 1+1 ü.txt",
    )  # fmt: skip
    assert hashlib.md5(source.read_bytes()).hexdigest() in head
    aws(server, "s3", "rm", "s3://cli-walkthrough/reports/report 1+1 ü.txt")
    assert aws(server, "s3", "ls", "--recursive", "s3://cli-walkthrough") == ""
    aws(server, "s3", "rb", "s3://cli-walkthrough")
    assert "cli-walkthrough" not in aws(server, "s3", "ls")
