"""What each setting may hold, checked wherever it comes from (the TOML file, its
environment twin, a flag), and errors that name the file, the line and the key."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MIN_SECRET_LENGTH = 8
ENV_PREFIX = "S3FACADE_"


class ConfigInvalid(ValueError):
    """A configuration s3facade refuses to run with; the message says where and why."""


@dataclass(frozen=True)
class Kind:
    """A setting's type: how TOML values and environment strings become it."""

    name: str  # for messages: "an integer", ...
    from_toml: Callable[[Any], Any]
    from_text: Callable[[str], Any]


def _integer(low: int, high: int | None = None) -> Kind:
    bounds = f"from {low}" + (f" to {high}" if high is not None else "")

    def check(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"expected an integer {bounds}, got {value!r}")
        if value < low or (high is not None and value > high):
            raise ValueError(f"expected an integer {bounds}, got {value}")
        return value

    def parse(text: str) -> int:
        if not re.fullmatch(r"\s*-?\d+\s*", text):
            raise ValueError(f"expected an integer {bounds}, got {text!r}")
        return check(int(text))

    return Kind(f"an integer {bounds}", check, parse)


def _number(low: float, *, inclusive: bool) -> Kind:
    bounds = f"{'at least' if inclusive else 'above'} {low:g}"

    def check(value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"expected a number {bounds}, got {value!r}")
        if value < low or (value == low and not inclusive):
            raise ValueError(f"expected a number {bounds}, got {value}")
        return float(value)

    def parse(text: str) -> float:
        try:
            return check(float(text))
        except ValueError:
            raise ValueError(f"expected a number {bounds}, got {text!r}") from None

    return Kind(f"a number {bounds}", check, parse)


def _string(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"expected a non-empty string, got {value!r}")
    return value


def _boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"expected true or false, got {value!r}")
    return value


def _boolean_text(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered not in ("true", "false", "1", "0"):
        raise ValueError(f"expected true or false, got {text!r}")
    return lowered in ("true", "1")


def _strings(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ValueError(f"expected a list of strings, got {value!r}")
    return tuple(value)


STRING = Kind("a string", _string, _string)


def _path(value: Any) -> Path:
    return value if isinstance(value, Path) else Path(_string(value))


PATH = Kind("a path", _path, _path)
BOOLEAN = Kind("true or false", _boolean, _boolean_text)
STRINGS = Kind(
    "a list of strings",
    _strings,
    lambda text: tuple(part.strip() for part in text.split(",") if part.strip()),
)


def _choice(*choices: str) -> Kind:
    def check(value: Any) -> str:
        if value not in choices:
            raise ValueError(f"expected one of {', '.join(choices)}, got {value!r}")
        return str(value)

    return Kind(f"one of {', '.join(choices)}", check, check)


PORT = _integer(1, 65535)
POSITIVE = _integer(1)
NON_NEGATIVE = _integer(0)
SECONDS = _number(0, inclusive=False)
INTERVAL = _number(0, inclusive=True)  # 0 turns the task off

# [server] keys (and their environment twins, S3FACADE_<KEY>) -> kind.
SERVER_KEYS: Mapping[str, Kind] = {
    "host": STRING,
    "port": PORT,
    "data_dir": PATH,
    "region": STRING,
    "base_domain": STRING,
    "lifecycle_interval_seconds": INTERVAL,
    "gc_interval_seconds": INTERVAL,
    "test_clock": BOOLEAN,
    "sql_timeout_seconds": SECONDS,
    "sql_memory_mib": POSITIVE,
    "sql_threads": POSITIVE,
    "sql_concurrency": POSITIVE,
    "header_timeout_seconds": SECONDS,
    "idle_timeout_seconds": SECONDS,
    "body_timeout_seconds": SECONDS,
    "max_connections": POSITIVE,
    "anchor_path": PATH,
    "head_signing_key": PATH,
    "head_signing_interval_seconds": SECONDS,
    "head_trusted_keys": STRINGS,
    "checkpoint_wal_mib": POSITIVE,
    "scrub_interval_seconds": INTERVAL,
    "scrub_mib_per_second": SECONDS,
    "space_reserve_mib": NON_NEGATIVE,
    "log_format": _choice("text", "json"),
    "tls_cert": PATH,
    "tls_key": PATH,
}
USER_KEYS: Mapping[str, Kind] = {
    "secret": STRING,
    "display_name": STRING,
    "admin": BOOLEAN,
    "bypass_governance": BOOLEAN,
}


def _pattern(pattern: str, meaning: str) -> Kind:
    def check(value: Any) -> str:
        if not isinstance(value, str) or not re.fullmatch(pattern, value):
            raise ValueError(f"expected {meaning}, got {value!r}")
        return value

    return Kind(meaning, check, check)


# [log] keys (docs/scale-out.md). The lake's credentials come from the environment only:
# S3FACADE_LOG_ACCESS_KEY_ID and S3FACADE_LOG_SECRET_ACCESS_KEY.
LOG_KEYS: Mapping[str, Kind] = {
    "type": _choice("duckdb", "ducklake"),
    "catalog": STRING,
    "data_path": _pattern(
        r"s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/[^'\\]*)?/", "s3://bucket/prefix/"
    ),
    "endpoint": _pattern(r"https?://[^/'\\\s]+/?", "an http(s):// endpoint"),
    "gateway_id": _pattern(
        r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", "a gateway id (letters, digits, . _ -)"
    ),
    "region": STRING,
    "metadata_schema": _pattern(r"[a-z_][a-z0-9_]{0,62}", "a PostgreSQL schema name"),
    "poll_seconds": SECONDS,
    "maintenance_seconds": INTERVAL,
}
LAKE_REQUIRED = ("catalog", "data_path", "endpoint", "gateway_id")
SECTIONS = frozenset({"server", "users", "backends", "placement", "retention", "log"})


def env_name(key: str) -> str:
    return ENV_PREFIX + key.upper()


@dataclass(frozen=True)
class Source:
    """Where values come from, to say so in errors: a config file (with its text, to find
    lines in), the environment or the command line."""

    name: str
    text: str = ""

    def error(self, message: str, section: str | None = None, key: str | None = None) -> str:
        line = self.line_of(section, key) if section is not None else None
        place = f"{self.name}:{line}" if line is not None else self.name
        where = f" [{section}]" if section is not None else ""
        what = f" {key}" if key is not None else ""
        return f"{place}:{where}{what}: {message}"

    def line_of(self, section: str, key: str | None) -> int | None:
        """The line a table (or one of its keys) starts on; None when it cannot be told."""
        header = re.compile(r"\s*\[\[?\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")
        current: str | None = None
        for number, line in enumerate(self.text.splitlines(), start=1):
            found = header.match(line)
            if found is not None:
                current = found.group(1).replace('"', "")
                if key is None and current == section:
                    return number
                continue
            assignment = key is not None and re.match(rf"\s*\"?{re.escape(key)}\"?\s*=", line)
            if current == section and assignment:
                return number
        return None


def checked(
    values: Mapping[str, Any], kinds: Mapping[str, Kind], section: str, source: Source
) -> dict[str, Any]:
    """`values` typed by `kinds`; an unknown key or a wrong value is ConfigInvalid."""
    result: dict[str, Any] = {}
    for key, value in values.items():
        kind = kinds.get(key)
        if kind is None:
            known = ", ".join(sorted(kinds))
            raise ConfigInvalid(source.error(f"unknown setting (known: {known})", section, key))
        try:
            result[key] = kind.from_toml(value)
        except ValueError as exc:
            raise ConfigInvalid(source.error(str(exc), section, key)) from None
    return result


def from_environment(env: Mapping[str, str]) -> dict[str, Any]:
    """The [server] settings given as S3FACADE_<KEY> environment variables."""
    result: dict[str, Any] = {}
    for key, kind in SERVER_KEYS.items():
        text = env.get(env_name(key))
        if text is None:
            continue
        try:
            result[key] = kind.from_text(text)
        except ValueError as exc:
            raise ConfigInvalid(f"environment {env_name(key)}: {exc}") from None
    return result
