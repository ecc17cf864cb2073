"""The provenance console under /-/console: sign-in, buckets, keys, an object version's
timeline, lineage, retention and verify status, as server-rendered HTML.

Rights are the S3 API's, decided by the same code (s3facade.authorization): a bucket's
keys need s3:ListBucket, an object's page s3:GetObject (s3:GetObjectVersion for a named
version), its list of versions s3:ListBucketVersions. Refusals are recorded like the S3
API's (AccessDenied events, within the same budget).
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC
from importlib import resources
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from s3facade.authorization import DenialBudget, RequestAuthorizer, RequestFacts
from s3facade.console import html, pages
from s3facade.console.object_page import TIMELINE_LIMIT, object_page
from s3facade.console.session import COOKIE, COOKIE_PATH, SessionSigner, secret_matches
from s3facade.domain_errors import s3_error_for
from s3facade.errors import S3Error
from s3facade.registry import Provenance, Registry
from s3facade.registry.access.principals import User, UserDirectory
from s3facade.registry.audit import effective_retention, object_history
from s3facade.registry.console_queries import check_version, version_lineage
from s3facade.registry.errors import NoSuchKey, RegistryError

log = logging.getLogger("s3facade")

PAGE_KEYS = 100
MAX_FORM_BYTES = 8 * 1024
MAX_VERSIONS = 200
STATIC = {"console.css": "text/css; charset=utf-8"}
Page = Callable[[Request, User], Awaitable[Response]]


class Console:
    def __init__(
        self,
        registry: Registry,
        users: UserDirectory,
        credentials: Mapping[str, str],
        access: RequestAuthorizer,
        *,
        signer: SessionSigner | None = None,
        tls: bool = False,
    ) -> None:
        self._registry = registry
        self._users = users
        self._credentials = credentials
        self._access = access
        self._signer = signer or SessionSigner()
        self._tls = tls  # cookies are Secure when the server speaks HTTPS
        self._attempts = DenialBudget(burst=30, per_second=0.5)  # sign-ins per client address
        self._rendering: set[str] = set()  # users whose object page is being made
        self._static = {
            name: (resources.files("s3facade.console") / "static" / name).read_bytes()
            for name in STATIC
        }

    def routes(self) -> list[BaseRoute]:
        root, guarded = html.ROOT, self._signed_in
        return [
            Route(root, self.index, methods=["GET"]),
            Route(f"{root}/", self.index, methods=["GET"]),
            Route(f"{root}/sign-in", self.sign_in_form, methods=["GET"]),
            Route(f"{root}/sign-in", self.sign_in, methods=["POST"]),
            Route(f"{root}/sign-out", self.sign_out, methods=["POST"]),
            Route(f"{root}/static/{{name}}", self.static, methods=["GET"]),
            Route(f"{root}/buckets", guarded(self.buckets), methods=["GET"]),
            Route(f"{root}/b/{{bucket}}", guarded(self.listing), methods=["GET"]),
            Route(f"{root}/b/{{bucket}}/object", guarded(self.one_at_a_time), methods=["GET"]),
        ]

    # -- sessions ---------------------------------------------------------------------------

    async def index(self, request: Request) -> Response:
        return _redirect(html.url("/buckets"))

    async def sign_in_form(self, request: Request) -> Response:
        wanted = _local_path(request.query_params.get("next"))
        return html.page("Sign in", pages.sign_in_form(wanted))

    async def sign_in(self, request: Request) -> Response:
        if not _same_site(request):
            return html.error_page(403, "Sign-in forms are accepted from this site only.")
        client = request.client.host if request.client else ""
        if not self._attempts.take(client):
            return html.error_page(429, "Too many sign-in attempts; wait a minute.")
        form = await _form(request)
        if form is None:
            return html.error_page(400, "The form is too large or malformed.")
        access_key, secret = form.get("access_key", ""), form.get("secret", "")
        if not secret_matches(self._credentials, access_key, secret):
            log.warning("console: failed sign-in from %s", client)
            return html.error_page(403, "Sign-in failed: wrong access key id or secret.")
        cookie, _ = self._signer.issue(access_key)
        response = _redirect(_local_path(form.get("next")) or html.url("/buckets"))
        response.set_cookie(
            COOKIE, cookie, max_age=self._signer.lifetime, path=COOKIE_PATH, httponly=True,
            samesite="strict", secure=self._tls or request.url.scheme == "https",
        )  # fmt: skip
        return response

    async def sign_out(self, request: Request) -> Response:
        session = self._signer.read(request.cookies.get(COOKIE))
        if session is not None and _same_site(request):
            self._signer.revoke(session)
        response = _redirect(html.url("/sign-in"))
        response.delete_cookie(COOKIE, path=COOKIE_PATH, httponly=True, samesite="strict")
        return response

    def _signed_in(self, endpoint: Page) -> Callable[[Request], Awaitable[Response]]:
        async def guarded(request: Request) -> Response:
            session = self._signer.read(request.cookies.get(COOKIE))
            user = self._users.get(session.access_key) if session is not None else None
            if user is None:
                target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
                return _redirect(html.url("/sign-in", next=target))
            if not self._registry.views_ready:
                return html.error_page(503, "The server is starting; retry shortly.", user.name)
            try:
                return await endpoint(request, user)
            except S3Error as exc:
                return html.error_page(exc.status, exc.message, user.name)
            except RegistryError as exc:
                error = s3_error_for(exc)
                return html.error_page(error.status, error.message, user.name)

        return guarded

    async def static(self, request: Request) -> Response:
        name = request.path_params["name"]
        if name not in self._static:
            return html.error_page(404, "No such file.")
        headers = {**html.SECURITY_HEADERS, "Cache-Control": "max-age=3600"}
        return Response(self._static[name], media_type=STATIC[name], headers=headers)

    # -- pages ------------------------------------------------------------------------------

    async def buckets(self, request: Request, user: User) -> Response:
        facts = self._facts(request, user, {})
        shown = [
            bucket
            for bucket in self._registry.list_buckets()
            if user.admin or self._allowed(user, "s3:ListBucket", bucket.name, None, facts)
        ]
        body = pages.bucket_list(shown, self._users.display_name)
        return html.page("Buckets", body, user.name)

    async def listing(self, request: Request, user: User) -> Response:
        name = request.path_params["bucket"]
        params = request.query_params
        prefix, after = params.get("prefix", ""), params.get("after", "")
        delimiter = params.get("delimiter", "/")
        query = {"prefix": prefix, "delimiter": delimiter, "max-keys": str(PAGE_KEYS)}
        facts = self._facts(request, user, query)
        await self._require(request, user, "s3:ListBucket", name, None, facts)
        bucket = self._registry.bucket(name)
        page = self._registry.list_objects(
            name, prefix=prefix, delimiter=delimiter, after=after, max_keys=PAGE_KEYS
        )
        body = pages.listing(bucket, page, prefix, delimiter, after)
        return html.page(f"Bucket {name}", body, user.name)

    async def one_at_a_time(self, request: Request, user: User) -> Response:
        """An object's page reads its history from the log and re-hashes its blob: work for
        the server that a small page does not pay for. One at a time per user, so a user
        (who may read only one object) cannot keep both cores busy."""
        if user.access_key in self._rendering:
            return html.error_page(429, "One object page at a time; retry shortly.", user.name)
        self._rendering.add(user.access_key)
        try:
            return await self.object(request, user)
        finally:
            self._rendering.discard(user.access_key)

    async def object(self, request: Request, user: User) -> Response:
        bucket, params = request.path_params["bucket"], request.query_params
        key, version_id = params.get("key"), params.get("version") or None
        if not key:
            raise S3Error("InvalidArgument", "Which object? The key parameter is missing.")
        query = {"versionId": version_id} if version_id else {}
        facts = self._facts(request, user, query, bucket, key)
        permission = "s3:GetObjectVersion" if version_id else "s3:GetObject"
        await self._require(request, user, permission, bucket, key, facts, version_id)
        registry = self._registry
        try:
            version = registry.head_object(bucket, key, version_id)
        except NoSuchKey:  # as the S3 API: without s3:ListBucket, a missing key is 403
            if not self._allowed(user, "s3:ListBucket", bucket, None, facts):
                raise S3Error("AccessDenied") from None
            raise
        log_ = registry.log
        history = await log_.run_query(
            lambda: object_history(log_, bucket, key, version.version_id, TIMELINE_LIMIT)
        )
        retention = effective_retention(registry, bucket, key)
        mine = next(
            (v for v in retention["versions"] if v["version_id"] == version.version_id), None
        )
        if mine is not None:
            mine = {**mine, "now": retention["now"]}
        listed = None
        if self._allowed(user, "s3:ListBucketVersions", bucket, None, facts):
            listed = registry.views.versions(bucket, key)[:MAX_VERSIONS]
        lineage = version_lineage(history, version)
        shown = [*history.events, *(n.event for n in lineage.copies if n.event is not None)]
        check = await check_version(registry, version, sorted(shown, key=lambda e: e.seq))

        def visible(other_bucket: str, other_key: str, other_version: str | None) -> bool:
            """Whether the user may read the key (then its name may be shown): s3:GetObject
            on it, or s3:GetObjectVersion on the version named."""
            other = self._facts(request, user, {}, other_bucket, other_key)
            if self._allowed(user, "s3:GetObject", other_bucket, other_key, other):
                return True
            return other_version is not None and self._allowed(
                user, "s3:GetObjectVersion", other_bucket, other_key, other, other_version
            )

        body = object_page(
            version,
            self._users.display_name(version.owner),
            history,
            lineage,
            listed,
            mine,
            check,
            visible,
            self._users.display_name,
        )
        return html.page(f"{key}", body, user.name)

    # -- rights (s3facade.authorization, as for the S3 API) ---------------------------------

    def _facts(
        self,
        request: Request,
        user: User,
        query: Mapping[str, str],
        bucket: str | None = None,
        key: str | None = None,
    ) -> RequestFacts:
        registry = self._registry

        def tags() -> Mapping[str, str] | None:
            if bucket is None or key is None:
                return None
            try:
                return registry.head_object(bucket, key).tags
            except RegistryError:
                return None

        return RequestFacts(
            user,
            request.headers,
            query,
            client_ip=request.client.host if request.client else "",
            secure=request.url.scheme == "https",
            signature_version=None,
            presigned=False,
            now=registry.clock().replace(tzinfo=UTC),
            existing_tags=tags,
        )

    def _allowed(
        self,
        user: User,
        permission: str,
        bucket: str,
        key: str | None,
        facts: RequestFacts,
        version_id: str | None = None,
    ) -> bool:
        decision = self._access.decide(user, permission, bucket, key, facts, version_id)
        return decision is not None and decision.allowed

    async def _require(
        self,
        request: Request,
        user: User,
        permission: str,
        bucket: str,
        key: str | None,
        facts: RequestFacts,
        version_id: str | None = None,
    ) -> None:
        client = request.client
        provenance = Provenance(
            principal=user.access_key,
            client_address=f"{client.host}:{client.port}" if client else "",
            user_agent=request.headers.get("user-agent", ""),
            request_id=secrets.token_hex(8).upper(),
        )
        self._registry.bucket(bucket)  # NoSuchBucket (404) first, as the S3 API answers
        await self._access.require(user, permission, bucket, key, facts, provenance, version_id)


def _redirect(target: str) -> Response:
    return RedirectResponse(target, status_code=303, headers=html.SECURITY_HEADERS)


def _local_path(target: str | None) -> str | None:
    """A redirect target only within the console (no other host, no scheme)."""
    if not target or not target.startswith(html.ROOT + "/") or "\\" in target:
        return None
    if "//" in target or ".." in target or any(ord(c) < 0x20 for c in target):
        return None
    return target


def _same_site(request: Request) -> bool:
    """Browsers say where a form came from (Sec-Fetch-Site); other clients send nothing."""
    return request.headers.get("sec-fetch-site", "same-origin") in ("same-origin", "none")


async def _form(request: Request) -> dict[str, str] | None:
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            return None
    try:
        return dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
    except UnicodeDecodeError:
        return None
