"""aws-chunked decoding: AWS's published bodies, botocore's encoder, every error path."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import io
import zlib
from collections.abc import AsyncIterator, Callable

import pytest
from botocore.httpchecksum import AwsChunkedWrapper, Crc32Checksum

from s3facade.auth import ChunkSigner, signing_key
from s3facade.aws_chunked import AwsChunkedReader, is_aws_chunked
from s3facade.errors import S3Error

SK = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
DATE = "20130524T000000Z"
SCOPE = "20130524/us-east-1/s3/aws4_request"
KEY = signing_key(SK, "20130524", "us-east-1")
SEED = "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9"
TRAILER_SEED = "106e2a8a18243abcf37539882f36619c00e2dfc72633413f02d3b74544bfeb8e"
EMPTY = hashlib.sha256(b"").hexdigest()


def chunk(signature: str, data: bytes) -> bytes:
    return b"%x;chunk-signature=%s\r\n%s\r\n" % (len(data), signature.encode(), data)


# sigv4-streaming.html: 65536 + 1024 bytes of 'a'.
AWS_BODY = (
    chunk("ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648", b"a" * 65536)
    + chunk("0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497", b"a" * 1024)
    + chunk("b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9", b"")
)
# sigv4-streaming-trailers.html: same data, a CRC32C trailer and its signature.
AWS_TRAILER_BODY = (
    chunk("b474d8862b1487a5145d686f57f013e54db672cee1c953b3010fb58501ef5aa2", b"a" * 65536)
    + chunk("1c1344b170168f8e65b41376b44b20fe354e373826ccbbe2c1d40a8cae51e5c7", b"a" * 1024)
    + chunk("2ca2aba2005185cf7159c6277faf83795951dd77a3a99e6e65d5c9f85863f992", b"")[:-2]
    + b"x-amz-checksum-crc32c:sOO8/Q==\r\n"
    + b"x-amz-trailer-signature:"
    + b"d81f82fc3505edab99d459891051a732e8730629a2e4a59689829ca17fe2e435\r\n\r\n"
)


def signer(seed: str = SEED) -> ChunkSigner:
    return ChunkSigner(KEY, DATE, SCOPE, seed)


async def pieces(body: bytes, size: int) -> AsyncIterator[bytes]:
    for start in range(0, len(body), size):
        yield body[start : start + size]


def decode(
    body: bytes,
    *,
    chunk_signer: ChunkSigner | None = None,
    length: int | None = None,
    trailer: bool = False,
    piece: int = 1000,
) -> tuple[bytes, dict[str, str], int]:
    """Decoded body, trailers, and the largest piece the reader yielded."""

    async def run() -> tuple[bytes, dict[str, str], int]:
        reader = AwsChunkedReader(
            pieces(body, piece), signer=chunk_signer, decoded_length=length, expect_trailer=trailer
        )
        out = [p async for p in reader]
        return b"".join(out), reader.trailers, max((len(p) for p in out), default=0)

    return asyncio.run(run())


def fails(code: str, fn: Callable[[], object]) -> S3Error:
    with pytest.raises(S3Error) as info:
        fn()
    assert info.value.code == code, info.value
    return info.value


def sign_chunks(
    chunks: list[bytes],
    seed: str = SEED,
    trailers: list[tuple[str, str]] | None = None,
) -> bytes:
    """An independent encoder for STREAMING-AWS4-HMAC-SHA256-PAYLOAD[-TRAILER]."""
    out, previous = [], seed
    for data in [*chunks, b""]:
        sts = "\n".join(
            (
                "AWS4-HMAC-SHA256-PAYLOAD",
                DATE,
                SCOPE,
                previous,
                EMPTY,
                hashlib.sha256(data).hexdigest(),
            )
        )
        previous = hmac.new(KEY, sts.encode(), hashlib.sha256).hexdigest()
        out.append(b"%x;chunk-signature=%s\r\n%s" % (len(data), previous.encode(), data))
        if data:
            out.append(b"\r\n")
    if trailers is None:
        return b"".join(out) + b"\r\n"
    text = "".join(f"{n}:{v}\n" for n, v in trailers)
    sts = "\n".join(
        (
            "AWS4-HMAC-SHA256-TRAILER",
            DATE,
            SCOPE,
            previous,
            hashlib.sha256(text.encode()).hexdigest(),
        )
    )
    trailer_sig = hmac.new(KEY, sts.encode(), hashlib.sha256).hexdigest()
    lines = "".join(f"{n}:{v}\r\n" for n, v in trailers)
    return b"".join(out) + f"{lines}x-amz-trailer-signature:{trailer_sig}\r\n\r\n".encode()


# --- detection -------------------------------------------------------------------------


def test_is_aws_chunked() -> None:
    assert is_aws_chunked({"x-amz-content-sha256": "STREAMING-UNSIGNED-PAYLOAD-TRAILER"})
    assert is_aws_chunked({"content-encoding": "gzip, AWS-Chunked"})
    assert is_aws_chunked({"x-amz-decoded-content-length": "5"})
    assert not is_aws_chunked(
        {"content-encoding": "gzip", "x-amz-content-sha256": "UNSIGNED-PAYLOAD"}
    )
    assert not is_aws_chunked({"content-encoding": "aws-chunkedx"})


# --- AWS's published bodies ------------------------------------------------------------


@pytest.mark.parametrize("piece", [1, 7, 4096, 65536 + 200, 1 << 20])
def test_aws_signed_example(piece: int) -> None:
    data, trailers, largest = decode(AWS_BODY, chunk_signer=signer(), length=66560, piece=piece)
    assert data == b"a" * 66560 and trailers == {}
    assert largest <= piece  # data is streamed, never gathered into whole chunks


@pytest.mark.parametrize("piece", [1, 13, 1 << 20])
def test_aws_signed_trailer_example(piece: int) -> None:
    data, trailers, _ = decode(
        AWS_TRAILER_BODY, chunk_signer=signer(TRAILER_SEED), length=66560, trailer=True, piece=piece
    )
    assert data == b"a" * 66560
    assert trailers == {"x-amz-checksum-crc32c": "sOO8/Q=="}


def test_chunk_signer_matches_aws_vectors() -> None:
    chained = signer().chunk_signature(SEED, hashlib.sha256(b"a" * 65536).hexdigest())
    assert chained == "ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648"
    final = "2ca2aba2005185cf7159c6277faf83795951dd77a3a99e6e65d5c9f85863f992"
    trailer = signer(TRAILER_SEED).trailer_signature(final, b"x-amz-checksum-crc32c:sOO8/Q==\n")
    assert trailer == "d81f82fc3505edab99d459891051a732e8730629a2e4a59689829ca17fe2e435"


# --- other encoders --------------------------------------------------------------------


@pytest.mark.parametrize("size", [0, 1, 5, 1 << 20, (1 << 20) + 3, 3 << 20])
def test_botocore_unsigned_trailer_bodies(size: int) -> None:
    payload = bytes(range(256)) * (size // 256) + b"x" * (size % 256)
    wrapper = AwsChunkedWrapper(
        io.BytesIO(payload), checksum_cls=Crc32Checksum, checksum_name="x-amz-checksum-crc32"
    )
    body = wrapper.read()
    data, trailers, largest = decode(body, length=size, trailer=True, piece=65536)
    assert data == payload and largest <= 65536
    crc = base64.b64encode(zlib.crc32(payload).to_bytes(4, "big")).decode()
    assert trailers == {"x-amz-checksum-crc32": crc}


def test_botocore_body_without_checksum_and_odd_spellings() -> None:
    body = AwsChunkedWrapper(io.BytesIO(b"hello")).read()
    assert decode(body, length=5) == (b"hello", {}, 5)
    # Unknown extensions ignored when unsigned; a lone final "0\r\n" then EOF tolerated.
    assert decode(b"5;foo=bar\r\nhello\r\n0\r\n")[0] == b"hello"
    # A blank line between the 0-chunk and the trailers (seen from some encoders).
    body = b"5\r\nhello\r\n0\r\n\r\nx-amz-checksum-crc32:AAAA\r\n\r\n"
    assert decode(body, trailer=True)[1] == {"x-amz-checksum-crc32": "AAAA"}
    # Trailers on an unsigned body that did not announce them are still collected.
    assert decode(b"0\r\nx-amz-checksum-crc32:AAAA\r\n\r\n\r\n")[1] == {
        "x-amz-checksum-crc32": "AAAA"
    }


def test_independent_signed_encoder_roundtrip() -> None:
    chunks = [b"x" * 8192, b"y" * 100_000, b"z"]
    body = sign_chunks(chunks)
    assert decode(body, chunk_signer=signer(), length=108_193, piece=333)[0] == b"".join(chunks)
    trailers = [("x-amz-checksum-sha256", "abc="), ("x-amz-checksum-crc32", "AAAA")]
    body = sign_chunks(chunks, TRAILER_SEED, trailers)
    _, got, _ = decode(body, chunk_signer=signer(TRAILER_SEED), trailer=True)
    assert got == dict(trailers)


# --- errors ----------------------------------------------------------------------------


@pytest.mark.parametrize("cut", [1, 30, 100, 65536, 66000, 66700, len(AWS_BODY) - 3])
def test_truncated_signed_body(cut: int) -> None:
    fails("IncompleteBody", lambda: decode(AWS_BODY[:cut], chunk_signer=signer(), length=66560))


@pytest.mark.parametrize("cut", [-3, -20, -80, -110])
def test_truncated_trailer_section(cut: int) -> None:
    body = AWS_TRAILER_BODY[:cut]
    fails("IncompleteBody", lambda: decode(body, chunk_signer=signer(TRAILER_SEED), trailer=True))


def test_empty_and_truncated_unsigned_bodies() -> None:
    fails("IncompleteBody", lambda: decode(b""))
    fails("IncompleteBody", lambda: decode(b"5\r\nhel"))
    fails("IncompleteBody", lambda: decode(b"5\r\nhello\r\n"))
    fails("IncompleteBody", lambda: decode(b"5\r\nhello\r\n0\r\n", trailer=True))
    fails("IncompleteBody", lambda: decode(b"5\r\nhello\r\n0\r\nx-amz-checksum-crc32:AAAA\r\n"))


def test_decoded_length_mismatch() -> None:
    fails("IncompleteBody", lambda: decode(AWS_BODY, chunk_signer=signer(), length=66561))
    fails("IncompleteBody", lambda: decode(AWS_BODY, chunk_signer=signer(), length=66559))
    fails("IncompleteBody", lambda: decode(b"5\r\nhello\r\n0\r\n\r\n", length=0))


@pytest.mark.parametrize(
    "body",
    [
        b"zz\r\nhello\r\n0\r\n\r\n",
        b"\r\nhello\r\n0\r\n\r\n",
        b"-5\r\nhello\r\n0\r\n\r\n",
        b"11111111111111111\r\n",
        b"5\r\nhelloXX0\r\n\r\n",
        b"5\r\nhello\r\n0\r\nno-colon-here\r\n\r\n",
        b"5\r\nhello\r\n0\r\n\r\ngarbage after the end",
        b"5" + b" " * 5000 + b"\r\nhello",
        b"<html>not a chunked body at all</html>" * 200,
    ],
)
def test_malformed_framing_is_invalid_request(body: bytes) -> None:
    fails("InvalidRequest", lambda: decode(body))


def test_bad_chunk_signatures() -> None:
    tampered = AWS_BODY.replace(b"a" * 1024, b"a" * 1023 + b"b")
    fails("SignatureDoesNotMatch", lambda: decode(tampered, chunk_signer=signer(), length=66560))
    fails("SignatureDoesNotMatch", lambda: decode(AWS_BODY, chunk_signer=signer(TRAILER_SEED)))
    chunks = sign_chunks([b"one", b"two"]).split(b"\r\n")
    swapped = b"\r\n".join([chunks[2], chunks[3], chunks[0], chunks[1], *chunks[4:]])
    fails("SignatureDoesNotMatch", lambda: decode(swapped, chunk_signer=signer()))
    unsigned = b"5\r\nhello\r\n0\r\n\r\n"
    fails("SignatureDoesNotMatch", lambda: decode(unsigned, chunk_signer=signer()))
    short_sig = b"5;chunk-signature=abc\r\nhello\r\n0;chunk-signature=abc\r\n\r\n"
    fails("SignatureDoesNotMatch", lambda: decode(short_sig, chunk_signer=signer()))


def test_bad_trailer_signatures() -> None:
    trailer_signer = signer(TRAILER_SEED)
    forged = AWS_TRAILER_BODY.replace(b"sOO8/Q==", b"AAAAAA==")
    fails(
        "SignatureDoesNotMatch", lambda: decode(forged, chunk_signer=trailer_signer, trailer=True)
    )
    dropped = AWS_TRAILER_BODY.replace(b"x-amz-trailer-signature:", b"x-amz-other:")
    fails(
        "SignatureDoesNotMatch", lambda: decode(dropped, chunk_signer=trailer_signer, trailer=True)
    )


def test_trailer_presence_rules() -> None:
    no_trailer = sign_chunks([b"data"])  # 0-chunk, then an empty trailer section
    fails("InvalidRequest", lambda: decode(no_trailer, chunk_signer=signer(), trailer=True))
    fails("InvalidRequest", lambda: decode(b"4\r\ndata\r\n0\r\n\r\n", trailer=True))
    # STREAMING-AWS4-HMAC-SHA256-PAYLOAD carries no trailers: unsigned ones are refused.
    with_trailer = sign_chunks([b"data"], trailers=[("x-amz-checksum-crc32", "AAAA")])
    fails("InvalidRequest", lambda: decode(with_trailer, chunk_signer=signer()))


def test_reader_iterates_once() -> None:
    reader = AwsChunkedReader(
        pieces(b"0\r\n\r\n", 10), signer=None, decoded_length=None, expect_trailer=False
    )
    reader.__aiter__()
    with pytest.raises(RuntimeError):
        reader.__aiter__()
