"""Idle and slow connections cannot hold the server (s3facade.connections).

Real servers with small limits from a config file, real sockets on loopback. Each test
would hang (and fail at its deadline) on a server that never closes such connections.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import resource
import selectors
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import botocore.exceptions
import pytest
import uvicorn

from s3facade.connections import ConnectionGate, protocol_for
from tests.conftest import ACCESS_KEY, SECRET_KEY, RunningServer
from tests.rawhttp import UNSIGNED_PAYLOAD, parse_raw, request_head, sign
from tests.upstream_services import free_port

QUICK = 1.0  # the header, idle and body timeouts of the `quick` server
HELD = 3.0  # the timeouts of servers whose connections a test holds while it asks
SLACK = 1.5  # scheduling on a shared machine


def start_server(tmp: Path, **server: float) -> RunningServer:
    config = tmp / "s3facade.toml"
    config.write_text("[server]\n" + "".join(f"{k} = {v}\n" for k, v in server.items()))
    return RunningServer(tmp / "data", extra_args=["--config", str(config)]).start()


def timeouts(seconds: float) -> dict[str, float]:
    return {
        "header_timeout_seconds": seconds,
        "idle_timeout_seconds": seconds,
        "body_timeout_seconds": seconds,
    }


@pytest.fixture(scope="module")
def quick(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    running = start_server(tmp_path_factory.mktemp("quick"), **timeouts(QUICK), max_connections=50)
    yield running
    running.stop()


def connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=10)


def read_until_closed(sock: socket.socket, deadline: float) -> tuple[bytes, float | None]:
    """What the server sends until it closes, and when it closed (None: still open at
    `deadline`)."""
    received = b""
    while (left := deadline - time.monotonic()) > 0:
        sock.settimeout(left)
        try:
            piece = sock.recv(65536)
        except TimeoutError:
            break
        except ConnectionResetError:
            return received, time.monotonic()
        if not piece:
            return received, time.monotonic()
        received += piece
    return received, None


def trickle(
    sock: socket.socket, data: bytes, interval: float, deadline: float
) -> tuple[bytes, float | None]:
    """Send `data` a byte every `interval` until the server closes (or `deadline`)."""
    received = b""
    for byte in data:
        try:
            sock.sendall(bytes([byte]))
        except (BrokenPipeError, ConnectionResetError):
            return received + read_until_closed(sock, time.monotonic() + 0.5)[0], time.monotonic()
        piece, closed = read_until_closed(sock, min(deadline, time.monotonic() + interval))
        received += piece
        if closed is not None or time.monotonic() >= deadline:
            return received, closed
    raise AssertionError("ran out of bytes to trickle")


def answered(socks: list[socket.socket], count: int, deadline: float) -> list[socket.socket]:
    """At least `count` of `socks` the server wrote to or closed (all that one select()
    reports, so possibly more), or fewer if `deadline` passes first."""
    ready: list[Any] = []
    with selectors.DefaultSelector() as selector:
        for sock in socks:
            selector.register(sock, selectors.EVENT_READ)
        while len(ready) < count and (left := deadline - time.monotonic()) > 0:
            for key, _ in selector.select(left):
                selector.unregister(key.fileobj)
                ready.append(key.fileobj)
    return ready


def all_closed(socks: list[socket.socket], deadline: float) -> bool:
    return all(read_until_closed(sock, deadline)[1] is not None for sock in socks)


def exists(s3: Any, bucket: str, key: str) -> bool:
    try:
        s3.head_object(Bucket=bucket, Key=key)
    except botocore.exceptions.ClientError as exc:
        assert exc.response["ResponseMetadata"]["HTTPStatusCode"] == 404
        return False
    return True


def log_events(server: RunningServer, bucket: str) -> list[dict[str, Any]]:
    env = {
        **os.environ,
        "S3FACADE_ACCESS_KEY_ID": ACCESS_KEY,
        "S3FACADE_SECRET_ACCESS_KEY": SECRET_KEY,
    }
    result = subprocess.run(
        [sys.executable, "-m", "s3facade", "log", "--endpoint", server.endpoint, "--bucket", bucket,
         "--json"],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    events: list[dict[str, Any]] = json.loads(result.stdout)["events"]
    return events


def upload_request(server: RunningServer, path: str, length: int) -> bytes:
    headers = sign(
        server.port, "PUT", path, headers={"Content-Length": str(length)}, payload=UNSIGNED_PAYLOAD
    )
    return request_head(server.port, "PUT", path, headers)


# --- timeouts ----------------------------------------------------------------------------


def test_idle_connections_are_closed(quick: RunningServer) -> None:
    opened = time.monotonic()
    socks = [connect(quick.port) for _ in range(20)]
    try:
        # Blank lines begin no request: a connection sending only those is idle too.
        _, blank_closed = trickle(socks[0], b"\r\n" * 100, 0.2, opened + QUICK + SLACK)
        closes = [read_until_closed(sock, opened + QUICK + SLACK)[1] for sock in socks[1:]]
    finally:
        for sock in socks:
            sock.close()
    assert blank_closed is not None, "a connection sending blank lines was held"
    closed_at = [closed for closed in closes if closed is not None]
    assert len(closed_at) == len(closes), "idle connections were held"
    assert min(closed_at) - opened >= QUICK * 0.8


# Before the trickle: nothing; a whole request and its answer; a request whose body the
# server reads, pipelined in one packet with the first byte of the trickled one.
BEFORE_THE_TRICKLE = {
    "fresh": b"",
    "keep-alive": b"GET /-/health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
    "pipelined": b"PUT /b/k HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 3\r\n\r\nabcG",
}


@pytest.mark.parametrize("before", BEFORE_THE_TRICKLE.values(), ids=BEFORE_THE_TRICKLE.keys())
def test_slowloris_headers_are_cut_off(quick: RunningServer, before: bytes) -> None:
    head = b"GET /-/health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Padding: " + b"a" * 1000
    with connect(quick.port) as sock:
        if before:
            sock.sendall(before)
            answer = b""
            while not answer.endswith((b"}", b"</Error>")):  # the JSON or XML body's end
                answer += sock.recv(65536)
            assert answer.startswith((b"HTTP/1.1 200 ", b"HTTP/1.1 404 "))
            head = head.removeprefix(b"G" if before.endswith(b"G") else b"")
        started = time.monotonic()
        received, closed = trickle(sock, head, 0.3, started + QUICK + SLACK + 2)
    assert closed is not None, "a request trickled a byte every 0.3 s was held"
    assert closed - started < QUICK + SLACK
    reply = parse_raw(received)
    assert reply is not None
    assert (reply.status, reply.code) == (400, "RequestTimeout")
    assert reply.headers["connection"] == "close"


def test_stalled_body_gets_request_timeout_and_nothing_is_stored(quick: RunningServer) -> None:
    s3 = quick.client()
    s3.create_bucket(Bucket="stalled")
    path = "/stalled/half"
    with connect(quick.port) as sock:
        sock.sendall(upload_request(quick, path, 1000) + b"x" * 500)
        sent = time.monotonic()
        received, closed = read_until_closed(sock, sent + QUICK + SLACK + 2)
    assert closed is not None, "a body that stopped half-way was waited for"
    assert QUICK * 0.8 <= closed - sent < QUICK + SLACK
    reply = parse_raw(received)
    assert reply is not None
    assert (reply.status, reply.code) == (400, "RequestTimeout")
    assert reply.field("Resource") == path
    assert reply.headers["connection"] == "close"
    assert not exists(s3, "stalled", "half")
    events = log_events(quick, "stalled")
    assert [e["type"] for e in events if e["key"] is None] == ["BucketCreated"]
    assert [e for e in events if e["key"] == "half"] == []
    assert not list((quick.data_dir / "blobs" / "tmp").glob("*"))  # no staging file left


def test_slow_steady_upload_succeeds(quick: RunningServer) -> None:
    """The body timeout bounds each pause, not the whole upload."""
    s3 = quick.client()
    s3.create_bucket(Bucket="steady")
    data = os.urandom(1 << 20)
    with connect(quick.port) as sock:
        started = time.monotonic()
        sock.sendall(upload_request(quick, "/steady/slow", len(data)))
        for offset in range(0, len(data), 64 << 10):
            time.sleep(0.2)
            sock.sendall(data[offset : offset + (64 << 10)])
        took = time.monotonic() - started
        received, _ = read_until_closed(sock, time.monotonic() + 5)
    assert took > 3 * QUICK
    reply = parse_raw(received)
    assert reply is not None and reply.status == 200, received
    assert s3.get_object(Bucket="steady", Key="slow")["Body"].read() == data


def test_keep_alive_clients_reconnect_across_the_idle_timeout(quick: RunningServer) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", quick.port, timeout=5)
    try:
        conn.request("GET", "/-/health")
        response = conn.getresponse()
        response.read()
        assert response.status == 200 and not response.will_close
        answered_at = time.monotonic()
        assert conn.sock is not None
        _, closed = read_until_closed(conn.sock, answered_at + QUICK + SLACK)
    finally:
        conn.close()
    assert closed is not None, "an idle keep-alive connection was held"
    assert closed - answered_at >= QUICK * 0.8
    s3 = quick.client()  # default retries, a pooled keep-alive connection
    s3.create_bucket(Bucket="pooled")
    s3.put_object(Bucket="pooled", Key="k", Body=b"one")
    time.sleep(QUICK + 0.5)  # the server has closed the pooled connection
    assert s3.get_object(Bucket="pooled", Key="k")["Body"].read() == b"one"
    time.sleep(QUICK + 0.5)
    s3.put_object(Bucket="pooled", Key="k", Body=b"two")
    assert s3.get_object(Bucket="pooled", Key="k")["Body"].read() == b"two"


# --- the connection cap ------------------------------------------------------------------


def test_connections_beyond_the_cap_get_slow_down(tmp_path: Path) -> None:
    server = start_server(tmp_path, **timeouts(HELD), max_connections=50)
    held = [connect(server.port) for _ in range(60)]
    try:
        refused = answered(held, 10, time.monotonic() + 5)
        assert len(refused) == 10, "connections beyond the cap got no answer"
        for sock in refused:
            reply = parse_raw(read_until_closed(sock, time.monotonic() + 5)[0])
            assert reply is not None
            assert (reply.status, reply.code) == (503, "SlowDown")
            assert reply.headers["connection"] == "close"
        client = server.client(retries={"total_max_attempts": 1}, connect_timeout=5, read_timeout=5)
        started = time.monotonic()
        with pytest.raises(botocore.exceptions.ClientError) as caught:
            client.list_buckets()
        refused_in = time.monotonic() - started
        assert caught.value.response["Error"]["Code"] == "SlowDown"
        assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 503
        assert refused_in < 1.0
        print(f"503 SlowDown for a connection beyond the cap in {refused_in * 1000:.0f} ms")
        assert all_closed(held, time.monotonic() + HELD + SLACK)
        client.create_bucket(Bucket="after")
        client.put_object(Bucket="after", Key="k", Body=b"served again")
        assert client.get_object(Bucket="after", Key="k")["Body"].read() == b"served again"
    finally:
        for sock in held:
            sock.close()
        server.stop()


def descriptor_limits(pid: int) -> tuple[int, int]:
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max open files"):
            soft, hard = line.split()[3:5]
            return int(soft), int(hard)
    raise AssertionError("no 'Max open files' line")


def test_eleven_hundred_idle_sockets_at_the_descriptor_limit(tmp_path: Path) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert hard >= 2048, f"this test needs a hard descriptor limit of 2048 or more, not {hard}"
    resource.setrlimit(resource.RLIMIT_NOFILE, (1024, hard))  # the server inherits it
    try:
        server = start_server(tmp_path, **timeouts(HELD), max_connections=900)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 4096)), hard))
    held: list[socket.socket] = []
    try:
        assert server.process is not None
        assert descriptor_limits(server.process.pid) == (hard, hard)
        pooled = server.client(retries={"total_max_attempts": 1}, connect_timeout=5, read_timeout=5)
        pooled.create_bucket(Bucket="crowded")  # its connection is admitted before the crowd
        held = [connect(server.port) for _ in range(1100)]
        # 1,100 + the pooled one over a cap of 900: at least 200 are refused at once (201
        # while the pooled connection is still open; one select() may report both).
        assert len(answered(held, 200, time.monotonic() + 10)) >= 200
        # An admitted connection keeps working: its upload needs a descriptor for the blob.
        pooled.put_object(Bucket="crowded", Key="k", Body=b"during the crowd")
        # A new one gets a clean S3 answer. Closed, reset or timed out is not a
        # ClientError, and fails the test.
        fresh = server.client(retries={"total_max_attempts": 1}, connect_timeout=5, read_timeout=5)
        try:
            assert fresh.get_object(Bucket="crowded", Key="k")["Body"].read() == b"during the crowd"
        except botocore.exceptions.ClientError as exc:
            assert exc.response["Error"]["Code"] == "SlowDown"
        assert all_closed(held, time.monotonic() + HELD + SLACK)
        fresh.put_object(Bucket="crowded", Key="k", Body=b"after the crowd")
        assert fresh.get_object(Bucket="crowded", Key="k")["Body"].read() == b"after the crowd"
    finally:
        for sock in held:
            sock.close()
        server.stop()


# --- flow control: only the client's silence counts ----------------------------------------

APP_PAUSE = 1.5  # the test app's pauses: three body timeouts
BODY_TIMEOUT = 0.5


class SlowApp:
    """An ASGI app that can pause before reading the body, and notes how each read ends."""

    def __init__(self) -> None:
        self.outcomes: list[str] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        size = 0
        pauses = 2 if scope["path"] == "/slow" else 0  # before the first two reads
        while True:
            if pauses:
                pauses -= 1
                await asyncio.sleep(APP_PAUSE)  # meanwhile uvicorn stops reading
            message = await receive()
            if message["type"] == "http.disconnect":
                self.outcomes.append("disconnect")
                return
            size += len(message["body"])
            if not message["more_body"]:
                break
        self.outcomes.append(f"read {size}")
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": str(size).encode()})


@pytest.fixture
def slow_app() -> Iterator[tuple[SlowApp, int]]:
    app = SlowApp()
    gate = ConnectionGate(
        header_timeout=5, idle_timeout=5, body_timeout=BODY_TIMEOUT, max_connections=10
    )
    port = free_port()
    config = uvicorn.Config(
        app, port=port, http=protocol_for(gate), ws="none", lifespan="off", log_config=None
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    yield app, port
    server.should_exit = True
    thread.join(10)


def test_a_slow_app_is_not_client_silence(slow_app: tuple[SlowApp, int]) -> None:
    app, port = slow_app
    body = b"x" * (1 << 20)  # far beyond what uvicorn buffers before it stops reading
    head = (
        "PUT /slow HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    with connect(port) as sock:
        sock.sendall(head.encode() + body)
        received, _ = read_until_closed(sock, time.monotonic() + 30)
    reply = parse_raw(received)
    assert reply is not None and (reply.status, reply.body) == (200, str(len(body)).encode())
    assert app.outcomes == [f"read {len(body)}"]


def test_the_app_sees_a_disconnect_when_the_body_stops(slow_app: tuple[SlowApp, int]) -> None:
    app, port = slow_app
    with connect(port) as sock:
        sock.sendall(b"PUT /fast HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100\r\n\r\nabc")
        received, closed = read_until_closed(sock, time.monotonic() + BODY_TIMEOUT + SLACK)
    reply = parse_raw(received)
    assert closed is not None and reply is not None
    assert (reply.status, reply.code) == (400, "RequestTimeout")
    deadline = time.monotonic() + 2
    while not app.outcomes and time.monotonic() < deadline:
        time.sleep(0.02)
    assert app.outcomes == ["disconnect"]
