"""The registry commands on the command line, built from the command table: each command's
parser, and one way to run it, offline on a stopped server's data dir (`--data-dir`, the
default) or through a running server's admin API (`--endpoint`). Either way the result is
the same JSON, printed by the command's `render` (or as JSON with `--json`)."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Console

from s3facade.admin_client import UPKEEP_TIMEOUT, AdminClient, AdminError, object_path
from s3facade.command_progress import terminal_progress
from s3facade.command_table import (
    Command,
    CommandFailed,
    FileResult,
    Option,
    Params,
    parse_inputs,
)
from s3facade.domain_errors import s3_error_for
from s3facade.registry.errors import RegistryError
from s3facade.workspace import DataDirWorkspace

GROUP_HELP = {"lifecycle": "bucket lifecycle rules"}


def add_commands(subparsers: Any, commands: Sequence[Command]) -> None:
    """One parser per command (`lifecycle run`: a subcommand of `lifecycle`)."""
    groups: dict[str, Any] = {}
    for command in commands:
        *group, name = command.words
        parent = subparsers
        if group:
            if group[0] not in groups:
                parser = subparsers.add_parser(group[0], help=GROUP_HELP.get(group[0]))
                groups[group[0]] = parser.add_subparsers(dest=f"{group[0]}_command", required=True)
            parent = groups[group[0]]
        parser = parent.add_parser(
            name,
            help=command.help,
            description=command.help,
            epilog=examples(*command.examples),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        add_source_arguments(parser)
        for option in command.options:
            _add_option(parser, option)
        parser.set_defaults(run=lambda args, command=command: run(command, args))


def examples(*lines: str) -> str:
    """A command's help ends with these (argparse's RawDescriptionHelpFormatter keeps them)."""
    return "examples:\n" + "\n".join(f"  {line}" for line in lines)


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


def _add_option(parser: argparse.ArgumentParser, option: Option) -> None:
    if option.flag:
        parser.add_argument(f"--{option.name}", action="store_true", help=option.help)
    elif option.positional:
        parser.add_argument(option.attribute, help=option.help)
    else:  # parsed by the table's parse_inputs, the admin API's parser too
        parser.add_argument(
            f"--{option.name}",
            action="append" if option.repeated else "store",
            choices=option.choices,
            metavar=option.metavar,
            required=option.required,
            help=option.help,
        )


def _texts(command: Command, args: argparse.Namespace) -> dict[str, list[str]]:
    """The options as typed, by name, as a query string would carry them."""
    texts: dict[str, list[str]] = {}
    for option in command.options:
        value = getattr(args, option.attribute)
        if option.flag:
            texts[option.name] = ["true"] if value else []
        elif option.repeated:
            texts[option.name] = list(value or [])
        else:
            texts[option.name] = [] if value is None else [value]
    return texts


def run(command: Command, args: argparse.Namespace) -> int:
    texts = _texts(command, args)
    shows_progress = command.long_running and not args.json and sys.stderr.isatty()
    try:
        try:
            params = parse_inputs(command, texts)
        except ValueError as exc:
            raise CommandFailed("InvalidArgument", str(exc)) from None
        if args.endpoint:
            query = {o.name: texts[o.name] for o in command.options if o.where == "query"}
            data = _on_server(command, params, query, args, shows_progress)
        else:
            data = asyncio.run(_offline(command, params, args, shows_progress))
    except CommandFailed as exc:
        print(f"s3facade {command.name}: {exc.code}: {exc.message}", file=sys.stderr)
        return 2
    except AdminError as exc:
        print(f"s3facade {command.name}: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(data, indent=2, sort_keys=True, default=str))
    else:  # piped, wide enough that no table is cut or wrapped (rich would assume 80)
        command.render(data, Console() if sys.stdout.isatty() else Console(width=10_000), params)
    return command.exit_status(data)


async def _offline(
    command: Command, params: Params, args: argparse.Namespace, shows_progress: bool
) -> Any:
    opens = command.opens
    if opens == "write-unless-dry-run":  # reading only: the log may stay read-only
        opens = "read" if params.dry_run else "write"
    creates = command.creates_with is not None and params[command.creates_with.replace("-", "_")]
    workspace = DataDirWorkspace(args.data_dir, args.config, opens, create=bool(creates))
    if command.writes_file is not None:
        workspace.output_dir = Path(params.directory)
    try:
        with terminal_progress(shows_progress) as progress:
            result = await command.run(workspace, params, progress)
    except RegistryError as exc:
        error = s3_error_for(exc)
        raise CommandFailed(error.code, error.message or str(exc), error.status) from None
    finally:
        await workspace.close()
    return {"path": str(result.path)} if isinstance(result, FileResult) else result


def _on_server(
    command: Command,
    params: Params,
    query: dict[str, list[str]],
    args: argparse.Namespace,
    shows_progress: bool,
) -> Any:
    timeout = UPKEEP_TIMEOUT if command.long_running else 600
    client = AdminClient(args.endpoint, timeout=timeout, profile=args.profile)
    path = command.path
    if command.option("path") is not None:
        path = object_path(path, *params.url)
    body_option = command.option("body")
    body = params[body_option.attribute].encode() if body_option else b""
    if command.writes_file is not None:  # the result is a file, written here
        target = Path(params.directory) / command.writes_file
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(client.request(command.method, path, query, body))
        return {"path": str(target)}
    if not shows_progress:
        return client.json(command.method, path, query, body)
    with terminal_progress(True) as progress:
        return client.stream(command.method, path, query, body, progress.show)
