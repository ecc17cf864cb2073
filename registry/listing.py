"""Listing pages over sorted keys: current objects, versions, multipart uploads.

Each walk bisects to its start and steps through keys in order, folding keys that share
a delimited prefix into one common prefix and jumping past the rest of that group, so a
page costs about its own size, not the bucket's.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TypeVar

from sortedcontainers import SortedDict

from registry.model import ListingPage, MultipartUpload, ObjectVersion, UploadsPage, VersionsPage

_K = TypeVar("_K")
_V = TypeVar("_V")


def _successor(prefix: str) -> str:
    """The least string greater than every string that starts with `prefix`."""
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)


def _groups(
    items: SortedDict[_K, _V],
    start: int,
    name: Callable[[_K], str],
    prefix: str,
    delimiter: str,
    bisect: Callable[[str], int],
) -> Iterator[tuple[str | None, list[_V]]]:
    """From index `start`: (common prefix, the group's values) or (None, [value])."""
    keys = items.keys()
    index = start
    while index < len(keys):
        key = name(keys[index])
        if not key.startswith(prefix):
            return
        cut = key.find(delimiter, len(prefix)) if delimiter else -1
        if cut < 0:
            yield None, [items[keys[index]]]
            index += 1
            continue
        common = key[: cut + len(delimiter)]
        end = bisect(_successor(common))
        yield common, [items[keys[i]] for i in range(index, end)]
        index = end


def current_page(
    objects: SortedDict[str, list[ObjectVersion]],
    prefix: str,
    delimiter: str,
    after: str,
    max_keys: int,
) -> ListingPage:
    """Keys (and common prefixes) after `after` whose newest version is not a delete
    marker; max_keys counts both."""
    start = max(prefix, after)
    index = objects.bisect_right(after) if start == after else objects.bisect_left(start)
    found: list[ObjectVersion] = []
    prefixes: list[str] = []
    last = ""
    truncated = False
    for common, value in _groups(objects, index, str, prefix, delimiter, objects.bisect_left):
        if common is None:
            if value[0][0].delete_marker:
                continue
        elif common <= after or all(v[0].delete_marker for v in value):
            continue  # a marker inside a group resumes after it; a deleted group is not shown
        if len(found) + len(prefixes) == max_keys:
            truncated = True
            break
        if common is None:
            found.append(value[0][0])
            last = found[-1].key
        else:
            prefixes.append(common)
            last = common
    return ListingPage(found, prefixes, truncated, last if truncated else None)


def versions_page(
    objects: SortedDict[str, list[ObjectVersion]],
    prefix: str,
    delimiter: str,
    key_marker: str,
    version_id_marker: str,
    max_keys: int,
) -> VersionsPage:
    """Every version and delete marker, keys in order and each key's newest first."""
    if key_marker and version_id_marker:
        index = objects.bisect_left(key_marker)  # resume inside key_marker's versions
    elif key_marker:
        index = objects.bisect_right(key_marker)
    else:
        index = 0
    index = max(index, objects.bisect_left(prefix))
    found: list[tuple[ObjectVersion, bool]] = []
    prefixes: list[str] = []
    marker: tuple[str, str | None] = ("", None)
    truncated = False
    groups = _groups(objects, index, str, prefix, delimiter, objects.bisect_left)
    for common, value in groups:
        if common is not None:
            if common <= key_marker:
                continue
            if len(found) + len(prefixes) == max_keys:
                truncated = True
                break
            prefixes.append(common)
            marker = (common, None)
            continue
        versions = value[0]
        skip = 0
        if key_marker and version_id_marker and versions and versions[0].key == key_marker:
            ids = [v.version_id for v in versions]
            skip = ids.index(version_id_marker) + 1 if version_id_marker in ids else len(ids)
        for position, version in enumerate(versions[skip:], start=skip):
            if len(found) + len(prefixes) == max_keys:
                truncated = True
                break
            found.append((version, position == 0))
            marker = (version.key, version.version_id)
        if truncated:
            break
    return VersionsPage(
        found,
        prefixes,
        truncated,
        next_key_marker=marker[0] if truncated else None,
        next_version_id_marker=marker[1] if truncated else None,
    )


def uploads_page(
    uploads: SortedDict[tuple[str, str], MultipartUpload],
    prefix: str,
    delimiter: str,
    key_marker: str,
    upload_id_marker: str,
    max_uploads: int,
) -> UploadsPage:
    """Uploads ordered by key, then initiation (upload ids sort by time)."""
    if key_marker and upload_id_marker:
        start = uploads.bisect_right((key_marker, upload_id_marker))
    else:
        start = uploads.bisect_right((key_marker, "\U0010ffff")) if key_marker else 0
    start = max(start, uploads.bisect_left((prefix, "")))
    found: list[MultipartUpload] = []
    prefixes: list[str] = []
    marker: tuple[str, str | None] = ("", None)
    truncated = False

    def bisect(name: str) -> int:
        return int(uploads.bisect_left((name, "")))

    for common, value in _groups(uploads, start, lambda k: k[0], prefix, delimiter, bisect):
        if len(found) + len(prefixes) == max_uploads:
            truncated = True
            break
        if common is None:
            upload = value[0]
            found.append(upload)
            marker = (upload.key, upload.upload_id)
        else:
            prefixes.append(common)
            marker = (common, None)
    return UploadsPage(
        found,
        prefixes,
        truncated,
        next_key_marker=marker[0] if truncated else None,
        next_upload_id_marker=marker[1] if truncated else None,
    )
