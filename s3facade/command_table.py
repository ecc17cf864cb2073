"""What a registry command is, once: its name, help and examples, its options, the admin
route that runs it on a server, the registry function it runs, and how its result prints.

The CLI (s3facade.command_line) builds its parser from the table, the admin API
(s3facade.admin) its routes; offline (`--data-dir`) and online (`--endpoint`) a command
runs the same `run` over a `Workspace` (s3facade.workspace), so both print the same thing.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

from rich.console import Console

if TYPE_CHECKING:
    from s3facade.workspace import Workspace

# What a command's offline run opens of a stopped server's data dir: its registry read-only
# or writable ("write-unless-dry-run": writable only without --dry-run), the bare log
# (verify: checks what a registry would refuse to open), or nothing (sql: a child does).
Opens = Literal["read", "write", "write-unless-dry-run", "log", "nothing"]


class CommandFailed(Exception):
    """A refusal the user can act on: printed as one line offline (exit 2), answered as
    {"error": code, "message"} with `status` online."""

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = status


@dataclass(frozen=True)
class Option:
    """One input of a command: `--name` (or a positional) on the command line, `name` in
    the admin route's query string (or its path for an object URL, its body for `body`)."""

    name: str  # dashed, as typed: "version-id", "dry-run", "url"
    help: str
    parse: Callable[[str], Any] = str  # text -> value (ValueError: a usage error)
    flag: bool = False  # present or not; in a query, "true"/"false"
    positional: bool = False
    repeated: bool = False  # may be given several times: a list
    metavar: str | None = None
    default: Any = None
    choices: tuple[str, ...] | None = None
    required: bool = False
    where: Literal["query", "path", "body", "local"] = "query"  # local: never sent

    @property
    def attribute(self) -> str:
        return self.name.replace("-", "_")


class Params(Mapping[str, Any]):
    """A command's parsed inputs by attribute name (`params.dry_run`, `params["url"]`)."""

    def __init__(self, values: Mapping[str, Any]) -> None:
        self._values = dict(values)

    def __getitem__(self, name: str) -> Any:
        return self._values[name]

    def __iter__(self) -> Any:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __getattr__(self, name: str) -> Any:
        try:
            return self._values[name]
        except KeyError:
            raise AttributeError(name) from None


class TaskProgress(Protocol):
    def advance(self, amount: int) -> None: ...

    def update(self, completed: int, total: int | None) -> None: ...


class Progress(Protocol):
    """Where a long command reports how far it got: a bar on the terminal offline, a
    stream of lines to the CLI online, or nowhere."""

    def task(self, description: str, total: int | None = None) -> TaskProgress: ...


@dataclass(frozen=True)
class FileResult:
    """A command's result that is a file (export): the route sends it, the CLI keeps it."""

    path: Path


Run = Callable[["Workspace", Params, Progress], Awaitable[Any]]
Render = Callable[[Any, Console, Params], None]


def print_json(data: Any, console: Console, params: Params) -> None:
    console.print_json(data=data, sort_keys=True)


@dataclass(frozen=True)
class Command:
    name: str  # "verify"; "lifecycle run" for a subcommand
    help: str
    run: Run
    render: Render = print_json
    options: tuple[Option, ...] = ()
    examples: tuple[str, ...] = ()
    method: Literal["GET", "POST"] = "GET"  # POST: it does work or may change something
    path: str = ""  # the admin route, e.g. "/-/admin/verify"; with a `path` option + "/{rest}"
    opens: Opens = "read"
    long_running: bool = False  # waits as long as the work takes; progress online too
    cancel_on_hangup: bool = False  # the client left: stop the work (read-only work only)
    writes_file: str | None = None  # the result is this file, written into `directory`
    creates_with: str | None = None  # offline: this flag may start a new data dir
    exit_status: Callable[[Any], int] = field(default=lambda data: 0)

    @property
    def words(self) -> list[str]:
        return self.name.split()

    def option(self, where: str) -> Option | None:
        return next((o for o in self.options if o.where == where), None)


def flag_value(text: str) -> bool:
    """A flag in a query string: true or false, nothing else."""
    lowered = text.lower()
    if lowered not in ("true", "false"):
        raise ValueError(f"expected true or false, got {text!r}")
    return lowered == "true"


def parse_s3_url(url: str) -> tuple[str, str]:
    """s3://bucket/key -> (bucket, key); ValueError for anything else."""
    bucket, _, key = url.removeprefix("s3://").partition("/")
    if not url.startswith("s3://") or not bucket or not key:
        raise ValueError(f"expected s3://bucket/key, got {url!r}")
    return bucket, key


def parse_inputs(command: Command, texts: Mapping[str, Sequence[str]]) -> Params:
    """A command's inputs as texts by option name (as a query string carries them, or the
    command line typed them) -> its params. ValueError says which and why. The CLI parses
    with it before it runs a command offline or sends the texts; the admin API parses the
    same texts with it on arrival."""
    values: dict[str, Any] = {}
    for option in command.options:
        given = texts.get(option.name, [])
        if not given and option.required:
            raise ValueError(f"{option.name} is required")
        if not given:
            default = False if option.flag and option.default is None else option.default
            values[option.attribute] = [] if option.repeated else default
            continue
        if len(given) > 1 and not option.repeated:
            raise ValueError(f"{option.name} given more than once")
        parse = flag_value if option.flag else option.parse
        try:
            parsed = [parse(text) for text in given]
        except ValueError as exc:
            raise ValueError(f"{option.name}: {exc}") from None
        if option.choices is not None and any(p not in option.choices for p in parsed):
            raise ValueError(f"{option.name} must be one of {', '.join(option.choices)}")
        values[option.attribute] = parsed if option.repeated else parsed[0]
    return Params(values)
