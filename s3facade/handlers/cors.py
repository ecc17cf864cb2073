"""Get/Put/DeleteBucketCors and the CORS preflight (OPTIONS), answered from the bucket's
rules (403 AccessForbidden, "CORSResponse: ...", when none allows it).
https://docs.aws.amazon.com/AmazonS3/latest/API/RESTOPTIONSobject.html"""

from __future__ import annotations

from starlette.responses import Response

from s3facade.context import ServerContext
from s3facade.cors_xml import parse_cors_configuration, preflight_headers
from s3facade.cors_xml import render_cors_configuration as render_cors
from s3facade.errors import S3Error
from s3facade.integrity import require_integrity
from s3facade.registry.access.settings import BucketSetting
from s3facade.request import S3Request
from s3facade.responses import xml_response


async def get_bucket_cors(req: S3Request, server: ServerContext) -> Response:
    cors = server.registry.bucket_access(req.bucket).cors
    if cors is None:
        raise S3Error("NoSuchCORSConfiguration", extra={"BucketName": req.bucket})
    return xml_response(render_cors(cors))


async def put_bucket_cors(req: S3Request, server: ServerContext) -> Response:
    server.registry.bucket(req.bucket)  # NoSuchBucket before any complaint about the body
    cors = parse_cors_configuration(await require_integrity(req.body))
    await server.registry.put_bucket_access(
        req.bucket, BucketSetting.CORS, cors.as_dict(), req.provenance
    )
    return Response(status_code=200)


async def delete_bucket_cors(req: S3Request, server: ServerContext) -> Response:
    await server.registry.put_bucket_access(req.bucket, BucketSetting.CORS, None, req.provenance)
    return Response(status_code=204)


async def preflight(req: S3Request, server: ServerContext) -> Response:
    """A browser asking whether it may send a cross-origin request: never signed, answered
    from the bucket's CORS rules alone."""
    cors = server.registry.bucket_access(req.bucket).cors
    try:
        headers = preflight_headers(
            cors,
            req.headers.get("origin"),
            req.headers.get("access-control-request-method"),
            req.headers.get("access-control-request-headers"),
        )
    except S3Error as refused:
        if refused.code == "AccessForbidden":  # AWS says what the preflight was for
            refused.extra["ResourceType"] = "OBJECT" if req.operation.key else "BUCKET"
        raise
    return Response(status_code=200, headers=headers)
