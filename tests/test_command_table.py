"""One command table (s3facade.command_list) makes both the CLI and the admin API: every
command has its parser (help on every option, examples) and its route; offline and
`--endpoint` run the same code and print the same answer; bad input is refused alike; a
long command shows its progress on a terminal online too."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from s3facade.admin_client import AdminClient, AdminError
from s3facade.cli import build_parser
from s3facade.command_list import COMMANDS
from s3facade.command_progress import STREAM_TYPE
from tests.clients import cli, cli_json
from tests.conftest import ACCESS_KEY, SECRET_KEY, RunningServer


def subparser(words: list[str]) -> Any:
    parser: Any = build_parser()
    for word in words:
        actions = [a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction"]
        parser = actions[0].choices[word]
    return parser


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c.name)
def test_every_command_has_its_parser_with_help_and_examples(command: Any) -> None:
    parser = subparser(command.words)
    text = parser.format_help()
    assert command.examples and all(example in text for example in command.examples)
    for action in parser._actions:
        assert action.help, f"{command.name}: {action.dest} has no help"
    named = {o.lstrip("-") for a in parser._actions for o in a.option_strings}
    positional = {a.dest for a in parser._actions if not a.option_strings}
    for option in command.options:
        assert option.name in named or option.attribute in positional


def test_every_command_has_its_route(server: RunningServer) -> None:
    """Unsigned: refused as AccessDenied (the route exists); the wrong method: 405."""
    for command in COMMANDS:
        path = command.path + ("/b/k" if command.option("path") else "")
        answer = httpx.request(command.method, server.endpoint + path)
        assert (answer.status_code, answer.json()["error"]) == (403, "AccessDenied"), path
        other = "GET" if command.method == "POST" else "POST"
        assert httpx.request(other, server.endpoint + path).status_code == 405, path


def admin(server: RunningServer) -> AdminClient:
    return AdminClient(server.endpoint, credentials=(ACCESS_KEY, SECRET_KEY))


def test_bad_input_is_refused_alike_offline_and_online(
    server: RunningServer, tmp_path: Path
) -> None:
    cases = [
        (["log", "--limit", "abc"], "/-/admin/log", {"limit": "abc"}, "limit"),
        (["log", "--since", "yesterday"], "/-/admin/log", {"since": "yesterday"}, "since"),
        (["verify", "--head", "12"], "/-/admin/verify", {"head": "12"}, "head"),
    ]
    for argv, path, params, name in cases:
        offline = cli(*argv, "--data-dir", str(tmp_path / "none"), ok=False)
        assert offline.returncode == 2 and name in offline.stderr, offline.stderr
        assert "Traceback" not in offline.stderr
        method = next(c.method for c in COMMANDS if c.path == path)
        with pytest.raises(AdminError) as online:
            admin(server).json(method, path, params)
        assert (online.value.status, online.value.code) == (400, "InvalidArgument")
        assert name in str(online.value)
    with pytest.raises(AdminError) as unknown:
        admin(server).json("GET", "/-/admin/log", {"order": "newest"})
    assert (unknown.value.status, unknown.value.code) == (400, "InvalidArgument")


def comparable(data: Any) -> Any:
    """The answer without what differs between two runs of the same command: the clock,
    and the log position (a server appends its signed head as it stops)."""
    varying = ("now", "snapshot_seq")
    return {k: v for k, v in data.items() if k not in varying} if isinstance(data, dict) else data


def test_offline_and_online_answer_the_same(tmp_path: Path) -> None:
    running = RunningServer(tmp_path / "data").start()
    try:
        s3 = running.client()
        s3.create_bucket(Bucket="same")
        s3.put_object(
            Bucket="same", Key="a/b.txt", Body=b"one", Metadata={"source-commit": "9f3c2e1"}
        )
        s3.copy_object(Bucket="same", Key="c.txt", CopySource={"Bucket": "same", "Key": "a/b.txt"})
        s3.get_object(Bucket="same", Key="c.txt")["Body"].read()
        deadline = time.monotonic() + 10  # a read is recorded within the record lag
        while not admin(running).json("GET", "/-/provenance/same/c.txt")["reads"]:
            assert time.monotonic() < deadline, "the read was never recorded"
            time.sleep(0.1)
        questions = [
            ["provenance", "s3://same/a/b.txt"],
            ["provenance", "s3://same/c.txt"],
            ["retention", "s3://same/c.txt"],
            ["attest", "s3://same/c.txt"],
            ["log", "--bucket", "same", "--limit", "3", "--oldest"],
            ["sql", "SELECT bucket, key, size FROM objects ORDER BY key"],
            ["rebuild"],
            ["gc", "--dry-run"],
            ["lifecycle", "run", "--dry-run", "--bucket", "same"],
        ]
        online = [cli_json(*q, "--endpoint", running.endpoint) for q in questions]
    finally:
        running.stop()
    offline = [cli_json(*q, "--data-dir", str(running.data_dir)) for q in questions]
    for question, there, here in zip(questions, online, offline, strict=True):
        assert comparable(there) == comparable(here), question
    assert online[0]["current"]["data"]["attached"] == {"source_commit": "9f3c2e1"}
    assert [e["type"] for e in online[4]["events"]][:2] == ["BucketCreated", "ObjectWritten"]
    assert online[5]["rows"] == [["same", "a/b.txt", 3], ["same", "c.txt", 3]]
    assert online[6]["identical"] is True and online[7]["collected_count"] == 0


def test_progress_streams_as_json_lines(server: RunningServer) -> None:
    s3 = server.client()
    s3.create_bucket(Bucket="streamed")
    for n in range(5):
        s3.put_object(Bucket="streamed", Key=f"k{n}", Body=os.urandom(1000))
    lines: list[list[dict[str, Any]]] = []
    result = admin(server).stream("POST", "/-/admin/verify", None, b"", lines.append)
    assert result["ok"] is True
    assert lines, "no progress line"
    final = {task["description"]: task for task in lines[-1]}
    assert final["hash chain"]["completed"] == result["events_checked"]
    assert final["blob bytes"]["completed"] >= 5000 and result["blobs_checked"] >= 5
    plain = admin(server).json("POST", "/-/admin/verify")
    assert plain["events_checked"] >= result["events_checked"]  # a plain JSON answer still
    refused = httpx.post(
        f"{server.endpoint}/-/admin/verify", headers={"Accept": STREAM_TYPE}
    )  # unsigned: refused before anything streams
    assert refused.status_code == 403


def test_the_cli_shows_progress_on_a_terminal_online(server: RunningServer) -> None:
    """stderr on a terminal (a pty): the server's progress is drawn as bars."""
    leader, follower = pty.openpty()
    env = {
        **os.environ,
        "S3FACADE_ACCESS_KEY_ID": ACCESS_KEY,
        "S3FACADE_SECRET_ACCESS_KEY": SECRET_KEY,
        "TERM": "xterm",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "s3facade", "verify", "--endpoint", server.endpoint],
        env=env,
        stdout=subprocess.PIPE,
        stderr=follower,
    )
    os.close(follower)
    drawn = b""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        ready, _, _ = select.select([leader], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # the child closed its end
                break
            if not chunk:
                break
            drawn += chunk
        elif process.poll() is not None:
            break
    os.close(leader)
    out, _ = process.communicate(timeout=30)
    assert process.returncode == 0, drawn.decode(errors="replace")
    assert b"hash chain" in drawn and b"blob bytes" in drawn
    assert b"clean" in out and b"hash chain" not in out  # the bars stay off stdout


def test_json_answers_are_one_document(server: RunningServer) -> None:
    answer = cli("log", "--endpoint", server.endpoint, "--limit", "2", "--json").stdout
    assert len(json.loads(answer)["events"]) <= 2


def test_a_file_answer_never_streams_and_odd_paths_are_refused(server: RunningServer) -> None:
    """export answers its Parquet file even to a client asking for progress lines (which
    once got the file's name and kept the scratch dir); a key that is not UTF-8 is 400."""
    client = admin(server)
    exported = client.request("GET", "/-/admin/export")
    assert exported[:4] == b"PAR1"
    signed = AWSRequest(
        method="GET", url=f"{server.endpoint}/-/admin/export", headers={"Accept": STREAM_TYPE}
    )
    S3SigV4Auth(Credentials(ACCESS_KEY, SECRET_KEY), "s3", "us-east-1").add_auth(signed)
    streamed = httpx.get(signed.url, headers=dict(signed.headers.items()))
    assert streamed.status_code == 200 and streamed.content[:4] == b"PAR1"
    with pytest.raises(AdminError) as odd:
        client.json("GET", "/-/provenance/bucket/%FF%FE")
    assert (odd.value.status, odd.value.code) == (400, "InvalidURI")
