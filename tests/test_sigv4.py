"""SigV4 / SigV2 verification: AWS's published examples, real signers, every error path."""

from __future__ import annotations

import asyncio
import hashlib
import io
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from email.utils import formatdate
from typing import Any
from urllib.parse import quote, urlsplit

import boto3
import pytest
import urllib3
from awscrt import auth as crt_auth
from awscrt import http as crt_http
from botocore.auth import HmacV1Auth, S3SigV4Auth, S3SigV4QueryAuth
from botocore.awsrequest import AWSRequest, AWSResponse
from botocore.config import Config
from botocore.credentials import Credentials

from s3facade.auth import AuthContext, Authenticator, PayloadMode, RequestView, sigv2
from s3facade.auth.common import parse_query
from s3facade.auth.sigv4 import canonical_query, canonical_uri
from s3facade.aws_chunked import AwsChunkedReader, is_aws_chunked
from s3facade.errors import S3Error

AK = "AKIAIOSFODNN7EXAMPLE"
SK = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
T0 = datetime(2013, 5, 24, tzinfo=UTC)
EMPTY = hashlib.sha256(b"").hexdigest()
HOST = "examplebucket.s3.amazonaws.com"
HOSTILE_KEYS = [
    "unicode-é中文/ключ",
    "with space/and  two",
    "plus+sign+",
    "percent%25and%",
    "double//slash",
    "trailing/",
    "literal%2Fslash",
    "/leading",
    "~tilde!'()*$,;=@:",
    "amp&eq=q?hash#",
    "dots/./and/../x",
]


def secrets(key: str) -> str | None:
    return {AK: SK, "AK2": "secret+with/slash="}.get(key)


def authenticator(now: datetime = T0) -> Authenticator:
    return Authenticator(secrets, "us-east-1", clock=lambda: now)


def v4_header(signed: str, signature: str, *, region: str = "us-east-1", ak: str = AK) -> str:
    return (
        f"AWS4-HMAC-SHA256 Credential={ak}/20130524/{region}/s3/aws4_request,"
        f"SignedHeaders={signed},Signature={signature}"
    )


# --- AWS's published examples ("Examples: Signature Calculations in AWS SigV4") -------

GET_OBJECT_HEADERS = {
    "host": HOST,
    "range": "bytes=0-9",
    "x-amz-content-sha256": EMPTY,
    "x-amz-date": "20130524T000000Z",
    "authorization": v4_header(
        "host;range;x-amz-content-sha256;x-amz-date",
        "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41",
    ),
}


def get_object(**changes: str) -> RequestView:
    return RequestView("GET", b"/test.txt", b"", {**GET_OBJECT_HEADERS, **changes})


def test_aws_example_get_object_with_range() -> None:
    ctx = authenticator().authenticate(get_object())
    assert ctx == AuthContext(AK, PayloadMode.SIGNED, EMPTY, None, False, "v4")


def test_aws_example_put_object() -> None:
    body_sha = hashlib.sha256(b"Welcome to Amazon S3.").hexdigest()
    headers = {
        "host": HOST,
        "date": "Fri, 24 May 2013 00:00:00 GMT",
        "x-amz-date": "20130524T000000Z",
        "x-amz-storage-class": "REDUCED_REDUNDANCY",
        "x-amz-content-sha256": body_sha,
        "authorization": v4_header(
            "date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class",
            "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd",
        ),
    }
    ctx = authenticator().authenticate(RequestView("PUT", b"/test%24file.text", b"", headers))
    assert ctx.payload is PayloadMode.SIGNED and ctx.expected_sha256 == body_sha


@pytest.mark.parametrize(
    ("query", "signature"),
    [
        (b"lifecycle", "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543"),
        (
            b"max-keys=2&prefix=J",
            "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7",
        ),
    ],
)
def test_aws_example_bucket_gets(query: bytes, signature: str) -> None:
    headers = {
        "host": HOST,
        "x-amz-content-sha256": EMPTY,
        "x-amz-date": "20130524T000000Z",
        "authorization": v4_header("host;x-amz-content-sha256;x-amz-date", signature),
    }
    assert authenticator().authenticate(RequestView("GET", b"/", query, headers)).principal == AK


PRESIGNED_QUERY = (
    b"X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2F"
    b"us-east-1%2Fs3%2Faws4_request&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&"
    b"X-Amz-SignedHeaders=host&X-Amz-Signature="
    b"aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404"
)


def test_aws_example_presigned_url() -> None:
    ctx = authenticator().authenticate(
        RequestView("GET", b"/test.txt", PRESIGNED_QUERY, {"host": HOST})
    )
    assert ctx == AuthContext(AK, PayloadMode.UNSIGNED, None, None, True, "v4")


@pytest.mark.parametrize(
    ("mode", "signed", "seed", "payload"),
    [
        (
            "STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
            "content-encoding;content-length;host;x-amz-content-sha256;x-amz-date;"
            "x-amz-decoded-content-length;x-amz-storage-class",
            "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9",
            PayloadMode.STREAMING_SIGNED,
        ),
        (
            "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER",
            "content-encoding;host;x-amz-content-sha256;x-amz-date;"
            "x-amz-decoded-content-length;x-amz-storage-class;x-amz-trailer",
            "106e2a8a18243abcf37539882f36619c00e2dfc72633413f02d3b74544bfeb8e",
            PayloadMode.STREAMING_SIGNED_TRAILER,
        ),
    ],
)
def test_aws_example_streaming_seed(
    mode: str, signed: str, seed: str, payload: PayloadMode
) -> None:
    headers = {
        "host": "s3.amazonaws.com",
        "x-amz-date": "20130524T000000Z",
        "x-amz-storage-class": "REDUCED_REDUNDANCY",
        "x-amz-content-sha256": mode,
        "content-encoding": "aws-chunked",
        "x-amz-decoded-content-length": "66560",
        "content-length": "66824",
        "x-amz-trailer": "x-amz-checksum-crc32c",
        "authorization": v4_header(signed, seed),
    }
    ctx = authenticator().authenticate(
        RequestView("PUT", b"/examplebucket/chunkObject.txt", b"", headers)
    )
    assert ctx.payload is payload and ctx.chunk_signer is not None
    assert ctx.chunk_signer.seed_signature == seed
    assert ctx.chunk_signer.scope == "20130524/us-east-1/s3/aws4_request"
    first = ctx.chunk_signer.chunk_signature(seed, hashlib.sha256(b"a" * 65536).hexdigest())
    assert first in {
        "ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648",
        "b474d8862b1487a5145d686f57f013e54db672cee1c953b3010fb58501ef5aa2",
    }


# --- canonical forms -------------------------------------------------------------------


def test_canonical_uri_keeps_raw_structure() -> None:
    assert canonical_uri(b"") == "/"
    assert canonical_uri(b"/b/a%20b+c") == "/b/a%20b%2Bc"  # '+' in a path is a plus
    assert canonical_uri(b"/b//x/./../") == "/b//x/./../"  # S3 does not normalise
    assert canonical_uri(b"/b/a%2fb") == "/b/a%2Fb"  # %2F stays inside its segment
    assert canonical_uri(b"/b/(x)!*") == "/b/%28x%29%21%2A"
    assert canonical_uri("/b/é".encode()) == "/b/%C3%A9"


def test_canonical_query_decodes_plus_and_sorts() -> None:
    pairs = parse_query(b"prefix=a+b&acl&z=%7e&delimiter=%2F&&a=2&a=1")
    assert canonical_query(pairs) == "a=1&a=2&acl=&delimiter=%2F&prefix=a%20b&z=~"
    assert canonical_query(parse_query(b"X-Amz-Signature=x&b=1"), b"X-Amz-Signature") == "b=1"


# --- header auth errors ----------------------------------------------------------------


def denied(code: str, view: RequestView, now: datetime = T0, bucket: str | None = None) -> S3Error:
    with pytest.raises(S3Error) as info:
        authenticator(now).authenticate(view, vhost_bucket=bucket)
    assert info.value.code == code, info.value
    return info.value


def test_anonymous_request() -> None:
    view = RequestView("GET", b"/b/k", b"x-id=GetObject", {"host": HOST})
    ctx = authenticator().authenticate(view)
    assert ctx == AuthContext(None, PayloadMode.UNSIGNED, None, None, False, None)
    trailer = {"host": HOST, "x-amz-content-sha256": "STREAMING-UNSIGNED-PAYLOAD-TRAILER"}
    view = RequestView("PUT", b"/b/k", b"", trailer)
    assert authenticator().authenticate(view).payload is PayloadMode.STREAMING_UNSIGNED_TRAILER
    signed = {"host": HOST, "x-amz-content-sha256": "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"}
    denied("InvalidRequest", RequestView("PUT", b"/", b"", signed))


@pytest.mark.parametrize(
    "authorization",
    [
        f"AWS4-HMAC-SHA256 Credential={AK}/20130524/us-east-1/s3/aws4_request",
        "AWS4-HMAC-SHA256 Credential=x, SignedHeaders=host, Signature=00",
        "AWS4-HMAC-SHA256 Credential=AK/2013/us-east-1/s3/aws4_request,SignedHeaders=host,"
        "Signature=0",
        "AWS4-HMAC-SHA256 garbage",
        v4_header("host", "0").replace("/s3/", "/s4/"),
        v4_header("host", "0").replace("aws4_request", "aws5_request"),
        v4_header("range;x-amz-content-sha256;x-amz-date", "0" * 64),  # host not signed
        GET_OBJECT_HEADERS["authorization"].replace("20130524/", "20130523/"),
    ],
)
def test_malformed_authorization(authorization: str) -> None:
    denied("AuthorizationHeaderMalformed", get_object(authorization=authorization))


def test_header_region_and_key() -> None:
    err = denied(
        "AuthorizationHeaderMalformed",
        get_object(authorization=v4_header("host", "0", region="eu-west-1")),
    )
    assert "the region 'eu-west-1' is wrong; expecting 'us-east-1'" in err.message
    assert err.extra["Region"] == "us-east-1"
    denied("InvalidAccessKeyId", get_object(authorization=v4_header("host", "0", ak="NOPE")))


def test_header_date_and_skew() -> None:
    headers = {k: v for k, v in GET_OBJECT_HEADERS.items() if k != "x-amz-date"}
    denied("AccessDenied", RequestView("GET", b"/test.txt", b"", headers))
    denied("AccessDenied", get_object(**{"x-amz-date": "yesterday"}))
    ok_now = authenticator(T0 + timedelta(minutes=14, seconds=59))
    assert ok_now.authenticate(get_object()).principal == AK
    err = denied("RequestTimeTooSkewed", get_object(), T0 + timedelta(minutes=15, seconds=1))
    assert err.extra["RequestTime"] == "20130524T000000Z"
    assert err.extra["ServerTime"] == "2013-05-24T00:15:01Z"
    denied("RequestTimeTooSkewed", get_object(), T0 - timedelta(minutes=16))


def test_content_sha256_errors() -> None:
    headers = {k: v for k, v in GET_OBJECT_HEADERS.items() if k != "x-amz-content-sha256"}
    err = denied("InvalidRequest", RequestView("GET", b"/test.txt", b"", headers))
    assert err.message == "Missing required header for this request: x-amz-content-sha256"
    err = denied("InvalidArgument", get_object(**{"x-amz-content-sha256": "abc"}))
    assert err.extra["ArgumentName"] == "x-amz-content-sha256"
    ecdsa = {"x-amz-content-sha256": "STREAMING-AWS4-ECDSA-P256-SHA256-PAYLOAD"}
    denied("NotImplemented", get_object(**ecdsa))


def test_signature_mismatch_reports_like_aws() -> None:
    err = denied("SignatureDoesNotMatch", get_object(range="bytes=0-10"))
    assert err.status == 403
    assert err.extra["AWSAccessKeyId"] == AK
    assert err.extra["StringToSign"].startswith("AWS4-HMAC-SHA256\n20130524T000000Z\n")
    assert "range:bytes=0-10\n" in err.extra["CanonicalRequest"]
    assert err.extra["SignatureProvided"] == GET_OBJECT_HEADERS["authorization"][-64:]
    assert err.extra["StringToSignBytes"].startswith("41 57 53 34")


def test_auth_mechanism_conflicts() -> None:
    denied("InvalidArgument", RequestView("GET", b"/test.txt", PRESIGNED_QUERY, GET_OBJECT_HEADERS))
    both_queries = PRESIGNED_QUERY + b"&AWSAccessKeyId=x"
    denied("InvalidArgument", RequestView("GET", b"/", both_queries, {"host": HOST}))
    denied("InvalidArgument", get_object(authorization="Bearer x"))
    denied("NotImplemented", get_object(authorization="AWS4-ECDSA-P256-SHA256 Credential=x"))


# --- presigned errors ------------------------------------------------------------------


def presigned_view(
    query: bytes = PRESIGNED_QUERY, headers: dict[str, str] | None = None
) -> RequestView:
    return RequestView("GET", b"/test.txt", query, {"host": HOST, **(headers or {})})


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (b"X-Amz-Date=20130524T000000Z&", b""),
        (b"X-Amz-Expires=86400&", b""),
        (b"X-Amz-SignedHeaders=host&", b""),
        (b"X-Amz-Expires=86400", b"X-Amz-Expires=0"),
        (b"X-Amz-Expires=86400", b"X-Amz-Expires=604801"),
        (b"X-Amz-Expires=86400", b"X-Amz-Expires=-5"),
        (b"X-Amz-Expires=86400", b"X-Amz-Expires=soon"),
        (b"us-east-1%2F", b"eu-west-1%2F"),
        (b"AWS4-HMAC-SHA256&", b"AWS4-HMAC-SHA1&"),
        (b"X-Amz-Date=20130524T000000Z", b"X-Amz-Date=2013-05-24"),
        (b"X-Amz-Date=20130524T000000Z", b"X-Amz-Date=20130525T000000Z"),
        (b"X-Amz-SignedHeaders=host", b"X-Amz-SignedHeaders=range"),
    ],
)
def test_presigned_parameter_errors(old: bytes, new: bytes) -> None:
    assert old in PRESIGNED_QUERY
    denied("AuthorizationQueryParametersError", presigned_view(PRESIGNED_QUERY.replace(old, new)))


def test_presigned_expiry() -> None:
    a_day = T0 + timedelta(seconds=86400)
    assert authenticator(a_day).authenticate(presigned_view()).principal == AK
    err = denied("AccessDenied", presigned_view(), a_day + timedelta(seconds=1))
    assert err.message == "Request has expired"
    assert err.extra["X-Amz-Expires"] == "86400"
    assert err.extra["Expires"] == "2013-05-25T00:00:00Z"
    assert err.extra["ServerTime"] == "2013-05-25T00:00:01Z"
    # AWS: a URL dated more than 15 minutes ahead is "not yet valid".
    assert authenticator(T0 - timedelta(minutes=14)).authenticate(presigned_view())
    err = denied("AccessDenied", presigned_view(), T0 - timedelta(minutes=16))
    assert err.message == "Request is not yet valid"


def test_presigned_signature_and_unsigned_headers() -> None:
    denied("InvalidAccessKeyId", presigned_view(PRESIGNED_QUERY.replace(AK.encode(), b"NOPE")))
    denied("SignatureDoesNotMatch", presigned_view(PRESIGNED_QUERY + b"&x-id=GetObject"))
    tampered = PRESIGNED_QUERY.replace(b"=aeeed9", b"=beeed9")
    denied("SignatureDoesNotMatch", presigned_view(tampered))
    copy = {"x-amz-copy-source": "/other/secret"}
    err = denied("AccessDenied", presigned_view(headers=copy))
    assert err.extra["HeadersNotSigned"] == "x-amz-copy-source"
    # Integrity-only headers may ride along unsigned; a STREAMING-UNSIGNED trailer too.
    integrity = {
        "x-amz-checksum-crc32": "AAAAAA==",
        "x-amz-content-sha256": "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
    }
    ctx = authenticator().authenticate(presigned_view(headers=integrity))
    assert ctx.payload is PayloadMode.STREAMING_UNSIGNED_TRAILER


# --- real signers: botocore (client, raw signers) and awscrt ---------------------------


def view_of(method: str, url: str, headers: Any) -> RequestView:
    parts = urlsplit(url)
    lowered: dict[str, str] = {}
    for name, value in headers.items():
        text = value.decode("latin-1") if isinstance(value, bytes) else value
        key = name.lower()
        lowered[key] = f"{lowered[key]},{text}" if key in lowered else text
    lowered.setdefault("host", parts.netloc)
    return RequestView(method, parts.path.encode(), parts.query.encode(), lowered)


class Capture:
    """A boto3 client whose requests are captured instead of sent."""

    def __init__(self, **config: Any) -> None:
        self.requests: list[tuple[RequestView, bytes]] = []
        self.client = boto3.client(
            "s3",
            endpoint_url="https://s3.local:9000",
            region_name="us-east-1",
            aws_access_key_id=AK,
            aws_secret_access_key=SK,
            config=Config(s3={"addressing_style": "path"}, **config),
        )
        self.client.meta.events.register("before-send", self._send)

    def _send(self, request: Any, **_: Any) -> AWSResponse:
        body = request.body.read() if hasattr(request.body, "read") else request.body or b""
        self.requests.append((view_of(request.method, request.url, request.headers), body))
        raw = urllib3.HTTPResponse(body=io.BytesIO(b""), status=200, preload_content=False)
        return AWSResponse(request.url, 200, {}, raw)


@pytest.mark.parametrize("key", HOSTILE_KEYS)
def test_boto3_client_requests_verify(key: str) -> None:
    cap = Capture()
    cap.client.put_object(Bucket="bucket", Key=key, Body=b"data", Metadata={"m": "v  w"})
    cap.client.get_object(Bucket="bucket", Key=key, Range="bytes=0-1")
    cap.client.head_object(Bucket="bucket", Key=key, VersionId="v+1/=")
    cap.client.list_objects_v2(Bucket="bucket", Prefix=key, Delimiter="/", StartAfter=key)
    cap.client.list_objects(Bucket="bucket", Prefix=key, Marker=key + " ")
    cap.client.get_object_tagging(Bucket="bucket", Key=key)
    cap.client.copy_object(Bucket="bucket", Key=key, CopySource={"Bucket": "b", "Key": key})
    a = Authenticator(secrets, "us-east-1")
    contexts = [a.authenticate(view) for view, _ in cap.requests]
    assert contexts[0].payload is PayloadMode.STREAMING_UNSIGNED_TRAILER
    assert {c.payload for c in contexts[1:]} == {PayloadMode.SIGNED}
    # The PUT's aws-chunked body decodes to the object plus its CRC32 trailer.
    view, body = cap.requests[0]
    assert is_aws_chunked(view.headers)

    async def source() -> AsyncIterator[bytes]:
        yield body

    async def decode() -> tuple[bytes, dict[str, str]]:
        reader = AwsChunkedReader(source(), signer=None, decoded_length=4, expect_trailer=True)
        return b"".join([p async for p in reader]), reader.trailers

    assert asyncio.run(decode()) == (b"data", {"x-amz-checksum-crc32": "rfPzYw=="})


@pytest.mark.parametrize("key", HOSTILE_KEYS)
@pytest.mark.parametrize("version", ["s3v4", "s3", None])
def test_boto3_presigned_urls_verify(key: str, version: str | None) -> None:
    cap = Capture(signature_version=version) if version else Capture()
    a = Authenticator(secrets, "us-east-1")
    for method, op, extra in (
        ("GET", "get_object", {"ResponseContentDisposition": 'attachment; filename="a b.txt"'}),
        ("PUT", "put_object", {"ContentType": "text/plain"}),
        ("HEAD", "head_object", {}),
    ):
        url = cap.client.generate_presigned_url(
            op, Params={"Bucket": "bucket", "Key": key, **extra}
        )
        headers = {"content-type": "text/plain"} if method == "PUT" else {}
        ctx = a.authenticate(view_of(method, url, headers))
        assert ctx.presigned and ctx.signature_version == (
            "v2" if version == "s3" or version is None else "v4"
        )
        with pytest.raises(S3Error, match="SignatureDoesNotMatch"):
            a.authenticate(view_of("DELETE", url, headers))  # the method is signed


def test_botocore_raw_signers_and_pinned_payload() -> None:
    creds = Credentials(AK, SK)
    a = Authenticator(secrets, "us-east-1")
    url = "http://s3.local:9000/bucket/" + "a%20b%2Bc/%C3%A9"
    request = AWSRequest("PUT", url, data=b"body", headers={"X-Amz-Meta-A": "x"})
    S3SigV4Auth(creds, "s3", "us-east-1").add_auth(request)  # http: payload is hashed
    ctx = a.authenticate(view_of("PUT", request.url, request.headers))
    assert ctx.expected_sha256 == hashlib.sha256(b"body").hexdigest()

    pinned = hashlib.sha256(b"pinned").hexdigest()
    request = AWSRequest("PUT", url + "?X-Amz-Content-Sha256=" + pinned, headers={})
    S3SigV4QueryAuth(creds, "s3", "us-east-1", expires=60).add_auth(request)
    ctx = a.authenticate(view_of("PUT", request.url, {}))
    assert (ctx.payload, ctx.expected_sha256) == (PayloadMode.SIGNED, pinned)

    request = AWSRequest("GET", url + "?acl", headers={"x-amz-date": formatdate(usegmt=True)})
    HmacV1Auth(creds).add_auth(request)
    ctx = a.authenticate(view_of("GET", request.url, request.headers))
    assert (ctx.signature_version, ctx.presigned) == ("v2", False)
    bad = dict(request.headers.items(), **{"x-amz-meta-z": "1"})
    with pytest.raises(S3Error, match="SignatureDoesNotMatch"):
        a.authenticate(view_of("GET", request.url, bad))


def crt_sign(path: str, query: str, signature_type: crt_auth.AwsSignatureType) -> RequestView:
    request = crt_http.HttpRequest(
        "GET", path + query, crt_http.HttpHeaders([("host", "s3.local")])
    )
    config = crt_auth.AwsSigningConfig(
        algorithm=crt_auth.AwsSigningAlgorithm.V4,
        signature_type=signature_type,
        credentials_provider=crt_auth.AwsCredentialsProvider.new_static(AK, SK),
        region="us-east-1",
        service="s3",
        date=datetime.now(UTC),
        use_double_uri_encode=False,
        should_normalize_uri_path=False,
        signed_body_value=crt_auth.AwsSignedBodyValue.UNSIGNED_PAYLOAD,
        signed_body_header_type=crt_auth.AwsSignedBodyHeaderType.X_AMZ_CONTENT_SHA_256,
        expiration_in_seconds=300 if signature_type.value else None,
    )
    crt_auth.aws_sign_request(request, config).result(10)
    return view_of("GET", "http://s3.local" + request.path, dict(request.headers))


@pytest.mark.parametrize("signature_type", list(crt_auth.AwsSignatureType))
def test_awscrt_signed_requests_verify(signature_type: crt_auth.AwsSignatureType) -> None:
    path = "/bucket/a%20b%2Bc/%C3%A9%252F//x/"
    view = crt_sign(path, "?prefix=a%20b&list-type=2&x-id=GetObject", signature_type)
    ctx = Authenticator(secrets, "us-east-1").authenticate(view)
    assert ctx.principal == AK and ctx.payload is PayloadMode.UNSIGNED


def test_object_store_style_plus_in_query() -> None:
    """Rule 14: a client sends '+' for a space in the query but signs %20."""
    creds = Credentials(AK, SK)
    request = AWSRequest("GET", "http://s3.local/bucket?prefix=a%20b&list-type=2")
    S3SigV4Auth(creds, "s3", "us-east-1").add_auth(request)
    url = request.url.replace("a%20b", "a+b")
    assert Authenticator(secrets, "us-east-1").authenticate(view_of("GET", url, request.headers))


# --- SigV2 -----------------------------------------------------------------------------

EXPIRES = int(T0.timestamp()) + 60


def v2_url(path: str, sts_path: str, expires: int = EXPIRES, extra: str = "") -> RequestView:
    signature = quote(sigv2.sign(SK, f"GET\n\n\n{expires}\n{sts_path}"), safe="")
    query = f"AWSAccessKeyId={AK}&Expires={expires}&Signature={signature}{extra}"
    return RequestView("GET", path.encode(), query.encode(), {"host": "s3.local"})


def test_sigv2_query_variants() -> None:
    a = authenticator()
    # s3cmd signurl (older releases sign the unquoted key), a virtual-hosted bucket.
    assert a.authenticate(v2_url("/b/a%20b", "/b/a b")).principal == AK
    vhost = v2_url("/key%2Bx", "/bucket/key%2Bx")
    assert a.authenticate(vhost, vhost_bucket="bucket").signature_version == "v2"
    denied("SignatureDoesNotMatch", vhost)
    # A base64 '+' sent unencoded in the query (decoded to ' ') still verifies.
    plus = sigv2.sign(SK, "GET\n\n\n1369353662\n/b/k")
    assert "+" in plus
    raw = f"AWSAccessKeyId={AK}&Expires=1369353662&Signature={plus}".encode()
    assert a.authenticate(RequestView("GET", b"/b/k", raw, {})).principal == AK
    # Sub-resources are signed, other parameters are not.
    signed_subresources = "/b/k?acl&versionId=1 2"
    assert a.authenticate(v2_url("/b/k", signed_subresources, extra="&versionId=1+2&acl&x-id=G"))


def test_sigv2_query_errors() -> None:
    err = denied("AccessDenied", v2_url("/b/k", "/b/k", int(T0.timestamp()) - 1))
    assert err.message == "Request has expired" and err.extra["Expires"] == "2013-05-23T23:59:59Z"
    denied(
        "AccessDenied", RequestView("GET", b"/", f"AWSAccessKeyId={AK}&Signature=x".encode(), {})
    )
    soon = f"AWSAccessKeyId={AK}&Signature=x&Expires=soon".encode()
    denied("AccessDenied", RequestView("GET", b"/", soon, {}))
    unknown = v2_url("/b/k", "/b/k").raw_query.replace(AK.encode(), b"NOPE")
    denied("InvalidAccessKeyId", RequestView("GET", b"/b/k", unknown, {}))
    err = denied("SignatureDoesNotMatch", v2_url("/b/k", "/b/other"))
    assert err.extra["StringToSign"] == f"GET\n\n\n{EXPIRES}\n/b/k"
    assert err.extra["AWSAccessKeyId"] == AK and "SignatureProvided" in err.extra


def test_sigv2_header_errors() -> None:
    date = "Fri, 24 May 2013 00:00:00 GMT"
    sts = f"GET\n\n\n{date}\n/b/k"
    good = {"host": "h", "date": date, "authorization": f"AWS {AK}:{sigv2.sign(SK, sts)}"}
    view = RequestView("GET", b"/b/k", b"", good)
    assert authenticator().authenticate(view).signature_version == "v2"
    no_date = {k: v for k, v in good.items() if k != "date"}
    denied("AccessDenied", RequestView("GET", b"/b/k", b"", no_date))
    denied("RequestTimeTooSkewed", view, T0 + timedelta(hours=1))
    for auth, code in (
        (f"AWS {AK}", "InvalidArgument"),
        (f"AWS NOPE:{sigv2.sign(SK, sts)}", "InvalidAccessKeyId"),
        (f"AWS {AK}:bad", "SignatureDoesNotMatch"),
    ):
        denied(code, RequestView("GET", b"/b/k", b"", {**good, "authorization": auth}))
