"""The ASGI application: operational endpoints under /-/, and the S3 request seam.

Every S3 request passes through `S3Gateway.__call__` once: addressing, authentication,
routing to the one handler its operation maps to, and rendering of any error. Handlers
only return responses or raise S3Error / domain errors.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from datetime import UTC
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from s3facade.access_log import AccessRecord
from s3facade.admin import AdminAPI
from s3facade.auth import AuthContext, Authenticator, PayloadMode, RequestView
from s3facade.authorization import RequestAuthorizer, RequestFacts
from s3facade.config import ANONYMOUS, ServerConfig
from s3facade.console import Console
from s3facade.context import ServerContext
from s3facade.cors_xml import actual_request_headers
from s3facade.domain_errors import s3_error_for
from s3facade.errors import S3Error
from s3facade.handlers import HANDLERS
from s3facade.metrics import CONTENT_TYPE, Metrics
from s3facade.operations import Operation, parse_operation, resolve_address
from s3facade.registry import Provenance, Registry
from s3facade.registry.access.principals import UserDirectory
from s3facade.registry.errors import (
    NoSuchBucket,
    NoSuchKey,
    NoSuchUpload,
    NoSuchVersion,
    RegistryError,
    StoredBytesDamaged,
)
from s3facade.registry.gc import run_periodically
from s3facade.registry.log import LAKE_MAINTENANCE_SECONDS, LOG_POLL_SECONDS
from s3facade.registry.scrub import Scrubber
from s3facade.registry.sql import SqlLimits
from s3facade.registry.sweeper import Sweeper
from s3facade.request import RequestBody, S3Request
from s3facade.responses import error_response

log = logging.getLogger("s3facade")

# Request ids need to be unique, not secret: a seeded generator, not a system call each.
_REQUEST_IDS = random.Random(os.urandom(32))

OPS_PREFIX = "/-/"
STARTING = "The server is starting: its views are catching up with the log. Retry shortly."


# What a request answers about a name another gateway may have just made.
_MISSES = (NoSuchBucket, NoSuchKey, NoSuchVersion, NoSuchUpload)


def _unsigned(trace: Mapping[str, str]) -> bool:
    return trace.get("principal", ANONYMOUS) == ANONYMOUS


class S3Gateway:
    def __init__(self, config: ServerConfig, registry: Registry) -> None:
        self._config = config
        self.metrics = Metrics(registry)
        self.users = UserDirectory(list(config.users.values()))
        # One authoriser (and its denial budget) for the S3 API and the console.
        self.access = RequestAuthorizer(
            registry, self.metrics.anonymous_denied.inc, self.metrics.unrecorded_denied.inc
        )
        self._context = ServerContext(
            registry=registry,
            region=config.region,
            users=self.users,
            access=self.access,
            credentials=config.credentials,
        )
        credentials = dict(config.credentials)
        self.authenticator = Authenticator(credentials.get, config.region)
        self._log = registry.log

    def virtual_host_bucket(self, host: str) -> str | None:
        domain = self._config.base_domain
        hostname = host.rsplit(":", 1)[0].lower()
        if domain and hostname.endswith("." + domain):
            return hostname[: -len(domain) - 1]
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request_id = f"{_REQUEST_IDS.getrandbits(64):016X}"
        method: str = scope["method"]
        headers = Headers(scope=scope)
        raw_path: bytes = scope.get("raw_path") or scope["path"].encode()
        resource = "/"
        body = RequestBody(receive, headers)
        started = time.perf_counter()
        trace: dict[str, str] = {}
        record = AccessRecord(request_id, method, headers.get("user-agent", ""), started)
        error: S3Error | None = None
        try:
            try:
                response = await self._handle(scope, body, headers, raw_path, request_id, trace)
            except _MISSES:
                if not self._log.shared or body.received or _unsigned(trace):
                    raise
                # Made on another gateway since this one last polled? Take on the log's news
                # and answer again (no byte of the body was read: nothing to replay). A
                # write deciding on what exists is checked at its commit instead. Not for
                # anonymous requests: names made up by anyone must not each cost a poll.
                await self._log.sync()
                response = await self._handle(scope, body, headers, raw_path, request_id, trace)
        except S3Error as exc:
            error = exc
        except RegistryError as exc:
            if isinstance(exc, StoredBytesDamaged):  # the store's fault: the operator must know
                log.error("request %s: %s", request_id, exc)
            error = s3_error_for(exc)
        except Exception as exc:
            # One line; the traceback only for those debugging (--log-level debug).
            log.error("request %s failed: %s: %s", request_id, type(exc).__name__, exc)
            log.debug("request %s", request_id, exc_info=True)
            error = S3Error("InternalError")
            raw_path = resource.encode()
        if error is not None:
            response = self._error(error, request_id, raw_path, method)
            record.error = error.code
        bucket = trace.get("bucket")
        if bucket is not None and "origin" in headers and method != "OPTIONS":
            response.headers.update(self._cors_headers(bucket, headers, method))
        response.headers["x-amz-request-id"] = request_id
        response.headers["x-amz-id-2"] = request_id
        response.headers["Server"] = "s3facade"
        if not await body.settle():
            response.headers["Connection"] = "close"
        operation = trace.get("operation", "Unrouted")
        self.metrics.observe(operation, response.status_code, time.perf_counter() - started)
        record.operation, record.status = operation, response.status_code
        record.principal = trace.get("principal", "-")
        record.bucket, record.key = trace.get("bucket", ""), trace.get("key", "")
        try:
            await response(scope, receive, record.counting(send))
        except RegistryError as exc:
            # A streamed body failed after its headers went out (registry.integrity: bytes
            # that do not verify). The response must not complete: return without finishing
            # it and uvicorn closes the connection, so the client sees a truncated body. One
            # line here, and uvicorn's own "returned without completing response"; no traceback.
            log.error("request %s: %s; response cut off", request_id, exc)
            record.error = "ResponseCutOff"
        record.bytes_in = body.received
        record.emit()

    def _cors_headers(self, bucket: str, headers: Headers, method: str) -> dict[str, str]:
        """A cross-origin request's CORS headers from the bucket's rules (none when no rule
        matches: the browser then withholds the response from the page)."""
        access = self._context.access.bucket_access(bucket)
        if access is None:
            return {}
        # S3 matches on Access-Control-Request-Method when an actual request carries one.
        method = headers.get("access-control-request-method") or method
        return actual_request_headers(access.cors, headers.get("origin"), method)

    def _error(self, error: S3Error, request_id: str, raw_path: bytes, method: str) -> Response:
        resource = raw_path.decode("latin-1")
        return error_response(error, request_id, resource, head=method == "HEAD")

    async def _handle(
        self,
        scope: Scope,
        body: RequestBody,
        headers: Headers,
        raw_path: bytes,
        request_id: str,
        trace: dict[str, str],
    ) -> Response:
        method: str = scope["method"]
        host = headers.get("host", "")
        raw_query: bytes = scope.get("query_string", b"")
        if not self._context.registry.views_ready:
            raise S3Error("ServiceUnavailable", STARTING)
        if method == "OPTIONS":
            # A CORS preflight is never signed; a browser sends it to a presigned URL with
            # that URL's query, whose signature is for the request to come.
            auth = AuthContext(None, PayloadMode.UNSIGNED, None, None, False, None)
        else:
            auth = self.authenticator.authenticate(
                RequestView(method, raw_path, raw_query, _joined(headers)),
                vhost_bucket=self.virtual_host_bucket(host),
            )
        address = resolve_address(raw_path, host, self._config.base_domain)
        query = dict(parse_qsl(raw_query.decode("latin-1"), keep_blank_values=True))
        operation = parse_operation(method, address, query, headers)
        trace["operation"] = operation.action.value
        if operation.bucket is not None:
            trace["bucket"] = operation.bucket
        if operation.key is not None:
            trace["key"] = operation.key
        client = scope.get("client")
        user = self.users.get(auth.principal) if auth.principal is not None else None
        trace["principal"] = auth.principal or ANONYMOUS
        provenance = Provenance(
            principal=auth.principal or ANONYMOUS,
            client_address=f"{client[0]}:{client[1]}" if client else "",
            user_agent=headers.get("user-agent", ""),
            request_id=request_id,
        )
        registry = self._context.registry
        facts = RequestFacts(
            user,
            headers,
            query,
            client_ip=client[0] if client else "",
            secure=scope.get("scheme") == "https",
            signature_version=auth.signature_version,
            presigned=auth.presigned,
            now=registry.clock().replace(tzinfo=UTC),
            existing_tags=lambda: _current_tags(registry, operation),
        )
        request = S3Request(
            operation=operation,
            request_id=request_id,
            method=method,
            headers=headers,
            query=query,
            auth=auth,
            provenance=provenance,
            body=body.authenticated(auth),
            user=user,
            facts=facts,
            trace=trace,
        )
        access = self._context.access
        await access.authorize(operation, user, facts, provenance, headers)
        try:
            return await HANDLERS[operation.action](request, self._context)
        except NoSuchKey:
            # Without s3:ListBucket a missing key is 403, as on AWS: a caller that may not
            # list must not learn which keys exist.
            if operation.bucket is not None:
                listing = access.decide(user, "s3:ListBucket", operation.bucket, None, facts)
                if listing is not None and not listing.allowed:
                    raise S3Error("AccessDenied") from None
            raise


def _current_tags(registry: Registry, operation: Operation) -> Mapping[str, str] | None:
    """s3:ExistingObjectTag/<key>: the tags of the object the request names, if any."""
    if operation.bucket is None or operation.key is None:
        return None
    try:
        return registry.head_object(operation.bucket, operation.key).tags
    except RegistryError:
        return None


def _joined(headers: Headers) -> dict[str, str]:
    """Header name -> value, repeated headers joined with ',' as SigV4 canonicalises them."""
    joined: dict[str, str] = {}
    for name, value in headers.items():
        joined[name] = f"{joined[name]},{value}" if name in joined else value
    return joined


def build_app(config: ServerConfig, registry: Registry) -> Starlette:
    gateway = S3Gateway(config, registry)
    scrubber = Scrubber(registry, config.scrub_mib_per_second)  # background and admin passes

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def ready(request: Request) -> Response:
        """Ready or not for everyone; the details (paths, sizes, damage) for admins only."""
        checks = [await backend.health() for backend in registry.backends.values()]
        damage = registry.integrity.summary()
        space = registry.space
        concerns = [
            None if registry.views_ready else "the views are catching up with the log",
            registry.log.views_error,
            registry.untrusted,
            registry.log.anchor_error,
            "damaged blobs are known" if damage["count"] else None,
            "the disk is full" if space is not None and not space.held else None,
        ]
        status = "ok" if all(c.healthy for c in checks) and registry.views_ready else "unavailable"
        if status == "ok" and any(concerns):
            status = "degraded"  # still 200: all but the damaged or refused is served
        code = 503 if status == "unavailable" else 200
        try:
            admin_principal = await admin.admin_principal(request)
        except S3Error:
            admin_principal = None
        if admin_principal is None:
            return JSONResponse({"status": status}, status_code=code)
        anchor = registry.log.anchor
        body = {
            "status": status,
            "concerns": [c for c in concerns if c],
            "views": {
                "ready": registry.views_ready,
                "applied_while_loading": registry.views_loading,
            },
            "log": {
                "last_seq": registry.log.last_seq,
                "anchor_seq": anchor.current.seq if anchor is not None else None,
            },
            "backends": {c.backend_id: {"healthy": c.healthy, **c.detail} for c in checks},
            "space": space.state if space is not None else None,
            "damage": damage,
            "scrub": scrubber.summary(),
        }
        return JSONResponse(body, status_code=code)

    async def metrics(request: Request) -> Response:
        return Response(gateway.metrics.exposition(), media_type=CONTENT_TYPE)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # Listening first: /-/health answers at once, /-/ready once the views caught up.
        stop = asyncio.Event()
        loading = asyncio.create_task(_serve_in_background(stop), name="views-and-upkeep")
        yield
        stop.set()  # a gc pass in flight ends at its next blob and records what it removed
        scrubber.stop()  # a pass in flight ends at its next block, unrecorded
        await loading
        await registry.close()

    async def _serve_in_background(stop: asyncio.Event) -> None:
        """Load the views, then run the upkeep tasks until `stop`."""
        if not registry.views_ready:
            await registry.load_views(stop=stop)
            if not registry.views_ready:
                return  # stopped while loading: the next start goes on where this one left
        sweeper = Sweeper(registry, config.lifecycle_interval_seconds)  # bucket lifecycle rules
        sweeper.start()
        tasks = []
        if config.gc_interval_seconds > 0:
            gc = run_periodically(registry, config.gc_interval_seconds, stop)
            tasks.append(asyncio.create_task(gc, name="blob-gc"))
        if registry.log.shared:  # other gateways' events, applied as they are published
            poll = config.log.get("poll_seconds", LOG_POLL_SECONDS)
            tasks.append(asyncio.create_task(registry.log.follow(stop, poll), name="log-follow"))
            every = config.log.get("maintenance_seconds", LAKE_MAINTENANCE_SECONDS)
            if every > 0:
                upkeep = registry.log.maintain_periodically(stop, every)
                tasks.append(asyncio.create_task(upkeep, name="lake-maintenance"))
        if registry.head_signer is not None:
            tasks.append(asyncio.create_task(registry.head_signer.run(stop), name="head-signer"))
        if config.scrub_interval_seconds > 0:
            scrub = scrubber.run_periodically(config.scrub_interval_seconds)
            tasks.append(asyncio.create_task(scrub, name="blob-scrub"))
        await stop.wait()
        for task in tasks:
            await task
        await sweeper.stop()  # an expiry already queued in the log still commits on close

    trusted = set(config.head_trusted_keys)
    if registry.head_signer is not None:
        trusted.add(registry.head_signer.public_key)
    admin = AdminAPI(
        registry,
        gateway.authenticator,
        admins=config.admins,
        region=config.region,
        root=config.root_access_key_id,
        clock_control=config.test_clock,
        trusted_keys=frozenset(trusted),
        signing_interval=config.head_signing_interval_seconds,
        sql_limits=SqlLimits(
            timeout_seconds=config.sql_timeout_seconds,
            memory_mib=config.sql_memory_mib,
            threads=config.sql_threads,
            concurrency=config.sql_concurrency,
        ),
    )
    console = Console(  # the provenance console, /-/console (docs/console.md)
        registry, gateway.users, config.credentials, gateway.access,
        tls=config.scheme == "https",
    )  # fmt: skip
    ops = Starlette(
        routes=[
            Route("/-/health", health),
            Route("/-/ready", ready),
            Route("/-/metrics", metrics),
            *admin.routes(),
            *console.routes(),
        ],
        lifespan=lifespan,
    )

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not (
            scope["path"].startswith(OPS_PREFIX)
            and gateway.virtual_host_bucket(Headers(scope=scope).get("host", "")) is None
        ):
            await gateway(scope, receive, send)
        else:
            await ops(scope, receive, send)

    ops.state.gateway = gateway
    ops.state.scrubber = scrubber  # for POST /-/admin/scrub
    return app  # type: ignore[return-value]
