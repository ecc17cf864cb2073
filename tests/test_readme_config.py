"""The README's complete configuration, as it stands: two users, an upstream (moto) with
scratch buckets on local disk, a retention policy and HTTPS. Only what must differ here is
replaced (endpoint, bucket, paths, port, a certificate made by the test)."""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
import tomllib
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
import pytest

from tests.conftest import ACCESS_KEY, SECRET_KEY, RunningServer
from tests.test_tls import self_signed
from tests.upstream_services import Upstream, free_port

README = Path(__file__).resolve().parent.parent / "README.md"


def readme_config() -> str:
    text = README.read_text()
    block = re.search(r"<!-- readme-config -->\n```toml\n(.*?)```", text, re.DOTALL)
    assert block is not None, "the README lost its complete configuration"
    return block.group(1)


def replaced(config: str, section: str, key: str, value: object) -> str:
    """`key = ...` of `[section]` set to `value`; the README's line must be there."""
    header = config.index(f"[{section}]\n")
    end = config.find("\n[", header + 1)
    end = len(config) if end < 0 else end
    line = re.compile(rf"^{re.escape(key)} = [^#\n]*", re.MULTILINE)
    shown = f'"{value}"' if isinstance(value, str | Path) else str(value)
    table, count = line.subn(f"{key} = {shown}", config[header:end])
    assert count == 1, f"{key} is not in the README's [{section}] once"
    return config[:header] + table + config[end:]


def s3facade(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "s3facade", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_readmes_complete_configuration_works(
    moto_upstream: Upstream, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cert, key = self_signed(tmp_path)
    port, prefix = free_port(), f"readme-{uuid.uuid4().hex[:8]}/"
    config = readme_config()
    users = tomllib.loads(config)["users"]
    for section, name, value in [
        ("server", "host", "127.0.0.1"),
        ("server", "port", port),
        ("server", "data_dir", tmp_path / "data"),
        ("server", "tls_cert", cert),
        ("server", "tls_key", key),
        ("backends.ceph", "endpoint", moto_upstream.endpoint),
        ("backends.ceph", "bucket", moto_upstream.bucket),
        ("backends.ceph", "prefix", prefix),
    ]:
        config = replaced(config, section, name, value)
    path = tmp_path / "s3facade.toml"
    path.write_text(config)
    monkeypatch.setenv("S3FACADE_UPSTREAM_ACCESS_KEY_ID", moto_upstream.access_key)
    monkeypatch.setenv("S3FACADE_UPSTREAM_SECRET_ACCESS_KEY", moto_upstream.secret_key)
    root = {"S3FACADE_ACCESS_KEY_ID": ACCESS_KEY, "S3FACADE_SECRET_ACCESS_KEY": SECRET_KEY}

    checked = s3facade(root, "config", "check", str(path))
    assert checked.returncode == 0, checked.stderr
    assert "[users.ci-release]" in checked.stdout and "[backends.ceph]" in checked.stdout
    for user in users.values():
        assert user["secret"] not in checked.stdout  # masked

    server = RunningServer(tmp_path / "data", port=port, extra_args=["--config", str(path)])
    server.ca_file = cert
    server.start()
    try:
        assert server.endpoint.startswith("https://")
        ci = boto3.client(
            "s3",
            endpoint_url=server.endpoint,
            verify=str(cert),
            aws_access_key_id="ci-release",
            aws_secret_access_key=users["ci-release"]["secret"],
            region_name="us-east-1",
        )
        ci.create_bucket(Bucket="releases-2026")
        ci.put_object(Bucket="releases-2026", Key="app.tar.gz", Body=b"release bytes")
        head = ci.head_object(Bucket="releases-2026", Key="app.tar.gz")
        assert head["ObjectLockMode"] == "GOVERNANCE"  # the [[retention]] policy
        until = head["ObjectLockRetainUntilDate"]
        assert abs(until - (datetime.now(UTC) + timedelta(days=365))) < timedelta(hours=1)
        ci.create_bucket(Bucket="scratch-tmp")
        ci.put_object(Bucket="scratch-tmp", Key="t", Body=b"scratch bytes")

        digest = hashlib.sha256(b"release bytes").hexdigest()
        assert f"{prefix}sha256/{digest[:2]}/{digest[2:4]}/{digest}" in moto_upstream.keys(prefix)
        scratch = hashlib.sha256(b"scratch bytes").hexdigest()
        assert (
            tmp_path / "data" / "blobs" / "sha256" / scratch[:2] / scratch[2:4] / scratch
        ).exists()
        assert not [k for k in moto_upstream.keys(prefix) if scratch in k]

        auditor = {
            "S3FACADE_ACCESS_KEY_ID": "auditor",
            "S3FACADE_SECRET_ACCESS_KEY": users["auditor"]["secret"],
            "AWS_CA_BUNDLE": str(cert),
        }
        log = s3facade(auditor, "log", "--endpoint", server.endpoint, "--bucket", "releases-2026")
        assert log.returncode == 0, log.stderr
        assert "ObjectWritten" in log.stdout and "ci-release" in log.stdout
        release = {**auditor, "S3FACADE_ACCESS_KEY_ID": "ci-release"}
        release["S3FACADE_SECRET_ACCESS_KEY"] = users["ci-release"]["secret"]
        refused = s3facade(release, "log", "--endpoint", server.endpoint)
        assert refused.returncode == 2 and "AccessDenied" in refused.stderr
        untrusted = {k: v for k, v in auditor.items() if k != "AWS_CA_BUNDLE"}
        unverified = s3facade(untrusted, "log", "--endpoint", server.endpoint)
        assert unverified.returncode == 2 and "CERTIFICATE_VERIFY_FAILED" in unverified.stderr
    finally:
        server.stop()
