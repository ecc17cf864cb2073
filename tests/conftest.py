"""Fixtures that run a real s3facade server (uvicorn, real sockets) for integration tests."""

from __future__ import annotations

import itertools
import os
import signal
import ssl
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

from tests.upstream_services import (  # noqa: F401 - fixtures, used by name
    config_file,
    free_port,
    moto_upstream,
    rgw_cluster,
    rgw_upstream,
)

# The access-control suites' fixture (`users`: a server with two plain users).
pytest_plugins = ("tests.access_server",)

ACCESS_KEY = "AKIDS3FACADETEST0001"
SECRET_KEY = "test-secret-key-0123456789abcdefghijklmnop"
REGION = "us-east-1"


@dataclass
class RunningServer:
    """An `s3facade serve` child process on a free loopback port."""

    data_dir: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None
    extra_args: list[str] = field(default_factory=list)
    ca_file: Path | None = None  # set: the server speaks HTTPS with a certificate it signed
    env: dict[str, str] = field(default_factory=dict)  # more environment for the server

    @property
    def endpoint(self) -> str:
        scheme = "https" if self.ca_file is not None else "http"
        return f"{scheme}://127.0.0.1:{self.port}"

    def start(self) -> RunningServer:
        env = {
            **os.environ,
            "S3FACADE_ACCESS_KEY_ID": ACCESS_KEY,
            "S3FACADE_SECRET_ACCESS_KEY": SECRET_KEY,
            **self.env,
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
                verify: ssl.SSLContext | bool = True
                if self.ca_file is not None:
                    verify = ssl.create_default_context(cafile=str(self.ca_file))
                health = httpx.get(f"{self.endpoint}/-/health", timeout=1, verify=verify)
                if health.status_code == 200:
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
        return s3_client(self.endpoint, ca_file=self.ca_file, **config)


def s3_client(endpoint: str, ca_file: Path | None = None, **config: Any) -> Any:
    """boto3 with its default settings (checksums, retries, addressing) unless told."""
    kwargs: dict[str, Any] = {}
    if ca_file is not None:
        kwargs["verify"] = str(ca_file)
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


# These suites also run with the bytes on an upstream store (moto in server mode, a real
# Ceph RGW): a representative subset, so CI stays short. Other suites use "local" only.
UPSTREAM_SUITES = frozenset({"test_objects", "test_multipart", "test_listing"})
BACKEND_KINDS = ("local", "moto", "rgw")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    suite = metafunc.module.__name__.rsplit(".", 1)[-1]
    if "server" in metafunc.fixturenames and suite in UPSTREAM_SUITES:
        metafunc.parametrize("server", BACKEND_KINDS, indirect=True, scope="session")


@pytest.fixture(scope="session")
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    kind = getattr(request, "param", "local")
    extra_args: list[str] = []
    if kind != "local":  # every bucket's bytes on the upstream, under a prefix of its own
        upstream = request.getfixturevalue(f"{kind}_upstream")
        table = upstream.table(prefix=f"server-{uuid.uuid4().hex[:8]}/")
        path = tmp_path_factory.mktemp(f"config-{kind}") / "s3facade.toml"
        extra_args = ["--config", str(config_file(path, {kind: table}, {"default": kind}))]
    name = "server" if kind == "local" else f"server-{kind}"
    running = RunningServer(tmp_path_factory.mktemp(name) / "data", extra_args=extra_args).start()
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
