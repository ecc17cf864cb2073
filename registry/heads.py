"""Signed chain heads: tamper evidence that survives a re-hash.

The hash chain shows that events were edited, removed or reordered, but whoever can write
the log file can also recompute every hash after an edit. So the server signs the chain
head with an Ed25519 key kept outside the data dir, at regular intervals and when it
stops: a LogHeadSigned event names an earlier event (seq and hash) and carries a signature
over both. After a re-hash the signed hashes no longer match the chain, and without the
key no new signature can be made; removing the signed heads leaves a stretch of events
that no signature covers, which `verify` reports (registry.verify.HeadAudit).

What it does not protect against: an attacker who holds the key (keep it off the data
dir's machine, or at least out of the data dir), and changes to the newest events that
no signature covers yet (at most one interval: the anchor and `verify --head` with a head
saved elsewhere cover those).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from s3facade.registry.errors import RegistryError
from s3facade.registry.events import Event, EventType
from s3facade.registry.log import EventLog
from s3facade.registry.payloads import LogHeadSigned

logger = logging.getLogger(__name__)

SIGNING_CONTEXT = b"s3facade-log-head/v1\n"
SIGNER = "s3facade:log"
# How much longer than one signing interval the newest events may stay unsigned: clock
# jitter, a slow commit, a slow shutdown.
SIGNING_GRACE = timedelta(seconds=60)


class HeadKeyError(RegistryError):
    """The head-signing key file is missing, unreadable or not an Ed25519 private key."""


def head_message(seq: int, hash_: str) -> bytes:
    return SIGNING_CONTEXT + f"{seq}\n{hash_}\n".encode()


def key_id(public_hex: str) -> str:
    return hashlib.sha256(bytes.fromhex(public_hex)).hexdigest()[:16]


@dataclass(frozen=True)
class HeadKey:
    private: Ed25519PrivateKey

    @property
    def public_hex(self) -> str:
        raw = self.private.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        return raw.hex()

    @classmethod
    def load(cls, path: Path) -> HeadKey:
        try:
            key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        except FileNotFoundError:
            raise HeadKeyError(f"no head-signing key at {path}") from None
        except (OSError, ValueError, TypeError) as exc:
            raise HeadKeyError(f"the head-signing key {path} cannot be read: {exc}") from exc
        if not isinstance(key, Ed25519PrivateKey):
            raise HeadKeyError(f"{path} is not an Ed25519 private key")
        return cls(key)

    @classmethod
    def load_or_create(cls, path: Path) -> HeadKey:
        """The key at `path`, generated there (mode 0600) if absent, with a warning."""
        if path.exists() or path.is_symlink():
            return cls.load(path)
        key = cls(Ed25519PrivateKey.generate())
        pem = key.private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        with os.fdopen(fd, "wb") as file:
            file.write(pem)
            file.flush()
            os.fsync(file.fileno())
        logger.warning(
            "generated a new log head-signing key at %s (public key %s). Keep a copy of it "
            "away from this machine's data dir: whoever holds it can re-sign an edited log, "
            "and without it old signatures can still be checked with the public key.",
            path,
            key.public_hex,
        )
        return key

    def signed_head(self, seq: int, hash_: str) -> Event:
        signature = self.private.sign(head_message(seq, hash_)).hex()
        return LogHeadSigned(
            principal=SIGNER,
            signed_seq=seq,
            signed_hash=hash_,
            public_key=self.public_hex,
            key_id=key_id(self.public_hex),
            signature=signature,
        ).event()


def signature_problem(data: dict[str, Any], trusted: frozenset[str]) -> str | None:
    """Why a LogHeadSigned event's signature does not count, or None if it does."""
    public_hex = str(data.get("public_key", ""))
    if public_hex not in trusted:
        return f"signed by key {data.get('key_id')!r}, which is not a trusted key"
    try:
        public = Ed25519PublicKey.from_public_bytes(bytes.fromhex(public_hex))
        message = head_message(int(data["signed_seq"]), str(data["signed_hash"]))
        public.verify(bytes.fromhex(str(data["signature"])), message)
    except (InvalidSignature, ValueError, KeyError, TypeError):
        return "the signature does not verify"
    return None


@dataclass(frozen=True)
class HeadTrust:
    """The key that signs this log's new heads, and the public keys whose signed heads
    count (its own, plus earlier keys the operator still trusts: `head_trusted_keys`)."""

    key: HeadKey
    also_trusted: frozenset[str] = frozenset()
    interval: float = 60.0  # seconds between signed heads while serving

    @property
    def trusted(self) -> frozenset[str]:
        return self.also_trusted | {self.key.public_hex}


class HeadSigner:
    """Appends a signed head whenever the log moved since the last one: every `interval`
    seconds while serving, and once more when asked (start-up, shutdown)."""

    def __init__(self, log: EventLog, key: HeadKey, interval: float) -> None:
        self._log = log
        self._key = key
        self._interval = interval
        # The seq of the newest signed head: nothing to sign while it is the log's head.
        newest = log.store.event_at(log.last_seq)
        signed = newest is not None and newest.type == EventType.LOG_HEAD_SIGNED
        self._signed_through = log.last_seq if signed else -1

    @property
    def public_key(self) -> str:
        return self._key.public_hex

    async def sign_now(self) -> None:
        if self._log.last_seq in (0, self._signed_through):
            return  # an empty log, or nothing new since our own signed head
        event = self._key.signed_head(self._log.last_seq, self._log.last_hash)
        committed = await self._log.append([event])
        self._signed_through = committed[-1].seq

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self._interval)
            try:
                await self.sign_now()
            except Exception:  # a failed signature is retried at the next interval
                logger.exception("signing the log head failed")
