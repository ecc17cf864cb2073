"""The authenticated admin API under /-/: the command table's commands as JSON routes.

Requests are signed with SigV4 like any S3 request (the CLI's `--endpoint` mode signs
them with the usual credentials); only admin principals are served. Each command of the
table (s3facade.command_list) has a route, its method and path, its options as query
parameters (an object URL in the path, a query text in the body); it runs the same `run`
as the CLI does offline. Answers are JSON, errors too: {"error": code, "message": ...};
with `Accept: application/x-ndjson`, progress lines first (s3facade.command_progress).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import secrets
import shutil
import signal
import tempfile
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Collection
from datetime import timedelta
from pathlib import Path
from types import FrameType
from typing import Any
from urllib.parse import parse_qs, unquote_to_bytes

from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from s3facade.auth import Authenticator, RequestView
from s3facade.command_list import COMMANDS
from s3facade.command_progress import STREAM_TYPE, NoProgress, ProgressRecord
from s3facade.command_table import Command, CommandFailed, FileResult, Params, parse_inputs
from s3facade.domain_errors import s3_error_for
from s3facade.errors import S3Error
from s3facade.registry import Provenance, Registry
from s3facade.registry.errors import LogUnavailable, LogUntrusted, RegistryError
from s3facade.registry.scrub import Scrubber, ScrubBusy
from s3facade.registry.sql import SqlLimits, SqlSandbox
from s3facade.registry.sql_mirror import EventMirror
from s3facade.request import check_payload_hash
from s3facade.workspace import ServerWorkspace

Endpoint = Callable[[Request], Awaitable[Response]]
PROGRESS_INTERVAL = 0.5  # seconds between progress lines


class AdminAPI:
    def __init__(
        self,
        registry: Registry,
        authenticator: Authenticator,
        admins: Collection[str],
        *,
        clock_control: bool = False,
        trusted_keys: frozenset[str] = frozenset(),
        signing_interval: float = 60.0,
        sql_limits: SqlLimits | None = None,
        region: str = "us-east-1",
        root: str = "",
    ) -> None:
        self._registry = registry
        self._region, self._root = region, root  # for what a command creates or names
        self._authenticator = authenticator
        self._admins = frozenset(admins)
        self._clock_control = clock_control
        self._trusted_keys = trusted_keys  # public keys whose signed heads verify accepts
        self._signing_interval = timedelta(seconds=signing_interval)
        mirror = EventMirror.beside(registry.log)
        self._sql = SqlSandbox.online(mirror, sql_limits or SqlLimits())
        self._stops_sql_on_exit = False
        self._running: set[asyncio.Future[Any]] = set()  # streamed work whose client left

    def routes(self) -> list[Route]:
        """A route per command of the command table (its method and path), then the two
        that only a server has: a scrub pass and the test clock."""
        routes = []
        for command in COMMANDS:
            path = command.path + ("/{rest:path}" if command.option("path") else "")
            endpoint = self._guarded(self._command_endpoint(command))
            routes.append(Route(path, endpoint, methods=[command.method]))
        routes.append(Route("/-/admin/clock", self._guarded(self.clock), methods=["POST"]))
        routes.append(Route("/-/admin/scrub", self._guarded(self.scrub), methods=["POST"]))
        return routes

    def _guarded(self, endpoint: Endpoint) -> Endpoint:
        async def guarded(request: Request) -> Response:
            try:
                await self._authorize(request)
                if not self._registry.views_ready:
                    raise S3Error("ServiceUnavailable", "the views are catching up with the log")
                return await endpoint(request)
            except Exception as exc:
                answer = _failure(exc)
                if answer is None:
                    raise
                return _error(*answer)

        return guarded

    async def _authorize(self, request: Request) -> None:
        request.state.principal = await self.admin_principal(request)
        if request.state.principal is None:
            raise S3Error("AccessDenied")

    async def admin_principal(self, request: Request) -> str | None:
        """The admin who signed the request; None if unsigned or not an admin (S3Error for a
        bad signature)."""
        headers: dict[str, str] = {}
        for name, value in request.headers.items():
            headers[name] = f"{headers[name]},{value}" if name in headers else value
        raw_path: bytes = request.scope.get("raw_path") or request.url.path.encode()
        view = RequestView(request.method, raw_path, request.scope["query_string"], headers)
        auth = self._authenticator.authenticate(view)
        if auth.principal is None or auth.principal not in self._admins:
            return None
        check_payload_hash(auth, hashlib.sha256(await request.body()).hexdigest())
        return auth.principal

    @staticmethod
    def _provenance(request: Request) -> Provenance:
        client = request.client
        return Provenance(
            principal=request.state.principal,
            client_address=f"{client.host}:{client.port}" if client else "",
            user_agent=request.headers.get("user-agent", ""),
            request_id=secrets.token_hex(8).upper(),
        )

    def _command_endpoint(self, command: Command) -> Endpoint:
        async def endpoint(request: Request) -> Response:
            params = await _params(command, request)
            workspace = ServerWorkspace(
                self._registry,
                self._sql,
                self._trusted_keys,
                self._signing_interval,
                self._provenance(request),
                self._region,
                self._root,
            )
            if command.cancel_on_hangup:
                self._stop_sql_on_exit()
            if command.writes_file is not None:  # the answer is the file: nothing streams
                return await self._file(command, workspace, params)
            if STREAM_TYPE in request.headers.get("accept", ""):
                lines = self._streamed(command, workspace, params)
                return StreamingResponse(lines, media_type=STREAM_TYPE)
            work = asyncio.ensure_future(command.run(workspace, params, NoProgress()))
            if command.cancel_on_hangup and await _hung_up_first(request, work):
                return Response(status_code=499)  # nobody is left to read an answer
            return JSONResponse(await work)

        return endpoint

    @staticmethod
    async def _file(command: Command, workspace: ServerWorkspace, params: Params) -> Response:
        """A command whose result is a file, made in a scratch dir removed once sent (or
        once the command failed)."""
        workspace.output_dir = Path(tempfile.mkdtemp(prefix=f"s3facade-{command.name}-"))
        try:
            result = await command.run(workspace, params, NoProgress())
        except BaseException:
            _remove_tree(workspace.output_dir)
            raise
        assert isinstance(result, FileResult)
        cleanup = BackgroundTask(_remove_tree, workspace.output_dir)
        media = "application/vnd.apache.parquet"
        return FileResponse(result.path, media_type=media, background=cleanup)

    async def _streamed(
        self, command: Command, workspace: ServerWorkspace, params: Params
    ) -> AsyncIterator[bytes]:
        """Progress lines while the command runs, then its result or error. A client that
        hangs up stops only what `cancel_on_hangup` (reads); work that changes things
        finishes."""
        record = ProgressRecord()
        work = asyncio.ensure_future(command.run(workspace, params, record))
        self._running.add(work)
        work.add_done_callback(self._running.discard)
        try:
            while not work.done():
                await asyncio.wait({work}, timeout=PROGRESS_INTERVAL)
                if not work.done():
                    yield _line({"progress": record.snapshot()})
            if record.snapshot():  # where it ended, however quick
                yield _line({"progress": record.snapshot()})
            try:
                yield _line({"result": work.result()})
            except Exception as exc:
                answer = _failure(exc)
                if answer is None:
                    raise
                status, code, message = answer
                yield _line({"error": code, "message": message, "status": status})
        finally:
            if command.cancel_on_hangup and not work.done():
                work.cancel()

    def _stop_sql_on_exit(self) -> None:
        """uvicorn waits for requests in flight before it shuts the app down, so a running
        query would hold SIGTERM for up to sql_timeout_seconds. Chain a handler in front of
        the server's (installed by now, hence here and not at construction) that kills the
        query processes first."""
        if self._stops_sql_on_exit or threading.current_thread() is not threading.main_thread():
            return
        self._stops_sql_on_exit = True
        sandbox = self._sql
        for signum in (signal.SIGTERM, signal.SIGINT):
            previous = signal.getsignal(signum)
            if not callable(previous):  # no graceful handler to precede: nothing waits
                continue

            def stop_then(
                number: int,
                frame: FrameType | None,
                previous: Callable[[int, FrameType | None], Any] = previous,
            ) -> None:
                sandbox.stop()
                previous(number, frame)

            signal.signal(signum, stop_then)

    async def scrub(self, request: Request) -> Response:
        """One scrub pass now, at the configured rate; 409 while one runs (registry.scrub).
        The server's Scrubber is in the app state: the background pass shares its lock."""
        scrubber: Scrubber = request.app.state.scrubber
        try:
            report = await scrubber.run_pass(trigger="admin")
        except ScrubBusy as exc:
            return _error(409, "ScrubInProgress", str(exc))
        return JSONResponse(report.as_dict())

    async def clock(self, request: Request) -> Response:
        """Tests only (`test_clock = true`): move the retention clock forward."""
        if not self._clock_control:
            raise S3Error("AccessDenied", "clock control is off (test_clock in the config)")
        self._registry.clock.advance(float(request.query_params.get("advance", "0")))
        return JSONResponse({"now": self._registry.clock().isoformat() + "Z"})


async def _params(command: Command, request: Request) -> Params:
    """The request's inputs, parsed as the CLI parses them: the query string, an object URL
    in the path (raw, for %2F in keys), a text in the body."""
    texts: dict[str, list[str]] = parse_qs(request.url.query, keep_blank_values=True)
    known = {o.name for o in command.options if o.where == "query"}
    unknown = sorted(set(texts) - known)
    if unknown:
        raise S3Error("InvalidArgument", f"unknown parameter {unknown[0]!r}")
    if command.option("path") is not None:
        raw: bytes = request.scope.get("raw_path") or request.url.path.encode()
        bucket, _, key = raw[len(command.path) + 1 :].partition(b"/")
        if not bucket or not key:
            raise S3Error("InvalidURI", "expected /<bucket>/<key>")
        try:
            url = f"s3://{unquote_to_bytes(bucket).decode()}/{unquote_to_bytes(key).decode()}"
        except UnicodeDecodeError:
            raise S3Error("InvalidURI", "the bucket and key must be UTF-8") from None
        texts["url"] = [url]
    body_option = command.option("body")
    if body_option is not None:
        try:
            texts[body_option.name] = [(await request.body()).decode()]
        except UnicodeDecodeError:
            raise S3Error("InvalidRequest", "the body is not UTF-8") from None
    try:
        return parse_inputs(command, texts)
    except ValueError as exc:
        raise S3Error("InvalidArgument", str(exc)) from None


def _failure(exc: Exception) -> tuple[int, str, str] | None:
    """An exception as (status, code, message) for the answer; None: not the client's to
    know (it propagates as a 500)."""
    if isinstance(exc, CommandFailed):
        return exc.status, exc.code, exc.message
    if isinstance(exc, S3Error):
        return exc.status, exc.code, exc.message
    if isinstance(exc, LogUntrusted):  # the operator must act: say what and how
        return 409, "LogUntrusted", str(exc)
    if isinstance(exc, RegistryError):
        error = s3_error_for(exc)
        if isinstance(exc, LogUnavailable):  # an operator's command: say what was away
            return error.status, error.code, f"{error.message} ({exc})"
        return error.status, error.code, error.message
    return None


async def _hung_up_first(request: Request, work: asyncio.Future[Any]) -> bool:
    """Wait for the work or for the client to leave; if it left first, the work is
    cancelled (a query's child is killed)."""
    hung_up = asyncio.ensure_future(_disconnected(request))
    try:
        await asyncio.wait({work, hung_up}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        hung_up.cancel()
        if not work.done():
            work.cancel()
    if work.cancelled():
        await asyncio.gather(work, hung_up, return_exceptions=True)  # the child is gone
        return True
    await asyncio.gather(hung_up, return_exceptions=True)
    return False


def _line(message: dict[str, Any]) -> bytes:
    return json.dumps(message, default=str).encode() + b"\n"


def _remove_tree(directory: Path) -> None:
    shutil.rmtree(directory, ignore_errors=True)


async def _disconnected(request: Request) -> None:
    """Returns once the client has gone (the body has been read: nothing else arrives)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


def _error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": code, "message": message}, status_code=status)
