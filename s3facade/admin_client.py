"""Talks to a running server's admin API, signing with SigV4 like any S3 client."""

from __future__ import annotations

import http.client
import json
import os
import ssl
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from typing import Any
from urllib.parse import quote, urlencode

import botocore.session
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ProfileNotFound

from s3facade.command_progress import STREAM_TYPE

Params = Mapping[str, str | Sequence[str]]


class AdminError(Exception):
    def __init__(self, status: int, code: str, message: str, body: bytes = b"") -> None:
        super().__init__(f"{code}: {message}")
        self.status = status
        self.code = code
        self.body = body  # the whole answer (a 503 /-/ready still carries its details)


# Upkeep over the admin API (a whole verify, a rebuild, gc) is linear in the data: at ten
# million versions, tens of minutes. The CLI waits that long for them.
UPKEEP_TIMEOUT = 24 * 3600.0


def find_credentials(profile: str | None = None) -> tuple[str, str]:
    """The server's own variables (S3FACADE_ACCESS_KEY_ID / _SECRET_ACCESS_KEY), else the
    aws cli's chain: AWS_* variables, then ~/.aws credentials and config (`profile`, else
    AWS_PROFILE, else default). Never the development keys unasked: without any, AdminError."""
    access_key = os.environ.get("S3FACADE_ACCESS_KEY_ID")
    secret = os.environ.get("S3FACADE_SECRET_ACCESS_KEY")
    if access_key and secret and profile is None:
        return access_key, secret
    try:
        found = botocore.session.Session(profile=profile).get_credentials()
    except ProfileNotFound as exc:
        raise AdminError(0, "NoCredentials", str(exc)) from None
    if found is None:
        raise AdminError(
            0,
            "NoCredentials",
            "no credentials: set S3FACADE_ACCESS_KEY_ID and S3FACADE_SECRET_ACCESS_KEY (or "
            "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY), or name a profile with --profile",
        )
    frozen = found.get_frozen_credentials()
    return frozen.access_key, frozen.secret_key


def ca_bundle(profile: str | None = None) -> str | None:
    """The CA bundle the aws cli would trust for an https:// endpoint: AWS_CA_BUNDLE, else
    the profile's `ca_bundle`; None: the system's."""
    try:
        found = botocore.session.Session(profile=profile).get_config_variable("ca_bundle")
    except ProfileNotFound:
        return None
    return str(found) if found else None


class AdminClient:
    def __init__(
        self,
        endpoint: str,
        region: str = "us-east-1",
        credentials: tuple[str, str] | None = None,
        timeout: float = 600,
        profile: str | None = None,
    ) -> None:
        self._endpoint = endpoint.rstrip("/")
        self._timeout = timeout
        self._region = region
        access_key, secret = credentials or find_credentials(profile)
        self._credentials = Credentials(access_key, secret)
        self._tls = ssl.create_default_context(cafile=ca_bundle(profile))

    def request(
        self, method: str, path: str, params: Params | None = None, body: bytes = b""
    ) -> bytes:
        with self._open(method, path, params, body) as response:
            try:
                data: bytes = response.read()
            except (OSError, http.client.HTTPException) as exc:
                raise AdminError(0, "Unreachable", f"{self._endpoint}: {exc}") from None
            return data

    def stream(
        self,
        method: str,
        path: str,
        params: Params | None,
        body: bytes,
        on_progress: Callable[[list[dict[str, Any]]], None],
    ) -> Any:
        """A long command's answer as JSON lines (s3facade.command_progress): progress
        lines go to `on_progress`, the last line is the result or the error."""
        with self._open(method, path, params, body, STREAM_TYPE) as response:
            try:
                lines = list(_lines(response, on_progress))
            except (OSError, http.client.HTTPException) as exc:
                raise AdminError(0, "Unreachable", f"{self._endpoint}: {exc}") from None
        message = json.loads(lines[-1]) if lines else {}
        if "result" in message:
            return message["result"]
        if "error" in message:
            status = int(message.get("status", 500))
            raise AdminError(status, message["error"], message["message"], lines[-1])
        raise AdminError(0, "IncompleteAnswer", "the server closed the answer without a result")

    def _open(
        self,
        method: str,
        path: str,
        params: Params | None,
        body: bytes,
        accept: str | None = None,
    ) -> Any:
        # %20, not +, for spaces: what SigV4 canonicalises
        query = f"?{urlencode(params, doseq=True, quote_via=quote)}" if params else ""
        signed = AWSRequest(method=method, url=f"{self._endpoint}{path}{query}", data=body)
        if accept is not None:
            signed.headers["Accept"] = accept
        S3SigV4Auth(self._credentials, "s3", self._region).add_auth(signed)
        request = urllib.request.Request(
            signed.url, data=body or None, method=method, headers=dict(signed.headers.items())
        )
        try:
            return urllib.request.urlopen(request, timeout=self._timeout, context=self._tls)
        except urllib.error.HTTPError as exc:
            payload = exc.read()
            try:
                error = json.loads(payload)
                raise AdminError(exc.code, error["error"], error["message"], payload) from None
            except (ValueError, KeyError):
                message = payload[:200].decode(errors="replace")
                raise AdminError(exc.code, str(exc.code), message, payload) from None
        except urllib.error.URLError as exc:
            raise AdminError(0, "Unreachable", f"{self._endpoint}: {exc.reason}") from None

    def json(self, method: str, path: str, params: Params | None = None, body: bytes = b"") -> Any:
        return json.loads(self.request(method, path, params, body))


def _lines(response: Any, on_progress: Callable[[list[dict[str, Any]]], None]) -> Any:
    """The answer's lines, progress handed on as it arrives; the last one is the outcome."""
    for line in response:
        message = json.loads(line)
        if "progress" in message:
            on_progress(message["progress"])
        else:
            yield line


def object_path(prefix: str, bucket: str, key: str) -> str:
    return f"{prefix}/{quote(bucket, safe='')}/{quote(key, safe='/')}"
