"""Server settings: defaults, then the TOML config file, then command-line flags and env."""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

# Used when S3FACADE_ACCESS_KEY_ID / S3FACADE_SECRET_ACCESS_KEY are unset: fixed, so the
# README's examples work, and announced loudly at start-up.
DEV_ACCESS_KEY_ID = "s3facade-dev"
DEV_SECRET_ACCESS_KEY = "s3facade-dev-secret-key-change-me"


@dataclass(frozen=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 9000
    data_dir: Path = Path("./data")
    region: str = "us-east-1"
    base_domain: str | None = None  # enables virtual-hosted style: <bucket>.<base_domain>
    credentials: Mapping[str, str] = field(default_factory=dict)  # access key id -> secret
    dev_credentials: bool = False

    @property
    def root_access_key_id(self) -> str:
        return next(iter(self.credentials))


def load_config(
    config_file: Path | None = None,
    overrides: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
) -> ServerConfig:
    env = os.environ if env is None else env
    config = ServerConfig()
    if config_file is not None:
        with config_file.open("rb") as f:
            server = tomllib.load(f).get("server", {})
        config = _merge(config, server)
    config = _merge(config, {k: v for k, v in (overrides or {}).items() if v is not None})
    access_key = env.get("S3FACADE_ACCESS_KEY_ID")
    secret = env.get("S3FACADE_SECRET_ACCESS_KEY")
    if access_key and secret:
        return replace(config, credentials={access_key: secret}, dev_credentials=False)
    return replace(
        config, credentials={DEV_ACCESS_KEY_ID: DEV_SECRET_ACCESS_KEY}, dev_credentials=True
    )


def _merge(config: ServerConfig, values: Mapping[str, Any]) -> ServerConfig:
    known = {"host", "port", "data_dir", "region", "base_domain"}
    unknown = set(values) - known
    if unknown:
        raise ValueError(f"unknown server settings: {', '.join(sorted(unknown))}")
    changes = dict(values)
    if "data_dir" in changes:
        changes["data_dir"] = Path(changes["data_dir"])
    if "port" in changes:
        changes["port"] = int(changes["port"])
    return replace(config, **changes)
