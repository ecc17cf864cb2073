"""The log anchor: a durable record of the log's head, kept apart from the DuckDB files.

DuckDB recovers silently from a lost, truncated or garbled WAL by dropping what it cannot
read, so the log alone cannot tell that acknowledged events are gone. The anchor can: it
holds the sequence number and hash of the newest committed event, advanced after every
commit and before the commit is acknowledged. At start-up a log that is shorter than its
anchor, or whose event at the anchor's seq has another hash, is refused (registry.startup).

It lives outside the data dir by default (`<data-dir>.log-anchor`, beside it), so that
someone who can rewrite the data dir (a restore of an old copy, an edit of the log and of
everything in that directory) does not also rewrite the anchor. Put it on another disk
(`anchor_path`) to survive the loss of the data dir's disk too.

The file is small and fixed in size, so advancing it never allocates disk space (it works
on a full disk): two slots, written alternately, each with a generation number and a
SHA-256 checksum; a torn write damages at most the slot being written, and the other slot
still holds the previous head.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
from dataclasses import asdict, dataclass
from pathlib import Path

from s3facade.registry.errors import RegistryError

SLOT_SIZE = 512
SLOTS = 2
FORMAT = "s3facade-log-anchor/1"


def default_anchor_path(data_dir: Path) -> Path:
    data_dir = data_dir.absolute()
    return data_dir.parent / f"{data_dir.name}.log-anchor"


class AnchorDamaged(RegistryError):
    """Neither slot of the anchor file holds a valid record."""


@dataclass(frozen=True)
class AnchorRecord:
    log_id: str  # random, fixed when the log was created: an anchor belongs to one log
    generation: int  # +1 per write; the valid slot with the highest one is current
    seq: int
    hash: str

    def encode(self) -> bytes:
        body = json.dumps({"format": FORMAT, **asdict(self)}, sort_keys=True).encode()
        slot = body + b"\n" + hashlib.sha256(body).hexdigest().encode() + b"\n"
        assert len(slot) <= SLOT_SIZE
        return slot.ljust(SLOT_SIZE, b"\0")

    @staticmethod
    def decode(slot: bytes) -> AnchorRecord | None:
        body, _, rest = slot.rstrip(b"\0").partition(b"\n")
        if rest.strip() != hashlib.sha256(body).hexdigest().encode():
            return None
        try:
            fields = json.loads(body)
            if fields.pop("format") != FORMAT:
                return None
            return AnchorRecord(**fields)
        except (ValueError, TypeError, KeyError):
            return None


class LogAnchor:
    """An open anchor file. `advance` is called on the log's writer thread only."""

    def __init__(self, path: Path, fd: int, current: AnchorRecord) -> None:
        self.path = path
        self._fd = fd
        self.current = current

    @staticmethod
    def read(path: Path) -> AnchorRecord | None:
        """The current record, or None if there is no anchor file. AnchorDamaged if there is
        one but no slot is valid."""
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise AnchorDamaged(f"cannot read the log anchor {path}: {exc}") from exc
        records = [
            record
            for index in range(SLOTS)
            if (record := AnchorRecord.decode(data[index * SLOT_SIZE : (index + 1) * SLOT_SIZE]))
        ]
        if not records:
            raise AnchorDamaged(f"the log anchor {path} is damaged (no valid slot)")
        return max(records, key=lambda r: r.generation)

    @classmethod
    def open(cls, path: Path) -> LogAnchor:
        """Open an existing anchor for advancing (AnchorDamaged, FileNotFoundError)."""
        current = cls.read(path)
        if current is None:
            raise FileNotFoundError(path)
        fd = os.open(path, os.O_RDWR | os.O_CLOEXEC | os.O_NOFOLLOW)
        return cls(path, fd, current)

    @classmethod
    def create(cls, path: Path, seq: int, hash_: str) -> LogAnchor:
        """A new anchor at the given head (the file must not exist)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        record = AnchorRecord(secrets.token_hex(16), 1, seq, hash_)
        temp = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
        fd = os.open(temp, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            os.write(fd, record.encode() + AnchorRecord(record.log_id, 0, seq, hash_).encode())
            os.fsync(fd)
            os.link(temp, path)  # never replaces an anchor someone else created meanwhile
        except BaseException:
            os.close(fd)
            raise
        finally:
            temp.unlink(missing_ok=True)
        _fsync_dir(path.parent)
        return cls(path, fd, record)

    def advance(self, seq: int, hash_: str) -> None:
        """Durably record a new head (pwrite into the other slot + fdatasync)."""
        record = AnchorRecord(self.current.log_id, self.current.generation + 1, seq, hash_)
        slot = record.generation % SLOTS
        os.pwrite(self._fd, record.encode(), slot * SLOT_SIZE)
        os.fdatasync(self._fd)
        self.current = record

    def close(self) -> None:
        os.close(self._fd)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
