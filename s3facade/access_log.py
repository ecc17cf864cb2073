"""Logs an operator reads: one access-log line per S3 request (logger `s3facade.access`), and
every log line with a timestamp, as readable text or as JSON (`--log-format json`)."""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from starlette.types import Message, Send

access = logging.getLogger("s3facade.access")
LOG_FORMATS = ("text", "json")


@dataclass
class AccessRecord:
    """What one request did, filled in as it is answered."""

    request_id: str
    method: str
    user_agent: str
    started: float = 0.0  # time.perf_counter()
    principal: str = "-"
    operation: str = "Unrouted"
    bucket: str = ""
    key: str = ""
    status: int = 0
    error: str = ""  # the S3 error code, if the answer is one
    bytes_in: int = 0
    bytes_out: int = 0

    def counting(self, send: Send) -> Send:
        """`send`, counting the body bytes that go out."""

        async def counted(message: Message) -> None:
            if message["type"] == "http.response.body":
                self.bytes_out += len(message.get("body", b""))
            await send(message)

        return counted

    def emit(self) -> None:
        if not access.isEnabledFor(logging.INFO):
            return
        fields = dict(vars(self))  # flat values: no deep copy (dataclasses.asdict)
        del fields["started"]
        fields["ms"] = round((time.perf_counter() - self.started) * 1000, 2)
        access.info("%s", _text(fields), extra={"fields": fields})


def _text(fields: dict[str, object]) -> str:
    def shown(value: object) -> str:
        # Keys are the client's: a newline or an "x=y" in one must not forge a line or field.
        text = str(value) if value not in ("", None) else "-"
        plain = text.isprintable() and not any(c in text for c in ' "=')
        return text if plain else json.dumps(text, ensure_ascii=False)

    return " ".join(f"{name}={shown(value)}" for name, value in fields.items())


class JsonLines(logging.Formatter):
    """One JSON object per line: time, level, logger, message, and an access line's fields."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "time": _iso(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            line.update(fields)
        else:
            line["message"] = record.getMessage()
        if record.exc_info:
            line["traceback"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False)


class TextLines(logging.Formatter):
    """`<UTC time> <level> <logger>: <message>`."""

    def format(self, record: logging.LogRecord) -> str:
        text = f"{_iso(record.created)} {record.levelname} {record.name}: {record.getMessage()}"
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return text


def _iso(created: float) -> str:
    moment = datetime.fromtimestamp(created, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def configure_logging(level: str, log_format: str) -> None:
    """Every logger (uvicorn's included) through one handler on stderr, in `log_format`."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonLines() if log_format == "json" else TextLines())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
