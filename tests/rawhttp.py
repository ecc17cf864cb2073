"""Raw, SigV4-signed HTTP requests for tests that must control every header and byte.

Signing uses botocore's own signer (`S3SigV4Auth` / `S3SigV4QueryAuth`), so a request
built here is signed exactly as boto3 would sign it; the helpers only let a test pick
the payload hash, the clock and the credentials, and send the bytes with `http.client`
(no path normalisation, no added headers) or a bare socket (truncated bodies).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.client
import socket
import time
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from unittest import mock
from urllib.parse import quote, unquote_to_bytes

import botocore.auth
from botocore.auth import S3SigV4Auth, S3SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from lxml import etree

from tests.conftest import ACCESS_KEY, REGION, SECRET_KEY

EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
STREAMING_SIGNED = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
STREAMING_UNSIGNED_TRAILER = "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
STREAMING_SIGNED_TRAILER = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER"


# --- signing --------------------------------------------------------------------------


class _Signer(S3SigV4Auth):
    """botocore's S3 SigV4 signer with a chosen x-amz-content-sha256 value."""

    def __init__(self, credentials: Credentials, payload: str | None) -> None:
        super().__init__(credentials, "s3", REGION)
        self._payload = payload

    def payload(self, request: AWSRequest) -> str:
        if self._payload is not None:
            return self._payload
        result: str = super().payload(request)
        return result


def canonical_path(raw_path: str) -> str:
    """The path SigV4 signs for a raw path: each segment decoded, then AWS-URI-encoded."""
    return "/".join(quote(unquote_to_bytes(seg), safe="-_.~") for seg in raw_path.split("/"))


def _clock(when: datetime | None) -> mock._patch[object] | _NoPatch:
    if when is None:
        return _NoPatch()
    naive = when.astimezone(UTC).replace(tzinfo=None)
    return mock.patch.object(botocore.auth, "get_current_datetime", lambda: naive)


class _NoPatch:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def sign(
    port: int,
    method: str,
    path: str,
    query: str = "",
    headers: Mapping[str, str] | None = None,
    body: bytes = b"",
    *,
    payload: str | None = None,
    access_key: str = ACCESS_KEY,
    secret_key: str = SECRET_KEY,
    when: datetime | None = None,
) -> dict[str, str]:
    """Headers (given ones plus Host, X-Amz-Date, X-Amz-Content-SHA256, Authorization)
    for a request to `path` (as it goes on the wire) signed by botocore."""
    url = f"http://127.0.0.1:{port}{canonical_path(path)}" + (f"?{query}" if query else "")
    request = AWSRequest(method=method, url=url, headers=dict(headers or {}), data=body)
    request.headers["Host"] = f"127.0.0.1:{port}"
    with _clock(when):
        _Signer(Credentials(access_key, secret_key), payload).add_auth(request)
    return {name: str(value) for name, value in request.headers.items()}


def presign(
    port: int,
    method: str,
    path: str,
    *,
    expires: int = 3600,
    when: datetime | None = None,
    access_key: str = ACCESS_KEY,
    secret_key: str = SECRET_KEY,
) -> str:
    """A SigV4 presigned path+query (no scheme/host), signed by botocore."""
    url = f"http://127.0.0.1:{port}{canonical_path(path)}"
    request = AWSRequest(method=method, url=url, headers={"Host": f"127.0.0.1:{port}"})
    with _clock(when):
        S3SigV4QueryAuth(
            Credentials(access_key, secret_key), "s3", REGION, expires=expires
        ).add_auth(request)
    signed_url: str = request.url
    return signed_url.split(f"127.0.0.1:{port}", 1)[1]


def signature_of(headers: Mapping[str, str]) -> str:
    return headers["Authorization"].rsplit("Signature=", 1)[1].strip()


def signing_key(date: str, secret_key: str = SECRET_KEY) -> bytes:
    key = hmac.new(f"AWS4{secret_key}".encode(), date.encode(), hashlib.sha256).digest()
    for part in (REGION, "s3", "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key


# --- aws-chunked bodies ----------------------------------------------------------------


def crc32_b64(data: bytes) -> str:
    return base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()


def unsigned_chunked(
    chunks: Sequence[bytes], trailers: Sequence[tuple[str, str]] = (), *, final: bool = True
) -> bytes:
    """STREAMING-UNSIGNED-PAYLOAD-TRAILER framing; `final=False` stops before the 0-chunk."""
    out = b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in chunks if c)
    if not final:
        return out
    out += b"0\r\n"
    out += b"".join(f"{n}:{v}\r\n".encode() for n, v in trailers)
    return out + b"\r\n"


def signed_chunked(
    chunks: Sequence[bytes],
    headers: Mapping[str, str],
    *,
    tamper: int | None = None,
    trailers: Sequence[tuple[str, str]] | None = None,
    tamper_trailer: bool = False,
) -> bytes:
    """STREAMING-AWS4-HMAC-SHA256-PAYLOAD framing chained on the request's signature
    (with `trailers`: the -TRAILER variant, ending in a signed x-amz-trailer-signature).

    `tamper`: index of the chunk (len(chunks) = the final 0-chunk) whose signature is
    replaced by a wrong one; the chain continues from the correct value.
    """
    amz_date = headers["X-Amz-Date"]
    scope = f"{amz_date[:8]}/{REGION}/s3/aws4_request"
    key = signing_key(amz_date[:8])
    previous = signature_of(headers)
    out = b""
    for index, chunk in enumerate([*chunks, b""]):
        sts = "\n".join(
            (
                "AWS4-HMAC-SHA256-PAYLOAD",
                amz_date,
                scope,
                previous,
                EMPTY_SHA256,
                hashlib.sha256(chunk).hexdigest(),
            )
        )
        signature = hmac.new(key, sts.encode(), hashlib.sha256).hexdigest()
        previous = signature
        if index == tamper:
            signature = ("0" if signature[0] != "0" else "1") + signature[1:]
        out += b"%x;chunk-signature=%s\r\n%s\r\n" % (len(chunk), signature.encode(), chunk)
    if trailers is None:
        return out
    out = out[: -len(b"\r\n")]  # the trailers follow the 0-chunk's header line directly
    canonical = "".join(f"{name}:{value}\n" for name, value in trailers)
    sts = "\n".join(
        (
            "AWS4-HMAC-SHA256-TRAILER",
            amz_date,
            scope,
            previous,
            hashlib.sha256(canonical.encode()).hexdigest(),
        )
    )
    signature = hmac.new(key, sts.encode(), hashlib.sha256).hexdigest()
    if tamper_trailer:
        signature = ("0" if signature[0] != "0" else "1") + signature[1:]
    out += b"".join(f"{name}:{value}\r\n".encode() for name, value in trailers)
    return out + f"x-amz-trailer-signature:{signature}\r\n\r\n".encode()


# --- sending ---------------------------------------------------------------------------


@dataclass
class Reply:
    status: int
    headers: dict[str, str]  # lower-case names
    body: bytes

    @property
    def xml(self) -> etree._Element:
        return etree.fromstring(self.body)

    def field(self, name: str) -> str | None:
        node = self.xml.find(name)
        return None if node is None else (node.text or "")

    @property
    def code(self) -> str | None:
        return self.field("Code") if self.body else None


def send(
    port: int,
    method: str,
    path: str,
    query: str = "",
    headers: Mapping[str, str] | None = None,
    body: bytes = b"",
    *,
    signed: bool = True,
    content_length: bool = True,
    timeout: float = 4,
    **sign_options: object,
) -> Reply:
    """One request over http.client, the path sent exactly as given."""
    all_headers = dict(headers or {})
    if content_length and (body or method in ("PUT", "POST")):
        all_headers.setdefault("Content-Length", str(len(body)))
    if signed:
        all_headers = sign(port, method, path, query, all_headers, body, **sign_options)  # type: ignore[arg-type]
    else:
        all_headers.setdefault("Host", f"127.0.0.1:{port}")
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.putrequest(
            method, path + (f"?{query}" if query else ""), skip_host=True, skip_accept_encoding=True
        )
        for name, value in all_headers.items():
            conn.putheader(name, value)
        conn.endheaders(body or None)
        response = conn.getresponse()
        data = response.read()
        return Reply(response.status, {k.lower(): v for k, v in response.getheaders()}, data)
    finally:
        conn.close()


def request_head(
    port: int, method: str, path: str, headers: Mapping[str, str], query: str = ""
) -> bytes:
    lines = [f"{method} {path}{'?' + query if query else ''} HTTP/1.1"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def raw_exchange(port: int, data: bytes, *, half_close: bool = True, timeout: float = 4) -> bytes:
    """Write `data` on a fresh connection, optionally shut the write side, and return
    whatever the server sends until it closes (or `timeout` passes)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        if half_close:
            sock.shutdown(socket.SHUT_WR)
        received = b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                piece = sock.recv(65536)
            except (ConnectionResetError, TimeoutError):
                break
            if not piece:
                break
            received += piece
            if not half_close and _complete(received):
                break
        return received


def _complete(response: bytes) -> bool:
    head, sep, body = response.partition(b"\r\n\r\n")
    if not sep:
        return False
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return len(body) >= int(value.strip())
    return False


def parse_raw(response: bytes) -> Reply | None:
    """Status, headers and body of a raw HTTP/1.1 response (None if nothing came back)."""
    if not response:
        return None
    head, _, body = response.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if "chunked" in headers.get("transfer-encoding", ""):
        decoded, rest = b"", body
        while rest:
            size_line, _, rest = rest.partition(b"\r\n")
            size = int(size_line.split(b";")[0] or b"0", 16)
            if size == 0:
                break
            decoded, rest = decoded + rest[:size], rest[size + 2 :]
        body = decoded
    return Reply(status, headers, body)
