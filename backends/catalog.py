"""Building the configured backends from plain settings (the TOML tables, quick-start flags).

The protocol layer parses the config file into plain mappings and calls
`build_backend_set`; only this module knows how a table becomes a backend object::

    [backends.ceph]                 # backend id "ceph", recorded in every event it stores
    type = "s3"                     # "s3" (any S3-compatible store, Ceph RGW) or "local"
    endpoint = "https://rgw.example.internal:7480"
    bucket = "artifacts"
    region = "us-east-1"            # optional
    prefix = "s3facade/"            # optional key prefix inside the bucket
    addressing_style = "path"       # or "virtual" (<bucket>.<host>)
    verify_tls = true               # false, or the path of a CA bundle
    # sign_payload = true          # sign each part's SHA-256 (default: over http:// only)
    # credentials: access_key_id / secret_access_key here, or from the environment
    # variables named by access_key_id_env / secret_access_key_env, which default to
    # S3FACADE_UPSTREAM_ACCESS_KEY_ID / S3FACADE_UPSTREAM_SECRET_ACCESS_KEY

    [placement]
    default = "ceph"                # buckets no pattern matches; "local" if unset
    [placement.buckets]             # bucket-name glob -> backend id, first match wins
    "scratch-*" = "local"

A backend with id "local" (the local CAS under ``<data-dir>/blobs``) always exists, so
versions stored before an upstream was configured stay readable.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from s3facade.backends import BackendSet, StorageBackend
from s3facade.backends.local import LocalCAS
from s3facade.backends.retry import RetryPolicy
from s3facade.backends.upstream import MiB, UpstreamCAS, UpstreamConfig

__all__ = [
    "ACCESS_KEY_ENV",
    "LOCAL_ID",
    "SECRET_KEY_ENV",
    "build_backend_set",
    "upstream_config",
]

LOCAL_ID = "local"
ACCESS_KEY_ENV = "S3FACADE_UPSTREAM_ACCESS_KEY_ID"
SECRET_KEY_ENV = "S3FACADE_UPSTREAM_SECRET_ACCESS_KEY"

_S3_KEYS = frozenset(
    {
        "type",
        "endpoint",
        "bucket",
        "region",
        "prefix",
        "addressing_style",
        "verify_tls",
        "access_key_id",
        "secret_access_key",
        "access_key_id_env",
        "secret_access_key_env",
        "part_size_mib",
        "upload_concurrency",
        "timeout_seconds",
        "retry_deadline_seconds",
        "retry_max_attempts",
        "sign_payload",
    }
)
_LOCAL_KEYS = frozenset({"type", "root"})
_PLACEMENT_KEYS = frozenset({"default", "buckets"})


class ConfigError(ValueError):
    """A backend or placement setting that cannot work; the message says which."""


def build_backend_set(
    tables: Mapping[str, Mapping[str, Any]],
    placement: Mapping[str, Any],
    data_dir: Path,
    env: Mapping[str, str] | None = None,
) -> BackendSet:
    """Backends by id from `[backends.<id>]` tables, placed per the `[placement]` table.

    Blocking (the local CAS recovers its staging dir): call at start-up. Upstreams are
    not contacted here; `/-/ready` reports whether they answer.
    """
    env = os.environ if env is None else env
    backends: dict[str, StorageBackend] = {}
    for backend_id, table in tables.items():
        backends[backend_id] = _build(backend_id, table, data_dir, env)
    if LOCAL_ID not in backends:
        backends[LOCAL_ID] = LocalCAS(data_dir / "blobs", LOCAL_ID)
    unknown = set(placement) - _PLACEMENT_KEYS
    if unknown:
        raise ConfigError(f"[placement]: unknown settings {', '.join(sorted(unknown))}")
    default = placement.get("default", LOCAL_ID)
    rules = placement.get("buckets", {})
    if not isinstance(default, str) or not isinstance(rules, Mapping):
        raise ConfigError("[placement]: default must be a backend id, buckets a table")
    if not all(isinstance(target, str) for target in rules.values()):
        raise ConfigError("[placement.buckets]: each pattern must map to a backend id")
    try:
        return BackendSet(backends, default, list(rules.items()))
    except ValueError as exc:
        raise ConfigError(f"[placement]: {exc}") from None


def _build(
    backend_id: str, table: Mapping[str, Any], data_dir: Path, env: Mapping[str, str]
) -> StorageBackend:
    kind = table.get("type")
    if kind == "local":
        _check_keys(backend_id, table, _LOCAL_KEYS)
        return LocalCAS(Path(table.get("root", data_dir / "blobs")), backend_id)
    if kind == "s3":
        return UpstreamCAS(upstream_config(backend_id, table, env), backend_id)
    raise ConfigError(f"[backends.{backend_id}]: type must be 's3' or 'local', not {kind!r}")


def upstream_config(
    backend_id: str, table: Mapping[str, Any], env: Mapping[str, str]
) -> UpstreamConfig:
    """An `UpstreamConfig` from one `[backends.<id>]` table of type "s3"."""
    _check_keys(backend_id, table, _S3_KEYS)
    where = f"[backends.{backend_id}]"
    for required in ("endpoint", "bucket"):
        if not table.get(required):
            raise ConfigError(f"{where}: {required} is required")
    access_key = table.get("access_key_id") or env.get(
        table.get("access_key_id_env", ACCESS_KEY_ENV), ""
    )
    secret_key = table.get("secret_access_key") or env.get(
        table.get("secret_access_key_env", SECRET_KEY_ENV), ""
    )
    if not access_key or not secret_key:
        names = (
            table.get("access_key_id_env", ACCESS_KEY_ENV),
            table.get("secret_access_key_env", SECRET_KEY_ENV),
        )
        raise ConfigError(
            f"{where}: no upstream credentials; set access_key_id and secret_access_key, "
            f"or the environment variables {names[0]} and {names[1]}"
        )
    if not isinstance(table.get("sign_payload", False), bool):
        raise ConfigError(f"{where}: sign_payload must be true or false")
    verify = table.get("verify_tls", True)
    if not isinstance(verify, bool | str):
        raise ConfigError(f"{where}: verify_tls must be true, false or a CA bundle path")
    try:
        defaults = UpstreamConfig("http://x", "x", "x", "x")
        retry = RetryPolicy(
            max_attempts=int(table.get("retry_max_attempts", defaults.retry.max_attempts)),
            deadline=float(table.get("retry_deadline_seconds", defaults.retry.deadline)),
        )
        config = UpstreamConfig(
            endpoint=str(table["endpoint"]).rstrip("/"),
            bucket=str(table["bucket"]),
            access_key_id=str(access_key),
            secret_access_key=str(secret_key),
            region=str(table.get("region", defaults.region)),
            prefix=str(table.get("prefix", "")),
            addressing_style=table.get("addressing_style", "path"),
            verify_tls=verify,
            part_size=int(float(table.get("part_size_mib", defaults.part_size / MiB)) * MiB),
            upload_concurrency=int(table.get("upload_concurrency", defaults.upload_concurrency)),
            timeout=float(table.get("timeout_seconds", defaults.timeout)),
            retry=retry,
            sign_payload=table.get("sign_payload"),
        )
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: {exc}") from None
    return config


def _check_keys(backend_id: str, table: Mapping[str, Any], known: frozenset[str]) -> None:
    unknown = set(table) - known
    if unknown:
        raise ConfigError(f"[backends.{backend_id}]: unknown settings {', '.join(sorted(unknown))}")
