"""Connections: slow or idle clients cannot hold the server.

uvicorn arms its keep-alive timeout only after a response, so a connection that sends
nothing, or trickles its headers or body, would be held forever, and enough of them
exhaust the process's descriptors. `GuardedHttpProtocol` bounds each phase of a
connection with a timer (the body's runs beside the connection's, see `_watch_body`):

- waiting for a request: closed after `idle_timeout_seconds` (a fresh connection also
  after `header_timeout_seconds`, counted from connect);
- headers arriving: `header_timeout_seconds` from the first byte of the request (from
  connect for the first request), then `400 RequestTimeout` and close;
- body arriving: `body_timeout_seconds` of silence while the app waits in `receive()`,
  then `400 RequestTimeout`, close, and the app sees `http.disconnect`. Time the app
  spends elsewhere (uvicorn pauses reading then) does not count.

Beyond `max_connections` a connection gets `503 SlowDown` as soon as it is accepted.

uvicorn internals relied on (pinned uvicorn 0.54, `httptools_impl`), all here:
  HttpToolsProtocol: the parser callbacks `on_message_begin` / `on_headers_complete`,
  the cycle callback `on_response_complete`, and the attributes `app` (the ASGI app each
  request runs), `cycle` (the newest request), `pipeline`, `transport`, `loop`,
  `server_state.default_headers` (the Date header).
  RequestResponseCycle: `scope`, `response_started`, `response_complete`,
  `disconnected`, `message_event`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import resource
import secrets
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, ClassVar

import uvicorn
from starlette.types import ASGIApp
from uvicorn._types import ASGIReceiveCallable, ASGIReceiveEvent, ASGISendCallable, Scope
from uvicorn.config import STARTUP_FAILURE
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from s3facade.config import ServerConfig
from s3facade.errors import S3Error
from s3facade.responses import error_response

log = logging.getLogger("s3facade")

# Descriptors needed beside one per connection: blobs open for reads and writes, DuckDB's
# files, upstream connection pools, the listening socket, logs.
DESCRIPTOR_MARGIN = 256
# A refused client gets this long to read its 503 and close. Reading (and dropping) its
# request meanwhile keeps our close from becoming a reset that could discard the 503.
REFUSED_LINGER_SECONDS = 2.0
REFUSAL_WARNING_INTERVAL = 10.0  # a flood of refusals logs one line per interval


@dataclass
class ConnectionGate:
    """One server's limits, and the connections it has admitted."""

    header_timeout: float
    idle_timeout: float
    body_timeout: float
    max_connections: int
    admitted: int = 0
    refused: int = 0  # since the last warning
    warned_at: float = -math.inf

    @classmethod
    def from_config(cls, config: ServerConfig) -> ConnectionGate:
        return cls(
            header_timeout=config.header_timeout_seconds,
            idle_timeout=config.idle_timeout_seconds,
            body_timeout=config.body_timeout_seconds,
            max_connections=config.max_connections,
        )

    def note_refusal(self) -> None:
        self.refused += 1
        now = time.monotonic()
        if now - self.warned_at >= REFUSAL_WARNING_INTERVAL:
            log.warning(
                "max_connections (%d) reached: %d connection(s) refused with 503 SlowDown",
                self.max_connections,
                self.refused,
            )
            self.refused, self.warned_at = 0, now


class GuardedHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with the gate's timeouts and connection cap."""

    gate: ClassVar[ConnectionGate]

    def __init__(
        self,
        config: uvicorn.Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self._timer: asyncio.TimerHandle | None = None
        self._admitted = False
        self._refused = False
        self._in_headers = False  # between a request's first byte and its last header
        self._first_request = True
        self._header_deadline = 0.0  # of the first request: counted from connect
        inner = self.app

        async def app(scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
            await inner(scope, self._watch_body(receive), send)

        self.app = app

    # --- connection -------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        gate = self.gate
        if gate.admitted >= gate.max_connections:
            self._refused = True
            gate.note_refusal()
            transport.write(error_bytes("SlowDown", "/", self.server_state.default_headers))
            transport.write_eof()
            self._arm(REFUSED_LINGER_SECONDS, transport.close)
            return
        gate.admitted += 1
        self._admitted = True
        self._header_deadline = self.loop.time() + gate.header_timeout
        self._arm(min(gate.idle_timeout, gate.header_timeout), transport.close)

    def data_received(self, data: bytes) -> None:
        if not self._refused:  # a refused client's request is read only to be dropped
            super().data_received(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        if self._admitted:
            self.gate.admitted -= 1
            self._admitted = False
        super().connection_lost(exc)

    # --- phases -----------------------------------------------------------------------

    def on_message_begin(self) -> None:
        super().on_message_begin()
        now = self.loop.time()
        deadline = self._header_deadline if self._first_request else now + self.gate.header_timeout
        self._first_request = False
        self._in_headers = True
        self._arm(deadline - now, self._headers_timed_out)

    def on_headers_complete(self) -> None:
        self._in_headers = False
        self._disarm()
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        pipelined = bool(self.pipeline)  # then the next request starts at once
        super().on_response_complete()
        if not (pipelined or self._in_headers or self.transport.is_closing()):
            self._arm(self.gate.idle_timeout, self.transport.close)

    def _watch_body(self, receive: ASGIReceiveCallable) -> ASGIReceiveCallable:
        """`receive` with the body timeout running while the app waits for body bytes."""
        done = False

        async def watched() -> ASGIReceiveEvent:
            nonlocal done
            if done:  # e.g. Starlette listening for a disconnect while it streams
                return await receive()
            # A timer of its own: the connection's timer may meanwhile bound the headers
            # of a pipelined request that began in the same packet as this body's end.
            timer = self.loop.call_later(self.gate.body_timeout, self._body_timed_out)
            try:
                message = await receive()
            finally:
                timer.cancel()
            done = message["type"] == "http.disconnect" or not message.get("more_body", False)
            return message

        return watched

    # --- expiry -----------------------------------------------------------------------

    def _headers_timed_out(self) -> None:
        cycle = self.cycle
        if cycle is None or cycle.response_complete:  # no response of ours is on the wire
            default_headers = self.server_state.default_headers
            self.transport.write(error_bytes("RequestTimeout", "/", default_headers))
        self.transport.close()

    def _body_timed_out(self) -> None:
        # Runs only while the app waits for body bytes that have not arrived, so no later
        # request has been parsed yet: `self.cycle` is the request whose body stopped.
        cycle = self.cycle
        if not cycle.response_started:
            path = cycle.scope["raw_path"].decode("latin-1")
            default_headers = self.server_state.default_headers
            self.transport.write(error_bytes("RequestTimeout", path, default_headers))
        # The app's receive() now answers http.disconnect and its sends are dropped, so
        # the upload fails and nothing partial is stored.
        cycle.disconnected = True
        cycle.message_event.set()
        self.transport.close()

    def _arm(self, delay: float, callback: Callable[[], object]) -> None:
        """Bound the connection's current phase (idle, headers, refused), replacing the
        previous phase's timer."""
        self._disarm()
        self._timer = self.loop.call_later(delay, callback)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


def error_bytes(code: str, resource: str, default_headers: list[tuple[bytes, bytes]]) -> bytes:
    """A whole `Connection: close` S3 error response, rendered like every other error."""
    request_id = secrets.token_hex(8).upper().encode()
    response = error_response(S3Error(code), request_id.decode(), resource, head=False)
    status = HTTPStatus(response.status_code)
    headers = [
        *default_headers,
        *response.raw_headers,
        (b"x-amz-request-id", request_id),
        (b"x-amz-id-2", request_id),
        (b"server", b"s3facade"),
        (b"connection", b"close"),
    ]
    head = f"HTTP/1.1 {status.value} {status.phrase}\r\n".encode()
    fields = b"".join(name + b": " + value + b"\r\n" for name, value in headers)
    return head + fields + b"\r\n" + bytes(response.body)


def protocol_for(gate: ConnectionGate) -> type[GuardedHttpProtocol]:
    """The protocol class uvicorn instantiates per connection, bound to one gate."""

    class Protocol(GuardedHttpProtocol):
        pass

    Protocol.gate = gate
    return Protocol


def raise_descriptor_limit() -> int:
    """Raise the RLIMIT_NOFILE soft limit to the hard limit; the soft limit in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and (hard == resource.RLIM_INFINITY or hard > soft):
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError) as exc:  # e.g. macOS refuses an infinite soft limit
            log.warning("cannot raise the descriptor limit from %d: %s", soft, exc)
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


class _AnnouncingServer(uvicorn.Server):
    """Says it serves once its socket is bound, not before (a busy port must not be
    announced as served)."""

    announce = ""

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started and self.announce:
            print(self.announce, file=sys.stderr, flush=True)


def serve_app(app: ASGIApp, config: ServerConfig, *, log_level: str, announce: str = "") -> None:
    """Run `app` on uvicorn with the connection limits of `config` (what `uvicorn.run`
    does, with `GuardedHttpProtocol`), until a signal stops it; `announce` is printed once
    it listens."""
    limit = raise_descriptor_limit()
    shown = "unlimited" if limit == resource.RLIM_INFINITY else str(limit)
    log.info("descriptor limit (RLIMIT_NOFILE): %s", shown)
    needed = config.max_connections + DESCRIPTOR_MARGIN
    if limit != resource.RLIM_INFINITY and needed > limit:
        log.warning(
            "max_connections (%d) plus %d for blobs, the log and upstream sockets exceeds "
            "the descriptor limit (%d): raise the hard limit or lower max_connections",
            config.max_connections,
            DESCRIPTOR_MARGIN,
            limit,
        )
    server = _AnnouncingServer(
        uvicorn.Config(
            app,
            host=config.host,
            port=config.port,
            log_level=log_level,
            log_config=None,  # s3facade.access_log configured logging, uvicorn's included
            ssl_certfile=config.tls_cert,
            ssl_keyfile=config.tls_key,
            server_header=False,
            access_log=False,  # s3facade.access_log writes a richer line per request
            # Our idle timer is the one that counts; uvicorn's own (after a response,
            # cancelled by any byte) agrees with it.
            timeout_keep_alive=math.ceil(config.idle_timeout_seconds),
            http=protocol_for(ConnectionGate.from_config(config)),
            ws="none",  # an upgraded connection would leave these limits behind
        )
    )
    server.announce = announce
    with contextlib.suppress(KeyboardInterrupt):  # uvicorn re-raises the SIGINT it stopped on
        server.run()
    if not server.started:
        sys.exit(STARTUP_FAILURE)
