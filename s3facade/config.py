"""Server settings: defaults, then the TOML config file, then command-line flags and env."""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from registry.access.principals import User

# The principal recorded for a request without credentials (never a configurable key).
ANONYMOUS = "anonymous"

# Used when S3FACADE_ACCESS_KEY_ID / S3FACADE_SECRET_ACCESS_KEY are unset: fixed, so the
# README's examples work, and announced loudly at start-up.
DEV_ACCESS_KEY_ID = "s3facade-dev"
DEV_SECRET_ACCESS_KEY = "s3facade-dev-secret-key-change-me"

# `serve --upstream-endpoint URL --upstream-bucket NAME`: one upstream backend with this id
# receives every bucket's bytes (credentials: S3FACADE_UPSTREAM_* env, see backends.catalog).
QUICK_START_BACKEND = "upstream"
UPSTREAM_FLAGS = ("upstream_endpoint", "upstream_bucket", "upstream_region", "upstream_prefix")


@dataclass(frozen=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 9000
    data_dir: Path = Path("./data")
    region: str = "us-east-1"
    base_domain: str | None = None  # enables virtual-hosted style: <bucket>.<base_domain>
    credentials: Mapping[str, str] = field(default_factory=dict)  # access key id -> secret
    dev_credentials: bool = False
    # Plain tables, turned into backends by backends.catalog (this layer builds no clients).
    backends: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # [backends.<id>]
    placement: Mapping[str, Any] = field(default_factory=dict)  # [placement]
    # [users.<access key id>] secret = "...", display_name = "...", admin = false,
    # bypass_governance = false. The root credentials (env or dev) are always admin and may
    # bypass governance.
    users: Mapping[str, User] = field(default_factory=dict)  # access key id -> user
    retention: tuple[Mapping[str, Any], ...] = ()  # [[retention]] policies, see registry
    lifecycle_interval_seconds: float = 3600.0
    gc_interval_seconds: float = 3600.0  # background blob gc; 0 turns it off
    test_clock: bool = False  # lets tests move the retention clock via the admin API
    # The admin SQL endpoint: each query runs in a sandboxed child process (registry.sql).
    sql_timeout_seconds: float = 30.0
    sql_memory_mib: int = 1024
    sql_threads: int = 1
    sql_concurrency: int = 2  # queries at once; more get 503 SlowDown
    # Connections (s3facade.connections): slow or idle clients cannot hold the server.
    header_timeout_seconds: float = 20.0  # from connect (or the previous response) to headers
    idle_timeout_seconds: float = 30.0  # keep-alive connection with no request
    body_timeout_seconds: float = 30.0  # longest pause while a request body arrives
    max_connections: int = 1000  # beyond: 503 SlowDown at once
    # Tamper evidence (registry.anchor, registry.heads).
    anchor_path: Path | None = None  # default <data_dir>.log-anchor, beside the data dir
    head_signing_key: Path | None = None  # default <data_dir>.head-signing.key, beside it
    head_signing_interval_seconds: float = 60.0
    head_trusted_keys: tuple[str, ...] = ()  # more Ed25519 public keys (hex) verify accepts
    checkpoint_wal_mib: int = 4  # checkpoint the DuckDB log once its WAL is this big
    # Integrity of stored bytes (registry.scrub) and free space (registry.space).
    scrub_interval_seconds: float = 86400.0  # a full pass at most this often; 0 turns it off
    scrub_mib_per_second: float = 16.0
    space_reserve_mib: int = 64

    @property
    def head_key_file(self) -> Path:
        # Outside the data dir, so one copied or stolen data dir does not carry the key.
        if self.head_signing_key is not None:
            return self.head_signing_key
        data_dir = self.data_dir.absolute()
        return data_dir.parent / f"{data_dir.name}.head-signing.key"

    @property
    def root_access_key_id(self) -> str:
        return next(iter(self.credentials))

    @property
    def admins(self) -> frozenset[str]:
        return frozenset(key for key, user in self.users.items() if user.admin)


def load_config(
    config_file: Path | None = None,
    overrides: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
) -> ServerConfig:
    env = os.environ if env is None else env
    config = ServerConfig()
    users: Mapping[str, Any] = {}
    if config_file is not None:
        with config_file.open("rb") as f:
            document = tomllib.load(f)
        config = _merge(config, document.get("server", {}))
        config = replace(
            config,
            backends=document.get("backends", {}),
            placement=document.get("placement", {}),
            retention=tuple(document.get("retention", ())),
        )
        users = document.get("users", {})
    given = {k: v for k, v in (overrides or {}).items() if v is not None}
    config = _quick_start_upstream(config, {k: given.pop(k) for k in UPSTREAM_FLAGS if k in given})
    config = _merge(config, given)
    access_key = env.get("S3FACADE_ACCESS_KEY_ID")
    secret = env.get("S3FACADE_SECRET_ACCESS_KEY")
    dev = not (access_key and secret)
    root_key = DEV_ACCESS_KEY_ID if dev else str(access_key)
    root_secret = DEV_SECRET_ACCESS_KEY if dev else str(secret)
    credentials = {root_key: root_secret}
    directory = {root_key: User(root_key, admin=True, bypass_governance=True)}
    for user_key, user in users.items():
        if user_key == ANONYMOUS:
            raise ValueError(f"[users.{ANONYMOUS}]: that name is kept for unsigned requests")
        credentials[user_key] = str(user["secret"])
        directory[user_key] = User(
            user_key,
            display_name=str(user.get("display_name", "")),
            admin=bool(user.get("admin")),
            bypass_governance=bool(user.get("bypass_governance")),
        )
    return replace(config, credentials=credentials, dev_credentials=dev, users=directory)


def _quick_start_upstream(config: ServerConfig, flags: Mapping[str, Any]) -> ServerConfig:
    """The upstream quick-start flags as a backend table, placed to receive every bucket."""
    if not flags:
        return config
    if "upstream_endpoint" not in flags or "upstream_bucket" not in flags:
        raise ValueError("--upstream-endpoint and --upstream-bucket must be given together")
    table = {"type": "s3", **{k.removeprefix("upstream_"): v for k, v in flags.items()}}
    backends = {**config.backends, QUICK_START_BACKEND: table}
    return replace(config, backends=backends, placement={"default": QUICK_START_BACKEND})


def _merge(config: ServerConfig, values: Mapping[str, Any]) -> ServerConfig:
    known = {
        "host",
        "port",
        "data_dir",
        "region",
        "base_domain",
        "lifecycle_interval_seconds",
        "gc_interval_seconds",
        "test_clock",
        "sql_timeout_seconds",
        "sql_memory_mib",
        "sql_threads",
        "sql_concurrency",
        "header_timeout_seconds",
        "idle_timeout_seconds",
        "body_timeout_seconds",
        "max_connections",
        "anchor_path",
        "head_signing_key",
        "head_signing_interval_seconds",
        "head_trusted_keys",
        "checkpoint_wal_mib",
        "scrub_interval_seconds",
        "scrub_mib_per_second",
        "space_reserve_mib",
    }
    unknown = set(values) - known
    if unknown:
        raise ValueError(f"unknown server settings: {', '.join(sorted(unknown))}")
    changes = dict(values)
    for name in ("data_dir", "anchor_path", "head_signing_key"):
        if name in changes:
            changes[name] = Path(changes[name])
    if "head_trusted_keys" in changes:
        changes["head_trusted_keys"] = tuple(str(k) for k in changes["head_trusted_keys"])
    if "port" in changes:
        changes["port"] = int(changes["port"])
    return replace(config, **changes)
