"""What a registry command runs against: a running server's registry (online, through the
admin API) or a stopped server's data dir (offline). A command's `run` asks the workspace
for the log, the registry, the SQL sandbox and the verify settings, the same way both times;
only how they are opened differs.
"""

from __future__ import annotations

import secrets
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import TypeVar

from s3facade.backends.catalog import build_backend_set
from s3facade.command_table import CommandFailed, Opens
from s3facade.config import ServerConfig, load_config
from s3facade.registry import Provenance, Registry
from s3facade.registry.anchor import AnchorRecord, LogAnchor, default_anchor_path
from s3facade.registry.errors import CorruptLog, LogInUse, LogUntrusted, RegistryError
from s3facade.registry.heads import HeadKey, HeadTrust
from s3facade.registry.lake_store import LakeSettings, lake_python
from s3facade.registry.log import EventLog
from s3facade.registry.registry import LOG_FILE, open_log_read_only
from s3facade.registry.retention import RetentionPolicy
from s3facade.registry.sql import SqlLimits, SqlSandbox
from s3facade.registry.verification import VerifiedPoint
from s3facade.registry.views import Views

_T = TypeVar("_T")


def open_registry(
    config: ServerConfig,
    *,
    read_only: bool = False,
    accept_log_loss: bool = False,
    load_views: bool = True,
) -> Registry:
    """The configured backends (by default the local CAS under the data dir) and the DuckDB
    log beside them; a writable one checked against its anchor and signing its heads.
    `load_views=False`: the caller awaits `registry.load_views()` (the server, once it
    listens)."""
    backends = build_backend_set(config.backends, config.placement, config.data_dir)
    policies = [RetentionPolicy.from_config(entry) for entry in config.retention]
    shared = lake_settings(config)
    if shared is not None and read_only:
        raise RegistryError(
            "a shared (ducklake) log is read through a running gateway: use --endpoint"
        )
    return Registry.open(
        config.data_dir,
        backends,
        read_only=read_only,
        policies=policies,
        anchor_path=config.anchor_path,
        accept_log_loss=accept_log_loss,
        head_trust=None if read_only else head_trust(config),
        checkpoint_wal_bytes=config.checkpoint_wal_mib << 20,
        space_reserve_bytes=0 if read_only else config.space_reserve_mib << 20,
        load_views=load_views,
        shared_log=shared,
    )


def lake_settings(config: ServerConfig) -> LakeSettings | None:
    """The shared log `[log]` configures, or None for the data dir's own DuckDB file."""
    values = config.log
    if values.get("type", "duckdb") != "ducklake":
        return None
    optional = {k: values[k] for k in ("region", "metadata_schema") if k in values}
    return LakeSettings(
        catalog=values["catalog"],
        data_path=values["data_path"],
        endpoint=values["endpoint"],
        gateway_id=values["gateway_id"],
        access_key_id=values["access_key_id"],
        secret_access_key=values["secret_access_key"],
        python=lake_python(),
        **optional,
    )


def head_trust(config: ServerConfig) -> HeadTrust:
    """The configured head-signing key (generated if absent) and the keys verify trusts."""
    return HeadTrust(
        HeadKey.load_or_create(config.head_key_file),
        frozenset(config.head_trusted_keys),
        config.head_signing_interval_seconds,
    )


def sql_limits(config: ServerConfig, concurrency: int) -> SqlLimits:
    return SqlLimits(
        timeout_seconds=config.sql_timeout_seconds,
        memory_mib=config.sql_memory_mib,
        threads=config.sql_threads,
        concurrency=concurrency,
    )


class Workspace(ABC):
    log: EventLog
    online: bool
    read_only: bool
    trigger: str  # recorded by gc as what started it
    trusted_keys: frozenset[str]  # public keys whose signed heads verify accepts
    signing_interval: timedelta
    verified_state: Path | None  # where `verify --incremental` keeps its last clean point
    output_dir: Path | None = None  # where a command writes a file result (export)
    region: str  # a bucket a command creates is in it
    root_principal: str  # whom a command's events name when nobody else is meant

    @abstractmethod
    async def registry(self) -> Registry:
        """CorruptLog offline if the log cannot be replayed into views."""

    @abstractmethod
    def anchor(self) -> AnchorRecord | None:
        """The log's anchor record (AnchorDamaged offline if the file is damaged)."""

    @abstractmethod
    def sql(self) -> SqlSandbox: ...

    @abstractmethod
    def provenance(self) -> Provenance:
        """Who runs the command, for the events it records."""

    async def query(self, function: Callable[[], _T]) -> _T:
        """A blocking read of the log, off the event loop."""
        return await self.log.run_query(function)

    async def close(self) -> None:
        return None


class ServerWorkspace(Workspace):
    online, read_only, trigger = True, False, "admin"

    def __init__(
        self,
        registry: Registry,
        sql: SqlSandbox,
        trusted_keys: frozenset[str],
        signing_interval: timedelta,
        provenance: Provenance,
        region: str,
        root_principal: str,
    ) -> None:
        self._registry = registry
        self.region, self.root_principal = region, root_principal
        self._sql = sql
        self._provenance = provenance
        self.log = registry.log
        self.trusted_keys = trusted_keys
        self.signing_interval = signing_interval
        anchor = registry.log.anchor
        self.verified_state = VerifiedPoint.path_beside(anchor.path) if anchor else None

    async def registry(self) -> Registry:
        return self._registry

    def anchor(self) -> AnchorRecord | None:
        return self.log.anchor.current if self.log.anchor is not None else None

    def sql(self) -> SqlSandbox:
        return self._sql

    def provenance(self) -> Provenance:
        return self._provenance


class DataDirWorkspace(Workspace):
    """A stopped server's data dir (DuckDB lets one process at a time hold the log)."""

    online, trigger = False, "offline"

    def __init__(
        self, data_dir: Path, config_file: Path | None, opens: Opens, *, create: bool = False
    ) -> None:
        """`create`: a missing log is started (a new data dir), not refused."""
        self.data_dir = data_dir
        self.config = load_config(config_file, {"data_dir": data_dir})
        self.region, self.root_principal = self.config.region, self.config.root_access_key_id
        self.read_only = opens != "write"
        self.trusted_keys = frozenset(self.config.head_trusted_keys)
        if self.config.head_key_file.exists():
            self.trusted_keys |= {HeadKey.load(self.config.head_key_file).public_hex}
        self.signing_interval = timedelta(seconds=self.config.head_signing_interval_seconds)
        self._anchor_path = self.config.anchor_path or default_anchor_path(data_dir)
        self.verified_state = VerifiedPoint.path_beside(self._anchor_path)
        self._registry: Registry | None = None
        self._bare_log = opens == "log"
        if opens == "nothing":  # the SQL child attaches the log file itself
            if not (data_dir / LOG_FILE).exists():
                raise CommandFailed("NoRegistry", f"no registry in {data_dir} (see --data-dir)")
            return
        with opening(data_dir):
            if self._bare_log:
                self.log = open_log_read_only(data_dir)
            else:
                if not (data_dir / LOG_FILE).exists() and not (create and opens == "write"):
                    raise FileNotFoundError(data_dir / LOG_FILE)
                self._registry = open_registry(self.config, read_only=self.read_only)
                self.log = self._registry.log

    async def registry(self) -> Registry:
        if self._registry is None:  # the bare log: views replayed from it now
            views = Views.in_data_dir(self.data_dir)
            try:
                await self.query(lambda: views.catch_up(self.log))
            except BaseException:
                views.close()
                raise
            backends = build_backend_set(
                self.config.backends, self.config.placement, self.config.data_dir
            )
            self._registry = Registry(self.log, backends, views)
        return self._registry

    def anchor(self) -> AnchorRecord | None:
        return LogAnchor.read(self._anchor_path)

    def sql(self) -> SqlSandbox:
        return SqlSandbox.offline(self.data_dir / LOG_FILE, sql_limits(self.config, 1))

    def provenance(self) -> Provenance:
        return Provenance(
            principal="offline", client_address="", user_agent="s3facade cli",
            request_id=secrets.token_hex(8).upper(),
        )  # fmt: skip

    async def close(self) -> None:
        registry = self._registry
        try:
            if registry is not None:
                await registry.close()  # a writable one signs its head, commits what is queued
            elif hasattr(self, "log"):
                await self.log.close()
        finally:
            for backend in registry.backends.values() if registry is not None else ():
                close = getattr(backend, "aclose", None)  # upstream clients hold connections
                if close is not None:
                    await close()


@contextmanager
def opening(data_dir: Path) -> Iterator[None]:
    """Why a stopped server's log cannot be opened, as a CommandFailed."""
    try:
        yield
    except FileNotFoundError:
        raise CommandFailed("NoRegistry", f"no registry in {data_dir} (see --data-dir)") from None
    except LogInUse as exc:
        raise CommandFailed(
            "LogInUse",
            f"{data_dir} is in use, probably by a running server: use --endpoint URL ({exc})",
        ) from None
    except (LogUntrusted, CorruptLog) as exc:  # e.g. gc on a log that lost events: refused
        raise CommandFailed(type(exc).__name__, str(exc), 409) from None
