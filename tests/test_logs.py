"""What the server logs: one access line per request at the default level, as JSON lines
(`--log-format json`) or readable text, every line with its UTC time."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import ACCESS_KEY, RunningServer


def started(root: Path, *args: str) -> RunningServer:
    return RunningServer(root / "data", extra_args=["--log-level", "info", *args]).start()


@pytest.fixture(scope="module")
def json_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    server = started(tmp_path_factory.mktemp("json-log"), "--log-format", "json")
    yield server
    server.stop()


def access_lines(server: RunningServer, request_id: str) -> list[dict[str, Any]]:
    assert server.log_path is not None
    deadline = time.monotonic() + 5
    while True:  # the line is written once the answer went out
        lines = [json.loads(line) for line in server.log_path.read_text().splitlines()
                 if line.startswith("{")]  # fmt: skip
        found = [line for line in lines if line.get("request_id") == request_id]
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def test_each_request_is_one_json_line(json_server: RunningServer) -> None:
    s3 = json_server.client()
    s3.create_bucket(Bucket="logged")
    put = s3.put_object(Bucket="logged", Key="dir/k", Body=b"x" * 1000)
    [line] = access_lines(json_server, put["ResponseMetadata"]["RequestId"])
    assert line["logger"] == "s3facade.access" and line["level"] == "info"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", line["time"])
    assert (line["operation"], line["bucket"], line["key"], line["status"]) == (
        "PutObject", "logged", "dir/k", 200,
    )  # fmt: skip
    assert line["principal"] == ACCESS_KEY
    assert line["bytes_in"] >= 1000 and line["error"] == "" and line["ms"] > 0
    assert "Boto3" in line["user_agent"] or "botocore" in line["user_agent"]
    got = s3.get_object(Bucket="logged", Key="dir/k")
    got["Body"].read()
    [read] = access_lines(json_server, got["ResponseMetadata"]["RequestId"])
    assert (read["operation"], read["bytes_out"]) == ("GetObject", 1000)
    refused = httpx.get(f"{json_server.endpoint}/logged/dir/k")  # anonymous
    [denied] = access_lines(json_server, refused.headers["x-amz-request-id"])
    assert (denied["principal"], denied["status"], denied["error"]) == (
        "anonymous", 403, "AccessDenied",
    )  # fmt: skip
    assert denied["bytes_out"] == len(refused.content)


def test_text_lines_have_times_and_fields(tmp_path: Path) -> None:
    server = started(tmp_path)
    try:
        forged = "k%0A2026-01-01T00:00:00.000Z"  # a newline, then what starts a line
        httpx.get(f"{server.endpoint}/no-such-bucket/{forged}")
        missing = httpx.get(f"{server.endpoint}/no-such-bucket/k")
        request_id = missing.headers["x-amz-request-id"]
        assert server.log_path is not None
        deadline = time.monotonic() + 5
        while request_id not in server.log_path.read_text() and time.monotonic() < deadline:
            time.sleep(0.05)
        [line] = [x for x in server.log_path.read_text().splitlines() if request_id in x]
    finally:
        server.stop()
    assert re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z INFO s3facade.access: ", line)
    for field in ("operation=GetObject", "bucket=no-such-bucket", "status=404",
                  "error=NoSuchBucket", "principal=anonymous"):  # fmt: skip
        assert field in line, line
    # A key with a newline stays inside its own line, quoted.
    assert server.log_path is not None
    logged = server.log_path.read_text().splitlines()
    assert not any(x.startswith("2026-01-01T00:00:00.000Z") for x in logged)
    assert any('key="k\\n2026-01-01' in x for x in logged), logged[-5:]


def test_a_form_upload_is_logged_as_its_signer(json_server: RunningServer) -> None:
    s3 = json_server.client()
    s3.create_bucket(Bucket="forms")
    form = s3.generate_presigned_post(Bucket="forms", Key="f")
    reply = httpx.post(form["url"], data=form["fields"], files={"file": ("f", b"form body")})
    assert reply.status_code == 204, reply.text
    [line] = access_lines(json_server, reply.headers["x-amz-request-id"])
    assert (line["principal"], line["operation"], line["bucket"]) == (
        ACCESS_KEY, "PostObject", "forms",
    )  # fmt: skip
