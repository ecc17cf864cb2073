"""Talks to a running server's admin API, signing with SigV4 like any S3 client."""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import quote, urlencode

from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from s3facade.config import DEV_ACCESS_KEY_ID, DEV_SECRET_ACCESS_KEY


class AdminError(Exception):
    def __init__(self, status: int, code: str, message: str, body: bytes = b"") -> None:
        super().__init__(f"{code}: {message}")
        self.status = status
        self.code = code
        self.body = body  # the whole answer (a 503 /-/ready still carries its details)


# Upkeep over the admin API (a whole verify, a rebuild, gc) is linear in the data: at ten
# million versions, tens of minutes. The CLI waits that long for them.
UPKEEP_TIMEOUT = 24 * 3600.0


class AdminClient:
    def __init__(
        self,
        endpoint: str,
        region: str = "us-east-1",
        credentials: tuple[str, str] | None = None,
        timeout: float = 600,
    ) -> None:
        self._endpoint = endpoint.rstrip("/")
        self._timeout = timeout
        self._region = region
        # The server's own variables first, then the AWS ones every S3 user has set.
        access_key, secret = credentials or (
            os.environ.get("S3FACADE_ACCESS_KEY_ID")
            or os.environ.get("AWS_ACCESS_KEY_ID")
            or DEV_ACCESS_KEY_ID,
            os.environ.get("S3FACADE_SECRET_ACCESS_KEY")
            or os.environ.get("AWS_SECRET_ACCESS_KEY")
            or DEV_SECRET_ACCESS_KEY,
        )
        self._credentials = Credentials(access_key, secret)

    def request(
        self,
        method: str,
        path: str,
        params: dict[str, str] | None = None,
        body: bytes = b"",
    ) -> bytes:
        query = f"?{urlencode(params)}" if params else ""
        signed = AWSRequest(method=method, url=f"{self._endpoint}{path}{query}", data=body)
        S3SigV4Auth(self._credentials, "s3", self._region).add_auth(signed)
        request = urllib.request.Request(
            signed.url, data=body or None, method=method, headers=dict(signed.headers.items())
        )
        try:
            with urllib.request.urlopen(request, timeout=self._timeout) as response:
                data: bytes = response.read()
                return data
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

    def json(
        self, method: str, path: str, params: dict[str, str] | None = None, body: bytes = b""
    ) -> Any:
        return json.loads(self.request(method, path, params, body))


def object_path(prefix: str, bucket: str, key: str) -> str:
    return f"{prefix}/{quote(bucket, safe='')}/{quote(key, safe='/')}"
