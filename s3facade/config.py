"""Server settings: defaults, then the TOML config file, then command-line flags and env."""

from __future__ import annotations

import ipaddress
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from s3facade.config_values import (
    LAKE_REQUIRED,
    LOG_KEYS,
    MIN_SECRET_LENGTH,
    SECTIONS,
    SERVER_KEYS,
    USER_KEYS,
    ConfigInvalid,
    Source,
    checked,
    from_environment,
)
from s3facade.registry.access.principals import User

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
    log_format: str = "text"  # or "json": one object per line (s3facade.access_log)
    # [log]: the DuckDB file in the data dir (default), or a DuckLake several gateways
    # share (docs/scale-out.md). Plain values, turned into the store by s3facade.workspace.
    log: Mapping[str, Any] = field(default_factory=dict)
    # HTTPS: a PEM certificate (chain) and its private key; both or neither.
    tls_cert: Path | None = None
    tls_key: Path | None = None

    @property
    def scheme(self) -> str:
        return "https" if self.tls_cert is not None else "http"

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
    """Defaults, then the TOML file (`config_file`, else S3FACADE_CONFIG), then the
    S3FACADE_<KEY> environment twins of its [server] keys, then `overrides` (flags). Every
    value is checked (ConfigInvalid names the file, line and key)."""
    env = os.environ if env is None else env
    if config_file is None and env.get("S3FACADE_CONFIG"):
        config_file = Path(env["S3FACADE_CONFIG"])
    document, source = _read(config_file)
    config = replace(
        ServerConfig(),
        **checked(document.get("server", {}), SERVER_KEYS, "server", source),
        backends=_table(document, "backends", source),
        placement=_table(document, "placement", source),
        retention=tuple(document.get("retention", ())),
        log=_log_table(document, source, env),
    )
    config = replace(config, **from_environment(env))
    given = {k: v for k, v in (overrides or {}).items() if v is not None}
    config = _quick_start_upstream(config, {k: given.pop(k) for k in UPSTREAM_FLAGS if k in given})
    flags = Source("command line")
    config = replace(config, **checked(given, SERVER_KEYS, "server", flags))
    credentials, directory, dev = _root_user(env)
    for user_key, user in _table(document, "users", source).items():
        table = f"users.{user_key}"
        if user_key == ANONYMOUS:
            raise ConfigInvalid(source.error("that name is kept for unsigned requests", table))
        if not isinstance(user, Mapping):
            raise ConfigInvalid(source.error("expected a table", table))
        values = checked(user, USER_KEYS, table, source)
        if "secret" not in values:
            raise ConfigInvalid(source.error("a user needs a secret", table))
        if len(values["secret"]) < MIN_SECRET_LENGTH:
            message = f"a secret needs at least {MIN_SECRET_LENGTH} characters"
            raise ConfigInvalid(source.error(message, table, "secret"))
        credentials[user_key] = values["secret"]
        directory[user_key] = User(
            user_key,
            display_name=values.get("display_name", ""),
            admin=values.get("admin", False),
            bypass_governance=values.get("bypass_governance", False),
        )
    return replace(config, credentials=credentials, dev_credentials=dev, users=directory)


def _read(config_file: Path | None) -> tuple[dict[str, Any], Source]:
    if config_file is None:
        return {}, Source("defaults")
    try:
        text = config_file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigInvalid(f"{config_file}: cannot be read: {exc}") from None
    source = Source(str(config_file), text)
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigInvalid(f"{config_file}: not valid TOML: {exc}") from None
    for section in document:
        if section not in SECTIONS:
            known = ", ".join(sorted(SECTIONS))
            raise ConfigInvalid(source.error(f"unknown section (known: {known})", section))
    return document, source


def _table(document: Mapping[str, Any], section: str, source: Source) -> dict[str, Any]:
    value = document.get(section, {})
    if not isinstance(value, dict):
        raise ConfigInvalid(source.error("expected a table", section))
    return value


def _log_table(
    document: Mapping[str, Any], source: Source, env: Mapping[str, str]
) -> dict[str, Any]:
    values = checked(_table(document, "log", source), LOG_KEYS, "log", source)
    if values.get("type", "duckdb") == "duckdb":
        if set(values) - {"type"}:
            raise ConfigInvalid(source.error('settings for type = "ducklake" only', "log"))
        return values
    for key in LAKE_REQUIRED:
        if key not in values:
            raise ConfigInvalid(source.error(f"a ducklake log needs {key}", "log"))
    for key in ("access_key_id", "secret_access_key"):
        name = f"S3FACADE_LOG_{key.upper()}"
        if not env.get(name):
            raise ConfigInvalid(f"a ducklake log needs {name} in the environment")
        values[key] = env[name]
    return values


def _root_user(env: Mapping[str, str]) -> tuple[dict[str, str], dict[str, User], bool]:
    """The root credentials from the environment (both or neither; neither: the development
    keys, which `serve` allows only on loopback)."""
    access_key = env.get("S3FACADE_ACCESS_KEY_ID")
    secret = env.get("S3FACADE_SECRET_ACCESS_KEY")
    if bool(access_key) != bool(secret):
        raise ConfigInvalid(
            "set both S3FACADE_ACCESS_KEY_ID and S3FACADE_SECRET_ACCESS_KEY, or neither (then "
            "the development keys are used, on loopback only)"
        )
    if secret and len(secret) < MIN_SECRET_LENGTH:
        raise ConfigInvalid(
            f"S3FACADE_SECRET_ACCESS_KEY needs at least {MIN_SECRET_LENGTH} characters"
        )
    dev = not access_key
    root_key = DEV_ACCESS_KEY_ID if dev else str(access_key)
    root_secret = DEV_SECRET_ACCESS_KEY if dev else str(secret)
    root = User(root_key, admin=True, bypass_governance=True)
    return {root_key: root_secret}, {root_key: root}, dev


def check_serving(config: ServerConfig) -> None:
    """What only serving requires: the development keys are published, so they may only
    guard a server that listens on loopback; TLS needs its certificate and key, readable."""
    if (config.tls_cert is None) != (config.tls_key is None):
        raise ConfigInvalid("set both tls_cert and tls_key (--tls-cert, --tls-key), or neither")
    for path in (config.tls_cert, config.tls_key):
        if path is not None and not path.is_file():
            raise ConfigInvalid(f"TLS: {path} is not a readable file")
    if config.dev_credentials and not _loopback(config.host):
        raise ConfigInvalid(
            f"refusing to serve on {config.host} with the development credentials: set "
            "S3FACADE_ACCESS_KEY_ID and S3FACADE_SECRET_ACCESS_KEY"
        )


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _quick_start_upstream(config: ServerConfig, flags: Mapping[str, Any]) -> ServerConfig:
    """The upstream quick-start flags as a backend table, placed to receive every bucket."""
    if not flags:
        return config
    if "upstream_endpoint" not in flags or "upstream_bucket" not in flags:
        raise ValueError("--upstream-endpoint and --upstream-bucket must be given together")
    table = {"type": "s3", **{k.removeprefix("upstream_"): v for k, v in flags.items()}}
    backends = {**config.backends, QUICK_START_BACKEND: table}
    return replace(config, backends=backends, placement={"default": QUICK_START_BACKEND})
