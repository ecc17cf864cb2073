"""The authenticated admin API under /-/: provenance and the registry commands as JSON.

Requests are signed with SigV4 like any S3 request (the CLI's `--endpoint` mode signs
them with the usual credentials); only admin principals are served. Answers are JSON,
errors too: {"error": code, "message": ...}.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import signal
import tempfile
import threading
from collections.abc import Awaitable, Callable, Collection
from datetime import datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import Any, TypeVar
from urllib.parse import unquote_to_bytes

from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route

from s3facade.auth import Authenticator, RequestView
from s3facade.domain_errors import s3_error_for
from s3facade.errors import S3Error
from s3facade.registry import Provenance, Registry
from s3facade.registry.audit import (
    NoHistory,
    attestation,
    effective_retention,
    event_dict,
    export_parquet,
    log_events,
    object_history,
)
from s3facade.registry.errors import LogUntrusted, RegistryError
from s3facade.registry.gc import collect_garbage
from s3facade.registry.scrub import Scrubber, ScrubBusy
from s3facade.registry.sql import SqlError, SqlLimits, SqlSandbox
from s3facade.registry.sql_mirror import EventMirror
from s3facade.registry.sweeper import run as run_lifecycle
from s3facade.registry.verification import VerifiedPoint, record_verified, verify_log, verify_stored
from s3facade.registry.verify import HeadAudit, VerifyReport, parse_head
from s3facade.request import check_payload_hash

Endpoint = Callable[[Request], Awaitable[Response]]
_T = TypeVar("_T")
MAX_SQL_BYTES = 64 * 1024
MAX_LOG_EVENTS = 100_000  # one /-/admin/log answer; page with `since`
# SqlError code -> HTTP status. A query that hits a limit is the query's doing (400: the
# same query fails again); only a full house or a shutdown is worth retrying (503).
SQL_STATUS = {
    "InvalidRequest": 400,
    "InvalidQuery": 400,
    "QueryTimeout": 400,
    "QueryMemoryLimit": 400,
    "ResultTooLarge": 400,
    "SlowDown": 503,
    "ServiceUnavailable": 503,
}


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
    ) -> None:
        self._registry = registry
        self._authenticator = authenticator
        self._admins = frozenset(admins)
        self._clock_control = clock_control
        self._trusted_keys = trusted_keys  # public keys whose signed heads verify accepts
        self._signing_interval = timedelta(seconds=signing_interval)
        mirror = EventMirror.beside(registry.log)
        self._sql = SqlSandbox.online(mirror, sql_limits or SqlLimits())
        self._stops_sql_on_exit = False

    def routes(self) -> list[Route]:
        guarded = self._guarded
        return [
            Route("/-/provenance/{rest:path}", guarded(self.provenance), methods=["GET"]),
            Route("/-/admin/attest/{rest:path}", guarded(self.attest), methods=["GET"]),
            Route("/-/admin/log", guarded(self.log), methods=["GET"]),
            Route("/-/admin/sql", guarded(self.sql), methods=["POST"]),
            Route("/-/admin/export", guarded(self.export), methods=["GET"]),
            Route("/-/admin/verify", guarded(self.verify), methods=["POST"]),
            Route("/-/admin/rebuild", guarded(self.rebuild), methods=["POST"]),
            Route("/-/admin/clock", guarded(self.clock), methods=["POST"]),
            Route("/-/admin/lifecycle/run", guarded(self.lifecycle_run), methods=["POST"]),
            Route("/-/admin/gc", guarded(self.gc), methods=["POST"]),
            Route("/-/admin/scrub", guarded(self.scrub), methods=["POST"]),
            Route("/-/admin/retention/{rest:path}", guarded(self.retention), methods=["GET"]),
        ]

    def _guarded(self, endpoint: Endpoint) -> Endpoint:
        async def guarded(request: Request) -> Response:
            try:
                await self._authorize(request)
                if not self._registry.views_ready:
                    raise S3Error("ServiceUnavailable", "the views are catching up with the log")
                return await endpoint(request)
            except S3Error as exc:
                return _error(exc.status, exc.code, exc.message)
            except NoHistory as exc:
                return _error(404, "NoSuchKey", f"no current version of {exc}")
            except LogUntrusted as exc:  # the operator must act: say what and how
                return _error(409, "LogUntrusted", str(exc))
            except RegistryError as exc:
                error = s3_error_for(exc)
                return _error(error.status, error.code, error.message)

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

    @staticmethod
    def _object(request: Request) -> tuple[str, str]:
        raw: bytes = request.scope.get("raw_path") or request.url.path.encode()
        # /-/provenance/<bucket>/<key>, /-/admin/attest/... or /-/admin/retention/...; raw
        # for %2F in keys
        prefixes = (b"/-/provenance/", b"/-/admin/attest/", b"/-/admin/retention/")
        prefix = next((p for p in prefixes if raw.startswith(p)), prefixes[0])
        bucket, _, key = raw[len(prefix) :].partition(b"/")
        if not bucket or not key:
            raise S3Error("InvalidURI", "expected /<bucket>/<key>")
        return unquote_to_bytes(bucket).decode(), unquote_to_bytes(key).decode()

    async def _query(self, function: Callable[[], _T]) -> _T:
        return await self._registry.log.run_query(function)

    async def provenance(self, request: Request) -> Response:
        bucket, key = self._object(request)
        version_id = request.query_params.get("version-id")
        log = self._registry.log
        history = await self._query(lambda: object_history(log, bucket, key, version_id))
        if not history.events:
            raise S3Error("NoSuchKey", f"nothing recorded for s3://{bucket}/{key}")
        return JSONResponse(history.as_dict())

    async def attest(self, request: Request) -> Response:
        bucket, key = self._object(request)
        log = self._registry.log
        history = await self._query(lambda: object_history(log, bucket, key))
        return JSONResponse(attestation(history))

    async def log(self, request: Request) -> Response:
        params = request.query_params
        try:
            since = datetime.fromisoformat(params["since"]) if "since" in params else None
        except ValueError:
            raise S3Error("InvalidArgument", "since must be an ISO 8601 time") from None
        limit = _bounded_int(params.get("limit", "1000"), "limit", 1, MAX_LOG_EVENTS)
        order = params.get("order", "oldest")
        if order not in ("oldest", "newest"):
            raise S3Error("InvalidArgument", "order must be oldest or newest")
        log = self._registry.log
        bucket, newest = params.get("bucket"), order == "newest"
        events = await self._query(
            lambda: log_events(log, since=since, bucket=bucket, limit=limit, newest=newest)
        )
        return JSONResponse({"events": [event_dict(e) for e in events]})

    async def sql(self, request: Request) -> Response:
        """One read-only query in a sandboxed child (registry.sql). The answer is the
        child's JSON, passed through; errors are {"error": SqlError code, "message"}."""
        body = await request.body()
        if len(body) > MAX_SQL_BYTES:
            raise S3Error("InvalidRequest", "query too long")
        try:
            text = body.decode()
        except UnicodeDecodeError:
            raise S3Error("InvalidRequest", "the query is not UTF-8") from None
        self._stop_sql_on_exit()
        query = asyncio.ensure_future(self._sql.query(text))
        hung_up = asyncio.ensure_future(_disconnected(request))
        try:
            await asyncio.wait({query, hung_up}, return_when=asyncio.FIRST_COMPLETED)
        finally:  # whoever lost: the query is cancelled (its child killed) if the client left
            hung_up.cancel()
            if not query.done():
                query.cancel()
            await asyncio.gather(query, hung_up, return_exceptions=True)
        if query.cancelled():  # nobody is left to read an answer
            return Response(status_code=499)
        try:
            answer = query.result()
        except SqlError as exc:
            return _error(SQL_STATUS.get(exc.code, 500), exc.code, exc.message)
        return Response(answer, media_type="application/json")

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

    async def export(self, request: Request) -> Response:
        directory = Path(tempfile.mkdtemp(prefix="s3facade-export-"))
        log = self._registry.log
        target = await self._query(lambda: export_parquet(log, directory))
        cleanup = BackgroundTask(_remove_tree, directory)
        return FileResponse(target, media_type="application/vnd.apache.parquet", background=cleanup)

    async def verify(self, request: Request) -> Response:
        """The chain, its signed heads (`?head=SEQ:HASH`: and that the log extends a head
        saved earlier), the anchor, the views and every blob in use; `?incremental=true`:
        only what came after the last verified point (registry.verification)."""
        params = request.query_params
        head = params.get("head")
        try:
            saved_head = parse_head(head) if head else None
        except ValueError as exc:
            raise S3Error("InvalidArgument", str(exc)) from None
        audit = HeadAudit(self._trusted_keys, self._signing_interval, saved_head)
        registry, report = self._registry, VerifyReport()
        log = registry.log
        anchor = log.anchor.current if log.anchor is not None else None
        state = VerifiedPoint.path_beside(log.anchor.path) if log.anchor is not None else None
        since = None
        if params.get("incremental", "false").lower() == "true" and state is not None:
            since = VerifiedPoint.load(state)
        await self._query(lambda: verify_log(log, report, audit, anchor, since))
        await verify_stored(registry, report)
        if state is not None:
            record_verified(report, state)
        return JSONResponse(report.as_dict())

    async def rebuild(self, request: Request) -> Response:
        """Compare the views with the log; `?force=true` replaces them when they differ."""
        force = request.query_params.get("force", "false").lower() == "true"
        return JSONResponse(await self._registry.rebuild(self._provenance(request), force=force))

    async def gc(self, request: Request) -> Response:
        """One blob gc pass now (`?dry-run=true`: report only); see registry.gc."""
        dry_run = request.query_params.get("dry-run", "false").lower() == "true"
        report = await collect_garbage(self._registry, dry_run=dry_run, trigger="admin")
        return JSONResponse(report.as_dict())

    async def scrub(self, request: Request) -> Response:
        """One scrub pass now, at the configured rate; 409 while one runs (registry.scrub).
        The server's Scrubber is in the app state: the background pass shares its lock."""
        scrubber: Scrubber = request.app.state.scrubber
        try:
            report = await scrubber.run_pass(trigger="admin")
        except ScrubBusy as exc:
            return _error(409, "ScrubInProgress", str(exc))
        return JSONResponse(report.as_dict())

    async def retention(self, request: Request) -> Response:
        bucket, key = self._object(request)
        return JSONResponse(effective_retention(self._registry, bucket, key))

    async def lifecycle_run(self, request: Request) -> Response:
        """Apply the lifecycle rules now (`?dry-run=true`: plan only; `?bucket=`: one bucket)."""
        params = request.query_params
        dry_run = params.get("dry-run", "false").lower() == "true"
        buckets = [params["bucket"]] if "bucket" in params else None
        result = await run_lifecycle(self._registry, dry_run=dry_run, buckets=buckets)
        return JSONResponse(result.as_dict())

    async def clock(self, request: Request) -> Response:
        """Tests only (`test_clock = true`): move the retention clock forward."""
        if not self._clock_control:
            raise S3Error("AccessDenied", "clock control is off (test_clock in the config)")
        self._registry.clock.advance(float(request.query_params.get("advance", "0")))
        return JSONResponse({"now": self._registry.clock().isoformat() + "Z"})


def _bounded_int(text: str, name: str, low: int, high: int) -> int:
    if not text.isdigit() or not low <= int(text) <= high:
        raise S3Error("InvalidArgument", f"{name} must be an integer from {low} to {high}")
    return int(text)


def _remove_tree(directory: Path) -> None:
    for path in directory.iterdir():
        path.unlink()
    directory.rmdir()


async def _disconnected(request: Request) -> None:
    """Returns once the client has gone (the body has been read: nothing else arrives)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


def _error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": code, "message": message}, status_code=status)
