"""The multipart/form-data body of a browser-based upload (POST Object), read as it streams.

https://docs.aws.amazon.com/AmazonS3/latest/API/RESTObjectPOST.html
https://docs.aws.amazon.com/AmazonS3/latest/API/sigv4-HTTPPOSTForms.html

The text fields before the file part are collected (at most `max_fields_bytes` of them, AWS's
20 KB); the file part is handed on as an async iterator that pulls the rest of the body only
as it is consumed, so memory holds one network chunk and the small fields, never the file.
Only a form-data part named `file` is the file (a part's `filename` parameter does not make
one); everything after it is ignored, as AWS does, though still parsed to the closing
boundary so a truncated or malformed body is not stored.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from python_multipart import MultipartParser
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import parse_options_header

from s3facade.errors import S3Error

MAX_FIELDS_BYTES = 20 * 1024  # "cannot exceed 20KB"; S3 reports 20480


@dataclass
class PostForm:
    fields: dict[str, str]  # lower-cased name -> value, the text fields before the file part
    field_names: dict[str, str]  # lower-cased name -> name as sent (for error messages)
    filename: str  # the file part's filename, path removed ("" if none given)
    file_content_type: str | None  # the file part's own Content-Type header
    file: AsyncIterator[bytes]  # the file's bytes as they arrive; ends at the part's end


def malformed() -> S3Error:
    return S3Error("MalformedPOSTRequest")


def not_multipart() -> S3Error:
    # What S3 answers (412, with a Condition element), not the documented
    # RequestIsNotMultiPartContent.
    return S3Error(
        "PreconditionFailed",
        extra={"Condition": "Bucket POST must be of the enclosure-type multipart/form-data"},
    )


def no_file() -> S3Error:
    # S3 sends InvalidArgument here, not the documented IncorrectNumberOfFilesInPostRequest.
    return S3Error(
        "InvalidArgument",
        "POST requires exactly one file upload per request.",
        extra={"ArgumentName": "file", "ArgumentValue": "0"},
    )


def boundary_of(content_type: str) -> bytes:
    # parse_options_header reads bytes as latin-1, as Starlette decodes header values.
    ctype, params = parse_options_header(content_type.encode("latin-1", "replace"))
    if ctype != b"multipart/form-data":
        raise not_multipart()
    boundary = params.get(b"boundary", b"")
    if not boundary:
        raise malformed()
    return boundary


def base_name(filename: str) -> str:
    """AWS uses only the text after the last slash or backslash of a client's path."""
    return filename.replace("\\", "/").rpartition("/")[2]


@dataclass
class _Part:
    """The part being parsed: its headers, then what its data is for."""

    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    header_name: bytearray = field(default_factory=bytearray)
    header_value: bytearray = field(default_factory=bytearray)
    kind: str = "headers"  # -> "field", "file", "invalid" or "ignored" once headers end
    name: str = ""
    value: bytearray = field(default_factory=bytearray)


class _FormReader:
    """Feeds the parser chunk by chunk; its callbacks sort each part into fields or file."""

    def __init__(self, stream: AsyncIterator[bytes], boundary: bytes, max_fields: int) -> None:
        self._stream = aiter(stream)
        self._max_fields = max_fields
        self._pre_data = 0  # bytes of the form before the file's content
        self._boundary_len = len(boundary) + 4  # "--" boundary CRLF
        self._part = _Part()
        self._parts = 0
        self._file_seen = False  # the file part's headers have been read
        self.file_done = False  # ... and its closing boundary
        self.ended = False  # the closing boundary of the whole body
        self.pending: list[bytes] = []  # file bytes the last write produced
        self.fields: dict[str, str] = {}
        self.field_names: dict[str, str] = {}
        self.filename = ""
        self.file_content_type: str | None = None
        try:
            self._parser = MultipartParser(
                boundary,
                {
                    "on_part_begin": self._on_part_begin,
                    "on_header_field": self._on_header_field,
                    "on_header_value": self._on_header_value,
                    "on_header_end": self._on_header_end,
                    "on_headers_finished": self._on_headers_finished,
                    "on_part_data": self._on_part_data,
                    "on_part_end": self._on_part_end,
                    "on_end": self._on_end,
                },
            )
        except FormParserError as exc:  # e.g. a boundary longer than 256 bytes
            raise malformed() from exc

    @property
    def file_seen(self) -> bool:
        return self._file_seen

    async def feed_next(self) -> None:
        """Parse one more chunk of the body; a body that stops early is incomplete."""
        try:
            chunk = await anext(self._stream)
        except StopAsyncIteration:
            # Nothing that even looked like a boundary: not multipart at all.
            raise (S3Error("IncompleteBody") if self._parts else malformed()) from None
        try:
            self._parser.write(chunk)
        except FormParserError as exc:
            raise malformed() from exc

    # --- parser callbacks; they run inside write(), so raising aborts the parse ---

    def _grow(self, size: int) -> None:
        if self._file_seen:
            return
        self._pre_data += size
        if self._pre_data > self._max_fields:
            raise S3Error(
                "MaxPostPreDataLengthExceededError",
                extra={"MaxPostPreDataLengthBytes": str(self._max_fields)},
            )

    def _on_part_begin(self) -> None:
        self._parts += 1
        self._part = _Part(kind="ignored" if self._file_seen else "headers")
        self._grow(self._boundary_len)

    def _on_header_field(self, data: bytes, start: int, end: int) -> None:
        if self._part.kind == "headers":
            self._grow(end - start)
            self._part.header_name += data[start:end]

    def _on_header_value(self, data: bytes, start: int, end: int) -> None:
        if self._part.kind == "headers":
            self._grow(end - start)
            self._part.header_value += data[start:end]

    def _on_header_end(self) -> None:
        part = self._part
        if part.kind == "headers":
            self._grow(4)  # ": " and CRLF
            part.headers.append((bytes(part.header_name).lower(), bytes(part.header_value)))
            part.header_name.clear()
            part.header_value.clear()

    def _on_headers_finished(self) -> None:
        part = self._part
        if part.kind != "headers":
            return
        self._grow(2)
        headers = dict(part.headers)
        disposition, params = parse_options_header(headers.get(b"content-disposition"))
        raw_name = params.get(b"name")
        if disposition != b"form-data" or raw_name is None:
            part.kind = "invalid"  # RFC 7578 requires both; counted, then refused at its end
            return
        part.name = _text(raw_name)
        if part.name.lower() != "file":
            part.kind = "field"
            return
        part.kind = "file"
        self._file_seen = True
        self.filename = base_name(_text(params.get(b"filename", b"")))
        ctype = headers.get(b"content-type")
        self.file_content_type = None if ctype is None else _text(ctype).strip()

    def _on_part_data(self, data: bytes, start: int, end: int) -> None:
        kind = self._part.kind
        if kind == "file":
            self.pending.append(data[start:end])
        elif kind in ("field", "invalid"):
            self._grow(end - start)
            if kind == "field":
                self._part.value += data[start:end]

    def _on_part_end(self) -> None:
        part = self._part
        if part.kind == "file":
            self.file_done = True
        elif part.kind == "invalid":
            raise malformed()
        elif part.kind == "field":
            lname = part.name.lower()
            value = _text(bytes(part.value))
            if lname in self.fields:
                # AWS joins repeated fields with commas (its policy docs' "Ninja,Stallman").
                self.fields[lname] += "," + value
            else:
                self.fields[lname] = value
                self.field_names[lname] = part.name
        self._part = _Part(kind="ignored")

    def _on_end(self) -> None:
        self.ended = True


def _text(raw: bytes) -> str:
    """Form fields and file names are UTF-8 ("The form and policy must be UTF-8 encoded")."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise malformed() from None


async def _file_bytes(reader: _FormReader) -> AsyncIterator[bytes]:
    while True:
        if reader.pending:
            data = b"".join(reader.pending)
            reader.pending.clear()
            yield data
        if reader.file_done:
            break
        await reader.feed_next()
    # The fields after the file are ignored, but the body must still reach its closing
    # boundary: an object is stored only from a complete, well-formed request.
    while not reader.ended:
        await reader.feed_next()
        reader.pending.clear()


async def read_post_form(
    stream: AsyncIterator[bytes], content_type: str, *, max_fields_bytes: int = MAX_FIELDS_BYTES
) -> PostForm:
    """Read the form up to the start of the file part; the file streams from `PostForm.file`.

    Raises S3Error: PreconditionFailed (not multipart/form-data), MalformedPOSTRequest,
    MaxPostPreDataLengthExceededError, InvalidArgument (no file part), IncompleteBody; the
    file iterator raises MalformedPOSTRequest or IncompleteBody for the rest of the body.
    """
    reader = _FormReader(stream, boundary_of(content_type), max_fields_bytes)
    while not reader.file_seen:
        if reader.ended:
            raise no_file()
        await reader.feed_next()
    return PostForm(
        fields=reader.fields,
        field_names=reader.field_names,
        filename=reader.filename,
        file_content_type=reader.file_content_type,
        file=_file_bytes(reader),
    )
