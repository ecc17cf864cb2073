"""Listings that seek (registry.listing over SQLite) against a brute-force model: random
keys (with delimiters, multi-byte and astral characters), versions, delete markers and
uploads; every prefix, delimiter, marker and page size the model picks must give exactly
the items the model computes by walking everything."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from s3facade.backends import BackendSet
from s3facade.backends.local import LocalCAS
from s3facade.registry import ObjectSpec, Provenance, Registry
from s3facade.registry.model import Versioning

WHO = Provenance("AKIDTEST", "127.0.0.1:1", "test", "REQ")
ALPHABET = ["a", "b", "/", "-", "é", "\U0001f600", "z"]
Item = tuple[str, str, str]  # ("key" | "prefix", name, version or upload id)


async def one(data: bytes) -> AsyncIterator[bytes]:
    yield data


def random_key(rng: random.Random) -> str:
    return "".join(rng.choice(ALPHABET) for _ in range(rng.randint(1, 5)))


def grouped(
    entries: list[tuple[str, str]], prefix: str, delimiter: str, skip_through: str
) -> list[Item]:
    """(key, id) in listing order -> items: keys, and each common prefix once (a prefix
    at or before `skip_through` is not shown)."""
    items: list[Item] = []
    seen: set[str] = set()
    for key, ident in entries:
        if not key.startswith(prefix):
            continue
        cut = key.find(delimiter, len(prefix)) if delimiter else -1
        if cut < 0:
            items.append(("key", key, ident))
            continue
        common = key[: cut + len(delimiter)]
        if common > skip_through and common not in seen:
            seen.add(common)
            items.append(("prefix", common, ""))
    return items


def walk(page: Callable[[Any], tuple[list[Item], bool, Any]], start: Any) -> list[Item]:
    """Every page from `start`, following the markers each truncated page returns."""
    items: list[Item] = []
    marker = start
    for _ in range(10_000):
        found, truncated, marker = page(marker)
        items += found
        if not truncated:
            return items
    raise AssertionError("pagination does not end")


def test_listings_match_a_brute_force_model(tmp_path: Path) -> None:
    rng = random.Random(20261129)

    async def scenario() -> None:
        cas = LocalCAS(tmp_path / "blobs")
        registry = Registry.open(tmp_path, BackendSet({"local": cas}, "local"))
        await registry.create_bucket("model", "us-east-1", WHO)
        await registry.put_bucket_versioning("model", Versioning.ENABLED, WHO)
        for _ in range(400):
            key = random_key(rng)
            roll = rng.random()
            if roll < 0.6:
                await registry.put_object(
                    "model", key, one(b"x"), spec=ObjectSpec(), provenance=WHO
                )
            elif roll < 0.75:
                await registry.delete_object("model", key, WHO)  # a delete marker
            elif roll < 0.85:
                versions = registry.views.versions("model", key)
                if versions:
                    victim = rng.choice(versions).version_id
                    await registry.delete_object("model", key, WHO, version_id=victim)
            else:
                await registry.uploads.create(
                    "model", key, spec=ObjectSpec(), provenance=WHO,
                    checksum_algorithm=None, checksum_type=None,
                )  # fmt: skip
        check(registry, rng)
        await registry.close()

    asyncio.run(scenario())


def check(registry: Registry, rng: random.Random) -> None:
    views = registry.views
    every = [v for b in ["model"] for v in views.all_versions(b)]  # key order, newest first
    keys = sorted({v.key for v in every})
    live = [k for k in keys if not views.versions("model", k)[0].delete_marker]
    uploads = [(u.key, u.upload_id) for u in views.all_uploads("model")]
    prefixes = ["", *{k[:n] for k in keys for n in (1, 2)}]
    for _ in range(300):
        prefix = rng.choice(prefixes)
        delimiter = rng.choice(["", "/", "/", "-", "é", "\U0001f600", "ab"])
        max_keys = rng.randint(1, 7)
        check_current(registry, live, prefix, delimiter, max_keys, rng)
        check_versions(registry, every, prefix, delimiter, max_keys, rng)
        check_uploads(registry, uploads, prefix, delimiter, max_keys)


def check_current(
    registry: Registry, live: list[str], prefix: str, delimiter: str, max_keys: int,
    rng: random.Random,
) -> None:  # fmt: skip
    after = rng.choice(["", *live, random_key(rng)])
    entries = [(k, "") for k in live if k > after]
    expected = grouped(entries, prefix, delimiter, after)

    def page(marker: str) -> tuple[list[Item], bool, str]:
        result = registry.list_objects(
            "model", prefix=prefix, delimiter=delimiter, after=marker, max_keys=max_keys
        )
        found = [("key", v.key, "") for v in result.objects]
        found += [("prefix", p, "") for p in result.common_prefixes]
        found.sort(key=lambda item: item[1])
        assert len(found) <= max_keys
        return found, result.is_truncated, result.next_marker

    assert walk(page, after) == expected, (prefix, delimiter, after)


def check_versions(
    registry: Registry, every: list[Any], prefix: str, delimiter: str, max_keys: int,
    rng: random.Random,
) -> None:  # fmt: skip
    start = rng.choice([("", ""), *[(v.key, v.version_id) for v in every], (random_key(rng), "")])
    key_marker, version_marker = start
    ordered = [(v.key, v.version_id) for v in every]
    if key_marker and version_marker:
        position = ordered.index(start)
        entries = ordered[position + 1 :]
    else:
        entries = [(k, i) for k, i in ordered if k > key_marker]
    expected = grouped(entries, prefix, delimiter, key_marker)
    latest = {v.key: v.version_id for v in reversed(every)}  # the first of each key wins

    def page(marker: tuple[str, str]) -> tuple[list[Item], bool, tuple[str, str]]:
        result = registry.list_versions(
            "model", prefix=prefix, delimiter=delimiter, key_marker=marker[0],
            version_id_marker=marker[1], max_keys=max_keys,
        )  # fmt: skip
        for version, is_latest in result.versions:
            assert is_latest == (latest[version.key] == version.version_id)
        found = [("key", v.key, v.version_id) for v, _ in result.versions]
        found += [("prefix", p, "") for p in result.common_prefixes]
        found.sort(key=lambda item: (item[1], item[0] == "key"))
        found = _versions_in_order(found, every)
        assert len(found) <= max_keys
        next_marker = (result.next_key_marker or "", result.next_version_id_marker or "")
        return found, result.is_truncated, next_marker

    assert walk(page, start) == expected, (prefix, delimiter, start)


def _versions_in_order(found: list[Item], every: list[Any]) -> list[Item]:
    """Versions of one key newest first, as listed (the sort above is by name only)."""
    rank = {(v.key, v.version_id): n for n, v in enumerate(every)}
    return sorted(found, key=lambda item: (item[1], rank.get((item[1], item[2]), -1)))


def check_uploads(
    registry: Registry, uploads: list[tuple[str, str]], prefix: str, delimiter: str,
    max_keys: int,
) -> None:  # fmt: skip
    def page(marker: tuple[str, str]) -> tuple[list[Item], bool, tuple[str, str]]:
        result = registry.uploads.list(
            "model", prefix=prefix, delimiter=delimiter, key_marker=marker[0],
            upload_id_marker=marker[1], max_uploads=max_keys,
        )  # fmt: skip
        found = [("key", u.key, u.upload_id) for u in result.uploads]
        found += [("prefix", p, "") for p in result.common_prefixes]
        found.sort(key=lambda item: (item[1], item[2]))
        assert len(found) <= max_keys
        next_marker = (result.next_key_marker or "", result.next_upload_id_marker or "")
        return found, result.is_truncated, next_marker

    assert walk(page, ("", "")) == grouped(uploads, prefix, delimiter, ""), (prefix, delimiter)
