"""Several gateways over one shared log (docs/scale-out.md), for the tests and the benchmark.

PostgreSQL comes from ../shared/services/postgres.sh (Debian's server, on loopback), the
lake's files and the objects' bytes from an S3 store (moto in server mode, or Ceph RGW).
Every gateway is an `s3facade serve` child process on its own port with its own data dir;
all of them share the catalog, the lake's data path and the upstream byte store.
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import RunningServer
from tests.upstream_services import REPO, Upstream, toml_value

POSTGRES_SH = Path(
    os.environ.get("S3FACADE_POSTGRES_SH", REPO.parent / "shared/services/postgres.sh")
)


@dataclass
class Postgres:
    """A throwaway PostgreSQL cluster from postgres.sh; `dsn` is libpq's."""

    directory: Path = field(
        default_factory=lambda: Path(tempfile.mkdtemp(prefix="s3facade-pg-")) / "cluster"
    )
    dsn: str = ""
    port: int = 0

    def start(self) -> Postgres:
        # As root the script runs the server as `postgres`, which must reach the directory.
        self.directory.parent.chmod(0o755)
        started = subprocess.run(
            [str(POSTGRES_SH), "start", str(self.directory)],
            capture_output=True,
            text=True,
            timeout=600,
        )
        if started.returncode != 0:
            raise RuntimeError(f"postgres.sh start failed: {started.stderr[-2000:]}")
        exports = dict(
            line.removeprefix("export ").split("=", 1)
            for line in started.stdout.splitlines()
            if line.startswith("export ")
        )
        self.dsn = shlex.split(exports["S3F_PG_DSN"])[0]
        self.port = int(shlex.split(exports["PGPORT"])[0])
        return self

    def stop(self) -> None:
        subprocess.run(
            [str(POSTGRES_SH), "stop", str(self.directory)], capture_output=True, timeout=120
        )

    def through(self, port: int) -> str:
        """The DSN with another port (a proxy in front of the server)."""
        return self.dsn.replace(f"port={self.port}", f"port={port}")


def _ready(gateway: RunningServer, timeout: float = 60) -> RunningServer:
    """Once its views caught up with the log (/-/ready)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if httpx.get(f"{gateway.endpoint}/-/ready", timeout=5).status_code == 200:
            return gateway
        time.sleep(0.05)
    raise RuntimeError(f"gateway {gateway.endpoint} not ready in {timeout} s")


@dataclass
class GatewayCluster:
    """N gateways of one deployment: one lake (a fresh catalog schema and data path), one
    byte store, one head-signing key (so each verifies the heads the others signed)."""

    root: Path
    store: Upstream
    catalog: str
    count: int = 2
    schema: str = field(default_factory=lambda: f"lake_{uuid.uuid4().hex[:10]}")
    poll_seconds: float = 0.05
    maintenance_seconds: float = 2.0  # often: compaction runs beside the tests' writes
    gateways: list[RunningServer] = field(default_factory=list)

    def config(self, index: int) -> Path:
        store = self.store.table(prefix=f"{self.schema}/bytes/")
        sections: dict[str, dict[str, Any]] = {
            "server": {
                "head_signing_key": str(self.root / "head-signing.key"),
                "gc_interval_seconds": 0,
            },
            "backends.store": store,
            "placement": {"default": "store"},
            "log": {
                "type": "ducklake",
                "catalog": self.catalog,
                "data_path": f"s3://{self.store.bucket}/{self.schema}/events/",
                "endpoint": self.store.endpoint,
                "gateway_id": f"gw{index + 1}",
                "metadata_schema": self.schema,
                "poll_seconds": self.poll_seconds,
                "maintenance_seconds": self.maintenance_seconds,
            },
        }
        path = self.root / f"gw{index + 1}.toml"
        lines = []
        for name, table in sections.items():
            lines.append(f"[{name}]")
            lines += [f"{key} = {toml_value(value)}" for key, value in table.items()]
        path.write_text("\n".join(lines) + "\n")
        return path

    def start(self) -> GatewayCluster:
        env = {
            "S3FACADE_LOG_ACCESS_KEY_ID": self.store.access_key,
            "S3FACADE_LOG_SECRET_ACCESS_KEY": self.store.secret_key,
        }
        for index in range(self.count):
            gateway = RunningServer(
                self.root / f"gw{index + 1}" / "data",
                extra_args=["--config", str(self.config(index))],
                env=env,
            )
            gateway.data_dir.parent.mkdir(parents=True, exist_ok=True)
            self.gateways.append(_ready(gateway.start()))
        return self

    def kill(self, index: int) -> None:
        self.gateways[index].stop(signal.SIGKILL)

    def restart(self, index: int) -> None:
        _ready(self.gateways[index].start())

    def stop(self) -> None:
        for gateway in self.gateways:
            gateway.stop()

    def clients(self) -> list[Any]:
        return [gateway.client() for gateway in self.gateways]
