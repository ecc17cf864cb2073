"""Upstream S3 stores for the tests: moto in server mode, a real Ceph RGW, a fault proxy.

moto runs as a child process on a free loopback port and is stopped by its PID. Ceph RGW
comes from ../shared/services/rgw.sh (root and Debian's packages); when it cannot start,
every test that needs it is skipped with the reason, never passed.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shlex
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import boto3
import httpx
import pytest
from botocore.config import Config

from s3facade.backends.retry import RetryPolicy
from s3facade.backends.upstream import UpstreamCAS, UpstreamConfig

UPSTREAM_BUCKET = "s3facade-upstream"
REPO = Path(__file__).resolve().parent.parent
RGW_SH = Path(os.environ.get("S3FACADE_RGW_SH", REPO.parent / "shared/services/rgw.sh"))
MiB = 1 << 20


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class Upstream:
    """Where an upstream store answers, and how to reach it directly."""

    kind: str
    endpoint: str
    access_key: str
    secret_key: str
    region: str = "us-east-1"
    bucket: str = UPSTREAM_BUCKET

    def client(self) -> Any:
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name=self.region,
            config=Config(retries={"max_attempts": 2}),
        )

    def ensure_bucket(self) -> None:
        client = self.client()
        try:
            client.head_bucket(Bucket=self.bucket)
        except client.exceptions.ClientError:
            client.create_bucket(Bucket=self.bucket)

    def table(self, **extra: Any) -> dict[str, Any]:
        """A `[backends.<id>]` table for this store."""
        return {
            "type": "s3",
            "endpoint": self.endpoint,
            "bucket": self.bucket,
            "region": self.region,
            "access_key_id": self.access_key,
            "secret_access_key": self.secret_key,
            **extra,
        }

    def backend(self, prefix: str | None = None, **overrides: Any) -> UpstreamCAS:
        """A backend on a fresh key prefix, with small parts and a short retry budget."""
        settings: dict[str, Any] = {
            "prefix": prefix if prefix is not None else f"t-{uuid.uuid4().hex[:12]}/",
            "part_size": 5 * MiB,
            "upload_concurrency": 2,
            "timeout": 10.0,
            "retry": RetryPolicy(base_delay=0.01, max_delay=0.2, deadline=5.0),
        }
        settings.update(overrides)
        config = UpstreamConfig(
            self.endpoint, self.bucket, self.access_key, self.secret_key, **settings
        )
        return UpstreamCAS(config, f"{self.kind}-test")

    def keys(self, prefix: str) -> list[str]:
        paginator = self.client().get_paginator("list_objects_v2")
        pages = paginator.paginate(Bucket=self.bucket, Prefix=prefix)
        return sorted(o["Key"] for page in pages for o in page.get("Contents", []))

    def uploads(self, prefix: str) -> list[str]:
        listed = self.client().list_multipart_uploads(Bucket=self.bucket, Prefix=prefix)
        return sorted(u["Key"] for u in listed.get("Uploads", []))


@dataclass
class MotoServer:
    """`moto_server` as a child process; stop() and start() again keep the port."""

    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None

    @property
    def upstream(self) -> Upstream:
        return Upstream("moto", f"http://127.0.0.1:{self.port}", "moto-key", "moto-secret")

    def start(self) -> MotoServer:
        executable = Path(sys.executable).parent / "moto_server"
        log = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        self.process = subprocess.Popen(
            [str(executable), "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"moto_server exited with {self.process.returncode}")
            try:
                httpx.get(f"{self.upstream.endpoint}/moto-api/", timeout=1)
            except httpx.TransportError:
                time.sleep(0.05)
                continue
            self.upstream.ensure_bucket()  # moto keeps nothing across restarts
            return self
        raise RuntimeError("moto_server did not answer in 30 s")

    def stop(self, sig: int = signal.SIGKILL) -> None:
        if self.process is None:
            return
        os.kill(self.process.pid, sig)
        self.process.wait(timeout=20)
        self.process = None


@dataclass
class RgwCluster:
    """A Ceph cluster from rgw.sh under `directory`; its radosgw can be killed and restarted."""

    directory: Path
    upstream: Upstream | None = None

    def start(self) -> RgwCluster:
        if not RGW_SH.exists():
            pytest.skip(f"Ceph RGW: {RGW_SH} not found (set S3FACADE_RGW_SH)")
        env = {**os.environ, "RGW_OSD_STORE": os.environ.get("S3FACADE_TEST_RGW_STORE", "memstore")}
        try:
            started = subprocess.run(
                [str(RGW_SH), "start", str(self.directory)],
                capture_output=True,
                text=True,
                env=env,
                timeout=600,
            )
        except subprocess.TimeoutExpired:
            self.stop()
            pytest.skip("Ceph RGW did not start within 10 minutes")
        if started.returncode != 0:
            tail = " | ".join(started.stderr.strip().splitlines()[-4:])
            pytest.skip(f"Ceph RGW could not start (rgw.sh exit {started.returncode}): {tail}")
        exports = dict(
            line.removeprefix("export ").split("=", 1)
            for line in started.stdout.splitlines()
            if line.startswith("export ")
        )
        self.upstream = Upstream(
            "rgw",
            shlex.split(exports["AWS_ENDPOINT_URL"])[0],
            shlex.split(exports["AWS_ACCESS_KEY_ID"])[0],
            shlex.split(exports["AWS_SECRET_ACCESS_KEY"])[0],
            shlex.split(exports.get("AWS_DEFAULT_REGION", "us-east-1"))[0],
        )
        self.upstream.ensure_bucket()
        return self

    def stop(self) -> None:
        subprocess.run([str(RGW_SH), "stop", str(self.directory)], capture_output=True, timeout=120)

    @property
    def _pid_file(self) -> Path:
        return self.directory / "run" / "client.rgw.pid"

    def gateway_pid(self) -> int:
        """radosgw's PID: from its pid file, else the process started with our ceph.conf."""
        if self._pid_file.exists():
            return int(self._pid_file.read_text().strip())
        conf = str(self.directory / "ceph.conf").encode()
        for proc in Path("/proc").iterdir():
            try:
                argv = (proc / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if argv and argv[0].endswith(b"radosgw") and conf in argv:
                return int(proc.name)
        raise RuntimeError(f"no radosgw of {self.directory} is running")

    def kill_gateway(self) -> None:
        """SIGKILL the radosgw daemon (mon and OSD keep the data)."""
        pid = self.gateway_pid()
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and Path(f"/proc/{pid}").exists():
            time.sleep(0.05)

    def start_gateway(self) -> None:
        """Start radosgw again as rgw.sh does, and wait until it answers."""
        conf = self.directory / "ceph.conf"
        subprocess.run(["radosgw", "-c", str(conf), "-n", "client.rgw"], check=True, timeout=60)
        assert self.upstream is not None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                httpx.get(self.upstream.endpoint, timeout=1)
                return
            except httpx.TransportError:
                time.sleep(0.1)
        raise RuntimeError("radosgw did not come back in 60 s")


@pytest.fixture(scope="session")
def moto_upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Upstream]:
    moto = MotoServer(log_path=tmp_path_factory.mktemp("moto") / "moto.log").start()
    yield moto.upstream
    moto.stop(signal.SIGTERM)


@pytest.fixture(scope="session")
def rgw_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RgwCluster]:
    cluster = RgwCluster(tmp_path_factory.mktemp("rgw") / "cluster").start()
    yield cluster
    cluster.stop()


@pytest.fixture(scope="session")
def rgw_upstream(rgw_cluster: RgwCluster) -> Upstream:
    assert rgw_cluster.upstream is not None
    return rgw_cluster.upstream


def toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return str(v)
    return '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'


def config_file(path: Path, backends: dict[str, dict[str, Any]], placement: dict[str, Any]) -> Path:
    """Write a TOML config with these `[backends.<id>]` tables and `[placement]`."""
    value = toml_value
    lines: list[str] = []
    for backend_id, table in backends.items():
        lines.append(f"[backends.{backend_id}]")
        lines += [f"{k} = {value(v)}" for k, v in table.items()]
    lines.append("[placement]")
    lines += [f"{k} = {value(v)}" for k, v in placement.items() if k != "buckets"]
    if placement.get("buckets"):
        lines.append("[placement.buckets]")
        lines += [f"{value(k)} = {value(v)}" for k, v in placement["buckets"].items()]
    path.write_text("\n".join(lines) + "\n")
    return path


FaultKind = Literal["reset", "503", "hang"]
_SLOWDOWN = (
    b"HTTP/1.1 503 Slow Down\r\nContent-Type: application/xml\r\nContent-Length: 79\r\n"
    b"Connection: close\r\n\r\n"
    b"<Error><Code>SlowDown</Code><Message>Please reduce your rate.</Message></Error>"
)


@dataclass
class Fault:
    kind: FaultKind
    direction: Literal["up", "down"] = "up"  # up: towards the store, down: back from it
    after_bytes: int = 0  # bytes forwarded that way (since injected) before it strikes
    times: int = 1  # how many connections it strikes; -1: until cleared
    forwarded: int = 0


class FaultProxy:
    """A TCP proxy in front of a store whose behaviour a test switches at will.

    `inject(Fault(...))` makes connections fail: "reset" cuts them with a TCP RST,
    "503" answers SlowDown and closes, "hang" stops forwarding. `refuse()` closes the
    listening socket (connection refused, as a stopped store); `accept()` listens again.
    """

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = free_port()
        self.fault: Fault | None = None
        self.strikes = 0
        self.bytes_down = 0
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.Server | None = None
        self._release = asyncio.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self.accept()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(10)

    def accept(self) -> None:
        async def listen() -> None:
            self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)

        self._call(listen())

    def refuse(self) -> None:
        async def close() -> None:
            if self._server is not None:
                self._server.close()
                self._server = None

        self._call(close())
        self.inject(Fault("reset", times=-1))  # and cut the connections already open

    def inject(self, fault: Fault | None) -> None:
        with self._lock:
            self.fault = fault
        if fault is None:
            self._loop.call_soon_threadsafe(self._release.set)

    def clear(self) -> None:
        self.inject(None)

    def close(self) -> None:
        self.refuse()

        async def cancel_connections() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        self._call(cancel_connections())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()

    def _strike(self, direction: str, size: int) -> FaultKind | None:
        with self._lock:
            fault = self.fault
            if fault is None or fault.direction != direction:
                return None
            fault.forwarded += size
            if fault.forwarded <= fault.after_bytes:
                return None
            self.strikes += 1
            if fault.times > 0:
                fault.times -= 1
                if fault.times == 0:
                    self.fault = None
            return fault.kind

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            _reset(writer)
            return
        await asyncio.gather(
            self._pump(reader, up_writer, writer, up_writer, "up"),
            self._pump(up_reader, writer, writer, up_writer, "down"),
        )

    async def _pump(
        self,
        src: asyncio.StreamReader,
        dst: asyncio.StreamWriter,
        client: asyncio.StreamWriter,
        store: asyncio.StreamWriter,
        direction: str,
    ) -> None:
        try:
            while data := await src.read(65536):
                kind = self._strike(direction, len(data))
                if kind == "hang":
                    self._release.clear()
                    await self._release.wait()
                elif kind == "503":
                    client.write(_SLOWDOWN)
                    await client.drain()
                    client.close()
                    _reset(store)
                    return
                elif kind == "reset":
                    _reset(client)
                    _reset(store)
                    return
                if direction == "down":
                    self.bytes_down += len(data)
                dst.write(data)
                await dst.drain()
            # One side closed: close both, as a peer that hangs up would. (A half-close
            # would leave a client sending on a pooled connection nobody answers.)
            client.close()
            store.close()
        except (OSError, RuntimeError):
            _reset(client)
            _reset(store)


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with a TCP RST (SO_LINGER 0), as a crashed peer or a middlebox would."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()
