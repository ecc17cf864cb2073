"""One object version's page: summary, versions, timeline, lineage, retention, verify."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from s3facade.console import pages
from s3facade.console.html import Html, join, short, tag
from s3facade.console.lineage import Node, lineage_svg
from s3facade.console.timeline import Visible, timeline
from s3facade.registry.audit import ObjectHistory
from s3facade.registry.console_queries import (
    CHAIN_EVENTS_LIMIT,
    REHASH_LIMIT,
    Lineage,
    LineageNode,
    VersionCheck,
)
from s3facade.registry.model import ObjectVersion

TIMELINE_LIMIT = 500  # newest events shown


def object_page(
    version: ObjectVersion,
    owner_name: str,
    history: ObjectHistory,
    lineage: Lineage,
    versions: Sequence[ObjectVersion] | None,
    retention: Mapping[str, Any] | None,
    check: VersionCheck,
    visible: Visible,
    names: Callable[[str], str],
) -> Html:
    events = history.events
    shown = events[-TIMELINE_LIMIT:]
    copies_out = [n.event for n in lineage.copies if n.event is not None]
    note = (
        tag("p", None, f"The newest {len(shown)} of {len(events)} events.")
        if len(shown) < len(events)
        else None
    )
    parts = [
        pages.section("summary-section", "Version", pages.summary(version, owner_name)),
        pages.section(
            "versions-section",
            "Versions of this key",
            pages.versions(version.bucket, version.key, versions, version.version_id),
        ),
        pages.section(
            "timeline",
            "Timeline",
            join([note, timeline(shown, copies_out, visible, pages.object_href, names)]),
        ),
        pages.section("lineage", "Lineage", lineage_view(version, lineage, visible)),
        pages.section(
            "retention",
            "Effective retention",
            pages.retention(retention, str((retention or {}).get("now", ""))),
        ),
        pages.section("verify", "Verify status", verify_view(version, check)),
    ]
    return join(parts)


def lineage_view(version: ObjectVersion, lineage: Lineage, visible: Visible) -> Html:
    center = Node(
        f"s3://{version.bucket}/{version.key}",
        f"{version.version_id} · {short(version.sha256, 10)}",
        None,
        "self",
    )
    sources = [_node(n, "source", visible) for n in lineage.sources]
    copies = [_node(n, "copy", visible) for n in lineage.copies]
    words = tag(
        "ul",
        {"id": "lineage-list"},
        *[
            tag("li", {"class": "source"}, "copied from ", _name(n, visible))
            for n in lineage.sources
        ],
        *[tag("li", {"class": "copy"}, "copied to ", _name(n, visible)) for n in lineage.copies],
    )
    if not lineage.sources and not lineage.copies:
        words = tag("p", {"id": "lineage-list"}, "Not copied from anything, and never copied.")
    return join([lineage_svg(sources, center, copies), words])


def _node(node: LineageNode, css: str, visible: Visible) -> Node:
    if not visible(node.bucket, node.key, node.version_id):
        return Node("(an object you may not read)", "", None, "hidden")
    return Node(
        f"s3://{node.bucket}/{node.key}",
        f"{node.version_id or '?'} · {short(node.sha256, 10)}",
        pages.object_href(node.bucket, node.key, node.version_id),
        css,
    )


def _name(node: LineageNode, visible: Visible) -> Html:
    if not visible(node.bucket, node.key, node.version_id):
        return tag("span", {"class": "hidden"}, "an object you may not read")
    name = f"s3://{node.bucket}/{node.key}"
    when = f" (event {node.event.seq})" if node.event is not None else ""
    href = pages.object_href(node.bucket, node.key, node.version_id)
    return join([tag("a", {"href": href}, name), f" version {node.version_id}{when}"])


def verify_view(version: ObjectVersion, check: VersionCheck) -> Html:
    when = check.checked_at.strftime("%Y-%m-%d %H:%M:%S")
    status = "ok" if check.ok else "PROBLEM"
    items: list[Html] = []
    if check.blob_rehashed:
        blob = (
            f"present, and its {version.size} bytes hash to the recorded sha256"
            if check.blob_ok
            else f"does not verify: {check.blob_problem}"
        )
        items.append(_item("blob-check", check.blob_ok, "Blob re-hashed now: ", blob))
    else:
        items.append(
            _item(
                "blob-check",
                None,
                "Blob not re-hashed on a page view: ",
                f"larger than {REHASH_LIMIT >> 20} MiB (the scrub and `s3facade verify` do it)",
            )
        )
    if check.known_damage:
        items.append(_item("known-damage", False, "Damage known: ", check.known_damage))
    if check.chain_ok is None:
        items.append(_item("chain-check", None, "Hash chain: ", "no events to check"))
    else:
        partial = (
            f" (the newest {CHAIN_EVENTS_LIMIT} of {check.events_total})"
            if check.events_total > check.events_checked
            else ""
        )
        text = (
            f"each of the {_events(check.events_checked)} above{partial} hashes to its "
            "recorded hash over its content, links to its predecessor's stored hash, and "
            "its successor links to it"
            if check.chain_ok
            else "; ".join(check.chain_problems)
        )
        items.append(_item("chain-check", check.chain_ok, "Hash chain around its events: ", text))
    point = check.verified_point
    if point is None:
        items.append(
            _item(
                "verified-point",
                None,
                "Whole-log verify: ",
                "no clean `s3facade verify` recorded yet",
            )
        )
    else:
        held = "still has" if check.verified_point_intact else "NO LONGER has"
        written = (
            f"it covered this version's write (event {version.seq})"
            if version.seq <= point.seq
            else f"this version was written after it (event {version.seq})"
        )
        items.append(
            _item(
                "verified-point",
                check.verified_point_intact,
                "Whole-log verify: ",
                f"the last clean one ({point.time}) reached event {point.seq}, which {held} "
                f"the hash it verified; {written}",
            )
        )
    return join(
        [
            tag(
                "p",
                {"id": "verify-status", "class": f"status {status.lower()}"},
                f"Status: {status} (checked {when} UTC)",
            ),
            tag("ul", {"class": "checks"}, *items),
            tag(
                "p",
                {"class": "note"},
                "Not checked here: signed heads and the anchor (run `s3facade verify`).",
            ),
        ]
    )


def _item(ident: str, ok: bool | None, label: str, text: str) -> Html:
    css = {True: "ok", False: "bad", None: "skipped"}[ok]
    return tag("li", {"id": ident, "class": css}, tag("strong", None, label), text)


def _events(count: int) -> str:
    return "1 event" if count == 1 else f"{count} events"
