"""Fixtures that run a real s3facade server (uvicorn, real sockets) for integration tests."""

from __future__ import annotations

import itertools
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest

ACCESS_KEY = "AKIDS3FACADETEST0001"
SECRET_KEY = "test-secret-key-0123456789abcdefghijklmnop"
REGION = "us-east-1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class RunningServer:
    """An `s3facade serve` child process on a free loopback port."""

    data_dir: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None
    extra_args: list[str] = field(default_factory=list)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> RunningServer:
        env = {
            **os.environ,
            "S3FACADE_ACCESS_KEY_ID": ACCESS_KEY,
            "S3FACADE_SECRET_ACCESS_KEY": SECRET_KEY,
        }
        self.log_path = self.data_dir.parent / f"server-{self.port}.log"
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [
                sys.executable, "-m", "s3facade", "serve",
                "--port", str(self.port), "--data-dir", str(self.data_dir),
                "--log-level", "warning", *self.extra_args,
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited: {self.log_path.read_text()}")
            try:
                if httpx.get(f"{self.endpoint}/-/health", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                time.sleep(0.05)
        raise RuntimeError("server did not become healthy in 30 s")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process is None:
            return
        os.kill(self.process.pid, sig)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait()
        self.process = None

    def client(self, **config: Any) -> Any:
        return s3_client(self.endpoint, **config)


def s3_client(endpoint: str, **config: Any) -> Any:
    """boto3 with its default settings (checksums, retries, addressing) unless told."""
    kwargs: dict[str, Any] = {}
    if config:
        from botocore.config import Config

        kwargs["config"] = Config(**config)
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        region_name=REGION,
        **kwargs,
    )


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    running = RunningServer(tmp_path_factory.mktemp("server") / "data").start()
    yield running
    running.stop()


@pytest.fixture
def s3(server: RunningServer) -> Any:
    return server.client()


_bucket_numbers = itertools.count()


@pytest.fixture
def bucket(s3: Any) -> str:
    name = f"test-{next(_bucket_numbers)}-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=name)
    return name
