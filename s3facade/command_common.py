"""What every registry command shares: where it reads (`--endpoint` or `--data-dir`), how it
prints (a table, or JSON with `--json`), and errors printed without a traceback."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rich.console import Console

from s3facade.admin_client import AdminClient
from s3facade.config import load_config
from s3facade.registry import Registry
from s3facade.registry.errors import CorruptLog, LogInUse, LogUntrusted
from s3facade.registry.log import EventLog
from s3facade.registry.registry import LOG_FILE, open_log_read_only

OpenRegistry = Callable[[argparse.Namespace], Registry]


class CommandError(Exception):
    """Printed without a traceback; exit status 2."""


def add_source_arguments(parser: argparse.ArgumentParser) -> None:
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "--endpoint",
        help="a running server's URL; credentials: S3FACADE_ACCESS_KEY_ID/_SECRET_ACCESS_KEY, "
        "else the aws cli's (AWS_* variables, ~/.aws)",
    )
    parser.add_argument("--profile", help="with --endpoint: this ~/.aws profile's credentials")
    where.add_argument("--data-dir", type=Path, default=Path("./data"), help="offline data dir")
    parser.add_argument("--config", type=Path, default=None, help="TOML config (offline)")
    parser.add_argument("--json", action="store_true", help="machine-readable output")


def admin_client(args: argparse.Namespace, timeout: float = 600) -> AdminClient:
    """The running server `--endpoint` names, with the credentials of `--profile` or the
    environment (admin_client.find_credentials)."""
    return AdminClient(args.endpoint, timeout=timeout, profile=args.profile)


def parse_s3_url(url: str) -> tuple[str, str]:
    if not url.startswith("s3://"):
        raise CommandError(f"expected s3://bucket/key, got {url!r}")
    bucket, _, key = url[5:].partition("/")
    if not bucket or not key:
        raise CommandError(f"expected s3://bucket/key, got {url!r}")
    return bucket, key


@contextmanager
def opening(data_dir: Path) -> Iterator[None]:
    """Why a stopped server's log cannot be opened, as a message (CommandError)."""
    try:
        yield
    except FileNotFoundError:
        raise CommandError(f"no registry in {data_dir} (see --data-dir)") from None
    except LogInUse as exc:
        raise CommandError(
            f"{data_dir} is in use, probably by a running server: use --endpoint URL ({exc})"
        ) from None
    except (LogUntrusted, CorruptLog) as exc:  # e.g. gc on a log that lost events: refused
        raise CommandError(str(exc)) from None


@contextmanager
def offline(args: argparse.Namespace, open_registry: OpenRegistry) -> Iterator[Registry]:
    with opening(args.data_dir):
        registry = open_registry(args)
    try:
        yield registry
    finally:
        registry.close_offline()


def emit(args: argparse.Namespace, data: Any, render: Callable[[Any, Console], None]) -> None:
    if args.json:
        print(json.dumps(data, indent=2, sort_keys=True, default=str))
    else:
        render(data, console())


def console() -> Console:
    """A terminal's width on a terminal; piped, wide enough that no table is cut or wrapped
    (rich would otherwise assume 80 columns)."""
    return Console() if sys.stdout.isatty() else Console(width=10_000)


def open_bare_log(data_dir: Path) -> EventLog:
    with opening(data_dir):
        return open_log_read_only(data_dir)


def open_writable(args: argparse.Namespace) -> Registry:
    """The stopped server's registry with a writable log: gc records what it removed.
    (The other offline commands open it read-only.) The same checks as a server's start."""
    from s3facade.cli import open_registry as open_configured  # cli imports this module

    with opening(args.data_dir):
        if not (args.data_dir / LOG_FILE).exists():
            raise FileNotFoundError(args.data_dir / LOG_FILE)
        return open_configured(load_config(args.config, {"data_dir": args.data_dir}))
