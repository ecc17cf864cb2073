"""PostObject: a browser uploads one file with an HTML form whose fields carry a signed
POST policy. https://docs.aws.amazon.com/AmazonS3/latest/API/RESTObjectPOST.html

The form is read as it streams: its text fields first, then the file, hashed on its way to
the backend and never held whole. The signature over the policy says who uploads; that user
is then authorised for s3:PutObject on the key, like any write.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import replace
from datetime import UTC
from urllib.parse import quote, urlencode, urlsplit, urlunsplit

from starlette.datastructures import Headers
from starlette.responses import Response

from s3facade.config import ANONYMOUS
from s3facade.context import ServerContext
from s3facade.errors import S3Error
from s3facade.handlers.access import requested_acl
from s3facade.handlers.objects import object_spec, write_headers
from s3facade.handlers.tagging import tags_from_document
from s3facade.integrity import UploadIntegrity
from s3facade.post_form import PostForm, read_post_form
from s3facade.post_policy import (
    PostPolicy,
    check_length,
    check_post_policy,
    content_length_range,
    parse_post_policy,
    post_signer,
)
from s3facade.registry.names import check_key
from s3facade.request import S3Request
from s3facade.responses import xml_response
from s3facade.xml import Document, add

# Form fields that become the object's stored headers (as PutObject's request headers do).
_STORED = ("cache-control", "content-disposition", "content-encoding", "content-type", "expires")
_STATUSES = {"200": 200, "201": 201, "204": 204}


async def post_object(req: S3Request, server: ServerContext) -> Response:
    form = await read_post_form(req.body.stream(), req.headers.get("content-type", ""))
    fields = dict(form.fields)
    if "key" not in fields:
        raise S3Error(
            "InvalidArgument",
            "Bucket POST must contain a field named 'key'.  If it is specified, please check "
            "the order of the fields.",
            extra={"ArgumentName": "key", "ArgumentValue": ""},
        )
    # S3 checks the policy's conditions against the key with ${filename} filled in.
    fields["key"] = fields["key"].replace("${filename}", form.filename)
    key = fields["key"]
    check_key(key)
    signer = post_signer(fields, server.credentials.get, server.region)
    policy = parse_post_policy(fields["policy"]) if "policy" in fields else None
    if policy is not None:
        check_post_policy(
            policy,
            fields,
            req.bucket,
            server.registry.clock().replace(tzinfo=UTC),
            field_names=form.field_names,
        )
    user = server.users.get(signer) if signer is not None else None
    provenance = replace(req.provenance, principal=signer or ANONYMOUS)
    req.trace["principal"] = provenance.principal
    form_headers = _form_headers(fields)
    facts = req.facts.of_form(user, fields, _signature_version(fields))
    await server.access.require(user, "s3:PutObject", req.bucket, key, facts, provenance)
    spec = object_spec(form_headers)
    if "content-type" not in fields and form.file_content_type:
        spec = replace(spec, content_type=form.file_content_type)
    if "tagging" in fields:
        spec = replace(spec, tags=tags_from_document(fields["tagging"].encode()))
    acl = requested_acl(server, req.bucket, form_headers, provenance.principal)
    spec = replace(spec, acl=acl)
    integrity = UploadIntegrity.of(replace(req.body, headers=form_headers))
    version = await server.registry.put_object(
        req.bucket,
        key,
        _bounded(form, policy),
        spec=spec,
        provenance=provenance,
        hashers=integrity.hashers,
        check=integrity.check,
    )
    bucket = server.registry.bucket(req.bucket)
    headers = write_headers(bucket, version)
    scheme = "https" if facts.secure else "http"
    location = f"{req.headers.get('host', '')}/{req.bucket}/{quote(key)}"
    headers["Location"] = f"{scheme}://{location}"
    return _answer(fields, req.bucket, key, version.etag, headers)


def _signature_version(fields: Mapping[str, str]) -> str | None:
    names = {name.lower() for name in fields}
    if "x-amz-signature" in names:
        return "v4"
    return "v2" if "signature" in names else None


def _form_headers(fields: Mapping[str, str]) -> Headers:
    """The fields a PutObject would send as headers: stored ones, metadata, checksums, ACL."""
    chosen = {
        name: value
        for name, value in fields.items()
        if name in _STORED
        or name == "content-md5"
        or name.startswith(("x-amz-meta-", "x-amz-checksum-"))
    }
    if "acl" in fields:
        chosen["x-amz-acl"] = fields["acl"]
    raw = [(name.encode("latin-1"), value.encode("utf-8")) for name, value in chosen.items()]
    return Headers(raw=raw)


async def _bounded(form: PostForm, policy: PostPolicy | None) -> AsyncIterator[bytes]:
    """The file's bytes; past the policy's content-length-range maximum the upload stops at
    once (nothing stored), and a file below its minimum is refused at the end."""
    limits = content_length_range(policy) if policy is not None else None
    size = 0
    async for chunk in form.file:
        size += len(chunk)
        if policy is not None and limits is not None and size > limits[1]:
            check_length(policy, size)
        yield chunk
    if policy is not None:
        check_length(policy, size)


def _answer(
    fields: Mapping[str, str], bucket: str, key: str, etag: str, headers: dict[str, str]
) -> Response:
    """success_action_redirect (303 to it, with bucket, key and ETag in its query), else
    success_action_status: 204 (the default), 200, or 201 with a PostResponse document."""
    redirect = fields.get("success_action_redirect") or fields.get("redirect")
    if redirect:
        parts = urlsplit(redirect)
        if parts.scheme in ("http", "https"):
            added = urlencode({"bucket": bucket, "key": key, "etag": f'"{etag}"'})
            query = f"{parts.query}&{added}" if parts.query else added
            headers["Location"] = urlunsplit(parts._replace(query=query))
            return Response(status_code=303, headers=headers)
    status = _STATUSES.get(fields.get("success_action_status", ""), 204)
    if status != 201:
        return Response(status_code=status, headers=headers)
    doc = Document("PostResponse")
    add(doc.root, "Location", headers["Location"])
    add(doc.root, "Bucket", bucket)
    add(doc.root, "Key", key)
    add(doc.root, "ETag", f'"{etag}"')
    return xml_response(doc, status=201, headers=headers)
