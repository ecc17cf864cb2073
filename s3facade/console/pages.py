"""The console's pages as HTML (escaped by construction: s3facade.console.html)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from s3facade.console.html import Attrs, Html, join, link, short, table, tag, url
from s3facade.registry.model import Bucket, ListingPage, ObjectVersion


def object_href(bucket: str, key: str, version_id: str | None = None) -> str:
    return url(f"/b/{bucket}/object", key=key, version=version_id)


def listing_href(bucket: str, prefix: str = "", delimiter: str = "/", after: str = "") -> str:
    return url(f"/b/{bucket}", prefix=prefix or None, delimiter=delimiter, after=after or None)


def sign_in_form(next_path: str | None, message: str | None = None) -> Html:
    def field(label: str, name: str, kind: str, auto: str) -> Html:
        attrs: Attrs = {
            "type": kind,
            "name": name,
            "id": name,
            "required": True,
            "autocomplete": auto,
        }
        return tag("label", None, label, tag("input", attrs))

    return join(
        [
            tag("p", {"class": "error", "id": "error"}, message) if message else None,
            tag(
                "form",
                {"method": "post", "action": url("/sign-in"), "class": "sign-in"},
                field("Access key id", "access_key", "text", "username"),
                field("Secret access key", "secret", "password", "current-password"),
                tag("input", {"type": "hidden", "name": "next", "value": next_path or ""}),
                tag("button", {"type": "submit", "id": "sign-in"}, "Sign in"),
            ),
        ]
    )


def bucket_list(buckets: Sequence[Bucket], owner_name: Callable[[str], str]) -> Html:
    if not buckets:
        return tag("p", {"id": "no-buckets"}, "No bucket you may list.")
    rows = [
        [
            link(listing_href(b.name), b.name, **{"class": "bucket"}),
            owner_name(b.owner),
            b.region,
            _time(b.created),
            str(b.versioning or "never enabled"),
            "enabled" if b.object_lock else "",
        ]
        for b in buckets
    ]
    head = ("bucket", "owner", "region", "created (UTC)", "versioning", "object lock")
    return table(head, rows, id="buckets")


def listing(bucket: Bucket, page: ListingPage, prefix: str, delimiter: str, after: str) -> Html:
    crumbs: list[Html] = [link(listing_href(bucket.name, delimiter=delimiter), bucket.name)]
    if delimiter and prefix:
        walked = ""
        for part in prefix.split(delimiter)[:-1]:
            walked += part + delimiter
            crumbs.append(link(listing_href(bucket.name, walked, delimiter), part + delimiter))
    rows: list[list[str | Html | None]] = [
        [
            link(listing_href(bucket.name, p, delimiter), p[len(prefix) :], **{"class": "folder"}),
            "folder",
            "",
            "",
        ]
        for p in page.common_prefixes
    ]
    rows += [
        [
            link(
                object_href(bucket.name, o.key), o.key[len(prefix) :] or o.key, **{"class": "key"}
            ),
            str(o.size),
            _time(o.last_modified),
            o.etag,
        ]
        for o in page.objects
    ]
    flat = "" if delimiter else "/"
    parts = [
        tag("p", {"class": "crumbs", "id": "crumbs"}, *_between(crumbs, " ")),
        tag(
            "p",
            None,
            link(
                listing_href(bucket.name, prefix, flat),
                "show folders" if flat else "show all keys (no folders)",
            ),
        ),
        table(("key", "size", "last modified (UTC)", "etag"), rows, id="objects")
        if rows
        else tag("p", {"id": "empty"}, "No keys here."),
    ]
    if after:
        parts.append(
            tag("p", None, link(listing_href(bucket.name, prefix, delimiter), "first page"))
        )
    if page.is_truncated and page.next_marker is not None:
        target = listing_href(bucket.name, prefix, delimiter, page.next_marker)
        parts.append(tag("p", None, link(target, "next page", id="next-page")))
    return join(parts)


def summary(version: ObjectVersion, owner_name: str) -> Html:
    rows = [
        ("object", f"s3://{version.bucket}/{version.key}"),
        ("version", version.version_id),
        ("size", f"{version.size} bytes"),
        ("sha256", version.sha256),
        ("etag", version.etag),
        ("content type", version.content_type),
        ("last modified (UTC)", _time(version.last_modified)),
        ("written by", owner_name),
        ("written in event", str(version.seq)),
    ]
    return _pairs(rows, "summary")


def versions(bucket: str, key: str, found: Sequence[ObjectVersion] | None, current: str) -> Html:
    if found is None:
        return tag("p", None, "Listing versions needs s3:ListBucketVersions on the bucket.")
    rows = [
        [
            tag("strong", None, v.version_id)
            if v.version_id == current
            else (
                v.version_id
                if v.delete_marker
                else link(object_href(bucket, key, v.version_id), v.version_id)
            ),
            "delete marker" if v.delete_marker else f"{v.size} bytes",
            _time(v.last_modified),
            short(v.sha256),
            "latest" if index == 0 else "",
        ]
        for index, v in enumerate(found)
    ]
    return table(("version", "size", "last modified (UTC)", "sha256", ""), rows, id="versions")


def retention(found: Mapping[str, Any] | None, now: str) -> Html:
    if found is None:
        return tag("p", None, "No retention recorded for this version.")
    lock = found.get("lock_mode")
    rows = [
        ("protected now", "yes" if found.get("protected") else "no"),
        ("mode", lock or "none"),
        ("retain until (UTC)", found.get("retain_until") or "—"),
        ("legal hold", "on" if found.get("legal_hold") else "off"),
        ("set by", found.get("retention_source") or "—"),
        ("policy", found.get("retention_policy") or "—"),
        ("judged at (UTC)", now),
    ]
    return _pairs(rows, "retention-table")


def _pairs(rows: Sequence[tuple[str, Any]], ident: str) -> Html:
    body = [tag("tr", None, tag("th", None, name), tag("td", None, str(v))) for name, v in rows]
    return tag("table", {"class": "pairs", "id": ident}, tag("tbody", None, *body))


def section(ident: str, title: str, *content: Html) -> Html:
    return tag("section", {"id": ident}, tag("h2", None, title), *content)


def _between(items: Sequence[Html], sep: str) -> list[str | Html]:
    out: list[str | Html] = []
    for index, item in enumerate(items):
        if index:
            out.append(sep)
        out.append(item)
    return out


def _time(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S")
