"""The servers the comparison measures, each started here on loopback and stopped by PID:
s3facade (local backend, its defaults), moto in server mode (the Python peer), nginx from
Debian's package (static GET, PUT through its dav module: this machine's HTTP limit), and
s3facade in front of an upstream beside that upstream directly (moto, a real Ceph RGW)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

from bench.upstream_throughput import Store, free_port, moto, rgw, stop, wait_http
from tests.debian_packages import ensure_installed

FACADE_KEY, FACADE_SECRET = "bench-facade-key", "bench-facade-secret-0123456789"
UPSTREAM_BUCKET = "bench-upstream"
NGINX_CONF = """
{user}
worker_processes 1;
daemon off;
pid {root}/nginx.pid;
error_log {root}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    sendfile on;
    client_body_temp_path {root}/tmp;
    client_max_body_size 0;
    server {{
        listen 127.0.0.1:{port};
        root {root}/www;
        location / {{
            dav_methods PUT DELETE;
            create_full_put_path on;
        }}
    }}
}}
"""


@dataclass
class Target:
    """One server under test: where it answers, its credentials, and its process (for CPU
    and memory); `s3` False for nginx, which takes plain URLs."""

    name: str
    endpoint: str
    pid: int
    access_key: str = ""
    secret_key: str = ""
    s3: bool = True

    def client(self, **config: Any) -> Any:
        settings = {"max_pool_connections": 64, "read_timeout": 300, **config}
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name="us-east-1",
            config=Config(**settings),
        )

    def url(self, method: str, bucket: str, key: str) -> str:
        """A URL curl and wrk can use as is: presigned for S3, plain for nginx."""
        if not self.s3:
            return f"{self.endpoint}/{bucket}/{key}"
        operation = {"GET": "get_object", "PUT": "put_object"}[method]
        url: str = self.client().generate_presigned_url(
            operation, Params={"Bucket": bucket, "Key": key}, ExpiresIn=6 * 3600
        )
        return url

    def make_bucket(self, bucket: str) -> None:
        if self.s3:
            with suppress(Exception):  # moto and RGW keep buckets across targets' uses
                self.client().create_bucket(Bucket=bucket)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time so far of a process (all its threads) and of its children
    (nginx's workers), living or reaped."""
    return sum(cpu_times(pid))


def cpu_times(pid: int) -> tuple[float, float]:
    """User and system CPU time so far, as `cpu_seconds` counts them."""
    user = system = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # gone meanwhile
            continue
        if stat.parent.name == str(pid):
            user += int(fields[11]) + int(fields[13])  # utime, cutime
            system += int(fields[12]) + int(fields[14])  # stime, cstime
        elif fields[1] == str(pid):
            user += int(fields[11])
            system += int(fields[12])
    tick = os.sysconf("SC_CLK_TCK")
    return user / tick, system / tick


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _serve(workdir: Path, name: str, extra: list[str], env: dict[str, str]) -> Iterator[Target]:
    port = free_port()
    command = [sys.executable, "-m", "s3facade", "serve", "--port", str(port)]
    command += ["--data-dir", str(workdir / f"{name}-data"), *extra]
    log = (workdir / f"{name}.log").open("wb")  # the access log: a line per request, as served
    environment = {**os.environ, **env}
    environment |= {
        "S3FACADE_ACCESS_KEY_ID": FACADE_KEY,
        "S3FACADE_SECRET_ACCESS_KEY": FACADE_SECRET,
    }
    process = subprocess.Popen(command, env=environment, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_http(f"http://127.0.0.1:{port}/-/ready", "s3facade")
        yield Target(name, f"http://127.0.0.1:{port}", process.pid, FACADE_KEY, FACADE_SECRET)
    finally:
        stop(process)


@contextmanager
def s3facade(workdir: Path) -> Iterator[Target]:
    """On its embedded defaults: the local CAS (fsync'd), the DuckDB log, info-level logs."""
    yield from _serve(workdir, "s3facade", [], {})


@contextmanager
def s3facade_over(store: Store, workdir: Path, name: str) -> Iterator[Target]:
    direct = Target(f"{name}-direct", store.endpoint, 0, store.access_key, store.secret_key)
    direct.make_bucket(UPSTREAM_BUCKET)
    upstream = ["--upstream-endpoint", store.endpoint, "--upstream-bucket", UPSTREAM_BUCKET]
    upstream += ["--upstream-region", store.region, "--upstream-prefix", "bench/"]
    env = {
        "S3FACADE_UPSTREAM_ACCESS_KEY_ID": store.access_key,
        "S3FACADE_UPSTREAM_SECRET_ACCESS_KEY": store.secret_key,
    }
    yield from _serve(workdir, f"s3facade-over-{name}", upstream, env)


@contextmanager
def moto_server(workdir: Path) -> Iterator[Target]:
    with moto(workdir) as store:
        pid = _listener_pid(store.endpoint)
        yield Target("moto", store.endpoint, pid, store.access_key, store.secret_key)


@contextmanager
def rgw_server(workdir: Path) -> Iterator[Target]:
    with rgw(workdir) as store:
        yield Target("rgw", store.endpoint, 0, store.access_key, store.secret_key)


@contextmanager
def nginx(workdir: Path) -> Iterator[Target]:
    binary = ensure_installed("nginx")
    root = workdir / "nginx"
    for folder in ("www", "tmp"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    port = free_port()
    conf = root / "nginx.conf"
    # As root, nginx's workers would drop to `nobody`, who cannot write into a private dir.
    user = "user root;" if os.geteuid() == 0 else ""
    conf.write_text(NGINX_CONF.format(root=root, port=port, user=user))
    process = subprocess.Popen(
        [binary, "-c", str(conf), "-p", str(root)],
        stdout=subprocess.DEVNULL,
        stderr=(root / "stderr.log").open("wb"),
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/", "nginx")
        yield Target("nginx", f"http://127.0.0.1:{port}", process.pid, s3=False)
    finally:
        stop(process)


def store_of(target: Target) -> Store:
    return Store(target.endpoint, target.access_key, target.secret_key)


def _listener_pid(endpoint: str) -> int:
    """The process listening on the endpoint's port (moto_server's, started by a helper)."""
    port = endpoint.rsplit(":", 1)[1]
    found = subprocess.run(["ss", "-Hltnp", f"sport = :{port}"], capture_output=True, text=True)
    marker = "pid="
    at = found.stdout.find(marker)
    if at < 0:
        return 0
    return int(found.stdout[at + len(marker) :].split(",", 1)[0])
