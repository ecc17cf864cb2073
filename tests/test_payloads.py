"""One typed definition per event type (registry/payloads.py): the docs' event table and
the SQL views are checked against it, and what it reads of old and future events."""

from __future__ import annotations

import re
from dataclasses import fields
from datetime import datetime
from pathlib import Path

import pytest

from s3facade.registry.errors import CorruptLog
from s3facade.registry.event_store import USER_VIEWS
from s3facade.registry.events import CommittedEvent, EventType
from s3facade.registry.payloads import PAYLOADS, ObjectRead, check_conforms, event_table, payload_of

DOCS = Path(__file__).resolve().parent.parent / "docs" / "provenance.md"


def test_the_docs_event_table_is_the_one_the_definitions_give() -> None:
    text = DOCS.read_text()
    begin = text.index("-->\n", text.index("<!-- event table")) + len("-->\n")
    end = text.index("\n<!-- end of event table -->")
    assert text[begin:end] == event_table()


def test_the_sql_views_read_only_defined_fields() -> None:
    known = {spec.name for cls in PAYLOADS.values() for spec in fields(cls)}
    used = {name for sql in USER_VIEWS.values() for name in re.findall(r"data->>?'(\w+)'", sql)}
    assert used and used <= known, used - known


def event(data: dict[str, object], type_: str = "ObjectRead") -> CommittedEvent:
    return CommittedEvent(7, datetime(2026, 1, 1), EventType(type_), "b", "k", data, "0", "1")


READ = {
    "principal": "AKID", "client_address": "127.0.0.1:1", "user_agent": "curl/8",
    "tool": {"name": "curl", "version": "8"}, "request_id": "R", "version_id": "null",
    "sha256": "0" * 64, "etag": "e", "method": "GET", "range": None, "part_number": None,
    "bytes_sent": 3, "status": 200, "completed": True, "presigned": False,
}  # fmt: skip


def test_an_old_event_reads_as_schema_1_and_a_future_one_is_refused() -> None:
    payload = payload_of(event(READ))  # written before the definitions: no schema key
    assert isinstance(payload, ObjectRead) and payload.bytes_sent == 3
    assert payload.to_data() == READ  # the same JSON, so the same hash
    with pytest.raises(CorruptLog, match="schema 2"):
        payload_of(event({**READ, "schema": 2}))
    with pytest.raises(CorruptLog, match="without 'method'"):
        payload_of(event({k: v for k, v in READ.items() if k != "method"}))


def test_appends_that_do_not_fit_their_definition_are_refused() -> None:
    check_conforms(EventType.OBJECT_READ, READ)
    with pytest.raises(ValueError, match="stray"):
        check_conforms(EventType.OBJECT_READ, {**READ, "stray": 1})
    with pytest.raises(ValueError, match="method"):
        check_conforms(EventType.OBJECT_READ, {k: v for k, v in READ.items() if k != "method"})
